"""The dopant construction shared by every model family.

A dopant X sits "between" two host species a and b with weight lambda: every quantity that
belongs to one species is mixed linearly, (1 - l) q_a + l q_b, and every pair quantity follows
the KA2 rule of Parmar, Ozawa & Berthier (PRL 125, 085505 (2020)):

    X-X = (1 - l) a-a + l b-b,   X-c = (1 - l) a-c + l b-c   for every other species c,

which gives X-a = (1 - l) a-a + l a-b and X-b = (1 - l) a-b + l b-b. The helpers work on
arrays whose leading axes index species, so they serve LJ parameters (S, S) and tabulated EAM
functions (S, S, n_r) alike.
"""

from __future__ import annotations

import numpy as np


def add_species_value(values: np.ndarray, a: int, b: int, weight: float) -> np.ndarray:
    """Append the dopant's entry to a per-species array.

    Parameters
    ----------
    values : ndarray, shape (S, ...)
    a, b : int
        Host species indices.
    weight : float
        lambda in [0, 1].

    Returns
    -------
    ndarray, shape (S + 1, ...)
    """
    values = np.asarray(values, dtype=np.float64)
    new = (1.0 - weight) * values[a] + weight * values[b]
    return np.concatenate([values, new[None, ...]], axis=0)


def add_pair_value(table: np.ndarray, a: int, b: int, weight: float) -> np.ndarray:
    """Append the dopant's row and column to a symmetric pair table.

    Parameters
    ----------
    table : ndarray, shape (S, S, ...)
    a, b : int
        Host species indices.
    weight : float
        lambda in [0, 1].

    Returns
    -------
    ndarray, shape (S + 1, S + 1, ...)
    """
    table = np.asarray(table, dtype=np.float64)
    s = table.shape[0]
    out = np.zeros((s + 1, s + 1) + table.shape[2:])
    out[:s, :s] = table
    for c in range(s):
        out[s, c] = out[c, s] = (1.0 - weight) * table[a, c] + weight * table[b, c]
    out[s, s] = (1.0 - weight) * table[a, a] + weight * table[b, b]
    return out


def doped_fractions(
    fractions: dict, dopant: str, x: float, replaces: str | list
) -> dict:
    """Composition after replacing hosts by a dopant at mole fraction ``x``.

    Parameters
    ----------
    fractions : dict
        Host mole fractions, summing to 1.
    dopant : str
        Dopant species name.
    x : float
        Dopant mole fraction in [0, 1).
    replaces : str or list of str
        One host name (its fraction drops by x), ``"both"``/``"all"`` (every host loses in
        proportion to its fraction), or a list of host names sharing the loss in proportion.

    Raises
    ------
    ValueError
        If the replaced hosts do not have enough particles to give up.
    """
    if not 0.0 <= x < 1.0:
        raise ValueError(f"dopant fraction must be in [0, 1), got {x}")
    if replaces in ("both", "all"):
        hosts = list(fractions)
    elif isinstance(replaces, str):
        hosts = [replaces]
    else:
        hosts = list(replaces)
    for h in hosts:
        if h not in fractions:
            raise ValueError(f"dopant replaces {h!r}, which is not in the composition {fractions}")
    pool = sum(fractions[h] for h in hosts)
    if x > pool + 1e-12:
        raise ValueError(
            f"impossible composition: dopant fraction {x} exceeds the fraction {pool} of the "
            f"replaced host(s) {hosts}"
        )
    out = dict(fractions)
    for h in hosts:
        out[h] = fractions[h] - x * fractions[h] / pool
    out[dopant] = x
    return out
