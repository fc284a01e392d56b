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

from ._lsq import scaled_covariance

__all__ = ["MasterCurve", "superpose"]


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
