"""Cut-and-shifted Lennard-Jones mixtures: energy, virial and per-particle sums.

Pair parameters come as one table ``table[a, b, k]`` of shape (n_species, n_species, 4):
``k = 0`` 4 epsilon, ``1`` sigma^2, ``2`` r_cut^2, ``3`` shift = u_LJ(r_cut), so that
u(r) = 4 eps [(sigma/r)^12 - (sigma/r)^6] - shift for r < r_cut and 0 beyond.

The cut-off test sits inside each loop rather than in a helper that returns early: Numba
then vectorises the loop body much better.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def energy_virial(pos, species, lengths, scale, table, nbr, nnbr):
    """Total potential energy and virial from a full Verlet list.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Wrapped positions.
    species : ndarray, shape (N,), int32
    lengths : ndarray, shape (3,)
        Box lengths.
    scale : float
        Isotropic scale factor applied to positions and box (1 for the configuration as is;
        used to evaluate trial volume moves without copying positions).
    table : ndarray, shape (S, S, 4)
    nbr, nnbr : Verlet list valid for the scaled configuration.

    Returns
    -------
    energy : float
        Potential energy (energy units).
    virial : float
        W = sum over pairs of r_ij . f_ij (energy units); P = N k_B T / V + W / (3 V).
    """
    n = pos.shape[0]
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    ilx, ily, ilz = 1.0 / lx, 1.0 / ly, 1.0 / lz
    s2 = scale * scale
    e = 0.0
    w = 0.0
    for i in range(n):
        si = species[i]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        for k in range(nnbr[i]):
            j = nbr[i, k]
            if j < i:
                continue
            sj = species[j]
            dx = pos[j, 0] - xi
            dx -= lx * np.rint(dx * ilx)
            dy = pos[j, 1] - yi
            dy -= ly * np.rint(dy * ily)
            dz = pos[j, 2] - zi
            dz -= lz * np.rint(dz * ilz)
            r2 = (dx * dx + dy * dy + dz * dz) * s2
            if r2 < table[si, sj, 2]:
                q6 = table[si, sj, 1] / r2
                q6 = q6 * q6 * q6
                e4 = table[si, sj, 0]
                e += e4 * (q6 * q6 - q6) - table[si, sj, 3]
                w += e4 * (12.0 * q6 * q6 - 6.0 * q6)
    return e, w


@njit(cache=True)
def particle_energy_all(i, x, y, z, si, pos, species, lengths, table, skip):
    """Energy of particle ``i`` placed at (x, y, z) with species ``si`` against every other
    particle except ``skip`` (O(N); used only for moves larger than the Verlet skin)."""
    n = pos.shape[0]
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    e = 0.0
    for j in range(n):
        if j == i or j == skip:
            continue
        sj = species[j]
        dx = pos[j, 0] - x
        dx -= lx * np.rint(dx / lx)
        dy = pos[j, 1] - y
        dy -= ly * np.rint(dy / ly)
        dz = pos[j, 2] - z
        dz -= lz * np.rint(dz / lz)
        r2 = dx * dx + dy * dy + dz * dz
        if r2 < table[si, sj, 2]:
            q6 = table[si, sj, 1] / r2
            q6 = q6 * q6 * q6
            e += table[si, sj, 0] * (q6 * q6 - q6) - table[si, sj, 3]
    return e
