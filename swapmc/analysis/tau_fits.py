"""Fits of tau_alpha(T): Arrhenius, Vogel-Fulcher-Tammann, parabolic and mode-coupling power law.

Used to extrapolate the standard (no-swap) dynamics below where it can be measured, as the
swap literature does (Ninarello, Berthier & Coslovich, PRX 7, 021039 (2017), section II),
and to locate characteristic temperatures: T_MCT from the power law, T_0 from VFT, and a
glass temperature T_g where tau_alpha / tau_0 reaches 10^12.

All models are fitted to ln tau by (weighted) least squares:

========== ============================================ ===========================
model      ln tau(T)                                    parameters
========== ============================================ ===========================
arrhenius  ln tau_inf + E / T                           ln_tau_inf, E
vft        ln tau_inf + A / (T - T0)                    ln_tau_inf, A, T0 (< T)
parabolic  ln tau_o + J^2 (1/T - 1/T_o)^2  (T <= T_o)   ln_tau_o, J, T_o
power_law  ln A_c - gamma ln(T - T_c)                   ln_A_c, gamma, T_c (< T)
========== ============================================ ===========================

The parabolic form is that of Elmatad, Chandler & Garrahan (J. Phys. Chem. B 113, 5563
(2009)), valid below its onset T_o; pass only data with T <= T_o (or let the fit find T_o
above the fitted range). The VFT fragility index is D = A / T0. Temperatures and E, A, J are
in the temperature unit of the data (LJ: epsilon/k_B; metal units: K), tau in whatever unit
it is given (sweeps).

Uncertainties: the parameter covariance is (J^T W J)^-1 with W the inverse variances of ln
tau (sigma_ln = dtau / tau). When chi^2 exceeds its 95 % quantile for the degrees of freedom
(the law does not describe the data within their errors) it is multiplied by chi^2 / dof, so
such a fit gets wider, not falsely narrow, intervals; without given errors the weights are 1
and the scale is always chi^2 / dof. Predictions at any T (including
extrapolations) carry a delta-method band, and the temperature at which the fit reaches a
given tau carries the corresponding error. The coverage of these 68 % intervals is tested
on synthetic data with known parameters (``tests/test_tau_fits.py``).

Speed-ups (ratios of tau at equal T, standard over swap dynamics): :func:`measured_speedup`
where both are measured, :func:`speedup` where the standard tau comes from a fitted law,
:func:`glass_temperature` (tau / tau_0 = 10^12) and :func:`speedup_at_tg`, each with a
first-order standard error of ln(speed-up) or of T_g. On synthetic VFT (standard) and
Arrhenius (swap) data with 10 % noise their 68 % bands covered the truth in 73-77 % of 200
data sets (extrapolation to T = 0.40 and 0.36 from data down to 0.45, and at T_g). None of
these bands contains the error of the law itself: compare laws for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ._lsq import numeric_jacobian, scaled_covariance

__all__ = ["TauFit", "fit_tau", "MODELS", "glass_temperature", "measured_speedup", "speedup",
           "speedup_at_tg"]


def _arrhenius(T, p):
    return p[0] + p[1] / T


def _vft(T, p):
    return p[0] + p[1] / (T - p[2])


def _parabolic(T, p):
    x = 1.0 / T - 1.0 / p[2]
    return p[0] + p[1] * p[1] * x * x


def _power_law(T, p):
    return p[0] - p[1] * np.log(T - p[2])


#: A parabolic onset above this multiple of the highest fitted T is reported unconstrained.
PARABOLIC_ONSET_UNBOUNDED = 100.0

#: name -> (function of (T, params), parameter names, index of a parameter that must stay
#: below the smallest temperature (or None))
MODELS = {
    "arrhenius": (_arrhenius, ("ln_tau_inf", "E"), None),
    "vft": (_vft, ("ln_tau_inf", "A", "T0"), 2),
    "parabolic": (_parabolic, ("ln_tau_o", "J", "T_o"), None),
    "power_law": (_power_law, ("ln_A_c", "gamma", "T_c"), 2),
}


@dataclass
class TauFit:
    """A fitted tau(T) law.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    params : dict
        Parameter name -> best value.
    errors : dict
        Parameter name -> one standard error (68 % for a linearisable fit).
    cov : ndarray, shape (P, P)
        The covariance of the parameters (scaled when the fit is inconsistent, see the
        module docstring).
    chi2 : float
        Sum of squared weighted residuals of ln tau.
    dof : int
        Points minus parameters.
    t_range : tuple of float
        Smallest and largest fitted temperature.
    weighted : bool
        Whether tau errors were given.
    """

    model: str
    params: dict
    errors: dict
    cov: np.ndarray
    chi2: float
    dof: int
    t_range: tuple
    weighted: bool
    _p: np.ndarray = field(repr=False, default=None)

    def ln_tau(self, T) -> np.ndarray:
        """ln tau at temperatures T, shape of T (nan where the law is undefined)."""
        T = np.asarray(T, dtype=np.float64)
        f, _, lower = MODELS[self.model][:3]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(f(T, self._p), dtype=np.float64)
        if lower is not None:
            out = np.where(T > self._p[lower], out, np.nan)
        return out

    def _gradient(self, T) -> np.ndarray:
        """d ln tau / d params at T, shape (len(T), P), by central differences."""
        return numeric_jacobian(MODELS[self.model][0], T, self._p)

    def ln_tau_error(self, T) -> np.ndarray:
        """68 % (one standard error) band half-width of ln tau at T (delta method)."""
        T = np.atleast_1d(np.asarray(T, dtype=np.float64))
        g = self._gradient(T)
        var = np.einsum("ik,kl,il->i", g, self.cov, g)
        return np.sqrt(np.maximum(var, 0.0))

    def temperature_at(self, ln_tau_target: float, bracket=None) -> tuple[float, float]:
        """Temperature at which the law reaches ``ln tau = ln_tau_target``, with its error.

        Parameters
        ----------
        ln_tau_target : float
        bracket : tuple of float, optional
            Temperatures enclosing the solution; default from just above the divergence
            (VFT, power law) or 0.05 x the smallest fitted T, to 10 x the largest.

        Returns
        -------
        T : float
            nan when the law never reaches the target in the bracket.
        err : float
            One standard error, ``sqrt(g C g^T) / |d ln tau / dT|`` (delta method).
        """
        lower = MODELS[self.model][2]
        lo = (self._p[lower] * (1 + 1e-9) + 1e-12) if lower is not None else 0.05 * self.t_range[0]
        hi = 10.0 * self.t_range[1]
        if self.model == "parabolic":
            hi = min(hi, self._p[2])  # the law is used below its onset only
        if bracket is not None:
            lo, hi = bracket

        def f(T):
            return float(self.ln_tau(np.array([T]))[0]) - ln_tau_target

        try:
            flo, fhi = f(lo), f(hi)
            if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
                return float("nan"), float("nan")
            T = optimize.brentq(f, lo, hi, xtol=1e-12 * hi, rtol=1e-12)
        except ValueError:
            return float("nan"), float("nan")
        h = 1e-6 * T
        slope = (f(T + h) - f(T - h)) / (2 * h)
        err = float(self.ln_tau_error(T)[0]) / abs(slope) if slope else float("nan")
        return float(T), float(err)

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {"model": self.model, "params": dict(self.params), "errors": dict(self.errors),
                "cov": self.cov.tolist(), "chi2": self.chi2, "dof": self.dof,
                "t_range": list(self.t_range), "weighted": self.weighted}


def _start(model, T, y):
    """A starting point for the nonlinear fit, from linear fits of ln tau."""
    e, c = np.polyfit(1.0 / T, y, 1)
    if model == "arrhenius":
        return np.array([c, e])
    tmin, tmax = T.min(), T.max()
    if model == "vft":
        return np.array([c - 1.0, max(e, 1e-3) * 0.5, 0.5 * tmin])
    if model == "parabolic":
        # ln tau is quadratic in 1/T: fit it, then complete the square.
        a2, a1, a0 = np.polyfit(1.0 / T, y, 2)
        if a2 > 0:
            x0 = -a1 / (2 * a2)
            return np.array([a0 - a2 * x0 * x0, math.sqrt(a2), 1.0 / x0 if x0 > 0 else tmax])
        return np.array([y.min(), math.sqrt(max(e, 1e-3) * tmax), tmax])
    # power law: T_c somewhat below the data
    return np.array([y.min(), 2.0, tmin - 0.2 * (tmax - tmin) - 1e-3 * tmin])


def _interior(x, lo, hi, t_scale):
    """x moved strictly inside finite bounds (least_squares needs an interior start)."""
    eps = 1e-4 * t_scale
    x = np.where(np.isfinite(lo), np.maximum(x, lo + eps), x)
    return np.where(np.isfinite(hi), np.minimum(x, hi - eps), x)


def fit_tau(T, tau, tau_err=None, model: str = "vft") -> TauFit:
    """Fit a tau(T) law to ln tau.

    Parameters
    ----------
    T : array_like, shape (K,)
        Temperatures (positive, in the model's temperature unit).
    tau : array_like, shape (K,)
        Relaxation times (positive).
    tau_err : array_like, shape (K,), optional
        One-standard-error uncertainties of tau; used as sigma_ln = tau_err / tau.
    model : str
        ``"arrhenius"``, ``"vft"``, ``"parabolic"`` or ``"power_law"``.

    Returns
    -------
    TauFit

    Raises
    ------
    ValueError
        Unknown model, non-positive or non-finite input, or fewer points than parameters + 1.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    T = np.asarray(T, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    f, names, lower = MODELS[model]
    if T.ndim != 1 or T.shape != tau.shape:
        raise ValueError(f"T and tau must be 1-D of equal length, got {T.shape}, {tau.shape}")
    if T.size < len(names) + 1:
        raise ValueError(f"a {model} fit needs at least {len(names) + 1} points, got {T.size}")
    if not (np.all(np.isfinite(T)) and np.all(T > 0) and np.all(np.isfinite(tau))
            and np.all(tau > 0)):
        raise ValueError("T and tau must be finite and positive")
    y = np.log(tau)
    weighted = tau_err is not None
    if weighted:
        err = np.asarray(tau_err, dtype=np.float64)
        if err.shape != T.shape or not np.all(np.isfinite(err)) or np.any(err <= 0):
            raise ValueError("tau_err must be finite, positive and of the shape of tau")
        sigma = err / tau
    else:
        sigma = np.ones_like(y)
    lo = np.full(len(names), -np.inf)
    hi = np.full(len(names), np.inf)
    if lower is not None:
        hi[lower] = T.min() * (1 - 1e-9)
        lo[lower] = -np.inf if model == "power_law" else 0.0
    if model in ("vft", "power_law"):
        lo[1] = 0.0  # a relaxation time that grows on cooling
    p0 = _interior(_start(model, T, y), lo, hi, T.min())

    def residual(p):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (f(T, p) - y) / sigma
        return np.where(np.isfinite(r), r, 1e6)

    best = None
    for scale in (1.0, 0.5, 2.0):  # a few starts: VFT and power law have shallow valleys
        start = p0.copy()
        if lower is not None:
            gap = T.min() - p0[lower]
            start[lower] = T.min() - gap * scale
        start = _interior(start, lo, hi, T.min())
        sol = optimize.least_squares(residual, start, bounds=(lo, hi), method="trf",
                                     x_scale="jac", xtol=1e-14, ftol=1e-14, gtol=1e-14,
                                     max_nfev=20000)
        if best is None or sol.cost < best.cost:
            best = sol
    p = best.x
    r = residual(p)
    # best.jac is d residual / d p = J / sigma: unit errors on the weighted residuals.
    cov, chi2, dof = scaled_covariance(best.jac, np.ones_like(r), r, known=weighted)
    errors = {n: float(math.sqrt(max(cov[k, k], 0.0))) for k, n in enumerate(names)}
    if model == "parabolic" and p[2] > PARABOLIC_ONSET_UNBOUNDED * T.max():
        # The onset ran away above the data: the law is ln tau_o + J^2/T^2 there, d ln tau /
        # d T_o vanishes, and the covariance gives T_o a meaningless (tiny) error. T_o is
        # unconstrained; the band of ln tau (which no longer depends on it) stays valid.
        errors["T_o"] = float("nan")
    return TauFit(model=model, params={n: float(v) for n, v in zip(names, p)}, errors=errors,
                  cov=cov, chi2=chi2, dof=dof, t_range=(float(T.min()), float(T.max())),
                  weighted=weighted, _p=p.copy())


def _slope(fit: TauFit, T: float) -> float:
    """d ln tau / dT of a fitted law at T (central difference)."""
    h = 1e-6 * T
    return float((fit.ln_tau(T + h)[()] - fit.ln_tau(T - h)[()]) / (2 * h))


def measured_speedup(tau_slow, err_slow, tau_fast, err_fast) -> tuple[float, float]:
    """Ratio of two measured relaxation times and the standard error of its logarithm.

    Parameters
    ----------
    tau_slow, err_slow : float
        tau_alpha of the standard dynamics and its standard error (any time unit).
    tau_fast, err_fast : float
        tau_alpha with swaps and its standard error (same unit).

    Returns
    -------
    S : float
        ``tau_slow / tau_fast``.
    ln_err : float
        Standard error of ln S, ``sqrt((err_slow/tau_slow)^2 + (err_fast/tau_fast)^2)``
        (independent measurements, first order); the 68 % band is S exp(+-ln_err).
    """
    s = float(tau_slow) / float(tau_fast)
    return s, float(math.hypot(err_slow / tau_slow, err_fast / tau_fast))


def speedup(fit: TauFit, T, tau_fast, err_fast) -> tuple[np.ndarray, np.ndarray]:
    """Speed-up tau_fit(T) / tau_fast at temperatures where the slow tau is extrapolated.

    Parameters
    ----------
    fit : TauFit
        Law fitted to the standard (slow) dynamics.
    T : array_like, shape (K,)
        Temperatures.
    tau_fast, err_fast : array_like, shape (K,)
        Measured tau_alpha with swaps and standard errors at T.

    Returns
    -------
    S : ndarray, shape (K,)
        ``exp(ln tau_fit(T)) / tau_fast`` (nan where the law is undefined, e.g. below a
        divergence).
    ln_err : ndarray, shape (K,)
        Standard error of ln S: the fit's delta-method band and the measurement error in
        quadrature (the two data sets are independent). It does not include the error of
        the law itself, which only comparing laws reveals.
    """
    T = np.atleast_1d(np.asarray(T, dtype=np.float64))
    tau_fast = np.broadcast_to(np.asarray(tau_fast, dtype=np.float64), T.shape)
    err_fast = np.broadcast_to(np.asarray(err_fast, dtype=np.float64), T.shape)
    ln_s = fit.ln_tau(T) - np.log(tau_fast)
    ln_err = np.sqrt(fit.ln_tau_error(T) ** 2 + (err_fast / tau_fast) ** 2)
    return np.exp(ln_s), np.where(np.isfinite(ln_s), ln_err, np.nan)


def glass_temperature(fit: TauFit, tau_0: float, tau_0_err: float = 0.0,
                      ratio: float = 1e12) -> tuple[float, float]:
    """T_g where the law reaches ``tau_0 * ratio``, with its standard error.

    Parameters
    ----------
    fit : TauFit
        Law fitted to the standard dynamics.
    tau_0 : float
        Reference time, e.g. tau_alpha at the onset temperature (Ninarello et al. 2017).
    tau_0_err : float
        Standard error of tau_0 (independent of the fit's data), added in quadrature.
    ratio : float
        tau(T_g) / tau_0, 10^12 by convention.

    Returns
    -------
    T_g, err : float
        nan when the law never reaches the target.
    """
    target = math.log(tau_0) + math.log(ratio)
    T_g, _ = fit.temperature_at(target)
    if not math.isfinite(T_g):
        return float("nan"), float("nan")
    var = float(fit.ln_tau_error(T_g)[0]) ** 2 + (tau_0_err / tau_0) ** 2
    return T_g, math.sqrt(var) / abs(_slope(fit, T_g))


def speedup_at_tg(slow: TauFit, fast: TauFit, tau_0: float, tau_0_err: float = 0.0,
                  ratio: float = 1e12) -> dict:
    """Speed-up at the glass temperature of the slow dynamics, with its standard error.

    ``S_g = tau_0 ratio / tau_fast(T_g)`` with T_g from :func:`glass_temperature` and
    tau_fast from the law ``fast`` fitted to the swap data. Its error follows T_g's
    dependence on the slow fit and on tau_0 (first order, three independent sources):
    with a = (d ln tau_fast / dT) / (d ln tau_slow / dT) at T_g,
    var ln S_g = (1 - a)^2 var ln tau_0 + a^2 var_slow(T_g) + var_fast(T_g),
    where var_slow and var_fast are the fits' delta-method variances of ln tau.

    Parameters
    ----------
    slow, fast : TauFit
        Laws fitted to the standard and to the swap dynamics.
    tau_0, tau_0_err : float
        Reference time and its standard error.
    ratio : float
        tau_slow(T_g) / tau_0.

    Returns
    -------
    dict
        ``T_g``, ``T_g_err``, ``tau_fast`` (at T_g), ``speedup``, ``ln_err`` (standard error
        of ln speedup), ``fast_extrapolated`` (T_g outside the fast fit's range); all nan
        when T_g does not exist.
    """
    T_g, T_g_err = glass_temperature(slow, tau_0, tau_0_err, ratio)
    nan = float("nan")
    out = {"T_g": T_g, "T_g_err": T_g_err, "tau_fast": nan, "speedup": nan, "ln_err": nan,
           "fast_extrapolated": False}
    if not math.isfinite(T_g):
        return out
    ln_fast = float(fast.ln_tau(T_g)[()])
    if not math.isfinite(ln_fast):
        return out
    a = _slope(fast, T_g) / _slope(slow, T_g)
    var = ((1 - a) ** 2 * (tau_0_err / tau_0) ** 2 + a * a * float(slow.ln_tau_error(T_g)[0]) ** 2
           + float(fast.ln_tau_error(T_g)[0]) ** 2)
    out.update(tau_fast=math.exp(ln_fast),
               speedup=math.exp(math.log(tau_0) + math.log(ratio) - ln_fast),
               ln_err=math.sqrt(var),
               fast_extrapolated=not fast.t_range[0] <= T_g <= fast.t_range[1])
    return out
