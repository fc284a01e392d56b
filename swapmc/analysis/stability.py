"""Glass stability in the field's units: E_IS against cooling rate, equivalent cooling rates,
fictive temperatures.

Pure functions over arrays; no I/O.

* :func:`fit_rate_law` fits the inherent-structure energy per particle of quenched glasses
  against the cooling rate r (temperature per unit time, r > 0) with one of

  ========== ======================================== =================================
  model      E_IS(r)                                  parameters
  ========== ======================================== =================================
  log        c0 + c1 log10 r                          c0, c1
  vft        E0 + B / (L0 - log10 r)   (L0 > log10 r)  E0, B, L0
  ========== ======================================== =================================

  ``log`` is the empirical straight line of E_IS against log rate over the decades a
  simulation can span. ``vft`` follows from a Vogel-Fulcher fictive temperature,
  T_f(r) = T0 + D / ln(r0 / r) (the glass falls out of equilibrium where tau(T_f) ~ 1/r),
  with E_IS linear in T_f over the range: E_IS flattens towards E0 as r -> 0. For a convex
  E_IS(log10 r) (flattening at slow rates, as every law with a finite E_IS(r -> 0) has), the
  straight line reaches a given low energy at a *higher* rate than the true curve, so the
  ``log`` law gives a lower bound on how much slower a quench must be.
* :meth:`RateFit.log10_rate_at` inverts a fit: the rate at which a quench would reach a given
  energy (with the energy's own error added in quadrature to the fit's) -- the *equivalent
  cooling rate* of a glass made some other way (e.g. by swap Monte Carlo).
* :func:`fit_equilibrium_eis` fits the equilibrium E_IS(T) of equilibrated parents with
  E_IS = a + b / T (the Gaussian-landscape form, Sastry, Nature 409, 164 (2001); Heuer,
  J. Phys.: Condens. Matter 20, 373101 (2008)), and :meth:`EquilibriumFit.fictive_temperature`
  gives the *fictive temperature* of any glass: the temperature whose equilibrium inherent
  structures have the glass's E_IS.

Uncertainties: parameter covariances are (J^T W J)^-1 with W the inverse variances of the
energies; when chi^2 exceeds its 95 % quantile for the degrees of freedom (the law does not
describe the data within their errors) the covariance is multiplied by chi^2 / dof, as in
:mod:`swapmc.analysis.tau_fits`. Inversions carry delta-method errors. Energies are per
particle in the model's unit (epsilon for LJ, eV for metal units), temperatures in its
temperature unit, rates in temperature per time unit of the data (e.g. epsilon/k_B per
sweep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import optimize, stats

from ._lsq import numeric_jacobian, scaled_covariance

__all__ = ["RateFit", "EquilibriumFit", "fit_rate_law", "fit_equilibrium_eis",
           "group_mean_sem", "compare_groups", "RATE_MODELS"]


def _log_law(x, p):
    return p[0] + p[1] * x


def _vft_law(x, p):
    return p[0] + p[1] / (p[2] - x)


RATE_MODELS = {"log": (_log_law, ("c0", "c1")), "vft": (_vft_law, ("E0", "B", "L0"))}


@dataclass
class RateFit:
    """A fitted E_IS(rate) law.

    Attributes
    ----------
    model : str
        ``"log"`` or ``"vft"`` (see the module docstring).
    params : dict
        Parameter values (``L0`` is log10 of a rate).
    errors : dict
        One standard error of each parameter.
    cov : ndarray
        Parameter covariance, in the order of ``params``.
    chi2, dof : float, int
        Weighted chi^2 and degrees of freedom of the fit.
    log10_rate_range : tuple of float
        The fitted range of log10 rate; outside it every result is an extrapolation.
    """

    model: str
    params: dict
    errors: dict
    cov: np.ndarray
    chi2: float
    dof: int
    log10_rate_range: tuple
    _p: np.ndarray = field(repr=False, default=None)

    def energy(self, rate) -> np.ndarray:
        """E_IS at the given rates."""
        f = RATE_MODELS[self.model][0]
        return f(np.log10(np.asarray(rate, dtype=float)), self._p)

    def energy_error(self, rate) -> np.ndarray:
        """Delta-method standard error of :meth:`energy`."""
        f = RATE_MODELS[self.model][0]
        x = np.atleast_1d(np.log10(np.asarray(rate, dtype=float)))
        jac = numeric_jacobian(f, x, self._p)
        return np.sqrt(np.einsum("ij,jk,ik->i", jac, self.cov, jac))

    def log10_rate_at(self, energy: float, energy_err: float = 0.0) -> tuple[float, float]:
        """log10 of the rate at which the law gives ``energy``, and its standard error.

        Parameters
        ----------
        energy : float
            Target E_IS per particle.
        energy_err : float
            Its standard error; added in quadrature to the fit's (delta method).

        Returns
        -------
        log10_rate, err : float
            ``-inf`` (with nan error) when the law never reaches ``energy`` (``vft``: at or
            below E0).
        """
        p = self._p
        if self.model == "log":
            x = (energy - p[0]) / p[1]
            grad = np.array([-1.0 / p[1], -x / p[1]])
            dxde = 1.0 / p[1]
        else:
            e0, b, l0 = p
            if (energy - e0) * b <= 0:
                return float("-inf"), float("nan")
            x = l0 - b / (energy - e0)
            grad = np.array([-b / (energy - e0) ** 2, -1.0 / (energy - e0), 1.0])
            dxde = b / (energy - e0) ** 2
        var = float(grad @ self.cov @ grad) + (dxde * energy_err) ** 2
        return float(x), float(np.sqrt(var))

    def as_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "errors": self.errors,
                "cov": self.cov.tolist(), "chi2": self.chi2, "dof": self.dof,
                "log10_rate_range": list(self.log10_rate_range)}


def fit_rate_law(rate, energy, energy_err=None, model: str = "log") -> RateFit:
    """Fit E_IS(rate) by weighted least squares.

    Parameters
    ----------
    rate : array_like, shape (K,)
        Cooling rates (> 0; temperature per time unit).
    energy : array_like, shape (K,)
        E_IS per particle at each rate: means over quenches, or one entry per quench
        (rates repeated).
    energy_err : array_like, shape (K,), optional
        Standard errors (> 0). None: every point has the same unknown scatter, estimated
        from the residuals (ordinary least squares; use with one entry per quench).
    model : str
        ``"log"`` or ``"vft"``.

    Returns
    -------
    RateFit

    Raises
    ------
    ValueError
        Unknown model, bad input, or fewer points than parameters.
    """
    if model not in RATE_MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(RATE_MODELS)}")
    r = np.asarray(rate, float)
    e = np.asarray(energy, float)
    known = energy_err is not None
    s = np.asarray(energy_err, float) if known else np.ones_like(e)
    if not (r.shape == e.shape == s.shape and r.ndim == 1):
        raise ValueError("rate, energy and energy_err must be 1-d arrays of one length")
    if np.any(r <= 0) or np.any(s <= 0) or not np.all(np.isfinite(np.r_[r, e, s])):
        raise ValueError("rates and errors must be positive and finite")
    f, names = RATE_MODELS[model]
    if len(r) < len(names) + (0 if known else 1):
        raise ValueError(f"model {model!r} needs at least {len(names) + (0 if known else 1)} "
                         f"points, got {len(r)}")
    x = np.log10(r)
    if model == "log":
        a = np.vstack([np.ones_like(x), x]).T
        w = 1.0 / s**2
        p = np.linalg.solve(a.T @ (a * w[:, None]), a.T @ (w * e))
    else:
        # Start from the straight line; L0 a decade above the fastest rate.
        c = np.polyfit(x, e, 1, w=1.0 / s)
        l0 = x.max() + 1.0
        span = x.max() - x.min() or 1.0
        p0 = np.array([e.min() - abs(c[0]) * span, abs(c[0]) * (l0 - x.mean()) ** 2, l0])
        lower = [-np.inf, 0.0, x.max() + 1e-6]
        sol = optimize.least_squares(lambda q: (f(x, q) - e) / s, p0,
                                     bounds=(lower, [np.inf, np.inf, np.inf]),
                                     x_scale="jac", max_nfev=20_000)
        p = sol.x
    jac = numeric_jacobian(f, x, p)
    cov, chi2, dof = scaled_covariance(jac, s, f(x, p) - e, known)
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return RateFit(model, dict(zip(names, map(float, p))), dict(zip(names, map(float, err))),
                   cov, chi2, dof, (float(x.min()), float(x.max())), _p=np.asarray(p, float))


@dataclass
class EquilibriumFit:
    """E_IS(T) = a + b / T fitted to equilibrium inherent-structure energies.

    Attributes
    ----------
    a, b : float
        Parameters (energy; energy x temperature).
    cov : ndarray, shape (2, 2)
    chi2, dof : float, int
    t_range : tuple of float
        Fitted temperature range.
    """

    a: float
    b: float
    cov: np.ndarray
    chi2: float
    dof: int
    t_range: tuple

    def energy(self, temperature) -> np.ndarray:
        return self.a + self.b / np.asarray(temperature, float)

    def fictive_temperature(self, energy: float, energy_err: float = 0.0) -> tuple[float, float]:
        """Temperature whose equilibrium E_IS equals ``energy``, and its standard error.

        The error combines the fit covariance and ``energy_err`` (delta method). Returns
        (nan, nan) when the law never reaches ``energy`` at a positive temperature.
        """
        d = energy - self.a
        if d == 0 or self.b / d <= 0:
            return float("nan"), float("nan")
        t = self.b / d
        grad = np.array([self.b / d**2, 1.0 / d])  # dT/da, dT/db
        dtde = -self.b / d**2
        var = float(grad @ self.cov @ grad) + (dtde * energy_err) ** 2
        return float(t), float(np.sqrt(var))

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "cov": self.cov.tolist(), "chi2": self.chi2,
                "dof": self.dof, "t_range": list(self.t_range)}


def fit_equilibrium_eis(temperature, energy, energy_err=None) -> EquilibriumFit:
    """Weighted least-squares fit of E_IS = a + b / T.

    Parameters
    ----------
    temperature : array_like, shape (K,)
        Parent temperatures (> 0).
    energy : array_like, shape (K,)
        Equilibrium E_IS per particle (means per T, or one entry per glass).
    energy_err : array_like, shape (K,), optional
        Standard errors (> 0). None: one common unknown scatter estimated from the residuals
        (ordinary least squares; use with one entry per glass).
    """
    t = np.asarray(temperature, float)
    e = np.asarray(energy, float)
    known = energy_err is not None
    s = np.asarray(energy_err, float) if known else np.ones_like(e)
    if not (t.shape == e.shape == s.shape and t.ndim == 1) or len(t) < (2 if known else 3):
        raise ValueError("need 1-d arrays of one length >= 2 (>= 3 without errors)")
    if np.any(t <= 0) or np.any(s <= 0):
        raise ValueError("temperatures and errors must be positive")
    a_mat = np.vstack([np.ones_like(t), 1.0 / t]).T
    w = 1.0 / s**2
    p = np.linalg.solve(a_mat.T @ (a_mat * w[:, None]), a_mat.T @ (w * e))
    cov, chi2, dof = scaled_covariance(a_mat, s, a_mat @ p - e, known)
    return EquilibriumFit(float(p[0]), float(p[1]), cov, chi2, dof,
                          (float(t.min()), float(t.max())))


def group_mean_sem(keys, values, pooled_sd: bool = True) -> list[tuple]:
    """Mean and standard error of ``values`` per distinct key.

    Parameters
    ----------
    keys, values : array_like, shape (M,)
    pooled_sd : bool
        For groups of one, use the pooled within-group standard deviation of the other
        groups (assumes the per-sample scatter does not depend on the key); otherwise nan.

    Returns
    -------
    list of (key, n, mean, sem), sorted by key.
    """
    keys = np.asarray(keys)
    values = np.asarray(values, float)
    groups = [(k, values[keys == k]) for k in np.unique(keys)]
    ss = sum(float(((v - v.mean()) ** 2).sum()) for _, v in groups if len(v) > 1)
    df = sum(len(v) - 1 for _, v in groups if len(v) > 1)
    pooled = np.sqrt(ss / df) if df > 0 else float("nan")
    out = []
    for k, v in groups:
        sd = v.std(ddof=1) if len(v) > 1 else (pooled if pooled_sd else float("nan"))
        out.append((k.item() if hasattr(k, "item") else k, len(v), float(v.mean()),
                    float(sd / np.sqrt(len(v)))))
    return out


def compare_groups(a, b) -> dict:
    """Compare a quantity between two small families of glasses (a - b).

    Parameters
    ----------
    a, b : array_like, shape (n_a,), (n_b,)
        One value per glass (non-finite values are dropped).

    Returns
    -------
    dict
        ``diff`` (mean of a - mean of b), its standard error ``se``, the Welch ``t`` with
        its Welch-Satterthwaite ``dof`` and two-sided ``p_welch``, and ``p_permutation``, the
        exact two-sided permutation p of the difference of means (every split of the
        pooled glasses into groups of the same sizes, ``splits`` of them; no normality
        assumed), ``n`` = [n_a, n_b]. Empty when a family has fewer than 2 values.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return {}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff, se = float(a.mean() - b.mean()), float(math.sqrt(va + vb))
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 0
    t = diff / se if se > 0 else math.inf
    p_welch = float(2 * stats.t.sf(abs(t), dof)) if se > 0 else 0.0
    pooled = np.concatenate([a, b])
    total, hits = 0, 0
    for idx in combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        d = pooled[mask].mean() - pooled[~mask].mean()
        hits += abs(d) >= abs(diff) - 1e-12 * max(1.0, abs(diff))
        total += 1
    return {"diff": diff, "se": se, "t": t, "dof": dof, "p_welch": p_welch,
            "p_permutation": hits / total, "n": [len(a), len(b)], "splits": total}
