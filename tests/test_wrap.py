"""Periodic wrapping at the cell faces: Box.wrap and the paths that report image counters
(System.from_unwrapped, the MD snapshot, the extxyz reader).

The reference is the input itself: ``wrapped + images @ h.T`` must give back the unwrapped
position to within rounding. The bound is 4 ulp of the largest magnitude involved (one
rounding in the subtraction, one in the sum of the three products of ``images @ h.T``, one in
the reconstruction, plus one spare); an error of a cell vector is 10^15 times larger.
"""

import io

import numpy as np
import pytest

from swapmc import System
from swapmc.box import Box
from swapmc.io import read_extxyz, write_extxyz
from swapmc.md import MD, ForceField
from swapmc.models import load_preset

ORTHO = Box([10.0, 6.5, 7.25])
TRICLINIC = Box([10.0, 6.5, 7.25], [1.3, -0.7, 0.45])
EPS = np.finfo(np.float64).eps


def edge_values(length):
    """Coordinates on, just inside and just outside the faces of an edge of ``length``."""
    return np.array([-1e-17, -1e-300, -0.0, 0.0, length, -length, 2 * length,
                     -length * (1 - EPS), length * (1 - EPS / 2), np.nextafter(length, 0.0),
                     np.nextafter(length, 2 * length), 3 * length + 1e-15, -2.5 * length])


def assert_exact_bookkeeping(box, x, wrapped, images):
    s = box.fractional(wrapped)
    assert np.all((s >= 0.0) & (s < 1.0)), "wrapped position outside the cell"
    scale = np.maximum(np.abs(x), np.abs(box.matrix).sum(axis=1).max())
    err = np.abs(wrapped + images @ box.matrix.T - x)
    assert np.all(err <= 4 * np.spacing(scale)), f"largest error {err.max():.3g}"


@pytest.mark.parametrize("box", [ORTHO, TRICLINIC], ids=["orthorhombic", "triclinic"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_wrap_keeps_the_unwrapped_position_at_the_faces(box, axis):
    vals = edge_values(box.lengths[axis])
    # Mid-cell along the earlier axes and 0 along the later ones, so that the face
    # s_axis = 0 of the (possibly tilted) cell is the plane r_axis = 0.
    x = np.tile(0.5 * np.diag(box.matrix) * (np.arange(3) < axis), (vals.size, 1))
    x[:, axis] = vals
    wrapped, shifts = box.wrap(x)
    assert shifts.dtype == np.int64
    assert_exact_bookkeeping(box, x, wrapped, shifts)
    # -1e-17 is the lower face of image 0, not the upper face of image -1.
    assert np.array_equal(wrapped[0], x[0] * (np.arange(3) != axis))
    assert shifts[0, axis] == 0


@pytest.mark.parametrize("box", [ORTHO, TRICLINIC], ids=["orthorhombic", "triclinic"])
def test_wrap_returns_positions_inside_the_cell_unchanged(box):
    rng = np.random.default_rng(0)
    x = rng.random((500, 3)) @ box.matrix.T
    wrapped, shifts = box.wrap(x)
    assert np.array_equal(wrapped, x) and not shifts.any()
    far = x + rng.integers(-3, 4, size=x.shape) @ box.matrix.T + rng.normal(0, 1e-17, x.shape)
    wrapped, shifts = box.wrap(far)
    assert_exact_bookkeeping(box, far, wrapped, shifts)


def test_from_unwrapped_keeps_the_images():
    x = np.array([[-1e-17, 1.0, 1.0], [1.0, -1e-17, 1.0], [1.0, 1.0, -1e-17]])
    s = System.from_unwrapped(x, np.zeros(3, np.int64), ("A",), ORTHO,
                              images=np.full((3, 3), 2))
    assert_exact_bookkeeping(ORTHO, x, s.positions, s.images - 2)
    assert np.abs(s.unwrapped_positions() - (x + 2 * np.diag(ORTHO.matrix))).max() < 1e-14


@pytest.mark.parametrize("box", [Box([7.0, 7.0, 7.0]), Box([7.0, 7.0, 7.0], [1.5, 0.0, 0.0])],
                         ids=["orthorhombic", "sheared"])
def test_md_snapshot_images_at_the_lower_face(box):
    pre = load_preset("ka2-x10")
    ff = ForceField(pre.model)
    grid = (np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5)
    system = System(grid / 5 @ box.matrix.T, np.zeros(125, np.int64), pre.model.species, box,
                    velocities=np.zeros((125, 3)))
    md = MD(system, ff, 0.005)
    # A drift that ends a hair below the lower face between two list builds.
    md.positions[0] = [-1e-17, 0.3, -1e-17]
    snap = md.system
    assert_exact_bookkeeping(box, md.positions, snap.positions, snap.images - md.images)
    assert np.abs(snap.unwrapped_positions()[0] - md.positions[0]).max() < 1e-15


def test_extxyz_reader_carries_the_shift_into_the_image_flags():
    text = ('2\nLattice="10.0 0.0 0.0 0.0 6.5 0.0 0.0 0.0 7.25" '
            'Properties=species:S:1:pos:R:3:image:I:3 pbc="T T T"\n'
            'A -1e-17 1.0 1.0 3 0 0\n'
            'A 1.0 10.0 -1e-17 0 -1 4\n')
    s = read_extxyz(io.StringIO(text))
    x = np.array([[-1e-17, 1.0, 1.0], [1.0, 10.0, -1e-17]])
    given = np.array([[3, 0, 0], [0, -1, 4]])
    assert_exact_bookkeeping(ORTHO, x, s.positions, s.images - given)
    # And the flags survive a write/read round trip unchanged.
    buf = io.StringIO()
    write_extxyz(buf, s)
    again = read_extxyz(io.StringIO(buf.getvalue()))
    assert np.array_equal(again.images, s.images)
    assert np.array_equal(again.positions, s.positions)
