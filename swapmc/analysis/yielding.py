"""Yielding of a glass under athermal quasistatic shear (AQS), and its averages over glasses.

Pure functions over a stress-strain curve (strain eps_k, conjugate stress sigma_k, k = 0..K-1,
with eps_0 = 0 the inherent structure and eps increasing) and the stress drops found along it.
Units are those of the input (stress in epsilon_AA/sigma_AA^3 or GPa, energy in epsilon_AA or
eV); strains are dimensionless.

Definitions (:func:`aqs_summary`):

**Yield strain** ``yield_strain``
    The strain of the stress maximum sigma_peak (the first one if several are equal). It is
    the yield point of the stress-strain curve whether the glass fails by one abrupt drop
    (stable glasses) or flows after a smooth maximum (poor ones).
**Steady state** ``steady_stress``
    The mean stress over the last ``steady_window`` of strain (default 0.05, i.e. eps in
    [eps_max - 0.05, eps_max]; for a run to 20 % strain that is 15-20 %), where a glass
    deformed well past yield flows at a constant mean stress. Its error
    ``steady_stress_err`` is the standard error of that mean corrected for the correlation
    of consecutive AQS steps (the stress between two drops rises along one elastic branch):
    s sqrt(2 tau_int / n) with tau_int the integrated autocorrelation time in steps
    (:func:`~swapmc.analysis.mechanics.integrated_autocorrelation_time`).
**Overshoot** ``overshoot``
    sigma_peak / sigma_ss (dimensionless, >= 1 when the peak is not inside the window), with
    the error of the steady state propagated (sigma_peak is one value of one curve, not an
    estimate with an error: its glass-to-glass scatter is what the family averages
    measure); NaN when sigma_ss <= 0 (no flow state reached). ``stress_excess`` =
    sigma_peak - sigma_ss. ``peak_in_window`` flags a curve whose maximum lies in the
    steady-state window (no overshoot resolved: the run was too short or the glass
    hardens).
**Largest drop** ``largest_drop_*``
    The drop with the most negative Delta sigma = sigma_k - sigma_{k-1}: Delta sigma,
    Delta E (total potential energy change of that step, energy units), the strain after
    the drop, the strain before it (``largest_drop_onset``) and the particles involved
    (non-affine displacement across the step above the AQS threshold; see
    :mod:`swapmc.md.shear`). Without a drop list (a plain curve), the largest decrease of
    the curve, with no particle count.
**T = 0 shear modulus** ``modulus``
    The least-squares slope d sigma / d eps (with intercept: the residual stress) of the
    points with eps <= ``modulus_strain`` (default 0.005, 50 AQS steps of 1e-4), with its
    standard error. Plastic events inside that range lower it;
    ``modulus_elastic`` is the mean slope (sigma_k - sigma_{k-1}) / (eps_k - eps_{k-1}) of the
    steps in the same range that are not drops, i.e. of the elastic branches only. For the
    simple shear of :mod:`swapmc.md.shear` this is G; for its pure shear, 2 G.
    ``modulus_hessian`` and ``modulus_born`` are the same slope of the initial inherent
    structure from its Hessian (:mod:`swapmc.md.elasticity`: Born term plus the
    Lemaitre-Maloney non-affine correction, and the Born term alone), passed in by the
    caller; NaN when not given.
**Localisation** ``localization_at_yield``, ``localization_drop``, ``localization_after_yield``
    Localisation indices (:func:`~swapmc.analysis.nonaffine.localization`, 0 for uniform,
    -> 1 for one thin band) of D^2_min accumulated from strain 0 to the yield strain, across
    the largest drop, and from the yield strain to the end of the run, passed in by the
    caller (who holds the configurations); NaN when not given. ``localization_after_yield``
    is also NaN when the stress maximum lies inside the steady-state window
    (``peak_in_window``): the curve then has no post-yield flow to judge, and the index of
    the few steps between that maximum and the end is not comparable with one taken over a
    flow of several percent strain.

:func:`family_summary` averages these over the glasses of a family (e.g. the samples of one
library build at one parent temperature): mean, standard error over glasses and the
half-width of a 68 % Student-t interval (G - 1 degrees of freedom), as
:func:`~swapmc.analysis.mechanics.combine_dms` does for DMS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .mechanics import integrated_autocorrelation_time, t_factor68

#: Strain width of the steady-state window at the end of the curve.
DEFAULT_STEADY_WINDOW = 0.05
#: Largest strain of the small-strain modulus fit.
DEFAULT_MODULUS_STRAIN = 0.005
#: Quantities averaged over the glasses of a family (attributes of :class:`YieldSummary`).
FAMILY_QUANTITIES = ("yield_strain", "peak_stress", "steady_stress", "overshoot",
                     "stress_excess", "largest_drop_stress", "largest_drop_energy",
                     "largest_drop_strain", "largest_drop_particles", "n_drops", "modulus",
                     "modulus_elastic", "modulus_hessian", "modulus_born",
                     "localization_at_yield", "localization_drop", "localization_after_yield")
LOCALIZATION_KEYS = ("at_yield", "drop", "after_yield")


@dataclass
class YieldSummary:
    """Yielding of one AQS curve (definitions in the module docstring).

    Attributes
    ----------
    max_strain : float
        Last strain of the curve.
    peak_stress, yield_strain : float
        sigma_peak (stress unit) and its strain.
    steady_stress, steady_stress_err : float
        Mean stress over the steady-state window and its standard error (stress unit; the
        error is NaN with fewer than 2 points).
    steady_window : tuple of float
        (eps_lo, eps_hi) of that window.
    steady_points : int
    tau_int : float
        Integrated autocorrelation time of the window's stresses (AQS steps).
    overshoot, overshoot_err : float
        sigma_peak / sigma_ss and its error (dimensionless).
    stress_excess : float
        sigma_peak - sigma_ss (stress unit).
    peak_in_window : bool
    n_drops : int
    largest_drop_stress, largest_drop_energy : float
        Delta sigma (< 0, stress unit) and Delta E (energy unit) of the largest drop; NaN
        without one.
    largest_drop_strain, largest_drop_onset : float
        Strain after and before the largest drop.
    largest_drop_particles : float
        Particles involved (NaN when the drops were found on the curve alone).
    modulus, modulus_err : float
        Small-strain least-squares slope and its standard error (stress unit).
    modulus_elastic : float
        Mean slope of the non-drop steps in the same range (stress unit).
    modulus_strain : float
        Upper strain of the fit.
    modulus_points : int
    localization_at_yield, localization_drop, localization_after_yield : float
        Localisation indices (dimensionless, NaN when not given).
    modulus_hessian, modulus_born : float
        Slope of the initial inherent structure from its Hessian (Born + non-affine) and
        its Born (affine) part (stress unit, NaN when not given).
    """

    max_strain: float
    peak_stress: float
    yield_strain: float
    steady_stress: float
    steady_stress_err: float
    steady_window: tuple
    steady_points: int
    tau_int: float
    overshoot: float
    overshoot_err: float
    stress_excess: float
    peak_in_window: bool
    n_drops: int
    largest_drop_stress: float
    largest_drop_energy: float
    largest_drop_strain: float
    largest_drop_onset: float
    largest_drop_particles: float
    modulus: float
    modulus_err: float
    modulus_elastic: float
    modulus_strain: float
    modulus_points: int
    localization_at_yield: float = math.nan
    localization_drop: float = math.nan
    localization_after_yield: float = math.nan
    modulus_hessian: float = math.nan
    modulus_born: float = math.nan

    def as_dict(self) -> dict:
        """Plain values (the window as a list)."""
        d = dict(self.__dict__)
        d["steady_window"] = list(self.steady_window)
        return d


def _get(drop, name):
    """A field of a drop given as an object (StressDrop) or a mapping."""
    return drop[name] if isinstance(drop, Mapping) else getattr(drop, name)


def _curve(strain, stress):
    x = np.asarray(strain, dtype=np.float64)
    y = np.asarray(stress, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"strain and stress must be 1-d of equal length, got shapes "
                         f"{x.shape} and {y.shape}")
    if x.size < 3:
        raise ValueError(f"a stress-strain curve needs at least 3 points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("strain and stress must be finite")
    if np.any(np.diff(x) <= 0):
        raise ValueError("strain must increase along the curve")
    return x, y


def steady_state(strain, stress, window: float = DEFAULT_STEADY_WINDOW):
    """Mean stress over the last ``window`` of strain and its correlated standard error.

    Parameters
    ----------
    strain, stress : array_like, shape (K,)
        Increasing strain (dimensionless) and conjugate stress (stress unit).
    window : float
        Strain width (> 0).

    Returns
    -------
    mean, err : float
        Stress unit; err is NaN with fewer than 2 points in the window.
    bounds : tuple of float
        (eps_lo, eps_hi).
    n : int
        Points in the window.
    tau_int : float
        Integrated autocorrelation time (points).
    """
    x, y = _curve(strain, stress)
    if not (math.isfinite(window) and window > 0):
        raise ValueError(f"steady-state window must be a positive strain, got {window}")
    lo = x[-1] - window
    # A small tolerance keeps the point at exactly eps_max - window inside.
    sel = y[x >= lo - 1e-12 * max(1.0, abs(x[-1]))]
    n = int(sel.size)
    mean = float(sel.mean())
    if n < 2:
        return mean, math.nan, (float(lo), float(x[-1])), n, math.nan
    tau = integrated_autocorrelation_time(sel)
    err = float(sel.std(ddof=1) * math.sqrt(2.0 * tau / n))
    return mean, err, (float(lo), float(x[-1])), n, float(tau)


#: Blocks of the plateau test at most (fewer when the window is short for its correlation
#: time), at least (below: undetermined), and block length in integrated autocorrelation
#: times.
PLATEAU_MAX_BLOCKS = 16
PLATEAU_MIN_BLOCKS = 5
PLATEAU_BLOCK_TAUS = 4.0


@dataclass
class PlateauTest:
    """Is the end of a flow curve a steady state? (:func:`plateau_test`)

    Attributes
    ----------
    steady : bool or None
        True when the slope of the stress over the window is consistent with zero, False
        when it is not (a drift), None when the window is too short to tell.
    mean, err : float
        Mean stress over the window and its blocking error (stress unit).
    slope, slope_err : float
        Least-squares slope d sigma / d eps of the block means and its standard error
        (stress unit per unit strain).
    t : float
        slope / slope_err.
    t_crit : float
        Two-sided Student-t quantile at ``level`` with blocks - 2 degrees of freedom.
    drift, drift_err : float
        slope x window width: the change of stress across the window (stress unit), to
        compare with ``err``.
    blocks : int
        Block means used.
    samples : int
        Points in the window.
    tau_int : float
        Integrated autocorrelation time of the detrended window (points).
    bounds : tuple of float
        Strain range of the window.
    level : float
    reason : str
        Why ``steady`` is None ('' otherwise).
    """

    steady: bool | None
    mean: float
    err: float
    slope: float
    slope_err: float
    t: float
    t_crit: float
    drift: float
    drift_err: float
    blocks: int
    samples: int
    tau_int: float
    bounds: tuple
    level: float = 0.95
    reason: str = ""

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["bounds"] = list(self.bounds)
        return d


def plateau_test(strain, stress, start: float, *, level: float = 0.95,
                 max_blocks: int = PLATEAU_MAX_BLOCKS) -> PlateauTest:
    """Test the stress of strains >= ``start`` for a plateau (a steady state of flow).

    The window is cut into B equal consecutive blocks, each at least
    ``PLATEAU_BLOCK_TAUS`` integrated autocorrelation times of the detrended window long
    (so the block means are nearly independent; B <= ``max_blocks``). The block means
    are fitted by a straight line in strain (ordinary least squares, B - 2 degrees of
    freedom): the curve is steady when |slope| / se(slope) is below the two-sided
    Student-t quantile at ``level`` (95 %: a stationary series fails 5 % of the time), and
    drifting otherwise. With fewer than ``PLATEAU_MIN_BLOCKS`` blocks the answer is None
    (the window is too short for its correlation time). The mean flow stress comes with
    the standard error of the B block means.

    Parameters
    ----------
    strain, stress : array_like, shape (K,)
        Samples in strain order (dimensionless; stress unit).
    start : float
        First strain of the window.
    level : float
        Confidence level of the slope test, in (0, 1).
    max_blocks : int
        Most blocks (>= ``PLATEAU_MIN_BLOCKS``).

    Returns
    -------
    PlateauTest
    """
    from scipy.stats import t as student_t

    x = np.asarray(strain, dtype=np.float64).ravel()
    y = np.asarray(stress, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError("strain and stress must have the same length")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if int(max_blocks) < PLATEAU_MIN_BLOCKS:
        raise ValueError(f"max_blocks must be >= {PLATEAU_MIN_BLOCKS}, got {max_blocks}")
    keep = np.isfinite(x) & np.isfinite(y) & (x >= start)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = math.nan
    bounds = (float(x[0]), float(x[-1])) if n else (float(start), float(start))
    if n < 2 * PLATEAU_MIN_BLOCKS or x[-1] <= x[0]:
        return PlateauTest(None, float(y.mean()) if n else nan, nan, nan, nan, nan, nan, nan,
                           nan, 0, n, nan, bounds, level,
                           f"{n} sample(s) in the window, need {2 * PLATEAU_MIN_BLOCKS}")
    a, b = np.polyfit(x, y, 1)
    tau = float(integrated_autocorrelation_time(y - (a * x + b)))
    length = max(1, math.ceil(PLATEAU_BLOCK_TAUS * tau))
    nb = min(int(max_blocks), n // length)
    if nb < PLATEAU_MIN_BLOCKS:
        return PlateauTest(None, float(y.mean()), nan, nan, nan, nan, nan, nan, nan, nb, n,
                           tau, bounds, level,
                           f"window of {n} samples holds only {nb} blocks of "
                           f"{PLATEAU_BLOCK_TAUS:g} tau_int = {length}; need "
                           f"{PLATEAU_MIN_BLOCKS}: shear further")
    # Equal blocks of the last nb * length samples' worth, spread over the whole window.
    xs, ys = np.array_split(x, nb), np.array_split(y, nb)
    xm = np.array([v.mean() for v in xs])
    ym = np.array([v.mean() for v in ys])
    dx = xm - xm.mean()
    sxx = float((dx * dx).sum())
    slope = float((dx * (ym - ym.mean())).sum() / sxx)
    resid = ym - ym.mean() - slope * dx
    slope_err = float(math.sqrt((resid * resid).sum() / (nb - 2) / sxx))
    tval = slope / slope_err if slope_err > 0 else (0.0 if slope == 0 else math.inf)
    tcrit = float(student_t.ppf(0.5 + level / 2, nb - 2))
    width = float(x[-1] - x[0])
    return PlateauTest(bool(abs(tval) <= tcrit), float(ym.mean()),
                       float(ym.std(ddof=1) / math.sqrt(nb)), slope, slope_err, float(tval),
                       tcrit, slope * width, slope_err * width, nb, n, tau, bounds, level)


def small_strain_modulus(strain, stress, max_strain: float = DEFAULT_MODULUS_STRAIN,
                         drop_steps=()):
    """Slope of the stress-strain curve at small strain.

    Parameters
    ----------
    strain, stress : array_like, shape (K,)
    max_strain : float
        Points with strain <= ``max_strain`` are used (at least 3 needed).
    drop_steps : sequence of int
        Indices k of drop steps (sigma_k < sigma_{k-1} by a rearrangement), excluded from the
        elastic slope; without them, every step whose stress decreases is excluded.

    Returns
    -------
    slope, slope_err : float
        Least-squares slope with intercept and its standard error from the residuals
        (stress unit).
    elastic : float
        Mean step slope over the non-drop steps (stress unit).
    n : int
        Points used.
    """
    x, y = _curve(strain, stress)
    sel = x <= max_strain * (1.0 + 1e-9)
    n = int(sel.sum())
    if n < 3:
        raise ValueError(f"the modulus fit needs at least 3 points with strain <= "
                         f"{max_strain:g}, got {n}: increase the fit range")
    xs, ys = x[sel], y[sel]
    a = np.column_stack([xs, np.ones_like(xs)])
    coef, *_ = np.linalg.lstsq(a, ys, rcond=None)
    resid = ys - a @ coef
    cov = float(resid @ resid) / (n - 2) * np.linalg.inv(a.T @ a)
    err = float(math.sqrt(max(cov[0, 0], 0.0)))
    steps = np.arange(1, n)
    dy = np.diff(ys)
    if drop_steps is None or len(drop_steps) == 0:
        keep = dy >= 0
    else:
        keep = ~np.isin(steps, np.asarray(list(drop_steps), dtype=np.int64))
    slopes = dy[keep] / np.diff(xs)[keep]
    elastic = float(slopes.mean()) if slopes.size else math.nan
    return float(coef[0]), err, elastic, n


def aqs_summary(strain, stress, energy=None, *, drops=None,
                steady_window: float = DEFAULT_STEADY_WINDOW,
                modulus_strain: float = DEFAULT_MODULUS_STRAIN,
                localization: Mapping[str, float] | None = None,
                modulus_hessian: float | None = None,
                modulus_born: float | None = None) -> YieldSummary:
    """Yield strain, overshoot, largest drop, small-strain modulus and localisation of one
    AQS curve (definitions in the module docstring).

    Parameters
    ----------
    strain, stress : array_like, shape (K,)
        Increasing strain (dimensionless; strain[0] is the unstrained state) and conjugate
        stress (stress unit), e.g. ``AQSResult.strain`` and ``AQSResult.stress``.
    energy : array_like, shape (K,), optional
        Total potential energy (energy units); gives Delta E when drops are found on the
        curve.
    drops : sequence, optional
        The run's stress drops, objects or mappings with ``step``, ``strain``,
        ``stress_change``, ``energy_change`` and ``n_particles`` (``AQSResult.drops``). None:
        every decrease of the curve is a drop (no particle counts); an empty sequence: no
        drops.
    steady_window, modulus_strain : float
        See :func:`steady_state` and :func:`small_strain_modulus`.
    localization : mapping, optional
        ``{"at_yield": ..., "drop": ..., "after_yield": ...}`` localisation indices.
    modulus_hessian, modulus_born : float, optional
        Hessian slope of the initial inherent structure and its Born part (stress unit).

    Returns
    -------
    YieldSummary
    """
    x, y = _curve(strain, stress)
    k_peak = int(np.argmax(y))
    peak = float(y[k_peak])
    ss, ss_err, bounds, n_ss, tau = steady_state(x, y, steady_window)
    # A ratio to a flow stress that is not positive (no flow state reached) means nothing.
    over = peak / ss if ss > 0 else math.nan
    over_err = abs(peak / ss**2) * ss_err if ss > 0 else math.nan
    if drops is None:
        dy = np.diff(y)
        steps = np.flatnonzero(dy < 0) + 1
        e = None if energy is None else np.asarray(energy, dtype=np.float64)
        drop_list = [{"step": int(k), "strain": float(x[k]), "stress_change": float(dy[k - 1]),
                      "energy_change": math.nan if e is None else float(e[k] - e[k - 1]),
                      "n_particles": math.nan} for k in steps]
    else:
        drop_list = list(drops)
    if drop_list:
        big = min(drop_list, key=lambda d: _get(d, "stress_change"))
        k_big = int(_get(big, "step"))
        big_vals = (float(_get(big, "stress_change")), float(_get(big, "energy_change")),
                    float(_get(big, "strain")), float(x[k_big - 1]),
                    float(_get(big, "n_particles")))
    else:
        big_vals = (math.nan,) * 5
    slope, slope_err, elastic, n_mod = small_strain_modulus(
        x, y, modulus_strain, [int(_get(d, "step")) for d in drop_list])
    loc = dict(localization or {})
    unknown = sorted(set(loc) - set(LOCALIZATION_KEYS))
    if unknown:
        raise ValueError(f"unknown localisation keys {unknown} (known: "
                         f"{', '.join(LOCALIZATION_KEYS)})")
    peak_in_window = bool(x[k_peak] >= bounds[0] - 1e-12)
    if peak_in_window:
        loc["after_yield"] = math.nan
    return YieldSummary(
        float(x[-1]), peak, float(x[k_peak]), ss, ss_err, bounds, n_ss, tau, over, over_err,
        peak - ss, peak_in_window, len(drop_list), *big_vals, slope,
        slope_err, elastic, float(modulus_strain), n_mod,
        float(loc.get("at_yield", math.nan)), float(loc.get("drop", math.nan)),
        float(loc.get("after_yield", math.nan)),
        math.nan if modulus_hessian is None else float(modulus_hessian),
        math.nan if modulus_born is None else float(modulus_born))


@dataclass
class FamilyStat:
    """Mean of one quantity over the glasses of a family.

    Attributes
    ----------
    mean : float
    sem : float
        Standard error over glasses, s / sqrt(n) (NaN for n < 2).
    half68 : float
        Half-width of the 68 % Student-t interval, t_{0.84, n-1} sem.
    n : int
        Glasses with a finite value.
    std : float
        Glass-to-glass standard deviation (ddof = 1).
    """

    mean: float
    sem: float
    half68: float
    n: int
    std: float = math.nan

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def mean_over_glasses(values) -> FamilyStat:
    """:class:`FamilyStat` of per-glass values (NaN and None skipped)."""
    v = np.array([math.nan if x is None else float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return FamilyStat(math.nan, math.nan, math.nan, 0)
    if n == 1:
        return FamilyStat(float(v[0]), math.nan, math.nan, 1)
    std = float(v.std(ddof=1))
    sem = std / math.sqrt(n)
    return FamilyStat(float(v.mean()), sem, t_factor68(n - 1) * sem, n, std)


@dataclass
class FamilySummary:
    """Yielding of a family of glasses (:func:`family_summary`).

    Attributes
    ----------
    n_glasses : int
    stats : dict of str to FamilyStat
        One entry per quantity of :data:`FAMILY_QUANTITIES`.
    """

    n_glasses: int
    stats: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> FamilyStat:
        return self.stats[name]

    def as_dict(self) -> dict:
        return {"n_glasses": self.n_glasses,
                **{k: v.as_dict() for k, v in self.stats.items()}}


def family_summary(summaries: Sequence, quantities=FAMILY_QUANTITIES) -> FamilySummary:
    """Means over glasses, with standard errors and 68 % intervals, of per-glass summaries.

    Parameters
    ----------
    summaries : sequence of YieldSummary or mapping
        One per glass (``YieldSummary.as_dict()`` output works too).
    quantities : sequence of str
        Which fields to average.

    Returns
    -------
    FamilySummary
    """
    rows = [s.as_dict() if isinstance(s, YieldSummary) else dict(s) for s in summaries]
    if not rows:
        raise ValueError("a family needs at least one glass")
    stats = {}
    for q in quantities:
        if any(q not in r for r in rows):
            raise ValueError(f"unknown quantity {q!r}")
        stats[q] = mean_over_glasses([r[q] for r in rows])
    return FamilySummary(len(rows), stats)
