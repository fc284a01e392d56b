"""LAMMPS data files (``read_data`` / ``write_data`` format), atom style ``atomic``.

Written files look like::

    LAMMPS data file (atom_style atomic) written by swapmc

    1000 atoms
    3 atom types

    0.0 9.4 xlo xhi
    0.0 9.4 ylo yhi
    0.0 9.4 zlo zhi
    0.5 0.0 0.0 xy xz yz          <- only for a tilted box

    Atom Type Labels

    1 A
    2 B

    Masses

    1 1.0 # A
    2 1.0 # B

    Atoms # atomic

    1 1 0.123 4.56 7.89 0 0 0      <- id type x y z ix iy iz
    ...

    Velocities                     <- only when the system has velocities

    1 0.1 -0.2 0.3                 <- id vx vy vz

Type ``t`` is species ``t - 1`` of the System. The species names are written twice: as
LAMMPS type labels (``Atom Type Labels``, LAMMPS >= 2022; ``pair_coeff``, ``group`` etc.
then accept ``A`` for type 1) and as ``# name`` comments of the Masses section, which
older LAMMPS versions skip and OVITO reads as type names. A name that cannot be a LAMMPS
label (one starting with a digit or ``*``) leaves the labels section out. Floats are written
with Python's ``repr`` (shortest exact representation), so a round trip through these
functions is bit-identical.

Files without names -- LAMMPS ``write_data`` output when no labels were defined -- are read
by type number: :func:`read_lammps_data` takes the names from ``species_names`` (a model's
species order) or from an explicit ``type_map`` (:func:`parse_type_map` reads the command
line form ``1=A,2=B,3=C``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..box import Box
from ..system import System
from .atomic import atomic_write

__all__ = ["parse_type_map", "read_lammps_data", "write_lammps_data"]

_DEFAULT_COMMENT = "LAMMPS data file (atom_style atomic) written by swapmc"

# Atom styles whose Atoms lines we can read: name -> (number of columns before the image
# flags, column of the type, column of x). Only positions and types are used.
_ATOM_STYLES = {
    "atomic": (5, 1, 2),  # id type x y z
    "charge": (6, 1, 3),  # id type q x y z
    "bond": (6, 2, 3),  # id mol type x y z
    "angle": (6, 2, 3),
    "molecular": (6, 2, 3),
    "full": (7, 2, 4),  # id mol type q x y z
}

# Header keywords that describe topology or other atom styles: harmless for our purpose
# (their sections are skipped), so they are accepted and ignored.
_IGNORED_HEADER = (
    "bonds", "angles", "dihedrals", "impropers",
    "bond types", "angle types", "dihedral types", "improper types",
    "extra bond per atom", "extra angle per atom", "extra dihedral per atom",
    "extra improper per atom", "extra special per atom",
    "ellipsoids", "lines", "triangles", "bodies",
)  # fmt: skip


# ----------------------------------------------------------------------------- writing
def _resolve_masses(system: System, masses, unit_default: bool = True) -> list[float] | None:
    """Mass of each species from ``masses`` (sequence or mapping by name) or, when None,
    from ``system.info["masses"]``; failing both, 1.0 each (``unit_default``) or None."""
    n = system.n_species
    if masses is None:
        # A System read from a data file carries its masses; otherwise reduced LJ units.
        masses = system.info.get("masses")
        if not (
            isinstance(masses, (list, tuple))
            and len(masses) == n
            and all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in masses)
        ):
            if not unit_default:
                return None
            masses = [1.0] * n
    elif isinstance(masses, Mapping):
        missing = [s for s in system.species_names if s not in masses]
        if missing:
            raise ValueError(f"masses has no entry for species {missing}")
        masses = [masses[s] for s in system.species_names]
    masses = [float(m) for m in masses]
    if len(masses) != n:
        raise ValueError(f"need {n} masses (one per species), got {len(masses)}")
    bad = [m for m in masses if not (np.isfinite(m) and m > 0)]
    if bad:
        raise ValueError(f"masses must be positive and finite, got {masses}")
    return masses


def _is_lammps_label(name: str) -> bool:
    """Whether LAMMPS accepts ``name`` as a type label: no whitespace and no leading digit,
    ``*`` or ``#`` (a leading digit would make it read as a numeric type)."""
    return bool(name) and name.split() == [name] and not (name[0].isdigit() or name[0] in "*#")


def write_lammps_data(
    path: str | os.PathLike,
    system: System,
    *,
    masses: Sequence[float] | Mapping[str, float] | None = None,
    comment: str = "",
) -> None:
    """Write a LAMMPS data file (``atom_style atomic``), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; replaced all at once (:func:`swapmc.io.atomic_write`).
    system : System
        The configuration. The box is written with its origin at 0 (``xlo = 0``,
        ``xhi = lx``, ...) and an ``xy xz yz`` line when any tilt is non-zero; positions
        (N, 3), image flags (N, 3) and velocities (N, 3, if not None) are written exactly,
        atom ids are 1..N in the System's order and type = species index + 1; the species
        names become the ``Atom Type Labels`` section (when LAMMPS accepts them as labels)
        and ``# name`` comments of the Masses section.
    masses : sequence of float or mapping of str to float, optional
        Mass of each species (mass units), in species order or keyed by species name.
        Default: ``system.info["masses"]`` when it holds one number per species (as left by
        :func:`read_lammps_data`), else 1.0 for every species (reduced LJ units).
    comment : str
        First line of the file (LAMMPS ignores it). Must be a single line.

    Raises
    ------
    ValueError
        For a multi-line comment, species names that cannot be written as a ``# name``
        comment (whitespace or ``#``), or wrong masses.
    """
    if "\n" in comment or "\r" in comment:
        raise ValueError("comment must be a single line")
    for name in system.species_names:
        if not name or name.split() != [name] or "#" in name:
            raise ValueError(f"species name {name!r} cannot be stored as a '# name' comment")
    mass = _resolve_masses(system, masses)
    lx, ly, lz = system.box.lengths.tolist()
    lines = [
        comment.strip() or _DEFAULT_COMMENT,
        "",
        f"{system.n} atoms",
        f"{system.n_species} atom types",
        "",
        f"0.0 {lx!r} xlo xhi",
        f"0.0 {ly!r} ylo yhi",
        f"0.0 {lz!r} zlo zhi",
    ]
    if not system.box.is_orthorhombic:
        xy, xz, yz = system.box.tilts.tolist()
        lines.append(f"{xy!r} {xz!r} {yz!r} xy xz yz")
    if all(_is_lammps_label(name) for name in system.species_names):
        lines += ["", "Atom Type Labels", ""]
        lines += [f"{t + 1} {name}" for t, name in enumerate(system.species_names)]
    lines += ["", "Masses", ""]
    lines += [
        f"{t + 1} {m!r} # {name}"
        for t, (m, name) in enumerate(zip(mass, system.species_names, strict=True))
    ]
    lines += ["", "Atoms # atomic", ""]
    # tolist(): Python floats, whose %r is the shortest exact repr.
    types = (system.species + 1).tolist()
    pos = system.positions.tolist()
    img = system.images.tolist()
    # %-formatting: several times faster than f-strings for 10^5 lines.
    lines += [
        "%d %d %r %r %r %d %d %d" % (i + 1, types[i], *pos[i], *img[i])  # noqa: UP031
        for i in range(system.n)
    ]
    if system.velocities is not None:
        vel = system.velocities.tolist()
        lines += ["", "Velocities", ""]
        lines += ["%d %r %r %r" % (i + 1, *vel[i]) for i in range(system.n)]  # noqa: UP031
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- reading
class _Reader:
    """Holds the file name for error messages while parsing."""

    def __init__(self, name: str):
        self.name = name

    def error(self, lineno: int, reason: str) -> ValueError:
        return ValueError(f"{self.name}:{lineno}: {reason}")

    def number(self, token: str, kind, lineno: int, what: str):
        try:
            return kind(token)
        except ValueError:
            raise self.error(lineno, f"{what} must be a number, got {token!r}") from None


def _split_comment(line: str) -> tuple[str, str]:
    """``'1 1.0 # A'`` -> ``('1 1.0', 'A')``."""
    data, _, comment = line.partition("#")
    return data.strip(), comment.strip()


def _parse_header(r: _Reader, lines, start: int):
    """Parse header lines until the first section keyword.

    Returns ``(header dict, index of the first section line)``.
    """
    header: dict = {}
    i = start
    while i < len(lines):
        lineno = i + 1
        data, _ = _split_comment(lines[i])
        if not data:
            i += 1
            continue
        if data[0].isalpha():
            return header, i  # first section keyword
        tok = data.split()

        def put(key, value, lineno=lineno):
            if key in header:
                raise r.error(lineno, f"header keyword '{key}' given twice")
            header[key] = value

        tail = " ".join(tok[1:])
        if tail == "atoms" and len(tok) == 2:
            put("atoms", r.number(tok[0], int, lineno, "number of atoms"))
        elif tail == "atom types" and len(tok) == 3:
            put("atom types", r.number(tok[0], int, lineno, "number of atom types"))
        elif len(tok) == 4 and tok[2:] in (["xlo", "xhi"], ["ylo", "yhi"], ["zlo", "zhi"]):
            lo = r.number(tok[0], float, lineno, tok[2])
            hi = r.number(tok[1], float, lineno, tok[3])
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise r.error(lineno, f"{tok[2]} {tok[3]}: need finite lo < hi, got {lo} {hi}")
            put(tok[2], (lo, hi))
        elif len(tok) == 6 and tok[3:] == ["xy", "xz", "yz"]:
            put("xy xz yz", [r.number(t, float, lineno, "tilt factor") for t in tok[:3]])
        elif tok[-1] in ("avec", "bvec", "cvec") or tok[-2:] == ["abc", "origin"]:
            raise r.error(
                lineno,
                "general triclinic boxes (avec/bvec/cvec) are not supported; "
                "write the file with a restricted triclinic box",
            )
        elif any(tail == kw for kw in _IGNORED_HEADER):
            r.number(tok[0], int, lineno, tail)
        else:
            raise r.error(lineno, f"unrecognized header line {data!r}")
        i += 1
    return header, i


def _parse_sections(r: _Reader, lines, start: int) -> dict:
    """Group the body into ``{section name: (lineno, style comment, [(lineno, data, comment)])}``.

    A section ends at the next line that starts with a letter: data lines always start
    with a number (the atom or type id), section keywords with a letter. This does not
    depend on the section order or on knowing every section LAMMPS may write.
    """
    sections: dict = {}
    current = None
    for i in range(start, len(lines)):
        lineno = i + 1
        data, comment = _split_comment(lines[i])
        if not data:
            continue
        if data[0].isalpha():
            if data in sections:
                raise r.error(lineno, f"section '{data}' appears twice")
            current = sections[data] = (lineno, comment, [])
        else:
            current[2].append((lineno, data, comment))
    return sections


def _file_type_names(r: _Reader, sections, ntypes: int):
    """Names the file gives its types: ``(names by type, source)`` from the Atom Type Labels
    section, else from single-word ``# name`` Masses comments when every type has a
    distinct one; ``(None, None)`` for a file without names (e.g. LAMMPS ``write_data``
    output when no labels were defined)."""
    for section, from_comment in (("Atom Type Labels", False), ("Masses", True)):
        if section not in sections:
            continue
        found = {}
        for lineno, data, comment in sections[section][2]:
            tok = data.split()
            t = r.number(tok[0], int, lineno, "atom type")
            label = comment if from_comment else " ".join(tok[1:])
            if len(label.split()) == 1:
                found[t] = label
        names = tuple(found.get(t, "") for t in range(1, ntypes + 1))
        if all(names) and len(set(names)) == ntypes:
            return names, section
    return None, None


def _type_species(r: _Reader, sections, ntypes: int, species_names, type_map):
    """Species names of the System and the species index of each type (index t - 1).

    Type names come from ``type_map``, else from the file (labels, Masses comments).
    With ``species_names`` the System has exactly those species and named types are
    matched to them by name; unnamed types are taken in that order (type t is
    ``species_names[t - 1]``). Without it, the System's species are the types in order.
    """
    example = list(species_names) if species_names else ["A", "B"]
    hint = ("name the types explicitly with type_map (on the command line: --type-map "
            + ",".join(f"{t}={n}" for t, n in enumerate(example, 1)) + ")")
    file_names, source = _file_type_names(r, sections, ntypes)
    names = file_names
    if type_map is not None:
        if isinstance(type_map, str):
            type_map = parse_type_map(type_map)
        unknown = sorted(set(type_map) - set(range(1, ntypes + 1)))
        if unknown:
            raise ValueError(f"{r.name}: type_map names type(s) {unknown}, but the file has "
                             f"atom types 1..{ntypes}")
        missing = [t for t in range(1, ntypes + 1) if t not in type_map]
        if missing:
            raise ValueError(f"{r.name}: type_map has no name for atom type(s) {missing} "
                             f"(the file has {ntypes} atom types)")
        names = tuple(str(type_map[t]) for t in range(1, ntypes + 1))
        if source == "Atom Type Labels":
            # LAMMPS labels are part of the file's meaning: a map that contradicts them is
            # a mistake, not an override (Masses comments are free text and may be).
            clash = [(t, f, m) for t, (f, m) in enumerate(zip(file_names, names), 1) if f != m]
            if clash:
                t, f, m = clash[0]
                raise ValueError(f"{r.name}: type {t} is labelled {f!r} in the file but "
                                 f"type_map names it {m!r}")
    if species_names is None:
        names = names or tuple(str(t) for t in range(1, ntypes + 1))
        return names, np.arange(ntypes)
    target = tuple(str(s) for s in species_names)
    if names is None:
        if ntypes > len(target):
            raise ValueError(
                f"{r.name}: the file has {ntypes} atom types and no type names, but the model "
                f"has only {len(target)} species {list(target)}; {hint}")
        return target, np.arange(ntypes)
    index = {n: k for k, n in enumerate(target)}
    strangers = [(t, n) for t, n in enumerate(names, 1) if n not in index]
    if strangers:
        where = "type_map" if type_map is not None else f"the file ({source})"
        listed = ", ".join(f"type {t} = {n!r}" for t, n in strangers)
        raise ValueError(f"{r.name}: {listed} in {where} not among the species "
                         f"{list(target)}; {hint}")
    return target, np.array([index[n] for n in names])


def parse_type_map(text: str) -> dict[int, str]:
    """Parse a type map written as ``"1=A,2=B,3=C"`` (LAMMPS type = species name).

    Parameters
    ----------
    text : str
        Comma-separated ``TYPE=NAME`` items; spaces around them are ignored.

    Returns
    -------
    dict of int to str
        Species name of each atom type, for :func:`read_lammps_data`'s ``type_map``.

    Raises
    ------
    ValueError
        For an item that is not ``TYPE=NAME`` with a positive integer TYPE and a one-word
        NAME, or a type or name given twice.
    """
    result: dict[int, str] = {}
    for item in str(text).split(","):
        item = item.strip()
        t, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not t.isdigit() or int(t) < 1 or name.split() != [name]:
            raise ValueError(f"type map {text!r}: {item!r} is not TYPE=NAME (e.g. 1=A,2=B,3=C)")
        if int(t) in result:
            raise ValueError(f"type map {text!r}: type {int(t)} is given twice")
        if name in result.values():
            raise ValueError(f"type map {text!r}: name {name!r} is given to two types")
        result[int(t)] = name
    return result


def _parse_masses(r: _Reader, sections, ntypes: int):
    lineno0, _, rows = sections["Masses"]
    masses: list = [None] * ntypes
    for lineno, data, _ in rows:
        tok = data.split()
        if len(tok) != 2:
            raise r.error(lineno, f"Masses lines are 'type mass', got {data!r}")
        t = r.number(tok[0], int, lineno, "atom type")
        if not 1 <= t <= ntypes:
            raise r.error(lineno, f"atom type {t} outside 1..{ntypes}")
        if masses[t - 1] is not None:
            raise r.error(lineno, f"mass of type {t} given twice")
        masses[t - 1] = r.number(tok[1], float, lineno, "mass")
    return masses


def _parse_atoms(r: _Reader, sections, natoms: int, ntypes: int, type_labels: dict):
    lineno0, style_hint, rows = sections["Atoms"]
    style = style_hint.split()[0] if style_hint else "atomic"
    if style not in _ATOM_STYLES:
        raise r.error(
            lineno0, f"atom style '{style}' is not supported (use one of {sorted(_ATOM_STYLES)})"
        )
    ncol, ctype, cx = _ATOM_STYLES[style]
    if len(rows) != natoms:
        raise r.error(lineno0, f"Atoms section has {len(rows)} lines, header says {natoms} atoms")
    ids = np.empty(natoms, dtype=np.int64)
    types = np.empty(natoms, dtype=np.int64)
    pos = np.empty((natoms, 3))
    images = np.zeros((natoms, 3), dtype=np.int64)
    with_images = None
    for k, (lineno, data, _) in enumerate(rows):
        tok = data.split()
        if len(tok) not in (ncol, ncol + 3):
            raise r.error(
                lineno,
                f"atom style {style} needs {ncol} columns (+3 image flags), "
                f"got {len(tok)}: {data!r}",
            )
        has = len(tok) == ncol + 3
        if with_images is None:
            with_images = has
        elif has != with_images:
            raise r.error(lineno, "image flags given for some atoms but not for others")
        ids[k] = r.number(tok[0], int, lineno, "atom id")
        t = tok[ctype]
        if t in type_labels:  # LAMMPS accepts type labels in place of numeric types
            types[k] = type_labels[t]
        else:
            types[k] = r.number(t, int, lineno, "atom type")
        if not 1 <= types[k] <= ntypes:
            raise r.error(lineno, f"atom type {types[k]} outside 1..{ntypes}")
        pos[k] = [r.number(x, float, lineno, "coordinate") for x in tok[cx : cx + 3]]
        if has:
            images[k] = [r.number(x, int, lineno, "image flag") for x in tok[ncol:]]
    _check_ids(r, ids, rows)
    return ids, types, pos, images


def _check_ids(r: _Reader, ids, rows) -> None:
    if np.any(ids < 1):
        k = int(np.argmax(ids < 1))
        raise r.error(rows[k][0], f"atom id {ids[k]} must be positive")
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(np.diff(ids[order]) == 0)
    if dup.size:
        k = int(order[dup[0] + 1])
        raise r.error(rows[k][0], f"atom id {ids[k]} appears twice")


def _parse_velocities(r: _Reader, sections, ids):
    lineno0, _, rows = sections["Velocities"]
    if len(rows) != len(ids):
        raise r.error(lineno0, f"Velocities has {len(rows)} lines for {len(ids)} atoms")
    vids = np.empty(len(rows), dtype=np.int64)
    vel = np.empty((len(rows), 3))
    for k, (lineno, data, _) in enumerate(rows):
        tok = data.split()
        if len(tok) != 4:
            raise r.error(lineno, f"Velocities lines are 'id vx vy vz', got {data!r}")
        vids[k] = r.number(tok[0], int, lineno, "atom id")
        vel[k] = [r.number(x, float, lineno, "velocity") for x in tok[1:]]
    _check_ids(r, vids, rows)
    order = np.argsort(vids, kind="stable")
    if not np.array_equal(vids[order], ids):
        missing = np.setdiff1d(ids, vids)
        raise r.error(
            lineno0,
            f"Velocities ids do not match the Atoms ids (e.g. atom "
            f"{missing[0] if missing.size else np.setdiff1d(vids, ids)[0]})",
        )
    return vel[order]


def read_lammps_data(
    path: str | os.PathLike,
    species_names: Sequence[str] | None = None,
    type_map: Mapping[int, str] | str | None = None,
) -> System:
    """Read a LAMMPS data file into a System.

    Parameters
    ----------
    path : str or os.PathLike
        The data file. Header keywords may come in any order, with comments (``#``) and
        blank lines; sections may come in any order; unknown sections (Pair Coeffs,
        Bonds, ...) are skipped. Atoms lines may be in any id order and are sorted by id.
        Atom styles atomic (default when the ``Atoms`` line has no style comment), charge,
        bond, angle, molecular and full are understood; image flags are optional.
    species_names : sequence of str, optional
        The species of the returned System, in this order (e.g. a model's species). Types
        the file names (``Atom Type Labels``, or single-word ``# name`` comments of the
        Masses section when every type has a distinct one, or ``type_map``) are matched to
        them by name, whatever their numbers; types of a file without names are taken in
        this order (type t -> ``species_names[t - 1]``; the file may have fewer types).
    type_map : mapping of int to str, or str, optional
        Name of every atom type, e.g. ``{1: "A", 2: "B", 3: "C"}`` or ``"1=A,2=B,3=C"``
        (:func:`parse_type_map`), for files without names such as LAMMPS ``write_data``
        output. Overrides Masses comments; must agree with ``Atom Type Labels``.
        Without ``species_names`` or ``type_map`` the species are named after the file
        (labels, Masses comments) or else ``"1"``, ``"2"``, ...

    Returns
    -------
    System
        Particles sorted by atom id; species index = type - 1 unless ``species_names``
        reorders the types. The box is moved so that
        its origin is 0 (positions shifted by ``-(xlo, ylo, zlo)``); positions outside
        it are wrapped and the image flags corrected so unwrapped positions are kept.
        ``info["masses"]`` is the list of masses by species (``None`` for species
        without a mass) when the file has a Masses section.

    Raises
    ------
    ValueError
        For malformed input, with the file name, line number and reason; for types that
        cannot be matched to ``species_names`` (named otherwise, or more types than
        species in a file without names), saying how to map them.
    """
    name = os.fspath(path)
    r = _Reader(name)
    with open(name, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f"{name}: empty file")
    # Line 1 is a free comment in LAMMPS, skipped whatever it contains.
    header, body = _parse_header(r, lines, 1)
    natoms = header.get("atoms")
    if not natoms:
        raise r.error(
            body + 1 if body < len(lines) else len(lines), "header has no (or zero) 'N atoms' line"
        )
    ntypes = header.get("atom types")
    if not ntypes or ntypes < 1:
        raise r.error(
            body + 1 if body < len(lines) else len(lines), "header has no 'N atom types' line"
        )
    # Defaults for missing bounds are those of LAMMPS' read_data.
    lo, hi = np.array([header.get(k, (-0.5, 0.5)) for k in ("xlo", "ylo", "zlo")]).T
    tilts = header.get("xy xz yz", [0.0, 0.0, 0.0])
    try:
        box = Box(hi - lo, tilts)
    except ValueError as exc:
        raise ValueError(f"{name}: invalid box in header: {exc}") from None

    sections = _parse_sections(r, lines, body)
    if "Atoms" not in sections:
        raise ValueError(f"{name}: no Atoms section")
    labels = {}
    if "Atom Type Labels" in sections:
        for lineno, data, _ in sections["Atom Type Labels"][2]:
            tok = data.split()
            if len(tok) != 2:
                raise r.error(lineno, f"Atom Type Labels lines are 'type label', got {data!r}")
            labels[tok[1]] = r.number(tok[0], int, lineno, "atom type")
    names, species_of_type = _type_species(r, sections, ntypes, species_names, type_map)
    ids, types, pos, images = _parse_atoms(r, sections, natoms, ntypes, labels)
    order = np.argsort(ids, kind="stable")
    ids, types, pos, images = ids[order], types[order], pos[order], images[order]
    velocities = _parse_velocities(r, sections, ids) if "Velocities" in sections else None
    info = {}
    if "Masses" in sections:
        by_type = _parse_masses(r, sections, ntypes)
        masses = [None] * len(names)
        for t, m in enumerate(by_type):
            masses[species_of_type[t]] = m
        info["masses"] = masses

    if np.any(lo != 0.0):
        pos = pos - lo
    species = species_of_type[types - 1].astype(np.int32)
    try:
        s = box.fractional(pos)
        if np.any((s < 0.0) | (s >= 1.0)):
            return System.from_unwrapped(
                pos, species, names, box, images=images, velocities=velocities, info=info
            )
        # In-box positions are kept as read: wrapping would round them.
        return System(pos, species, names, box, images=images, velocities=velocities, info=info)
    except ValueError as exc:
        raise ValueError(f"{name}: invalid configuration: {exc}") from None
