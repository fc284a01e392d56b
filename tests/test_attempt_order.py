"""Sequential attempt order (``MoveSettings(order="sequential")``).

Boltzmann checks on systems small enough to know the exact answer, in the style of
``test_mc_balance.py``: a histogram from the chain against exact probabilities by a
chi-square with batch-means errors, threshold the chi-square quantile at significance
ALPHA = 1e-4, and a power check (the same data reject energies off by 5 %; the swap tests
also reject the exact stationary distribution of a wrong sequential swap rule). Then the
running energy, the visiting order, checkpoints and the ``[moves]`` key.
"""

import itertools
import json

import numpy as np
import pytest
from reference import batch_chi2, eam_energy, lj_energy, lj_pair_energy
from scipy import integrate, stats

from swapmc import Box, System
from swapmc._toml import ConfigError
from swapmc.config import resolve
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.mc.sampler import StateError
from swapmc.models import LJMixture, eam

ALPHA = 1e-4


def _threshold(dof):
    return stats.chi2.ppf(1 - ALPHA, dof)


def _ka2_model():
    return LJMixture.from_pairs(
        ["A", "B"],
        {"A-A": {"epsilon": 1.0, "sigma": 1.0}, "A-B": {"epsilon": 1.5, "sigma": 0.8},
         "B-B": {"epsilon": 0.5, "sigma": 0.88}},
    ).with_dopant("C", ("A", "B"), 0.5)


def _swap_sweep_distribution(energies, assignments, visit, classes, weights, beta, anchored):
    """Exact distribution, averaged over the N phases of a sweep, of a swap-only sequential
    chain on fixed sites, sampled after every attempt.

    Parameters
    ----------
    energies : ndarray (M,)
    assignments : list of M tuples of species indices per site
    visit : sequence of sites in the order the sweep visits them
    classes : list of (a, b) species pairs; weights : list of class weights
    anchored : bool
        False: every turn swaps a pair drawn as in random order (the sampler's rule).
        True: the turn re-types the particle whose turn it is, with a partner drawn
        uniformly from the other species of a class containing its species, under plain
        Metropolis: an asymmetric proposal without its Hastings factor, which is wrong.

    Returns
    -------
    distribution : ndarray (M,)
    kernels : list of the per-turn transition matrices (M, M)
    """
    m = len(assignments)
    index = {a: k for k, a in enumerate(assignments)}
    counts = np.bincount(np.array(assignments[0]), minlength=1 + max(max(c) for c in classes))
    wsum = sum(weights)

    def swapped(sx, i, j):
        sy = list(sx)
        sy[i], sy[j] = sx[j], sx[i]
        return index[tuple(sy)]

    kernels = []
    for site in visit:
        t = np.zeros((m, m))
        for x, sx in enumerate(assignments):
            for (ca, cb), w in zip(classes, weights):
                if anchored:
                    a = sx[site]
                    if a not in (ca, cb):
                        continue
                    wa = sum(v for c, v in zip(classes, weights) if a in c)
                    b = cb if a == ca else ca
                    pairs = [(site, j) for j, s in enumerate(sx) if s == b]
                    p_pair = (w / wa) / len(pairs)
                else:
                    pairs = [(i, j) for i, s in enumerate(sx) if s == ca
                             for j, r in enumerate(sx) if r == cb]
                    p_pair = (w / wsum) / (counts[ca] * counts[cb])
                for i, j in pairs:
                    y = swapped(sx, i, j)
                    t[x, y] += p_pair * min(1.0, np.exp(-beta * (energies[y] - energies[x])))
            t[x, x] += 1.0 - t[x].sum()
        kernels.append(t)
    sweep = np.linalg.multi_dot(kernels) if len(kernels) > 1 else kernels[0]
    vals, vecs = np.linalg.eig(sweep.T)
    mu = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    mu /= mu.sum()
    phases = []
    for t in kernels:
        mu = mu @ t
        phases.append(mu)
    return np.mean(phases, axis=0), kernels


def _boltzmann(energies, beta):
    w = np.exp(-beta * (energies - energies.min()))
    return w / w.sum()


# ----------------------------------------------------------------------------- settings
def test_order_setting_and_its_default():
    assert MoveSettings().order == "random"
    assert "order" not in MoveSettings().to_dict()  # absent unless given, as before
    assert MoveSettings(order="sequential").to_dict()["order"] == "sequential"
    with pytest.raises(ConfigError, match="order must be one of 'random', 'sequential'"):
        MoveSettings(order="checkerboard")
    assert "order" not in resolve("ka2-x10")["moves"]
    cfg = resolve("ka2-x10", {"moves": {"order": "sequential"}})
    assert cfg["moves"]["order"] == "sequential"
    with pytest.raises(ConfigError, match=r"\[moves\] order must be one of"):
        resolve("ka2-x10", {"moves": {"order": "Random"}})


def test_sweep_visits_particles_in_storage_order():
    """Attempt t acts on storage index (start + t) mod N; a sweep gives each particle one
    turn, and the storage order is not re-sorted afterwards."""
    model = LJMixture.from_pairs(["A"], {"A-A": {"epsilon": 0.0, "sigma": 0.5}})
    rng = np.random.default_rng(1)
    n = 7
    system = System(rng.random((n, 3)) * 5.0, np.zeros(n), ("A",), Box.cube(5.0))
    mc = MonteCarlo(system, model, 1.0, moves=MoveSettings(displacement=0.2,
                                                           order="sequential"),
                    seed=2, sort_every=1)
    order0 = mc.order.copy()
    for t in range(3 * n):
        before = mc.pos.copy()
        mc.attempts(1)
        moved = np.flatnonzero(np.any(mc.pos != before, axis=1))
        assert moved.tolist() == [t % n]  # zero energy: every move is accepted
        assert mc.cursor == (t + 1) % n
    mc.sweep(3)
    assert np.array_equal(mc.order, order0)


# ------------------------------------------------------------------- Boltzmann: moves
def test_sequential_displacement_two_particles_boltzmann():
    """Two LJ particles: the pair distance r < L/2 has density ∝ r^2 exp(-u(r)/T)."""
    model = LJMixture.from_pairs(["A"], {"A-A": {"epsilon": 1.0, "sigma": 1.0}})
    length, temperature = 5.2, 0.7
    system = System(np.array([[1.0, 1.0, 1.0], [2.1, 1.0, 1.0]]), [0, 0], ("A",),
                    Box.cube(length))
    mc = MonteCarlo(system, model, temperature,
                    moves=MoveSettings(displacement=0.35, order="sequential"), seed=21,
                    energy_check_every=0)
    mc.attempts(20_000)
    n_samples = 300_000
    samples = np.empty(n_samples)
    for k in range(n_samples):
        mc.attempts(3)  # odd: samples alternate between the two phases of the sweep
        d = mc.pos[1] - mc.pos[0]
        d -= length * np.round(d / length)
        samples[k] = np.sqrt(d @ d)
    edges = np.linspace(0.85, 2.6, 15)
    inside = samples[(samples >= edges[0]) & (samples < edges[-1])]

    def probs(beta_scale):
        def w(r):
            return r * r * np.exp(-beta_scale * lj_pair_energy(r, 1.0, 1.0, 2.5) / temperature)

        p = np.array([integrate.quad(w, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
        return p / p.sum()

    assert batch_chi2(inside, edges, probs(1.0)) < _threshold(len(edges) - 1)
    assert batch_chi2(inside, edges, probs(1.05)) > _threshold(len(edges) - 1)
    assert mc.nstats[2] > 10


def test_sequential_swaps_fixed_sites_boltzmann():
    """Four particles A, A, B, C on fixed sites, three swap classes with unequal weights: the
    12 identity assignments occur with Boltzmann weights. Each turn's kernel leaves them
    invariant exactly, and the data reject the stationary distribution of a tempting wrong
    sweep (the particle whose turn it is re-typed with a uniform partner, plain Metropolis)."""
    model = _ka2_model()
    pos = np.array([[1.0, 1.0, 1.0], [2.05, 1.1, 1.0], [1.5, 1.95, 1.2], [1.5, 1.4, 2.0]])
    length, temperature = 5.5, 1.0
    classes = [(0, 2), (1, 2), (0, 1)]
    weights = [1.0, 2.0, 0.5]
    system = System(pos, [0, 0, 1, 2], ("A", "B", "C"), Box.cube(length))
    moves = MoveSettings(p_swap=1.0, swap_classes=[("A", "C"), ("B", "C"), ("A", "B")],
                         class_weights=weights, order="sequential")
    mc = MonteCarlo(system, model, temperature, moves=moves, seed=22, energy_check_every=0)
    assignments = sorted(set(itertools.permutations((0, 0, 1, 2))))
    energies = np.array([lj_energy(pos, np.array(a), [length] * 3, model)
                         for a in assignments])
    beta = 1.0 / temperature
    exact = _boltzmann(energies, beta)
    visit = list(mc.order)  # storage index k holds the user's site order[k]
    right, kernels = _swap_sweep_distribution(energies, assignments, visit, classes, weights,
                                              beta, anchored=False)
    for t in kernels:
        assert np.allclose(exact @ t, exact, rtol=0, atol=1e-14)
    assert np.allclose(right, exact, rtol=0, atol=1e-13)
    wrong, _ = _swap_sweep_distribution(energies, assignments, visit, classes, weights, beta,
                                        anchored=True)
    code = {a: k for k, a in enumerate(assignments)}
    inv = np.argsort(mc.order)
    n_samples = 240_000
    labels = np.empty(n_samples, np.int64)
    for k in range(n_samples):
        mc.attempts(1)
        labels[k] = code[tuple(mc.species[inv])]
    states = np.arange(len(assignments))
    thr = _threshold(len(states))
    assert batch_chi2(labels, states, exact) < thr
    assert batch_chi2(labels, states, _boltzmann(energies, 1.05 * beta)) > thr
    assert batch_chi2(labels, states, wrong) > thr
    assert np.all(mc.class_counts[:, 1] > 0)


def test_sequential_npt_two_particles_with_swaps():
    """Two interacting particles A and C at pressure P with displacements, A<->C swaps and
    volume moves. With u = 0 beyond r_c and the sphere r < r_c inside the box,
    Z(V) = V (V - B), B = ∫ 4 pi r^2 (1 - exp(-u/T)) dr, so V has density
    ∝ V (V - B) exp(-P V / T) above the smallest box (2 r_c,max)^3, and the pair distance
    r < L/2 has density ∝ r^2 exp(-u(r)/T) at every V."""
    model = _ka2_model()
    temperature, pressure = 0.5, 0.02
    a, c = 0, 2
    eps, sig, rc = model.epsilon[a, c], model.sigma[a, c], model.cutoff[a, c]
    system = System(np.array([[1.0, 1.0, 1.0], [2.0, 1.2, 1.1]]), [a, c], ("A", "B", "C"),
                    Box.cube(6.5))
    moves = MoveSettings(p_swap=0.2, swap_classes=[("A", "C")], p_volume=0.3, lnv_step=0.4,
                         displacement=0.4, order="sequential")
    mc = MonteCarlo(system, model, temperature, pressure=pressure, moves=moves, seed=23,
                    energy_check_every=0)
    v_min = (2 * model.max_cutoff) ** 3
    mc.attempts(20_000)
    n_samples = 250_000
    vols = np.empty(n_samples)
    dist = np.empty(n_samples)
    for k in range(n_samples):
        mc.attempts(3)
        vols[k] = mc.volume
        d = mc.pos[1] - mc.pos[0]
        d -= mc.lengths * np.round(d / mc.lengths)
        dist[k] = np.sqrt(d @ d)
    assert mc.counts[1, 0] > 10_000 and mc.counts[2, 1] > 10_000

    def boltz(r, scale=1.0):
        return np.exp(-scale * lj_pair_energy(r, eps, sig, rc) / temperature)

    b_excl = integrate.quad(lambda r: 4 * np.pi * r * r * (1 - boltz(r)), 1e-6, rc,
                            points=[sig])[0]
    v_edges = np.array([v_min, 135, 145, 160, 180, 200, 230, 270, 330, np.inf])

    def v_probs(p_scale):
        def f(v):
            return v * (v - b_excl) * np.exp(-p_scale * pressure * (v - v_min) / temperature)

        p = np.array([integrate.quad(f, lo, hi)[0] for lo, hi in zip(v_edges[:-1],
                                                                     v_edges[1:])])
        return p / p.sum()

    thr_v = _threshold(len(v_edges) - 1)
    assert batch_chi2(vols, v_edges, v_probs(1.0)) < thr_v
    assert batch_chi2(vols, v_edges, v_probs(1.05)) > thr_v

    r_edges = np.linspace(0.85, 2.45, 12)
    inside = dist[(dist >= r_edges[0]) & (dist < r_edges[-1])]

    def r_probs(scale):
        p = np.array([integrate.quad(lambda r: r * r * boltz(r, scale), lo, hi)[0]
                      for lo, hi in zip(r_edges[:-1], r_edges[1:])])
        return p / p.sum()

    thr_r = _threshold(len(r_edges) - 1)
    assert batch_chi2(inside, r_edges, r_probs(1.0)) < thr_r
    assert batch_chi2(inside, r_edges, r_probs(1.05)) > thr_r


def test_sequential_ideal_gas_volume_with_swaps():
    """Non-interacting A, B, C at pressure P with displacements, A<->C swaps (B in no swap
    class) and volume moves: V ~ Gamma(N + 1, T / P) above the smallest box, and a swap or a
    volume move takes p_swap or p_volume of the turns."""
    model = LJMixture.from_pairs(
        ["A", "B", "C"], {f"{x}-{y}": {"epsilon": 0.0, "sigma": 0.1}
                          for x, y in itertools.combinations_with_replacement("ABC", 2)})
    n, temperature, pressure = 3, 1.0, 1.0
    rng = np.random.default_rng(4)
    system = System(rng.random((n, 3)) * 1.5, [0, 1, 2], ("A", "B", "C"), Box.cube(1.5))
    p_swap, p_volume = 0.4, 0.3
    moves = MoveSettings(p_swap=p_swap, swap_classes=[("A", "C")], p_volume=p_volume,
                         lnv_step=0.6, displacement=0.3, order="sequential")
    mc = MonteCarlo(system, model, temperature, pressure=pressure, moves=moves, seed=24,
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
        cdf = dist.cdf(edges)
        return np.diff(cdf) / (1 - cdf[0])

    assert batch_chi2(vols, edges, probs(1.0)) < _threshold(len(edges) - 1)
    assert batch_chi2(vols, edges, probs(1.05)) > _threshold(len(edges) - 1)
    total = mc.counts[:, 0].sum()
    for move, p in ((1, p_swap), (2, p_volume)):
        assert abs(mc.counts[move, 0] - total * p) < 5 * np.sqrt(total * p * (1 - p))
    assert mc.counts[1, 1] == mc.counts[1, 0]  # ideal gas: every swap is accepted


def test_sequential_eam_swaps_fixed_sites_boltzmann():
    """Three Cu and one Zr on fixed cluster sites (ZJW EAM): the four positions of the Zr
    occur with Boltzmann weights (and not with those of the wrong re-typing sweep)."""
    pot = eam.zjw_potential()
    rng = np.random.default_rng(9)
    length = 2 * pot.max_cutoff + 0.5
    pos = np.array([[5.0, 5.0, 5.0], [7.4, 5.2, 5.1], [6.1, 7.2, 5.3], [6.3, 5.9, 7.3]])
    pos = pos + rng.normal(0, 0.05, pos.shape)
    temperature = 1500.0
    system = System(pos, [0, 0, 0, 1], ("Cu", "Zr"), Box.cube(length))
    mc = MonteCarlo(system, pot, temperature,
                    moves=MoveSettings(p_swap=1.0, swap_classes=[("Cu", "Zr")],
                                       order="sequential"),
                    seed=25, energy_check_every=0)
    assignments = sorted(set(itertools.permutations((0, 0, 0, 1))))
    tables = pot.kernel_tables()
    energies = np.array([eam_energy(pos, np.array(a), [length] * 3, tables)
                         for a in assignments])
    beta = 1.0 / (8.617333262e-5 * temperature)
    exact = _boltzmann(energies, beta)
    wrong, _ = _swap_sweep_distribution(energies, assignments, list(mc.order), [(0, 1)],
                                        [1.0], beta, anchored=True)
    code = {a: k for k, a in enumerate(assignments)}
    inv = np.argsort(mc.order)
    labels = np.empty(120_000, np.int64)
    for k in range(labels.size):
        mc.attempts(1)
        labels[k] = code[tuple(mc.species[inv])]
    states = np.arange(len(assignments))
    thr = _threshold(len(states))
    assert batch_chi2(labels, states, exact) < thr
    assert batch_chi2(labels, states, _boltzmann(energies, 1.05 * beta)) > thr
    assert batch_chi2(labels, states, wrong) > thr


# -------------------------------------------------------------------- running energy
def test_sequential_mixed_delta_u(ka2, liquid_factory):
    """Each energy change of a mixed sequential sweep equals a brute-force recomputation."""
    from test_mc_energy import _check_each_attempt

    s = liquid_factory(ka2, n=160, seed=4, min_distance=0.72)
    moves = MoveSettings(p_swap=0.7, swap_classes=[("A", "C"), ("B", "C"), ("A", "B")],
                         order="sequential", displacement=0.15)
    mc = MonteCarlo(s, ka2.model, 5.0, moves=moves, seed=3)
    _check_each_attempt(mc, ka2.model, 400, min_accepted=30)
    assert np.all(mc.class_counts[:, 1] > 0)


def test_sequential_mixed_moves_running_energy(ka2, liquid_factory):
    """After >1e4 accepted mixed sequential moves (NPT, swaps) the running energy and the
    virial equal fresh evaluations, the list is exact and the composition is conserved."""
    from reference import lj_virial
    from test_mc_energy import _assert_list_exact

    s = liquid_factory(ka2, n=300, seed=7)
    moves = MoveSettings(p_swap=0.3, swap_classes=[("A", "C"), ("B", "C")], p_volume=0.01,
                         order="sequential")
    mc = MonteCarlo(s, ka2.model, 1.0, pressure=3.0, moves=moves, seed=5,
                    energy_check_every=0)
    before = np.bincount(mc.species, minlength=3)
    mc.sweep(200)
    assert mc.counts[:, 1].sum() > 10_000 and mc.counts[1, 1] > 100
    _assert_list_exact(mc)
    assert mc.energy == pytest.approx(lj_energy(mc.pos, mc.species, mc.lengths, ka2.model),
                                      rel=1e-10)
    assert mc.virial() == pytest.approx(
        lj_virial(mc.pos, mc.species, mc.lengths, ka2.model), rel=1e-10)
    assert np.array_equal(np.bincount(mc.species, minlength=3), before)
    for sp in range(3):
        members = mc.members[sp, : mc.member_counts[sp]]
        assert np.all(mc.species[members] == sp)
    mc.energy_check_every = 10
    mc.sweep(20)  # the sampler's own checks pass


def test_sequential_eam_mixed_moves_running_energy():
    from test_eam_mc import _system

    pot = eam.doped(eam.zjw_potential(), dopant="X", between=("Cu", "Zr"), weight=0.5)
    moves = MoveSettings(p_swap=0.3, swap_classes=[("Cu", "X"), ("Zr", "X")], p_volume=0.01,
                         order="sequential")
    mc = MonteCarlo(_system(pot, 300, 7), pot, 1500.0, pressure=0.0, moves=moves, seed=8)
    mc.sweep(30)
    assert mc.counts[1, 1] > 0 and mc.counts[2, 1] > 0
    tables = pot.kernel_tables()
    assert mc.energy == pytest.approx(eam_energy(mc.pos, mc.species, mc.lengths, tables),
                                      rel=1e-10)
    rho = mc.rho.copy()
    mc.check_energy()  # recomputes the host densities
    assert np.allclose(rho, mc.rho, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ checkpoints
def test_sequential_checkpoint_continues_exactly(ka2, liquid_factory):
    """A state taken mid-sweep (cursor != 0) continues bit for bit; a random-order sampler
    refuses it, and random-order states carry no attempt-order fields."""
    s = liquid_factory(ka2, n=200, seed=11)
    moves = MoveSettings(p_swap=0.2, swap_classes=[("A", "C"), ("B", "C")], p_volume=0.005,
                         order="sequential")
    mc = MonteCarlo(s, ka2.model, 1.0, pressure=2.0, moves=moves, seed=6)
    mc.attempts(2 * mc.n + 37)
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in mc.state_dict().items()}
    assert json.loads(state["header"])["cursor"] == 37
    mc.sweep(3)
    other = MonteCarlo(s, ka2.model, 1.0, pressure=2.0, moves=moves, seed=99)
    other.load_state_dict(state)
    assert other.cursor == 37
    other.sweep(3)
    for name in ("pos", "species", "images", "lengths", "counts", "order"):
        assert np.array_equal(getattr(mc, name), getattr(other, name)), name
    assert mc.energy == other.energy
    rnd = MonteCarlo(s, ka2.model, 1.0, pressure=2.0,
                     moves=MoveSettings(p_swap=0.2, swap_classes=[("A", "C"), ("B", "C")]),
                     seed=6)
    with pytest.raises(StateError, match="attempt_order"):
        rnd.load_state_dict(state)
    assert "attempt_order" not in json.loads(rnd.state_dict()["header"])


def test_sequential_run_extends_exactly(tmp_path):
    """A sequential-order run extended from its checkpoint equals an uninterrupted one."""
    from test_restart import _cfg, _same_outputs

    from swapmc.run import run

    def cfg(directory, **kw):
        c = _cfg(directory, **kw)
        c["moves"] = {"order": "sequential"}
        return c

    full = run("ka2-x10", cfg(tmp_path / "full"), log=lambda *a: None)
    part = tmp_path / "part"
    run("ka2-x10", cfg(part, production_sweeps=200), log=lambda *a: None)
    resumed = run("ka2-x10", cfg(part), log=lambda *a: None)
    assert resumed.resumed
    _same_outputs(tmp_path / "full", part)
    assert full.summary["tau_alpha_sweeps"] == resumed.summary["tau_alpha_sweeps"]
