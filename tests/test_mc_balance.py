"""Boltzmann sampling checks on systems small enough to know the exact answer.

Each test compares a histogram from the Markov chain with exact Boltzmann probabilities by a
chi-square whose bin errors come from batch means (the samples are correlated). The threshold
is the chi-square quantile at significance ALPHA; each test also shows that the same data
reject a distribution whose energies are off by 5 %, so the test has the power to see a
wrong ΔU.
"""

import itertools

import numpy as np
from reference import batch_chi2, lj_energy
from scipy import integrate, stats

from swapmc import Box, System
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import LJMixture

ALPHA = 1e-4


def _threshold(dof):
    return stats.chi2.ppf(1 - ALPHA, dof)


def _pair_model():
    return LJMixture.from_pairs(["A"], {"A-A": {"epsilon": 1.0, "sigma": 1.0}})


def test_displacement_two_particles_boltzmann():
    """Two LJ particles: the pair distance r < L/2 has density ∝ r^2 exp(-u(r)/T)."""
    model = _pair_model()
    length, temperature = 5.2, 0.7
    system = System(np.array([[1.0, 1.0, 1.0], [2.1, 1.0, 1.0]]), [0, 0], ("A",),
                    Box.cube(length))
    mc = MonteCarlo(system, model, temperature, moves=MoveSettings(displacement=0.35), seed=11,
                    energy_check_every=0)
    mc.attempts(20_000)  # burn-in
    n_samples = 300_000
    samples = np.empty(n_samples)
    for k in range(n_samples):
        mc.attempts(4)
        d = mc.pos[1] - mc.pos[0]
        d -= length * np.round(d / length)
        samples[k] = np.sqrt(d @ d)
    edges = np.linspace(0.85, 2.6, 15)
    inside = samples[(samples >= edges[0]) & (samples < edges[-1])]

    def probs(beta_scale):
        def w(r):
            sr6 = r**-6.0
            u = 4 * (sr6 * sr6 - sr6) - 4 * (2.5**-12 - 2.5**-6) if r < 2.5 else 0.0
            return r * r * np.exp(-beta_scale * u / temperature)

        p = np.array([integrate.quad(w, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
        return p / p.sum()

    chi2 = batch_chi2(inside, edges, probs(1.0))
    assert chi2 < _threshold(len(edges) - 1), chi2
    assert batch_chi2(inside, edges, probs(1.05)) > _threshold(len(edges) - 1)
    assert mc.nstats[2] > 10  # particles were refreshed many times along the way


def test_swap_identities_boltzmann():
    """Three particles of species A, B, C on fixed sites: the 6 identity assignments are
    visited with probabilities ∝ exp(-U/T)."""
    ka2 = LJMixture.from_pairs(
        ["A", "B"],
        {"A-A": {"epsilon": 1.0, "sigma": 1.0}, "A-B": {"epsilon": 1.5, "sigma": 0.8},
         "B-B": {"epsilon": 0.5, "sigma": 0.88}},
    ).with_dopant("C", ("A", "B"), 0.5)
    pos = np.array([[1.0, 1.0, 1.0], [1.85, 1.1, 1.0], [1.5, 1.85, 1.2]])
    length, temperature = 5.5, 1.0
    system = System(pos, [0, 1, 2], ("A", "B", "C"), Box.cube(length))
    moves = MoveSettings(p_swap=1.0, swap_classes=[("A", "C"), ("B", "C")])
    mc = MonteCarlo(system, ka2, temperature, moves=moves, seed=12, energy_check_every=0)
    perms = list(itertools.permutations(range(3)))
    energies = np.array([lj_energy(pos, np.array(p), [length] * 3, ka2) for p in perms])
    n_samples = 200_000
    labels = np.empty(n_samples, np.int64)
    code = {p: k for k, p in enumerate(perms)}
    for k in range(n_samples):
        mc.attempts(1)
        labels[k] = code[tuple(mc.species[np.argsort(mc.order)])]

    def probs(scale):
        w = np.exp(-scale * (energies - energies.min()) / temperature)
        return w / w.sum()

    states = np.arange(len(perms))
    assert batch_chi2(labels, states, probs(1.0)) < _threshold(len(perms))
    assert batch_chi2(labels, states, probs(1.05)) > _threshold(len(perms))


def test_volume_moves_ideal_gas():
    """Non-interacting particles at pressure P: V has density ∝ V^N exp(-P V / T) above the
    smallest box the cut-off allows (a hard lower bound the sampler enforces)."""
    model = LJMixture.from_pairs(["A"], {"A-A": {"epsilon": 0.0, "sigma": 0.1}})
    n, temperature, pressure = 3, 1.0, 1.0
    rng = np.random.default_rng(3)
    system = System(rng.random((n, 3)) * 1.5, np.zeros(n), ("A",), Box.cube(1.5))
    moves = MoveSettings(p_volume=0.5, lnv_step=0.6, displacement=0.3)
    mc = MonteCarlo(system, model, temperature, pressure=pressure, moves=moves, seed=13,
                    energy_check_every=0)
    v_min = (2 * model.max_cutoff) ** 3
    n_samples = 200_000
    vols = np.empty(n_samples)
    for k in range(n_samples):
        mc.attempts(2)
        vols[k] = mc.volume
    edges = np.array([v_min, 0.8, 1.5, 2.2, 3.0, 4.0, 5.0, 6.5, 8.5, 12.0, np.inf])

    def probs(scale):
        dist = stats.gamma(a=n + 1, scale=temperature / (scale * pressure))
        c = dist.cdf(edges)
        return np.diff(c) / (1 - c[0])

    assert batch_chi2(vols, edges, probs(1.0)) < _threshold(len(edges) - 1)
    assert batch_chi2(vols, edges, probs(1.05)) > _threshold(len(edges) - 1)
