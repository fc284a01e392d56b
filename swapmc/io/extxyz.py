"""Extended XYZ (extxyz) snapshots and trajectories.

One frame is (the second line, one line in the file, is broken here for width)::

    2
    Lattice="9.4 0.0 0.0 0.0 9.4 0.0 0.0 0.0 9.4" Properties=species:S:1:pos:R:3:type:I:1:
        image:I:3 pbc="T T T" step=10 energy=-6.9 energy_unit="epsilon"
    A 0.1 2.3456789012345678 4.0 1 0 0 -1
    B 7.25 0.5 9.3 2 1 0 0

* ``Lattice`` lists the three edge vectors a, b, c one after the other. swapmc boxes follow
  the LAMMPS convention (:class:`swapmc.box.Box`: a along x, b in the xy plane, origin 0),
  so ``Lattice = (lx 0 0  xy ly 0  xz yz lz)``.
* Columns: ``species`` (species name), ``pos`` (Cartesian position, length units),
  ``type`` (1-based species index, as in LAMMPS: swapmc writes every file in the model's
  species order, so a species has the same type in every file and in the LAMMPS data
  files), ``image`` (periodic image counters, unwrapped = pos + image @ h.T) and, for MD
  states only, ``vel`` (length / time units). With ``element_names`` (see
  :func:`write_extxyz`) a ``type_name`` column is added; when the species masses are known,
  ``masses`` and ``mass`` columns (mass units) are added. Callers may append their own
  per-atom columns (``columns``, e.g. D²_min), which OVITO imports as user properties.
* Floats are written with Python's ``repr`` (the shortest string that parses back to the
  same float64), so a write/read round trip is bit-identical.
* Frames of a trajectory are simply concatenated; :func:`iter_extxyz` reads them one by one.

Compatibility (checked against ASE 3.29 and the OVITO 3 importer source):

* **ASE** (``ase.io.read(path, format="extxyz")``) turns the ``species`` column into
  chemical elements and raises ``KeyError`` for any name that is not one (e.g. ``"A"`` of
  the Kob-Andersen model), while ``"B"`` and ``"C"`` would silently become boron and
  carbon. Pass ``element_names={"A": "Ar", "B": "Ne", ...}`` to write element symbols in
  ``species`` and keep the model names in a ``type_name`` column; ASE then reads the file
  and exposes ``atoms.arrays["type_name"]``, ``["type"]``, ``["image"]`` and ``["vel"]``
  (as plain arrays: ASE does not treat ``vel`` as velocities). Info keys become
  ``atoms.info``.
* **OVITO** maps both ``species`` and ``type`` to its ``Particle Type`` property; the first
  column wins, so particle types are named after the ``species`` column (model names, or
  element symbols when ``element_names`` is used, which also gives element colours and
  radii) and the integer ``type`` column is not imported. ``type_name`` is skipped with a
  warning (OVITO imports no string columns other than types). ``image`` and ``vel`` become
  user properties named ``image`` and ``vel``: OVITO's standard names for those are
  ``map_shift`` and ``velo``, which this reader also accepts. Info keys become global
  attributes.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np

from ..box import Box
from ..system import System
from .atomic import atomic_write, fsync_directory
from .lammps_data import _resolve_masses

__all__ = ["ELEMENT_SYMBOLS", "iter_extxyz", "read_extxyz", "write_extxyz"]

#: Chemical symbols accepted as ``element_names`` values: the 118 elements plus ASE's
#: dummy symbol ``"X"`` (atomic number 0).
ELEMENT_SYMBOLS = frozenset(
    """X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga
    Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm
    Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa
    U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split()
)

# Keys that the format (or a reader) interprets itself; allowing them in ``info`` would
# corrupt the frame. OVITO takes any quoted ``...origin="x y z"`` as the cell origin, hence
# the suffix rule.
_RESERVED_KEYS = ("lattice", "properties", "pbc")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")
# Characters that ASE's or OVITO's comment-line parsers cannot carry inside a quoted value.
_BAD_STRING_CHARS = set('"{}\n\r')
_TRUE = {"t", "true"}
_FALSE = {"f", "false"}

# Column name -> accepted aliases written by other programs (OVITO's standard names).
_IMAGE_COLUMNS = ("image", "map_shift")
_VELOCITY_COLUMNS = ("vel", "velo")
_MASS_COLUMNS = ("masses", "mass")


# ----------------------------------------------------------------------------- writing
def _check_token(value: str, what: str) -> str:
    """A per-atom string must be one non-empty whitespace-free token."""
    if not value or value.split() != [value] or '"' in value:
        raise ValueError(f"{what} {value!r} cannot be written as an extxyz column entry")
    return value


def _format_info_value(key: str, value) -> str:
    # bool before Integral: bool is a subclass of int.
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return repr(float(value))
    if isinstance(value, str):
        # ASE's parser drops an empty quoted value and swallows the next key; neither ASE
        # nor OVITO understands escapes, so quotes and braces cannot be represented.
        if not value or _BAD_STRING_CHARS.intersection(value):
            raise ValueError(
                f"info[{key!r}] = {value!r}: strings must be non-empty and contain no "
                'quotes ("), braces or line breaks'
            )
        return f'"{value}"'
    raise TypeError(
        f"info[{key!r}] has unsupported type {type(value).__name__}; use a number, bool or "
        "string (put units in a separate key, e.g. energy_unit)"
    )


def _format_info(info: Mapping | None) -> str:
    if not info:
        return ""
    parts = []
    for key, value in info.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"info key {key!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        low = key.lower()
        if low in _RESERVED_KEYS or low.endswith("origin"):
            raise ValueError(f"info key {key!r} is reserved by the extxyz format")
        parts.append(f"{key}={_format_info_value(key, value)}")
    return " " + " ".join(parts)


def _species_column(names: Sequence[str], element_names: Mapping | None) -> list[str]:
    """Strings written in the ``species`` column, one per species."""
    for name in names:
        _check_token(name, "species name")
    if element_names is None:
        return list(names)
    unknown = set(element_names) - set(names)
    if unknown:
        raise ValueError(
            f"element_names maps species {sorted(unknown)} that the system does not have "
            f"(species: {list(names)})"
        )
    symbols = [str(element_names.get(name, name)) for name in names]
    bad = [(n, s) for n, s in zip(names, symbols, strict=True) if s not in ELEMENT_SYMBOLS]
    if bad:
        # The only purpose of element_names is a file that ASE can read; a species left
        # with a non-element name would make ASE fail anyway, so fail here, clearly.
        raise ValueError(
            "element_names must give every species a chemical symbol (or 'X'); not "
            "elements: " + ", ".join(f"{n!r} -> {s!r}" for n, s in bad)
        )
    return symbols


def _extra_columns(columns: Mapping | None, n: int, taken) -> list:
    """Validated extra per-atom columns: [(name, kind "R"/"I", rows as lists)]."""
    if not columns:
        return []
    out = []
    for key, values in columns.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"column name {key!r} must be an identifier "
                             "([A-Za-z_][A-Za-z0-9_]*)")
        if key.lower() in taken:
            raise ValueError(f"column name {key!r} is already used by the writer "
                             f"({', '.join(sorted(taken))})")
        arr = np.asarray(values)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
            raise ValueError(f"column {key!r} must have shape ({n},) or ({n}, k), got "
                             f"{np.shape(values)}")
        if arr.dtype.kind in "biu":
            kind, arr = "I", arr.astype(np.int64)
        elif arr.dtype.kind == "f":
            kind, arr = "R", arr.astype(np.float64)
            bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
            if bad.size:
                # OVITO's importer does not read nan/inf; refuse rather than write them.
                raise ValueError(f"column {key!r} has a non-finite value at particle "
                                 f"{int(bad[0])} ({bad.size} such particles)")
        else:
            raise TypeError(f"column {key!r} must hold integers or floats, got dtype "
                            f"{arr.dtype}")
        taken = taken | {key.lower()}
        out.append((key, kind, arr.tolist()))
    return out


def _format_frame(system: System, info: Mapping | None, element_names: Mapping | None,
                  masses=None, columns: Mapping | None = None) -> str:
    names = system.species_names
    symbols = _species_column(names, element_names)
    mass = _resolve_masses(system, masses, unit_default=False)
    extra = _extra_columns(columns, system.n, frozenset(
        {"species", "pos", "type", "type_name", "masses", "mass", "image", "map_shift",
         "vel", "velo"}))
    lattice = " ".join(repr(float(x)) for x in system.box.matrix.T.ravel())
    props = ["species:S:1", "pos:R:3", "type:I:1"]
    row_fmt = ["%s %r %r %r %d"]
    if element_names is not None:
        props.append("type_name:S:1")
        row_fmt.append("%s")
    if mass is not None:
        # The same value under both programs' names: ASE's Atoms.get_masses() reads the
        # "masses" column, OVITO's importer maps "mass" to its Mass property. Without them
        # both fall back to element masses (Ni for KA's A, 1.0 for the dopant X).
        props += ["masses:R:1", "mass:R:1"]
        row_fmt.append("%r %r")
    props.append("image:I:3")
    row_fmt.append("%d %d %d")
    has_vel = system.velocities is not None
    if has_vel:
        props.append("vel:R:3")
        row_fmt.append("%r %r %r")
    for key, kind, rows in extra:
        props.append(f"{key}:{kind}:{len(rows[0])}")
        row_fmt.append(" ".join(["%r" if kind == "R" else "%d"] * len(rows[0])))
    header = (
        f'{system.n}\nLattice="{lattice}" Properties={":".join(props)} pbc="T T T"'
        f"{_format_info(info)}\n"
    )
    fmt = " ".join(row_fmt) + "\n"

    # tolist() yields Python floats/ints: %r of a Python float is its shortest exact repr,
    # whereas numpy scalars would print as "np.float64(...)".
    species = system.species.tolist()
    pos = system.positions.tolist()
    img = system.images.tolist()
    vel = system.velocities.tolist() if has_vel else None
    lines = []
    for i in range(system.n):
        s = species[i]
        row = [symbols[s], *pos[i], s + 1]
        if element_names is not None:
            row.append(names[s])
        if mass is not None:
            row += (mass[s], mass[s])
        row.extend(img[i])
        if has_vel:
            row.extend(vel[i])
        for _, _, rows in extra:
            row.extend(rows[i])
        lines.append(fmt % tuple(row))
    return header + "".join(lines)


def write_extxyz(
    target,
    system: System,
    *,
    info: Mapping | None = None,
    append: bool = False,
    element_names: Mapping[str, str] | None = None,
    masses: Sequence[float] | Mapping[str, float] | None = None,
    columns: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write one extended-XYZ frame.

    Parameters
    ----------
    target : str, os.PathLike or writable text file
        A path, or an open text file to which the frame is written at its current
        position (``append`` is then irrelevant and ignored).
    system : System
        The configuration. Positions (N, 3) and the box (length units), images (N, 3) and,
        when not None, velocities (N, 3) (length / time units) are written exactly.
    info : mapping, optional
        Extra per-frame ``key=value`` pairs for the comment line, e.g.
        ``{"step": 1000, "energy": -6.9, "energy_unit": "epsilon"}``. Keys must be
        identifiers and not ``Lattice``, ``Properties``, ``pbc`` or end in ``origin``;
        values must be ints, floats (written exactly), bools (``T``/``F``) or non-empty
        strings without quotes, braces or line breaks (written quoted). ``system.info`` is
        not written automatically: pass ``info=system.info`` to keep it.
    append : bool
        For a path: add the frame at the end of the file (created if missing), then flush
        and fsync it. Appending is not atomic; a restart should cut the file back to its
        size at the checkpoint with :func:`swapmc.io.truncate_file`. When False the whole
        file is replaced atomically (:func:`swapmc.io.atomic_write`).
    element_names : mapping of str to str, optional
        Chemical symbol for each model species, e.g. ``{"A": "Ar", "B": "Ne"}``. When given,
        the ``species`` column holds these symbols (all species must end up with a valid
        symbol; species already named after an element may be left out) and an extra
        ``type_name:S:1`` column keeps the model names, which :func:`read_extxyz` restores.
        Use it whenever the file is meant for ASE: ASE rejects non-element names such as
        ``"A"`` (``KeyError``) and reads ``"B"``/``"C"`` as boron/carbon. OVITO shows
        particle types named after the ``species`` column either way.
    masses : sequence of float or mapping of str to float, optional
        Mass of each species (mass units), in species order or keyed by species name;
        default ``system.info["masses"]`` when it holds one number per species (as left by
        the readers). When known, each particle's mass is written twice, as ``masses:R:1``
        (ASE: ``atoms.get_masses()``) and ``mass:R:1`` (OVITO: the Mass property), so
        neither program substitutes the mass of the element shown (58.69 for KA's A drawn
        as Ni, 1.0 for a dopant X). Otherwise no mass columns are written.
    columns : mapping of str to array_like, optional
        Extra per-atom columns after the standard ones, in the mapping's order, e.g.
        ``{"d2min": d2 (N,), "u_na": u (N, 3)}``: float arrays become ``name:R:k``
        (written exactly, finite values only), integer or bool arrays ``name:I:k``. Names
        must be identifiers not used by the standard columns. OVITO imports each as a user
        property of that name (colour by it directly); ASE exposes ``atoms.arrays[name]``;
        :func:`read_extxyz` ignores them.

    Raises
    ------
    ValueError
        For an unusable info key or value, a species name containing whitespace, an
        incomplete ``element_names``, wrong masses, or an extra column with a bad name,
        shape or a non-finite value. Nothing is written in that case.
    TypeError
        For an info value or extra column of unsupported type.

    Notes
    -----
    What other programs see (ASE 3.29; OVITO 3 importer):

    ========================  ==========================  ==============================
    column                    ASE ``ase.io.read``         OVITO
    ========================  ==========================  ==============================
    ``species`` model names   ``KeyError`` for "A";       Particle Type, named "A", "B"
    ("A", "B", "C")           "B"/"C" read as B, C atoms
    ``species`` with          chemical symbols            Particle Type named after the
    ``element_names``                                     elements (element colours/radii)
    ``type`` (1-based)        ``arrays["type"]``          ignored (Particle Type already
                                                          taken by ``species``)
    ``type_name``             ``arrays["type_name"]``     skipped with a warning
    ``masses`` (if known)     ``atoms.get_masses()``      user property ``masses``
    ``mass`` (if known)       ``arrays["mass"]``          Mass
    ``image``                 ``arrays["image"]``         user property ``image``
    ``vel``                   ``arrays["vel"]`` (not      user property ``vel``
                              ``atoms.get_velocities``)
    info keys                 ``atoms.info``              global attributes
    ========================  ==========================  ==============================

    Positions and the cell are identical in both programs (ASE's ``atoms.cell`` rows are
    the edge vectors a, b, c, i.e. ``box.matrix.T``).
    """
    frame = _format_frame(system, info, element_names, masses, columns)
    if hasattr(target, "write"):
        target.write(frame)
        return
    path = os.fspath(target)
    if append:
        created = not os.path.exists(path)
        with open(path, "a", encoding="utf-8", newline="\n") as f:
            f.write(frame)
            f.flush()
            os.fsync(f.fileno())
        if created:
            # A new file's directory entry must reach the disk too, or a crash could
            # lose the whole file even though its contents were fsynced.
            fsync_directory(os.path.dirname(os.path.abspath(path)))
    else:
        with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(frame)


# ----------------------------------------------------------------------------- reading
def _error(name: str, lineno: int, reason: str) -> ValueError:
    return ValueError(f"{name}:{lineno}: {reason}")


@contextmanager
def _open_source(source):
    if hasattr(source, "read"):
        yield source, str(getattr(source, "name", "<stream>"))
    else:
        path = os.fspath(source)
        with open(path, encoding="utf-8") as f:
            yield f, path


def _raw_frames(f, name: str) -> Iterator[tuple[int, str, list[str]]]:
    """Split a file into frames without parsing the atom lines.

    Yields ``(line number of the count line, comment line, atom lines)``. Kept separate
    from parsing so that ``read_extxyz(index=-1)`` skips earlier frames cheaply.
    """
    lines = iter(f)
    lineno = 0
    for line in lines:
        lineno += 1
        text = line.strip()
        if not text:
            # Trailing blank lines are common (editors add them); anything after a blank
            # line would be silently lost by other readers, so it is an error here.
            for rest in lines:
                lineno += 1
                if rest.strip():
                    raise _error(
                        name,
                        lineno,
                        "text after a blank line (frames must follow each "
                        "other without blank lines)",
                    )
            return
        start = lineno
        try:
            n = int(text)
        except ValueError:
            raise _error(
                name, lineno, f"expected the number of atoms of a frame, got {text[:80]!r}"
            ) from None
        if n < 1:
            raise _error(name, lineno, f"a frame needs at least one atom, got {n}")
        comment = next(lines, None)
        if comment is None:
            raise _error(name, lineno, "file ends before the frame's comment line")
        lineno += 1
        atoms = list(itertools.islice(lines, n))
        if len(atoms) < n:
            raise _error(
                name,
                lineno + len(atoms),
                f"file ends after {len(atoms)} of the {n} atom lines of the frame "
                f"starting at line {start} (truncated write?)",
            )
        lineno += n
        yield start, comment, atoms


def _parse_comment(line: str, name: str, lineno: int) -> list[tuple[str, str, bool]]:
    """Split the comment line into ``(key, value, quoted)`` triples.

    Accepts ``key=value``, ``key="quoted value"``, ``key={braced value}`` and a bare
    ``key`` (a true flag, as in ASE); spaces around ``=`` are tolerated.
    """
    pairs = []
    i, end = 0, len(line)
    while True:
        while i < end and line[i].isspace():
            i += 1
        if i >= end:
            return pairs
        j = i
        while j < end and not line[j].isspace() and line[j] != "=":
            j += 1
        key = line[i:j]
        if not key:
            raise _error(name, lineno, f"comment line: '=' without a key at column {i + 1}")
        k = j
        while k < end and line[k].isspace():
            k += 1
        if k >= end or line[k] != "=":
            pairs.append((key, "T", False))
            i = j
            continue
        k += 1
        while k < end and line[k].isspace():
            k += 1
        if k < end and line[k] in '"{':
            close = '"' if line[k] == '"' else "}"
            stop = line.find(close, k + 1)
            if stop < 0:
                raise _error(name, lineno, f"comment line: unterminated value of {key!r}")
            pairs.append((key, line[k + 1 : stop], True))
            i = stop + 1
        else:
            stop = k
            while stop < end and not line[stop].isspace():
                stop += 1
            pairs.append((key, line[k:stop], False))
            i = stop


def _convert_value(value: str, quoted: bool):
    """Info values: unquoted ints, floats and T/F become numbers and bools; quoted values
    stay strings (the writer quotes every string, so strings round-trip as strings)."""
    if quoted:
        return value
    if _INT_RE.match(value):
        return int(value)
    try:
        return float(value)
    except ValueError:
        pass
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return value


def _parse_floats(text: str, count: int, what: str, name: str, lineno: int) -> list[float]:
    tokens = text.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise _error(name, lineno, f"{what} must be numbers, got {text!r}") from None
    if len(values) != count:
        raise _error(name, lineno, f"{what} needs {count} numbers, got {len(values)}")
    return values


def _parse_properties(text: str, name: str, lineno: int) -> tuple[dict, int]:
    """``Properties`` string -> ({column name: (first column, kind, count)}, n columns)."""
    fields = text.split(":")
    if len(fields) % 3:
        raise _error(name, lineno, f"Properties={text!r} is not a list of name:type:count")
    columns = {}
    col = 0
    for k in range(0, len(fields), 3):
        prop, kind, count = fields[k : k + 3]
        if kind not in ("S", "R", "I", "L") or not count.isdigit() or int(count) < 1:
            raise _error(name, lineno, f"Properties: bad column spec {prop}:{kind}:{count}")
        if prop in columns:
            raise _error(name, lineno, f"Properties: column {prop!r} appears twice")
        columns[prop] = (col, kind, int(count))
        col += int(count)
    return columns, col


def _find_column(columns, aliases, kind, count, name, lineno):
    for alias in aliases:
        if alias in columns:
            start, k, c = columns[alias]
            if k != kind or c != count:
                raise _error(name, lineno, f"column {alias!r} must be {kind}:{count}, got {k}:{c}")
            return start
    return None


def _assign_species(labels, type_ids, species_names, name, first_line):
    """Species names and per-particle indices from the label and/or type-id columns.

    Returns ``(names, species)``. Order of the names: ``species_names`` if given, else by
    type id when a ``type`` column exists, else by first appearance.
    """
    if species_names is not None:
        names = tuple(str(s) for s in species_names)
        if labels is not None:
            lookup = {s: k for k, s in enumerate(names)}
            species = np.empty(len(labels), dtype=np.int32)
            for i, label in enumerate(labels):
                k = lookup.get(label)
                if k is None:
                    raise _error(
                        name,
                        first_line + i,
                        f"species {label!r} is not in species_names {list(names)}",
                    )
                species[i] = k
            return names, species
        bad = np.flatnonzero((type_ids < 1) | (type_ids > len(names)))
        if bad.size:
            i = int(bad[0])
            raise _error(
                name,
                first_line + i,
                f"type {type_ids[i]} has no name in species_names {list(names)}",
            )
        return names, (type_ids - 1).astype(np.int32)

    if labels is None:
        # Only integer types: name each species after its type id, LAMMPS style.
        labels = type_ids.astype(str)
    uniq, first, inverse = np.unique(np.asarray(labels), return_index=True, return_inverse=True)
    if type_ids is not None:
        type_of_label = type_ids[first]
        bad = np.flatnonzero(type_ids != type_of_label[inverse])
        if bad.size:
            i = int(bad[0])
            raise _error(
                name,
                first_line + i,
                f"species {labels[i]!r} has type {type_ids[i]} here but type "
                f"{type_of_label[inverse[i]]} at line {first_line + first[inverse[i]]}",
            )
        ids, counts = np.unique(type_of_label, return_counts=True)
        if np.any(counts > 1):
            t = ids[np.argmax(counts > 1)]
            clash = sorted(uniq[type_of_label == t].tolist())
            raise _error(name, first_line, f"species {clash} all have type {t}")
        order = np.argsort(type_of_label, kind="stable")
    else:
        order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int32)
    rank[order] = np.arange(len(uniq), dtype=np.int32)
    return tuple(uniq[order].tolist()), rank[inverse.reshape(-1)]


def _species_masses(mass: np.ndarray, species: np.ndarray, n_species: int):
    """Mass of each species from a per-particle mass column (``None`` for a species with no
    particle), or None when particles of one species have different masses."""
    result = []
    for k in range(n_species):
        values = mass[species == k]
        if values.size and np.any(values != values[0]):
            return None
        result.append(float(values[0]) if values.size else None)
    return result


def _parse_frame(name, start, comment, atom_lines, species_names) -> System:
    comment_line = start + 1
    first_atom_line = start + 2
    lattice = properties = pbc = origin = None
    info = {}
    for key, value, quoted in _parse_comment(comment.rstrip("\r\n"), name, comment_line):
        low = key.lower()
        if low == "lattice":
            lattice = value
        elif low == "properties":
            properties = value
        elif low == "pbc":
            pbc = value
        elif low in ("origin", "cell_origin"):
            origin = value
        else:
            info[key] = _convert_value(value, quoted)

    if lattice is None:
        raise _error(name, comment_line, "no Lattice=...: a periodic box is required")
    vectors = _parse_floats(lattice, 9, "Lattice", name, comment_line)
    h = np.array(vectors, dtype=np.float64).reshape(3, 3).T  # columns a, b, c
    try:
        box = Box.from_matrix(h)
    except ValueError as exc:
        raise _error(
            name,
            comment_line,
            f"Lattice {vectors} is not a LAMMPS-oriented cell (a along x, b in the xy "
            f"plane; rotate the configuration first): {exc}",
        ) from None
    if pbc is not None:
        flags = pbc.split()
        if len(flags) != 3 or any(f.lower() not in _TRUE | _FALSE | {"1", "0"} for f in flags):
            raise _error(name, comment_line, f'pbc="{pbc}" must be three T/F flags')
        if not all(f.lower() in _TRUE | {"1"} for f in flags):
            raise _error(
                name, comment_line, f'pbc="{pbc}": only fully periodic boxes are supported'
            )

    columns, ncols = _parse_properties(
        properties if properties is not None else "species:S:1:pos:R:3", name, comment_line
    )
    c_pos = _find_column(columns, ("pos",), "R", 3, name, comment_line)
    if c_pos is None:
        raise _error(name, comment_line, "Properties has no pos:R:3 column")
    c_name = _find_column(columns, ("type_name",), "S", 1, name, comment_line)
    if c_name is None:
        c_name = _find_column(columns, ("species",), "S", 1, name, comment_line)
    c_type = _find_column(columns, ("type",), "I", 1, name, comment_line)
    if c_name is None and c_type is None:
        raise _error(name, comment_line, "Properties has neither a species nor a type column")
    c_img = _find_column(columns, _IMAGE_COLUMNS, "I", 3, name, comment_line)
    c_vel = _find_column(columns, _VELOCITY_COLUMNS, "R", 3, name, comment_line)
    c_mass = _find_column(columns, _MASS_COLUMNS, "R", 1, name, comment_line)

    n = len(atom_lines)
    pos, labels, types, imgs, vels, mass = [], [], [], [], [], []
    for i, line in enumerate(atom_lines):
        tok = line.split()
        if len(tok) != ncols:
            raise _error(
                name,
                first_atom_line + i,
                f"expected {ncols} columns ({properties}), got {len(tok)}",
            )
        what = "pos"
        try:
            pos.append([float(t) for t in tok[c_pos : c_pos + 3]])
            if c_name is not None:
                labels.append(tok[c_name])
            if c_type is not None:
                what = "type"
                types.append(int(tok[c_type]))
            if c_img is not None:
                what = "image"
                imgs.append([int(t) for t in tok[c_img : c_img + 3]])
            if c_vel is not None:
                what = "vel"
                vels.append([float(t) for t in tok[c_vel : c_vel + 3]])
            if c_mass is not None:
                what = "mass"
                mass.append(float(tok[c_mass]))
        except ValueError:
            raise _error(
                name, first_atom_line + i, f"bad {what} value in {line.strip()!r}"
            ) from None

    positions = np.array(pos, dtype=np.float64).reshape(n, 3)
    if origin is not None:
        positions -= np.array(_parse_floats(origin, 3, "Origin", name, comment_line))
    images = np.array(imgs, dtype=np.int64) if c_img is not None else np.zeros((n, 3), np.int64)
    velocities = np.array(vels, dtype=np.float64) if c_vel is not None else None
    type_ids = np.array(types, dtype=np.int64) if c_type is not None else None
    names, species = _assign_species(
        labels if c_name is not None else None, type_ids, species_names, name, first_atom_line
    )
    if c_mass is not None:
        per_species = _species_masses(np.array(mass), species, len(names))
        if per_species is not None:
            info["masses"] = per_species

    try:
        s = box.fractional(positions)
        if np.any((s < 0.0) | (s >= 1.0)):
            # Another program wrote positions outside the cell: wrap them and carry the
            # shift into the image counters so unwrapped positions are preserved.
            return System.from_unwrapped(
                positions, species, names, box, images=images, velocities=velocities, info=info
            )
        # Positions already in the cell are taken as they are: re-wrapping them would
        # round them and break bit-exact round trips.
        return System(
            positions, species, names, box, images=images, velocities=velocities, info=info
        )
    except ValueError as exc:
        raise _error(name, start, f"invalid configuration in this frame: {exc}") from None


def iter_extxyz(source, species_names: Sequence[str] | None = None) -> Iterator[System]:
    """Read the frames of an extended-XYZ file one at a time.

    Parameters
    ----------
    source : str, os.PathLike or readable text file
        The file.
    species_names : sequence of str, optional
        Fixes ``System.species_names`` (and so the species indices) for every frame, e.g.
        to keep a species that is absent from some frame. Each particle's name must be in
        it; for a file with only an integer ``type`` column, type t gets name
        ``species_names[t - 1]``.

    Yields
    ------
    System
        One per frame. Species names come from the ``type_name`` column if present (model
        names saved next to element symbols), else from ``species``, else from ``type``
        (named ``"1"``, ``"2"``, ...). Without ``species_names`` they are ordered by type id
        when a ``type`` column exists, else by first appearance. ``image``/``map_shift``
        fill ``images`` (zero if absent); ``vel``/``velo`` fill ``velocities``; a
        ``masses``/``mass`` column gives ``info["masses"]``, the mass of each species (None
        for a species absent from the frame; not set when particles of one species differ);
        unknown columns are ignored. Other comment-line keys go to ``system.info``: unquoted
        integers, floats and T/F become int, float and bool, quoted values stay str.
        Positions outside the cell are wrapped with the image counters corrected.

    Raises
    ------
    ValueError
        For malformed input, with the file name, line number and reason.
    """
    with _open_source(source) as (f, name):
        for start, comment, atoms in _raw_frames(f, name):
            yield _parse_frame(name, start, comment, atoms, species_names)


def read_extxyz(source, index: int = -1, species_names: Sequence[str] | None = None) -> System:
    """Read one frame of an extended-XYZ file.

    Parameters
    ----------
    source : str, os.PathLike or readable text file
        The file.
    index : int
        Frame number; negative counts from the end (``-1``, the default, is the last
        frame). Only the selected frame's atom lines are parsed.
    species_names : sequence of str, optional
        See :func:`iter_extxyz`.

    Returns
    -------
    System
        See :func:`iter_extxyz` for how columns and info keys are interpreted.

    Raises
    ------
    ValueError
        For malformed input (file name, line number and reason) or an empty file.
    IndexError
        If the file has fewer frames than ``index`` requires.
    """
    index = int(index)
    with _open_source(source) as (f, name):
        frames = _raw_frames(f, name)
        if index >= 0:
            raw, count = None, 0
            for frame in frames:
                if count == index:
                    raw = frame
                    break
                count += 1
        else:
            # Keep only the last |index| unparsed frames in memory.
            tail = collections.deque(frames, maxlen=-index)
            raw = tail[0] if len(tail) == -index else None
            count = len(tail)
        if raw is None:
            if count == 0:
                raise ValueError(f"{name}: no frames in file")
            raise IndexError(f"{name}: frame index {index} out of range ({count} frames)")
        return _parse_frame(name, *raw, species_names)
