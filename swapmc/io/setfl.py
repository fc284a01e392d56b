"""Tabulated EAM potentials in the DYNAMO *setfl* formats read by LAMMPS.

Two variants exist, told apart only by the file name (LAMMPS picks the reader from the
``pair_style``, not from the file):

* ``eam/alloy`` (``*.eam.alloy``): one density function f_k(r) per element;
* ``eam/fs`` (``*.eam.fs``, Finnis-Sinclair): one density function per *ordered* element
  pair.

Layout (line numbers 1-based)::

    line 1-3   comments (free text)
    line 4     S  name_1 ... name_S
    line 5     Nrho drho Nr dr cutoff
    per element k = 1..S:
               Z_k mass_k a_k lattice_k
               F_k(rho) on rho = 0, drho, ..., (Nrho-1) drho          (Nrho values)
               alloy: f_k(r) on r = 0, dr, ..., (Nr-1) dr             (Nr values)
               fs:    f_{k->m}(r) for m = 1..S                        (S blocks of Nr values)
    per pair i = 1..S, j = 1..i:
               r * phi_ij(r) on r = 0, dr, ..., (Nr-1) dr             (Nr values)

The values of a block may be spread over any number of lines with any number per line, but a
block always ends at a line end: LAMMPS fills a block line by line and *discards* whatever
is left on the line holding the block's last value, so a file whose blocks share lines is
misread by LAMMPS. :func:`read_setfl` therefore rejects it instead of guessing.

**The eam/fs file order** (LAMMPS ``PairEAMFS::read_file`` and ``file2array``): in the
section of element k, the m-th density block is the density that a *neighbour* of element k
contributes at a *centre* atom of element m. LAMMPS accumulates at atom i the value
``rhor[type2rhor[jtype][itype]]`` with ``type2rhor[j][i] = j * S + i``, i.e. block
(section j, position i). :class:`SetflData` keeps exactly this order:
``rhor[a, b]`` = density of a neighbour of element a at a centre of element b.

Units are LAMMPS ``metal``: r and dr in Angstrom, F and r*phi in eV and eV*Angstrom,
masses in amu; the electron density rho is in the (arbitrary) units of the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write

__all__ = ["SetflData", "read_setfl", "setfl_kind_from_name", "write_setfl"]

_KINDS = {"alloy": "alloy", "eam/alloy": "alloy", "fs": "fs", "eam/fs": "fs"}

# A decimal number with an optional exponent introduced by e/E or the Fortran d/D, or the
# Fortran form without a letter ("1.234-105") that list-directed output uses for 3-digit
# exponents. Python's float() alone would also accept "nan", "inf" and "1_000", which are
# not numbers any potential file should contain.
_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eEdD]([+-]?\d+)|([+-]\d+))?")
_INTEGER = re.compile(r"[+-]?\d+")
# A whole line of plain C-style numbers: the common case, which Python's float() parses
# exactly, so it needs no per-token regular expression (3x faster on large files).
_PLAIN_LINE = re.compile(
    r"\s*(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s+)*"
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*"
)


def setfl_kind_from_name(path) -> str | None:
    """``"alloy"`` for ``*.eam.alloy``, ``"fs"`` for ``*.eam.fs``, else None (case-insensitive)."""
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith(".eam.alloy"):
        return "alloy"
    if name.endswith(".eam.fs"):
        return "fs"
    return None


def _normalise_kind(kind) -> str:
    try:
        return _KINDS[str(kind).lower()]
    except KeyError:
        raise ValueError(f"setfl kind must be 'alloy' or 'fs', got {kind!r}") from None


@dataclass(frozen=True, eq=False)
class SetflData:
    """The contents of one setfl file, as arrays.

    Grids start at zero: ``frho[k, i]`` is F_k(i * drho) and ``rhor[.., i]``, ``z2r[.., i]``
    are tabulated at r = i * dr (0-based i; LAMMPS stores the same values 1-based).

    Parameters
    ----------
    kind : {"alloy", "fs"}
        The file variant.
    comments : tuple of 3 str
        The three comment lines (without line ends).
    elements : tuple of str, length S
        Element names, in file order; the names ``pair_coeff`` maps atom types to.
    atomic_numbers : tuple of int, length S
        Z of each element (LAMMPS ignores it).
    masses : tuple of float, length S
        Masses (amu); LAMMPS ``pair_coeff`` sets the atom-type masses from these.
    lattice_constants : tuple of float, length S
        Reference lattice constants (Angstrom), informational; 0.0 when the file omits it.
    lattice_types : tuple of str, length S
        Reference lattice names (e.g. "fcc"), informational; "" when the file omits it.
    nrho : int
        Number of points of the F(rho) grid.
    drho : float
        Spacing of the rho grid (density units).
    nr : int
        Number of points of the r grid.
    dr : float
        Spacing of the r grid (Angstrom).
    cutoff : float
        Interaction cut-off (Angstrom); LAMMPS treats pairs with r^2 < cutoff^2.
    frho : ndarray, shape (S, nrho)
        Embedding energies F_k(rho) (eV).
    rhor : ndarray, shape (S, S, nr)
        ``rhor[a, b]``: density that a neighbour of element a contributes at a centre atom
        of element b. For ``kind="alloy"`` it does not depend on b (``rhor[a, b] = f_a``).
    z2r : ndarray, shape (S, S, nr)
        r * phi_ab(r) (eV Angstrom), symmetric in (a, b).

    Raises
    ------
    ValueError
        If shapes, sizes or values are inconsistent.
    """

    kind: str
    comments: tuple
    elements: tuple
    atomic_numbers: tuple
    masses: tuple
    lattice_constants: tuple
    lattice_types: tuple
    nrho: int
    drho: float
    nr: int
    dr: float
    cutoff: float
    frho: np.ndarray
    rhor: np.ndarray
    z2r: np.ndarray

    def __post_init__(self):
        kind = _normalise_kind(self.kind)
        object.__setattr__(self, "kind", kind)
        # Trailing blanks are not significant (the reader strips them), so drop them here
        # too: otherwise a round trip would not reproduce the comments exactly.
        comments = tuple(str(c).rstrip() for c in self.comments)
        if len(comments) != 3:
            raise ValueError(f"a setfl file has exactly 3 comment lines, got {len(comments)}")
        for c in comments:
            if "\n" in c or "\r" in c:
                raise ValueError(f"comment lines must not contain line breaks: {c!r}")
        object.__setattr__(self, "comments", comments)
        elements = tuple(str(e) for e in self.elements)
        s = len(elements)
        if s == 0:
            raise ValueError("a setfl potential needs at least one element")
        for e in elements:
            # The names are whitespace-separated tokens of line 4 and pair_coeff arguments.
            if not e or any(ch.isspace() for ch in e) or "#" in e:
                raise ValueError(f"invalid element name {e!r}")
        if len(set(elements)) != s:
            raise ValueError(f"element names must be unique: {elements}")
        object.__setattr__(self, "elements", elements)
        for name, conv in (
            ("atomic_numbers", int),
            ("masses", float),
            ("lattice_constants", float),
            ("lattice_types", str),
        ):
            vals = tuple(conv(v) for v in getattr(self, name))
            if len(vals) != s:
                raise ValueError(f"{name} needs one entry per element ({s}), got {len(vals)}")
            object.__setattr__(self, name, vals)
        if any(not (np.isfinite(m) and m > 0) for m in self.masses):
            raise ValueError(f"masses must be positive and finite, got {self.masses}")
        for t in self.lattice_types:
            if any(ch.isspace() for ch in t):
                raise ValueError(f"lattice type must be a single word, got {t!r}")
        for name in ("nrho", "nr"):
            n = getattr(self, name)
            if int(n) != n or n < 5:
                # The LAMMPS spline needs 5 points for its end-point difference formulas.
                raise ValueError(f"{name} must be an integer >= 5, got {n}")
            object.__setattr__(self, name, int(n))
        for name in ("drho", "dr", "cutoff"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be positive and finite, got {v}")
            object.__setattr__(self, name, v)
        shapes = {"frho": (s, self.nrho), "rhor": (s, s, self.nr), "z2r": (s, s, self.nr)}
        for name, shape in shapes.items():
            arr = np.array(getattr(self, name), dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains non-finite values")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if not np.array_equal(self.z2r, self.z2r.transpose(1, 0, 2)):
            raise ValueError("z2r must be symmetric: z2r[a, b] == z2r[b, a]")
        if kind == "alloy" and not np.array_equal(
            self.rhor, np.broadcast_to(self.rhor[:, :1], self.rhor.shape)
        ):
            raise ValueError(
                "an eam/alloy density depends on the neighbour only: rhor[a, b] must be the "
                "same for every centre element b (use kind='fs' otherwise)"
            )

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    def equals(self, other: SetflData) -> bool:
        """True if every field, including every table value, is bit-identical."""
        if not isinstance(other, SetflData):
            return False
        scalars = (
            "kind", "comments", "elements", "atomic_numbers", "masses", "lattice_constants",
            "lattice_types", "nrho", "drho", "nr", "dr", "cutoff",
        )  # fmt: skip
        return all(getattr(self, n) == getattr(other, n) for n in scalars) and all(
            np.array_equal(getattr(self, n), getattr(other, n)) for n in ("frho", "rhor", "z2r")
        )


# ----------------------------------------------------------------------------- reading
class _Tokens:
    """Line-numbered tokens of the data part of a setfl file, with file-named errors."""

    def __init__(self, name: str, lines: list, start: int):
        self.name = name
        self.lines = lines
        self.next_line = start  # 0-based index of the next unread line
        self.last_lineno = start  # 1-based number of the last line read (for EOF errors)
        self.plain = False  # the last line returned holds only plain numbers

    def error(self, lineno: int, reason: str) -> ValueError:
        return ValueError(f"{self.name}:{lineno}: {reason}")

    def line_tokens(self):
        """The next non-blank line as ``(lineno, tokens)``; ``(None, None)`` at end of file.

        As in LAMMPS's potential-file reader, ``#`` starts a comment outside the three
        comment lines.
        """
        while self.next_line < len(self.lines):
            text = self.lines[self.next_line]
            self.next_line += 1
            self.last_lineno = self.next_line
            data = text.partition("#")[0]
            tokens = data.split()
            if tokens:
                self.plain = _PLAIN_LINE.fullmatch(data) is not None
                return self.next_line, tokens
        return None, None

    def number(self, token: str, lineno: int, what: str) -> float:
        match = _NUMBER.fullmatch(token)
        if match is None:
            raise self.error(lineno, f"{what}: expected a number, got {token!r}")
        mantissa, exp1, exp2 = match.groups()
        if exp2 is not None and "." not in mantissa:
            # The letterless exponent is Fortran E-format output, which always has a point;
            # "12-3" is more likely a typo than 12e-3.
            raise self.error(lineno, f"{what}: expected a number, got {token!r}")
        exponent = exp1 if exp1 is not None else exp2
        value = float(mantissa if exponent is None else f"{mantissa}e{exponent}")
        if not np.isfinite(value):
            raise self.error(lineno, f"{what}: value {token!r} overflows a double")
        return value

    def integer(self, token: str, lineno: int, what: str) -> int:
        if _INTEGER.fullmatch(token) is None:
            # Accept "29.0": some writers print every header number as a float.
            value = self.number(token, lineno, what)
            if value != int(value):
                raise self.error(lineno, f"{what}: expected an integer, got {token!r}")
            return int(value)
        return int(token)

    def block(self, n: int, what: str) -> np.ndarray:
        """Read ``n`` values spread over whole lines; the last line must hold no extra values."""
        out = np.empty(n)
        i = 0
        first = None
        while i < n:
            lineno, tokens = self.line_tokens()
            if lineno is None:
                where = f"starting at line {first}" if first is not None else "not started"
                raise self.error(
                    self.last_lineno,
                    f"unexpected end of file: {what} has {i} of {n} values ({where}); "
                    "is the file truncated, or do Nrho/Nr or the element count not match "
                    "the data?",
                )
            first = lineno if first is None else first
            if i + len(tokens) > n:
                raise self.error(
                    lineno,
                    f"{len(tokens) - (n - i)} value(s) left over after the last of the {n} "
                    f"values of {what} (a block must end at a line end: LAMMPS discards the "
                    "rest of that line); do Nrho/Nr match the data?",
                )
            if self.plain:
                out[i : i + len(tokens)] = [float(t) for t in tokens]
                i += len(tokens)
            else:
                for t in tokens:
                    out[i] = self.number(t, lineno, f"{what}, value {i + 1} of {n}")
                    i += 1
        return out


def read_setfl(path, kind: str | None = None) -> SetflData:
    """Read a LAMMPS ``eam/alloy`` or ``eam/fs`` potential file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    kind : {"alloy", "fs", "eam/alloy", "eam/fs"}, optional
        The variant. By default it is taken from the file name suffix (``.eam.alloy`` or
        ``.eam.fs``); an explicit value overrides the suffix. The two variants differ only
        in the number of density blocks, so a file can parse as both: there is no safe way
        to guess.

    Returns
    -------
    SetflData

    Raises
    ------
    ValueError
        If the kind cannot be determined, or the file is malformed; the message names the
        file, the line and the reason (too few values, a non-numeric token, an element
        count that does not match the names, a bad header line, extra data at the end...).
    """
    name = os.fspath(path)
    if kind is None:
        kind = setfl_kind_from_name(name)
        if kind is None:
            raise ValueError(
                f"{name}: cannot tell eam/alloy from eam/fs by the file name (expected a "
                "'.eam.alloy' or '.eam.fs' suffix); pass kind='alloy' or kind='fs'"
            )
    kind = _normalise_kind(kind)
    with open(name, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    if len(lines) < 5:
        raise ValueError(
            f"{name}:{len(lines)}: a setfl file starts with 3 comment lines, the element "
            f"line and the grid line; the file has only {len(lines)} line(s)"
        )
    comments = tuple(line.rstrip() for line in lines[:3])
    tok = _Tokens(name, lines, 3)

    # Line 4: element count and names. LAMMPS reads exactly this line (no blank-line skip).
    elem_tokens = lines[3].partition("#")[0].split()
    if not elem_tokens:
        raise tok.error(4, "line 4 must hold the element count and names, found a blank line")
    n_el = tok.integer(elem_tokens[0], 4, "element count")
    names = tuple(elem_tokens[1:])
    if n_el < 1:
        raise tok.error(4, f"element count must be positive, got {n_el}")
    if len(names) != n_el:
        raise tok.error(
            4, f"element count {n_el} does not match the {len(names)} names {list(names)}"
        )
    if len(set(names)) != n_el:
        raise tok.error(4, f"element names must be unique, got {list(names)}")

    # Line 5: Nrho drho Nr dr cutoff.
    grid_tokens = lines[4].partition("#")[0].split()
    if len(grid_tokens) != 5:
        raise tok.error(
            5, f"line 5 must be 'Nrho drho Nr dr cutoff' (5 values), got {len(grid_tokens)}"
        )
    nrho = tok.integer(grid_tokens[0], 5, "Nrho")
    drho = tok.number(grid_tokens[1], 5, "drho")
    nr = tok.integer(grid_tokens[2], 5, "Nr")
    dr = tok.number(grid_tokens[3], 5, "dr")
    cutoff = tok.number(grid_tokens[4], 5, "cutoff")
    if nrho < 5 or nr < 5:
        raise tok.error(5, f"Nrho and Nr must be at least 5, got {nrho} and {nr}")
    if drho <= 0 or dr <= 0 or cutoff <= 0:
        raise tok.error(5, f"drho, dr and cutoff must be positive, got {drho}, {dr}, {cutoff}")

    tok.next_line = 5
    z, masses, alat, lat = [], [], [], []
    frho = np.empty((n_el, nrho))
    rhor = np.empty((n_el, n_el, nr))
    for k, el in enumerate(names):
        lineno, tokens = tok.line_tokens()
        if lineno is None:
            raise tok.error(
                tok.last_lineno,
                f"unexpected end of file: missing the 'Z mass a lattice' line of element {el}",
            )
        if len(tokens) < 2 or len(tokens) > 4:
            raise tok.error(
                lineno,
                f"expected the 'Z mass [a lattice]' line of element {el}, got "
                f"{len(tokens)} values (do Nrho/Nr and the element count match the data?)",
            )
        z.append(tok.integer(tokens[0], lineno, f"atomic number of {el}"))
        mass = tok.number(tokens[1], lineno, f"mass of {el}")
        if mass <= 0:
            raise tok.error(lineno, f"mass of {el} must be positive, got {mass}")
        masses.append(mass)
        if len(tokens) > 2:
            alat.append(tok.number(tokens[2], lineno, f"lattice constant of {el}"))
        else:
            alat.append(0.0)
        lat.append(tokens[3] if len(tokens) > 3 else "")
        frho[k] = tok.block(nrho, f"F(rho) of element {el}")
        if kind == "alloy":
            rhor[k, :] = tok.block(nr, f"density function of element {el}")
        else:
            for m, centre in enumerate(names):
                rhor[k, m] = tok.block(
                    nr, f"density of a {el} neighbour at a {centre} centre (section {el})"
                )
    z2r = np.empty((n_el, n_el, nr))
    for i in range(n_el):
        for j in range(i + 1):
            z2r[i, j] = z2r[j, i] = tok.block(nr, f"r*phi of pair {names[i]}-{names[j]}")
    lineno, tokens = tok.line_tokens()
    if lineno is not None:
        raise tok.error(
            lineno,
            f"unexpected data after the last pair function ({tokens[0]!r}...): does the "
            f"element count {n_el} match the file, and is it really an eam/{kind} file?",
        )
    return SetflData(
        kind=kind,
        comments=comments,
        elements=names,
        atomic_numbers=tuple(z),
        masses=tuple(masses),
        lattice_constants=tuple(alat),
        lattice_types=tuple(lat),
        nrho=nrho,
        drho=drho,
        nr=nr,
        dr=dr,
        cutoff=cutoff,
        frho=frho,
        rhor=rhor,
        z2r=z2r,
    )


# ----------------------------------------------------------------------------- writing
def _format_block(values: np.ndarray, per_line: int = 5) -> str:
    """Values 5 per line with 17 significant digits (%.16e), enough to round-trip a double."""
    flat = [f"{v:.16e}" for v in np.asarray(values, dtype=np.float64).tolist()]
    return "".join(" ".join(flat[i : i + per_line]) + "\n" for i in range(0, len(flat), per_line))


def write_setfl(path, data: SetflData) -> None:
    """Write a potential as a LAMMPS setfl file of ``data.kind``, atomically.

    The file is readable by LAMMPS ``pair_style eam/alloy`` (``data.kind == "alloy"``) or
    ``eam/fs`` and by :func:`read_setfl`; values are written with 17 significant digits so
    that ``read_setfl(write_setfl(x))`` reproduces every table bit for bit. The target is
    replaced all at once (:func:`swapmc.io.atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        Target file. Use the suffix ``.eam.alloy`` or ``.eam.fs`` so that the kind can be
        read back from the name.
    data : SetflData
        The potential.

    Raises
    ------
    ValueError
        If the file name suffix names the other kind.
    """
    suffix_kind = setfl_kind_from_name(path)
    if suffix_kind is not None and suffix_kind != data.kind:
        raise ValueError(
            f"{os.fspath(path)}: the file name says eam/{suffix_kind} but the data are "
            f"eam/{data.kind}"
        )
    parts = [c + "\n" for c in data.comments]
    parts.append(f"{data.n_elements} " + " ".join(data.elements) + "\n")
    parts.append(f"{data.nrho} {data.drho:.16e} {data.nr} {data.dr:.16e} {data.cutoff:.16e}\n")
    for k in range(data.n_elements):
        head = f"{data.atomic_numbers[k]} {data.masses[k]:.16e} {data.lattice_constants[k]:.16e}"
        if data.lattice_types[k]:
            head += f" {data.lattice_types[k]}"
        parts.append(head + "\n")
        parts.append(_format_block(data.frho[k]))
        if data.kind == "alloy":
            parts.append(_format_block(data.rhor[k, 0]))
        else:
            for m in range(data.n_elements):
                parts.append(_format_block(data.rhor[k, m]))
    for i in range(data.n_elements):
        for j in range(i + 1):
            parts.append(_format_block(data.z2r[i, j]))
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(parts))
