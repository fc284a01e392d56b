"""Models of a mechanical loss spectrum and their fits: Havriliak-Negami, the Fourier
transform of a Kohlrausch-Williams-Watts relaxation, and the cross-check of a step-strain
relaxation fit against DMS measurements.

Pure functions over arrays. Angular frequencies are in rad per time unit, relaxation times
in that time unit, moduli in the unit of the data (``stress_unit``).

Sign convention
---------------
The strain ``eps_A sin(omega t)`` is ``Im[eps_A e^{i omega t}]`` and the stress
``Im[M* eps_A e^{i omega t}]`` with ``M* = M' + i M''``, so ``M''`` > 0 is the loss measured
by :func:`swapmc.analysis.fit_oscillation`. For a relaxation modulus
``M(t) = M_r + Delta_M phi(t)`` (``phi(0) = 1``, ``phi(inf) = 0``)::

    M*(omega) = i omega int_0^inf M(t) e^{-i omega t} dt = M_u - Delta_M chi(omega),
    chi(omega) = int_0^inf [-dphi/dt] e^{-i omega t} dt = chi' - i chi'',

with the unrelaxed modulus ``M_u = M_r + Delta_M`` (the limit omega -> inf). Hence
``M' = M_u - Delta_M chi'`` rises with omega from ``M_r`` to ``M_u`` and
``M'' = Delta_M chi''`` is a peak. The Debye case is ``chi = 1 / (1 + i omega tau)``
(:func:`swapmc.analysis.debye_modulus`).

Models of chi
-------------
* Havriliak-Negami (Havriliak & Negami, Polymer 8, 161 (1967)):
  ``chi = 1 / (1 + (i omega tau)^alpha)^gamma`` with ``0 < alpha, gamma <= 1``
  (Cole-Cole: gamma = 1; Cole-Davidson: alpha = 1; Debye: both 1). For the modulus this is
  ``M* = M_inf - Delta_M / (1 + (i omega tau)^alpha)^gamma`` with ``M_inf = M_u``. The loss
  peak is at ``omega_p tau = [sin(pi alpha / (2 gamma + 2)) /
  sin(pi alpha gamma / (2 gamma + 2))]^(1/alpha)``.
* KWW (Williams & Watts, Trans. Faraday Soc. 66, 80 (1970)): ``phi = exp[-(t/tau)^beta]``.
  With ``w = omega tau`` and ``s = t / tau``, ``chi(w) = int_0^inf beta s^(beta-1)
  e^(-s^beta) e^(-i w s) ds``. A plain FFT of sampled phi loses the ``w^-beta`` high-frequency
  tail and the low-frequency plateau; here the integral is taken along the ray
  ``s = r e^(-i theta)`` (Cauchy: the integrand is analytic in the fourth quadrant and
  decays there), where both factors decay, by the trapezoid rule in ``x = ln r``. The
  integrand is analytic in a strip of half-width ~theta around that line, so the rule
  converges like ``exp(-2 pi theta / h)``: with ``theta = pi/4`` (``pi/(4 beta)`` for
  compressed ``beta > 1``) and ``h = 0.1 min(1, 1/beta)`` the discretisation error is below
  rounding. Where ``|w s| <= 0.1`` (the long ``e^{beta x}`` tail towards small s) the sum is
  taken through the Taylor series of ``e^{-i w s}``, so the cost does not grow with the
  number of frequencies. Measured relative error of chi' and chi'' separately: <= 2e-12 for
  ``1e-4 <= w <= 1e4``, <= 1e-10 for ``1e-6 <= w <= 1e6`` (beta = 1 against the Debye form,
  beta = 1/2 against its closed form through the Faddeeva function); the small part at the
  extremes (chi'' at tiny w, chi' ~ w^-2 of a Debye relaxation at huge w) is limited by
  rounding to ~1e-17 absolute. ``tests/test_spectroscopy.py`` also checks beta = 0.3, 0.5,
  0.8 against adaptive quadrature on the real axis and beta = 2 against its closed form.

Fast term
---------
Spectra measured by MD often show a loss that rises again at the highest frequencies: the
fast (vibrational, microscopically viscous) processes whose own peak lies beyond the scan.
Both fits can add, with ``fast="viscous"`` or ``fast="power"``, a constant-phase term to the
modulus::

    M*(omega) = M_u - Delta_M chi(omega tau) + A (i omega)^a,

i.e. ``M' += A omega^a cos(pi a / 2)``, ``M'' += A omega^a sin(pi a / 2)``, ``A >= 0``.
``a = 1`` (``"viscous"``) is a dashpot in parallel, ``A = eta_fast`` (stress_unit x
time_unit), which adds ``eta_fast omega`` to the loss and nothing to M'; ``"power"`` fits
``0.05 <= a <= 1`` (``A`` in stress_unit x time_unit^a), the low-frequency flank of a fast
process. The term is causal (it obeys the Kramers-Kronig relations for 0 < a <= 1), so it
does not distort M' to fit M''. The alpha-relaxation parameters keep their meaning, and
:meth:`SpectrumFit.loss_peak_omega` stays the maximum of the relaxation term alone. An
amplitude that ends on its lower bound 0 means the data show no fast term.

Fits and errors
---------------
:func:`fit_havriliak_negami` and :func:`fit_kww_spectrum` fit M' and M'' jointly (or M''
alone) by weighted least squares, start from a grid over (ln tau, shape) with the linear
parameters solved exactly, and take the covariance from the Jacobian with the project's
chi^2 rule (:func:`swapmc.analysis._lsq.scaled_covariance`: inflated by chi^2/dof only when
chi^2 exceeds its 95 % quantile). Per-point errors are the 68 % half-widths over glasses of
:class:`~swapmc.analysis.DMSMean`; the reported errors are then 68 % intervals. As in the
KWW time-domain fits, a parameter that ends on its bound is reported as unconstrained
(``at_bound``, NaN error); Debye data fitted by Havriliak-Negami put alpha and gamma on
their upper bound 1 (refit with ``fix={"gamma": 1.0}`` etc.). On 200 synthetic spectra the
68 % intervals covered the truth in 0.66-0.75 of them (HN over 6 decades with 1 % noise;
KWW over 4 decades with 2 % noise). The HN shape is far less determined than its three
parameters suggest: over 4 decades with 2 % noise, fits of alpha = 0.7, gamma = 0.5 data
often end at gamma = 1 with a lower chi^2 than the truth, and over 5 decades with
alpha = gamma = 0.6 the errors are ~15 % conservative (coverage ~0.78). The DMS of metallic
glasses is commonly analysed with these models (Qiao & Pelletier, J. Mater. Sci. Technol.
30, 523 (2014); Qiao et al., Prog. Mater. Sci. 104, 250 (2019)).

Cross-check
-----------
:func:`dms_from_kww` turns a step-strain :class:`~swapmc.analysis.KWWResult` into predicted
M'(omega), M''(omega), tan delta with a delta-method band from its covariance, and
:func:`compare_dms` compares them with measured DMS points (z-scores and a chi^2 with the
full covariance, since the prediction errors of all frequencies come from the same four
parameters).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from ._lsq import scaled_covariance
from .mechanics import KWW_BETA_BOUNDS, KWWResult, t_factor68

__all__ = [
    "kww_susceptibility",
    "hn_susceptibility",
    "hn_peak_omega_tau",
    "fast_modulus",
    "SpectrumFit",
    "fit_havriliak_negami",
    "fit_kww_spectrum",
    "DMSPrediction",
    "DMSComparison",
    "dms_from_kww",
    "compare_dms",
    "dms_arrays",
]

#: Default bounds of the Havriliak-Negami exponents.
HN_BOUNDS = {"alpha": (0.05, 1.0), "gamma": (0.05, 1.0)}
#: Fast terms: name -> parameter names (after the relaxation's shape parameters).
FAST_TERMS = {"none": (), "viscous": ("fast_amplitude",),
              "power": ("fast_amplitude", "fast_exponent")}
#: Bounds of the fast term's exponent ``a`` (``"power"``).
FAST_EXPONENT_BOUNDS = (0.05, 1.0)

# Chunk of frequencies evaluated at once by the KWW quadrature (memory ~ chunk x grid).
_CHUNK = 128
# Terms of the Taylor series of e^{-i w s} used where |w s| <= 0.1 (0.1^16 / 16! ~ 5e-30).
_TAYLOR = 16


# ============================================================================ KWW transform
def _kww_grid(beta, w_min, w_max):
    """Nodes x = ln r, step h and ray angle theta of the trapezoid rule for chi(w)."""
    theta = math.pi / 4.0 if beta <= 1.0 else math.pi / (4.0 * beta)
    h = 0.1 * min(1.0, 1.0 / beta)
    # Lower end: the part below r_lo contributes ~ r_lo^beta; keep it 1e-16 of |chi| at the
    # largest w (|chi| ~ w^-beta there).
    x_lo = math.log(1e-16) / beta - math.log(max(w_max, 1.0))
    # Upper end: |integrand| <= beta r^beta exp(-r^beta cos(beta theta) - w r sin theta).
    r_hi = (40.0 / math.cos(beta * theta)) ** (1.0 / beta)
    if w_min > 0:
        r_hi = min(r_hi, 40.0 / (w_min * math.sin(theta)))
    x_hi = math.log(r_hi) + 1.0
    return np.arange(x_lo, x_hi + h, h), h, theta


def kww_susceptibility(omega_tau, beta, *, derivatives=False):
    """Normalised susceptibility of a KWW relaxation, ``chi = chi' - i chi''``.

    ``chi(w) = int_0^inf [-dphi/ds] e^{-i w s} ds`` with ``phi(s) = exp(-s^beta)``,
    ``s = t / tau``, ``w = omega tau`` (Williams & Watts 1970); ``chi = 1 / (1 + i w)`` for
    beta = 1. Computed by the trapezoid rule on a rotated contour (module docstring),
    ~1e-12 relative.

    Parameters
    ----------
    omega_tau : float or array_like, shape (K,)
        ``w = omega tau >= 0`` (dimensionless).
    beta : float
        Stretching exponent, 0.05 <= beta <= 2.
    derivatives : bool
        Also return ``d chi / d ln w`` (= ``d chi / d ln tau``) and ``d chi / d beta``.

    Returns
    -------
    chi : complex ndarray, shape of ``omega_tau``
        ``chi(0) = 1``; ``Re chi = chi'``, ``-Im chi = chi'' >= 0``.
    dchi_dlnw, dchi_dbeta : complex ndarray, shape of ``omega_tau``
        Only with ``derivatives=True``.

    Raises
    ------
    ValueError
        beta outside [0.05, 2] or negative / non-finite ``omega_tau``.
    """
    beta = float(beta)
    if not (0.05 <= beta <= 2.0):
        raise ValueError(f"beta must lie in [0.05, 2], got {beta!r}")
    w_in = np.asarray(omega_tau, dtype=np.float64)
    w = w_in.ravel()
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("omega_tau must be finite and >= 0")
    chi = np.ones(w.shape, dtype=np.complex128)
    d_w = np.zeros(w.shape, dtype=np.complex128)
    d_b = np.zeros(w.shape, dtype=np.complex128)
    pos = np.flatnonzero(w > 0)
    pos = pos[np.argsort(w[pos])]
    if pos.size:
        x, h, theta = _kww_grid(beta, float(w[pos[0]]), float(w[pos[-1]]))
        ln_s = x - 1j * theta
        s = np.exp(ln_s)
        sb = np.exp(beta * ln_s)
        esb = np.exp(-sb)
        base = beta * sb * esb  # beta s^beta e^{-s^beta}: f(s) ds = base dx
        base_b = sb * esb * (1.0 + beta * ln_s * (1.0 - sb))  # d base / d beta
        # Nodes with w r <= 0.1 (the long left tail, ~e^{beta x}) enter through the Taylor
        # series of e^{-i w s} in moments of the same trapezoid sum: the sum is unchanged
        # (to 1e-17) and its cost no longer grows with the number of frequencies.
        n = np.arange(_TAYLOR)
        pw = np.exp(n[:, None] * ln_s[None, :])  # s^n, shape (N, X)
        cum = np.cumsum(pw * base, axis=1) * h
        cum_b = np.cumsum(pw * base_b, axis=1) * h if derivatives else None
        fact = np.array([math.factorial(int(k)) for k in n], dtype=np.float64)
        for lo in range(0, pos.size, _CHUNK):
            idx = pos[lo:lo + _CHUNK]
            wc = w[idx]
            c = int(np.searchsorted(x, math.log(0.1 / wc[-1])))  # nodes [0, c) by series
            ws = wc[:, None] * s[None, c:]
            e = np.exp(-1j * ws)
            chi[idx] = h * (e @ base[c:])
            if derivatives:
                d_w[idx] = h * ((-1j * ws * e) @ base[c:])
                d_b[idx] = h * (e @ base_b[c:])
            if c > 0:
                coef = (-1j * wc[:, None]) ** n[None, :] / fact[None, :]  # (W, N)
                chi[idx] += coef @ cum[:, c - 1]
                if derivatives:
                    d_w[idx] += (coef * n[None, :]) @ cum[:, c - 1]
                    d_b[idx] += coef @ cum_b[:, c - 1]
    shape = w_in.shape
    if derivatives:
        return chi.reshape(shape), d_w.reshape(shape), d_b.reshape(shape)
    return chi.reshape(shape)


@functools.lru_cache(maxsize=64)
def _kww_table(beta):
    """chi on a ln w grid (for the start of a fit only): (ln w nodes, chi)."""
    lnw = np.arange(-20.0, 20.0001, 0.1)
    return lnw, kww_susceptibility(np.exp(lnw), beta)


def _kww_interp(w, beta):
    lnw, tab = _kww_table(float(beta))
    u = np.log(np.maximum(w, 1e-300))
    # Outside the table chi is 1 (w -> 0) or ~0 (w -> inf): np.interp clamps to the ends.
    return np.interp(u, lnw, tab.real) + 1j * np.interp(u, lnw, tab.imag)


def hn_susceptibility(omega_tau, alpha, gamma, *, derivatives=False):
    """Havriliak-Negami susceptibility ``chi = 1 / (1 + (i w)^alpha)^gamma``, ``w = omega
    tau`` (Havriliak & Negami 1967), ``chi = chi' - i chi''``.

    Parameters
    ----------
    omega_tau : float or array_like, shape (K,)
        ``w >= 0``.
    alpha, gamma : float
        Exponents in (0, 1] (Debye: both 1).
    derivatives : bool
        Also return ``d chi / d ln w``, ``d chi / d alpha``, ``d chi / d gamma``.

    Returns
    -------
    chi : complex ndarray, shape of ``omega_tau``
    dchi_dlnw, dchi_dalpha, dchi_dgamma : complex ndarray
        Only with ``derivatives=True``.
    """
    w = np.asarray(omega_tau, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ln_iw = np.log(w) + 0.5j * math.pi  # ln(i w), -inf at w = 0
    z = np.where(w > 0, np.exp(alpha * ln_iw), 0.0)
    d = 1.0 + z
    chi = d ** (-gamma)
    if not derivatives:
        return chi
    g = -gamma * chi / d  # d chi / d z
    d_w = g * alpha * z
    d_a = np.where(w > 0, g * z * np.where(w > 0, ln_iw, 0.0), 0.0)
    d_g = -np.log(d) * chi
    return chi, d_w, d_a, d_g


def hn_peak_omega_tau(alpha, gamma) -> float:
    """``omega_p tau`` of the maximum of the Havriliak-Negami loss chi''."""
    k = math.pi / (2.0 * gamma + 2.0)
    return (math.sin(alpha * k) / math.sin(alpha * gamma * k)) ** (1.0 / alpha)


def fast_modulus(omega, amplitude, exponent=1.0, *, derivatives=False):
    """Constant-phase fast term ``A (i omega)^a`` of the complex modulus.

    Parameters
    ----------
    omega : array_like, shape (K,)
        Angular frequencies (>= 0), rad per time unit.
    amplitude : float
        ``A >= 0``, stress unit x time unit^a (a viscosity for ``a = 1``).
    exponent : float
        ``a`` in (0, 1].
    derivatives : bool
        Also return ``d/dA`` and ``d/da``.

    Returns
    -------
    term : complex ndarray, shape of ``omega``
        Its real part adds to M', its imaginary part to M''.
    d_amplitude, d_exponent : complex ndarray
        Only with ``derivatives=True``.
    """
    w = np.asarray(omega, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ln_iw = np.log(w) + 0.5j * math.pi
    if exponent == 1.0:
        unit = 1j * w  # a dashpot, exactly: no rounding residue in M'
    else:
        unit = np.where(w > 0, np.exp(exponent * ln_iw), 0.0)
    term = amplitude * unit
    if not derivatives:
        return term
    return term, unit, np.where(w > 0, term * np.where(w > 0, ln_iw, 0.0), 0.0)


# ============================================================================ results
def _nan_to_none(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class SpectrumFit:
    """A fitted loss-spectrum model ``M* = M_u - Delta_M chi(omega tau; shape)``.

    ``params`` and ``errors`` map names to values and 68 % half-widths:
    ``m_unrelaxed`` (M_u = M_inf), ``delta_modulus`` (Delta_M), ``tau``, the shape
    parameters (``alpha``, ``gamma`` for Havriliak-Negami; ``beta`` for KWW) and, with a
    fast term (``fast``, module docstring), ``fast_amplitude`` and ``fast_exponent``
    (fixed at 1 for ``"viscous"``, not listed in ``names`` then). An error is NaN
    for a parameter that ended on its bound (listed in ``at_bound``: unconstrained), was held
    fixed (``fixed``) or is not determined by the data (``m_unrelaxed`` from M'' alone).

    ``covariance`` is that of the internal parameters ``names`` (``ln_tau`` in place of
    ``tau``; ``tau_err = tau * sigma(ln tau)``), squared 68 % half-widths, NaN rows for
    parameters not free. ``chi2`` and ``dof`` are of the weighted residuals of M' and M''.
    """

    model: str  # "havriliak_negami" | "kww"
    params: dict
    errors: dict
    names: tuple
    covariance: np.ndarray = field(compare=False, repr=False)
    at_bound: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    omega_range: tuple = (math.nan, math.nan)
    weighted: bool = True
    error_method: str = ""
    stress_unit: str = ""
    time_unit: str = ""
    fast: str = "none"

    @property
    def m_relaxed(self) -> float:
        """M_r = M_u - Delta_M (the omega -> 0 limit of M')."""
        return self.params["m_unrelaxed"] - self.params["delta_modulus"]

    def _p(self):
        p = np.array([self.params[n if n != "ln_tau" else "tau"] for n in self.names])
        p[2] = math.log(p[2])
        return p

    def susceptibility(self, omega, derivatives=False):
        """chi(omega tau) of the relaxation (and its derivatives in the internal shape
        parameters); the fast term is not part of it."""
        return _MODELS[self.model][0](np.asarray(omega, dtype=np.float64), self._p(),
                                      derivatives)

    def fast_term(self, omega):
        """The fast term ``A (i omega)^a`` at omega (zeros without one), complex, shape of
        omega: its real part is in M', its imaginary part in M''."""
        omega = np.asarray(omega, dtype=np.float64)
        if self.fast == "none":
            return np.zeros(omega.shape, dtype=np.complex128)
        return fast_modulus(omega, self.params["fast_amplitude"],
                            self.params.get("fast_exponent", 1.0))

    def modulus(self, omega):
        """``(M'(omega), M''(omega))`` of the fitted model (relaxation plus fast term),
        arrays of the shape of omega (M' is NaN after a fit of M'' alone, which does not
        determine M_u)."""
        return _model_modulus(self.model, np.asarray(omega, dtype=np.float64), self._p(),
                              self.fast)

    def modulus_error(self, omega):
        """68 % delta-method half-widths of ``(M', M'')`` at omega (parameters not free
        contribute nothing)."""
        omega = np.atleast_1d(np.asarray(omega, dtype=np.float64))
        jac = _modulus_jac(self.model, omega, self._p(), self.fast)  # (2K, P)
        cov = np.nan_to_num(self.covariance, nan=0.0)
        var = np.einsum("ik,kl,il->i", jac, cov, jac)
        err = np.sqrt(np.maximum(var, 0.0))
        e1 = err[:omega.size] if math.isfinite(self.params["m_unrelaxed"]) else np.full(
            omega.size, np.nan)
        return e1, err[omega.size:]

    def loss_peak_omega(self) -> tuple[float, float]:
        """Angular frequency of the maximum of the fitted relaxation's M'' (the fast term
        left out) and its 68 % error."""
        p = self._p()
        if self.model == "havriliak_negami":
            def ln_wp(q):
                return math.log(hn_peak_omega_tau(q[3], q[4]))
        else:
            def ln_wp(q):
                return _kww_ln_peak(q[3])
        val = ln_wp(p) - p[2]
        grad = np.zeros(p.size)
        grad[2] = -1.0
        for k in range(3, p.size):
            if k in self._free_indices():
                dp = 1e-5
                up, dn = p.copy(), p.copy()
                up[k] += dp
                dn[k] -= dp
                grad[k] = (ln_wp(up) - ln_wp(dn)) / (2 * dp)
        cov = np.nan_to_num(self.covariance, nan=0.0)
        err = math.sqrt(max(float(grad @ cov @ grad), 0.0))
        wp = math.exp(val)
        return wp, wp * err

    def _free_indices(self):
        return [k for k, n in enumerate(self.names) if math.isfinite(self.covariance[k, k])]

    def constrained(self, name: str) -> bool:
        """False for a parameter at its bound, held fixed or not determined."""
        return math.isfinite(self.errors.get(name, math.nan))

    def format(self, name: str, fmt: str = ".4g") -> str:
        """``"value ± err"``, or the value with the reason it has no error."""
        v = self.params[name]
        if name in self.at_bound:
            return f"{v:{fmt}} (at {self.at_bound[name]} bound, unconstrained)"
        if name in self.fixed:
            return f"{v:{fmt}} (fixed)"
        e = self.errors[name]
        if not math.isfinite(e):
            return f"{v:{fmt}} (not determined by the data)"
        return f"{v:{fmt}} ± {e:.2g}"

    def as_dict(self) -> dict:
        """JSON-ready summary (NaN errors as None)."""
        return {"model": self.model, "params": dict(self.params),
                "errors": {k: _nan_to_none(v) for k, v in self.errors.items()},
                "names": list(self.names),
                "covariance": [[_nan_to_none(x) for x in row]
                               for row in np.asarray(self.covariance).tolist()],
                "at_bound": dict(self.at_bound), "fixed": dict(self.fixed),
                "chi2": self.chi2, "dof": self.dof, "n_points": self.n_points,
                "omega_range": list(self.omega_range), "weighted": self.weighted,
                "error_method": self.error_method, "stress_unit": self.stress_unit,
                "time_unit": self.time_unit, "m_relaxed": self.m_relaxed,
                "fast": self.fast}


@functools.lru_cache(maxsize=256)
def _kww_ln_peak(beta):
    """ln(omega_p tau) of the maximum of the KWW loss chi''(w) (Brent on ln w)."""
    res = optimize.minimize_scalar(
        lambda u: float(kww_susceptibility(math.exp(u), beta).imag),
        bracket=(-1.0, 0.5), tol=1e-10)
    return float(res.x)


# ============================================================================ model table
def _hn_model(omega, p, derivatives=False):
    w = omega * math.exp(p[2])
    if not derivatives:
        return hn_susceptibility(w, p[3], p[4])
    chi, d_w, d_a, d_g = hn_susceptibility(w, p[3], p[4], derivatives=True)
    return chi, [d_w, d_a, d_g]


def _kww_model_chi(omega, p, derivatives=False):
    w = omega * math.exp(p[2])
    if not derivatives:
        return kww_susceptibility(w, p[3])
    chi, d_w, d_b = kww_susceptibility(w, p[3], derivatives=True)
    return chi, [d_w, d_b]


# model -> (chi function, shape names, default shape bounds, start grid of shapes)
_MODELS = {
    "havriliak_negami": (_hn_model, ("alpha", "gamma"), HN_BOUNDS,
                         [(a, g) for a in (0.3, 0.5, 0.7, 0.9, 1.0)
                          for g in (0.3, 0.5, 0.7, 0.9, 1.0)]),
    "kww": (_kww_model_chi, ("beta",), {"beta": KWW_BETA_BOUNDS},
            [(b,) for b in (0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)]),
}


def _modulus_jac(model, omega, p, fast="none"):
    """d (M'(omega_1..K), M''(omega_1..K)) / d p, shape (2K, P); p = (M_u, Delta_M,
    ln tau, shape..., fast amplitude, fast exponent) (the fast ones as ``fast`` has)."""
    n_fast = len(FAST_TERMS[fast])
    p_relax = p[:p.size - n_fast] if n_fast else p
    chi, dchi = _MODELS[model][0](omega, p_relax, True)
    k = omega.size
    jac = np.zeros((2 * k, p.size))
    jac[:k, 0] = 1.0
    jac[:k, 1] = -chi.real
    jac[k:, 1] = -chi.imag
    for j, d in enumerate(dchi):
        jac[:k, 2 + j] = -p[1] * d.real
        jac[k:, 2 + j] = -p[1] * d.imag
    if n_fast:
        j0 = p.size - n_fast
        exponent = p[j0 + 1] if n_fast == 2 else 1.0
        _, d_amp, d_exp = fast_modulus(omega, p[j0], exponent, derivatives=True)
        jac[:k, j0], jac[k:, j0] = d_amp.real, d_amp.imag
        if n_fast == 2:
            jac[:k, j0 + 1], jac[k:, j0 + 1] = d_exp.real, d_exp.imag
    return jac


def _model_modulus(model, omega, p, fast):
    """(M', M'') of internal parameters p (relaxation, then the fast term)."""
    n_fast = len(FAST_TERMS[fast])
    chi = _MODELS[model][0](omega, p[:p.size - n_fast] if n_fast else p)
    m1, m2 = p[0] - p[1] * chi.real, -p[1] * chi.imag
    if n_fast:
        j0 = p.size - n_fast
        f = fast_modulus(omega, p[j0], p[j0 + 1] if n_fast == 2 else 1.0)
        m1, m2 = m1 + f.real, m2 + f.imag
    return m1, m2


# ============================================================================ fits
def _spectrum_arrays(omega, m_storage, m_loss, storage_err, loss_err):
    omega = np.asarray(omega, dtype=np.float64)
    if omega.ndim != 1 or omega.size < 1 or not np.all(np.isfinite(omega)) or np.any(
            omega <= 0):
        raise ValueError("omega must be a 1-D array of finite positive angular frequencies")

    def arr(v, name):
        if v is None:
            return None
        v = np.asarray(v, dtype=np.float64)
        if v.shape != omega.shape or not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite with the shape of omega {omega.shape}")
        return v

    m1, m2 = arr(m_storage, "m_storage"), arr(m_loss, "m_loss")
    if m2 is None:
        raise ValueError("m_loss is required")
    e1, e2 = arr(storage_err, "storage_err"), arr(loss_err, "loss_err")
    for e, name in ((e1, "storage_err"), (e2, "loss_err")):
        if e is not None and np.any(e <= 0):
            raise ValueError(f"{name} must be positive")
    if m1 is not None and (e1 is None) != (e2 is None):
        raise ValueError("give errors for both M' and M'' or for neither")
    return omega, m1, m2, e1, e2


def _fit_spectrum(model, omega, m_storage, m_loss, storage_err, loss_err, *, fix, bounds,
                  stress_unit, time_unit, fast="none") -> SpectrumFit:
    _, shape_names, shape_bounds, shape_grid = _MODELS[model]
    if fast not in FAST_TERMS:
        raise ValueError(f"unknown fast term {fast!r}; choose from {sorted(FAST_TERMS)}")
    fast_names = FAST_TERMS[fast]
    omega, m1, m2, e1, e2 = _spectrum_arrays(omega, m_storage, m_loss, storage_err, loss_err)
    names = ("m_unrelaxed", "delta_modulus", "ln_tau", *shape_names, *fast_names)
    out_names = ("m_unrelaxed", "delta_modulus", "tau", *shape_names, *fast_names)
    n_shape = len(shape_names)
    j_fast = 3 + n_shape  # index of the fast amplitude (when there is one)
    n_p = len(names)
    k = omega.size
    weighted = e2 is not None
    y = np.concatenate([m1 if m1 is not None else np.zeros(k), m2])
    sig = np.concatenate([e1 if e1 is not None else np.ones(k),
                          e2 if e2 is not None else np.ones(k)])
    use = np.concatenate([np.full(k, m1 is not None), np.ones(k, dtype=bool)])
    y, sig = y[use], sig[use]

    # Bounds in internal parameters.
    lo = np.full(n_p, -np.inf)
    hi = np.full(n_p, np.inf)
    lo[2] = math.log(1e-3 / omega.max())
    hi[2] = math.log(1e3 / omega.min())
    bd = dict(shape_bounds)
    if fast_names:
        bd["fast_amplitude"] = (0.0, math.inf)
    if fast == "power":
        bd["fast_exponent"] = FAST_EXPONENT_BOUNDS
    if bounds is not None:
        if not isinstance(bounds, Mapping):
            raise ValueError("bounds must be a mapping such as {'beta': (0.2, 1.0)}")
        for key, v in bounds.items():
            if key == "tau":
                lo[2], hi[2] = (math.log(float(x)) for x in v)
            elif key in bd:
                bd[key] = tuple(float(x) for x in v)
            else:
                raise ValueError(f"unknown bound {key!r}; use 'tau' or "
                                 f"{(*shape_names, *fast_names)}")
    for j, n in enumerate((*shape_names, *fast_names)):
        lo[3 + j], hi[3 + j] = bd[n]
    if fast == "power" and not (FAST_EXPONENT_BOUNDS[0] <= lo[j_fast + 1]
                                and hi[j_fast + 1] <= FAST_EXPONENT_BOUNDS[1]):
        raise ValueError(f"fast_exponent bounds must lie within {FAST_EXPONENT_BOUNDS}")
    if not np.all(lo < hi):
        raise ValueError("bounds must satisfy lo < hi")
    if model == "kww" and (lo[3] < KWW_BETA_BOUNDS[0] or hi[3] > KWW_BETA_BOUNDS[1]):
        raise ValueError(f"beta bounds must lie within {KWW_BETA_BOUNDS}")

    fixed = {}
    fix = dict(fix or {})
    for key, v in fix.items():
        if key not in out_names:
            raise ValueError(f"cannot fix {key!r}; parameters are {out_names}")
        fixed[key] = float(v)
    free = np.ones(n_p, dtype=bool)
    if m1 is None:
        free[0] = False  # M_u does not enter M''
    for key in fixed:
        free[out_names.index(key)] = False

    def full(q):
        p = base.copy()
        p[free] = q
        return p

    # --- start: grid over (ln tau, shape), (M_u, Delta_M) by weighted linear least squares
    base = np.zeros(n_p)
    base[0] = fixed.get("m_unrelaxed", 0.0)
    base[1] = fixed.get("delta_modulus", 0.0)
    if "tau" in fixed:
        base[2] = math.log(fixed["tau"])
    for j, n in enumerate(shape_names):
        if n in fixed:
            base[3 + j] = fixed[n]
    for j, n in enumerate(fast_names):
        if n in fixed:
            base[j_fast + j] = fixed[n]
    # Start values of the fast exponent (the amplitude is linear, solved with M_u, Delta_M).
    if fast == "power":
        fast_grid = ([fixed["fast_exponent"]] if "fast_exponent" in fixed else
                     [float(np.clip(a, lo[j_fast + 1], hi[j_fast + 1])) for a in (0.5, 1.0)])
    else:
        fast_grid = [1.0]
    lin = [0, 1] + ([j_fast] if fast_names else [])  # linear parameters
    lin_free = [c for c, i in enumerate(lin) if free[i]]  # their columns that are fitted
    best = None
    ln_taus = np.linspace(max(lo[2], -math.log(omega.max()) - 3.0),
                          min(hi[2], -math.log(omega.min()) + 3.0), 31)
    if "tau" in fixed:
        ln_taus = np.array([base[2]])
    for shape in shape_grid:
        shp = np.array([base[3 + j] if n in fixed else float(np.clip(
            shape[j], lo[3 + j], hi[3 + j])) for j, n in enumerate(shape_names)])
        for a_fast in fast_grid:
            unit = fast_modulus(omega, 1.0, a_fast)
            for u in ln_taus:
                w = omega * math.exp(u)
                chi = (_kww_interp(w, shp[0]) if model == "kww"
                       else hn_susceptibility(w, *shp))
                # Columns for (M_u, Delta_M[, A]) of
                # (M', M'') = (M_u - D chi' + A Re u, D chi'' + A Im u).
                a = np.zeros((2 * k, len(lin)))
                a[:k, 0] = 1.0
                a[:k, 1] = -chi.real
                a[k:, 1] = -chi.imag
                if fast_names:
                    a[:k, 2], a[k:, 2] = unit.real, unit.imag
                a = a[use]
                rhs = y.copy()
                for c, i in enumerate(lin):
                    if not free[i]:
                        rhs = rhs - a[:, c] * base[i]
                aw = a[:, lin_free] / sig[:, None]
                coef, *_ = np.linalg.lstsq(aw, rhs / sig, rcond=None)
                cost = float(np.sum((aw @ coef - rhs / sig) ** 2))
                if best is None or cost < best[0]:
                    p = base.copy()
                    p[[lin[c] for c in lin_free]] = coef
                    p[2] = u
                    p[3:3 + n_shape] = shp
                    if fast == "power":
                        p[j_fast + 1] = a_fast
                    best = (cost, p)
    p0 = best[1]
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    if fast_names:
        # The amplitude has no upper bound: its scale for the on-bound test is the one at
        # which the fast term equals Delta_M at the highest frequency.
        a0 = p0[j_fast + 1] if fast == "power" else 1.0
        span[j_fast] = max(abs(p0[1]), 1e-300) / omega.max() ** a0
    q0 = np.clip(p0, lo + 1e-9 * span, hi - 1e-9 * span)[free]

    def resid(q):
        mod = np.concatenate(_model_modulus(model, omega, full(q), fast))[use]
        return (mod - y) / sig

    def jac(q):
        return _modulus_jac(model, omega, full(q), fast)[use][:, free] / sig[:, None]

    sol = optimize.least_squares(resid, q0, jac=jac, bounds=(lo[free], hi[free]),
                                 method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12,
                                 gtol=1e-12, max_nfev=2000)
    if not sol.success:
        raise RuntimeError(f"{model} spectrum fit did not converge: {sol.message}")
    p = full(sol.x)
    at_bound = {}
    for i in np.flatnonzero(free):
        if np.isfinite(lo[i]) and abs(p[i] - lo[i]) <= 1e-6 * span[i]:
            at_bound[out_names[i]] = "lower"
        elif np.isfinite(hi[i]) and abs(p[i] - hi[i]) <= 1e-6 * span[i]:
            at_bound[out_names[i]] = "upper"
    # Parameters on a bound are held there for the covariance (as in the KWW time fits).
    est = np.array([free[i] and out_names[i] not in at_bound for i in range(n_p)])
    r = resid(sol.x)
    jac_est = _modulus_jac(model, omega, p, fast)[use][:, est] / sig[:, None]
    cov_est, chi2, _ = scaled_covariance(jac_est, np.ones_like(r), r, known=weighted)
    dof = int(r.size - free.sum())
    cov = np.full((n_p, n_p), np.nan)
    cov[np.ix_(est, est)] = cov_est
    if at_bound:
        warnings.warn(f"{model} spectrum fit ended on the bound of {sorted(at_bound)}: not "
                      "constrained by the data (reported without an error)", RuntimeWarning,
                      stacklevel=3)
    params = {n: float(v) for n, v in zip(out_names, p)}
    params["tau"] = math.exp(p[2])
    if not free[0] and "m_unrelaxed" not in fixed:
        params["m_unrelaxed"] = math.nan
    errors = {n: float(math.sqrt(cov[i, i])) if est[i] else math.nan
              for i, n in enumerate(out_names)}
    if est[2]:
        errors["tau"] = params["tau"] * errors["tau"]
    quantities = "M' and M''" if m1 is not None else "M'' only"
    method = (f"weighted least squares on {quantities} with the given errors; covariance "
              "scaled by chi2/dof when chi2 exceeds its 95 % quantile" if weighted else
              f"unweighted least squares on {quantities}; covariance scaled by chi2/dof")
    return SpectrumFit(model=model, params=params, errors=errors, names=names,
                       covariance=cov, at_bound=at_bound, fixed=fixed, chi2=float(chi2),
                       dof=dof, n_points=int(r.size),
                       omega_range=(float(omega.min()), float(omega.max())),
                       weighted=weighted, error_method=method, stress_unit=str(stress_unit),
                       time_unit=str(time_unit), fast=fast)


_FIT_DOC = """
    Parameters
    ----------
    omega : array_like, shape (K,)
        Angular frequencies (> 0), rad per ``time_unit``.
    m_storage : array_like, shape (K,) or None
        M'(omega), ``stress_unit``; None fits M'' alone (then ``m_unrelaxed`` is not
        determined and is NaN).
    m_loss : array_like, shape (K,)
        M''(omega).
    storage_err, loss_err : array_like, shape (K,), optional
        68 % errors of the points (e.g. ``DMSMean.m_storage_err``); without them the fit is
        unweighted and the covariance is scaled by chi^2/dof.
    fix : mapping, optional
        Parameters held at given values, e.g. ``{"gamma": 1.0}`` (Cole-Cole); names as in
        :attr:`SpectrumFit.params` (``tau`` in ``time_unit``).
    bounds : mapping, optional
        ``{"tau": (lo, hi), <shape>: (lo, hi)}``; defaults: tau within 1e-3/omega_max and
        1e3/omega_min, shape bounds {shape_bounds}; ``fast_amplitude`` >= 0,
        ``fast_exponent`` in [0.05, 1].
    fast : {"none", "viscous", "power"}
        Add the fast term ``A (i omega)^a`` (module docstring): none, ``a = 1`` or ``a``
        fitted.
    stress_unit, time_unit : str
        Labels carried into the result.

    Returns
    -------
    SpectrumFit

    Raises
    ------
    ValueError
        Bad shapes, non-positive omega or errors, unknown names.
    RuntimeError
        The optimiser did not converge.

    Warns
    -----
    RuntimeWarning
        A parameter ended on its bound (reported as unconstrained, without an error).
"""


def fit_havriliak_negami(omega, m_storage, m_loss, storage_err=None, loss_err=None, *,
                         fix=None, bounds=None, stress_unit="", time_unit="",
                         fast="none") -> SpectrumFit:
    """Fit ``M*(omega) = M_inf - Delta_M / (1 + (i omega tau)^alpha)^gamma`` (Havriliak &
    Negami 1967) to M' and M'' (convention in the module docstring: M' rises from
    ``M_inf - Delta_M`` to ``M_inf``; ``params["m_unrelaxed"]`` is M_inf).
    """
    return _fit_spectrum("havriliak_negami", omega, m_storage, m_loss, storage_err, loss_err,
                         fix=fix, bounds=bounds, stress_unit=stress_unit, time_unit=time_unit,
                         fast=fast)


def fit_kww_spectrum(omega, m_storage, m_loss, storage_err=None, loss_err=None, *, fix=None,
                     bounds=None, stress_unit="", time_unit="", fast="none") -> SpectrumFit:
    """Fit ``M*(omega) = M_u - Delta_M chi_KWW(omega tau; beta)``, the modulus of a
    relaxation ``M(t) = M_u - Delta_M + Delta_M exp[-(t/tau)^beta]`` (Williams & Watts
    1970), to M' and M''; chi from :func:`kww_susceptibility`.
    """
    return _fit_spectrum("kww", omega, m_storage, m_loss, storage_err, loss_err, fix=fix,
                         bounds=bounds, stress_unit=stress_unit, time_unit=time_unit,
                         fast=fast)


fit_havriliak_negami.__doc__ += _FIT_DOC.replace("{shape_bounds}", "alpha, gamma in "
                                                  "[0.05, 1]")
fit_kww_spectrum.__doc__ += _FIT_DOC.replace("{shape_bounds}", "beta in [0.05, 2]")


# ============================================================================ cross-check
def dms_arrays(results) -> dict:
    """Arrays of a DMS spectrum from :class:`~swapmc.analysis.DMSMean` (or
    :class:`~swapmc.analysis.DMSResult`) objects, sorted by omega.

    Parameters
    ----------
    results : sequence of DMSMean or DMSResult, length K

    Returns
    -------
    dict of ndarray, shape (K,)
        ``omega``, ``m_storage``, ``m_storage_err``, ``m_loss``, ``m_loss_err``,
        ``tan_delta``, ``tan_delta_err``.
    """
    results = sorted(results, key=lambda r: r.omega)
    keys = ("omega", "m_storage", "m_storage_err", "m_loss", "m_loss_err", "tan_delta",
            "tan_delta_err")
    return {k: np.array([float(getattr(r, k)) for r in results]) for k in keys}


@dataclass(frozen=True)
class DMSPrediction:
    """M'(omega), M''(omega), tan delta predicted from a step-strain KWW fit.

    Arrays of shape (K,); ``*_err`` are 68 % delta-method half-widths from the KWW
    covariance (times the Student-t factor of its ``error_dof``, so they match the
    KWWResult's own errors). ``covariance`` (2K, 2K) is that of (M'_1..M'_K, M''_1..M''_K).
    ``extrapolated`` marks frequencies outside ``[1 / t_last, 1 / t_first]`` of the KWW fit
    range: there the prediction relies on the KWW form beyond the fitted times (at
    ``omega t_first > 1`` the vibrational relaxation excluded from the fit matters).
    ``held_fixed`` lists KWW parameters at a bound (no error; held at their values).
    """

    omega: np.ndarray
    m_storage: np.ndarray
    m_storage_err: np.ndarray
    m_loss: np.ndarray
    m_loss_err: np.ndarray
    tan_delta: np.ndarray
    tan_delta_err: np.ndarray
    covariance: np.ndarray = field(repr=False)
    extrapolated: np.ndarray = field(repr=False, default=None)
    held_fixed: tuple = ()
    stress_unit: str = ""
    time_unit: str = ""


def dms_from_kww(kww: KWWResult, omega) -> DMSPrediction:
    """Predict the DMS of a step-strain relaxation fit.

    ``M(t) = residual_modulus + delta_modulus phi(t)`` gives
    ``M* = M_u - Delta_M chi_KWW(omega tau; beta)`` with ``M_u = residual_modulus +
    delta_modulus`` (module docstring).

    Parameters
    ----------
    kww : KWWResult
        From :func:`~swapmc.analysis.fit_kww_glasses` (or :func:`~swapmc.analysis.fit_kww`).
    omega : array_like, shape (K,)
        Angular frequencies (> 0), rad per ``kww.time_unit``.

    Returns
    -------
    DMSPrediction
    """
    if not isinstance(kww, KWWResult):
        raise TypeError("kww must be a KWWResult")
    omega = np.atleast_1d(np.asarray(omega, dtype=np.float64))
    if omega.ndim != 1 or not np.all(np.isfinite(omega)) or np.any(omega <= 0):
        raise ValueError("omega must be finite and positive")
    tau, beta, dm, mr = kww.tau, kww.beta, kww.delta_modulus, kww.residual_modulus
    chi, d_w, d_b = kww_susceptibility(omega * tau, beta, derivatives=True)
    m1 = mr + dm * (1.0 - chi.real)
    m2 = -dm * chi.imag
    k = omega.size
    # Jacobian in (ln tau, beta, Delta_M, M_r).
    jac = np.zeros((2 * k, 4))
    jac[:k, 0], jac[k:, 0] = -dm * d_w.real, -dm * d_w.imag
    jac[:k, 1], jac[k:, 1] = -dm * d_b.real, -dm * d_b.imag
    jac[:k, 2], jac[k:, 2] = 1.0 - chi.real, -chi.imag
    jac[:k, 3] = 1.0
    cov = np.array(kww.covariance, dtype=np.float64).copy()  # (tau, beta, D, M_r)
    cov[0, :] /= tau
    cov[:, 0] /= tau
    tf = t_factor68(kww.error_dof) if kww.error_dof > 0 else 1.0
    cov = np.nan_to_num(cov, nan=0.0) * tf * tf
    pred_cov = jac @ cov @ jac.T
    var = np.diag(pred_cov)
    e1, e2 = np.sqrt(np.maximum(var[:k], 0)), np.sqrt(np.maximum(var[k:], 0))
    tan = m2 / m1
    # tan delta = M''/M': gradient (-M''/M'^2, 1/M') on the (M'_i, M''_i) block.
    c12 = pred_cov[np.arange(k), k + np.arange(k)]
    tan_var = (m2 / m1**2) ** 2 * var[:k] + var[k:] / m1**2 - 2 * m2 / m1**3 * c12
    t0, t1 = kww.fit_range
    with np.errstate(divide="ignore"):
        extrap = (omega < 1.0 / t1) | (omega > 1.0 / t0 if t0 > 0 else False)
    return DMSPrediction(omega=omega, m_storage=m1, m_storage_err=e1, m_loss=m2,
                         m_loss_err=e2, tan_delta=tan,
                         tan_delta_err=np.sqrt(np.maximum(tan_var, 0.0)),
                         covariance=pred_cov, extrapolated=np.asarray(extrap),
                         held_fixed=tuple(sorted(kww.at_bound)),
                         stress_unit=kww.stress_unit, time_unit=kww.time_unit)


@dataclass(frozen=True)
class DMSComparison:
    """Measured DMS against a prediction (:func:`compare_dms`).

    ``z_*`` (shape (K,)) are ``(measured - predicted) / sqrt(err_measured^2 +
    err_predicted^2)`` per frequency and quantity. ``chi2`` is the Mahalanobis distance of
    the measured (M', M'') from the prediction with the full covariance (measurement errors
    independent, prediction errors correlated through the KWW parameters), ``dof = 2K`` and
    ``p_value`` its chi^2 tail probability: small p means the step-strain relaxation does not
    describe the DMS within the errors.
    """

    omega: np.ndarray
    z_storage: np.ndarray
    z_loss: np.ndarray
    z_tan_delta: np.ndarray
    chi2: float
    dof: int
    p_value: float
    prediction: DMSPrediction = field(repr=False)


def compare_dms(kww: KWWResult, measured: Sequence) -> DMSComparison:
    """Compare measured DMS points with the prediction of a step-strain KWW fit.

    Parameters
    ----------
    kww : KWWResult
        Step-strain relaxation fit (same time unit as the DMS frequencies).
    measured : sequence of DMSMean or DMSResult, length K
        Measured points (errors: 68 % half-widths, M' and M'' taken as independent).

    Returns
    -------
    DMSComparison

    Raises
    ------
    ValueError
        Different non-empty time or stress unit labels.
    """
    measured = list(measured)
    for m in measured:
        for attr in ("time_unit", "stress_unit"):
            a, b = getattr(m, attr, ""), getattr(kww, attr)
            if a and b and a != b:
                raise ValueError(f"{attr} differs: measured {a!r}, KWW fit {b!r}")
    d = dms_arrays(measured)
    pred = dms_from_kww(kww, d["omega"])
    k = d["omega"].size

    def z(meas, err, p, perr):
        return (meas - p) / np.sqrt(err**2 + perr**2)

    r = np.concatenate([d["m_storage"] - pred.m_storage, d["m_loss"] - pred.m_loss])
    c = pred.covariance + np.diag(np.concatenate([d["m_storage_err"], d["m_loss_err"]]) ** 2)
    chi2 = float(r @ np.linalg.solve(c, r))
    return DMSComparison(
        omega=d["omega"],
        z_storage=z(d["m_storage"], d["m_storage_err"], pred.m_storage, pred.m_storage_err),
        z_loss=z(d["m_loss"], d["m_loss_err"], pred.m_loss, pred.m_loss_err),
        z_tan_delta=z(d["tan_delta"], d["tan_delta_err"], pred.tan_delta,
                      pred.tan_delta_err),
        chi2=chi2, dof=2 * k, p_value=float(stats.chi2.sf(chi2, 2 * k)), prediction=pred)
