"""Every move's energy change equals an independent O(N^2) recomputation."""

import numpy as np
import pytest
from reference import lj_energy, lj_virial

from swapmc.mc import EnergyDriftError, MonteCarlo, MoveSettings

REL = 1e-10  # relative to max(|E|, N): rounding of two sums of ~1e3 terms


def _check_each_attempt(mc, model, n_attempts, min_accepted):
    e_ref = lj_energy(mc.pos, mc.species, mc.lengths, model)
    assert mc.energy == pytest.approx(e_ref, rel=1e-12, abs=1e-9)
    accepted = 0
    for _ in range(n_attempts):
        e_run0 = mc.energy
        before = mc.counts[:, 1].sum()
        mc.attempts(1)
        e_new = lj_energy(mc.pos, mc.species, mc.lengths, model)
        scale = max(abs(e_new), mc.n)
        assert abs((mc.energy - e_run0) - (e_new - e_ref)) < REL * scale
        accepted += mc.counts[:, 1].sum() - before
        e_ref = e_new
    assert accepted >= min_accepted, "too few accepted moves to test anything"


@pytest.mark.parametrize("density,delta", [(1.2, 0.1), (1.2, 0.9), (0.4, 2.5)])
def test_displacement_delta_u(ka2, liquid_factory, density, delta):
    """Small moves use the Verlet list; moves beyond the skin use the O(N) fallback."""
    s = liquid_factory(ka2, n=160, density=density, seed=3, min_distance=0.72)
    mc = MonteCarlo(s, ka2.model, 3.0, moves=MoveSettings(displacement=delta), seed=1)
    _check_each_attempt(mc, ka2.model, 800, min_accepted=20)
    assert mc.nstats[2] > 0  # particles were refreshed along the way
    if delta * np.sqrt(3) > mc.skin / 2:
        assert mc.nstats[1] > 0  # moves beyond half the skin took the O(N) path
    _assert_list_exact(mc)


def _assert_list_exact(mc):
    """The Verlet list equals {j : |ref_i - ref_j| < r_list}, sorted, and every particle is
    within skin / 2 of its reference: the invariant that makes the list exact."""
    lengths, r_list = mc.lengths, mc.fstate[1]
    for i in range(mc.n):
        d = mc.ref - mc.ref[i]
        d -= lengths * np.round(d / lengths)
        r = np.sqrt((d**2).sum(axis=1))
        r[i] = np.inf
        assert np.array_equal(np.flatnonzero(r < r_list), mc.nbr[i, : mc.nnbr[i]]), i
    d = mc.pos - mc.ref
    d -= lengths * np.round(d / lengths)
    assert np.sqrt((d**2).sum(axis=1)).max() < mc.skin / 2


def test_displacement_across_boundaries(ka2):
    from conftest import near_boundary_system

    s = near_boundary_system(ka2.model.species, [60, 20, 10], 6.0, seed=5)
    mc = MonteCarlo(s, ka2.model, 2.0, moves=MoveSettings(displacement=0.4), seed=2)
    _check_each_attempt(mc, ka2.model, 500, min_accepted=100)
    assert np.any(mc.images != 0), "no particle crossed the boundary"
    _assert_list_exact(mc)


def test_swap_delta_u(ka2, liquid_factory):
    s = liquid_factory(ka2, n=160, seed=4, min_distance=0.72)
    moves = MoveSettings(p_swap=1.0, swap_classes=[("A", "C"), ("B", "C"), ("A", "B")])
    mc = MonteCarlo(s, ka2.model, 5.0, moves=moves, seed=3)
    _check_each_attempt(mc, ka2.model, 400, min_accepted=30)
    assert np.all(mc.class_counts[:, 1] > 0)


def test_volume_delta_u(ka2, liquid_factory):
    s = liquid_factory(ka2, n=160, seed=6, min_distance=0.72)
    moves = MoveSettings(p_volume=1.0, lnv_step=0.05)
    mc = MonteCarlo(s, ka2.model, 2.0, pressure=5.0, moves=moves, seed=4)
    _check_each_attempt(mc, ka2.model, 60, min_accepted=10)


def test_mixed_moves_running_energy(ka2, liquid_factory):
    """After >1e4 accepted mixed moves the running energy equals a fresh evaluation."""
    s = liquid_factory(ka2, n=300, seed=7)
    moves = MoveSettings(p_swap=0.3, swap_classes=[("A", "C"), ("B", "C")], p_volume=0.01)
    mc = MonteCarlo(s, ka2.model, 1.0, pressure=3.0, moves=moves, seed=5, energy_check_every=0)
    mc.sweep(200)
    assert mc.counts[:, 1].sum() > 10_000
    _assert_list_exact(mc)
    ref = lj_energy(mc.pos, mc.species, mc.lengths, ka2.model)
    assert mc.energy == pytest.approx(ref, rel=1e-10)
    assert mc.virial() == pytest.approx(
        lj_virial(mc.pos, mc.species, mc.lengths, ka2.model), rel=1e-10
    )


def test_composition_conserved(ka2, liquid_factory):
    s = liquid_factory(ka2, n=200, seed=8)
    moves = MoveSettings(p_swap=0.8, swap_classes=[("A", "C"), ("B", "C")])
    mc = MonteCarlo(s, ka2.model, 0.8, moves=moves, seed=6)
    before = np.bincount(mc.species, minlength=3)
    mc.sweep(100)
    assert mc.counts[1, 1] > 100
    assert np.array_equal(np.bincount(mc.species, minlength=3), before)
    # The per-species member lists stay consistent with the species array.
    for sp in range(3):
        members = mc.members[sp, : mc.member_counts[sp]]
        assert np.all(mc.species[members] == sp)
        assert np.array_equal(mc.slot[members], np.arange(len(members)))


def test_energy_check_catches_a_wrong_energy(ka2, liquid_factory):
    s = liquid_factory(ka2, n=160, seed=9)
    mc = MonteCarlo(s, ka2.model, 1.0, seed=7, energy_check_every=5)
    mc.fstate[0] += 1e-3  # what a wrong ΔU would leave behind
    with pytest.raises(EnergyDriftError, match="differs from the recomputed"):
        mc.sweep(5)
