"""Yielding summaries (swapmc.analysis.yielding) on synthetic stress-strain curves whose
yield strain, overshoot, drops and modulus are known by construction."""

import math

import numpy as np
import pytest

from swapmc.analysis.mechanics import t_factor68
from swapmc.analysis.yielding import (
    aqs_summary,
    family_summary,
    mean_over_glasses,
    small_strain_modulus,
    steady_state,
)

STEP = 1e-4


def brittle_curve(g=20.0, yield_strain=0.08, flow=1.0, tooth=0.1, period=0.01,
                  max_strain=0.2):
    """Elastic line sigma = g eps to ``yield_strain``, one abrupt drop, then a sawtooth of
    elastic branches (slope g) between flow - tooth and flow + tooth: mean ``flow`` over
    whole teeth."""
    x = np.round(np.arange(0, max_strain + STEP / 2, STEP), 12)
    y = g * x
    after = x > yield_strain + 1e-12
    phase = ((x[after] - yield_strain) % period) / period
    y[after] = flow - tooth + 2 * tooth * phase
    return x, y


def test_brittle_curve_summary():
    x, y = brittle_curve()
    e = -1000.0 + 0.5 * 500 * y**2 / 20.0  # any energy: Delta E read from it
    s = aqs_summary(x, y, e)
    assert s.yield_strain == pytest.approx(0.08)
    assert s.peak_stress == pytest.approx(1.6)
    # Window [0.15, 0.2]: 5 whole teeth of mean 1.0 (plus one point at a tooth's start).
    assert s.steady_window == pytest.approx((0.15, 0.2))
    assert s.steady_stress == pytest.approx(1.0, abs=0.01)
    assert s.overshoot == pytest.approx(1.6 / s.steady_stress, rel=1e-12)
    assert s.stress_excess == pytest.approx(1.6 - s.steady_stress)
    assert s.overshoot_err == pytest.approx(1.6 / s.steady_stress**2 * s.steady_stress_err)
    assert not s.peak_in_window
    # The largest drop is the yield drop: 1.6 -> 0.9 + 0.02 (first point of a tooth).
    k = int(np.argmax(y)) + 1
    assert s.largest_drop_stress == pytest.approx(y[k] - y[k - 1])
    assert s.largest_drop_energy == pytest.approx(e[k] - e[k - 1])
    assert s.largest_drop_strain == pytest.approx(x[k])
    assert s.largest_drop_onset == pytest.approx(0.08)
    assert math.isnan(s.largest_drop_particles)
    # Without a drop list every decrease is a drop: the yield drop and one per tooth
    # (11 or 12 in 0.08-0.2, depending on where the last tooth's start rounds).
    assert s.n_drops == int((np.diff(y) < 0).sum()) and s.n_drops in (12, 13)
    assert s.modulus == pytest.approx(20.0, rel=1e-9)
    assert s.modulus_elastic == pytest.approx(20.0, rel=1e-9)
    # The steady-state error is not the naive one: the sawtooth is strongly correlated.
    naive = y[x >= 0.15 - 1e-12].std(ddof=1) / math.sqrt(s.steady_points)
    assert s.tau_int > 5 and s.steady_stress_err > 3 * naive


def test_drop_list_and_localization_are_used():
    x, y = brittle_curve()
    k = int(np.argmax(y)) + 1
    drops = [{"step": k, "strain": x[k], "stress_change": y[k] - y[k - 1],
              "energy_change": -2.5, "n_particles": 87},
             {"step": k + 150, "strain": x[k + 150], "stress_change": -0.05,
              "energy_change": -0.1, "n_particles": 9}]
    s = aqs_summary(x, y, drops=drops, localization={"at_yield": 0.1, "drop": 0.7,
                                                     "after_yield": 0.5})
    assert s.n_drops == 2
    assert (s.largest_drop_energy, s.largest_drop_particles) == (-2.5, 87.0)
    assert (s.localization_at_yield, s.localization_drop, s.localization_after_yield) == (
        0.1, 0.7, 0.5)
    assert aqs_summary(x, y, drops=[]).n_drops == 0
    h = aqs_summary(x, y, modulus_hessian=19.5, modulus_born=31.0)
    assert (h.modulus_hessian, h.modulus_born) == (19.5, 31.0)
    assert math.isnan(s.modulus_hessian)
    # No positive flow stress, no overshoot.
    assert math.isnan(aqs_summary(x, y - 1.5).overshoot)
    with pytest.raises(ValueError, match="localisation keys"):
        aqs_summary(x, y, localization={"band": 1.0})
    # A maximum inside the steady-state window leaves no post-yield flow: that index is NaN
    # (the others are kept).
    rising = aqs_summary(x, x * 10.0, localization={"at_yield": 0.1, "after_yield": 0.5})
    assert rising.peak_in_window and math.isnan(rising.localization_after_yield)
    assert rising.localization_at_yield == 0.1


def test_ductile_curve_has_no_overshoot():
    """A smooth saturating curve sigma = s_inf (1 - exp(-eps / e0)): the maximum is at the
    end, inside the window, and the overshoot is ~1."""
    x = np.arange(0, 0.2 + STEP / 2, STEP)
    y = 1.0 * (1 - np.exp(-x / 0.02))
    s = aqs_summary(x, y)
    assert s.peak_in_window and s.n_drops == 0
    assert s.overshoot == pytest.approx(1.0, abs=0.01)
    # The chord slope over [0, 0.005] of a curve of initial slope 50: below 50, and the
    # least-squares line of those points.
    sel = x <= 0.005 + 1e-12
    assert s.modulus == pytest.approx(np.polyfit(x[sel], y[sel], 1)[0], rel=1e-9)
    assert 40.0 < s.modulus < 50.0


def test_modulus_with_a_plastic_event_in_the_fit_range():
    """A drop inside the fit range lowers the least-squares slope but not the slope of the
    elastic steps."""
    x = np.arange(0, 0.01 + STEP / 2, STEP)
    y = 30.0 * x
    y[x > 0.0025 + 1e-12] -= 0.02
    slope, err, elastic, n = small_strain_modulus(x, y, 0.005)
    assert n == 51
    assert elastic == pytest.approx(30.0, rel=1e-9)
    assert slope < 30.0 - 3 * err
    with pytest.raises(ValueError, match="at least 3 points"):
        small_strain_modulus(x, y, 1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_steady_state_error_white_noise(seed):
    """Independent points: tau_int ~ 1/2 and the error is s / sqrt(n)."""
    rng = np.random.default_rng(seed)
    x = np.arange(2000) * STEP
    y = 1.0 + 0.1 * rng.standard_normal(x.size)
    mean, err, bounds, n, tau = steady_state(x, y, 0.1)
    assert n in (1000, 1001)  # the point at exactly eps_max - window is in
    assert tau == pytest.approx(0.5, abs=0.15)
    assert err == pytest.approx(0.1 / math.sqrt(n), rel=0.3)
    assert abs(mean - 1.0) < 4 * err


def test_bad_curves():
    x = np.arange(10) * 0.01
    with pytest.raises(ValueError, match="increase"):
        aqs_summary(x[::-1], x)
    with pytest.raises(ValueError, match="equal length"):
        aqs_summary(x, x[:-1])
    with pytest.raises(ValueError, match="finite"):
        aqs_summary(x, np.full(10, np.nan))
    with pytest.raises(ValueError, match="window"):
        steady_state(x, x, 0.0)


def test_family_summary():
    """Three glasses of known overshoot: mean, standard error over glasses and the
    Student-t 68 % half-width with 2 degrees of freedom; a glass without drops is left out
    of the drop averages only."""
    curves = [brittle_curve(g=20.0, yield_strain=ys) for ys in (0.06, 0.08, 0.1)]
    glasses = [aqs_summary(x, y) for x, y in curves]
    no_drop = np.arange(0, 0.2 + STEP / 2, STEP)
    glasses.append(aqs_summary(no_drop, 1 - np.exp(-no_drop / 0.02)))
    fam = family_summary(glasses[:3])
    peaks = np.array([1.2, 1.6, 2.0])
    assert fam.n_glasses == 3
    assert fam["peak_stress"].mean == pytest.approx(1.6)
    assert fam["peak_stress"].sem == pytest.approx(peaks.std(ddof=1) / math.sqrt(3))
    assert fam["peak_stress"].half68 == pytest.approx(t_factor68(2) * fam["peak_stress"].sem)
    assert fam["yield_strain"].mean == pytest.approx(0.08)
    assert fam["modulus"].mean == pytest.approx(20.0)
    fam4 = family_summary(glasses)
    assert fam4["largest_drop_stress"].n == 3 and fam4["modulus"].n == 4
    assert fam4.as_dict()["n_glasses"] == 4
    # Plain dicts (as written to JSON) work too.
    assert family_summary([g.as_dict() for g in glasses[:3]])["overshoot"].mean == \
        pytest.approx(fam["overshoot"].mean)
    one = mean_over_glasses([2.0, None, math.nan])
    assert one.n == 1 and one.mean == 2.0 and math.isnan(one.sem)
    with pytest.raises(ValueError, match="at least one glass"):
        family_summary([])
