"""Exchange statistics: per-pair acceptance, replica walks, round trips; blocking errors.

Everything here is computed from data every rank holds (the gathered energies and the
label permutation), so every rank keeps an identical copy and a checkpoint needs only
rank 0's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExchangeStatistics", "blocking_error", "last_visits", "round_trip_completions",
           "renewal_round_trip_time"]

_ARRAYS = ("proposed", "accepted", "direction", "trip_start", "trips", "trip_rounds",
           "passages", "rounds", "n_up", "n_down", "stage_passages")


class ExchangeStatistics:
    """Counters of one tempering run with M temperatures.

    Attributes
    ----------
    proposed, accepted : ndarray, shape (M-1,), int64
        Exchange attempts and acceptances of pair (t, t+1).
    direction : ndarray, shape (M,), int64
        Per replica: +1 after visiting the lowest temperature ("up"), -1 after visiting the
        highest ("down"), 0 before either.
    trip_start : ndarray, shape (M,), int64
        Round at which the replica's current round trip started (its arrival at T_min), -1
        when that arrival was not observed (before the first visit, or before the counters
        were reset).
    trips : ndarray, shape (M,), int64
        Completed round trips T_min -> T_max -> T_min per replica.
    trip_rounds : ndarray, shape (M,), int64
        Sum of the durations of the completed round trips (rounds).
    passages : ndarray, shape (M,), int64
        One-way passages per replica: arrivals at one end of the ladder whose previous end
        was the other one (two per round trip). When round trips are rare they give the
        better estimate of the round-trip time, 2 M (rounds observed) / (total passages).
    rounds : ndarray, shape (1,), int64
        Rounds recorded since the last reset.
    n_up, n_down : ndarray, shape (M,), int64
        Per temperature: rounds spent there by up- and by down-labelled replicas (the
        histogram of Katzgraber et al.'s feedback).
    stage_passages : ndarray, shape (1,), int64
        One-way passages since the histogram was last reset: the feedback is trusted only
        when replicas actually crossed the ladder while the histogram was taken.
    """

    def __init__(self, n_temperatures: int):
        m = int(n_temperatures)
        self.m = m
        self.proposed = np.zeros(m - 1, np.int64)
        self.accepted = np.zeros(m - 1, np.int64)
        self.direction = np.zeros(m, np.int64)
        self.trip_start = np.full(m, -1, np.int64)
        self.trips = np.zeros(m, np.int64)
        self.trip_rounds = np.zeros(m, np.int64)
        self.passages = np.zeros(m, np.int64)
        self.rounds = np.zeros(1, np.int64)
        self.n_up = np.zeros(m, np.int64)
        self.n_down = np.zeros(m, np.int64)
        self.stage_passages = np.zeros(1, np.int64)

    def record_exchanges(self, starts: np.ndarray, accepted: np.ndarray) -> None:
        """Count one round's attempts; ``starts`` (P,) lower slots, ``accepted`` (P,) bool."""
        self.proposed[starts] += 1
        self.accepted[starts[accepted]] += 1

    def record_walk(self, labels: np.ndarray, round_index: int) -> None:
        """Account for the slots the replicas occupy during round ``round_index``.

        Parameters
        ----------
        labels : ndarray, shape (M,)
            Slot of each replica during the round.
        round_index : int
            Global round counter (rounds are the time unit of round trips).
        """
        top = self.m - 1
        self.rounds[0] += 1
        for r, slot in enumerate(np.asarray(labels)):
            if slot == 0:
                if self.direction[r] != 1:
                    if self.direction[r] == -1:
                        self.passages[r] += 1
                        self.stage_passages[0] += 1
                        if self.trip_start[r] >= 0:
                            self.trips[r] += 1
                            self.trip_rounds[r] += round_index - self.trip_start[r]
                    self.trip_start[r] = round_index
                elif self.trip_start[r] < 0:
                    # Already up-going when the counters were reset: its next trip starts
                    # at this first bottom visit that the counters see.
                    self.trip_start[r] = round_index
                self.direction[r] = 1
            elif slot == top:
                if self.direction[r] == 1:
                    self.passages[r] += 1
                    self.stage_passages[0] += 1
                self.direction[r] = -1
            if self.direction[r] == 1:
                self.n_up[slot] += 1
            elif self.direction[r] == -1:
                self.n_down[slot] += 1

    def reset_histogram(self) -> None:
        """Start a new feedback stage (the ladder changed: old histograms no longer apply)."""
        self.n_up[:] = 0
        self.n_down[:] = 0
        self.stage_passages[:] = 0

    def reset(self) -> None:
        """Start counting afresh (beginning of production). Directions are kept, because
        they are facts about the past walk, but trips already under way are not counted."""
        self.proposed[:] = 0
        self.accepted[:] = 0
        self.trip_start[:] = -1
        self.trips[:] = 0
        self.trip_rounds[:] = 0
        self.passages[:] = 0
        self.rounds[:] = 0
        self.reset_histogram()

    # ------------------------------------------------------------- results
    def acceptance(self) -> np.ndarray:
        """Accepted / proposed per pair, shape (M-1,); NaN for a pair never tried."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.proposed > 0, self.accepted / np.maximum(self.proposed, 1),
                            np.nan)

    def fraction_up(self) -> np.ndarray:
        """f(T) = n_up / (n_up + n_down), shape (M,); NaN where no labelled replica was seen."""
        total = self.n_up + self.n_down
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.n_up / np.maximum(total, 1), np.nan)

    def mean_round_trip(self) -> float:
        """Mean duration of the completed round trips (rounds); NaN when none completed."""
        n = int(self.trips.sum())
        return float(self.trip_rounds.sum() / n) if n else float("nan")

    def round_trip_time_from_rate(self) -> float:
        """2 M (rounds observed) / (one-way passages): round-trip time (rounds) estimated from
        the passage rate; NaN without passages. It uses trips still under way, so it needs
        far fewer rounds than :meth:`mean_round_trip`."""
        n = int(self.passages.sum())
        return float(2 * self.m * self.rounds[0] / n) if n else float("nan")

    # --------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {name: getattr(self, name).copy() for name in _ARRAYS}

    def load_state_dict(self, state: dict) -> None:
        for name in _ARRAYS:
            arr = getattr(self, name)
            new = np.asarray(state[name], dtype=np.int64)
            if new.shape != arr.shape:
                raise ValueError(f"statistics array {name} has shape {new.shape}, expected "
                                 f"{arr.shape}")
            arr[...] = new


def blocking_error(x, min_blocks: int = 32) -> tuple[float, float]:
    """Mean and standard error of a correlated series by blocking (Flyvbjerg & Petersen,
    J. Chem. Phys. 91, 461 (1989)).

    The series is repeatedly halved by averaging neighbours; the naive standard error of
    the block means grows until blocks are longer than the correlation time and then
    plateaus. We return the largest estimate among levels that still have at least
    ``min_blocks`` blocks: conservative, and its own relative uncertainty is at most
    about 1/sqrt(2 min_blocks) (12 % for 32 blocks).

    Parameters
    ----------
    x : array_like, shape (n,)
    min_blocks : int

    Returns
    -------
    mean : float
    stderr : float
        NaN when fewer than ``min_blocks`` samples are given.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean()) if x.size else float("nan")
    if x.size < max(min_blocks, 2):
        return mean, float("nan")
    best = 0.0
    y = x
    while y.size >= min_blocks:
        best = max(best, float(np.std(y, ddof=1) / np.sqrt(y.size)))
        n = y.size // 2 * 2
        y = 0.5 * (y[:n:2] + y[1:n:2])
    return mean, best


def round_trip_completions(labels, n_slots: int, start: int = 0) -> np.ndarray:
    """Round trips completed by each replica from a table of label walks.

    A round trip is completed when a replica arrives at the lowest slot and the previous
    end of the ladder it visited was the highest. Every row of ``labels`` is used to know
    where each replica came from, but only arrivals in rows ``>= start`` are counted, so a
    trip that began before ``start`` (e.g. during equilibration) and ends after it counts:
    the arrivals are the renewal epochs of the walk.

    Parameters
    ----------
    labels : array_like, shape (R, M), int
        Slot of each replica in each round (the rows of ``labels.csv``).
    n_slots : int
        Number of temperatures (the highest slot is ``n_slots - 1``).
    start : int
        First row counted.

    Returns
    -------
    ndarray, shape (M,), int64
    """
    labels = np.asarray(labels, dtype=np.int64)
    top = int(n_slots) - 1
    out = np.zeros(labels.shape[1], np.int64)
    for r in range(labels.shape[1]):
        walk = labels[:, r]
        ends = np.flatnonzero((walk == 0) | (walk == top))
        at = walk[ends]
        done = (at[1:] == 0) & (at[:-1] == top)
        out[r] = int(np.count_nonzero(done & (ends[1:] >= start)))
    return out


def renewal_round_trip_time(labels, n_slots: int, start: int = 0) -> float:
    """Round-trip time (rounds) as observed rounds per completed round trip.

    tau = M (R - start) / n with n the completions of :func:`round_trip_completions`:
    the renewal-reward estimate. For a walk that is stationary at ``start`` the expected
    number of completions in T rounds is exactly M T / tau, so the estimate is consistent
    with a bias of relative order 1/n only. The mean duration of the *completed* trips
    (:meth:`ExchangeStatistics.mean_round_trip`) is instead biased low whenever the run
    is not much longer than the trips: a trip still under way at the end, which is more
    likely to be a long one, is left out, and so is one under way at the start.

    Parameters
    ----------
    labels : array_like, shape (R, M), int
    n_slots : int
    start : int
        First row of the period measured (earlier rows only set where replicas came from).

    Returns
    -------
    float
        NaN when no round trip was completed in rows ``>= start``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = int(round_trip_completions(labels, n_slots, start).sum())
    rounds = labels.shape[0] - int(start)
    return float(labels.shape[1] * rounds / n) if n else float("nan")


def last_visits(labels, slot: int) -> np.ndarray:
    """Row of each replica's latest visit to ``slot``, up to and including each row.

    Parameters
    ----------
    labels : array_like, shape (R, M), int
    slot : int

    Returns
    -------
    ndarray, shape (R, M), int64
        ``out[g, r]`` = the largest row <= g at which replica r sat at ``slot``; -1 if none.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(labels.shape[0], dtype=np.int64)[:, None]
    visits = np.where(labels == int(slot), rows, -1)
    return np.maximum.accumulate(visits, axis=0)
