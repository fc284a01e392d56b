"""EAM Monte Carlo: every move's energy change against a brute-force NumPy EAM energy,
including the embedding terms of all neighbours affected by a swap."""


import numpy as np
import pytest
from helpers import cuzr_mm_path
from reference import batch_chi2, eam_energy
from scipy import stats

from swapmc import Box, System
from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings

eam = pytest.importorskip("swapmc.models.eam")

REL = 1e-10


def _potentials():
    pots = {"zjw": eam.zjw_potential()}
    pots["zjw-doped"] = eam.doped(pots["zjw"], dopant="X", between=("Cu", "Zr"), weight=0.5)
    path = cuzr_mm_path()
    if path:
        pots["mendelev-fs"] = eam.EAMPotential.from_file(path)
        # Mendelev's cross densities are equal; scaling them differently makes an
        # asymmetric fs potential whose density depends on the centre type, which exercises
        # the [neighbour, centre] order of the tables (doped, to have three species too).
        from test_eam_models import asymmetric_fs

        pots["mendelev-fs-asym-doped"] = eam.doped(asymmetric_fs(pots["mendelev-fs"]),
                                                   dopant="X", between=("Cu", "Zr"),
                                                   weight=0.3)
    return pots


POTENTIALS = _potentials()


def _system(pot, n, seed, density=0.06):
    species = pot.species
    fr = {"Cu": 0.5, "Zr": 0.5} if len(species) == 2 else {"Cu": 0.4, "Zr": 0.4, "X": 0.2}
    counts = composition_counts(fr, n, species)
    return random_configuration(counts, species, density, seed=seed, min_distance=2.1)


def _check_each_attempt(mc, tables, n_attempts, min_accepted):
    e_ref = eam_energy(mc.pos, mc.species, mc.lengths, tables)
    assert mc.energy == pytest.approx(e_ref, rel=1e-11)
    accepted = 0
    for _ in range(n_attempts):
        e0 = mc.energy
        before = mc.counts[:, 1].sum()
        mc.attempts(1)
        e_new = eam_energy(mc.pos, mc.species, mc.lengths, tables)
        assert abs((mc.energy - e0) - (e_new - e_ref)) < REL * max(abs(e_new), mc.n)
        accepted += mc.counts[:, 1].sum() - before
        e_ref = e_new
    assert accepted >= min_accepted
    # The stored host densities stay exact too.
    rho = mc.rho.copy()
    mc.total_energy()
    np.testing.assert_allclose(rho, mc.rho, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", sorted(POTENTIALS))
@pytest.mark.parametrize("delta", [0.25, 2.0])
def test_displacement_delta_u(name, delta):
    pot = POTENTIALS[name]
    mc = MonteCarlo(_system(pot, 260, 1), pot, 3000.0, moves=MoveSettings(displacement=delta),
                    seed=2, energy_check_every=0)
    # Moves of 2 Å in a dense liquid are rarely accepted: more attempts, fewer required.
    _check_each_attempt(mc, pot.kernel_tables(), 120 if delta < 1 else 250,
                        min_accepted=10 if delta < 1 else 5)
    if delta > 1:
        assert mc.nstats[1] > 0


@pytest.mark.parametrize("name", sorted(POTENTIALS))
def test_swap_delta_u(name):
    pot = POTENTIALS[name]
    classes = [("Cu", "Zr")] if pot.n_species == 2 else [("Cu", "X"), ("Zr", "X"),
                                                          ("Cu", "Zr")]
    moves = MoveSettings(p_swap=1.0, swap_classes=classes)
    mc = MonteCarlo(_system(pot, 260, 3), pot, 20000.0, moves=moves, seed=4,
                    energy_check_every=0)
    _check_each_attempt(mc, pot.kernel_tables(), 120, min_accepted=15)


def test_volume_delta_u():
    pot = POTENTIALS["zjw-doped"]
    moves = MoveSettings(p_volume=1.0, lnv_step=0.03)
    mc = MonteCarlo(_system(pot, 260, 5), pot, 2000.0, pressure=0.0, moves=moves, seed=6,
                    energy_check_every=0)
    _check_each_attempt(mc, pot.kernel_tables(), 40, min_accepted=5)


def test_mixed_moves_keep_running_energy():
    pot = POTENTIALS["zjw-doped"]
    moves = MoveSettings(p_swap=0.3, swap_classes=[("Cu", "X"), ("Zr", "X")], p_volume=0.01)
    mc = MonteCarlo(_system(pot, 300, 7), pot, 1500.0, pressure=0.0, moves=moves, seed=8)
    mc.sweep(30)  # energy checks every 100 sweeps by default are not reached: check here
    tables = pot.kernel_tables()
    assert mc.energy == pytest.approx(eam_energy(mc.pos, mc.species, mc.lengths, tables),
                                      rel=1e-10)


def test_swap_detailed_balance_fixed_sites():
    """Two Cu and one Zr on fixed sites (plus a fixed Zr environment): the three identity
    assignments of the three mobile-identity sites occur with Boltzmann weights."""
    pot = POTENTIALS["zjw"]
    rng = np.random.default_rng(9)
    length = 2 * pot.max_cutoff + 0.5
    # Sites in a cluster: energies differ through both pair and embedding terms.
    pos = np.array([[5.0, 5.0, 5.0], [7.4, 5.2, 5.1], [6.1, 7.2, 5.3], [6.3, 5.9, 7.3]])
    pos = pos + rng.normal(0, 0.05, pos.shape)
    species = np.array([0, 0, 1, 1])  # Cu Cu Zr Zr
    system = System(pos, species, ("Cu", "Zr"), Box.cube(length))
    temperature = 1200.0
    mc = MonteCarlo(system, pot, temperature,
                    moves=MoveSettings(p_swap=1.0, swap_classes=[("Cu", "Zr")]), seed=10,
                    energy_check_every=0)
    from itertools import combinations

    assignments = []
    for cu in combinations(range(4), 2):
        s = np.ones(4, int)
        s[list(cu)] = 0
        assignments.append(s)
    tables = pot.kernel_tables()
    energies = np.array([eam_energy(pos, s, [length] * 3, tables) for s in assignments])
    codes = {tuple(s): k for k, s in enumerate(assignments)}
    inv = np.argsort(mc.order)
    labels = np.empty(150_000, int)
    for k in range(labels.size):
        mc.attempts(1)
        labels[k] = codes[tuple(mc.species[inv])]
    kT = 8.617333262e-5 * temperature

    def probs(scale):
        w = np.exp(-scale * (energies - energies.min()) / kT)
        return w / w.sum()

    states = np.arange(len(assignments))
    thr = stats.chi2.ppf(1 - 1e-4, len(states))
    assert batch_chi2(labels, states, probs(1.0)) < thr
    assert batch_chi2(labels, states, probs(1.05)) > thr
