"""Half Verlet lists with explicit periodic images, for MD in orthorhombic or triclinic cells.

Each listed pair (i, j) carries the lattice image n in {-1, 0, 1}^3 of j that is close to i,
so the pair vector is

    d_ij = x_j - x_i + h n        (h: cell matrix, edge vectors as columns)

and the force kernels never take a minimum image. The pair is stored packed as
``j << IMAGE_BITS | code`` with ``code = (n_x + 1) * 9 + (n_y + 1) * 3 + (n_z + 1)``; the
kernels receive ``shifts`` (27, 3) = h n for the *current* cell, so the list follows an affine
deformation of the cell without change. Positions are wrapped into the cell only when the list
is built and must not be wrapped again before the next build (the image of every pair is
relative to the positions at the build).

Binning is in fractional coordinates: with n_k bins along cell vector k and perpendicular
width w_k of the cell, a sphere of radius r_list spans at most r_list / w_k in fractional
coordinate k, so bins of fractional width >= r_list / (reach w_k) put all neighbours within
+-reach bins, for any tilt. Each (pair, image) is visited once through a half stencil, which
needs at least 2 reach + 1 bins per direction; smaller cells use an all-pairs search over the
27 images. The list radius is per species pair, r_c,ab + skin (KA: 2.3 for A-B against 2.8
for A-A), which shortens the KA list by 16 %; bins use the largest radius. Bins are numbered
with z fastest, so the stencil is scanned as contiguous z columns of particles (13 ranges
instead of 63 bins of ~4 particles for reach 2: fewer mispredicted loop exits, 30 % faster
KA builds) in the same order as bin by bin.

:func:`build_sorted_half_list` also renumbers the particles in bin order (a spatial sort, as
LAMMPS's ``atom_modify sort``): kernels run on arrays gathered with its permutation
(:func:`gather_rows`) read their partners from nearby memory, and :func:`scatter_rows` puts
results back in the caller's order. Rows are in bin order either way, so a sorted and an
unsorted list give the same pairs in the same order, only numbered differently.
"""

import numpy as np
from numba import njit

from .neighbors import sort_by_cell

IMAGE_BITS = 5
IMAGE_MASK = (1 << IMAGE_BITS) - 1


@njit(cache=True)
def wrap_positions(pos, h, hinv, images):
    """Map positions into the cell in place and add the removed lattice vectors to ``images``.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Cartesian positions (length units), overwritten with wrapped ones.
    h, hinv : ndarray, shape (3, 3)
        Cell matrix (edge vectors as columns) and its inverse.
    images : ndarray, shape (N, 3), int64
        Image counters, incremented by the number of cell vectors removed.
    """
    n = pos.shape[0]
    s = np.empty(3)
    for i in range(n):
        for a in range(3):
            s[a] = hinv[a, 0] * pos[i, 0] + hinv[a, 1] * pos[i, 1] + hinv[a, 2] * pos[i, 2]
        for a in range(3):
            k = np.floor(s[a])
            s[a] -= k
            # A tiny negative s rounds to 1.0 after the subtraction: that is the cell's edge.
            if s[a] >= 1.0:
                s[a] -= 1.0
                k += 1.0
            images[i, a] += int(k)
        for a in range(3):
            pos[i, a] = h[a, 0] * s[0] + h[a, 1] * s[1] + h[a, 2] * s[2]


@njit(cache=True)
def image_shifts(h):
    """Lattice vectors h n for the 27 image codes, shape (27, 3)."""
    out = np.empty((27, 3))
    for nx in range(-1, 2):
        for ny in range(-1, 2):
            for nz in range(-1, 2):
                c = (nx + 1) * 9 + (ny + 1) * 3 + (nz + 1)
                for a in range(3):
                    out[c, a] = h[a, 0] * nx + h[a, 1] * ny + h[a, 2] * nz
    return out


@njit(cache=True)
def bin_order(pos, hinv, nb):
    """Counting sort of particles by fractional bin, bins in x-major order (z fastest).

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Positions wrapped into the cell (length units).
    hinv : ndarray, shape (3, 3)
        Inverse cell matrix.
    nb : ndarray, shape (3,), int64
        Bins per cell vector (all >= 1).

    Returns
    -------
    start : ndarray, shape (n_bins + 1,), int64
        Bin c holds ``order[start[c]:start[c + 1]]``.
    order : ndarray, shape (N,), int64
        Particles in bin order; stable, so particles of one bin keep their index order and
        positions that are already in bin order give the identity.
    """
    n = pos.shape[0]
    cell = np.empty(n, np.int64)
    for i in range(n):
        c = 0
        for a in range(3):
            s = hinv[a, 0] * pos[i, 0] + hinv[a, 1] * pos[i, 1] + hinv[a, 2] * pos[i, 2]
            b = int(s * nb[a])
            b = min(max(b, 0), nb[a] - 1)
            c = c * nb[a] + b
        cell[i] = c
    return sort_by_cell(cell, nb[0] * nb[1] * nb[2])


@njit(cache=True)
def _stencil_ranges(cx, cy, cz, nb, reach, start, lo, hi, codes):
    """Half stencil of bin (cx, cy, cz) as contiguous particle ranges.

    Bins that differ only in z are adjacent in the bin order, so the 2 reach + 1 bins of one
    (ox, oy) column are one range of particles, split in two where the column wraps across
    the z faces (the two parts have different image codes). Ranges come in the order of the
    stencil offsets (ox, oy, oz), so a list filled range by range equals one filled bin by
    bin. The first range starts at the own bin (the caller starts it after the particle).

    Returns the number of ranges written to ``lo``, ``hi`` (particle index bounds, bin
    order) and ``codes`` (image code of each range).
    """
    nr = 0
    for ox in range(0, reach + 1):
        for oy in range(-reach, reach + 1):
            if ox == 0 and oy < 0:
                continue
            # Own column: only oz >= 0 (the rest of it is seen from the other side).
            oz_lo = 0 if (ox == 0 and oy == 0) else -reach
            bx, by = cx + ox, cy + oy
            ix = -1 if bx < 0 else (1 if bx >= nb[0] else 0)
            iy = -1 if by < 0 else (1 if by >= nb[1] else 0)
            bx -= ix * nb[0]
            by -= iy * nb[1]
            col = (bx * nb[1] + by) * nb[2]
            code_xy = (ix + 1) * 9 + (iy + 1) * 3
            z0, z1 = cz + oz_lo, cz + reach
            # At most one wrap: the column spans 2 reach + 1 <= nb[2] bins.
            if z0 < 0:
                lo[nr] = start[col + z0 + nb[2]]
                hi[nr] = start[col + nb[2]]
                codes[nr] = code_xy
                nr += 1
                z0 = 0
            lo[nr] = start[col + z0]
            hi[nr] = start[col + min(z1, nb[2] - 1) + 1]
            codes[nr] = code_xy + 1
            nr += 1
            if z1 >= nb[2]:
                lo[nr] = start[col]
                hi[nr] = start[col + z1 - nb[2] + 1]
                codes[nr] = code_xy + 2
                nr += 1
    return nr


@njit(cache=True)
def _fill_binned(xs, ys, zs, ss, order, renumber, start, h, rl2_pair, nb, reach, packed,
                 row_start):
    """Fill rows in bin order; entries beyond the capacity of ``packed`` are only counted.

    Row k belongs to the k-th particle in bin order; a partner at bin rank b is stored as b
    with ``renumber``, else as the caller's index ``order[b]``. Returns the number of pairs
    found (larger than ``packed.shape[0]`` on overflow).
    """
    n = xs.shape[0]
    cap = packed.shape[0]
    shifts = image_shifts(h)
    # At most (reach + 1) (2 reach + 1) - reach columns, each split in at most two ranges.
    width = 2 * reach + 1
    lo = np.empty(2 * width * width, np.int64)
    hi = np.empty(2 * width * width, np.int64)
    codes = np.empty(2 * width * width, np.int64)
    count = 0
    for cx in range(nb[0]):
        for cy in range(nb[1]):
            for cz in range(nb[2]):
                c = (cx * nb[1] + cy) * nb[2] + cz
                if start[c] == start[c + 1]:
                    continue
                nr = _stencil_ranges(cx, cy, cz, nb, reach, start, lo, hi, codes)
                for a in range(start[c], start[c + 1]):
                    row_start[a] = count
                    rl2 = rl2_pair[ss[a]]
                    for q in range(nr):
                        code = codes[q]
                        xa = xs[a] - shifts[code, 0]
                        ya = ys[a] - shifts[code, 1]
                        za = zs[a] - shifts[code, 2]
                        b0 = a + 1 if q == 0 else lo[q]
                        for b in range(b0, hi[q]):
                            dx = xs[b] - xa
                            dy = ys[b] - ya
                            dz = zs[b] - za
                            # Branch-free append: always store, advance on a hit (the
                            # hit rate is ~20 %, a branch on it mispredicts often).
                            if count < cap:
                                # The flag is loop-invariant (the compiler hoists it);
                                # skipping the load of order[b] saves 8 % of the build.
                                j = b if renumber else order[b]
                                packed[count] = (j << IMAGE_BITS) | code
                            count += dx * dx + dy * dy + dz * dz < rl2[ss[b]]
    row_start[n] = count
    return count


@njit(cache=True)
def _build_binned(pos, species, h, hinv, rl2_pair, nb, reach, packed, renumber):
    n = pos.shape[0]
    start, order = bin_order(pos, hinv, nb)
    # Coordinates gathered in bin order (structure of arrays): contiguous inner-loop reads.
    xs = np.empty(n)
    ys = np.empty(n)
    zs = np.empty(n)
    ss = np.empty(n, np.int64)
    for k in range(n):
        xs[k] = pos[order[k], 0]
        ys[k] = pos[order[k], 1]
        zs[k] = pos[order[k], 2]
        ss[k] = species[order[k]]
    row_start = np.empty(n + 1, np.int64)
    count = _fill_binned(xs, ys, zs, ss, order, renumber, start, h, rl2_pair, nb, reach,
                         packed, row_start)
    if count > packed.shape[0]:
        # Too small: grow with head-room so that density fluctuations rarely force this again.
        packed = np.empty(int(1.2 * count) + 64, np.int32)
        _fill_binned(xs, ys, zs, ss, order, renumber, start, h, rl2_pair, nb, reach,
                     packed, row_start)
    return order, row_start, packed


@njit(cache=True)
def _fill_all_pairs(pos, species, h, rl2_pair, packed, row_start):
    n = pos.shape[0]
    cap = packed.shape[0]
    shifts = image_shifts(h)
    count = 0
    for i in range(n):
        row_start[i] = count
        for j in range(i + 1, n):
            rl2 = rl2_pair[species[i], species[j]]
            for code in range(27):
                dx = pos[j, 0] - pos[i, 0] + shifts[code, 0]
                dy = pos[j, 1] - pos[i, 1] + shifts[code, 1]
                dz = pos[j, 2] - pos[i, 2] + shifts[code, 2]
                if dx * dx + dy * dy + dz * dz < rl2:
                    if count < cap:
                        packed[count] = (j << IMAGE_BITS) | code
                    count += 1
    row_start[n] = count
    return count


@njit(cache=True)
def _build_all_pairs(pos, species, h, rl2_pair, packed):
    n = pos.shape[0]
    row_start = np.empty(n + 1, np.int64)
    count = _fill_all_pairs(pos, species, h, rl2_pair, packed, row_start)
    if count > packed.shape[0]:
        packed = np.empty(int(1.2 * count) + 64, np.int32)
        _fill_all_pairs(pos, species, h, rl2_pair, packed, row_start)
    return np.arange(n), row_start, packed


@njit(cache=True)
def build_half_list(pos, species, h, hinv, rl2_pair, nb, reach, packed):
    """Half Verlet list of every (pair, image) closer than its list radius.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Positions wrapped into the cell (length units).
    species : ndarray, shape (N,), int32
    h, hinv : ndarray, shape (3, 3)
        Cell matrix and inverse.
    rl2_pair : ndarray, shape (S, S)
        Squared list radius (r_c,ab + skin)^2 per species pair: pairs with shorter cut-offs
        (KA: A-B 2.0 against A-A 2.5) get shorter lists. The largest radius r_list must
        not exceed any perpendicular width of the cell (then the images n in {-1, 0, 1}^3
        contain every neighbour and no particle meets itself).
    nb : ndarray, shape (3,), int64
        Bins per cell vector for bins of fractional width >= r_list / (reach w_k), each
        >= 2 reach + 1, or any entry 0 for the all-pairs search.
    reach : int
        Stencil half-width in bins (1 or 2).
    packed : ndarray, shape (capacity,), int32
        Storage to reuse (a larger array is allocated when it fills up).

    Returns
    -------
    row_atom : ndarray, shape (N,), int64
        Particle of each row (rows follow the bin order, for memory locality).
    row_start : ndarray, shape (N + 1,), int64
        Row r holds ``packed[row_start[r]:row_start[r + 1]]``.
    packed : ndarray, int32
        ``j << IMAGE_BITS | image code`` for each pair.
    """
    if nb[0] == 0 or nb[1] == 0 or nb[2] == 0:
        return _build_all_pairs(pos, species, h, rl2_pair, packed)
    return _build_binned(pos, species, h, hinv, rl2_pair, nb, reach, packed, False)


@njit(cache=True)
def build_sorted_half_list(pos, species, h, hinv, rl2_pair, nb, reach, packed):
    """Half Verlet list over the particles renumbered in bin order (spatial sort).

    Same arguments and pairs as :func:`build_half_list`, but particle k of the list is
    particle ``perm[k]`` of ``pos``: neighbours in space are close in memory, so the force
    kernels, run on arrays gathered with ``perm`` (:func:`gather_rows`), read and update
    their partners mostly from cache. Row k belongs to particle k (``row_atom`` would be
    the identity). With the all-pairs search (any ``nb`` entry 0) ``perm`` is the identity.

    Returns
    -------
    perm : ndarray, shape (N,), int64
        ``perm[k]`` is the caller's index of renumbered particle k.
    row_start : ndarray, shape (N + 1,), int64
    packed : ndarray, int32
        ``j << IMAGE_BITS | image code`` with j a renumbered index.
    """
    if nb[0] == 0 or nb[1] == 0 or nb[2] == 0:
        return _build_all_pairs(pos, species, h, rl2_pair, packed)
    return _build_binned(pos, species, h, hinv, rl2_pair, nb, reach, packed, True)


@njit(cache=True)
def gather_rows(src, perm, out):
    """``out[k] = src[perm[k]]`` for (N, 3) arrays (into renumbered order)."""
    for k in range(perm.shape[0]):
        i = perm[k]
        out[k, 0] = src[i, 0]
        out[k, 1] = src[i, 1]
        out[k, 2] = src[i, 2]


@njit(cache=True)
def scatter_rows(src, perm, out):
    """``out[perm[k]] = src[k]`` for (N, 3) arrays (back to the caller's order)."""
    for k in range(perm.shape[0]):
        i = perm[k]
        out[i, 0] = src[k, 0]
        out[i, 1] = src[k, 1]
        out[i, 2] = src[k, 2]


@njit(cache=True)
def max_displacement_sq(pos, ref, a):
    """Largest squared displacement since the build, measured in the build-time cell.

    u_i = a x_i - ref_i with a = h_0 h^-1, i.e. u_i = h_0 (s_i - s_i,0) in fractional
    coordinates s: the affine part of a cell deformation (s unchanged) does not count.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Current positions (not wrapped since the build).
    ref : ndarray, shape (N, 3)
        Positions at the build (wrapped).
    a : ndarray, shape (3, 3)
        h_0 h^-1 (identity while the cell has not changed).
    """
    best = 0.0
    for i in range(pos.shape[0]):
        x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
        dx = a[0, 0] * x + a[0, 1] * y + a[0, 2] * z - ref[i, 0]
        dy = a[1, 0] * x + a[1, 1] * y + a[1, 2] * z - ref[i, 1]
        dz = a[2, 0] * x + a[2, 1] * y + a[2, 2] * z - ref[i, 2]
        d2 = dx * dx + dy * dy + dz * dz
        if d2 > best:
            best = d2
    return best
