"""Initial configurations: compositions to counts, random insertion, lattices.

These configurations are only starting points; the run loop melts them with a short
high-temperature Monte Carlo phase (``[system] melt_temperature`` and ``melt_sweeps``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .box import Box
from .system import ConfigurationError, System


def composition_counts(fractions: dict, n: int, species: tuple) -> np.ndarray:
    """Integer particle numbers for mole fractions, by largest-remainder rounding.

    Parameters
    ----------
    fractions : dict
        Species name -> mole fraction (sums to 1).
    n : int
        Total number of particles.
    species : tuple of str
        Species order of the returned array.

    Returns
    -------
    counts : ndarray, shape (S,), int64

    Raises
    ------
    ConfigurationError
        If ``n`` is too small to give every species with a non-zero fraction at least one
        particle (e.g. x_C = 0.01 with N = 50), or the fractions are invalid.
    """
    if int(n) != n or n < 1:
        raise ConfigurationError(f"number of particles must be a positive integer, got {n}")
    n = int(n)
    unknown = set(fractions) - set(species)
    if unknown:
        raise ConfigurationError(f"composition names unknown species {sorted(unknown)}")
    x = np.array([float(fractions.get(s, 0.0)) for s in species])
    if np.any(x < 0) or abs(x.sum() - 1.0) > 1e-9:
        raise ConfigurationError(f"mole fractions must be >= 0 and sum to 1, got {fractions}")
    exact = x * n
    counts = np.floor(exact).astype(np.int64)
    # Largest remainders get the leftover particles; ties go to the earlier species.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    empty = [s for s, c, xi in zip(species, counts, x) if xi > 0 and c == 0]
    if empty:
        raise ConfigurationError(
            f"impossible composition: N = {n} gives no particle of species {empty} "
            f"(fractions {fractions}); use a larger N"
        )
    return counts


@njit(cache=True)
def _random_insertion(n, lengths, min_dist, max_tries, rng):
    """Random sequential insertion with a minimum distance; returns (pos, ok)."""
    pos = np.empty((n, 3))
    nc = np.empty(3, np.int64)
    for d in range(3):
        nc[d] = max(1, int(lengths[d] / min_dist))
    ncell = nc[0] * nc[1] * nc[2]
    cap = 64
    cells = -np.ones((ncell, cap), np.int64)
    fill = np.zeros(ncell, np.int64)
    md2 = min_dist * min_dist
    for i in range(n):
        placed = False
        for _ in range(max_tries):
            x = rng.random() * lengths[0]
            y = rng.random() * lengths[1]
            z = rng.random() * lengths[2]
            cx = min(int(x / lengths[0] * nc[0]), nc[0] - 1)
            cy = min(int(y / lengths[1] * nc[1]), nc[1] - 1)
            cz = min(int(z / lengths[2] * nc[2]), nc[2] - 1)
            ok = True
            for ox in range(-1, 2):
                for oy in range(-1, 2):
                    for oz in range(-1, 2):
                        c = (((cx + ox) % nc[0]) * nc[1] + (cy + oy) % nc[1]) * nc[2] + (
                            (cz + oz) % nc[2]
                        )
                        for m in range(fill[c]):
                            j = cells[c, m]
                            dx = pos[j, 0] - x
                            dx -= lengths[0] * np.rint(dx / lengths[0])
                            dy = pos[j, 1] - y
                            dy -= lengths[1] * np.rint(dy / lengths[1])
                            dz = pos[j, 2] - z
                            dz -= lengths[2] * np.rint(dz / lengths[2])
                            if dx * dx + dy * dy + dz * dz < md2:
                                ok = False
                                break
                        if not ok:
                            break
                    if not ok:
                        break
                if not ok:
                    break
            if ok:
                c = (cx * nc[1] + cy) * nc[2] + cz
                if fill[c] >= cap:
                    continue
                pos[i, 0], pos[i, 1], pos[i, 2] = x, y, z
                cells[c, fill[c]] = i
                fill[c] += 1
                placed = True
                break
        if not placed:
            return pos, i
    return pos, n


def random_configuration(
    counts,
    species_names,
    density: float,
    seed: int,
    min_distance: float = 0.7,
    max_tries: int = 2000,
) -> System:
    """Particles inserted at random in a cubic box, no two closer than ``min_distance``.

    Parameters
    ----------
    counts : array_like, shape (S,)
        Particles per species.
    species_names : sequence of str
    density : float
        Number density N / V (length^-3).
    seed : int
        Seed of the insertion (and of the species assignment).
    min_distance : float
        Minimum pair distance (length units). Random sequential addition jams near a packing
        fraction of 0.38, i.e. about d = 0.85 at density 1.2; 0.7 inserts quickly there.

    Raises
    ------
    ConfigurationError
        When insertion fails (density too high for ``min_distance``); use a lattice start.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if density <= 0:
        raise ConfigurationError(f"density must be positive, got {density}")
    box = Box.cube((n / density) ** (1.0 / 3.0))
    rng = np.random.default_rng(seed)
    pos, placed = _random_insertion(n, box.lengths, float(min_distance), max_tries, rng)
    if placed < n:
        raise ConfigurationError(
            f"random insertion placed only {placed} of {n} particles with minimum distance "
            f"{min_distance} at density {density}; lower min_distance or use init = 'lattice'"
        )
    species = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    rng.shuffle(species)
    return System(pos, species, tuple(species_names), box)


def lattice_configuration(counts, species_names, density: float, seed: int) -> System:
    """Particles on randomly chosen sites of an fcc lattice filling a cubic box.

    The smallest fcc lattice with at least N sites is used; when it has more sites than
    particles, a random subset is occupied. Species are assigned at random.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if density <= 0:
        raise ConfigurationError(f"density must be positive, got {density}")
    length = (n / density) ** (1.0 / 3.0)
    m = int(np.ceil((n / 4.0) ** (1.0 / 3.0) - 1e-9))
    a = length / m
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) + 0.25
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    sites = ((grid + basis[None]) * a).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(sites.shape[0], size=n, replace=False))
    species = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    rng.shuffle(species)
    return System(sites[chosen], species, tuple(species_names), Box.cube(length))
