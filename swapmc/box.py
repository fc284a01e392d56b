"""Periodic simulation cell, orthorhombic or triclinic.

The cell follows the LAMMPS convention: its three edge vectors are the columns of the upper
triangular matrix

    h = [[lx, xy, xz],
         [0,  ly, yz],
         [0,  0,  lz]]

so a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz). The origin is at (0, 0, 0): a point r is
inside the cell when its fractional coordinates s = h^-1 r all lie in [0, 1).
Monte Carlo uses orthorhombic cells; the MD stage tilts them to impose simple shear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A periodic cell.

    Parameters
    ----------
    lengths : array_like, shape (3,)
        Edge lengths lx, ly, lz (length units of the model).
    tilts : array_like, shape (3,), optional
        Tilt factors xy, xz, yz (length units). Zero for an orthorhombic cell.
    """

    lengths: np.ndarray
    tilts: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        lengths = np.array(self.lengths, dtype=np.float64).reshape(-1)
        tilts = np.zeros(3) if self.tilts is None else np.array(self.tilts, dtype=np.float64)
        tilts = tilts.reshape(-1)
        if lengths.shape != (3,):
            raise ValueError(f"box lengths must have 3 entries, got shape {lengths.shape}")
        if tilts.shape != (3,):
            raise ValueError(f"box tilts must have 3 entries (xy, xz, yz), got {tilts.shape}")
        if not (np.all(np.isfinite(lengths)) and np.all(np.isfinite(tilts))):
            raise ValueError(f"box has non-finite entries: lengths={lengths}, tilts={tilts}")
        if np.any(lengths <= 0):
            raise ValueError(f"box lengths must be positive, got {lengths}")
        lengths.setflags(write=False)
        tilts.setflags(write=False)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "tilts", tilts)

    @classmethod
    def cube(cls, length: float) -> Box:
        """Cubic cell of edge ``length``."""
        return cls(np.full(3, float(length)))

    @classmethod
    def from_matrix(cls, h) -> Box:
        """Build from an upper-triangular (3, 3) matrix whose columns are the edge vectors."""
        h = np.asarray(h, dtype=np.float64)
        if h.shape != (3, 3) or abs(h[1, 0]) + abs(h[2, 0]) + abs(h[2, 1]) > 0:
            raise ValueError("box matrix must be 3x3 upper triangular (LAMMPS convention)")
        return cls(np.diag(h).copy(), np.array([h[0, 1], h[0, 2], h[1, 2]]))

    @property
    def is_orthorhombic(self) -> bool:
        return bool(np.all(self.tilts == 0.0))

    @property
    def matrix(self) -> np.ndarray:
        """Edge vectors as columns, shape (3, 3)."""
        lx, ly, lz = self.lengths
        xy, xz, yz = self.tilts
        return np.array([[lx, xy, xz], [0.0, ly, yz], [0.0, 0.0, lz]])

    @property
    def volume(self) -> float:
        return float(np.prod(self.lengths))

    def scaled(self, factor: float) -> Box:
        """Isotropically scaled copy (all lengths and tilts times ``factor``)."""
        return Box(self.lengths * factor, self.tilts * factor)

    def fractional(self, positions: np.ndarray) -> np.ndarray:
        """Fractional coordinates s = h^-1 r, shape (N, 3)."""
        return np.linalg.solve(self.matrix, np.asarray(positions, dtype=np.float64).T).T

    def wrap(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map positions into the cell.

        The wrapped position is computed as ``positions - shifts @ h.T`` in Cartesian
        coordinates, so a position already inside the cell comes back bit-identical, and
        ``wrapped + shifts @ h.T`` reproduces the input up to one rounding of a coordinate
        (at most ulp(max(|r|, cell edge)); never off by a cell vector). Every wrapped
        position passes the cell test of :meth:`System.validate` (fractional coordinates in
        [0, 1)); a coordinate whose in-cell value is not representable (for example -1e-17,
        whose image L - 1e-17 rounds to L) is put on the lower face with the matching image.

        Parameters
        ----------
        positions : array_like, shape (N, 3)
            Cartesian positions (length units), anywhere in space.

        Returns
        -------
        wrapped : ndarray, shape (N, 3)
        shifts : ndarray of int64, shape (N, 3)
            Number of cell vectors removed, so that
            ``positions = wrapped + shifts @ h.T`` (to within rounding, see above).
        """
        x = np.array(positions, dtype=np.float64).reshape(-1, 3)
        h = self.matrix
        shifts = np.floor(self.fractional(x)).astype(np.int64)
        wrapped = x - shifts @ h.T
        # Rounding of h^-1 r or of the subtraction can leave a coordinate on the upper face or
        # just below the lower one; move such rows by one cell vector and try again.
        for _ in range(3):
            s = self.fractional(wrapped)
            step = (s >= 1.0).astype(np.int64) - (s < 0.0)
            if not step.any():
                return wrapped, shifts
            rows = np.flatnonzero(step.any(axis=1))
            shifts[rows] += step[rows]
            wrapped[rows] = x[rows] - shifts[rows] @ h.T
        # What is left lies within rounding of a face and has no representable image inside
        # the cell on one side: put it on the lower face (s = 0), which is the same point.
        s = self.fractional(wrapped)
        rows = np.flatnonzero(np.any((s < 0.0) | (s >= 1.0), axis=1))
        s_rows = s[rows]
        up = s_rows >= 1.0
        shifts[rows] += up
        s_rows[up | (s_rows < 0.0)] = 0.0
        wrapped[rows] = s_rows @ h.T
        return wrapped, shifts

    def minimum_image(self, d: np.ndarray) -> np.ndarray:
        """Minimum-image separation vectors, shape (..., 3). Exact for orthorhombic cells and
        for triclinic cells whose tilts do not exceed half the corresponding edge."""
        d = np.array(d, dtype=np.float64)
        lx, ly, lz = self.lengths
        xy, xz, yz = self.tilts
        n = np.rint(d[..., 2] / lz)
        d[..., 0] -= n * xz
        d[..., 1] -= n * yz
        d[..., 2] -= n * lz
        n = np.rint(d[..., 1] / ly)
        d[..., 0] -= n * xy
        d[..., 1] -= n * ly
        d[..., 0] -= np.rint(d[..., 0] / lx) * lx
        return d

    def as_dict(self) -> dict:
        return {"lengths": self.lengths.tolist(), "tilts": self.tilts.tolist()}

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Box)
            and np.array_equal(self.lengths, other.lengths)
            and np.array_equal(self.tilts, other.tilts)
        )

    def __hash__(self):
        return hash((tuple(self.lengths), tuple(self.tilts)))
