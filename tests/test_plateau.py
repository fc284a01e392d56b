"""Steady-state check of finite-rate shear: the flow-stress plateau test
(:func:`swapmc.analysis.yielding.plateau_test`) on synthetic series with and without drift,
and on short real runs (a sheared liquid, which flows steadily, and the elastic loading of
a glass, which does not)."""

import math

import numpy as np
import pytest

from swapmc.analysis.yielding import PLATEAU_MIN_BLOCKS, plateau_test
from swapmc.build import composition_counts, random_configuration
from swapmc.md import ForceField, fire
from swapmc.md.engine import NativeEngine
from swapmc.md.shear import RateShear
from swapmc.models import load_preset


def ar1(n, phi, sigma, rng):
    """Stationary AR(1) noise, correlation time ~ (1 + phi) / (1 - phi) / 2 samples."""
    e = rng.normal(0.0, sigma * math.sqrt(1 - phi * phi), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + e[k]
    return x


def test_stationary_correlated_series_pass():
    """Flat stress plus correlated noise (tau_int ~ 10 samples): steady in at least 18 of
    20 independent series (a 95 % test fails ~1 in 20), the mean within 3 errors of the
    true value in all, and the error close to the true standard error of the mean."""
    rng = np.random.default_rng(1)
    strain = np.linspace(0.1, 0.3, 4000)
    verdicts, z, errs = [], [], []
    for _ in range(20):
        y = 0.8 + ar1(strain.size, 0.9, 0.05, rng)
        p = plateau_test(strain, y, 0.1)
        verdicts.append(p.steady)
        z.append((p.mean - 0.8) / p.err)
        errs.append(p.err)
        assert p.blocks >= PLATEAU_MIN_BLOCKS and p.samples == strain.size
        assert 5 < p.tau_int < 20
    assert sum(v is True for v in verdicts) >= 18
    assert np.all(np.abs(z) < 3.5)
    # Standard error of the mean of AR(1): sigma sqrt((1 + phi) / (1 - phi) / n).
    true = 0.05 * math.sqrt(1.9 / 0.1 / strain.size)
    assert np.mean(errs) == pytest.approx(true, rel=0.35)


def test_drifting_series_fail():
    """The same noise on a stress still rising (or relaxing) across the window by 0.08,
    about 25 errors of the mean (the slope is then ~6 of its errors), is flagged as not
    steady in every one of 20 series, with the slope recovered within its error. (A drift
    of ~3 errors of the mean is caught about half the time: the test resolves a slope to
    ~0.4 sigma_noise sqrt(2 tau_int / n) / width.)"""
    rng = np.random.default_rng(2)
    strain = np.linspace(0.1, 0.3, 4000)
    for sign in (1, -1):
        for _ in range(10):
            slope = sign * 0.4  # 0.08 across the window; error of the mean ~0.003
            y = 0.8 + slope * (strain - 0.1) + ar1(strain.size, 0.9, 0.05, rng)
            p = plateau_test(strain, y, 0.1)
            assert p.steady is False
            assert abs(p.slope - slope) < 4 * p.slope_err
            assert p.drift == pytest.approx(p.slope * 0.2, rel=1e-12)
    # Only the window counts: a ramp that ends before it does not matter.
    y = np.where(strain < 0.2, 10 * (strain - 0.2), 0.0) + ar1(strain.size, 0.5, 0.01, rng)
    assert plateau_test(strain, y, 0.2).steady is True
    # Including the ramp: the detrended window is dominated by its curvature, whose
    # "correlation time" leaves too few blocks: not established as steady either.
    assert plateau_test(strain, y, 0.1).steady is not True


def test_too_short_windows_are_undetermined():
    rng = np.random.default_rng(3)
    strain = np.linspace(0, 1, 200)
    # Correlated over ~100 samples: fewer than PLATEAU_MIN_BLOCKS independent blocks.
    y = ar1(strain.size, 0.99, 1.0, rng)
    p = plateau_test(strain, y, 0.0)
    assert p.steady is None and "blocks" in p.reason and math.isnan(p.slope)
    p = plateau_test(strain, y, 0.99)
    assert p.steady is None and "sample" in p.reason
    with pytest.raises(ValueError):
        plateau_test(strain, y[:-1], 0.0)
    with pytest.raises(ValueError):
        plateau_test(strain, y, 0.0, level=1.5)


@pytest.fixture(scope="module")
def ka():
    pre = load_preset("ka")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    ff = ForceField(pre.model)
    return ff, fire(s, ff, fmax=1e-3).system


def test_real_runs_liquid_steady_glass_loading_not(ka):
    """A KA liquid (N = 250, T = 1.5) sheared at 0.05 / tau_LJ flows at a constant mean
    stress from strain ~0.1 on: over [0.15, 0.45] (below 0.5, where the cell would flip)
    at least 3 of 4 independent runs pass (a 95 % test), and the four means agree within
    their errors. The glass at T = 0.05 sheared from strain 0 at 0.02 / tau_LJ is loading
    elastically (sigma ~ G gamma): the window from 0 drifts and fails."""
    ff, s = ka
    runs = [RateShear(NativeEngine(s, ff, seed=seed), rate=0.05, temperature=1.5,
                      max_strain=0.45, block_strain=0.015, sample_every=2,
                      equilibration_steps=2000, steady_from=0.15).run() for seed in range(4)]
    plateaus = [r.plateau for r in runs]
    assert sum(p["steady"] is True for p in plateaus) >= 3, plateaus
    assert all(r.summary()["steady"] is r.plateau["steady"] for r in runs)
    means = np.array([p["mean"] for p in plateaus])
    errs = np.array([p["err"] for p in plateaus])
    pooled = np.average(means, weights=errs ** -2)
    assert np.all(np.abs(means - pooled) < 3.5 * errs)
    for r, p in zip(runs, plateaus):
        assert p["mean"] == pytest.approx(r.steady_stress, abs=2 * p["err"])
    assert pooled > 0.05  # a viscous flow stress, ~eta * rate
    glass = RateShear(NativeEngine(s, ff, seed=5), rate=0.02, temperature=0.05,
                      max_strain=0.08, block_strain=0.008, sample_every=2,
                      equilibration_steps=200, steady_from=0.0).run()
    q = glass.plateau
    assert q["steady"] is False and q["slope"] > 5.0, q
    assert glass.summary()["plateau"]["steady"] is False
