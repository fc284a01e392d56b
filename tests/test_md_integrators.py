"""MD integrators, thermostats, barostat, velocities and FIRE minimisation.

Small systems (N = 64-300) and short runs; statistical checks use block averages and fail
beyond 4 standard errors.
"""

import numpy as np
import pytest

from swapmc import System
from swapmc.box import Box
from swapmc.build import composition_counts, random_configuration
from swapmc.md import (
    MD,
    BussiThermostat,
    CellError,
    ForceField,
    LangevinThermostat,
    StochasticCellRescale,
    fire,
    kinetic_temperature,
    maxwell_boltzmann,
)
from swapmc.models import LJMixture, load_preset, zjw_potential


def block_stats(x, n_blocks=20):
    """Mean and its standard error from block means (correlated samples)."""
    blocks = np.array([b.mean() for b in np.array_split(np.asarray(x), n_blocks)])
    return blocks.mean(), blocks.std(ddof=1) / np.sqrt(n_blocks)


def block_variance(x, n_blocks=20):
    """Variance and its standard error from per-block variances."""
    v = np.array([b.var() for b in np.array_split(np.asarray(x), n_blocks)])
    return v.mean(), v.std(ddof=1) / np.sqrt(n_blocks)


# ----------------------------------------------------------------------------- states
@pytest.fixture(scope="module")
def lj_state():
    """KA2 liquid, N = 250 at rho = 1.2, minimised then 1000 NVT steps at T = 1.0."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    system = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.75)
    ff = ForceField(pre.model)
    system = fire(system, ff, fmax=1e-2, max_steps=3000).system
    rng = np.random.default_rng(1)
    system.velocities = maxwell_boltzmann(ff.masses(system.species), 1.0, ff.kB, ff.mvv2e,
                                          rng)
    md = MD(system, ff, 0.005, thermostat=BussiThermostat(1.0, 0.1, rng))
    md.run(1000)
    return ff, md.system


@pytest.fixture(scope="module")
def eam_state():
    """Cu64Zr36 (ZJW) liquid, N = 300 at 0.0627 / Å^3, minimised then 500 NVT steps of
    2 fs at 1500 K."""
    pot = zjw_potential()
    system = random_configuration([192, 108], pot.species, 0.0627, seed=3, min_distance=2.0)
    ff = ForceField(pot)
    system = fire(system, ff, fmax=1e-2, max_steps=3000).system
    rng = np.random.default_rng(2)
    system.velocities = maxwell_boltzmann(ff.masses(system.species), 1500.0, ff.kB,
                                          ff.mvv2e, rng)
    md = MD(system, ff, 0.002, thermostat=BussiThermostat(1500.0, 0.05, rng))
    md.run(500)
    return ff, md.system


# ----------------------------------------------------------------------------- velocities
def test_maxwell_boltzmann_metal_units():
    pot = zjw_potential()
    ff = ForceField(pot)
    species = np.repeat(np.array([0, 1], np.int32), [6000, 4000])
    masses = ff.masses(species)
    v = maxwell_boltzmann(masses, 1200.0, ff.kB, ff.mvv2e, np.random.default_rng(5))
    assert v.shape == (10000, 3)
    np.testing.assert_allclose(masses @ v, 0.0, atol=1e-9 * np.abs(masses @ np.abs(v)).max())
    # Equipartition per species: <m v_a^2> mvv2e = k_B T, within 4 standard errors.
    kt = ff.kB * 1200.0
    for s, count in ((0, 6000), (1, 4000)):
        e = masses[species == s, None] * v[species == s] ** 2 * ff.mvv2e
        assert e.mean() == pytest.approx(kt, abs=4 * np.sqrt(2 / (3 * count)) * kt)
    # Reproducible from the generator, different for another seed.
    again = maxwell_boltzmann(masses, 1200.0, ff.kB, ff.mvv2e, np.random.default_rng(5))
    np.testing.assert_array_equal(v, again)
    other = maxwell_boltzmann(masses, 1200.0, ff.kB, ff.mvv2e, np.random.default_rng(6))
    assert not np.array_equal(v, other)
    exact = maxwell_boltzmann(masses[:50], 800.0, ff.kB, ff.mvv2e, np.random.default_rng(5),
                              exact=True)
    assert kinetic_temperature(masses[:50], exact, ff.kB, ff.mvv2e) == pytest.approx(800.0)


# ----------------------------------------------------------------------------- NVE
@pytest.mark.parametrize("kind", ["lj", "eam"])
def test_nve_energy_conservation(kind, lj_state, eam_state):
    """Velocity Verlet conserves energy: no drift, and fluctuations of second order in dt.

    Measured (this machine) with dt = 0.005 tau_LJ for LJ (KA2 N = 250, T = 1, triclinic
    cell xy = 0.2 lx, 1500 steps) and dt = 2 fs for EAM (ZJW N = 300, 1500 K, 600 steps):
    |slope| of E/N(t) 1e-6-3e-5 epsilon per particle per tau and ~1e-6 eV/atom/ps,
    fluctuation rms ~3e-4 epsilon and ~2e-5 eV per particle. The LJ slope is a random walk
    (each pair crossing the cut-off, where the force jumps, adds an error ~F(r_c) v dt of
    random sign): ~1e-5 per tau over such a run. Bounds on |slope|: 1e-4 epsilon per
    particle per tau_LJ and 5e-5 eV per atom per ps; halving dt must shrink the rms
    fluctuation by 4 (accepted: 2.8-5.5), the signature of a second-order integrator.
    """
    ff, system = lj_state if kind == "lj" else eam_state
    dt, steps, bound = (0.005, 1500, 1e-4) if kind == "lj" else (0.002, 600, 5e-5)
    if kind == "lj":
        # A triclinic cell: the same liquid sheared affinely by xy = 0.2 lx, then brought
        # back to T = 1 (the sudden shear heats it to T ~ 1.4).
        md = MD(system, ff, dt, thermostat=BussiThermostat(1.0, 0.1,
                                                           np.random.default_rng(4)))
        h = md.h.copy()
        h[0, 1] = 0.2 * h[0, 0]
        md.set_cell(h)
        md.run(500)
        system = md.system
    rms = []
    for step_dt, n in ((dt, steps), (dt / 2, 2 * steps)):
        md = MD(system, ff, step_dt)
        rows = []
        md.run(n, callback=lambda m, rows=rows: rows.append(m.total_energy / m.n))
        energies = np.array(rows)
        t = step_dt * np.arange(1, n + 1)
        slope = np.polyfit(t, energies, 1)[0]
        assert abs(slope) < bound, (step_dt, slope)
        rms.append(energies.std())
    assert 2.8 < rms[0] / rms[1] < 5.5, rms


# ----------------------------------------------------------------------------- NVT
@pytest.mark.physics
def test_bussi_thermostat_is_canonical(lj_state):
    """<K> = N_f k_B T / 2 and Var(K) = N_f (k_B T)^2 / 2 with N_f = 3N - 3; the effective
    energy (total minus thermostat heat) stays constant up to integration error."""
    ff, system = lj_state
    temperature = 0.8
    md = MD(system, ff, 0.005,
            thermostat=BussiThermostat(temperature, 0.05, np.random.default_rng(11)))
    md.run(400)
    kin, conserved = [], []

    def observe(m):
        kin.append(m.kinetic_energy)
        conserved.append(m.conserved_energy / m.n)

    md.run(8000, callback=observe, every=5)
    nf = 3 * md.n - 3
    assert md.degrees_of_freedom == nf
    kt = ff.kB * temperature
    mean, err = block_stats(kin)
    assert abs(mean - 0.5 * nf * kt) < 4 * err, (mean, 0.5 * nf * kt, err)
    assert err < 0.01 * mean
    var, var_err = block_variance(kin)
    assert abs(var - 0.5 * nf * kt**2) < 4 * var_err, (var, 0.5 * nf * kt**2, var_err)
    assert var_err < 0.15 * var
    assert np.ptp(conserved) < 0.01
    np.testing.assert_allclose(md.velocities.T @ md.masses, 0.0, atol=1e-10)


@pytest.mark.physics
def test_langevin_thermostat_temperature(lj_state):
    """Langevin (O-B-A-B-O) gives <K> = 3N k_B T / 2 (momentum not conserved)."""
    ff, system = lj_state
    md = MD(system, ff, 0.005,
            thermostat=LangevinThermostat(1.2, 5.0, np.random.default_rng(12)))
    md.run(200)
    kin = []
    md.run(3000, callback=lambda m: kin.append(m.kinetic_energy), every=5)
    mean, err = block_stats(kin)
    assert abs(mean - 1.5 * md.n * ff.kB * 1.2) < 4 * err
    assert md.degrees_of_freedom == 3 * md.n


def test_runs_are_reproducible(lj_state):
    ff, system = lj_state
    finals = []
    for _ in range(2):
        md = MD(system, ff, 0.005, thermostat=BussiThermostat(1.0, 0.1,
                                                              np.random.default_rng(3)))
        md.run(100)
        finals.append(md.system)
    assert finals[0].same_state(finals[1])


# ----------------------------------------------------------------------------- spatial sort
@pytest.fixture(scope="module")
def sort_states():
    """Liquids large enough for binned lists (so that the force field renumbers particles):
    KA2 N = 1000 at rho = 1.2 (reach-2 bins) and ZJW Cu64Zr36 N = 1000 at 0.0627 / Å^3
    (reach 1), FIRE-relaxed from random insertion, with velocities at T = 1.0 / 1500 K."""
    states = {}
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 1000, pre.model.species)
    lj = random_configuration(counts, pre.model.species, 1.2, seed=5, min_distance=0.75)
    pot = zjw_potential()
    eam = random_configuration([640, 360], pot.species, 0.0627, seed=5, min_distance=2.1)
    for kind, model, system, temperature in (("lj", pre.model, lj, 1.0),
                                             ("eam", pot, eam, 1500.0)):
        ff = ForceField(model)
        system = fire(system, ff, fmax=1e-1, max_steps=300).system
        system.velocities = maxwell_boltzmann(ff.masses(system.species), temperature, ff.kB,
                                              ff.mvv2e, np.random.default_rng(6))
        states[kind] = (model, system, temperature)
    return states


@pytest.mark.parametrize("kind", ["lj", "eam"])
def test_spatial_sort_keeps_trajectories_exact(kind, sort_states):
    """MD with the spatial sort (default) and without it: the same trajectory to the bit over
    300 steps with several list rebuilds, each re-sorting the particles. LJ: NVE under an
    oscillatory shear (triclinic cell, affine remapping); EAM: Langevin NVT, whose noise is
    drawn per particle in the System's order. Forces and virial do not depend on the
    numbering (same pairs in the same order), so exact equality is expected; the EAM energy
    sums embedding terms in the list's numbering and agrees to round-off. The returned
    System, and a FIRE minimisation from it, keep the original particle order."""
    model, system, temperature = sort_states[kind]
    dt = 0.005 if kind == "lj" else 0.002
    runs = {}
    for sort in (True, False):
        ff = ForceField(model, sort=sort)
        if kind == "lj":
            md = MD(system, ff, dt)
            h0 = md.h.copy()

            def shear(t, h0=h0):
                h = h0.copy()
                h[0, 1] = 0.1 * h0[1, 1] * np.sin(2 * np.pi * t / 1.0)
                return h

            md.run(300, deform=shear)
        else:
            md = MD(system, ff, dt, thermostat=LangevinThermostat(temperature, 5.0,
                                                                 np.random.default_rng(9)))
            md.run(300)
        runs[sort] = md
    md, ref = runs[True], runs[False]
    assert md.nlist.perm is not None and ref.nlist.perm is None
    assert not np.array_equal(md.nlist.perm, np.arange(md.n))
    assert md.nlist.builds >= 3
    assert md.system.same_state(ref.system)
    np.testing.assert_array_equal(md.forces, ref.forces)
    np.testing.assert_array_equal(md.virial, ref.virial)
    assert md.potential_energy == pytest.approx(ref.potential_energy, rel=1e-12)
    assert md.heat == pytest.approx(ref.heat, rel=1e-12, abs=0.0)
    # Original order: same species sequence, and every particle's unwrapped displacement is
    # that of a short run (a renumbered particle would jump by ~ the cell size).
    out = md.system
    np.testing.assert_array_equal(out.species, system.species)
    moved = np.sqrt(((out.unwrapped_positions() - system.unwrapped_positions()) ** 2).sum(axis=1))
    assert moved.max() < (1.5 if kind == "lj" else 3.0)
    # The forces of the snapshot are those of a fresh evaluation, particle by particle.
    e, forces, _ = ForceField(model).compute(out)
    np.testing.assert_allclose(md.forces, forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    sorted_min = fire(out, ForceField(model), fmax=1e-2, max_steps=200)
    plain_min = fire(out, ForceField(model, sort=False), fmax=1e-2, max_steps=200)
    assert sorted_min.system.same_state(plain_min.system)
    assert sorted_min.energy == pytest.approx(plain_min.energy, rel=1e-12)


# ----------------------------------------------------------------------------- NPT
@pytest.mark.physics
def test_cell_rescale_samples_the_ideal_gas_volume():
    """Ideal gas (epsilon = 0) at P, T: V^N exp(-PV/kT) dV, so <V> = (N + 1) kT / P and
    Var V = (N + 1) (kT / P)^2 (exact for the NPT distribution; tests the k_B T / V term and
    the noise amplitude of the barostat)."""
    gas = LJMixture.from_pairs(("A",), {"A-A": {"epsilon": 0.0, "sigma": 1e-6,
                                                "cutoff": 1.0}})
    ff = ForceField(gas)
    n, kt, p = 64, 1.0, 0.1
    rng = np.random.default_rng(21)
    system = random_configuration([n], ("A",), p / kt, seed=4, min_distance=0.1)
    system.velocities = maxwell_boltzmann(np.ones(n), kt, 1.0, 1.0, rng)
    md = MD(system, ff, 0.02, thermostat=BussiThermostat(kt, 0.1, rng),
            barostat=StochasticCellRescale(p, kt, 0.5, rng, compressibility=1.0 / p))
    md.run(500)
    vols = []
    md.run(10000, callback=lambda m: vols.append(m.volume), every=5)
    mean, err = block_stats(vols)
    assert abs(mean - (n + 1) * kt / p) < 4 * err, (mean, err)
    var, var_err = block_variance(vols)
    assert abs(var - (n + 1) * (kt / p) ** 2) < 4 * var_err, (var, var_err)
    # The cell keeps its shape (isotropic scaling).
    np.testing.assert_allclose(md.h / md.h[0, 0], system.box.matrix / system.box.lengths[0])


@pytest.mark.physics
def test_cell_rescale_relaxes_eam_to_zero_pressure(eam_state):
    """A compressed ZJW liquid expands at P = 0 GPa and its pressure relaxes to ~0."""
    ff, system = eam_state
    md = MD(system, ff, 0.002)
    md.set_cell(md.h * 0.98)  # 6 % compression: several GPa
    p_start, v_start = md.pressure(), md.volume
    assert p_start > 3.0
    rng = np.random.default_rng(8)
    md = MD(md.system, ff, 0.002, thermostat=BussiThermostat(1500.0, 0.05, rng),
            barostat=StochasticCellRescale(0.0, 1500.0, 0.1, rng, compressibility=0.01))
    md.run(600)
    pressures = []
    md.run(400, callback=lambda m: pressures.append(m.pressure()))
    assert md.volume > v_start
    mean, err = block_stats(pressures, 10)
    assert abs(mean) < max(4 * err, 0.3), (mean, err)


# ----------------------------------------------------------------------------- deformation
def test_oscillatory_shear_keeps_forces_exact(lj_state):
    """``deform`` imposes xy(t) with affine remapping (LAMMPS ``fix deform remap x``): the
    cell follows the prescription and forces/virial equal a fresh evaluation."""
    ff, system = lj_state
    md = MD(system, ff, 0.005)
    h0 = md.h.copy()

    def shear(t):
        h = h0.copy()
        h[0, 1] = 0.05 * h0[1, 1] * np.sin(2 * np.pi * t / 1.0)
        return h

    md.run(130, deform=shear)
    np.testing.assert_allclose(md.h, shear(md.time), rtol=0, atol=1e-12)
    e, forces, virial = ff.compute(md.system)
    assert md.potential_energy == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(md.forces, forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    np.testing.assert_allclose(md.virial, virial, rtol=0, atol=1e-10 * np.abs(virial).max())
    # Stress sign: shearing a solid-like configuration instantly by +xy gives a shear
    # stress of the same sign as the strain rate response (Cauchy, tension positive).
    np.testing.assert_allclose(md.stress(), -md.pressure_tensor())
    assert md.pressure() == pytest.approx(np.trace(md.pressure_tensor()) / 3)


def test_md_rejects_bad_input(lj_state):
    ff, system = lj_state
    bare = System(system.positions, system.species, system.species_names, system.box)
    with pytest.raises(ValueError, match="no velocities"):
        MD(bare, ff, 0.005)
    md = MD(system, ff, 0.005)
    h = md.h.copy()
    h[0, 1] = 0.6 * h[0, 0]
    with pytest.raises(CellError, match="tilt xy"):
        md.set_cell(h)
    with pytest.raises(CellError, match="too small"):
        md.set_cell(md.h * 0.8)


# ----------------------------------------------------------------------------- FIRE
@pytest.mark.parametrize("kind", ["lj", "eam"])
def test_fire_reaches_an_inherent_structure(kind, lj_state, eam_state):
    ff, system = lj_state if kind == "lj" else eam_state
    fmax = 1e-5 if kind == "lj" else 1e-4
    e0 = ff.compute(system).energy
    result = fire(system, ff, fmax=fmax)
    assert result.converged and result.max_force < fmax
    assert 0 < result.steps < 20000
    e, forces, _ = ff.compute(result.system)
    assert e == pytest.approx(result.energy, rel=1e-12)
    assert np.sqrt((forces**2).sum(axis=1)).max() < fmax
    assert result.energy < e0
    assert result.energy_per_particle == pytest.approx(result.energy / system.n)
    # Inherent-structure energies of these liquids (rough literature ranges).
    if kind == "lj":
        assert -7.9 < result.energy_per_particle < -7.3
    else:
        assert -5.5 < result.energy_per_particle < -4.5
    # Minimising again from the minimum does (almost) nothing.
    again = fire(result.system, ff, fmax=fmax)
    assert again.steps == 0


def test_fire_first_step_runs_at_the_initial_dt(lj_state):
    """FIRE 2.0's initial delay: the first iteration starts from rest (P = 0) without
    halving dt, so the semi-implicit Euler step moves every particle by dt0^2 F / m exactly
    (the 2006 scheme halves dt first and moves by a quarter of that)."""
    ff, system = lj_state
    e0, f0, _ = ff.compute(system)
    dt0 = 0.005
    one = fire(system, ff, fmax=1e-12, max_steps=1, dt=dt0)
    assert one.steps == 1
    moved = one.system.unwrapped_positions() - system.unwrapped_positions()
    expected = dt0**2 * f0 / (ff.masses(system.species) * ff.mvv2e)[:, None]
    assert np.sqrt((expected**2).sum(axis=1)).max() < 0.1  # the max_move cap is not active
    np.testing.assert_allclose(moved, expected, rtol=1e-9, atol=1e-13)


def test_fire_stops_after_max_uphill_steps(lj_state):
    """N_P<=0,max: the first iteration has P = 0; with max_uphill = 0 the search stops there,
    unconverged and without moving."""
    ff, system = lj_state
    r = fire(system, ff, fmax=1e-12, max_uphill=0)
    assert r.steps == 0 and not r.converged
    np.testing.assert_allclose(r.system.unwrapped_positions(), system.unwrapped_positions(),
                               rtol=0, atol=1e-12)


def test_fire_minimum_agrees_with_lbfgs(lj_state):
    """Independent reference: scipy's L-BFGS on the same energy, started from FIRE's minimum
    displaced by 1e-4 sigma (well inside its basin), returns to it (up to a uniform
    translation, a zero mode). The tolerances are set by
    the force tolerance: with fmax = 1e-7 the energy error is ~ N fmax^2 / k_min < 1e-12 per
    particle and the position error fmax / k_min < 1e-5 sigma (k_min >~ 0.01 epsilon/sigma^2
    for the softest modes of N = 250 KA inherent structures)."""
    from scipy.optimize import minimize

    ff, system = lj_state
    ours = fire(system, ff, fmax=1e-7)
    assert ours.converged and ours.max_force < 1e-7
    e, f, _ = ff.compute(ours.system)
    assert e / system.n == pytest.approx(ours.energy_per_particle, abs=1e-13)

    def energy_and_gradient(x):
        s = System.from_unwrapped(x.reshape(-1, 3), system.species, system.species_names,
                                  system.box)
        e, f, _ = ff.compute(s)
        return e, -f.ravel()

    x_min = ours.system.unwrapped_positions()
    kick = np.random.default_rng(7).normal(0.0, 1e-4, x_min.shape)
    ref = minimize(energy_and_gradient, (x_min + kick).ravel(), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-9, "ftol": 1e-16, "maxiter": 20000})
    assert ref.fun / system.n == pytest.approx(ours.energy_per_particle, abs=1e-12)
    # A uniform translation is a zero mode: compare with the mean displacement removed.
    d = ref.x.reshape(-1, 3) - x_min
    assert np.abs(d - d.mean(axis=0)).max() < 1e-5


# ----------------------------------------------------------------------------- SLLOD
def _free_particles():
    """8 KA particles 6 sigma apart (beyond r_c + skin) in a 12^3 cell: no forces."""
    pre = load_preset("ka2-x10")
    ff = ForceField(pre.model)
    grid = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(5)
    system = System(grid * 6.0 + 3.0, np.zeros(8, np.int64), pre.model.species,
                    Box.cube(12.0), velocities=rng.normal(0.0, 1.0, (8, 3)))
    return ff, system


@pytest.mark.parametrize("remap", [True, False])
def test_sllod_remap_keeps_free_particles_on_straight_lines(remap):
    """Reference: Newton's first law in the lab frame. Under steady xy shear (rate 0.05,
    200 steps) a particle without forces moves on a straight line at its lab velocity
    c = v0 + gamma_dot (y0 + v_y dt) x. With v -> M^-1 v this holds to round-off; without
    it the fictitious force m gamma_dot v_y bends the path by gamma_dot v_y t^2 / 2 (~0.02)."""
    ff, system = _free_particles()
    md = MD(system, ff, 0.005)
    rate, h0 = 0.05, md.h.copy()

    def deform(t):
        h = h0.copy()
        h[0, 1] = rate * t * h0[1, 1]
        return h

    x0, v0 = system.positions.copy(), system.velocities.copy()
    md.run(200, deform=deform, remap_velocities=remap)
    assert np.all(md.forces == 0.0)
    c = v0.copy()
    c[:, 0] += rate * (x0[:, 1] + v0[:, 1] * md.dt)
    path = md.system.unwrapped_positions() - (x0 + c * md.time)
    if remap:
        assert np.abs(path).max() < 1e-10
        # The kinetic shear stress of the gas follows Newton: K_xy(t) = K_xy(0) - rate t
        # sum m v_y^2 (exact here since v_y is constant).
        m = ff.masses(system.species)
        kxy = np.sum(m * md.velocities[:, 0] * md.velocities[:, 1])
        kxy0 = np.sum(m * v0[:, 0] * v0[:, 1]) - rate * md.time * np.sum(m * v0[:, 1] ** 2)
        assert kxy == pytest.approx(kxy0, rel=1e-10, abs=1e-12)
    else:
        bend = 0.5 * rate * v0[:, 1] * md.time**2
        assert np.abs(path[:, 0]).max() > 0.5 * np.abs(bend).max() > 1e-3
