"""Time-temperature superposition of isothermal spectra: shift factors with errors and the
master curve.

Isothermal spectra y(ln omega; T) (M'', M' or tan delta, e.g. from
:class:`~swapmc.analysis.DMSMean` at several frequencies per temperature, with their 68 %
errors over glasses) are collapsed onto the reference temperature by horizontal shifts
``ln a_T`` (reduced frequency ``omega a_T``; ``a_T = tau(T) / tau(T_ref)``, so ln a_T > 0
below T_ref) and optional vertical factors b_T::

    y(ln omega; T) = b_T Y(ln omega + ln a_T),

with Y the master curve, a cubic B-spline in the reduced ln omega (knots every 1.5 grid
spacings by default). Shifts and spline coefficients are fitted jointly by weighted least
squares, so every data point enters once and the shift errors come from the joint
covariance with the project's chi^2 rule (:func:`swapmc.analysis._lsq.scaled_covariance`),
rather than from a pairwise mismatch of interpolated, correlated neighbours. The start comes
from pairwise shifts between neighbouring temperatures (grid search of the mismatch on an
overlap of at least ``min_overlap`` of the shorter curve, linear interpolation), and the
shifts may then move by at most half their curve's span: a curve pushed off the others
would otherwise be fitted by its own stretch of spline. A vertical shift is only
determined where the overlap has curvature (on a power-law flank a vertical shift is a
horizontal one); its error says so.

Errors: on synthetic Havriliak-Negami spectra (5 temperatures, 10 points over 3 decades
each, neighbours ~1 decade apart) the covariance errors of ln a_T covered the truth in
0.65-0.70 of the data sets with noise 2 % of the loss peak and 0.60-0.66 with 4 %; at 7.5 %
they are 10-15 % smaller than the actual spread (coverage 0.61-0.62). A parametric bootstrap
(``n_bootstrap``: refits of the fitted master curve with fresh noise) gives errors ~5 %
larger, which recovers only part of that (0.59-0.66 at 7.5 %). The ln a_T of different
temperatures share the reference and are correlated: use ``covariance`` when fitting them
(e.g. an Arrhenius law of ln a_T).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.interpolate import BSpline

from .. import units as _units
from ._lsq import scaled_covariance

__all__ = ["MasterCurve", "ShiftFactorFit", "fit_shift_factors", "superpose"]


def _nan_to_none(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class MasterCurve:
    """Time-temperature superposition of isothermal spectra (:func:`superpose`).

    Per curve (shape (C,), in the order given): ``temperatures``, the horizontal shifts
    ``ln_a`` (reduced ln omega = ln omega + ln a_T; 0 at ``reference``) and vertical ``ln_b``
    (values divided by b_T on the master curve; 0 without vertical shifts), with 68 %
    errors. ``covariance`` is that of (ln_a, ln_b) (2C x 2C; zero rows for the reference
    and for ln_b without vertical shifts; NaN rows for shifts at their bound, listed in
    ``at_bound``). Per point (shape (N,)): reduced ``x``, shifted ``y`` and ``y_err`` (NaN
    without given errors), and the ``curve`` index. ``scale`` is ``"linear"`` or ``"log"``
    (the fit of ln y; then ``y`` is still in the data's unit). :meth:`master` evaluates the
    fitted master curve with its band.
    """

    temperatures: np.ndarray
    reference: float
    ln_a: np.ndarray
    ln_a_err: np.ndarray
    ln_b: np.ndarray
    ln_b_err: np.ndarray
    covariance: np.ndarray = field(repr=False)
    x: np.ndarray = field(repr=False, default=None)
    y: np.ndarray = field(repr=False, default=None)
    y_err: np.ndarray = field(repr=False, default=None)
    curve: np.ndarray = field(repr=False, default=None)
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    n_coefficients: int = 0
    scale: str = "linear"
    vertical: bool = False
    weighted: bool = True
    error_method: str = ""
    at_bound: dict = field(default_factory=dict)
    knots: np.ndarray = field(repr=False, default=None)
    coefficients: np.ndarray = field(repr=False, default=None)
    coefficient_covariance: np.ndarray = field(repr=False, default=None)

    def master(self, x):
        """Master curve Y at reduced ln omega ``x`` and its 68 % error (data unit)."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        b = BSpline.design_matrix(x, self.knots, 3, extrapolate=True).toarray()
        v = b @ self.coefficients
        e = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", b, self.coefficient_covariance, b),
                               0.0))
        if self.scale == "log":
            return np.exp(v), np.exp(v) * e
        return v, e

    def as_dict(self) -> dict:
        """All fields as plain Python values (arrays as lists, NaN as None)."""
        out = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                v = np.where(np.isfinite(v), v, None).tolist() if v.dtype.kind == "f" else (
                    v.tolist())
            out[name] = _nan_to_none(v)
        return out


def _pair_shift(xi, yi, si, xj, yj, sj, log, min_overlap):
    """Horizontal shift d putting curve j onto curve i (x_j + d ~ x_i), and the vertical
    factor (ln, or offset for log values) at that d. Grid search (a quarter of the finer
    grid spacing) of the mean squared normalised mismatch on the overlap, by linear
    interpolation; overlaps shorter than ``min_overlap`` of the shorter curve's span are not
    considered, since a few points can match by chance anywhere."""
    step = 0.25 * min(np.min(np.diff(xi)), np.min(np.diff(xj)))
    need = min_overlap * min(xi[-1] - xi[0], xj[-1] - xj[0])
    best = (math.inf, 0.0)
    for d in np.arange(xi[0] - xj[-1], xi[-1] - xj[0] + step, step):
        xs = xj + d
        if min(xi[-1], xs[-1]) - max(xi[0], xs[0]) < need:
            continue
        mj = (xs >= xi[0]) & (xs <= xi[-1])
        mi = (xi >= xs[0]) & (xi <= xs[-1])
        if mj.sum() + mi.sum() < 4:
            continue
        # Differences at both curves' points, the other curve interpolated.
        diff = np.concatenate([yj[mj] - np.interp(xs[mj], xi, yi),
                               np.interp(xi[mi], xs, yj) - yi[mi]])
        s2 = np.concatenate([sj[mj] ** 2 + np.interp(xs[mj], xi, si) ** 2,
                             si[mi] ** 2 + np.interp(xi[mi], xs, sj) ** 2])
        m = float(np.mean(diff**2 / s2))
        if m < best[0]:
            best = (m, float(d))
    if not math.isfinite(best[0]):
        raise ValueError("two neighbouring curves do not overlap by min_overlap of their "
                         "span; pass initial shifts or spectra that share a frequency range")
    d = best[1]
    xs = xj + d
    mj = (xs >= xi[0]) & (xs <= xi[-1])
    a, b = yj[mj], np.interp(xs[mj], xi, yi)
    w = 1.0 / (sj[mj] ** 2 + np.interp(xs[mj], xi, si) ** 2)
    if log:
        v = float(np.sum(w * (a - b)) / np.sum(w))
    else:
        ratio = float(np.sum(w * a * a) / np.sum(w * a * b)) if np.sum(w * a * b) > 0 else 1.0
        v = math.log(ratio) if ratio > 0 else 0.0
    return d, v


def _knots(xr, spacing):
    """Clamped cubic knot vector over the reduced points; interior knots every ``spacing``,
    removed where an interval would hold fewer than 2 points."""
    lo, hi = float(xr.min()), float(xr.max())
    pad = 1e-9 * max(1.0, hi - lo)
    n_int = max(int(math.ceil((hi - lo) / spacing)), 1)
    inner = list(np.linspace(lo, hi, n_int + 1)[1:-1])
    xs = np.sort(xr)
    changed = True
    while changed and inner:
        changed = False
        edges = [lo - pad, *inner, hi + pad]
        counts = np.histogram(xs, bins=edges)[0]
        j = int(np.argmin(counts))
        if counts[j] < 2:
            del inner[min(j, len(inner) - 1)]
            changed = True
    return np.array([lo - pad] * 4 + inner + [hi + pad] * 4)


def superpose(ln_omega, values, errors=None, temperatures=None, *, reference=None,
              vertical=False, scale="linear", knot_spacing=None, initial=None,
              min_overlap=0.25, n_bootstrap=0, seed=None) -> MasterCurve:
    """Time-temperature superposition shift factors and master curve.

    Parameters
    ----------
    ln_omega : sequence of array_like, length C
        Each curve's ln omega grid (strictly increasing, rad per time unit), shape (K_c,).
    values : sequence of array_like, length C
        The quantity on each grid (M'', M', tan delta), shape (K_c,).
    errors : sequence of array_like, length C, optional
        68 % errors of the values; without them the fit is unweighted.
    temperatures : array_like, shape (C,)
        Temperature of each curve (distinct).
    reference : float, optional
        The reference temperature (one of ``temperatures``); default the median one.
    vertical : bool
        Also fit vertical factors b_T (module docstring).
    scale : {"linear", "log"}
        Fit y (default) or ln y (values > 0; errors become y_err / y; vertical shifts are
        then offsets in ln y).
    knot_spacing : float, optional
        Interior knot spacing of the master-curve spline in reduced ln omega; default 1.5
        times the median grid spacing of the curves.
    initial : array_like, shape (C,), optional
        Starting ln a_T (e.g. from an Arrhenius law); default from pairwise shifts between
        neighbouring temperatures.
    min_overlap : float
        Least overlap of neighbouring curves, as a fraction of the shorter one's ln omega
        span, considered by the pairwise start.
    n_bootstrap : int
        0: shift errors from the joint least-squares covariance. > 0: from that many
        parametric-bootstrap refits (module docstring; 50-100 are enough).
    seed : int, optional
        Seed of the bootstrap noise.

    Returns
    -------
    MasterCurve

    Raises
    ------
    ValueError
        Bad shapes, fewer than 2 curves, non-overlapping neighbours, non-positive values
        with ``scale="log"``.
    """
    if temperatures is None:
        raise ValueError("temperatures are required")
    temps = np.asarray(temperatures, dtype=np.float64)
    n_c = temps.size
    if temps.ndim != 1 or n_c < 2 or len(ln_omega) != n_c or len(values) != n_c or (
            errors is not None and len(errors) != n_c):
        raise ValueError("need >= 2 curves, with one temperature, grid and value array each")
    if len(np.unique(temps)) != n_c:
        raise ValueError("temperatures must be distinct")
    if scale not in ("linear", "log"):
        raise ValueError("scale must be 'linear' or 'log'")
    log = scale == "log"
    weighted = errors is not None
    xs, ys, ss = [], [], []
    for c in range(n_c):
        xc = np.asarray(ln_omega[c], dtype=np.float64)
        yc = np.asarray(values[c], dtype=np.float64)
        sc = (np.asarray(errors[c], dtype=np.float64) if weighted else np.ones_like(yc))
        if xc.ndim != 1 or xc.size < 3 or yc.shape != xc.shape or sc.shape != xc.shape:
            raise ValueError(f"curve {c}: grid, values and errors must be 1-D, >= 3 points")
        if not (np.all(np.isfinite(xc)) and np.all(np.isfinite(yc)) and np.all(
                np.isfinite(sc))) or np.any(np.diff(xc) <= 0) or np.any(sc <= 0):
            raise ValueError(f"curve {c}: finite values, increasing grid, positive errors")
        if log:
            if np.any(yc <= 0):
                raise ValueError(f"curve {c}: scale='log' needs positive values")
            yc, sc = np.log(yc), (sc / yc if weighted else sc)
        xs.append(xc)
        ys.append(yc)
        ss.append(sc)
    if reference is None:
        ref = int(np.argsort(temps)[(n_c - 1) // 2])
    else:
        hit = np.flatnonzero(np.isclose(temps, float(reference), rtol=1e-9, atol=0.0))
        if hit.size != 1:
            raise ValueError(f"reference {reference} is not one of the temperatures")
        ref = int(hit[0])

    # ---- start: pairwise shifts outward from the reference, in temperature order
    ln_a0 = np.zeros(n_c)
    ln_b0 = np.zeros(n_c)
    if initial is not None:
        ln_a0 = np.asarray(initial, dtype=np.float64).copy()
        if ln_a0.shape != (n_c,) or not np.all(np.isfinite(ln_a0)):
            raise ValueError(f"initial must be {n_c} finite numbers")
        ln_a0 -= ln_a0[ref]
    else:
        order = list(np.argsort(temps))
        r_pos = order.index(ref)
        for direction in (1, -1):
            prev = ref
            pos = r_pos + direction
            while 0 <= pos < n_c:
                j = order[pos]
                d, v = _pair_shift(xs[prev], ys[prev], ss[prev], xs[j], ys[j], ss[j], log,
                                   min_overlap)
                ln_a0[j] = ln_a0[prev] + d
                ln_b0[j] = ln_b0[prev] + (v if vertical else 0.0)
                prev = j
                pos += direction
    x_all = np.concatenate(xs)
    y_all = np.concatenate(ys)
    s_all = np.concatenate(ss)
    cid = np.concatenate([np.full(xc.size, c) for c, xc in enumerate(xs)])
    n = x_all.size
    if knot_spacing is None:
        knot_spacing = 1.5 * float(np.median(np.concatenate([np.diff(xc) for xc in xs])))
    if not knot_spacing > 0:
        raise ValueError("knot_spacing must be > 0")
    others = np.array([c for c in range(n_c) if c != ref])
    n_sh = others.size * (2 if vertical else 1)

    def unpack(q):
        la = np.zeros(n_c)
        lb = np.zeros(n_c)
        la[others] = q[:others.size]
        if vertical:
            lb[others] = q[others.size:n_sh]
        return la, lb, q[n_sh:]

    def model(q, knots, jacobian=False):
        la, lb, coef = unpack(q)
        xr = x_all + la[cid]
        bmat = BSpline.design_matrix(xr, knots, 3, extrapolate=True).toarray()
        sval = bmat @ coef
        fac = np.ones(n) if log else np.exp(lb[cid])
        m = sval + lb[cid] if log else fac * sval
        if not jacobian:
            return m
        dspl = BSpline(knots, coef, 3, extrapolate=True).derivative()(xr)
        jac = np.zeros((n, q.size))
        for k, c in enumerate(others):
            on = cid == c
            jac[on, k] = fac[on] * dspl[on]
            if vertical:
                jac[on, others.size + k] = 1.0 if log else m[on]
        jac[:, n_sh:] = bmat * fac[:, None]
        return m, jac

    # Shifts may move by at most half their curve's span (vertical factors by e^2) from the
    # start: a curve pushed off the others would otherwise be fitted by its own stretch of
    # spline, a spurious optimum with no overlap at all.
    half = np.array([0.5 * (xc[-1] - xc[0]) for xc in xs])
    lo_sh = np.concatenate([ln_a0[others] - half[others], ln_b0[others] - 2.0 if vertical
                            else []])
    hi_sh = np.concatenate([ln_a0[others] + half[others], ln_b0[others] + 2.0 if vertical
                            else []])
    def _solve(q0, knots, y):
        n_coef = knots.size - 4
        bounds = (np.concatenate([lo_sh, np.full(n_coef, -np.inf)]),
                  np.concatenate([hi_sh, np.full(n_coef, np.inf)]))
        return optimize.least_squares(
            lambda q: (model(q, knots) - y) / s_all, q0,
            jac=lambda q: model(q, knots, True)[1] / s_all[:, None],
            bounds=bounds, method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12,
            gtol=1e-12, max_nfev=5000)

    la, lb = ln_a0, ln_b0
    for _ in range(2):  # the knots follow the reduced points once
        knots = _knots(x_all + la[cid], knot_spacing)
        n_coef = knots.size - 4
        if n_coef + n_sh >= n:
            raise ValueError(f"too few points ({n}) for {n_sh} shifts and {n_coef} spline "
                             "coefficients: increase knot_spacing")
        fac = np.ones(n) if log else np.exp(lb[cid])
        bmat = BSpline.design_matrix(x_all + la[cid], knots, 3, extrapolate=True).toarray()
        target = (y_all - lb[cid]) if log else y_all
        coef0 = np.linalg.lstsq(bmat * fac[:, None] / s_all[:, None], target / s_all,
                                rcond=None)[0]
        sh0 = np.concatenate([la[others], lb[others] if vertical else []])
        span = hi_sh - lo_sh
        sh0 = np.clip(sh0, lo_sh + 1e-9 * span, hi_sh - 1e-9 * span)
        sol = _solve(np.concatenate([sh0, coef0]), knots, y_all)
        la, lb, coef = unpack(sol.x)
    at_bound = {}
    shift_names = [f"ln_a[{c}]" for c in others] + (
        [f"ln_b[{c}]" for c in others] if vertical else [])
    span = hi_sh - lo_sh
    for k, name in enumerate(shift_names):
        if sol.x[k] - lo_sh[k] <= 1e-6 * span[k]:
            at_bound[name] = "lower"
        elif hi_sh[k] - sol.x[k] <= 1e-6 * span[k]:
            at_bound[name] = "upper"
    m, jac = model(sol.x, knots, True)
    r = (m - y_all) / s_all
    cov, chi2, dof = scaled_covariance(jac / s_all[:, None], np.ones(n), r, known=weighted)
    method = ("joint weighted least squares of shifts and a cubic B-spline master curve; "
              "covariance scaled by chi2/dof when chi2 exceeds its 95 % quantile"
              if weighted else "joint unweighted least squares; covariance from the scatter")
    full = np.zeros((2 * n_c, 2 * n_c))
    idx = list(others) + ([n_c + c for c in others] if vertical else [])
    full[np.ix_(idx, idx)] = cov[:n_sh, :n_sh]
    for k, name in enumerate(shift_names):
        if name in at_bound:
            full[idx[k], :] = np.nan
            full[:, idx[k]] = np.nan
    if at_bound:
        warnings.warn(f"superposition shifts ended on their bounds {sorted(at_bound)}: not "
                      "determined by the overlap (reported without an error); check the "
                      "curves overlap or pass initial shifts", RuntimeWarning, stacklevel=2)
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap > 0:
        # Parametric bootstrap: the fitted model plus fresh noise of the given (or, without
        # errors, the residual) scale, refitted from the solution with the same knots.
        rng = np.random.default_rng(seed)
        noise = s_all * (1.0 if weighted else math.sqrt(chi2 / max(dof, 1)))
        q_fit = np.clip(sol.x, np.concatenate([lo_sh, np.full(n_coef, -np.inf)]),
                        np.concatenate([hi_sh, np.full(n_coef, np.inf)]))
        boot = np.array([_solve(q_fit, knots, m + noise * rng.standard_normal(n)).x[:n_sh]
                         for _ in range(n_bootstrap)])
        cb = np.atleast_2d(np.cov(boot, rowvar=False))
        keep = [k for k, name in enumerate(shift_names) if name not in at_bound]
        for k1 in keep:
            for k2 in keep:
                full[idx[k1], idx[k2]] = cb[k1, k2]
        method = (f"parametric bootstrap ({n_bootstrap} refits of the fitted master curve "
                  "with fresh noise) of a joint least-squares fit of shifts and a cubic "
                  "B-spline master curve")
    errs = np.sqrt(np.abs(np.diag(full)))
    y_sh = np.exp(y_all - lb[cid]) if log else y_all / np.exp(lb[cid])
    e_sh = (s_all * y_sh) if log else s_all / np.exp(lb[cid])
    if not weighted:
        e_sh = np.full(n, np.nan)
    return MasterCurve(temperatures=temps.copy(), reference=float(temps[ref]), ln_a=la,
                       ln_a_err=errs[:n_c], ln_b=lb, ln_b_err=errs[n_c:], covariance=full,
                       x=x_all + la[cid], y=y_sh, y_err=e_sh, curve=cid, chi2=float(chi2),
                       dof=int(dof), n_points=int(n), n_coefficients=int(n_coef),
                       scale=scale, vertical=bool(vertical), weighted=weighted,
                       error_method=method, at_bound=at_bound, knots=knots,
                       coefficients=coef.copy(),
                       coefficient_covariance=cov[n_sh:, n_sh:])


# ============================================================================ a_T laws
@dataclass(frozen=True)
class ShiftFactorFit:
    """Temperature law of the shift factors of a :class:`MasterCurve`
    (:func:`fit_shift_factors`).

    ``model`` is ``"arrhenius"`` (``params``: ``e_over_k``, E/k_B in the temperature unit)
    or ``"vft"`` (``b``, in the temperature unit, and ``t0``); ``errors`` are 68 %
    half-widths (NaN for a parameter at its bound, listed in ``at_bound``). ``energy`` /
    ``energy_err`` give the Arrhenius E (or the VFT apparent activation energy
    ``d ln a_T / d(1/T)`` at the reference temperature, ``k_B B T_ref^2 / (T_ref -
    T_0)^2``) in the unit system's energy unit ``energy_unit``. ``chi2`` and ``dof`` are of
    the generalised least squares; ``temperatures`` the curves used (reference excluded).
    """

    model: str
    params: dict
    errors: dict
    covariance: np.ndarray = field(repr=False)
    reference: float = math.nan
    temperatures: tuple = ()
    chi2: float = math.nan
    dof: int = 0
    p_value: float = math.nan
    energy: float = math.nan
    energy_err: float = math.nan
    energy_unit: str = ""
    at_bound: tuple = ()
    units: str = "lj"
    method: str = ""

    def ln_a(self, temperature):
        """The fitted ln a_T at ``temperature`` (array) and its 68 % delta-method error."""
        t = np.asarray(temperature, dtype=np.float64)
        tr = self.reference
        if self.model == "arrhenius":
            g = (1.0 / t - 1.0 / tr)[..., None]
            val = self.params["e_over_k"] * g[..., 0]
        else:
            b, t0 = self.params["b"], self.params["t0"]
            f = 1.0 / (t - t0) - 1.0 / (tr - t0)
            val = b * f
            g = np.stack([f, b * (1.0 / (t - t0) ** 2 - 1.0 / (tr - t0) ** 2)], axis=-1)
        c = np.nan_to_num(self.covariance, nan=0.0)
        var = np.einsum("...i,ij,...j->...", g, c, g)
        return val, np.sqrt(np.maximum(var, 0.0))

    def as_dict(self) -> dict:
        return {"model": self.model, "params": dict(self.params),
                "errors": {k: _nan_to_none(v) for k, v in self.errors.items()},
                "covariance": np.where(np.isfinite(self.covariance), self.covariance,
                                       None).tolist(),
                "reference": self.reference, "temperatures": list(self.temperatures),
                "chi2": self.chi2, "dof": self.dof, "p_value": _nan_to_none(self.p_value),
                "energy": _nan_to_none(self.energy),
                "energy_err": _nan_to_none(self.energy_err),
                "energy_unit": self.energy_unit, "at_bound": list(self.at_bound),
                "units": self.units, "method": self.method}


def fit_shift_factors(mc: MasterCurve, model: str = "arrhenius", *,
                      units: str = "lj") -> ShiftFactorFit:
    """Arrhenius or VFT law of the shift factors ln a_T of a master curve.

    Parameters
    ----------
    mc : MasterCurve
        From :func:`superpose` (its ``covariance`` is used in full).
    model : {"arrhenius", "vft"}
        ``ln a_T = (E/k_B)(1/T - 1/T_ref)`` (1 parameter) or
        ``B [1/(T - T_0) - 1/(T_ref - T_0)]`` (2 parameters, 0 <= T_0 < min T).
    units : {"lj", "metal"}
        Unit system for E (:mod:`swapmc.units`).

    Returns
    -------
    ShiftFactorFit

    Raises
    ------
    ValueError
        Unknown model or units; fewer usable shifts than parameters.
    """
    if model not in ("arrhenius", "vft"):
        raise ValueError(f"model must be 'arrhenius' or 'vft', got {model!r}")
    if units not in _units.BOLTZMANN:
        raise ValueError(f"units must be one of {sorted(_units.BOLTZMANN)}, got {units!r}")
    n_c = mc.temperatures.size
    ref = int(np.flatnonzero(mc.temperatures == mc.reference)[0])
    use = [c for c in range(n_c) if c != ref and math.isfinite(mc.covariance[c, c])
           and mc.covariance[c, c] > 0]
    n_par = 1 if model == "arrhenius" else 2
    if len(use) < n_par:
        raise ValueError(f"the {model} law of a_T needs at least {n_par} shifted "
                         f"temperature(s) with an error besides the reference, got {len(use)}")
    t = mc.temperatures[use]
    y = mc.ln_a[use]
    cov = mc.covariance[np.ix_(use, use)]
    # Whitening W with W^T W = cov^-1 (eigen-decomposition; the covariance is symmetric
    # positive definite unless a shift is exactly determined by the others).
    val, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    keep = val > 1e-12 * val.max()
    wmat = (vec[:, keep] / np.sqrt(val[keep])).T
    tr = mc.reference
    weighted = mc.weighted
    if model == "arrhenius":
        g = 1.0 / t - 1.0 / tr
        gw, yw = wmat @ g, wmat @ y
        e = float(gw @ yw / (gw @ gw))
        p = np.array([e])
        jac = gw[:, None]
        r = gw * e - yw
        lo = hi = None
    else:
        def f(q):
            b, t0 = q
            return b * (1.0 / (t - t0) - 1.0 / (tr - t0))

        def res(q):
            return wmat @ (f(q) - y)

        t_min = float(min(t.min(), tr))
        lo = np.array([0.0, 0.0])
        hi = np.array([np.inf, 0.99 * t_min])
        best = None
        for t0 in np.linspace(0.0, 0.9 * t_min, 10):
            g = 1.0 / (t - t0) - 1.0 / (tr - t0)
            gw = wmat @ g
            b = max(float(gw @ (wmat @ y) / (gw @ gw)), 1e-12)
            c = float(np.sum(res([b, t0]) ** 2))
            if best is None or c < best[0]:
                best = (c, np.array([b, t0]))
        q0 = np.clip(best[1], lo + 1e-9, hi - 1e-9 * t_min)
        sol = optimize.least_squares(res, q0, bounds=(lo, hi), method="trf",
                                     x_scale=np.array([max(q0[0], 1e-6), 0.1 * t_min]),
                                     xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000)
        p = sol.x
        r = res(p)
        b, t0 = p
        jac = wmat @ np.stack([1.0 / (t - t0) - 1.0 / (tr - t0),
                               b * (1.0 / (t - t0) ** 2 - 1.0 / (tr - t0) ** 2)], axis=1)
    names = ("e_over_k",) if model == "arrhenius" else ("b", "t0")
    at_bound = []
    if lo is not None:
        for i, name in enumerate(names):
            span = (hi[i] - lo[i]) if np.isfinite(hi[i] - lo[i]) else max(abs(p[i]), 1.0)
            if p[i] - lo[i] <= 1e-6 * span or hi[i] - p[i] <= 1e-6 * span:
                at_bound.append(name)
    est = np.array([n not in at_bound for n in names])
    full = np.full((n_par, n_par), np.nan)
    c, chi2, _ = scaled_covariance(jac[:, est], np.ones(r.size), r, known=weighted)
    full[np.ix_(est, est)] = c
    dof = int(r.size - n_par)
    p_value = float(1.0 - _chi2_cdf(chi2, dof)) if dof > 0 and weighted else math.nan
    errors = {n: (math.sqrt(full[i, i]) if est[i] else math.nan) for i, n in enumerate(names)}
    kb = _units.BOLTZMANN[units]
    if model == "arrhenius":
        energy, energy_err = p[0] * kb, errors["e_over_k"] * kb
    else:
        b, t0 = p
        d = np.array([tr**2 / (tr - t0) ** 2, 2.0 * b * tr**2 / (tr - t0) ** 3])
        energy = float(b * tr**2 / (tr - t0) ** 2) * kb
        energy_err = math.sqrt(max(float(d @ np.nan_to_num(full, nan=0.0) @ d), 0.0)) * kb \
            if all(est) else math.nan
    method = ("generalised least squares with the full covariance of ln a_T; covariance "
              "scaled by chi2/dof when chi2 exceeds its 95 % quantile" if weighted else
              "generalised least squares (shift covariance from the scatter), scaled by "
              "chi2/dof")
    return ShiftFactorFit(model=model, params={n: float(v) for n, v in zip(names, p)},
                          errors=errors, covariance=full, reference=float(tr),
                          temperatures=tuple(float(v) for v in t), chi2=float(chi2),
                          dof=dof, p_value=p_value, energy=float(energy),
                          energy_err=float(energy_err),
                          energy_unit=_units.LABELS[units]["energy"],
                          at_bound=tuple(at_bound), units=units, method=method)


def _chi2_cdf(x, dof):
    from scipy import stats

    return float(stats.chi2.cdf(x, dof))
