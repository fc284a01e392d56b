"""Secondary (beta) relaxation on a loss spectrum: a beta peak, a shoulder on the alpha
flank, or an excess wing, decided by comparing an alpha-only model with alpha + beta.

Pure functions over arrays; the inputs are the spectra of swapmc's DMS with their 68 %
errors over glasses (``*_err`` of :class:`~swapmc.analysis.DMSMean`).

Definitions
-----------
A beta feature is loss that the alpha process alone does not describe and that one extra,
symmetric relaxation term does:

* **isothermal** M''(omega) (:func:`detect_beta_isothermal`): the alpha model is
  ``Delta_a chi''_KWW(omega tau_a; beta_KWW)`` (or Havriliak-Negami,
  ``alpha_model="havriliak_negami"``; :mod:`swapmc.analysis.loss_models`), the beta term a
  Cole-Cole loss ``Delta_b chi''_CC(omega tau_b; a)`` with
  ``chi_CC = 1 / (1 + (i omega tau_b)^a)``, a peak symmetric in ln omega whose maximum is
  exactly at ``ln omega_b = -ln tau_b``.
* **isochronal** tan delta(T) or M''(T) at one frequency (:func:`detect_beta_isochronal`):
  the alpha model is the low-temperature flank of the alpha peak,
  ``c + h exp[-B (1/(T - T_0) - 1/(T_hi - T_0))]``: for ``omega tau_a >> 1`` a
  Havriliak-Negami or KWW loss falls as ``(omega tau_a)^-s`` and ``ln tau_a`` is Arrhenius
  (``T_0 = 0``, ``alpha_form="arrhenius"``, the default: below T_g the structure is frozen)
  or VFT (``alpha_form="vft"``, T_0 free in [0, 0.95 T_min]); ``c`` is the loss floor and
  T_hi the top of the fitted window. The beta term is a symmetric peak in 1/T,
  ``A / cosh[(1/T - 1/T_b) / s]``: the isochronal loss of an Arrhenius Debye process is
  exactly this (ln omega tau_b is linear in 1/T), and that of an Arrhenius Cole-Cole
  process, ``1 / (cosh z + cos(a pi / 2))``, has the same exponential tails (a Gaussian in
  1/T, the shape of a Gaussian spread of activation energies, put T_b low by ~0.5 of its
  error on the synthetic Cole-Cole scans). The window is the rising flank: all points up to
  the last one below ``flank_fraction`` (default 0.2) of the maximum when the maximum is
  a resolved peak inside the scan (:func:`~swapmc.analysis.locate_peak`; the alpha peak
  itself is not of the flank form), else every point.

**Decision.** Both models are fitted by weighted least squares (several starts of the beta
location across the window, so the global alpha + beta optimum is found). The beta term is
kept when the F statistic of the nested models,
``F = [(chi2_a - chi2_ab) / 3] / [chi2_ab / dof_ab]``, has ``p < p_max`` (default 0.01)
under the F(3, dof_ab) law **and** the beta amplitude is at least ``min_significance``
(default 2) of its error. The F form does not rely on the absolute scale of the errors,
which over a few glasses are themselves uncertain. Under "no beta" the beta location is not
identified, so the nominal p is not the false-positive rate: the rate measured on
synthetic alpha-only spectra is stated in the README and ``docs/beta_detection_*.txt``
(``scripts/beta_detection_calibration.py``).

**Classification** of a kept term (``kind``):

* ``"peak"`` / ``"shoulder"``: the beta maximum and its 68 % interval lie inside the
  scanned window on the fast side of the alpha peak (high omega, low T); ``"peak"`` when
  the total model has a separate maximum there, ``"shoulder"`` when it only bends the
  alpha flank. ``position`` is ln omega_b (isothermal; omega in rad per time unit) or T_b
  (isochronal), with its 68 % error from the fit covariance (the project's chi^2 rule,
  :func:`swapmc.analysis._lsq.scaled_covariance`).
* ``"wing"`` (isothermal): the beta maximum lies beyond the highest frequency (its 68 %
  interval reaches past the edge): the high-frequency loss falls as a power law flatter
  than the alpha model's. ``wing_slope`` is d ln M'' / d ln omega of the alpha + beta fit
  at the highest frequency and ``alpha_slope`` that of the alpha-only fit, with errors;
  the isochronal analogue (beta below the lowest T) is ``"edge"``.
* ``"other"``: extra loss on the slow side of the alpha peak (not a secondary relaxation;
  usually a misfit of the alpha shape).

``"none"`` means the test did not keep the term; ``reason`` says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from ._lsq import scaled_covariance
from .loss_models import (
    FAST_EXPONENT_BOUNDS,
    FAST_TERMS,
    HN_BOUNDS,
    fast_modulus,
    hn_susceptibility,
    kww_susceptibility,
)
from .mechanics import KWW_BETA_BOUNDS
from .spectroscopy import locate_peak

__all__ = ["BetaFeature", "ALPHA_MODELS", "detect_beta_isothermal", "detect_beta_isochronal",
           "cole_cole_loss", "BETA_P_MAX"]

#: Default largest nominal F-test p value for keeping a beta term.
BETA_P_MAX = 0.01
#: Alpha models of the isothermal test: name -> shape parameter names.
ALPHA_MODELS = {"kww": ("beta_kww",), "havriliak_negami": ("alpha_hn", "gamma_hn")}
# Bounds of the Cole-Cole width exponent a (a = 1: Debye; small a: broad).
_CC_BOUNDS = (0.05, 1.0)


def _nan_to_none(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def cole_cole_loss(omega, tau, a):
    """Normalised Cole-Cole loss ``chi''`` of ``1 / (1 + (i omega tau)^a)``.

    Parameters
    ----------
    omega : array_like, shape (K,)
        Angular frequencies (rad per time unit), >= 0.
    tau : float
        Relaxation time (time unit); the maximum is at ``omega tau = 1``.
    a : float
        Width exponent in (0, 1] (1: Debye).

    Returns
    -------
    ndarray, shape (K,)
        ``chi'' >= 0``, peak value ``sin(a pi/2) / (2 + 2 cos(a pi/2))``.
    """
    return -hn_susceptibility(np.asarray(omega, dtype=np.float64) * tau, a, 1.0).imag


@dataclass(frozen=True)
class BetaFeature:
    """Result of :func:`detect_beta_isothermal` / :func:`detect_beta_isochronal`.

    ``kind`` is ``"none"``, ``"peak"``, ``"shoulder"``, ``"wing"``, ``"edge"`` or
    ``"other"`` (module docstring); ``found`` is True for peak, shoulder and wing.
    ``variable`` is ``"ln_omega"`` (isothermal; ``fixed`` = T) or ``"temperature"``
    (isochronal; ``fixed`` = omega). ``position`` (ln omega_b or T_b), ``amplitude``
    (Delta_b or A, unit of the data) and ``width`` (Cole-Cole exponent a, or the s of the
    symmetric peak, 1/T units) are those of the alpha + beta fit, with 68 % errors, also
    when the term was not kept (then they describe the best, rejected, term).
    ``f_stat``, ``p_value``, ``chi2_*`` and ``dof_*`` are the test's; ``aic_*`` the Akaike criteria
    ``chi2 + 2 P`` (for reference). ``alpha_params`` / ``beta_params`` name the fitted
    parameters of both fits (``alpha_only``: the alpha-only fit) and ``window`` the x range
    fitted. :meth:`curves` evaluates the fits.
    """

    kind: str
    reason: str
    variable: str
    fixed: float
    position: float
    position_err: float
    amplitude: float
    amplitude_err: float
    width: float
    width_err: float
    f_stat: float
    p_value: float
    p_max: float
    chi2_alpha: float
    dof_alpha: int
    chi2_both: float
    dof_both: int
    aic_alpha: float
    aic_both: float
    wing_slope: float
    wing_slope_err: float
    alpha_slope: float
    alpha_slope_err: float
    alpha_model: str
    alpha_only: dict
    alpha_params: dict
    beta_params: dict
    at_bound: tuple
    window: tuple
    n_points: int
    weighted: bool
    method: str
    _p_alpha: np.ndarray = field(repr=False, compare=False, default=None)
    _p_both: np.ndarray = field(repr=False, compare=False, default=None)
    _extra: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def found(self) -> bool:
        return self.kind in ("peak", "shoulder", "wing")

    def curves(self, x):
        """The fits at ``x`` (omega for isothermal, T for isochronal), shape (K,) each:
        ``(alpha_only, alpha_part, beta_part, total)`` where the last three are the alpha +
        beta fit and its two terms."""
        x = np.asarray(x, dtype=np.float64)
        if self.variable == "ln_omega":
            fast = self._extra.get("fast", "none")
            a_only = _iso_alpha(self.alpha_model, x, self._p_alpha, fast)
            n_a = self._p_alpha.size
            a_part = _iso_alpha(self.alpha_model, x, self._p_both[:n_a], fast)
            b_part = _iso_beta(x, self._p_both[n_a:])
        else:
            ex = self._extra
            a_only = _ch_alpha(x, self._p_alpha, ex["t_hi"], ex["form"])
            n_a = self._p_alpha.size
            a_part = _ch_alpha(x, self._p_both[:n_a], ex["t_hi"], ex["form"])
            b_part = _ch_beta(x, self._p_both[n_a:])
        return a_only, a_part, b_part, a_part + b_part

    def as_dict(self) -> dict:
        """JSON-ready fields (NaN as None)."""
        out = {}
        for name in self.__dataclass_fields__:
            if name.startswith("_"):
                continue
            v = getattr(self, name)
            if isinstance(v, dict):
                v = {k: _nan_to_none(float(x)) for k, x in v.items()}
            elif isinstance(v, tuple):
                v = [_nan_to_none(x) if isinstance(x, float) else x for x in v]
            out[name] = _nan_to_none(v)
        out["found"] = self.found
        return out


# ============================================================================ models
def _iso_alpha(model, omega, p, fast="none"):
    """Alpha loss plus the fast term; p = (Delta_a, ln tau_a, shape..., fast...)."""
    w = omega * math.exp(p[1])
    n_shape = len(ALPHA_MODELS[model])
    if model == "kww":
        y = -p[0] * kww_susceptibility(w, float(p[2])).imag
    else:
        y = -p[0] * hn_susceptibility(w, float(p[2]), float(p[3])).imag
    if fast != "none":
        a = float(p[3 + n_shape]) if fast == "power" else 1.0
        y = y + fast_modulus(omega, float(p[2 + n_shape]), a).imag
    return y


def _iso_beta(omega, q):
    """Cole-Cole loss; q = (Delta_b, ln tau_b, a)."""
    return q[0] * cole_cole_loss(omega, math.exp(q[1]), float(q[2]))


def _ch_alpha(t, p, t_hi, form):
    """Isochronal alpha flank; p = (c, h, ln B[, T_0])."""
    t0 = p[3] if form == "vft" else 0.0
    b = math.exp(p[2])
    with np.errstate(over="ignore"):
        return p[0] + p[1] * np.exp(-b * (1.0 / (t - t0) - 1.0 / (t_hi - t0)))


def _ch_beta(t, q):
    """Symmetric peak in 1/T, A / cosh((1/T - 1/T_b) / s); q = (A, 1/T_b, ln s)."""
    z = np.abs((1.0 / t - q[1]) / math.exp(q[2]))
    # 1/cosh z = 2 e^-z / (1 + e^-2z), safe for large z
    e = np.exp(-z)
    return q[0] * 2.0 * e / (1.0 + e * e)


def _lsq(fun, p0, lo, hi, x_scale=None):
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    p0 = np.clip(p0, lo + 1e-9 * span, hi - 1e-9 * span)
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return optimize.least_squares(fun, p0, bounds=(lo, hi), method="trf",
                                      x_scale="jac" if x_scale is None else x_scale,
                                      xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=400)


def _at_bound(p, lo, hi, names):
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    out = []
    for i, n in enumerate(names):
        if (np.isfinite(lo[i]) and p[i] - lo[i] <= 1e-6 * span[i]) or (
                np.isfinite(hi[i]) and hi[i] - p[i] <= 1e-6 * span[i]):
            out.append(n)
    return out


def _covariance(fun, p, lo, hi, names, weighted):
    """Covariance of the parameters not on a bound (NaN rows for those), chi2, Jacobian."""
    r = fun(p)
    n = p.size
    jac = np.empty((r.size, n))
    for k in range(n):
        h = 1e-6 * max(1.0, abs(p[k]))
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        jac[:, k] = (fun(up) - fun(dn)) / (2 * h)
    bound = _at_bound(p, lo, hi, names)
    est = np.array([nm not in bound for nm in names])
    cov = np.full((n, n), np.nan)
    c, chi2, _ = scaled_covariance(jac[:, est], np.ones(r.size), r, known=weighted)
    cov[np.ix_(est, est)] = c
    return cov, float(np.sum(r * r)), bound


def _f_test(chi2_a, dof_a, chi2_b, dof_b):
    d = dof_a - dof_b
    if dof_b <= 0 or d <= 0:
        return math.nan, math.nan
    if chi2_b <= 0:
        return math.inf, 0.0
    f = max(chi2_a - chi2_b, 0.0) / d / (chi2_b / dof_b)
    return float(f), float(stats.f.sf(f, d, dof_b))


def _prepare(x, y, y_err, min_points, what):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"{what} and the loss must be 1-D arrays of equal length")
    if x.size < min_points:
        raise ValueError(f"a beta test needs at least {min_points} points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.diff(x) <= 0):
        raise ValueError(f"{what} must be finite and strictly increasing, the loss finite")
    weighted = y_err is not None
    if weighted:
        s = np.asarray(y_err, dtype=np.float64)
        if s.shape != x.shape or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("errors must be finite, positive, of the shape of the loss")
    else:
        s = np.ones_like(y)
    return x, y, s, weighted


# ============================================================================ isothermal
def detect_beta_isothermal(omega, m_loss, m_loss_err=None, *, alpha_model="kww",
                           temperature=math.nan, p_max=BETA_P_MAX,
                           min_significance=2.0, n_starts=12,
                           fast="none") -> BetaFeature:
    """Test an isothermal loss spectrum for a beta peak, shoulder or excess wing.

    Parameters
    ----------
    omega : array_like, shape (K,)
        Angular frequencies (rad per time unit), > 0, increasing; K >= 8 (the alpha + beta
        model has up to 7 parameters).
    m_loss : array_like, shape (K,)
        M''(omega) (stress unit), or another loss such as tan delta.
    m_loss_err : array_like, shape (K,), optional
        68 % errors (over glasses). Without them the fits are unweighted.
    alpha_model : {"kww", "havriliak_negami"}
        Shape of the alpha loss (module docstring). Havriliak-Negami's free high-frequency
        exponent alpha*gamma absorbs part of a wing, so it is the more conservative test.
    temperature : float
        The spectrum's temperature, stored as ``fixed``.
    p_max : float
        Largest nominal F-test p value for keeping the beta term.
    min_significance : float
        Least amplitude / error of a kept beta term.
    n_starts : int
        Starting beta locations spread over the window (each tried with a = 0.3 and 0.7).
    fast : {"none", "viscous", "power"}
        Fast loss added to the alpha model (and so to both nested fits):
        ``eta_f omega`` or ``A omega^a sin(a pi / 2)``, the loss of the fast terms of
        :mod:`swapmc.analysis.loss_models`. MD spectra whose loss rises again at the highest
        frequencies need it: without it that rise is taken for an excess wing. Its
        parameters (``fast_amplitude``, ``fast_exponent``) are reported with the alpha ones.

    Returns
    -------
    BetaFeature

    Raises
    ------
    ValueError
        Bad shapes or values, too few points, unknown ``alpha_model`` or ``fast``.
    """
    if alpha_model not in ALPHA_MODELS:
        raise ValueError(f"alpha_model must be one of {sorted(ALPHA_MODELS)}, got "
                         f"{alpha_model!r}")
    omega = np.asarray(omega, dtype=np.float64)
    if omega.ndim == 1 and np.any(omega <= 0):
        raise ValueError("omega must be > 0")
    if fast not in FAST_TERMS:
        raise ValueError(f"fast must be one of {sorted(FAST_TERMS)}, got {fast!r}")
    shape_names = ALPHA_MODELS[alpha_model]
    fast_names = FAST_TERMS[fast]
    n_shape = len(shape_names)
    n_alpha = 2 + n_shape + len(fast_names)
    w, y, s, weighted = _prepare(omega, m_loss, m_loss_err, n_alpha + 3 + 1, "omega")
    lnw = np.log(w)
    y_scale = float(np.max(np.abs(y))) or 1.0
    # Alpha bounds: Delta_a >= 0, tau_a up to 3 decades beyond the window; shapes.
    lo_a = [0.0, -lnw[-1] - 7.0]
    hi_a = [np.inf, -lnw[0] + 7.0]
    if alpha_model == "kww":
        lo_a.append(max(KWW_BETA_BOUNDS[0], 0.1))
        hi_a.append(1.0)
    else:
        lo_a += [HN_BOUNDS["alpha"][0], HN_BOUNDS["gamma"][0]]
        hi_a += [HN_BOUNDS["alpha"][1], HN_BOUNDS["gamma"][1]]
    if fast_names:
        lo_a.append(0.0)
        hi_a.append(np.inf)
    if fast == "power":
        lo_a.append(FAST_EXPONENT_BOUNDS[0])
        hi_a.append(FAST_EXPONENT_BOUNDS[1])
    lo_a, hi_a = np.array(lo_a), np.array(hi_a)
    # Beta: Delta_b >= 0, ln tau_b within 3 e-folds of the window, a in _CC_BOUNDS.
    lo_b = np.array([0.0, -lnw[-1] - 3.0, _CC_BOUNDS[0]])
    hi_b = np.array([np.inf, -lnw[0] + 3.0, _CC_BOUNDS[1]])
    names_a = ("delta_alpha", "ln_tau_alpha", *shape_names, *fast_names)
    names_b = ("delta_beta", "ln_tau_beta", "a_beta")

    def ra(p):
        return (_iso_alpha(alpha_model, w, p, fast) - y) / s

    def rb(p):
        return (_iso_alpha(alpha_model, w, p[:n_alpha], fast) + _iso_beta(w, p[n_alpha:])
                - y) / s

    def fast_loss(a_fast):
        """Loss of the fast term of unit amplitude (no column without one)."""
        return [fast_modulus(w, 1.0, a_fast).imag] if fast_names else []

    # ---- alpha only: grid over (ln tau, shape[, fast exponent]) with the amplitudes
    # (alpha and fast) solved by non-negative least squares
    best = None
    shapes = ([(b,) for b in (0.3, 0.45, 0.6, 0.8, 1.0)] if alpha_model == "kww" else
              [(a, g) for a in (0.4, 0.7, 1.0) for g in (0.4, 0.7, 1.0)])
    fast_grid = (0.5, 1.0) if fast == "power" else (1.0,)
    for shp in shapes:
        for a_fast in fast_grid:
            cols_fast = fast_loss(a_fast)
            for u in np.linspace(lo_a[1] + 2.0, hi_a[1] - 2.0, 15):
                g = _iso_alpha(alpha_model, w, np.array([1.0, u, *shp]))
                amps, rn = optimize.nnls(np.stack([g, *cols_fast], axis=1) / s[:, None],
                                         y / s)
                if best is None or rn < best[0]:
                    p0 = [amps[0], u, *shp] + ([amps[1]] if fast_names else []) + (
                        [a_fast] if fast == "power" else [])
                    best = (rn, np.array(p0, dtype=np.float64))
    # The fast amplitude's scale: the loss it gives at the highest frequency ~ y_scale.
    xs_a = np.array([y_scale, 1.0] + [0.1] * n_shape
                    + ([y_scale / w[-1]] if fast_names else [])
                    + ([0.1] if fast == "power" else []))
    sol_a = _lsq(ra, best[1], lo_a, hi_a, xs_a)
    p_a = sol_a.x
    cov_a, chi2_a, bound_a = _covariance(ra, p_a, lo_a, hi_a, names_a, weighted)
    dof_a = w.size - n_alpha

    # ---- alpha + beta: beta starts across the window, amplitudes by NNLS with the alpha
    # shape held, then the best few refined with everything free
    lo = np.concatenate([lo_a, lo_b])
    hi = np.concatenate([hi_a, hi_b])
    g_a = _iso_alpha(alpha_model, w, np.concatenate([[1.0], p_a[1:2 + n_shape]]))
    cols_fast = fast_loss(float(p_a[3 + n_shape]) if fast == "power" else 1.0)
    starts = []
    for u in np.linspace(lo_b[1] + 0.5, hi_b[1] - 0.5, int(n_starts)):
        for a in (0.3, 0.7):
            g_b = cole_cole_loss(w, math.exp(u), a)
            amps, rn = optimize.nnls(np.stack([g_a, *cols_fast, g_b], axis=1) / s[:, None],
                                     y / s)
            p0 = p_a.copy()
            p0[0] = amps[0]
            if fast_names:
                p0[2 + n_shape] = amps[1]
            starts.append((rn, np.concatenate([p0, [amps[-1], u, a]])))
    starts.sort(key=lambda t: t[0])
    xs = np.concatenate([xs_a, [y_scale, 1.0, 0.1]])
    fits = []
    for _, p0 in starts[:3]:
        if p0[n_alpha] <= 0:
            p0 = p0.copy()
            p0[n_alpha] = 0.05 * y_scale
        sol = _lsq(rb, p0, lo, hi, xs)
        fits.append((float(np.sum(sol.fun**2)), sol.x))
    fits.sort(key=lambda t: t[0])
    p_b = fits[0][1]
    if fits[0][0] > chi2_a:  # never worse than alpha alone (the nested optimum)
        p_b = np.concatenate([p_a, [0.0, 0.5 * (lo_b[1] + hi_b[1]), 0.5]])
    cov_b, chi2_b, bound_b = _covariance(rb, p_b, lo, hi, names_a + names_b, weighted)
    dof_b = w.size - n_alpha - 3
    f, p = _f_test(chi2_a, dof_a, chi2_b, dof_b)

    amp, amp_e = float(p_b[n_alpha]), math.sqrt(cov_b[n_alpha, n_alpha]) if math.isfinite(
        cov_b[n_alpha, n_alpha]) else math.nan
    ln_tb = float(p_b[n_alpha + 1])
    ln_tb_e = math.sqrt(cov_b[n_alpha + 1, n_alpha + 1]) if math.isfinite(
        cov_b[n_alpha + 1, n_alpha + 1]) else math.nan
    a_b = float(p_b[n_alpha + 2])
    a_b_e = math.sqrt(cov_b[n_alpha + 2, n_alpha + 2]) if math.isfinite(
        cov_b[n_alpha + 2, n_alpha + 2]) else math.nan
    pos, pos_e = -ln_tb, ln_tb_e

    # log-log slopes at the highest frequency (wing) with delta-method errors
    def slope(fun_p, p, cov):
        def sl(q):
            h = 1e-4
            up = fun_p(np.array([w[-1] * math.exp(h)]), q)[0]
            dn = fun_p(np.array([w[-1] * math.exp(-h)]), q)[0]
            return (math.log(max(up, 1e-300)) - math.log(max(dn, 1e-300))) / (2 * h)
        v = sl(p)
        grad = np.zeros(p.size)
        for k in range(p.size):
            if not math.isfinite(cov[k, k]):
                continue
            hk = 1e-6 * max(1.0, abs(p[k]))
            up, dn = p.copy(), p.copy()
            up[k] += hk
            dn[k] -= hk
            grad[k] = (sl(up) - sl(dn)) / (2 * hk)
        c = np.nan_to_num(cov, nan=0.0)
        return v, math.sqrt(max(float(grad @ c @ grad), 0.0))

    a_sl, a_sl_e = slope(lambda x, q: _iso_alpha(alpha_model, x, q, fast), p_a, cov_a)
    w_sl, w_sl_e = slope(lambda x, q: _iso_alpha(alpha_model, x, q[:n_alpha], fast)
                         + _iso_beta(x, q[n_alpha:]), p_b, cov_b)

    kind, reason = _classify_iso(p, p_max, amp, amp_e, min_significance, pos, pos_e, lnw,
                                 p_b, n_alpha, alpha_model, fast)
    alpha_text = alpha_model + ("" if fast == "none" else f" + {fast} fast term")
    method = (f"weighted least squares of the loss ({alpha_text} alpha, Cole-Cole beta); "
              f"beta kept when the F test of the nested fits has p < {p_max:g} and "
              f"amplitude/error >= {min_significance:g}") if weighted else (
        f"unweighted least squares ({alpha_text} alpha, Cole-Cole beta); F test p < "
        f"{p_max:g}, amplitude/error >= {min_significance:g}")
    return BetaFeature(
        kind=kind, reason=reason, variable="ln_omega", fixed=float(temperature),
        position=pos, position_err=pos_e, amplitude=amp, amplitude_err=amp_e, width=a_b,
        width_err=a_b_e, f_stat=f, p_value=p, p_max=float(p_max), chi2_alpha=chi2_a,
        dof_alpha=int(dof_a), chi2_both=chi2_b, dof_both=int(dof_b),
        aic_alpha=chi2_a + 2 * n_alpha, aic_both=chi2_b + 2 * (n_alpha + 3),
        wing_slope=w_sl, wing_slope_err=w_sl_e, alpha_slope=a_sl, alpha_slope_err=a_sl_e,
        alpha_model=alpha_model, alpha_only=dict(zip(names_a, map(float, p_a))),
        alpha_params=dict(zip(names_a, map(float, p_b[:n_alpha]))),
        beta_params=dict(zip(names_b, map(float, p_b[n_alpha:]))),
        at_bound=tuple(sorted(set(bound_b) | {n + " (alpha only)" for n in bound_a})),
        window=(float(lnw[0]), float(lnw[-1])), n_points=int(w.size), weighted=weighted,
        method=method, _p_alpha=p_a, _p_both=p_b, _extra={"fast": fast})


def _classify_iso(p, p_max, amp, amp_e, min_sig, pos, pos_e, lnw, p_b, n_alpha, model,
                  fast="none"):
    if not (math.isfinite(p) and p < p_max):
        return "none", (f"alpha + beta not better than alpha alone (F test p = {p:.3g} >= "
                        f"{p_max:g})" if math.isfinite(p) else "F test not possible")
    if not (math.isfinite(amp_e) and amp_e > 0 and amp >= min_sig * amp_e):
        return "none", (f"beta amplitude not significant ({amp:.3g} ± {amp_e:.2g}, "
                        f"< {min_sig:g} errors)")
    if not math.isfinite(pos_e):
        return "wing" if pos > lnw[-1] else "other", (
            "beta location at its bound (not determined): beyond the "
            + ("highest" if pos > lnw[-1] else "lowest") + " frequency")
    # The alpha loss maximum (ln omega of the alpha term alone, without the fast term).
    grid = np.linspace(lnw[0] - 8, lnw[-1] + 8, 801)
    a_curve = _iso_alpha(model, np.exp(grid), p_b[:2 + len(ALPHA_MODELS[model])])
    ln_wa = float(grid[int(np.argmax(a_curve))])
    if pos <= ln_wa:
        return "other", (f"extra loss on the slow side of the alpha peak (ln omega = "
                         f"{pos:.3g}, alpha maximum at {ln_wa:.3g}): not a secondary "
                         "relaxation, probably the alpha shape")
    if pos + pos_e > lnw[-1]:
        return "wing", (f"beta maximum beyond the highest frequency (ln omega_b = {pos:.3g} "
                        f"± {pos_e:.2g} > {lnw[-1]:.3g}): excess wing")
    if pos - pos_e < lnw[0]:
        return "other", "beta maximum below the lowest frequency"
    fine = np.exp(np.linspace(lnw[0], lnw[-1], 400))
    tot = _iso_alpha(model, fine, p_b[:n_alpha], fast) + _iso_beta(fine, p_b[n_alpha:])
    d = np.diff(tot)
    n_max = int(np.sum((d[:-1] > 0) & (d[1:] <= 0)))
    kind = "peak" if n_max >= 2 or (n_max == 1 and ln_wa < lnw[0]) else "shoulder"
    return kind, ""


# ============================================================================ isochronal
def detect_beta_isochronal(temperature, loss, loss_err=None, *, omega=math.nan,
                           alpha_form="arrhenius", flank_fraction=0.2, p_max=BETA_P_MAX,
                           min_significance=2.0, n_starts=12) -> BetaFeature:
    """Test an isochronal tan delta(T) or M''(T) scan for a beta peak or shoulder below
    the alpha peak.

    Parameters
    ----------
    temperature : array_like, shape (K,)
        Increasing temperatures (K, or epsilon/k_B), > 0.
    loss : array_like, shape (K,)
        tan delta or M'' at one frequency.
    loss_err : array_like, shape (K,), optional
        68 % errors (over glasses); without them the fits are unweighted.
    omega : float
        The scan's angular frequency, stored as ``fixed``.
    alpha_form : {"arrhenius", "vft"}
        Temperature law of tau_alpha on the flank (module docstring).
    flank_fraction : float
        With a resolved maximum inside the scan, the window ends at the last point below
        this fraction of it (0 < f <= 1).
    p_max, min_significance, n_starts
        As for :func:`detect_beta_isothermal`.

    Returns
    -------
    BetaFeature
        ``position`` is T_b; ``width`` the peak's s in 1/T units.

    Raises
    ------
    ValueError
        Bad values, too few points in the window (alpha + beta needs its parameters + 1).
    """
    if alpha_form not in ("arrhenius", "vft"):
        raise ValueError(f"alpha_form must be 'arrhenius' or 'vft', got {alpha_form!r}")
    if not 0.0 < flank_fraction <= 1.0:
        raise ValueError("flank_fraction must lie in (0, 1]")
    n_alpha = 4 if alpha_form == "vft" else 3
    t_all, y_all, s_all, weighted = _prepare(temperature, loss, loss_err, n_alpha + 3 + 1,
                                             "temperature")
    if np.any(t_all <= 0):
        raise ValueError("temperatures must be > 0")
    # The window stops below the alpha peak only when there is one: a resolved maximum
    # (locate_peak); a largest point that is noise on a flat or rising scan is not a peak.
    alpha_peak = locate_peak(t_all, y_all, s_all if weighted else None,
                             variable="temperature", fixed=float(omega),
                             min_points=min(6, t_all.size))
    if alpha_peak.found:
        i_max = int(np.argmax(y_all))
        below = np.flatnonzero(y_all[:i_max + 1] < flank_fraction * y_all[i_max])
        end = int(below[-1]) + 1 if below.size else 0
    else:
        end = t_all.size
    if end < n_alpha + 4:
        raise ValueError(f"only {end} points on the low-temperature flank of the alpha peak "
                         f"(need {n_alpha + 4} for the alpha + beta fit)")
    t, y, s = t_all[:end], y_all[:end], s_all[:end]
    t_hi = float(t[-1])
    y_scale = float(np.max(np.abs(y))) or 1.0
    # Alpha: c free, h >= 0, ln B in a wide range, T_0 in [0, 0.95 T_min].
    lo_a = [-np.inf, 0.0, math.log(1e-3 * t_hi), 0.0][:n_alpha]
    hi_a = [np.inf, np.inf, math.log(1e3 * t_hi), 0.95 * float(t[0])][:n_alpha]
    lo_a, hi_a = np.array(lo_a), np.array(hi_a)
    u = 1.0 / t
    du = float(u[0] - u[-1])
    lo_b = np.array([0.0, u[-1] - 0.3 * du, math.log(0.02 * du)])
    hi_b = np.array([np.inf, u[0] + 0.3 * du, math.log(2.0 * du)])
    names_a = ("floor", "height", "ln_b", "t0")[:n_alpha]
    names_b = ("amplitude", "inv_t_beta", "ln_width")

    def ra(p):
        return (_ch_alpha(t, p, t_hi, alpha_form) - y) / s

    def rb(p):
        return (_ch_alpha(t, p[:n_alpha], t_hi, alpha_form) + _ch_beta(t, p[n_alpha:]) - y) / s

    # Alpha start: for each B (and T_0), (c, h) by linear least squares.
    best = None
    t0s = [0.0] if alpha_form == "arrhenius" else [0.0, 0.3 * t[0], 0.6 * t[0], 0.9 * t[0]]
    for t0 in t0s:
        for lnb in np.linspace(lo_a[2] + 0.5, hi_a[2] - 0.5, 40):
            g = np.exp(-math.exp(lnb) * (1.0 / (t - t0) - 1.0 / (t_hi - t0)))
            coef, *_ = np.linalg.lstsq(np.stack([np.ones_like(t), g], 1) / s[:, None], y / s,
                                       rcond=None)
            c0, h0 = float(coef[0]), max(float(coef[1]), 0.0)
            cost = float(np.sum(((c0 + h0 * g - y) / s) ** 2))
            if best is None or cost < best[0]:
                best = (cost, np.array([c0, h0, lnb, t0][:n_alpha]))
    xs_a = np.array([y_scale, y_scale, 1.0, 0.1 * t[0]][:n_alpha])
    sol_a = _lsq(ra, best[1], lo_a, hi_a, xs_a)
    p_a = sol_a.x
    cov_a, chi2_a, bound_a = _covariance(ra, p_a, lo_a, hi_a, names_a, weighted)
    dof_a = t.size - n_alpha

    lo = np.concatenate([lo_a, lo_b])
    hi = np.concatenate([hi_a, hi_b])
    g_a = _ch_alpha(t, np.concatenate([[0.0, 1.0], p_a[2:]]), t_hi, alpha_form)
    starts = []
    for ub in np.linspace(u[-1], u[0], int(n_starts)):
        for lns in (math.log(0.1 * du), math.log(0.3 * du)):
            g_b = _ch_beta(t, np.array([1.0, ub, lns]))
            amat = np.stack([np.ones_like(t), g_a, g_b], axis=1) / s[:, None]
            coef, *_ = np.linalg.lstsq(amat, y / s, rcond=None)
            coef[1:] = np.maximum(coef[1:], 0.0)
            rn = float(np.sum((amat @ coef - y / s) ** 2))
            starts.append((rn, np.concatenate([[coef[0], coef[1]], p_a[2:],
                                               [max(coef[2], 0.05 * y_scale), ub, lns]])))
    starts.sort(key=lambda q: q[0])
    xs = np.concatenate([xs_a, [y_scale, 0.1 * du, 1.0]])
    fits = []
    for _, p0 in starts[:3]:
        sol = _lsq(rb, p0, lo, hi, xs)
        fits.append((float(np.sum(sol.fun**2)), sol.x))
    fits.sort(key=lambda q: q[0])
    p_b = fits[0][1]
    if fits[0][0] > chi2_a:
        p_b = np.concatenate([p_a, [0.0, 0.5 * (u[0] + u[-1]), math.log(0.1 * du)]])
    cov_b, chi2_b, bound_b = _covariance(rb, p_b, lo, hi, names_a + names_b, weighted)
    dof_b = t.size - n_alpha - 3
    f, p = _f_test(chi2_a, dof_a, chi2_b, dof_b)

    def err(k):
        v = cov_b[k, k]
        return math.sqrt(v) if math.isfinite(v) else math.nan

    amp, amp_e = float(p_b[n_alpha]), err(n_alpha)
    ub, ub_e = float(p_b[n_alpha + 1]), err(n_alpha + 1)
    pos, pos_e = 1.0 / ub, ub_e / ub**2
    wid, wid_e = math.exp(p_b[n_alpha + 2]), math.exp(p_b[n_alpha + 2]) * err(n_alpha + 2)
    if not (math.isfinite(p) and p < p_max):
        kind, reason = "none", (f"alpha + beta not better than the alpha flank alone (F test "
                                f"p = {p:.3g} >= {p_max:g})" if math.isfinite(p) else
                                "F test not possible")
    elif not (math.isfinite(amp_e) and amp_e > 0 and amp >= min_significance * amp_e):
        kind, reason = "none", (f"beta amplitude not significant ({amp:.3g} ± {amp_e:.2g})")
    elif not math.isfinite(pos_e) or pos - pos_e < t[0]:
        kind, reason = "edge", (f"beta maximum at or below the lowest temperature (T_b = "
                                f"{pos:.4g}): a lower-temperature feature, not located")
    elif pos + pos_e > t_hi:
        kind, reason = "other", (f"extra loss at the top of the flank (T_b = {pos:.4g} ± "
                                 f"{pos_e:.2g}): probably the alpha peak's shape")
    else:
        fine = np.linspace(t[0], t_hi, 400)
        tot = _ch_alpha(fine, p_b[:n_alpha], t_hi, alpha_form) + _ch_beta(fine, p_b[n_alpha:])
        d = np.diff(tot)
        kind = "peak" if np.any((d[:-1] > 0) & (d[1:] <= 0)) else "shoulder"
        reason = ""
    method = (f"{'weighted' if weighted else 'unweighted'} least squares of the "
              f"{alpha_form} alpha flank (+ floor) and a symmetric peak in 1/T; beta kept when "
              "the "
              f"F test of the nested fits has p < {p_max:g} and amplitude/error >= "
              f"{min_significance:g}")
    return BetaFeature(
        kind=kind, reason=reason, variable="temperature", fixed=float(omega), position=pos,
        position_err=pos_e, amplitude=amp, amplitude_err=amp_e, width=wid, width_err=wid_e,
        f_stat=f, p_value=p, p_max=float(p_max), chi2_alpha=chi2_a, dof_alpha=int(dof_a),
        chi2_both=chi2_b, dof_both=int(dof_b), aic_alpha=chi2_a + 2 * n_alpha,
        aic_both=chi2_b + 2 * (n_alpha + 3), wing_slope=math.nan, wing_slope_err=math.nan,
        alpha_slope=math.nan, alpha_slope_err=math.nan, alpha_model=alpha_form,
        alpha_only=dict(zip(names_a, map(float, p_a))),
        alpha_params=dict(zip(names_a, map(float, p_b[:n_alpha]))),
        beta_params=dict(zip(names_b, map(float, p_b[n_alpha:]))),
        at_bound=tuple(sorted(set(bound_b) | {n + " (alpha only)" for n in bound_a})),
        window=(float(t[0]), t_hi), n_points=int(t.size), weighted=weighted, method=method,
        _p_alpha=p_a, _p_both=p_b, _extra={"t_hi": t_hi, "form": alpha_form})
