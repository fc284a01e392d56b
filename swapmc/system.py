"""The particle configuration: one dataclass of arrays, validated once.

Kernels never check their inputs; everything they receive has passed through
:meth:`System.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .box import Box


class ConfigurationError(ValueError):
    """A configuration is not usable (bad shape, NaN, outside the box, overlap...)."""


@dataclass
class System:
    """Particles in a periodic box.

    Parameters
    ----------
    positions : ndarray, shape (N, 3), float64
        Wrapped positions inside ``box`` (length units of the model).
    species : ndarray, shape (N,), int32
        Species index of each particle, into ``species_names``.
    species_names : tuple of str
        Name of each species, e.g. ``("A", "B", "C")`` or ``("Cu", "Zr")``.
    box : Box
        The periodic cell.
    images : ndarray, shape (N, 3), int64, optional
        Periodic image counters; the unwrapped position is ``positions + images @ h.T``.
        Zero by default.
    velocities : ndarray, shape (N, 3), float64, optional
        Velocities (length / time units of the model); ``None`` for Monte Carlo.
    """

    positions: np.ndarray
    species: np.ndarray
    species_names: tuple
    box: Box
    images: np.ndarray | None = None
    velocities: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        self.species = np.ascontiguousarray(self.species, dtype=np.int32)
        self.species_names = tuple(str(s) for s in self.species_names)
        if self.images is None:
            self.images = np.zeros(self.positions.shape, dtype=np.int64)
        else:
            self.images = np.ascontiguousarray(self.images, dtype=np.int64)
        if self.velocities is not None:
            self.velocities = np.ascontiguousarray(self.velocities, dtype=np.float64)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> System:
        """Check shapes, finiteness, species indices and that every particle is in the box.

        Raises
        ------
        ConfigurationError
            Naming the first offending particle.
        """
        n = self.positions.shape[0] if self.positions.ndim == 2 else -1
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise ConfigurationError(
                f"positions must have shape (N, 3), got {self.positions.shape}"
            )
        if n == 0:
            raise ConfigurationError("a system needs at least one particle")
        if not isinstance(self.box, Box):
            raise ConfigurationError(f"box must be a swapmc.Box, got {type(self.box).__name__}")
        for name in ("species", "images", "velocities"):
            arr = getattr(self, name)
            if arr is None:
                continue
            want = (n,) if name == "species" else (n, 3)
            if arr.shape != want:
                raise ConfigurationError(f"{name} must have shape {want}, got {arr.shape}")
        bad = np.flatnonzero(~np.all(np.isfinite(self.positions), axis=1))
        if bad.size:
            i = bad[0]
            raise ConfigurationError(
                f"particle {i} has a non-finite position {self.positions[i]} "
                f"({bad.size} such particles)"
            )
        if self.velocities is not None:
            bad = np.flatnonzero(~np.all(np.isfinite(self.velocities), axis=1))
            if bad.size:
                raise ConfigurationError(f"particle {bad[0]} has a non-finite velocity")
        nspec = len(self.species_names)
        if len(set(self.species_names)) != nspec:
            raise ConfigurationError(f"species names must be unique: {self.species_names}")
        bad = np.flatnonzero((self.species < 0) | (self.species >= nspec))
        if bad.size:
            raise ConfigurationError(
                f"particle {bad[0]} has species index {self.species[bad[0]]}, "
                f"but only {nspec} species are named {self.species_names}"
            )
        s = self.box.fractional(self.positions)
        bad = np.flatnonzero(np.any((s < 0.0) | (s >= 1.0), axis=1))
        if bad.size:
            i = bad[0]
            raise ConfigurationError(
                f"particle {i} at {self.positions[i]} is outside the box "
                f"(lengths {self.box.lengths}, tilts {self.box.tilts}); "
                f"{bad.size} particles outside. Use System.from_unwrapped to wrap them."
            )
        return self

    def check_overlaps(self, min_distance: float) -> None:
        """Raise if any two particles are closer than ``min_distance`` (length units).

        Overlapping particles make LJ and EAM energies astronomically large; they nearly
        always mean a unit mistake or a duplicated particle in an input file.
        """
        from .kernels.neighbors import closest_pair

        if not self.box.is_orthorhombic:
            raise NotImplementedError("overlap check is implemented for orthorhombic boxes")
        i, j, r = closest_pair(self.positions, self.box.lengths, float(min_distance))
        if i >= 0 and r < min_distance:
            raise ConfigurationError(
                f"particles {i} and {j} overlap: distance {r:.4g} < minimum {min_distance:.4g} "
                f"(positions {self.positions[i]} and {self.positions[j]})"
            )

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_unwrapped(cls, positions, species, species_names, box: Box, **kw) -> System:
        """Build from positions that may lie outside the box; they are wrapped and the
        image counters record the shift."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ConfigurationError(f"positions must have shape (N, 3), got {positions.shape}")
        if not np.all(np.isfinite(positions)):
            i = int(np.flatnonzero(~np.all(np.isfinite(positions), axis=1))[0])
            raise ConfigurationError(f"particle {i} has a non-finite position {positions[i]}")
        wrapped, shifts = box.wrap(positions)
        images = shifts + (kw.pop("images", 0))
        return cls(wrapped, species, species_names, box, images=images, **kw)

    # ------------------------------------------------------------- properties
    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_species(self) -> int:
        return len(self.species_names)

    @property
    def counts(self) -> np.ndarray:
        """Number of particles of each species, shape (n_species,)."""
        return np.bincount(self.species, minlength=self.n_species)

    @property
    def density(self) -> float:
        return self.n / self.box.volume

    def unwrapped_positions(self) -> np.ndarray:
        """Positions with image shifts added back, shape (N, 3)."""
        return self.positions + self.images @ self.box.matrix.T

    def species_labels(self) -> np.ndarray:
        """Species name of each particle, shape (N,), dtype str."""
        return np.asarray(self.species_names)[self.species]

    def copy(self) -> System:
        return replace(
            self,
            positions=self.positions.copy(),
            species=self.species.copy(),
            images=self.images.copy(),
            velocities=None if self.velocities is None else self.velocities.copy(),
            info=dict(self.info),
        )

    def same_state(self, other: System) -> bool:
        """True when positions, species, images, box and velocities are bitwise equal."""
        same_v = (self.velocities is None and other.velocities is None) or (
            self.velocities is not None
            and other.velocities is not None
            and np.array_equal(self.velocities, other.velocities)
        )
        return (
            self.species_names == other.species_names
            and self.box == other.box
            and np.array_equal(self.positions, other.positions)
            and np.array_equal(self.species, other.species)
            and np.array_equal(self.images, other.images)
            and same_v
        )
