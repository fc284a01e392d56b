"""Verlet list for MD that stays valid under particle motion *and* cell deformation.

The list (``kernels/md_neighbors.py``) stores each pair with the lattice image of its partner,
so pair vectors follow any change of the cell matrix h without a minimum-image search.

Rebuild rule (why it is exact). The list holds every (pair, image) with |d_0| < r_c + skin at
the build (cell h_0, positions x_0 wrapped). At a later time, with a = h_0 h^-1 and
u_i = a x_i - x_0,i (the displacement measured in the build-time cell, i.e. in fractional
coordinates: an affine deformation of the cell moves nothing), the same pair has
d_0 = a d - (u_j - u_i), so |d_0| <= |d| (1 + ||1 - a||) + 2 max|u| (any norm bounding the
spectral norm; the Frobenius norm is used). Every pair now closer than r_c is therefore listed
while

    2 max_i |u_i| + r_c ||1 - a|| < skin,

and the list is rebuilt as soon as this fails. Under a pure affine deformation (``fix deform``
with ``remap x``) only the second term grows: a 1 % shear uses r_c x 0.01 of the skin, so an
oscillatory strain does not trigger rebuilds by itself. Positions are wrapped into the cell
only at a build (image counters updated), never in between.

Spatial sort. By default the list renumbers the particles at every build in the order of its
bins (LAMMPS's ``atom_modify sort``, done here at each rebuild because the bin order is a
by-product of the build): the force kernels then run on copies of the positions gathered in
that order (:meth:`VerletList.gather`) and their forces are scattered back, so neighbours in
space are neighbours in memory (KA liquid, N = 8000: ~4 % faster MD steps than with randomly
numbered particles; N = 64000: ~30 %). Callers keep their arrays in their own particle order.
The rows of the list are in bin order with or without the sort, so forces and virial are the
same to the bit; only sums over particles in numbering order (the EAM embedding energy)
differ, by round-off.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.md_neighbors import (
    build_half_list,
    build_sorted_half_list,
    gather_rows,
    image_shifts,
    max_displacement_sq,
    scatter_rows,
    wrap_positions,
)

# LAMMPS accepts tilts up to half the corresponding edge (plus a small tolerance).
_TILT_TOLERANCE = 1e-9


class CellError(ValueError):
    """The cell cannot be used with this force field (too small or too skewed)."""


def perpendicular_widths(h) -> np.ndarray:
    """Distances between opposite faces of the cell, shape (3,), length units.

    Width k is V / |area of the face spanned by the two other edge vectors|; written out
    for the upper-triangular h (np.cross on 3-vectors cost ~30 µs per MD step).
    """
    lx, ly, lz = float(h[0][0]), float(h[1][1]), float(h[2][2])
    xy, xz, yz = float(h[0][1]), float(h[0][2]), float(h[1][2])
    # |b x c| with b = (xy, ly, 0), c = (xz, yz, lz); |c x a| = lx sqrt(lz^2 + yz^2).
    bc = math.sqrt((ly * lz) ** 2 + (xy * lz) ** 2 + (xy * yz - ly * xz) ** 2)
    return np.array([lx * ly * lz / bc, ly * lz / math.sqrt(lz * lz + yz * yz), lz])


def check_cell(h, cutoff: float, skin: float) -> None:
    """Reject cells outside LAMMPS's tilt limits or too small for the cut-off.

    Raises
    ------
    CellError
        When |xy| > lx/2, |xz| > lx/2 or |yz| > ly/2, or when a perpendicular width is below
        2 r_c (a particle would meet two images of a neighbour) or below r_c + skin.
    """
    h = np.asarray(h, dtype=np.float64)
    lx, ly = h[0, 0], h[1, 1]
    for name, tilt, edge, edge_name in (
        ("xy", h[0, 1], lx, "lx"), ("xz", h[0, 2], lx, "lx"), ("yz", h[1, 2], ly, "ly"),
    ):
        if abs(tilt) > 0.5 * edge * (1.0 + _TILT_TOLERANCE):
            raise CellError(
                f"tilt {name} = {tilt:.6g} exceeds half of {edge_name} = {edge:.6g} "
                f"(LAMMPS limit |{name}| <= {edge_name}/2); use an equivalent less skewed cell"
            )
    widths = perpendicular_widths(h)
    need = max(2.0 * cutoff, cutoff + skin)
    if np.any(widths < need):
        raise CellError(
            f"cell too small for the cut-off: perpendicular widths {np.round(widths, 6)} must "
            f"all be at least {need:.6g} (2 r_c with r_c = {cutoff:.6g}, and r_c + skin); "
            "use more particles"
        )


class VerletList:
    """Half Verlet list with explicit images and the deformation-aware rebuild rule.

    Parameters
    ----------
    cutoff : float or ndarray, shape (S, S)
        Interaction cut-off r_c (length units), one for all pairs or one per species pair.
    skin : float
        Verlet skin (length units); the list radius of a pair is r_c,ab + skin.
    sort : bool
        Renumber the particles spatially at each build (see the module docstring); False
        keeps the caller's numbering in the list (``perm`` is then None).

    Attributes
    ----------
    perm : ndarray, shape (N,), int64, or None
        With ``sort``: the caller's index of each renumbered particle (the list's indices
        i, j and ``row_atom`` are renumbered ones).
    species : ndarray, shape (N,), int32, or None
        Species at the build, in the list's numbering (the force kernels' argument).
    row_atom, row_start, packed
        The half list (see :func:`~swapmc.kernels.md_neighbors.build_half_list`).
    """

    def __init__(self, cutoff, skin: float, sort: bool = True):
        if skin <= 0:
            raise ValueError(f"Verlet skin must be positive, got {skin}")
        cut = np.atleast_2d(np.asarray(cutoff, dtype=np.float64))
        self.cutoff = float(cut.max())
        self.skin = float(skin)
        self.r_list = self.cutoff + self.skin
        self._rl2_pair = np.ascontiguousarray((cut + self.skin) ** 2)
        self.builds = 0
        self._packed = np.empty(0, np.int32)
        self.row_atom = self.row_start = None
        self.sort = bool(sort)
        self.perm = None
        self.species = None
        # Work arrays in the list's numbering (positions, forces), reused between calls.
        self._pos = self._forces = None
        self._ref = None
        self._h0 = None

    def _bins(self, h):
        """Bins per cell vector and stencil reach (zeros: all-pairs search)."""
        widths = perpendicular_widths(h)
        nb = np.floor(2.0 * widths / self.r_list).astype(np.int64)
        if np.all(nb >= 5):
            return nb, 2
        nb = np.floor(widths / self.r_list).astype(np.int64)
        if np.all(nb >= 3):
            return nb, 1
        return np.zeros(3, np.int64), 1

    def build(self, positions, h, images, species=None) -> None:
        """Wrap ``positions`` into the cell in place (updating ``images``) and build.

        Parameters
        ----------
        positions : ndarray, shape (N, 3), float64, C-contiguous
        h : ndarray, shape (3, 3)
            Cell matrix (edge vectors as columns).
        images : ndarray, shape (N, 3), int64
        species : ndarray, shape (N,), int32, optional
            Needed when the cut-off is per species pair.
        """
        h = np.ascontiguousarray(h, dtype=np.float64)
        check_cell(h, self.cutoff, self.skin)
        hinv = np.linalg.inv(h)
        wrap_positions(positions, h, hinv, images)
        if self._packed.shape[0] == 0:
            # Start near the expected size: N * (4/3) pi r_list^3 density / 2 pairs.
            n = positions.shape[0]
            dens = n / abs(np.linalg.det(h))
            self._packed = np.empty(int(1.2 * n * 2.1 * self.r_list**3 * dens) + 64, np.int32)
        if species is None:
            if self._rl2_pair.shape[0] > 1:
                raise ValueError("a list with per-pair cut-offs needs the species")
            species = np.zeros(positions.shape[0], np.int32)
        nb, reach = self._bins(h)
        species = np.ascontiguousarray(species, dtype=np.int32)
        if self.sort:
            self.perm, self.row_start, self._packed = build_sorted_half_list(
                positions, species, h, hinv, self._rl2_pair, nb, reach, self._packed
            )
            n = positions.shape[0]
            if self.row_atom is None or self.row_atom.shape[0] != n:
                self.row_atom = np.arange(n, dtype=np.int64)
                self._pos = np.empty((n, 3))
                self._forces = np.empty((n, 3))
            self.species = species[self.perm]
        else:
            self.row_atom, self.row_start, self._packed = build_half_list(
                positions, species, h, hinv, self._rl2_pair, nb, reach, self._packed
            )
            self.species = species.copy()
        self._ref = positions.copy()
        self._h0 = h.copy()
        self.builds += 1

    @property
    def packed(self) -> np.ndarray:
        """Packed pair entries ``j << 5 | image code``, shape (n_pairs,)."""
        return self._packed[: self.row_start[-1]]

    @property
    def n_pairs(self) -> int:
        return int(self.row_start[-1])

    def needs_rebuild(self, positions, h) -> bool:
        """True when a pair closer than r_c might be missing (see the module docstring)."""
        if self._ref is None or positions.shape != self._ref.shape:
            return True
        if np.array_equal(h, self._h0):
            a = np.eye(3)
            box_term = 0.0
        else:
            a = self._h0 @ np.linalg.inv(h)
            # Frobenius norm: a cheap upper bound of the spectral norm in the rule.
            box_term = self.cutoff * math.sqrt(((np.eye(3) - a) ** 2).sum())
        dmax = np.sqrt(max_displacement_sq(positions, self._ref, a))
        return 2.0 * dmax + box_term >= self.skin

    def gather(self, positions) -> np.ndarray:
        """Positions in the list's numbering, shape (N, 3) (length units).

        With ``sort`` a reused work array (overwritten by the next call) holding
        ``positions[perm]``; otherwise ``positions`` itself.
        """
        if self.perm is None:
            return positions
        gather_rows(positions, self.perm, self._pos)
        return self._pos

    def force_buffer(self, forces) -> np.ndarray:
        """Where a kernel writes forces, shape (N, 3): a work array in the list's numbering
        with ``sort`` (then :meth:`scatter` copies it to ``forces``), else ``forces``."""
        return forces if self.perm is None else self._forces

    def scatter(self, forces) -> None:
        """Copy the work forces back into ``forces`` (N, 3) in the caller's numbering
        (nothing to do without ``sort``)."""
        if self.perm is not None:
            scatter_rows(self._forces, self.perm, forces)

    @staticmethod
    def shifts(h) -> np.ndarray:
        """Image lattice vectors for the current cell, shape (27, 3)."""
        return image_shifts(np.ascontiguousarray(h, dtype=np.float64))
