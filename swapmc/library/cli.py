"""``swapmc library build | harvest | merge | ls | show | export | check``."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
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
                          ("library", "shards", args.shards),
                          ("library", "shard", args.shard),
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
        print(f"see the samples with: swapmc library ls {_quote(result.path)} --build "
              f"{result.build[:16]} --verdict all")
        shards = cfg["library"]["shards"]
        if shards:
            base = cfg["library"]["path"]
            stem, ext = os.path.splitext(base)
            print(f"when every shard has ended: swapmc library merge {_quote(base)} "
                  f"{_quote(stem)}.shard-*-of-{shards}{_quote(ext) if ext else ''}")
    return 0


def _quote(path: str) -> str:
    """A path as a shell word (globs in it left active)."""
    return path if re.fullmatch(r"[\w@%+=:,./*?-]+", path) else shlex.quote(path)


def _cmd_merge(args) -> int:
    from .merge import merge_libraries

    merge_libraries(args.output, args.sources)
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


def _open_all(paths):
    """The libraries named on the command line, opened for reading (closed by the caller)."""
    from .store import Library

    libs = []
    try:
        for path in paths:
            libs.append(Library(path))
    except BaseException:
        for lib in libs:
            lib.close()
        raise
    return libs


def _union(libs, args):
    """Samples matching the filters in every file, each (build, chain) once."""
    from .store import query_many

    return query_many(libs, model=args.model, build=args.build, verdict=args.verdict,
                      t_min=args.t_min, t_max=args.t_max, n=args.n, limit=args.limit)


def _report_copies(found, stream) -> None:
    for kept, other in found.conflicts:
        print(f"warning: build {kept.meta['build'][:16]} chain {kept.meta['chain']} differs "
              f"between {kept.path} (sample {kept.id}) and {other.path} (sample {other.id}); "
              "both are listed", file=stream)


def _cmd_ls(args) -> int:
    libs = _open_all(args.library)
    try:
        several = len(libs) > 1
        found = _union(libs, args)
        samples = found.samples
        if args.json:
            print(json.dumps([{"id": s.id, **({"file": s.path} if several else {}), **s.meta}
                              for s in samples], indent=1))
            return 0
        for lib in libs:
            builds = lib.builds()
            listed = sum(s.path == lib.path for s in samples)
            print(f"{lib.path}: {found.matched[lib.path]} sample(s) match"
                  + (f" ({listed} listed from this file)" if several else "")
                  + "; builds: " + ", ".join(
                      f"{b['build'][:16]} ({b['model']}, {b['certified'] or 0} certified, "
                      f"{b['failed'] or 0} failed)" for b in builds))
    finally:
        for lib in libs:
            lib.close()
    if several:
        copies = sum(len(paths) - 1 for paths in found.copies.values())
        print(f"{len(samples)} different sample(s) match in {len(libs)} files"
              + (f" ({copies} further copies in later files not listed)" if copies else ""))
        _report_copies(found, sys.stdout)
    if not samples:
        return 0
    print(f"{'id':>5s} {'model':12s} {'build':16s} {'source':9s} {'chain':>5s} {'N':>6s} "
          f"{'T':>8s} "
          f"{'P':>6s} {'verdict':9s} {'E/N':>10s} {'E_IS/N':>10s} {'tau_alpha':>10s} "
          f"{'decays':>7s} {'crystal':>7s}" + ("  file" if several else ""))
    for s in samples:
        m = s.meta
        print(f"{s.id:5d} {m['model'][:12]:12s} {m['build'][:16]:16s} {m['source']:9s} "
              f"{m['chain']:5d} "
              f"{m['n']:6d} {m['temperature']:8.4g} {_fmt(m['pressure'], '6.3g'):>6s} "
              f"{m['verdict']:9s} {m['energy']:10.5f} {_fmt(m['is_energy'], '10.5f'):>10s} "
              f"{_fmt(m['tau_alpha'], '10.4g'):>10s} {_fmt(m['decays'], '7.1f'):>7s} "
              f"{_fmt(m['crystalline_fraction'], '7.3f'):>7s}"
              + (f"  {s.path}" if several else ""))
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
    from ..io.lammps_input import check_protocol_parameters
    from .export import export_samples
    from .store import LibraryError

    formats = ("extxyz", "lammps") if args.format == "both" else (args.format,)
    lammps_params = {}
    for item in args.lammps_set:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--lammps-set {item!r}: expected NAME=VALUE, e.g. T=0.3")
        lammps_params[name.strip()] = value.strip()
    lammps_params = check_protocol_parameters(lammps_params)  # before opening anything
    structures = (("equilibrium", "inherent") if args.structure == "both"
                  else (args.structure,))
    # Positional words after the first: digits are sample ids, anything else a library file.
    paths = [args.library[0]] + [w for w in args.library[1:] if not w.isdigit()]
    ids = [int(w) for w in args.library[1:] if w.isdigit()] + list(args.ids)
    if ids and len(paths) > 1:
        raise ValueError("sample ids are per library file: with several files select samples "
                         "with the filters (--build, --t-max, ...), or export one file by id")
    libs = _open_all(paths)
    try:
        if ids:
            (lib,) = libs
            samples = lib.query(ids=ids, verdict=None)
            absent = sorted(set(ids) - {s.id for s in samples})
            if absent:
                raise LibraryError(f"{lib.path}: no sample(s) with id {absent}")
        else:
            found = _union(libs, args)
            _report_copies(found, sys.stderr)
            samples = found.samples
        if not samples:
            print("no sample matches; nothing exported")
            return 1
        files = export_samples(libs[0], samples, args.output, formats, structures,
                               naming="build-chain" if len(libs) > 1 else "id",
                               lammps_params=lammps_params)
    finally:
        for lib in libs:
            lib.close()
    print(f"exported {len(samples)} sample(s) ({', '.join(structures)}; "
          f"{', '.join(formats)}): {len(files)} file(s) in {args.output}/")
    return 0


def _cmd_check(args) -> int:
    from .merge import verify_library
    from .store import Library

    with Library(args.library) as lib:
        verdict = lib.check()
        counts = lib.count()
        good, problems = verify_library(lib) if verdict == "ok" else ([], [])
    for problem in problems:
        print(problem, file=sys.stderr)
    checksummed = sum(c.checksummed for c in good)
    samples = (f"{len(good)} sample(s) verified ({checksummed} with checksums)"
               + (f", {len(problems)} damaged" if problems else ""))
    print(f"{args.library}: integrity {verdict}; "
          + (f"{samples}; " if verdict == "ok" else "")
          + f"{counts['certified']} certified, {counts['failed']} failed sample(s)")
    return 0 if verdict == "ok" and not problems else 1


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
                       "default 600 s). Slurm array tasks on one file are such jobs. Where "
                       "POSIX locks do not work across hosts (NFS without lockd), give "
                       "--shards N and run shards 0 .. N-1 (e.g. as a Slurm array), then "
                       "`swapmc library merge`.")
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
    b.add_argument("--shards", type=int,
                   help="split the build into this many shard files, for file systems "
                        "without working POSIX locks ([library] shards; default: "
                        f"{LIBRARY_DEFAULTS['shards']}, one shared file)")
    b.add_argument("--shard", type=int,
                   help="this job's shard, 0 .. shards-1: it runs the chains k with k mod "
                        "shards = shard into <library stem>.shard-<shard>-of-<shards>.sqlite "
                        "([library] shard; default: $SLURM_ARRAY_TASK_ID)")
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

    mg = sub.add_parser("merge", formatter_class=HelpFormatter,
                        help="combine library files (shards) into one",
                        description="Copy every sample of the given library files (shards "
                        "or whole libraries) that OUTPUT lacks into OUTPUT (created if "
                        "missing), with their builds and EAM potentials. Every sample is "
                        "verified first (integrity, complete metadata, structure sizes and "
                        "values, checksums) and nothing is written if one fails. A sample is "
                        "identified by its build and chain: copies with the same result are "
                        "kept once; copies that differ stop the merge naming both files. "
                        "Merging again adds nothing; a killed merge leaves whole samples and "
                        "a rerun completes it.")
    mg.add_argument("output", help="library written (not one of the shards)")
    mg.add_argument("sources", nargs="+", help="library files to merge, e.g. "
                    "glasses.shard-*-of-16.sqlite")
    mg.set_defaults(func=_cmd_merge)

    ls = sub.add_parser("ls", formatter_class=HelpFormatter,
                        help="list samples (certified by default)",
                        description="List the samples of one or more library files. With "
                        "several files (e.g. shards) each build and chain is listed once, "
                        "with the file it was read from; ids are per file.")
    ls.add_argument("library", nargs="+", help="library file(s)")
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
                        "index.csv (and the EAM potential file for metal models). With "
                        "several library files (e.g. shards) each build and chain is "
                        "exported once, as sample-<build12>-c<chain>-<structure>, and "
                        "index.csv names the file it came from. Each model also gets "
                        "in-<hash12>.lammps (the model) and ready-to-run LAMMPS inputs of "
                        "the MD protocols, in-<hash12>.<protocol>.lammps for npt, dms, relax, "
                        "shear_aqs and shear_rate (lmp -in in-<hash12>.dms.lammps -var data "
                        "sample-<id>-inherent.data -var T 0.3 -var period 100).")
    ex.add_argument("library", nargs="+", metavar="LIBRARY",
                    help="library file(s); with one file, sample ids may follow it "
                         "(default: every sample that matches the filters)")
    ex.add_argument("--id", dest="ids", type=int, action="append", default=[], metavar="ID",
                    help="a sample id (repeatable; with one library file)")
    _add_filters(ex)
    ex.add_argument("--format", choices=("extxyz", "lammps", "both"), default="both",
                    help="file format(s) written")
    ex.add_argument("--structure", choices=("inherent", "equilibrium", "both"),
                    default="inherent", help="which structure(s) of each sample")
    ex.add_argument("--lammps-set", action="append", default=[], metavar="NAME=VALUE",
                    help="default written into the LAMMPS protocol inputs "
                    "in-<hash12>.<protocol>.lammps (npt, dms, relax, shear_aqs, shear_rate), "
                    "e.g. T=0.3 or period=100 (repeatable; lmp -var NAME VALUE still "
                    "overrides it)")
    ex.add_argument("-o", "--output", default="exported", help="output directory")
    ex.set_defaults(func=_cmd_export)

    ck = sub.add_parser("check", formatter_class=HelpFormatter,
                        help="verify the library file's integrity and every sample",
                        description="SQLite's integrity check, then every sample as `merge` "
                        "verifies it (complete metadata, structure sizes and values, "
                        "checksums); exit 1 naming each damaged sample.")
    ck.add_argument("library")
    ck.set_defaults(func=_cmd_check)
    return lib
