"""FIRE energy minimisation to inherent structures (fixed cell).

Bitzek, Koskinen, Gähler, Moseler & Gumbsch, PRL 97, 170201 (2006), with the two robustness
details of Guénolé et al., Comput. Mater. Sci. 175, 109584 (2020): semi-implicit Euler steps
(velocity first, mixed with the force direction, then position) and, when the power
P = F . v turns negative, a half step back before the velocities are zeroed. Particles move
with their physical masses (as LAMMPS ``min_style fire`` does) and no particle moves more than
``max_move`` per step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..system import System
from .forcefield import ForceField

# Initial time steps (tau_LJ; ps for metal); dt_max = 10 dt0 like LAMMPS.
DEFAULT_DT = {"lj": 0.005, "metal": 0.002}


class MinimizeResult(NamedTuple):
    """Outcome of a minimisation.

    Attributes
    ----------
    system : System
        The minimised configuration (wrapped, images carried over, no velocities).
    energy : float
        Potential energy (energy units).
    energy_per_particle : float
        The inherent-structure energy per particle.
    max_force : float
        Largest |F_i| at the end (energy / length).
    steps : int
        Force evaluations after the first.
    converged : bool
        True when max_force < the tolerance.
    """

    system: System
    energy: float
    energy_per_particle: float
    max_force: float
    steps: int
    converged: bool


def fire(system: System, forcefield: ForceField, fmax: float = 1e-6, max_steps: int = 100_000,
         dt: float | None = None, dt_max: float | None = None, max_move: float = 0.1,
         n_min: int = 5, f_inc: float = 1.1, f_dec: float = 0.5, alpha_start: float = 0.1,
         f_alpha: float = 0.99) -> MinimizeResult:
    """Minimise the potential energy at fixed cell with FIRE.

    Parameters
    ----------
    system : System
        Start configuration (not modified).
    forcefield : ForceField
    fmax : float
        Converged when every particle's force norm is below this (energy / length).
    max_steps : int
        Give up after this many steps (``converged`` is then False).
    dt, dt_max : float, optional
        Initial and largest time step (time units); defaults 0.005 / 0.002 ps and 10 dt.
    max_move : float
        Largest displacement of a particle per step (length units).
    n_min, f_inc, f_dec, alpha_start, f_alpha
        FIRE parameters (the 2006 paper's values by default).

    Returns
    -------
    MinimizeResult
    """
    forcefield.check_system(system)
    dt = DEFAULT_DT[forcefield.units] if dt is None else float(dt)
    dt_max = 10.0 * dt if dt_max is None else float(dt_max)
    pos = system.positions.copy()
    images = system.images.copy()
    h = system.box.matrix
    species = system.species
    acc = (1.0 / (forcefield.masses(species) * forcefield.mvv2e))[:, None]
    forces = np.empty_like(pos)
    virial = np.empty((3, 3))
    scratch: dict = {}
    nlist = forcefield.new_list()

    def evaluate():
        if nlist.needs_rebuild(pos, h):
            nlist.build(pos, h, images, species)
        return forcefield.evaluate(pos, species, h, nlist, forces, virial, scratch=scratch)

    energy = evaluate()
    v = np.zeros_like(pos)
    alpha = alpha_start
    n_pos = 0
    steps = 0
    f_now = float(np.sqrt((forces * forces).sum(axis=1).max()))
    while f_now >= fmax and steps < max_steps:
        power = float(np.vdot(forces, v))
        if power > 0.0:
            n_pos += 1
            if n_pos > n_min:
                dt = min(dt * f_inc, dt_max)
                alpha *= f_alpha
        else:
            n_pos = 0
            dt *= f_dec
            alpha = alpha_start
            pos -= 0.5 * dt * v  # undo half of the last (uphill) step
            v[:] = 0.0
        v += dt * forces * acc
        if power > 0.0:
            vnorm = np.sqrt(np.vdot(v, v))
            fnorm = np.sqrt(np.vdot(forces, forces))
            v *= 1.0 - alpha
            v += (alpha * vnorm / fnorm) * forces
        step = dt * v
        longest = np.sqrt((step * step).sum(axis=1).max())
        if longest > max_move:
            step *= max_move / longest
        pos += step
        energy = evaluate()
        steps += 1
        f_now = float(np.sqrt((forces * forces).sum(axis=1).max()))
    box = system.box
    wrapped, shifts = box.wrap(pos)
    out = System(wrapped, species.copy(), system.species_names, box, images=images + shifts)
    return MinimizeResult(out, float(energy), float(energy) / system.n, f_now, steps,
                          f_now < fmax)
