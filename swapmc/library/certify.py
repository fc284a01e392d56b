"""Equilibration certificate of one Monte Carlo chain.

A sample is *certified* when all of these hold for its production run (thresholds in
:class:`Criteria`, defaults after Ninarello, Berthier & Coslovich, PRX 7, 021039 (2017), who
required full decay of the correlations and production runs much longer than tau_alpha):

1. **F_s decays.** The self-intermediate scattering function F_s(q, t) of the majority
   species crossed 1/e (tau_alpha is defined), the production run lasted at least
   ``min_decays`` tau_alpha, and F_s at the longest lag measured is below ``max_fs_final``
   (full decay, not a plateau that happens to dip below 1/e).
2. **No energy drift.** The mean energy of the second half of production agrees with the
   first half. The production series is cut into 2 b blocks (b = ``drift_blocks``) and
   t = (m2 - m1) / se, with se from the scatter of the block means about a fitted line (so
   a steady drift cannot hide in its own error bar). Blocks are only ~ tau_alpha long
   (production is >= 10 tau_alpha), so neighbouring block means are correlated: that
   shrinks their scatter and widens the true spread of m2 - m1. The test therefore models
   the energy's autocorrelation as exp(-t / tau_alpha) (the energy assumed to decorrelate
   no slower than F_s at the first S(q) peak), computes the block-mean covariance this
   implies, inflates se by the ratio of the true variance of m2 - m1 to the expected
   estimate, and takes the degrees of freedom of the estimate from Satterthwaite's
   formula (see :func:`energy_drift_test`). The resulting p value is reported as the
   equivalent standard-normal score z, and the chain fails when |z| > ``max_drift_z``
   (3: a two-sided level of 0.27 %). Measured on synthetic stationary series correlated
   on the scale of tau_alpha (AR(1) with correlation time tau_alpha, and a sum of AR(1)s
   with stretched, slower-than-exponential tails), 10-20 tau_alpha long, the false-failure
   rate is 0.03-0.35 % (4000 series per case, each consistent with 0.27 % within binomial
   error; tests/test_drift_calibration.py); it is smaller when the energy decorrelates
   faster than tau_alpha. Without the correction (independent block means, Student-t with
   2 b - 2 degrees of freedom, |t| > 4 at 5 blocks per half) 1.1-4.5 % of the same series
   failed. The price is power: a linear drift of 8 stationary standard deviations
   over production is detected 80 % of the time in a 10 tau_alpha run and 95 % in a
   15 tau_alpha run (10 standard deviations: 94 % and > 99 %).
3. **Not crystallised.** The ten Wolde solid-like fraction (q6 bond order, see
   :mod:`swapmc.analysis.order`) is at most ``max_crystalline_fraction``.
4. **Quenched.** FIRE reached the force tolerance (the stored inherent structure is a
   minimum).

Each failed test adds a reason; the verdict is ``"certified"`` only when there is none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..analysis import tau_alpha as measure_tau_alpha


@dataclass(frozen=True)
class Criteria:
    """Certification thresholds (see the module docstring)."""

    min_decays: float = 10.0
    max_fs_final: float = 0.1
    max_drift_z: float = 3.0
    drift_blocks: int = 10
    max_crystalline_fraction: float = 0.05

    def __post_init__(self):
        # Python callers bypass the [library] table's checks; NaN passes every "<=" test and
        # would certify anything, so the thresholds check themselves.
        for name in ("min_decays", "max_fs_final", "max_drift_z", "max_crystalline_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise ValueError(f"Criteria.{name} must be a finite number > 0, got {v!r}")
        for name in ("max_fs_final", "max_crystalline_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"Criteria.{name} is a fraction and must be <= 1, got "
                                 f"{getattr(self, name)!r}")
        b = self.drift_blocks
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 2:
            raise ValueError(f"Criteria.drift_blocks must be an integer >= 2, got {b!r}")

    @classmethod
    def from_dict(cls, d: dict) -> Criteria:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Certificate:
    """The outcome of :func:`certify`.

    Attributes
    ----------
    verdict : str
        ``"certified"`` or ``"failed"``.
    reasons : list of str
        One line per failed test (empty when certified).
    tau_alpha : float
        tau_alpha in MC sweeps (nan if F_s never reached 1/e).
    decays : float
        production_sweeps / tau_alpha (0 when tau_alpha is nan).
    fs_final : float
        F_s at the longest measured lag.
    drift_z : float
        Energy drift between production halves as a standard-normal score (the p value of
        :func:`energy_drift_test` expressed in standard deviations of a normal variable).
    crystalline_fraction : float
        Solid-like fraction.
    needs_longer_run : bool
        True when the only failures are about F_s decay (a longer production could pass).
    """

    verdict: str
    reasons: list = field(default_factory=list)
    tau_alpha: float = math.nan
    decays: float = 0.0
    fs_final: float = math.nan
    drift_z: float = math.nan
    crystalline_fraction: float = math.nan
    needs_longer_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _half_difference(e: np.ndarray, b: int):
    """Block means of the end of a series and their difference between halves.

    Returns ``(means, diff, residual_ss, per_block)`` with ``means`` shape (2b,), or None
    when there are fewer than 2b samples.
    """
    per_block = len(e) // (2 * b)
    if per_block < 1:
        return None
    used = e[len(e) - 2 * b * per_block:]  # drop the oldest leftovers, keep the end
    means = used.reshape(2 * b, per_block).mean(axis=1)
    diff = float(means[b:].mean() - means[:b].mean())
    # The scatter of the block means is measured around a straight line, not around each
    # half's mean: a steady drift then shows up in the difference only, instead of also
    # inflating the error estimate (which would cap z near 5 for any linear drift).
    k = np.arange(2 * b)
    residuals = means - np.polyval(np.polyfit(k, means, 1), k)
    return means, diff, float(residuals @ residuals), per_block


def energy_drift_z(energies, blocks_per_half: int = 5) -> float:
    """Drift of a time series between its halves in units of its standard error, for
    independent block means.

    The series is cut into ``2 * blocks_per_half`` equal blocks (oldest leftover samples
    dropped); z = (mean of the second half's block means - first half's) / se, with se from
    the residual scatter of the block means about a least-squares line (2b - 2 degrees of
    freedom). For independent normal block means z is exactly Student-t with 2b - 2 degrees
    of freedom. Correlated block means (blocks not much longer than the correlation time)
    make |z| larger than that; the certificate uses :func:`energy_drift_test`, which
    corrects for it.

    Parameters
    ----------
    energies : array_like, shape (M,)
        Equally spaced samples (e.g. energy per particle) over the production run.
    blocks_per_half : int
        Blocks per half used for the standard errors (>= 2).

    Returns
    -------
    float
        z = (m2 - m1) / sqrt(s1^2 + s2^2); nan when there are fewer than
        ``2 * blocks_per_half`` samples; +-inf when both halves are constant but differ.
    """
    e = np.asarray(energies, dtype=np.float64)
    b = int(blocks_per_half)
    if b < 2:
        raise ValueError(f"blocks_per_half must be >= 2, got {blocks_per_half}")
    parts = _half_difference(e, b)
    if parts is None:
        return math.nan
    _, diff, ss, _ = parts
    se2 = ss / (2 * b - 2) * 2.0 / b
    if se2 == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return float(diff / math.sqrt(se2))


@dataclass(frozen=True)
class DriftTest:
    """The outcome of :func:`energy_drift_test`.

    Attributes
    ----------
    z : float
        Standard-normal score with the same two-sided p value (sign of m2 - m1); nan when
        the series is too short.
    t : float
        (m2 - m1) / (se * sqrt(inflation)): Student-t with ``dof`` degrees of freedom
        (approximately) for a stationary series.
    dof : float
        Satterthwaite degrees of freedom of the variance estimate (2b - 2 without
        correlation).
    inflation : float
        Var(m2 - m1) / E[se^2] under the correlation model (1 without correlation).
    p_value : float
        Two-sided P(|T_dof| >= |t|).
    """

    z: float
    t: float
    dof: float
    inflation: float
    p_value: float


def block_mean_covariance(n_blocks: int, per_block: int,
                           correlation_time: float | None) -> np.ndarray:
    """Covariance of consecutive block means of an exponentially correlated series.

    Parameters
    ----------
    n_blocks : int
        Number of consecutive blocks.
    per_block : int
        Samples per block.
    correlation_time : float or None
        tau in samples of the series' autocorrelation rho(k) = exp(-k / tau); None or 0:
        independent samples.

    Returns
    -------
    ndarray, shape (n_blocks, n_blocks)
        Covariance of the block means divided by the variance of one sample.
    """
    if not correlation_time or correlation_time <= 0:
        return np.eye(n_blocks) / per_block
    phi = math.exp(-1.0 / float(correlation_time))
    lag = np.arange(-(per_block - 1), per_block)
    # Pairs of samples of two blocks d apart are at distance d * per_block + lag, with
    # per_block - |lag| such pairs.
    weight = (per_block - np.abs(lag)) / per_block**2
    d = np.arange(n_blocks)[:, None] * per_block + lag[None, :]
    by_distance = (weight * phi ** np.abs(d)).sum(axis=1)
    return by_distance[np.abs(np.arange(n_blocks)[:, None] - np.arange(n_blocks)[None, :])]


def energy_drift_test(energies, blocks_per_half: int = 10,
                      correlation_time: float | None = None) -> DriftTest:
    """Drift between the halves of a correlated series, calibrated for its correlation.

    The statistic is that of :func:`energy_drift_z`: the difference d of the halves' means
    over the scatter of 2b block means about a fitted line, se^2 = s^2 * 2 / b with
    s^2 = (residual sum of squares) / (2b - 2). For block means with correlation matrix C
    (from :func:`block_mean_covariance`, exponential correlation with the given time),
    Var(d) = a^T C a (a: +-1/b contrast of the halves) while E[s^2] = tr(Q C) / (2b - 2)
    (Q: projector onto the residuals of the line). Then

    - t = d / (se * sqrt(kappa)), kappa = a^T C a / (E[s^2] * 2 / b), makes the variance
      right, and
    - the quadratic form s^2 has Satterthwaite's dof = tr(QC)^2 / tr(QCQC) degrees of
      freedom (2b - 2 when C is diagonal),

    so t is compared with Student-t with ``dof`` degrees of freedom. Both corrections reduce
    to the independent case when the blocks are much longer than the correlation time.
    With ``correlation_time`` None the result is :func:`energy_drift_z`'s t.

    Parameters
    ----------
    energies : array_like, shape (M,)
        Equally spaced samples over production (e.g. energy per particle).
    blocks_per_half : int
        b, >= 2.
    correlation_time : float, optional
        Correlation time of the series in samples (e.g. tau_alpha / sample spacing). The
        calibration holds when the true autocorrelation decays at least as fast as
        exp(-k / correlation_time) on the scale of a block (it is conservative when the
        series decorrelates faster).

    Returns
    -------
    DriftTest
        z nan when there are fewer than 2b samples; +-inf when both halves are constant
        but differ.
    """
    from scipy import special, stats

    e = np.asarray(energies, dtype=np.float64)
    b = int(blocks_per_half)
    if b < 2:
        raise ValueError(f"blocks_per_half must be >= 2, got {blocks_per_half}")
    parts = _half_difference(e, b)
    if parts is None:
        return DriftTest(math.nan, math.nan, math.nan, math.nan, math.nan)
    _, diff, ss, per_block = parts
    n = 2 * b
    c = block_mean_covariance(n, per_block, correlation_time)
    a = np.concatenate([-np.ones(b), np.ones(b)]) / b
    x = np.column_stack([np.ones(n), np.arange(n) - (n - 1) / 2.0])
    q = np.eye(n) - x @ np.linalg.solve(x.T @ x, x.T)
    qc = q @ c
    trace = float(np.trace(qc))
    kappa = float(a @ c @ a) / (trace / (n - 2) * 2.0 / b)
    dof = trace**2 / float(np.trace(qc @ qc))
    se2 = ss / (n - 2) * 2.0 / b * kappa
    if se2 == 0.0:
        t = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    else:
        t = diff / math.sqrt(se2)
    # log of the one-sided tail, mapped to the normal scale: exact far into the tail, where
    # the p value itself underflows (an aging chain's t can be in the hundreds).
    log_tail = float(stats.t.logsf(abs(t), dof))
    z = math.copysign(-float(special.ndtri_exp(log_tail)), t) if t != 0.0 else 0.0
    return DriftTest(z=z, t=float(t), dof=float(dof), inflation=kappa,
                     p_value=float(min(1.0, 2.0 * math.exp(log_tail))))


def _state_reasons(energies, crystalline_fraction, quench_converged, c: Criteria,
                   correlation_time: float | None):
    """The tests shared by chains and PT samples: energy drift, crystal, quench.

    Returns
    -------
    z : float
        The drift score of :func:`energy_drift_test` (``correlation_time`` in samples).
    reasons : list of str
    """
    reasons = []
    drift = energy_drift_test(energies, c.drift_blocks, correlation_time)
    z = drift.z
    if math.isnan(z):
        reasons.append(f"energy drift cannot be judged ({len(np.atleast_1d(energies))} "
                       f"energy samples for {2 * c.drift_blocks} blocks)")
    elif abs(z) > c.max_drift_z:
        reasons.append(f"energy drifts between production halves: z = {z:+.2f} "
                       f"(> {c.max_drift_z:g}; t = {drift.t:+.2f} with {drift.dof:.1f} "
                       "degrees of freedom)")
    if not crystalline_fraction <= c.max_crystalline_fraction:
        reasons.append(f"crystallised: solid-like fraction {crystalline_fraction:.3f} "
                       f"(> {c.max_crystalline_fraction:g})")
    if not quench_converged:
        reasons.append("inherent-structure quench did not converge")
    return z, reasons


def certify(t, fs, production_sweeps: int, energies, crystalline_fraction: float,
            quench_converged: bool = True, criteria: Criteria | None = None,
            sample_spacing: float | None = None) -> Certificate:
    """Judge one chain.

    Parameters
    ----------
    t : array_like, shape (L,)
        Lags of F_s in MC sweeps (increasing, starting at 0).
    fs : array_like, shape (L,)
        F_s(q, t) of the majority species.
    production_sweeps : int
        Length of the production run the lags come from.
    energies : array_like, shape (M,)
        Energy per particle sampled evenly over production.
    crystalline_fraction : float
        Solid-like fraction of the final configuration.
    quench_converged : bool
        Whether the inherent-structure minimisation converged.
    criteria : Criteria, optional
        Thresholds (defaults of :class:`Criteria`).
    sample_spacing : float, optional
        Sweeps between energy samples (``thermo_every``); default production_sweeps / M.
        The drift test takes tau_alpha / sample_spacing as the energy's correlation time
        (when F_s never reached 1/e, the longest lag: a lower bound of tau_alpha).

    Returns
    -------
    Certificate
    """
    c = criteria or Criteria()
    t = np.asarray(t, dtype=np.float64)
    fs = np.asarray(fs, dtype=np.float64)
    decay_reasons = []
    tau = measure_tau_alpha(t, fs) if len(t) > 1 else math.nan
    fs_final = float(fs[-1]) if len(fs) else math.nan
    decays = production_sweeps / tau if np.isfinite(tau) and tau > 0 else 0.0
    if not np.isfinite(tau):
        decay_reasons.append(f"F_s did not reach 1/e within {t[-1] if len(t) else 0:.0f} "
                             "sweeps")
    elif decays < c.min_decays:
        decay_reasons.append(f"production lasted {decays:.3g} tau_alpha "
                             f"(< {c.min_decays:g}; tau_alpha = {tau:.4g} sweeps)")
    if np.isfinite(tau) and not fs_final < c.max_fs_final:
        decay_reasons.append(f"F_s at the longest lag is {fs_final:.3g} "
                             f"(>= {c.max_fs_final:g}): no full decay")
    n_energies = len(np.atleast_1d(energies))
    spacing = sample_spacing or (production_sweeps / n_energies if n_energies else 1.0)
    memory = tau if np.isfinite(tau) else (float(t[-1]) if len(t) else 0.0)
    z, reasons = _state_reasons(energies, crystalline_fraction, quench_converged, c,
                                memory / spacing if memory > 0 else None)
    # Too few energy samples for the drift blocks is cured by a longer production, like a
    # short F_s decay: it must not stop the chain from being extended.
    too_short = [r for r in reasons if r.startswith("energy drift cannot be judged")]
    if too_short:
        reasons = [r for r in reasons if r not in too_short]
        decay_reasons += too_short
    all_reasons = decay_reasons + reasons
    return Certificate(
        verdict="failed" if all_reasons else "certified",
        reasons=all_reasons,
        tau_alpha=float(tau),
        decays=float(decays),
        fs_final=fs_final,
        drift_z=float(z),
        crystalline_fraction=float(crystalline_fraction),
        needs_longer_run=bool(decay_reasons) and not reasons,
    )


def certify_tempering(round_trips: int, min_round_trips: int, energies,
                      crystalline_fraction: float, quench_converged: bool = True,
                      criteria: Criteria | None = None,
                      correlation_time: float | None = None) -> Certificate:
    """Judge a configuration harvested from the lowest temperature of a PT run.

    The replicas' walk replaces the F_s test: the run must have made at least
    ``min_round_trips`` end-to-end round trips (each one carries a configuration from the
    hot, fast-relaxing end of the ladder to the bottom), and the lowest-temperature energy
    series must not drift between its production halves (same test as for chains, with
    the round-trip time as the correlation time: a configuration at the bottom has been
    replaced by one from the hot end after about one round trip).

    Parameters
    ----------
    round_trips : int
        Completed round trips of all replicas of the run.
    min_round_trips : int
    energies : array_like, shape (M,)
        Energy per particle at the lowest temperature, production rounds.
    crystalline_fraction, quench_converged, criteria
        As :func:`certify`.
    correlation_time : float, optional
        Correlation time of ``energies`` in samples (the round-trip time in rounds when
        there is one energy row per round); None: independent samples.
    """
    c = criteria or Criteria()
    reasons = []
    if round_trips < min_round_trips:
        reasons.append(f"{round_trips} round trip(s) in the run (< {min_round_trips})")
    z, more = _state_reasons(energies, crystalline_fraction, quench_converged, c,
                             correlation_time)
    reasons += more
    return Certificate(verdict="failed" if reasons else "certified", reasons=reasons,
                       drift_z=float(z), crystalline_fraction=float(crystalline_fraction))
