"""The ``swapmc`` console command."""

from __future__ import annotations

import argparse
import math
import sys

from . import __version__


def _overrides(args) -> dict:
    from .config import overrides

    return overrides(
        ("state", "temperature", args.temperature),
        ("state", "pressure", args.pressure),
        ("system", "n", args.n),
        ("system", "init", args.init),
        ("run", "production_sweeps", args.sweeps),
        ("run", "equilibration_sweeps", args.equilibration_sweeps),
        ("run", "seed", args.seed),
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
    print("  acceptance: " + ", ".join(f"{k} {v:.3g}" for k, v in acc.items() if v is not None))
    print(f"  frozen step sizes: {s['step_sizes_frozen']}")
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
    import numpy as np

    from .analysis import first_peak, peak_window, radial_distribution, structure_factor
    from .io import read_extxyz, read_lammps_data

    path = args.configuration
    system = read_extxyz(path) if path.endswith((".xyz", ".extxyz")) else read_lammps_data(path)
    if not system.box.is_orthorhombic:
        raise NotImplementedError("analyze supports orthorhombic boxes")
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
        with open(args.output, "w") as fh:
            fh.write("# partial S_aa(q) and g_aa(r) of each species\n")
            fh.write("pair,kind,x,y\n")
            for name, q, s, r, g in rows:
                for x, y in zip(q, s):
                    fh.write(f"{name}{name},S,{x!r},{y!r}\n")
                for x, y in zip(r, g):
                    fh.write(f"{name}{name},g,{x!r},{y!r}\n")
        print(f"  wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swapmc",
        description="Swap Monte Carlo for ultrastable computer glasses.",
    )
    p.add_argument("--version", action="version", version=f"swapmc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run swap Monte Carlo on a preset or a TOML config",
                       description="Run melt -> equilibration (tuned) -> production (frozen). "
                       "Rerunning the same command resumes from the checkpoint.")
    r.add_argument("source", nargs="?", default=None,
                   help="preset name or config.toml (default: the ka2-x10 preset, N = 500)")
    r.add_argument("-T", "--temperature", type=float)
    r.add_argument("-P", "--pressure", type=float, help="impose a pressure (isobaric run)")
    r.add_argument("-N", "--n", type=int, help="number of particles")
    r.add_argument("--init", help="'random', 'lattice', or a .xyz/.data file")
    r.add_argument("-s", "--sweeps", type=int, help="production sweeps")
    r.add_argument("--equilibration-sweeps", type=int)
    r.add_argument("--seed", type=int)
    r.add_argument("-o", "--output", help="output directory")
    r.add_argument("--trajectory-every", type=int, help="sweeps between trajectory frames")
    r.add_argument("--tau-alpha", action="store_true",
                   help="measure F_s(q,t) in production and report tau_alpha")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="draw thermo.png (and fs.png) for a run directory")
    pl.add_argument("directory")
    pl.set_defaults(func=_cmd_plot)

    an = sub.add_parser("analyze", help="S(q) first peak and g(r) of a configuration file")
    an.add_argument("configuration", help=".xyz/.extxyz or LAMMPS .data file")
    an.add_argument("--q-max", type=float,
                    help="largest q of S(q) (default 12 sigma^-1 at KA's density, scaled by "
                         "the mean spacing: ~4.4 Å^-1 for Cu-Zr)")
    an.add_argument("-o", "--output", help="write S(q) and g(r) as CSV")
    an.set_defaults(func=_cmd_analyze)

    from .library.cli import add_parser as add_library_parser
    from .md.cli import add_parsers as add_md_parsers
    from .tempering.cli import add_parser as add_temper_parser

    add_temper_parser(sub)
    add_md_parsers(sub)
    add_library_parser(sub)

    ps = sub.add_parser("presets", help="list the built-in presets or show one")
    ps.add_argument("name", nargs="?")
    ps.set_defaults(func=_cmd_presets)
    return p


def run_command(func, args, prog: str = "swapmc") -> int:
    """Call ``func(args)`` as a command: input errors become one line ``<prog>: error: ...``
    on stderr and exit code 2, Ctrl-C exit code 130 with a hint to rerun (and resume)."""
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    except (ValueError, KeyError, NotImplementedError, OSError, ImportError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
