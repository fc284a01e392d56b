"""``swapmc temper``: parallel tempering from the command line (serial or under mpiexec).

The lead's ``swapmc/cli.py`` registers it with one line, ``add_parser(sub)``; until then
``python -m swapmc.tempering ...`` runs the same command.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__

__all__ = ["add_parser", "cmd_temper", "main"]

DESCRIPTION = (
    "Parallel tempering (replica exchange of temperature labels) over a ladder of "
    "temperatures: serially in one process, or over MPI ranks with `mpiexec -n K swapmc "
    "temper ...` (any number of replicas per rank; the label trace for a seed does not depend "
    "on K). Phases: melt (generated starts), equilibration rounds (step sizes tuned, ladder "
    "optionally feedback-optimised), production rounds (frozen). Rerunning the same command "
    "resumes from the last checkpoint; raising --rounds extends a finished run."
)


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated temperatures, e.g. 0.45,0.5,0.56; got {text!r}"
        ) from None


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from ..config import DEFAULTS
    from .settings import TEMPERING_DEFAULTS

    p.add_argument("source", nargs="?", default=None,
                   help="preset name or config.toml with a [tempering] table "
                        "(default: the ka2-x10 preset)")
    lad = p.add_argument_group("ladder and rounds ([tempering])")
    lad.add_argument("--temperatures", type=_float_list, metavar="T0,T1,...",
                     help="explicit ladder (strictly increasing), epsilon/k_B (LJ) or K "
                          "(EAM) (default: a geometric ladder)")
    lad.add_argument("--t-min", type=float,
                     help="lowest temperature of a geometric ladder (default: the preset's "
                          "[state] temperature)")
    lad.add_argument("--t-max", type=float,
                     help="highest temperature of a geometric ladder (default: 1.5 t_min)")
    lad.add_argument("-M", "--replicas", type=int, dest="n_replicas",
                     help="number of replicas (temperatures) of a geometric ladder "
                          "(default: 8)")
    lad.add_argument("-K", "--exchange-every", type=int,
                     help="sweeps between exchange rounds (default: "
                          f"{TEMPERING_DEFAULTS['exchange_every']})")
    lad.add_argument("-r", "--rounds", type=int,
                     help=f"production rounds (default: {TEMPERING_DEFAULTS['rounds']})")
    lad.add_argument("--equilibration-rounds", type=int,
                     help="equilibration rounds, step sizes tuned (default: "
                          f"{TEMPERING_DEFAULTS['equilibration_rounds']})")
    lad.add_argument("--optimize-ladder", action=argparse.BooleanOptionalAction, default=None,
                     help="feedback-optimise the ladder during equilibration "
                          "(Katzgraber et al. 2006) (default: off)")
    sysg = p.add_argument_group("system and run")
    sysg.add_argument("-N", "--n", type=int, help="number of particles per replica "
                      f"(default: {DEFAULTS['system']['n']})")
    sysg.add_argument("-P", "--pressure", type=float,
                      help="impose a pressure (isobaric replicas, NPT exchange rule), "
                           "epsilon/sigma^3 (LJ) or GPa (EAM) (default: the preset's)")
    sysg.add_argument("--init", help="'random', 'lattice', or a .xyz/.data file (default: "
                      f"{DEFAULTS['system']['init']})")
    sysg.add_argument("--seed", type=int,
                      help=f"random seed >= 0 (default: {DEFAULTS['run']['seed']})")
    sysg.add_argument("-o", "--output", help="output directory (default: "
                      f"{DEFAULTS['output']['directory']})")
    sysg.add_argument("--trajectory-every", type=int,
                      help="sweeps between per-temperature trajectory frames (production), "
                           f"0 for none (default: {DEFAULTS['output']['trajectory_every']})")
    sysg.add_argument("--checkpoint-every", type=int, help="sweeps between checkpoints "
                      f"(default: {DEFAULTS['output']['checkpoint_every']})")
    sysg.add_argument("--no-progress", action="store_true",
                      help="no progress line (default: progress shown)")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="auto: use MPI when started by mpiexec/srun")
    p.add_argument("--plot", action="store_true",
                   help="draw pt_acceptance.png and pt_walks.png (needs matplotlib) "
                        "(default: off)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``temper`` subcommand on a ``swapmc`` subparsers object."""
    from ..cli import HelpFormatter

    p = subparsers.add_parser("temper", help="parallel tempering, serial or with mpiexec",
                              description=DESCRIPTION, formatter_class=HelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=cmd_temper)
    return p


def _overrides(args) -> dict:
    from ..config import overrides

    tempering_keys = ("temperatures", "t_min", "t_max", "n_replicas", "exchange_every",
                      "rounds", "equilibration_rounds", "optimize_ladder")
    return overrides(
        ("state", "pressure", args.pressure),
        ("system", "n", args.n),
        ("system", "init", args.init),
        ("run", "seed", args.seed),
        ("output", "directory", args.output),
        ("output", "trajectory_every", args.trajectory_every),
        ("output", "checkpoint_every", args.checkpoint_every),
        ("output", "progress", False if args.no_progress else None),
        *(("tempering", key, getattr(args, key)) for key in tempering_keys),
    )


def _print_summary(result) -> None:
    s = result.summary
    u = s["units"]
    run = s["run"]
    print(f"swapmc {__version__} temper: {s['preset']}, N = {s['n']} {s['composition']}, "
          f"{s['ensemble']}, {s['n_replicas']} replicas on {run['n_ranks']} rank(s) "
          f"[{run['communicator']}]" + (" (resumed)" if result.resumed else ""))
    print(f"  {s['equilibration_rounds']} equilibration + {s['rounds']} production rounds of "
          f"{s['exchange_every']} sweeps; {run['seconds_per_round']:.4g} s per round")
    print(f"  {'T':>10s} {'U/N':>12s} {'± err':>9s} {'disp step':>9s}   acceptance to next T")
    pairs = s["pairs"] + [None]
    for pt, st, pair in zip(s["per_temperature"], s["step_sizes"], pairs):
        e = pt["energy_per_particle"]
        err = pt["energy_per_particle_stderr"]
        acc = "" if pair is None else (
            "-" if pair["acceptance"] is None
            else f"{pair['acceptance']:.3f} ({pair['accepted']}/{pair['proposed']})")
        print(f"  {pt['temperature']:10.5g} {'' if e is None else f'{e:12.5f}':>12s} "
              f"{'' if err is None else f'{err:9.5f}':>9s} {st['displacement']:9.4f}   {acc}")
    rt = s["round_trips"]
    mean = (f", mean {rt['mean_rounds']:.4g} rounds = {rt['mean_sweeps']:.4g} sweeps"
            if rt["mean_rounds"] is not None else "")
    print(f"  round trips T_min -> T_max -> T_min: {rt['total']}{mean} (energy unit "
          f"{u['energy']}, temperature unit {u['temperature']})")
    print(f"  files in {result.directory}/: labels.csv, energy_by_temperature.csv, "
          "energy_by_replica.csv, ladder.csv, pairs.csv, summary.json, final/"
          + (", trajectories/" if os.path.isdir(os.path.join(result.directory, "trajectories"))
             else ""))


def cmd_temper(args) -> int:
    """Run ``swapmc temper`` for parsed arguments; returns the exit code.

    Errors found before any work are agreed between ranks and printed once (exit code 1);
    an error on one rank during the run prints ``rank k: <error>`` and aborts the MPI job.
    """
    from .comm import CollectiveError, abort_on_error, agree, get_comm
    from .driver import TemperingRun
    from .settings import resolve

    comm = get_comm(args.mpi)
    try:
        with abort_on_error(comm):
            cfg = agree(comm, resolve, args.source, _overrides(args))
            result = TemperingRun(cfg, comm=comm).execute()
    except CollectiveError as err:
        if comm.rank == 0:
            print(f"swapmc temper: error: {err}", file=sys.stderr)
        return 1
    if comm.rank == 0:
        _print_summary(result)
        if args.plot:
            from .plot import plot_tempering

            for path in plot_tempering(result.directory):
                print(f"  wrote {path}")
    return 0


def main(argv=None) -> int:
    """``python -m swapmc.tempering``: the ``temper`` command on its own."""
    from ..cli import HelpFormatter

    p = argparse.ArgumentParser(prog="swapmc temper", description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    _add_arguments(p)
    args = p.parse_args(argv)
    from ..cli import run_command

    return run_command(cmd_temper, args, prog="swapmc temper")
