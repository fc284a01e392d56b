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

Protocols that need more than one state of a sample (a DMS sweep deforms one equilibrated
state at every frequency, a step strain applies +eps and -eps to the same state) pass
:class:`~swapmc.System` snapshots between stages and start every stage on a new engine from
:meth:`Engine.spawn`, which hands it the protocol's random stream. The isothermal-isobaric
stage is :meth:`Engine.npt` (isotropic, as LAMMPS ``fix npt ... iso`` or swapmc's stochastic
cell rescaling) followed by :meth:`Engine.scale_cell` to the mean volume; dynamic mechanical
spectroscopy is :meth:`Engine.wiggle`, a sinusoidal strain eps(t) = eps_A sin(omega t) about
the cell at the start of the call (LAMMPS ``fix deform ... wiggle``), in simple shear or
uniaxially at constant volume (:func:`strained_cell`).

A LAMMPS engine maps the methods onto ``gather_atoms``/``scatter_atoms`` (positions with
image flags), ``change_box all ... remap`` (cell), ``compute pe``/``compute pressure`` (with
``compute temp/deform`` for the peculiar kinetic part; pressure unit converted and sign
flipped), ``min_style fire`` + ``minimize 0 ftol max_iter`` (LAMMPS's ``ftol`` bounds the
2-norm of the global force vector, which is stricter than the per-particle bound used
here) and ``fix deform`` + ``fix nvt/sllod`` (or a CSVR thermostat on ``temp/deform``) for
:meth:`Engine.run`; ``get_state``/``set_state`` become ``write_restart``/``read_restart``;
:meth:`Engine.npt` is ``fix npt ... iso`` (or ``fix press/berendsen`` with a CSVR thermostat),
:meth:`Engine.scale_cell` is ``change_box all x scale f y scale f z scale f remap`` with
``velocity all scale``, :meth:`Engine.wiggle` is ``fix deform ... xy variable`` (or ``x
variable``, ``y``/``z`` at constant volume) with ``remap x`` or ``remap v``, and
:meth:`Engine.spawn` makes a new LAMMPS instance (or re-creates the atoms of this one) with
seeds drawn from the generator it is given.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..box import Box
from ..system import System
from .barostats import StochasticCellRescale
from .forcefield import ForceField
from .integrators import MD
from .minimize import fire, minimize
from .neighborlist import check_cell
from .thermostats import BussiThermostat, LangevinThermostat
from .velocities import maxwell_boltzmann

#: Default MD time step per unit system: tau_LJ; ps (2 fs).
DEFAULT_DT = {"lj": 0.005, "metal": 0.002}
#: Deformation modes of :meth:`Engine.run`.
RUN_MODES = ("shear", "pure")
#: Deformation modes of :meth:`Engine.wiggle` (see :func:`strained_cell`).
WIGGLE_MODES = ("shear", "uniaxial")
# Steps between two progress reports of an engine call: a Python call per 10 steps costs
# nothing next to 10 force evaluations, and is often enough for a bar redrawn a few times a
# second.
PROGRESS_EVERY = 10
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
    volume : ndarray, shape (K,), or None
        Cell volume (length^3); required from :meth:`Engine.npt`, optional elsewhere.
    """

    time: np.ndarray
    stress: np.ndarray
    energy: np.ndarray
    temperature: np.ndarray
    volume: np.ndarray | None = None


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
            rate: float = 0.0, sample_every: int = 1, progress=None) -> RunSamples:
        """Advance ``steps`` MD steps, thermostatted at ``temperature`` (None: NVE), the cell
        deformed at ``rate`` (1 / time units) in ``mode`` (see the module docstring);
        observables sampled every ``sample_every`` steps. ``progress(done)``, if given, is
        called with the steps of this call done so far: 0 at the start, then every
        :data:`PROGRESS_EVERY` steps and after the last (a progress bar; callers pass it only
        when they draw one)."""

    def npt(self, steps: int, *, temperature: float, pressure: float,
            tau_p: float | None = None, compressibility: float | None = None,
            sample_every: int = 1, progress=None) -> RunSamples:
        """Advance ``steps`` MD steps at constant temperature and pressure ``pressure`` (user
        unit: epsilon/sigma^3 or GPa) with an isotropic barostat (all cell vectors scaled
        together, the shape kept) of relaxation time ``tau_p`` (time units; default 100 dt)
        and compressibility ``compressibility`` (1 / pressure unit; only its relaxation rate
        depends on it); samples every ``sample_every`` steps include the volume.
        ``progress`` as in :meth:`run`."""

    def scale_cell(self, factor: float) -> None:
        """Scale the cell and the positions isotropically by ``factor`` and the velocities
        by 1 / ``factor`` (one barostat move: the kinetic energy follows the volume as in
        the barostat's own moves)."""

    def wiggle(self, steps: int, *, amplitude: float, omega: float, mode: str = "shear",
               temperature: float | None = None, remap_velocities: bool = True,
               sample_every: int = 1, progress=None) -> RunSamples:
        """Advance ``steps`` MD steps while the cell follows
        ``strained_cell(h0, amplitude * sin(omega t), mode)``, with h0 the cell and t the
        time since the start of this call (omega in rad / time unit); positions follow
        affinely after every drift, and with ``remap_velocities`` the peculiar velocities
        get the SLLOD term (v -> M^-1 v). Thermostat and ``progress`` as in :meth:`run`.
        Samples at t = 0 and every ``sample_every`` steps; the strain must stay within the
        tilt limits (no flips)."""

    def spawn(self, system: System, rng: np.random.Generator) -> Engine:
        """A new engine of the same kind and settings (model, time step, thermostat)
        holding ``system`` (its velocities, or zero), drawing its random numbers (or its
        seeds) from ``rng``; it starts a protocol stage (see the module docstring)."""

    def system(self) -> System:
        """Snapshot as a :class:`~swapmc.System` (wrapped positions, image counters,
        velocities)."""

    def get_state(self) -> dict:
        """Everything needed to continue exactly (arrays and JSON-able scalars)."""

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state`."""

    def close(self) -> None:
        """Release what the engine holds (a LAMMPS instance on every rank; nothing for
        :class:`NativeEngine`) at once, not when it is garbage-collected; the engine must
        not be used afterwards. Closing twice is harmless. Engines are also context
        managers (``with engine: ...`` closes on leaving); whoever creates an engine closes
        it, e.g. the protocols close every stage engine they ``spawn``."""


def checked_cell(h, forcefield) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new cell for ``Engine.set_cell``, validated the same way by every engine.

    Parameters
    ----------
    h : array_like, shape (3, 3)
        Cell matrix (length unit), LAMMPS convention.
    forcefield : ForceField
        Whose cut-off and skin bound the reduced cell (minimum image).

    Returns
    -------
    h : ndarray, shape (3, 3)
        ``h`` as float64.
    h_reduced, t : ndarray
        :func:`reduce_cell` of ``h``.

    Raises
    ------
    ValueError
        A cell that is not upper triangular with a positive diagonal, or whose reduced
        form is too small for the cut-off.
    """
    h = np.array(h, dtype=np.float64)
    if h.shape != (3, 3) or np.any(np.tril(h, -1) != 0.0) or np.any(np.diag(h) <= 0):
        raise ValueError("cell matrix must be 3x3 upper triangular with positive "
                         "diagonal (LAMMPS convention)")
    h_red, t = reduce_cell(h)
    check_cell(h_red, forcefield.cutoff, forcefield.skin)
    return h, h_red, t


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


def strained_cell(h0, strain: float, mode: str) -> np.ndarray:
    """Cell matrix of the reference cell ``h0`` under a homogeneous engineering strain.

    Parameters
    ----------
    h0 : array_like, shape (3, 3)
        Upper-triangular reference cell (columns are the cell vectors; length units).
    strain : float
        Engineering strain eps (dimensionless).
    mode : {"shear", "uniaxial"}
        ``"shear"``: the tilt becomes xy0 + eps ly (simple shear in xy, LAMMPS
        ``fix deform xy``). ``"uniaxial"``: x stretched by (1 + eps), y and z by
        (1 + eps)^(-1/2), at constant volume.

    Returns
    -------
    ndarray, shape (3, 3)
        Upper-triangular strained cell.
    """
    h0 = np.asarray(h0, dtype=np.float64)
    if mode == "shear":
        h = h0.copy()
        h[0, 1] = h0[0, 1] + strain * h0[1, 1]
        return h
    if mode == "uniaxial":
        if strain <= -1.0:
            raise ValueError(f"uniaxial strain must exceed -1, got {strain}")
        lateral = (1.0 + strain) ** -0.5
        # S h0 with S diagonal keeps the cell upper triangular and scales every row.
        return np.diag([1.0 + strain, lateral, lateral]) @ h0
    raise ValueError(f"unknown deformation mode {mode!r} (known: {', '.join(WIGGLE_MODES)})")


def check_tilts(h) -> None:
    """Raise ``ValueError`` if a tilt of the cell ``h`` (3, 3) exceeds LAMMPS's limits
    (|xy|, |xz| <= lx / 2, |yz| <= ly / 2): a deformation that must not flip the cell (a
    wiggle) cannot reach it."""
    h = np.asarray(h, dtype=np.float64)
    lim = 0.5 * (1.0 + _TILT_TOLERANCE)
    for name, tilt, edge in (("xy", h[0, 1], h[0, 0]), ("xz", h[0, 2], h[0, 0]),
                             ("yz", h[1, 2], h[1, 1])):
        if abs(tilt) > lim * edge:
            raise ValueError(f"tilt {name} = {tilt:.6g} would exceed half the cell edge "
                             f"{edge:.6g}: use a smaller strain or a less skewed cell")


def _progress_observer(progress, total: int, start_step: int, every: int, record):
    """An MD callback (called every step) that samples with ``record`` on the global step
    counter, as :meth:`MD.run` would with ``every``, and reports the steps done since
    ``start_step`` to ``progress`` every :data:`PROGRESS_EVERY` steps and at ``total``."""
    def observe(m):
        if m.step % every == 0:
            record(m)
        k = m.step - start_step
        if k % PROGRESS_EVERY == 0 or k == total:
            progress(k)

    return observe


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
        Random stream of velocities, thermostat and barostat noise (a Generator is used
        directly, not copied).
    continuous : bool
        Consecutive calls continue one :class:`~swapmc.md.MD` trajectory (Verlet list,
        wrapping and step counter carry over, as in one long ``MD.run``) instead of
        restarting the force evaluation from the stored configuration at each call. The
        trajectory is then that of the MD object itself, step for step, but a run continued
        from :meth:`get_state` agrees with an uninterrupted one only to rounding. The MD
        protocols of :mod:`swapmc.md.protocols` (no checkpoints) use it; the resumable shear
        protocols do not.
    """

    def __init__(self, system: System, forcefield: ForceField, *, dt: float | None = None,
                 thermostat: str = "bussi", tau: float | None = None,
                 friction: float | None = None, seed=None, continuous: bool = False):
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
        self.continuous = bool(continuous)
        self._sync()

    def close(self) -> None:
        """Nothing to release (see :meth:`Engine.close`)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def spawn(self, system: System, rng: np.random.Generator) -> NativeEngine:
        return NativeEngine(system, self.forcefield, dt=self.dt,
                            thermostat=self.thermostat_kind, tau=self.tau,
                            friction=self.friction, seed=rng, continuous=self.continuous)

    def _pull(self) -> None:
        """Continuous mode: the configuration is MD's as it stands."""
        self._x = self.md.positions.copy()
        self._img = self.md.images.copy()

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
        h, h_red, t = checked_cell(h, self.forcefield)
        if self.continuous and remap and np.array_equal(t, np.eye(3, dtype=np.int64)):
            # As MD.set_cell: remap the current positions, keep the list while it is valid.
            self.md.set_cell(h)
            self._pull()
            return
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
    def minimize(self, ftol: float, max_iter: int, method: str = "fire") -> MinimizeInfo:
        """As :meth:`Engine.minimize`; ``method`` "lbfgs" uses
        :func:`~swapmc.md.minimize.lbfgs` (same criterion, finished by FIRE if needed)."""
        s = self.system()
        s.velocities = None
        r = (fire(s, self.forcefield, fmax=ftol, max_steps=max_iter) if method == "fire"
             else minimize(s, self.forcefield, fmax=ftol, max_steps=max_iter, method=method))
        self._x = r.system.positions.copy()
        self._img = r.system.images.copy()
        self.md.velocities[:] = 0.0
        self._sync()
        return MinimizeInfo(float(r.energy), float(r.max_force), int(r.steps),
                            bool(r.converged))

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
            rate: float = 0.0, sample_every: int = 1, progress=None) -> RunSamples:
        steps, every = self._check_run(steps, sample_every, temperature)
        if rate and mode not in RUN_MODES:
            raise ValueError(f"unknown deformation mode {mode!r} (known: "
                             f"{', '.join(RUN_MODES)})")
        md = self.md
        if not self.continuous:
            self._sync()
        self._set_thermostat(temperature)
        t0 = md.time
        rec = _Recorder(t0)
        start = md.step
        if progress is not None:
            progress(0)
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
                self._advance(chunk, every, rec, progress, steps, start, deform=deform,
                              remap_velocities=deform is not None)
                done += chunk
        finally:
            self._x = md.positions.copy()
            self._img = md.images.copy()
        return rec.samples()

    @staticmethod
    def _check_run(steps, sample_every, temperature) -> tuple[int, int]:
        steps = int(steps)
        every = int(sample_every)
        if steps < 0 or every < 1:
            raise ValueError(f"need steps >= 0 and sample_every >= 1, got {steps}, {every}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return steps, every

    def _advance(self, chunk, every, record, progress, total, start, **kwargs) -> None:
        """``chunk`` MD steps sampled by ``record`` every ``every`` steps (global counter);
        progress reported relative to the call's first step ``start``."""
        if progress is None:
            self.md.run(chunk, callback=record, every=every, **kwargs)
        else:
            self.md.run(chunk, callback=_progress_observer(progress, total, start, every,
                                                           record), every=1, **kwargs)

    def npt(self, steps: int, *, temperature: float, pressure: float,
            tau_p: float | None = None, compressibility: float | None = None,
            sample_every: int = 1, progress=None) -> RunSamples:
        if temperature is None:
            raise ValueError("NPT needs a temperature (the barostat samples NPT only with a "
                             "thermostat)")
        steps, every = self._check_run(steps, sample_every, temperature)
        if not math.isfinite(pressure):
            raise ValueError(f"pressure must be finite, got {pressure}")
        md = self.md
        if not self.continuous:
            self._sync()
        self._set_thermostat(temperature)
        md.barostat = StochasticCellRescale(pressure, temperature,
                                            100.0 * self.dt if tau_p is None else tau_p,
                                            self.rng, compressibility=compressibility)
        rec = _Recorder(md.time)
        if progress is not None:
            progress(0)
        try:
            self._advance(steps, every, rec, progress, steps, md.step)
        finally:
            md.barostat = None
            self._x = md.positions.copy()
            self._img = md.images.copy()
        return rec.samples()

    def scale_cell(self, factor: float) -> None:
        f = float(factor)
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"scale factor must be positive, got {factor}")
        md = self.md
        h = md.h * f
        check_cell(h, self.forcefield.cutoff, self.forcefield.skin)
        # The operations of MD.scale_cell, on the engine's configuration.
        self._x = self._x * f
        md.velocities *= 1.0 / f
        md.h = h
        self._sync()

    def wiggle(self, steps: int, *, amplitude: float, omega: float, mode: str = "shear",
               temperature: float | None = None, remap_velocities: bool = True,
               sample_every: int = 1, progress=None) -> RunSamples:
        steps, every = self._check_run(steps, sample_every, temperature)
        if mode not in WIGGLE_MODES:
            raise ValueError(f"unknown deformation mode {mode!r} (known: "
                             f"{', '.join(WIGGLE_MODES)})")
        if not (math.isfinite(amplitude) and math.isfinite(omega)):
            raise ValueError("amplitude and omega must be finite")
        md = self.md
        if not self.continuous:
            self._sync()
        h0 = md.h.copy()
        for e in (amplitude, -amplitude):
            h = strained_cell(h0, e, mode)
            check_tilts(h)
            check_cell(h, self.forcefield.cutoff, self.forcefield.skin)
        self._set_thermostat(temperature)
        t_start = md.time

        def deform(time):
            return strained_cell(h0, amplitude * math.sin(omega * (time - t_start)), mode)

        rec = _Recorder(t_start)
        rec(md)
        if progress is not None:
            progress(0)
        try:
            self._advance(steps, every, rec, progress, steps, md.step, deform=deform,
                          remap_velocities=bool(remap_velocities))
        finally:
            self._x = md.positions.copy()
            self._img = md.images.copy()
        return rec.samples()

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


class _Recorder:
    """Collects :class:`RunSamples` from an MD callback; times relative to ``t0``."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.rows: tuple[list, ...] = ([], [], [], [], [])

    def __call__(self, m) -> None:
        ts, sig, pe, temps, vols = self.rows
        ts.append(m.time - self.t0)
        sig.append(m.stress())
        pe.append(m.potential_energy)
        temps.append(m.temperature)
        vols.append(m.volume)

    def samples(self) -> RunSamples:
        ts, sig, pe, temps, vols = self.rows
        return RunSamples(np.array(ts), np.array(sig).reshape(-1, 3, 3), np.array(pe),
                          np.array(temps), np.array(vols))


def _rebase(images, t) -> np.ndarray:
    """Image counters (rows) in the basis h t of a cell h: t^-1 i."""
    if np.array_equal(t, np.eye(3, dtype=np.int64)):
        return images
    t_inv = np.rint(np.linalg.inv(t)).astype(np.int64)
    return images @ t_inv.T
