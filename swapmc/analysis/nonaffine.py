"""Non-affine displacements, Falk–Langer D²_min and shear-band localisation.

Between a reference state (positions r0, cell h0) and a deformed state (r, h) the cell
carries the homogeneous deformation gradient F (h = F h0 when no cell flip intervened;
otherwise the caller passes F). Measures, all per particle:

**Non-affine displacement** u_i = r_i - F r0_i, taken as the shortest vector modulo the
lattice of the deformed cell (fractional coordinates rounded). It is exact whenever the true
non-affine displacement is shorter than half of every perpendicular width of the cell, so
wrapped and unwrapped positions give the same result.

**D²_min** (Falk & Langer, PRE 57, 7192 (1998)). Neighbours j of i are those within
``cutoff`` in the *reference* state, with bond vectors d0_ij (minimum image in h0); their
bonds in the deformed state are d_ij = F d0_ij + u_j - u_i (so no minimum image is taken in
a strongly sheared cell). The best local affine map J_i minimises
sum_j |d_ij - J_i d0_ij|^2, giving J_i = X_i Y_i^-1 with X_i = sum_j d_ij d0_ij^T and
Y_i = sum_j d0_ij d0_ij^T, and

    D²_min(i) = min_J sum_j |d_ij - J d0_ij|^2        (length^2),

the *sum* over neighbours (Falk & Langer's definition and OVITO's "Atomic strain"
modifier), not a per-neighbour mean. A uniform affine deformation gives D²_min = 0 exactly
(up to round-off). Particles with fewer than three non-coplanar neighbours have no J
(Y singular) and get NaN.

Default cut-off (:data:`DEFAULT_D2MIN_CUTOFF`): the first coordination shell, 1.5 sigma_AA
in LJ units (the first minimum of g_AA(r) of Kob–Andersen glasses lies at ~1.45 sigma) and
3.7 Å in metal units (first minimum of the total g(r) of Cu–Zr glasses, 3.6–3.8 Å).

**Localisation.** :func:`localization` bins a non-negative per-particle field (D²_min or
|u|) in slabs along one cell direction (for xy simple shear the gradient direction y, slabs
parallel to the shear plane), periodic. From the profile p_b (b = 1..n bins) it gives

* the participation ratio PR = (sum_b p_b)^2 / (n sum_b p_b^2), 1 for a flat profile and
  ~w/L for a band of width w in a cell of width L;
* the **localisation index** I = (1 - PR) / (1 - 1/n), 0 for a flat profile and 1 when the
  field sits in one bin (a band w/L = 10 % wide gives I ~ 0.9). A homogeneous field sampled
  by a finite number of particles has bin-to-bin noise of relative size c (coefficient of
  variation of the bin means) and gives I ~ c^2 / (1 + c^2): with the default bins
  (~N^(2/3) particles each) that is a few hundredths for D²_min;
* the band: centre and full width at half maximum of the peak of the profile, periodic
  (bins at or above min + (max - min) / 2 contiguous with the highest bin, edges linearly
  interpolated; centre = circular centroid of the profile above that level over those bins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..kernels.md_neighbors import IMAGE_BITS, IMAGE_MASK, build_half_list, wrap_positions

#: Default D²_min neighbour cut-off per unit system (length units): first coordination shell.
DEFAULT_D2MIN_CUTOFF = {"lj": 1.5, "metal": 3.7}

__all__ = [
    "DEFAULT_D2MIN_CUTOFF",
    "Localization",
    "d2min",
    "affine_map",
    "localization",
    "neighbour_bonds",
    "nonaffine_displacement",
]


def _cell(h) -> np.ndarray:
    h = np.array(h, dtype=np.float64)
    if h.shape != (3, 3):
        raise ValueError(f"cell matrix must have shape (3, 3), got {h.shape}")
    if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) <= 0.0:
        raise ValueError(f"cell matrix must be finite and non-singular, got {h.tolist()}")
    return h


def _positions(x, n=None, what="positions") -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or (n is not None and x.shape[0] != n):
        want = "(N, 3)" if n is None else f"({n}, 3)"
        raise ValueError(f"{what} must have shape {want}, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain non-finite values")
    return x


def _widths(h) -> np.ndarray:
    """Perpendicular widths of the cell, shape (3,): V / |area of the opposite face|."""
    a, b, c = h[:, 0], h[:, 1], h[:, 2]
    vol = abs(np.linalg.det(h))
    return np.array([vol / np.linalg.norm(np.cross(b, c)), vol / np.linalg.norm(np.cross(c, a)),
                     vol / np.linalg.norm(np.cross(a, b))])


def affine_map(ref_cell, cell) -> np.ndarray:
    """F = h h0^-1, the homogeneous map from the reference cell to the deformed one.

    Valid only when the deformed cell is the reference cell carried by the deformation; a
    cell reduced in between (LAMMPS "flip", xy -> xy - lx) spans the same lattice with other
    vectors, and F must then be taken from the deformation history instead.

    Parameters
    ----------
    ref_cell, cell : array_like, shape (3, 3)
        Cell matrices (edge vectors as columns; length units).

    Returns
    -------
    ndarray, shape (3, 3)
        Dimensionless.
    """
    return _cell(cell) @ np.linalg.inv(_cell(ref_cell))


def nonaffine_displacement(ref_positions, positions, ref_cell, cell,
                           deformation=None) -> np.ndarray:
    """Per-particle displacement left after removing the affine map of the cell.

    Parameters
    ----------
    ref_positions, positions : array_like, shape (N, 3)
        Positions in the reference and deformed states (length units), wrapped or unwrapped.
    ref_cell, cell : array_like, shape (3, 3)
        Reference and deformed cell matrices (columns are the edge vectors).
    deformation : array_like, shape (3, 3), optional
        Deformation gradient F; default ``cell @ inv(ref_cell)`` (see
        :func:`affine_map`).

    Returns
    -------
    ndarray, shape (N, 3)
        u_i = r_i - F r0_i reduced to its shortest lattice representative in ``cell``
        (length units); exact when |u_i| is below half of each perpendicular width.
    """
    r0 = _positions(ref_positions, what="ref_positions")
    r = _positions(positions, r0.shape[0])
    h = _cell(cell)
    f = affine_map(ref_cell, h) if deformation is None else np.asarray(
        deformation, dtype=np.float64)
    u = r - r0 @ f.T
    s = np.linalg.solve(h, u.T).T
    s -= np.rint(s)
    return s @ h.T


def neighbour_bonds(positions, cell, cutoff: float):
    """Every ordered neighbour pair closer than ``cutoff``, with its bond vector.

    Parameters
    ----------
    positions : array_like, shape (N, 3)
        Positions (length units), wrapped or not.
    cell : array_like, shape (3, 3)
        Cell matrix.
    cutoff : float
        Neighbour distance (length units); must not exceed the smallest perpendicular
        width of the cell (the search visits only the 27 nearest images).

    Returns
    -------
    row_start : ndarray, shape (N + 1,), int64
        Neighbours of i are ``partner[row_start[i]:row_start[i + 1]]``.
    partner : ndarray, shape (M,), int64
        Neighbour indices (each unordered pair appears twice, once from each side).
    bond : ndarray, shape (M, 3)
        d_ij = r_j - r_i as the shortest image (length units).
    """
    h = _cell(cell)
    x = _positions(positions).copy()
    cutoff = float(cutoff)
    widths = _widths(h)
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"neighbour cut-off must be a positive number, got {cutoff}")
    if cutoff > widths.min():
        raise ValueError(f"neighbour cut-off {cutoff:.6g} exceeds the smallest perpendicular "
                         f"width {widths.min():.6g} of the cell")
    hinv = np.linalg.inv(h)
    wrap_positions(x, h, hinv, np.zeros(x.shape, np.int64))
    n = x.shape[0]
    # Bins as the MD list chooses them (fractional width >= cutoff / (reach w_k)).
    nb = np.floor(2.0 * widths / cutoff).astype(np.int64)
    reach = 2
    if not np.all(nb >= 5):
        nb, reach = np.floor(widths / cutoff).astype(np.int64), 1
        if not np.all(nb >= 3):
            nb = np.zeros(3, np.int64)
    dens = n / abs(np.linalg.det(h))
    packed = np.empty(int(1.2 * n * 2.1 * cutoff**3 * dens) + 64, np.int32)
    rows, row_start, packed = build_half_list(
        x, np.zeros(n, np.int32), h, hinv, np.array([[cutoff * cutoff]]), nb, reach, packed)
    counts = np.diff(row_start)
    i = np.repeat(np.asarray(rows, np.int64), counts)
    p = packed[: row_start[-1]].astype(np.int64)
    j = p >> IMAGE_BITS
    code = p & IMAGE_MASK
    image = np.stack([code // 9 - 1, (code // 3) % 3 - 1, code % 3 - 1], axis=1)
    d = x[j] - x[i] + image @ h.T
    # Full list: each half-list pair from both ends, sorted by the first particle.
    first = np.concatenate([i, j])
    second = np.concatenate([j, i])
    bonds = np.concatenate([d, -d])
    order = np.argsort(first, kind="stable")
    start = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(first, minlength=n), out=start[1:])
    return start, second[order], bonds[order]


@njit(cache=True)
def _d2min_kernel(row_start, d0, d, out, jac):
    """D²_min and the best local affine map J of every particle (see the module docstring)."""
    n = row_start.shape[0] - 1
    x = np.empty((3, 3))
    y = np.empty((3, 3))
    for i in range(n):
        x[:] = 0.0
        y[:] = 0.0
        for k in range(row_start[i], row_start[i + 1]):
            for a in range(3):
                for b in range(3):
                    x[a, b] += d[k, a] * d0[k, b]
                    y[a, b] += d0[k, a] * d0[k, b]
        # A configuration with < 3 non-coplanar neighbours leaves Y singular: no J.
        scale = y[0, 0] + y[1, 1] + y[2, 2]
        if row_start[i + 1] - row_start[i] < 3 or abs(np.linalg.det(y)) <= 1e-12 * scale**3:
            out[i] = np.nan
            jac[i] = np.nan
            continue
        j = x @ np.linalg.inv(y)
        jac[i] = j
        # The residual summed directly (not sum|d|^2 - tr(X Y^-1 X^T)): no cancellation,
        # so an affine field gives D²_min at round-off level, not at 1e-16 sum|d|^2.
        s = 0.0
        for k in range(row_start[i], row_start[i + 1]):
            for a in range(3):
                r = d[k, a] - (j[a, 0] * d0[k, 0] + j[a, 1] * d0[k, 1] + j[a, 2] * d0[k, 2])
                s += r * r
        out[i] = s


def d2min(ref_positions, positions, ref_cell, cell, cutoff: float, deformation=None,
          return_jacobian: bool = False):
    """Falk–Langer D²_min of every particle between a reference and a deformed state.

    Parameters
    ----------
    ref_positions, positions : array_like, shape (N, 3)
        Reference and deformed positions (length units), wrapped or unwrapped.
    ref_cell, cell : array_like, shape (3, 3)
        Cell matrices of the two states.
    cutoff : float
        Neighbour distance in the reference state (length units); see
        :data:`DEFAULT_D2MIN_CUTOFF`.
    deformation : array_like, shape (3, 3), optional
        Deformation gradient F between the states; default ``cell @ inv(ref_cell)``.
    return_jacobian : bool
        Also return the best local affine maps J_i.

    Returns
    -------
    d2 : ndarray, shape (N,)
        D²_min (length^2): the sum over neighbours of the squared residual; NaN for a
        particle with fewer than three non-coplanar neighbours.
    jacobian : ndarray, shape (N, 3, 3)
        Only with ``return_jacobian``: J_i (dimensionless; F for an affine field).
    """
    r0 = _positions(ref_positions, what="ref_positions")
    h0 = _cell(ref_cell)
    h = _cell(cell)
    f = affine_map(h0, h) if deformation is None else np.asarray(
        deformation, dtype=np.float64)
    u = nonaffine_displacement(r0, positions, h0, h, deformation=f)
    start, partner, d0 = neighbour_bonds(r0, h0, cutoff)
    owner = np.repeat(np.arange(r0.shape[0]), np.diff(start))
    d = d0 @ f.T + (u[partner] - u[owner])
    out = np.empty(r0.shape[0])
    jac = np.empty((r0.shape[0], 3, 3))
    _d2min_kernel(start, np.ascontiguousarray(d0), np.ascontiguousarray(d), out, jac)
    return (out, jac) if return_jacobian else out


# ----------------------------------------------------------------------------- localisation
@dataclass
class Localization:
    """A localisation profile and the band found in it (see the module docstring).

    Attributes
    ----------
    axis : int
        Cell direction binned (0, 1, 2 for a, b, c; 1 = y for xy shear).
    centres : ndarray, shape (n,)
        Bin centres as distances along the normal of the binned planes (length units).
    profile : ndarray, shape (n,)
        Mean of the field over the particles of each bin (field units; NaN for an empty bin).
    counts : ndarray of int, shape (n,)
        Particles per bin.
    length : float
        Perpendicular width of the cell along ``axis`` (length units): the period.
    participation : float
        PR in [1/n, 1].
    index : float
        Localisation index (1 - PR) / (1 - 1/n) in [0, 1].
    position : float
        Band centre in [0, length) (length units).
    width : float
        Full width at half maximum of the band (length units).
    contrast : float
        Peak over mean of the profile (dimensionless).
    """

    axis: int
    centres: np.ndarray
    profile: np.ndarray
    counts: np.ndarray
    length: float
    participation: float
    index: float
    position: float
    width: float
    contrast: float

    def as_dict(self) -> dict:
        """Scalars and the profile as plain lists."""
        return {"axis": self.axis, "length": self.length, "participation": self.participation,
                "index": self.index, "position": self.position, "width": self.width,
                "contrast": self.contrast, "centres": self.centres.tolist(),
                "profile": self.profile.tolist(), "counts": self.counts.tolist()}


def localization(values, positions, cell, axis: int = 1, n_bins: int | None = None
                 ) -> Localization:
    """Profile of a non-negative per-particle field across slabs, and its band.

    Parameters
    ----------
    values : array_like, shape (N,)
        Field >= 0 (e.g. D²_min in length^2 or |u| in length); NaN entries are ignored.
    positions : array_like, shape (N, 3)
        Positions (length units), wrapped or not.
    cell : array_like, shape (3, 3)
        Cell matrix; the slabs are planes of constant fractional coordinate ``axis``
        (spanned by the two other cell vectors: for xy shear of an orthorhombic reference
        and ``axis=1``, planes normal to y).
    axis : {0, 1, 2}
    n_bins : int, optional
        Number of slabs; default round(N^(1/3)) (slabs about one mean particle spacing
        thick, ~N^(2/3) particles each), at least 4.

    Returns
    -------
    Localization
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    x = _positions(positions, v.shape[0])
    h = _cell(cell)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    ok = np.isfinite(v)
    if np.any(v[ok] < 0):
        raise ValueError("the localisation field must be non-negative")
    n = max(4, round(v.shape[0] ** (1.0 / 3.0))) if n_bins is None else int(n_bins)
    if n < 2:
        raise ValueError(f"need at least 2 bins, got {n}")
    s = np.linalg.solve(h, x.T).T[:, axis]
    s -= np.floor(s)
    b = np.minimum((s * n).astype(np.int64), n - 1)
    counts = np.bincount(b[ok], minlength=n)
    sums = np.bincount(b[ok], weights=v[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = sums / counts
    length = float(_widths(h)[axis])
    centres = (np.arange(n) + 0.5) * length / n
    p = np.where(counts > 0, prof, 0.0)
    total = p.sum()
    if total <= 0:
        return Localization(axis, centres, prof, counts, length, 1.0, 0.0, math.nan,
                            math.nan, math.nan)
    pr = total**2 / (n * float((p * p).sum()))
    index = (1.0 - pr) / (1.0 - 1.0 / n)
    position, width = _band(p, length)
    return Localization(axis, centres, prof, counts, length, float(pr),
                        float(min(max(index, 0.0), 1.0)), position, width,
                        float(p.max() / p.mean()))


def _band(p, length):
    """Centre and FWHM of the highest peak of a periodic profile (see module docstring)."""
    n = p.shape[0]
    dx = length / n
    top = int(np.argmax(p))
    lo_v, hi_v = float(p.min()), float(p[top])
    if hi_v <= lo_v:
        return math.nan, length
    level = lo_v + 0.5 * (hi_v - lo_v)
    # Walk out from the peak while the profile stays at or above the level.
    right = 0
    while right < n - 1 and p[(top + right + 1) % n] >= level:
        right += 1
    left = 0
    while left < n - 1 - right and p[(top - left - 1) % n] >= level:
        left += 1
    if left + right + 1 >= n:
        return math.nan, length
    # Half-maximum crossings interpolated between the last bin above and the first below.
    i_in, i_out = (top + right) % n, (top + right + 1) % n
    fr = (p[i_in] - level) / (p[i_in] - p[i_out])
    i_in, i_out = (top - left) % n, (top - left - 1) % n
    fl = (p[i_in] - level) / (p[i_in] - p[i_out])
    width = (left + right + fl + fr) * dx
    k = np.arange(top - left, top + right + 1)
    w = p[k % n] - level
    angle = 2.0 * np.pi * (k + 0.5) / n
    centre = math.atan2(float((w * np.sin(angle)).sum()), float((w * np.cos(angle)).sum()))
    return float((centre / (2.0 * np.pi) % 1.0) * length), float(width)
