"""The interface between mechanical protocols and an MD engine, and swapmc's own engine.

A protocol (:mod:`swapmc.md.shear`) drives an :class:`Engine` only through the methods
below, so any engine that implements them runs the same protocol. :class:`NativeEngine`
wraps swapmc's :class:`~swapmc.md.ForceField`, :class:`~swapmc.md.MD` and
:func:`~swapmc.md.fire`.

Conventions every engine follows:

* **Cell**: upper-triangular matrix h, edge vectors as columns (LAMMPS convention,
  :class:`swapmc.box.Box`), length units. Tilts are kept within LAMMPS's limits
  (|xy|, |xz| <= lx / 2, |yz| <= ly / 2): when a deformation carries a tilt beyond them the
  engine replaces the cell by the equivalent less skewed one (LAMMPS's "flip", e.g.
  b -> b - a, xy -> xy - lx). The lattice, and so the periodic system, is unchanged, but the
  cell matrix is not the deformation gradient times the reference cell any more: protocols
  track the deformation gradient themselves.
* **Positions** are unwrapped and continuous in time: an affine remap moves them with the
  cell, a flip leaves them unchanged (image counters absorb it).
* **Stress**: Cauchy stress sigma_ab, positive in tension (:mod:`swapmc.md.stress`), in the
  user's unit (epsilon_AA/sigma_AA^3 or GPa), kinetic part from the peculiar velocities
  included (zero after a minimisation).
* **Deformation during MD** (:meth:`Engine.run`): the cell moves continuously, positions
  follow it affinely after every drift and velocities are peculiar velocities (lab velocity
  minus the streaming velocity L r) obeying the SLLOD equations; the thermostat acts on the
  peculiar velocities only, so it removes the heat of the flow, not the flow.
  ``mode="shear"``: xy grows at d(xy)/dt = rate * ly (simple shear, LAMMPS
  ``fix deform ... xy erate rate remap v`` with ``fix nvt/sllod``); ``mode="pure"``:
  lx ∝ exp(rate t), ly ∝ exp(-rate t), lz fixed (pure shear at constant volume with true
  strain rate ``rate``; LAMMPS ``x trate rate y trate -rate``).

A LAMMPS engine maps the methods onto ``gather_atoms``/``scatter_atoms`` (positions with
image flags), ``change_box all ... remap`` (cell), ``compute pe``/``compute pressure`` (with
``compute temp/deform`` for the peculiar kinetic part; pressure unit converted and sign
flipped), ``min_style fire`` + ``minimize 0 ftol max_iter`` (LAMMPS's ``ftol`` bounds the
2-norm of the global force vector, which is stricter than the per-particle bound used
here) and ``fix deform`` + ``fix nvt/sllod`` (or a CSVR thermostat on ``temp/deform``) for
:meth:`Engine.run`; ``get_state``/``set_state`` become ``write_restart``/``read_restart``.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..box import Box
from ..system import System
from .forcefield import ForceField
from .integrators import MD
from .minimize import fire
from .neighborlist import check_cell
from .thermostats import BussiThermostat, LangevinThermostat
from .velocities import maxwell_boltzmann

#: Default MD time step per unit system: tau_LJ; ps (2 fs).
DEFAULT_DT = {"lj": 0.005, "metal": 0.002}
#: Deformation modes of :meth:`Engine.run`.
RUN_MODES = ("shear", "pure")
# LAMMPS accepts tilts up to half the edge within a small relative tolerance.
_TILT_TOLERANCE = 1e-9


class MinimizeInfo(NamedTuple):
    """Outcome of :meth:`Engine.minimize`.

    Attributes
    ----------
    energy : float
        Potential energy at the end (energy units).
    max_force : float
        Largest per-particle force norm at the end (energy / length).
    iterations : int
        Minimiser iterations (force evaluations after the first).
    converged : bool
        ``max_force`` below the tolerance.
    """

    energy: float
    max_force: float
    iterations: int
    converged: bool


class RunSamples(NamedTuple):
    """Observables sampled during :meth:`Engine.run` (K samples).

    Attributes
    ----------
    time : ndarray, shape (K,)
        Time since the start of the run (time units: tau_LJ or ps).
    stress : ndarray, shape (K, 3, 3)
        Cauchy stress, positive in tension, user unit, kinetic part included.
    energy : ndarray, shape (K,)
        Potential energy (energy units).
    temperature : ndarray, shape (K,)
        Kinetic temperature of the peculiar velocities (temperature units).
    """

    time: np.ndarray
    stress: np.ndarray
    energy: np.ndarray
    temperature: np.ndarray


@runtime_checkable
class Engine(Protocol):
    """What a mechanical protocol needs from an MD engine.

    Attributes
    ----------
    units : {"lj", "metal"}
        Unit system (:mod:`swapmc.units`).
    n : int
        Number of particles.
    dt : float
        MD time step (tau_LJ or ps).
    kB : float
        Boltzmann constant (energy per temperature unit).
    """

    units: str
    n: int
    dt: float
    kB: float

    def positions(self) -> np.ndarray:
        """Unwrapped positions, shape (N, 3) (length units), continuous in time."""

    def set_positions(self, positions) -> None:
        """Replace the positions (N, 3) (length units, wrapped or not) in the current cell."""

    def cell(self) -> np.ndarray:
        """Current cell matrix, shape (3, 3), upper triangular (length units)."""

    def set_cell(self, h, remap: bool = True) -> None:
        """Impose the cell ``h``; with ``remap`` the positions follow affinely
        (x -> h h_old^-1 x). A tilt beyond LAMMPS's limits is then flipped (see the module
        docstring), so :meth:`cell` may return an equivalent, less skewed matrix."""

    def check_cell(self, h) -> None:
        """Raise ``ValueError`` if this engine cannot use the cell ``h`` (too small for the
        cut-off); tilts beyond the limits are allowed (they would be flipped)."""

    def energy(self) -> float:
        """Potential energy (energy units)."""

    def forces(self) -> np.ndarray:
        """Forces, shape (N, 3) (energy / length)."""

    def stress(self) -> np.ndarray:
        """Cauchy stress, shape (3, 3), positive in tension, user unit."""

    def minimize(self, ftol: float, max_iter: int) -> MinimizeInfo:
        """Minimise the potential energy at fixed cell (FIRE) until every particle's
        |F_i| < ``ftol`` (energy / length) or ``max_iter`` iterations; velocities are then
        zero."""

    def thermalize(self, temperature: float) -> None:
        """Draw Maxwell-Boltzmann velocities at ``temperature`` (zero total momentum)."""

    def run(self, steps: int, *, temperature: float | None = None, mode: str | None = None,
            rate: float = 0.0, sample_every: int = 1) -> RunSamples:
        """Advance ``steps`` MD steps, thermostatted at ``temperature`` (None: NVE), the cell
        deformed at ``rate`` (1 / time units) in ``mode`` (see the module docstring);
        observables sampled every ``sample_every`` steps."""

    def system(self) -> System:
        """Snapshot as a :class:`~swapmc.System` (wrapped positions, image counters,
        velocities)."""

    def get_state(self) -> dict:
        """Everything needed to continue exactly (arrays and JSON-able scalars)."""

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state`."""


def reduce_cell(h) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent cell with tilts inside LAMMPS's limits.

    Parameters
    ----------
    h : array_like, shape (3, 3)
        Upper-triangular cell matrix.

    Returns
    -------
    h_reduced : ndarray, shape (3, 3)
        ``h @ t``: yz, then xz, then xy brought into [-edge/2, edge/2] by integer multiples
        of the edge (c -> c - m b, c -> c - k a, b -> b - n a).
    t : ndarray of int64, shape (3, 3)
        Unimodular integer matrix; image counters i (columns) become ``t^-1 i``.
    """
    h = np.array(h, dtype=np.float64)
    t = np.eye(3, dtype=np.int64)

    def shift(col, by, count):
        h[:, col] -= count * h[:, by]
        t[:, col] -= count * t[:, by]

    lim = 0.5 * (1.0 + _TILT_TOLERANCE)
    if abs(h[1, 2]) > lim * h[1, 1]:
        shift(2, 1, int(round(h[1, 2] / h[1, 1])))
    if abs(h[0, 2]) > lim * h[0, 0]:
        shift(2, 0, int(round(h[0, 2] / h[0, 0])))
    if abs(h[0, 1]) > lim * h[0, 0]:
        shift(1, 0, int(round(h[0, 1] / h[0, 0])))
    return h, t


def deformed_cell(h, strain: float, mode: str) -> np.ndarray:
    """F(strain) @ h for the run modes: shear (xy += strain ly, via F = 1 + strain e_x e_y^T)
    or pure (x by exp(strain), y by exp(-strain); strain is the true strain here)."""
    if mode == "shear":
        f = np.eye(3)
        f[0, 1] = strain
    elif mode == "pure":
        f = np.diag([math.exp(strain), math.exp(-strain), 1.0])
    else:
        raise ValueError(f"unknown deformation mode {mode!r} (known: {', '.join(RUN_MODES)})")
    return f @ np.asarray(h, dtype=np.float64)


class NativeEngine:
    """swapmc's own MD and FIRE behind the :class:`Engine` interface.

    The engine keeps its configuration (positions, image counters, cell) apart from the
    :class:`~swapmc.md.MD` object that evaluates forces: a Verlet-list build re-wraps the
    positions it is given in place (one rounding), and when it happens depends on the
    list's history. Every operation therefore hands MD a copy of that configuration with a
    fresh list (one O(N) build, negligible next to a minimisation or an MD block), so the
    engine's state is a function of its inputs alone and a run continued from
    :meth:`get_state` repeats an uninterrupted one bit for bit.

    Parameters
    ----------
    system : System
        Start configuration (copied). Velocities are kept if present, else zero.
    forcefield : ForceField
    dt : float, optional
        MD time step; default :data:`DEFAULT_DT` (0.005 tau_LJ or 0.002 ps).
    thermostat : {"bussi", "langevin"}
        Thermostat of :meth:`run` (on the peculiar velocities).
    tau : float, optional
        Bussi relaxation time (time units); default 100 dt.
    friction : float, optional
        Langevin friction (1 / time units); default 1 / (100 dt).
    seed : int or numpy.random.Generator, optional
        Random stream of velocities and thermostat noise.
    """

    def __init__(self, system: System, forcefield: ForceField, *, dt: float | None = None,
                 thermostat: str = "bussi", tau: float | None = None,
                 friction: float | None = None, seed=None):
        if thermostat not in ("bussi", "langevin"):
            raise ValueError(f"unknown thermostat {thermostat!r} (known: bussi, langevin)")
        self.forcefield = forcefield
        self.units = forcefield.units
        self.kB = forcefield.kB
        self.dt = float(DEFAULT_DT[self.units] if dt is None else dt)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"time step must be positive, got {dt}")
        self.thermostat_kind = thermostat
        self.tau = 100.0 * self.dt if tau is None else float(tau)
        self.friction = 1.0 / (100.0 * self.dt) if friction is None else float(friction)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        s = system.copy()
        if s.velocities is None:
            s.velocities = np.zeros_like(s.positions)
        self._x = s.positions.copy()
        self._img = s.images.copy()
        self.md = MD(s, forcefield, self.dt)
        self._thermostat = None
        self._sync()

    def _sync(self) -> None:
        """Load the engine's configuration into MD with a fresh list; forces, energy and
        virial follow."""
        md = self.md
        md.positions[:] = self._x
        md.images[:] = self._img
        md.nlist = self.forcefield.new_list()
        md.compute_forces()

    # ------------------------------------------------------------------ state
    @property
    def n(self) -> int:
        return self.md.n

    def positions(self) -> np.ndarray:
        return self._x + self._img @ self.md.h.T

    def set_positions(self, positions) -> None:
        x = np.array(positions, dtype=np.float64)
        if x.shape != (self.n, 3) or not np.all(np.isfinite(x)):
            raise ValueError(f"positions must be finite with shape ({self.n}, 3)")
        self._x = x
        self._img = np.zeros_like(self._img)
        self._sync()

    def cell(self) -> np.ndarray:
        return self.md.h.copy()

    def check_cell(self, h) -> None:
        h_red, _ = reduce_cell(h)
        check_cell(h_red, self.forcefield.cutoff, self.forcefield.skin)

    def set_cell(self, h, remap: bool = True) -> None:
        h = np.array(h, dtype=np.float64)
        if h.shape != (3, 3) or np.any(np.tril(h, -1) != 0.0) or np.any(np.diag(h) <= 0):
            raise ValueError("cell matrix must be 3x3 upper triangular with positive "
                             "diagonal (LAMMPS convention)")
        h_red, t = reduce_cell(h)
        check_cell(h_red, self.forcefield.cutoff, self.forcefield.skin)
        if remap:
            self._x = self._x @ (h @ np.linalg.inv(self.md.h)).T
        else:
            # Cartesian (unwrapped) positions stay where they are.
            self._x = self.positions()
            self._img = np.zeros_like(self._img)
        # Unwrapped = x + h i = x + h_red t^-1 i: the counters become t^-1 i.
        self._img = _rebase(self._img, t)
        self.md.h = h_red
        self._sync()

    def energy(self) -> float:
        return float(self.md.potential_energy)

    def forces(self) -> np.ndarray:
        return self.md.forces.copy()

    def stress(self) -> np.ndarray:
        return self.md.stress()

    def system(self) -> System:
        box = Box.from_matrix(self.md.h)
        wrapped, shifts = box.wrap(self._x)
        return System(wrapped, self.md.species.copy(), self.md.species_names, box,
                      images=self._img + shifts, velocities=self.md.velocities.copy())

    # ------------------------------------------------------------------ minimisation
    def minimize(self, ftol: float, max_iter: int) -> MinimizeInfo:
        s = self.system()
        s.velocities = None
        r = fire(s, self.forcefield, fmax=ftol, max_steps=max_iter)
        self._x = r.system.positions.copy()
        self._img = r.system.images.copy()
        self.md.velocities[:] = 0.0
        self._sync()
        return MinimizeInfo(float(self.md.potential_energy), float(r.max_force),
                            int(r.steps), bool(r.converged))

    # ------------------------------------------------------------------ dynamics
    def thermalize(self, temperature: float) -> None:
        ff = self.forcefield
        self.md.velocities[:] = maxwell_boltzmann(self.md.masses, temperature, ff.kB,
                                                  ff.mvv2e, self.rng)

    def _set_thermostat(self, temperature):
        if temperature is None:
            self.md.thermostat = None
            return
        th = self._thermostat
        if th is None:
            if self.thermostat_kind == "bussi":
                th = BussiThermostat(temperature, self.tau, self.rng)
            else:
                th = LangevinThermostat(temperature, self.friction, self.rng)
            self._thermostat = th
        th.temperature = float(temperature)
        self.md.thermostat = th

    def run(self, steps: int, *, temperature: float | None = None, mode: str | None = None,
            rate: float = 0.0, sample_every: int = 1) -> RunSamples:
        steps = int(steps)
        every = int(sample_every)
        if steps < 0 or every < 1:
            raise ValueError(f"need steps >= 0 and sample_every >= 1, got {steps}, {every}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if rate and mode not in RUN_MODES:
            raise ValueError(f"unknown deformation mode {mode!r} (known: "
                             f"{', '.join(RUN_MODES)})")
        md = self.md
        self._sync()
        self._set_thermostat(temperature)
        t0 = md.time
        ts, sig, pe, temps = [], [], [], []

        def record(m):
            ts.append(m.time - t0)
            sig.append(m.stress())
            pe.append(m.potential_energy)
            temps.append(m.temperature)

        done = 0
        try:
            while done < steps:
                if not rate:
                    chunk, deform = steps - done, None
                else:
                    chunk = self._flip_and_chunk(steps - done, mode, rate)
                    h_start, t_start = md.h.copy(), md.time

                    def deform(time, h_start=h_start, t_start=t_start):
                        return deformed_cell(h_start, rate * (time - t_start), mode)

                # Sampling is on the global step counter, so chunks do not shift it.
                md.run(chunk, callback=record, every=every, deform=deform,
                       remap_velocities=deform is not None)
                done += chunk
        finally:
            self._x = md.positions.copy()
            self._img = md.images.copy()
        return RunSamples(np.array(ts), np.array(sig).reshape(-1, 3, 3), np.array(pe),
                          np.array(temps))

    def _flip_and_chunk(self, remaining: int, mode: str, rate: float) -> int:
        """Flip the cell if the next step would pass the tilt limit; steps that the cell can
        then take at ``rate`` before needing the next flip (at least 1)."""
        if mode != "shear":
            return remaining  # pure shear scales tilts with their edges: ratios fixed
        md = self.md
        h = md.h
        step = rate * h[1, 1] * self.dt  # xy change per step
        if abs(step) >= 0.5 * h[0, 0]:
            raise ValueError(f"shear rate {rate:g} moves the tilt by {abs(step):.3g} per "
                             f"step, more than half the cell edge {h[0, 0]:.3g}")
        if abs(h[0, 1] + step) > 0.5 * h[0, 0]:
            # The flip b -> b -+ a: same lattice, the tilt jumps to the other limit.
            t = np.eye(3, dtype=np.int64)
            t[0, 1] = -int(np.sign(step))
            md.images[:] = _rebase(md.images, t)
            md.h = h @ t
            md.compute_forces()  # the list rebuilds: the cell changed beyond its skin
            h = md.h
        room = 0.5 * h[0, 0] - np.sign(step) * h[0, 1]
        return int(max(1, min(remaining, math.floor(room / abs(step)))))

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        md = self.md
        th = self._thermostat
        return {"positions": self._x.copy(), "images": self._img.copy(),
                "velocities": md.velocities.copy(), "cell": md.h.copy(),
                "time": float(md.time), "step": int(md.step), "heat": float(md.heat),
                "rng": json.dumps(self.rng.bit_generator.state),
                "thermostat_temperature": float(th.temperature) if th else math.nan}

    def set_state(self, state: dict) -> None:
        md = self.md
        h = np.array(state["cell"], dtype=np.float64)
        check_cell(h, self.forcefield.cutoff, self.forcefield.skin)
        md.h = h
        self._x = np.array(state["positions"], dtype=np.float64)
        self._img = np.array(state["images"], dtype=np.int64)
        md.velocities[:] = np.asarray(state["velocities"], dtype=np.float64)
        md.time = float(state["time"])
        md.step = int(state["step"])
        md.heat = float(state["heat"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))
        temp = float(state.get("thermostat_temperature", math.nan))
        if math.isfinite(temp):
            self._set_thermostat(temp)
        self._sync()


def _rebase(images, t) -> np.ndarray:
    """Image counters (rows) in the basis h t of a cell h: t^-1 i."""
    if np.array_equal(t, np.eye(3, dtype=np.int64)):
        return images
    t_inv = np.rint(np.linalg.inv(t)).astype(np.int64)
    return images @ t_inv.T
