"""Speed-up curve: tau_alpha(T) of KA2 with and without swaps, fits, and the speed-up.

Model: KA2, the Kob-Andersen A80B20 mixture doped with C (x_C = 0.10, C replaces A, preset
``ka2-x10``), N = 500, density 1.2, swap moves A<->C and B<->C with p_swap = 0.2. Time is in
MC sweeps (N attempts); tau_alpha is where F_s(q, t) of the A particles (the particles that
are A at each time origin) crosses 1/e, q = 7.25 (:func:`swapmc.analysis.default_wavenumber`),
measured with :class:`swapmc.analysis.FsTracker`, which also gives its jackknife error.

Measurement (all stages resumable, see below):

1. *Swap chain, cooling in steps.* At each temperature of ``--temperatures`` (decreasing) a
   swap sampler starts from the configuration left at the previous temperature (random
   insertion at the first), equilibrates for ``--equil-factor`` x the expected swap
   tau_alpha (step size tuned, then frozen), then measures F_s until the origins span
   ``--window`` x tau_alpha (or ``--max-swap-sweeps``). The expected tau_alpha is the
   Arrhenius extrapolation of the last two measured ones (x ``--guess-margin``); the
   equilibration actually achieved in units of the measured tau_alpha is reported; where it
   fell short of ``--min-equil-taus``, the production is counted as further equilibration
   and repeated once from its final configuration (the first result is kept). The energy per
   particle of the two halves of the production and the solid-like (ten Wolde q6) fraction
   of the final configuration test stationarity and the absence of crystallisation.
2. *No-swap runs* (displacements only, a fresh sampler) start from the final swap
   configuration at the same temperature, an equilibrium state (swap samples the same
   Boltzmann distribution), tune the displacement for ``--tune-sweeps`` sweeps and measure
   F_s the same way, up to ``--max-noswap-sweeps``. No-swap runs at T >= ``--defer-below``
   are done right after the swap stage at that T (they are cheap); the slower ones below it
   after the whole swap chain, so that the lowest swap temperatures are not starved. A run
   whose F_s stays above 1/e gives only a lower bound; lower no-swap temperatures are then
   skipped.

Analysis (``swapmc.analysis.tau_fits``): ln tau fits weighted by the jackknife errors.
No-swap: mode-coupling power law on ``--powerlaw-range`` (T_MCT), VFT and parabolic on all
no-swap points, Arrhenius on the low-T points ``T <= --arrhenius-max``. Swap: parabolic on
all swap points, Arrhenius on ``T <= --arrhenius-max``, used only to place tau_swap at T_g.
The speed-up tau_noswap / tau_swap at each swap temperature is measured where both exist,
otherwise extrapolated with every no-swap law (a 68 % band from the fit covariance and the
swap error; it does not contain the model error, which the spread between laws shows).
T_g is where the no-swap law reaches tau_0 x 10^12, tau_0 the measured no-swap tau_alpha
at the onset temperature ``--t-onset`` (Ninarello, Berthier & Coslovich, PRX 7, 021039
(2017), section II); the speed-up at T_g is given for every pair of no-swap and swap laws.

Resuming: every stage writes ``<out>/<mode>_T<T>.json`` (result) and, for the swap chain,
``<out>/swap_T<T>.npz`` (final configuration) when done, and a checkpoint (sampler and
tracker state) every ``--checkpoint-every`` seconds while running; a rerun with the same
``--out`` skips finished stages and continues a running one from its checkpoint.

Usage::

    python scripts/speedup_curve.py --quick --out /tmp/speedup_quick
    python scripts/speedup_curve.py --out runs/speedup --figure docs/figures/speedup_angell.png \
        --json docs/speedup_curve.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time

import numpy as np

from swapmc.analysis import FsTracker, crystalline_fraction, default_wavenumber
from swapmc.analysis.tau_fits import fit_tau, measured_speedup, speedup, speedup_at_tg
from swapmc.box import Box
from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset
from swapmc.system import System

PRESET = "ka2-x10"
FULL_TEMPERATURES = (1.0, 0.7, 0.6, 0.5, 0.45, 0.4, 0.36, 0.33)
QUICK_TEMPERATURES = (1.5, 1.2, 1.0, 0.85)
#: Expected swap tau_alpha at the first temperature (sweeps; T = 1: a few hundred).
FIRST_TAU_GUESS = 500.0
#: Snapshots per expected tau_alpha: lags reach down to tau/SNAPSHOTS_PER_TAU, far below
#: tau, while the tracker's Python cost per snapshot stays negligible next to the sweeps.
SNAPSHOTS_PER_TAU = 100
NOSWAP_LAWS = ("arrhenius", "vft", "parabolic", "power_law")
SWAP_LAWS = ("parabolic", "arrhenius")


# ----------------------------------------------------------------------------- storage
def _tag(mode: str, temperature: float) -> str:
    return f"{mode}_T{temperature:.4f}"


def _write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _save_npz(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _system_arrays(system: System) -> dict:
    return {"positions": system.positions, "species": system.species,
            "images": system.images, "lengths": np.asarray(system.box.lengths),
            "species_names": np.array(system.species_names)}


def _system_from(d) -> System:
    return System(np.array(d["positions"]), np.array(d["species"]),
                  tuple(str(s) for s in d["species_names"]), Box(np.array(d["lengths"])),
                  images=np.array(d["images"]))


def _prefixed(prefix: str, d: dict) -> dict:
    return {prefix + k: v for k, v in d.items()}


def _unprefixed(prefix: str, d) -> dict:
    return {k[len(prefix):]: d[k] for k in d.files if k.startswith(prefix)}


# --------------------------------------------------------------------------- measuring
class Stage:
    """One resumable measurement: optional equilibration, then F_s production.

    Parameters
    ----------
    path : str
        Checkpoint file (``.npz``).
    mc : MonteCarlo
        Sampler in its starting state (replaced by the checkpointed state when resuming).
    n_equil : int
        Equilibration sweeps (step size tuned), multiple of 10.
    tracker : FsTracker
        Fresh tracker for the production.
    window : float
        Production stops once the origins span ``window`` x tau_alpha and an error exists.
    max_sweeps : int
        Production budget (sweeps).
    checkpoint_every : float
        Seconds between checkpoints.
    """

    def __init__(self, path, mc, n_equil, tracker, window, max_sweeps, checkpoint_every):
        self.path, self.mc, self.tracker = path, mc, tracker
        self.n_equil, self.window, self.max_sweeps = n_equil, window, max_sweeps
        self.checkpoint_every = checkpoint_every
        self.equil_done = 0
        self.prod_done = 0
        self.energies: list = []  # E/N at every snapshot of the production
        self.wall = 0.0
        if os.path.exists(path):
            with np.load(path) as d:
                mc.load_state_dict(_unprefixed("mc_", d))
                meta = json.loads(str(d["meta"]))
                if meta["prod_done"] > 0:
                    self.tracker = FsTracker.from_state_dict(_unprefixed("fs_", d))
                self.energies = list(np.array(d["energies"]))
            self.equil_done, self.prod_done = meta["equil_done"], meta["prod_done"]
            self.n_equil, self.wall = meta["n_equil"], meta["wall"]

    def _checkpoint(self) -> None:
        meta = {"equil_done": self.equil_done, "prod_done": self.prod_done,
                "n_equil": self.n_equil, "wall": self.wall}
        fs = self.tracker.state_dict() if self.prod_done > 0 else {}
        _save_npz(self.path, meta=np.array(json.dumps(meta)),
                  energies=np.array(self.energies, dtype=np.float64),
                  **_prefixed("mc_", self.mc.state_dict()), **_prefixed("fs_", fs))

    def _snapshot(self) -> None:
        # Positions and species from one snapshot in the user's order: the sampler's own
        # arrays are in its internal (spatially sorted) order and must not be mixed in.
        snap = self.mc.system()
        self.tracker.update(snap.unwrapped_positions(), snap.species)
        self.energies.append(self.mc.energy / self.mc.n)

    def run(self) -> dict:
        """Run (or finish) the stage; returns its result dict."""
        t_last = time.perf_counter()
        t_prev = t_last
        every = self.tracker.every
        while self.equil_done < self.n_equil:
            block = min(10 * max(1, every), self.n_equil - self.equil_done)
            self.mc.equilibrate(block)
            self.equil_done += block
            now = time.perf_counter()
            self.wall += now - t_prev
            t_prev = now
            if now - t_last > self.checkpoint_every:
                self._checkpoint()
                t_last = now
        if self.prod_done == 0:
            self._snapshot()
        check = max(every, 50 * every)
        while True:
            # The stopping test costs a jackknife (a few ms): done every 50 snapshots.
            if self.prod_done % check == 0 and self.prod_done > 0:
                tau, err, groups = self.tracker.tau_alpha()
                if (math.isfinite(tau) and math.isfinite(err)
                        and self.prod_done >= self.window * tau):
                    break
                if self.prod_done >= self.max_sweeps:
                    break
            self.mc.sweep(every)
            self.prod_done += every
            self._snapshot()
            now = time.perf_counter()
            self.wall += now - t_prev
            t_prev = now
            if now - t_last > self.checkpoint_every:
                self._checkpoint()
                t_last = now
        self._checkpoint()
        tau, err, groups = self.tracker.tau_alpha()
        t, fs = self.tracker.self_intermediate_scattering()
        bound = math.nan
        if not math.isfinite(tau):
            above = t[fs > math.exp(-1.0)]
            bound = float(above[-1]) if above.size else 0.0
        e = np.array(self.energies)
        half = e.size // 2
        acc = self.mc.acceptance()  # over the sampler's life: equilibration + production
        return {
            "tau": float(tau), "tau_err": float(err), "groups": int(groups),
            "bound": bound, "equil_sweeps": int(self.n_equil),
            "prod_sweeps": int(self.prod_done), "every": int(every),
            "energy": float(e.mean()), "energy_halves": [float(e[:half].mean()),
                                                         float(e[half:].mean())],
            "acc_displacement": float(acc["displacement"]),
            "acc_swap": float(acc["swap"]) if "swap" in acc else math.nan,
            "delta": float(self.mc.delta), "wall": float(self.wall),
            "fs_t": t.tolist(), "fs": fs.tolist(),
        }


def _guess_at(taus: list, temperature: float) -> float:
    """Arrhenius extrapolation of the last two measured (T, tau) to ``temperature``."""
    known = [(T, tau) for T, tau in taus if math.isfinite(tau)]
    if not known:
        return FIRST_TAU_GUESS
    if len(known) == 1:
        return 2.0 * known[-1][1]
    (t1, a1), (t2, a2) = known[-2], known[-1]
    slope = math.log(a2 / a1) / (1.0 / t2 - 1.0 / t1)
    return a2 * max(1.2, math.exp(max(slope, 0.0) * (1.0 / temperature - 1.0 / t2)))


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(
        description="tau_alpha(T) of KA2 x_C = 0.10 with and without swaps; fits; speed-up",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", required=True, help="directory of per-temperature results "
                    "and checkpoints (created; reused to resume)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: T {QUICK_TEMPERATURES}, N 200, short runs "
                         "(equilibration 3 tau, window 6 tau): under a minute")
    ap.add_argument("--temperatures", type=float, nargs="+", default=None,
                    help=f"swap cooling ladder (default {FULL_TEMPERATURES})")
    ap.add_argument("--noswap-min", type=float, default=0.45,
                    help="lowest temperature of a no-swap run")
    ap.add_argument("--defer-below", type=float, default=0.45,
                    help="no-swap runs below this T wait until the swap chain is done")
    ap.add_argument("--n", type=int, default=None, help="particles (default 500; quick 200)")
    ap.add_argument("--equil-factor", type=float, default=None,
                    help="swap equilibration in expected tau_alpha (default 10; quick 3)")
    ap.add_argument("--guess-margin", type=float, default=1.15,
                    help="factor on the extrapolated tau_alpha used for the equilibration")
    ap.add_argument("--min-equil-taus", type=float, default=None,
                    help="equilibration needed, in measured tau_alpha, before a swap "
                         "production is accepted (default 10; quick: --equil-factor)")
    ap.add_argument("--equil-min", type=int, default=2000,
                    help="minimum swap equilibration sweeps")
    ap.add_argument("--window", type=float, default=None,
                    help="production length in tau_alpha (default 10; quick 6)")
    ap.add_argument("--max-swap-sweeps", type=int, default=600_000,
                    help="production budget of a swap stage (sweeps)")
    ap.add_argument("--max-noswap-sweeps", type=int, default=400_000,
                    help="production budget of a no-swap run (sweeps)")
    ap.add_argument("--tune-sweeps", type=int, default=200,
                    help="displacement tuning sweeps of a no-swap run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=float, default=120.0, metavar="SECONDS")
    ap.add_argument("--measure-only", action="store_true",
                    help="sample (resuming) but do not fit or report")
    ap.add_argument("--analyze-only", action="store_true",
                    help="no sampling: fit and report the results already in --out")
    ap.add_argument("--t-onset", type=float, default=1.0,
                    help="onset temperature; tau_0 = no-swap tau_alpha there defines T_g")
    ap.add_argument("--tg-ratio", type=float, default=1e12, help="tau(T_g) / tau_0")
    ap.add_argument("--powerlaw-range", type=float, nargs=2, default=(0.45, 1.0),
                    metavar=("TMIN", "TMAX"), help="no-swap T range of the MCT power law")
    ap.add_argument("--arrhenius-max", type=float, default=0.6,
                    help="Arrhenius fits use T <= this")
    ap.add_argument("--more", nargs="+", default=[], metavar="DIR",
                    help="further measurement directories (another --seed or ladder) whose "
                         "finished stages join the analysis: every measurement enters the "
                         "fits, and the table pools those at the same T")
    ap.add_argument("--figure", metavar="PNG", help="Angell plot (log10 tau vs 1/T)")
    ap.add_argument("--json", metavar="FILE", help="machine-readable results")
    args = ap.parse_args(argv)
    if args.temperatures is None:
        args.temperatures = QUICK_TEMPERATURES if args.quick else FULL_TEMPERATURES
    args.temperatures = sorted(set(args.temperatures), reverse=True)
    if args.n is None:
        args.n = 200 if args.quick else 500
    if args.equil_factor is None:
        args.equil_factor = 3.0 if args.quick else 10.0
    if args.window is None:
        args.window = 6.0 if args.quick else 10.0
    if args.min_equil_taus is None and not args.quick:
        args.min_equil_taus = 10.0
    if args.quick:
        if args.min_equil_taus is None:
            args.min_equil_taus = args.equil_factor
        args.equil_min = min(args.equil_min, 500)
        args.noswap_min = min(args.noswap_min, min(args.temperatures))
        # Every fit is exercised on the quick ladder, whatever its physical relevance.
        args.t_onset = max(args.temperatures)
        args.powerlaw_range = (min(args.temperatures), max(args.temperatures))
        args.arrhenius_max = max(args.temperatures)
    return args


def swap_line(r: dict, min_equil_taus: float) -> str:
    """One line describing a finished swap stage."""
    ratio = r["equil_sweeps"] / r["tau"] if math.isfinite(r["tau"]) else math.nan
    flag = ("" if ratio >= min_equil_taus
            else f"  [WARNING: equilibration < {min_equil_taus:g} tau_alpha]")
    return (f"T={r['T']:<6g} swap: equil {r['equil_sweeps']} sweeps ({ratio:.3g} tau){flag}; "
            f"tau {r['tau']:.4g} +- {r['tau_err']:.2g} ({r['groups']} groups) in "
            f"{r['prod_sweeps']} sweeps, E/N {r['energy']:.4f} (halves "
            f"{r['energy_halves'][0]:.4f}/{r['energy_halves'][1]:.4f}), acc swap "
            f"{r['acc_swap']:.4f} disp {r['acc_displacement']:.3f}, solid-like "
            f"{r['solid_fraction']:.3f}; {r['wall']:.0f} s"
            + (f"; first production (then counted as equilibration): tau "
               f"{r['first']['tau']:.4g} +- {r['first']['tau_err']:.2g}, E/N halves "
               f"{r['first']['energy_halves'][0]:.4f}/{r['first']['energy_halves'][1]:.4f}"
               if r.get("repeated") else ""))


def noswap_line(r: dict) -> str:
    """One line describing a finished no-swap run."""
    return (f"T={r['T']:<6g} no swap: tau {r['tau']:.4g} +- {r['tau_err']:.2g} "
            f"({r['groups']} groups), bound {r['bound']:.4g}; {r['prod_sweeps']} sweeps "
            f"({r['prod_sweeps'] / r['tau']:.3g} tau), E/N {r['energy']:.4f} (halves "
            f"{r['energy_halves'][0]:.4f}/{r['energy_halves'][1]:.4f}), acc disp "
            f"{r['acc_displacement']:.3f}; {r['wall']:.0f} s")


def _log(msg: str) -> None:
    print(msg, flush=True)


def repeat_production(args, r: dict, k: int, res_path: str, cfg_path: str, model, q: float,
                      a_index: int) -> dict:
    """A second swap production when the first one followed too short an equilibration.

    The expected tau_alpha that set the equilibration can fall short of the measured one.
    The first production then counts as further equilibration (its energy halves show
    whether it was stationary) and the measurement is repeated from its final configuration
    with the same frozen step, so the result rests on equilibration + first production
    sweeps of equilibration. The first result is kept in ``<tag>.first.json``.
    """
    T = r["T"]
    _write_json(res_path.replace(".json", ".first.json"), r)
    with np.load(cfg_path) as d:
        start = _system_from(d)
        delta = float(d["delta"])
    moves = MoveSettings(**{**load_preset(PRESET).moves, "displacement": delta})
    # Its own stream, distinct from every stage's spawned one.
    mc = MonteCarlo(start, model, T, moves=moves,
                    seed=np.random.SeedSequence([args.seed, 1000 + k]))
    tracker = FsTracker(q, max(1, int(r["tau"] // SNAPSHOTS_PER_TAU)), model.n_species,
                        a_index)
    stage = Stage(os.path.join(args.out, _tag("swap", T) + ".repeat.ckpt.npz"), mc, 0, tracker,
                  args.window, args.max_swap_sweeps, args.checkpoint_every)
    r2 = stage.run()
    final = mc.system()
    r2.update(T=T, mode="swap", guess=r["guess"], repeated=True,
              equil_sweeps=r["equil_sweeps"] + r["prod_sweeps"],
              first={key: r[key] for key in ("tau", "tau_err", "groups", "equil_sweeps",
                                             "prod_sweeps", "energy", "energy_halves")},
              solid_fraction=crystalline_fraction(final.positions, final.box))
    _save_npz(cfg_path, delta=np.array(mc.delta), **_system_arrays(final))
    _write_json(res_path, r2)
    _log(swap_line(r2, args.min_equil_taus) + "  (repeated: first production counted as "
         "equilibration)")
    return r2


def measure(args) -> None:
    """Run (or resume) every stage; results go to ``args.out``."""
    os.makedirs(args.out, exist_ok=True)
    preset = load_preset(PRESET)
    model = preset.model
    a_index = model.species.index("A")
    counts = composition_counts(preset.composition, args.n, model.species)
    q = default_wavenumber(preset.density)
    temps = args.temperatures
    # One independent stream per stage, fixed by (seed, stage): resuming or reordering
    # stages never changes another stage's stream.
    seeds = np.random.SeedSequence(args.seed).spawn(2 * len(temps) + 1)
    swap_taus: list = []
    noswap_taus: list = []
    deferred: list = []
    noswap_blocked = [False]

    def noswap_stage(k: int) -> None:
        T = temps[k]
        res_path = os.path.join(args.out, _tag("noswap", T) + ".json")
        if _read_json(res_path) is not None:
            r = _read_json(res_path)
            noswap_taus.append((T, r["tau"]))
            noswap_blocked[0] |= not math.isfinite(r["tau"])
            _log(noswap_line(r) + "  (stored)")
            return
        if noswap_blocked[0]:
            return
        with np.load(os.path.join(args.out, _tag("swap", T) + ".npz")) as d:
            start = _system_from(d)
            delta = float(d["delta"])
        mc = MonteCarlo(start, model, T, moves=MoveSettings(p_swap=0.0, displacement=delta),
                        seed=seeds[1 + len(temps) + k])
        guess = _guess_at(noswap_taus, T) if noswap_taus else _guess_at(swap_taus[:1], T)
        ckpt = os.path.join(args.out, _tag("noswap", T) + ".ckpt.npz")
        tracker = FsTracker(q, max(1, int(guess // SNAPSHOTS_PER_TAU)), model.n_species,
                            a_index)
        stage = Stage(ckpt, mc, args.tune_sweeps, tracker, args.window,
                      args.max_noswap_sweeps, args.checkpoint_every)
        r = stage.run()
        r.update(T=T, mode="noswap", guess=guess)
        _write_json(res_path, r)
        noswap_taus.append((T, r["tau"]))
        noswap_blocked[0] |= not math.isfinite(r["tau"])
        _log(noswap_line(r))

    prev_config = None
    for k, T in enumerate(temps):
        res_path = os.path.join(args.out, _tag("swap", T) + ".json")
        cfg_path = os.path.join(args.out, _tag("swap", T) + ".npz")
        r = _read_json(res_path)
        if r is None:
            guess = _guess_at(swap_taus, T) * (args.guess_margin if swap_taus else 1.0)
            n_equil = int(10 * math.ceil(max(args.equil_min, args.equil_factor * guess) / 10))
            if prev_config is None:
                start = random_configuration(counts, model.species, preset.density,
                                             seed=int(seeds[0].generate_state(1)[0]))
                delta = MoveSettings(**preset.moves).displacement
            else:
                with np.load(prev_config) as d:
                    start = _system_from(d)
                    delta = float(d["delta"])
            moves = MoveSettings(**{**preset.moves, "displacement": delta})
            mc = MonteCarlo(start, model, T, moves=moves, seed=seeds[1 + k])
            tracker = FsTracker(q, max(1, int(guess // SNAPSHOTS_PER_TAU)), model.n_species,
                                a_index)
            stage = Stage(os.path.join(args.out, _tag("swap", T) + ".ckpt.npz"), mc, n_equil,
                          tracker, args.window, args.max_swap_sweeps, args.checkpoint_every)
            r = stage.run()
            final = mc.system()
            r.update(T=T, mode="swap", guess=guess,
                     solid_fraction=crystalline_fraction(final.positions, final.box))
            _save_npz(cfg_path, delta=np.array(mc.delta), **_system_arrays(final))
            _write_json(res_path, r)
            _log(swap_line(r, args.min_equil_taus))
        else:
            _log(swap_line(r, args.min_equil_taus) + "  (stored)")
        if (math.isfinite(r["tau"]) and not r.get("repeated")
                and r["equil_sweeps"] < args.min_equil_taus * r["tau"]):
            r = repeat_production(args, r, k, res_path, cfg_path, model, q, a_index)
        swap_taus.append((T, r["tau"]))
        prev_config = cfg_path
        if T >= args.defer_below:
            noswap_stage(k)
        elif T >= args.noswap_min:
            deferred.append(k)
    for k in deferred:
        noswap_stage(k)


# ---------------------------------------------------------------------------- analysis
def _load(args) -> tuple[list, list]:
    """Finished swap and no-swap results, decreasing T: those of the ladder's temperatures in
    ``--out`` and every finished stage in each ``--more`` directory (independent measurements,
    e.g. another seed or ladder); each row records the directory it came from."""
    swap, noswap = [], []
    for T in args.temperatures:
        for mode, out in (("swap", swap), ("noswap", noswap)):
            r = _read_json(os.path.join(args.out, _tag(mode, T) + ".json"))
            if r is not None:
                out.append({**r, "source": args.out})
    for directory in args.more:
        names = sorted(os.listdir(directory))
        for mode, out in (("swap", swap), ("noswap", noswap)):
            for name in names:
                # <mode>_T<T>.json only: not the .first.json kept when a production repeats.
                if name.startswith(mode + "_T") and name.count(".") == 2 \
                        and name.endswith(".json"):
                    r = _read_json(os.path.join(directory, name))
                    out.append({**r, "source": directory})
    for rows in (swap, noswap):
        rows.sort(key=lambda r: -r["T"])
    return swap, noswap


def _pool(rows: list) -> list:
    """One row per temperature: independent measurements at the same T combined.

    ln tau is averaged with weights 1/sigma_ln^2 (sigma_ln = tau_err / tau), its error is
    1/sqrt(sum of weights), scaled by sqrt(chi2/dof) when the measurements disagree beyond
    their 95 % chi2 quantile (as the fits do). A single measurement is returned unchanged;
    rows without a usable error are pooled only if they are alone at their T.
    """
    from scipy.stats import chi2 as chi2_dist

    by_t: dict = {}
    for r in rows:
        by_t.setdefault(r["T"], []).append(r)
    pooled = []
    for T in sorted(by_t, reverse=True):
        group = by_t[T]
        usable = _usable(group)
        if len(group) == 1 or len(usable) < 2:
            pooled.append({**group[0], "n_runs": 1})
            continue
        ln = np.log([r["tau"] for r in usable])
        w = np.array([(r["tau"] / r["tau_err"]) ** 2 for r in usable])
        mean = float(np.sum(w * ln) / np.sum(w))
        err = 1.0 / math.sqrt(float(np.sum(w)))
        chi2 = float(np.sum(w * (ln - mean) ** 2))
        dof = len(usable) - 1
        if chi2 > chi2_dist.ppf(0.95, dof):
            err *= math.sqrt(chi2 / dof)
        tau = math.exp(mean)
        pooled.append({**usable[0], "tau": tau, "tau_err": tau * err, "n_runs": len(usable),
                       "pool_chi2": chi2})
    return pooled


def _usable(rows: list) -> list:
    """Rows with a tau_alpha and a jackknife error (the only ones a weighted fit can use)."""
    return [r for r in rows if math.isfinite(r["tau"]) and math.isfinite(r["tau_err"])
            and r["tau_err"] > 0]


def _fit(rows: list, model: str, t_lo: float = -math.inf, t_hi: float = math.inf):
    """Weighted fit of ``model`` to the rows with t_lo <= T <= t_hi; None if too few."""
    sel = [r for r in _usable(rows) if t_lo <= r["T"] <= t_hi]
    try:
        return fit_tau([r["T"] for r in sel], [r["tau"] for r in sel],
                       [r["tau_err"] for r in sel], model=model)
    except ValueError:
        return None


def _band(value: float, ln_err: float) -> str:
    """``value [lo, hi]`` with the 68 % band value exp(+-ln_err), 3 significant digits."""
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(ln_err):
        return f"{value:.3g}"
    k = math.exp(min(ln_err, 700.0))  # a band beyond e^700 is "unbounded" anyway
    return f"{value:.3g} [{value / k:.3g}, {value * k:.3g}]"


def _pm(value: float, err: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(err):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}g} +- {err:.2g}"


def fit_all(args, swap: list, noswap: list) -> dict:
    """All fits, the speed-up table and the speed-up at T_g (see the module docstring)."""
    lo_pl, hi_pl = args.powerlaw_range
    slow = {"power_law": _fit(noswap, "power_law", lo_pl, hi_pl),
            "vft": _fit(noswap, "vft"),
            "parabolic": _fit(noswap, "parabolic"),
            "arrhenius": _fit(noswap, "arrhenius", t_hi=args.arrhenius_max)}
    fast = {"parabolic": _fit(swap, "parabolic"),
            "arrhenius": _fit(swap, "arrhenius", t_hi=args.arrhenius_max)}
    by_t = {r["T"]: r for r in _pool(noswap)}
    rows = []
    for r in _pool(swap):
        T = r["T"]
        ns = by_t.get(T)
        row = {"T": T, "tau_swap": r["tau"], "tau_swap_err": r["tau_err"],
               "runs_swap": r["n_runs"], "runs_noswap": ns["n_runs"] if ns else 0,
               "tau_noswap": ns["tau"] if ns else math.nan,
               "tau_noswap_err": ns["tau_err"] if ns else math.nan,
               "tau_noswap_bound": ns["bound"] if ns else math.nan,
               "measured": None, "extrapolated": {}}
        if not math.isfinite(r["tau"]):
            rows.append(row)
            continue
        if ns and math.isfinite(ns["tau"]) and math.isfinite(ns["tau_err"]):
            s, e = measured_speedup(ns["tau"], ns["tau_err"], r["tau"], r["tau_err"])
            row["measured"] = {"speedup": s, "ln_err": e}
        elif ns and math.isfinite(ns["bound"]):
            row["lower_bound"] = ns["bound"] / r["tau"]
        if row["measured"] is None:
            err = r["tau_err"] if math.isfinite(r["tau_err"]) else 0.0
            for law, fit in slow.items():
                if fit is None:
                    continue
                s, e = speedup(fit, T, r["tau"], err)
                row["extrapolated"][law] = {"speedup": float(s[0]), "ln_err": float(e[0])}
        rows.append(row)
    onset = by_t.get(args.t_onset)
    tau0 = (onset["tau"], onset["tau_err"]) if onset and math.isfinite(onset["tau"]) else None
    at_tg = {}
    if tau0 is not None:
        err0 = tau0[1] if math.isfinite(tau0[1]) else 0.0
        for law, sfit in slow.items():
            # The MCT power law diverges at T_MCT, above any T_g: it defines none.
            if sfit is None or law == "power_law":
                continue
            at_tg[law] = {}
            for flaw, ffit in fast.items():
                if ffit is not None:
                    at_tg[law][flaw] = speedup_at_tg(sfit, ffit, tau0[0], err0, args.tg_ratio)
    return {"slow": slow, "fast": fast, "rows": rows, "tau0": tau0, "at_tg": at_tg}


def report(args, swap: list, noswap: list, res: dict) -> None:
    """Print the per-temperature table, the fits and the speed-up at T_g."""
    laws = [law for law in ("arrhenius", "vft", "parabolic", "power_law")
            if res["slow"][law] is not None]
    _log("\n## tau_alpha (MC sweeps, +- jackknife standard error) and speed-up "
         "tau_noswap / tau_swap, 68 % band in brackets")
    head = f"{'T':>6} | {'tau_swap':>23} | {'tau_noswap':>23} | {'measured':>22}"
    head += "".join(f" | {('extrap. ' + law):>24}" for law in laws)
    _log(head)
    _log("-" * len(head))
    for row in res["rows"]:
        if math.isfinite(row["tau_noswap"]):
            ns = _pm(row["tau_noswap"], row["tau_noswap_err"])
        elif math.isfinite(row["tau_noswap_bound"]):
            ns = f"> {row['tau_noswap_bound']:.3g}"
        else:
            ns = "-"
        m = row["measured"]
        meas = _band(m["speedup"], m["ln_err"]) if m else (
            f"> {row['lower_bound']:.3g}" if "lower_bound" in row else "-")
        sw = _pm(row["tau_swap"], row["tau_swap_err"])
        sw += f" ({row['runs_swap']})" if row["runs_swap"] > 1 else ""
        ns += f" ({row['runs_noswap']})" if row["runs_noswap"] > 1 else ""
        line = f"{row['T']:>6g} | {sw:>23} | {ns:>23} | {meas:>22}"
        for law in laws:
            x = row["extrapolated"].get(law)
            line += f" | {_band(x['speedup'], x['ln_err']) if x else '-':>24}"
        _log(line)
    _log("# tau errors: jackknife over 2-3 origin groups (each >= 3 tau); a 68 % interval is "
         "t_{0.84,G-1} x error (1.84 for G = 2, 1.32 for G = 3). Speed-up bands: "
         "exp(+-sigma_ln) with sigma_ln from those errors and, extrapolated, the fit's "
         "delta-method band; the model error shows only as the spread between laws. "
         "'(k)': k independent runs at that T pooled (weighted mean of ln tau).")

    _log("\n## Fits of ln tau_alpha(T), weighted by the jackknife errors "
         "(errors scaled by sqrt(chi2/dof) when chi2 exceeds its 95 % quantile)")
    ranges = {"power_law": f"no swap, {args.powerlaw_range[0]:g} <= T <= "
                           f"{args.powerlaw_range[1]:g}",
              "vft": "no swap, all T", "parabolic": "no swap, all T",
              "arrhenius": f"no swap, T <= {args.arrhenius_max:g}"}
    for group, fits in (("no swap", res["slow"]), ("swap", res["fast"])):
        for law, fit in fits.items():
            where = ranges[law] if group == "no swap" else (
                f"swap, T <= {args.arrhenius_max:g}" if law == "arrhenius" else "swap, all T")
            if fit is None:
                _log(f"{law:>10} ({where}): too few points")
                continue
            pars = ", ".join(
                f"{k} = {_pm(v, fit.errors[k], 4)}" if math.isfinite(fit.errors[k])
                else f"{k} = {v:.3g} (unconstrained: above the data)"
                for k, v in fit.params.items())
            extra = ""
            if law == "vft" and group == "no swap":
                d = fit.params["A"] / fit.params["T0"]
                extra = f"; fragility D = A/T0 = {d:.3g}"
            _log(f"{law:>10} ({where}, {fit.dof + len(fit.params)} points): {pars}; "
                 f"chi2/dof = {fit.chi2:.3g}/{fit.dof}{extra}")
    pl = res["slow"]["power_law"]
    if pl is not None:
        _log(f"# T_MCT = {_pm(pl.params['T_c'], pl.errors['T_c'], 4)} (power-law T_c; plain "
             "KA: 0.435)")

    _log(f"\n## Speed-up at T_g: tau_noswap(T_g) = {args.tg_ratio:.0e} tau_0")
    if res["tau0"] is None:
        _log(f"# no no-swap tau_alpha at the onset temperature {args.t_onset:g}: T_g undefined")
        return
    _log(f"# tau_0 = no-swap tau_alpha at T_onset = {args.t_onset:g}: "
         f"{_pm(res['tau0'][0], res['tau0'][1])} sweeps")
    fast_laws = [law for law in res["fast"] if res["fast"][law] is not None]
    head = f"{'no-swap law':>11} | {'T_g':>16}" + "".join(
        f" | {('tau_swap(T_g), ' + f):>28} | {('speed-up, swap ' + f):>28}" for f in fast_laws)
    _log(head)
    _log("-" * len(head))
    for law, d in res["at_tg"].items():
        first = next(iter(d.values()), None)
        line = f"{law:>11} | {_pm(first['T_g'], first['T_g_err'], 4) if first else '-':>16}"
        for f in fast_laws:
            x = d.get(f)
            if x and math.isfinite(x["tau_fast"]):
                reach = res["fast"][f].t_range[0] / x["T_g"]  # how far beyond, in 1/T
                tau_s = f"{x['tau_fast']:.3g}" + (f" (extrap. x{reach:.2g})"
                                                  if x["fast_extrapolated"] else "")
            else:
                tau_s = "-"
            line += f" | {tau_s:>28} | {_band(x['speedup'], x['ln_err']) if x else '-':>28}"
        _log(line)
    _log("# T_g error: fit band and tau_0 error; speed-up band: tau_0, the no-swap fit (through "
         "T_g) and the swap fit, first order. '(extrap. xk)': T_g below the swap data, "
         "1/T_g = k / T_min(swap).")


COLORS = {"arrhenius": "tab:green", "vft": "tab:orange", "parabolic": "tab:purple",
          "power_law": "tab:brown"}
SWAP_COLORS = {"parabolic": "tab:blue", "arrhenius": "tab:cyan"}


def _draw(ax, args, swap: list, noswap: list, res: dict, t_hi: float, t_lo: float,
          y_cap: float) -> None:
    """One Angell panel over t_lo <= T <= t_hi; the y axis ends at y_cap (log10 sweeps)."""
    ln10 = math.log(10.0)
    inv = np.linspace(1.0 / t_hi, 1.0 / t_lo, 400)
    T = 1.0 / inv
    for group, fits, style in (("no swap", res["slow"], "-"), ("swap", res["fast"], "--")):
        for law, fit in fits.items():
            if fit is None:
                continue
            y = fit.ln_tau(T) / ln10
            e = fit.ln_tau_error(T) / ln10
            if law == "parabolic":
                y = np.where(T <= fit.params["T_o"], y, np.nan)
            # Solid (no swap) or dashed (swap) where fitted, dotted where extrapolated.
            inside = (T >= fit.t_range[0]) & (T <= fit.t_range[1])
            color = COLORS[law] if group == "no swap" else SWAP_COLORS[law]
            ax.plot(inv[inside], y[inside], style, color=color, lw=1.4,
                    label=f"{group}: {law.replace('_', ' ')} fit")
            ax.plot(inv, y, ":", color=color, lw=1.0)
            ax.fill_between(inv, y - e, y + e, color=color, alpha=0.12, lw=0)
    for rows, color, marker, label in ((swap, "tab:blue", "o", "swap (p_swap = 0.2)"),
                                       (noswap, "tab:red", "s", "no swap (displacements)")):
        ok = [r for r in rows if math.isfinite(r["tau"])]
        x = np.array([1.0 / r["T"] for r in ok])
        tau = np.array([r["tau"] for r in ok])
        err = np.array([r["tau_err"] if math.isfinite(r["tau_err"]) else 0.0 for r in ok])
        lo = np.log10(tau) - np.log10(np.maximum(tau - err, tau * 1e-3))
        hi = np.log10(tau + err) - np.log10(tau)
        ax.errorbar(x, np.log10(tau), yerr=[lo, hi], fmt=marker, color=color, ms=5,
                    capsize=3, label=label, zorder=5)
        bounds = [r for r in rows if not math.isfinite(r["tau"]) and math.isfinite(r["bound"])]
        if bounds:
            ax.plot([1.0 / r["T"] for r in bounds], [math.log10(r["bound"]) for r in bounds],
                    "^", mfc="none", color=color, ms=7, label=f"{label}: lower bound")
    pl = res["slow"]["power_law"]
    if pl is not None and t_lo <= pl.params["T_c"] <= t_hi:
        tc, dtc = pl.params["T_c"], pl.errors["T_c"]
        ax.axvline(1.0 / tc, color="grey", lw=1.0)
        if math.isfinite(dtc) and dtc < tc:
            ax.axvspan(1.0 / (tc + dtc), 1.0 / (tc - dtc), color="grey", alpha=0.15, lw=0)
        ax.text(1.0 / tc, 0.02, f" $T_{{MCT}}$ = {tc:.3f}", transform=ax.get_xaxis_transform(),
                color="dimgrey", fontsize=8)
    if res["tau0"] is not None:
        y_g = math.log10(res["tau0"][0] * args.tg_ratio)
        if y_g < y_cap:
            ax.axhline(y_g, color="k", lw=0.8, ls="-.")
            ax.text(inv[0], y_g, r" $\tau_\alpha = 10^{12}\,\tau_0$ (defines $T_g$)",
                    va="bottom", fontsize=8)
    finite = [r["tau"] for r in swap + noswap if math.isfinite(r["tau"])]
    ax.set_ylim(math.log10(min(finite)) - 0.3, y_cap)
    ax.set_xlim(inv[0] - 0.03, inv[-1] + 0.03)
    ax.set_xlabel(r"$1/T$  ($k_B/\epsilon$)")
    ax.set_ylabel(r"$\log_{10}\,(\tau_\alpha$ / MC sweeps$)$")
    top = ax.secondary_xaxis("top", functions=(lambda x: 1.0 / np.maximum(x, 1e-9),
                                               lambda t: 1.0 / np.maximum(t, 1e-9)))
    top.set_xlabel(r"$T$  ($\epsilon/k_B$)")


def plot_angell(args, swap: list, noswap: list, res: dict, path: str) -> None:
    """Angell-style plot, log10 tau_alpha against 1/T: both dynamics, fits with 68 % bands.

    Left: the measured range. Right: the extrapolation down to the lowest T_g, where the
    no-swap laws reach 10^12 tau_0.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_hi = max(r["T"] for r in swap + noswap)
    t_data = min(r["T"] for r in swap + noswap)
    tgs = [d[k]["T_g"] for d in res["at_tg"].values() for k in d
           if math.isfinite(d[k]["T_g"])]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    finite = [r["tau"] for r in swap + noswap if math.isfinite(r["tau"])]
    y_data = math.log10(max(finite)) + 1.0
    _draw(axes[0], args, swap, noswap, res, t_hi, t_data * 0.98, y_data)
    axes[0].set_title("measured range")
    axes[0].legend(fontsize=7, loc="upper left")
    y_g = math.log10(res["tau0"][0] * args.tg_ratio) if res["tau0"] is not None else y_data
    t_lo = max(min([t_data, *tgs]) * 0.97, 0.6 * t_data)
    _draw(axes[1], args, swap, noswap, res, t_hi, t_lo, max(y_data, y_g + 1.0))
    axes[1].set_title(r"extrapolation to $T_g$ (dotted: outside the fitted range)")
    fig.suptitle(f"KA2 $x_C$ = 0.10, N = {args.n}, $\\rho$ = 1.2: "
                 r"$\tau_\alpha$ with and without swaps (bands: 68 %, fit only)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _jsonable(x):
    """Results with fits as dicts and non-finite floats as None (strict JSON)."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "as_dict"):
        return _jsonable(x.as_dict())
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def analyze(args) -> int:
    """Fit, print the report, and write the figure and JSON when asked."""
    swap, noswap = _load(args)
    if not swap:
        _log(f"# no finished swap stage in {args.out}")
        return 1
    if args.analyze_only:
        for source in [args.out, *args.more]:
            if args.more:
                _log(f"# stages in {source}:")
            by_t = {r["T"]: r for r in noswap if r["source"] == source}
            for r in swap:
                if r["source"] == source:
                    _log(swap_line(r, args.min_equil_taus))
                    if r["T"] in by_t:
                        _log(noswap_line(by_t.pop(r["T"])))
            for r in by_t.values():
                _log(noswap_line(r))
    res = fit_all(args, swap, noswap)
    report(args, swap, noswap, res)
    missing = [T for T in args.temperatures
               if not os.path.exists(os.path.join(args.out, _tag("swap", T) + ".json"))]
    if missing:
        _log(f"# swap temperatures not reached: {missing}")
    if args.figure:
        plot_angell(args, swap, noswap, res, args.figure)
        _log(f"# figure: {args.figure}")
    if args.json:
        light = [{k: v for k, v in r.items() if k not in ("fs_t", "fs")} for r in swap + noswap]
        _write_json(args.json, _jsonable({
            "args": vars(args), "swap": [r for r in light if r["mode"] == "swap"],
            "noswap": [r for r in light if r["mode"] == "noswap"],
            "fits": {"noswap": res["slow"], "swap": res["fast"]},
            "table": res["rows"], "tau0": res["tau0"], "speedup_at_tg": res["at_tg"],
            "temperatures_not_reached": missing}))
        _log(f"# json: {args.json}")
    return 0


def main(argv=None) -> int:
    """Measure (resuming), then fit and report; returns the exit status."""
    args = parse_args(argv)
    _log("# command: " + " ".join(shlex.quote(a) for a in [
        "python", os.path.relpath(sys.argv[0]) if argv is None else "scripts/speedup_curve.py",
        *(sys.argv[1:] if argv is None else argv)]))
    _log(f"# preset {PRESET}, N = {args.n}, swap ladder {list(args.temperatures)}, "
         f"no-swap down to {args.noswap_min:g}, equilibration {args.equil_factor:g} x "
         f"expected tau, production to {args.window:g} tau, seed {args.seed}")
    if not args.analyze_only:
        t0 = time.perf_counter()
        measure(args)
        _log(f"# sampling wall time of this invocation {time.perf_counter() - t0:.0f} s")
    if args.measure_only:
        return 0
    return analyze(args)


if __name__ == "__main__":
    sys.exit(main())
