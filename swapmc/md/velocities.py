"""Initial velocities: Maxwell-Boltzmann at a temperature, zero total momentum."""

from __future__ import annotations

import numpy as np


def maxwell_boltzmann(masses, temperature: float, kB: float, mvv2e: float,
                      rng: np.random.Generator, exact: bool = False) -> np.ndarray:
    """Draw velocities from the Maxwell-Boltzmann distribution with zero total momentum.

    Each component is normal with variance k_B T / (m mvv2e); the mass-weighted mean velocity
    is then removed, so the 3N - 3 remaining degrees of freedom carry the temperature.

    Parameters
    ----------
    masses : ndarray, shape (N,)
        Per-particle masses (mass units), e.g. ``ForceField.masses(system.species)``.
    temperature : float
        Temperature (k_B T in energy units for ``lj``; K for ``metal``).
    kB, mvv2e : float
        Unit constants of the force field (``ForceField.kB``, ``ForceField.mvv2e``).
    rng : numpy.random.Generator
        The random stream (explicit: no global seeding).
    exact : bool
        Rescale so that the kinetic temperature with 3N - 3 degrees of freedom equals
        ``temperature`` exactly (otherwise it fluctuates like a canonical sample).

    Returns
    -------
    ndarray, shape (N, 3)
        Velocities (length / time units: sigma/tau for ``lj``, Å/ps for ``metal``).
    """
    masses = np.asarray(masses, dtype=np.float64)
    n = masses.shape[0]
    if temperature < 0:
        raise ValueError(f"temperature must be non-negative, got {temperature}")
    if n < 2:
        raise ValueError("need at least two particles to remove the total momentum")
    v = rng.standard_normal((n, 3)) * np.sqrt(kB * temperature / (masses * mvv2e))[:, None]
    v -= (masses @ v) / masses.sum()
    if exact and temperature > 0:
        t_now = kinetic_temperature(masses, v, kB, mvv2e)
        v *= np.sqrt(temperature / t_now)
    return v


def kinetic_energy(masses, velocities, mvv2e: float) -> float:
    """K = mvv2e / 2 sum_i m_i |v_i|^2 (energy units)."""
    return 0.5 * mvv2e * float(np.einsum("i,ij,ij->", masses, velocities, velocities))


def kinetic_temperature(masses, velocities, kB: float, mvv2e: float,
                        dof: int | None = None) -> float:
    """2 K / (dof k_B) with dof = 3N - 3 by default (total momentum removed)."""
    n = velocities.shape[0]
    dof = 3 * n - 3 if dof is None else dof
    return 2.0 * kinetic_energy(masses, velocities, mvv2e) / (dof * kB)
