"""Stress and pressure: the one place where the sign convention is defined.

The force kernels return the pair virial

    W_ab = sum_{i<j} r_ij,a f_ij,b        (r_ij = x_i - x_j, f_ij = force on i from j),

symmetric, in energy units; positive diagonal entries mean net repulsion. With the kinetic
tensor K_ab = mvv2e sum_i m_i v_ia v_ib (energy units, see :data:`MVV2E`):

* **pressure tensor** P_ab = (K_ab + W_ab) / V, positive in compression (LAMMPS ``compute
  pressure``, ``thermo pxx ...``);
* **stress** sigma_ab = -P_ab = -(K_ab + W_ab) / V, the Cauchy stress, **positive in tension**;
* **pressure** P = tr(P_ab) / 3 = -tr(sigma) / 3.

For a homogeneous deformation x -> (1 + eps) x of cell and particles, W_ab = -dU/deps_ab, so
the potential part of the stress is sigma_ab = (1/V) dU/deps_ab and that of the pressure
tensor is -(1/V) dU/deps_ab.

Values are in the internal unit energy / length^3 (epsilon/sigma^3 for ``lj``, eV/Å^3 for
``metal``); :func:`to_user_pressure` converts to the user's unit (GPa for ``metal``, as
:mod:`swapmc.units` prescribes).
"""

from __future__ import annotations

import numpy as np

from ..units import PRESSURE_TO_INTERNAL

# Kinetic-energy factor mvv2e: energy of unit mass times unit velocity squared. LAMMPS metal
# units: 1 amu Å^2/ps^2 = 1.0364269e-4 eV (LAMMPS's own constant, kept for agreement).
MVV2E = {"lj": 1.0, "metal": 1.0364269e-4}


def kinetic_tensor(masses, velocities, mvv2e: float) -> np.ndarray:
    """K_ab = mvv2e sum_i m_i v_ia v_ib.

    Parameters
    ----------
    masses : ndarray, shape (N,)
        Particle masses (mass units).
    velocities : ndarray, shape (N, 3)
        Velocities (length / time units).
    mvv2e : float
        Energy of unit mass at unit velocity squared (1 in ``lj``).

    Returns
    -------
    ndarray, shape (3, 3)
        Twice the kinetic-energy tensor (energy units).
    """
    mv = velocities * masses[:, None]
    return mvv2e * (mv.T @ velocities)


def pressure_tensor(virial, volume: float, kinetic=None) -> np.ndarray:
    """P_ab = (K_ab + W_ab) / V, positive in compression (energy / length^3), shape (3, 3).

    ``kinetic`` (from :func:`kinetic_tensor`) is omitted for the potential part only.
    """
    total = np.array(virial, dtype=np.float64)
    if kinetic is not None:
        total = total + kinetic
    return total / volume


def stress_tensor(virial, volume: float, kinetic=None) -> np.ndarray:
    """Cauchy stress sigma_ab = -(K_ab + W_ab) / V, positive in tension, shape (3, 3)."""
    return -pressure_tensor(virial, volume, kinetic)


def pressure(virial, volume: float, kinetic=None) -> float:
    """Scalar pressure P = tr(P_ab) / 3 = -tr(sigma) / 3 (energy / length^3)."""
    return float(np.trace(pressure_tensor(virial, volume, kinetic)) / 3.0)


def to_user_pressure(value, units: str):
    """Internal pressure or stress (energy / length^3) in the user's unit (GPa for metal)."""
    return value / PRESSURE_TO_INTERNAL[units]


def from_user_pressure(value, units: str):
    """User pressure (GPa for metal) in the internal unit energy / length^3."""
    return value * PRESSURE_TO_INTERNAL[units]
