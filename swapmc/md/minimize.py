"""FIRE 2.0 energy minimisation to inherent structures (fixed cell).

FIRE (Bitzek, Koskinen, Gähler, Moseler & Gumbsch, PRL 97, 170201 (2006)) in the form
recommended by Guénolé, Nöhring, Vaid, Houllé, Xie, Prakash & Bitzek, Comput. Mater. Sci. 175,
109584 (2020), "FIRE 2.0", which is also LAMMPS ``min_style fire`` with its defaults. Each
iteration, with P = F . v:

* P > 0: after more than N_delay such steps in a row, dt <- min(f_inc dt, dt_max) and
  alpha <- f_alpha alpha;
* P <= 0: dt <- f_dec dt unless that would go below dt_min, alpha <- alpha_start (both
  skipped during the first N_delay iterations, the "initial delay"), then the half step back
  (half of the previous displacement dt v is undone) and v <- 0; after N_P<=0,max such
  steps in a row the search stops;
* semi-implicit Euler step: v <- v + dt F / m; if P > 0, v <- (1 - alpha) v + alpha |v| F / |F|
  with |v| and |F| taken at the start of the iteration (as LAMMPS does); x <- x + dt v.

Parameters (the paper's recommended values, also the LAMMPS defaults): N_delay = 20,
f_inc = 1.1, f_dec = 0.5, alpha_start = 0.25, f_alpha = 0.99, dt_max = 10 dt,
dt_min = 0.02 dt, N_P<=0,max = 2000.
Particles move with their physical masses (as in LAMMPS) and no particle moves more than
``max_move`` per step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..interrupts import raise_if_received
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
        True when max_force < the tolerance (False after ``max_steps`` or ``max_uphill``).
    """

    system: System
    energy: float
    energy_per_particle: float
    max_force: float
    steps: int
    converged: bool


def fire(system: System, forcefield: ForceField, fmax: float = 1e-6, max_steps: int = 100_000,
         dt: float | None = None, dt_max: float | None = None, max_move: float = 0.1,
         n_min: int = 20, f_inc: float = 1.1, f_dec: float = 0.5, alpha_start: float = 0.25,
         f_alpha: float = 0.99, dt_min: float | None = None, initial_delay: bool = True,
         max_uphill: int = 2000, step_progress=None) -> MinimizeResult:
    """Minimise the potential energy at fixed cell with FIRE 2.0.

    Parameters
    ----------
    system : System
        Start configuration (not modified).
    forcefield : ForceField
    fmax : float
        Converged when every particle's force norm is below this (energy / length).
    max_steps : int
        Give up after this many steps (``converged`` is then False).
    dt, dt_max, dt_min : float, optional
        Initial, largest and smallest time step (time units); defaults 0.005 tau_LJ or
        0.002 ps, 10 dt and 0.02 dt.
    max_move : float
        Largest displacement of a particle per step (length units).
    n_min, f_inc, f_dec, alpha_start, f_alpha
        FIRE parameters N_delay, f_inc, f_dec, alpha_start, f_alpha (FIRE 2.0 values by
        default; the 2006 paper used N_min = 5 and alpha_start = 0.1).
    initial_delay : bool
        Do not shrink dt or reset alpha during the first ``n_min`` iterations.
    max_uphill : int
        Stop (``converged`` False) after this many consecutive iterations with P <= 0.
    step_progress : callable, optional
        ``step_progress(steps, max_steps, stage)`` at the start, every 10 iterations and at
        the end, ``stage`` giving the largest force (e.g. ``"FIRE max|F|=3.1e-04"``); for a
        progress bar (this function prints nothing).

    Returns
    -------
    MinimizeResult
    """
    forcefield.check_system(system)
    dt = DEFAULT_DT[forcefield.units] if dt is None else float(dt)
    dt_max = 10.0 * dt if dt_max is None else float(dt_max)
    dt_min = 0.02 * dt if dt_min is None else float(dt_min)
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
    step = np.zeros_like(pos)
    alpha = alpha_start
    n_pos = 0
    n_neg = 0
    steps = 0
    f_now = float(np.sqrt((forces * forces).sum(axis=1).max()))
    if step_progress is not None:
        step_progress(0, max_steps, f"FIRE max|F|={f_now:.1e}")
    while f_now >= fmax and steps < max_steps:
        raise_if_received()
        # einsum, not BLAS ddot: a threaded ddot on 3N-vectors spins on a busy machine.
        power = float(np.einsum("ij,ij->", forces, v))
        if power > 0.0:
            n_pos += 1
            n_neg = 0
            if n_pos > n_min:
                dt = min(dt * f_inc, dt_max)
                alpha *= f_alpha
            # Mixing weights from the velocity and force entering this step.
            keep = 1.0 - alpha
            towards_f = alpha * np.sqrt(np.einsum("ij,ij->", v, v)
                                        / np.einsum("ij,ij->", forces, forces))
        else:
            n_pos = 0
            n_neg += 1
            if n_neg > max_uphill:
                break
            # steps + 1 is the paper's iteration counter i; the delay lets the first steps
            # (which start from rest, P = 0) run at the initial dt.
            if not (initial_delay and steps + 1 < n_min):
                if dt * f_dec >= dt_min:
                    dt *= f_dec
                alpha = alpha_start
            # Undo half of the last (uphill) step as it was taken, before any change of dt.
            pos -= 0.5 * step
            v[:] = 0.0
        v += dt * forces * acc
        if power > 0.0:
            v *= keep
            v += towards_f * forces
        step = dt * v
        longest = np.sqrt((step * step).sum(axis=1).max())
        if longest > max_move:
            step *= max_move / longest
        pos += step
        energy = evaluate()
        steps += 1
        f_now = float(np.sqrt((forces * forces).sum(axis=1).max()))
        if step_progress is not None and steps % 10 == 0:
            step_progress(steps, max_steps, f"FIRE max|F|={f_now:.1e}")
    if step_progress is not None and steps % 10:
        step_progress(steps, max_steps, f"FIRE max|F|={f_now:.1e}")
    box = system.box
    wrapped, shifts = box.wrap(pos)
    out = System(wrapped, species.copy(), system.species_names, box, images=images + shifts)
    return MinimizeResult(out, float(energy), float(energy) / system.n, f_now, steps,
                          f_now < fmax)


#: Minimisers of :func:`minimize` (and of ``NativeEngine.minimize(method=...)``).
METHODS = ("fire", "lbfgs")


def lbfgs(system: System, forcefield: ForceField, fmax: float = 1e-6,
          max_steps: int = 100_000, memory: int = 10, max_move: float = 0.1,
          curvature: float | None = None, max_restarts: int = 20,
          step_progress=None) -> MinimizeResult:
    """Minimise the potential energy at fixed cell with L-BFGS and a force-based line search.

    The convergence criterion is FIRE's: every particle's force norm below ``fmax``. The
    search direction is the L-BFGS two-loop product (Nocedal & Wright, Numerical
    Optimization, Alg. 7.4; ``memory`` pairs, initial inverse Hessian s.y / y.y) in
    Cartesian coordinates. The line search needs forces only, like LAMMPS' ``min_modify
    line quadratic``: the energy of 10^3-10^5 particles is known only to ~10^-13 of its
    magnitude, far above the energy changes near a minimum at |F| ~ 10^-8, so a
    function-value line search stalls long before the force tolerance. Each iteration tries
    the full step (no particle moving more than ``max_move``); if the directional
    derivative has turned positive (the step passed the minimum along the line) *and* the
    energy rose by more than its rounding error (10^-12 |E| + 10^-12), the step is cut back
    to the secant estimate of the line minimum; a step that still goes uphill restarts the
    memory with a short steepest-descent step. A pair with s.y <= 0 (negative curvature
    along the step, e.g. during a plastic event) is dropped and the memory restarted.

    Parameters
    ----------
    system : System
        Start configuration (not modified).
    forcefield : ForceField
    fmax : float
        Converged when every particle's force norm is below this (energy / length).
    max_steps : int
        Force evaluations after the first at most (``converged`` is then False).
    memory : int
        Correction pairs kept.
    max_move : float
        Largest displacement of a particle per step (length units).
    curvature : float, optional
        Stiffness (energy / length^2) setting the first step F / curvature and the step
        after each restart; default 70 epsilon/sigma^2 (lj) or 10 eV/Å^2 (metal).
    max_restarts : int
        Give up (``converged`` False) after this many uphill restarts; :func:`minimize`
        then finishes with FIRE.
    step_progress : callable, optional
        As for :func:`fire`.

    Returns
    -------
    MinimizeResult
        ``steps`` counts force evaluations after the first (comparable with FIRE's).
    """
    forcefield.check_system(system)
    if int(memory) < 1:
        raise ValueError(f"memory must be >= 1, got {memory}")
    k0 = (70.0 if forcefield.units == "lj" else 10.0) if curvature is None else float(
        curvature)
    pos = system.positions.copy()
    images = system.images.copy()
    h = system.box.matrix
    species = system.species
    forces = np.empty_like(pos)
    virial = np.empty((3, 3))
    scratch: dict = {}
    nlist = forcefield.new_list()
    n = system.n

    def evaluate():
        if nlist.needs_rebuild(pos, h):
            nlist.build(pos, h, images, species)
        return forcefield.evaluate(pos, species, h, nlist, forces, virial, scratch=scratch)

    def fnorm():
        return float(np.sqrt((forces * forces).sum(axis=1).max()))

    def dot(a, b):
        return float(np.einsum("ij,ij->", a, b))

    energy = evaluate()
    steps = 0
    f_now = fnorm()
    hard_restarts = 0
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    rho_hist: list[float] = []
    if step_progress is not None:
        step_progress(0, max_steps, f"L-BFGS max|F|={f_now:.1e}")
    while f_now >= fmax and steps < max_steps:
        raise_if_received()
        # Two-loop recursion: d = -H g = H F.
        q = forces.copy()
        alphas = []
        for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
            a = rho * dot(s, q)
            alphas.append(a)
            q -= a * y
        gamma = (dot(s_hist[-1], y_hist[-1]) / dot(y_hist[-1], y_hist[-1]) if s_hist
                 else 1.0 / k0)
        d = gamma * q
        for (s, y, rho), a in zip(zip(s_hist, y_hist, rho_hist), reversed(alphas)):
            b = rho * dot(y, d)
            d += (a - b) * s
        slope0 = -dot(forces, d)  # dE/dalpha at alpha = 0
        if not slope0 < 0.0:
            # Not a descent direction: restart along the force.
            s_hist.clear()
            y_hist.clear()
            rho_hist.clear()
            d = forces / k0
            slope0 = -dot(forces, d)
        longest = float(np.sqrt((d * d).sum(axis=1).max()))
        alpha = min(1.0, max_move / longest) if longest > 0 else 1.0
        f_old = forces.copy()
        e_old = energy
        pos += alpha * d
        energy = evaluate()
        steps += 1
        slope1 = -dot(forces, d)
        tol_e = 1e-12 * abs(e_old) + 1e-12
        if slope1 > 0.0 and energy - e_old > tol_e and steps < max_steps:
            # Past the line minimum and uphill: back to the secant estimate of it.
            new_alpha = alpha * slope0 / (slope0 - slope1)
            pos += (new_alpha - alpha) * d
            alpha = new_alpha
            energy = evaluate()
            steps += 1
            if energy - e_old > tol_e and steps < max_steps:
                # Still uphill: undo, restart the memory with a short steepest-descent step.
                pos -= alpha * d
                d = f_old / k0
                longest = float(np.sqrt((d * d).sum(axis=1).max()))
                alpha = min(1.0, 0.1 * max_move / longest) if longest > 0 else 1.0
                pos += alpha * d
                energy = evaluate()
                steps += 1
                s_hist.clear()
                y_hist.clear()
                rho_hist.clear()
                hard_restarts += 1
        s_new = alpha * d
        y_new = f_old - forces  # g_new - g_old
        sy = dot(s_new, y_new)
        if sy > 1e-300:
            s_hist.append(s_new)
            y_hist.append(y_new)
            rho_hist.append(1.0 / sy)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
                rho_hist.pop(0)
        else:
            s_hist.clear()
            y_hist.clear()
            rho_hist.clear()
        f_now = fnorm()
        if step_progress is not None and steps % 10 == 0:
            step_progress(steps, max_steps, f"L-BFGS max|F|={f_now:.1e}")
        if hard_restarts > max_restarts:
            break  # stalled (rounding-limited or pathological): converged stays False
    if step_progress is not None:
        step_progress(steps, max_steps, f"L-BFGS max|F|={f_now:.1e}")
    box = system.box
    wrapped, shifts = box.wrap(pos)
    out = System(wrapped, species.copy(), system.species_names, box, images=images + shifts)
    return MinimizeResult(out, float(energy), float(energy) / n, f_now, steps, f_now < fmax)


def minimize(system: System, forcefield: ForceField, fmax: float = 1e-6,
             max_steps: int = 100_000, method: str = "fire") -> MinimizeResult:
    """Minimise with ``method`` ("fire": :func:`fire`; "lbfgs": :func:`lbfgs`, finished by
    FIRE with the remaining iterations if it has not converged)."""
    if method == "fire":
        return fire(system, forcefield, fmax=fmax, max_steps=max_steps)
    if method != "lbfgs":
        raise ValueError(f"unknown minimiser {method!r} (known: {', '.join(METHODS)})")
    r = lbfgs(system, forcefield, fmax=fmax, max_steps=max_steps)
    if r.converged or r.steps >= max_steps:
        return r
    f = fire(r.system, forcefield, fmax=fmax, max_steps=max_steps - r.steps)
    return f._replace(steps=f.steps + r.steps)
