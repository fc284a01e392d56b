"""Tests of the equilibration diagnostics against exact results.

Statistical tests use fixed seeds and 5-sigma tolerances computed from the known variance of
the estimator, so they are deterministic yet would fail for a normalisation error of a few
per cent or a lag off by one.
"""


import numpy as np
import pytest

from swapmc.analysis import (
    first_peak,
    msd,
    radial_distribution,
    self_intermediate_scattering,
    structure_factor,
    tau_alpha,
)
from swapmc.box import Box

NSIG = 5.0


def simple_cubic(n_side, a):
    """Simple cubic lattice of n_side^3 sites, spacing a, offset a/2 from the box origin."""
    g = (np.arange(n_side) + 0.5) * a
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


def reference_gr(x, lengths, r_max, n_bins, species=None, pair=None):
    """All-pairs numpy g(r) with the same normalisation (independent implementation)."""
    if pair is None:
        a = b = np.arange(len(x))
    else:
        a = np.flatnonzero(species == pair[0])
        b = np.flatnonzero(species == pair[1])
    same = pair is None or pair[0] == pair[1]
    d = x[b][None, :, :] - x[a][:, None, :]
    d -= lengths * np.rint(d / lengths)
    r = np.sqrt(np.sum(d**2, axis=-1))
    if same:
        r = r[~np.eye(len(a), dtype=bool)]
    hist, edges = np.histogram(r.ravel(), bins=n_bins, range=(0.0, r_max))
    shell = 4.0 * np.pi / 3.0 * np.diff(edges**3)
    n_pairs = len(a) * (len(a) - 1) if same else len(a) * len(b)
    return hist / (n_pairs * shell / np.prod(lengths))


# ------------------------------------------------------------------------------ g(r)
@pytest.mark.parametrize("r_max", [2.2, 3.45])  # cell-list path and all-pairs path
def test_gr_matches_all_pairs_reference(r_max):
    rng = np.random.default_rng(0)
    lengths = np.array([7.0, 8.0, 6.9])
    x = rng.random((400, 3)) * lengths
    species = (rng.random(400) < 0.3).astype(np.int32)
    # Unwrapped input must give the same result as wrapped.
    shifted = x + rng.integers(-2, 3, size=x.shape) * lengths
    for pair in (None, (0, 0), (0, 1), (1, 1)):
        r, g = radial_distribution(shifted, lengths, r_max, 31, species, pair)
        np.testing.assert_allclose(g, reference_gr(x, lengths, r_max, 31, species, pair))
    np.testing.assert_allclose(r, (np.arange(31) + 0.5) * r_max / 31)


def test_gr_ideal_gas_is_one():
    rng = np.random.default_rng(1)
    n, length, r_max, n_bins = 3000, 12.0, 4.0, 40
    x = rng.random((n, 3)) * length
    species = (rng.random(n) < 0.25).astype(np.int32)
    edges = np.linspace(0.0, r_max, n_bins + 1)
    p_shell = 4.0 * np.pi / 3.0 * np.diff(edges**3) / length**3
    n0, n1 = np.bincount(species)
    # Pair indicators of independent uniform points in a periodic box are pairwise
    # independent, so a bin's pair count has variance mu (1 - p) <= mu: sigma_g = 1/sqrt(mu)
    # with mu the expected count of *distinct* pairs in the bin.
    cases = {
        None: n * (n - 1) / 2,
        (0, 0): n0 * (n0 - 1) / 2,
        (1, 1): n1 * (n1 - 1) / 2,
        (0, 1): n0 * n1,
    }
    for pair, n_distinct in cases.items():
        _, g = radial_distribution(x, [length] * 3, r_max, n_bins, species, pair)
        mu = n_distinct * p_shell
        z = (g - 1.0) * np.sqrt(mu)
        assert np.max(np.abs(z)) < NSIG, (pair, z)
        # Pooled over all bins the relative error is 1/sqrt(total count) ~ 1e-3.
        pooled = np.sum(g * mu) / np.sum(mu)
        assert abs(pooled - 1.0) < NSIG / np.sqrt(np.sum(mu)), (pair, pooled)
    # g_ab is symmetric by construction (same pairs counted).
    _, g01 = radial_distribution(x, [length] * 3, r_max, n_bins, species, (0, 1))
    _, g10 = radial_distribution(x, [length] * 3, r_max, n_bins, species, (1, 0))
    np.testing.assert_array_equal(g01, g10)


def test_gr_simple_cubic_lattice():
    a, n_side = 1.1, 6
    x = simple_cubic(n_side, a)
    n, length = len(x), n_side * a
    r_max, n_bins = 1.5 * a, 50  # dr = 0.03 a: a and sqrt(2) a fall inside bins, not on edges
    r, g = radial_distribution(x, Box.cube(length), r_max, n_bins)
    dr = r_max / n_bins
    # First peak at the lattice spacing, to within the bin half-width; nothing closer.
    assert abs(r[np.argmax(g)] - a) <= dr / 2
    assert np.all(g[r < 0.9 * a] == 0.0)
    # Coordination number n(r_c) = rho' sum_k g_k V_k with rho' = (N - 1)/V is exactly the
    # number of neighbours within r_c for the exact-shell normalisation used...
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shells = 4.0 * np.pi / 3.0 * np.diff(edges**3)
    cumulative = np.cumsum(g * shells) * (n - 1) / length**3
    np.testing.assert_allclose(cumulative[r < 1.2 * a][-1], 6.0, rtol=1e-12)
    np.testing.assert_allclose(cumulative[-1], 18.0, rtol=1e-12)  # + 12 at sqrt(2) a
    # ...and the textbook integral of 4 pi r^2 rho g dr (midpoint rule, rho = N/V) gives 6
    # up to the N/(N-1) = 1.005 factor and the O(dr^2/r^2) midpoint error.
    textbook = np.sum((4.0 * np.pi * r**2 * (n / length**3) * g * dr)[r < 1.2 * a])
    assert abs(textbook - 6.0) < 0.01 * 6.0


def test_gr_rejects_bad_input():
    x = np.random.default_rng(2).random((20, 3)) * 4.0
    with pytest.raises(ValueError, match="half the smallest box edge"):
        radial_distribution(x, [4.0, 4.0, 3.0], 1.6, 10)
    with pytest.raises(ValueError, match="species"):
        radial_distribution(x, [4.0] * 3, 1.0, 10, pair=(0, 0))
    with pytest.raises(ValueError, match="no particle has species 3"):
        radial_distribution(x, [4.0] * 3, 1.0, 10, np.zeros(20, np.int32), (0, 3))
    with pytest.raises(ValueError, match="orthorhombic"):
        radial_distribution(x, Box([4.0] * 3, [0.5, 0.0, 0.0]), 1.0, 10)


# ------------------------------------------------------------------------------ S(q)
def test_sq_simple_cubic_bragg_peaks():
    # n_side = 2^k: every integer vector with |n|^2 = n_side^2 is a permutation of
    # (n_side, 0, 0), so the |q| = 2 pi / a shell contains only Bragg vectors.
    a, n_side = 1.2, 8
    x = simple_cubic(n_side, a)
    n = len(x)
    q, S = structure_factor(x, [n_side * a] * 3, 1.5 * 2 * np.pi / a)
    bragg = np.isclose(q, 2 * np.pi / a, rtol=1e-9) | np.isclose(
        q, 2 * np.pi * np.sqrt(2) / a, rtol=1e-9
    )
    assert bragg.sum() == 2
    np.testing.assert_allclose(S[bragg], n, rtol=1e-9)
    # Every other lattice wavevector sees a perfect cancellation.
    assert np.all(np.abs(S[~bragg]) < 1e-12 * n)
    k = int(np.argmax(S))
    assert q[k] == pytest.approx(2 * np.pi / a, rel=1e-12)
    # For a delta-like peak the parabola only guarantees a vertex between the neighbouring
    # shells (|n|^2 = 62 and 65 here: 63 is not a sum of three squares).
    assert q[k - 1] < first_peak(q, S, (4.0, 7.0)) < q[k + 1]


def test_sq_matches_direct_sum_for_partials():
    rng = np.random.default_rng(3)
    lengths = np.array([6.0, 7.0, 6.5])
    x = rng.random((120, 3)) * lengths
    species = (rng.random(120) < 0.4).astype(np.int32)
    q_max = 4.0
    # Direct evaluation over the full reciprocal lattice (both q and -q).
    nmax = np.floor(q_max * lengths / (2 * np.pi)).astype(int)
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in nmax], indexing="ij")
    nvec = np.stack(grids, axis=-1).reshape(-1, 3)
    qvec = 2 * np.pi * nvec / lengths
    qmag = np.linalg.norm(qvec, axis=1)
    keep = (qmag > 0) & (qmag <= q_max)
    qvec, qmag = qvec[keep], qmag[keep]
    for pair in ((0, 0), (0, 1), (1, 0)):
        a = np.flatnonzero(species == pair[0])
        b = np.flatnonzero(species == pair[1])
        rho_a = np.exp(-1j * x[a] @ qvec.T).sum(axis=0)
        rho_b = np.exp(-1j * x[b] @ qvec.T).sum(axis=0)
        s_direct = (rho_a * rho_b.conj()).real / np.sqrt(len(a) * len(b))
        q, S = structure_factor(x, lengths, q_max, species, pair)
        expect = [s_direct[np.abs(qmag - qk) < 1e-9 * qk].mean() for qk in q]
        np.testing.assert_allclose(S, expect, rtol=1e-10, atol=1e-12)
        qb, Sb = structure_factor(x, lengths, q_max, species, pair, n_bins=8)
        label = np.minimum((qmag / q_max * 8).astype(int), 7)
        expect = [s_direct[label == k].mean() for k in np.unique(label)]
        np.testing.assert_allclose(Sb, expect, rtol=1e-10, atol=1e-12)


def test_sq_ideal_gas():
    rng = np.random.default_rng(4)
    n, length = 1000, 10.0
    x = rng.random((n, 3)) * length
    species = (rng.random(n) < 0.5).astype(np.int32)
    # For uniform points |rho_q|^2 / N is ~ exponential with mean 1 and variance 1, and the
    # partial Re(rho_a rho_b^*)/sqrt(N_a N_b) has mean 0 and variance 1/2; different q are
    # nearly uncorrelated, so a bin of m vectors has sigma = sqrt(var / m).
    for pair, mean, var in ((None, 1.0, 1.0), ((1, 1), 1.0, 1.0), ((0, 1), 0.0, 0.5)):
        q, S, m = structure_factor(x, [length] * 3, 8.0, species, pair, 16, True)
        z = (S - mean) / np.sqrt(var / m)
        big = m >= 30  # exponential tails of bins with few vectors are far from Gaussian
        assert np.all(np.abs(z[big]) < NSIG), (pair, z)
        pooled = np.sum(S * m) / np.sum(m)
        assert abs(pooled - mean) < NSIG * np.sqrt(var / np.sum(m)), (pair, pooled)


def test_first_peak():
    # A parabola through any three points is recovered exactly, also on a non-uniform grid.
    q = np.sort(np.random.default_rng(6).uniform(4.0, 10.0, 40))
    np.testing.assert_allclose(first_peak(q, 3.0 - (q - 7.23) ** 2), 7.23, rtol=1e-10)
    # A Gaussian peak of width 0.5 on a grid dq = 0.1: the parabola error is ~2e-4 here.
    q = np.linspace(4.0, 10.0, 61)
    S = 1.0 + 2.0 * np.exp(-((q - 7.23) ** 2) / (2 * 0.5**2))
    assert abs(first_peak(q, S) - 7.23) < 1e-3
    # Only the window counts: a larger value outside is ignored.
    S2 = S.copy()
    S2[q < 4.5] = 10.0
    assert abs(first_peak(q, S2, (5.0, 10.0)) - 7.23) < 1e-3
    with pytest.raises(ValueError, match="no q point"):
        first_peak(q, S, (11.0, 12.0))
    with pytest.raises(ValueError, match="increasing"):
        first_peak(q[::-1], S)


# ------------------------------------------------------------------------------- F_s
def test_fs_zero_displacement_is_one():
    d = np.zeros((4, 50, 3))
    np.testing.assert_array_equal(self_intermediate_scattering(d, 7.2), np.ones(4))
    assert self_intermediate_scattering(d[0], 7.2) == 1.0
    assert self_intermediate_scattering(d, [1.0, 7.2]).shape == (4, 2)
    assert msd(d[0]) == 0.0


def test_fs_gaussian_displacements():
    rng = np.random.default_rng(7)
    sigma, n = 0.3, 200_000
    d = rng.normal(0.0, sigma, size=(n, 3))
    q = np.array([1.0, 3.0, 7.2])
    fs = self_intermediate_scattering(d, q)
    exact = np.exp(-(q**2) * sigma**2 / 2)  # <exp(i q.d)> for Gaussian d, any direction
    err = np.std(np.sinc(np.linalg.norm(d, axis=1)[:, None] * q / np.pi), axis=0) / np.sqrt(n)
    assert np.all(np.abs(fs - exact) < NSIG * err), (fs, exact, err)
    # MSD = 3 sigma^2; var(|d|^2) = 6 sigma^4.
    assert abs(msd(d) - 3 * sigma**2) < NSIG * np.sqrt(6 / n) * sigma**2


def test_tau_alpha_exponential():
    tau = 37.3
    for t in (np.arange(0.0, 400.0, 2.0), np.logspace(-1, 3, 41)):
        f = np.exp(-t / tau)
        k = np.flatnonzero(f < np.exp(-1))[0]
        h = np.log(t[k] / t[k - 1])
        # Linear interpolation in log t of exp(-e^u / tau): F'' vanishes at t = tau, so the
        # relative error is at most ~ h^2 (e^h - 1) / 8 (2e-5 and 1.7e-3 for these grids).
        bound = h * h * np.expm1(h) / 8
        assert abs(tau_alpha(t, f) / tau - 1.0) < bound
    # Other thresholds: first crossing of exp(-t/tau) = c is at t = -tau ln c.
    t = np.arange(1.0, 1000.0)
    assert abs(tau_alpha(t, np.exp(-t / tau), 0.5) / (tau * np.log(2)) - 1) < 1e-4
    # Bracket starting at t = 0: linear in t.
    assert tau_alpha([0.0, 10.0], [1.0, 0.0], 0.25) == pytest.approx(7.5)


def test_tau_alpha_no_crossing_and_bad_input():
    t = np.arange(0.0, 100.0)
    assert np.isnan(tau_alpha(t, np.exp(-t / 1000.0)))
    with pytest.raises(ValueError):
        tau_alpha(t, t[:-1])
    with pytest.raises(ValueError):
        tau_alpha(t[::-1], np.exp(-t))
    with pytest.raises(ValueError):
        tau_alpha(t, np.full(t.size, np.nan))
    with pytest.raises(ValueError):
        tau_alpha(t, np.exp(-t), threshold=1.5)
    with pytest.raises(ValueError, match="already below"):
        tau_alpha(t + 10.0, np.exp(-(t + 10.0)))


def test_peak_window_scales_with_the_mean_spacing(liquid_factory, ka2):
    """KA at rho = 1.2 keeps the LJ window (4, 10) and q_max 12. The same configuration
    blown up to a Cu-Zr-like spacing (lengths x 2.74, i.e. sigma -> 2.74 Å) has its S(q)
    peak at q / 2.74, which the rescaled window finds exactly and the fixed LJ window
    misses (it lies below 4)."""
    from swapmc.analysis import first_peak, peak_window, structure_factor

    lo, hi, qmax = peak_window(1.2)
    assert (lo, hi, qmax) == pytest.approx((4.0, 10.0, 12.0), rel=1e-12)
    system = liquid_factory(ka2, n=500, seed=3)
    q, s = structure_factor(system.positions, system.box.lengths, qmax, species=system.species,
                            pair=(0, 0))
    q1 = first_peak(q, s, (lo, hi))
    scale = 2.74
    lo2, hi2, qmax2 = peak_window(1.2 / scale**3)
    assert (lo2, hi2, qmax2) == pytest.approx((lo / scale, hi / scale, qmax / scale))
    q2, s2 = structure_factor(system.positions * scale, system.box.lengths * scale, qmax2,
                              species=system.species, pair=(0, 0))
    assert first_peak(q2, s2, (lo2, hi2)) == pytest.approx(q1 / scale, rel=1e-9)
    # The fixed LJ window (with q up to 12) lands on a later peak of the scaled system.
    q3, s3 = structure_factor(system.positions * scale, system.box.lengths * scale, 12.0,
                              species=system.species, pair=(0, 0))
    assert abs(first_peak(q3, s3, (4.0, 10.0)) - q1 / scale) > 0.2 * q1 / scale
    with pytest.raises(ValueError):
        peak_window(0.0)
