"""Per-pair radial derivatives and per-atom F'' of an EAM alloy, for the Hessian.

Tables and lookup rules are those of ``EAMPotential.kernel_tables()`` and ``kernels/eam.py``
(LAMMPS ``pair_style eam/alloy`` and ``eam/fs``): on spline cell m at fraction p,
value = ((c3 p + c4) p + c5) p + c6 and d/dr = (c0 p + c1) p + c2 (c0..c2 already per unit
r), so d^2/dr^2 = (2 c0 p + c1) / dr. The splines are C^1: their second derivative jumps
(slightly) at grid points, and this is the exact second derivative of the energy LAMMPS and
swapmc evaluate everywhere else. Where LAMMPS clamps p to 1 (beyond the last grid cell, and
densities above rho_max, where F continues linearly) the function is linear or constant in
r or rho and its second derivative is taken as zero.

With E = sum_k F_k(rho_k) + sum_pairs phi(r), rho_k = sum_{pairs p of k} f_{partner -> k}(r_p),
the energy is a function of the pair distances whose derivatives are

    dE/dr_p = phi'(r_p) + F'_i f'_{j->i}(r_p) + F'_j f'_{i->j}(r_p)                 (g_p)
    d2E/dr_p dr_q = delta_pq [phi'' + F'_i f''_{j->i} + F'_j f''_{i->j}]           (s_p)
                    + sum_k F''_k (d rho_k / d r_p) (d rho_k / d r_q),

for the pair p = (i, j). This module returns g_p, s_p, the two density derivatives
a_i = f'_{j->i}(r_p) (j's density at i) and a_j = f'_{i->j}(r_p), and F''_k;
``kernels/hessian.py`` assembles them (the last term couples second neighbours).
"""

import numpy as np
from numba import njit

from .eam import rho_cell_of
from .md_neighbors import IMAGE_BITS, IMAGE_MASK


@njit(cache=True)
def spline_r2(table, r, rdr, nr):
    """Value, first and second derivative (per unit r) of a radial spline table at r.

    Parameters
    ----------
    table : ndarray, shape (nr + 1, 7)
        LAMMPS spline rows (``spline_coefficients``).
    r : float
        Distance (length units).
    rdr : float
        1 / dr.
    nr : int

    Returns
    -------
    (float, float, float)
        f(r), f'(r), f''(r); f'' is 0 where LAMMPS clamps the fraction to the cell's end.
    """
    p = r * rdr + 1.0
    m = int(p)
    if m > nr - 1:
        m = nr - 1
    p -= m
    clamped = p > 1.0
    if clamped:
        p = 1.0
    value = ((table[m, 3] * p + table[m, 4]) * p + table[m, 5]) * p + table[m, 6]
    d1 = (table[m, 0] * p + table[m, 1]) * p + table[m, 2]
    d2 = 0.0 if clamped else (2.0 * table[m, 0] * p + table[m, 1]) * rdr
    return value, d1, d2


@njit(cache=True)
def embed2(table, rho, rdrho, nrho, rhomax):
    """F'(rho) and F''(rho) with LAMMPS's lookup (F linear, F'' = 0, above rho_max)."""
    m, p = rho_cell_of(rho, rdrho, nrho)
    fp = (table[m, 0] * p + table[m, 1]) * p + table[m, 2]
    if rho > rhomax:
        return fp, 0.0
    return fp, (2.0 * table[m, 0] * p + table[m, 1]) * rdrho


@njit(cache=True)
def eam_pair_terms(pos, species, frho, rhor, z2r, sc, nr, nrho, shifts, row_atom, row_start,
                   packed):
    """Pairs within the cut-off with their pair vectors and energy derivatives.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Positions (Å) as used when the list was built, possibly moved since.
    species : ndarray, shape (N,), int32
    frho : ndarray, shape (S, nrho + 1, 7)
        Embedding splines.
    rhor : ndarray, shape (S, S, nr + 1, 7)
        Density splines ``rhor[neighbour, centre]``.
    z2r : ndarray, shape (S, S, nr + 1, 7)
        r * phi splines.
    sc : ndarray, shape (4,)
        [1/dr, 1/drho, rho_max, cutoff^2].
    nr, nrho : int
    shifts : ndarray, shape (27, 3)
        Lattice vectors of the image codes for the current cell (Å).
    row_atom, row_start, packed : half Verlet list (see ``md_neighbors.build_half_list``).

    Returns
    -------
    pi, pj : ndarray, shape (P,), int64
        The two atoms of each pair.
    d : ndarray, shape (P, 3)
        Pair vectors x_j - x_i + image shift (Å).
    g : ndarray, shape (P,)
        dE/dr_p (eV/Å).
    s : ndarray, shape (P,)
        Diagonal part of d2E/dr_p^2 (eV/Å^2), without the F'' term.
    a_i, a_j : ndarray, shape (P,)
        f'_{j->i}(r_p) and f'_{i->j}(r_p) (density units per Å).
    fpp : ndarray, shape (N,)
        F''_k(rho_k) (eV per density unit squared).
    """
    n = pos.shape[0]
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    total = 0
    for r in range(n):
        i = row_atom[r]
        for k in range(row_start[r], row_start[r + 1]):
            p = packed[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - pos[i, 0] + shifts[c, 0]
            dy = pos[j, 1] - pos[i, 1] + shifts[c, 1]
            dz = pos[j, 2] - pos[i, 2] + shifts[c, 2]
            if dx * dx + dy * dy + dz * dz < cutsq:
                total += 1
    pi = np.empty(total, np.int64)
    pj = np.empty(total, np.int64)
    d = np.empty((total, 3))
    rr = np.empty(total)
    q = 0
    for r in range(n):
        i = row_atom[r]
        for k in range(row_start[r], row_start[r + 1]):
            p = packed[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - pos[i, 0] + shifts[c, 0]
            dy = pos[j, 1] - pos[i, 1] + shifts[c, 1]
            dz = pos[j, 2] - pos[i, 2] + shifts[c, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 < cutsq:
                pi[q] = i
                pj[q] = j
                d[q, 0] = dx
                d[q, 1] = dy
                d[q, 2] = dz
                rr[q] = np.sqrt(r2)
                q += 1
    # Densities, then F' and F''.
    rho = np.zeros(n)
    for q in range(total):
        i, j = pi[q], pj[q]
        si, sj = species[i], species[j]
        rho[i] += spline_r2(rhor[sj, si], rr[q], rdr, nr)[0]
        rho[j] += spline_r2(rhor[si, sj], rr[q], rdr, nr)[0]
    fp = np.empty(n)
    fpp = np.empty(n)
    for k in range(n):
        fp[k], fpp[k] = embed2(frho[species[k]], rho[k], rdrho, nrho, rhomax)
    g = np.empty(total)
    s = np.empty(total)
    a_i = np.empty(total)
    a_j = np.empty(total)
    for q in range(total):
        i, j = pi[q], pj[q]
        si, sj = species[i], species[j]
        x = rr[q]
        z, z1, z2 = spline_r2(z2r[si, sj], x, rdr, nr)
        _, fji1, fji2 = spline_r2(rhor[sj, si], x, rdr, nr)  # j's density at i
        _, fij1, fij2 = spline_r2(rhor[si, sj], x, rdr, nr)  # i's density at j
        inv = 1.0 / x
        phi = z * inv
        phi1 = (z1 - phi) * inv
        phi2 = (z2 - 2.0 * phi1) * inv
        g[q] = phi1 + fp[i] * fji1 + fp[j] * fij1
        s[q] = phi2 + fp[i] * fji2 + fp[j] * fij2
        a_i[q] = fji1
        a_j[q] = fij1
    return pi, pj, d, g, s, a_i, a_j, fpp
