"""``swapmc library merge``: library files (shards) combined into one, every sample verified.

A build split into shard files (``[library] shards``) or made in several libraries ends as
one file through :func:`merge_libraries`:

- **Every sample is verified** before anything is written (:func:`check_sample`): SQLite's
  integrity check of each file; every required metadata column present, JSON columns that
  decode to consistent values (species, masses, a composition that sums to N); the build
  registered, and for EAM models the potential stored under its SHA-256; each structure's
  arrays of the sizes N particles need, finite, with species that match the composition; the
  sample's digest (:func:`~swapmc.library.store.sample_digest`, recorded when it was
  written) unchanged; and in a shard file, a chain that belongs to the file's shard. A
  sample that fails any of these stops the merge with one line naming the file, the sample
  and what is wrong; nothing is written.
- **A sample is stored once.** Samples are identified by ``(build, chain)``: the build
  fingerprint and the chain index. Chain k of a build is seeded from (seed, k), so every
  run of it gives the same result; two copies that agree (every byte of the structures and
  every metadata column except where, when and by which version they were made,
  :data:`~swapmc.library.store.PROVENANCE_COLUMNS`) are kept once. Two copies that differ
  are a **conflict**: the merge stops with both files, the chain and what differs.
- **Idempotent and crash-safe.** Samples already in the output are skipped after the same
  comparison, so merging again adds nothing; each sample is copied in its own transaction
  (row, structures and digest), so a merge killed at any moment leaves the output holding
  whole samples only, and running it again completes it. Build registrations and EAM
  potentials are copied too; claims and shard records are not (they describe work in
  progress, not samples).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .store import (
    COLUMN_NAMES,
    JSON_COLUMNS,
    PROVENANCE_COLUMNS,
    SAMPLE_COLUMNS,
    STRUCTURE_BLOBS,
    STRUCTURE_KINDS,
    Library,
    LibraryError,
    sample_digest,
)

# What a structure's byte strings must hold for N particles: (bytes per particle or per
# structure, dtype, whether the length scales with N).
_BLOB_LAYOUT = {"positions": (24, "<f8", True), "images": (24, "<i8", True),
                "species": (4, "<i4", True), "cell": (48, "<f8", False)}
_REQUIRED = [c for c, sql, _ in SAMPLE_COLUMNS if "NOT NULL" in sql]


class SampleError(LibraryError):
    """A stored sample is damaged or incomplete."""


class MergeConflict(LibraryError):
    """Two files hold different results for the same build and chain (or the same build
    with different models)."""


@dataclass(frozen=True)
class Checked:
    """A verified sample.

    Attributes
    ----------
    path : str
        Its library file.
    sample_id : int
        Its id there.
    build : str
        Build fingerprint.
    chain : int
        Chain index.
    result : str
        SHA-256 of the sample without :data:`PROVENANCE_COLUMNS`: equal for two runs of one
        chain.
    checksummed : bool
        Whether the file recorded a digest for it (files written before digests existed
        did not; such samples are verified by their sizes and values only).
    """

    path: str
    sample_id: int
    build: str
    chain: int
    result: str
    checksummed: bool


@dataclass
class MergeResult:
    """What :func:`merge_libraries` did.

    Attributes
    ----------
    path : str
        The output library.
    verified : int
        Samples read and verified in the files merged.
    added : int
        Samples copied into the output.
    present : int
        Samples the output already held (the same result): skipped.
    duplicates : int
        Samples also held by an earlier file of the same merge (the same result): copied
        once.
    builds : int
        Build registrations copied.
    potentials : int
        EAM potentials copied.
    per_file : list of dict
        ``{"path", "samples", "added", "present", "duplicates"}`` per file merged.
    """

    path: str
    verified: int = 0
    added: int = 0
    present: int = 0
    duplicates: int = 0
    builds: int = 0
    potentials: int = 0
    per_file: list = field(default_factory=list)


def _label(path: str, sample_id: int, row) -> str:
    build = row["build"] if row is not None and "build" in row.keys() else None
    chain = row["chain"] if row is not None and "chain" in row.keys() else None
    what = f"sample {sample_id}"
    if build is not None:
        what += f" (build {str(build)[:16]}, chain {chain})"
    return f"{path}: {what}"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _metadata_problems(row, builds: dict, potentials: set) -> list[str]:
    keys = set(row.keys())
    missing = [c for c in _REQUIRED if c not in keys or row[c] is None]
    if missing:
        return [f"metadata incomplete: {', '.join(missing)} missing"]
    problems = []
    decoded = {}
    for c in JSON_COLUMNS:
        if c in keys and row[c] is not None:
            try:
                decoded[c] = json.loads(row[c])
            except (TypeError, ValueError):
                problems.append(f"metadata column {c} is not valid JSON ({str(row[c])[:40]!r})")
    if problems:
        return problems
    n = row["n"]
    names = decoded["species_names"]
    if not isinstance(n, int) or n < 1:
        problems.append(f"n = {n!r} is not a positive number of particles")
    if not (isinstance(names, list) and names and all(isinstance(x, str) for x in names)):
        problems.append(f"species_names {names!r} is not a list of names")
        return problems
    masses = decoded["masses"]
    if not (isinstance(masses, list) and len(masses) == len(names)
            and all(_finite(m) and m > 0 for m in masses)):
        problems.append(f"masses {masses!r} do not give one positive mass per species {names}")
    comp = decoded["composition"]
    if not (isinstance(comp, dict) and set(comp) <= set(names)
            and all(isinstance(k, int) and k >= 0 for k in comp.values())
            and sum(comp.values()) == n):
        problems.append(f"composition {comp!r} does not count the n = {n} particles of "
                        f"species {names}")
    elements = decoded.get("elements")
    if elements is not None and not isinstance(elements, dict):
        problems.append(f"elements {elements!r} is not a table of element labels")
    for column, allowed in (("verdict", ("certified", "failed")), ("kind", ("lj", "eam")),
                            ("units", ("lj", "metal")), ("source", ("chain", "tempering"))):
        if row[column] not in allowed:
            problems.append(f"{column} = {row[column]!r} is not one of {allowed}")
    if not isinstance(row["chain"], int) or row["chain"] < 0:
        problems.append(f"chain = {row['chain']!r} is not a chain index")
    for column in ("temperature", "density", "energy"):
        if not _finite(row[column]):
            problems.append(f"{column} = {row[column]!r} is not a finite number")
    registered = builds.get(row["build"])
    if registered is None:
        problems.append(f"its build {row['build'][:16]} is not registered in the file")
    elif registered["model_hash"] != row["model_hash"]:
        problems.append(f"model hash {row['model_hash'][:12]} differs from its build's "
                        f"{registered['model_hash'][:12]}")
    if row["kind"] == "eam" and row["model_hash"] not in potentials:
        problems.append(f"its EAM potential {row['model_hash'][:12]} is not stored in the file")
    return problems


def _structure_problems(row, structures: dict) -> list[str]:
    problems = []
    if "equilibrium" not in structures:
        problems.append("the equilibrium structure is missing")
    unknown = set(structures) - set(STRUCTURE_KINDS)
    if unknown:
        problems.append(f"unknown structure kind(s) {sorted(unknown)}")
    n = row["n"]
    names = json.loads(row["species_names"])
    comp = json.loads(row["composition"])
    counts = np.array([comp.get(name, 0) for name in names])
    for kind in STRUCTURE_KINDS:
        if kind not in structures:
            continue
        arrays = {}
        for name in STRUCTURE_BLOBS:
            size, dtype, per_particle = _BLOB_LAYOUT[name]
            blob = structures[kind][name]
            want = size * n if per_particle else size
            if not isinstance(blob, bytes) or len(blob) != want:
                got = len(blob) if isinstance(blob, bytes) else type(blob).__name__
                problems.append(f"{kind} {name} hold {got} bytes, "
                                + (f"{n} particles need {want}" if per_particle
                                   else f"a cell needs {want}"))
                continue
            arrays[name] = np.frombuffer(blob, dtype)
        if "positions" in arrays and not np.all(np.isfinite(arrays["positions"])):
            problems.append(f"{kind} positions are not all finite")
        if "cell" in arrays:
            cell = arrays["cell"]
            if not (np.all(np.isfinite(cell)) and np.all(cell[:3] > 0)):
                problems.append(f"{kind} cell {cell.tolist()} is not a box (finite, lengths > 0)")
        if "species" in arrays:
            species = arrays["species"]
            if species.size and (species.min() < 0 or species.max() >= len(names)):
                problems.append(f"{kind} species indices outside 0 .. {len(names) - 1}")
            elif not np.array_equal(np.bincount(species, minlength=len(names)), counts):
                problems.append(f"{kind} species do not match the composition {comp}")
    return problems


def check_sample(lib: Library, sample_id: int, builds: dict | None = None,
                 potentials: set | None = None) -> tuple[Checked | None, list[str]]:
    """Verify one stored sample (see the module docstring).

    Parameters
    ----------
    lib : Library
        Its library.
    sample_id : int
        Its id.
    builds : dict, optional
        ``{build: builds row}`` of the library (read when not given).
    potentials : set, optional
        Model hashes of the library's stored potentials (read when not given).

    Returns
    -------
    (Checked or None, list of str)
        The verified sample, or None and the problems found, each a phrase that
        :func:`sample_label` prefixes with the file and sample.
    """
    if builds is None:
        builds = {r["build"]: r for r in lib.build_rows()}
    if potentials is None:
        potentials = {p["model_hash"] for p in lib.potentials()}
    row, structures, stored = lib.raw_sample(sample_id)
    problems = _metadata_problems(row, builds, potentials)
    if not problems:
        problems = _structure_problems(row, structures)
    if not problems and stored is not None and sample_digest(row, structures) != stored:
        problems.append("its checksum does not match: the stored data changed after the "
                        "sample was written")
    if problems:
        return None, problems
    result = sample_digest(row, structures, exclude=PROVENANCE_COLUMNS)
    return Checked(lib.path, int(sample_id), row["build"], int(row["chain"]), result,
                   stored is not None), []


def sample_label(path: str, lib: Library, sample_id: int) -> str:
    """``"<file>: sample <id> (build <16 hex>, chain <k>)"``, for messages."""
    try:
        row, _, _ = lib.raw_sample(sample_id)
    except LibraryError:
        row = None
    return _label(path, sample_id, row)


def _file_problems(lib: Library) -> list[str]:
    unknown = set(lib.sample_columns()) - set(COLUMN_NAMES) - {"id"}
    if unknown:
        return [f"sample column(s) {sorted(unknown)} unknown to this swapmc (written by a "
                "newer version? merge with that version)"]
    problems = []
    for p in lib.potentials():
        if hashlib.sha256(p["text"].encode()).hexdigest() != p["model_hash"]:
            problems.append(f"the stored potential {p['model_hash'][:12]} does not match its "
                            "SHA-256")
    return problems


def verify_library(lib: Library) -> tuple[list[Checked], list[str]]:
    """Verify every sample of a library (and its potentials and shard record).

    Returns
    -------
    (list of Checked, list of str)
        The samples that verified, and one message per problem found (file, sample, what).
    """
    problems = [f"{lib.path}: {p}" for p in _file_problems(lib)]
    if problems:
        return [], problems
    builds = {r["build"]: r for r in lib.build_rows()}
    potentials = {p["model_hash"] for p in lib.potentials()}
    shards = lib.shards()
    good = []
    for sample_id in lib.sample_ids():
        checked, found = check_sample(lib, sample_id, builds, potentials)
        if checked is not None and checked.build in shards:
            shard, n = shards[checked.build]
            if checked.chain % n != shard:
                found = [f"chain {checked.chain} is not in the file's shard {shard} of {n} "
                         f"(chains k with k mod {n} = {shard})"]
                checked = None
        if checked is None:
            label = sample_label(lib.path, lib, sample_id)
            problems += [f"{label}: {p}" for p in found]
        else:
            good.append(checked)
    return good, problems


def describe_difference(a: Library, a_id: int, b: Library, b_id: int) -> str:
    """What differs between two stored samples (metadata columns other than provenance,
    and structures), as one phrase."""
    row_a, st_a, _ = a.raw_sample(a_id)
    row_b, st_b, _ = b.raw_sample(b_id)
    parts = []
    for c in COLUMN_NAMES:
        if c in PROVENANCE_COLUMNS:
            continue
        va = row_a[c] if c in row_a.keys() else None
        vb = row_b[c] if c in row_b.keys() else None
        if va != vb:
            parts.append(f"{c} {va!r} vs {vb!r}")
    for kind in STRUCTURE_KINDS:
        if (kind in st_a) != (kind in st_b):
            parts.append(f"{kind} structure only in {a.path if kind in st_a else b.path}")
            continue
        if kind not in st_a:
            continue
        for name in STRUCTURE_BLOBS:
            ba, bb = bytes(st_a[kind][name]), bytes(st_b[kind][name])
            if ba == bb:
                continue
            dtype = _BLOB_LAYOUT[name][1]
            if len(ba) == len(bb):
                delta = np.abs(np.frombuffer(ba, dtype).astype(float)
                               - np.frombuffer(bb, dtype).astype(float))
                parts.append(f"{kind} {name} (max |difference| {delta.max():.3g})")
            else:
                parts.append(f"{kind} {name} ({len(ba)} vs {len(bb)} bytes)")
    if not parts:
        return "only in columns outside the comparison"
    shown = parts[:4]
    if len(parts) > 4:
        shown.append(f"and {len(parts) - 4} more")
    return "; ".join(shown)


def _conflict(key, first: Checked, first_lib: Library, other: Checked,
              other_lib: Library, tail: str) -> MergeConflict:
    build, chain = key
    diff = describe_difference(first_lib, first.sample_id, other_lib, other.sample_id)
    return MergeConflict(
        f"build {build[:16]} chain {chain} is stored with different results in "
        f"{first.path} (sample {first.sample_id}) and {other.path} (sample "
        f"{other.sample_id}): {diff}; {tail}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def merge_libraries(out: str, sources: list[str], log=print) -> MergeResult:
    """Copy every sample of ``sources`` that ``out`` lacks into ``out`` (created if
    missing), after verifying all of them; see the module docstring.

    Parameters
    ----------
    out : str
        The library written (a shared library file, not a shard file).
    sources : list of str
        Library files to merge (shards or whole libraries), in order.
    log : callable
        One line per file merged and a summary.

    Returns
    -------
    MergeResult

    Raises
    ------
    SampleError
        A sample (or a file) fails verification; nothing is written.
    MergeConflict
        Two files hold different results for one build and chain, or one build with
        different models; nothing is written (unless another process stored a differing
        sample in ``out`` while this merge was copying).
    LibraryError
        A file is missing or not a library, ``out`` is among ``sources``, or ``out`` is a
        shard file.
    """
    if not sources:
        raise ValueError("swapmc library merge needs the output library and at least one "
                         "library file to merge")
    unique = []
    for path in sources:
        if os.path.exists(out) and _same_file(out, path):
            raise LibraryError(f"{path}: is the output library itself; give the output first "
                               "and the files to merge after it (merge OUT SHARD...)")
        if not any(_same_file(path, seen) for seen in unique):
            unique.append(path)
    result = MergeResult(out)
    present_keys: dict = {}
    builds: dict = {}  # build -> (file, builds row) of its first registration
    reader = Library(out) if os.path.exists(out) else None
    libraries: dict = {}
    try:
        if reader is not None:
            shards = reader.shards()
            if shards:
                build, (i, n) = next(iter(shards.items()))
                raise LibraryError(
                    f"{out}: is shard {i} of {n} of build {build[:16]}, not a library to merge "
                    "into; give a new or shared library file first (merge OUT SHARD...)")
            builds = {r["build"]: (out, r) for r in reader.build_rows()}
            present_keys = {(s.meta["build"], s.meta["chain"]): s.id
                            for s in reader.query(verdict=None)}
        for path in unique:
            libraries[path] = Library(path)
        result = _merge(out, reader, libraries, present_keys, builds, log)
    finally:
        for lib in libraries.values():
            lib.close()
        if reader is not None:
            reader.close()
    return result


def _merge(out, reader, libraries, present_keys, builds, log) -> MergeResult:
    result = MergeResult(out)
    plan, potentials = _verify_and_plan(out, reader, libraries, present_keys, builds, result)
    counts = _copy(out, libraries, plan, builds, potentials, result, log)
    log(f"{out}: {result.added} sample(s) added ({result.builds} build(s), "
        f"{result.potentials} potential(s) registered); it holds {counts['certified']} "
        f"certified and {counts['failed']} failed sample(s)")
    return result


def _verify_and_plan(out, reader, libraries, present_keys, builds, result):
    """Pass 1: verify every file and sample and list the samples ``out`` lacks (first copy
    of each); nothing is written. Returns ``({path: [Checked]}, {model_hash: potential})``."""
    seen: dict = {}  # (build, chain) -> Checked of its first copy among the sources
    potentials: dict = {}
    plan: dict = {path: [] for path in libraries}
    for path, lib in libraries.items():
        verdict = lib.check()
        if verdict != "ok":
            raise SampleError(f"{path}: SQLite integrity check failed "
                              f"({verdict.splitlines()[0]}); nothing merged")
        for row in lib.build_rows():
            where, known = builds.setdefault(row["build"], (path, row))
            if known["model_hash"] != row["model_hash"]:
                raise MergeConflict(
                    f"build {row['build'][:16]} is registered with model "
                    f"{known['model_hash'][:12]} in {where} and {row['model_hash'][:12]} in "
                    f"{path} (an EAM potential file that changed between jobs?); nothing "
                    "merged")
        for p in lib.potentials():
            potentials.setdefault(p["model_hash"], p)
        good, problems = verify_library(lib)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise SampleError(f"{problems[0]}{more}; nothing merged")
        stats = {"path": path, "samples": len(good), "added": 0, "present": 0,
                 "duplicates": 0}
        for checked in good:
            key = (checked.build, checked.chain)
            first = seen.get(key)
            if first is not None:
                if first.result != checked.result:
                    raise _conflict(key, first, libraries[first.path], checked, lib,
                                    "nothing merged")
                stats["duplicates"] += 1
            elif key in present_keys:
                mine, found = check_sample(reader, present_keys[key])
                if mine is None:
                    raise SampleError(f"{sample_label(out, reader, present_keys[key])}: "
                                      f"{found[0]}; nothing merged")
                if mine.result != checked.result:
                    raise _conflict(key, mine, reader, checked, lib, "nothing merged")
                stats["present"] += 1
            else:
                seen[key] = checked
                plan[path].append(checked)
        result.verified += len(good)
        result.per_file.append(stats)
    return plan, potentials


def _copy(out, libraries, plan, builds, potentials, result, log) -> dict:
    """Pass 2: registrations, potentials, then each planned sample in its own transaction.
    Returns the output's counts."""
    with Library(out, create=True) as target:
        for where, row in builds.values():
            if where != out:
                result.builds += target.copy_build(row)
        for model_hash, p in potentials.items():
            if target.potential(model_hash) is None:
                target.add_potential(model_hash, p["kind"], p["text"])
                result.potentials += 1
        for stats in result.per_file:
            path = stats["path"]
            lib = libraries[path]
            for checked in plan[path]:
                row, structures, stored = lib.raw_sample(checked.sample_id)
                if sample_digest(row, structures, exclude=PROVENANCE_COLUMNS) != checked.result:
                    raise SampleError(f"{_label(path, checked.sample_id, row)}: changed while "
                                      "being merged (is a build still writing this file?); "
                                      "merge again when it has ended")
                new_id = target.copy_sample(row, structures)
                if new_id is None:
                    # Stored meanwhile by another process (a build writing ``out``).
                    other = target.sample_id(checked.build, checked.chain)
                    mine, found = check_sample(target, other)
                    if mine is None:
                        raise SampleError(f"{sample_label(out, target, other)}: {found[0]}; "
                                          "merge stopped")
                    if mine.result != checked.result:
                        raise _conflict((checked.build, checked.chain), checked, lib, mine,
                                        target, "merge stopped")
                    stats["present"] += 1
                    continue
                if stored is not None and target.stored_digest(new_id) != stored:
                    raise SampleError(f"{_label(path, checked.sample_id, row)}: its copy in "
                                      f"{out} does not reproduce its checksum")
                stats["added"] += 1
            result.added += stats["added"]
            result.present += stats["present"]
            result.duplicates += stats["duplicates"]
            log(f"{path}: {stats['samples']} sample(s) verified; {stats['added']} added, "
                f"{stats['present']} already in {out}, {stats['duplicates']} also in an "
                "earlier file")
        return target.count()
