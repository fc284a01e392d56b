"""The tempering run: set-up or resume, the round loop, checkpoints and the final summary.

Order of operations (the contract that makes the label trace independent of the number of
ranks and kill + resume bit-identical):

1. *Pre-flight, on every rank, agreed by allgather* (:func:`~swapmc.tempering.comm.agree`):
   ladder and replica count (M >= number of ranks), and when
   ``<output>/checkpoints/manifest.json`` exists, that its config matches this one (only
   ``tempering.rounds`` and ``output.progress`` may differ) and that ``rounds`` has not
   shrunk below the production rounds already done. Any failure stops every rank before
   any work, with one message. Then every rank reads and checks its replicas' files and
   the shared state of the manifest's latest round; if any file on any rank is damaged,
   all ranks try the previous round instead (with a warning on rank 0), so every replica
   restarts from the same exchange step; if that round is damaged too, every rank stops
   with one message naming the files.
2. *Streams*: ``SeedSequence(run.seed).spawn(2)`` gives the exchange stream (replicated on
   every rank) and a parent whose ``spawn(M)`` gives replica r its own child, itself split
   into an initial-configuration seed and the sampler's stream. Nothing depends on which
   rank owns a replica; replicas are spread in contiguous blocks.
3. *Fresh start*: each replica builds its configuration (``[system] init``) and, for
   generated ones, melts for ``system.melt_sweeps`` at ``system.melt_temperature`` with
   step-size tuning; slot t then takes replica t's step sizes. *Resume*: each rank loads
   its replicas from the manifest's round, all ranks load the replicated state, rank 0
   cuts the logs back to their checkpointed sizes.
4. *Rounds* g = 0 .. E+P-1 (E equilibration, P production rounds of K sweeps each):
   a. at g == E: statistics reset and the ladder is logged as frozen;
   b. every replica sweeps K times at its slot's temperature (tuning step sizes during
      equilibration); energies, volumes and step sizes are allgathered;
   c. rank 0 appends the round's rows; in production, configurations per slot are
      gathered to rank 0 when a multiple of ``output.trajectory_every`` sweeps is crossed;
   d. neighbour exchanges of pairs of parity g % 2 (one uniform number per pair from the
      exchange stream);
   e. with ``optimize_ladder``, at the end of each feedback stage, the ladder moves half
      way (in ln T) toward the Katzgraber et al. optimum, provided replicas made at least M
      one-way passages across the ladder during the stage (computed identically on every
      rank, broadcast from rank 0); the up/down histogram is reset;
   f. progress line (rank 0);
   g. checkpoint when a multiple of ``output.checkpoint_every`` sweeps is crossed, and
      after the last round.
5. *Finish*: final configuration per slot, ``pairs.csv``, ``summary.json`` (rank 0).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import __version__, interrupts
from .._toml import ConfigError, dumps_toml
from ..box import Box
from ..config import PRESET_SECTIONS, differences
from ..io.lock import DirectoryLock
from ..mc.sampler import StateError
from ..models.presets import build_preset
from ..progress import Progress
from ..run import initial_system, sampler_for, warn_stderr
from ..system import System
from ..units import LABELS
from .checkpoint import CheckpointStore, RoundDamage
from .comm import CollectiveError, SerialComm, abort_on_error, agree, block_range
from .engine import ReplicaExchange
from .ladder import feedback_update, stage_ends
from .output import TemperingOutput
from .settings import fingerprint, initial_ladder, optimisation_rounds

__all__ = ["TemperingResult", "TemperingRun", "temper"]

# Fraction (in ln T) of each feedback step that is taken; see TemperingRun._feedback.
FEEDBACK_DAMPING = 0.5


@dataclass
class TemperingResult:
    """What a tempering run produced (the same on every rank)."""

    directory: str
    summary: dict
    files: dict = field(default_factory=dict)
    resumed: bool = False


def _crossed(every: int, before: int, after: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, after]."""
    return every > 0 and after // every > before // every


class TemperingRun:
    """Parallel tempering described by a resolved config (:func:`.settings.resolve`).

    Parameters
    ----------
    cfg : dict
        Resolved config with a ``tempering`` table.
    comm : SerialComm or MPIComm, optional
        Serial by default (all replicas in this process).
    progress : bool, optional
        Override ``output.progress`` (shown on rank 0 only in any case).
    log : callable, optional
        Where rank 0's one-line messages go.
    warn : callable, optional
        Where rank 0's warnings go (a checkpoint fallback); standard error by default.
    """

    def __init__(self, cfg: dict, comm=None, progress: bool | None = None, log=print,
                 warn=warn_stderr):
        self.cfg = cfg
        self.comm = SerialComm() if comm is None else comm
        self.rank = self.comm.rank
        show = cfg["output"]["progress"] if progress is None else progress
        self.show_progress = bool(show) and self.rank == 0
        self.log = log if self.rank == 0 else (lambda *a, **k: None)
        self.warn = warn if self.rank == 0 else (lambda *a, **k: None)
        self.t = cfg["tempering"]
        self.m = len(initial_ladder(cfg))
        self.k = int(self.t["exchange_every"])
        self.n_eq = int(self.t["equilibration_rounds"])
        self.n_total = self.n_eq + int(self.t["rounds"])
        self.outdir = cfg["output"]["directory"]
        self.store = CheckpointStore(self.outdir, self.comm)
        self.local = list(block_range(self.m, self.comm.size, self.rank))
        self.resumed = False
        self.elapsed_before = 0.0
        self.melt_sweeps = 0
        self.stage_ends = []
        if self.t["optimize_ladder"]:
            self.stage_ends = stage_ends(optimisation_rounds(self.n_eq),
                                         self.t["optimize_stages"])

    # --------------------------------------------------------- pre-flight
    def _preflight(self):
        size = self.comm.size
        if self.m < size:
            raise ConfigError(
                f"{self.m} replicas cannot be spread over {size} MPI ranks: every rank needs "
                f"at least one replica (use mpiexec -n <= {self.m}, or more temperatures)")
        preset_part = {k: v for k, v in self.cfg.items() if k in PRESET_SECTIONS}
        preset = build_preset(preset_part, f"preset {self.cfg['preset']!r}")
        if self.rank == 0:
            # One job per output directory (checked before any work, so every rank stops
            # together when another job holds it; after the config checks, so a refused
            # config creates no directory); released when the job ends or dies.
            self._lock = DirectoryLock(self.outdir, "swapmc temper").acquire()
        manifest = self.store.read_manifest()
        if manifest is None:
            return preset, None
        diff = differences(fingerprint(manifest["config"]), fingerprint(self.cfg))
        if diff:
            raise ConfigError(
                f"checkpoint {self.store.manifest_path} belongs to a different run:\n  "
                + "\n  ".join(diff)
                + "\nRerun with the settings the checkpoint has, or write this run to "
                "another output directory (-o).")
        done = max(0, int(manifest["round"]) - self.n_eq)
        if done > self.t["rounds"]:
            raise ConfigError(
                f"checkpoint {self.store.manifest_path} is after {done} production rounds, "
                f"more than rounds = {self.t['rounds']}; rounds can only grow on restart")
        return preset, manifest

    # -------------------------------------------------------------- set-up
    def _streams(self):
        ss = np.random.SeedSequence(self.cfg["run"]["seed"])
        exchange_seq, replica_parent = ss.spawn(2)
        return np.random.Generator(np.random.PCG64(exchange_seq)), replica_parent.spawn(self.m)

    def _start_fresh(self, preset):
        rng, replica_seqs = self._streams()
        if self.rank == 0:
            self.output.start_fresh(f"# resolved configuration written by swapmc "
                                    f"{__version__} (temper)\n" + dumps_toml(self.cfg))
            self.store.remove_stale(keep="")
        sys_cfg = self.cfg["system"]
        replicas = {}
        for r in self.local:
            init_seq, mc_seq = replica_seqs[r].spawn(2)
            system, needs_melt = initial_system(self.cfg, preset,
                                                 int(init_seq.generate_state(1)[0]))
            mc = sampler_for(self.cfg, preset, system, mc_seq)
            if needs_melt and sys_cfg["melt_sweeps"]:
                mc.equilibrate(sys_cfg["melt_sweeps"], self.cfg["run"]["tune_every"])
            replicas[r] = mc
        self.melt_sweeps = replicas[self.local[0]].sweeps_done
        engine = self._engine(replicas, preset, rng)
        engine.steps_from_replicas()
        self.output.log_ladder(0, "initial", engine.ladder)
        return engine

    def _load_round(self, preset, name: str):
        """Collective part of a resume, without side effects: this rank's replicas and the
        replicated state of round ``name``, checked.

        Returns
        -------
        (ReplicaExchange, dict)
            The engine with its replicas restored, and the run header of ``shared.npz``.

        Raises
        ------
        RoundDamage
            Naming the first damaged or inconsistent file of the round on this rank.
        """
        states, shared = self.store.read_round(name, self.local)
        shared_path = self.store.shared_path(name)
        rng, _ = self._streams()
        replicas = {}
        for r, ck in states.items():
            path = self.store.replica_path(name, r)
            try:
                header = json.loads(str(ck["header"]))
                system = System(ck["pos"], ck["species"], tuple(header["species_names"]),
                                Box(np.asarray(ck["lengths"], np.float64)), images=ck["images"])
                mc = sampler_for(self.cfg, preset, system, 0)
                mc.load_state_dict(ck)
            except StateError as err:
                raise RoundDamage(f"{path}: {err}") from None
            except ValueError as err:  # System or sampler refusing the stored configuration
                raise RoundDamage(f"{path}: inconsistent configuration ({err})") from None
            replicas[r] = mc
        engine = self._engine(replicas, preset, rng)
        temps = {r: mc.temperature for r, mc in replicas.items()}
        try:
            engine.load_state_dict(shared)
            run_header = json.loads(str(shared["run_header"]))
        except KeyError as err:
            raise RoundDamage(f"{shared_path}: field {err.args[0]!r} is missing") from None
        except (ValueError, TypeError) as err:
            raise RoundDamage(f"{shared_path}: {err}") from None
        for key, kinds in (("elapsed", (int, float)), ("melt_sweeps", (int,)),
                           ("file_sizes", (dict,))):
            if type(run_header.get(key) if isinstance(run_header, dict) else None) not in kinds:
                raise RoundDamage(f"{shared_path}: run_header field {key!r} is missing or "
                                  "malformed")
        for r, temp in temps.items():
            expected = float(engine.ladder[engine.labels[r]])
            if temp != expected:
                raise RoundDamage(f"{self.store.replica_path(name, r)}: replica {r} is at "
                                  f"T = {temp!r} but its label in {shared_path} says "
                                  f"T = {expected!r}")
        if self.rank == 0:
            self._check_log_sizes(shared_path, run_header["file_sizes"])
        return engine, run_header

    def _check_log_sizes(self, shared_path: str, sizes) -> None:
        """The logs must still hold the bytes this round recorded (rank 0 owns them)."""
        paths = {**self.output.logs,
                 **{f"traj{t}": p for t, p in self.output.trajectories.items()}}
        for key, size in sizes.items():
            if key not in paths or not (size is None or type(size) is int and size >= 0):
                raise RoundDamage(f"{shared_path}: file size entry {key!r} is malformed")
            if size is None:
                continue
            if not os.path.exists(paths[key]):
                raise RoundDamage(f"{paths[key]} is missing (the checkpoint needs its first "
                                  f"{size} bytes)")
            if os.path.getsize(paths[key]) < size:
                raise RoundDamage(f"{paths[key]} has {os.path.getsize(paths[key])} bytes, "
                                  f"fewer than the {size} recorded at {shared_path}")

    def _resume(self, preset, manifest):
        """Resume from the latest round whose files are all intact on every rank."""
        names = self.store.rounds(manifest)
        problems = []
        for name in names:
            loaded, message = None, None
            try:
                loaded = self._load_round(preset, name)
            except RoundDamage as err:
                message = str(err)
            # Every rank takes the same decision: the round is used only if no rank found
            # a problem with its files.
            failed = [m for m in self.comm.allgather(message) if m is not None]
            if not failed:
                break
            problems.append((name, failed[0]))
        else:
            advice = ("this run cannot resume; to run it again from the start, write it to "
                      "another output directory (-o)")
            if len(problems) == 1:
                raise CollectiveError(f"{problems[0][1]}; there is no previous checkpoint "
                                      f"round to fall back to; {advice}")
            raise CollectiveError(f"{problems[0][1]}; the previous checkpoint round "
                                  f"{problems[1][0]} is unusable too: {problems[1][1]}; "
                                  f"{advice}")
        engine, run_header = loaded
        if problems:
            reached = self.store.round_index(problems[0][0])
            self.warn(f"{problems[0][1]}; resuming from the previous checkpoint round {name} "
                      f"instead: rounds {engine.round_index}..{reached} "
                      f"({(reached - engine.round_index) * self.k} sweeps per replica) are "
                      "redone, and the logs are cut back to that round")
        self.elapsed_before = run_header["elapsed"]
        self.melt_sweeps = run_header["melt_sweeps"]
        self.output.resume(run_header["file_sizes"])
        self.store.adopt(name)
        self.comm.barrier()
        if self.rank == 0:
            # Rounds the manifest names stay (the damaged one too, until the next checkpoint
            # supersedes it); half-written newer ones go.
            self.store.remove_stale(set(names))
        self.resumed = True
        return engine

    def _engine(self, replicas, preset, rng) -> ReplicaExchange:
        any_mc = next(iter(replicas.values()))
        pressure = (None if preset.pressure is None
                    else preset.pressure * any_mc.p_factor)
        return ReplicaExchange(replicas, self.m, initial_ladder(self.cfg), any_mc.kB,
                               pressure, self.comm, rng)

    # ------------------------------------------------------------- events
    def _frames(self, engine, labels, round_index: int, label: str) -> dict | None:
        """Collective: every slot's configuration, gathered on rank 0 (None elsewhere).

        ``labels`` (M,) are the slots the configurations were sampled at.
        """
        local = {}
        for r, mc in engine.replicas.items():
            slot = int(labels[r])
            info = {"round": round_index, "sweep": mc.sweeps_done - self.melt_sweeps,
                    "temperature": float(engine.ladder[slot]), "replica": r,
                    "energy": mc.energy, "energy_unit": self.units["energy"], "phase": label}
            local[slot] = (mc.system(), info)
        parts = self.comm.gather(local, root=0)
        if self.rank != 0:
            return None
        out = {}
        for p in parts:
            out.update(p)
        return out

    def _checkpoint(self, engine):
        replica_states = {}
        for r, mc in engine.replicas.items():
            state = mc.state_dict()
            state["replica_header"] = json.dumps({"replica": r, "round": engine.round_index})
            replica_states[r] = state
        shared = None
        if self.rank == 0:
            shared = engine.state_dict()
            shared["run_header"] = json.dumps({
                "elapsed": self.elapsed_before + time.perf_counter() - self.t0,
                "melt_sweeps": self.melt_sweeps,
                "file_sizes": self.output.sizes(),
            })
        self.store.save(engine.round_index, replica_states, shared,
                        {"config": self.cfg, "n_replicas": self.m})
        self.last_checkpoint = engine.round_index

    # ----------------------------------------------------------------- run
    def execute(self) -> TemperingResult:
        """Run (or resume, or just re-summarise a finished run) and return the result.

        An exception on one rank ends the whole MPI job (``rank k: <error>`` and
        ``MPI_Abort``); errors found in the pre-flight stop every rank together.
        """
        self._lock = None
        try:
            with abort_on_error(self.comm):
                return self._execute()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _execute(self) -> TemperingResult:
        self.t0 = time.perf_counter()
        preset, manifest = agree(self.comm, self._preflight)
        self.preset = preset
        self.units = LABELS[preset.model.units]
        self.output = TemperingOutput(self.outdir, self.m, preset.pressure is not None,
                                      self.units, self.rank == 0,
                                      dict(self.cfg.get("elements", {})),
                                      masses=list(preset.model.masses))
        if self.m % self.comm.size:
            self.log(f"note: {self.m} replicas on {self.comm.size} ranks: some ranks hold one "
                     "more replica than others (the slowest rank sets the pace)")
        if manifest is None:
            engine = self._start_fresh(preset)
            self.last_checkpoint = None
        else:
            engine = self._resume(preset, manifest)
            self.last_checkpoint = engine.round_index
            self.log(f"resuming {self.outdir} after round {engine.round_index} of "
                     f"{self.n_total}")
        self.engine = engine
        self.n_particles = next(iter(engine.replicas.values())).n
        out = self.cfg["output"]
        progress = Progress(self.n_total * self.k, enabled=self.show_progress)
        start_round = engine.round_index
        t_loop = time.perf_counter()
        for g in range(engine.round_index, self.n_total):
            production = g >= self.n_eq
            phase = "production" if production else "equilibration"
            if g == self.n_eq:
                engine.stats.reset()
                self.output.log_ladder(g, "frozen", engine.ladder)
            sample = engine.sample(self.k, tune=not production)
            # A Ctrl-C swallowed by a first compilation stops the run here.
            interrupts.raise_if_received()
            sweeps_before, sweeps = g * self.k, (g + 1) * self.k
            self.output.log_round(sample, phase, sweeps, self.n_particles)
            if production and _crossed(out["trajectory_every"], sweeps_before, sweeps):
                frames = self._frames(engine, sample.labels, g, phase)
                self.output.write_frames(frames or {})
            engine.exchange(sample)
            if g + 1 in self.stage_ends:
                self._feedback(engine, g + 1)
            progress.update(sweeps, self._progress_text(engine, phase))
            if (_crossed(out["checkpoint_every"], sweeps_before, sweeps)
                    or g + 1 == self.n_total):
                self._checkpoint(engine)
        self.loop_seconds = time.perf_counter() - t_loop
        self.rounds_this_call = engine.round_index - start_round
        if self.last_checkpoint != engine.round_index:
            self._checkpoint(engine)
        progress.update(self.n_total * self.k, "done", force=True)
        progress.close()
        return self._finish(engine)

    def _feedback(self, engine, round_index: int) -> None:
        """End of a feedback stage: move the ladder toward Katzgraber et al.'s optimum
        (:func:`.ladder.feedback_update`: only after M one-way passages in the stage, half
        way in ln T)."""
        stage = self.stage_ends.index(round_index) + 1
        stats = engine.stats
        new, f, reason = feedback_update(engine.ladder, stats.n_up, stats.n_down,
                                         int(stats.stage_passages[0]), FEEDBACK_DAMPING)
        # Computed identically everywhere, but broadcast anyway: a ladder is a rare, tiny
        # message, and this rules out last-bit differences between heterogeneous nodes.
        new = self.comm.bcast(new, root=0)
        if reason is not None:
            self.log(f"ladder feedback stage {stage}: {reason}; ladder kept (lengthen "
                     "equilibration_rounds, or add temperatures)")
        engine.set_ladder(new)
        stats.reset_histogram()
        self.output.log_ladder(round_index, f"feedback stage {stage}", new, f)

    def _progress_text(self, engine, phase: str) -> str:
        acc = engine.stats.acceptance()
        lo = np.nanmin(acc) if np.any(np.isfinite(acc)) else float("nan")
        return (f"{phase} round {engine.round_index}/{self.n_total} min pair acc {lo:.2f} "
                f"round trips {int(engine.stats.trips.sum())}")

    # -------------------------------------------------------------- finish
    def _finish(self, engine) -> TemperingResult:
        frames = self._frames(engine, engine.labels, engine.round_index, "final")
        stats = engine.stats
        files = {}
        summary = None
        if self.rank == 0:
            model = self.preset.model
            files.update(self.output.write_final(
                frames, list(model.masses),
                f"swapmc {__version__} {self.cfg['preset']} temper round {engine.round_index}"))
            files["pairs"] = self.output.write_pairs(engine.ladder, stats.proposed,
                                                     stats.accepted)
            self.output.close()
            files.update({k: v for k, v in self.output.logs.items()})
            summary = self._summary(engine, frames)
            files["summary"] = self.output.write_summary({**summary, "files": files})
        summary = self.comm.bcast(summary, root=0)
        files = self.comm.bcast(files, root=0)
        return TemperingResult(self.outdir, summary, files, self.resumed)

    def _summary(self, engine, frames) -> dict:
        stats = engine.stats
        any_frame = frames[0][0]
        acc = stats.acceptance()
        mean_rt = stats.mean_round_trip()
        rate_rt = stats.round_trip_time_from_rate()
        t = self.t
        timing = engine.timing
        rounds = max(self.rounds_this_call, 1)
        return {
            "swapmc_version": __version__,
            "preset": self.cfg["preset"],
            "units": self.units,
            "n": any_frame.n,
            "composition": dict(zip(any_frame.species_names, any_frame.counts.tolist())),
            "ensemble": "NVT" if self.preset.pressure is None else "NPT",
            "pressure_imposed": self.preset.pressure,
            "n_replicas": self.m,
            "exchange_every": self.k,
            "equilibration_rounds": self.n_eq,
            "rounds": int(t["rounds"]),
            "rounds_done": engine.round_index,
            "melt_sweeps": self.melt_sweeps,
            "sweeps_per_replica": engine.round_index * self.k,
            "ladder_initial": initial_ladder(self.cfg).tolist(),
            "ladder": engine.ladder.tolist(),
            "ladder_optimized": bool(t["optimize_ladder"]),
            "step_sizes": [{"temperature": float(T), "displacement": float(d),
                            "lnv_step": float(v)}
                           for T, (d, v) in zip(engine.ladder, engine.steps)],
            "pairs": [{"T_low": float(engine.ladder[k]), "T_high": float(engine.ladder[k + 1]),
                       "proposed": int(stats.proposed[k]), "accepted": int(stats.accepted[k]),
                       "acceptance": None if np.isnan(acc[k]) else float(acc[k])}
                      for k in range(self.m - 1)],
            "round_trips": {
                "total": int(stats.trips.sum()),
                "per_replica": stats.trips.tolist(),
                "mean_rounds": None if np.isnan(mean_rt) else mean_rt,
                "mean_sweeps": None if np.isnan(mean_rt) else mean_rt * self.k,
                "passages": int(stats.passages.sum()),
                "from_rate_rounds": None if np.isnan(rate_rt) else rate_rt,
                "from_rate_sweeps": None if np.isnan(rate_rt) else rate_rt * self.k,
            },
            "fraction_up": [None if np.isnan(x) else float(x) for x in stats.fraction_up()],
            "per_temperature": self.output.per_temperature(engine.ladder),
            "run": {  # facts about this invocation (differ between rank counts and restarts)
                "n_ranks": self.comm.size,
                "communicator": self.comm.name,
                "replicas_per_rank": [len(block_range(self.m, self.comm.size, k))
                                      for k in range(self.comm.size)],
                "rounds_this_call": self.rounds_this_call,
                "seconds_per_round": self.loop_seconds / rounds,
                "rank0_sweep_seconds": timing["sweep"],
                "rank0_sweep_cpu_seconds": timing["sweep_cpu"],
                "rank0_communication_seconds": timing["communication"],
                "wall_seconds": self.elapsed_before + time.perf_counter() - self.t0,
                "resumed": self.resumed,
            },
        }


def temper(source: str | None = None, overrides: dict | None = None, comm=None,
           **kw) -> TemperingResult:
    """Resolve a preset/config (with ``[tempering]``) and run it, resuming when a checkpoint
    exists. ``comm`` defaults to serial; pass :func:`~swapmc.tempering.comm.get_comm` under
    ``mpiexec``."""
    from .settings import resolve

    return TemperingRun(resolve(source, overrides), comm=comm, **kw).execute()
