"""Per-pair first and second radial derivatives of the cut-and-shifted LJ energy.

For every listed pair within its cut-off, d = x_j - x_i + shifts[code] (the pair vector of
``forces_lj``), r = |d|, and the radial derivatives

    g = u'(r) = -4 eps (12 q12 - 6 q6) / r,    s = u''(r) = 4 eps (156 q12 - 42 q6) / r^2,

with q6 = (sigma / r)^6, q12 = q6^2. The shift does not enter either. The force is not
shifted, so u' jumps by -u'(r_c) at r = r_c; that delta function in u'' is left out (it
matters only for a pair exactly at the cut-off). ``kernels/hessian.py`` turns these pair
terms into the Hessian, the mixed strain derivatives and the Born term.
"""

import numpy as np
from numba import njit

from .md_neighbors import IMAGE_BITS, IMAGE_MASK


@njit(cache=True)
def lj_pair_terms(pos, species, table, shifts, row_atom, row_start, packed):
    """Pairs within the cut-off with their pair vectors and u', u''.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Positions (length units) as used when the list was built, possibly moved since.
    species : ndarray, shape (N,), int32
    table : ndarray, shape (S, S, 4)
        4 eps, sigma^2, r_c^2, shift per species pair (``LJMixture.kernel_table()``).
    shifts : ndarray, shape (27, 3)
        Lattice vectors of the image codes for the current cell.
    row_atom, row_start, packed : half Verlet list (see ``md_neighbors.build_half_list``).

    Returns
    -------
    pi, pj : ndarray, shape (P,), int64
        The two particles of each pair (numbering of ``pos``).
    d : ndarray, shape (P, 3)
        Pair vectors x_j - x_i + image shift (length units).
    g : ndarray, shape (P,)
        u'(r) (energy / length).
    s : ndarray, shape (P,)
        u''(r) (energy / length^2).
    """
    n = pos.shape[0]
    total = 0
    for r in range(n):
        i = row_atom[r]
        ti = table[species[i]]
        for k in range(row_start[r], row_start[r + 1]):
            p = packed[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - pos[i, 0] + shifts[c, 0]
            dy = pos[j, 1] - pos[i, 1] + shifts[c, 1]
            dz = pos[j, 2] - pos[i, 2] + shifts[c, 2]
            if dx * dx + dy * dy + dz * dz < ti[species[j], 2]:
                total += 1
    pi = np.empty(total, np.int64)
    pj = np.empty(total, np.int64)
    d = np.empty((total, 3))
    g = np.empty(total)
    s = np.empty(total)
    q = 0
    for r in range(n):
        i = row_atom[r]
        ti = table[species[i]]
        for k in range(row_start[r], row_start[r + 1]):
            p = packed[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - pos[i, 0] + shifts[c, 0]
            dy = pos[j, 1] - pos[i, 1] + shifts[c, 1]
            dz = pos[j, 2] - pos[i, 2] + shifts[c, 2]
            r2 = dx * dx + dy * dy + dz * dz
            sj = species[j]
            if r2 < ti[sj, 2]:
                ir2 = 1.0 / r2
                q6 = ti[sj, 1] * ir2
                q6 = q6 * q6 * q6
                q12 = q6 * q6
                e4 = ti[sj, 0]
                pi[q] = i
                pj[q] = j
                d[q, 0] = dx
                d[q, 1] = dy
                d[q, 2] = dz
                g[q] = -e4 * (12.0 * q12 - 6.0 * q6) / np.sqrt(r2)
                s[q] = e4 * (156.0 * q12 - 42.0 * q6) * ir2
                q += 1
    return pi, pj, d, g, s
