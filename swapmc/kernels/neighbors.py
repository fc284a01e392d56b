"""Cell and Verlet neighbour lists for orthorhombic periodic boxes.

The Verlet list is a *full* list (each pair appears in both rows) because Monte Carlo needs
every neighbour of one particle at a time. It is built once for a list radius
``r_list = r_cut + skin`` and stays exact as long as, for every pair, the sum of the two
particles' displacements since the build is at most ``skin``; the Monte Carlo kernels track
the two largest displacements to decide when a rebuild is due (see ``mc_lj.py``).
"""

import numpy as np
from numba import njit


@njit(cache=True)
def _cell_grid(lengths, r_min):
    """Number of cells per dimension with side >= r_min, shape (3,), int64."""
    nc = np.empty(3, np.int64)
    for d in range(3):
        nc[d] = max(1, int(lengths[d] / r_min))
    return nc


@njit(cache=True)
def _bin_particles(pos, lengths, nc):
    """Linked-list binning: returns (head, nxt) with head over flattened cells."""
    n = pos.shape[0]
    head = -np.ones(nc[0] * nc[1] * nc[2], np.int64)
    nxt = np.empty(n, np.int64)
    for i in range(n):
        cx = min(int(pos[i, 0] / lengths[0] * nc[0]), nc[0] - 1)
        cy = min(int(pos[i, 1] / lengths[1] * nc[1]), nc[1] - 1)
        cz = min(int(pos[i, 2] / lengths[2] * nc[2]), nc[2] - 1)
        c = (cx * nc[1] + cy) * nc[2] + cz
        nxt[i] = head[c]
        head[c] = i
    return head, nxt


@njit(cache=True)
def _cell_of(x, y, z, lengths, nc):
    cx = min(int(x / lengths[0] * nc[0]), nc[0] - 1)
    cy = min(int(y / lengths[1] * nc[1]), nc[1] - 1)
    cz = min(int(z / lengths[2] * nc[2]), nc[2] - 1)
    return cx, cy, cz


@njit(cache=True)
def build_verlet(pos, lengths, r_list, nbr):
    """Build a full Verlet list.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Wrapped positions in [0, L).
    lengths : ndarray, shape (3,)
        Box edge lengths.
    r_list : float
        List radius (cutoff + skin).
    nbr : ndarray, shape (N, capacity), int32
        Storage to reuse; a larger array is allocated and returned when it is too small.

    Returns
    -------
    nbr : ndarray, shape (N, capacity'), int32
        Neighbour indices; row i holds ``nnbr[i]`` valid entries.
    nnbr : ndarray, shape (N,), int32
    """
    n = pos.shape[0]
    nnbr = np.zeros(n, np.int32)
    rl2 = r_list * r_list
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    ilx, ily, ilz = 1.0 / lx, 1.0 / ly, 1.0 / lz
    nc = _cell_grid(lengths, r_list)
    use_cells = nc[0] >= 3 and nc[1] >= 3 and nc[2] >= 3
    while True:
        cap = nbr.shape[1]
        overflow = 0
        nnbr[:] = 0
        if use_cells:
            head, nxt = _bin_particles(pos, lengths, nc)
            for i in range(n):
                xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
                cx, cy, cz = _cell_of(xi, yi, zi, lengths, nc)
                for ox in range(-1, 2):
                    ax = (cx + ox) % nc[0]
                    for oy in range(-1, 2):
                        ay = (cy + oy) % nc[1]
                        for oz in range(-1, 2):
                            az = (cz + oz) % nc[2]
                            j = head[(ax * nc[1] + ay) * nc[2] + az]
                            while j >= 0:
                                if j != i:
                                    dx = pos[j, 0] - xi
                                    dx -= lx * np.rint(dx * ilx)
                                    dy = pos[j, 1] - yi
                                    dy -= ly * np.rint(dy * ily)
                                    dz = pos[j, 2] - zi
                                    dz -= lz * np.rint(dz * ilz)
                                    if dx * dx + dy * dy + dz * dz < rl2:
                                        k = nnbr[i]
                                        if k < cap:
                                            nbr[i, k] = j
                                        nnbr[i] = k + 1
                                j = nxt[j]
                if nnbr[i] > overflow:
                    overflow = nnbr[i]
        else:
            for i in range(n):
                for j in range(n):
                    if j == i:
                        continue
                    dx = pos[j, 0] - pos[i, 0]
                    dx -= lx * np.rint(dx * ilx)
                    dy = pos[j, 1] - pos[i, 1]
                    dy -= ly * np.rint(dy * ily)
                    dz = pos[j, 2] - pos[i, 2]
                    dz -= lz * np.rint(dz * ilz)
                    if dx * dx + dy * dy + dz * dz < rl2:
                        k = nnbr[i]
                        if k < cap:
                            nbr[i, k] = j
                        nnbr[i] = k + 1
                if nnbr[i] > overflow:
                    overflow = nnbr[i]
        if overflow <= cap:
            return nbr, nnbr
        # Too small: grow with head-room so that density fluctuations rarely force this again.
        nbr = np.empty((n, int(overflow * 1.3) + 8), np.int32)


@njit(cache=True)
def closest_pair(pos, lengths, r_search):
    """Closest pair among pairs closer than ``r_search`` (cell search, O(N)).

    Returns
    -------
    i, j : int
        The pair's indices, or (-1, -1) when no pair is closer than ``r_search``.
    r : float
        Their distance (``inf`` when none).
    """
    n = pos.shape[0]
    best = np.inf
    bi, bj = -1, -1
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    nc = _cell_grid(lengths, max(r_search, 1e-12))
    use_cells = nc[0] >= 3 and nc[1] >= 3 and nc[2] >= 3
    r2s = r_search * r_search
    if use_cells:
        head, nxt = _bin_particles(pos, lengths, nc)
    else:
        head = np.empty(0, np.int64)
        nxt = np.empty(0, np.int64)
    for i in range(n):
        if use_cells:
            cx, cy, cz = _cell_of(pos[i, 0], pos[i, 1], pos[i, 2], lengths, nc)
            for ox in range(-1, 2):
                for oy in range(-1, 2):
                    for oz in range(-1, 2):
                        c = (((cx + ox) % nc[0]) * nc[1] + (cy + oy) % nc[1]) * nc[2] + (
                            (cz + oz) % nc[2]
                        )
                        j = head[c]
                        while j >= 0:
                            if j > i:
                                dx = pos[j, 0] - pos[i, 0]
                                dx -= lx * np.rint(dx / lx)
                                dy = pos[j, 1] - pos[i, 1]
                                dy -= ly * np.rint(dy / ly)
                                dz = pos[j, 2] - pos[i, 2]
                                dz -= lz * np.rint(dz / lz)
                                r2 = dx * dx + dy * dy + dz * dz
                                if r2 < r2s and r2 < best:
                                    best, bi, bj = r2, i, j
                            j = nxt[j]
        else:
            for j in range(i + 1, n):
                dx = pos[j, 0] - pos[i, 0]
                dx -= lx * np.rint(dx / lx)
                dy = pos[j, 1] - pos[i, 1]
                dy -= ly * np.rint(dy / ly)
                dz = pos[j, 2] - pos[i, 2]
                dz -= lz * np.rint(dz / lz)
                r2 = dx * dx + dy * dy + dz * dz
                if r2 < r2s and r2 < best:
                    best, bi, bj = r2, i, j
    return bi, bj, np.sqrt(best)
