"""The run loop: melt, equilibrate (tuning), produce; log, save, checkpoint, resume.

Order of operations (the contract that makes kill + resume bit-identical):

1. If ``checkpoint.npz`` exists in the output directory, the resolved config must match the
   one stored in it (except ``run.production_sweeps``, which may grow to extend a run); the
   sampler, the F_s tracker and every random stream are restored and the append-only outputs
   (``thermo.csv``, ``trajectory.xyz``) are truncated back to their size at the checkpoint.
   Otherwise the initial configuration is built and the melt phase starts.
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
moment leaves no corrupt file.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from ._toml import ConfigError, dumps_toml
from .analysis import FsTracker, default_wavenumber
from .build import composition_counts, lattice_configuration, random_configuration
from .config import PRESET_SECTIONS, differences, fingerprint, resolve
from .io import (
    atomic_write,
    read_extxyz,
    read_lammps_data,
    truncate_file,
    write_extxyz,
    write_lammps_data,
)
from .io.lock import DirectoryLock
from .mc import MonteCarlo, MoveSettings
from .models.presets import build_preset
from .progress import Progress
from .system import ConfigurationError, System
from .tempering.statistics import blocking_error
from .units import LABELS

PHASES = ("melt", "equilibration", "production")
THERMO_COLUMNS = ["sweep", "phase", "temperature", "energy_per_particle", "pressure", "volume",
                  "density", "acc_displacement", "acc_swap", "acc_volume", "displacement_step"]


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
        system = read_lammps_data(init)
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
    """

    def __init__(self, cfg: dict, progress: bool | None = None, log=print):
        self.cfg = cfg
        self.log = log
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
        self.resumed = False
        self.tracker: FsTracker | None = None
        self.phase_index = 0
        self.phase_done = 0
        self.elapsed_before = 0.0
        self.cpu_before = 0.0
        self._last_counts = np.zeros((3, 2), np.int64)
        self._tune_base = np.zeros((3, 2), np.int64)

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
        path = self.paths["checkpoint"]
        if not os.path.exists(path):
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                ck = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot read checkpoint {path}: {err}") from None
        run_header = json.loads(str(ck["run_header"]))
        stored = run_header["config"]
        diff = differences(fingerprint(stored), fingerprint(self.cfg))
        done = stored["run"]["production_sweeps"]
        if not diff and self.cfg["run"]["production_sweeps"] < done:
            # Lowering the target would make the stored run and the checkpoint disagree on
            # its length, and a later extension would no longer equal a fresh longer run.
            raise ConfigError(
                f"{self.outdir} holds a run with production_sweeps = {done}; a rerun may "
                f"extend it (production_sweeps >= {done}) but not shorten it. For a shorter "
                "run use another output directory.")
        if diff:
            raise ConfigError(
                f"checkpoint {path} belongs to a different run:\n  " + "\n  ".join(diff)
                + "\nRerun with the settings the checkpoint has, or write this run to "
                "another output directory (-o)."
            )
        system = System(ck["pos"], ck["species"], tuple(json.loads(str(ck["header"]))[
            "species_names"]), _box(ck["lengths"]), images=ck["images"])
        self.needs_melt = run_header["needs_melt"]
        self.mc = sampler_for(self.cfg, self.preset, system, 0)
        self.mc.load_state_dict({k: ck[k] for k in ck if not k.startswith(("run_", "fs_"))})
        self.phase_index = run_header["phase_index"]
        self.phase_done = run_header["phase_done"]
        self.elapsed_before = run_header["elapsed"]
        self.cpu_before = run_header.get("cpu", 0.0)
        self._last_counts = np.array(run_header["last_counts"], np.int64)
        self._tune_base = np.array(run_header["tune_base"], np.int64)
        if run_header["has_fs"]:
            self.tracker = FsTracker.from_state_dict(
                {k[3:]: ck[k] for k in ck if k.startswith("fs_")}
            )
        for name, size in run_header["file_sizes"].items():
            if size is None:
                if os.path.exists(self.paths[name]):
                    os.remove(self.paths[name])
            else:
                if not os.path.exists(self.paths[name]):
                    raise ConfigurationError(f"{self.paths[name]} is missing; cannot resume")
                truncate_file(self.paths[name], size)
        self.resumed = True
        return True

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
            "version": __version__,
        }
        arrays = dict(state)
        arrays["run_header"] = json.dumps(header)
        if self.tracker is not None:
            arrays.update({"fs_" + k: v for k, v in self.tracker.state_dict().items()})
        with atomic_write(self.paths["checkpoint"], "wb", encoding=None) as fh:
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
        progress = Progress(total, enabled=self.show_progress)
        if self.resumed:
            self.log(f"resuming {self.outdir} at sweep {mc.sweeps_done} "
                     f"({plan[self.phase_index][0] if self.phase_index < 3 else 'done'})")
        while self.phase_index < len(plan):
            name, length, temperature, tune = plan[self.phase_index]
            mc.temperature = float(temperature)
            if name == "production" and self.phase_done == 0 and self.tracker is None:
                self._start_tracker()
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
        # The final checkpoint sits at the end of production, so that rerunning with more
        # production sweeps extends the run exactly as if it had never stopped.
        self.phase_index, self.phase_done = len(plan) - 1, plan[-1][1]
        self._checkpoint()
        return self._finish()

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
            "step_sizes_frozen": mc.step_sizes(),
            "acceptance_total": {k: (None if np.isnan(v) else float(v))
                                 for k, v in mc.acceptance().items()},
            "counters": mc.counters(),
            "wall_seconds": self.elapsed_before + time.perf_counter() - self.t0,
            # CPU time of this process: on a shared machine the wall time overstates the
            # cost of a run; the CPU time is what a core-hour figure needs.
            "cpu_seconds": self.cpu_before + time.process_time() - self.c0,
        }
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
