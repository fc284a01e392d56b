"""Tests of the DMS and stress-relaxation fits on synthetic data with known answers.

Uncertainties are checked by *coverage*: over R independent noisy realisations (fixed seeds),
the fraction with |estimate - truth| < k * reported error must match the fraction the error
model predicts, within 3 binomial standard deviations sqrt(p (1 - p) / R). The reported
errors of the DMS fits and of :func:`fit_kww_glasses` are 68.3 % half-widths (Student-t
factor included), so +-1 error must cover 0.683; the least-squares errors of a single
:func:`fit_kww` with white noise are normal standard errors (+-2 sigma: 95.45 %). Errors
30 % too small or too large shift the coverage by ~6-10 points, i.e. 3-5 binomial sigma at
R = 200, so these tests can fail. Point checks use 4-sigma tolerances in the reported errors.
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import gamma

from swapmc.analysis.mechanics import (
    CONF68,
    DMSMean,
    DMSResult,
    KWWResult,
    average_curves,
    combine_dms,
    debye_modulus,
    fit_kww,
    fit_kww_glasses,
    fit_oscillation,
    kww,
    t_factor68,
)

NSIG = 4.0
NORMAL_2SIGMA = 2.0 * stats.norm.cdf(2.0) - 1.0  # 0.9545


def assert_coverage(hits, expected, label, nsd=3.0):
    """Fraction of hits within ``nsd`` binomial standard deviations of the expected
    coverage."""
    hits = np.asarray(hits, dtype=bool)
    frac = hits.mean()
    sd = math.sqrt(expected * (1.0 - expected) / hits.size)
    assert abs(frac - expected) < nsd * sd, (
        f"{label}: coverage {frac:.3f} over {hits.size} realisations, "
        f"expected {expected:.3f} +- {sd:.3f}"
    )


def ar1(rng, n, rho):
    """Unit-variance AR(1) noise with lag-1 correlation rho (correlation time ~1/(1-rho))."""
    w = rng.normal(size=n)
    x = np.empty(n)
    x[0] = w[0]
    c = math.sqrt(1.0 - rho * rho)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + c * w[i]
    return x


# ============================================================================ DMS
EPS_A = 0.01
OMEGA = 2.0 * np.pi / 7.0
M1, M2 = 2.0, 0.7  # storage, loss
DELTA = math.atan2(M2, M1)


def sinusoid(t, noise, rng, offset=0.3, m1=M1, m2=M2, eps=EPS_A, omega=OMEGA):
    return (
        offset
        + eps * (m1 * np.sin(omega * t) + m2 * np.cos(omega * t))
        + noise * eps * (rng.normal(size=t.shape))
    )


def uniform_times(n_cycles, per_cycle, omega=OMEGA):
    period = 2.0 * np.pi / omega
    return np.arange(n_cycles * per_cycle) * (period / per_cycle)


@pytest.mark.parametrize("sampling", ["uniform", "random"])
def test_dms_coverage_white_noise(sampling):
    """M', M'', delta within +-1 reported error (a 68 % half-width) 68.3 % of the time."""
    n_real, n_cyc, per = 200, 10, 40
    expected = CONF68
    period = 2.0 * np.pi / OMEGA
    hits = {"m1": [], "m2": [], "delta": [], "m1_ls": [], "m2_ls": []}
    for seed in range(n_real):
        rng = np.random.default_rng(1000 + seed)
        if sampling == "uniform":
            t = uniform_times(n_cyc + 1, per)
        else:  # non-uniform: random instants, first cycle discarded as usual
            t = np.sort(rng.uniform(0.0, (n_cyc + 1) * period, (n_cyc + 1) * per))
        r = fit_oscillation(t, sinusoid(t, 0.2, rng), EPS_A, OMEGA)
        assert r.n_cycles == n_cyc
        assert r.error_dof == n_cyc - 1
        hits["m1"].append(abs(r.m_storage - M1) < r.m_storage_err)
        hits["m2"].append(abs(r.m_loss - M2) < r.m_loss_err)
        hits["delta"].append(abs(r.delta - DELTA) < r.delta_err)
        hits["m1_ls"].append(abs(r.m_storage - M1) < 2 * r.m_storage_err_ls)
        hits["m2_ls"].append(abs(r.m_loss - M2) < 2 * r.m_loss_err_ls)
    for key in ("m1", "m2", "delta"):
        assert_coverage(hits[key], expected, f"{sampling} {key}")
    # For white noise the least-squares covariance is right too (hundreds of dof: normal).
    for key in ("m1_ls", "m2_ls"):
        assert_coverage(hits[key], NORMAL_2SIGMA, f"{sampling} {key}")


def test_dms_correlated_noise_cycle_errors_honest_ls_errors_optimistic():
    """Time-correlated (AR(1)) noise, correlation time ~ period / 25: the per-cycle error
    keeps its coverage while the least-squares covariance error is far too small -- the
    reason the per-cycle error is the one reported."""
    n_real, n_cyc, per, rho = 200, 10, 100, 0.75  # tau_c = 1/(1 - rho) = 4 samples
    expected = CONF68
    t = uniform_times(n_cyc + 1, per)
    hits, hits_ls, ratio = [], [], []
    for seed in range(n_real):
        rng = np.random.default_rng(5000 + seed)
        y = 0.3 + EPS_A * (M1 * np.sin(OMEGA * t) + M2 * np.cos(OMEGA * t))
        y = y + 0.3 * EPS_A * ar1(rng, t.size, rho)
        r = fit_oscillation(t, y, EPS_A, OMEGA)
        hits.append(abs(r.m_storage - M1) < r.m_storage_err)
        hits.append(abs(r.m_loss - M2) < r.m_loss_err)
        hits_ls.append(abs(r.m_storage - M1) < 2 * r.m_storage_err_ls)
        ratio.append(r.m_storage_err / r.m_storage_err_ls)
    # Both moduli pooled: 400 (pairwise nearly independent) trials.
    assert_coverage(hits, expected, "per-cycle errors, AR(1) noise")
    # AR(1) inflates the variance of a mean by (1 + rho) / (1 - rho) = 7: LS coverage ~ 55 %.
    assert np.mean(hits_ls) < 0.75
    assert np.median(ratio) > 2.0 * t_factor68(n_cyc - 1)


def test_dms_elastic_solid():
    """Purely elastic response: delta -> 0, M' = s_A / eps_A, exact without noise."""
    t = uniform_times(6, 64)
    g = 37.5
    y = -1.2 + g * EPS_A * np.sin(OMEGA * t)
    r = fit_oscillation(t, y, EPS_A, OMEGA, stress_unit="GPa", time_unit="ps")
    assert r.delta == pytest.approx(0.0, abs=1e-12)
    assert r.tan_delta == pytest.approx(0.0, abs=1e-12)
    assert r.m_loss == pytest.approx(0.0, abs=1e-10)
    assert r.m_storage == pytest.approx(g, rel=1e-12)
    assert r.modulus_magnitude == pytest.approx(r.stress_amplitude / EPS_A, rel=1e-12)
    assert r.stress_offset == pytest.approx(-1.2, rel=1e-12)
    assert r.n_cycles == 5 and r.n_points == 5 * 64

    # With noise: delta consistent with 0, M' with g, within the reported errors.
    rng = np.random.default_rng(7)
    y_noisy = y + 0.5 * EPS_A * rng.normal(size=t.size)
    r = fit_oscillation(t, y_noisy, EPS_A, OMEGA)
    assert abs(r.delta) < NSIG * r.delta_err
    assert abs(r.tan_delta) < NSIG * r.tan_delta_err
    assert abs(r.m_storage - g) < NSIG * r.m_storage_err
    assert r.delta_err < 0.01  # the test is sharp: |delta| < 0.04 rad


def test_dms_result_dict_and_units():
    t = uniform_times(4, 32)
    r = fit_oscillation(
        t, sinusoid(t, 0.1, np.random.default_rng(0)), EPS_A, OMEGA, stress_unit="eps/sigma^3"
    )
    d = r.as_dict()
    assert isinstance(r, DMSResult)
    assert d["stress_unit"] == "eps/sigma^3" and d["time_unit"] == ""
    assert d["m_storage"] == r.m_storage and d["n_cycles"] == 3
    assert r.period == pytest.approx(7.0)
    with pytest.raises(AttributeError):
        r.m_storage = 0.0  # frozen


def maxwell_stress(t, g_inf, g_relaxed, tau, eps_a, omega):
    """Stress of a standard linear solid under eps_a sin(omega t) switched on at t = 0,
    by numerical integration of the Maxwell element d s/dt = dG eps' - s / tau (so the
    start-up transient is present and the result is independent of debye_modulus)."""
    dg = g_inf - g_relaxed

    def rhs(time, s):
        return dg * eps_a * omega * np.cos(omega * time) - s / tau

    sol = integrate.solve_ivp(
        rhs, (0.0, t[-1]), [0.0], t_eval=t, method="DOP853", rtol=1e-10, atol=1e-14
    )
    return g_relaxed * eps_a * np.sin(omega * t) + sol.y[0]


@pytest.mark.parametrize("omega_tau", [0.1, 0.5, 1.0, 3.0])
def test_dms_recovers_debye_spectrum(omega_tau):
    """A simulated Maxwell/Debye solid (with its start-up transient) gives the known
    M*(omega) when enough leading cycles are discarded."""
    g_inf, g_r, tau = 10.0, 1.0, 2.0
    omega = omega_tau / tau
    period = 2 * np.pi / omega
    # Transient ~ exp(-t / tau): discard until it is below ~exp(-16).
    n_discard = math.ceil(16.0 * tau / period)
    t = uniform_times(n_discard + 6, 64, omega)
    rng = np.random.default_rng(int(omega_tau * 100))
    y = maxwell_stress(t, g_inf, g_r, tau, EPS_A, omega) + 1e-3 * EPS_A * rng.normal(size=t.size)
    r = fit_oscillation(t, y, EPS_A, omega, discard_cycles=n_discard)
    m1, m2 = debye_modulus(omega, g_inf, tau, g_relaxed=g_r)
    assert abs(r.m_storage - m1) < NSIG * r.m_storage_err + 1e-6 * g_inf
    assert abs(r.m_loss - m2) < NSIG * r.m_loss_err + 1e-6 * g_inf
    assert r.m_storage == pytest.approx(m1, rel=1e-3)
    assert r.m_loss == pytest.approx(m2, rel=1e-3)
    assert r.tan_delta == pytest.approx(m2 / m1, rel=2e-3)


def test_dms_transient_biases_if_not_discarded():
    """Sanity check of the Maxwell simulation: keeping the start-up transient at
    omega tau = 3 biases M' far beyond the noise-limited error; the per-cycle error grows
    too (the cycles disagree), flagging the problem."""
    g_inf, g_r, tau, omega = 10.0, 1.0, 2.0, 1.5
    t = uniform_times(18, 64, omega)
    y = maxwell_stress(t, g_inf, g_r, tau, EPS_A, omega)
    y = y + 1e-3 * EPS_A * np.random.default_rng(3).normal(size=t.size)
    m1, _ = debye_modulus(omega, g_inf, tau, g_relaxed=g_r)
    good = fit_oscillation(t, y, EPS_A, omega, discard_cycles=12)
    bad = fit_oscillation(t[: 6 * 64], y[: 6 * 64], EPS_A, omega, discard_cycles=0)
    assert abs(good.m_storage - m1) < NSIG * good.m_storage_err + 1e-6 * g_inf
    assert abs(bad.m_storage - m1) > 100 * good.m_storage_err
    assert bad.m_storage_err > 10 * good.m_storage_err


def test_dms_detrend_removes_linear_drift():
    """A linear drift of the mean stress leaks into M' by -2 slope / (omega eps_A) over whole
    cycles; detrend=True removes it and reports the slope."""
    t = uniform_times(9, 50)
    rng = np.random.default_rng(11)
    slope = 0.02 * EPS_A * M1 * OMEGA  # bias = -0.04 M1 without detrending
    y = sinusoid(t, 0.05, rng) + slope * t
    plain = fit_oscillation(t, y, EPS_A, OMEGA)
    assert plain.m_storage - M1 == pytest.approx(-2 * slope / (OMEGA * EPS_A), rel=0.1)
    assert abs(plain.m_storage - M1) > 10 * plain.m_storage_err
    r = fit_oscillation(t, y, EPS_A, OMEGA, detrend=True)
    assert abs(r.m_storage - M1) < NSIG * r.m_storage_err
    assert abs(r.m_loss - M2) < NSIG * r.m_loss_err
    assert r.stress_drift == pytest.approx(slope, rel=0.05)
    assert plain.stress_drift is None


def test_dms_incomplete_cycles_are_dropped():
    """Partial cycles at either end are ignored: a record starting mid-cycle and ending
    mid-cycle gives exactly the fit of its whole cycles."""
    per = 40
    t_full = uniform_times(12, per)
    y_full = sinusoid(t_full, 0.3, np.random.default_rng(2))
    ref = fit_oscillation(t_full[per : 11 * per], y_full[per : 11 * per], EPS_A, OMEGA)
    sl = slice(per // 3, 11 * per + per // 2)  # starts inside cycle 0, ends inside cycle 11
    r = fit_oscillation(t_full[sl], y_full[sl], EPS_A, OMEGA, discard_cycles=0)
    assert r.n_cycles == ref.n_cycles == 10
    assert r.m_storage == pytest.approx(ref.m_storage, rel=1e-12)
    assert r.m_loss_err == pytest.approx(ref.m_loss_err, rel=1e-12)


def test_dms_negative_storage_warns():
    t = uniform_times(5, 32)
    y = -sinusoid(t, 0.05, np.random.default_rng(0))  # pressure-tensor sign
    with pytest.warns(RuntimeWarning, match="sign"):
        r = fit_oscillation(t, y, EPS_A, OMEGA)
    assert r.delta == pytest.approx(DELTA - np.pi, abs=0.05)


def test_dms_bad_input():
    t = uniform_times(5, 32)
    y = sinusoid(t, 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2 complete cycles"):
        fit_oscillation(t[: int(2.5 * 32)], y[: int(2.5 * 32)], EPS_A, OMEGA)
    with pytest.raises(ValueError, match="at least 2 complete cycles"):
        fit_oscillation(t, y, EPS_A, OMEGA, discard_cycles=4)
    with pytest.raises(ValueError, match="samples"):  # 3 samples per cycle
        fit_oscillation(uniform_times(6, 3), np.zeros(18), EPS_A, OMEGA)
    with pytest.raises(ValueError, match="equal length"):
        fit_oscillation(t, y[:-1], EPS_A, OMEGA)
    with pytest.raises(ValueError, match="increasing"):
        fit_oscillation(t[::-1], y, EPS_A, OMEGA)
    with pytest.raises(ValueError, match="finite"):
        fit_oscillation(t, np.where(t > 10, np.nan, y), EPS_A, OMEGA)
    with pytest.raises(ValueError, match="strain_amplitude"):
        fit_oscillation(t, y, 0.0, OMEGA)
    with pytest.raises(ValueError, match="omega"):
        fit_oscillation(t, y, EPS_A, -1.0)
    with pytest.raises(ValueError, match="discard_cycles"):
        fit_oscillation(t, y, EPS_A, OMEGA, discard_cycles=-1)


def test_combine_dms():
    rng = np.random.default_rng(4)
    t = uniform_times(6, 40)
    results = [
        fit_oscillation(t, sinusoid(t, 0.2, rng, m1=M1 + 0.1 * rng.normal()), EPS_A, OMEGA)
        for _ in range(6)
    ]
    c = combine_dms(results)
    assert isinstance(c, DMSMean) and c.n_samples == 6 and c.n_glasses == 6
    m1 = np.array([r.m_storage for r in results])
    m2 = np.array([r.m_loss for r in results])
    tf = stats.t.ppf(0.5 + CONF68 / 2, 5)  # 68.3 % Student-t factor, 5 dof: 1.11
    assert t_factor68(5) == pytest.approx(tf, rel=1e-12) and c.error_dof == 5
    assert c.m_storage == pytest.approx(m1.mean(), rel=1e-14)
    assert c.m_storage_err == pytest.approx(tf * m1.std(ddof=1) / math.sqrt(6), rel=1e-12)
    assert c.m_loss_err == pytest.approx(tf * m2.std(ddof=1) / math.sqrt(6), rel=1e-12)
    assert c.tan_delta == pytest.approx(m2.mean() / m1.mean(), rel=1e-14)
    # Delta method for a ratio of means, written out independently.
    cov = np.cov(m1, m2, ddof=1) / 6
    r_ = m2.mean() / m1.mean()
    var = (cov[1, 1] - 2 * r_ * cov[0, 1] + r_**2 * cov[0, 0]) / m1.mean() ** 2
    assert c.tan_delta_err == pytest.approx(tf * math.sqrt(var), rel=1e-10)
    assert c.as_dict()["n_samples"] == 6

    # Repeats of a glass are averaged first: 3 glasses of 2 runs -> 2 dof.
    g = combine_dms(results, groups=[0, 0, 1, 1, 2, 2])
    per_glass = m1.reshape(3, 2).mean(axis=1)
    assert g.n_glasses == 3 and g.n_samples == 6 and g.error_dof == 2
    assert g.m_storage == pytest.approx(per_glass.mean(), rel=1e-14)
    assert g.m_storage_err == pytest.approx(
        t_factor68(2) * per_glass.std(ddof=1) / math.sqrt(3), rel=1e-12)

    with pytest.raises(ValueError, match="at least 2"):
        combine_dms(results[:1])
    with pytest.raises(ValueError, match="at least 2 glasses"):
        combine_dms(results[:2], groups=["a", "a"])
    other = fit_oscillation(t * 2, sinusoid(t, 0.2, rng), EPS_A, OMEGA / 2)
    with pytest.raises(ValueError, match="different frequencies"):
        combine_dms([results[0], other])


def test_debye_modulus_matches_fourier_transform_of_relaxation():
    """M*(omega) = i omega * integral G(t) exp(-i omega t) dt for G(t) = g_r + dG e^{-t/tau}."""
    g_inf, g_r, tau = 5.0, 0.5, 1.7
    for omega in (0.05, 0.4, 1 / tau, 3.0):
        dg = g_inf - g_r
        sin_part = integrate.quad(lambda s: math.exp(-s / tau), 0, np.inf, weight="sin", wvar=omega)
        cos_part = integrate.quad(lambda s: math.exp(-s / tau), 0, np.inf, weight="cos", wvar=omega)
        m1, m2 = debye_modulus(omega, g_inf, tau, g_relaxed=g_r)
        assert m1 == pytest.approx(g_r + dg * omega * sin_part[0], rel=1e-8)
        assert m2 == pytest.approx(dg * omega * cos_part[0], rel=1e-8)
    m1, m2 = debye_modulus(np.array([1 / tau]), g_inf, tau)
    assert m2[0] == pytest.approx(g_inf / 2) and m1[0] == pytest.approx(g_inf / 2)
    with pytest.raises(ValueError, match="tau"):
        debye_modulus(1.0, 1.0, 0.0)


# ============================================================================ KWW
def kww_data(rng, tau, beta, amp=1.0, off=0.2, noise=0.01, n=100, span=(1e-2, 1e2)):
    t = np.geomspace(span[0] * tau, span[1] * tau, n)
    return t, amp * kww(t, tau, beta) + off + noise * rng.normal(size=n)


@pytest.mark.parametrize(("beta", "tau"), [(0.4, 3.0), (1.0, 0.02), (1.5, 250.0)])
def test_kww_coverage(beta, tau):
    """tau, beta, amplitude, plateau and <tau> within +-2 reported sigma ~95.45 % of the
    time (stretched, simple and compressed; tau from 0.02 to 250 time units)."""
    n_real, noise = 200, 0.01
    hits = {k: [] for k in ("tau", "beta", "amp", "off", "tau_mean")}
    tau_mean = tau / beta * gamma(1 / beta)
    for seed in range(n_real):
        t, y = kww_data(np.random.default_rng(20000 + seed), tau, beta, noise=noise)
        r = fit_kww(t, y, sigma=np.full(t.size, noise))
        hits["tau"].append(abs(r.tau - tau) < 2 * r.tau_err)
        hits["beta"].append(abs(r.beta - beta) < 2 * r.beta_err)
        hits["amp"].append(abs(r.delta_modulus - 1.0) < 2 * r.delta_modulus_err)
        hits["off"].append(abs(r.residual_modulus - 0.2) < 2 * r.residual_modulus_err)
        hits["tau_mean"].append(abs(r.tau_mean - tau_mean) < 2 * r.tau_mean_err)
    for key, h in hits.items():
        assert_coverage(h, NORMAL_2SIGMA, f"beta={beta} {key}")


def test_kww_errors_from_residuals_without_sigma():
    """Without sigma the errors come from the residual scatter and match those from the
    true sigma; reduced chi2 ~ 1 with the true sigma."""
    rng = np.random.default_rng(8)
    t, y = kww_data(rng, 5.0, 0.6, noise=0.02, n=200)
    r_abs = fit_kww(t, y, sigma=np.full(t.size, 0.02))
    r_rel = fit_kww(t, y)
    assert r_abs.absolute_sigma and not r_rel.absolute_sigma
    assert r_rel.tau == pytest.approx(r_abs.tau, rel=1e-6)
    # The residual-variance estimate of sigma^2 has relative sd sqrt(2 / dof) = 0.1.
    assert r_rel.tau_err / r_abs.tau_err == pytest.approx(1.0, abs=0.25)
    assert abs(r_abs.reduced_chi2 - 1.0) < NSIG * math.sqrt(2 / r_abs.dof)


def test_kww_from_stress_with_strain():
    """Stress data with step strain eps_0: moduli are the stress parameters over eps_0."""
    rng = np.random.default_rng(9)
    eps0, d_sigma, sigma_r = 0.02, 0.6, 0.15
    t = np.concatenate([[0.0], np.geomspace(0.05, 500.0, 120)])  # includes t = 0
    y = d_sigma * kww(t, 12.0, 0.45) + sigma_r + 2e-3 * rng.normal(size=t.size)
    r = fit_kww(t, y, strain=eps0, sigma=np.full(t.size, 2e-3), stress_unit="GPa")
    assert isinstance(r, KWWResult)
    assert abs(r.delta_sigma - d_sigma) < NSIG * r.delta_sigma_err
    assert abs(r.sigma_r - sigma_r) < NSIG * r.sigma_r_err
    assert r.delta_modulus == pytest.approx(r.delta_sigma / eps0, rel=1e-14)
    assert r.residual_modulus_err == pytest.approx(r.sigma_r_err / eps0, rel=1e-12)
    assert abs(r.tau - 12.0) < NSIG * r.tau_err
    assert abs(r.beta - 0.45) < NSIG * r.beta_err
    np.testing.assert_allclose(
        r.modulus(t), (r.delta_sigma * kww(t, r.tau, r.beta) + r.sigma_r) / eps0
    )
    d = r.as_dict()
    assert d["stress_unit"] == "GPa" and np.shape(d["covariance"]) == (4, 4)
    assert d["reduced_chi2"] == pytest.approx(r.chi2 / r.dof)
    # covariance diagonal agrees with the reported errors
    assert math.sqrt(r.covariance[0, 0]) == pytest.approx(r.tau_err)
    assert math.sqrt(r.covariance[2, 2]) == pytest.approx(r.delta_modulus_err)


def test_kww_on_averaged_samples():
    """Average 16 noisy samples with average_curves, fit with the standard error as sigma."""
    rng = np.random.default_rng(10)
    t = np.linspace(0.0, 60.0, 151)
    curves = [(t, 0.8 * kww(t, 7.0, 1.3) + 0.1 + 0.05 * rng.normal(size=t.size)) for _ in range(16)]
    tg, mean, sem = average_curves(curves)
    np.testing.assert_array_equal(tg, t)
    r = fit_kww(tg, mean, sigma=sem)
    assert abs(r.tau - 7.0) < NSIG * r.tau_err
    assert abs(r.beta - 1.3) < NSIG * r.beta_err
    assert r.beta_err < 0.1


def test_kww_user_start_and_bounds():
    rng = np.random.default_rng(12)
    t, y = kww_data(rng, 4.0, 0.5)
    r = fit_kww(t, y, p0=(1.0, 1.0, 0.5, 0.0), bounds={"beta": (0.1, 1.0)})
    assert abs(r.beta - 0.5) < NSIG * r.beta_err
    # A true beta outside the bounds pins the fit to the bound, with a warning.
    t, y = kww_data(rng, 4.0, 1.8)
    with pytest.warns(RuntimeWarning, match="bound"):
        r = fit_kww(t, y, bounds={"beta": (0.1, 1.0)})
    assert r.beta == pytest.approx(1.0, abs=1e-5)


def test_kww_bad_input():
    t, y = kww_data(np.random.default_rng(0), 1.0, 1.0)
    with pytest.raises(ValueError, match="length >= 5"):
        fit_kww(t[:4], y[:4])
    with pytest.raises(ValueError, match=">= 0"):
        fit_kww(t - 1.0, y)
    with pytest.raises(ValueError, match="increasing"):
        fit_kww(t[::-1], y)
    with pytest.raises(ValueError, match="sigma"):
        fit_kww(t, y, sigma=np.zeros_like(t))
    with pytest.raises(ValueError, match="sigma"):
        fit_kww(t, y, sigma=np.ones(3))
    with pytest.raises(ValueError, match="strain"):
        fit_kww(t, y, strain=0.0)
    with pytest.raises(ValueError, match="unknown bound"):
        fit_kww(t, y, bounds={"gamma": (0, 1)})
    with pytest.raises(ValueError, match="lo < hi"):
        fit_kww(t, y, bounds={"beta": (1.0, 0.5)})
    with pytest.raises(ValueError, match="outside the bounds"):
        fit_kww(t, y, p0=(1.0, 3.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="p0"):
        fit_kww(t, y, p0=(1.0, 1.0))


def test_average_curves():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 10, 21)
    vals = rng.normal(size=(5, t.size))
    tg, mean, sem = average_curves([(t, v) for v in vals])
    np.testing.assert_allclose(mean, vals.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sem, vals.std(axis=0, ddof=1) / math.sqrt(5), rtol=1e-14)

    # Different grids: linear functions are interpolated exactly onto the first grid's overlap.
    t2 = np.linspace(-1, 9.5, 30)
    tg, mean, sem = average_curves([(t, 2 * t + 1), (t2, 2 * t2 + 3)])
    np.testing.assert_array_equal(tg, t[t <= 9.5])
    np.testing.assert_allclose(mean, 2 * tg + 2, rtol=1e-12)
    np.testing.assert_allclose(sem, np.full(tg.size, 1.0), rtol=1e-12)
    tg, mean, _ = average_curves([(t, 2 * t), (t2, 2 * t2)], t_common=[0.25, 3.3])
    np.testing.assert_allclose(mean, [0.5, 6.6], rtol=1e-12)

    with pytest.raises(ValueError, match="at least 2"):
        average_curves([(t, t)])
    with pytest.raises(ValueError, match="overlap"):
        average_curves([(t, t), (t + 100, t)])
    with pytest.raises(ValueError, match="outside"):
        average_curves([(t, t), (t2, t2)], t_common=[0.0, 10.0])
    with pytest.raises(ValueError, match="pair"):
        average_curves([(t, t), t])


# ============================================== coverage with glasses and correlated noise
# Synthetic MD-like data: glasses scatter about a population (the truth), repeats of a glass
# share its structure, and the noise of each run is AR(1), correlated over many samples.
# Reported errors are 68.3 % half-widths, so +-1 error must contain the truth 68.3 % of the
# time; tolerance 3.5 binomial sigma sqrt(0.683 * 0.317 / M) (M trials, fixed seeds).
COV_NSD = 3.5
RELAX_T = np.linspace(0.0, 40.0, 801)  # dt = 0.05
RELAX_TRUE = {"tau": 4.0, "beta": 0.6, "delta_modulus": 1.0, "residual_modulus": 0.5}


def relax_glasses(rng, n_glass, n_rep, glass_sd=0.08, noise=0.08, rho=0.97):
    """Curves (n_glass * n_rep, K) and glass labels. Glass g has amplitude and plateau
    shifted by N(0, glass_sd) and an extra mode b_g exp(-t / 2) with b_g ~ N(0, glass_sd):
    all zero-mean, so the population mean curve is exactly the true KWW. Each run adds AR(1)
    noise (correlation time 1 / (1 - rho) = 33 samples = 1.7 time units)."""
    p = RELAX_TRUE
    curves, groups = [], []
    for g in range(n_glass):
        da, dc, b = glass_sd * rng.normal(size=3)
        base = ((p["delta_modulus"] + da) * kww(RELAX_T, p["tau"], p["beta"])
                + p["residual_modulus"] + dc + b * np.exp(-RELAX_T / 2.0))
        for _ in range(n_rep):
            curves.append(base + noise * ar1(rng, RELAX_T.size, rho))
            groups.append(g)
    return np.array(curves), groups


def _kww_hits(r, hits):
    for k, v in RELAX_TRUE.items():
        hits.setdefault(k, []).append(abs(getattr(r, k) - v) < getattr(r, k + "_err"))


@pytest.mark.physics
def test_kww_glasses_coverage_jackknife():
    """6 glasses x 2 repeats: jackknife over glasses covers the population values 68 % of
    the time for tau, beta, Delta M and M_r. The former estimate (all 12 curves averaged as
    if independent, least-squares errors from their standard error) covers far less."""
    n_trials = 300
    hits, old = {}, {}
    for seed in range(n_trials):
        curves, groups = relax_glasses(np.random.default_rng(40000 + seed), 6, 2)
        r = fit_kww_glasses(RELAX_T, curves, groups, fit_range=(1.0, None))
        assert r.n_glasses == 6 and r.error_dof == 5 and r.fit_range[0] >= 1.0
        _kww_hits(r, hits)
        tg, mean, sem = average_curves([(RELAX_T, c) for c in curves])
        sel = tg >= 1.0
        _kww_hits(fit_kww(tg[sel], mean[sel], sigma=sem[sel]), old)
    for k, h in hits.items():
        assert_coverage(h, CONF68, f"jackknife {k}", COV_NSD)
    for k in ("tau", "residual_modulus"):
        assert np.mean(old[k]) < 0.4, (k, np.mean(old[k]))


@pytest.mark.physics
def test_kww_single_glass_coverage_block_sandwich():
    """One glass, one run, strongly correlated noise: the block-sandwich errors cover that
    glass's values 68 % of the time; the least-squares errors of fit_kww (points treated as
    independent) cover far less. The result says that glass scatter is not included."""
    n_trials = 300
    hits, old = {}, {}
    for seed in range(n_trials):
        # rho = 0.95: 780 points = 40 correlation times; noise for ~10 % on tau.
        curves, _ = relax_glasses(np.random.default_rng(60000 + seed), 1, 1, glass_sd=0.0,
                                  noise=0.01, rho=0.95)
        r = fit_kww_glasses(RELAX_T, curves, fit_range=(1.0, None))
        assert r.n_glasses == 1 and "single glass" in r.error_method
        _kww_hits(r, hits)
        sel = RELAX_T >= 1.0
        _kww_hits(fit_kww(RELAX_T[sel], curves[0][sel]), old)
    for k, h in hits.items():
        assert_coverage(h, CONF68, f"block sandwich {k}", COV_NSD)
    for k in ("tau", "residual_modulus"):
        assert np.mean(old[k]) < 0.4, (k, np.mean(old[k]))


def dms_glass_runs(rng, n_glass, n_rep, n_cyc, glass_sd=0.3, noise=0.5, rho=0.8, per=50):
    """DMS runs: glass g has M' = M1 + N(0, glass_sd), M'' = M2 + N(0, glass_sd / 2);
    every run (n_cyc analysed cycles after one discarded) has AR(1) stress noise with
    correlation time 5 samples = period / 10. Returns ([(result, M', M'')], glass labels)."""
    t = uniform_times(n_cyc + 1, per)
    out, groups = [], []
    for g in range(n_glass):
        m1 = M1 + glass_sd * rng.normal()
        m2 = M2 + 0.5 * glass_sd * rng.normal()
        for _ in range(n_rep):
            y = 0.3 + EPS_A * (m1 * np.sin(OMEGA * t) + m2 * np.cos(OMEGA * t))
            y = y + noise * EPS_A * ar1(rng, t.size, rho)
            out.append((fit_oscillation(t, y, EPS_A, OMEGA), m1, m2))
            groups.append(g)
    return out, groups


def test_dms_single_run_few_cycles_coverage():
    """One run, 3 analysed cycles (2 dof), correlated noise: M' +- err and M'' +- err contain
    that glass's values 68 % of the time thanks to the Student-t factor (1.32); the bare
    standard error over cycles covers only 2 t_2(1) - 1 = 0.58."""
    n_trials, n_cyc = 400, 3
    hits, bare = [], []
    for seed in range(n_trials):
        ((r, m1, m2),), _ = dms_glass_runs(np.random.default_rng(70000 + seed), 1, 1, n_cyc)
        assert r.error_dof == n_cyc - 1
        tf = t_factor68(r.error_dof)
        for val, true, err in ((r.m_storage, m1, r.m_storage_err),
                               (r.m_loss, m2, r.m_loss_err)):
            hits.append(abs(val - true) < err)
            bare.append(abs(val - true) < err / tf)
    # 800 (M', M'') values, nearly independent within a run (orthogonal over whole cycles).
    assert_coverage(hits, CONF68, "single run, t factor", COV_NSD)
    assert np.mean(bare) < CONF68 - 0.06


def test_dms_glasses_with_repeats_coverage():
    """3 glasses x 2 repeats with glass-to-glass scatter: combine_dms with the glass labels
    covers the population M', M'' 68 % of the time. Treating the 6 runs as independent
    samples without a t factor (the former combine_dms) covers far less."""
    n_trials = 400
    hits, old = [], []
    for seed in range(n_trials):
        runs, groups = dms_glass_runs(np.random.default_rng(80000 + seed), 3, 2, 4)
        results = [r for r, _, _ in runs]
        c = combine_dms(results, groups=groups)
        assert c.n_glasses == 3 and c.error_dof == 2
        hits += [abs(c.m_storage - M1) < c.m_storage_err, abs(c.m_loss - M2) < c.m_loss_err]
        m = np.array([[r.m_storage, r.m_loss] for r in results])
        se = m.std(axis=0, ddof=1) / math.sqrt(len(results))
        old += [abs(m[:, 0].mean() - M1) < se[0], abs(m[:, 1].mean() - M2) < se[1]]
    assert_coverage(hits, CONF68, "glasses with repeats", COV_NSD)
    assert np.mean(old) < CONF68 - 0.1


def test_kww_parameter_at_bound_is_unconstrained():
    """beta pinned at an upper bound of 1 by data with beta = 1.8: reported as the bound,
    error NaN (None in the dict), and formatted without an error bar."""
    rng = np.random.default_rng(12)
    t, y = kww_data(rng, 4.0, 1.8, noise=0.005)
    with pytest.warns(RuntimeWarning, match="bound"):
        r = fit_kww(t, y, bounds={"beta": (0.1, 1.0)})
    assert r.at_bound == {"beta": "upper"} and r.beta == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(r.beta_err) and math.isnan(r.tau_mean_err)
    assert not r.constrained("beta") and r.constrained("tau")
    assert "±" not in r.format("beta") and "unconstrained" in r.format("beta")
    assert "upper bound" in r.format("beta") and "±" in r.format("tau")
    d = r.as_dict()
    assert d["beta_err"] is None and d["at_bound"] == {"beta": "upper"}
    assert d["fit_range"] == [t[0], t[-1]]
    # A fit window is applied and stored.
    w = fit_kww(t, y, fit_range=(1.0, None))
    assert w.fit_range[0] >= 1.0 and w.n_points == int(np.sum(t >= 1.0))

    # In fit_kww_glasses too; the other parameters keep finite errors.
    curves = np.array([y + 0.005 * rng.normal(size=t.size) for _ in range(4)])
    with pytest.warns(RuntimeWarning, match="bound"):
        g = fit_kww_glasses(t, curves, bounds={"beta": (0.1, 1.0)})
    assert g.at_bound == {"beta": "upper"} and math.isnan(g.beta_err)
    assert all(math.isfinite(getattr(g, k + "_err"))
               for k in ("tau", "delta_modulus", "residual_modulus"))
    assert "±" in g.format("tau") and "±" not in g.format("beta")


def test_kww_glasses_replicate_at_bound_has_no_error():
    """Two glasses, one relaxing faster than any allowed KWW (beta 1.4 > bound 1.0): the fit
    of their mean is inside the bounds, but the leave-one-out fit of that glass alone is
    pinned at beta = 1, which truncates the jackknife spread. beta is then reported as
    unconstrained (no error) instead of with a spread that only the bound produced."""
    t = RELAX_T
    fast = 2.0 + 6.0 * np.exp(-((t / 5.0) ** 1.4))
    slow = 2.0 + 6.0 * np.exp(-((t / 5.0) ** 0.6))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = fit_kww_glasses(t, [fast, slow], bounds={"beta": (0.1, 1.0)},
                            fit_range=(1.0, None))
    assert r.beta < 0.999
    assert "beta" in r.at_bound and math.isnan(r.beta_err)
    assert "leave-one-out" in r.error_method
