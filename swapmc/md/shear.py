"""Shear protocols on any :class:`~swapmc.md.engine.Engine`: athermal quasistatic shear
(AQS) and shear at a finite rate.

Deformation modes. Strain eps is applied to the reference cell h0 through a deformation
gradient F(eps), h = F h0 (upper triangular, so the cell keeps the LAMMPS convention):

``"shear"``
    Simple shear in the xy plane, F = 1 + gamma e_x e_y^T: the tilt becomes
    xy0 + gamma ly (Lees–Edwards boundaries by the triclinic cell; LAMMPS
    ``fix deform xy``), flow along x, gradient along y. Conjugate stress sigma_xy; the
    small-strain slope is the shear modulus G (C44 of a cubic crystal in its cube axes).
``"pure"``
    Pure shear at constant volume (plane strain): F = diag(1 + eps, 1 / (1 + eps), 1), x
    stretched, y compressed, z fixed. The stress reported is the maximum in-plane shear
    stress (sigma_xx - sigma_yy) / 2, acting on the planes at 45 degrees to x and y, where
    the shear strain is 2 eps to first order: the small-strain slope is 2 G for an
    isotropic solid ((C11 - C12) for a cubic crystal in its cube axes). This is not the
    ``"uniaxial"`` mode of :mod:`swapmc.md.protocols` (y and z both contracting).

The engine may flip a tilted cell (xy -> xy - lx beyond |xy| = lx / 2); strains and
deformation gradients here are always those of the deformation history, never read back
from the cell.

AQS. From the inherent structure of the input (minimised first, strain 0), each step
applies the affine strain increment Delta eps (positions remapped with the cell) and
minimises with FIRE (or, with ``minimizer="lbfgs"``, L-BFGS with a force-based line search:
the same criterion in ~5x fewer force evaluations, ``scripts/bench_aqs.py``) until every
particle's |F_i| < ``ftol`` (default 1e-8 epsilon/sigma in
LJ units; the same number in eV/Å for metals, ~6e-8 epsilon/sigma for Cu–Zr with
epsilon ~ 0.4 eV, sigma ~ 2.5 Å). Every step records the stress tensor, the potential
energy and the minimiser's outcome.

Stress drops. On the elastic branches of a glass under increasing strain the conjugate
stress increases; a **drop** is a step k whose stress falls below the previous one by more
than ``drop_threshold`` (default 1e-6 stress units, far above the stress error left by the
default force tolerance, ~1e-9; raise it when loosening ``ftol``) *and* in which at least
one particle moved non-affinely by more than ``displacement_threshold``: the **particles
involved** are those whose non-affine displacement across the step (positions at k minus
the affinely remapped positions at k - 1) exceeds it (default 0.1 sigma_AA in LJ units,
0.25 Å in metal units, a tenth of a nearest-neighbour distance; on an elastic step the
non-affine displacements are of order Delta eps sigma ~ 1e-4 sigma, so only the
rearranging particles and their close surroundings pass it). The second condition is
needed because a truncated potential whose force does not vanish at r_c (cut-and-shifted
LJ: F(r_c = 2.5) = -0.039 epsilon/sigma) makes the stress jump by ~r_c F(r_c) / V whenever
a pair crosses the cut-off, also on a purely elastic step (a perfect fcc crystal, whose
pairs cross in symmetric groups, shows decreases of 0.02 epsilon/sigma^3 without any
particle moving non-affinely); such steps are counted (``smooth_decreases``), not listed.
For each drop the protocol lists the strain, Delta sigma = sigma_k - sigma_{k-1} (< 0),
Delta E = E_k - E_{k-1} (total potential energy, energy units: the energy released by the
rearrangement minus the elastic work of the step), the number of particles involved and
the largest non-affine displacement; with ``refine`` > 0 also the strain of its onset,
bisected within the step (``refine`` extra minimisations per drop).

Finite-rate shear. The engine's MD deforms the cell continuously at ``rate`` (shear:
d gamma / dt; pure: the true strain rate d ln(1 + eps) / dt), with SLLOD peculiar
velocities and the thermostat acting on them (see :mod:`swapmc.md.engine`). The stress is
sampled every ``sample_every`` steps and averaged in blocks of ``block_strain``;
steady-state averages over strains >= ``steady_from`` come with blocking errors, and with a
check that the stress there is a plateau (:func:`~swapmc.analysis.yielding.plateau_test`:
the slope of its block means against strain consistent with zero; a drifting stress is
flagged ``steady = False``).

Units: stress in epsilon_AA/sigma_AA^3 (lj) or GPa (metal), energy in epsilon_AA or eV,
time in tau_LJ or ps, rates in 1/tau_LJ or 1/ps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..analysis.nonaffine import nonaffine_displacement
from ..analysis.yielding import plateau_test
from ..tempering.statistics import blocking_error
from ..units import LABELS
from .engine import Engine

MODES = ("shear", "pure")
STRESS_UNIT = {u: LABELS[u]["pressure"] for u in LABELS}
ENERGY_UNIT = {u: LABELS[u]["energy"] for u in LABELS}
LENGTH_UNIT = {u: LABELS[u]["length"] for u in LABELS}
TIME_UNIT = {"lj": "tau_LJ", "metal": "ps"}
TEMPERATURE_UNIT = {u: LABELS[u]["temperature"] for u in LABELS}
STRESS_NAME = {"shear": "sigma_xy", "pure": "(sigma_xx - sigma_yy)/2"}

DEFAULT_MAX_STRAIN = 0.2
DEFAULT_STEP = 1e-4
#: FIRE tolerance on every particle's force norm (energy / length) after each AQS step.
DEFAULT_FTOL = 1e-8
DEFAULT_MAX_ITER = 100_000
#: Minimisers an AQS step may use (see :class:`AQS`).
MINIMIZERS = ("fire", "lbfgs")
#: Smallest stress decrease between consecutive AQS steps counted as a drop (stress unit).
DEFAULT_DROP_THRESHOLD = 1e-6
#: Non-affine displacement across a drop above which a particle is involved (length units).
DEFAULT_DISPLACEMENT_THRESHOLD = {"lj": 0.1, "metal": 0.25}
#: Finite-rate output: strain per averaged block.
DEFAULT_BLOCK_STRAIN = 1e-3
SCHEMA = 1


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown shear mode {mode!r} (known: {', '.join(MODES)})")


def deformation_gradient(strain: float, mode: str) -> np.ndarray:
    """F(eps) of a mode (see the module docstring), shape (3, 3), dimensionless."""
    _check_mode(mode)
    if mode == "shear":
        f = np.eye(3)
        f[0, 1] = strain
        return f
    if strain <= -1.0:
        raise ValueError(f"pure-shear strain must exceed -1, got {strain}")
    return np.diag([1.0 + strain, 1.0 / (1.0 + strain), 1.0])


def step_map(strain_from: float, strain_to: float, mode: str) -> np.ndarray:
    """F(to) F(from)^-1: the affine map of one strain increment, shape (3, 3)."""
    _check_mode(mode)
    if mode == "shear":
        f = np.eye(3)
        f[0, 1] = strain_to - strain_from
        return f
    r = (1.0 + strain_to) / (1.0 + strain_from)
    return np.diag([r, 1.0 / r, 1.0])


def conjugate_stress(sigma, mode: str) -> float:
    """sigma_xy (shear) or (sigma_xx - sigma_yy) / 2 (pure) of a (3, 3) stress (any unit)."""
    _check_mode(mode)
    s = np.asarray(sigma)
    if mode == "shear":
        return float(0.5 * (s[0, 1] + s[1, 0]))
    return float(0.5 * (s[0, 0] - s[1, 1]))


def rate_strain(time, rate: float, mode: str):
    """Strain after deforming for ``time`` at ``rate``: rate t (shear) or exp(rate t) - 1
    (pure, true strain rate)."""
    _check_mode(mode)
    t = np.asarray(time, dtype=np.float64)
    return rate * t if mode == "shear" else np.expm1(rate * t)


def find_drops(stress, threshold: float = DEFAULT_DROP_THRESHOLD) -> np.ndarray:
    """Indices k with stress[k] - stress[k - 1] < -threshold, shape (M,), int64."""
    s = np.asarray(stress, dtype=np.float64)
    return np.flatnonzero(np.diff(s) < -float(threshold)) + 1


# ----------------------------------------------------------------------------- records
@dataclass
class Snapshot:
    """One state of a shear run.

    Attributes
    ----------
    strain : float
    positions : ndarray, shape (N, 3)
        Unwrapped positions (length units).
    cell : ndarray, shape (3, 3)
        The engine's cell (possibly flipped).
    deformation : ndarray, shape (3, 3)
        F from the reference state (strain 0).
    energy : float
        Potential energy (energy units).
    stress : float
        Conjugate stress (stress unit).
    """

    strain: float
    positions: np.ndarray = field(repr=False)
    cell: np.ndarray = field(repr=False)
    deformation: np.ndarray = field(repr=False)
    energy: float
    stress: float

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}positions": self.positions, f"{prefix}cell": self.cell,
                f"{prefix}deformation": self.deformation,
                f"{prefix}scalars": np.array([self.strain, self.energy, self.stress])}

    @classmethod
    def from_arrays(cls, d, prefix: str) -> Snapshot:
        strain, energy, stress = (float(x) for x in d[f"{prefix}scalars"])
        return cls(strain, np.array(d[f"{prefix}positions"]), np.array(d[f"{prefix}cell"]),
                   np.array(d[f"{prefix}deformation"]), energy, stress)


@dataclass
class StressDrop:
    """A stress drop of an AQS run (see the module docstring).

    Attributes
    ----------
    step : int
        Index of the AQS step after the drop (row of the stress-strain table).
    strain : float
        Strain after the drop.
    stress_before, stress_after : float
        Conjugate stress at steps k - 1 and k (stress unit).
    stress_change : float
        stress_after - stress_before (< 0).
    energy_change : float
        E_k - E_{k-1}, total potential energy (energy units).
    n_particles : int
        Particles whose non-affine displacement across the step exceeds the threshold.
    max_displacement : float
        Largest non-affine displacement across the step (length units).
    onset_strain : float
        Largest strain known to be still on the branch before the drop: the strain of step
        k - 1, or after bisection (``refine``) the lower end of the final bracket.
    onset_bracket : float
        Width of the bracket [onset_strain, onset_strain + onset_bracket] that holds the
        instability (the step size without bisection).
    """

    step: int
    strain: float
    stress_before: float
    stress_after: float
    stress_change: float
    energy_change: float
    n_particles: int
    max_displacement: float
    onset_strain: float = math.nan
    onset_bracket: float = math.nan

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------- AQS
class AQS:
    """Athermal quasistatic shear of one configuration on an engine, step by step.

    Use :meth:`run` (or :meth:`start` then :meth:`advance` until :attr:`finished`); the
    state between steps is :meth:`get_state` (for checkpoints) and :meth:`set_state`.

    Parameters
    ----------
    engine : Engine
        Holds the configuration to shear (minimised by :meth:`start`).
    mode : {"shear", "pure"}
    max_strain : float
        Last strain (dimensionless, > 0).
    step : float
        Strain increment Delta eps (> 0).
    ftol : float
        Force tolerance of each minimisation (energy / length).
    max_iter : int
        FIRE iterations per minimisation at most.
    drop_threshold : float
        Stress decrease counted as a drop (stress unit).
    displacement_threshold : float, optional
        Non-affine displacement making a particle part of a drop (length units); default
        :data:`DEFAULT_DISPLACEMENT_THRESHOLD` of the engine's units.
    snapshot_strains : sequence of float
        Strains at which the configuration is kept (the first step at or beyond each).
    refine : int
        Bisection steps locating the onset of each drop within its strain step (each one
        minimisation from the state before the drop, strained affinely to the midpoint: a
        rearrangement there, i.e. a non-affine displacement above the threshold, moves the
        upper end of the bracket down, none moves the lower end up); 0 for none. The AQS
        path itself is not changed.
    minimizer : {"fire", "lbfgs"}
        The engine's minimiser (``engine.minimize(..., method=minimizer)``; "fire", the
        default, is the interface's plain call). Both stop at the same per-particle force
        tolerance ``ftol``; L-BFGS (:func:`~swapmc.md.minimize.lbfgs`) needs ~5x fewer
        force evaluations per step on a KA2 glass (``scripts/bench_aqs.py``). On elastic
        steps both reach the same minimum (to ~ftol / stiffness); across a plastic event
        they may end in different minima of the same avalanche, as two engines may.
    extrapolate : bool
        Start each minimisation from the affine map plus the previous step's non-affine
        displacement (linear extrapolation along the elastic branch) instead of the
        affine map alone; skipped after a step in which some particle moved non-affinely
        by more than ``displacement_threshold`` (a rearrangement is not repeated). The
        minimum reached is the same to the tolerance on elastic steps.
    """

    def __init__(self, engine: Engine, *, mode: str = "shear",
                 max_strain: float = DEFAULT_MAX_STRAIN, step: float = DEFAULT_STEP,
                 ftol: float = DEFAULT_FTOL, max_iter: int = DEFAULT_MAX_ITER,
                 drop_threshold: float = DEFAULT_DROP_THRESHOLD,
                 displacement_threshold: float | None = None, snapshot_strains=(),
                 refine: int = 0, minimizer: str = "fire", extrapolate: bool = False):
        _check_mode(mode)
        if minimizer not in MINIMIZERS:
            raise ValueError(f"unknown minimizer {minimizer!r} (known: "
                             f"{', '.join(MINIMIZERS)})")
        self.minimizer = minimizer
        self.extrapolate = bool(extrapolate)
        self._u_prev: np.ndarray | None = None
        for name, v in (("max_strain", max_strain), ("step", step), ("ftol", ftol)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if not (math.isfinite(drop_threshold) and drop_threshold >= 0):
            raise ValueError(f"drop_threshold must be >= 0, got {drop_threshold}")
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.engine = engine
        self.mode = mode
        self.step = float(step)
        self.n_steps = int(math.ceil(max_strain / step - 1e-9))
        self.max_strain = self.n_steps * self.step
        self.ftol = float(ftol)
        self.max_iter = int(max_iter)
        self.drop_threshold = float(drop_threshold)
        self.refine = int(refine)
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}")
        self.displacement_threshold = float(
            DEFAULT_DISPLACEMENT_THRESHOLD[engine.units] if displacement_threshold is None
            else displacement_threshold)
        self.snapshot_strains = sorted(float(s) for s in snapshot_strains)
        for s in self.snapshot_strains:
            if not 0 <= s <= self.max_strain:
                raise ValueError(f"snapshot strain {s:g} is outside [0, {self.max_strain:g}]")
        # The largest strain's cell must suit the engine before any work is done.
        h0 = engine.cell()
        engine.check_cell(deformation_gradient(self.max_strain, mode) @ h0)
        self.k = -1  # last completed step; -1 before start()
        self._rows: list[list[float]] = []
        self.drops: list[StressDrop] = []
        self.smooth_decreases = 0
        self.reference: Snapshot | None = None
        self.snapshots: dict[float, Snapshot] = {}
        self.drop_before: Snapshot | None = None
        self.drop_after: Snapshot | None = None
        self.peak: Snapshot | None = None

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict:
        """The settings that define the run (a resumed run must match them, except a
        larger ``max_strain``)."""
        return {"mode": self.mode, "step": self.step, "ftol": self.ftol,
                "max_iter": self.max_iter, "drop_threshold": self.drop_threshold,
                "displacement_threshold": self.displacement_threshold,
                "refine": self.refine, "units": self.engine.units, "n": self.engine.n,
                "minimizer": self.minimizer, "extrapolate": self.extrapolate}

    def _minimize(self):
        if self.minimizer == "fire":
            return self.engine.minimize(self.ftol, self.max_iter)
        return self.engine.minimize(self.ftol, self.max_iter, method=self.minimizer)

    @property
    def finished(self) -> bool:
        return self.k >= self.n_steps

    def strain_of(self, k: int) -> float:
        """Strain after step k (k Delta eps, not accumulated, so no drift)."""
        return k * self.step

    # ------------------------------------------------------------------ stepping
    def _snapshot(self, strain: float, energy: float, stress: float) -> Snapshot:
        e = self.engine
        return Snapshot(strain, e.positions(), e.cell(),
                        deformation_gradient(strain, self.mode), energy, stress)

    def _record(self, info) -> tuple[float, float]:
        e = self.engine
        sig = e.stress()
        energy = e.energy()
        stress = conjugate_stress(sig, self.mode)
        self._rows.append([self.strain_of(self.k), stress, sig[0, 0], sig[1, 1], sig[2, 2],
                           sig[0, 1], sig[0, 2], sig[1, 2], energy, info.max_force,
                           info.iterations, float(info.converged)])
        return energy, stress

    def start(self) -> None:
        """Minimise the input at strain 0 (its inherent structure) and record row 0."""
        if self.k >= 0:
            return
        info = self._minimize()
        self.k = 0
        energy, stress = self._record(info)
        self.reference = self._snapshot(0.0, energy, stress)
        self.peak = self.reference
        self._maybe_keep(energy, stress)

    def _maybe_keep(self, energy, stress) -> None:
        strain = self.strain_of(self.k)
        for s in self.snapshot_strains:
            if s not in self.snapshots and strain >= s - 1e-12:
                self.snapshots[s] = self._snapshot(strain, energy, stress)

    def advance(self) -> StressDrop | None:
        """One AQS step: affine increment, minimisation, record; the drop if there was
        one."""
        if self.k < 0:
            self.start()
        if self.finished:
            return None
        e = self.engine
        before = e.positions()
        cell_before = e.cell()
        state_before = e.get_state() if self.refine else None
        m = step_map(self.strain_of(self.k), self.strain_of(self.k + 1), self.mode)
        e.set_cell(m @ cell_before)
        if self.extrapolate and self._u_prev is not None:
            e.set_positions(e.positions() + self._u_prev)
        info = self._minimize()
        self.k += 1
        if self.extrapolate:
            u_step = e.positions() - before @ m.T
            elastic = np.sqrt((u_step * u_step).sum(axis=1)).max() <= \
                self.displacement_threshold
            self._u_prev = u_step if elastic else None
        prev = self._rows[-1]
        energy, stress = self._record(info)
        self._maybe_keep(energy, stress)
        if self.peak is None or stress > self.peak.stress:
            # The yield point so far (the stress maximum): its configuration separates the
            # plasticity before yield from that after it.
            self.peak = self._snapshot(self.strain_of(self.k), energy, stress)
        if stress - prev[1] >= -self.drop_threshold:
            return None
        u = nonaffine_displacement(before, e.positions(), cell_before, e.cell(),
                                   deformation=m)
        norm = np.sqrt((u * u).sum(axis=1))
        involved = int((norm > self.displacement_threshold).sum())
        if involved == 0:
            # No rearrangement: a pair crossing the cut-off of a truncated potential
            # (see the module docstring), not a plastic event.
            self.smooth_decreases += 1
            return None
        onset, bracket = self.strain_of(self.k - 1), self.step
        if self.refine:
            onset, bracket = self._onset(state_before, before, cell_before)
        drop = StressDrop(self.k, self.strain_of(self.k), prev[1], stress, stress - prev[1],
                          energy - prev[8], involved, float(norm.max()), onset, bracket)
        self.drops.append(drop)
        if all(drop.stress_change <= d.stress_change for d in self.drops[:-1]):
            # The largest drop so far: keep the states on both sides of it.
            f_prev = deformation_gradient(self.strain_of(self.k - 1), self.mode)
            self.drop_before = Snapshot(self.strain_of(self.k - 1), before, cell_before,
                                        f_prev, prev[8], prev[1])
            self.drop_after = self._snapshot(self.strain_of(self.k), energy, stress)
        return drop

    def _onset(self, state_before, before, cell_before) -> tuple[float, float]:
        """Bisect the strain of the instability between steps k - 1 and k; the engine is
        left in the state after step k."""
        e = self.engine
        after = e.get_state()
        lo, hi = self.strain_of(self.k - 1), self.strain_of(self.k)
        for _ in range(self.refine):
            mid = 0.5 * (lo + hi)
            e.set_state(state_before)
            m = step_map(self.strain_of(self.k - 1), mid, self.mode)
            e.set_cell(m @ cell_before)
            self._minimize()
            u = nonaffine_displacement(before, e.positions(), cell_before, e.cell(),
                                       deformation=m)
            if np.sqrt((u * u).sum(axis=1)).max() > self.displacement_threshold:
                hi = mid
            else:
                lo = mid
        e.set_state(after)
        return lo, hi - lo

    def run(self, callback=None) -> AQSResult:
        """Run to ``max_strain``; ``callback(self)`` after every step (checkpoints,
        progress). Returns :meth:`result`."""
        self.start()
        if callback is not None:
            callback(self)
        while not self.finished:
            self.advance()
            if callback is not None:
                callback(self)
        return self.result()

    # ------------------------------------------------------------------ output
    def table(self) -> np.ndarray:
        """Rows so far, shape (k + 1, 12): strain, stress, sigma_xx, sigma_yy, sigma_zz,
        sigma_xy, sigma_xz, sigma_yz, energy, max_force, iterations, converged (0/1)."""
        return np.array(self._rows, dtype=np.float64).reshape(-1, len(COLUMNS))

    def result(self) -> AQSResult:
        t = self.table()
        e = self.engine
        final = self._snapshot(self.strain_of(self.k), t[-1, 8], t[-1, 1])
        return AQSResult(self.mode, e.units, e.n, self.step, self.ftol, t, list(self.drops),
                         self.reference, dict(self.snapshots), self.drop_before,
                         self.drop_after, final, self.finished, self.drop_threshold,
                         self.displacement_threshold, self.smooth_decreases, self.peak)

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """Arrays and a JSON string ("meta") from which :meth:`set_state` continues."""
        state = {f"engine_{k}": v for k, v in self.engine.get_state().items()}
        state["table"] = self.table()
        meta = {"schema": SCHEMA, "k": self.k, "settings": self.settings(),
                "drops": [d.as_dict() for d in self.drops],
                "smooth_decreases": self.smooth_decreases,
                "snapshot_strains": sorted(self.snapshots)}
        if self.reference is not None:
            state.update(self.reference.arrays("reference_"))
        for i, s in enumerate(sorted(self.snapshots)):
            state.update(self.snapshots[s].arrays(f"snapshot{i}_"))
        if self.drop_before is not None:
            state.update(self.drop_before.arrays("drop_before_"))
            state.update(self.drop_after.arrays("drop_after_"))
        if self.peak is not None:
            state.update(self.peak.arrays("peak_"))
        if self._u_prev is not None:
            state["extrapolation"] = self._u_prev
        state["meta"] = json.dumps(meta)
        return state

    def set_state(self, state) -> None:
        """Continue from :meth:`get_state` output (settings must match, see
        :meth:`settings`)."""
        meta = json.loads(str(state["meta"]))
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"checkpoint schema {meta.get('schema')} is not {SCHEMA}")
        mine = self.settings()
        # Checkpoints from before these options existed ran the defaults.
        theirs = {"minimizer": "fire", "extrapolate": False, **meta["settings"]}
        diff = sorted(k for k in mine if theirs.get(k) != mine[k])
        if diff:
            raise ValueError("the checkpoint was written with other settings: " + ", ".join(
                f"{k} = {theirs.get(k)!r} (now {mine[k]!r})" for k in diff))
        if meta["k"] > self.n_steps:
            raise ValueError(f"the checkpoint is at strain {self.strain_of(meta['k']):g}, "
                             f"beyond max_strain {self.max_strain:g}")
        self.engine.set_state({k[len("engine_"):]: state[k] for k in state
                               if k.startswith("engine_")})
        self.k = int(meta["k"])
        self._rows = np.array(state["table"]).tolist()
        self.drops = [StressDrop(**d) for d in meta["drops"]]
        self.smooth_decreases = int(meta["smooth_decreases"])
        self.reference = (Snapshot.from_arrays(state, "reference_")
                          if "reference_scalars" in state else None)
        self.snapshots = {s: Snapshot.from_arrays(state, f"snapshot{i}_")
                          for i, s in enumerate(meta["snapshot_strains"])}
        if "drop_before_scalars" in state:
            self.drop_before = Snapshot.from_arrays(state, "drop_before_")
            self.drop_after = Snapshot.from_arrays(state, "drop_after_")
        # Checkpoints written before the peak was kept have none: it is then the stress
        # maximum of the steps run after the resume.
        self.peak = (Snapshot.from_arrays(state, "peak_") if "peak_scalars" in state
                     else None)
        self._u_prev = (np.array(state["extrapolation"], dtype=np.float64)
                        if "extrapolation" in state else None)


COLUMNS = ("strain", "stress", "sigma_xx", "sigma_yy", "sigma_zz", "sigma_xy", "sigma_xz",
           "sigma_yz", "energy", "max_force", "iterations", "converged")


@dataclass
class AQSResult:
    """Outcome of an AQS run.

    Attributes
    ----------
    mode, units : str
    n : int
    step, ftol : float
    table : ndarray, shape (K, 12)
        One row per step, columns :data:`COLUMNS`: strain, conjugate stress and the six
        stress components (stress unit), total potential energy (energy units), the
        minimiser's final largest force (energy / length), its iterations and 1.0 when it
        converged.
    drops : list of StressDrop
    reference : Snapshot
        The inherent structure at strain 0.
    snapshots : dict of float to Snapshot
        At the requested strains.
    drop_before, drop_after : Snapshot or None
        The states on both sides of the largest drop.
    final : Snapshot
    finished : bool
    drop_threshold, displacement_threshold : float
    smooth_decreases : int
        Steps whose stress decreased beyond the threshold without any particle passing
        the displacement threshold (not drops; see the module docstring).
    peak : Snapshot or None
        The state at the stress maximum (the yield point of
        :mod:`swapmc.analysis.yielding`; the first step reaching it).
    """

    mode: str
    units: str
    n: int
    step: float
    ftol: float
    table: np.ndarray = field(repr=False)
    drops: list = field(repr=False)
    reference: Snapshot = field(repr=False)
    snapshots: dict = field(repr=False)
    drop_before: Snapshot | None = field(repr=False)
    drop_after: Snapshot | None = field(repr=False)
    final: Snapshot = field(repr=False)
    finished: bool = True
    drop_threshold: float = DEFAULT_DROP_THRESHOLD
    displacement_threshold: float = math.nan
    smooth_decreases: int = 0
    peak: Snapshot | None = field(default=None, repr=False)

    @property
    def strain(self) -> np.ndarray:
        return self.table[:, 0]

    @property
    def stress(self) -> np.ndarray:
        return self.table[:, 1]

    @property
    def energy(self) -> np.ndarray:
        return self.table[:, 8]

    @property
    def largest_drop(self) -> StressDrop | None:
        return min(self.drops, key=lambda d: d.stress_change) if self.drops else None

    def summary(self) -> dict:
        """Scalars of the curve: peak stress and its strain, largest drop, first drop,
        final stress (stress unit), whether every minimisation converged."""
        k = int(np.argmax(self.stress))
        big = self.largest_drop
        return {"mode": self.mode, "n": self.n, "steps": int(self.table.shape[0] - 1),
                "max_strain": float(self.strain[-1]), "peak_stress": float(self.stress[k]),
                "peak_strain": float(self.strain[k]), "final_stress": float(self.stress[-1]),
                "residual_stress": float(self.stress[0]),
                "energy_per_particle_initial": float(self.energy[0] / self.n),
                "n_drops": len(self.drops),
                "smooth_decreases": self.smooth_decreases,
                "first_drop_strain": self.drops[0].strain if self.drops else None,
                "largest_drop": big.as_dict() if big else None,
                "all_converged": bool(np.all(self.table[:, 11] == 1.0)),
                "max_iterations": int(self.table[:, 10].max())}


# ----------------------------------------------------------------------------- finite rate
class RateShear:
    """Shear at a constant rate and temperature by MD on an engine, block by block.

    Parameters
    ----------
    engine : Engine
    rate : float
        Strain rate (1 / time units): d gamma / dt (shear) or the true strain rate (pure).
    temperature : float
        Thermostat target (epsilon_AA/k_B or K).
    mode : {"shear", "pure"}
    max_strain : float
        Last strain.
    block_strain : float
        Strain per output block (rounded to whole MD steps, at least one sample).
    sample_every : int
        MD steps between stress samples.
    equilibration_steps : int
        Steps at T without deformation before shearing (after fresh velocities).
    steady_from : float, optional
        Strain from which the steady-state mean is taken; default max_strain / 2.
    """

    def __init__(self, engine: Engine, *, rate: float, temperature: float,
                 mode: str = "shear", max_strain: float = DEFAULT_MAX_STRAIN,
                 block_strain: float = DEFAULT_BLOCK_STRAIN, sample_every: int = 10,
                 equilibration_steps: int = 0, steady_from: float | None = None):
        _check_mode(mode)
        for name, v in (("rate", rate), ("temperature", temperature),
                        ("max_strain", max_strain), ("block_strain", block_strain)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if int(sample_every) < 1 or int(equilibration_steps) < 0:
            raise ValueError("sample_every must be >= 1 and equilibration_steps >= 0")
        self.engine = engine
        self.rate = float(rate)
        self.temperature = float(temperature)
        self.mode = mode
        self.sample_every = int(sample_every)
        self.equilibration_steps = int(equilibration_steps)
        # Blocks of whole sample intervals; the run length is a whole number of blocks.
        true_max = max_strain if mode == "shear" else math.log1p(max_strain)
        true_block = block_strain if mode == "shear" else math.log1p(block_strain)
        per_step = self.rate * engine.dt
        self.block_steps = max(1, round(true_block / per_step / self.sample_every)) \
            * self.sample_every
        self.n_blocks = max(1, math.ceil(true_max / (per_step * self.block_steps) - 1e-9))
        self.max_strain = float(rate_strain(self.n_blocks * self.block_steps * engine.dt,
                                            self.rate, mode))
        self.steady_from = 0.5 * self.max_strain if steady_from is None else float(
            steady_from)
        h0 = engine.cell()
        engine.check_cell(deformation_gradient(self.max_strain, mode) @ h0)
        self.block = -1  # blocks completed; -1 before start()
        self._rows: list[list[float]] = []
        self._samples: list[np.ndarray] = []
        self.reference: Snapshot | None = None

    def settings(self) -> dict:
        return {"mode": self.mode, "rate": self.rate, "temperature": self.temperature,
                "dt": self.engine.dt, "block_steps": self.block_steps,
                "sample_every": self.sample_every,
                "equilibration_steps": self.equilibration_steps,
                "units": self.engine.units, "n": self.engine.n}

    @property
    def finished(self) -> bool:
        return self.block >= self.n_blocks

    def start(self) -> None:
        """Fresh velocities at T, then the undeformed equilibration."""
        if self.block >= 0:
            return
        e = self.engine
        e.thermalize(self.temperature)
        if self.equilibration_steps:
            e.run(self.equilibration_steps, temperature=self.temperature)
        self.block = 0
        self.reference = Snapshot(0.0, e.positions(), e.cell(), np.eye(3), e.energy(),
                                  conjugate_stress(e.stress(), self.mode))

    def advance(self) -> None:
        """One block of ``block_steps`` MD steps."""
        if self.block < 0:
            self.start()
        if self.finished:
            return
        e = self.engine
        r = e.run(self.block_steps, temperature=self.temperature, mode=self.mode,
                  rate=self.rate, sample_every=self.sample_every)
        t0 = self.block * self.block_steps * e.dt
        strain = rate_strain(t0 + r.time, self.rate, self.mode)
        stress = np.array([conjugate_stress(s, self.mode) for s in r.stress])
        self.block += 1
        n = e.n
        self._rows.append([float(strain.mean()), float(rate_strain(
            self.block * self.block_steps * e.dt, self.rate, self.mode)),
            float(stress.mean()), float(stress.std(ddof=1)) if stress.size > 1 else math.nan,
            *np.mean(r.stress, axis=0)[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]].tolist(),
            float(r.energy.mean() / n), float(r.temperature.mean()), float(stress.size)])
        self._samples.append(np.column_stack([strain, stress, r.energy / n, r.temperature]))

    def run(self, callback=None) -> RateShearResult:
        self.start()
        if callback is not None:
            callback(self)
        while not self.finished:
            self.advance()
            if callback is not None:
                callback(self)
        return self.result()

    def table(self) -> np.ndarray:
        """Block rows, shape (B, 13), columns :data:`RATE_COLUMNS`."""
        return np.array(self._rows, dtype=np.float64).reshape(-1, len(RATE_COLUMNS))

    def samples(self) -> np.ndarray:
        """Every sample, shape (K, 4): strain, conjugate stress, energy per particle,
        temperature."""
        return (np.concatenate(self._samples) if self._samples else np.empty((0, 4)))

    def result(self) -> RateShearResult:
        samples = self.samples()
        e = self.engine
        steady = samples[samples[:, 0] >= self.steady_from] if samples.size else samples
        mean, err = (blocking_error(steady[:, 1], min_blocks=16) if steady.shape[0]
                     else (math.nan, math.nan))
        strain = float(rate_strain(max(self.block, 0) * self.block_steps * e.dt, self.rate,
                                   self.mode))
        final = Snapshot(strain, e.positions(), e.cell(),
                         deformation_gradient(strain, self.mode), e.energy(),
                         conjugate_stress(e.stress(), self.mode))
        plateau = (plateau_test(samples[:, 0], samples[:, 1], self.steady_from).as_dict()
                   if samples.size else None)
        return RateShearResult(self.mode, e.units, e.n, self.rate, self.temperature, e.dt,
                               self.table(), samples, float(mean), float(err),
                               self.steady_from, self.reference, final, self.finished,
                               plateau)

    def get_state(self) -> dict:
        state = {f"engine_{k}": v for k, v in self.engine.get_state().items()}
        state["table"] = self.table()
        state["samples"] = self.samples()
        state["block_sizes"] = np.array([len(s) for s in self._samples], np.int64)
        state.update(self.reference.arrays("reference_") if self.reference else {})
        state["meta"] = json.dumps({"schema": SCHEMA, "block": self.block,
                                    "settings": self.settings()})
        return state

    def set_state(self, state) -> None:
        meta = json.loads(str(state["meta"]))
        mine, theirs = self.settings(), meta["settings"]
        diff = sorted(k for k in mine if theirs.get(k) != mine[k])
        if meta.get("schema") != SCHEMA or diff:
            raise ValueError("the checkpoint was written with other settings: " + ", ".join(
                f"{k} = {theirs.get(k)!r} (now {mine[k]!r})" for k in diff))
        if meta["block"] > self.n_blocks:
            raise ValueError("the checkpoint is beyond max_strain")
        self.engine.set_state({k[len("engine_"):]: state[k] for k in state
                               if k.startswith("engine_")})
        self.block = int(meta["block"])
        self._rows = np.array(state["table"]).tolist()
        samples = np.array(state["samples"])
        edges = np.concatenate([[0], np.cumsum(state["block_sizes"])])
        self._samples = [samples[a:b] for a, b in zip(edges[:-1], edges[1:])]
        self.reference = (Snapshot.from_arrays(state, "reference_")
                          if "reference_scalars" in state else None)


RATE_COLUMNS = ("strain", "strain_end", "stress", "stress_std", "sigma_xx", "sigma_yy",
                "sigma_zz", "sigma_xy", "sigma_xz", "sigma_yz", "energy_per_particle",
                "temperature", "samples")


@dataclass
class RateShearResult:
    """Outcome of a finite-rate shear run.

    Attributes
    ----------
    mode, units : str
    n : int
    rate : float
        1 / time units.
    temperature : float
        Target temperature.
    dt : float
    table : ndarray, shape (B, 13)
        One row per block, columns :data:`RATE_COLUMNS`: mean strain of the block's
        samples, strain at its end, mean conjugate stress and its standard deviation over
        the block's samples (stress unit; not an error of the mean), mean stress
        components, mean potential energy per particle (energy units), mean kinetic
        temperature, number of samples.
    samples : ndarray, shape (K, 4)
        strain, conjugate stress, energy per particle, temperature of every sample.
    steady_stress, steady_stress_err : float
        Mean conjugate stress over strains >= ``steady_from`` and its blocking standard
        error (NaN with fewer than 16 samples).
    steady_from : float
    reference, final : Snapshot
        After the undeformed equilibration, and at the end.
    finished : bool
    plateau : dict or None
        The steady-state check of the samples at strains >= ``steady_from``
        (:func:`swapmc.analysis.yielding.plateau_test`, as a dict): ``steady`` is True when
        the slope of the stress over that window is zero within its blocking error (95 %
        two-sided), False for a drifting stress (not yet steady: shear further, or start the
        window later), None when the window is too short for its correlation time.
    """

    mode: str
    units: str
    n: int
    rate: float
    temperature: float
    dt: float
    table: np.ndarray = field(repr=False)
    samples: np.ndarray = field(repr=False)
    steady_stress: float = math.nan
    steady_stress_err: float = math.nan
    steady_from: float = math.nan
    reference: Snapshot | None = field(default=None, repr=False)
    final: Snapshot | None = field(default=None, repr=False)
    finished: bool = True
    plateau: dict | None = field(default=None, repr=False)

    @property
    def strain(self) -> np.ndarray:
        return self.table[:, 0]

    @property
    def stress(self) -> np.ndarray:
        return self.table[:, 2]

    def summary(self) -> dict:
        k = int(np.argmax(self.stress)) if self.table.shape[0] else 0
        return {"mode": self.mode, "n": self.n, "rate": self.rate,
                "temperature": self.temperature, "dt": self.dt,
                "blocks": int(self.table.shape[0]),
                "max_strain": float(self.table[-1, 1]) if self.table.shape[0] else 0.0,
                "peak_stress": float(self.stress[k]) if self.table.shape[0] else None,
                "peak_strain": float(self.strain[k]) if self.table.shape[0] else None,
                "steady_from": self.steady_from, "steady_stress": self.steady_stress,
                "steady_stress_err": self.steady_stress_err,
                "steady": None if self.plateau is None else self.plateau["steady"],
                "plateau": self.plateau,
                "mean_temperature": float(self.samples[:, 3].mean())
                if self.samples.size else None}
