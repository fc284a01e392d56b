"""Swap efficiency of KA2: tau_alpha in sweeps and CPU seconds against the swap settings.

For KA2 (Kob-Andersen A80B20 doped with a species C midway between A and B, rho = 1.2,
N = 500 by default) this script measures, at T = 0.45 and 0.40,

* tau_alpha in MC sweeps: F_s(q, t) of the particles that are A at each time origin, q =
  ``default_wavenumber(rho)`` (7.25 at rho = 1.2), where F_s = 1/e, with its jackknife error
  (:class:`swapmc.analysis.FsTracker`);
* tau_alpha in CPU seconds: tau_alpha in sweeps times the process CPU time per sweep of the
  same production run (only the sampler's sweeps are timed, not the F_s bookkeeping);
* identity changes per particle per tau_alpha: ``2 * accepted swaps / (N * sweeps) *
  tau_alpha`` (each accepted swap changes the species of two particles),

one factor at a time around the ``ka2-x10`` preset (x_C = 0.10, C replaces A, p_swap = 0.2,
classes A-C and B-C with equal weights): p_swap, class weights, which host C replaces, x_C.

Protocol. A reference chain of the default composition is melted at T = 2 and cooled in
steps (``LADDER``), equilibrated with swaps at each step for at least ``--eq-taus``
tau_alpha, where tau_alpha is estimated on the fly from F_s during equilibration (and at
least half that many of the expected value). Every point then

1. starts from an equilibrium configuration at its own T: for its own composition, the end
   of the previous production at that state (the Boltzmann distribution does not depend on
   the move set, so a point that only changes p_swap or the class weights needs no new
   equilibration); for a new composition, the reference chain's configuration at that T
   with particles relabelled along the size order A - C - B to the new counts (B -> C ->
   A, so every relabelling changes a diameter by half the A-B difference), followed by the
   same adaptive equilibration with the default swap settings;
2. tunes its displacement step for ``TUNE_SWEEPS`` sweeps with its own move settings (step
   sizes are frozen afterwards);
3. produces until the production is at least ``--prod-taus`` times its current tau_alpha.

The table reports eq/tau (sweeps this chain spent at this state before the production,
over tau_alpha) and prod/tau, so that both requirements can be checked per point, and the
energy of the first and second half of the production as a stationarity check, plus the
crystalline fraction (q6 bond order) of the final configuration.

Ratios to the default point carry errors propagated from both jackknife errors (and, for
CPU time, from the chunk-to-chunk scatter of the CPU time per sweep). Acceptance counts are
taken as exact: their relative fluctuation is far below that of tau_alpha.

Results of each point and each equilibrated state are written to ``--work`` as they are
produced; rerunning the same command skips what exists, so a killed run loses at most the
point in progress. ``--quick`` runs a small grid at T = 1.0 with N = 200 (under a minute).

Usage::

    python scripts/swap_efficiency.py --quick
    python scripts/swap_efficiency.py --work swap_eff_work --plot docs/figures/swap_efficiency.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

# Runnable from a checkout without installing: the repository root and scripts/ itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import Box, System  # noqa: E402
from swapmc.analysis import FsTracker, crystalline_fraction, default_wavenumber  # noqa: E402
from swapmc.build import composition_counts, random_configuration  # noqa: E402
from swapmc.mc import MonteCarlo, MoveSettings  # noqa: E402
from swapmc.models import load_preset  # noqa: E402

PRESET = "ka2-x10"
CLASSES = [["A", "C"], ["B", "C"]]
#: Swap tau_alpha of ka2-x10 (N = 500) from the swap showcase (sweeps), used only to size
#: snapshot intervals, chunks and the minimum equilibration; the measured values decide
#: when a phase is long enough.
TAU_GUESS = {1.0: 330.0, 0.8: 570.0, 0.6: 1240.0, 0.5: 2750.0, 0.45: 4190.0, 0.40: 8000.0}
LADDER = (0.6, 0.5, 0.45, 0.40)
QUICK_LADDER = (1.0,)
MELT_T, MELT_SWEEPS = 2.0, 200
TUNE_SWEEPS = 300
SNAPSHOTS_PER_TAU = 100


@dataclass(frozen=True)
class Point:
    """One measurement: a state point and swap settings.

    Attributes
    ----------
    name : str
        Label (also the result file name).
    temperature : float
        k_B T / epsilon_AA.
    x_c : float
        Mole fraction of C.
    replaces : str
        Host C replaces: "A", "B" or "both" (in proportion).
    p_swap : float
        Probability that an attempt is a swap.
    weights : tuple of float
        Class weights for (A-C, B-C).
    """

    name: str
    temperature: float
    x_c: float = 0.10
    replaces: str = "A"
    p_swap: float = 0.2
    weights: tuple = (1.0, 1.0)

    @property
    def composition_key(self) -> str:
        return f"x{self.x_c:.2f}-{self.replaces}"


REFERENCE = Point("ref", 0.45)


def full_grid() -> list:
    """Points in the order they are run: the cheap ones that reuse the default state and the
    preset-relevant factors (p_swap, class weights, host replaced) first, so that a run cut
    by the time limit still answers the questions that set defaults."""
    g = [
        Point("default T0.45", 0.45),
        Point("p_swap 0.05 T0.45", 0.45, p_swap=0.05),
        Point("p_swap 0.5 T0.45", 0.45, p_swap=0.5),
        Point("only A-C T0.45", 0.45, weights=(1.0, 0.0)),
        Point("only B-C T0.45", 0.45, weights=(0.0, 1.0)),
        Point("C from both T0.45", 0.45, replaces="both"),
        # The default again, last on its chain: the points above ran one after the other
        # on one chain, so a drift of tau_alpha with the chain's age (incomplete
        # equilibration) would masquerade as an effect of the settings; this shows it.
        Point("default, repeated T0.45", 0.45),
        Point("default T0.40", 0.40),
        Point("C from B T0.45", 0.45, replaces="B"),
        Point("p_swap 0.5 T0.40", 0.40, p_swap=0.5),
        Point("x_C 0.20 T0.45", 0.45, x_c=0.20),
        Point("x_C 0.05 T0.45", 0.45, x_c=0.05),
        Point("x_C 0.01 T0.45", 0.45, x_c=0.01),
        Point("p_swap 0.1 T0.45", 0.45, p_swap=0.1),
    ]
    return g


def quick_grid() -> list:
    """A few points at T = 1.0 that exercise every code path (shared state, new
    composition, class weights) in well under a minute."""
    return [
        Point("default T1.0", 1.0),
        Point("only A-C T1.0", 1.0, weights=(1.0, 0.0)),
        Point("C from both T1.0", 1.0, replaces="both"),
    ]


def tau_guess(temperature: float) -> float:
    """Expected swap tau_alpha (sweeps), interpolated linearly in (1/T, ln tau)."""
    ts = np.array(sorted(TAU_GUESS))
    taus = np.log([TAU_GUESS[t] for t in ts])
    return float(np.exp(np.interp(1.0 / temperature, 1.0 / ts[::-1], taus[::-1])))


def preset_for(point: Point):
    return load_preset(PRESET, {"dopant": {"fraction": point.x_c, "replaces": point.replaces}})


def moves_for(point: Point, displacement: float = 0.1) -> MoveSettings:
    return MoveSettings(p_swap=point.p_swap, swap_classes=CLASSES,
                        class_weights=list(point.weights), displacement=displacement)


def point_seed(seed: int, label: str) -> np.random.SeedSequence:
    """A stream per label, independent of the order in which points run."""
    return np.random.SeedSequence([seed, zlib.crc32(label.encode())])


# ----------------------------------------------------------------------------- counting
def identity_changes(counts_before, counts_after) -> int:
    """Particles whose species changed between two readings of ``MonteCarlo.counts``.

    Every accepted swap exchanges the species of two particles of different species, so
    it changes exactly two identities.

    Parameters
    ----------
    counts_before, counts_after : array_like, shape (3, 2)
        ``MonteCarlo.counts`` (attempts, acceptances per move type; row 1 is swaps).

    Returns
    -------
    int
    """
    return 2 * int(np.asarray(counts_after)[1, 1] - np.asarray(counts_before)[1, 1])


def changes_per_particle_per_tau(changes, n, sweeps, tau, tau_err=math.nan):
    """Identity changes per particle per tau_alpha, with the error propagated from tau.

    Parameters
    ----------
    changes : int
        Identity changes counted over ``sweeps`` sweeps.
    n : int
        Particles.
    sweeps : int
        Sweeps over which they were counted.
    tau, tau_err : float
        tau_alpha and its error (sweeps).

    Returns
    -------
    value, error : float
    """
    rate = changes / (n * sweeps)
    return rate * tau, rate * tau_err


def ratio(a, da, b, db):
    """a / b with independent errors propagated to first order."""
    r = a / b
    return r, abs(r) * math.hypot(da / a, db / b)


def transmute(system: System, counts_target, rng) -> System:
    """Relabel particles to new species counts along the size order A - C - B.

    A B that must go becomes C, and a C that must go becomes A (or the reverse), so every
    relabelling changes a diameter by half the A-B difference instead of the whole of it.

    Parameters
    ----------
    system : System
        Species names must be ("A", "B", "C").
    counts_target : array_like of int, shape (3,)
        Counts of A, B, C wanted (same total).
    rng : numpy.random.Generator

    Returns
    -------
    System
        A copy with new species.
    """
    names = tuple(system.species_names)
    ia, ib, ic = names.index("A"), names.index("B"), names.index("C")
    sp = system.species.copy()
    target = np.asarray(counts_target)

    fresh = np.zeros(sp.size, bool)

    def move(src, dst, k):
        # Never relabel a particle twice (B -> C -> A would be a whole A-B step).
        idx = rng.choice(np.flatnonzero((sp == src) & ~fresh), size=k, replace=False)
        sp[idx] = dst
        fresh[idx] = True

    flow_bc = int(np.count_nonzero(sp == ib) - target[ib])  # > 0: B -> C
    flow_ca = int(target[ia] - np.count_nonzero(sp == ia))  # > 0: C -> A
    # Flows into C first, so C never runs out in between.
    steps = [(ib, ic, flow_bc), (ia, ic, -flow_ca), (ic, ib, -flow_bc), (ic, ia, flow_ca)]
    for src, dst, k in steps:
        if k > 0:
            move(src, dst, k)
    out = System(system.positions.copy(), sp, names, Box(np.array(system.box.lengths)),
                 images=system.images.copy())
    if not np.array_equal(out.counts, target):
        raise RuntimeError(f"relabelling reached counts {out.counts}, wanted {target}")
    return out


# ------------------------------------------------------------------------------ phases
@dataclass
class Phase:
    """What a run phase measured."""

    sweeps: int = 0
    tau: float = math.nan
    tau_err: float = math.nan
    groups: int = 0
    cpu: float = 0.0
    cpu_chunks: list = field(default_factory=list)  # CPU s per sweep of each chunk
    wall: float = 0.0
    energies: list = field(default_factory=list)  # U/N at each snapshot
    counts: list = field(default_factory=list)  # mc.counts increment
    class_counts: list = field(default_factory=list)


def run_phase(mc, tau0, min_taus, max_taus, tune, deadline=math.inf) -> Phase:
    """Run sweeps with F_s tracking until the phase spans ``min_taus`` tau_alpha.

    Parameters
    ----------
    mc : MonteCarlo
    tau0 : float
        Expected tau_alpha (sweeps): sets the snapshot interval (tau0 / 100), the chunk
        length (~tau0), the minimum length (``min_taus * tau0 / 2``) and the cap
        (``max_taus * tau0``).
    min_taus : float
        The phase ends once its length is at least ``min_taus`` times the tau_alpha measured
        so far in it.
    max_taus : float
        Cap in units of tau0 (then tau_alpha may be a bound or nan).
    tune : bool
        Equilibration (step size tuned) or production (frozen).
    deadline : float
        ``time.monotonic()`` after which the phase ends at the next chunk.

    Returns
    -------
    Phase
    """
    every = max(1, int(round(tau0 / SNAPSHOTS_PER_TAU)))
    per_chunk = max(1, int(round(tau0 / every)))
    a = mc.model.species.index("A")
    tracker = FsTracker(default_wavenumber(mc.n / mc.volume), every, mc.n_species, species=a)
    ph = Phase()
    c0, cc0 = mc.counts.copy(), mc.class_counts.copy()
    t_wall = time.monotonic()

    def snapshot():
        # Positions and species from one snapshot in the user's particle order.
        snap = mc.system()
        tracker.update(snap.unwrapped_positions(), snap.species, sweep=ph.sweeps)
        ph.energies.append(mc.energy / mc.n)

    snapshot()
    while True:
        cpu_chunk = 0.0
        for _ in range(per_chunk):
            t = time.process_time()
            if tune:
                mc.equilibrate(every)
            else:
                mc.sweep(every)
            cpu_chunk += time.process_time() - t
            ph.sweeps += every
            snapshot()
        ph.cpu += cpu_chunk
        ph.cpu_chunks.append(cpu_chunk / (per_chunk * every))
        tau, err, groups = tracker.tau_alpha()
        ph.tau, ph.tau_err, ph.groups = tau, err, groups
        long_enough = (math.isfinite(tau) and ph.sweeps >= min_taus * tau
                       and ph.sweeps >= 0.5 * min_taus * tau0)
        if long_enough or ph.sweeps >= max_taus * tau0 or time.monotonic() > deadline:
            break
    ph.wall = time.monotonic() - t_wall
    ph.counts = (mc.counts - c0).tolist()
    ph.class_counts = (mc.class_counts - cc0).tolist()
    return ph


# ------------------------------------------------------------------------------ states
class Store:
    """Equilibrated states and point results on disk, so that a rerun resumes."""

    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "states"), exist_ok=True)
        os.makedirs(os.path.join(root, "points"), exist_ok=True)

    def _state_path(self, key, temperature):
        return os.path.join(self.root, "states", f"{key}_T{temperature:.3f}.npz")

    def _point_path(self, name):
        return os.path.join(self.root, "points", name.replace(" ", "_") + ".json")

    def load_state(self, key, temperature):
        path = self._state_path(key, temperature)
        if not os.path.exists(path):
            return None
        d = np.load(path, allow_pickle=False)
        system = System(d["positions"], d["species"], tuple(str(s) for s in d["names"]),
                        Box(d["lengths"]), images=d["images"])
        return system, json.loads(str(d["meta"]))

    def save_state(self, key, temperature, system: System, meta: dict):
        path = self._state_path(key, temperature)
        tmp = path + ".tmp.npz"
        np.savez(tmp, positions=system.positions, species=system.species,
                 names=np.array(system.species_names), lengths=np.array(system.box.lengths),
                 images=system.images, meta=json.dumps(meta))
        os.replace(tmp, path)

    def load_point(self, name):
        path = self._point_path(name)
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    def save_point(self, name, result: dict):
        path = self._point_path(name)
        with open(path + ".tmp", "w") as fh:
            json.dump(result, fh, indent=1)
        os.replace(path + ".tmp", path)


class Study:
    """Runs the grid: builds equilibrium states on demand, then measures each point."""

    def __init__(self, store: Store, n, seed, ladder, eq_taus, prod_taus, max_taus, log,
                 deadline=math.inf):
        self.store, self.n, self.seed, self.ladder = store, n, seed, ladder
        self.eq_taus, self.prod_taus, self.max_taus = eq_taus, prod_taus, max_taus
        self.log, self.deadline = log, deadline

    def _equilibrate(self, system, point, label, sweeps_before=0):
        """Adaptive swap equilibration of ``system`` at the point's T (default moves)."""
        preset = preset_for(point)
        mc = MonteCarlo(system, preset.model, point.temperature,
                        moves=moves_for(REFERENCE, 0.1), seed=point_seed(self.seed, label))
        tau0 = tau_guess(point.temperature)
        ph = run_phase(mc, tau0, self.eq_taus, self.max_taus, tune=True)
        self.log(f"  equilibrated {label}: {ph.sweeps} sweeps, tau_alpha during "
                 f"equilibration {ph.tau:.0f} sweeps ({ph.sweeps / ph.tau:.1f} tau), "
                 f"U/N {np.mean(ph.energies[: len(ph.energies) // 2]):.4f} -> "
                 f"{np.mean(ph.energies[len(ph.energies) // 2:]):.4f}, "
                 f"{ph.cpu:.0f} CPU s")
        meta = {"sweeps_at_T": sweeps_before + ph.sweeps, "eq_sweeps": ph.sweeps,
                "eq_tau": ph.tau, "delta": mc.delta}
        return mc.system(), meta

    def state(self, point: Point):
        """Equilibrium configuration for the point's composition and T (built on demand)."""
        key, temperature = point.composition_key, point.temperature
        found = self.store.load_state(key, temperature)
        if found is not None:
            return found
        if key == REFERENCE.composition_key:
            higher = [t for t in self.ladder if t > temperature + 1e-9]
            if higher:
                start, _ = self.state(Point("ref", min(higher)))
            else:
                preset = preset_for(REFERENCE)
                counts = composition_counts(preset.composition, self.n, preset.model.species)
                rs = point_seed(self.seed, "melt")
                system = random_configuration(counts, preset.model.species, preset.density,
                                              seed=int(rs.generate_state(1)[0]))
                mc = MonteCarlo(system, preset.model, MELT_T, moves=moves_for(REFERENCE),
                                seed=rs.spawn(1)[0])
                mc.equilibrate(MELT_SWEEPS)
                start = mc.system()
                self.log(f"  melted at T = {MELT_T} for {MELT_SWEEPS} sweeps")
            system, meta = self._equilibrate(start, point, f"ref T{temperature:g}")
        else:
            base, _ = self.state(Point("ref", temperature))
            preset = preset_for(point)
            target = composition_counts(preset.composition, self.n, preset.model.species)
            rng = np.random.default_rng(point_seed(self.seed, "relabel " + key))
            start = transmute(base, target, rng)
            self.log(f"  relabelled the reference state at T = {temperature:g} to counts "
                     f"A, B, C = {tuple(int(c) for c in target)}")
            system, meta = self._equilibrate(start, point, f"{key} T{temperature:g}")
        self.store.save_state(key, temperature, system, meta)
        return system, meta

    def measure(self, point: Point) -> dict:
        """Production run of one point from its equilibrium state."""
        system, meta = self.state(point)
        preset = preset_for(point)
        mc = MonteCarlo(system, preset.model, point.temperature,
                        moves=moves_for(point, meta["delta"]),
                        seed=point_seed(self.seed, point.name))
        mc.equilibrate(TUNE_SWEEPS)
        # The expected tau: what this composition gave at this T before, else the guess.
        tau0 = meta.get("tau_last") or meta.get("eq_tau") or tau_guess(point.temperature)
        if not math.isfinite(tau0):
            tau0 = tau_guess(point.temperature)
        ph = run_phase(mc, tau0, self.prod_taus, self.max_taus, tune=False,
                       deadline=self.deadline)
        final = mc.system()
        cryst = crystalline_fraction(final.positions, final.box)
        before = meta["sweeps_at_T"] + TUNE_SWEEPS
        self.store.save_state(point.composition_key, point.temperature, final, {
            "sweeps_at_T": before + ph.sweeps, "eq_sweeps": meta["eq_sweeps"],
            "eq_tau": meta["eq_tau"], "delta": meta["delta"], "tau_last": ph.tau})
        e = np.asarray(ph.energies)
        half = e.size // 2
        chunks = np.asarray(ph.cpu_chunks)
        cpu_per_sweep = ph.cpu / ph.sweeps
        cpu_err = (float(np.std(chunks, ddof=1) / math.sqrt(chunks.size))
                   if chunks.size > 1 else math.nan)
        changes = 2 * ph.counts[1][1]
        ipt, ipt_err = changes_per_particle_per_tau(changes, mc.n, ph.sweeps, ph.tau,
                                                    ph.tau_err)
        tau_cpu = ph.tau * cpu_per_sweep
        tau_cpu_err = tau_cpu * math.hypot(ph.tau_err / ph.tau, cpu_err / cpu_per_sweep)
        counts = mc.system().counts
        return {
            "point": asdict(point),
            "n": mc.n,
            "counts": [int(c) for c in counts],
            "q": default_wavenumber(mc.n / mc.volume),
            "tau": ph.tau, "tau_err": ph.tau_err, "groups": ph.groups,
            "sweeps_before": before, "prod_sweeps": ph.sweeps,
            "eq_over_tau": before / ph.tau, "prod_over_tau": ph.sweeps / ph.tau,
            "cpu_s": ph.cpu, "wall_s": ph.wall,
            "cpu_per_sweep": cpu_per_sweep, "cpu_per_sweep_err": cpu_err,
            "tau_cpu": tau_cpu, "tau_cpu_err": tau_cpu_err,
            "swap_attempts": ph.counts[1][0], "swap_accepted": ph.counts[1][1],
            "swap_acceptance": ph.counts[1][1] / max(1, ph.counts[1][0]),
            "class_counts": ph.class_counts,
            "displacement_acceptance": ph.counts[0][1] / max(1, ph.counts[0][0]),
            "identity_changes": changes,
            "changes_per_particle_per_sweep": changes / (mc.n * ph.sweeps),
            "changes_per_particle_per_tau": ipt, "changes_per_particle_per_tau_err": ipt_err,
            "energy_halves": [float(e[:half].mean()), float(e[half:].mean())],
            "crystalline_fraction": cryst,
            "delta": mc.delta,
        }


# ------------------------------------------------------------------------------ output
def fmt(v, e, digits=2):
    """'v ± e' with e to two significant figures and v to the same decimal place."""
    if not math.isfinite(v):
        return "nan"
    if not math.isfinite(e) or e <= 0:
        return f"{v:.3g} (no error)"
    place = digits - 1 - int(math.floor(math.log10(e)))
    place = max(place, 0)
    return f"{v:.{place}f} ± {e:.{place}f}"


def table(results: list, reference_name: dict) -> list:
    """Markdown table lines; ratios are to the default point at the same T."""
    lines = [
        "| point | T | x_C | C replaces | p_swap | w(AC):w(BC) | τ_α [sweeps] (G) | "
        "τ_α / default | CPU ms/sweep | τ_α [CPU s] | τ_α CPU / default | swap acc. | "
        "identity changes /particle/τ_α | eq/τ_α | prod/τ_α | U/N 1st, 2nd half | cryst. |",
        "|" + "---|" * 17,
    ]
    by_name = {r["point"]["name"]: r for r in results}
    for r in results:
        p = r["point"]
        ref = by_name.get(reference_name.get(p["temperature"], ""))
        if ref is not None and ref is not r:
            rs = fmt(*ratio(r["tau"], r["tau_err"], ref["tau"], ref["tau_err"]))
            rc = fmt(*ratio(r["tau_cpu"], r["tau_cpu_err"], ref["tau_cpu"], ref["tau_cpu_err"]))
        else:
            rs = rc = "1"
        w = p["weights"]
        lines.append(
            f"| {p['name']} | {p['temperature']:g} | {p['x_c']:.2f} | {p['replaces']} | "
            f"{p['p_swap']:g} | {w[0]:g}:{w[1]:g} | {fmt(r['tau'], r['tau_err'])} "
            f"({r['groups']}) | {rs} | "
            f"{fmt(1e3 * r['cpu_per_sweep'], 1e3 * r['cpu_per_sweep_err'])} | "
            f"{fmt(r['tau_cpu'], r['tau_cpu_err'])} | {rc} | {r['swap_acceptance']:.4f} | "
            f"{fmt(r['changes_per_particle_per_tau'], r['changes_per_particle_per_tau_err'])} "
            f"| {r['eq_over_tau']:.1f} | {r['prod_over_tau']:.1f} | "
            f"{r['energy_halves'][0]:.4f}, {r['energy_halves'][1]:.4f} | "
            f"{r['crystalline_fraction']:.3f} |"
        )
    return lines


def compact_table(results: list, reference_name: dict) -> list:
    """The README version of :func:`table`: the efficiency columns only."""
    lines = [
        "| T | setting (default: x_C = 0.10 from A, p_swap = 0.2, A-C:B-C = 1:1) | "
        "τ_α [sweeps] | τ_α / default | τ_α [CPU s] | τ_α CPU / default | "
        "identity changes per particle per τ_α |",
        "|---|---|---|---|---|---|---|",
    ]
    by_name = {r["point"]["name"]: r for r in results}
    for r in results:
        p = r["point"]
        ref = by_name.get(reference_name.get(p["temperature"], ""))
        if ref is not None and ref is not r:
            rs = fmt(*ratio(r["tau"], r["tau_err"], ref["tau"], ref["tau_err"]))
            rc = fmt(*ratio(r["tau_cpu"], r["tau_cpu_err"], ref["tau_cpu"], ref["tau_cpu_err"]))
        else:
            rs = rc = "1"
        setting = p["name"].rsplit(" T", 1)[0]
        lines.append(
            f"| {p['temperature']:g} | {setting} | {fmt(r['tau'], r['tau_err'])} | {rs} | "
            f"{fmt(r['tau_cpu'], r['tau_cpu_err'])} | {rc} | "
            f"{fmt(r['changes_per_particle_per_tau'], r['changes_per_particle_per_tau_err'])} |"
        )
    return lines


def plot(results: list, path: str) -> None:
    """Four panels: tau_alpha in sweeps and CPU s against p_swap, against x_C, and the
    identity changes per particle per tau_alpha of every point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5))
    for temperature, marker in ((0.45, "o"), (0.40, "s"), (1.0, "^")):
        sel = [r for r in results if r["point"]["temperature"] == temperature]
        ps = sorted((r for r in sel if r["point"]["x_c"] == 0.10 and r["point"]["replaces"]
                     == "A" and tuple(r["point"]["weights"]) == (1.0, 1.0)),
                    key=lambda r: r["point"]["p_swap"])
        if ps:
            x = [r["point"]["p_swap"] for r in ps]
            # Points only: repeated settings (the default twice) are separate measurements.
            ax[0, 0].errorbar(x, [r["tau"] for r in ps], [r["tau_err"] for r in ps],
                              marker=marker, ls="none", capsize=3, label=f"T = {temperature:g}")
            ax[0, 1].errorbar(x, [r["tau_cpu"] for r in ps], [r["tau_cpu_err"] for r in ps],
                              marker=marker, ls="none", capsize=3, label=f"T = {temperature:g}")
        xs = sorted((r for r in sel if r["point"]["replaces"] == "A" and r["point"]["p_swap"]
                     == 0.2 and tuple(r["point"]["weights"]) == (1.0, 1.0)),
                    key=lambda r: r["point"]["x_c"])
        if len({r["point"]["x_c"] for r in xs}) > 1:
            ax[1, 0].errorbar([r["point"]["x_c"] for r in xs], [r["tau"] for r in xs],
                              [r["tau_err"] for r in xs], marker=marker, ls="none",
                              capsize=3, label=f"T = {temperature:g}")
    names = [r["point"]["name"] for r in results]
    y = np.arange(len(results))
    ax[1, 1].barh(y, [r["changes_per_particle_per_tau"] for r in results],
                  xerr=[r["changes_per_particle_per_tau_err"] for r in results], capsize=2)
    ax[1, 1].set_yticks(y, names, fontsize=7)
    ax[1, 1].invert_yaxis()
    ax[0, 0].set(xlabel="p_swap (probability per attempt)", ylabel="τ_α [MC sweeps]",
                 title="τ_α vs p_swap (x_C = 0.10, C replaces A)")
    ax[0, 1].set(xlabel="p_swap (probability per attempt)", ylabel="τ_α [CPU s]",
                 title="τ_α in CPU time vs p_swap")
    ax[1, 0].set(xlabel="x_C (mole fraction)", ylabel="τ_α [MC sweeps]",
                 title="τ_α vs x_C (p_swap = 0.2, C replaces A)")
    ax[1, 1].set(xlabel="identity changes per particle per τ_α [dimensionless]",
                 title="identity changes per particle per τ_α")
    for a in ax.flat[:3]:
        if a.containers:
            a.legend(fontsize=8)
            a.set_ylim(bottom=0)
        else:
            a.text(0.5, 0.5, "not measured", ha="center", va="center", transform=a.transAxes)
    fig.suptitle(f"KA2 swap efficiency, N = {results[0]['n']}, ρ = 1.2, "
                 f"F_s of A at q = {results[0]['q']:g} σ_AA⁻¹")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small grid at T = 1.0, N = 200 (under a minute)")
    ap.add_argument("-N", "--n", type=int, default=None, help="particles (default 500)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--work", default=None,
                    help="directory for states and per-point results (default: a temporary "
                         "one with --quick, ./swap_efficiency_work otherwise)")
    ap.add_argument("--eq-taus", type=float, default=None,
                    help="minimum equilibration length in tau_alpha (default 10; 6 with "
                         "--quick)")
    ap.add_argument("--prod-taus", type=float, default=None,
                    help="minimum production length in tau_alpha (default 10; 6 with "
                         "--quick, the least that gives a jackknife error)")
    ap.add_argument("--max-taus", type=float, default=40.0,
                    help="cap of a phase in units of the expected tau_alpha (default 40)")
    ap.add_argument("--time-limit", type=float, default=math.inf,
                    help="seconds after which no new point is started")
    ap.add_argument("--hard-limit", type=float, default=math.inf,
                    help="seconds after which a production in progress ends at its next "
                         "chunk (its prod/tau column then shows how short it fell)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these point names")
    ap.add_argument("--plot", default=None, help="write the figure to this file")
    args = ap.parse_args(argv)

    n = args.n or (200 if args.quick else 500)
    taus = 6.0 if args.quick else 10.0
    eq_taus = taus if args.eq_taus is None else args.eq_taus
    prod_taus = taus if args.prod_taus is None else args.prod_taus
    grid = quick_grid() if args.quick else full_grid()
    ladder = QUICK_LADDER if args.quick else LADDER
    if args.only:
        grid = [p for p in grid if p.name in set(args.only)]
    tmp = None
    if args.work is None and args.quick:
        tmp = tempfile.TemporaryDirectory()
        work = tmp.name
    else:
        work = args.work or "swap_efficiency_work"

    def log(msg):
        print(msg, flush=True)

    log("command: python scripts/swap_efficiency.py "
        + shlex.join(sys.argv[1:] if argv is None else argv))
    log(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    log(machine_line())
    log(f"model: {PRESET} variants, N = {n}, rho = 1.2, q = default_wavenumber(rho); "
        f"F_s of the particles that are A at each origin; time in MC sweeps of N attempts; "
        f"CPU time = process time of the sweeps only")
    t_start = time.monotonic()
    study = Study(Store(work), n, args.seed, ladder, eq_taus, prod_taus,
                  args.max_taus, log, deadline=t_start + args.hard_limit)
    results, missing = [], []
    for point in grid:
        cached = study.store.load_point(point.name)
        if cached is not None and cached["n"] == n:
            log(f"[{point.name}] read from {work}/points (measured earlier by this script)")
            results.append(cached)
            continue
        if time.monotonic() - t_start > args.time_limit:
            missing.append(point.name)
            continue
        log(f"[{point.name}]")
        r = study.measure(point)
        study.store.save_point(point.name, r)
        log(f"  tau_alpha = {fmt(r['tau'], r['tau_err'])} sweeps (G = {r['groups']}), "
            f"{r['prod_sweeps']} production sweeps = {r['prod_over_tau']:.1f} tau, "
            f"{r['cpu_s']:.0f} CPU s ({r['wall_s']:.0f} s wall), swap acceptance "
            f"{r['swap_acceptance']:.4f}, crystalline fraction {r['crystalline_fraction']:.3f}")
        results.append(r)

    defaults = {}
    for r in results:
        p = r["point"]
        if (p["x_c"], p["replaces"], p["p_swap"], tuple(p["weights"])) == (
                REFERENCE.x_c, REFERENCE.replaces, REFERENCE.p_swap, REFERENCE.weights):
            # Ratios are to the first default point at each T (a repeat is compared with it).
            defaults.setdefault(p["temperature"], p["name"])
    log("")
    log("Errors: tau_alpha ± jackknife standard error over G groups of time origins; ratios "
        "to the default point (x_C = 0.10, C replaces A, p_swap = 0.2, weights 1:1) at the "
        "same T with both errors propagated; CPU ms/sweep ± standard error over chunks of "
        "~tau_alpha.")
    for line in table(results, defaults):
        log(line)
    log("")
    for line in compact_table(results, defaults):
        log(line)
    total_cpu = sum(r["cpu_s"] for r in results)
    log(f"\nproduction CPU time of the points above: {total_cpu / 60:.1f} min; "
        f"this invocation: {time.process_time() / 60:.1f} CPU min")
    if missing:
        log("not run (time limit): " + ", ".join(missing))
    if args.plot and results:
        plot(results, args.plot)
        log(f"figure: {args.plot}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
