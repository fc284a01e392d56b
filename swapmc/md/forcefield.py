"""Force fields for MD: a model (LJ mixture or EAM alloy) bound to its compiled kernels.

:class:`ForceField` gives energies, forces and the virial tensor of a :class:`~swapmc.System`
in orthorhombic or triclinic cells, per-particle masses and the unit constants the integrators
need. The sign conventions of the virial and stress are stated in :mod:`swapmc.md.stress`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels.forces_eam import eam_forces, pack_tables
from ..kernels.forces_lj import lj_atom_energies, lj_forces
from ..units import BOLTZMANN
from .neighborlist import VerletList, check_cell
from .stress import MVV2E

# MD Verlet skins (length units): 0.3 sigma_AA for LJ, 1 Å for EAM metals (LAMMPS-like). The
# Monte Carlo skins of the models (``default_skin``) are tuned for single-particle moves.
DEFAULT_SKIN = {"lj": 0.3, "eam": 1.0}


class ForceResult(NamedTuple):
    """Energy (energy units), forces (N, 3) (energy / length) and virial W_ab (3, 3)."""

    energy: float
    forces: np.ndarray
    virial: np.ndarray


class ForceField:
    """A model with its MD kernels.

    Parameters
    ----------
    model : LJMixture or EAMPotential
        Chosen by ``model.kind`` (``"lj"`` or ``"eam"``).
    skin : float, optional
        Verlet skin (length units); default 0.3 for LJ, 1.0 Å for EAM.

    Attributes
    ----------
    kind, units : str
    cutoff : float
        Largest interaction cut-off (length units).
    kB : float
        Boltzmann constant (energy per temperature unit).
    mvv2e : float
        Energy of unit mass at unit velocity squared (1 for ``lj``, 1.0364269e-4 eV per
        amu Å^2/ps^2 for ``metal``); accelerations are F / (m mvv2e).
    """

    def __init__(self, model, skin: float | None = None):
        self.model = model
        self.kind = model.kind
        if self.kind not in DEFAULT_SKIN:
            raise ValueError(f"no MD kernels for model kind {self.kind!r} (known: lj, eam)")
        self.units = model.units
        self.kB = BOLTZMANN[self.units]
        self.mvv2e = MVV2E[self.units]
        self.cutoff = float(model.max_cutoff)
        self.skin = float(DEFAULT_SKIN[self.kind] if skin is None else skin)
        if self.kind == "lj":
            self._table = np.ascontiguousarray(model.kernel_table())
        else:
            t = model.kernel_tables()
            self._frho = t["frho"]
            self._eam_tables = pack_tables(t["rhor"], t["z2r"])
            self._sc = np.array([t["rdr"], t["rdrho"], t["rhomax"], t["cutforcesq"]])
            self._nr, self._nrho = int(t["nr"]), int(t["nrho"])

    # ------------------------------------------------------------------ data
    @property
    def species(self) -> tuple:
        return tuple(self.model.species)

    def masses(self, species) -> np.ndarray:
        """Per-particle masses from species indices, shape (N,) (mass units)."""
        return np.asarray(self.model.masses, dtype=np.float64)[np.asarray(species)]

    def new_list(self) -> VerletList:
        """An empty Verlet list with this force field's cut-offs (per species pair for LJ)
        and skin; build it with the species."""
        if self.kind == "lj":
            cut = self.model.cutoff
        else:
            cut = np.full((self.model.n_species,) * 2, self.cutoff)
        return VerletList(cut, self.skin)

    def check_system(self, system) -> None:
        """Species names must match the model; the cell must suit the cut-off."""
        if tuple(system.species_names) != self.species:
            raise ValueError(
                f"system species {system.species_names} do not match the model's {self.species}"
            )
        check_cell(system.box.matrix, self.cutoff, self.skin)

    # ------------------------------------------------------------------ kernels
    def evaluate(self, positions, species, h, nlist: VerletList, forces, virial,
                 eatom=None, scratch=None) -> float:
        """Energy, forces and virial with an existing, valid list (the integrators' path).

        Parameters
        ----------
        positions : ndarray, shape (N, 3)
            Positions as when ``nlist`` was built, possibly moved since (not re-wrapped).
        species : ndarray, shape (N,), int32
        h : ndarray, shape (3, 3)
            Current cell matrix.
        nlist : VerletList
        forces : ndarray, shape (N, 3)
            Output (energy / length).
        virial : ndarray, shape (3, 3)
            Output W_ab (energy units).
        eatom : ndarray, shape (N,), optional
            Output per-particle energies.
        scratch : dict, optional
            Reused work arrays (EAM: ``rho``, ``fp`` of shape (N,)).

        Returns
        -------
        float
            Potential energy (energy units).
        """
        want = eatom is not None
        if eatom is None:
            eatom = np.empty(0)
        shifts = nlist.shifts(h)
        if self.kind == "lj":
            e = lj_forces(positions, species, self._table, shifts, nlist.row_atom,
                          nlist.row_start, nlist.packed, forces, virial)
            if want:
                lj_atom_energies(positions, species, self._table, shifts, nlist.row_atom,
                                 nlist.row_start, nlist.packed, eatom)
            return e
        n = positions.shape[0]
        if scratch is None:
            scratch = {}
        rho = scratch.get("rho")
        if rho is None or rho.shape[0] != n:
            rho = scratch["rho"] = np.empty(n)
            scratch["fp"] = np.empty(n)
        rho_val, rho_der, rho_id, z2r, z2r_id = self._eam_tables
        return eam_forces(positions, species, self._frho, rho_val, rho_der, rho_id, z2r, z2r_id,
                          self._sc, self._nr, self._nrho, shifts, nlist.row_atom,
                          nlist.row_start, nlist.packed, rho, scratch["fp"], forces, virial,
                          eatom, want)

    def _fresh(self, system, eatom=None):
        self.check_system(system)
        pos = system.positions.copy()
        images = np.zeros((system.n, 3), np.int64)
        h = system.box.matrix
        nlist = self.new_list()
        nlist.build(pos, h, images, system.species)
        forces = np.empty((system.n, 3))
        virial = np.empty((3, 3))
        e = self.evaluate(pos, system.species, h, nlist, forces, virial, eatom)
        return ForceResult(e, forces, virial)

    def compute(self, system) -> ForceResult:
        """Energy, forces and virial of a system (builds a fresh list).

        Returns
        -------
        ForceResult
            ``(energy, forces, virial)``: energy units, (N, 3) energy / length, (3, 3)
            W_ab = sum_{i<j} r_ij,a f_ij,b (see :mod:`swapmc.md.stress`).
        """
        return self._fresh(system)

    def per_atom_energies(self, system) -> np.ndarray:
        """Per-particle potential energies, shape (N,), summing to the total (LAMMPS
        ``pe/atom`` split: half of each pair term, plus the embedding energy for EAM)."""
        eatom = np.empty(system.n)
        self._fresh(system, eatom)
        return eatom
