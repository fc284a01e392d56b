"""The ``swapmc`` console command."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading

from . import __version__, interrupts


def _overrides(args) -> dict:
    from .config import overrides

    return overrides(
        ("state", "temperature", args.temperature),
        ("state", "pressure", args.pressure),
        ("system", "n", args.n),
        ("system", "init", args.init),
        ("system", "type_map", args.type_map),
        ("run", "production_sweeps", args.sweeps),
        ("run", "equilibration_sweeps", args.equilibration_sweeps),
        ("run", "seed", args.seed),
        ("moves", "threads", args.threads),
        ("output", "directory", args.output),
        ("output", "trajectory_every", args.trajectory_every),
        ("diagnostics", "tau_alpha", True if args.tau_alpha else None),
        ("output", "progress", False if args.no_progress else None),
    )


def _cmd_run(args) -> int:
    from .run import run

    result = run(args.source, _overrides(args))
    s = result.summary
    u = s["units"]
    acc = s["acceptance_total"]
    print(f"swapmc {__version__}: {s['preset']}, N = {s['n']} {s['composition']}, "
          f"T = {s['temperature']:g}, {s['sweeps']} sweeps in {s['wall_seconds']:.1f} s"
          + (" (resumed)" if result.resumed else ""))
    prod = s["production"]
    npt = s["pressure_imposed"] is not None
    print(f"  production means ({prod['rows']} thermo rows, "
          + ("blocking errors):" if prod["energy_per_particle"]["stderr"] is not None else
             "no error bars: blocking needs >= 32 rows; lower output.thermo_every):"))
    print(f"    U/N = {_pm(prod['energy_per_particle'])} {u['energy']}   "
          f"P = {_pm(prod['pressure'])} {u['pressure']}"
          + (f"   V/N = {_pm(prod['volume'], 1.0 / s['n'])} {u['length']}^3   "
             f"rho = {_pm(prod['density'])}" if npt else f"   rho = {s['density']:.6g}"))
    if s.get("pressure_note"):
        print(f"    note: {s['pressure_note']}")
    print("  acceptance: " + ", ".join(f"{k} {v:.3g}" for k, v in acc.items() if v is not None))
    print("  frozen step sizes: " + ", ".join(
        f"{k} {v:.4g}" for k, v in s["step_sizes_frozen"].items()))
    if "tau_alpha_sweeps" in s:
        ta, err = s["tau_alpha_sweeps"], s["tau_alpha_stderr_sweeps"]
        if ta is None:
            print(f"  tau_alpha: {s['tau_alpha_note']}")
        elif err is None:
            print(f"  tau_alpha = {ta:.4g} sweeps (F_s of {s['fs_species']} at q = "
                  f"{s['fs_q']:.4g}; no error bar: production shorter than 6 tau_alpha)")
        else:
            print(f"  tau_alpha = {ta:.4g} ± {err:.2g} sweeps (F_s of {s['fs_species']} at "
                  f"q = {s['fs_q']:.4g}; jackknife over {s['tau_alpha_error_groups']} origin "
                  "groups)")
    print(f"  files in {result.directory}/: " + ", ".join(
        sorted(p.split("/")[-1] for p in result.files.values())))
    return 0


def _pm(stat: dict, scale: float = 1.0) -> str:
    """``mean ± err`` with the error to 2 significant digits and the mean to match."""
    mean, err = stat["mean"], stat["stderr"]
    if mean is None:
        return "nan"
    mean *= scale
    if err is None or err == 0.0:
        return f"{mean:.6g}"
    err *= scale
    digits = max(0, 1 - int(math.floor(math.log10(abs(err)))))
    return f"{mean:.{digits}f} ± {err:.{digits}f}"


def _cmd_presets(args) -> int:
    from .models.presets import list_presets, preset_text

    if args.name:
        print(preset_text(args.name), end="")
        return 0
    for name, desc in list_presets().items():
        print(f"{name:12s} {desc}")
    print("\nRun one with `swapmc run NAME`; show its TOML with `swapmc presets NAME`.")
    return 0


def _cmd_plot(args) -> int:
    from .plotting import plot_run

    for path in plot_run(args.directory):
        print(f"wrote {path}")
    return 0


def _cmd_analyze(args) -> int:
    import csv

    import numpy as np

    from .analysis import first_peak, peak_window, radial_distribution, structure_factor
    from .io import read_extxyz, read_lammps_data

    path = args.configuration
    if args.q_max is not None and not (math.isfinite(args.q_max) and args.q_max > 0):
        raise ValueError(f"--q-max must be a finite wavenumber > 0, got {args.q_max}")
    if not os.path.exists(path):
        raise OSError(f"no such configuration file: {path}")
    system = read_extxyz(path) if path.endswith((".xyz", ".extxyz")) else read_lammps_data(path)
    if not system.box.is_orthorhombic:
        raise NotImplementedError(f"{path}: analyze supports orthorhombic boxes")
    _check_no_overlaps(system, path)
    lengths = system.box.lengths
    r_max = 0.5 * float(lengths.min())
    counts = dict(zip(system.species_names, system.counts.tolist()))
    print(f"{path}: N = {system.n}, species {counts}, density {system.density:.5g}, "
          f"box {lengths}")
    q_lo, q_hi, q_max = peak_window(system.density)
    q_max = args.q_max or q_max
    rows = []
    for a in range(system.n_species):
        if system.counts[a] < 2:
            continue
        q, s = structure_factor(system.positions, lengths, q_max, species=system.species,
                                pair=(a, a))
        r, g = radial_distribution(system.positions, lengths, r_max, 200,
                                   species=system.species, pair=(a, a))
        q1 = first_peak(q, s, (q_lo, min(q_hi, q_max)))
        k = int(np.argmax(g))
        name = system.species_names[a]
        print(f"  {name}-{name}: first peak of S(q) at q = {q1:.4f}, S = {s.max():.3f}; "
              f"g(r) maximum {g[k]:.3f} at r = {r[k]:.4f}")
        rows.append((name, q, s, r, g))
    if args.output:
        from .io import atomic_write

        with atomic_write(args.output) as fh:
            fh.write("# partial S_aa(q) and g_aa(r) of each species; x is q (inverse length) "
                     "for kind S and r (length) for kind g\n")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["pair", "kind", "x", "y"])
            for name, q, s, r, g in rows:
                # float() turns NumPy scalars into Python floats: repr(np.float64(x)) is
                # "np.float64(x)" under NumPy 2, which no CSV reader parses.
                w.writerows([f"{name}{name}", "S", repr(float(x)), repr(float(y))]
                            for x, y in zip(q, s))
                w.writerows([f"{name}{name}", "g", repr(float(x)), repr(float(y))]
                            for x, y in zip(r, g))
        print(f"  wrote {args.output}")
    return 0


def _check_no_overlaps(system, path: str) -> None:
    """Refuse a configuration in which two particles (nearly) coincide.

    A duplicated particle puts a spike into g(r) at r ~ 0 and makes energies and forces
    overflow; the threshold, a tenth of the mean spacing rho^(-1/3), is far below any
    physical contact distance of a liquid or glass, in any unit system.
    """
    from .system import ConfigurationError

    spacing = system.density ** (-1.0 / 3.0)
    try:
        system.check_overlaps(0.1 * spacing)
    except ConfigurationError as err:
        raise ConfigurationError(f"{path}: {err}; is a particle duplicated?") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default: appended as ``(default: ...)`` when the
    option has a concrete default; options whose default comes from the preset or config
    say so in their own help text."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .config import DEFAULT_PRESET, DEFAULTS

    p = argparse.ArgumentParser(
        prog="swapmc",
        description="Swap Monte Carlo for ultrastable computer glasses. Units: LJ presets "
                    "use reduced units of the A-A pair (epsilon_AA, sigma_AA, k_B = 1); EAM "
                    "presets use metal units (Å, eV, K, pressures in GPa). `swapmc COMMAND "
                    "--help` shows each command's options with their defaults.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"swapmc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d_sys, d_run, d_out = DEFAULTS["system"], DEFAULTS["run"], DEFAULTS["output"]

    r = sub.add_parser("run", help="run swap Monte Carlo on a preset or a TOML config",
                       formatter_class=HelpFormatter,
                       description="Run melt -> equilibration (tuned) -> production (frozen). "
                       "Rerunning the same command resumes from the checkpoint; a larger "
                       "--sweeps extends a finished run. Options override the config/preset. "
                       "T is in epsilon_AA/k_B (LJ) or K (EAM), P in epsilon_AA/sigma_AA^3 "
                       "(LJ) or GPa (EAM), times in MC sweeps (N attempts).")
    r.add_argument("source", nargs="?", default=None,
                   help=f"preset name or config .toml (default: the {DEFAULT_PRESET} preset)")
    r.add_argument("-T", "--temperature", type=float,
                   help="temperature, epsilon_AA/k_B (LJ) or K (EAM) (default: the "
                        "preset's [state] temperature)")
    r.add_argument("-P", "--pressure", type=float,
                   help="impose a pressure (isobaric run), epsilon_AA/sigma_AA^3 (LJ) or GPa "
                        "(EAM) (default: the preset's: none, i.e. NVT, for LJ; 0 GPa for EAM)")
    r.add_argument("-N", "--n", type=int,
                   help=f"number of particles (default: {d_sys['n']})")
    r.add_argument("--init", help="'random', 'lattice', or a .xyz/.data file, relative to the "
                   f"working directory (default: {d_sys['init']})")
    r.add_argument("--type-map", metavar="MAP",
                   help="species of the atom types of a LAMMPS data --init without type "
                        "labels, e.g. 1=A,2=B,3=C (default: the file's labels or Masses "
                        "comments)")
    r.add_argument("-s", "--sweeps", type=int,
                   help=f"production sweeps (default: {d_run['production_sweeps']})")
    r.add_argument("--equilibration-sweeps", type=int,
                   help=f"equilibration sweeps, step sizes tuned (default: "
                        f"{d_run['equilibration_sweeps']})")
    r.add_argument("--seed", type=int, help=f"random seed, an integer >= 0 (default: "
                   f"{d_run['seed']})")
    r.add_argument("--threads", type=int, metavar="K",
                   help="[moves] threads: 1 for the serial sweep, K >= 2 for the "
                        "domain-decomposed sweep on K shared-memory threads (LJ, constant "
                        "volume; under mpiexec per process: one process per node, K = cores) "
                        "(default: 1)")
    r.add_argument("-o", "--output", help=f"output directory (default: {d_out['directory']})")
    r.add_argument("--trajectory-every", type=int,
                   help="sweeps between trajectory frames in production, 0 for none "
                        f"(default: {d_out['trajectory_every']})")
    r.add_argument("--tau-alpha", action="store_true",
                   help="measure F_s(q,t) in production and report tau_alpha in sweeps "
                        "(default: off)")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress line (default: progress shown)")
    r.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="draw thermo.png (and fs.png) for a run directory",
                        formatter_class=HelpFormatter)
    pl.add_argument("directory", help="output directory of swapmc run")
    pl.set_defaults(func=_cmd_plot)

    an = sub.add_parser("analyze", help="S(q) first peak and g(r) of a configuration file",
                        formatter_class=HelpFormatter,
                        description="Partial S_aa(q) and g_aa(r) of each species, in the "
                        "length unit of the file (sigma_AA or Å).")
    an.add_argument("configuration", help=".xyz/.extxyz or LAMMPS .data file")
    an.add_argument("--q-max", type=float,
                    help="largest q of S(q), inverse length (default: 12 sigma^-1 at KA's "
                         "density, scaled by the mean spacing: ~4.4 Å^-1 for Cu-Zr)")
    an.add_argument("-o", "--output", help="write S(q) and g(r) as CSV (default: not written)")
    an.set_defaults(func=_cmd_analyze)

    from .library.cli import add_parser as add_library_parser
    from .md.cli import add_parsers as add_md_parsers
    from .md.shear_cli import add_parser as add_shear_parser
    from .tempering.cli import add_parser as add_temper_parser

    add_temper_parser(sub)
    add_md_parsers(sub)
    add_shear_parser(sub)
    add_library_parser(sub)

    ps = sub.add_parser("presets", help="list the built-in presets or show one",
                        formatter_class=HelpFormatter)
    ps.add_argument("name", nargs="?", help="preset to show as TOML (default: list them all)")
    ps.set_defaults(func=_cmd_presets)
    return p


def _interrupted(err: BaseException) -> bool:
    """True for Ctrl-C, also when it surfaced from inside a compiled (Numba) call: the
    interrupt then arrives as ``SystemError: CPUDispatcher(...) returned a result with an
    exception set`` whose cause is the KeyboardInterrupt."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _InterruptWatch:
    """Records in :mod:`swapmc.interrupts` that Ctrl-C arrived while a command ran, and
    still raises KeyboardInterrupt as Python's own handler does. A SIGINT that lands while
    Numba compiles a kernel for the first time can be swallowed, or surface as an unrelated
    error (``RuntimeError: no compiled object yet for ...``) with no KeyboardInterrupt in its
    chain: the flag lets the run loop stop at its next block and the command report the
    interrupt it was."""

    def __init__(self):
        self._previous = None

    def _handler(self, signum, frame):
        interrupts.note()
        raise KeyboardInterrupt

    def __enter__(self):
        interrupts.clear()
        # Only replace Python's default handler, and only where signals can be handled.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def run_command(func, args, prog: str = "swapmc") -> int:
    """Call ``func(args)`` as a command: input errors become one line ``<prog>: error: ...``
    on stderr and exit code 1 (2 is argparse's, for command-line usage errors), Ctrl-C
    exit code 130 with a hint to rerun (and resume)."""
    try:
        with _InterruptWatch():
            return func(args)
    except (KeyboardInterrupt, SystemError, RuntimeError) as err:
        if not (_interrupted(err) or interrupts.received()):
            raise
        return _report_interrupt()
    except (ValueError, KeyError, NotImplementedError, OSError, ImportError) as err:
        if interrupts.received():  # e.g. an I/O call cut short by the signal
            return _report_interrupt()
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        # One line: the message may carry a list (e.g. of differing keys) over lines.
        text = " ".join(part.strip() for part in str(msg).splitlines() if part.strip())
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 1


def _report_interrupt() -> int:
    """The Ctrl-C line (rank 0 only: under mpiexec every rank gets the SIGINT) and its
    exit code."""
    from .run import mpi_launch_size

    if mpi_launch_size()[1] == 0:
        print("\ninterrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
    return 130


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # `swapmc` alone
        parser.print_help()
        return 0
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
