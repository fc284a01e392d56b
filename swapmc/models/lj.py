"""Cut-and-shifted Lennard-Jones mixtures defined by a per-pair parameter table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dopant import add_pair_value, add_species_value


class ModelError(ValueError):
    """A model definition is inconsistent or incomplete."""


def _pair_key(a: str, b: str) -> str:
    return f"{a}-{b}"


@dataclass(frozen=True)
class LJMixture:
    """A Lennard-Jones mixture, truncated at r_c,ab and shifted to zero energy there.

    u_ab(r) = 4 eps_ab [(sigma_ab/r)^12 - (sigma_ab/r)^6] - u_ab^LJ(r_c,ab) for r < r_c,ab.
    The force is not shifted (LAMMPS ``pair_style lj/cut`` with ``pair_modify shift yes``).

    Parameters
    ----------
    species : tuple of str
        Species names, e.g. ("A", "B").
    epsilon, sigma : ndarray, shape (S, S)
        Symmetric interaction parameters (energy and length units).
    cutoff : ndarray, shape (S, S)
        Absolute cut-off radii r_c,ab (length units).
    masses : tuple of float
        Per-species masses (used only when velocities exist).
    units : str
        ``"lj"``: reduced units of the A-A interaction.
    """

    species: tuple
    epsilon: np.ndarray
    sigma: np.ndarray
    cutoff: np.ndarray
    masses: tuple
    units: str = "lj"

    kind = "lj"
    # Verlet skin (sigma_AA) for Monte Carlo. KA2 (x_C = 0.10) with p_swap = 0.2, attempts
    # per CPU second against 0.7 (medians of 6 interleaved rounds): 0.5 gives 1.04x, 1.03x at
    # T = 0.6 and 1.15x, 1.08x at T = 0.45 (N = 1000, 8000): shorter rows speed up swaps
    # (two rows each) more than the extra refreshes slow displacements, and the tuned step
    # shrinks on cooling. 0.3, the MD value, refreshes too often for single-particle moves.
    default_skin = 0.5

    def __post_init__(self):
        s = len(self.species)
        if s == 0 or len(set(self.species)) != s:
            raise ModelError(f"species names must be non-empty and unique: {self.species}")
        for name in ("epsilon", "sigma", "cutoff"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            if arr.shape != (s, s):
                raise ModelError(f"{name} must have shape ({s}, {s}), got {arr.shape}")
            if not np.allclose(arr, arr.T, rtol=0, atol=0):
                raise ModelError(f"{name} table is not symmetric: {arr}")
            if np.any(~np.isfinite(arr)) or np.any(arr < 0):
                raise ModelError(f"{name} entries must be finite and non-negative: {arr}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if np.any(self.sigma <= 0):
            raise ModelError("sigma must be positive for every pair")
        if np.any(self.cutoff <= 0):
            raise ModelError("cut-off radii must be positive for every pair")
        if len(self.masses) != s or any(m <= 0 for m in self.masses):
            raise ModelError(f"need one positive mass per species, got {self.masses}")
        object.__setattr__(self, "species", tuple(self.species))
        object.__setattr__(self, "masses", tuple(float(m) for m in self.masses))

    # ----------------------------------------------------------------- builders
    @classmethod
    def from_pairs(
        cls,
        species,
        pairs: dict,
        *,
        masses=None,
        cutoff_factor: float = 2.5,
    ) -> LJMixture:
        """Build from a mapping ``{"A-B": {"epsilon": .., "sigma": .., "cutoff": ..}}``.

        ``cutoff`` is optional per pair; when absent r_c = ``cutoff_factor`` * sigma.
        Every unordered pair must be given exactly once.
        """
        species = tuple(species)
        s = len(species)
        index = {name: k for k, name in enumerate(species)}
        eps = np.full((s, s), np.nan)
        sig = np.full((s, s), np.nan)
        cut = np.full((s, s), np.nan)
        for key, p in pairs.items():
            try:
                a, b = key.split("-")
                ia, ib = index[a], index[b]
            except (ValueError, KeyError):
                raise ModelError(
                    f"pair key {key!r} must be 'X-Y' with X, Y among species {species}"
                ) from None
            if not np.isnan(eps[ia, ib]):
                raise ModelError(f"pair {key!r} is given twice")
            unknown = set(p) - {"epsilon", "sigma", "cutoff"}
            if unknown or "epsilon" not in p or "sigma" not in p:
                raise ModelError(
                    f"pair {key!r} needs 'epsilon' and 'sigma' (optional 'cutoff'); "
                    f"got keys {sorted(p)}"
                )
            rc = p.get("cutoff", cutoff_factor * p["sigma"])
            for arr, val in ((eps, p["epsilon"]), (sig, p["sigma"]), (cut, rc)):
                arr[ia, ib] = arr[ib, ia] = float(val)
        missing = [
            _pair_key(species[a], species[b])
            for a in range(s)
            for b in range(a, s)
            if np.isnan(eps[a, b])
        ]
        if missing:
            raise ModelError(f"missing pair parameters for {missing}")
        masses = (1.0,) * s if masses is None else tuple(masses)
        return cls(species, eps, sig, cut, masses)

    def with_dopant(self, name: str, between: tuple, weight: float = 0.5) -> LJMixture:
        """Add a species whose parameters interpolate between two hosts.

        With hosts a, b and weight lambda, the dopant X interacts as
        X-X = (1-l) a-a + l b-b, X-a = (1-l) a-a + l a-b, X-b = (1-l) a-b + l b-b and,
        for any other species c, X-c = (1-l) a-c + l b-c; epsilon and sigma are mixed
        linearly and r_c keeps the host ratio r_c/sigma. lambda = 0.5 on KA gives KA2
        (Parmar, Ozawa, Berthier, PRL 125, 085505 (2020)).
        """
        a_name, b_name = between
        if name in self.species:
            raise ModelError(f"dopant name {name!r} is already a species of the model")
        for h in (a_name, b_name):
            if h not in self.species:
                raise ModelError(f"dopant host {h!r} is not a species of {self.species}")
        if a_name == b_name:
            raise ModelError("a dopant needs two different host species")
        if not 0.0 <= weight <= 1.0:
            raise ModelError(f"dopant weight must be in [0, 1], got {weight}")
        a = self.species.index(a_name)
        b = self.species.index(b_name)
        eps = add_pair_value(self.epsilon, a, b, weight)
        sig = add_pair_value(self.sigma, a, b, weight)
        # r_c keeps the host ratio r_c / sigma (2.5 for every KA pair).
        cut = sig * add_pair_value(self.cutoff / self.sigma, a, b, weight)
        masses = tuple(add_species_value(np.array(self.masses), a, b, weight))
        return LJMixture(self.species + (name,), eps, sig, cut, masses, self.units)

    # ------------------------------------------------------------ kernel views
    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def max_cutoff(self) -> float:
        return float(self.cutoff.max())

    @property
    def overlap_distance(self) -> float:
        """Two particles closer than this are treated as an input error: at half the smallest
        sigma the LJ energy exceeds 1e4 epsilon."""
        return 0.5 * float(self.sigma.min())

    def shift(self) -> np.ndarray:
        """u_LJ(r_c) for every pair, shape (S, S) (energy units)."""
        q6 = (self.sigma / self.cutoff) ** 6
        return 4.0 * self.epsilon * (q6 * q6 - q6)

    def kernel_table(self) -> np.ndarray:
        """Parameter table for the kernels, shape (S, S, 4): 4 eps, sigma^2, r_c^2, shift."""
        table = np.empty((self.n_species, self.n_species, 4))
        table[..., 0] = 4.0 * self.epsilon
        table[..., 1] = self.sigma**2
        table[..., 2] = self.cutoff**2
        table[..., 3] = self.shift()
        return table

    def to_dict(self) -> dict:
        """Plain-data description (TOML/JSON friendly), the inverse of :func:`from_dict`."""
        pairs = {}
        for a in range(self.n_species):
            for b in range(a, self.n_species):
                pairs[_pair_key(self.species[a], self.species[b])] = {
                    "epsilon": float(self.epsilon[a, b]),
                    "sigma": float(self.sigma[a, b]),
                    "cutoff": float(self.cutoff[a, b]),
                }
        return {
            "kind": "lj",
            "units": self.units,
            "species": list(self.species),
            "masses": list(self.masses),
            "pairs": pairs,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LJMixture:
        known = {"kind", "units", "species", "masses", "pairs", "cutoff_factor"}
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"unknown LJ model keys {sorted(unknown)}; allowed: {sorted(known)}")
        if "species" not in d or "pairs" not in d:
            raise ModelError("an LJ model needs 'species' and 'pairs'")
        return cls.from_pairs(
            d["species"],
            d["pairs"],
            masses=d.get("masses"),
            cutoff_factor=float(d.get("cutoff_factor", 2.5)),
        )
