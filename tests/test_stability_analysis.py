"""swapmc.analysis.stability on synthetic data with known parameters."""

import numpy as np
import pytest

from swapmc.analysis import stability

RATES = np.logspace(-6, -2, 5)  # epsilon/k_B per sweep, like the KA2 quenches


def test_log_law_exact_and_inversion():
    e = -7.70 + 0.012 * np.log10(RATES)
    fit = stability.fit_rate_law(RATES, e, np.full(5, 1e-3), model="log")
    assert fit.params["c0"] == pytest.approx(-7.70, abs=1e-10)
    assert fit.params["c1"] == pytest.approx(0.012, abs=1e-10)
    x, err = fit.log10_rate_at(-7.70 + 0.012 * (-9.0))
    assert x == pytest.approx(-9.0, abs=1e-8)
    # Perfect data: the error comes from the weights only and grows with the extrapolation.
    _, err_near = fit.log10_rate_at(-7.70 + 0.012 * (-4.0))
    assert err > err_near > 0


def test_vft_law_exact_recovery_and_unreachable_energy():
    e0, b, l0 = -7.80, 0.25, 1.0
    e = e0 + b / (l0 - np.log10(RATES))
    fit = stability.fit_rate_law(RATES, e, np.full(5, 1e-4), model="vft")
    assert fit.params["E0"] == pytest.approx(e0, abs=1e-4)
    assert fit.params["B"] == pytest.approx(b, rel=1e-3)
    assert fit.params["L0"] == pytest.approx(l0, abs=1e-2)
    target = e0 + b / (l0 + 10.0)  # log10 r = -10
    x, _ = fit.log10_rate_at(target)
    assert x == pytest.approx(-10.0, abs=0.05)
    x, err = fit.log10_rate_at(e0 - 0.01)  # below the floor of the law
    assert x == -np.inf and np.isnan(err)


def test_log_law_interval_coverage():
    """68 % intervals of the inverted rate cover the truth in 68 +- 5 % of 600 synthetic
    experiments (3 quenches per rate, per-quench scatter 0.01; the glass energy measured on
    4 glasses). Binomial s.d. of the coverage over 600 trials is 1.9 %, so the window is
    about 2.6 s.d."""
    rng = np.random.default_rng(3)
    c0, c1, sd = -7.70, 0.012, 0.01
    true_x = -8.0
    target = c0 + c1 * true_x
    hits = 0
    trials = 600
    for _ in range(trials):
        quench = c0 + c1 * np.log10(RATES)[:, None] + sd * rng.standard_normal((5, 3))
        glass = target + sd * rng.standard_normal(4)
        # Known per-quench scatter: errors of the means are sd / sqrt(3) and sd / 2.
        fit = stability.fit_rate_law(RATES, quench.mean(1), np.full(5, sd / np.sqrt(3)))
        x, err = fit.log10_rate_at(glass.mean(), sd / 2)
        hits += abs(x - true_x) < err
    assert 0.63 < hits / trials < 0.73


def test_equilibrium_fit_and_fictive_temperature():
    t = np.array([0.6, 0.5, 0.45, 0.40, 0.36])
    a, b = -7.40, -0.13
    fit = stability.fit_equilibrium_eis(t, a + b / t, np.full(5, 1e-3))
    assert fit.a == pytest.approx(a, abs=1e-10) and fit.b == pytest.approx(b, abs=1e-10)
    tf, err = fit.fictive_temperature(a + b / 0.42, 0.0)
    assert tf == pytest.approx(0.42, rel=1e-10) and err > 0
    _, err_with_e = fit.fictive_temperature(a + b / 0.42, 0.005)
    assert err_with_e > err
    assert np.isnan(fit.fictive_temperature(a + 0.01)[0])  # above the T -> inf limit


def test_fictive_temperature_coverage():
    """The 68 % interval of T_f covers the truth in 68 +- 5 % of 600 trials (binomial s.d.
    1.9 %)."""
    rng = np.random.default_rng(8)
    t = np.array([0.6, 0.5, 0.45, 0.40, 0.36, 0.33])
    a, b, sd = -7.40, -0.13, 0.004
    true_tf = 0.43
    hits = 0
    for _ in range(600):
        e = a + b / t + sd * rng.standard_normal(len(t))
        fit = stability.fit_equilibrium_eis(t, e, np.full(len(t), sd))
        e_glass = a + b / true_tf + sd * rng.standard_normal()
        tf, err = fit.fictive_temperature(e_glass, sd)
        hits += abs(tf - true_tf) < err
    assert 0.63 < hits / 600 < 0.73


def test_group_mean_sem_pools_single_samples():
    keys = [1, 1, 1, 2, 2, 2, 3]
    vals = [0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 10.0]
    out = {k: (n, m, se) for k, n, m, se in stability.group_mean_sem(keys, vals)}
    assert out[1] == (3, 1.0, pytest.approx(1 / np.sqrt(3)))
    assert out[3][0] == 1 and out[3][1] == 10.0
    assert out[3][2] == pytest.approx(1.0)  # pooled s.d. of the others (1.0), n = 1
    assert np.isnan(stability.group_mean_sem(keys, vals, pooled_sd=False)[-1][3])


def test_bad_input_rejected():
    with pytest.raises(ValueError):
        stability.fit_rate_law(RATES, RATES, np.zeros(5))
    with pytest.raises(ValueError):
        stability.fit_rate_law(RATES[:2], RATES[:2], np.ones(2), model="vft")
    with pytest.raises(ValueError):
        stability.fit_rate_law(RATES, RATES, np.ones(5), model="cubic")


def test_unknown_scatter_fits_per_glass():
    """One point per quench, common unknown scatter (ordinary least squares): the slope's 68 %
    interval covers the truth in P(|t_7| < 1) = 0.65 of the cases (9 quenches, 2 parameters);
    over 600 trials (binomial s.d. 1.9 %) the window 0.59-0.71 is 3 s.d. wide each side."""
    rng = np.random.default_rng(5)
    rates = np.repeat(np.logspace(-5, -3, 3), 3)
    c0, c1, sd = -7.60, 0.03, 0.01
    hits = 0
    for _ in range(600):
        e = c0 + c1 * np.log10(rates) + sd * rng.standard_normal(len(rates))
        fit = stability.fit_rate_law(rates, e)
        hits += abs(fit.params["c1"] - c1) < fit.errors["c1"]
    assert 0.59 < hits / 600 < 0.71
    t = np.repeat([0.6, 0.45, 0.40], 2)
    fit = stability.fit_equilibrium_eis(t, -7.40 - 0.13 / t + [1e-3, -1e-3] * 3)
    assert fit.b == pytest.approx(-0.13, abs=0.01) and fit.dof == 4
    with pytest.raises(ValueError):
        stability.fit_equilibrium_eis([0.5, 0.4], [-7.7, -7.75])  # no dof left


def test_compare_groups_against_scipy_and_enumeration():
    """Welch t, dof and p equal scipy's unequal-variance t test; the permutation p equals a
    count over all splits done here by brute force, and is 1/35 for two groups (3, 4) that
    do not overlap at all (only the observed split is as extreme)."""
    from itertools import combinations

    from scipy import stats

    a, b = [1.9, 1.7, 1.85, 1.6], [1.3, 1.45, 1.2, 1.5, 1.35]
    c = stability.compare_groups(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert c["p_welch"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert c["diff"] == pytest.approx(np.mean(a) - np.mean(b), rel=1e-14)
    pooled = np.array(a + b)
    obs = abs(np.mean(a) - np.mean(b))
    count = sum(abs(pooled[list(k)].mean() - np.delete(pooled, list(k)).mean()) >= obs - 1e-12
                for k in combinations(range(9), 4))
    assert c["splits"] == 126 and c["p_permutation"] == pytest.approx(count / 126)
    assert stability.compare_groups([3.0, 3.1, 3.2], [1.0, 1.1, 1.2, 1.3])["p_permutation"] == (
        pytest.approx(1 / 35))
    assert stability.compare_groups([1.0], [2.0, 3.0]) == {}
