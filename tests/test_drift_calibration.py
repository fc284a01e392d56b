"""Calibration of the certificate's energy-drift test on correlated series.

The certificate sees a production run of 10-20 tau_alpha whose energy is sampled many times
per tau_alpha. The synthetic series here have that shape: 20 samples per tau_alpha and
stationary correlations on the scale of tau_alpha, either exponential (AR(1) with
correlation time tau_alpha) or stretched (a sum of four AR(1)s whose correlation function
falls to 1/e at tau_alpha but has a tail at 6 tau_alpha). The tests go through
:func:`certify` with a fully decayed F_s, so the only test that can fail is the drift test.
"""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.signal import lfilter

from swapmc.library.certify import certify, energy_drift_test

TAU = 20  # energy samples per tau_alpha
SPACING = 50  # sweeps between energy samples (the default thermo_every)
CLAIMED = 0.0027  # two-sided normal level of |z| > 3 (Criteria.max_drift_z)


def _ar1(rng, trials, n, tau):
    """(trials, n) stationary AR(1) series, unit variance, rho(k) = exp(-k / tau)."""
    phi = math.exp(-1.0 / tau)
    noise = rng.normal(size=(trials, n)) * math.sqrt(1.0 - phi * phi)
    noise[:, 0] = rng.normal(size=trials)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -phi], noise, axis=1)


def _stretched(rng, trials, n, tau):
    """Sum of AR(1)s at 0.2, 0.6, 2 and 6 tau with weights 0.25, 0.3, 0.3, 0.15 (unit
    variance): rho falls to 1/e at ~tau, then decays far more slowly than exp(-t/tau)."""
    weights, times = (0.25, 0.3, 0.3, 0.15), (0.2, 0.6, 2.0, 6.0)
    return sum(math.sqrt(w) * _ar1(rng, trials, n, t * tau) for w, t in zip(weights, times))


def _drift_failures(series):
    """Number of series a certificate fails, given F_s that decays with tau_alpha = TAU
    samples (so only the drift test can fail)."""
    n = series.shape[1]
    lags = np.arange(0.0, n * SPACING / 2, SPACING)
    fs = np.exp(-((lags / (TAU * SPACING)) ** 0.8))
    failed = 0
    for e in series:
        cert = certify(lags, fs, n * SPACING, e, 0.0)
        assert not cert.reasons or "drift" in " ".join(cert.reasons)
        failed += cert.verdict == "failed"
    return failed


@pytest.mark.physics
@pytest.mark.parametrize("kind,decays", [("ar1", 10), ("ar1", 15), ("ar1", 20),
                                         ("stretched", 15), ("stretched", 20)])
def test_false_failures_of_stationary_correlated_chains(kind, decays):
    """4000 stationary chains per case. At the claimed level of 0.27 % about 11 fail; a
    count above the binomial 99.9 % quantile (22, i.e. 0.55 %) has probability < 0.1 %
    if the claim holds, while the old test (independent block means, |t| > 4) gives
    45-180 (1.1-4.5 %) on these very series. Measured with these seeds: 1 to 14 failures
    (0.03-0.35 %)."""
    trials = 4000
    rng = np.random.default_rng({"ar1": 10, "stretched": 20}[kind] + decays)
    make = _ar1 if kind == "ar1" else _stretched
    failed = _drift_failures(make(rng, trials, decays * TAU, TAU))
    assert failed <= stats.binom.ppf(0.999, trials, CLAIMED)


@pytest.mark.physics
def test_power_against_a_linear_drift():
    """A linear drift of 8 (10) stationary standard deviations over a 10 tau_alpha run is
    detected with probability 0.80 (0.94), measured on 2000 series per case; over 15
    tau_alpha, 0.95 (0.995). With 1000 series here the binomial standard error is at most
    0.013, so the bounds below sit 4 standard errors under the measured values."""
    rng = np.random.default_rng(7)
    for decays, drift, measured in ((10, 8.0, 0.80), (10, 10.0, 0.94), (15, 8.0, 0.95)):
        n = decays * TAU
        series = _ar1(rng, 1000, n, TAU) + drift * np.linspace(0.0, 1.0, n)
        rate = _drift_failures(series) / 1000
        sd = math.sqrt(measured * (1 - measured) / 1000)
        assert rate >= measured - 4 * sd, (decays, drift, rate)


def test_drift_test_reduces_to_independent_blocks_and_inflates_for_correlation():
    """Without a correlation time the test is the classic one: t_{2b-2} and no inflation.
    With blocks of 0.5 tau (AR(1)), the block means are correlated: their neighbour
    correlation, computed here by brute force from the sample covariance, matches the
    model, and the inflation is > 1."""
    rng = np.random.default_rng(8)
    e = rng.normal(size=400)
    plain = energy_drift_test(e, 10)
    assert plain.inflation == pytest.approx(1.0) and plain.dof == pytest.approx(18.0)
    assert plain.p_value == pytest.approx(2 * stats.t.sf(abs(plain.t), 18))
    assert stats.norm.sf(abs(plain.z)) == pytest.approx(stats.t.sf(abs(plain.t), 18))
    from swapmc.library.certify import block_mean_covariance

    c = block_mean_covariance(4, 10, 20.0)
    k = np.arange(40)
    full = np.exp(-np.abs(k[:, None] - k[None, :]) / 20.0)
    avg = np.kron(np.eye(4), np.ones((1, 10)) / 10)
    np.testing.assert_allclose(c, avg @ full @ avg.T, rtol=1e-12)
    corr = energy_drift_test(e, 10, correlation_time=20.0)
    assert corr.inflation > 2 and 2 < corr.dof < 18
    assert abs(corr.t) == pytest.approx(abs(plain.t) / math.sqrt(corr.inflation))
    # A constant series has no drift; a steep line through tiny noise (t ~ 1e7) still gets
    # a finite normal score, in agreement with the normal quantile of its p value.
    assert energy_drift_test(np.ones(400), 10, 20.0).z == 0.0
    line = energy_drift_test(0.01 * np.arange(400) + 1e-6 * e, 10, 20.0)
    assert 10 < line.z < math.inf
    assert line.z == pytest.approx(stats.norm.isf(line.p_value / 2), rel=1e-6)
    assert math.isnan(energy_drift_test(np.ones(19), 10).z)
