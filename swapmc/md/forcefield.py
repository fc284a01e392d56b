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
    sort : bool, optional
        Evaluate forces with the particles renumbered spatially at each list build (default;
        see :mod:`swapmc.md.neighborlist`). Results are in the caller's particle order either
        way; forces, virial and per-particle energies are the same to the bit, the EAM total
        energy to round-off. False (no renumbering) is for comparisons.

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

    def __init__(self, model, skin: float | None = None, sort: bool = True):
        self.model = model
        self.kind = model.kind
        if self.kind not in DEFAULT_SKIN:
            raise ValueError(f"no MD kernels for model kind {self.kind!r} (known: lj, eam)")
        self.units = model.units
        self.kB = BOLTZMANN[self.units]
        self.mvv2e = MVV2E[self.units]
        self.cutoff = float(model.max_cutoff)
        self.skin = float(DEFAULT_SKIN[self.kind] if skin is None else skin)
        self.sort = bool(sort)
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
        return VerletList(cut, self.skin, self.sort)

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
            The species given to ``nlist.build`` (the kernels use the list's copy of them,
            in its numbering).
        h : ndarray, shape (3, 3)
            Current cell matrix.
        nlist : VerletList
        forces : ndarray, shape (N, 3)
            Output (energy / length), in the order of ``positions``.
        virial : ndarray, shape (3, 3)
            Output W_ab (energy units).
        eatom : ndarray, shape (N,), optional
            Output per-particle energies, in the order of ``positions``.
        scratch : dict, optional
            Reused work arrays (EAM: densities ``rho`` and ``fp`` of shape (N,), in the
            list's numbering, and per-pair arrays; see :meth:`_eam_work`).

        Returns
        -------
        float
            Potential energy (energy units).
        """
        want = eatom is not None
        # With a sorted list the kernels work on renumbered copies (gather, scatter back).
        pos = nlist.gather(positions)
        sp = nlist.species
        out = nlist.force_buffer(forces)
        ea = np.empty(positions.shape[0] if want else 0)
        shifts = nlist.shifts(h)
        if self.kind == "lj":
            e = lj_forces(pos, sp, self._table, shifts, nlist.row_atom, nlist.row_start,
                          nlist.packed, out, virial)
            if want:
                lj_atom_energies(pos, sp, self._table, shifts, nlist.row_atom,
                                 nlist.row_start, nlist.packed, ea)
        else:
            w = self._eam_work({} if scratch is None else scratch, pos.shape[0],
                               nlist.n_pairs)
            rho_val, rho_der, rho_id, z2r, z2r_id = self._eam_tables
            e = eam_forces(pos, sp, self._frho, rho_val, rho_der, rho_id, z2r, z2r_id,
                           self._sc, self._nr, self._nrho, shifts, nlist.row_atom,
                           nlist.row_start, nlist.packed, w["rho"], w["fp"], out, virial,
                           ea, want, w["pair_p"], w["pair_m"], w["pair_q"], w["pair_start"])
        nlist.scatter(forces)
        if want:
            if nlist.perm is None:
                eatom[:] = ea
            else:
                eatom[nlist.perm] = ea
        return e

    @staticmethod
    def _eam_work(scratch: dict, n: int, n_pairs: int) -> dict:
        """EAM work arrays in ``scratch``, (re)allocated when too small.

        ``rho``, ``fp`` (N,); ``pair_start`` (N + 1,); ``pair_p``, ``pair_m`` (int32) and
        ``pair_q`` for up to ``n_pairs`` pairs, with 20 % head-room so that the list's
        fluctuations between builds rarely cause a new allocation.
        """
        if scratch.get("rho") is None or scratch["rho"].shape[0] != n:
            scratch["rho"] = np.empty(n)
            scratch["fp"] = np.empty(n)
            scratch["pair_start"] = np.empty(n + 1, np.int64)
        if scratch.get("pair_q") is None or scratch["pair_q"].shape[0] < n_pairs:
            size = int(1.2 * n_pairs) + 64
            scratch["pair_p"] = np.empty(size, np.int32)
            scratch["pair_m"] = np.empty(size, np.int32)
            scratch["pair_q"] = np.empty(size)
        return scratch

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
