"""The faster AQS path: L-BFGS minimisation (force-based line search) and the extrapolated
start (affine map plus the previous elastic step's non-affine displacement).

Neither may change the physics: on a glass L-BFGS reaches FIRE's minimum to the tolerance,
the stress of every AQS step is the virial of the minimised configuration, the small-strain
slope equals the Hessian modulus (Born + non-affine), the fcc crystal's elastic branch is
the affine one, and runs with the new options resume bit for bit.
"""

import json

import numpy as np
import pytest

from swapmc import Box, System
from swapmc.build import composition_counts, lattice_configuration, random_configuration
from swapmc.md import ForceField, fire
from swapmc.md.elasticity import elastic_constants
from swapmc.md.engine import NativeEngine, reduce_cell, strained_cell
from swapmc.md.minimize import lbfgs, minimize
from swapmc.md.shear import AQS, conjugate_stress, deformation_gradient
from swapmc.md.stress import to_user_pressure
from swapmc.models import LJMixture, load_preset


def _stress(ff, system, mode="shear"):
    r = ff.compute(system)
    return conjugate_stress(to_user_pressure(-r.virial / system.box.volume, ff.units), mode)


def _deformed(system, f):
    h, _ = reduce_cell(f @ system.box.matrix)
    return System.from_unwrapped(system.unwrapped_positions() @ f.T, system.species,
                                 system.species_names, Box.from_matrix(h))


@pytest.fixture(scope="module")
def ka2():
    """KA2 inherent structure, N = 300 (random insertion, FIRE to 1e-10)."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 300, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=11, min_distance=0.75)
    ff = ForceField(pre.model)
    m = fire(s, ff, fmax=1e-10, max_steps=100_000)
    assert m.converged
    return ff, m.system


def test_lbfgs_reaches_fires_minimum(ka2):
    """From the inherent structure sheared affinely by 1e-4: both minimisers converge to
    max|F| < 1e-10 and land on the same minimum (positions to 1e-7 sigma, energy to
    1e-10 of its magnitude); L-BFGS in fewer force evaluations."""
    ff, s = ka2
    start = _deformed(s, deformation_gradient(1e-4, "shear"))
    a = fire(start, ff, fmax=1e-10, max_steps=100_000)
    b = lbfgs(start, ff, fmax=1e-10, max_steps=100_000)
    assert a.converged and b.converged and b.max_force < 1e-10
    assert np.abs(a.system.unwrapped_positions() - b.system.unwrapped_positions()).max() < 1e-7
    assert b.energy == pytest.approx(a.energy, rel=1e-10, abs=0)
    assert b.steps < a.steps
    # The energy reported is that of the returned configuration.
    assert ff.compute(b.system).energy == pytest.approx(b.energy, rel=1e-13)
    with pytest.raises(ValueError, match="unknown minimiser"):
        minimize(start, ff, method="bogus")
    # Through minimize() and with a tolerance already met: nothing to do.
    c = minimize(b.system, ff, fmax=1e-8, method="lbfgs")
    assert c.converged and c.steps == 0


def test_lbfgs_relaxed_slope_is_the_hessian_modulus(ka2):
    """G_xy from the Hessian (Born + Lemaitre-Maloney) against the central difference of
    sigma_xy of the L-BFGS-relaxed simple shear at +-g (g = 1e-5, halved until no pair
    crosses an LJ cut-off and the relaxation is antisymmetric), to 1e-5 relative, as
    tests/test_elasticity.py checks FIRE."""
    ff, ref = ka2
    ec = elastic_constants(ref, ff, method="direct")
    h0 = ref.box.matrix
    g = 1e-5
    for _ in range(6):
        runs = [lbfgs(_deformed(ref, strained_cell(h0, s * g, "shear") @ np.linalg.inv(h0)),
                      ff, fmax=1e-10) for s in (1, -1)]
        assert all(r.converged for r in runs)
        aff = [ref.unwrapped_positions() @ (strained_cell(h0, s * g, "shear")
                                            @ np.linalg.inv(h0)).T for s in (1, -1)]
        u = [r.system.unwrapped_positions() - a for r, a in zip(runs, aff)]
        if np.linalg.norm(u[0] + u[1]) < 1e-3 * np.linalg.norm(u[0]):
            break
        g /= 2
    else:
        pytest.fail("no strain step without a plastic event or cut-off crossing")
    slope = (_stress(ff, runs[0].system) - _stress(ff, runs[1].system)) / (2 * g)
    assert ec.G_xy == pytest.approx(slope, rel=1e-5)


def test_aqs_lbfgs_stress_is_the_virial_and_matches_fire(ka2):
    """AQS with L-BFGS and extrapolation: at every step the recorded stress and energy are
    those of the force field on the minimised configuration, minimised to the tolerance;
    step by step, FIRE from the same start reaches the same minimum (stress to 1e-8,
    energy to 1e-12) in fewer than half the force evaluations."""
    ff, s = ka2
    seen = []

    def observe(a):
        snap = a.engine.system()
        r = ff.compute(snap)
        seen.append((r.energy, conjugate_stress(to_user_pressure(
            -r.virial / snap.box.volume, ff.units), "shear"),
            float(np.sqrt((r.forces ** 2).sum(axis=1).max()))))

    fast = AQS(NativeEngine(s, ff), max_strain=0.06, step=1e-3, ftol=1e-8,
               minimizer="lbfgs", extrapolate=True).run(observe)
    seen = np.array(seen)
    assert len(seen) == len(fast.strain) == 61
    np.testing.assert_allclose(fast.energy, seen[:, 0], rtol=1e-12)
    np.testing.assert_allclose(fast.stress, seen[:, 1], atol=1e-10)
    assert np.all(seen[:, 2] < 1e-8) and np.all(fast.table[:, 11] == 1.0)
    assert fast.drops, "a KA2 glass yields plastically within 6 % strain"
    # Step by step against FIRE from the identical start (the state before the step,
    # strained and extrapolated as the fast run did): the same minimum on the great
    # majority of steps; the exceptions are nearby minima (~1e-3 sigma apart) of a marginal
    # glass, of which either minimiser may find either.
    a = AQS(NativeEngine(s, ff), max_strain=0.006, step=2e-4, ftol=1e-8, minimizer="lbfgs",
            extrapolate=True)
    a.start()
    twin = NativeEngine(s, ff)
    m = deformation_gradient(2e-4, "shear")
    same, iters = [], []
    for _ in range(30):
        state, u = a.engine.get_state(), a._u_prev
        a.advance()
        twin.set_state(state)
        twin.set_cell(m @ twin.cell())
        if u is not None:
            twin.set_positions(twin.positions() + u)
        info = twin.minimize(1e-8, 100_000)
        assert info.converged
        iters.append((a.table()[-1, 10], info.iterations))
        if np.abs(twin.positions() - a.engine.positions()).max() < 1e-6:
            same.append(True)
            assert conjugate_stress(twin.stress(), "shear") == pytest.approx(
                a.table()[-1, 1], abs=1e-8)
            assert twin.energy() == pytest.approx(a.table()[-1, 8], rel=1e-12)
        else:
            same.append(False)
    assert sum(same) >= 26, same
    iters = np.array(iters)
    assert iters[:, 0].mean() < 0.5 * iters[:, 1].mean()
    assert a.settings()["minimizer"] == "lbfgs" and a.settings()["extrapolate"]


def test_aqs_lbfgs_crystal_elastic_branch_unchanged():
    """fcc LJ crystal (N = 256, cube axes): with L-BFGS and extrapolation the AQS stress is
    the affine stress at every step (1e-9) and the slope the finite-difference C44."""
    lj = LJMixture(("A",), np.ones((1, 1)), np.ones((1, 1)), np.full((1, 1), 2.5), (1.0,))
    ff = ForceField(lj)
    crystal = lattice_configuration([256], ("A",), 1.09, seed=0)
    r = AQS(NativeEngine(crystal, ff), max_strain=0.02, step=1e-3, minimizer="lbfgs",
            extrapolate=True).run()
    aff = np.array([_stress(ff, _deformed(crystal, deformation_gradient(g, "shear")))
                    for g in r.strain])
    np.testing.assert_allclose(r.stress, aff, rtol=0, atol=1e-9)
    d = 1e-5
    c44 = (_stress(ff, _deformed(crystal, deformation_gradient(d, "shear")))
           - _stress(ff, _deformed(crystal, deformation_gradient(-d, "shear")))) / (2 * d)
    slope = np.polyfit(r.strain, r.stress, 4)[3]
    assert slope == pytest.approx(c44, rel=1e-4)
    assert r.drops == []
    # The FIRE curve, unchanged: the same numbers.
    old = AQS(NativeEngine(crystal, ff), max_strain=0.02, step=1e-3).run()
    np.testing.assert_allclose(r.stress, old.stress, rtol=0, atol=1e-10)


def test_aqs_extrapolated_resume_is_exact(ka2):
    """Stop after 8 steps, save, continue in a new engine: the same table, bit for bit, as
    an uninterrupted run (the extrapolation vector is part of the state); a checkpoint
    written before the options existed resumes as FIRE without extrapolation."""
    ff, s = ka2
    kw = dict(max_strain=0.02, step=1e-3, ftol=1e-8, minimizer="lbfgs", extrapolate=True)
    full = AQS(NativeEngine(s, ff), **kw).run()
    a = AQS(NativeEngine(s, ff), **kw)
    a.start()
    for _ in range(8):
        a.advance()
    state = a.get_state()
    assert "extrapolation" in state
    b = AQS(NativeEngine(s, ff), **kw)
    b.set_state(state)
    rest = b.run()
    np.testing.assert_array_equal(rest.table, full.table)
    # An old checkpoint (no minimizer / extrapolate in its settings).
    old = AQS(NativeEngine(s, ff), max_strain=0.02, step=1e-3, ftol=1e-8)
    old.start()
    st = old.get_state()
    meta = json.loads(str(st["meta"]))
    del meta["settings"]["minimizer"], meta["settings"]["extrapolate"]
    st["meta"] = json.dumps(meta)
    AQS(NativeEngine(s, ff), max_strain=0.02, step=1e-3, ftol=1e-8).set_state(st)
    with pytest.raises(ValueError, match="minimizer"):
        AQS(NativeEngine(s, ff), max_strain=0.02, step=1e-3, ftol=1e-8,
            minimizer="lbfgs").set_state(st)
    with pytest.raises(ValueError, match="unknown minimizer"):
        AQS(NativeEngine(s, ff), minimizer="cg")
