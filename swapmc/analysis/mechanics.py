"""Mechanical spectroscopy analysis: DMS moduli from oscillatory stress, KWW stress relaxation.

Pure functions over arrays; they know nothing about how the stress was produced, so they can be
tested on synthetic data with known answers (``tests/test_mechanics_fits.py``). Units are
passed through: times in whatever unit ``t`` is given in (LJ time or ps), stresses and moduli
in the unit of the stress data (strain is dimensionless, so a modulus has the stress unit),
angular frequencies in rad per time unit. ``stress_unit`` / ``time_unit`` strings are only
carried into the results for labelling.

Sign convention
---------------
Pass the stress *conjugate to the imposed strain*, with the sign for which a positive strain
of an elastic solid gives a positive stress (e.g. sigma_xy = -P_xy for xy shear, where P is
the pressure tensor most MD codes report). With the wrong sign every modulus flips and the
phase comes out near pi; :func:`fit_oscillation` warns when the storage modulus is
significantly negative.

Dynamic mechanical spectroscopy (algorithms.md section 6)
---------------------------------------------------------
Strain ``eps(t) = eps_A sin(omega t)`` with ``t = 0`` at the start of the oscillation.
The stress is fitted by linear least squares to ``s0 + a sin(omega t) + b cos(omega t)``,
which is ``s0 + s_A sin(omega t + delta)`` with ``s_A cos(delta) = a`` and
``s_A sin(delta) = b``. Hence ``M' = a / eps_A`` and ``M'' = b / eps_A`` are *linear* in the
data, and their errors need no propagation through the nonlinear (s_A, delta) map.

Why the error bar comes from the spread over cycles: MD stress noise is correlated in time
(phonons, the stress autocorrelation time tau_c), while the least-squares covariance assumes
independent samples. It therefore underestimates the error by roughly
``sqrt(1 + 2 tau_c / dt)`` -- arbitrarily badly when stress is sampled often. Fitting every
full cycle separately gives n_cycles estimates that are nearly independent whenever
``tau_c << period``, and their standard error is honest whatever the noise spectrum within a
cycle. Both are reported (``*_err`` from cycles, ``*_err_ls`` from the covariance); a ratio
``m_storage_err / m_storage_err_ls`` well above 1 measures the noise correlation. When tau_c
approaches the period, neighbouring cycles correlate (mostly through the cos term, which is
largest at the cycle boundaries) and the M'' error starts to be underestimated too; then
rely on the spread over independent samples (:func:`combine_dms`) instead.

Error bars
----------
Every ``*_err`` reported by this module (except the ``*_err_ls`` cross-checks) is the
half-width of a central 68.3 % confidence interval: the standard error times the Student-t
quantile ``t_{0.841, dof}`` (:func:`t_factor68`), with ``dof`` stored in ``error_dof``. With
many degrees of freedom this is the standard error; with the few cycles or glasses of a
typical MD measurement (dof 1-5, factors 1.84-1.11) it is wider, so that "x +- err" contains
the true value about 68 % of the time (``tests/test_mechanics_fits.py`` checks this coverage).

Independent samples are *glasses*, not runs: repeats of one glass (new velocities) share its
structure, so they are averaged within the glass first and the error comes from the spread
over glasses (:func:`combine_dms` with ``groups``, :func:`fit_kww_glasses`). With a single
glass the glass-to-glass scatter cannot be estimated; the result says so in
``error_method`` and the error covers only the measurement noise of that glass.

Stress relaxation (algorithms.md section 7)
-------------------------------------------
After a step strain eps_0, ``M(t) = sigma(t) / eps_0 = (D phi(t) + sigma_r) / eps_0`` with the
Kohlrausch-Williams-Watts function ``phi(t) = exp[-(t / tau)^beta]``. ``beta < 1``
(stretched) is typical of glasses; ``beta > 1`` (compressed) is seen in aging glasses, so
the default bounds allow ``0.05 <= beta <= 2``. A parameter that ends on its bound is not
determined by the data: it is reported as unconstrained (``at_bound``), with a NaN error,
and :meth:`KWWResult.format` prints it without an error bar.

The points of one relaxation curve are strongly correlated in time (the stress noise
decorrelates over the phonon and structural times, while MD samples it every step), so the
least-squares covariance of a single fit, which treats ~10^4 points as independent, is far
too small. :func:`fit_kww_glasses` therefore fits the mean curve unweighted and takes the
errors from a jackknife over glasses, or, for one glass, from a block-sandwich covariance
whose blocks are longer than the residual correlation time.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DMSResult",
    "DMSMean",
    "KWWResult",
    "fit_oscillation",
    "combine_dms",
    "fit_kww",
    "fit_kww_glasses",
    "kww",
    "t_factor68",
    "average_curves",
    "debye_modulus",
]

TWO_PI = 2.0 * np.pi

#: Default bounds of the KWW exponent: compressed exponentials (beta > 1) occur in aging
#: glasses; beta below ~0.05 is indistinguishable from a logarithmic decay.
KWW_BETA_BOUNDS = (0.05, 2.0)

#: Coverage of a one-standard-deviation normal interval, erf(1 / sqrt 2) = 0.6827: the
#: confidence level of every reported ``*_err``.
CONF68 = math.erf(1.0 / math.sqrt(2.0))

# Relative slack when deciding whether a sample sits on a cycle boundary: t = k * period
# computed in floating point may land a few ulp below the boundary.
_PHASE_EPS = 1e-9


def _as_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def t_factor68(dof) -> float:
    """Student-t factor turning a standard error with ``dof`` degrees of freedom into the
    half-width of a central 68.27 % interval: ``t_{(1 + 0.6827) / 2, dof}``.

    Parameters
    ----------
    dof : float
        Degrees of freedom of the error estimate (> 0); ``inf`` gives 1.

    Returns
    -------
    float
        1.84 for 1 dof, 1.32 for 2, 1.11 for 5, 1.05 for 10, -> 1 for many; NaN for
        ``dof <= 0`` (no error estimate).
    """
    dof = float(dof)
    if not dof > 0:
        return math.nan
    if math.isinf(dof):
        return 1.0
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 * (1.0 + CONF68), dof))


def _positive_scalar(name, value) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


def _time_series(t, y, names=("t", "stress"), min_len=2):
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or y.shape != t.shape or t.size < min_len:
        raise ValueError(
            f"{names[0]} and {names[1]} must be 1-D arrays of equal length >= {min_len}, "
            f"got shapes {t.shape} and {y.shape}"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ValueError(f"{names[0]} and {names[1]} must be finite")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"{names[0]} must be strictly increasing")
    return t, y


# =============================================================================== DMS
@dataclass(frozen=True)
class DMSResult:
    """Result of :func:`fit_oscillation` (one sample, one frequency).

    Moduli and stresses are in ``stress_unit``; ``omega`` in rad per ``time_unit``; angles
    in radians. ``*_err`` are half-widths of 68.3 % intervals from the spread of the
    per-cycle fits: the standard error over cycles times :func:`t_factor68` of
    ``error_dof = n_cycles - 1`` (1.32 for 3 analysed cycles, 1.11 for 6). ``*_err_ls`` are
    the least-squares covariance standard errors (residual variance, independent-sample
    assumption), a cross-check only: they are optimistic for time-correlated noise.
    """

    omega: float
    strain_amplitude: float
    m_storage: float  # M' = (s_A / eps_A) cos(delta)
    m_storage_err: float
    m_loss: float  # M'' = (s_A / eps_A) sin(delta)
    m_loss_err: float
    tan_delta: float
    tan_delta_err: float
    delta: float  # phase by which the stress leads the strain, radians
    delta_err: float
    modulus_magnitude: float  # |M*| = s_A / eps_A
    modulus_magnitude_err: float
    stress_amplitude: float  # s_A
    stress_amplitude_err: float
    stress_offset: float  # s0 (mean stress over the analysed window)
    stress_offset_err: float
    stress_drift: float | None  # d s0 / dt when detrend=True, stress_unit per time_unit
    m_storage_err_ls: float
    m_loss_err_ls: float
    delta_err_ls: float
    residual_rms: float  # rms of the global-fit residuals (stress noise level)
    n_cycles: int  # complete cycles analysed
    n_points: int  # samples analysed
    discard_cycles: int
    stress_unit: str = ""
    time_unit: str = ""
    error_dof: float = math.inf  # dof of *_err (n_cycles - 1)
    error_method: str = ""

    @property
    def period(self) -> float:
        """Oscillation period 2 pi / omega, in ``time_unit``."""
        return TWO_PI / self.omega

    def as_dict(self) -> dict:
        """All fields as plain Python values (units as strings), e.g. for JSON."""
        return _as_dict(self)


def _design(t, omega, detrend, t_ref, period):
    cols = [np.ones_like(t), np.sin(omega * t), np.cos(omega * t)]
    if detrend:
        # Centred and scaled by the period so the matrix stays well conditioned.
        cols.append((t - t_ref) / period)
    return np.stack(cols, axis=1)


def _ab_derived(a, b, cov_ab, eps):
    """Values and delta-method errors of (|M*|, delta, tan delta) from (a, b) and cov(a, b)."""
    amp = math.hypot(a, b)
    va, vb, cab = cov_ab[0, 0], cov_ab[1, 1], cov_ab[0, 1]

    def err(ga, gb):
        v = ga * ga * va + gb * gb * vb + 2.0 * ga * gb * cab
        return math.sqrt(max(v, 0.0))

    if amp > 0:
        amp_err = err(a / amp, b / amp)
        delta_err = err(-b / amp**2, a / amp**2)
    else:
        amp_err = math.sqrt(max(va + vb, 0.0))
        delta_err = math.inf
    if a != 0:
        tan, tan_err = b / a, err(-b / a**2, 1.0 / a)
    else:
        tan, tan_err = math.copysign(math.inf, b) if b != 0 else math.nan, math.inf
    return amp / eps, amp_err / eps, math.atan2(b, a), delta_err, tan, tan_err


def fit_oscillation(
    t,
    stress,
    strain_amplitude,
    omega,
    *,
    discard_cycles=1,
    detrend=False,
    stress_unit="",
    time_unit="",
) -> DMSResult:
    """Storage and loss moduli from the stress response to ``eps_A sin(omega t)``.

    Cycle ``k`` is the interval ``[k T, (k + 1) T)``, ``T = 2 pi / omega``. Cycles
    ``k < discard_cycles`` (start-up transient) and incomplete cycles (at either end of the
    record) are dropped, and only whole cycles are analysed: over whole cycles sin, cos and
    the constant are (nearly) orthogonal, so a slowly varying mean stress does not leak into
    the moduli as it would through a partial cycle. The remaining data are fitted by linear
    least squares to ``s0 + a sin(omega t) + b cos(omega t)`` (``+ c (t - t_mid)`` with
    ``detrend``), giving the reported values; every cycle is also fitted on its own, and the
    standard error over cycles is the reported uncertainty (module docstring: why).
    Sampling need not be uniform.

    Parameters
    ----------
    t : array_like, shape (K,)
        Strictly increasing times since the oscillation started (strain zero and rising at
        ``t = 0``), in ``time_unit``.
    stress : array_like, shape (K,)
        Stress conjugate to the strain (see the module docstring for the sign), in
        ``stress_unit``.
    strain_amplitude : float
        eps_A > 0 (dimensionless).
    omega : float
        Angular frequency > 0, rad per ``time_unit``.
    discard_cycles : int
        Leading cycles to drop (>= 0). The transient decays like the slowest relaxation;
        for a Maxwell-like response with time tau it is ~exp(-2 pi n / (omega tau)) after n
        cycles, so discard more cycles when omega tau > 1.
    detrend : bool
        Also fit a linear drift of the mean stress (aging, slow relaxation of a residual
        stress). Within whole cycles a linear trend is not orthogonal to sin(omega t) and
        would bias M'; this removes it.
    stress_unit, time_unit : str
        Labels carried into the result.

    Returns
    -------
    DMSResult

    Raises
    ------
    ValueError
        Bad shapes or values, fewer than 2 complete cycles after discarding, or a cycle with
        too few samples to fit (fewer than the number of fit parameters + 1).

    Warns
    -----
    RuntimeWarning
        If M' is negative by more than 3 standard errors (likely a stress sign error).
    """
    t, y = _time_series(t, stress)
    eps = _positive_scalar("strain_amplitude", strain_amplitude)
    omega = _positive_scalar("omega", omega)
    if int(discard_cycles) != discard_cycles or discard_cycles < 0:
        raise ValueError(f"discard_cycles must be a non-negative integer, got {discard_cycles!r}")
    discard_cycles = int(discard_cycles)
    period = TWO_PI / omega
    n_par = 4 if detrend else 3

    phase = t / period  # in cycles
    cycle = np.floor(phase + _PHASE_EPS).astype(np.int64)
    # A cycle counts as complete when the record reaches (within one sampling interval)
    # both of its ends; the largest spacing covers non-uniform sampling.
    slack = np.max(np.diff(t)) * (1.0 + _PHASE_EPS)
    k_first = max(discard_cycles, int(math.ceil((t[0] - slack) / period - _PHASE_EPS)))
    k_last = int(math.floor((t[-1] + slack) / period + _PHASE_EPS)) - 1
    n_cycles = k_last - k_first + 1
    if n_cycles < 2:
        raise ValueError(
            f"need at least 2 complete cycles after discarding {discard_cycles}; the record "
            f"t = [{t[0]:g}, {t[-1]:g}] {time_unit} holds {max(n_cycles, 0)} (period "
            f"{period:g} {time_unit}). Record longer or lower discard_cycles."
        )
    keep = (cycle >= k_first) & (cycle <= k_last)
    tk, yk, ck = t[keep], y[keep], cycle[keep]
    counts = np.bincount(ck - k_first, minlength=n_cycles)
    if counts.min() < n_par + 1:
        raise ValueError(
            f"every analysed cycle needs at least {n_par + 1} samples; cycle "
            f"{int(np.argmin(counts)) + k_first} has {counts.min()} (period {period:g}, "
            f"sample more often)"
        )

    # ---- global fit: the reported values.
    t_ref = 0.5 * (tk[0] + tk[-1])
    X = _design(tk, omega, detrend, t_ref, period)
    coef, _, rank, _ = np.linalg.lstsq(X, yk, rcond=None)
    if rank < n_par:
        raise ValueError("degenerate sampling: sin and cos cannot be separated")
    resid = yk - X @ coef
    dof = tk.size - n_par
    s2 = float(resid @ resid) / dof
    cov_ls = s2 * np.linalg.inv(X.T @ X)
    s0, a, b = (float(c) for c in coef[:3])

    # ---- per-cycle fits: the uncertainty.
    per = np.empty((n_cycles, n_par))
    for j in range(n_cycles):
        m = ck == k_first + j
        tj = tk[m]
        Xj = _design(tj, omega, detrend, 0.5 * (tj[0] + tj[-1]), period)
        cj, _, rank_j, _ = np.linalg.lstsq(Xj, yk[m], rcond=None)
        if rank_j < n_par:
            raise ValueError(f"degenerate sampling in cycle {k_first + j}")
        per[j] = cj
    # Covariance of the mean over cycles, scaled by the squared Student-t factor so that
    # every error derived from it (linear or delta method) is a 68 % half-width.
    tf = t_factor68(n_cycles - 1)
    cov_cyc = np.atleast_2d(np.cov(per, rowvar=False, ddof=1)) / n_cycles * tf * tf

    amp_m, amp_m_err, delta, delta_err, tan, tan_err = _ab_derived(a, b, cov_cyc[1:3, 1:3], eps)
    _, _, _, delta_err_ls, _, _ = _ab_derived(a, b, cov_ls[1:3, 1:3], eps)
    m1, m1_err = a / eps, math.sqrt(cov_cyc[1, 1]) / eps
    if m1 < -3.0 * m1_err / tf and m1_err > 0:
        warnings.warn(
            f"negative storage modulus M' = {m1:.4g} +- {m1_err:.2g}: is the stress sign "
            "right (sigma = -P for the pressure tensor P)?",
            RuntimeWarning,
            stacklevel=2,
        )
    return DMSResult(
        omega=omega,
        strain_amplitude=eps,
        m_storage=m1,
        m_storage_err=m1_err,
        m_loss=b / eps,
        m_loss_err=math.sqrt(cov_cyc[2, 2]) / eps,
        tan_delta=tan,
        tan_delta_err=tan_err,
        delta=delta,
        delta_err=delta_err,
        modulus_magnitude=amp_m,
        modulus_magnitude_err=amp_m_err,
        stress_amplitude=amp_m * eps,
        stress_amplitude_err=amp_m_err * eps,
        stress_offset=s0,
        stress_offset_err=math.sqrt(cov_cyc[0, 0]),
        stress_drift=float(coef[3]) / period if detrend else None,
        m_storage_err_ls=math.sqrt(cov_ls[1, 1]) / eps,
        m_loss_err_ls=math.sqrt(cov_ls[2, 2]) / eps,
        delta_err_ls=delta_err_ls,
        residual_rms=math.sqrt(float(resid @ resid) / tk.size),
        n_cycles=n_cycles,
        n_points=int(tk.size),
        discard_cycles=discard_cycles,
        stress_unit=str(stress_unit),
        time_unit=str(time_unit),
        error_dof=float(n_cycles - 1),
        error_method=f"spread over {n_cycles} cycles of one run, Student-t with "
        f"{n_cycles - 1} dof",
    )


@dataclass(frozen=True)
class DMSMean:
    """Mean over independent glasses of :class:`DMSResult` at one frequency (see
    :func:`combine_dms`). Errors are 68.3 % half-widths: standard error over the
    ``n_glasses`` glass means times :func:`t_factor68` of ``error_dof = n_glasses - 1``.
    ``n_samples`` counts the runs combined (repeats included)."""

    omega: float
    m_storage: float
    m_storage_err: float
    m_loss: float
    m_loss_err: float
    tan_delta: float  # mean M'' / mean M'
    tan_delta_err: float
    delta: float  # atan2(mean M'', mean M'), radians
    delta_err: float
    n_samples: int
    stress_unit: str = ""
    time_unit: str = ""
    n_glasses: int = 0
    error_dof: float = math.nan
    error_method: str = ""

    def as_dict(self) -> dict:
        """All fields as plain Python values (units as strings)."""
        return _as_dict(self)


def _glass_index(groups, n):
    """Integer glass index (0..G-1, in order of first appearance) of each of ``n`` items."""
    if groups is None:
        return np.arange(n)
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} labels for {n} items")
    first = {}
    return np.array([first.setdefault(g, len(first)) for g in groups], dtype=np.int64)


def _group_means(values, index):
    """Mean of the rows of ``values`` (shape (S, ...)) within each group: shape (G, ...)."""
    g = int(index.max()) + 1
    out = np.zeros((g, *values.shape[1:]))
    np.add.at(out, index, values)
    return out / np.bincount(index, minlength=g).reshape((g,) + (1,) * (values.ndim - 1))


def combine_dms(results: Sequence[DMSResult], groups=None) -> DMSMean:
    """Combine DMS fits of independent glasses at the same frequency.

    Runs of the same glass (``groups``) are averaged first, one value per glass; M' and M''
    are then averaged over glasses without weights, and the error is the standard error over
    glasses times the Student-t factor of ``G - 1`` dof: glass-to-glass variation is
    physical and usually dominates the within-run fit errors, which a weighted mean would
    ignore, and repeats of one glass do not sample it. tan delta and delta are formed from
    the *mean* moduli (ratio of means: a noisy M' in a per-sample denominator would bias the
    mean of ratios), with errors propagated from the covariance of (M', M'') over glasses.

    Parameters
    ----------
    results : sequence of DMSResult, length S >= 2
        Same omega (relative tolerance 1e-9) and the same unit labels.
    groups : sequence of hashable, length S, optional
        Glass label of each result (repeats of a glass share it). Default: every result is
        its own glass.

    Returns
    -------
    DMSMean

    Raises
    ------
    ValueError
        Fewer than 2 glasses, mixed frequencies or units.
    """
    results = list(results)
    index = _glass_index(groups, len(results))
    if len(results) < 2 or index.max() < 1:
        raise ValueError(f"need at least 2 glasses to estimate a spread, got "
                         f"{int(index.max()) + 1 if results else 0}")
    if not all(isinstance(r, DMSResult) for r in results):
        raise TypeError("results must be DMSResult instances")
    omega = results[0].omega
    for r in results[1:]:
        if not math.isclose(r.omega, omega, rel_tol=1e-9):
            raise ValueError(f"results at different frequencies: omega = {omega} and {r.omega}")
        if (r.stress_unit, r.time_unit) != (results[0].stress_unit, results[0].time_unit):
            raise ValueError("results carry different unit labels")
    m = _group_means(np.array([[r.m_storage, r.m_loss] for r in results]), index)  # (G, 2)
    n = m.shape[0]
    mean = m.mean(axis=0)
    tf = t_factor68(n - 1)
    cov = np.cov(m, rowvar=False, ddof=1) / n * tf * tf
    _, _, delta, delta_err, tan, tan_err = _ab_derived(mean[0], mean[1], cov, 1.0)
    return DMSMean(
        omega=omega,
        m_storage=float(mean[0]),
        m_storage_err=float(math.sqrt(cov[0, 0])),
        m_loss=float(mean[1]),
        m_loss_err=float(math.sqrt(cov[1, 1])),
        tan_delta=tan,
        tan_delta_err=tan_err,
        delta=delta,
        delta_err=delta_err,
        n_samples=len(results),
        stress_unit=results[0].stress_unit,
        time_unit=results[0].time_unit,
        n_glasses=n,
        error_dof=float(n - 1),
        error_method=f"spread over {n} glasses (repeats averaged within each), Student-t "
        f"with {n - 1} dof",
    )


def debye_modulus(omega, g_inf, tau, g_relaxed=0.0):
    """Storage and loss moduli of a single Debye relaxation (Maxwell element).

    ``M*(omega) = g_relaxed + (g_inf - g_relaxed) i omega tau / (1 + i omega tau)``: a Maxwell
    liquid for ``g_relaxed = 0``, the standard linear solid otherwise. The loss peak
    ``M'' = (g_inf - g_relaxed) / 2`` lies at ``omega tau = 1``. The time-domain counterpart
    is the relaxation modulus ``g_relaxed + (g_inf - g_relaxed) exp(-t / tau)`` (KWW with
    beta = 1).

    Parameters
    ----------
    omega : float or array_like
        Angular frequency, rad per time unit of ``tau``.
    g_inf : float
        Unrelaxed (high-frequency) modulus.
    tau : float
        Relaxation time (> 0).
    g_relaxed : float
        Relaxed (zero-frequency) modulus.

    Returns
    -------
    storage, loss : float or ndarray, shape of ``omega``
        M'(omega) and M''(omega), in the unit of ``g_inf``.
    """
    tau = _positive_scalar("tau", tau)
    x = np.asarray(omega, dtype=np.float64) * tau
    d = (float(g_inf) - float(g_relaxed)) / (1.0 + x * x)
    storage = float(g_relaxed) + d * x * x
    loss = d * x
    if storage.ndim == 0:
        return float(storage), float(loss)
    return storage, loss


# ========================================================================= relaxation
def kww(t, tau, beta):
    """Kohlrausch-Williams-Watts function ``exp[-(t / tau)^beta]``.

    Parameters
    ----------
    t : float or array_like
        Times >= 0, same unit as ``tau``.
    tau, beta : float
        Relaxation time (> 0) and exponent (> 0).

    Returns
    -------
    float or ndarray, shape of ``t``
    """
    out = np.exp(-((np.asarray(t, dtype=np.float64) / tau) ** beta))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class KWWResult:
    """Result of :func:`fit_kww` or :func:`fit_kww_glasses`.

    The fitted model is ``M(t) = delta_modulus * phi(t) + residual_modulus`` with
    ``phi = exp[-(t / tau)^beta]``; when the data were a stress with ``strain`` eps_0, the
    stress-side parameters are ``delta_sigma = delta_modulus * eps_0`` and
    ``sigma_r = residual_modulus * eps_0`` (``None`` otherwise). Moduli and stresses in
    ``stress_unit``, times in ``time_unit``.

    ``*_err`` are half-widths of 68.3 % intervals (standard error times
    :func:`t_factor68` of ``error_dof``), computed as ``error_method`` says. A parameter in
    ``at_bound`` (name -> ``"lower"`` or ``"upper"``) ended on its bound: its value is the
    bound, it is not constrained by the data, and its error (and that of ``tau_mean`` when
    tau or beta is at a bound) is NaN. ``fit_range`` is the (first, last) time fitted; the
    model is only meaningful there.

    ``covariance`` is the 4 x 4 covariance of (tau, beta, delta_modulus, residual_modulus)
    (standard errors squared on the diagonal, no t factor; NaN rows for parameters at a
    bound), obtained in (ln tau, beta, ...): ``tau_err`` is ``tau`` times the error of
    ln tau. ``tau_mean`` is the mean relaxation time
    ``integral phi dt = (tau / beta) Gamma(1 / beta)``.
    """

    tau: float
    tau_err: float
    beta: float
    beta_err: float
    delta_modulus: float
    delta_modulus_err: float
    residual_modulus: float
    residual_modulus_err: float
    tau_mean: float
    tau_mean_err: float
    strain: float | None
    delta_sigma: float | None
    delta_sigma_err: float | None
    sigma_r: float | None
    sigma_r_err: float | None
    chi2: float  # sum of squared (weighted, if sigma given) residuals in data units
    dof: int
    absolute_sigma: bool  # True: errors from the given sigma; False: scaled by chi2 / dof
    n_points: int
    covariance: np.ndarray = field(compare=False, repr=False)
    stress_unit: str = ""
    time_unit: str = ""
    fit_range: tuple = (math.nan, math.nan)  # (first, last) time fitted, time_unit
    at_bound: dict = field(default_factory=dict)  # parameter -> "lower" | "upper"
    error_method: str = "least squares (points treated as independent)"
    error_dof: float = math.inf
    n_glasses: int = 0  # glasses behind the curve (0: not known, a single fit_kww)

    @property
    def reduced_chi2(self) -> float:
        """chi2 / dof; ~1 when the model fits and the given sigma are right."""
        return self.chi2 / self.dof

    def modulus(self, t):
        """Fitted M(t) at times ``t`` (``time_unit``), in ``stress_unit``."""
        return self.delta_modulus * kww(t, self.tau, self.beta) + self.residual_modulus

    def constrained(self, name: str) -> bool:
        """False when ``name`` (tau, beta, delta_modulus, residual_modulus, tau_mean,
        delta_sigma, sigma_r) is not determined by the data (a parameter at its bound)."""
        base = _KWW_PARAM_OF.get(name, name)
        if name == "tau_mean":
            return not ({"tau", "beta"} & set(self.at_bound))
        return base not in self.at_bound

    def format(self, name: str, fmt: str = ".4g") -> str:
        """``"value ± err"`` for a constrained quantity; for one at its bound
        ``"value (at upper bound, unconstrained)"`` -- never a number with an error bar."""
        value = getattr(self, name)
        if not self.constrained(name):
            side = self.at_bound.get(_KWW_PARAM_OF.get(name, name), "")
            where = f"at {side} bound" if side else "from a parameter at its bound"
            return f"{value:{fmt}} ({where}, unconstrained)"
        err = getattr(self, name + "_err")
        if err is None or not math.isfinite(err):
            return f"{value:{fmt}} (no error estimate: {self.error_method})"
        return f"{value:{fmt}} ± {err:.2g}"

    def as_dict(self) -> dict:
        """All fields as plain Python values (covariance as nested lists, units as strings);
        errors that are NaN (unconstrained parameters) become None, valid JSON."""
        d = _as_dict(self)
        d["reduced_chi2"] = self.reduced_chi2
        d["fit_range"] = list(self.fit_range)
        for k, v in d.items():
            if k.endswith("_err") and isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        d["covariance"] = [[x if math.isfinite(x) else None for x in row]
                           for row in np.asarray(self.covariance, dtype=float).tolist()]
        return d


_KWW_NAMES = ("tau", "beta", "amplitude", "offset")
# Names of the bounded fit parameters as the result reports them.
_KWW_PARAMS = ("tau", "beta", "delta_modulus", "residual_modulus")
_KWW_PARAM_OF = {"delta_sigma": "delta_modulus", "sigma_r": "residual_modulus",
                 "amplitude": "delta_modulus", "offset": "residual_modulus"}


def _kww_model(t, u, beta, amp, off):
    x = t * math.exp(-u)  # t / tau
    xb = x**beta
    return amp * np.exp(-xb) + off


def _kww_jac(t, u, beta, amp, off):
    x = t * math.exp(-u)
    xb = x**beta
    phi = np.exp(-xb)
    with np.errstate(divide="ignore", invalid="ignore"):
        xblog = np.where(x > 0, xb * np.log(np.where(x > 0, x, 1.0)), 0.0)  # x^b ln x -> 0
    return np.stack(
        [amp * phi * beta * xb, -amp * phi * xblog, phi, np.ones_like(t)], axis=1
    )  # d/d(ln tau), d/d(beta), d/d(amp), d/d(off)


def _kww_grid_start(t, y, w, lo, hi):
    """Best (ln tau, beta, amp, off) on a grid of (ln tau, beta), with amp and off solved by
    weighted linear least squares at each grid point (they enter linearly). Makes the
    nonlinear fit independent of a user guess and immune to local minima in beta."""
    tpos = t[t > 0]
    u_lo = max(lo[0], math.log(tpos[0]) - 1.0)
    u_hi = min(hi[0], math.log(t[-1]) + 1.0)
    if u_hi <= u_lo:
        u_lo, u_hi = lo[0], hi[0]
    us = np.linspace(u_lo, u_hi, 36)
    bs = np.geomspace(max(lo[1], 0.1), min(hi[1], 2.0), 16)
    bs = np.unique(np.clip(bs, lo[1], hi[1]))
    U, B = np.meshgrid(us, bs, indexing="ij")
    U, B = U.ravel(), B.ravel()
    phi = np.exp(-((t[None, :] * np.exp(-U)[:, None]) ** B[:, None]))  # (G, K)
    sw, sy = w.sum(), w @ y
    sp, spp, spy = phi @ w, (phi * phi) @ w, phi @ (w * y)
    det = sw * spp - sp * sp
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = (sw * spy - sp * sy) / det
        off = (spp * sy - sp * spy) / det
    amp = np.clip(amp, lo[2], hi[2])
    off = np.clip(off, lo[3], hi[3])
    r = y[None, :] - amp[:, None] * phi - off[:, None]
    cost = (r * r) @ w
    cost[~np.isfinite(cost)] = np.inf
    g = int(np.argmin(cost))
    return np.array([U[g], B[g], amp[g], off[g]])


def _kww_window(t, y, fit_range):
    """The points with fit_range[0] <= t <= fit_range[1] (either end None: open)."""
    if fit_range is None:
        return t, y
    lo_t, hi_t = fit_range
    keep = np.ones(t.shape, dtype=bool)
    if lo_t is not None:
        keep &= t >= float(lo_t)
    if hi_t is not None:
        keep &= t <= float(hi_t)
    if keep.sum() < 5:
        raise ValueError(f"only {int(keep.sum())} points in the fit range {tuple(fit_range)} "
                         f"(need >= 5; data span [{t[0]:g}, {t[-1]:g}])")
    return t[keep], y[keep]


def _kww_bounds(t, bounds):
    """Internal (ln tau, beta, A, C) bound vectors from the defaults and user overrides."""
    tpos_min = float(t[t > 0][0])
    bd = {
        "tau": (1e-3 * tpos_min, 1e3 * float(t[-1])),
        "beta": KWW_BETA_BOUNDS,
        "amplitude": (-np.inf, np.inf),
        "offset": (-np.inf, np.inf),
    }
    if bounds is not None:
        if not isinstance(bounds, Mapping):
            raise ValueError("bounds must be a mapping such as {'beta': (0.1, 1.0)}")
        unknown = set(bounds) - set(_KWW_NAMES)
        if unknown:
            raise ValueError(f"unknown bound names {sorted(unknown)}; use {_KWW_NAMES}")
        for k, v in bounds.items():
            lo_, hi_ = (float(x) for x in v)
            bd[k] = (lo_, hi_)
    for k, (lo_, hi_) in bd.items():
        if not lo_ < hi_ or np.isnan(lo_) or np.isnan(hi_):
            raise ValueError(f"bounds for {k} must satisfy lo < hi, got ({lo_}, {hi_})")
    if not (bd["tau"][0] > 0 and bd["beta"][0] > 0):
        raise ValueError("tau and beta bounds must be positive")
    lo = np.array([math.log(bd["tau"][0]), *(bd[k][0] for k in _KWW_NAMES[1:])])
    hi = np.array([math.log(bd["tau"][1]), *(bd[k][1] for k in _KWW_NAMES[1:])])
    return bd, lo, hi


def _kww_solve(t, y, sigma, absolute_sigma, p0, bd, lo, hi):
    """Nonlinear least squares in (ln tau, beta, A, C): (popt, pcov, at_bound dict)."""
    from scipy.optimize import curve_fit

    w = np.ones_like(t) if sigma is None else 1.0 / sigma**2
    if p0 is None:
        start = _kww_grid_start(t, y, w, lo, hi)
    else:
        p0 = np.asarray(p0, dtype=np.float64)
        if p0.shape != (4,) or not np.all(np.isfinite(p0)) or p0[0] <= 0:
            raise ValueError("p0 must be 4 finite numbers (tau > 0, beta, amplitude, offset)")
        start = np.array([math.log(p0[0]), *p0[1:]])
        if np.any(start < lo) or np.any(start > hi):
            raise ValueError(f"p0 {p0.tolist()} lies outside the bounds {bd}")
    # Keep the start strictly inside the box (trf requires it).
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    start = np.clip(start, lo + 1e-10 * span, hi - 1e-10 * span)
    try:
        popt, pcov = curve_fit(
            _kww_model,
            t,
            y,
            p0=start,
            sigma=sigma,
            absolute_sigma=absolute_sigma,
            bounds=(lo, hi),
            jac=_kww_jac,
            method="trf",
            x_scale="jac",
            max_nfev=2000,
        )
    except RuntimeError as exc:
        raise RuntimeError(f"KWW fit did not converge: {exc}") from exc
    # "At the bound" within 1e-6 of the box width: trf stops a hair inside an active bound.
    at_bound = {}
    for i in range(4):
        if np.isfinite(lo[i]) and abs(popt[i] - lo[i]) <= 1e-6 * span[i]:
            at_bound[_KWW_PARAMS[i]] = "lower"
        elif np.isfinite(hi[i]) and abs(popt[i] - hi[i]) <= 1e-6 * span[i]:
            at_bound[_KWW_PARAMS[i]] = "upper"
    return popt, pcov, at_bound


def _kww_result(popt, pcov, at_bound, *, t, chi2, dof, absolute_sigma, strain, tf,
                error_method, error_dof, n_glasses, stress_unit, time_unit) -> KWWResult:
    """KWWResult from internal parameters (ln tau, beta, A, C) and their covariance
    ``pcov`` (standard errors squared; multiplied by ``tf`` for the reported errors)."""
    from scipy.special import gamma, polygamma

    u, beta, amp, off = (float(p) for p in popt)
    pcov = np.array(pcov, dtype=np.float64)
    # A parameter on its bound has no error; NaN its row and column so nothing derived from
    # it (tau_mean, the covariance) pretends otherwise.
    for name in at_bound:
        i = _KWW_PARAMS.index(name)
        pcov[i, :] = np.nan
        pcov[:, i] = np.nan
    tau = math.exp(u)
    # (ln tau, beta, A, C) -> (tau, beta, M_delta, M_r): Jacobian of the transformation.
    scale = 1.0 if strain is None else 1.0 / strain
    # Element-wise (the Jacobian is diagonal): a matrix product would spread the NaN of a
    # parameter at its bound into every entry.
    jd = np.array([tau, 1.0, scale, scale])
    cov = pcov * np.outer(jd, jd)
    err = tf * np.sqrt(np.abs(np.diag(cov)))
    # <tau> = (tau / beta) Gamma(1 / beta); error by the delta method in (ln tau, beta):
    # d ln<tau>/d ln tau = 1, d ln<tau>/d beta = -(1 + psi(1/beta) / beta) / beta.
    tau_mean = tau / beta * float(gamma(1.0 / beta))
    g = np.array([1.0, -(1.0 + float(polygamma(0, 1.0 / beta)) / beta) / beta])
    var_ln_mean = float(g @ pcov[:2, :2] @ g)
    tau_mean_err = tf * tau_mean * math.sqrt(max(var_ln_mean, 0.0)) if math.isfinite(
        var_ln_mean) else math.nan
    return KWWResult(
        tau=tau,
        tau_err=float(err[0]),
        beta=beta,
        beta_err=float(err[1]),
        delta_modulus=amp * scale,
        delta_modulus_err=float(err[2]),
        residual_modulus=off * scale,
        residual_modulus_err=float(err[3]),
        tau_mean=tau_mean,
        tau_mean_err=tau_mean_err,
        strain=strain,
        delta_sigma=None if strain is None else amp,
        delta_sigma_err=None if strain is None else float(tf * math.sqrt(abs(pcov[2, 2]))),
        sigma_r=None if strain is None else off,
        sigma_r_err=None if strain is None else float(tf * math.sqrt(abs(pcov[3, 3]))),
        chi2=chi2,
        dof=dof,
        absolute_sigma=absolute_sigma,
        n_points=int(t.size),
        covariance=cov,
        stress_unit=str(stress_unit),
        time_unit=str(time_unit),
        fit_range=(float(t[0]), float(t[-1])),
        at_bound=dict(at_bound),
        error_method=error_method,
        error_dof=float(error_dof),
        n_glasses=int(n_glasses),
    )


def _check_kww_input(t, y, strain):
    t, y = _time_series(t, y, ("t", "modulus_or_stress"), min_len=5)
    if t[0] < 0:
        raise ValueError("t must be >= 0 (time since the strain step)")
    if t[-1] <= 0:
        raise ValueError("t must contain positive times")
    if strain is not None:
        strain = float(strain)
        if not np.isfinite(strain) or strain == 0.0:
            raise ValueError(f"strain must be finite and non-zero, got {strain!r}")
    return t, y, strain


def _warn_unconstrained(at_bound, pcov, stacklevel=3):
    if at_bound:
        warnings.warn(
            f"KWW fit ended on the bound of {sorted(at_bound)}: not constrained by the data "
            "(reported without an error)",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    if not np.all(np.isfinite(pcov)):
        warnings.warn(
            "KWW covariance could not be estimated; errors are infinite",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def fit_kww(
    t,
    modulus_or_stress,
    *,
    strain=None,
    sigma=None,
    absolute_sigma=None,
    p0=None,
    bounds=None,
    fit_range=None,
    stress_unit="",
    time_unit="",
) -> KWWResult:
    """Fit a KWW decay plus plateau to one relaxation modulus (or stress) curve.

    Fits ``y(t) = A exp[-(t / tau)^beta] + C`` by :func:`scipy.optimize.curve_fit`
    (trust-region reflective, analytic Jacobian) in the parameters (ln tau, beta, A, C):
    ln tau because tau may span decades and the curvature of the cost is far more uniform
    in ln tau. Without ``p0`` the start is the best point of a grid over (ln tau, beta)
    with A and C solved exactly at each node.

    The errors are least-squares errors: right for independent noise of known (or
    constant) variance. For an MD curve, whose points are correlated in time and whose
    glasses scatter, use :func:`fit_kww_glasses`.

    Parameters
    ----------
    t : array_like, shape (K,)
        Strictly increasing times >= 0 since the strain step, in ``time_unit``.
    modulus_or_stress : array_like, shape (K,)
        M(t) when ``strain`` is None, else sigma(t), in ``stress_unit``.
    strain : float, optional
        Step strain eps_0 (non-zero; negative for compression): the data are then a stress,
        and the moduli are the stress parameters divided by eps_0.
    sigma : array_like, shape (K,), optional
        Standard error of each data point, same unit as the data.
    absolute_sigma : bool, optional
        True: parameter errors from ``sigma`` as given; False: scaled so that
        chi2 / dof = 1. Default: True when ``sigma`` is given, else False (errors from the
        residual scatter).
    p0 : sequence of 4 floats, optional
        Start (tau, beta, A, C) in data units (A, C in the units of the data).
    bounds : mapping, optional
        Overrides of the default bounds ``{"tau": (lo, hi), "beta": (lo, hi), "amplitude":
        (lo, hi), "offset": (lo, hi)}``; defaults: tau in [1e-3 * smallest positive fitted
        t, 1e3 * largest t], beta in [0.05, 2], A and C unbounded. Data units as for ``p0``.
    fit_range : (float or None, float or None), optional
        Fit only the points with ``lo <= t <= hi`` (``time_unit``; None leaves that end
        open), e.g. to exclude the vibrational transient right after the step. Default: all
        points. The range actually fitted is stored in the result.
    stress_unit, time_unit : str
        Labels carried into the result.

    Returns
    -------
    KWWResult
        ``*_err`` from the covariance (many dof: t factor 1); parameters at a bound have NaN
        errors and are listed in ``at_bound``.

    Raises
    ------
    ValueError
        Bad shapes or values (fewer than 5 points in range, negative or non-increasing t,
        no t > 0, non-positive sigma, bad bounds or p0 outside them).
    RuntimeError
        The optimiser did not converge.

    Warns
    -----
    RuntimeWarning
        A fitted parameter ends on a bound, or the covariance cannot be estimated (infinite
        errors): the model is not constrained by the data.
    """
    t, y, strain = _check_kww_input(t, modulus_or_stress, strain)
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != t.shape or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
            raise ValueError(f"sigma must be finite, positive, of shape {t.shape}")
        if fit_range is not None:
            _, sigma = _kww_window(t, sigma, fit_range)
    t, y = _kww_window(t, y, fit_range)
    if t[-1] <= 0:
        raise ValueError("the fit range must contain positive times")
    if absolute_sigma is None:
        absolute_sigma = sigma is not None
    absolute_sigma = bool(absolute_sigma)
    bd, lo, hi = _kww_bounds(t, bounds)
    popt, pcov, at_bound = _kww_solve(t, y, sigma, absolute_sigma, p0, bd, lo, hi)
    _warn_unconstrained(at_bound, pcov)
    w = np.ones_like(t) if sigma is None else 1.0 / sigma**2
    resid = (y - _kww_model(t, *popt)) * np.sqrt(w)
    return _kww_result(
        popt, pcov, at_bound, t=t, chi2=float(resid @ resid), dof=t.size - 4,
        absolute_sigma=absolute_sigma, strain=strain, tf=1.0,
        error_method="least squares (points treated as independent)",
        error_dof=math.inf, n_glasses=0, stress_unit=stress_unit, time_unit=time_unit)


def integrated_autocorrelation_time(x, c=6.0) -> float:
    """Integrated autocorrelation time of a series, in samples (Sokal's automatic window).

    ``tau_int = 1/2 + sum_{k=1}^{M} rho_k`` with the smallest window ``M >= c tau_int(M)``;
    white noise gives 1/2, and the variance of a mean of n points is ``2 tau_int var / n``.

    Parameters
    ----------
    x : array_like, shape (K,)
        The series (its mean is removed).
    c : float
        Window factor; 5-10 is the usual compromise between bias and noise.

    Returns
    -------
    float
        tau_int >= 1/2 (samples).
    """
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    n = x.size
    if n < 4 or not np.any(x):
        return 0.5
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    rho = acf / acf[0]
    cums = 0.5 + np.cumsum(rho[1:])
    for m in range(1, n):
        if m >= c * cums[m - 1]:
            return float(max(cums[m - 1], 0.5))
    return float(max(cums[-1], 0.5))


_SANDWICH_MAX_BLOCKS = 12


def _block_sandwich(t, y, popt, at_bound, block):
    """Covariance of (ln tau, beta, A, C) of an unweighted fit with correlated, possibly
    heteroscedastic noise: (J^T J)^-1 (sum_b s_b s_b^T) (J^T J)^-1 with the scores
    s_b = J_b^T r_b summed over consecutive blocks of ``block`` points. When blocks are much
    longer than the correlation time, scores of different blocks are independent and the
    middle term estimates the score covariance without assuming white noise. Parameters at
    a bound are held fixed (left out of J)."""
    free = [i for i in range(4) if _KWW_PARAMS[i] not in at_bound]
    jac = _kww_jac(t, *popt)[:, free]
    r = y - _kww_model(t, *popt)
    n_blocks = t.size // block
    cut = n_blocks * block
    # The last partial block joins the previous one: no point is dropped.
    idx = np.minimum(np.arange(t.size) // block, n_blocks - 1) if cut < t.size else (
        np.arange(t.size) // block)
    scores = np.zeros((n_blocks, len(free)))
    np.add.at(scores, idx, jac * r[:, None])
    meat = scores.T @ scores * n_blocks / max(n_blocks - len(free), 1)
    bread = np.linalg.pinv(jac.T @ jac)
    cov_free = bread @ meat @ bread
    cov = np.full((4, 4), np.nan)
    cov[np.ix_(free, free)] = cov_free
    return cov, n_blocks


def fit_kww_glasses(
    t,
    curves,
    groups=None,
    *,
    strain=None,
    fit_range=None,
    bounds=None,
    stress_unit="",
    time_unit="",
) -> KWWResult:
    """KWW fit of relaxation curves from several glasses, with honest errors.

    1. Curves of the same glass (``groups``: repeats with new velocities) are averaged:
       one curve per glass.
    2. The mean of the G glass curves is fitted by :func:`fit_kww`, unweighted: a per-point
       standard error from a few glasses is itself very noisy (chi-square with G - 1 dof)
       and would make the weights, not the data, decide the fit.
    3. Errors:

       - G >= 2: delete-one jackknife over glasses (each glass left out in turn, the rest
         refitted from the full-fit parameters): ``var = (G - 1) / G sum (theta_g -
         theta_bar)^2``, times :func:`t_factor68` of G - 1 dof. This includes the
         glass-to-glass scatter and the time correlation of the noise, since whole curves
         are left out.
       - G = 1: the glass-to-glass scatter cannot be measured; the error covers the noise of
         this glass only (``error_method`` says so). The covariance is a block sandwich:
         residual scores summed over consecutive blocks of >= 10 tau_int points (tau_int
         the integrated autocorrelation time of the residuals), 6-12 blocks, so the ~10^4
         correlated points are not counted as independent; t factor of (blocks - 4) dof.
         On synthetic AR(1) noise 40-80 correlation times long this covers 0.63-0.72
         (``tests/test_mechanics_fits.py``); much shorter records give too few blocks.

    Parameters
    ----------
    t : array_like, shape (K,)
        Common time grid (>= 0, strictly increasing; ``time_unit``).
    curves : array_like, shape (S, K)
        Stress (with ``strain``) or modulus curves, ``stress_unit``.
    groups : sequence of hashable, length S, optional
        Glass label of each curve; default: each curve is its own glass.
    strain : float, optional
        Step strain eps_0, as for :func:`fit_kww`.
    fit_range : (float or None, float or None), optional
        Time window fitted (``time_unit``), as for :func:`fit_kww`.
    bounds : mapping, optional
        As for :func:`fit_kww`.
    stress_unit, time_unit : str
        Labels.

    Returns
    -------
    KWWResult
        ``n_glasses = G``, ``error_method`` and ``error_dof`` describe the errors.

    Raises
    ------
    ValueError, RuntimeError
        As :func:`fit_kww` (for the full fit).
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] != t.size:
        raise ValueError(f"curves must have shape (S, {t.size}), got {curves.shape}")
    index = _glass_index(groups, curves.shape[0])
    glass = _group_means(curves, index)  # (G, K)
    n_g = glass.shape[0]
    t, mean, strain = _check_kww_input(t, glass.mean(axis=0), strain)
    tw, yw = _kww_window(t, mean, fit_range)
    if tw[-1] <= 0:
        raise ValueError("the fit range must contain positive times")
    keep = np.isin(t, tw)
    bd, lo, hi = _kww_bounds(tw, bounds)
    popt, pcov_ls, at_bound = _kww_solve(tw, yw, None, False, None, bd, lo, hi)
    resid = yw - _kww_model(tw, *popt)
    chi2 = float(resid @ resid)
    if n_g >= 2:
        start = (math.exp(popt[0]), *popt[1:])
        thetas, failed, replicate_bound = [], [], {}
        for g in range(n_g):
            rest = np.delete(glass, g, axis=0).mean(axis=0)[keep]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p, _, p_bound = _kww_solve(tw, rest, None, False, start, bd, lo, hi)
                thetas.append(p)
                replicate_bound.update(p_bound)
            except (RuntimeError, ValueError) as exc:
                failed.append(f"glass {g}: {exc}")
        # A leave-one-out fit held at a bound truncates that parameter's jackknife spread
        # (two glasses both pinned at beta = 2 give a spread of 0, i.e. a fake 1e-11 error):
        # such a parameter has no error and is reported as unconstrained.
        extra = sorted(set(replicate_bound) - set(at_bound))
        if extra:
            at_bound = {**at_bound, **{k: replicate_bound[k] for k in extra}}
        if failed:
            pcov = np.full((4, 4), np.nan)
            method = f"jackknife over {n_g} glasses failed ({'; '.join(failed)})"
        else:
            th = np.array(thetas)
            d = th - th.mean(axis=0)
            pcov = (n_g - 1) / n_g * (d.T @ d)
            method = (f"jackknife over {n_g} glasses (repeats averaged within each glass), "
                      f"Student-t with {n_g - 1} dof")
            if extra:
                method += (f"; {', '.join(extra)} at a bound in a leave-one-out fit: no "
                           "error")
        err_dof = n_g - 1
    else:
        tau_int = integrated_autocorrelation_time(resid)
        # Blocks of >= 10 tau_int, so that neighbouring block scores are nearly independent
        # (the estimate of tau_int from one short record is itself uncertain by a factor
        # ~2), and no more than _SANDWICH_MAX_BLOCKS of them; at least 6 blocks, else
        # the score covariance has too few degrees of freedom to mean anything.
        block = max(math.ceil(10.0 * tau_int), math.ceil(tw.size / _SANDWICH_MAX_BLOCKS))
        block = min(block, max(1, tw.size // 6))
        pcov, n_blocks = _block_sandwich(tw, yw, popt, at_bound, block)
        err_dof = max(n_blocks - 4, 1)
        method = (f"single glass: block-sandwich covariance over {n_blocks} blocks of "
                  f"{block} points (residual tau_int = {tau_int:.3g} points), Student-t with "
                  f"{err_dof} dof; glass-to-glass scatter not included")
    _warn_unconstrained(at_bound, pcov_ls)
    return _kww_result(
        popt, pcov, at_bound, t=tw, chi2=chi2, dof=tw.size - 4, absolute_sigma=False,
        strain=strain, tf=t_factor68(err_dof), error_method=method, error_dof=err_dof,
        n_glasses=n_g, stress_unit=stress_unit, time_unit=time_unit)


def average_curves(curves, t_common=None):
    """Mean and standard error of repeated relaxation curves on a common time grid.

    Parameters
    ----------
    curves : sequence of (t, values) pairs, length S >= 2
        Each ``t`` strictly increasing, shape (K_i,), with ``values`` of the same shape
        (e.g. sigma(t) of independent samples or runs with new velocities).
    t_common : array_like, shape (K,), optional
        Grid to average on. Default: the common grid when all curves share one (exactly,
        up to 1e-12 relative), else the first curve's times inside the range covered by
        every curve. Curves not sampled on the grid are interpolated linearly in t.

    Returns
    -------
    t : ndarray, shape (K,)
    mean : ndarray, shape (K,)
    sem : ndarray, shape (K,)
        Standard error of the mean, ``std(ddof=1) / sqrt(S)``.

    Raises
    ------
    ValueError
        Fewer than 2 curves, bad curves, or no overlap / a grid outside a curve's range
        (no extrapolation).
    """
    curves = list(curves)
    if len(curves) < 2:
        raise ValueError(f"need at least 2 curves to estimate an error, got {len(curves)}")
    parsed = []
    for i, c in enumerate(curves):
        try:
            ti, vi = c
        except (TypeError, ValueError) as exc:
            raise ValueError(f"curve {i} is not a (t, values) pair") from exc
        parsed.append(_time_series(ti, vi, (f"t[{i}]", f"values[{i}]")))

    if t_common is None:
        t0 = parsed[0][0]
        same = all(
            p[0].shape == t0.shape and np.allclose(p[0], t0, rtol=1e-12, atol=0.0)
            for p in parsed[1:]
        )
        if same:
            return _mean_sem(t0.copy(), np.stack([p[1] for p in parsed]))
        lo = max(p[0][0] for p in parsed)
        hi = min(p[0][-1] for p in parsed)
        tg = t0[(t0 >= lo) & (t0 <= hi)]
        if tg.size < 2:
            raise ValueError(f"curves overlap on fewer than 2 grid points (range [{lo}, {hi}])")
    else:
        tg = np.asarray(t_common, dtype=np.float64)
        if tg.ndim != 1 or tg.size < 1 or not np.all(np.isfinite(tg)):
            raise ValueError("t_common must be a finite 1-D array")
        for i, (ti, _) in enumerate(parsed):
            if tg.min() < ti[0] or tg.max() > ti[-1]:
                raise ValueError(f"t_common extends outside curve {i}'s range [{ti[0]}, {ti[-1]}]")
    vals = np.stack([np.interp(tg, ti, vi) for ti, vi in parsed])
    return _mean_sem(tg.copy(), vals)


def _mean_sem(t, vals):
    n = vals.shape[0]
    return t, vals.mean(axis=0), vals.std(axis=0, ddof=1) / math.sqrt(n)
