"""``swapmc library build | ls | show | export | check``."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import DEFAULTS
from ..config import overrides as make_overrides
from .certify import Criteria
from .settings import LIBRARY_DEFAULTS


def _cmd_build(args) -> int:
    from ..tempering.comm import CollectiveError, abort_on_error, agree, get_comm
    from .build import LibraryBuilder
    from .settings import resolve

    comm = get_comm(args.mpi)
    over = make_overrides(("library", "samples", args.samples),
                          ("library", "path", args.library),
                          ("state", "temperature", args.temperature),
                          ("system", "n", args.n),
                          ("run", "seed", args.seed),
                          ("output", "progress", False if args.no_progress else None))
    try:
        with abort_on_error(comm):
            cfg = agree(comm, resolve, args.source, over)
            builder = agree(comm, LibraryBuilder, cfg, comm)
            result = builder.execute()
    except CollectiveError as err:
        if comm.rank == 0:
            print(f"swapmc library build: error: {err}", file=sys.stderr)
        return 1
    if comm.rank == 0:
        print(f"see the samples with: swapmc library ls {result.path} --build "
              f"{result.build[:16]} --verdict all")
    return 0


def _cmd_harvest(args) -> int:
    import math

    from .certify import Criteria
    from .harvest import harvest_tempering

    if args.stride is not None and args.stride < 1:
        raise ValueError(f"--stride must be an integer >= 1 sweep, got {args.stride}")
    if args.min_round_trips < 0:
        raise ValueError(f"--min-round-trips must be >= 0, got {args.min_round_trips}")
    if not (math.isfinite(args.max_drift_z) and args.max_drift_z > 0):
        raise ValueError(f"--max-drift-z must be a finite number > 0, got {args.max_drift_z}")

    harvest_tempering(args.run, args.library, stride=args.stride,
                      min_round_trips=args.min_round_trips,
                      criteria=Criteria(max_drift_z=args.max_drift_z))
    return 0


def _add_filters(p) -> None:
    p.add_argument("--model", help="preset/model name (default: any)")
    p.add_argument("--build", help="build fingerprint or its first characters (default: any)")
    p.add_argument("--t-min", type=float,
                   help="lowest equilibration temperature, epsilon/k_B or K (default: none)")
    p.add_argument("--t-max", type=float,
                   help="highest equilibration temperature, epsilon/k_B or K (default: none)")
    p.add_argument("-N", "--n", type=int, help="number of particles (default: any)")
    p.add_argument("--verdict", choices=("certified", "failed", "all"), default="certified",
                   help="which samples")
    p.add_argument("--limit", type=int, help="at most this many samples (default: all)")


def _query(lib, args, ids=None):
    return lib.query(ids=ids, model=args.model, build=args.build, verdict=args.verdict,
                     t_min=args.t_min, t_max=args.t_max, n=args.n, limit=args.limit)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _cmd_ls(args) -> int:
    from .store import Library

    with Library(args.library) as lib:
        samples = _query(lib, args)
        if args.json:
            print(json.dumps([{"id": s.id, **s.meta} for s in samples], indent=1))
            return 0
        builds = lib.builds()
    print(f"{args.library}: {len(samples)} sample(s) match; builds: "
          + ", ".join(f"{b['build'][:16]} ({b['model']}, {b['certified'] or 0} certified, "
                      f"{b['failed'] or 0} failed)" for b in builds))
    if not samples:
        return 0
    print(f"{'id':>5s} {'model':12s} {'build':16s} {'source':9s} {'chain':>5s} {'N':>6s} "
          f"{'T':>8s} "
          f"{'P':>6s} {'verdict':9s} {'E/N':>10s} {'E_IS/N':>10s} {'tau_alpha':>10s} "
          f"{'decays':>7s} {'crystal':>7s}")
    for s in samples:
        m = s.meta
        print(f"{s.id:5d} {m['model'][:12]:12s} {m['build'][:16]:16s} {m['source']:9s} "
              f"{m['chain']:5d} "
              f"{m['n']:6d} {m['temperature']:8.4g} {_fmt(m['pressure'], '6.3g'):>6s} "
              f"{m['verdict']:9s} {m['energy']:10.5f} {_fmt(m['is_energy'], '10.5f'):>10s} "
              f"{_fmt(m['tau_alpha'], '10.4g'):>10s} {_fmt(m['decays'], '7.1f'):>7s} "
              f"{_fmt(m['crystalline_fraction'], '7.3f'):>7s}")
    return 0


def _cmd_show(args) -> int:
    from .store import SAMPLE_COLUMNS, Library

    with Library(args.library) as lib:
        sample = lib.get(args.id)
    if args.json:
        print(json.dumps({"id": sample.id, **sample.meta}, indent=1))
        return 0
    print(f"sample {sample.id} of {args.library}")
    for name, _, meaning in SAMPLE_COLUMNS:
        value = sample.meta.get(name)
        print(f"  {name:22s} {value!s:40s} # {meaning}")
    return 0


def _cmd_export(args) -> int:
    from .export import export_samples
    from .store import Library, LibraryError

    formats = ("extxyz", "lammps") if args.format == "both" else (args.format,)
    structures = (("equilibrium", "inherent") if args.structure == "both"
                  else (args.structure,))
    with Library(args.library) as lib:
        if args.ids:
            samples = lib.query(ids=args.ids, verdict=None)
            absent = sorted(set(args.ids) - {s.id for s in samples})
            if absent:
                raise LibraryError(f"{args.library}: no sample(s) with id {absent}")
        else:
            samples = _query(lib, args)
        if not samples:
            print("no sample matches; nothing exported")
            return 1
        files = export_samples(lib, samples, args.output, formats, structures)
    print(f"exported {len(samples)} sample(s) ({', '.join(structures)}; "
          f"{', '.join(formats)}): {len(files)} file(s) in {args.output}/")
    return 0


def _cmd_check(args) -> int:
    from .store import Library

    with Library(args.library) as lib:
        verdict = lib.check()
        counts = lib.count()
    print(f"{args.library}: integrity {verdict}; {counts['certified']} certified, "
          f"{counts['failed']} failed sample(s)")
    return 0 if verdict == "ok" else 1


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``swapmc library`` and its sub-commands."""
    from ..cli import HelpFormatter

    lib = subparsers.add_parser(
        "library", help="build, list, show and export glass libraries",
        formatter_class=HelpFormatter,
        description="Glass libraries: independent swap-MC chains, certified (F_s decay, no "
        "energy drift, no crystal) and quenched to inherent structures, stored in one "
        "crash-safe SQLite file.")
    sub = lib.add_subparsers(dest="library_command", required=True)

    b = sub.add_parser("build", formatter_class=HelpFormatter,
                       help="make (or continue making) the samples of a config",
                       description="Run `samples` independent chains of a run config with a "
                       "[library] table; rerunning the same command continues. Every rank of "
                       "`mpiexec -n K`, and every other build job on the same library file, "
                       "claims its next chain through the library, so any number of them "
                       "share the chains without duplicates ([library] lease_seconds: a "
                       "chain whose worker stopped is free for others after that long; "
                       "default 600 s).")
    b.add_argument("source", nargs="?", default=None,
                   help="config.toml with a [library] table, or a preset name (default: "
                        "the ka2-x10 preset)")
    b.add_argument("--samples", type=int, help="number of samples wanted ([library] samples; "
                   f"default: {LIBRARY_DEFAULTS['samples']})")
    b.add_argument("--library", help="library file ([library] path; default: "
                   f"{LIBRARY_DEFAULTS['path']})")
    b.add_argument("-T", "--temperature", type=float,
                   help="temperature, epsilon/k_B (LJ) or K (EAM) (default: the preset's)")
    b.add_argument("-N", "--n", type=int,
                   help=f"number of particles (default: {DEFAULTS['system']['n']})")
    b.add_argument("--seed", type=int,
                   help=f"base seed of the chains, >= 0 (default: {DEFAULTS['run']['seed']})")
    b.add_argument("--no-progress", action="store_true",
                   help="no progress line for the chain rank 0 is running (default: shown)")
    b.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="use MPI (auto: when launched by mpiexec/srun)")
    b.set_defaults(func=_cmd_build)

    hv = sub.add_parser("harvest", formatter_class=HelpFormatter,
                        help="store the lowest-T frames of a finished PT run",
                        description="Take the configurations at the lowest temperature of a "
                        "`swapmc temper` run (trajectories/T00.xyz), at least --stride sweeps "
                        "apart and only if the replica there has visited the highest temperature "
                        "since the previous harvested frame, certify (round trips, no energy "
                        "drift, no crystal), quench and store them. Rerunning adds nothing "
                        "twice.")
    hv.add_argument("run", help="output directory of swapmc temper")
    hv.add_argument("--library", required=True, help="library file")
    hv.add_argument("--stride", type=int,
                    help="sweeps between harvested frames (default: the round-trip time, "
                         "production rounds x replicas / completed round trips, in sweeps)")
    hv.add_argument("--min-round-trips", type=int, default=10,
                    help="round trips the run must have made")
    hv.add_argument("--max-drift-z", type=float, default=Criteria.max_drift_z,
                    help="largest |z| of the energy drift between halves that certifies")
    hv.set_defaults(func=_cmd_harvest)

    ls = sub.add_parser("ls", formatter_class=HelpFormatter,
                        help="list samples (certified by default)")
    ls.add_argument("library")
    _add_filters(ls)
    ls.add_argument("--json", action="store_true", help="print the metadata as JSON")
    ls.set_defaults(func=_cmd_ls)

    sh = sub.add_parser("show", formatter_class=HelpFormatter,
                        help="every metadata field of one sample")
    sh.add_argument("library")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_cmd_show)

    ex = sub.add_parser("export", formatter_class=HelpFormatter,
                        help="write samples as extended XYZ and/or LAMMPS data",
                        description="Export the samples given by id, or those matching the "
                        "filters, to OUTPUT/sample-<id>-<structure>.xyz/.data with an "
                        "index.csv (and the EAM potential file for metal models).")
    ex.add_argument("library")
    ex.add_argument("ids", type=int, nargs="*", help="sample ids (default: all that match)")
    _add_filters(ex)
    ex.add_argument("--format", choices=("extxyz", "lammps", "both"), default="both",
                    help="file format(s) written")
    ex.add_argument("--structure", choices=("inherent", "equilibrium", "both"),
                    default="inherent", help="which structure(s) of each sample")
    ex.add_argument("-o", "--output", default="exported", help="output directory")
    ex.set_defaults(func=_cmd_export)

    ck = sub.add_parser("check", formatter_class=HelpFormatter,
                        help="verify the library file's integrity")
    ck.add_argument("library")
    ck.set_defaults(func=_cmd_check)
    return lib
