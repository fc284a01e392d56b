"""LAMMPS behind the :class:`~swapmc.md.engine.Engine` interface, for large systems.

:class:`LammpsEngine` runs the mechanical protocols (:mod:`swapmc.md.shear`) through the
LAMMPS Python module. The configuration and the potential reach LAMMPS exactly as swapmc's
exports write them: a data file with type labels (:func:`swapmc.io.write_lammps_data`) and
the pair lines of :func:`swapmc.io.lammps_pair_lines` (LJ with every pair's epsilon, sigma,
r_c and ``pair_modify shift yes``; EAM through the model written as a setfl file), so both
engines evaluate the same potential.

How each part of the interface maps onto LAMMPS:

* **Particle order.** Atom ids are 1..N in swapmc's order; every per-atom array comes back
  through ``gather_atoms`` (ordered by id, complete on every rank), so LAMMPS may sort and
  migrate atoms freely (``atom_modify map yes``, default spatial sorting for speed).
* **Positions and cell.** Positions are taken relative to the box origin (``boxlo``), which
  is 0 except after a pure-shear run (LAMMPS deforms lengths about the box centre); the
  unwrapped position is x - boxlo + h i with the image flags i. The box is always triclinic.
  :meth:`LammpsEngine.set_cell` computes the new unwrapped positions itself (x -> h h_old^-1
  x with ``remap``), reduces the cell to LAMMPS's tilt limits with
  :func:`~swapmc.md.engine.reduce_cell` (the same flips as the native engine), scatters the
  positions with zero image flags and lets ``change_box`` wrap them into the reduced cell
  (new image flags) and move them to their processors. Inside a deformation run LAMMPS flips
  the box itself (``fix deform ... flip yes``, image flags adjusted); unwrapped positions are
  continuous either way, and the protocols track the deformation gradient themselves.
* **Minimisation.** ``min_style fire`` (FIRE 2.0, the algorithm of :func:`swapmc.md.fire`,
  same initial step and largest displacement) with ``min_modify norm max``: LAMMPS then
  stops when the largest per-atom force norm max_i |F_i| is below ``ftol``, exactly the
  native criterion (its default ``norm two``, the 2-norm of the 3N force vector, would make
  the tolerance depend on N). Convergence is checked again on forces recomputed after the
  minimisation; should rounding leave max |F_i| at or above ``ftol``, FIRE continues (at most
  a few times) until it is below or the iteration budget is spent.
* **Thermostat.** ``"bussi"`` (default): ``fix nve`` with ``fix temp/csvr`` (the Bussi
  stochastic velocity rescaling of the native engine, same relaxation time tau, same
  3N - 3 degrees of freedom). ``"langevin"``: ``fix langevin`` with damping 1 / friction
  (3N degrees of freedom, like the native Langevin thermostat). ``"nose-hoover"`` (this
  engine only): ``fix nvt``, or ``fix nvt/sllod`` under deformation, with damping tau.
  Differences from the native engine: LAMMPS rescales once per step after the second kick,
  the native engine by half steps around velocity Verlet, so trajectories differ while the
  sampled ensemble is the same; the random numbers are LAMMPS's (a seed drawn from the
  engine's numpy stream at each :meth:`LammpsEngine.run`).
* **Deformation.** ``fix deform ... remap v`` (shear: ``xy erate``; pure: ``x trate``,
  ``y trate`` with tilts scaled alike, so h(t) = F(t) h(0) as in
  :func:`~swapmc.md.engine.deformed_cell`) with the thermostat acting on the peculiar
  velocities (``compute temp/deform`` as its temperature). LAMMPS integrates lab-frame
  velocities in a box whose images stream; that is the SLLOD dynamics of the native engine
  for simple shear (the L.L term vanishes) and differs from it at order rate^2 in pure
  shear. Velocities are stored peculiar between runs, as in the native engine: the streaming
  velocity is added before a deformation run and removed after it. LAMMPS changes the box at
  the end of each step, after the forces, while the native engine remaps before them; the
  box is therefore set one step ahead before the run (and back after it; each atom keeps
  its position x and image flags, as in LAMMPS's own box update), so that the forces of
  every step see that step's cell. The first half-kick, whose forces LAMMPS computes in the
  advanced cell, is corrected on the velocities. The two engines then integrate the same
  equations with the same step: sheared trajectories from the same start agree to
  ~1e-4 of the stress after 100 steps, however the run is split into calls.
* **Oscillation** (:meth:`LammpsEngine.wiggle`). ``fix deform ... variable`` on every cell
  entry that :func:`~swapmc.md.engine.strained_cell` changes (xy in shear; the rows of h
  scaled by 1 + eps and (1 + eps)^(-1/2) in uniaxial mode), eps(t) an equal-style variable
  of the step counter, the box one step ahead as above (without it the stress would lag
  the strain by omega dt, which is comparable to the loss angle of a glass); ``remap v``
  with the streaming velocities as above, or ``remap x`` without the SLLOD term.
* **NPT** (:meth:`LammpsEngine.npt`). ``fix nph ... iso`` with the engine's thermostat
  (``fix npt`` for Nose-Hoover), barostat damping time tau_p; the native engine's
  stochastic cell rescaling has no LAMMPS counterpart, so the volume dynamics differ while
  the ensemble is the same. :meth:`LammpsEngine.scale_cell` is :meth:`~LammpsEngine.set_cell`
  with a remap, velocities divided by the factor.
* **Stages** (:meth:`LammpsEngine.spawn`): a new LAMMPS instance with the same settings and
  the protocol's random stream.
* **Stress.** ``compute pressure`` with the plain (or, under deformation, ``temp/deform``)
  kinetic part, converted to swapmc's stress: sigma = -P, from bar to GPa through LAMMPS's
  own ``nktv2p`` and :func:`swapmc.md.stress.to_user_pressure`.
* **State.** :meth:`LammpsEngine.get_state` holds positions (relative to the box origin),
  image flags, peculiar velocities, cell, step, time, thermostat heat and the numpy stream,
  with the native engine's keys, so a checkpoint of either engine loads into the other.
  LAMMPS's own random generators and its atom order in memory cannot be saved: a resumed
  run is statistically, not bitwise, identical to an uninterrupted one (minimisations
  repeat to rounding).

MPI. Under ``mpiexec`` (:func:`swapmc.tempering.comm.get_comm`) the engine's communicator is
MPI_COMM_WORLD and LAMMPS decomposes the box over all ranks. The protocol and every file
stay on rank 0: rank 0 holds the engine and sends each LAMMPS operation to the other ranks,
which only execute them (:func:`serve`); :func:`drive` runs a function that way. Several
engines may be open at once (a protocol's stages); an engine dropped without
:meth:`LammpsEngine.close` is closed on every rank at the next operation. A LAMMPS error
that only rank 0 sees (``MPIAbortException``) ends the whole job.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

from ..box import Box
from ..io.lammps_data import write_lammps_data
from ..io.lammps_input import lammps_pair_lines
from ..system import System
from .engine import (
    DEFAULT_DT,
    PROGRESS_EVERY,
    RUN_MODES,
    WIGGLE_MODES,
    MinimizeInfo,
    RunSamples,
    check_tilts,
    checked_cell,
    deformed_cell,
    reduce_cell,
    strained_cell,
)
from .forcefield import ForceField
from .minimize import DEFAULT_DT as FIRE_DT
from .neighborlist import check_cell
from .stress import from_user_pressure, to_user_pressure
from .velocities import maxwell_boltzmann

__all__ = ["THERMOSTATS", "LammpsEngine", "LammpsError", "drive", "lammps_version",
           "require_lammps", "serve"]

#: Thermostats of :meth:`LammpsEngine.run`.
THERMOSTATS = ("bussi", "langevin", "nose-hoover")
INSTALL_HINT = "pip install 'swapmc[lammps]'"
_CMDARGS = ["-screen", "none", "-log", "none", "-nocite"]
# Largest displacement of an atom per FIRE iteration (length units), as swapmc.md.fire.
_FIRE_MAX_MOVE = 0.1
# FIRE restarts when recomputed forces miss the tolerance by rounding.
_MIN_RETRIES = 4
# LAMMPS style constants (lammps.LMP_STYLE_GLOBAL, LMP_TYPE_*, LMP_SIZE_*).
_GLOBAL, _SCALAR, _VECTOR, _ARRAY, _SIZE_VECTOR, _SIZE_ROWS = 0, 0, 1, 2, 3, 4


class LammpsError(ValueError):
    """LAMMPS stopped a command with an error (its message, e.g. lost atoms)."""


# ----------------------------------------------------------------------------- loading
def _import_lammps():
    try:
        import lammps
    except ImportError as err:
        raise ImportError(f"the LAMMPS engine needs the LAMMPS Python module ({err}): "
                          f"{INSTALL_HINT}") from None
    return lammps


def _new_instance(comm=None):
    """A LAMMPS instance, on ``comm`` (mpi4py communicator) or MPI_COMM_WORLD."""
    lammps = _import_lammps()
    try:
        return lammps.lammps(cmdargs=list(_CMDARGS), comm=comm)
    except OSError:
        # The PyPI wheel links against the MPICH library of the environment's lib
        # directory, which the loader does not search: make it global, then retry.
        lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
        if not os.path.exists(lib):
            raise
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        return lammps.lammps(cmdargs=list(_CMDARGS), comm=comm)


def require_lammps() -> None:
    """Raise ``ImportError`` (with the install command) unless LAMMPS can be started."""
    lammps_version()


def lammps_version() -> str:
    """LAMMPS version string of the installed module (starts and closes an instance)."""
    try:
        lmp = _new_instance()
    except ImportError:
        raise
    except Exception as err:  # OSError from the loader, LAMMPS start-up errors
        raise ImportError(f"the LAMMPS Python module does not start ({err}): "
                          f"{INSTALL_HINT}") from None
    try:
        return f"LAMMPS {lmp.version()}"
    finally:
        lmp.close()


# ----------------------------------------------------------------------------- operations
# Every LAMMPS call of the engine is one of these; under MPI rank 0 broadcasts the name and
# arguments and every rank executes the same function (collective calls stay matched).
def _op_commands(lmp, lines):
    lmp.commands_list(list(lines))


def _op_gather(lmp, name, dtype, count):
    data = lmp.gather_atoms(name, dtype, count)
    arr = np.ctypeslib.as_array(data).copy()
    return arr.reshape(-1, count) if count > 1 else arr


def _op_scatter(lmp, name, dtype, count, values):
    arr = np.ascontiguousarray(values, dtype=np.float64 if dtype else np.int32).ravel()
    lmp.scatter_atoms(name, dtype, count, np.ctypeslib.as_ctypes(arr))


def _op_box(lmp):
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    h = np.array([[boxhi[0] - boxlo[0], xy, xz], [0.0, boxhi[1] - boxlo[1], yz],
                  [0.0, 0.0, boxhi[2] - boxlo[2]]])
    return np.array(boxlo, dtype=np.float64), h


def _op_global(lmp, name):
    return lmp.extract_global(name)


def _op_setting(lmp, name):
    return lmp.extract_setting(name)


def _op_compute_scalar(lmp, cid):
    return float(lmp.extract_compute(cid, _GLOBAL, _SCALAR))


def _op_compute_vector(lmp, cid, n):
    ptr = lmp.extract_compute(cid, _GLOBAL, _VECTOR)
    return np.array([ptr[i] for i in range(n)], dtype=np.float64)


def _op_fix_scalar(lmp, fid):
    return float(lmp.extract_fix(fid, _GLOBAL, _SCALAR, 0, 0))


def _op_fix_rows(lmp, fid, ncol):
    """Rows of a ``fix vector`` (a global vector for one value, an array for several)."""
    if ncol == 1:
        n = int(lmp.extract_fix(fid, _GLOBAL, _SIZE_VECTOR, 0, 0))
        return np.array([lmp.extract_fix(fid, _GLOBAL, _VECTOR, i, 0) for i in range(n)],
                        dtype=np.float64).reshape(n, 1)
    n = int(lmp.extract_fix(fid, _GLOBAL, _SIZE_ROWS, 0, 0))
    return np.array([[lmp.extract_fix(fid, _GLOBAL, _ARRAY, i, j) for j in range(ncol)]
                     for i in range(n)], dtype=np.float64).reshape(n, ncol)


_OPS = {"commands": _op_commands, "gather": _op_gather, "scatter": _op_scatter,
        "box": _op_box, "global": _op_global, "setting": _op_setting,
        "compute_scalar": _op_compute_scalar, "compute_vector": _op_compute_vector,
        "fix_scalar": _op_fix_scalar, "fix_rows": _op_fix_rows}


def _message(err) -> str:
    text = getattr(err, "message", None) or str(err)
    return " ".join(str(text).split())


def _lammps_exception_types():
    lammps = sys.modules.get("lammps")
    abort = getattr(lammps, "MPIAbortException", ()) if lammps else ()
    return abort


class _Session:
    """One LAMMPS instance; with a relay, rank 0 sends every operation (tagged with the
    session's id) to the ranks in :func:`serve`, which hold an instance per session."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, comm):
        _close_orphans()
        self.comm = comm
        self.relay = comm.size > 1
        self.sid = next(self._ids)
        mpi_comm = comm.comm if getattr(comm, "is_mpi", False) else None
        if self.relay:
            comm.bcast((self.sid, "open"), root=0)
        self.lmp = _new_instance(mpi_comm)

    def op(self, name, *args):
        if self.lmp is None:
            raise ValueError("the LAMMPS engine is closed")
        _close_orphans()
        if self.relay:
            self.comm.bcast((self.sid, name, *args), root=0)
        try:
            return _OPS[name](self.lmp, *args)
        except Exception as err:
            abort = _lammps_exception_types()
            if self.relay and abort and isinstance(err, abort):
                # Only this rank failed: the others wait in a collective call forever.
                sys.stderr.write(f"LAMMPS: {_message(err)}\n")
                sys.stderr.flush()
                self.comm.abort(1)
            if type(err) is Exception or (abort and isinstance(err, abort)):
                raise LammpsError(f"LAMMPS: {_message(err)}") from None
            raise

    def close(self):
        if self.lmp is None:
            return
        if self.relay:
            self.comm.bcast((self.sid, "close"), root=0)
        self.lmp.close()
        self.lmp = None


# Sessions of engines that were garbage-collected without close() under a relay. Closing
# one sends a message to the other ranks, which must not happen at an arbitrary moment
# (inside another operation's collective call), so they wait here, instance and all, until
# the next operation or the end of drive().
_ORPHANS: list[_Session] = []


def _close_orphans() -> None:
    while _ORPHANS:
        _ORPHANS.pop().close()


def _default_comm():
    from ..tempering.comm import get_comm

    return get_comm("auto")


def serve(comm=None) -> None:
    """Execute the LAMMPS operations rank 0 sends, until it ends the session.

    Ranks > 0 call this while rank 0 drives :class:`LammpsEngine` objects (see
    :func:`drive`); it returns when rank 0 calls :func:`drive`'s shutdown.

    Parameters
    ----------
    comm : SerialComm or MPIComm, optional
        Default: :func:`swapmc.tempering.comm.get_comm` ``("auto")``.
    """
    comm = _default_comm() if comm is None else comm
    instances = {}
    try:
        while True:
            msg = comm.bcast(None, root=0)
            if msg[0] == "shutdown":
                break
            sid, kind = msg[0], msg[1]
            if kind == "open":
                instances[sid] = _new_instance(comm.comm)
            elif kind == "close":
                lmp = instances.pop(sid, None)
                if lmp is not None:
                    lmp.close()
            else:
                try:
                    _OPS[kind](instances.get(sid), *msg[2:])
                except Exception:  # noqa: BLE001 - LAMMPS errors are collective: rank 0
                    pass  # reports them; one only this rank sees aborts the job there
    finally:
        for lmp in instances.values():
            lmp.close()


def drive(fn, comm=None, default=None):
    """Run ``fn()`` on rank 0 while the other ranks execute its LAMMPS operations.

    Parameters
    ----------
    fn : callable
        Creates and uses :class:`LammpsEngine` objects (and does all I/O); runs on rank 0
        only.
    comm : SerialComm or MPIComm, optional
        Default: :func:`swapmc.tempering.comm.get_comm` ``("auto")`` (MPI under
        ``mpiexec``).
    default
        What ranks > 0 return.

    Returns
    -------
    ``fn()`` on rank 0 (or in a serial run), ``default`` on the other ranks. Rank 0 ends the
    other ranks' :func:`serve` loop also when ``fn`` raises.
    """
    comm = _default_comm() if comm is None else comm
    if comm.size == 1:
        return fn()
    if comm.rank != 0:
        serve(comm)
        return default
    try:
        return fn()
    finally:
        _close_orphans()
        comm.bcast(("shutdown",), root=0)


# ----------------------------------------------------------------------------- engine
class LammpsEngine:
    """The :class:`~swapmc.md.engine.Engine` interface on LAMMPS (see the module docstring).

    Parameters
    ----------
    system : System
        Start configuration (copied). Velocities are kept if present, else zero.
    forcefield : ForceField
        The model (LJ or EAM), its units and MD skin (LAMMPS ``neighbor`` skin).
    dt : float, optional
        MD time step; default :data:`~swapmc.md.engine.DEFAULT_DT` (0.005 tau_LJ or
        0.002 ps).
    thermostat : {"bussi", "langevin", "nose-hoover"}
        Thermostat of :meth:`run` (on the peculiar velocities).
    tau : float, optional
        Bussi relaxation time or Nose-Hoover damping time (time units); default 100 dt.
    friction : float, optional
        Langevin friction (1 / time units); default 1 / (100 dt).
    seed : int or numpy.random.Generator, optional
        Stream of the velocities and of the LAMMPS thermostat seeds.
    comm : SerialComm or MPIComm, optional
        Default: :func:`swapmc.tempering.comm.get_comm` ``("auto")``. With more than one
        rank the engine lives on rank 0 and the others run :func:`serve`.
    workdir : str, optional
        Directory for the data and potential files LAMMPS reads at start-up (removed
        afterwards); default a temporary directory.

    Attributes
    ----------
    units : {"lj", "metal"}
    n : int
    dt, kB : float
    ranks : int
        MPI ranks LAMMPS decomposes the box over.
    """

    def __init__(self, system: System, forcefield: ForceField, *, dt: float | None = None,
                 thermostat: str = "bussi", tau: float | None = None,
                 friction: float | None = None, seed=None, comm=None,
                 workdir: str | None = None):
        if thermostat not in THERMOSTATS:
            raise ValueError(f"unknown thermostat {thermostat!r} (known: "
                             f"{', '.join(THERMOSTATS)})")
        self.forcefield = forcefield
        self.units = forcefield.units
        self.kB = forcefield.kB
        self.dt = float(DEFAULT_DT[self.units] if dt is None else dt)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"time step must be positive, got {dt}")
        self.thermostat_kind = thermostat
        self.tau = 100.0 * self.dt if tau is None else float(tau)
        self.friction = 1.0 / (100.0 * self.dt) if friction is None else float(friction)
        if not (self.tau > 0 and self.friction > 0):
            raise ValueError(f"tau and friction must be positive, got {self.tau}, "
                             f"{self.friction}")
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        forcefield.check_system(system)
        self.comm = _default_comm() if comm is None else comm
        if self.comm.rank != 0:
            raise ValueError("a LammpsEngine lives on rank 0; ranks > 0 run "
                             "swapmc.md.engine_lammps.serve() (see drive())")
        self._species = system.species.copy()
        self._species_names = system.species_names
        self._masses = forcefield.masses(self._species)
        self.time = 0.0
        self.heat = 0.0
        self._thermostat_temperature = math.nan
        self._dirty = True
        self._session = _Session(self.comm)
        try:
            self._setup(system, workdir)
        except BaseException:
            self._session.close()
            raise
        self.nktv2p = float(self._op("global", "nktv2p"))
        # LAMMPS's k_B differs from swapmc's in metal units (8.617343e-5 against
        # 8.617333262e-5 eV/K): temperatures cross over at equal kinetic energy.
        self._kb_ratio = self.kB / float(self._op("global", "boltz"))
        self.ranks = int(self._op("setting", "world_size"))

    # ------------------------------------------------------------------ set-up
    def _op(self, name, *args):
        return self._session.op(name, *args)

    def _setup(self, system: System, workdir) -> None:
        model = self.forcefield.model
        tmp = tempfile.mkdtemp(prefix="swapmc-lammps-", dir=workdir)
        try:
            data = os.path.join(tmp, "start.data")
            s = system.copy()
            if s.velocities is None:
                s.velocities = np.zeros_like(s.positions)
            write_lammps_data(data, s, masses=list(model.masses), comment="swapmc engine")
            potential = None
            if model.kind == "eam":
                potential = os.path.join(tmp, f"potential.eam.{model.setfl_kind}")
                model.write(potential)
            for path in (data, potential):
                if path is not None and path.split() != [path]:
                    raise ValueError(f"LAMMPS cannot read {path!r} (whitespace in the path); "
                                     "choose another temporary directory (TMPDIR)")
            lines = [f"units {self.units}", "atom_style atomic", "atom_modify map yes",
                     "boundary p p p", f"read_data {data}"]
            if system.box.is_orthorhombic:
                lines.append("change_box all triclinic")
            lines += lammps_pair_lines(model, potential)
            lines += [
                f"neighbor {self.forcefield.skin!r} bin",
                "neigh_modify every 1 delay 0 check yes",
                f"timestep {self.dt!r}",
                "min_style fire",
                f"min_modify norm max dmax {_FIRE_MAX_MOVE!r}",
                "compute swapmc_pe all pe",
                "compute swapmc_temp all temp",
                "compute swapmc_press all pressure swapmc_temp",
                "variable swapmc_volume equal vol",
                "thermo_style custom step c_swapmc_pe "
                + " ".join(f"c_swapmc_press[{k}]" for k in range(1, 7)),
                "thermo 0",
                "thermo_modify norm no",
            ]
            self._op("commands", lines)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Close the LAMMPS instance (on every rank); the engine is unusable afterwards."""
        self._session.close()

    def __del__(self):
        session = getattr(self, "_session", None)
        if session is not None and session.relay and session.lmp is not None:
            _ORPHANS.append(session)  # closed at the next safe moment (see _ORPHANS)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def n(self) -> int:
        return int(self._species.shape[0])

    @property
    def step(self) -> int:
        """MD steps done (LAMMPS's timestep counter; minimisations do not count)."""
        return int(self._op("global", "ntimestep"))

    def _box(self):
        return self._op("box")

    def _images(self) -> np.ndarray:
        return self._op("gather", "image", 0, 3).astype(np.int64)

    def _raw(self):
        """Positions relative to the box origin (not wrapped), image flags, cell."""
        boxlo, h = self._box()
        x = self._op("gather", "x", 1, 3) - boxlo
        return x, self._images(), h

    def positions(self) -> np.ndarray:
        x, img, h = self._raw()
        return x + img @ h.T

    def _place(self, unwrapped, h) -> None:
        """Unwrapped positions (N, 3) in the cell ``h`` (within the tilt limits), origin 0.

        ``change_box`` first wraps the atoms into the box it starts from (one period, image
        flags in that box's basis) and then changes the box, so the cell is changed before
        the positions are scattered; a second ``change_box`` to the same cell then wraps
        them (any number of periods, image flags in the new basis) and moves them to their
        processors."""
        self._change_box(h)
        self._op("scatter", "x", 1, 3, unwrapped)
        self._op("scatter", "image", 0, 3, np.zeros((self.n, 3), np.int32))
        self._change_box(h)

    def _change_box(self, h, origin=(0.0, 0.0, 0.0)) -> None:
        """``change_box`` to the cell ``h`` with its origin at ``origin``; atoms outside are
        wrapped into it (image flags updated) and moved to their processors."""
        lx, ly, lz, xy, xz, yz = (float(h[i, j]) for i, j in
                                  ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)))
        ox, oy, oz = (float(c) for c in origin)
        edges = " ".join(f"{k} final {o!r} {o + edge!r}"
                         for k, o, edge in (("x", ox, lx), ("y", oy, ly), ("z", oz, lz)))
        tilts = f"xy final {xy!r} xz final {xz!r} yz final {yz!r}"
        self._op("commands", [f"change_box all {tilts} {edges} units box"])
        self._dirty = True

    def set_positions(self, positions) -> None:
        x = np.array(positions, dtype=np.float64)
        if x.shape != (self.n, 3) or not np.all(np.isfinite(x)):
            raise ValueError(f"positions must be finite with shape ({self.n}, 3)")
        _, h = self._box()
        self._place(x, h)

    def cell(self) -> np.ndarray:
        return self._box()[1]

    def check_cell(self, h) -> None:
        h_red, _ = reduce_cell(h)
        # The native engine's limits, so that a protocol valid on one engine is on both.
        check_cell(h_red, self.forcefield.cutoff, self.forcefield.skin)

    def set_cell(self, h, remap: bool = True) -> None:
        h, h_red, _ = checked_cell(h, self.forcefield)
        x, img, h_old = self._raw()
        u = x + img @ h_old.T
        if remap:
            u = u @ (h @ np.linalg.inv(h_old)).T
        self._place(u, h_red)

    def _evaluate(self) -> None:
        if self._dirty:
            self._op("commands", ["run 0"])
            self._dirty = False

    def energy(self) -> float:
        self._evaluate()
        return self._op("compute_scalar", "swapmc_pe")

    def forces(self) -> np.ndarray:
        self._evaluate()
        return self._op("gather", "f", 1, 3)

    def _stress_of(self, pressure6) -> np.ndarray:
        xx, yy, zz, xy, xz, yz = np.asarray(pressure6, dtype=np.float64) / self.nktv2p
        p = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        return to_user_pressure(-p, self.units)

    def stress(self) -> np.ndarray:
        self._evaluate()
        return self._stress_of(self._op("compute_vector", "swapmc_press", 6))

    def _velocities(self) -> np.ndarray:
        return self._op("gather", "v", 1, 3)

    def system(self) -> System:
        x, img, h = self._raw()
        box = Box.from_matrix(h)
        wrapped, shifts = box.wrap(x)
        return System(wrapped, self._species.copy(), self._species_names, box,
                      images=img + shifts, velocities=self._velocities())

    # ------------------------------------------------------------------ minimisation
    def minimize(self, ftol: float, max_iter: int) -> MinimizeInfo:
        ftol = float(ftol)
        max_iter = int(max_iter)
        if not (ftol > 0 and max_iter >= 1):
            raise ValueError(f"need ftol > 0 and max_iter >= 1, got {ftol}, {max_iter}")
        step0 = self.step
        self._op("commands", [f"timestep {FIRE_DT[self.units]!r}"])
        iterations = 0
        f_max = math.inf
        try:
            for _ in range(_MIN_RETRIES + 1):
                left = max_iter - iterations
                if left <= 0:
                    break
                # etol 0: force criterion only; maxeval generous (FIRE evaluates once per
                # iteration, plus restarts).
                self._op("commands", [f"minimize 0.0 {ftol!r} {left} {10 * left + 100}"])
                iterations += self.step - step0 - iterations
                self._dirty = True
                f = self.forces()
                f_max = float(np.sqrt((f * f).sum(axis=1).max()))
                if f_max < ftol:
                    break
        finally:
            self._op("commands", [f"timestep {self.dt!r}", f"reset_timestep {step0}",
                                  "velocity all set 0.0 0.0 0.0"])
            self._dirty = True
        return MinimizeInfo(self.energy(), f_max, int(iterations), bool(f_max < ftol))

    # ------------------------------------------------------------------ dynamics
    def thermalize(self, temperature: float) -> None:
        ff = self.forcefield
        v = maxwell_boltzmann(self._masses, temperature, ff.kB, ff.mvv2e, self.rng)
        self._op("scatter", "v", 1, 3, v)
        self._dirty = True

    def _stream(self, hdot, sign) -> None:
        """Add (``sign`` +1) or remove (-1) the streaming velocity of a cell moving at
        ``hdot`` = dh/dt (3, 3), as LAMMPS's ``compute temp/deform`` defines it:
        hdot lambda + the box origin's velocity, lambda the fractional position. Lengths
        deform about the box centre, so the origin moves at -diag(hdot) / 2."""
        x, _, h = self._raw()
        lam = x @ np.linalg.inv(h).T
        v = self._velocities() + sign * (lam @ hdot.T - 0.5 * np.diag(hdot))
        self._op("scatter", "v", 1, 3, v)

    def _thermostat(self, temperature, temp_id, deform: bool) -> tuple[list, list, list]:
        """Commands that integrate at ``temperature`` (None: NVE) with the thermostat on
        ``temp_id``; returns (setup, teardown, ids of the fixes whose scalar is the heat
        removed)."""
        kind = self.thermostat_kind if temperature is not None else None
        if kind is None:
            return ["fix swapmc_int all nve"], ["unfix swapmc_int"], []
        t = repr(float(temperature) * self._kb_ratio)
        seed = int(self.rng.integers(1, 900_000_000))  # LAMMPS's generators take < 9e8
        if kind == "nose-hoover":
            style = "nvt/sllod" if deform else "nvt"
            setup = [f"fix swapmc_int all {style} temp {t} {t} {self.tau!r}"]
            if deform:
                setup.append(f"fix_modify swapmc_int temp {temp_id}")
            return setup, ["unfix swapmc_int"], ["swapmc_int"]
        setup = ["fix swapmc_int all nve"]
        if kind == "bussi":
            setup.append(f"fix swapmc_th all temp/csvr {t} {t} {self.tau!r} {seed}")
        else:
            # The native Langevin thermostat counts 3N degrees of freedom.
            setup += [f"compute_modify {temp_id} extra/dof 0",
                      f"fix swapmc_th all langevin {t} {t} {1.0 / self.friction!r} {seed} "
                      "tally yes"]
        setup.append(f"fix_modify swapmc_th temp {temp_id}")
        teardown = ["unfix swapmc_th", "unfix swapmc_int"]
        if kind == "langevin":
            teardown.append(f"compute_modify {temp_id} extra/dof 3")
        return setup, teardown, ["swapmc_th"]

    def _box_only(self, h) -> None:
        """Move the box to ``h`` (same basis) with every atom's position x and image
        flags i unchanged, as LAMMPS's own box update under ``remap v`` does: the atoms
        then sit at x + h i. (``change_box`` alone would first wrap the atoms outside the
        old box into it, which moves their images by the change of the cell.)"""
        x, img, _ = self._raw()
        self._place(x + img @ np.asarray(h).T, h)

    def _box_ahead(self, h_next, remap: bool) -> None:
        """Set the cell of the first step before a deformation run (see the module
        docstring): the box alone (``remap v``, the positions follow through the streaming
        velocity) or with the positions (``remap x``). LAMMPS's first half-kick then uses
        forces in that cell; the velocities are corrected so that it uses the forces of
        the current cell, as the native engine's first half-kick does."""
        f_now = self.forces()
        if remap:
            self.set_cell(h_next, remap=True)
        else:
            self._box_only(h_next)
        acc = 0.5 * self.dt / (self._masses[:, None] * self.forcefield.mvv2e)
        self._op("scatter", "v", 1, 3, self._velocities() + acc * (f_now - self.forces()))

    def _box_back(self, h) -> None:
        """After a ``remap v`` run: the box one step back to ``h`` (given in LAMMPS's
        current basis, so the image flags keep their meaning), then reduced to the tilt
        limits if that step crossed them (a flip keeps the unwrapped positions)."""
        self._box_only(h)
        if not np.array_equal(reduce_cell(h)[1], np.eye(3, dtype=np.int64)):
            self.set_cell(h, remap=False)

    def _integrate(self, steps, every, setup, teardown, heat_fixes, temp_id, press_id,
                   progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``steps`` MD steps with the fixes of ``setup``; samples at the multiples of
        ``every`` of the global step counter after the start, like the native engine.

        Returns
        -------
        time : ndarray, shape (K,)
            Since the start (time units).
        energy : ndarray, shape (K,)
        rows : ndarray, shape (K, 8)
            Pressure tensor (LAMMPS order and unit), temperature (LAMMPS's k_B), volume.
        """
        step0 = self.step
        # Potential energy (extensive) and the intensive rest in two fixes: one fix vector
        # cannot mix them.
        setup = setup + [
            f"fix swapmc_se all vector {every} c_swapmc_pe",
            f"fix swapmc_si all vector {every} "
            + " ".join(f"c_{press_id}[{k}]" for k in range(1, 7))
            + f" c_{temp_id} v_swapmc_volume"]
        teardown = ["unfix swapmc_si", "unfix swapmc_se"] + teardown
        self._op("commands", setup)
        try:
            if progress is None or steps == 0:
                self._op("commands", [f"run {steps}"])
            else:
                # Consecutive runs that fix deform and the thermostat see as one (start,
                # stop); at most ~100 reports, at multiples of PROGRESS_EVERY steps.
                chunk = PROGRESS_EVERY * max(1, steps // (100 * PROGRESS_EVERY))
                progress(0)
                done = 0
                while done < steps:
                    k = min(chunk, steps - done)
                    opts = "" if done == 0 else " pre no post no"
                    self._op("commands", [f"run {k} start {step0} stop {step0 + steps}"
                                          + opts])
                    done += k
                    progress(done)
            energies = self._op("fix_rows", "swapmc_se", 1)[:, 0]
            rows = self._op("fix_rows", "swapmc_si", 8)
            for fid in heat_fixes:
                # LAMMPS reports the energy its thermostat removed.
                self.heat -= self._op("fix_scalar", fid)
        finally:
            self._op("commands", teardown)
            self._dirty = True
        self.time += steps * self.dt
        first = 1 if step0 % every == 0 else 0  # a new fix vector also samples its start
        energies, rows = energies[first:], rows[first:]
        t0 = (every - step0 % every) % every or every
        times = (t0 + every * np.arange(len(energies))) * self.dt
        return times, energies, rows

    def _samples(self, times, energies, rows, volume: bool) -> RunSamples:
        stress = np.array([self._stress_of(r[:6]) for r in rows]).reshape(-1, 3, 3)
        return RunSamples(np.asarray(times, dtype=np.float64), stress, energies,
                          rows[:, 6] / self._kb_ratio, rows[:, 7].copy() if volume else None)

    @staticmethod
    def _check_run(steps, sample_every, temperature) -> tuple[int, int]:
        steps, every = int(steps), int(sample_every)
        if steps < 0 or every < 1:
            raise ValueError(f"need steps >= 0 and sample_every >= 1, got {steps}, {every}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return steps, every

    def _deform_run_command(self, mode, rate, h) -> str:
        if mode == "shear":
            # F = 1 + g e_x e_y^T: xy grows by g ly and xz by g yz.
            parts = [f"xy erate {rate!r}"]
            if h[1, 2] != 0.0:
                parts.append(f"xz erate {float(rate * h[1, 2] / h[2, 2])!r}")
        else:
            # F = diag(e^{rt}, e^{-rt}, 1) scales the first row of h by e^{rt}, the second
            # by e^{-rt} (LAMMPS refuses trate on a zero tilt, which stays zero anyway).
            parts = [f"x trate {rate!r}", f"y trate {-rate!r}"]
            for name, (i, j), r in (("xy", (0, 1), rate), ("xz", (0, 2), rate),
                                    ("yz", (1, 2), -rate)):
                if h[i, j] != 0.0:
                    parts.append(f"{name} trate {r!r}")
        return f"fix swapmc_deform all deform 1 {' '.join(parts)} remap v flip yes"

    def run(self, steps: int, *, temperature: float | None = None, mode: str | None = None,
            rate: float = 0.0, sample_every: int = 1, progress=None) -> RunSamples:
        steps, every = self._check_run(steps, sample_every, temperature)
        rate = float(rate)
        if rate and mode not in RUN_MODES:
            raise ValueError(f"unknown deformation mode {mode!r} (known: "
                             f"{', '.join(RUN_MODES)})")
        deform = bool(rate) and steps > 0
        _, h = self._box()
        if deform:
            if mode == "shear" and abs(rate * h[1, 1] * self.dt) >= 0.5 * h[0, 0]:
                raise ValueError(f"shear rate {rate:g} moves the tilt by more than half the "
                                 f"cell edge {h[0, 0]:.3g} per step")
            # The native engine checks every step's cell; the widths change monotonically.
            self.check_cell(deformed_cell(h, rate * (steps + 1) * self.dt, mode))
        temp_id, press_id = "swapmc_temp", "swapmc_press"
        setup, teardown = [], []
        lgrad = np.zeros((3, 3))
        if deform:
            if mode == "shear":
                lgrad[0, 1] = rate
            else:
                lgrad[0, 0], lgrad[1, 1] = rate, -rate
            # LAMMPS deforms the box at the end of a step, after the forces: a box one step
            # ahead makes the forces of step n see the cell of step n, as in the native
            # engine (positions move with the streaming velocity, remap v).
            self._box_ahead(deformed_cell(h, rate * self.dt, mode), remap=False)
            # Velocities are peculiar between calls; LAMMPS integrates lab velocities.
            self._stream(lgrad @ self._box()[1], +1.0)
            temp_id, press_id = "swapmc_tdef", "swapmc_pdef"
            setup += [f"compute {temp_id} all temp/deform",
                      f"compute {press_id} all pressure {temp_id}",
                      self._deform_run_command(mode, rate, self._box()[1])]
            teardown += ["unfix swapmc_deform", f"uncompute {press_id}",
                         f"uncompute {temp_id}"]
        th_setup, th_teardown, heat = self._thermostat(temperature, temp_id, deform)
        if temperature is not None:
            self._thermostat_temperature = float(temperature)
        try:
            times, energies, rows = self._integrate(steps, every, setup + th_setup,
                                                    th_teardown + teardown, heat, temp_id,
                                                    press_id, progress)
        finally:
            if deform:
                h_now = self._box()[1]
                self._stream(lgrad @ h_now, -1.0)
                # Back to the cell of the last step (the positions are already there).
                self._box_back(deformed_cell(h_now, -rate * self.dt, mode))
        return self._samples(times, energies, rows, volume=False)

    def npt(self, steps: int, *, temperature: float, pressure: float,
            tau_p: float | None = None, compressibility: float | None = None,
            sample_every: int = 1, progress=None) -> RunSamples:
        """Isotropic NPT: ``fix nph ... iso`` (the cell shape kept, ``dilate all``) with
        this engine's thermostat (``fix temp/csvr`` or ``fix langevin``; ``fix npt`` for
        Nose-Hoover), barostat damping time ``tau_p`` (default 100 dt). The native engine's
        stochastic cell rescaling has no LAMMPS counterpart: both sample the NPT
        ensemble, with different volume dynamics; ``compressibility`` (which sets only that
        relaxation rate in the native barostat) is not used."""
        if temperature is None:
            raise ValueError("NPT needs a temperature (the barostat samples NPT only with a "
                             "thermostat)")
        steps, every = self._check_run(steps, sample_every, temperature)
        if not math.isfinite(pressure):
            raise ValueError(f"pressure must be finite, got {pressure}")
        tau_p = 100.0 * self.dt if tau_p is None else float(tau_p)
        if not tau_p > 0:
            raise ValueError(f"tau_p must be positive, got {tau_p}")
        # User unit (epsilon/sigma^3 or GPa) -> energy/length^3 -> LAMMPS's (bar for metal).
        p = repr(float(from_user_pressure(pressure, self.units)) * self.nktv2p)
        baro = f"iso {p} {p} {tau_p!r}"
        if self.thermostat_kind == "nose-hoover":
            t = repr(float(temperature) * self._kb_ratio)
            setup = [f"fix swapmc_int all npt temp {t} {t} {self.tau!r} {baro}"]
            teardown, heat = ["unfix swapmc_int"], ["swapmc_int"]
        else:
            setup, teardown, heat = self._thermostat(temperature, "swapmc_temp", False)
            setup[0] = f"fix swapmc_int all nph {baro}"
            heat = heat + ["swapmc_int"]
        self._thermostat_temperature = float(temperature)
        times, energies, rows = self._integrate(steps, every, setup, teardown, heat,
                                                "swapmc_temp", "swapmc_press", progress)
        return self._samples(times, energies, rows, volume=True)

    def scale_cell(self, factor: float) -> None:
        f = float(factor)
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"scale factor must be positive, got {factor}")
        v = self._velocities()
        self.set_cell(self.cell() * f)
        self._op("scatter", "v", 1, 3, v / f)

    def wiggle(self, steps: int, *, amplitude: float, omega: float, mode: str = "shear",
               temperature: float | None = None, remap_velocities: bool = True,
               sample_every: int = 1, progress=None) -> RunSamples:
        """``fix deform ... variable`` on every cell entry that ``strained_cell`` changes,
        with ``remap v`` (SLLOD: ``compute temp/deform`` and streaming velocities as in
        :meth:`run`) or ``remap x`` (positions remapped, velocities untouched); the box is
        kept one step ahead so that the stress of step n is that of the strain of step n
        (see the module docstring)."""
        steps, every = self._check_run(steps, sample_every, temperature)
        if mode not in WIGGLE_MODES:
            raise ValueError(f"unknown deformation mode {mode!r} (known: "
                             f"{', '.join(WIGGLE_MODES)})")
        amplitude, omega = float(amplitude), float(omega)
        if not (math.isfinite(amplitude) and math.isfinite(omega)):
            raise ValueError("amplitude and omega must be finite")
        _, h0 = self._box()
        for e in (amplitude, -amplitude):
            h = strained_cell(h0, e, mode)
            check_tilts(h)
            check_cell(h, self.forcefield.cutoff, self.forcefield.skin)
        remap_v = bool(remap_velocities)
        step0 = self.step
        # LAMMPS deforms the box at the end of a step, after the forces: the box is kept one
        # step ahead (set to eps(dt) before the run, to eps(t + dt) at the end of the step
        # at t), so the forces of step n see the strain of step n, as in the native engine.
        # eps(t + dt) and its rate as LAMMPS variables of the step counter; the changes of
        # the cell entries are taken from the cell at eps(dt) where the fix starts.
        eps1 = amplitude * math.sin(omega * self.dt)
        t = f"((step-{step0}+1)*{self.dt!r})"
        eps = f"({amplitude!r}*sin({omega!r}*{t}))"
        rate = f"({amplitude * omega!r}*cos({omega!r}*{t}))"
        lines = [f"variable swapmc_eps equal {eps}", f"variable swapmc_rate equal {rate}"]
        entries = []  # (fix deform keyword, cell entry, change, its rate)
        if mode == "shear":
            ly = float(h0[1, 1])
            entries.append(("xy", (0, 1), f"(v_swapmc_eps-{eps1!r})*{ly!r}",
                            f"v_swapmc_rate*{ly!r}"))
        else:
            lateral = f"((1+v_swapmc_eps)^(-0.5)-{(1.0 + eps1) ** -0.5!r})"
            dlateral = "(-0.5*(1+v_swapmc_eps)^(-1.5))"
            for key, (i, j) in (("x", (0, 0)), ("xy", (0, 1)), ("xz", (0, 2)),
                                ("y", (1, 1)), ("yz", (1, 2)), ("z", (2, 2))):
                if h0[i, j] == 0.0:
                    continue
                value = float(h0[i, j])
                if i == 0:  # the first row scales by 1 + eps
                    entries.append((key, (i, j), f"(v_swapmc_eps-{eps1!r})*{value!r}",
                                    f"v_swapmc_rate*{value!r}"))
                else:  # the others by (1 + eps)^(-1/2)
                    entries.append((key, (i, j), f"{lateral}*{value!r}",
                                    f"{dlateral}*v_swapmc_rate*{value!r}"))
        parts = []
        for key, _, change, change_rate in entries:
            lines += [f"variable swapmc_d{key} equal {change}",
                      f"variable swapmc_r{key} equal {change_rate}"]
            parts.append(f"{key} variable v_swapmc_d{key} v_swapmc_r{key}")
        temp_id, press_id = "swapmc_temp", "swapmc_press"
        setup = list(lines)
        teardown = []
        if remap_v:
            temp_id, press_id = "swapmc_tdef", "swapmc_pdef"
            setup += [f"compute {temp_id} all temp/deform",
                      f"compute {press_id} all pressure {temp_id}"]
            teardown += [f"uncompute {press_id}", f"uncompute {temp_id}"]
        setup.append(f"fix swapmc_deform all deform 1 {' '.join(parts)} "
                     f"remap {'v' if remap_v else 'x'} flip no")
        teardown = ["unfix swapmc_deform"] + teardown
        teardown += [f"variable {name} delete" for name in
                     ["swapmc_eps", "swapmc_rate"]
                     + [f"swapmc_{p}{key}" for key, *_ in entries for p in "dr"]]
        th_setup, th_teardown, heat = self._thermostat(temperature, temp_id, remap_v)
        if temperature is not None:
            self._thermostat_temperature = float(temperature)
        # The sample at t = 0 (peculiar velocities, before any streaming is added).
        first = (self.energy(), self.stress(), self._temperature_now())
        if steps == 0:
            return RunSamples(np.zeros(1), first[1][None], np.array([first[0]]),
                              np.array([first[2]]))

        def hdot(time):
            """d strained_cell(h0, eps(time)) / dt."""
            r = amplitude * omega * math.cos(omega * time)
            if mode == "shear":
                d = np.zeros((3, 3))
                d[0, 1] = r * h0[1, 1]
                return d
            lateral = -0.5 * (1.0 + amplitude * math.sin(omega * time)) ** -1.5 * r
            return np.array([r, lateral, lateral])[:, None] * h0

        # remap v: the positions follow the strain through the streaming velocity, so the
        # box alone moves ahead; remap x: positions and box together.
        self._box_ahead(strained_cell(h0, eps1, mode), remap=not remap_v)
        if remap_v:
            self._stream(hdot(0.0), +1.0)
        try:
            times, energies, rows = self._integrate(steps, every, setup + th_setup,
                                                    th_teardown + teardown, heat, temp_id,
                                                    press_id, progress)
        finally:
            done = (self.step - step0) * self.dt
            h_done = strained_cell(h0, amplitude * math.sin(omega * done), mode)
            if remap_v:
                self._stream(hdot(done), -1.0)
                self._box_only(h_done)
            else:
                self.set_cell(h_done, remap=True)
        out = self._samples(times, energies, rows, volume=False)
        return RunSamples(np.concatenate([[0.0], out.time]),
                          np.concatenate([first[1][None], out.stress]),
                          np.concatenate([[first[0]], out.energy]),
                          np.concatenate([[first[2]], out.temperature]))

    def _temperature_now(self) -> float:
        """Kinetic temperature of the current (peculiar) velocities, 3N - 3 degrees of
        freedom (3N with the Langevin thermostat), swapmc's k_B."""
        v = self._velocities()
        ff = self.forcefield
        dof = 3 * self.n - (0 if self.thermostat_kind == "langevin" else 3)
        return float(ff.mvv2e * (self._masses[:, None] * v * v).sum() / (dof * ff.kB))

    def spawn(self, system: System, rng: np.random.Generator) -> LammpsEngine:
        return LammpsEngine(system, self.forcefield, dt=self.dt,
                            thermostat=self.thermostat_kind, tau=self.tau,
                            friction=self.friction, seed=rng, comm=self.comm)

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        x, img, h = self._raw()
        return {"positions": x, "images": img, "velocities": self._velocities(),
                "cell": h, "time": float(self.time), "step": self.step,
                "heat": float(self.heat), "rng": json.dumps(self.rng.bit_generator.state),
                "thermostat_temperature": float(self._thermostat_temperature)}

    def set_state(self, state: dict) -> None:
        h = np.array(state["cell"], dtype=np.float64)
        check_cell(h, self.forcefield.cutoff, self.forcefield.skin)
        x = np.array(state["positions"], dtype=np.float64)
        img = np.array(state["images"], dtype=np.int64)
        v = np.asarray(state["velocities"], dtype=np.float64)
        if x.shape != (self.n, 3) or img.shape != (self.n, 3) or v.shape != (self.n, 3):
            raise ValueError(f"state arrays must have shape ({self.n}, 3)")
        self._op("commands", [f"reset_timestep {int(state['step'])}"])
        self._place(x + img @ h.T, h)
        self._op("scatter", "v", 1, 3, v)
        self.time = float(state["time"])
        self.heat = float(state["heat"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))
        self._thermostat_temperature = float(state.get("thermostat_temperature", math.nan))
        self._dirty = True
