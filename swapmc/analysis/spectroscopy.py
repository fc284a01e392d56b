"""Mechanical spectroscopy as experiments analyse it: loss-peak positions and activation
energies from how the peaks shift.

Pure functions over arrays. The inputs are the spectra swapmc's DMS gives: M', M'' or
tan delta on a grid, with per-point errors over glasses (``*_err`` of
:class:`~swapmc.analysis.DMSMean`: 68 % half-widths, Student-t factor of the glass count
included). Those errors are taken as one-standard-error uncertainties of independent points
(different frequencies and temperatures are measured on the same glasses, so the points are
in fact positively correlated; the peak position, which depends on differences between
neighbouring points, is less affected than the height).

Peaks (:func:`locate_peak`)
---------------------------
A loss peak is located on ``x = ln omega`` at fixed T (isothermal scan) or on ``x = T`` at
fixed omega (isochronal scan) by a weighted least-squares fit of a local peak shape to the
points around the largest one: the contiguous points above ``y_min + level (y_max -
y_min)``, widened to at least ``min_points``. The default shape is the asymmetric
double-exponential (Jonscher-type) peak ::

    y = h (a + b) / (b e^{-a (x - x_p)} + a e^{b (x - x_p)}),

whose maximum is exactly at x_p, with flank rates a and b (M'' ~ omega^a below the peak,
omega^-b above). It is exact for a Debye peak (a = b = 1: h sech(x - x_p)) and follows the
asymmetric peaks of Havriliak-Negami and KWW relaxations closely enough that x_p is
unbiased within its error: on synthetic KWW peaks (beta = 0.3 and 0.5, 3-5 points per
decade, noise 1-7 % of the peak) the 68 % intervals covered the true maximum in 0.63-0.72
of 300 data sets, on Debye peaks in 0.69-0.74. A symmetric Gaussian
(``shape="gaussian"``, three parameters) needs fewer points but is biased towards the broad
side of an asymmetric peak by a fraction of the window (about 0.17 in ln omega for
beta = 0.5). The error of x_p is the least-squares error with the
project's chi^2 rule (:func:`swapmc.analysis._lsq.scaled_covariance`).

No peak is reported (``found=False``, with the reason) when the largest point is at either
end of the grid, the fitted maximum or its 68 % interval leaves the fitted window, a flank
of the asymmetric shape falls by e over less than a quarter of the grid spacing (a peak
sharper than the grid, whose position is pinned against one point with a meaningless
error), or the curvature at the top is not significant (``curvature_z <
min_significance``): a monotonic rise, e.g. tan delta towards T_g, never yields a fake
peak. Only a single peak is located:
a beta shoulder or excess wing on the flank of the alpha peak is not separated here (fit
:func:`~swapmc.analysis.fit_havriliak_negami` to the flank, or locate the beta peak with a
``window`` in which it is a maximum).

Activation energies (:func:`fit_arrhenius`, :func:`fit_peak_arrhenius`)
----------------------------------------------------------------------
``ln omega_p = ln omega_0 - E / (k_B T_p)`` is a straight line in ``u = 1/T``. Isochronal
peaks have their error in T_p (``sigma_u = sigma_T / T^2``), isothermal ones in
ln omega_p. Both are handled by *effective-variance* weighting, the exact maximum
likelihood for a straight line with independent normal errors in both coordinates
(Williamson-York): the slope minimises ``sum (y - a - s u)^2 / (sigma_y^2 + s^2 sigma_u^2)``
with the intercept profiled out; the covariance is that of the weighted fit at the optimum
with the chi^2 rule. E is returned as E/k_B (temperature unit) and in the energy unit of
the unit system (:mod:`swapmc.units`: epsilon for LJ, eV or kJ/mol for metal units), and
``E / (R T_g)`` (= E / (k_B T_g); the empirical rule for the beta relaxation of metallic
glasses is E_beta ~ 26 R T_g) with the T_g error added in quadrature when a T_g is given.
On 200 synthetic sets of 6 isochronal peaks the 68 % intervals of E, ln omega_0 and
E / (R T_g) covered the truth in 0.645-0.72 of them (errors in T_p only, or in both).

Time-temperature superposition of such spectra is in :mod:`swapmc.analysis.master_curve`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from .. import units as _units
from ._lsq import scaled_covariance

__all__ = [
    "LossPeak",
    "PEAK_SHAPES",
    "locate_peak",
    "spectrum_peak",
    "ActivationFit",
    "fit_arrhenius",
    "fit_peak_arrhenius",
]

#: kJ/mol per (E/k_B in kelvin): the molar gas constant R in kJ mol^-1 K^-1 (CODATA 2018).
R_KJ_PER_MOL_K = 8.314462618e-3


def _nan_to_none(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _as_dict(obj) -> dict:
    out = {}
    for name in obj.__dataclass_fields__:
        v = getattr(obj, name)
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[name] = _nan_to_none(v)
    return out


# ================================================================================ peaks
@dataclass(frozen=True)
class LossPeak:
    """A located loss peak (:func:`locate_peak`).

    ``position`` is the peak's x: ln omega_p (omega in rad per time unit) when ``variable``
    is ``"ln_omega"``, T_p when ``"temperature"``; ``fixed`` is the scan's fixed T or omega
    (NaN when not given). ``*_err`` are 68 % errors. When ``found`` is False, ``reason``
    says why, ``position`` and its error are NaN, and ``edge`` is ``"lower"`` / ``"upper"``
    when the largest point is at that end of the grid (the peak, if any, lies beyond it).
    ``width`` is the curvature width ``sqrt(height / |y''|)`` at the top (the standard
    deviation for ``shape="gaussian"``), in x units; ``curvature_z`` is the top curvature
    over its error. ``flank_rates`` are the rates (a, b) of the asymmetric shape's
    low-x and high-x flanks, ``y ~ e^{a x}`` and ``e^{-b x}`` (log-log slopes of M''(omega);
    1 and 1 for a Debye peak), NaN for the Gaussian.
    """

    found: bool
    reason: str
    variable: str
    fixed: float
    position: float
    position_err: float
    height: float
    height_err: float
    width: float
    width_err: float
    flank_rates: tuple
    curvature_z: float
    edge: str | None
    x_max: float  # grid x of the largest point
    window: tuple  # (lo, hi) x of the fitted points
    n_points: int
    chi2: float
    dof: int
    shape: str
    weighted: bool

    @property
    def omega(self) -> float:
        """omega_p of an isothermal peak (NaN otherwise)."""
        return math.exp(self.position) if self.variable == "ln_omega" else math.nan

    def as_dict(self) -> dict:
        """JSON-ready fields (NaN as None)."""
        d = _as_dict(self)
        d["window"] = list(self.window)
        d["flank_rates"] = [_nan_to_none(v) for v in self.flank_rates]
        return d


#: Local peak shapes: name -> number of parameters.
PEAK_SHAPES = {"asymmetric": 4, "gaussian": 3}


def _peak_model(shape, x, p):
    """Peak values and Jacobian in (x_p, h, ln a, ln b) or (x_p, h, ln w)."""
    x0, h = p[0], p[1]
    u = x - x0
    if shape == "asymmetric":
        # y = h (a + b) / (b e^{-a u} + a e^{b u}): maximum h at u = 0, rates a and b on
        # the flanks; a = b = 1 is a Debye peak, h sech(u). Scaled by e^{-m} against
        # overflow.
        a, b = math.exp(p[2]), math.exp(p[3])
        m = np.maximum(-a * u, b * u)
        ea, eb = np.exp(-a * u - m), np.exp(b * u - m)
        d = b * ea + a * eb
        g = (a + b) * np.exp(-m) / d
        y = h * g
        jac = np.stack([y * a * b * (eb - ea) / d, g,
                        a * y * (1.0 / (a + b) - (eb - b * u * ea) / d),
                        b * y * (1.0 / (a + b) - (ea + a * u * eb) / d)], axis=1)
        return y, jac
    w2 = math.exp(2.0 * p[2])
    d2 = u * u / w2
    g = np.exp(-0.5 * d2)
    y = h * g
    return y, np.stack([y * u / w2, g, y * d2], axis=1)


def _not_found(reason, variable, fixed, edge, x_max, shape, weighted, window=(math.nan,) * 2,
               n=0, chi2=math.nan, dof=0, z=math.nan):
    nan = math.nan
    return LossPeak(found=False, reason=reason, variable=variable, fixed=fixed, position=nan,
                    position_err=nan, height=nan, height_err=nan, width=nan, width_err=nan,
                    flank_rates=(nan, nan), curvature_z=z, edge=edge, x_max=x_max,
                    window=tuple(window), n_points=n, chi2=chi2, dof=dof, shape=shape,
                    weighted=weighted)


def locate_peak(x, y, y_err=None, *, variable="ln_omega", fixed=math.nan, level=0.3,
                window=None, shape="asymmetric", min_points=None,
                min_significance=2.0) -> LossPeak:
    """Locate a single loss peak on a grid, with its error, or report that there is none.

    Parameters
    ----------
    x : array_like, shape (K,)
        Strictly increasing grid: ln omega (isothermal scan; omega in rad per time unit) or
        T (isochronal scan).
    y : array_like, shape (K,)
        M'', tan delta or another loss quantity.
    y_err : array_like, shape (K,), optional
        68 % errors of y (e.g. ``DMSMean.m_loss_err``). Without them the fit is unweighted
        and its covariance scaled by chi^2/dof.
    variable : {"ln_omega", "temperature"}
        What x is (stored in the result).
    fixed : float
        The scan's fixed temperature (isothermal) or angular frequency (isochronal), stored
        for :func:`fit_peak_arrhenius`.
    level : float
        The fitted window is the contiguous run of points around the largest with
        ``y >= y_min + level (y_max - y_min)``, 0 < level < 1.
    window : (float, float), optional
        Explicit x range to fit instead.
    shape : {"asymmetric", "gaussian"}
        Local peak shape (module docstring). The Gaussian needs fewer points but is biased
        on asymmetric peaks.
    min_points : int, optional
        Least number of fitted points (default: parameters + 2, i.e. 6 or 5); the window is
        widened towards the larger neighbour until it has them.
    min_significance : float
        Least ``curvature_z`` for a peak to count as found.

    Returns
    -------
    LossPeak
        ``found=False`` with a ``reason`` when there is no resolved maximum in range.

    Raises
    ------
    ValueError
        Bad shapes, non-increasing x, non-positive errors, fewer than ``min_points`` points.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if variable not in ("ln_omega", "temperature"):
        raise ValueError(f"variable must be 'ln_omega' or 'temperature', got {variable!r}")
    if shape not in PEAK_SHAPES:
        raise ValueError(f"shape must be one of {sorted(PEAK_SHAPES)}, got {shape!r}")
    n_par = PEAK_SHAPES[shape]
    min_points = n_par + 2 if min_points is None else int(min_points)
    if min_points < n_par + 1:
        raise ValueError(f"min_points must be >= {n_par + 1} for the {shape} shape")
    if x.ndim != 1 or y.shape != x.shape or x.size < min_points:
        raise ValueError(f"x and y must be 1-D of equal length >= {min_points}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.diff(x) <= 0):
        raise ValueError("x and y must be finite and x strictly increasing")
    weighted = y_err is not None
    if weighted:
        sig = np.asarray(y_err, dtype=np.float64)
        if sig.shape != x.shape or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            raise ValueError("y_err must be finite, positive, of the shape of y")
    else:
        sig = np.ones_like(y)
    if not 0.0 < level < 1.0:
        raise ValueError("level must lie in (0, 1)")
    fixed = float(fixed)
    if window is not None:
        w_lo, w_hi = (float(v) for v in window)
        keep = (x >= w_lo) & (x <= w_hi)
        if keep.sum() < min_points:
            raise ValueError(f"only {int(keep.sum())} points in the window {tuple(window)}")
        x, y, sig = x[keep], y[keep], sig[keep]
    k = x.size
    i_max = int(np.argmax(y))
    if i_max in (0, k - 1):
        edge = "lower" if i_max == 0 else "upper"
        where = "range" if window is None else "window"
        return _not_found(f"largest value at the {edge} end of the {where} (x = "
                          f"{x[i_max]:.6g}): no maximum inside it", variable, fixed, edge,
                          float(x[i_max]), shape, weighted)
    if window is None:
        thr = y.min() + level * (y[i_max] - y.min())
        lo = hi = i_max
        while lo > 0 and y[lo - 1] >= thr:
            lo -= 1
        while hi < k - 1 and y[hi + 1] >= thr:
            hi += 1
        lo, hi = min(lo, i_max - 1), max(hi, i_max + 1)
        while hi - lo + 1 < min_points:
            left = y[lo - 1] if lo > 0 else -np.inf
            right = y[hi + 1] if hi < k - 1 else -np.inf
            if left >= right:
                lo -= 1
            else:
                hi += 1
    else:
        lo, hi = 0, k - 1
    xs, ys, ss = x[lo:hi + 1], y[lo:hi + 1], sig[lo:hi + 1]
    win = (float(xs[0]), float(xs[-1]))
    if y[i_max] <= 0:
        return _not_found("largest value is not positive", variable, fixed, None,
                          float(x[i_max]), shape, weighted, win, xs.size)

    def resid(p):
        return (_peak_model(shape, xs, p)[0] - ys) / ss

    def jac(p):
        return _peak_model(shape, xs, p)[1] / ss[:, None]

    # Start: the largest point and its height; widths from the window.
    w0 = 0.5 * (win[1] - win[0])
    lnw = [-math.log(w0)] * 2 if shape == "asymmetric" else [math.log(w0)]
    p0 = np.array([x[i_max], y[i_max], *lnw])
    with np.errstate(over="ignore", invalid="ignore"):
        sol = optimize.least_squares(resid, p0, jac=jac, method="lm", xtol=1e-12,
                                     ftol=1e-12, max_nfev=4000)
    p = sol.x
    r = resid(p)
    cov, chi2, dof = scaled_covariance(jac(p), np.ones_like(r), r, known=weighted)
    x0, h = float(p[0]), float(p[1])
    x0_err = math.sqrt(max(cov[0, 0], 0.0))
    # ln(curvature) = ln h + ln a + ln b (asymmetric) or ln h - 2 ln w (Gaussian);
    # ln(width) = -ln(curvature / h) / 2.
    g_w = np.array([0.0, 0.0, -0.5, -0.5]) if shape == "asymmetric" else np.array(
        [0.0, 0.0, 1.0])
    ln_width = float(g_w @ p)
    g_k = -2.0 * g_w
    g_k[1] = 1.0 / h if h > 0 else 0.0
    var_lnk = float(g_k @ cov @ g_k) if h > 0 else math.inf
    z = 1.0 / math.sqrt(var_lnk) if var_lnk > 0 and math.isfinite(var_lnk) else 0.0
    args = (variable, fixed, None, float(x[i_max]), shape, weighted, win, xs.size, chi2, dof, z)
    if not (sol.success and h > 0 and math.isfinite(x0_err) and np.all(np.isfinite(p))):
        return _not_found("the local fit failed", *args)
    if z < min_significance:
        return _not_found(f"curvature at the top not significant (z = {z:.2g} < "
                          f"{min_significance})", *args)
    if not (win[0] <= x0 - x0_err and x0 + x0_err <= win[1]):
        return _not_found(f"fitted maximum {x0:.6g} ± {x0_err:.2g} not inside the fitted "
                          f"window [{win[0]:.6g}, {win[1]:.6g}]", *args)
    rates = ((math.exp(p[2]), math.exp(p[3])) if shape == "asymmetric"
             else (math.nan, math.nan))
    if shape == "asymmetric":
        # A flank that falls by e over less than a quarter of the grid spacing is sharper
        # than the grid can show: the fit then pins the maximum against the point on that
        # flank, with a position error that means nothing.
        spacing = float(np.median(np.diff(xs)))
        for rate, side in zip(rates, ("low", "high")):
            if 1.0 / rate < 0.25 * spacing:
                return _not_found(f"the fitted {side} flank falls by e over {1.0 / rate:.2g}, "
                                  f"less than a quarter of the grid spacing {spacing:.2g}: "
                                  "the peak is not resolved by the grid", *args)
    width = math.exp(ln_width)
    return LossPeak(found=True, reason="", variable=variable, fixed=fixed, position=x0,
                    position_err=x0_err, height=h, height_err=math.sqrt(max(cov[1, 1], 0)),
                    width=width,
                    width_err=width * math.sqrt(max(float(g_w @ cov @ g_w), 0.0)),
                    flank_rates=rates, curvature_z=z, edge=None, x_max=float(x[i_max]),
                    window=win, n_points=int(xs.size), chi2=float(chi2), dof=int(dof),
                    shape=shape, weighted=weighted)


def spectrum_peak(results: Sequence, quantity="m_loss", *, temperature=math.nan,
                  **kwargs) -> LossPeak:
    """:func:`locate_peak` on an isothermal spectrum given as DMS results.

    Parameters
    ----------
    results : sequence of DMSMean or DMSResult
        One temperature, several frequencies (any order).
    quantity : {"m_loss", "tan_delta", "m_storage"}
        The quantity whose maximum in ln omega is located (its ``*_err`` are the errors).
    temperature : float
        The scan's temperature, stored as ``fixed``.
    **kwargs
        Passed to :func:`locate_peak`.

    Returns
    -------
    LossPeak
    """
    results = sorted(results, key=lambda r: r.omega)
    x = np.log([r.omega for r in results])
    y = [getattr(r, quantity) for r in results]
    e = [getattr(r, quantity + "_err") for r in results]
    return locate_peak(x, y, e, variable="ln_omega", fixed=temperature, **kwargs)


# ================================================================================ Arrhenius
@dataclass(frozen=True)
class ActivationFit:
    """Arrhenius law of peak positions, ``ln omega_p = ln_omega0 - e_over_k / T_p``.

    ``e_over_k`` is E/k_B in the temperature unit (K, or epsilon/k_B for LJ);
    :attr:`energy` is E in the unit system's energy unit (``energy_unit``). Errors are 68 %
    (one standard error); ``covariance`` is that of (ln_omega0, e_over_k). ``ratio`` is
    ``E / (R T_g) = e_over_k / tg`` when a T_g was given (NaN otherwise), its error
    including ``tg_err`` in quadrature.
    """

    ln_omega0: float
    ln_omega0_err: float
    e_over_k: float
    e_over_k_err: float
    covariance: np.ndarray = field(repr=False)
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    t_range: tuple = (math.nan, math.nan)
    weighted: bool = True
    units: str = "lj"
    tg: float = math.nan
    tg_err: float = math.nan
    ratio: float = math.nan
    ratio_err: float = math.nan
    method: str = ""

    @property
    def energy_unit(self) -> str:
        return _units.LABELS[self.units]["energy"]

    @property
    def energy(self) -> float:
        """E in ``energy_unit``."""
        return self.e_over_k * _units.BOLTZMANN[self.units]

    @property
    def energy_err(self) -> float:
        return self.e_over_k_err * _units.BOLTZMANN[self.units]

    def energy_in(self, unit: str) -> tuple[float, float]:
        """E and its error in ``unit``: ``"k"`` (E/k_B, temperature unit), the system's
        energy unit (``"epsilon"`` for LJ, ``"eV"`` for metal), or ``"kJ/mol"`` (metal)."""
        u = unit.lower()
        if u in ("k", "kelvin", "temperature"):
            return self.e_over_k, self.e_over_k_err
        if (self.units == "lj" and u in ("epsilon", "eps", "epsilon_aa")) or (
                self.units == "metal" and u == "ev"):
            return self.energy, self.energy_err
        if self.units == "metal" and u == "kj/mol":
            return self.e_over_k * R_KJ_PER_MOL_K, self.e_over_k_err * R_KJ_PER_MOL_K
        raise ValueError(f"unit {unit!r} not available for {self.units!r} units")

    def ln_omega(self, temperature):
        """``(ln omega_p, 68 % error)`` of the law at temperatures (delta method)."""
        u = 1.0 / np.asarray(temperature, dtype=np.float64)
        val = self.ln_omega0 - self.e_over_k * u
        c = self.covariance
        var = c[0, 0] + u * u * c[1, 1] - 2.0 * u * c[0, 1]
        return val, np.sqrt(np.maximum(var, 0.0))

    def peak_temperature(self, omega) -> tuple[float, float]:
        """T_p at which the law puts the peak for angular frequency ``omega`` and its error."""
        dy = self.ln_omega0 - math.log(float(omega))
        t = self.e_over_k / dy
        g = np.array([-self.e_over_k / dy**2, 1.0 / dy])  # d T / d (ln_omega0, e_over_k)
        return t, math.sqrt(max(float(g @ self.covariance @ g), 0.0))

    def as_dict(self) -> dict:
        d = _as_dict(self)
        d["t_range"] = list(self.t_range)
        d["energy"], d["energy_err"], d["energy_unit"] = (self.energy, self.energy_err,
                                                          self.energy_unit)
        return d


def fit_arrhenius(temperature, ln_omega, temperature_err=None, ln_omega_err=None, *,
                  units="lj", tg=None, tg_err=0.0) -> ActivationFit:
    """Arrhenius fit of peak positions with errors in T_p and/or ln omega_p.

    Parameters
    ----------
    temperature : array_like, shape (K,)
        Peak temperatures T_p (isochronal) or scan temperatures (isothermal), > 0, in the
        unit system's temperature unit (K for metal units).
    ln_omega : array_like, shape (K,)
        ln of the angular frequency (rad per time unit) of each peak.
    temperature_err, ln_omega_err : array_like, shape (K,), optional
        68 % errors (zeros allowed for an exact coordinate; each point needs a non-zero
        error in at least one). Without both the fit is unweighted (errors from the
        scatter, needing K >= 3).
    units : {"lj", "metal"}
        Unit system of :mod:`swapmc.units` (energy unit and k_B).
    tg : float, optional
        Glass-transition temperature for ``ratio = E / (R T_g)``.
    tg_err : float
        Its 68 % error.

    Returns
    -------
    ActivationFit

    Raises
    ------
    ValueError
        Fewer than 2 points (3 unweighted), bad values, unknown units.
    """
    if units not in _units.BOLTZMANN:
        raise ValueError(f"units must be one of {sorted(_units.BOLTZMANN)}, got {units!r}")
    t = np.asarray(temperature, dtype=np.float64)
    y = np.asarray(ln_omega, dtype=np.float64)
    if t.ndim != 1 or y.shape != t.shape or not (np.all(np.isfinite(t)) and np.all(t > 0)
                                                   and np.all(np.isfinite(y))):
        raise ValueError("temperature (> 0) and ln_omega must be finite 1-D of equal length")
    weighted = temperature_err is not None or ln_omega_err is not None

    def err(v, name):
        if v is None:
            return np.zeros_like(t)
        v = np.asarray(v, dtype=np.float64)
        if v.shape != t.shape or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"{name} must be finite, >= 0, of the shape of temperature")
        return v

    st, sy = err(temperature_err, "temperature_err"), err(ln_omega_err, "ln_omega_err")
    if weighted and np.any((st == 0) & (sy == 0)):
        raise ValueError("every point needs a non-zero error in T or in ln omega")
    if t.size < (2 if weighted else 3):
        raise ValueError(f"need at least {2 if weighted else 3} peaks, got {t.size}")
    u = 1.0 / t
    su = st / t**2
    if not weighted:
        sy = np.ones_like(t)

    def line(s):
        """Profiled intercept and effective sigma for slope s."""
        se = np.sqrt(sy**2 + (s * su) ** 2)
        w = 1.0 / se**2
        a = float(np.sum(w * (y - s * u)) / np.sum(w))
        return a, se

    def cost(s):
        a, se = line(s)
        return float(np.sum(((y - a - s * u) / se) ** 2))

    # Start: effective variances at the unweighted slope, then the exact minimum of the
    # profile.
    s0 = float(np.polyfit(u, y, 1)[0])
    s0 = float(np.polyfit(u, y, 1, w=1.0 / line(s0)[1])[0])
    if np.any(su > 0):
        span = 10.0 * abs(s0) + 1e-12
        res = optimize.minimize_scalar(cost, bracket=(s0 - 0.05 * span, s0 + 0.05 * span),
                                       tol=1e-12)
        s = float(res.x)
        if not np.isfinite(s) or cost(s) > cost(s0):
            s = float(s0)
    else:
        s = float(s0)
    a, se = line(s)
    jac = np.stack([np.ones_like(u), u], axis=1)
    r = a + s * u - y
    cov, chi2, dof = scaled_covariance(jac, se, r, known=weighted)
    # (a, s) -> (ln_omega0, E/k = -s)
    cov = cov * np.array([[1.0, -1.0], [-1.0, 1.0]])
    e = -s
    e_err = math.sqrt(max(cov[1, 1], 0.0))
    ratio = ratio_err = tg_val = tg_e = math.nan
    if tg is not None:
        tg_val, tg_e = float(tg), float(tg_err)
        if not (tg_val > 0 and math.isfinite(tg_val) and tg_e >= 0):
            raise ValueError("tg must be > 0 and tg_err >= 0")
        ratio = e / tg_val
        ratio_err = math.hypot(e_err / tg_val, e * tg_e / tg_val**2)
    method = ("effective-variance least squares (errors in 1/T and ln omega), covariance "
              "scaled by chi2/dof when chi2 exceeds its 95 % quantile" if weighted else
              "unweighted least squares, covariance from the scatter")
    return ActivationFit(ln_omega0=a, ln_omega0_err=math.sqrt(max(cov[0, 0], 0.0)),
                         e_over_k=e, e_over_k_err=e_err, covariance=cov, chi2=float(chi2),
                         dof=int(dof), n_points=int(t.size),
                         t_range=(float(t.min()), float(t.max())), weighted=weighted,
                         units=units, tg=tg_val, tg_err=tg_e, ratio=ratio,
                         ratio_err=ratio_err, method=method)


def fit_peak_arrhenius(peaks: Sequence[LossPeak], *, units="lj", tg=None,
                       tg_err=0.0) -> ActivationFit:
    """:func:`fit_arrhenius` of located peaks: isochronal peaks (T_p with its error at the
    exact ``fixed`` omega) and isothermal ones (ln omega_p with its error at the exact
    ``fixed`` T) may be mixed. Peaks not found are skipped (with a warning).

    Parameters
    ----------
    peaks : sequence of LossPeak
        Each with ``fixed`` set (the scan's omega or T).
    units, tg, tg_err
        As for :func:`fit_arrhenius`.

    Returns
    -------
    ActivationFit
    """
    t, y, st, sy, skipped = [], [], [], [], 0
    for p in peaks:
        if not p.found:
            skipped += 1
            continue
        if not (math.isfinite(p.fixed) and p.fixed > 0):
            raise ValueError("every peak needs its scan's fixed omega or T (LossPeak.fixed)")
        if p.variable == "temperature":
            t.append(p.position)
            st.append(p.position_err)
            y.append(math.log(p.fixed))
            sy.append(0.0)
        else:
            t.append(p.fixed)
            st.append(0.0)
            y.append(p.position)
            sy.append(p.position_err)
    if skipped:
        warnings.warn(f"{skipped} scan(s) without a located peak left out of the Arrhenius "
                      "fit", RuntimeWarning, stacklevel=2)
    return fit_arrhenius(t, y, st, sy, units=units, tg=tg, tg_err=tg_err)
