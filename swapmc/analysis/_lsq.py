"""Least-squares pieces shared by the fits of tau(T) (:mod:`.tau_fits`) and of E_IS against
cooling rate (:mod:`.stability`): the parameter covariance with its chi^2 rule, and the
central-difference Jacobian used for delta-method bands."""

from __future__ import annotations

import numpy as np
from scipy import stats


def scaled_covariance(jac, sigma, resid, known: bool = True) -> tuple[np.ndarray, float, int]:
    """Weighted least-squares covariance, inflated by chi^2/dof when the fit is poor.

    With given errors (``known``) the covariance (J^T W J)^-1 is used as is unless chi^2
    exceeds its 95 % quantile for the degrees of freedom (wrong law or underestimated
    errors); then it is scaled by chi^2 / dof. Always scaling by max(1, chi^2/dof) would
    over-cover (~0.75-0.8 instead of 0.68 for a correct law with 6-9 points). With
    ``known=False`` the errors are one common unknown scatter (``sigma`` all ones) and the
    covariance is always scaled by chi^2/dof (ordinary least squares).

    Parameters
    ----------
    jac : ndarray, shape (K, P)
        d model / d parameters at the K points.
    sigma : ndarray, shape (K,)
        One-standard-error uncertainties of the data.
    resid : ndarray, shape (K,)
        model - data (unweighted).
    known : bool
        Whether ``sigma`` are real uncertainties.

    Returns
    -------
    cov : ndarray, shape (P, P)
    chi2 : float
    dof : int
    """
    w = 1.0 / np.asarray(sigma, dtype=np.float64) ** 2
    jtwj = jac.T @ (jac * w[:, None])
    cov = np.linalg.pinv(jtwj)
    chi2 = float(np.sum(np.asarray(resid) ** 2 * w))
    dof = len(resid) - jac.shape[1]
    if dof > 0 and (not known or chi2 > stats.chi2.ppf(0.95, dof)):
        cov = cov * chi2 / dof
    return cov, chi2, dof


def numeric_jacobian(f, x, p) -> np.ndarray:
    """d f(x, p) / d p by central differences (step 1e-6 max(1, |p_k|)), shape (len(x), P)."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    jac = np.empty((x.size, len(p)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(len(p)):
            h = 1e-6 * max(1.0, abs(p[k]))
            up, dn = p.copy(), p.copy()
            up[k] += h
            dn[k] -= h
            jac[:, k] = (f(x, up) - f(x, dn)) / (2 * h)
    return jac
