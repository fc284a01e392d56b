"""The run loop: melt, equilibrate (tuning), produce; log, save, checkpoint, resume.

Order of operations (the contract that makes kill + resume bit-identical):

1. If ``checkpoint.npz`` exists in the output directory, the resolved config must match the
   one stored in it (except ``run.production_sweeps``, which may grow to extend a run); the
   sampler, the F_s tracker and every random stream are restored and the append-only outputs
   (``thermo.csv``, ``trajectory.xyz``) are truncated back to their size at the checkpoint.
   A checkpoint that is damaged (empty, truncated, failing its CRC, missing or malformed
   arrays, non-finite positions, recorded file sizes the outputs no longer have) is replaced
   by the one before it, ``checkpoint.prev.npz``, with a warning; the damaged file is kept
   as ``checkpoint.damaged.npz``. If neither is usable the run stops with one line naming
   the files and what is wrong with them. Without any checkpoint the initial configuration
   is built and the melt phase starts.
2. Phases run in order: ``melt`` (at ``system.melt_temperature``, generated configurations
   only), ``equilibration`` (step sizes tuned every ``run.tune_every`` sweeps) and
   ``production`` (step sizes frozen). Sweeps are counted globally across phases.
3. The sampler advances in blocks that end exactly at the next event. After each block, in
   this order: step-size tuning, thermo row, F_s snapshot (production), trajectory frame
   (production), progress line, checkpoint. Energy checks run inside the sampler every
   ``run.energy_check_every`` global sweeps.
4. At the end: ``final.xyz``, ``final.data``, ``summary.json`` and a final checkpoint (so
   rerunning a finished run only reprints its summary).

Every file is written atomically or appended and rolled back on resume, so a kill at any
moment leaves no corrupt file. Each new checkpoint first moves the one it replaces to
``checkpoint.prev.npz`` (:func:`~swapmc.io.atomic.atomic_write` with ``previous``), so at
every instant at least one complete checkpoint exists, and the append-only outputs can be
cut back to whichever of the two is resumed: each records the sizes the outputs had when it
was written, and the older one's sizes are a prefix of the newer one's.

In NPT runs, volume moves that would shrink the box edge below twice the cut-off are
rejected (minimum image). A box that keeps hitting that wall does not sample the imposed
pressure: the run warns when more than ``WALL_WARN_FRACTION`` of the volume moves between
two thermo rows hit it (once per phase), and at the end when that fraction of the
production volume moves did; ``summary.json`` then carries ``pressure_note``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__, interrupts
from ._toml import ConfigError, dumps_toml
from .analysis import FsTracker, default_wavenumber
from .build import composition_counts, lattice_configuration, random_configuration
from .config import PRESET_SECTIONS, differences, fingerprint, resolve
from .io import (
    atomic_write,
    parse_type_map,
    read_extxyz,
    read_lammps_data,
    truncate_file,
    write_extxyz,
    write_lammps_data,
)
from .io.atomic import DamagedFileError, read_npz
from .io.lock import DirectoryLock
from .mc import MonteCarlo, MoveSettings
from .mc.sampler import StateError, check_state
from .models.presets import build_preset
from .progress import Progress
from .system import ConfigurationError, System
from .tempering.statistics import blocking_error
from .units import LABELS

PHASES = ("melt", "equilibration", "production")
THERMO_COLUMNS = ["sweep", "phase", "temperature", "energy_per_particle", "pressure", "volume",
                  "density", "acc_displacement", "acc_swap", "acc_volume", "displacement_step"]
# Fraction of volume moves rejected at the 2 r_c box-edge wall above which the run warns
# that the imposed pressure is not sampled (a rare touch during compression is harmless).
WALL_WARN_FRACTION = 0.01
# Checkpoint files in an output directory: the latest, the one it replaced, and a latest
# one found damaged on resume (set aside, so that it never becomes the fallback).
CHECKPOINT_FILES = {"checkpoint": "checkpoint.npz", "previous": "checkpoint.prev.npz",
                    "damaged": "checkpoint.damaged.npz"}
# Fields of a run checkpoint's JSON run_header: name -> (check, what it must be).
_RUN_HEADER = {
    "config": (lambda v: isinstance(v, dict), "a table"),
    "phase_index": (lambda v: type(v) is int and 0 <= v <= len(PHASES), "a phase number"),
    "phase_done": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
    "needs_melt": (lambda v: type(v) is bool, "true or false"),
    "elapsed": (lambda v: type(v) in (int, float), "a number"),
    "last_counts": (lambda v: np.shape(v) == (3, 2), "a 3 x 2 table"),
    "tune_base": (lambda v: np.shape(v) == (3, 2), "a 3 x 2 table"),
    "file_sizes": (lambda v: isinstance(v, dict) and all(
        k in ("thermo", "trajectory") and (x is None or type(x) is int and x >= 0)
        for k, x in v.items()), "a table of file sizes"),
    "has_fs": (lambda v: type(v) is bool, "true or false"),
}


class CheckpointDamage(ValueError):
    """A checkpoint file that cannot be resumed from (the message says why)."""


class CheckpointUnusable(ConfigurationError):
    """No checkpoint of an output directory can be resumed from (every one is damaged).

    Attributes
    ----------
    problems : dict
        Checkpoint path -> what is wrong with it.
    """

    def __init__(self, message: str, problems: dict):
        super().__init__(message)
        self.problems = dict(problems)


def warn_stderr(text: str) -> None:
    """Default warning channel of runs: one ``warning: ...`` line on standard error."""
    print(f"warning: {text}", file=sys.stderr, flush=True)


@dataclass
class RunResult:
    """What a run produced."""

    directory: str
    summary: dict
    files: dict = field(default_factory=dict)
    resumed: bool = False


def initial_system(cfg: dict, preset, seed: int) -> tuple[System, bool]:
    """Build or read the starting configuration; returns (system, needs_melt)."""
    sys_cfg = cfg["system"]
    init = sys_cfg["init"]
    if init in ("random", "lattice"):
        if preset.density is None:
            raise ConfigError("[state] density is needed to generate a configuration")
        counts = composition_counts(preset.composition, sys_cfg["n"], preset.model.species)
        if init == "random":
            system = random_configuration(counts, preset.model.species, preset.density, seed,
                                          min_distance=sys_cfg["min_distance"])
        else:
            system = lattice_configuration(counts, preset.model.species, preset.density, seed)
        return system, True
    if not os.path.exists(init):
        raise ConfigError(f"[system] init: {init!r} is neither 'random', 'lattice' nor a file")
    if init.endswith((".xyz", ".extxyz")):
        system = read_extxyz(init)
    else:
        # A data file without type labels (LAMMPS write_data) needs [system] type_map, or
        # species named in its Masses comments; the reader's error says how.
        type_map = sys_cfg.get("type_map")
        system = read_lammps_data(init, species_names=tuple(preset.model.species),
                                  type_map=parse_type_map(type_map) if type_map else None)
    return system, False


def sampler_for(cfg, preset, system, seed_seq) -> MonteCarlo:
    moves = MoveSettings.from_dict(dict(preset.moves))
    return MonteCarlo(
        system,
        preset.model,
        cfg["system"]["melt_temperature"],
        pressure=preset.pressure,
        moves=moves,
        seed=seed_seq,
        skin=None if cfg["run"]["skin"] == "auto" else cfg["run"]["skin"],
        energy_check_every=cfg["run"]["energy_check_every"],
    )


class Run:
    """One Monte Carlo run described by a resolved config (see :func:`swapmc.config.resolve`).

    Parameters
    ----------
    cfg : dict
        Resolved configuration.
    progress : bool, optional
        Override ``output.progress`` (e.g. False on MPI ranks other than 0).
    log : callable, optional
        Where one-line messages go (``print`` by default; pass a no-op to silence).
    warn : callable, optional
        Where warnings go (a checkpoint fallback, volume moves at the 2 r_c wall). By
        default one ``warning: ...`` line on standard error (printed above the progress bar
        when one is drawn), so that warnings stay visible when ``log`` is silenced.
    """

    def __init__(self, cfg: dict, progress: bool | None = None, log=print, warn=None):
        self.cfg = cfg
        self.log = log
        self.warn = self._warn_stderr if warn is None else warn
        self._progress: Progress | None = None
        self.show_progress = cfg["output"]["progress"] if progress is None else progress
        preset_part = {k: v for k, v in cfg.items() if k in PRESET_SECTIONS}
        self.preset = build_preset(preset_part, f"preset {cfg['preset']!r}")
        self.units = LABELS[self.preset.model.units]
        self.elements = dict(cfg.get("elements", {}))
        self.outdir = cfg["output"]["directory"]
        self.paths = {
            name: os.path.join(self.outdir, fname)
            for name, fname in [
                ("checkpoint", "checkpoint.npz"),
                ("thermo", "thermo.csv"),
                ("trajectory", "trajectory.xyz"),
                ("final_xyz", "final.xyz"),
                ("final_data", "final.data"),
                ("summary", "summary.json"),
                ("config", "config.toml"),
                ("fs", "fs.csv"),
            ]
        }
        self.checkpoint_files = {k: os.path.join(self.outdir, v)
                                 for k, v in CHECKPOINT_FILES.items()}
        self.resumed = False
        self.tracker: FsTracker | None = None
        self.phase_index = 0
        self.phase_done = 0
        self.elapsed_before = 0.0
        self.cpu_before = 0.0
        self._last_counts = np.zeros((3, 2), np.int64)
        self._tune_base = np.zeros((3, 2), np.int64)
        # Wall rejections at the last thermo row, and [sweep, volume attempts, wall
        # rejections] when production started (None before).
        self._last_wall = 0
        self._wall_base: list | None = None
        self._wall_warned: set = set()

    def _warn_stderr(self, text: str) -> None:
        if self._progress is not None:
            self._progress.write(f"warning: {text}", file=sys.stderr)
        else:
            warn_stderr(text)

    # -------------------------------------------------------------- phases
    def _phase_plan(self, needs_melt: bool) -> list[tuple[str, int, float, bool]]:
        c = self.cfg
        t = self.preset.temperature
        return [
            ("melt", c["system"]["melt_sweeps"] if needs_melt else 0,
             c["system"]["melt_temperature"], True),
            ("equilibration", c["run"]["equilibration_sweeps"], t, True),
            ("production", c["run"]["production_sweeps"], t, False),
        ]

    # ------------------------------------------------------------- set-up
    def _start_fresh(self):
        seed = self.cfg["run"]["seed"]
        ss = np.random.SeedSequence(seed)
        init_seq, mc_seq = ss.spawn(2)
        init_seed = int(init_seq.generate_state(1)[0])
        system, needs_melt = initial_system(self.cfg, self.preset, init_seed)
        self.needs_melt = needs_melt
        self.mc = sampler_for(self.cfg, self.preset, system, mc_seq)
        os.makedirs(self.outdir, exist_ok=True)
        for name in ("thermo", "trajectory"):
            if os.path.exists(self.paths[name]):
                os.remove(self.paths[name])
        with atomic_write(self.paths["config"]) as fh:
            fh.write(f"# resolved configuration written by swapmc {__version__}\n")
            fh.write(dumps_toml(self.cfg))
        self._write_thermo_header()

    def _resume(self) -> bool:
        """Resume from the latest usable checkpoint; False when there is none.

        The latest checkpoint is tried first, then the previous one. A damaged latest one
        is set aside as ``checkpoint.damaged.npz`` (so the next checkpoint does not rotate
        it into the fallback slot) and a warning says what was wrong and what is redone.
        A checkpoint of a different run is refused outright: that is a user's mistake, not
        damage, and falling back would hide it.
        """
        files = self.checkpoint_files
        latest, previous = files["checkpoint"], files["previous"]
        if not (os.path.exists(latest) or os.path.exists(previous)):
            return False
        problems = {}
        for path in (latest, previous):
            if not os.path.exists(path):
                continue
            try:
                restored = self._read_checkpoint(path)
            except CheckpointDamage as err:
                problems[path] = str(err)
                continue
            break
        else:
            raise CheckpointUnusable(self._unusable(problems), problems)
        self._adopt(restored)
        sweep = self.mc.sweeps_done
        if latest in problems:
            # The damaged file's own header often survives (a flipped bit in one array):
            # it tells how far the run had got.
            reached = _peek_sweeps(latest)
            os.replace(latest, files["damaged"])
            redo = (f"sweeps {sweep}..{reached} ({reached - sweep}) are redone"
                    if reached is not None and reached >= sweep else
                    f"the sweeps after {sweep} are redone")
            self.warn(f"{latest}: {problems[latest]}; resuming from the previous checkpoint "
                      f"{os.path.basename(previous)} at sweep {sweep} instead: {redo}, and "
                      f"the outputs are cut back to that sweep (the damaged file is kept as "
                      f"{os.path.basename(files['damaged'])})")
        elif path == previous:
            self.log(f"{latest} is missing (the run stopped while replacing it): resuming "
                     f"from {os.path.basename(previous)} at sweep {sweep}")
        return True

    def _unusable(self, problems: dict) -> str:
        """One line for 'no checkpoint can be resumed', naming every file and its problem."""
        latest, previous = self.checkpoint_files["checkpoint"], self.checkpoint_files["previous"]
        advice = ("this run cannot resume; to run it again from the start, write it to "
                  "another output directory (-o)")
        if latest not in problems:  # missing: the run stopped while replacing it
            return (f"{previous}: {problems[previous]} ({os.path.basename(latest)} is "
                    f"missing); {advice}")
        if previous not in problems:
            return (f"{latest}: {problems[latest]}; there is no previous checkpoint "
                    f"({os.path.basename(previous)}) to fall back to; {advice}")
        return (f"{latest}: {problems[latest]}; the previous checkpoint "
                f"{os.path.basename(previous)} is unusable too: {problems[previous]}; {advice}")

    def _read_checkpoint(self, path: str) -> dict:
        """Read, check and restore one checkpoint without touching any output file.

        Returns
        -------
        dict
            What :meth:`_adopt` needs (the restored sampler, tracker and run header).

        Raises
        ------
        CheckpointDamage
            When the file is damaged or inconsistent (the message names the field).
        ConfigError
            When it is intact but belongs to another run, or the run would shrink.
        """
        try:
            ck = read_npz(path)
        except DamagedFileError as err:
            raise CheckpointDamage(str(err)) from None
        if "run_header" not in ck:
            raise CheckpointDamage("array 'run_header' is missing")
        try:
            run_header = json.loads(str(ck["run_header"]))
        except ValueError as err:
            raise CheckpointDamage(f"array 'run_header' is not valid JSON ({err})") from None
        if not isinstance(run_header, dict):
            raise CheckpointDamage("array 'run_header' is not a JSON object")
        for key, (ok, what) in _RUN_HEADER.items():
            if key not in run_header:
                raise CheckpointDamage(f"run_header field {key!r} is missing")
            if not ok(run_header[key]):
                raise CheckpointDamage(f"run_header field {key!r} is not {what}")
        stored = run_header["config"]
        try:
            diff = differences(fingerprint(stored), fingerprint(self.cfg))
            done = stored["run"]["production_sweeps"]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CheckpointDamage(f"run_header field 'config' is malformed ({err!r})") from None
        if diff:
            raise ConfigError(
                f"checkpoint {path} belongs to a different run:\n  " + "\n  ".join(diff)
                + "\nRerun with the settings the checkpoint has, or write this run to "
                "another output directory (-o)."
            )
        if self.cfg["run"]["production_sweeps"] < done:
            # Lowering the target would make the stored run and the checkpoint disagree on
            # its length, and a later extension would no longer equal a fresh longer run.
            raise ConfigError(
                f"{self.outdir} holds a run with production_sweeps = {done}; a rerun may "
                f"extend it (production_sweeps >= {done}) but not shorten it. For a shorter "
                "run use another output directory.")
        state = {k: ck[k] for k in ck if not k.startswith(("run_", "fs_"))}
        try:
            header = check_state(state)
            system = System(ck["pos"], ck["species"], tuple(header["species_names"]),
                            _box(ck["lengths"]), images=ck["images"])
            mc = sampler_for(self.cfg, self.preset, system, 0)
            mc.load_state_dict(state)
        except StateError as err:
            raise CheckpointDamage(str(err)) from None
        except ValueError as err:  # System or sampler refusing the stored configuration
            raise CheckpointDamage(f"inconsistent configuration ({err})") from None
        tracker = None
        if run_header["has_fs"]:
            try:
                tracker = FsTracker.from_state_dict(
                    {k[3:]: ck[k] for k in ck if k.startswith("fs_")})
            except KeyError as err:
                raise CheckpointDamage(f"array 'fs_{err.args[0]}' is missing") from None
            except (ValueError, TypeError) as err:
                raise CheckpointDamage(f"F_s tracker state: {err}") from None
        for name, size in run_header["file_sizes"].items():
            target = self.paths[name]
            if size is None:
                continue
            if not os.path.exists(target):
                raise CheckpointDamage(f"{target} is missing (the checkpoint needs its first "
                                       f"{size} bytes)")
            if os.path.getsize(target) < size:
                raise CheckpointDamage(f"{target} has {os.path.getsize(target)} bytes, fewer "
                                       f"than the {size} recorded at this checkpoint")
        return {"mc": mc, "tracker": tracker, "run_header": run_header}

    def _adopt(self, restored: dict) -> None:
        """Take over a checked checkpoint and cut the append-only outputs back to it."""
        run_header = restored["run_header"]
        self.mc = restored["mc"]
        self.tracker = restored["tracker"]
        self.needs_melt = run_header["needs_melt"]
        self.phase_index = run_header["phase_index"]
        self.phase_done = run_header["phase_done"]
        self.elapsed_before = run_header["elapsed"]
        self.cpu_before = run_header.get("cpu", 0.0)
        self._last_counts = np.array(run_header["last_counts"], np.int64)
        self._tune_base = np.array(run_header["tune_base"], np.int64)
        mc = self.mc
        # Checkpoints written before the wall counter existed: it starts here.
        self._last_wall = run_header.get("last_wall", mc.wall_rejections)
        self._wall_base = run_header.get("production_wall_base")
        if self._wall_base is None and self.phase_index >= PHASES.index("production") and (
                "production_wall_base" not in run_header):
            self._wall_base = [mc.sweeps_done, int(mc.counts[2, 0]), mc.wall_rejections]
        for name, size in run_header["file_sizes"].items():
            if size is None:
                if os.path.exists(self.paths[name]):
                    os.remove(self.paths[name])
            else:
                truncate_file(self.paths[name], size)
        self.resumed = True

    def _write_thermo_header(self):
        with open(self.paths["thermo"], "w") as fh:
            u = self.units
            fh.write(f"# swapmc {__version__} thermodynamic log; units: energy {u['energy']}, "
                     f"length {u['length']}, temperature {u['temperature']}, pressure "
                     f"{u['pressure']}; acceptances are over the interval since the last "
                     "row\n")
            fh.write(",".join(THERMO_COLUMNS) + "\n")

    # -------------------------------------------------------------- events
    def _thermo_row(self, phase: str):
        mc = self.mc
        diff = mc.counts - self._last_counts
        self._last_counts = mc.counts.copy()
        wall = mc.wall_rejections - self._last_wall
        self._last_wall = mc.wall_rejections
        if (diff[2, 0] and wall > WALL_WARN_FRACTION * diff[2, 0]
                and phase not in self._wall_warned):
            self._wall_warned.add(phase)
            self.warn(f"{self.outdir}: {phase}, sweep {mc.sweeps_done}: {wall} of {diff[2, 0]} "
                      f"volume moves since the last thermo row "
                      f"({100.0 * wall / diff[2, 0]:.1f} %) were rejected because the box edge "
                      f"would fall below 2 r_c = {mc.min_box_edge:.4g} (the minimum-image "
                      f"limit): the box is at its smallest allowed size and the imposed "
                      f"pressure P = {mc.pressure_imposed:g} {self.units['pressure']} is not "
                      f"reached; {self._wall_advice()} (said once per phase)")
        acc = [diff[k, 1] / diff[k, 0] if diff[k, 0] else float("nan") for k in range(3)]
        row = [mc.sweeps_done, phase, mc.temperature, mc.energy / mc.n, mc.pressure(),
               mc.volume, mc.n / mc.volume, *acc, mc.delta]
        with open(self.paths["thermo"], "a") as fh:
            fh.write(",".join(v if isinstance(v, str) else repr(float(v)) if not isinstance(
                v, (int, np.integer)) else str(v) for v in row) + "\n")

    def _frame(self):
        mc = self.mc
        info = {"sweep": mc.sweeps_done, "temperature": mc.temperature,
                "energy": mc.energy, "energy_unit": self.units["energy"]}
        write_extxyz(self.paths["trajectory"], mc.system(), info=info, append=True,
                     element_names=self.elements or None,
                     masses=list(self.preset.model.masses))

    def _checkpoint(self):
        mc = self.mc
        state = mc.state_dict()
        sizes = {}
        for name in ("thermo", "trajectory"):
            p = self.paths[name]
            sizes[name] = os.path.getsize(p) if os.path.exists(p) else None
        header = {
            "config": self.cfg,
            "phase_index": self.phase_index,
            "phase_done": self.phase_done,
            "needs_melt": self.needs_melt,
            "elapsed": self.elapsed_before + time.perf_counter() - self.t0,
            "cpu": self.cpu_before + time.process_time() - self.c0,
            "last_counts": self._last_counts.tolist(),
            "tune_base": self._tune_base.tolist(),
            "file_sizes": sizes,
            "has_fs": self.tracker is not None,
            "last_wall": self._last_wall,
            "production_wall_base": self._wall_base,
            "version": __version__,
        }
        arrays = dict(state)
        arrays["run_header"] = json.dumps(header)
        if self.tracker is not None:
            arrays.update({"fs_" + k: v for k, v in self.tracker.state_dict().items()})
        # The checkpoint being replaced stays as checkpoint.prev.npz: the fallback if this
        # one is found damaged on resume.
        with atomic_write(self.paths["checkpoint"], "wb", encoding=None,
                          previous=self.checkpoint_files["previous"]) as fh:
            np.savez(fh, **arrays)

    def _start_tracker(self):
        d = self.cfg["diagnostics"]
        if not d["tau_alpha"]:
            return
        mc = self.mc
        species = tracked_species(d["fs_species"], self.preset.model.species,
                                  np.bincount(mc.species, minlength=mc.n_species))
        # A fixed rule of the density, not a per-chain S(q) peak: every chain of a state
        # point then measures F_s at the same q (see default_wavenumber).
        q = default_wavenumber(mc.n / mc.volume) if d["q"] == "auto" else float(d["q"])
        every = (d["fs_every"] if d["fs_every"] > 0
                 else max(1, self.cfg["run"]["production_sweeps"] // 1000))
        self.tracker = FsTracker(q, every, n_species=mc.n_species, species=species)

    # ----------------------------------------------------------------- run
    def execute(self) -> RunResult:
        # One process per output directory: a second one would interleave thermo.csv and
        # overwrite checkpoints. The lock dies with its process, so a kill never blocks the
        # rerun that resumes.
        with DirectoryLock(self.outdir, f"swapmc run ({self.cfg['preset']})"):
            return self._execute()

    def _execute(self) -> RunResult:
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        if not self._resume():
            self._start_fresh()
        plan = self._phase_plan(self.needs_melt)
        total = sum(p[1] for p in plan)
        mc = self.mc
        out = self.cfg["output"]
        progress = self._progress = Progress(total, enabled=self.show_progress)
        if self.resumed:
            self.log(f"resuming {self.outdir} at sweep {mc.sweeps_done} "
                     f"({plan[self.phase_index][0] if self.phase_index < 3 else 'done'})")
        while self.phase_index < len(plan):
            name, length, temperature, tune = plan[self.phase_index]
            mc.temperature = float(temperature)
            if name == "production" and self.phase_done == 0 and self.tracker is None:
                self._start_tracker()
            if name == "production" and self._wall_base is None:
                self._wall_base = [mc.sweeps_done, int(mc.counts[2, 0]), mc.wall_rejections]
            while self.phase_done < length:
                block = length - self.phase_done
                g = mc.sweeps_done
                for every in (out["thermo_every"], out["checkpoint_every"],
                              self.cfg["run"]["tune_every"] if tune else 0,
                              out["trajectory_every"] if name == "production" else 0,
                              self.tracker.every if self.tracker and name == "production"
                              else 0):
                    if every:
                        block = min(block, every - g % every)
                mc.sweep(block)
                # A Ctrl-C swallowed by a first compilation stops the run here.
                interrupts.raise_if_received()
                self.phase_done += block
                g = mc.sweeps_done
                if tune and g % self.cfg["run"]["tune_every"] == 0:
                    mc.tune(mc.counts - self._tune_base)
                    self._tune_base = mc.counts.copy()
                if out["thermo_every"] and g % out["thermo_every"] == 0:
                    self._thermo_row(name)
                if name == "production":
                    if self.tracker is not None and g % self.tracker.every == 0:
                        # Positions and species both in the user's order (the sampler's
                        # internal order is spatially sorted).
                        snap = mc.system()
                        self.tracker.update(snap.unwrapped_positions(), snap.species, sweep=g)
                    if out["trajectory_every"] and g % out["trajectory_every"] == 0:
                        self._frame()
                progress.update(g, f"{name} T={mc.temperature:.4g} E/N={mc.energy / mc.n:.4f}")
                if out["checkpoint_every"] and g % out["checkpoint_every"] == 0:
                    self._checkpoint()
            if tune:
                mc.tuned = True
            self.phase_index += 1
            self.phase_done = 0
        progress.update(mc.sweeps_done, "done", force=True)
        progress.close()
        self._progress = None
        # The final checkpoint sits at the end of production, so that rerunning with more
        # production sweeps extends the run exactly as if it had never stopped.
        self.phase_index, self.phase_done = len(plan) - 1, plan[-1][1]
        self._checkpoint()
        return self._finish()

    def _wall_advice(self) -> str:
        return ("use more particles (the box edge must stay above 2 r_c at the density this "
                "pressure gives) or a lower pressure")

    def _volume_wall(self) -> dict | None:
        """Production volume moves rejected at the 2 r_c wall (None without volume moves).

        Returns
        -------
        dict or None
            ``min_box_edge``, ``attempts`` and ``rejected`` (production volume moves, from
            sweep ``from_sweep``), ``fraction`` (None without attempts), ``total_rejected``
            (the whole run, from sweep ``counted_from_sweep``) and ``note`` (None unless the
            fraction exceeds ``WALL_WARN_FRACTION``).
        """
        mc = self.mc
        if mc.pressure_imposed is None:
            return None
        base = self._wall_base or [mc.sweeps_done, int(mc.counts[2, 0]), mc.wall_rejections]
        attempts = int(mc.counts[2, 0]) - base[1]
        rejected = mc.wall_rejections - base[2]
        fraction = rejected / attempts if attempts else None
        note = None
        if fraction is not None and fraction > WALL_WARN_FRACTION:
            note = (f"the imposed pressure P = {mc.pressure_imposed:g} {self.units['pressure']} "
                    f"was not sampled: {rejected} of {attempts} production volume moves "
                    f"({100.0 * fraction:.1f} %) were rejected because the box edge would fall "
                    f"below 2 r_c = {mc.min_box_edge:.4g} (the minimum-image limit), so the box "
                    "sat at its smallest allowed size and the mean P is that of this box; "
                    f"{self._wall_advice()}")
        return {"min_box_edge": mc.min_box_edge, "from_sweep": base[0], "attempts": attempts,
                "rejected": rejected, "fraction": fraction,
                "total_rejected": mc.wall_rejections,
                "counted_from_sweep": mc.wall_counted_from, "note": note}

    def _production_means(self) -> dict:
        """Means of U/N, P, V and rho over the production rows of thermo.csv, with blocking
        errors (:func:`swapmc.tempering.statistics.blocking_error`; NaN with < 32 rows)."""
        cols = production_rows(self.paths["thermo"],
                               ("energy_per_particle", "pressure", "volume", "density"))
        out = {"rows": len(cols["volume"]),
               "method": "mean over production rows of thermo.csv; standard error by "
                         "blocking (Flyvbjerg & Petersen 1989), NaN with fewer than 32 rows"}
        if not cols["volume"].size:
            # Production shorter than one thermo interval: the final snapshot is all there
            # is; say so instead of printing nothing.
            mc = self.mc
            snap = {"energy_per_particle": mc.energy / mc.n, "pressure": mc.pressure(),
                    "volume": mc.volume, "density": mc.n / mc.volume}
            out["method"] = "no production rows in thermo.csv: final snapshot, no error"
            for k in cols:
                out[k] = {"mean": _finite(snap[k]), "stderr": None}
            return out
        for k, v in cols.items():
            mean, err = blocking_error(v)
            out[k] = {"mean": _finite(mean), "stderr": _finite(err)}
        return out

    def _relaxation_summary(self) -> dict:
        """tau_alpha (± jackknife error), F_s wavenumber and species; writes fs.csv."""
        tr = self.tracker
        names = self.preset.model.species
        tracked = names[tr.species]
        tau, err, groups = tr.tau_alpha()
        t, fs = tr.self_intermediate_scattering()
        out = {
            "tau_alpha_sweeps": _finite(tau),
            "tau_alpha_stderr_sweeps": _finite(err),
            "tau_alpha_error_groups": groups,
            "tau_alpha_all_sweeps": _finite(tr.tau_alpha("all")[0]),
            "fs_q": tr.q,
            "fs_species": tracked,
            "tau_alpha_note": (
                f"F_s(q = {tr.q:.4f}) of the particles that are {tracked} at each time origin, "
                "1/e crossing; error: jackknife over "
                f"{groups} groups of origins" if groups else
                f"F_s(q = {tr.q:.4f}) of the particles that are {tracked} at each time origin; "
                + (f"did not decay below 1/e within {int(t[-1]) if len(t) else 0} sweeps"
                   if not np.isfinite(tau) else
                   "crossed 1/e; no error (production shorter than 6 tau_alpha)")),
        }
        columns = {"t": t, "origins": tr.lag_counts, "fs": fs,
                   "msd": tr.mean_squared_displacement()[1],
                   "fs_all": tr.self_intermediate_scattering("all")[1],
                   "msd_all": tr.mean_squared_displacement("all")[1]}
        for k, name in enumerate(names):
            tk, fk = tr.self_intermediate_scattering(k)
            if tk.size == t.size:
                columns[f"fs_{name}"] = fk
                columns[f"msd_{name}"] = tr.mean_squared_displacement(k)[1]
        with atomic_write(self.paths["fs"]) as fh:
            fh.write(f"# t in MC sweeps; F_s(q = {tr.q!r} {self.units['length']}^-1, t) and MSD "
                     f"({self.units['length']}^2) of the particles of each species at the "
                     f"time origin; fs, msd: tracked species {tracked}; origins: number of "
                     "time origins averaged\n")
            fh.write(",".join(columns) + "\n")
            for i in range(t.size):
                fh.write(",".join(str(int(v[i])) if k in ("t", "origins") else repr(float(v[i]))
                                  for k, v in columns.items()) + "\n")
        return out

    def _finish(self) -> RunResult:
        mc = self.mc
        system = mc.system()
        info = {"sweep": mc.sweeps_done, "temperature": mc.temperature, "energy": mc.energy,
                "energy_unit": self.units["energy"]}
        with atomic_write(self.paths["final_xyz"]) as fh:
            write_extxyz(fh, system, info=info, element_names=self.elements or None,
                         masses=list(self.preset.model.masses))
        write_lammps_data(self.paths["final_data"], system, masses=list(self.preset.model.masses),
                          comment=f"swapmc {__version__} {self.cfg['preset']} sweep "
                                  f"{mc.sweeps_done}")
        prod = self._production_means()
        summary = {
            "swapmc_version": __version__,
            "preset": self.cfg["preset"],
            "units": self.units,
            "n": mc.n,
            "composition": dict(zip(self.preset.model.species,
                                    np.bincount(mc.species, minlength=mc.n_species).tolist())),
            "temperature": mc.temperature,
            "pressure_imposed": mc.pressure_imposed,
            "sweeps": mc.sweeps_done,
            "production": prod,
            "energy_per_particle": prod["energy_per_particle"]["mean"],
            "energy_per_particle_stderr": prod["energy_per_particle"]["stderr"],
            "pressure": prod["pressure"]["mean"],
            "pressure_stderr": prod["pressure"]["stderr"],
            "density": prod["density"]["mean"],
            "density_stderr": prod["density"]["stderr"],
            "final_energy_per_particle": mc.energy / mc.n,
            "final_pressure": mc.pressure(),
            "final_volume": mc.volume,
            "final_density": mc.n / mc.volume,
            "volume_wall": self._volume_wall(),
            "step_sizes_frozen": mc.step_sizes(),
            "acceptance_total": {k: (None if np.isnan(v) else float(v))
                                 for k, v in mc.acceptance().items()},
            "counters": mc.counters(),
            "wall_seconds": self.elapsed_before + time.perf_counter() - self.t0,
            # CPU time of this process: on a shared machine the wall time overstates the
            # cost of a run; the CPU time is what a core-hour figure needs.
            "cpu_seconds": self.cpu_before + time.process_time() - self.c0,
        }
        wall = summary["volume_wall"]
        if wall is not None and wall["note"] is not None:
            # The production mean of P is that of a box held at its smallest size.
            summary["pressure_note"] = wall["note"]
            self.warn(f"{self.outdir}: {wall['note']}")
        if self.tracker is not None:
            summary.update(self._relaxation_summary())
        from .io import lammps_pair_lines, write_lammps_input

        model, potential = self.preset.model, None
        if model.kind == "eam":
            # The exact potential of this run (built-in, file or doped) as a setfl file, so
            # the same glass can be taken straight to LAMMPS with pair_style eam/<kind>.
            potential = f"potential.eam.{model.setfl_kind}"
            path = os.path.join(self.outdir, potential)
            if not os.path.exists(path):
                model.write(path)
            self.paths["potential"] = path
        # The LAMMPS commands that give this model's energy, one per list entry, and a
        # complete input for final.data next to it (lmp -in in.lammps).
        lines = lammps_pair_lines(model, potential)
        summary["lammps_input"] = lines
        summary["lammps_pair_style"] = "\n".join(lines)
        self.paths["in_lammps"] = os.path.join(self.outdir, "in.lammps")
        write_lammps_input(self.paths["in_lammps"], model, "final.data", potential,
                           comment=f"swapmc {__version__} {self.cfg['preset']}: final.data")
        # The MD protocols on final.data for LAMMPS without swapmc (in.<protocol>.lammps:
        # NPT, DMS, relaxation, AQS and rate shear; -var NAME VALUE changes a parameter),
        # at this run's temperature and, for a model with a pressure, after NPT at it.
        from .io.lammps_input import write_lammps_protocols

        for name, path in write_lammps_protocols(
                self.outdir, model, "final.data", potential,
                params={"T": repr(float(mc.temperature))}, pressure=mc.pressure_imposed,
                comment=f"swapmc {__version__} {self.cfg['preset']}: final.data").items():
            self.paths[f"in_{name}"] = path
        files = {k: v for k, v in self.paths.items() if os.path.exists(v)}
        summary["files"] = files
        with atomic_write(self.paths["summary"]) as fh:
            json.dump(summary, fh, indent=2)
        return RunResult(self.outdir, summary, files, self.resumed)


def production_rows(thermo_path: str, columns) -> dict:
    """Columns of the production rows of a run's ``thermo.csv``.

    Parameters
    ----------
    thermo_path : str
    columns : sequence of str
        Column names (see ``THERMO_COLUMNS``).

    Returns
    -------
    dict
        name -> float64 array of shape (rows,).
    """
    values = {c: [] for c in columns}
    with open(thermo_path, newline="") as fh:
        rows = csv.reader(line for line in fh if not line.startswith("#"))
        header = next(rows)
        phase = header.index("phase")
        index = {c: header.index(c) for c in columns}
        for row in rows:
            if row and row[phase] == "production":
                for c, k in index.items():
                    values[c].append(float(row[k]))
    return {c: np.asarray(v, dtype=np.float64) for c, v in values.items()}


def tracked_species(choice, names, counts) -> int:
    """Species index whose F_s gives tau_alpha: ``"auto"`` is the most numerous one.

    Parameters
    ----------
    choice : str
        ``"auto"`` or a species name of the model.
    names : sequence of str
        The model's species names.
    counts : array_like of int, shape (S,)
        Particles of each species.
    """
    if choice == "auto":
        return int(np.argmax(counts))
    if choice not in names:
        raise ConfigError(f"[diagnostics] fs_species = {choice!r} is not a species of the model; "
                          f"choose 'auto' or one of {list(names)}")
    return list(names).index(choice)


def _peek_sweeps(path: str) -> int | None:
    """The sweep count in a (possibly damaged) checkpoint's sampler header, if readable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            value = json.loads(str(data["header"]))["sweeps_done"]
    except Exception:  # any damage: the caller then says less
        return None
    return value if type(value) is int else None


def _finite(x):
    """A float for JSON, or None for NaN/inf."""
    x = float(x)
    return x if np.isfinite(x) else None


def _box(lengths):
    from .box import Box

    return Box(np.asarray(lengths, dtype=np.float64))


def mpi_launch_size() -> tuple[int, int]:
    """(number of processes, this process's rank) when launched by ``mpiexec``/``srun``,
    read from the launcher's environment (MPICH/Hydra ``PMI_*``, Open MPI
    ``OMPI_COMM_WORLD_*``, MVAPICH ``MV2_COMM_WORLD_*``, Slurm steps ``SLURM_STEP_NUM_TASKS``
    / ``SLURM_PROCID``) without importing MPI; (1, 0) otherwise."""
    for size_key, rank_key in (("PMI_SIZE", "PMI_RANK"),
                               ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                               ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),
                               ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID")):
        try:
            size = int(os.environ[size_key])
            rank = int(os.environ.get(rank_key, "0"))
        except (KeyError, ValueError):
            continue
        if size > 1:
            return size, rank
    return 1, 0


def run(source: str | None = None, overrides: dict | None = None, **kw) -> RunResult:
    """Resolve a preset/config and run it (resuming from a checkpoint when one exists).

    Raises
    ------
    ConfigError
        Under ``mpiexec -n K`` with K > 1 (on rank 0; other ranks exit with status 1
        silently): ``swapmc run`` is one chain, and K ranks would run the same chain into one
        directory.
    """
    size, rank = mpi_launch_size()
    if size > 1:
        if rank != 0:
            raise SystemExit(1)
        raise ConfigError(
            f"swapmc run is a single chain, but this is one of {size} MPI processes, which "
            "would all run the same chain into one directory. For independent chains on "
            "many ranks use `mpiexec -n K swapmc library build CONFIG`; for replica exchange "
            "use `mpiexec -n K swapmc temper`; or run `swapmc run` without mpiexec.")
    return Run(resolve(source, overrides), **kw).execute()
