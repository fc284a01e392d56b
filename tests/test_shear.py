"""The engine interface (native engine), AQS and finite-rate shear protocols.

Crystal references: single-species LJ fcc (rho = 1.09, r_c = 2.5), a Bravais lattice, so a
homogeneous strain moves every atom affinely (each is a centre of inversion, forces stay
zero) and the AQS curve must equal the stress of the affinely strained lattice until the
lattice becomes mechanically unstable, which the lowest eigenvalue of its Hessian (finite
differences of forces) locates independently. Two orientations: cube axes (N = 256) and
x = [1-10], y = [111], z = [11-2] (N = 180), where xy shear is slip on the close-packed
{111}<110> system.
"""

import numpy as np
import pytest
from reference import lj_pair_energy

from swapmc import Box, System
from swapmc.build import composition_counts, lattice_configuration, random_configuration
from swapmc.md import ForceField, fire
from swapmc.md.engine import Engine, NativeEngine, reduce_cell
from swapmc.md.shear import (
    AQS,
    RateShear,
    conjugate_stress,
    deformation_gradient,
    find_drops,
    step_map,
)
from swapmc.md.stress import to_user_pressure
from swapmc.models import LJMixture, load_preset

RHO = 1.09


def _lj1():
    return LJMixture(("A",), np.ones((1, 1)), np.ones((1, 1)), np.full((1, 1), 2.5), (1.0,))


def fcc111(a0, reps):
    """fcc with x = [1-10], y = [111], z = [11-2]; 6 atoms per orthogonal cell."""
    ex = np.array([1, -1, 0]) / np.sqrt(2)
    ey = np.array([1, 1, 1]) / np.sqrt(3)
    ez = np.array([1, 1, -2]) / np.sqrt(6)
    rot = np.array([ex, ey, ez])
    unit = np.array([a0 / np.sqrt(2), np.sqrt(3) * a0, np.sqrt(6) * a0 / 2])
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    g = np.arange(-4, 5)
    pts = (np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 1, 3)
           + basis).reshape(-1, 3) * a0
    r = pts @ rot.T
    s = r / unit
    cell = r[np.all((s >= -1e-9) & (s < 1 - 1e-9), axis=1)]
    assert len(cell) == 6
    g = np.stack(np.meshgrid(*[np.arange(k) for k in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    pos = (g * unit + cell[None]).reshape(-1, 3) + 0.01 * unit  # off the faces
    lengths = unit * np.array(reps)
    return System.from_unwrapped(pos, np.zeros(len(pos), np.int32), ("A",), Box(lengths))


@pytest.fixture(scope="module")
def lj1():
    return ForceField(_lj1())


@pytest.fixture(scope="module")
def slip_crystal():
    """N = 180, cell 5.45 x 5.34 x 5.67 sigma (just above 2 r_c)."""
    return fcc111((4 / RHO) ** (1 / 3), (5, 2, 3))


@pytest.fixture(scope="module")
def cube_crystal():
    return lattice_configuration([256], ("A",), RHO, seed=0)


@pytest.fixture(scope="module")
def glass():
    """A KA glass of N = 250 (random insertion at rho = 1.2, FIRE quench)."""
    pre = load_preset("ka")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    ff = ForceField(pre.model)
    return ff, fire(s, ff, fmax=1e-3).system


def _affine_stress(system, ff, strain, mode):
    """Conjugate stress of the affinely strained configuration, straight from the force
    field (no engine, no protocol); a cell beyond the tilt limits is reduced first."""
    f = deformation_gradient(strain, mode)
    h, _ = reduce_cell(f @ system.box.matrix)
    s = System.from_unwrapped(system.unwrapped_positions() @ f.T, system.species,
                              system.species_names, Box.from_matrix(h))
    r = ff.compute(s)
    return conjugate_stress(to_user_pressure(-r.virial / s.box.volume, ff.units), mode)


def _lowest_mode(system, ff, strain):
    """Lowest eigenvalue of the Hessian of the affinely sheared crystal other than the
    three translations (central differences of forces, h = 1e-5)."""
    f = deformation_gradient(strain, "shear")
    h = f @ system.box.matrix
    x0 = system.unwrapped_positions() @ f.T
    eng = NativeEngine(System.from_unwrapped(x0, system.species, system.species_names,
                                             Box.from_matrix(h)), ff)
    n3 = x0.size
    hess = np.empty((n3, n3))
    d = 1e-5
    for k in range(n3):
        x = x0.copy()
        x.flat[k] += d
        eng.set_positions(x)
        fp = eng.forces().ravel()
        x.flat[k] -= 2 * d
        eng.set_positions(x)
        hess[:, k] = -(fp - eng.forces().ravel()) / (2 * d)
    w = np.linalg.eigvalsh(0.5 * (hess + hess.T))
    return w[3]


# ----------------------------------------------------------------------------- engine
def _brute_lj(positions, h, eps=1.0, sig=1.0, rc=2.5):
    """Total cut-and-shifted LJ energy over explicit images n in [-2, 2]^3."""
    e = 0.0
    for n in np.ndindex(5, 5, 5):
        shift = (np.array(n) - 2) @ h.T
        d = positions[None, :, :] - positions[:, None, :] + shift
        r = np.sqrt((d * d).sum(axis=-1))
        if n == (2, 2, 2):
            r = r[~np.eye(len(positions), dtype=bool)]
        e += 0.5 * lj_pair_energy(r[r < rc], eps, sig, rc).sum()
    return float(e)


def test_native_engine_matches_forcefield(glass):
    ff, s = glass
    e = NativeEngine(s, ff)
    assert isinstance(e, Engine)
    assert e.units == "lj" and e.n == 250 and e.dt == 0.005
    r = ff.compute(s)
    assert e.energy() == pytest.approx(r.energy, rel=1e-12)
    np.testing.assert_allclose(e.forces(), r.forces, atol=1e-10)
    np.testing.assert_allclose(e.stress(), -r.virial / s.box.volume, rtol=1e-12, atol=1e-12)
    # The MD list re-wraps positions at its build: equal up to one rounding.
    np.testing.assert_allclose(e.positions(), s.unwrapped_positions(), rtol=0, atol=1e-14)
    snap = e.system()
    np.testing.assert_allclose(snap.positions, s.positions, rtol=0, atol=1e-14)
    assert np.array_equal(snap.images, s.images) and np.all(snap.velocities == 0)


def test_set_cell_remaps_and_flips(slip_crystal, lj1):
    """An affine map to xy = 0.7 lx: the engine keeps the equivalent cell xy = -0.3 lx,
    positions follow the map exactly, and energy and forces equal a brute-force sum over
    images of the unreduced cell."""
    rng = np.random.default_rng(0)
    base = slip_crystal
    s = System.from_unwrapped(base.positions + rng.normal(0, 0.05, base.positions.shape),
                              base.species, base.species_names, base.box)
    e = NativeEngine(s, lj1)
    h0 = s.box.matrix
    f = np.eye(3)
    f[0, 1] = 0.7 * h0[0, 0] / h0[1, 1]
    x = e.positions() @ f.T
    e.set_cell(f @ h0)
    h = e.cell()
    assert h[0, 1] == pytest.approx(-0.3 * h0[0, 0], rel=1e-12)
    np.testing.assert_allclose(e.positions(), x, atol=1e-12)
    assert e.energy() == pytest.approx(_brute_lj(x, f @ h0), rel=1e-11)
    fresh = ff_forces = lj1.compute(e.system())
    assert fresh.energy == pytest.approx(e.energy(), rel=1e-12)
    np.testing.assert_allclose(e.forces(), ff_forces.forces, atol=1e-10)
    # Flipped back by the opposite map.
    e.set_cell(np.linalg.inv(f) @ h)
    np.testing.assert_allclose(e.cell(), h0, atol=1e-12)


def test_reduce_cell():
    h = np.array([[4.0, 3.1, -2.6], [0.0, 5.0, 3.4], [0.0, 0.0, 6.0]])
    red, t = reduce_cell(h)
    np.testing.assert_allclose(red, h @ t)
    assert round(abs(np.linalg.det(t))) == 1
    assert abs(red[0, 1]) <= 2.0 and abs(red[0, 2]) <= 2.0 and abs(red[1, 2]) <= 2.5
    same, t = reduce_cell(np.diag([3.0, 3.0, 3.0]))
    assert np.array_equal(t, np.eye(3, dtype=np.int64))


def test_step_map_and_modes():
    for mode in ("shear", "pure"):
        m = step_map(0.03, 0.05, mode)
        np.testing.assert_allclose(m @ deformation_gradient(0.03, mode),
                                   deformation_gradient(0.05, mode), atol=1e-15)
        assert np.linalg.det(deformation_gradient(0.2, mode)) == pytest.approx(1.0)
    s = np.array([[3.0, 0.5, 0], [0.5, 1.0, 0], [0, 0, 2.0]])
    assert conjugate_stress(s, "shear") == 0.5 and conjugate_stress(s, "pure") == 1.0
    assert find_drops([0.0, 1.0, 0.5, 0.6, 0.59999]).tolist() == [2, 4]
    assert find_drops([0.0, 1.0, 0.5, 0.6, 0.59999], threshold=1e-4).tolist() == [2]
    with pytest.raises(ValueError, match="unknown shear mode"):
        deformation_gradient(0.1, "torsion")


# ----------------------------------------------------------------------------- AQS
@pytest.fixture(scope="module")
def slip_aqs(slip_crystal, lj1):
    return AQS(NativeEngine(slip_crystal, lj1), max_strain=0.12, step=1e-3).run()


def test_aqs_crystal_follows_affine_branch(slip_crystal, lj1, slip_aqs):
    """Bravais lattice: the AQS stress equals the affine stress at every step up to 0.12,
    the small-strain slope equals the modulus from a central difference of the affine
    stress (C44' of the {111}<110> system), and there is no drop."""
    r = slip_aqs
    assert r.finished and len(r.strain) == 121 and r.drops == []
    aff = np.array([_affine_stress(slip_crystal, lj1, g, "shear") for g in r.strain])
    np.testing.assert_allclose(r.stress, aff, rtol=0, atol=1e-9)
    d = 1e-5
    modulus = (_affine_stress(slip_crystal, lj1, d, "shear")
               - _affine_stress(slip_crystal, lj1, -d, "shear")) / (2 * d)
    slope = np.polyfit(r.strain[:11], r.stress[:11], 2)[1]
    assert slope == pytest.approx(modulus, rel=1e-4)
    assert 20 < modulus < 60  # (C11 - C12 + C44) / 3 of LJ fcc near P = 0
    # The lattice is still stable at the end of this branch.
    assert _lowest_mode(slip_crystal, lj1, 0.12) > 1.0


class _Jiggled:
    """An engine whose every cell change adds random displacements of 1e-6: enough to let
    an unstable lattice leave its saddle, far too small to matter otherwise."""

    def __init__(self, engine, seed):
        self._engine = engine
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def set_cell(self, h, remap=True):
        self._engine.set_cell(h, remap)
        x = self._engine.positions()
        self._engine.set_positions(x + self._rng.normal(0.0, 1e-6, x.shape))


@pytest.mark.physics
def test_aqs_crystal_slips_at_the_instability(slip_crystal, lj1):
    """The first drop (slip) comes within a few steps after the strain at which the
    Hessian of the affinely sheared lattice gets a negative eigenvalue, never before."""
    lo, hi = 0.12, 0.16
    assert _lowest_mode(slip_crystal, lj1, lo) > 0 > _lowest_mode(slip_crystal, lj1, hi)
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _lowest_mode(slip_crystal, lj1, mid) > 0 else (lo, mid)
    eng = _Jiggled(NativeEngine(slip_crystal, lj1), seed=1)
    r = AQS(eng, max_strain=0.17, step=1e-3).run()
    first = r.drops[0]
    assert lo - 1e-3 <= first.strain <= hi + 0.01
    assert first.n_particles > 0.5 * r.n  # a whole plane slips
    assert r.stress[first.step - 1] == pytest.approx(
        _affine_stress(slip_crystal, lj1, r.strain[first.step - 1], "shear"), abs=1e-6)


def test_aqs_through_cell_flips(cube_crystal, lj1):
    """Simple shear to 70 % in steps of 5 %: the tilt passes lx/2 at 50 % and the engine
    flips the cell, yet every step's stress is that of the affinely sheared lattice, the
    strain is the deformation history's and the final cell spans the lattice of F h0."""
    eng = NativeEngine(cube_crystal, lj1)
    r = AQS(eng, max_strain=0.7, step=0.05).run()
    assert r.strain[-1] == pytest.approx(0.7)
    aff = [_affine_stress(cube_crystal, lj1, g, "shear") for g in r.strain]
    np.testing.assert_allclose(r.stress, aff, rtol=0, atol=1e-9)
    h = eng.cell()
    assert h[0, 1] == pytest.approx((0.7 - 1.0) * h[1, 1])
    np.testing.assert_allclose(r.final.cell, h)
    np.testing.assert_allclose(r.final.deformation, deformation_gradient(0.7, "shear"))


def test_aqs_pure_shear_crystal(cube_crystal, lj1):
    """Pure shear keeps the volume; the stress (sigma_xx - sigma_yy)/2 follows the affine
    one and its slope is C11 - C12 from the affine central difference."""
    eng = NativeEngine(cube_crystal, lj1)
    v0 = cube_crystal.box.volume
    vols = []
    r = AQS(eng, mode="pure", max_strain=2e-3, step=2e-4).run(
        callback=lambda a: vols.append(np.linalg.det(a.engine.cell())))
    np.testing.assert_allclose(vols, v0, rtol=1e-12)
    aff = [_affine_stress(cube_crystal, lj1, g, "pure") for g in r.strain]
    np.testing.assert_allclose(r.stress, aff, atol=1e-9)
    d = 1e-5
    modulus = (_affine_stress(cube_crystal, lj1, d, "pure")
               - _affine_stress(cube_crystal, lj1, -d, "pure")) / (2 * d)
    assert np.polyfit(r.strain, r.stress, 2)[1] == pytest.approx(modulus, rel=1e-4)
    assert r.drops == []


@pytest.fixture(scope="module")
def glass_aqs(glass):
    """AQS of the glass to 12 % in steps of 2e-3, with the force field's own energy and
    stress of every minimised configuration recorded on the side."""
    ff, s = glass
    seen = []

    def observe(a):
        snap = a.engine.system()
        r = ff.compute(snap)
        sigma = -r.virial / snap.box.volume
        seen.append((r.energy, conjugate_stress(sigma, "shear"), float(np.sqrt(
            (r.forces ** 2).sum(axis=1).max()))))

    res = AQS(NativeEngine(s, ff), max_strain=0.12, step=2e-3, ftol=1e-6).run(observe)
    return res, np.array(seen)


def test_aqs_glass_stress_is_the_virial(glass_aqs):
    """At every step: stress and energy recorded = those of the force field on the
    minimised configuration, which is minimised to the tolerance."""
    r, seen = glass_aqs
    assert len(seen) == len(r.strain) == 61
    np.testing.assert_allclose(r.energy, seen[:, 0], rtol=1e-12)
    np.testing.assert_allclose(r.stress, seen[:, 1], atol=1e-10)
    assert np.all(seen[:, 2] < 1e-6) and np.all(r.table[:, 11] == 1.0)


def test_aqs_glass_elastic_branch_then_drops(glass_aqs, glass):
    """Stress rises on the first (elastic) steps with a slope of a KA glass's shear
    modulus; then drops, each with a rearrangement; Delta E of every drop equals the
    difference of independently computed energies."""
    r, seen = glass_aqs
    first = r.drops[0].step
    assert first >= 3
    assert np.all(np.diff(r.stress[:first]) > 0)
    slope = (r.stress[2] - r.stress[0]) / (r.strain[2] - r.strain[0])
    assert 5 < slope < 30  # G of KA inherent structures ~ 10-20 epsilon/sigma^3
    assert len(r.drops) >= 2
    for d in r.drops:
        assert d.energy_change == pytest.approx(seen[d.step, 0] - seen[d.step - 1, 0],
                                                abs=1e-9)
        assert d.stress_change == pytest.approx(seen[d.step, 1] - seen[d.step - 1, 1],
                                                abs=1e-9)
        assert d.stress_change < 0 and 1 <= d.n_particles <= r.n
        assert d.max_displacement > r.displacement_threshold
    big = r.largest_drop
    assert big.stress_change == min(d.stress_change for d in r.drops)
    assert r.drop_before.strain == pytest.approx(big.strain - 2e-3)
    assert r.drop_after.energy == pytest.approx(seen[big.step, 0], rel=1e-12)
    assert r.summary()["n_drops"] == len(r.drops)


def test_aqs_resume_is_exact(glass):
    """Stopping after 6 steps, saving the state and continuing in a new engine gives the
    same table, bit for bit, as one uninterrupted run."""
    ff, s = glass
    kw = dict(max_strain=0.024, step=2e-3, ftol=1e-6, snapshot_strains=[0.01])
    whole = AQS(NativeEngine(s, ff), **kw).run()
    first = AQS(NativeEngine(s, ff), **kw)
    first.start()
    for _ in range(6):
        first.advance()
    state = {k: np.array(v) for k, v in first.get_state().items()}
    second = AQS(NativeEngine(s, ff), **kw)
    second.set_state(state)
    assert second.k == 6
    res = second.run()
    np.testing.assert_array_equal(res.table, whole.table)
    assert [d.as_dict() for d in res.drops] == [d.as_dict() for d in whole.drops]
    np.testing.assert_array_equal(res.snapshots[0.01].positions,
                                  whole.snapshots[0.01].positions)
    np.testing.assert_array_equal(res.final.positions, whole.final.positions)
    other = AQS(NativeEngine(s, ff), **dict(kw, step=1e-3))
    with pytest.raises(ValueError, match="step = 0.002"):
        other.set_state(state)


def test_aqs_refines_drop_onsets(glass, glass_aqs):
    """Bisection (5 steps) brackets each drop's onset within 1/32 of a step without
    changing the AQS path; from the state before the drop, a minimisation at the upper
    end of the bracket rearranges and one at the lower end does not."""
    ff, s = glass
    plain, _ = glass_aqs
    states = []
    # To the first drop (at 0.052) and one step beyond, with the settings of glass_aqs.
    refined = AQS(NativeEngine(s, ff), max_strain=0.054, step=2e-3, ftol=1e-6,
                  refine=5).run(callback=lambda a: states.append(a.engine.get_state()))
    np.testing.assert_array_equal(refined.table, plain.table[:28])
    assert len(refined.drops) == 1 and refined.drops[0].step == plain.drops[0].step
    for d in refined.drops:
        k0 = d.strain - 2e-3
        assert d.onset_bracket == pytest.approx(2e-3 / 32)
        assert k0 - 1e-12 <= d.onset_strain <= d.strain - d.onset_bracket + 1e-12
        moved = []
        for target in (d.onset_strain, d.onset_strain + d.onset_bracket):
            eng = NativeEngine(s, ff)
            eng.set_state(states[d.step - 1])
            x, h = eng.positions(), eng.cell()
            m = step_map(k0, target, "shear")
            eng.set_cell(m @ h)
            eng.minimize(1e-6, 100_000)
            u = eng.positions() - x @ m.T
            moved.append(np.sqrt((u * u).sum(axis=1)).max())
        assert moved[0] < refined.displacement_threshold < moved[1]
    assert [d.onset_strain for d in plain.drops] == pytest.approx(
        [d.strain - 2e-3 for d in plain.drops])


def test_aqs_rejects_bad_settings(glass):
    ff, s = glass
    eng = NativeEngine(s, ff)
    with pytest.raises(ValueError, match="step must be a positive"):
        AQS(eng, step=0.0)
    with pytest.raises(ValueError, match="cell too small"):
        AQS(eng, mode="pure", max_strain=0.2)  # ly / 1.2 < 2 r_c for N = 250
    with pytest.raises(ValueError, match="snapshot strain"):
        AQS(eng, max_strain=0.1, snapshot_strains=[0.3])


# ----------------------------------------------------------------------------- finite rate
def test_rate_shear_crystal_recovers_the_static_modulus(cube_crystal, lj1):
    """At T = 0.005 and rate 1e-3 / tau_LJ the crystal responds elastically: the slope of
    sigma_xy against strain over 2 % equals the AQS (= affine) modulus within 2 %, and the
    thermostat on the peculiar velocities holds T."""
    d = 1e-5
    modulus = (_affine_stress(cube_crystal, lj1, d, "shear")
               - _affine_stress(cube_crystal, lj1, -d, "shear")) / (2 * d)
    eng = NativeEngine(cube_crystal, lj1, seed=5)
    r = RateShear(eng, rate=1e-3, temperature=0.005, max_strain=0.02, block_strain=1e-3,
                  sample_every=5, equilibration_steps=500).run()
    assert r.table.shape[0] == 20 and r.strain[-1] < 0.02 < r.table[-1, 1] + 1e-12
    slope = np.polyfit(r.samples[:, 0], r.samples[:, 1], 1)[0]
    assert slope == pytest.approx(modulus, rel=0.02)  # measured: 0.4 % above
    assert np.mean(r.samples[:, 3]) == pytest.approx(0.005, rel=0.15)
    assert r.summary()["blocks"] == 20


def test_rate_shear_through_a_flip(cube_crystal, lj1):
    """Shearing past xy = lx/2 flips the cell: the engine's cell then spans the lattice of
    F(strain) h0, energies agree with a fresh force evaluation and the run carries on."""
    eng = NativeEngine(cube_crystal, lj1, seed=2)
    h0 = eng.cell()
    rs = RateShear(eng, rate=0.4, temperature=0.01, max_strain=0.8, block_strain=0.1,
                   sample_every=5)
    r = rs.run()
    h = eng.cell()
    assert abs(h[0, 1]) <= 0.5 * h[0, 0] + 1e-9
    t = np.linalg.solve(h, deformation_gradient(r.table[-1, 1], "shear") @ h0)
    np.testing.assert_allclose(t, np.rint(t), atol=1e-9)
    assert round(abs(np.linalg.det(np.rint(t)))) == 1
    assert not np.allclose(np.rint(t), np.eye(3))  # it did flip
    assert lj1.compute(eng.system()).energy == pytest.approx(eng.energy(), rel=1e-10)


def test_rate_shear_resume_is_exact(glass):
    ff, s = glass
    kw = dict(rate=0.01, temperature=0.3, max_strain=0.004, block_strain=1e-3,
              sample_every=4, equilibration_steps=20)
    whole = RateShear(NativeEngine(s, ff, seed=7), **kw).run()
    first = RateShear(NativeEngine(s, ff, seed=7), **kw)
    first.start()
    first.advance()
    first.advance()
    state = {k: np.array(v) for k, v in first.get_state().items()}
    second = RateShear(NativeEngine(s, ff, seed=99), **kw)
    second.set_state(state)
    res = second.run()
    np.testing.assert_array_equal(res.table, whole.table)
    np.testing.assert_array_equal(res.samples, whole.samples)
