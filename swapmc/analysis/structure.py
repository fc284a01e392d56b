"""Static structure of a configuration: partial g_ab(r), partial S_ab(q) and the S(q) peak.

All functions take plain arrays (positions of shape (N, 3) in model length units, the three
edge lengths of an orthorhombic periodic box, an int species array) so that they can be used
on a :class:`swapmc.System` (``system.positions, system.box.lengths, system.species``) or on
frames read from any trajectory. Positions need not be wrapped: both quantities depend only on
positions modulo the box.

Conventions
-----------
* ``pair=None`` means all particles, whatever their species (the total g(r) and the
  number-number S(q)). ``pair=(a, b)`` selects the partial function between species indices
  ``a`` and ``b`` of ``species``.
* g_ab(r) is normalised by the ideal-gas pair count with the exact number of distinct pairs,
  N_a (N_a - 1) for a == b and N_a N_b otherwise, so that g_ab = 1 on average for independent
  uniform points even for small N.
* S_ab(q) uses the Ashcroft-Langreth normalisation
  ``S_ab(q) = Re<rho_a(q) rho_b(q)^*> / sqrt(N_a N_b)`` with
  ``rho_a(q) = sum_{j in a} exp(-i q.r_j)``; for a == b this is ``|rho_a(q)|^2 / N_a``,
  S_ab -> delta_ab at large q and S_aa = 1 for an ideal gas. (Kob and Andersen, PRE 51, 4626
  (1995), divide by the total N instead; multiply by sqrt(x_a x_b) to convert.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..box import Box
from ..kernels.neighbors import sort_by_cell

__all__ = ["radial_distribution", "structure_factor", "first_peak", "peak_window"]


# --------------------------------------------------------------------------- input checks
def _box_lengths(box_lengths) -> np.ndarray:
    """Edge lengths as a float64 (3,) array; accepts an orthorhombic :class:`Box` too."""
    if isinstance(box_lengths, Box):
        if not box_lengths.is_orthorhombic:
            raise ValueError(
                "structure functions are implemented for orthorhombic boxes only; "
                f"got tilts {box_lengths.tilts}"
            )
        box_lengths = box_lengths.lengths
    lengths = np.asarray(box_lengths, dtype=np.float64).reshape(-1)
    if lengths.shape != (3,) or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ValueError(f"box_lengths must be 3 positive finite numbers, got {box_lengths!r}")
    return lengths


def _positions(positions) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"positions must have shape (N, 3) with N >= 1, got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions contain non-finite values")
    return pos


def _select_pair(n: int, species, pair) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices of the two particle sets; the second is ``None`` when both sets are the same.

    Returns
    -------
    idx_a : ndarray of int64, shape (N_a,)
    idx_b : ndarray of int64, shape (N_b,), or None
        ``None`` means "same set as idx_a" (a == b or pair=None), which the kernels exploit by
        counting each unordered pair once.
    """
    if pair is None:
        return np.arange(n, dtype=np.int64), None
    if species is None:
        raise ValueError("pair=(a, b) needs the species array")
    spec = np.asarray(species)
    if spec.shape != (n,) or not np.issubdtype(spec.dtype, np.integer):
        raise ValueError(f"species must be an integer array of shape ({n},), got {spec.shape}")
    try:
        a, b = (int(p) for p in pair)
    except (TypeError, ValueError):
        raise ValueError(f"pair must be two species indices (a, b), got {pair!r}") from None
    idx_a = np.flatnonzero(spec == a).astype(np.int64)
    idx_b = np.flatnonzero(spec == b).astype(np.int64)
    for s, idx in ((a, idx_a), (b, idx_b)):
        if idx.size == 0:
            raise ValueError(f"no particle has species {s}")
    return idx_a, (None if a == b else idx_b)


# ------------------------------------------------------------------------------- g(r)
@njit(cache=True)
def _pair_histogram(pos_a, pos_b, same, lengths, r_max, n_bins):
    """Histogram of minimum-image distances r < r_max between set a and set b.

    Parameters
    ----------
    pos_a, pos_b : ndarray, shape (N_a, 3), (N_b, 3)
        Positions wrapped into [0, L). When ``same`` is true ``pos_b`` is ``pos_a`` and each
        unordered pair i < j is counted once.
    same : bool
    lengths : ndarray, shape (3,)
    r_max : float
        Must be <= min(lengths) / 2 (checked by the caller).
    n_bins : int

    Returns
    -------
    hist : ndarray of int64, shape (n_bins,)
    """
    hist = np.zeros(n_bins, np.int64)
    na = pos_a.shape[0]
    nb = pos_b.shape[0]
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    ilx, ily, ilz = 1.0 / lx, 1.0 / ly, 1.0 / lz
    r2max = r_max * r_max
    inv_dr = n_bins / r_max
    nc = np.empty(3, np.int64)
    for d in range(3):
        nc[d] = int(lengths[d] / r_max)
    # With fewer than 3 cells along an edge the 27-cell stencil would visit a cell twice, so
    # fall back to all pairs; that only happens when r_max > L/3, i.e. for small boxes.
    if nc[0] >= 3 and nc[1] >= 3 and nc[2] >= 3:
        # Counting sort of set b by cell: contiguous per-cell ranges are cache friendly and
        # need O(N) memory.
        ncell = nc[0] * nc[1] * nc[2]
        cell_b = np.empty(nb, np.int64)
        for j in range(nb):
            cx = min(int(pos_b[j, 0] / lx * nc[0]), nc[0] - 1)
            cy = min(int(pos_b[j, 1] / ly * nc[1]), nc[1] - 1)
            cz = min(int(pos_b[j, 2] / lz * nc[2]), nc[2] - 1)
            cell_b[j] = (cx * nc[1] + cy) * nc[2] + cz
        start, order = sort_by_cell(cell_b, ncell)
        for i in range(na):
            xi, yi, zi = pos_a[i, 0], pos_a[i, 1], pos_a[i, 2]
            cx = min(int(xi / lx * nc[0]), nc[0] - 1)
            cy = min(int(yi / ly * nc[1]), nc[1] - 1)
            cz = min(int(zi / lz * nc[2]), nc[2] - 1)
            for ox in range(-1, 2):
                ax = (cx + ox) % nc[0]
                for oy in range(-1, 2):
                    ay = (cy + oy) % nc[1]
                    for oz in range(-1, 2):
                        c = (ax * nc[1] + ay) * nc[2] + (cz + oz) % nc[2]
                        for k in range(start[c], start[c + 1]):
                            j = order[k]
                            if same and j <= i:
                                continue
                            dx = pos_b[j, 0] - xi
                            dx -= lx * np.rint(dx * ilx)
                            dy = pos_b[j, 1] - yi
                            dy -= ly * np.rint(dy * ily)
                            dz = pos_b[j, 2] - zi
                            dz -= lz * np.rint(dz * ilz)
                            r2 = dx * dx + dy * dy + dz * dz
                            if r2 < r2max:
                                hist[min(int(np.sqrt(r2) * inv_dr), n_bins - 1)] += 1
    else:
        for i in range(na):
            j0 = i + 1 if same else 0
            for j in range(j0, nb):
                dx = pos_b[j, 0] - pos_a[i, 0]
                dx -= lx * np.rint(dx * ilx)
                dy = pos_b[j, 1] - pos_a[i, 1]
                dy -= ly * np.rint(dy * ily)
                dz = pos_b[j, 2] - pos_a[i, 2]
                dz -= lz * np.rint(dz * ilz)
                r2 = dx * dx + dy * dy + dz * dz
                if r2 < r2max:
                    hist[min(int(np.sqrt(r2) * inv_dr), n_bins - 1)] += 1
    return hist


def radial_distribution(positions, box_lengths, r_max, n_bins, species=None, pair=None):
    """Partial radial distribution function g_ab(r) in an orthorhombic periodic box.

    Distances are minimum-image distances; pairs are found with a cell list (O(N) time and
    memory for r_max well below L/2, all-pairs O(N^2) time but O(N) memory otherwise).

    Parameters
    ----------
    positions : array_like, shape (N, 3)
        Particle positions (length units); wrapped or not.
    box_lengths : array_like, shape (3,), or Box
        Edge lengths of the orthorhombic box (length units). A triclinic Box is rejected.
    r_max : float
        Largest distance histogrammed (length units). Must satisfy r_max <= min(L)/2: beyond
        that the minimum-image sphere is cut by the box faces, so pairs would be missed and
        the spherical-shell normalisation would be wrong.
    n_bins : int
        Number of bins of width ``dr = r_max / n_bins`` on [0, r_max).
    species : array_like of int, shape (N,), optional
        Species index of each particle; needed when ``pair`` is given.
    pair : tuple of two int, optional
        Species (a, b) of the partial g_ab. ``None``: all particles (total g(r)).

    Returns
    -------
    r : ndarray, shape (n_bins,)
        Bin centres (length units).
    g : ndarray, shape (n_bins,)
        ``g_ab(r_k) = n_ab(k) / (P_ab * V_k / V)`` where n_ab(k) counts ordered pairs
        (i in a, j in b, i != j) in bin k, V_k is the exact volume of spherical shell k, V the
        box volume and P_ab = N_a (N_a - 1) for a == b, N_a N_b otherwise. g_ab = g_ba.

    Raises
    ------
    ValueError
        Bad shapes, r_max > min(L)/2, n_bins < 1, or a species absent from ``species``.
    """
    pos = _positions(positions)
    lengths = _box_lengths(box_lengths)
    r_max = float(r_max)
    if not (np.isfinite(r_max) and r_max > 0):
        raise ValueError(f"r_max must be positive, got {r_max}")
    half = 0.5 * float(lengths.min())
    if r_max > half * (1.0 + 1e-12):
        raise ValueError(
            f"r_max = {r_max:g} exceeds half the smallest box edge ({half:g}); the minimum-"
            "image g(r) is only defined up to L/2. Use a larger box or a smaller r_max."
        )
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    idx_a, idx_b = _select_pair(pos.shape[0], species, pair)
    same = idx_b is None

    # Wrap so that the cell index is valid; distances are unchanged (minimum image).
    wrapped = pos - lengths * np.floor(pos / lengths)
    pos_a = np.ascontiguousarray(wrapped[idx_a])
    pos_b = pos_a if same else np.ascontiguousarray(wrapped[idx_b])
    hist = _pair_histogram(pos_a, pos_b, same, lengths, r_max, n_bins)

    n_a = idx_a.size
    if same:
        if n_a < 2:
            raise ValueError("g_aa(r) needs at least two particles of the species")
        counts = 2.0 * hist  # the kernel counted each unordered pair once
        n_pairs = float(n_a) * (n_a - 1)
    else:
        counts = hist.astype(np.float64)
        n_pairs = float(n_a) * idx_b.size
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = (4.0 * np.pi / 3.0) * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = float(np.prod(lengths))
    g = counts / (n_pairs * shell / volume)
    return 0.5 * (edges[1:] + edges[:-1]), g


# ------------------------------------------------------------------------------- S(q)
@njit(cache=True)
def _density_modes(pos, lengths, nvec):
    """Collective density modes rho(q) = sum_j exp(-i q.r_j) for q = 2 pi n / L.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
    lengths : ndarray, shape (3,)
    nvec : ndarray of int64, shape (M, 3)
        Integer reciprocal-lattice vectors with n_x >= 0, sorted lexicographically so that
        consecutive vectors share (n_x, n_y) and the partial product can be reused.

    Returns
    -------
    rho : ndarray of complex128, shape (M,)
    """
    n = pos.shape[0]
    m = nvec.shape[0]
    kx = 0
    ky = 0
    kz = 0
    for k in range(m):
        kx = max(kx, nvec[k, 0])
        ky = max(ky, abs(nvec[k, 1]))
        kz = max(kz, abs(nvec[k, 2]))
    # Per-axis phase tables, exp(-i 2 pi n x / L) for every needed n: the 3D phase factorises,
    # so each mode costs one complex multiply-add per particle instead of a sin and a cos.
    # Stored (n, particle) so that the inner loop over particles is contiguous.
    ex = np.empty((kx + 1, n), np.complex128)
    ey = np.empty((2 * ky + 1, n), np.complex128)
    ez = np.empty((2 * kz + 1, n), np.complex128)
    for j in range(n):
        px = -2.0 * np.pi * pos[j, 0] / lengths[0]
        py = -2.0 * np.pi * pos[j, 1] / lengths[1]
        pz = -2.0 * np.pi * pos[j, 2] / lengths[2]
        for a in range(kx + 1):
            ex[a, j] = complex(np.cos(a * px), np.sin(a * px))
        for a in range(-ky, ky + 1):
            ey[a + ky, j] = complex(np.cos(a * py), np.sin(a * py))
        for a in range(-kz, kz + 1):
            ez[a + kz, j] = complex(np.cos(a * pz), np.sin(a * pz))
    rho = np.empty(m, np.complex128)
    exy = np.empty(n, np.complex128)
    last_x = -1
    last_y = 0
    for k in range(m):
        nx, ny, nz = nvec[k, 0], nvec[k, 1], nvec[k, 2]
        if nx != last_x or ny != last_y:
            for j in range(n):
                exy[j] = ex[nx, j] * ey[ny + ky, j]
            last_x = nx
            last_y = ny
        acc = 0.0 + 0.0j
        for j in range(n):
            acc += exy[j] * ez[nz + kz, j]
        rho[k] = acc
    return rho


def _reciprocal_vectors(lengths: np.ndarray, q_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Half of the reciprocal lattice with 0 < |q| <= q_max.

    Only one of each pair (n, -n) is kept: rho(-q) = rho(q)^* for real positions, so both
    give the same S and keeping one halves the work without changing any average.

    Returns
    -------
    nvec : ndarray of int64, shape (M, 3), lexicographically sorted, n_x >= 0
    qmag : ndarray, shape (M,)
        |q| = 2 pi |n / L| (inverse length units).
    """
    nmax = np.floor(q_max * lengths / (2.0 * np.pi)).astype(np.int64)
    nx = np.arange(0, nmax[0] + 1)
    ny = np.arange(-nmax[1], nmax[1] + 1)
    nz = np.arange(-nmax[2], nmax[2] + 1)
    grid = np.stack(np.meshgrid(nx, ny, nz, indexing="ij"), axis=-1).reshape(-1, 3)
    half = (grid[:, 0] > 0) | (
        (grid[:, 0] == 0) & ((grid[:, 1] > 0) | ((grid[:, 1] == 0) & (grid[:, 2] > 0)))
    )
    grid = grid[half]
    qmag = 2.0 * np.pi * np.sqrt(np.sum((grid / lengths) ** 2, axis=1))
    keep = qmag <= q_max * (1.0 + 1e-12)
    return np.ascontiguousarray(grid[keep]), qmag[keep]


def structure_factor(
    positions, box_lengths, q_max, species=None, pair=None, n_bins=None, return_counts=False
):
    """Partial static structure factor S_ab(q) on the reciprocal lattice of the box.

    Every wavevector ``q = 2 pi (n_x/L_x, n_y/L_y, n_z/L_z)`` with integer n and
    ``0 < |q| <= q_max`` is evaluated exactly (these are the only wavevectors compatible with
    periodic boundary conditions), then S is averaged over the vectors falling in each |q|
    bin. Cost O(N M) time with M ~ (q_max L / 2 pi)^3 / 3 vectors, O(N (q_max L / 2 pi))
    memory; N = 500, q_max = 12 takes a few milliseconds once compiled.

    Parameters
    ----------
    positions : array_like, shape (N, 3)
        Particle positions (length units); wrapped or not.
    box_lengths : array_like, shape (3,), or Box
        Edge lengths of the orthorhombic box (length units).
    q_max : float
        Largest wavenumber (inverse length units). Must be at least 2 pi / max(L).
    species : array_like of int, shape (N,), optional
        Species index of each particle; needed when ``pair`` is given.
    pair : tuple of two int, optional
        Species (a, b). ``None``: all particles, ``S(q) = |rho(q)|^2 / N``.
    n_bins : int, optional
        ``None`` (default): no binning, one point per distinct |q| (a reciprocal-lattice
        shell, e.g. |n|^2 = 1, 2, 3, ... for a cube); this keeps Bragg peaks sharp and
        avoids an arbitrary bin width. An integer: uniform bins of width q_max / n_bins on
        (0, q_max]; empty bins are dropped.
    return_counts : bool
        Also return the number of wavevectors averaged in each bin.

    Returns
    -------
    q : ndarray, shape (K,)
        Mean |q| of the vectors in each bin/shell (inverse length units), increasing.
    S : ndarray, shape (K,)
        ``S_ab = Re[rho_a(q) rho_b(q)^*] / sqrt(N_a N_b)`` averaged over the bin, with
        ``rho_a(q) = sum_{j in a} exp(-i q.r_j)``. For a == b (or pair=None) this is
        ``|rho_a(q)|^2 / N_a``: N_a at a Bragg peak of a perfect crystal, 1 on average for an
        ideal gas. For a != b it tends to 0 at large q and can be negative.
    counts : ndarray of int64, shape (K,)
        Only with ``return_counts``: wavevectors per bin, counting q and -q once (they give
        identical values). For a liquid the values at different q are nearly uncorrelated,
        so the standard error of ``S`` is roughly ``S / sqrt(counts)``.

    Raises
    ------
    ValueError
        Bad shapes, q_max below the smallest lattice wavenumber, bad n_bins, or a species
        absent from ``species``.
    """
    pos = _positions(positions)
    lengths = _box_lengths(box_lengths)
    q_max = float(q_max)
    q_min = 2.0 * np.pi / float(lengths.max())
    if not (np.isfinite(q_max) and q_max >= q_min):
        raise ValueError(
            f"q_max = {q_max:g} is below the smallest reciprocal-lattice wavenumber "
            f"2 pi / L_max = {q_min:g}"
        )
    if n_bins is not None and (int(n_bins) != n_bins or n_bins < 1):
        raise ValueError(f"n_bins must be None or a positive integer, got {n_bins!r}")
    idx_a, idx_b = _select_pair(pos.shape[0], species, pair)

    nvec, qmag = _reciprocal_vectors(lengths, q_max)
    rho_a = _density_modes(np.ascontiguousarray(pos[idx_a]), lengths, nvec)
    if idx_b is None:
        s_vec = (rho_a.real**2 + rho_a.imag**2) / idx_a.size
    else:
        rho_b = _density_modes(np.ascontiguousarray(pos[idx_b]), lengths, nvec)
        s_vec = (rho_a * np.conj(rho_b)).real / np.sqrt(float(idx_a.size) * idx_b.size)

    if n_bins is None:
        # Group equal |q| by gaps in the sorted list rather than by rounding, so that vectors
        # of one shell that differ in the last bits never straddle a rounding boundary.
        order = np.argsort(qmag, kind="stable")
        qs = qmag[order]
        new_shell = np.empty(qs.size, dtype=bool)
        new_shell[0] = True
        new_shell[1:] = np.diff(qs) > 1e-9 * qs[1:]
        label = np.empty(qs.size, dtype=np.int64)
        label[order] = np.cumsum(new_shell) - 1
    else:
        n_bins = int(n_bins)
        label = np.minimum((qmag * (n_bins / q_max)).astype(np.int64), n_bins - 1)
    count = np.bincount(label)
    used = count > 0
    q_out = np.bincount(label, weights=qmag)[used] / count[used]
    s_out = np.bincount(label, weights=s_vec)[used] / count[used]
    if return_counts:
        return q_out, s_out, count[used]
    return q_out, s_out


# Kob–Andersen's mean spacing at rho = 1.2 (sigma): the LJ-unit window (4, 10) and q_max = 12
# bracket its first S(q) peak (7.25); other models get the same window in units of their own
# mean spacing.
_KA_SPACING = 1.2 ** (-1.0 / 3.0)


def peak_window(number_density: float) -> tuple[float, float, float]:
    """Where to look for the first peak of S(q) at a given number density.

    The first peak sits near q a = 6.8-7.7 for simple liquids and glasses, with
    a = rho^(-1/3) the mean spacing (KA at rho = 1.2: q = 7.25 sigma^-1; Cu-Zr at
    0.058 Å^-3: q ≈ 2.9 Å^-1). The window is KA's (4, 10) sigma^-1, with q_max = 12,
    rescaled by the spacing, so it works in LJ and metal units alike.

    Parameters
    ----------
    number_density : float
        N / V (inverse length cubed).

    Returns
    -------
    q_lo, q_hi, q_max : float
        Search window for :func:`first_peak` and the largest q to compute (inverse length).
    """
    if not number_density > 0:
        raise ValueError(f"number density must be positive, got {number_density}")
    scale = _KA_SPACING / number_density ** (-1.0 / 3.0)
    return 4.0 * scale, 10.0 * scale, 12.0 * scale


def first_peak(q, S, q_range=(4.0, 10.0)) -> float:
    """Position of the main peak of S(q), refined by a parabola through the top three points.

    Parameters
    ----------
    q : array_like, shape (K,)
        Strictly increasing wavenumbers (inverse length units), e.g. from
        :func:`structure_factor`; the spacing may be non-uniform.
    S : array_like, shape (K,)
        Structure factor at ``q``.
    q_range : tuple of float
        Search window (q_lo, q_hi), inclusive. The default brackets the first peak of
        Lennard-Jones liquids in LJ units (about 7.1-7.3 for Kob-Andersen at rho = 1.2);
        :func:`peak_window` gives it for any density and unit system.

    Returns
    -------
    float
        Vertex of the parabola through the highest point in the window and its two
        neighbours in the full arrays (which lies between those neighbours). When the highest
        point is the first or last element of ``q`` the unrefined ``q`` of that point is
        returned, as it is when the three points are collinear.

    Raises
    ------
    ValueError
        Mismatched or non-1-D inputs, non-finite values, non-increasing q, or no point in
        ``q_range``.
    """
    q = np.asarray(q, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    if q.ndim != 1 or q.shape != S.shape:
        raise ValueError(f"q and S must be 1-D of equal length, got {q.shape} and {S.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(S))):
        raise ValueError("q and S must be finite")
    if np.any(np.diff(q) <= 0):
        raise ValueError("q must be strictly increasing")
    lo, hi = (float(v) for v in q_range)
    inside = np.flatnonzero((q >= lo) & (q <= hi))
    if inside.size == 0:
        raise ValueError(f"no q point in q_range = ({lo:g}, {hi:g})")
    k = int(inside[np.argmax(S[inside])])
    if k == 0 or k == q.size - 1:
        return float(q[k])
    x0, x1, x2 = q[k - 1], q[k], q[k + 1]
    y0, y1, y2 = S[k - 1], S[k], S[k + 1]
    # Lagrange-form vertex of the interpolating parabola, valid for non-uniform spacing.
    d0 = (y1 - y0) / (x1 - x0)
    d1 = (y2 - y1) / (x2 - x1)
    curv = (d1 - d0) / (x2 - x0)
    if curv >= 0.0:  # collinear (or the neighbour ties the maximum): nothing to refine
        return float(x1)
    vertex = 0.5 * (x0 + x1) - d0 / (2.0 * curv)
    return float(np.clip(vertex, x0, x2))
