"""Mechanical measurements by MD: dynamic mechanical spectroscopy, stress relaxation and the
static (finite-strain) modulus.

Deformation modes (strain eps, engineering, applied to the reference cell h0 as h = S(eps) h0
so the cell stays upper triangular):

``"shear"``
    Simple shear in the xy plane: the tilt becomes xy0 + eps * ly (LAMMPS ``fix deform xy``),
    positions remapped affinely. The conjugate stress is sigma_xy and the modulus measured is
    the shear modulus G (C44 for a cubic crystal in its cube axes).
``"uniaxial"``
    Uniaxial at constant volume: x stretched by (1 + eps), y and z by (1 + eps)^(-1/2). The
    conjugate stress is sigma_xx - (sigma_yy + sigma_zz) / 2, and to linear order the
    modulus measured is E_V = 3 G for an isotropic solid (Young's modulus of an
    incompressible solid; 3 (C11 - C12) / 2 for a cubic crystal along [100]). No bulk
    modulus enters because the volume does not change.

Stresses are Cauchy stresses, positive in tension (:mod:`swapmc.md.stress`), in the user's
unit: epsilon_AA / sigma_AA^3 for ``lj``, GPa for ``metal``. Times are in tau_LJ or ps, so
angular frequencies are rad / tau_LJ or rad / ps (omega = 2 pi / period).

The thermostat during deformation is global (Bussi by default): it only rescales the
kinetic energy, so it does not damp the stress response the way a local (Langevin) friction
would, and it removes the heat the loss modulus dissipates.

Deformation is always at fixed (reference) cell. A glass handed over from Monte Carlo at
another temperature, or at P = 0 with a different density, can first be equilibrated at
(T, P) by :func:`npt_equilibrate` (isotropic stochastic cell rescaling); the protocols do
this when given a ``pressure`` (user unit: epsilon/sigma^3 or GPa) and then deform the cell
of the mean (T, P) volume.

Engines. The protocols drive MD only through the :class:`~swapmc.md.engine.Engine`
interface (:meth:`~swapmc.md.engine.Engine.run`, ``npt``, ``scale_cell``, ``wiggle``,
``set_cell``, ``stress``, ``minimize``, ``thermalize``, ``system``, ``spawn``), so another MD
engine runs them unchanged: pass an engine where a :class:`~swapmc.md.ForceField` is
expected, and every stage (NPT, NVT, each oscillation, each step-strain branch) starts on
``engine.spawn(state, rng)``; ``dt``, ``tau`` and ``friction`` are then the engine's own
settings, and ``thermostat="none"`` still makes the fixed-cell stages NVE. Given a force
field, the stages run on :class:`~swapmc.md.engine.NativeEngine` in continuous mode, which is
step for step the MD these protocols always ran: same random streams, same operations.

Every protocol takes an optional ``step_progress(done, total, stage)``: ``done`` of the
``total`` MD steps of that call are finished, and ``stage`` says what runs now (e.g.
``"NPT T=0.4 P=0"``). It is called at the start of each stage and every few steps, ``done``
never decreases and the last call has ``done == total``. The protocols only report; drawing
a bar is the command line's business. The trajectories are the same with and without it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..analysis.mechanics import (
    DMSMean,
    DMSResult,
    KWWResult,
    average_curves,
    combine_dms,
    fit_kww_glasses,
    fit_oscillation,
)
from ..box import Box
from ..system import System
from ..tempering.statistics import blocking_error
from ..units import LABELS
from .engine import NativeEngine, check_tilts, strained_cell
from .forcefield import ForceField
from .thermostats import BussiThermostat, LangevinThermostat

MODES = ("shear", "uniaxial")
DEFAULT_DT = {"lj": 0.005, "metal": 0.002}  # tau_LJ; ps (2 fs)
STRESS_UNIT = {"lj": "epsilon/sigma^3", "metal": "GPa"}
TIME_UNIT = {"lj": "tau_LJ", "metal": "ps"}
MODULUS_NAME = {"shear": "G (shear)", "uniaxial": "E_V (uniaxial, constant volume)"}
PRESSURE_UNIT = {u: LABELS[u]["pressure"] for u in LABELS}
DENSITY_UNIT = {u: "1/" + LABELS[u]["length"] + "^3" for u in LABELS}
# NPT pre-equilibration steps when a pressure is given without a step count: 10 ps (metal)
# or 25 tau_LJ, i.e. 50 default barostat times (half to relax the volume, half to average).
DEFAULT_NPT_STEPS = 5000
# Default start of the KWW fit window: the affine stress first decays and rings on the
# vibrational time scale (Einstein/Debye periods ~0.2-0.3 tau_LJ for LJ glasses, ~0.15-0.3 ps
# for Cu-Zr), which is not the structural relaxation KWW describes; 1 tau_LJ or 1 ps is
# 3-7 such periods, after which the ringing has died out.
DEFAULT_FIT_FROM = {"lj": 1.0, "metal": 1.0}  # tau_LJ; ps
# Default oscillation cycles: the first is discarded, and 6 analysed cycles give the
# per-cycle error 5 dof (Student-t factor 1.11 for a 68 % interval; 3 cycles would need 1.32).
DEFAULT_CYCLES = 7


# ----------------------------------------------------------------------------- strain
# strained_cell, imported from .engine (whose wiggle deforms cells with it), is part of this
# module's interface too.


def conjugate_stress(sigma, mode: str) -> float:
    """The stress component measured for a mode: sigma_xy (shear) or
    sigma_xx - (sigma_yy + sigma_zz) / 2 (uniaxial at constant volume).

    Parameters
    ----------
    sigma : array_like, shape (3, 3)
        Cauchy stress, positive in tension (any unit; the result has the same).
    mode : {"shear", "uniaxial"}
    """
    s = np.asarray(sigma)
    if mode == "shear":
        return float(0.5 * (s[0, 1] + s[1, 0]))
    if mode == "uniaxial":
        return float(s[0, 0] - 0.5 * (s[1, 1] + s[2, 2]))
    raise ValueError(f"unknown deformation mode {mode!r} (known: {', '.join(MODES)})")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown deformation mode {mode!r} (known: {', '.join(MODES)})")


# ----------------------------------------------------------------------------- MD set-up
def make_thermostat(ff: ForceField, temperature: float, rng: np.random.Generator,
                    kind: str = "bussi", tau: float | None = None,
                    friction: float | None = None, dt: float | None = None):
    """A thermostat for the protocols.

    Parameters
    ----------
    ff : ForceField
    temperature : float
        Target (epsilon/k_B or K).
    rng : numpy.random.Generator
    kind : {"bussi", "langevin", "none"}
        ``"none"`` gives NVE.
    tau : float, optional
        Bussi relaxation time (time units); default 100 dt (LAMMPS's usual damping).
    friction : float, optional
        Langevin gamma (1 / time units); default 1 / (100 dt).
    dt : float, optional
        Time step used for the defaults (default: 0.005 tau_LJ or 2 fs).
    """
    dt = DEFAULT_DT[ff.units] if dt is None else dt
    if kind == "bussi":
        return BussiThermostat(temperature, 100.0 * dt if tau is None else tau, rng)
    if kind == "langevin":
        return LangevinThermostat(temperature, 1.0 / (100.0 * dt) if friction is None
                                  else friction, rng)
    if kind == "none":
        return None
    raise ValueError(f"unknown thermostat {kind!r} (known: bussi, langevin, none)")


class _Engines:
    """How a protocol makes the engine of each stage: :class:`NativeEngine` (continuous) on
    a force field, or ``spawn`` of a given engine."""

    def __init__(self, ff, dt, thermostat, tau, friction):
        if thermostat not in ("bussi", "langevin", "none"):
            raise ValueError(f"unknown thermostat {thermostat!r} (known: bussi, langevin, "
                             "none)")
        # "none": NVE stages; the NPT stage still needs a thermostat (Bussi).
        self.nve = thermostat == "none"
        if isinstance(ff, ForceField):
            self.units = ff.units
            self.dt = DEFAULT_DT[ff.units] if dt is None else float(dt)
            kind = "bussi" if self.nve else thermostat

            def make(system, rng):
                return NativeEngine(system, ff, dt=self.dt, thermostat=kind, tau=tau,
                                    friction=friction, seed=rng, continuous=True)

            self._make = make
        else:
            for name, value in (("dt", dt), ("tau", tau), ("friction", friction)):
                if value is not None:
                    raise ValueError(f"{name} is a setting of the engine: set it when "
                                     "creating the engine, not here")
            for name in ("spawn", "run", "npt", "wiggle", "scale_cell", "system"):
                if not callable(getattr(ff, name, None)):
                    raise TypeError(f"expected a ForceField or an Engine (with {name}()), got "
                                    f"{type(ff).__name__}")
            self.units = ff.units
            self.dt = float(ff.dt)
            self._make = ff.spawn

    def __call__(self, system: System, rng: np.random.Generator):
        return self._make(system, rng)

    def temperature(self, temperature):
        """The thermostat target of a fixed-cell stage (None: NVE)."""
        return None if self.nve else temperature


def _engines(ff, dt=None, thermostat="bussi", tau=None, friction=None) -> _Engines:
    return ff if isinstance(ff, _Engines) else _Engines(ff, dt, thermostat, tau, friction)


@contextmanager
def _stage(engine):
    """The engine of one stage, closed when the stage ends, also on an error
    (:meth:`~swapmc.md.engine.Engine.close`: a LAMMPS instance is released at once; an
    engine without ``close`` is left to the garbage collector)."""
    try:
        yield engine
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()


def _reporting(report, base: int, total: int, stage) -> dict:
    """The ``progress`` keyword of an engine call that reports ``base`` + its steps done to
    ``report(done, total, stage)`` (``stage`` a string or a function of the steps done);
    empty without a report, so engines that draw no bars need not take it."""
    if report is None:
        return {}
    label = stage if callable(stage) else (lambda k: stage)
    return {"progress": lambda k: report(base + k, total, label(k))}


def _run(engine, steps: int, temperature, report, base: int, total: int, stage,
         sample_every: int | None = None):
    """``engine.run`` at a fixed cell; without ``sample_every`` one sample at most (the
    caller wants the state, not the series)."""
    steps = int(steps)
    return engine.run(steps, temperature=temperature,
                      sample_every=max(1, steps) if sample_every is None else sample_every,
                      **_reporting(report, base, total, stage))


def _offset(report, base: int, total: int, suffix: str = ""):
    """The report of a nested protocol call that starts after ``base`` of the caller's
    ``total`` steps, ``suffix`` appended to its stage (None without a report)."""
    if report is None:
        return None
    return lambda done, _total, stage: report(base + done, total, stage + suffix)


def _glass_suffix(index: int, count: int) -> str:
    """", glass 2/6" for the stage text of several samples; nothing for one."""
    return f", glass {index + 1}/{count}" if count > 1 else ""


def equilibrate(system: System, ff, *, temperature: float, steps: int,
                dt: float | None = None, rng: np.random.Generator | None = None,
                thermostat: str = "bussi", tau: float | None = None,
                friction: float | None = None, redraw_velocities: bool = True,
                step_progress=None) -> System:
    """Heat to ``temperature`` and run NVT for ``steps`` steps (fixed cell).

    Velocities are drawn from Maxwell-Boltzmann (zero total momentum) when the system has
    none or ``redraw_velocities``. This function keeps the cell; :func:`npt_equilibrate`
    relaxes it to a pressure first (EAM glasses at P = 0). ``step_progress`` receives the
    steps done (see the module docstring).

    Returns
    -------
    System
        The final state, with velocities (the input is not modified).
    """
    rng = np.random.default_rng() if rng is None else rng
    engines = _engines(ff, dt, thermostat, tau, friction)
    with _stage(engines(system, rng)) as engine:
        if redraw_velocities or system.velocities is None:
            engine.thermalize(temperature)
        _run(engine, steps, engines.temperature(temperature), step_progress, 0, int(steps),
             f"NVT T={temperature:g}")
        return engine.system()


@dataclass
class NPTResult:
    """Isothermal-isobaric pre-equilibration (:func:`npt_equilibrate`).

    Attributes
    ----------
    system : System
        Final state, isotropically rescaled to the mean volume ``volume`` (velocities
        included); the reference cell of the fixed-cell stage that follows.
    temperature : float
        Target temperature (epsilon/k_B or K).
    pressure_target : float
        Imposed pressure P_0 (epsilon/sigma^3 or GPa).
    pressure, pressure_err : float
        Mean instantaneous pressure (virial + kinetic) over the averaging half and its
        blocking standard error (NaN with fewer than 16 samples); same unit.
    volume, volume_err : float
        Mean cell volume over the averaging half and its standard error (length^3).
    volume_initial : float
        Volume of the input configuration (length^3).
    density : float
        N / volume (length^-3: sigma^-3 or Å^-3).
    steps : int
        Steps run; the first half relaxes the volume, the second is averaged.
    pressure_unit : str
    """

    system: System = field(repr=False)
    temperature: float
    pressure_target: float
    pressure: float
    pressure_err: float
    volume: float
    volume_err: float
    volume_initial: float
    density: float
    steps: int
    pressure_unit: str = ""

    def as_dict(self) -> dict:
        """Every field but the system, as plain values."""
        return {k: v for k, v in self.__dict__.items() if k != "system"}


def npt_equilibrate(system: System, ff, *, temperature: float, pressure: float,
                    steps: int = DEFAULT_NPT_STEPS, dt: float | None = None,
                    rng: np.random.Generator | None = None, thermostat: str = "bussi",
                    tau: float | None = None, friction: float | None = None,
                    barostat_tau: float | None = None, compressibility: float | None = None,
                    redraw_velocities: bool = True, step_progress=None) -> NPTResult:
    """Equilibrate at (T, P) with an isotropic barostat, then fix the cell at the mean volume.

    Runs ``steps`` steps of velocity Verlet with the thermostat and
    :class:`~swapmc.md.StochasticCellRescale` (all cell vectors scaled together, so the cell
    keeps its shape, like LAMMPS ``fix npt ... iso``). The first half lets the volume relax;
    over the second half pressure and volume are averaged. The final configuration is then
    scaled isotropically to the *mean* volume: a deformation at fixed cell that started from
    the last, fluctuating volume would carry a static pressure offset of order
    B sigma_V / V = sqrt(k_B T B / V) (~0.4 GPa for 256 Cu atoms at 300 K), whereas the
    mean volume is the (T, P) density up to its statistical error.

    Parameters
    ----------
    system : System
        Start configuration (not modified), e.g. a glass from Monte Carlo.
    ff : ForceField or Engine
        The model (stages on :class:`~swapmc.md.engine.NativeEngine`), or an engine
        whose ``spawn`` starts every stage (see the module docstring).
    temperature : float
        epsilon_AA/k_B (lj) or K (metal).
    pressure : float
        P_0 in the user's unit: epsilon/sigma^3 (lj) or GPa (metal).
    steps : int
        Total steps (>= 2).
    dt : float, optional
        Time step; default 0.005 tau_LJ or 0.002 ps.
    rng : numpy.random.Generator, optional
        Velocities, thermostat and barostat noise.
    thermostat : {"bussi", "langevin", "none"}
        The barostat samples NPT only together with a thermostat, so ``"none"`` (an NVE
        measurement) uses Bussi for this stage.
    tau, friction
        Thermostat parameters, see :func:`make_thermostat`.
    barostat_tau : float, optional
        Barostat relaxation time tau_p (time units); default 100 dt (0.2 ps, 0.5 tau_LJ),
        comparable to the time sound needs to cross a cell of a few hundred particles. The
        stochastic cell rescaling is first order (no volume oscillation), so it may be much
        shorter than the ~1000 dt LAMMPS advises for its Nose-Hoover barostat, and a short
        tau_p gives more independent volumes to average.
    compressibility : float, optional
        beta_T of the barostat (1 / pressure unit); default 0.02 (lj) or 0.01 GPa^-1.
        Sets only how fast the volume relaxes, not the distribution sampled.
    redraw_velocities : bool
        Draw fresh Maxwell-Boltzmann velocities even if the system has some.
    step_progress : callable, optional
        ``step_progress(done, total, stage)`` (see the module docstring).

    Returns
    -------
    NPTResult
    """
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"NPT needs at least 2 steps, got {steps}")
    rng = np.random.default_rng() if rng is None else rng
    engines = _engines(ff, dt, thermostat, tau, friction)
    stage = f"NPT T={temperature:g} P={pressure:g}"
    half = steps // 2
    baro = dict(temperature=temperature, pressure=pressure, tau_p=barostat_tau,
                compressibility=compressibility)
    with _stage(engines(system, rng)) as engine:
        if redraw_velocities or system.velocities is None:
            engine.thermalize(temperature)
        engine.npt(half, sample_every=max(1, half), **baro,
                   **_reporting(step_progress, 0, steps, stage))
        r = engine.npt(steps - half, sample_every=1, **baro,
                       **_reporting(step_progress, half, steps, stage))
        # P = tr(P_ab) / 3 = -tr(sigma) / 3 (exact: negation commutes with the rounding).
        ps = [-float(np.trace(sig) / 3.0) for sig in r.stress]
        # 16 blocks (not 32): the volume decorrelates over ~tau_p, i.e. ~100 samples, and
        # the blocks must outgrow that for the error not to be underestimated.
        p_mean, p_err = blocking_error(ps, min_blocks=16)
        v_mean, v_err = blocking_error(r.volume, min_blocks=16)
        h = engine.cell()
        engine.scale_cell((v_mean / float(h[0, 0] * h[1, 1] * h[2, 2])) ** (1.0 / 3.0))
        out = engine.system()
    return NPTResult(out, float(temperature), float(pressure), p_mean, p_err, v_mean, v_err,
                     float(system.box.volume), out.n / v_mean, steps,
                     PRESSURE_UNIT[engines.units])


def _npt_steps(pressure, npt_steps) -> int:
    """Steps of the NPT stage: 0 without a pressure, the default when only P is given."""
    if pressure is None:
        if npt_steps:
            raise ValueError("npt_steps given without a pressure: give the pressure to "
                             "equilibrate at")
        return 0
    return DEFAULT_NPT_STEPS if npt_steps is None else int(npt_steps)


def _npt_stage(system, engines, *, temperature, pressure, npt_steps, rng, barostat_tau,
               compressibility, redraw_velocities, step_progress=None):
    """:func:`npt_equilibrate` when a pressure (and a non-zero step count) is given, else
    None."""
    n_npt = _npt_steps(pressure, npt_steps)
    if not n_npt:
        return None
    return npt_equilibrate(system, engines, temperature=temperature, pressure=pressure,
                           steps=n_npt, rng=rng, barostat_tau=barostat_tau,
                           compressibility=compressibility,
                           redraw_velocities=redraw_velocities, step_progress=step_progress)


def _prepare(system, engines, *, temperature, steps, pressure, npt_steps, rng, barostat_tau,
             compressibility, redraw_velocities=True, step_progress=None):
    """Optional NPT stage, then ``steps`` NVT steps at the fixed cell; (state, NPTResult or
    None)."""
    n_npt = _npt_steps(pressure, npt_steps)
    total = n_npt + int(steps)
    npt = _npt_stage(system, engines, temperature=temperature, pressure=pressure,
                     npt_steps=npt_steps, rng=rng, barostat_tau=barostat_tau,
                     compressibility=compressibility, redraw_velocities=redraw_velocities,
                     step_progress=_offset(step_progress, 0, total))
    if npt is not None:
        system = npt.system
    # After NPT the velocities are already at T: keep them.
    state = equilibrate(system, engines, temperature=temperature, steps=steps, rng=rng,
                        redraw_velocities=redraw_velocities and npt is None,
                        step_progress=_offset(step_progress, n_npt, total))
    return state, npt


# ----------------------------------------------------------------------------- DMS
@dataclass
class OscillationRun:
    """One oscillatory-strain run.

    Attributes
    ----------
    result : DMSResult
        Fit of the recorded stress (first ``discard_cycles`` cycles dropped).
    t : ndarray, shape (K,)
        Time since the oscillation started (time units).
    strain : ndarray, shape (K,)
        eps(t) = eps_A sin(omega t).
    stress : ndarray, shape (K,)
        Conjugate stress (stress unit, see the module docstring).
    temperature : float
        Mean kinetic temperature over the record.
    mode : str
    system : System
        Final state (strained cell; velocities included).
    npt : NPTResult or None
        The (T, P) pre-equilibration, when a pressure was given.
    """

    result: DMSResult
    t: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    temperature: float
    mode: str
    system: System = field(repr=False)
    npt: NPTResult | None = field(default=None, repr=False)


def oscillatory_strain(system: System, ff, *, temperature: float,
                       period: float, strain_amplitude: float = 0.01,
                       n_cycles: int = DEFAULT_CYCLES,
                       mode: str = "shear", dt: float | None = None,
                       thermostat: str = "bussi", tau: float | None = None,
                       friction: float | None = None, equilibration_steps: int = 0,
                       sample_every: int | None = None, discard_cycles: int = 1,
                       detrend: bool = False, redraw_velocities: bool = False,
                       pressure: float | None = None, npt_steps: int | None = None,
                       barostat_tau: float | None = None,
                       compressibility: float | None = None,
                       remap_velocities: bool = False,
                       rng: np.random.Generator | None = None,
                       step_progress=None) -> OscillationRun:
    """Dynamic mechanical spectroscopy at one frequency: eps(t) = eps_A sin(omega t).

    The cell follows ``strained_cell(h0, eps(t), mode)`` with an affine remap of the positions
    after every drift (LAMMPS ``fix deform ... remap x``); velocities are peculiar velocities
    and are not remapped unless ``remap_velocities`` (the SLLOD term, see
    :meth:`swapmc.md.MD.run`; it changes the moduli of a KA glass by < 1 %). The
    stress is recorded every ``sample_every`` steps and fitted by
    :func:`~swapmc.analysis.mechanics.fit_oscillation` with the first ``discard_cycles``
    cycles dropped (start-up transient).

    Parameters
    ----------
    system : System
        Start configuration (not modified); the reference cell h0 is its cell.
    ff : ForceField or Engine
        The model (stages on :class:`~swapmc.md.engine.NativeEngine`), or an engine
        whose ``spawn`` starts every stage (see the module docstring).
    temperature : float
        epsilon_AA/k_B (lj) or K (metal).
    period : float
        2 pi / omega (time units: tau_LJ or ps). Must span at least ~20 steps.
    strain_amplitude : float
        eps_A (dimensionless), ~0.01: small enough to stay linear, big enough for signal.
    n_cycles : int
        Cycles simulated (including the discarded ones); at least discard_cycles + 2. The
        error of one run has n_cycles - discard_cycles - 1 dof; the default 7 gives 5.
    mode : {"shear", "uniaxial"}
    dt : float, optional
        Time step; default 0.005 tau_LJ or 0.002 ps.
    thermostat, tau, friction
        See :func:`make_thermostat`.
    equilibration_steps : int
        NVT steps at ``temperature`` in the undeformed cell before the oscillation (after
        the NPT stage, if any).
    sample_every : int, optional
        Steps between stress samples; default: about 100 samples per cycle.
    discard_cycles : int
    detrend : bool
        Fit a linear drift of the mean stress too (aging glasses).
    redraw_velocities : bool
        Draw fresh Maxwell-Boltzmann velocities even if the system has some.
    pressure : float, optional
        If given, first equilibrate at (T, P) by :func:`npt_equilibrate` (epsilon/sigma^3
        or GPa) and oscillate about the mean volume's cell; None keeps the input cell.
    npt_steps : int, optional
        Steps of that stage (default :data:`DEFAULT_NPT_STEPS`; 0 skips it).
    barostat_tau, compressibility
        See :func:`npt_equilibrate`.
    remap_velocities : bool
        Apply v -> M^-1 v after each affine remap (SLLOD-consistent peculiar velocities).
    rng : numpy.random.Generator, optional
        Velocities, thermostat and barostat noise.
    step_progress : callable, optional
        ``step_progress(done, total, stage)`` (see the module docstring).

    Returns
    -------
    OscillationRun
    """
    _check_mode(mode)
    if period <= 0 or strain_amplitude <= 0:
        raise ValueError("period and strain_amplitude must be positive")
    if n_cycles < discard_cycles + 2:
        raise ValueError(f"need n_cycles >= discard_cycles + 2 = {discard_cycles + 2} "
                         f"(two analysed cycles give the error), got {n_cycles}")
    rng = np.random.default_rng() if rng is None else rng
    engines = _engines(ff, dt, thermostat, tau, friction)
    dt = engines.dt
    steps_per_period = period / dt
    if steps_per_period < 20:
        raise ValueError(f"period {period} is only {steps_per_period:.1f} time steps; "
                         "use a smaller dt or a longer period")
    every = max(1, int(steps_per_period // 100)) if sample_every is None else int(sample_every)
    n_npt = _npt_steps(pressure, npt_steps)
    n_steps = _oscillation_steps(period, dt, n_cycles)
    total = n_npt + int(equilibration_steps) + n_steps
    npt = _npt_stage(system, engines, temperature=temperature, pressure=pressure,
                     npt_steps=npt_steps, rng=rng, barostat_tau=barostat_tau,
                     compressibility=compressibility, redraw_velocities=redraw_velocities,
                     step_progress=_offset(step_progress, 0, total))
    with _stage(engines(system if npt is None else npt.system, rng)) as engine:
        return _oscillate(engine, engines, system, npt, temperature=temperature,
                          period=period, strain_amplitude=strain_amplitude,
                          n_cycles=n_cycles, mode=mode, equilibration_steps=equilibration_steps,
                          every=every, discard_cycles=discard_cycles, detrend=detrend,
                          redraw_velocities=redraw_velocities,
                          remap_velocities=remap_velocities, step_progress=step_progress,
                          n_npt=n_npt, n_steps=n_steps, total=total)


def _oscillate(engine, engines, system, npt, *, temperature, period, strain_amplitude,
               n_cycles, mode, equilibration_steps, every, discard_cycles, detrend,
               redraw_velocities, remap_velocities, step_progress, n_npt, n_steps,
               total) -> OscillationRun:
    """The fixed-cell part of :func:`oscillatory_strain` on its stage engine."""
    if npt is None and (redraw_velocities or system.velocities is None):
        engine.thermalize(temperature)
    steps_per_period = period / engines.dt
    # Fail before any work if the largest strain is outside the tilt/width limits.
    h0 = engine.cell()
    for e in (strain_amplitude, -strain_amplitude):
        h = strained_cell(h0, e, mode)
        check_tilts(h)
        engine.check_cell(h)
    temp = engines.temperature(temperature)
    if equilibration_steps:
        _run(engine, equilibration_steps, temp, step_progress, n_npt, total,
             f"NVT T={temperature:g}")
    omega = 2.0 * math.pi / period

    def stage(k):
        return (f"DMS T={temperature:g} omega={omega:.3g} cycle "
                f"{min(n_cycles, int(k / steps_per_period) + 1)}/{n_cycles}")

    r = engine.wiggle(n_steps, amplitude=strain_amplitude, omega=omega, mode=mode,
                      temperature=temp, remap_velocities=remap_velocities, sample_every=every,
                      **_reporting(step_progress, total - n_steps, total, stage))
    t = np.asarray(r.time)
    eps = np.array([strain_amplitude * math.sin(omega * x) for x in t])
    y = np.array([conjugate_stress(s, mode) for s in r.stress])
    res = fit_oscillation(t, y, strain_amplitude, omega, discard_cycles=discard_cycles,
                          detrend=detrend, stress_unit=STRESS_UNIT[engines.units],
                          time_unit=TIME_UNIT[engines.units])
    return OscillationRun(res, t, eps, y, float(np.mean(r.temperature)), mode,
                          engine.system(), npt)


def _oscillation_steps(period: float, dt: float, n_cycles: int) -> int:
    """MD steps of an oscillation of ``n_cycles`` periods (one more for the last sample)."""
    steps_per_period = period / dt  # this order of operations, as the oscillation rounds it
    return int(math.ceil(n_cycles * steps_per_period)) + 1


@dataclass
class DMSRow:
    """One (T, omega) point of a DMS sweep, averaged over samples.

    Moduli in the stress unit; errors are 68.3 % half-widths (standard error times the
    Student-t factor of ``error_dof``) over glasses (several samples) or over the cycles of
    one run (one sample), as ``error_method`` says. ``density`` is N / V of the deformed
    reference cell averaged over samples (length^-3), after the NPT stage when there was
    one; ``runs`` holds the per-sample :class:`OscillationRun` and ``npt`` the per-sample
    :class:`NPTResult` at this temperature (empty without NPT).
    """

    temperature: float
    omega: float
    period: float
    m_storage: float
    m_storage_err: float
    m_loss: float
    m_loss_err: float
    tan_delta: float
    tan_delta_err: float
    n_samples: int
    mode: str
    stress_unit: str
    time_unit: str
    density: float = math.nan
    runs: list = field(default_factory=list, repr=False)
    npt: list = field(default_factory=list, repr=False)
    error_dof: float = math.nan
    error_method: str = ""

    def as_dict(self) -> dict:
        """The numbers and labels (not the runs or NPT states)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("runs", "npt")}



def dms_row_values(results) -> tuple[tuple[float, ...], float, str]:
    """The six moduli of one (T, omega) row, their error degrees of freedom and method.

    Parameters
    ----------
    results : sequence of DMSResult
        One per glass, at the same temperature and frequency.

    Returns
    -------
    values : tuple of float
        (M', err, M'', err, tan delta, err): errors over glasses
        (:func:`~swapmc.analysis.mechanics.combine_dms`) with two or more glasses, over the
        cycles of the one run otherwise.
    error_dof : float
    error_method : str
    """
    if len(results) >= 2:
        m: DMSMean = combine_dms(results)
        return ((m.m_storage, m.m_storage_err, m.m_loss, m.m_loss_err, m.tan_delta,
                 m.tan_delta_err), m.error_dof, m.error_method)
    r = results[0]
    return ((r.m_storage, r.m_storage_err, r.m_loss, r.m_loss_err, r.tan_delta,
             r.tan_delta_err), r.error_dof,
            f"single glass: {r.error_method}; glass-to-glass scatter not included")

def dms_sweep(systems, ff, *, omegas, temperatures, strain_amplitude=0.01,
              n_cycles=DEFAULT_CYCLES, mode="shear", dt=None, thermostat="bussi", tau=None,
              friction=None, equilibration_steps=1000, sample_every=None, discard_cycles=1,
              detrend=False, pressure=None, npt_steps=None, barostat_tau=None,
              compressibility=None, remap_velocities=False, rng=None,
              progress=None, step_progress=None) -> list[DMSRow]:
    """DMS over frequencies and temperatures, averaged over samples.

    Each sample is equilibrated once per temperature (fresh velocities; with a ``pressure``
    first ``npt_steps`` steps at (T, P) by :func:`npt_equilibrate`, then
    ``equilibration_steps`` NVT steps at the mean volume) and every frequency starts from
    that equilibrated state, so all frequencies at one T deform the same cell.

    Parameters
    ----------
    systems : System or sequence of System
        Independent samples (glasses) of the same model.
    ff : ForceField or Engine
        The model (stages on :class:`~swapmc.md.engine.NativeEngine`), or an engine
        whose ``spawn`` starts every stage (see the module docstring).
    omegas : sequence of float
        Angular frequencies (rad per time unit).
    temperatures : sequence of float
    pressure : float, optional
        epsilon/sigma^3 or GPa; None deforms the input cells as they are.
    npt_steps : int, optional
        Default :data:`DEFAULT_NPT_STEPS` when a pressure is given.
    progress : callable, optional
        ``progress(row)`` after each (T, omega) point (e.g. to print the table as it grows).
    step_progress : callable, optional
        ``step_progress(done, total, stage)``: MD steps of the whole sweep (see the module
        docstring); the stage names the temperature and the glass, e.g.
        ``"DMS T=0.4 omega=0.0628 cycle 3/7, glass 2/6"``.
    Other parameters
        As :func:`oscillatory_strain` and :func:`npt_equilibrate`.

    Returns
    -------
    list of DMSRow
        Ordered by temperature, then frequency as given. With two or more samples (each
        a glass) the values come from :func:`~swapmc.analysis.mechanics.combine_dms`
        (errors over glasses, G - 1 dof); with one sample, from its fit (errors over its
        cycles, n_cycles - discard_cycles - 1 dof, glass-to-glass scatter not included).
    """
    if isinstance(systems, System):
        systems = [systems]
    systems = list(systems)
    if not systems:
        raise ValueError("no samples")
    rng = np.random.default_rng() if rng is None else rng
    n_glass = len(systems)
    engines = _engines(ff, dt, thermostat, tau, friction)
    step = engines.dt
    n_prepare = _npt_steps(pressure, npt_steps) + int(equilibration_steps)
    n_osc = {omega: _oscillation_steps(2.0 * math.pi / omega, step, n_cycles)
             for omega in omegas}
    total = len(temperatures) * n_glass * (n_prepare + sum(n_osc.values()))
    done = 0
    rows = []
    for temp in temperatures:
        prepared = []
        for i, s in enumerate(systems):
            prepared.append(_prepare(
                s, engines, temperature=temp, steps=equilibration_steps, pressure=pressure,
                npt_steps=npt_steps, rng=rng, barostat_tau=barostat_tau,
                compressibility=compressibility,
                step_progress=_offset(step_progress, done, total,
                                      _glass_suffix(i, n_glass))))
            done += n_prepare
        states = [p[0] for p in prepared]
        npts = [p[1] for p in prepared if p[1] is not None]
        density = float(np.mean([s.n / s.box.volume for s in states]))
        for omega in omegas:
            runs = []
            for i, s in enumerate(states):
                runs.append(oscillatory_strain(
                    s, engines, temperature=temp, period=2.0 * math.pi / omega,
                    strain_amplitude=strain_amplitude, n_cycles=n_cycles, mode=mode,
                    sample_every=sample_every, discard_cycles=discard_cycles,
                    detrend=detrend, remap_velocities=remap_velocities, rng=rng,
                    step_progress=_offset(step_progress, done, total,
                                          _glass_suffix(i, n_glass))))
                done += n_osc[omega]
            results = [r.result for r in runs]
            vals, err_dof, method = dms_row_values(results)
            row = DMSRow(float(temp), float(omega), 2.0 * math.pi / omega, *map(float, vals),
                         len(results), mode, STRESS_UNIT[engines.units],
                         TIME_UNIT[engines.units], density=density, runs=runs, npt=npts,
                         error_dof=float(err_dof), error_method=method)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


# ----------------------------------------------------------------------------- relaxation
@dataclass
class RelaxationResult:
    """Stress relaxation after a step strain, averaged over samples and repeats.

    Attributes
    ----------
    t : ndarray, shape (K,)
        Time since the step (time units); t[0] = 0 is just after the step.
    stress, stress_sem : ndarray, shape (K,)
        Mean conjugate stress: the repeats of each glass are averaged first, then the G
        glass curves. ``stress_sem`` is the standard error over glasses (G >= 2), over the
        repeats of the one glass (G = 1, repeats >= 2), else NaN.
    modulus : ndarray, shape (K,)
        M(t) = stress / strain.
    strain : float
    mode : str
    kww : KWWResult or None
        Fit of M(t) for t >= ``fit_from`` by
        :func:`~swapmc.analysis.mechanics.fit_kww_glasses` (errors from a jackknife over
        glasses, or for one glass from the time-correlated residuals; see its
        ``error_method``, ``fit_range`` and ``at_bound``). None if not requested or failed.
    kww_error : str or None
        Why the fit failed.
    curves : ndarray, shape (S, K)
        The individual curves (S = glasses x repeats).
    glass : ndarray of int, shape (S,)
        Glass (input sample) index of each curve.
    glass_curves : ndarray, shape (G, K)
        Mean stress curve of each glass.
    density : float
        N / V of the strained samples' reference cells, mean over samples (length^-3).
    npt : list of NPTResult
        Per-sample (T, P) pre-equilibration (empty without a pressure).
    """

    t: np.ndarray
    stress: np.ndarray
    stress_sem: np.ndarray
    modulus: np.ndarray
    strain: float
    mode: str
    kww: KWWResult | None
    kww_error: str | None
    curves: np.ndarray = field(repr=False)
    stress_unit: str = ""
    time_unit: str = ""
    density: float = math.nan
    npt: list = field(default_factory=list, repr=False)
    glass: np.ndarray = field(default=None, repr=False)
    glass_curves: np.ndarray = field(default=None, repr=False)


def step_strain_relaxation(systems, ff, *, temperature: float,
                           strain: float = 0.02, mode: str = "shear", duration: float,
                           dt: float | None = None, thermostat: str = "bussi",
                           tau: float | None = None, friction: float | None = None,
                           equilibration_steps: int = 1000, decorrelation_steps: int = 200,
                           repeats: int = 1, sample_every: int = 1, symmetric: bool = True,
                           fit: bool = True, fit_from: float | None = None,
                           pressure: float | None = None, npt_steps: int | None = None,
                           barostat_tau: float | None = None,
                           compressibility: float | None = None,
                           rng: np.random.Generator | None = None,
                           step_progress=None) -> RelaxationResult:
    """Stress relaxation after an instantaneous affine step strain held fixed.

    Per sample: equilibrate (with a ``pressure``, first ``npt_steps`` steps at (T, P) by
    :func:`npt_equilibrate`; then ``equilibration_steps`` NVT steps at the fixed cell, fresh
    velocities); then per repeat: fresh velocities, ``decorrelation_steps`` NVT steps, the
    step strain by :meth:`MD.set_cell` (affine remap, velocities kept), and ``duration`` at
    fixed strain.

    With ``symmetric`` (default) each repeat applies +eps and -eps from the *same* state with
    identical thermostat noise and records (sigma(+eps) - sigma(-eps)) / 2: the equilibrium
    stress fluctuation of that state (large in small systems, and a residual stress of a
    glass) cancels to first order, while the linear response is kept. This costs two runs but
    reduces the noise at short and intermediate times by far more than sqrt(2).

    Parameters
    ----------
    systems : System or sequence of System
        Independent samples.
    ff : ForceField or Engine
        The model (stages on :class:`~swapmc.md.engine.NativeEngine`), or an engine
        whose ``spawn`` starts every stage (see the module docstring).
    temperature : float
    strain : float
        eps_0 (dimensionless, ~0.01-0.02).
    mode : {"shear", "uniaxial"}
    duration : float
        Hold time after the step (time units).
    dt, thermostat, tau, friction
        As :func:`oscillatory_strain`.
    equilibration_steps, decorrelation_steps : int
    repeats : int
        Runs with new velocities per sample.
    sample_every : int
        Steps between samples of sigma.
    symmetric : bool
    fit : bool
        Fit M(t) = Delta M exp[-(t/tau)^beta] + M_r to the mean curve by
        :func:`~swapmc.analysis.mechanics.fit_kww_glasses`: repeats averaged within each
        glass, errors from a jackknife over glasses (one glass: from the time-correlated
        residuals, glass scatter not included).
    fit_from : float, optional
        Fit only t >= fit_from (time units). Default :data:`DEFAULT_FIT_FROM`: 1 tau_LJ or
        1 ps, past the vibrational ringing right after the step. 0 fits everything.
    pressure, npt_steps, barostat_tau, compressibility
        Optional NPT stage, as in :func:`dms_sweep`.
    rng : numpy.random.Generator, optional
    step_progress : callable, optional
        ``step_progress(done, total, stage)``: MD steps of all samples and repeats (see the
        module docstring), e.g. stage ``"hold T=0.4 +eps, repeat 1/4, glass 2/6"``.

    Returns
    -------
    RelaxationResult
    """
    _check_mode(mode)
    if strain == 0:
        raise ValueError("strain must be non-zero")
    if isinstance(systems, System):
        systems = [systems]
    rng = np.random.default_rng() if rng is None else rng
    engines = _engines(ff, dt, thermostat, tau, friction)
    dt = engines.dt
    n_hold = int(round(duration / dt))
    if n_hold < 5 * sample_every:
        raise ValueError("duration too short for 5 samples")
    curves, npts, densities, glass = [], [], [], []
    t_rec = None
    signs = (1.0, -1.0) if symmetric else (1.0,)
    n_glass, n_repeats = len(systems), int(repeats)
    n_prepare = _npt_steps(pressure, npt_steps) + int(equilibration_steps)
    n_repeat = int(decorrelation_steps) + n_hold * len(signs)
    total = n_glass * (n_prepare + n_repeats * n_repeat)
    done = 0
    for g, system in enumerate(systems):
        suffix = _glass_suffix(g, n_glass)
        state, npt = _prepare(system, engines, temperature=temperature,
                              steps=equilibration_steps, pressure=pressure,
                              npt_steps=npt_steps, rng=rng, barostat_tau=barostat_tau,
                              compressibility=compressibility,
                              step_progress=_offset(step_progress, done, total, suffix))
        done += n_prepare
        if npt is not None:
            npts.append(npt)
        densities.append(state.n / state.box.volume)
        for r in range(n_repeats):
            state = equilibrate(state, engines, temperature=temperature,
                                steps=decorrelation_steps, rng=rng, redraw_velocities=True,
                                step_progress=_offset(step_progress, done, total, suffix))
            done += int(decorrelation_steps)
            seed = int(rng.integers(2**63))
            branch = []
            for sign in signs:
                # Same seed in both branches: identical thermostat noise keeps them correlated.
                with _stage(engines(state, np.random.default_rng(seed))) as engine:
                    engine.set_cell(strained_cell(engine.cell(), sign * strain, mode))
                    y0 = conjugate_stress(engine.stress(), mode)
                    rec = _run(engine, n_hold, engines.temperature(temperature),
                               step_progress, done, total,
                               f"hold T={temperature:g} {'+' if sign > 0 else '-'}"
                               f"eps, repeat {r + 1}/{n_repeats}{suffix}",
                               sample_every=sample_every)
                done += n_hold
                branch.append(np.array([y0] + [conjugate_stress(s, mode)
                                               for s in rec.stress]))
                t_rec = np.concatenate([[0.0], rec.time])
            curves.append(0.5 * (branch[0] - branch[1]) if symmetric else branch[0])
            glass.append(g)
    arr = np.stack(curves)
    glass = np.array(glass, dtype=np.int64)
    # Repeats of a glass share its structure: average them first, one curve per glass.
    per_glass = np.stack([arr[glass == g].mean(axis=0) for g in range(len(systems))])
    t = t_rec
    if per_glass.shape[0] >= 2:
        _, mean, sem = average_curves([(t_rec, c) for c in per_glass])
    elif arr.shape[0] >= 2:
        _, mean, sem = average_curves([(t_rec, c) for c in arr])
    else:
        mean, sem = arr[0], np.full_like(arr[0], np.nan)
    kww, err = None, None
    if fit:
        start = DEFAULT_FIT_FROM[engines.units] if fit_from is None else float(fit_from)
        try:
            kww = fit_kww_glasses(t, arr, glass, strain=strain, fit_range=(start, None),
                                  stress_unit=STRESS_UNIT[engines.units],
                                  time_unit=TIME_UNIT[engines.units])
        except (RuntimeError, ValueError) as exc:  # e.g. no decay to fit (elastic solid)
            err = str(exc)
    return RelaxationResult(t, mean, sem, mean / strain, float(strain), mode, kww, err, arr,
                            STRESS_UNIT[engines.units], TIME_UNIT[engines.units],
                            density=float(np.mean(densities)), npt=npts, glass=glass,
                            glass_curves=per_glass)


# ----------------------------------------------------------------------------- static
@dataclass
class StaticModulus:
    """Finite-strain modulus at T = 0 (central difference at +-eps).

    Attributes
    ----------
    affine : float
        From the stresses of the affinely strained inherent structure (Born term; stress
        unit).
    relaxed : float
        After FIRE at each strain (the true static modulus; includes the non-affine
        relaxation, which lowers it).
    energy_per_particle : float
        Inherent-structure energy of the reference (energy units).
    stress0 : float
        Conjugate stress of the reference inherent structure (residual stress).
    converged : bool
        All three minimisations converged.
    """

    affine: float
    relaxed: float
    energy_per_particle: float
    stress0: float
    strain: float
    mode: str
    converged: bool
    stress_unit: str = ""


def static_modulus(system: System, ff, strain: float = 0.01,
                   mode: str = "shear", fmax: float = 1e-8,
                   max_steps: int = 100_000) -> StaticModulus:
    """Modulus from finite strains +-eps of the inherent structure (central difference).

    The system is first minimised (FIRE) at its own cell; the inherent structure is then
    strained affinely by +-eps, its stress taken (affine modulus), and minimised again
    (relaxed modulus). The central difference cancels the residual stress and the
    quadratic term.

    Parameters
    ----------
    system : System
    ff : ForceField or Engine
        The model (stages on :class:`~swapmc.md.engine.NativeEngine`), or an engine
        whose ``spawn`` starts every stage (see the module docstring).
    strain : float
        eps > 0 (dimensionless).
    mode : {"shear", "uniaxial"}
    fmax : float
        FIRE tolerance (energy / length); tight, because the modulus is a derivative.
    max_steps : int

    Returns
    -------
    StaticModulus
    """
    _check_mode(mode)
    if strain <= 0:
        raise ValueError("strain must be positive")
    engines = _engines(ff)
    # Minimisation draws no random numbers; the stream only satisfies spawn.
    rng = np.random.default_rng(0)
    with _stage(engines(system, rng)) as engine:
        ref = engine.minimize(fmax, max_steps)
        is_ = engine.system()
        # After a minimisation the velocities are zero: the stress is the potential part.
        stress0 = conjugate_stress(engine.stress(), mode)
    h0 = is_.box.matrix
    aff, rel, ok = [], [], ref.converged
    for e in (strain, -strain):
        h = strained_cell(h0, e, mode)
        # The affine strain of the inherent structure, as set_cell would remap it, built
        # directly so that each strain starts from the same reference on a new engine.
        s = System.from_unwrapped(is_.positions @ (h @ np.linalg.inv(h0)).T, is_.species,
                                  is_.species_names, Box.from_matrix(h))
        with _stage(engines(s, rng)) as strained:
            aff.append(conjugate_stress(strained.stress(), mode))
            m = strained.minimize(fmax, max_steps)
            ok = ok and m.converged
            rel.append(conjugate_stress(strained.stress(), mode))
    return StaticModulus((aff[0] - aff[1]) / (2 * strain), (rel[0] - rel[1]) / (2 * strain),
                         ref.energy / is_.n, stress0, float(strain), mode, bool(ok),
                         STRESS_UNIT[engines.units])
