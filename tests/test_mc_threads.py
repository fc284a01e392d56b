"""The domain-decomposed sweep on shared-memory threads (``[moves] threads >= 2``).

Exactness: Boltzmann checks in the style of ``test_mc_balance.py`` (histograms from the
chain against exact probabilities by a chi-square with batch-means errors, threshold the
chi-square quantile at significance ALPHA = 1e-4, and a power check: the same data reject
energies off by 5 %), run in a child process with NUMBA_NUM_THREADS = 2 and threads = 2;
every energy change against a from-scratch energy after many sweeps; the list invariant;
moves that stay in their domain. Reproducibility: the same bytes from two runs, from 2 and
4 threads and from one thread running the same decomposition; checkpoints continue exactly.
Interface: the ``[moves] threads`` key, its fingerprint, and the refusals.
"""

import json
import os
import signal
import subprocess
import sys

import numba
import numpy as np
import pytest
from reference import batch_chi2, lj_energy, lj_pair_energy
from scipy import integrate, stats

from swapmc._toml import ConfigError
from swapmc.config import fingerprint_hash, resolve
from swapmc.kernels import mc_domains
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import LJMixture, eam
from swapmc.system import ConfigurationError

ALPHA = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SWAPS = [("A", "C"), ("B", "C")]

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                               reason="Numba may start only one thread here")


def _threshold(dof):
    return stats.chi2.ppf(1 - ALPHA, dof)


def _liquid(ka2, liquid_factory, n=1500, seed=3):
    # N = 1500 at rho = 1.2: edge 10.8 >= 4 r_c, 4 domains per dimension.
    return liquid_factory(ka2, n=n, seed=seed, min_distance=0.75)


def _moves(**kw):
    return MoveSettings(**{"p_swap": 0.3, "swap_classes": SWAPS, "displacement": 0.12,
                           "threads": 2, **kw})


def _child(code: str, threads: int, args=(), timeout: float = 900.0) -> str:
    """Run ``code`` (with ``args`` in sys.argv[1:]) in a child Python with
    NUMBA_NUM_THREADS = threads; returns its stdout."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([ROOT, HERE, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd=HERE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# ------------------------------------------------------------------------- interface
def test_threads_setting_config_and_fingerprint():
    assert MoveSettings().threads == 1
    assert "threads" not in MoveSettings().to_dict()
    assert MoveSettings(threads=4).to_dict()["threads"] == 4
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
            MoveSettings(threads=bad)
    base = resolve("ka2-x10")
    assert "threads" not in base["moves"]
    two = resolve("ka2-x10", {"moves": {"threads": 2}})
    four = resolve("ka2-x10", {"moves": {"threads": 4}})
    one = resolve("ka2-x10", {"moves": {"threads": 1}})
    assert two["moves"]["threads"] == 2
    # Serial runs keep their fingerprint; the domain sweep's chain does not depend on the
    # thread count, so 2 and 4 threads may resume each other, but not the serial sweep.
    assert fingerprint_hash(one) == fingerprint_hash(base)
    assert fingerprint_hash(two) == fingerprint_hash(four)
    assert fingerprint_hash(two) != fingerprint_hash(base)
    with pytest.raises(ConfigError, match=r"\[moves\] threads must be an integer"):
        resolve("ka2-x10", {"moves": {"threads": 0}})


def test_refusals_name_the_limit(ka2, liquid_factory):
    small = liquid_factory(ka2, n=500, seed=1)
    with pytest.raises(ConfigurationError, match=r"edge >= 4 r_c = 10 .* N >= 1201"):
        MonteCarlo(small, ka2.model, 1.0, moves=_moves(), seed=1)
    s = _liquid(ka2, liquid_factory)
    with pytest.raises(ConfigurationError, match="constant volume"):
        MonteCarlo(s, ka2.model, 1.0, pressure=2.0, moves=_moves(), seed=1)
    with pytest.raises(ConfigurationError, match="threads = 1 only"):
        MonteCarlo(s, ka2.model, 1.0, moves=_moves(order="sequential"), seed=1)
    with pytest.raises(ConfigurationError, match="NUMBA_NUM_THREADS"):
        MonteCarlo(s, ka2.model, 1.0, moves=_moves(threads=numba.config.NUMBA_NUM_THREADS + 1),
                   seed=1)
    from test_eam_mc import _system

    pot = eam.zjw_potential()
    with pytest.raises(ConfigurationError, match=r"edge >= 2 r_c = 14.31.* 8 r_c = 57.24"):
        MonteCarlo(_system(pot, 3000, 1), pot, 1500.0, moves=MoveSettings(threads=2), seed=1)


def test_cli_refuses_small_box_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "swapmc", "run", "ka2-x10", "-N", "500", "--threads", "2",
         "-o", str(tmp_path / "r"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "threads > 1 needs domains" in lines[0] and "N >= 1201" in lines[0]


# -------------------------------------------------------------------------- geometry
def test_domain_grid_and_colours_keep_same_colour_domains_apart():
    nd = mc_domains.domain_grid([10.8, 13.0, 5.1], 2.5)
    assert nd.tolist() == [4, 4, 2]  # largest even counts with edge >= 2.5
    doms = mc_domains.colour_domains(nd)
    assert doms.shape == (8, 4)
    assert np.array_equal(np.sort(doms.ravel()), np.arange(nd.prod()))
    for colour in range(8):
        idx = np.array([np.unravel_index(d, nd) for d in doms[colour]])
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                gap = np.abs(idx[a] - idx[b])
                gap = np.minimum(gap, nd - gap)
                # Some axis separates them by a whole domain (index gap >= 2).
                assert gap.max() >= 2


def test_stream_is_splitmix64():
    """The per-domain stream is SplitMix64 (Vigna's reference outputs for seed 0 after the
    golden-ratio step: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4)."""
    state = np.uint64(0)
    state, u = mc_domains.next_uniform(state)
    assert u == (0xE220A8397B1DCDAF >> 11) * 2.0**-53
    state, u = mc_domains.next_uniform(state)
    assert u == (0x6E789E6AA1B965F4 >> 11) * 2.0**-53


# ------------------------------------------------------------ exactness (in process)
@needs_two
def test_moves_stay_in_their_domain(ka2, liquid_factory):
    """Within a sweep no particle changes domain, and moves were rejected for leaving."""
    mc = MonteCarlo(_liquid(ka2, liquid_factory), ka2.model, 1.0,
                    moves=_moves(displacement=0.25), seed=2)
    seen = []
    original = mc_domains.phases

    def spy(*args):
        pos, lengths, shift, nd = args[1], args[4], args[25], args[26]
        before = [mc_domains.domain_of(*p, lengths, shift, nd) for p in pos]
        moved_before = pos.copy()
        original(*args)
        after = [mc_domains.domain_of(*p, lengths, shift, nd) for p in pos]
        seen.append((before == after, np.any(pos != moved_before)))

    mc_domains.phases = spy
    try:
        mc.sweep(3)
    finally:
        mc_domains.phases = original
    assert all(same and moved for same, moved in seen)
    assert mc.domain_rejections > 0


@needs_two
def test_running_energy_list_and_composition(ka2, liquid_factory):
    """After 40 threaded sweeps with swaps (>8e3 accepted moves) the running energy equals
    the brute-force energy, the list invariant holds, composition and swap lists are
    intact, and each sweep gave every particle one turn."""
    from test_mc_energy import _assert_list_exact

    mc = MonteCarlo(_liquid(ka2, liquid_factory), ka2.model, 1.0, moves=_moves(), seed=5,
                    energy_check_every=0)
    before = np.bincount(mc.species, minlength=3)
    mc.sweep(40)
    assert mc.counts[:2, 0].sum() == 40 * mc.n
    assert mc.counts[:, 1].sum() > 8_000 and mc.counts[1, 1] > 300
    assert mc.nstats[2] > 0  # refreshes happened
    _assert_list_exact(mc)
    assert mc.energy == pytest.approx(lj_energy(mc.pos, mc.species, mc.lengths, ka2.model),
                                      rel=1e-11)
    assert np.array_equal(np.bincount(mc.species, minlength=3), before)
    for sp in range(3):
        members = mc.members[sp, : mc.member_counts[sp]]
        assert np.all(mc.species[members] == sp)
        assert np.array_equal(mc.slot[members], np.arange(mc.member_counts[sp]))
    mc.energy_check_every = 10
    mc.sweep(10)  # the sampler's own checks pass


def _eam_sampler(threads=2, seed=8):
    """Doped ZJW Cu-Zr, N = 11 400 at 0.06 / Å^3: edge 57.5 Å >= 8 r_c = 57.2 Å."""
    from swapmc.build import composition_counts, random_configuration

    pot = eam.doped(eam.zjw_potential(), dopant="X", between=("Cu", "Zr"), weight=0.5)
    counts = composition_counts({"Cu": 0.4, "Zr": 0.4, "X": 0.2}, 11_400, pot.species)
    s = random_configuration(counts, pot.species, 0.06, seed=7, min_distance=2.0)
    moves = MoveSettings(p_swap=0.3, swap_classes=[("Cu", "X"), ("Zr", "X")],
                         displacement=0.15, threads=threads)
    return pot, MonteCarlo(s, pot, 1500.0, moves=moves, seed=seed, energy_check_every=0)


@needs_two
def test_eam_running_energy_densities_and_one_thread():
    """EAM (domains 2 r_c apart): after 4 threaded sweeps with swaps the running energy
    equals the brute-force energy, the stored host densities equal recomputed ones, and
    the same sweeps on one thread give the same bytes."""
    from reference import eam_energy
    from test_mc_energy import _assert_list_exact

    pot, mc = _eam_sampler()
    _, one = _eam_sampler()
    one.threads = 1
    assert mc.domains.tolist() == [4, 4, 4]
    mc.sweep(4)
    one.sweep(4)
    for name in ("pos", "species", "rho", "fstate", "counts", "nnbr"):
        assert np.array_equal(getattr(mc, name), getattr(one, name)), name
    assert mc.counts[0, 1] > 10_000 and mc.counts[1, 1] > 2_000
    assert mc.energy == pytest.approx(
        eam_energy(mc.pos, mc.species, mc.lengths, pot.kernel_tables()), rel=1e-11)
    rho = mc.rho.copy()
    mc.check_energy()  # recomputes the host densities
    assert np.allclose(rho, mc.rho, rtol=1e-11, atol=1e-12)
    _assert_list_exact(mc)


@needs_two
def test_tuning_raises_the_skin_and_stays_exact(ka2, liquid_factory):
    """A displacement large against the skin (delta sqrt(3) >= 0.45 skin) makes the sampler
    widen the skin; the list and the energy stay exact at a high temperature."""
    from test_mc_energy import _assert_list_exact

    mc = MonteCarlo(_liquid(ka2, liquid_factory), ka2.model, 3.0,
                    moves=_moves(displacement=0.3), seed=6, energy_check_every=0)
    mc.sweep(15)
    assert mc.skin >= 2.5 * 0.3 * np.sqrt(3) - 1e-12
    _assert_list_exact(mc)
    assert mc.energy == pytest.approx(lj_energy(mc.pos, mc.species, mc.lengths, ka2.model),
                                      rel=1e-11)


@needs_two
def test_checkpoint_continues_exactly(ka2, liquid_factory):
    s = _liquid(ka2, liquid_factory)
    mc = MonteCarlo(s, ka2.model, 1.0, moves=_moves(), seed=6)
    mc.equilibrate(10, tune_every=5)
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in mc.state_dict().items()}
    mc.sweep(5)
    other = MonteCarlo(s, ka2.model, 1.0, moves=_moves(), seed=99)
    other.load_state_dict(state)
    other.sweep(5)
    for name in ("pos", "species", "images", "counts", "class_counts", "ref", "nnbr",
                 "fstate"):
        assert np.array_equal(getattr(mc, name), getattr(other, name)), name
    assert mc.domain_rejections == other.domain_rejections
    with pytest.raises(ValueError, match="whole sweeps"):
        mc.attempts(7)


@needs_two
def test_run_extends_exactly(tmp_path):
    """A threaded run extended from its checkpoint equals an uninterrupted one."""
    from test_restart import _cfg, _same_outputs

    from swapmc.run import run

    def cfg(directory, **kw):
        c = _cfg(directory, **kw)
        c["system"] = {"n": 1300, "melt_sweeps": 10}
        c["run"].update(equilibration_sweeps=20, energy_check_every=20)
        c["output"].update(trajectory_every=20, checkpoint_every=30)
        c["moves"] = {"threads": 2}
        return c

    run("ka2-x10", cfg(tmp_path / "full", production_sweeps=60), log=lambda *a: None)
    part = tmp_path / "part"
    run("ka2-x10", cfg(part, production_sweeps=30), log=lambda *a: None)
    resumed = run("ka2-x10", cfg(part, production_sweeps=60), log=lambda *a: None)
    assert resumed.resumed
    _same_outputs(tmp_path / "full", part)


# ------------------------------------------------------------- reproducibility (child)
HASH_CHILD = """
import hashlib, json, sys
import numba, numpy as np
from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset
args = json.loads(sys.argv[1])
p = load_preset("ka2-x10")
s = random_configuration(composition_counts(p.composition, 1500, p.model.species),
                         p.model.species, 1.2, seed=3, min_distance=0.75)
moves = MoveSettings(p_swap=0.3, swap_classes=[("A", "C"), ("B", "C")], displacement=0.12,
                     threads=args["threads"])
mc = MonteCarlo(s, p.model, 0.8, moves=moves, seed=17)
if args["one_thread"]:
    mc.threads = 1  # the same decomposition and streams, executed by one thread
mc.equilibrate(20, tune_every=5)
mc.sweep(30)
h = hashlib.sha256()
for a in (mc.pos, mc.species, mc.images, mc.ref, mc.fstate, mc.counts, mc.class_counts,
          mc.nnbr, mc.members, mc.slot):
    h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest(), mc.domain_rejections, numba.get_num_threads())
"""


def _hash_run(numba_threads, threads, one_thread=False):
    digest, rejections, used = _child(
        HASH_CHILD, numba_threads,
        [json.dumps({"threads": threads, "one_thread": one_thread})]).split()
    return digest, int(rejections), int(used)


def test_bit_identical_for_repeats_and_thread_counts():
    """Two runs with 2 threads give the same bytes, and so do 4 threads and one thread
    executing the same decomposition: the chain does not depend on the thread count."""
    a = _hash_run(2, 2)
    b = _hash_run(2, 2)
    c = _hash_run(4, 4)
    d = _hash_run(2, 2, one_thread=True)
    assert (a[2], c[2], d[2]) == (2, 4, 1)
    assert a[0] == b[0] == c[0] == d[0]
    assert a[1] == b[1] == c[1] == d[1] > 0


# ---------------------------------------------------------- Boltzmann (child, threads)
PAIR_CHILD = """
import numpy as np
from swapmc import Box, System
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import LJMixture
model = LJMixture.from_pairs(["A"], {"A-A": {"epsilon": 4.0, "sigma": 1.0, "cutoff": 1.25}})
length, temperature = 5.2, 0.3
system = System(np.array([[1.0, 1.0, 1.0], [2.1, 1.0, 1.0]]), [0, 0], ("A",),
                Box.cube(length))
mc = MonteCarlo(system, model, temperature,
                moves=MoveSettings(displacement=0.5, threads=2), seed=31,
                energy_check_every=0)
assert mc.domains.tolist() == [4, 4, 4]
mc.sweep(5000)
n_samples = NSAMPLES
samples = np.empty(n_samples)
for k in range(n_samples):
    mc.sweep(1)
    d = mc.pos[1] - mc.pos[0]
    d -= length * np.round(d / length)
    samples[k] = np.sqrt(d @ d)
np.save("OUT", samples)
print(mc.domain_rejections, mc.counts[0, 1], mc.nstats[2])
"""


@pytest.mark.physics
def test_threaded_displacement_two_particles_boltzmann(tmp_path):
    """Two LJ particles (epsilon = 4, r_c = 1.25, so a shifted well 0.9 deep, T = 0.3; box
    5.2: 4 domains of edge 1.3 per dimension; step 0.5, so that the pair binds and unbinds
    often): the pair distance r < L/2 has density ∝ r^2 exp(-u(r)/T), sampled after every
    threaded sweep run with 2 threads. About half of the moves leave their domain."""
    out = tmp_path / "pair.npy"
    code = PAIR_CHILD.replace("NSAMPLES", "300_000").replace("OUT", str(out))
    rejections, accepted, refreshes = map(int, _child(code, 2).split())
    samples = np.load(out)
    assert rejections > 0.3 * 2 * 305_000 and refreshes > 1000
    temperature = 0.3
    # From r = 1: below it exp(-u/T) < 1e-13, a bin nothing can fall in (its batch-means
    # error would be zero).
    edges = np.linspace(1.0, 2.6, 17)
    inside = samples[(samples >= edges[0]) & (samples < edges[-1])]

    def probs(beta_scale):
        def w(r):
            return r * r * np.exp(-beta_scale * lj_pair_energy(r, 4.0, 1.0, 1.25)
                                  / temperature)

        p = np.array([integrate.quad(w, a, b, points=[1.25] if a < 1.25 < b else None)[0]
                      for a, b in zip(edges[:-1], edges[1:])])
        return p / p.sum()

    assert batch_chi2(inside, edges, probs(1.0)) < _threshold(len(edges) - 1)
    assert batch_chi2(inside, edges, probs(1.05)) > _threshold(len(edges) - 1)


SWAP_CHILD = """
import itertools
import numpy as np
from swapmc import Box, System
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import LJMixture
pairs = {"A-A": (1.0, 1.0), "A-B": (1.5, 0.8), "B-B": (0.5, 0.88), "A-C": (1.2, 0.9),
         "B-C": (0.9, 0.85), "C-C": (0.8, 0.95)}
model = LJMixture.from_pairs(["A", "B", "C"], {k: {"epsilon": e, "sigma": s, "cutoff": 1.3}
                                                for k, (e, s) in pairs.items()})
pos = np.array([[1.0, 1.0, 1.0], [1.85, 1.1, 1.0], [1.5, 1.85, 1.2]])
length, temperature = 5.5, 1.0
system = System(pos, [0, 1, 2], ("A", "B", "C"), Box.cube(length))
moves = MoveSettings(p_swap=1.0, swap_classes=[("A", "C"), ("B", "C"), ("A", "B")],
                     class_weights=[1.0, 2.0, 0.5], threads=2)
mc = MonteCarlo(system, model, temperature, moves=moves, seed=32, energy_check_every=0)
assert mc.domains.tolist() == [4, 4, 4]
perms = list(itertools.permutations(range(3)))
code = {p: k for k, p in enumerate(perms)}
labels = np.empty(NSAMPLES, np.int64)
for k in range(NSAMPLES):
    mc.sweep(1)
    labels[k] = code[tuple(mc.species[np.argsort(mc.order)])]
np.save("OUT", labels)
print(mc.counts[1, 1])
"""


@pytest.mark.physics
def test_threaded_swaps_fixed_sites_boltzmann(tmp_path):
    """Three particles A, B, C on fixed sites (cut-offs 1.3, box 5.5: domain edge 1.375),
    three swap classes with unequal weights, swaps only within a domain (the sites share
    one in a minority of shifts): the 6 identity assignments occur with Boltzmann
    weights, sampled after every sweep run with 2 threads."""
    import itertools

    out = tmp_path / "swap.npy"
    code = SWAP_CHILD.replace("NSAMPLES", "150_000").replace("OUT", str(out))
    accepted = int(_child(code, 2))
    labels = np.load(out)
    assert accepted > 5_000
    pairs = {"A-A": (1.0, 1.0), "A-B": (1.5, 0.8), "B-B": (0.5, 0.88), "A-C": (1.2, 0.9),
             "B-C": (0.9, 0.85), "C-C": (0.8, 0.95)}
    model = LJMixture.from_pairs(["A", "B", "C"], {k: {"epsilon": e, "sigma": s,
                                                       "cutoff": 1.3}
                                                   for k, (e, s) in pairs.items()})
    pos = np.array([[1.0, 1.0, 1.0], [1.85, 1.1, 1.0], [1.5, 1.85, 1.2]])
    perms = list(itertools.permutations(range(3)))
    energies = np.array([lj_energy(pos, np.array(p), [5.5] * 3, model) for p in perms])

    def probs(scale):
        w = np.exp(-scale * (energies - energies.min()) / 1.0)
        return w / w.sum()

    states = np.arange(len(perms))
    assert batch_chi2(labels, states, probs(1.0)) < _threshold(len(perms))
    assert batch_chi2(labels, states, probs(1.05)) > _threshold(len(perms))


def test_quick_threaded_pair_chain_in_child(tmp_path):
    """Default tier: a short run of the two-particle chain with 2 threads in a child
    (the full Boltzmann check is marked physics)."""
    out = tmp_path / "pair.npy"
    code = PAIR_CHILD.replace("NSAMPLES", "2_000").replace("OUT", str(out))
    rejections, accepted, _ = map(int, _child(code, 2).split())
    samples = np.load(out)
    assert rejections > 0 and accepted > 1000
    assert np.all((samples > 0.8) & (samples <= 5.2 * np.sqrt(3) / 2))
