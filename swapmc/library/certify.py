"""Equilibration certificate of one Monte Carlo chain.

A sample is *certified* when all of these hold for its production run (thresholds in
:class:`Criteria`, defaults after Ninarello, Berthier & Coslovich, PRX 7, 021039 (2017), who
required full decay of the correlations and production runs much longer than tau_alpha):

1. **F_s decays.** The self-intermediate scattering function F_s(q, t) of the majority
   species crossed 1/e (tau_alpha is defined), the production run lasted at least
   ``min_decays`` tau_alpha, and F_s at the longest lag measured is below ``max_fs_final``
   (full decay, not a plateau that happens to dip below 1/e).
2. **No energy drift.** The mean energy of the second half of production agrees with the
   first half: |z| <= ``max_drift_z`` with z = (m2 - m1) / sqrt(s1^2 + s2^2), where each
   half is cut into ``drift_blocks`` blocks and s is the standard error of the block means.
   Blocks are >= tau_alpha long once (1) holds with the defaults (10 tau / 10 blocks), so
   the block means are nearly independent. For an equilibrated chain z is then roughly
   Student-t distributed with 2 (b - 1) = 8 degrees of freedom: P(|z| > 4) = 0.4 %, the
   rate at which good chains are (safely) rejected; an aging chain drifts by many s.
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
    max_drift_z: float = 4.0
    drift_blocks: int = 5
    max_crystalline_fraction: float = 0.05

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
        Energy drift between production halves, in standard errors.
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


def energy_drift_z(energies, blocks_per_half: int = 5) -> float:
    """Drift of a time series between its halves in units of its standard error.

    The series is cut into ``2 * blocks_per_half`` equal blocks (oldest leftover samples
    dropped); z = (mean of the second half's block means - first half's) / se, with se from
    the residual scatter of the block means about a least-squares line (2b - 2 degrees of
    freedom). For independent normal block means z is exactly Student-t with 2b - 2 degrees
    of freedom.

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
    per_block = len(e) // (2 * b)
    if per_block < 1:
        return math.nan
    used = e[len(e) - 2 * b * per_block:]  # drop the oldest leftovers, keep the end
    means = used.reshape(2 * b, per_block).mean(axis=1)
    diff = means[b:].mean() - means[:b].mean()
    # The scatter of the block means is measured around a straight line, not around each
    # half's mean: a steady drift then shows up in the difference only, instead of also
    # inflating the error estimate (which would cap z near 5 for any linear drift).
    k = np.arange(2 * b)
    residuals = means - np.polyval(np.polyfit(k, means, 1), k)
    s2 = float(residuals @ residuals) / (2 * b - 2)
    se2 = s2 * 2.0 / b
    if se2 == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return float(diff / math.sqrt(se2))


def _state_reasons(energies, crystalline_fraction, quench_converged, c: Criteria):
    """The tests shared by chains and PT samples: energy drift, crystal, quench.

    Returns
    -------
    z : float
        The drift statistic of :func:`energy_drift_z`.
    reasons : list of str
    """
    reasons = []
    z = energy_drift_z(energies, c.drift_blocks)
    if not np.isfinite(z):
        reasons.append(f"energy drift cannot be judged (z = {z}; "
                       f"{len(np.atleast_1d(energies))} energy samples)")
    elif abs(z) > c.max_drift_z:
        reasons.append(f"energy drifts between production halves by {z:+.2f} standard "
                       f"errors (> {c.max_drift_z:g})")
    if not crystalline_fraction <= c.max_crystalline_fraction:
        reasons.append(f"crystallised: solid-like fraction {crystalline_fraction:.3f} "
                       f"(> {c.max_crystalline_fraction:g})")
    if not quench_converged:
        reasons.append("inherent-structure quench did not converge")
    return z, reasons


def certify(t, fs, production_sweeps: int, energies, crystalline_fraction: float,
            quench_converged: bool = True, criteria: Criteria | None = None) -> Certificate:
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
    z, reasons = _state_reasons(energies, crystalline_fraction, quench_converged, c)
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
                      criteria: Criteria | None = None) -> Certificate:
    """Judge a configuration harvested from the lowest temperature of a PT run.

    The replicas' walk replaces the F_s test: the run must have made at least
    ``min_round_trips`` end-to-end round trips (each one carries a configuration from the
    hot, fast-relaxing end of the ladder to the bottom), and the lowest-temperature energy
    series must not drift between its production halves (same z test as for chains).

    Parameters
    ----------
    round_trips : int
        Completed round trips of all replicas of the run.
    min_round_trips : int
    energies : array_like, shape (M,)
        Energy per particle at the lowest temperature, production rounds.
    crystalline_fraction, quench_converged, criteria
        As :func:`certify`.
    """
    c = criteria or Criteria()
    reasons = []
    if round_trips < min_round_trips:
        reasons.append(f"{round_trips} round trip(s) in the run (< {min_round_trips})")
    z, more = _state_reasons(energies, crystalline_fraction, quench_converged, c)
    reasons += more
    return Certificate(verdict="failed" if reasons else "certified", reasons=reasons,
                       drift_z=float(z), crystalline_fraction=float(crystalline_fraction))
