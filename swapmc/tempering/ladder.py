"""Temperature ladders: geometric, from a list, and feedback-optimised.

All functions are pure. Temperatures are in the model's temperature unit (k_B T in epsilon for
LJ, kelvin for EAM); a ladder is a float64 array of shape (M,), strictly increasing, M >= 2.
"""

from __future__ import annotations

import numpy as np

from .._toml import ConfigError

__all__ = ["check_ladder", "feedback_ladder", "feedback_update", "geometric_ladder",
           "stage_ends"]


def check_ladder(temperatures, origin: str = "[tempering] temperatures") -> np.ndarray:
    """Validate a ladder and return it as a float64 array.

    Parameters
    ----------
    temperatures : sequence of float, shape (M,)
    origin : str
        Names the setting in error messages.

    Returns
    -------
    ndarray, shape (M,), float64

    Raises
    ------
    ConfigError
        Fewer than two temperatures, a non-finite or non-positive one, or a ladder that is
        not strictly increasing (the message names the first offending pair).
    """
    try:
        t = np.array(temperatures, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin} must be a list of numbers, got {temperatures!r}") from None
    if t.ndim != 1 or t.size < 2:
        raise ConfigError(f"{origin} needs at least two temperatures, got {temperatures!r}")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ConfigError(f"{origin} must be finite and positive, got {temperatures!r}")
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        k = int(bad[0])
        raise ConfigError(
            f"{origin} must be strictly increasing: T[{k}] = {t[k]:g} is followed by "
            f"T[{k + 1}] = {t[k + 1]:g}"
        )
    return t


def geometric_ladder(t_min: float, t_max: float, n: int) -> np.ndarray:
    """M = n temperatures in geometric progression, T_k = t_min (t_max/t_min)^(k/(n-1)).

    A geometric ladder gives roughly equal exchange acceptance when the heat capacity is
    constant over the range (the energy fluctuations then scale like the temperature).
    The endpoints are exactly ``t_min`` and ``t_max``.

    Returns
    -------
    ndarray, shape (n,), float64
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ConfigError(f"[tempering] n_replicas must be an integer >= 2, got {n!r}")
    if not (np.isfinite(t_min) and np.isfinite(t_max)) or t_min <= 0 or t_max <= t_min:
        raise ConfigError(
            f"[tempering] needs 0 < t_min < t_max, got t_min = {t_min!r}, t_max = {t_max!r}"
        )
    t = t_min * (t_max / t_min) ** (np.arange(n) / (n - 1))
    t[0], t[-1] = t_min, t_max
    return check_ladder(t)


def feedback_ladder(temperatures, n_up, n_down, min_slope: float = 1e-3,
                    damping: float = 1.0):
    """One feedback step of Katzgraber, Trebst, Huse & Troyer, J. Stat. Mech. P03018 (2006).

    A replica is labelled "up" after it visited the lowest temperature and "down" after it
    visited the highest. f(T_k) = n_up / (n_up + n_down) falls from 1 at T_min to 0 at T_max;
    round trips are fastest when the density of temperatures is
    eta(T) ∝ sqrt((df/dT) / ΔT). With eta piecewise constant on each interval
    [T_k, T_k+1], its integral over the interval is sqrt(f_k - f_k+1), so the new ladder
    puts an equal share of sum_k sqrt(Δf_k) between consecutive temperatures. The endpoints
    are kept.

    Parameters
    ----------
    temperatures : array_like, shape (M,)
        Current ladder (strictly increasing).
    n_up, n_down : array_like, shape (M,)
        Histograms of up- and down-labelled replicas seen at each temperature.
    min_slope : float
        Floor on each Δf_k: noise can make an estimated Δf_k zero or negative, which would
        collapse an interval to nothing.
    damping : float in (0, 1]
        Fraction of the step taken, in ln T: T_new = T_old^(1-d) T_target^d. 1 is the
        undamped feedback of the paper; smaller values keep a noisy f from moving many
        temperatures into one spot in a single stage.

    Returns
    -------
    new : ndarray, shape (M,)
        The new ladder; equal to ``temperatures`` when some temperature has no labelled
        replica yet (f is then unknown there and no update is made).
    f : ndarray, shape (M,)
        The measured fraction of up-labelled replicas (NaN where unknown).
    """
    t = check_ladder(temperatures)
    up = np.asarray(n_up, dtype=np.float64)
    down = np.asarray(n_down, dtype=np.float64)
    total = up + down
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(total > 0, up / total, np.nan)
    if np.any(total == 0):
        return t.copy(), f
    g = f.copy()
    # By construction f = 1 at T_min and 0 at T_max; pinning them keeps the update exact
    # when only the interior is noisy.
    g[0], g[-1] = 1.0, 0.0
    df = np.maximum(g[:-1] - g[1:], min_slope)
    weight = np.sqrt(df)
    cumulative = np.concatenate(([0.0], np.cumsum(weight)))
    cumulative /= cumulative[-1]
    targets = np.linspace(0.0, 1.0, t.size)
    new = np.interp(targets, cumulative, t)
    if not 0.0 < damping <= 1.0:
        raise ValueError(f"damping must be in (0, 1], got {damping}")
    # A weighted geometric mean of two increasing ladders is increasing.
    new = np.exp((1.0 - damping) * np.log(t) + damping * np.log(new))
    new[0], new[-1] = t[0], t[-1]
    return check_ladder(new, "feedback-optimised ladder"), f


def feedback_update(temperatures, n_up, n_down, passages: int, damping: float = 0.5):
    """End-of-stage ladder update as the tempering driver applies it.

    The measured f(T) means something only if replicas crossed the ladder while it was
    taken: before that, f is a step between replicas that started low and those that
    started high, and following it piles temperatures up where the two groups meet (seen on
    KA2, N = 500, T = 0.45 .. 1.0: ten of 16 temperatures ended within 0.73 .. 0.76). So the
    ladder moves only after at least M one-way passages (end to end) in the stage, and by
    the fraction ``damping`` (in ln T) of the :func:`feedback_ladder` step.

    Parameters
    ----------
    temperatures : array_like, shape (M,)
    n_up, n_down : array_like, shape (M,)
        The stage's histograms.
    passages : int
        One-way passages across the ladder during the stage.
    damping : float in (0, 1]

    Returns
    -------
    new : ndarray, shape (M,)
    f : ndarray, shape (M,)
        Measured fraction of up-going replicas (NaN where unknown).
    reason : str or None
        Why the ladder was kept, or None when it was updated.
    """
    t = check_ladder(temperatures)
    if passages < t.size:
        up = np.asarray(n_up, float)
        total = up + np.asarray(n_down, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(total > 0, up / total, np.nan)
        return t.copy(), f, (f"only {passages} one-way passages across the ladder in this "
                             f"stage (need {t.size})")
    new, f = feedback_ladder(t, n_up, n_down, damping=damping)
    if np.array_equal(new, t):
        return new, f, "some temperature saw no replica that had visited an end of the ladder"
    return new, f, None


def stage_ends(n_rounds: int, n_stages: int) -> list[int]:
    """Round counts at which feedback stages end; stage lengths double (1 : 2 : 4 : ...).

    Katzgraber et al. double each stage so that later, better ladders are measured with
    more statistics.

    Parameters
    ----------
    n_rounds : int
        Rounds available for ladder optimisation.
    n_stages : int

    Returns
    -------
    list of int, length n_stages
        Strictly increasing cumulative round counts, the last equal to ``n_rounds``.
    """
    if n_stages < 1 or n_rounds < n_stages:
        raise ConfigError(
            f"ladder optimisation needs at least one round per stage: {n_rounds} rounds for "
            f"{n_stages} stages"
        )
    weights = 2.0 ** np.arange(n_stages)
    ends = np.round(np.cumsum(weights) / weights.sum() * n_rounds).astype(int)
    # Rounding can merge two short stages; keep every stage at least one round long.
    for k in range(n_stages):
        ends[k] = max(ends[k], k + 1 if k == 0 else ends[k - 1] + 1)
    ends[-1] = n_rounds
    return [int(e) for e in ends]
