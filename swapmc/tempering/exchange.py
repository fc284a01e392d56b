"""Replica-exchange moves as pure functions of a few scalars per replica.

Conventions used throughout :mod:`swapmc.tempering`:

* M temperatures T_0 < ... < T_{M-1} ("slots"), inverse temperatures beta_t = 1/(k_B T_t)
  in inverse energy units;
* ``perm`` (M,) int64: ``perm[t]`` is the replica currently at slot t;
* ``labels`` (M,) int64: ``labels[r]`` is the slot of replica r (the inverse permutation).

Temperature *labels* are exchanged, never configurations, so only energies (and volumes)
cross the network and the cost of an exchange does not depend on N.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "acceptance_probability",
    "attempt_exchanges",
    "labels_of",
    "log_acceptance",
    "pair_starts",
]


def pair_starts(n_temperatures: int, round_index: int) -> np.ndarray:
    """Lower slots of the neighbour pairs tried in a round.

    Even rounds try (0,1), (2,3), ...; odd rounds (1,2), (3,4), .... Alternating keeps the
    pairs of one round disjoint (so their decisions are independent) while every pair is
    tried every second round.

    Returns
    -------
    ndarray, shape (P,), int64
        P = floor((M - parity) / 2) with parity = round_index % 2.
    """
    return np.arange(int(round_index) % 2, int(n_temperatures) - 1, 2, dtype=np.int64)


def log_acceptance(beta_i, beta_j, u_i, u_j, pressure=None, v_i=None, v_j=None):
    """Logarithm of the exchange acceptance ratio of two configurations.

    The configuration with energy ``u_i`` (volume ``v_i``) sits at inverse temperature
    ``beta_i``, the other at ``beta_j``. Swapping them multiplies the joint Boltzmann weight
    by exp[(beta_i - beta_j)(u_i - u_j)] (NVT); at imposed pressure P the weight is
    exp[-beta (U + P V)] and the ratio gains (beta_i - beta_j) P (v_i - v_j). The V^N
    factors of the isobaric measure do not depend on beta and cancel.

    Parameters
    ----------
    beta_i, beta_j : float or ndarray
        Inverse temperatures (1 / energy).
    u_i, u_j : float or ndarray
        Potential energies (energy units).
    pressure : float, optional
        Imposed pressure in internal units (energy / length^3); None for NVT.
    v_i, v_j : float or ndarray, optional
        Volumes (length^3); required when ``pressure`` is given.

    Returns
    -------
    float or ndarray
        ln of the Metropolis ratio; the exchange is accepted with min(1, exp(result)).
    """
    dbeta = np.subtract(beta_i, beta_j)
    x = dbeta * np.subtract(u_i, u_j)
    if pressure is not None:
        if v_i is None or v_j is None:
            raise ValueError("an isobaric exchange needs both volumes")
        x = x + dbeta * pressure * np.subtract(v_i, v_j)
    return x


def acceptance_probability(beta_i, beta_j, u_i, u_j, pressure=None, v_i=None, v_j=None):
    """min(1, exp(:func:`log_acceptance`)), without overflow for large positive arguments."""
    x = log_acceptance(beta_i, beta_j, u_i, u_j, pressure, v_i, v_j)
    return np.exp(np.minimum(x, 0.0))


def attempt_exchanges(perm, betas, energies, volumes, pressure, round_index, uniforms):
    """Try this round's neighbour exchanges and return the new slot -> replica map.

    Parameters
    ----------
    perm : ndarray, shape (M,), int
        ``perm[t]`` is the replica at slot t before the exchanges.
    betas : ndarray, shape (M,)
        Inverse temperature of each slot (1 / energy).
    energies : ndarray, shape (M,)
        Potential energy of each *replica* (energy units), indexed by replica.
    volumes : ndarray, shape (M,)
        Volume of each replica (length^3); used only when ``pressure`` is not None.
    pressure : float or None
        Imposed pressure (energy / length^3) for isobaric replicas, else None.
    round_index : int
        Global round counter; its parity picks the pairs (:func:`pair_starts`).
    uniforms : ndarray, shape (P,)
        One U[0, 1) number per pair, drawn by the caller from the exchange stream. Drawing
        one per pair whatever happens keeps the stream's position a function of the round
        count alone, which is what makes every rank (and a restart) agree.

    Returns
    -------
    new_perm : ndarray, shape (M,), int64
    starts : ndarray, shape (P,), int64
        Lower slot of each pair tried.
    accepted : ndarray, shape (P,), bool
    """
    perm = np.asarray(perm, dtype=np.int64)
    m = perm.size
    starts = pair_starts(m, round_index)
    uniforms = np.asarray(uniforms, dtype=np.float64)
    if uniforms.shape != starts.shape:
        raise ValueError(f"need {starts.size} uniform numbers for round {round_index}, "
                         f"got {uniforms.size}")
    lo, hi = perm[starts], perm[starts + 1]
    betas = np.asarray(betas, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if pressure is None:
        x = log_acceptance(betas[starts], betas[starts + 1], energies[lo], energies[hi])
    else:
        volumes = np.asarray(volumes, dtype=np.float64)
        x = log_acceptance(betas[starts], betas[starts + 1], energies[lo], energies[hi],
                           pressure, volumes[lo], volumes[hi])
    # u < exp(min(x, 0)) accepts with probability min(1, e^x) for u uniform in [0, 1).
    accepted = uniforms < np.exp(np.minimum(x, 0.0))
    new = perm.copy()
    new[starts[accepted]] = hi[accepted]
    new[starts[accepted] + 1] = lo[accepted]
    return new, starts, accepted


def labels_of(perm) -> np.ndarray:
    """Inverse permutation: slot of each replica, shape (M,), int64."""
    perm = np.asarray(perm, dtype=np.int64)
    labels = np.empty_like(perm)
    labels[perm] = np.arange(perm.size, dtype=np.int64)
    return labels
