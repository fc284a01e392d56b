"""Non-affine displacement, Falk–Langer D²_min, localisation profile/index, and the extra
per-atom columns of the extended-XYZ writer that carry them.

References are independent: neighbours and bond vectors by a loop over the 27 images, the
best local affine map by ``numpy.linalg.lstsq``.
"""

import math

import numpy as np
import pytest

from swapmc import Box, System
from swapmc.analysis.nonaffine import (
    affine_map,
    d2min,
    localization,
    neighbour_bonds,
    nonaffine_displacement,
)
from swapmc.io import read_extxyz, write_extxyz

CUT = 1.5


def _cell():
    """A triclinic reference cell (tilts xy, xz, yz) of ~6 sigma."""
    return np.array([[6.2, 0.9, -0.4], [0.0, 5.9, 0.6], [0.0, 0.0, 6.4]])


def _points(n, h, seed):
    """Random points in the cell, no two closer than 0.8 (a dense, liquid-like packing)."""
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = h @ rng.random(3)
        if pts:
            d = np.array(pts) - p
            s = np.linalg.solve(h, d.T).T
            d = (s - np.rint(s)) @ h.T
            if np.min((d * d).sum(axis=1)) < 0.64:
                continue
        pts.append(p)
    return np.array(pts)


def _wrap(x, h):
    s = np.linalg.solve(h, x.T).T
    return (s - np.floor(s)) @ h.T


def _shortest(d, h):
    """Shortest of the 27 images of each vector d (rows)."""
    best = d.copy()
    for n in np.ndindex(3, 3, 3):
        e = d + (np.array(n) - 1) @ h.T
        shorter = (e * e).sum(axis=1) < (best * best).sum(axis=1)
        best[shorter] = e[shorter]
    return best


def _brute_d2min(r0, r, h0, h, cutoff):
    """D²_min with neighbours and bonds from explicit images, J from least squares."""
    n = len(r0)
    out = np.empty(n)
    jac = np.empty((n, 3, 3))
    for i in range(n):
        d0_all = _shortest(r0 - r0[i], h0)
        nb = np.flatnonzero(((d0_all**2).sum(axis=1) < cutoff**2) & (np.arange(n) != i))
        d0 = d0_all[nb]
        d = _shortest(r[nb] - r[i], h)
        jt, *_ = np.linalg.lstsq(d0, d, rcond=None)  # d0 @ J^T = d
        out[i] = ((d - d0 @ jt) ** 2).sum()
        jac[i] = jt.T
    return out, jac


def test_neighbour_bonds_match_explicit_images():
    h = _cell()
    x = _points(150, h, 1)
    start, partner, bond = neighbour_bonds(x + 3 * h[:, 0], h, CUT)  # unwrapped input
    for i in range(len(x)):
        d = _shortest(x - x[i], h)
        r2 = (d * d).sum(axis=1)
        want = set(np.flatnonzero((r2 < CUT**2) & (np.arange(len(x)) != i)).tolist())
        got = partner[start[i]:start[i + 1]]
        assert set(got.tolist()) == want
        np.testing.assert_allclose(bond[start[i]:start[i + 1]], d[got], atol=1e-12)
    with pytest.raises(ValueError, match="exceeds the smallest perpendicular"):
        neighbour_bonds(x, h, 7.0)


def test_d2min_matches_bruteforce():
    """A known non-affine field (random displacements of 0.08 on top of shear + stretch),
    positions wrapped in the deformed cell: D²_min equals the brute-force value."""
    h0 = _cell()
    r0 = _points(150, h0, 2)
    f = np.array([[1.03, 0.12, 0.0], [0.0, 0.98, 0.02], [0.0, 0.0, 1.0]])
    h = f @ h0
    rng = np.random.default_rng(3)
    r = _wrap(r0 @ f.T + rng.normal(0.0, 0.08, r0.shape), h)
    got, jac = d2min(r0, r, h0, h, CUT, return_jacobian=True)
    want, want_jac = _brute_d2min(r0, r, h0, h, CUT)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(jac, want_jac, rtol=0, atol=1e-10)
    assert np.all(got > 1e-4)  # every particle moved non-affinely
    assert np.abs(jac.mean(axis=0) - f).max() < 0.03  # local maps scatter about F


def test_affine_deformation_gives_zero():
    """A uniform affine map (also with the deformed cell flipped, F passed explicitly):
    zero non-affine displacement and zero D²_min, J = F, to round-off."""
    h0 = _cell()
    r0 = _points(150, h0, 4)
    f = np.array([[1.0, 0.7, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # 70 % shear
    h = f @ h0
    assert affine_map(h0, h) == pytest.approx(f)
    flipped = h.copy()
    flipped[:, 1] -= flipped[:, 0]  # b -> b - a: the same lattice, xy = 0.21 lx
    for cell, deformation in ((h, None), (flipped, f)):
        r = _wrap(r0 @ f.T, cell)
        u = nonaffine_displacement(r0, r, h0, cell, deformation=deformation)
        assert np.abs(u).max() < 1e-12
        d2, jac = d2min(r0, r, h0, cell, CUT, deformation=deformation, return_jacobian=True)
        assert np.nanmax(d2) < 1e-24
        assert np.abs(jac - f).max() < 1e-12


def test_nonaffine_displacement_minimum_image():
    h0 = _cell()
    r0 = _points(80, h0, 5)
    f = np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    u_true = np.random.default_rng(6).normal(0.0, 0.3, r0.shape)
    r = _wrap(r0 @ f.T + u_true, f @ h0)
    u = nonaffine_displacement(r0, r, h0, f @ h0)
    np.testing.assert_allclose(u, u_true, atol=1e-12)


def test_planted_rearrangement_is_local():
    """Particles within R = 1 of a centre get random displacements of 0.3 on top of an
    affine 5 % shear: D²_min is > 0 for them, and exactly zero (round-off) for every
    particle whose reference neighbourhood (within the cut-off) contains none of them."""
    h0 = np.diag([9.0, 9.0, 9.0])
    r0 = _points(500, h0, 7)
    f = np.eye(3)
    f[0, 1] = 0.05
    centre = np.array([4.5, 4.5, 4.5])
    dist = np.sqrt(((r0 - centre) ** 2).sum(axis=1))
    moved = dist < 1.0
    assert moved.sum() >= 3
    kick = np.zeros_like(r0)
    kick[moved] = np.random.default_rng(8).normal(0.0, 0.3, (moved.sum(), 3))
    r = _wrap(r0 @ f.T + kick, f @ h0)
    d2 = d2min(r0, r, h0, f @ h0, CUT)
    start, partner, _ = neighbour_bonds(r0, h0, CUT)
    touched = moved.copy()
    for i in range(len(r0)):
        touched[i] |= moved[partner[start[i]:start[i + 1]]].any()
    assert np.all(d2[moved] > 1e-3)
    assert np.all(d2[~touched] < 1e-24)
    assert touched.sum() < 0.2 * len(r0)
    # Nothing farther than R + cut-off from the centre is touched.
    assert dist[touched].max() < 1.0 + CUT


# ----------------------------------------------------------------------------- localisation
def _slab_positions(n, h, seed):
    return np.random.default_rng(seed).random((n, 3)) @ h.T


def test_localization_homogeneous_field():
    """Heavy-tailed (exponential) values with no spatial structure: index ~ 0."""
    h = np.diag([15.0, 15.0, 15.0])
    x = _slab_positions(4000, h, 9)
    v = np.random.default_rng(10).exponential(1.0, len(x))
    loc = localization(v, x, h, axis=1)
    assert len(loc.profile) == 16  # round(4000^(1/3))
    assert loc.index < 0.02
    assert loc.participation > 0.98
    assert localization(np.full(len(x), 2.0), x, h).index == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("y0", [7.3, 0.4])  # the second band straddles the periodic edge
def test_localization_band_recovered(y0):
    """A Gaussian band (standard deviation 0.8, FWHM 1.88) at y0 on a weak background,
    in a sheared cell: index near 1, centre and width recovered to within a bin."""
    h = np.diag([15.0, 15.0, 15.0])
    h[0, 1] = 0.2 * 15.0
    x = _slab_positions(4000, h, 11)
    y = x[:, 1]
    dy = (y - y0 + 7.5) % 15.0 - 7.5
    rng = np.random.default_rng(12)
    v = 0.05 * rng.exponential(1.0, len(x)) + 5.0 * np.exp(-0.5 * (dy / 0.8) ** 2) \
        * rng.exponential(1.0, len(x))
    loc = localization(v, x, h, axis=1, n_bins=30)  # bins of 0.5
    assert loc.index > 0.8
    assert abs((loc.position - y0 + 7.5) % 15.0 - 7.5) < 0.5
    assert loc.width == pytest.approx(2.355 * 0.8, abs=0.5)
    # The homogeneous direction shows no band (sampling noise of a field carried by ~1/8
    # of the particles, with default bins of ~250 particles: index ~0.03).
    assert localization(v, x, h, axis=0).index < 0.1


def test_localization_index_orders_band_widths():
    """Narrower bands are more localised; the index of a top-hat band of width w is
    (1 - w/L) / (1 - 1/n) exactly on a noise-free field."""
    h = np.diag([10.0, 10.0, 10.0])
    x = _slab_positions(6000, h, 13)
    n = 20
    for w in (1.0, 3.0, 6.0):
        v = ((x[:, 1] > 2.0) & (x[:, 1] < 2.0 + w)).astype(float)
        loc = localization(v, x, h, axis=1, n_bins=n)
        assert loc.index == pytest.approx((1 - w / 10.0) / (1 - 1 / n), abs=1e-9)
        assert loc.width == pytest.approx(w, abs=0.5)
        assert loc.position == pytest.approx(2.0 + w / 2, abs=0.3)


def test_localization_errors():
    h = np.eye(3) * 5
    x = np.zeros((3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        localization([1.0, -1.0, 0.0], x, h)
    with pytest.raises(ValueError, match="axis"):
        localization([1.0, 1.0, 0.0], x, h, axis=3)
    zero = localization([0.0, 0.0, 0.0], x, h)
    assert zero.index == 0.0 and math.isnan(zero.position)


# ----------------------------------------------------------------------------- extxyz
def _system():
    h = np.diag([5.0, 5.0, 5.0])
    x = _slab_positions(4, h, 14)
    return System(x, np.array([0, 1, 0, 1]), ("A", "B"), Box.from_matrix(h))


def test_extxyz_extra_columns(tmp_path):
    s = _system()
    d2 = np.array([0.1, 2.5e-7, 3.0, 0.0])
    u = np.arange(12, dtype=float).reshape(4, 3) / 7.0
    flag = np.array([True, False, True, False])
    path = tmp_path / "cols.xyz"
    write_extxyz(path, s, columns={"d2min": d2, "u_na": u, "moved": flag},
                 info={"d2min_unit": "sigma_AA^2"})
    lines = path.read_text().splitlines()
    assert "Properties=species:S:1:pos:R:3:type:I:1:image:I:3:d2min:R:1:u_na:R:3:moved:I:1" \
        in lines[1]
    row = lines[2].split()
    assert float(row[8]) == d2[0] and [float(t) for t in row[9:12]] == u[0].tolist()
    assert row[12] == "1"
    back = read_extxyz(path)  # the reader skips columns it does not know
    assert back.same_state(s)
    ase_io = pytest.importorskip("ase.io")
    write_extxyz(path, s, columns={"d2min": d2, "u_na": u},
                 element_names={"A": "Ar", "B": "Ne"})
    atoms = ase_io.read(str(path), format="extxyz")
    assert atoms.arrays["d2min"].tolist() == d2.tolist()
    np.testing.assert_array_equal(atoms.arrays["u_na"], u)


@pytest.mark.parametrize("columns,match", [
    ({"pos": np.zeros(4)}, "already used"),
    ({"d2 min": np.zeros(4)}, "identifier"),
    ({"d2min": np.zeros(3)}, r"shape \(4,\)"),
    ({"d2min": np.array([0.0, np.nan, 1.0, 1.0])}, "non-finite value at particle 1"),
    ({"label": np.array(["a", "b", "c", "d"])}, "integers or floats"),
])
def test_extxyz_extra_column_errors(tmp_path, columns, match):
    path = tmp_path / "bad.xyz"
    with pytest.raises((ValueError, TypeError), match=match):
        write_extxyz(path, _system(), columns=columns)
    assert not path.exists()
