"""``swapmc shear``: athermal quasistatic or finite-rate shear of configurations, with stress
drops, non-affine measures (D²_min) and shear-band localisation.

For each input configuration the protocol of :mod:`swapmc.md.shear` runs on the native
engine (:class:`~swapmc.md.engine.NativeEngine`); the outputs go to the output directory
(one sub-directory per configuration when several are given):

``stress_strain.csv``
    AQS: one row per strain step (strain, conjugate stress and the six stress components,
    energy per particle, the minimiser's final max|F|, iterations, convergence). Rate: one
    row per block (mean strain, strain at the block end, mean stress and its standard
    deviation over the block's samples, components, energy per particle, temperature).
``drops.csv``
    AQS stress drops: step, strain, stress before and after, Delta sigma, Delta E (total),
    particles involved, largest non-affine displacement, onset strain and its bracket
    (bisected with ``--refine``).
``summary.json``
    Settings, units, the curve's scalars (peak stress and strain, largest drop, steady
    state at a finite rate) and the localisation of D²_min at the end and after the largest
    drop.
``*.xyz``
    Extended XYZ snapshots with per-atom columns ``d2min`` (D²_min from the reference
    state at strain 0, length^2; -1 where undefined), ``u_na`` (non-affine displacement
    vector from the reference, length) and ``u_na_norm``; ``drop_after.xyz`` also has
    ``d2min_drop`` and ``u_na_drop_norm`` across the largest drop. OVITO colours any of
    them with "Color coding".
``stress_strain.png``, ``d2min.png``, ``d2min_drop.png``
    Stress and energy against strain (drops marked); a slab of the final (or post-drop)
    configuration coloured by D²_min beside its profile along y.

A killed run is resumed by rerunning the same command (the strain step, configuration and
everything recorded so far are checkpointed atomically in ``checkpoint.npz``); a finished
run is extended by a larger ``--max-strain``. The exit code is 1 when an AQS minimisation
stopped at ``--max-iter`` before reaching ``--ftol`` (the run still completes; the rows
concerned have ``converged`` = 0).
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np

from .cli import (
    _add_model_args,
    _check_args,
    _load_inputs,
    _pyplot,
    _write_csv,
    _write_json,
)

CHECKPOINT = "checkpoint.npz"
# Axis labels of the unit strings (matplotlib mathtext).
_TEX = {"epsilon_AA": r"$\varepsilon_{AA}$", "sigma_AA": r"$\sigma_{AA}$",
        "epsilon_AA/sigma_AA^3": r"$\varepsilon_{AA}/\sigma_{AA}^3$", "Angstrom": "Å",
        "eV": "eV", "GPa": "GPa"}
_SQUARED = {"sigma_AA": r"$\sigma_{AA}^2$", "Angstrom": "Å$^2$"}


# ----------------------------------------------------------------------------- parser
def add_parser(subparsers) -> None:
    """Register ``shear`` on an argparse sub-parser collection."""
    from ..analysis.nonaffine import DEFAULT_D2MIN_CUTOFF
    from ..cli import HelpFormatter
    from .shear import (
        DEFAULT_BLOCK_STRAIN,
        DEFAULT_DISPLACEMENT_THRESHOLD,
        DEFAULT_DROP_THRESHOLD,
        DEFAULT_FTOL,
        DEFAULT_MAX_ITER,
        DEFAULT_MAX_STRAIN,
        DEFAULT_STEP,
    )

    p = subparsers.add_parser(
        "shear", formatter_class=HelpFormatter,
        help="AQS or finite-rate shear: stress-strain, drops, D2min, shear bands",
        description="Shear configuration(s) to --max-strain: athermal quasistatic (FIRE "
        "after each strain step) or by MD at a rate and temperature. Simple shear "
        "(xy tilt, Lees-Edwards) or pure shear at constant volume (x by 1+eps, y by "
        "1/(1+eps)). Writes stress-strain and drop tables, summary.json, extended XYZ "
        "snapshots with D2min and non-affine displacement columns, and figures. Stress in "
        "epsilon_AA/sigma_AA^3 (LJ) or GPa (metal), energy in epsilon_AA or eV, lengths in "
        "sigma_AA or Å, times in tau_LJ or ps. Rerun the same command to resume. Exit "
        "code 1 if an AQS minimisation did not reach --ftol within --max-iter.")
    _add_model_args(p)
    p.add_argument("--protocol", choices=("aqs", "rate"), default="aqs",
                   help="athermal quasistatic (aqs) or finite shear rate by MD (rate)")
    p.add_argument("--mode", choices=("shear", "pure"), default="shear",
                   help="simple shear in xy (stress sigma_xy) or pure shear at constant "
                   "volume (stress (sigma_xx - sigma_yy)/2)")
    p.add_argument("--max-strain", type=float, default=DEFAULT_MAX_STRAIN,
                   help="last strain (dimensionless)")
    p.add_argument("--snapshot-strains", type=float, nargs="+", default=None,
                   help="also write snapshots with D2min at these strains (default: none; "
                   "the reference, the two sides of the largest drop and the end are "
                   "always written)")
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="AQS steps (or rate blocks) between checkpoints")
    a = p.add_argument_group("AQS")
    a.add_argument("--step", type=float, default=DEFAULT_STEP,
                   help="strain increment per AQS step (dimensionless)")
    a.add_argument("--ftol", type=float, default=DEFAULT_FTOL,
                   help="FIRE tolerance on every particle's |F| after each step, "
                   "energy/length (epsilon_AA/sigma_AA or eV/Å)")
    a.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                   help="FIRE iterations per step at most")
    a.add_argument("--drop-threshold", type=float, default=DEFAULT_DROP_THRESHOLD,
                   help="smallest stress decrease between steps counted as a drop, "
                   "epsilon_AA/sigma_AA^3 or GPa")
    a.add_argument("--refine", type=int, default=0,
                   help="bisection steps locating the onset strain of each drop within its "
                   "step (one extra minimisation each; 0: none)")
    a.add_argument("--displacement-threshold", type=float, default=None,
                   help="non-affine displacement across a drop above which a particle is "
                   "involved, length (default: "
                   f"{DEFAULT_DISPLACEMENT_THRESHOLD['lj']:g} sigma_AA in LJ units, "
                   f"{DEFAULT_DISPLACEMENT_THRESHOLD['metal']:g} Å in metal units)")
    r = p.add_argument_group("finite rate")
    r.add_argument("--rate", type=float, default=None,
                   help="strain rate, 1/tau_LJ or 1/ps (required with --protocol rate; "
                   "pure shear: true strain rate)")
    r.add_argument("-T", "--temperature", type=float, default=None,
                   help="temperature, epsilon_AA/k_B or K (required with --protocol rate)")
    r.add_argument("--dt", type=float, default=None,
                   help="MD time step, tau_LJ or ps (default: 0.005 tau_LJ / 0.002 ps)")
    r.add_argument("--thermostat", choices=("bussi", "langevin"), default="bussi",
                   help="thermostat on the peculiar (non-affine) velocities")
    r.add_argument("--tau-t", type=float, default=None,
                   help="thermostat time constant, tau_LJ or ps (default: 100 dt)")
    r.add_argument("--equilibration-steps", type=int, default=1000,
                   help="MD steps at T before shearing (fresh velocities)")
    r.add_argument("--block-strain", type=float, default=DEFAULT_BLOCK_STRAIN,
                   help="strain per averaged output row (dimensionless)")
    r.add_argument("--sample-every", type=int, default=10,
                   help="MD steps between stress samples")
    r.add_argument("--steady-from", type=float, default=None,
                   help="strain from which the steady-state stress is averaged (default: "
                   "half of --max-strain)")
    n = p.add_argument_group("non-affine analysis")
    n.add_argument("--d2min-cutoff", type=float, default=None,
                   help="D2min neighbour cut-off in the reference state, length (default: "
                   f"{DEFAULT_D2MIN_CUTOFF['lj']:g} sigma_AA in LJ units, "
                   f"{DEFAULT_D2MIN_CUTOFF['metal']:g} Å in metal units: the first "
                   "coordination shell)")
    n.add_argument("--bins", type=int, default=None,
                   help="slabs of the localisation profile (default: round(N^(1/3)), about "
                   "one particle spacing each)")
    n.add_argument("--slab", type=float, default=None,
                   help="thickness in z of the D2min map's slice, length (default: 1.5 mean "
                   "particle spacings)")
    p.set_defaults(func=cmd_shear)


def _check(args) -> None:
    _check_args(args, positive=(("max_strain", "--max-strain"), ("step", "--step"),
                                ("ftol", "--ftol"), ("rate", "--rate"),
                                ("temperature", "-T/--temperature"), ("dt", "--dt"),
                                ("tau_t", "--tau-t"), ("block_strain", "--block-strain"),
                                ("displacement_threshold", "--displacement-threshold"),
                                ("d2min_cutoff", "--d2min-cutoff"), ("slab", "--slab")),
                non_negative=(("drop_threshold", "--drop-threshold"),
                              ("snapshot_strains", "--snapshot-strains"),
                              ("steady_from", "--steady-from")),
                positive_int=(("max_iter", "--max-iter"), ("sample_every", "--sample-every"),
                              ("checkpoint_every", "--checkpoint-every")),
                non_negative_int=(("seed", "--seed"), ("refine", "--refine"),
                                  ("equilibration_steps", "--equilibration-steps")))
    if args.bins is not None and args.bins < 2:
        raise ValueError(f"--bins must be an integer >= 2, got {args.bins}")
    if args.protocol == "rate":
        if args.rate is None:
            raise ValueError("--protocol rate needs --rate (1/tau_LJ or 1/ps)")
        if args.temperature is None:
            raise ValueError("--protocol rate needs -T/--temperature")
    else:
        for attr, opt in (("rate", "--rate"), ("temperature", "-T/--temperature")):
            if getattr(args, attr) is not None:
                raise ValueError(f"{opt} applies to --protocol rate only")
    for s in args.snapshot_strains or ():
        if s > args.max_strain:
            raise ValueError(f"--snapshot-strains {s:g} exceeds --max-strain "
                             f"{args.max_strain:g}")


# ----------------------------------------------------------------------------- command
def cmd_shear(args) -> int:
    """``swapmc shear``."""
    from ..io.lock import DirectoryLock
    from .shear import STRESS_NAME, STRESS_UNIT

    _check(args)
    pre, label, systems, ff = _load_inputs(args)
    units = pre.model.units
    out = args.output or "swapmc-shear"
    os.makedirs(out, exist_ok=True)
    names = [os.path.splitext(os.path.basename(p))[0] for p in args.configurations]
    if len(set(names)) != len(names):
        raise ValueError("input files must have distinct names (one output sub-directory "
                         "each): " + ", ".join(args.configurations))
    what = ("AQS" if args.protocol == "aqs" else
            f"shear rate {args.rate:g}/{'tau_LJ' if units == 'lj' else 'ps'} at "
            f"T = {args.temperature:g}")
    print(f"swapmc shear ({label}): {what}, {args.mode} to strain {args.max_strain:g}; "
          f"stress {STRESS_NAME[args.mode]} in {STRESS_UNIT[units]}; "
          f"{len(systems)} configuration(s)", flush=True)
    records = []
    with DirectoryLock(out, "swapmc shear"):
        for k, (path, system) in enumerate(zip(args.configurations, systems)):
            where = out if len(systems) == 1 else os.path.join(out, names[k])
            os.makedirs(where, exist_ok=True)
            records.append(_one(args, path, system, ff, label, where, k))
        if len(systems) > 1:
            _write_json(os.path.join(out, "summary.json"),
                        {"model": label, "protocol": args.protocol, "mode": args.mode,
                         "samples": records})
            plt = _pyplot()
            if plt is not None:
                _plot_overlay(plt, records, args, units, out)
    print(f"wrote {out}/")
    return 0 if all(r["summary"].get("all_converged", True) for r in records) else 1


def _fingerprint(system) -> str:
    """Identifies the input configuration a checkpoint belongs to."""
    h = hashlib.sha256()
    for arr in (system.positions, system.species, system.box.matrix):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _save(path: str, state: dict) -> None:
    from ..io import atomic_write

    with atomic_write(path, "wb") as fh:
        np.savez(fh, **state)


def _load(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _one(args, path, system, ff, label, out, index) -> dict:
    """Shear one configuration into ``out``; returns its summary record."""
    from .engine import NativeEngine
    from .shear import AQS, RateShear

    units = ff.units
    seed = np.random.SeedSequence([int(args.seed), index])
    engine = NativeEngine(system, ff, dt=args.dt, thermostat=args.thermostat,
                          tau=args.tau_t, seed=np.random.default_rng(seed))
    if args.protocol == "aqs":
        proto = AQS(engine, mode=args.mode, max_strain=args.max_strain, step=args.step,
                    ftol=args.ftol, max_iter=args.max_iter,
                    drop_threshold=args.drop_threshold,
                    displacement_threshold=args.displacement_threshold,
                    snapshot_strains=args.snapshot_strains or (), refine=args.refine)
        total = proto.n_steps
    else:
        proto = RateShear(engine, rate=args.rate, temperature=args.temperature,
                          mode=args.mode, max_strain=args.max_strain,
                          block_strain=args.block_strain, sample_every=args.sample_every,
                          equilibration_steps=args.equilibration_steps,
                          steady_from=args.steady_from)
        total = proto.n_blocks
    fingerprint = _fingerprint(system)
    ckpt = os.path.join(out, CHECKPOINT)
    resumed = False
    if os.path.exists(ckpt):
        state = _load(ckpt)
        if str(state.get("input_sha")) != fingerprint or str(state.get("protocol")) != \
                args.protocol:
            raise ValueError(f"{ckpt} belongs to another input configuration or protocol; "
                             "choose another output directory (-o)")
        try:
            proto.set_state(state)
        except ValueError as err:
            raise ValueError(f"{ckpt}: {err}; choose another output directory (-o) or "
                             "rerun with the original options") from None
        resumed = True
    done_at = [max(proto.k if args.protocol == "aqs" else proto.block, 0)]

    def checkpoint(p):
        count = p.k if args.protocol == "aqs" else p.block
        if count - done_at[0] >= args.checkpoint_every or p.finished:
            state = p.get_state()
            state["input_sha"] = np.array(fingerprint)
            state["protocol"] = np.array(args.protocol)
            _save(ckpt, state)
            _write_table(p, args, units, out)
            done_at[0] = count
            print(f"  {os.path.basename(path)}: {count}/{total} "
                  f"{'steps' if args.protocol == 'aqs' else 'blocks'}", flush=True)

    if resumed:
        print(f"  {os.path.basename(path)}: resumed at "
              f"{done_at[0]}/{total}", flush=True)
    result = proto.run(callback=checkpoint)
    _write_table(proto, args, units, out)
    record = {"file": path, "model": label, "protocol": args.protocol,
              "units": _unit_record(units), "settings": proto.settings(),
              "summary": result.summary(), "resumed": resumed}
    if args.protocol == "aqs":
        record["localization"] = _aqs_outputs(result, system, args, units, out)
        _print_aqs(result, path, units)
    else:
        record["localization"] = _rate_outputs(result, system, args, units, out)
        _print_rate(result, path, units)
    record["files"] = sorted({*(f for f in os.listdir(out) if not f.startswith(".")),
                              "summary.json"})
    _write_json(os.path.join(out, "summary.json"), record)
    return record


def _unit_record(units) -> dict:
    from .shear import ENERGY_UNIT, LENGTH_UNIT, STRESS_UNIT, TEMPERATURE_UNIT, TIME_UNIT

    return {"stress": STRESS_UNIT[units], "energy": ENERGY_UNIT[units],
            "length": LENGTH_UNIT[units], "time": TIME_UNIT[units],
            "temperature": TEMPERATURE_UNIT[units], "rate": "1/" + TIME_UNIT[units],
            "d2min": LENGTH_UNIT[units] + "^2"}


def _write_table(proto, args, units, out) -> None:
    from .shear import COLUMNS, RATE_COLUMNS

    t = proto.table()
    if args.protocol == "aqs":
        n = proto.engine.n
        header = list(COLUMNS)
        header[8] = "energy_per_particle"
        rows = t.copy()
        rows[:, 8] /= n
        cast = [float] * 10 + [int, int]
        _write_csv(os.path.join(out, "stress_strain.csv"), header,
                   [[c(x) for c, x in zip(cast, r)] for r in rows])
        _write_csv(os.path.join(out, "drops.csv"),
                   ["step", "strain", "stress_before", "stress_after", "stress_change",
                    "energy_change", "n_particles", "max_displacement", "onset_strain",
                    "onset_bracket"],
                   [[d.step, d.strain, d.stress_before, d.stress_after, d.stress_change,
                     d.energy_change, d.n_particles, d.max_displacement, d.onset_strain,
                     d.onset_bracket] for d in proto.drops])
    else:
        cast = [float] * 12 + [int]
        _write_csv(os.path.join(out, "stress_strain.csv"), list(RATE_COLUMNS),
                   [[c(x) for c, x in zip(cast, r)] for r in t])


# ----------------------------------------------------------------------------- analysis
def _fields(ref, snap, cutoff):
    """D²_min (NaN where undefined) and non-affine displacement of ``snap`` from ``ref``."""
    from ..analysis.nonaffine import d2min, nonaffine_displacement

    f = snap.deformation @ np.linalg.inv(ref.deformation)
    d2 = d2min(ref.positions, snap.positions, ref.cell, snap.cell, cutoff, deformation=f)
    u = nonaffine_displacement(ref.positions, snap.positions, ref.cell, snap.cell,
                               deformation=f)
    return d2, u


def _localize(d2, snap, bins) -> dict:
    """Localisation of a D²_min field along y (axis 1) and along x (axis 0)."""
    from ..analysis.nonaffine import localization

    out = {}
    for axis, name in ((1, "y"), (0, "x")):
        out[name] = localization(d2, snap.positions, snap.cell, axis=axis, n_bins=bins)
    best = max(out.values(), key=lambda loc: loc.index)
    rec = {name: loc.as_dict() for name, loc in out.items()}
    rec["index"] = best.index
    rec["band_axis"] = "xyz"[best.axis]
    return rec, out["y"]


def _write_snapshot(path, system, snap, columns, info) -> None:
    from ..box import Box
    from ..io import write_extxyz
    from ..system import System

    s = System.from_unwrapped(snap.positions, system.species, system.species_names,
                              Box.from_matrix(snap.cell))
    info = dict(info, strain=float(snap.strain), energy=float(snap.energy),
                stress=float(snap.stress))
    write_extxyz(path, s, info=info, columns=columns)


def _columns(d2, u, suffix=""):
    return {f"d2min{suffix}": np.nan_to_num(d2, nan=-1.0), f"u_na{suffix}": u,
            f"u_na{suffix}_norm": np.sqrt((u * u).sum(axis=1))}


def _cutoff(args, units):
    from ..analysis.nonaffine import DEFAULT_D2MIN_CUTOFF

    return DEFAULT_D2MIN_CUTOFF[units] if args.d2min_cutoff is None else args.d2min_cutoff


def _aqs_outputs(result, system, args, units, out) -> dict:
    """Snapshots, localisation records and figures of an AQS run."""
    from .shear import STRESS_UNIT

    cutoff = _cutoff(args, units)
    ref = result.reference
    lu = _unit_record(units)
    base = {"d2min_unit": lu["d2min"], "length_unit": lu["length"],
            "energy_unit": lu["energy"], "stress_unit": STRESS_UNIT[units],
            "d2min_cutoff": float(cutoff), "reference_strain": 0.0, "d2min_invalid": -1.0}
    _write_snapshot(os.path.join(out, "reference.xyz"), system, ref, None,
                    {"stress_unit": STRESS_UNIT[units], "energy_unit": lu["energy"]})
    record = {}
    d2, u = _fields(ref, result.final, cutoff)
    _write_snapshot(os.path.join(out, "final.xyz"), system, result.final, _columns(d2, u),
                    base)
    record["final"], loc_final = _localize(d2, result.final, args.bins)
    for s, snap in sorted(result.snapshots.items()):
        d2s, us = _fields(ref, snap, cutoff)
        _write_snapshot(os.path.join(out, f"strain_{s:.4f}.xyz"), system, snap,
                        _columns(d2s, us), base)
        record[f"strain_{s:.4f}"], _ = _localize(d2s, snap, args.bins)
    plt = _pyplot()
    if result.drop_before is not None:
        before, after = result.drop_before, result.drop_after
        d2b, ub = _fields(ref, before, cutoff)
        _write_snapshot(os.path.join(out, "drop_before.xyz"), system, before,
                        _columns(d2b, ub), base)
        d2a, ua = _fields(ref, after, cutoff)
        d2d, ud = _fields(before, after, cutoff)
        cols = _columns(d2a, ua)
        cols.update({"d2min_drop": np.nan_to_num(d2d, nan=-1.0),
                     "u_na_drop_norm": np.sqrt((ud * ud).sum(axis=1))})
        _write_snapshot(os.path.join(out, "drop_after.xyz"), system, after, cols,
                        dict(base, drop_strain_before=float(before.strain)))
        record["after_largest_drop"], _ = _localize(d2a, after, args.bins)
        record["across_largest_drop"], loc_drop = _localize(d2d, after, args.bins)
        if plt is not None:
            _plot_d2min(plt, after, d2d, loc_drop, args, units,
                        f"D²_min across the largest drop (strain {before.strain:.4g} → "
                        f"{after.strain:.4g})", os.path.join(out, "d2min_drop.png"))
    if plt is not None:
        _plot_aqs(plt, result, units, os.path.join(out, "stress_strain.png"))
        _plot_d2min(plt, result.final, d2, loc_final, args, units,
                    f"D²_min from strain 0 to {result.final.strain:.4g}",
                    os.path.join(out, "d2min.png"))
    return record


def _rate_outputs(result, system, args, units, out) -> dict:
    from .shear import STRESS_UNIT

    cutoff = _cutoff(args, units)
    lu = _unit_record(units)
    base = {"d2min_unit": lu["d2min"], "length_unit": lu["length"],
            "stress_unit": STRESS_UNIT[units], "d2min_cutoff": float(cutoff),
            "reference_strain": 0.0, "d2min_invalid": -1.0,
            "temperature": float(result.temperature)}
    ref = result.reference
    _write_snapshot(os.path.join(out, "reference.xyz"), system, ref, None,
                    {"stress_unit": STRESS_UNIT[units]})
    d2, u = _fields(ref, result.final, cutoff)
    _write_snapshot(os.path.join(out, "final.xyz"), system, result.final, _columns(d2, u),
                    base)
    record = {}
    record["final"], loc = _localize(d2, result.final, args.bins)
    plt = _pyplot()
    if plt is not None:
        _plot_rate(plt, result, units, os.path.join(out, "stress_strain.png"))
        _plot_d2min(plt, result.final, d2, loc, args, units,
                    f"D²_min from strain 0 to {result.final.strain:.4g} at "
                    f"T = {result.temperature:g}", os.path.join(out, "d2min.png"))
    return record


def _print_aqs(result, path, units) -> None:
    from .shear import ENERGY_UNIT, STRESS_UNIT

    s = result.summary()
    su, eu = STRESS_UNIT[units], ENERGY_UNIT[units]
    print(f"{os.path.basename(path)}: N = {result.n}, {s['steps']} steps to strain "
          f"{s['max_strain']:.4g}; peak stress {s['peak_stress']:.5g} {su} at strain "
          f"{s['peak_strain']:.4g}; final {s['final_stress']:.5g} {su}; {s['n_drops']} "
          f"drop(s)" + ("" if s["all_converged"] else "; SOME MINIMISATIONS DID NOT "
                        "CONVERGE (see stress_strain.csv, column converged)"))
    big = result.largest_drop
    if big is not None:
        print(f"  largest drop at strain {big.strain:.4g}: Delta sigma = "
              f"{big.stress_change:.4g} {su}, Delta E = {big.energy_change:.4g} {eu}, "
              f"{big.n_particles} particles involved")


def _print_rate(result, path, units) -> None:
    from .shear import STRESS_UNIT

    s = result.summary()
    su = STRESS_UNIT[units]
    err = s["steady_stress_err"]
    print(f"{os.path.basename(path)}: N = {result.n}, {s['blocks']} blocks to strain "
          f"{s['max_strain']:.4g}; peak block stress {s['peak_stress']:.5g} {su} at strain "
          f"{s['peak_strain']:.4g}; steady state (strain >= {s['steady_from']:.3g}) "
          f"{s['steady_stress']:.5g}" + ("" if math.isnan(err) else f" ± {err:.2g}")
          + f" {su}; mean T = {s['mean_temperature']:.4g}")


# ----------------------------------------------------------------------------- figures
def _label(unit: str) -> str:
    return _TEX.get(unit, unit)


def _plot_aqs(plt, result, units, path) -> None:
    from .shear import ENERGY_UNIT, STRESS_NAME, STRESS_UNIT

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.plot(result.strain, result.stress, lw=1, color="C0")
    if result.drops:
        ax1.plot([d.strain for d in result.drops], [d.stress_after for d in result.drops],
                 "v", color="C3", ms=4, label=f"stress drops ({len(result.drops)})")
        big = result.largest_drop
        ax1.annotate("largest drop", (big.strain, big.stress_after), xytext=(10, -20),
                     textcoords="offset points", fontsize=8,
                     arrowprops={"arrowstyle": "->", "lw": 0.8})
        ax1.legend(fontsize=8)
    ax1.set_ylabel(f"{STRESS_NAME[result.mode]} [{_label(STRESS_UNIT[units])}]")
    ax1.set_title(f"AQS {result.mode}, N = {result.n}, step {result.step:g}", fontsize=10)
    ax2.plot(result.strain, result.energy / result.n, lw=1, color="C2")
    ax2.set_ylabel(f"U/N [{_label(ENERGY_UNIT[units])}]")
    ax2.set_xlabel("strain" + (" gamma (xy)" if result.mode == "shear" else
                               " eps (x stretch)"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_rate(plt, result, units, path) -> None:
    from .shear import ENERGY_UNIT, STRESS_NAME, STRESS_UNIT, TEMPERATURE_UNIT, TIME_UNIT

    t = result.table
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    axes[0].plot(result.samples[:, 0], result.samples[:, 1], lw=0.3, color="0.7",
                 label="samples")
    axes[0].plot(t[:, 0], t[:, 2], "-", color="C0", lw=1.2, label="block means")
    if math.isfinite(result.steady_stress):
        axes[0].axhline(result.steady_stress, color="C3", lw=0.8, ls="--",
                        label=f"steady state (strain >= {result.steady_from:.3g})")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel(f"{STRESS_NAME[result.mode]} [{_label(STRESS_UNIT[units])}]")
    axes[0].set_title(f"{result.mode} at rate {result.rate:g} 1/{TIME_UNIT[units]}, "
                      f"T = {result.temperature:g}, N = {result.n}", fontsize=10)
    axes[1].plot(t[:, 0], t[:, 10], color="C2")
    axes[1].set_ylabel(f"U/N [{_label(ENERGY_UNIT[units])}]")
    axes[2].plot(t[:, 0], t[:, 11], color="C1")
    axes[2].axhline(result.temperature, color="0.5", lw=0.8, ls=":")
    temp_u = TEMPERATURE_UNIT[units]
    axes[2].set_ylabel("T [" + (r"$\varepsilon_{AA}/k_B$" if units == "lj" else temp_u)
                       + "]")
    axes[2].set_xlabel("strain")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_d2min(plt, snap, d2, loc, args, units, title, path) -> None:
    """Slab |z - lz/2| < slab/2 coloured by log10 D²_min, with the y profile beside it."""
    from matplotlib.colors import LogNorm

    from ..box import Box
    from .shear import LENGTH_UNIT

    lu = LENGTH_UNIT[units]
    box = Box.from_matrix(snap.cell)
    x, _ = box.wrap(snap.positions)
    n = x.shape[0]
    spacing = (box.volume / n) ** (1.0 / 3.0)
    slab = 1.5 * spacing if args.slab is None else args.slab
    lz = snap.cell[2, 2]
    s = box.fractional(x)
    zc = 0.5
    sel = np.abs(s[:, 2] - zc) * lz < 0.5 * slab
    v = d2[sel]
    ok = np.isfinite(v) & (v > 0)
    fig, (ax, axp) = plt.subplots(1, 2, figsize=(10, 5),
                                  gridspec_kw={"width_ratios": [3, 1]})
    if ok.any():
        lo = max(np.percentile(v[ok], 1), 1e-12)
        hi = max(np.percentile(v[ok], 99.5), lo * 10)
        sc = ax.scatter(x[sel][ok, 0], x[sel][ok, 1], c=v[ok], s=12, cmap="viridis",
                        norm=LogNorm(lo, hi), edgecolors="none")
        cb = fig.colorbar(sc, ax=ax, shrink=0.85)
        cb.set_label(f"D²_min [{_SQUARED.get(lu, lu + '^2')}]")
    h = snap.cell
    corners = np.array([[0, 0], [h[0, 0], 0], [h[0, 0] + h[0, 1], h[1, 1]], [h[0, 1], h[1, 1]],
                        [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="0.4", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x [{_label(lu)}]")
    ax.set_ylabel(f"y [{_label(lu)}]")
    ax.set_title(f"{title}\nslab {zc * lz - 0.5 * slab:.3g} < z < "
                 f"{zc * lz + 0.5 * slab:.3g} {_label(lu)}, {int(sel.sum())} particles",
                 fontsize=9)
    axp.plot(loc.profile, loc.centres, "o-", ms=3)
    if math.isfinite(loc.position):
        axp.axhline(loc.position, color="C3", lw=0.8)
        for edge in (loc.position - 0.5 * loc.width, loc.position + 0.5 * loc.width):
            axp.axhline(edge % loc.length, color="C3", lw=0.6, ls="--")
    axp.set_ylim(0, loc.length)
    axp.set_xlim(left=0)  # a flat profile then looks flat
    axp.set_xlabel(f"<D²_min> [{_SQUARED.get(lu, lu + '^2')}]")
    axp.set_ylabel(f"y [{_label(lu)}]")
    axp.set_title(f"localisation index {loc.index:.2f}\nband FWHM {loc.width:.3g} "
                  f"{_label(lu)}",
                  fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_overlay(plt, records, args, units, out) -> None:
    """stress_strain_all.png: the curves of every configuration, read back from their
    CSV files."""
    import csv

    from .shear import STRESS_NAME, STRESS_UNIT

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rec in records:
        where = os.path.join(out, os.path.splitext(os.path.basename(rec["file"]))[0])
        with open(os.path.join(where, "stress_strain.csv")) as fh:
            rows = list(csv.DictReader(fh))
        ax.plot([float(r["strain"]) for r in rows], [float(r["stress"]) for r in rows],
                lw=1, label=os.path.basename(rec["file"]))
    ax.set_xlabel("strain")
    ax.set_ylabel(f"{STRESS_NAME[args.mode]} [{_label(STRESS_UNIT[units])}]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "stress_strain_all.png"), dpi=120)
    plt.close(fig)
