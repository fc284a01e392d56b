"""Velocity-Verlet molecular dynamics: NVE, NVT (thermostat), NPT (barostat), deformation.

One step (thermostat T and barostat B optional, ``deform`` optional):

    T(dt/2); v += a dt/2; x += v dt; [cell deformation, remap x, (remap v)]; [B(dt)];
    forces; v += a dt/2; T(dt/2)

with a = F / (m mvv2e).

Deformation. The cell moves from h to h' = M h after each drift and the positions follow
affinely, x -> M x (LAMMPS ``fix deform ... remap x``). The flow u(r) = L r, L = dh/dt h^-1,
is thus carried by the positions and v is the peculiar velocity (lab velocity minus u); the
kinetic tensor and the thermostats use v. Newton's equations in the lab frame then require
the SLLOD term dv/dt = F/m - L v. Without it (the default, like LAMMPS without ``remap v``)
each particle feels a fictitious force m L v, m gamma_dot v_y along x in xy shear, whose work
is the kinetic part of the shear power. ``run(..., remap_velocities=True)`` adds the term as
v -> M^-1 v after each remap: exact for a constant velocity gradient, so a free particle moves
on a straight line in the lab frame. Velocities need no jump when a particle crosses a face:
a peculiar velocity is the same in every image.

Positions are wrapped only when the Verlet list is rebuilt (see
:mod:`swapmc.md.neighborlist`); :attr:`MD.system` returns a wrapped snapshot with image
counters. Python loops over steps only; every per-particle operation is a NumPy or compiled
call.

Particle order. The force field renumbers the particles spatially inside each force
evaluation (:mod:`swapmc.md.neighborlist`); every array of :class:`MD` (positions,
velocities, forces, images, species, masses) stays in the order of the System it was given,
and so do :attr:`MD.system` and the per-particle random numbers of the Langevin thermostat.
Trajectories are therefore the same, bit for bit, with and without the spatial sort.
"""

from __future__ import annotations

import numpy as np

from ..box import Box
from ..interrupts import raise_if_received
from ..system import System
from .forcefield import ForceField
from .neighborlist import check_cell
from .stress import kinetic_tensor, pressure_tensor, to_user_pressure
from .velocities import kinetic_energy


class MD:
    """Molecular dynamics of one system.

    Parameters
    ----------
    system : System
        Start configuration; must have velocities (see
        :func:`swapmc.md.velocities.maxwell_boltzmann`). It is copied, not modified.
    forcefield : ForceField
    dt : float
        Time step (tau_LJ for ``lj``; ps for ``metal``).
    thermostat : BussiThermostat or LangevinThermostat, optional
        None for NVE.
    barostat : StochasticCellRescale, optional
        Isotropic pressure control (use together with a thermostat).

    Attributes
    ----------
    positions, velocities : ndarray, shape (N, 3)
        Current state (positions not wrapped between list builds).
    forces : ndarray, shape (N, 3)
    virial : ndarray, shape (3, 3)
        W_ab of the current configuration (energy units).
    potential_energy : float
    h : ndarray, shape (3, 3)
        Current cell matrix.
    step, time : int, float
    heat : float
        Kinetic energy added by the thermostat so far (energy units).
    """

    def __init__(self, system: System, forcefield: ForceField, dt: float, thermostat=None,
                 barostat=None):
        if system.velocities is None:
            raise ValueError("the system has no velocities: draw them with "
                             "swapmc.md.maxwell_boltzmann(...) first")
        if dt <= 0:
            raise ValueError(f"time step must be positive, got {dt}")
        forcefield.check_system(system)
        self.forcefield = forcefield
        self.dt = float(dt)
        self.thermostat = thermostat
        self.barostat = barostat
        self.species = system.species.copy()
        self.species_names = system.species_names
        self.positions = system.positions.copy()
        self.images = system.images.copy()
        self.velocities = system.velocities.copy()
        self.h = system.box.matrix
        self.masses = forcefield.masses(self.species)
        # Acceleration per unit force.
        self._acc = (1.0 / (self.masses * forcefield.mvv2e))[:, None]
        self.forces = np.zeros_like(self.positions)
        self.virial = np.zeros((3, 3))
        self.potential_energy = 0.0
        self.nlist = forcefield.new_list()
        self._scratch: dict = {}
        self.step = 0
        self.time = 0.0
        self.heat = 0.0
        self.compute_forces()

    # ------------------------------------------------------------------ state
    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @property
    def box(self) -> Box:
        return Box.from_matrix(self.h)

    @property
    def volume(self) -> float:
        return float(self.h[0, 0] * self.h[1, 1] * self.h[2, 2])

    @property
    def kinetic_energy(self) -> float:
        """K = mvv2e / 2 sum m v^2 (energy units)."""
        return kinetic_energy(self.masses, self.velocities, self.forcefield.mvv2e)

    @property
    def total_energy(self) -> float:
        return self.kinetic_energy + self.potential_energy

    @property
    def conserved_energy(self) -> float:
        """Total energy minus the thermostat's heat: constant up to integration error in NVE
        and NVT (not with a barostat)."""
        return self.total_energy - self.heat

    @property
    def degrees_of_freedom(self) -> int:
        if self.thermostat is not None:
            return self.thermostat.degrees_of_freedom(self.n)
        return 3 * self.n - 3

    @property
    def temperature(self) -> float:
        """Kinetic temperature 2K / (N_f k_B) (temperature units)."""
        return 2.0 * self.kinetic_energy / (self.degrees_of_freedom * self.forcefield.kB)

    def pressure_tensor(self) -> np.ndarray:
        """P_ab = (K_ab + W_ab) / V in the user's unit (GPa for metal), positive in
        compression; see :mod:`swapmc.md.stress`."""
        kin = kinetic_tensor(self.masses, self.velocities, self.forcefield.mvv2e)
        p = pressure_tensor(self.virial, self.volume, kin)
        return to_user_pressure(p, self.forcefield.units)

    def stress(self) -> np.ndarray:
        """Cauchy stress sigma_ab = -P_ab (user's unit), positive in tension, shape (3, 3)."""
        return -self.pressure_tensor()

    def pressure(self) -> float:
        """P = tr(P_ab) / 3 (user's unit)."""
        return float(np.trace(self.pressure_tensor()) / 3.0)

    @property
    def system(self) -> System:
        """Snapshot as a System: wrapped positions, image counters, velocities (copies)."""
        box = self.box
        wrapped, shifts = box.wrap(self.positions)
        return System(wrapped, self.species.copy(), self.species_names, box,
                      images=self.images + shifts, velocities=self.velocities.copy())

    # ------------------------------------------------------------------ forces and cell
    def compute_forces(self) -> None:
        """Rebuild the list if needed, then energy, forces and virial at the current state."""
        if self.nlist.needs_rebuild(self.positions, self.h):
            self.nlist.build(self.positions, self.h, self.images, self.species)
        self.potential_energy = self.forcefield.evaluate(
            self.positions, self.species, self.h, self.nlist, self.forces, self.virial,
            scratch=self._scratch,
        )

    def _set_cell(self, h_new) -> None:
        h_new = np.array(h_new, dtype=np.float64)
        if h_new.shape != (3, 3) or np.any(np.tril(h_new, -1) != 0.0):
            raise ValueError("cell matrix must be 3x3 upper triangular (LAMMPS convention)")
        check_cell(h_new, self.forcefield.cutoff, self.forcefield.skin)
        # Affine remap x -> h_new h^-1 x (LAMMPS ``fix deform ... remap x``).
        m = h_new @ np.linalg.inv(self.h)
        self.positions[:] = self.positions @ m.T
        self.h = h_new

    def scale_cell(self, mu: float) -> None:
        """Scale cell and positions by mu and velocities by 1/mu (isotropic barostat move);
        forces are recomputed by the caller's next force evaluation."""
        if mu < 1.0:
            check_cell(self.h * mu, self.forcefield.cutoff, self.forcefield.skin)
        self.h = self.h * mu
        self.positions *= mu
        self.velocities *= 1.0 / mu

    def set_cell(self, box_or_matrix) -> None:
        """Impose a new cell with an affine remap of the positions (velocities unchanged) and
        recompute the forces: an instantaneous homogeneous strain."""
        h = box_or_matrix.matrix if isinstance(box_or_matrix, Box) else box_or_matrix
        self._set_cell(h)
        self.compute_forces()

    # ------------------------------------------------------------------ dynamics
    def run(self, n_steps: int, callback=None, every: int = 1, deform=None,
            remap_velocities: bool = False) -> None:
        """Advance ``n_steps`` time steps.

        Parameters
        ----------
        n_steps : int
        callback : callable, optional
            ``callback(md)`` after every ``every`` steps (observers: energies, stress...).
        every : int
        deform : callable, optional
            ``deform(time) -> (3, 3)`` upper-triangular cell matrix imposed after each drift,
            with the positions remapped affinely (oscillatory or step strain).
        remap_velocities : bool
            With ``deform``: after each remap x -> M x also map v -> M^-1 v, the SLLOD
            velocity-gradient term (see the module docstring). Off by default.
        """
        dt = self.dt
        half = 0.5 * dt
        th = self.thermostat
        for _ in range(int(n_steps)):
            # A Ctrl-C swallowed by a first Numba compilation (swapmc.interrupts) stops the
            # run at the next step instead of after the whole protocol.
            raise_if_received()
            if th is not None:
                self.heat += th.apply(self, half)
            self.velocities += half * self.forces * self._acc
            self.positions += dt * self.velocities
            self.time += dt
            if deform is not None:
                h_old = self.h
                self._set_cell(deform(self.time))
                if remap_velocities:
                    # M^-1 = h_old h_new^-1; v @ M^-T applies it to every row.
                    self.velocities[:] = self.velocities @ (h_old @ np.linalg.inv(self.h)).T
            if self.barostat is not None:
                self.barostat.apply(self, dt)
            self.compute_forces()
            self.velocities += half * self.forces * self._acc
            if th is not None:
                self.heat += th.apply(self, half)
            self.step += 1
            if callback is not None and self.step % every == 0:
                callback(self)
