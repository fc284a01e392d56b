"""``swapmc library build``: many independent swap-MC chains -> certified, quenched samples.

Each chain k of a build is an ordinary :class:`swapmc.run.Run` (melt, equilibration with
tuning, production with F_s tracking) in its own work directory, seeded from (seed, k).
When it ends, the chain is certified (:mod:`swapmc.library.certify`); a chain whose F_s has
not decayed enough is extended (up to ``max_production_sweeps``) exactly as a longer run
would have been; the final configuration is quenched to its inherent structure by FIRE and
the sample is written to the library in one transaction, after which its work directory is
deleted.

Crash safety and resumption come from the two layers: the library keeps only whole samples
(SQLite transactions), and a chain in flight keeps its own atomic checkpoints, so a killed
build loses at most the sweeps since each running chain's last checkpoint. Rerunning the same
command skips the chains already stored and resumes the others from their checkpoints.

Every worker (each rank of ``mpiexec -n K``, and each of any number of separate jobs on one
library file) claims its next chain through the library (:meth:`Library.claim_chain`): the
lowest chain that is neither stored nor held by a live claim. No rank idles while chains of
unequal length remain, and since chain k is seeded from (seed, k) whoever runs it, the
samples equal a serial build's. A claim is a lease of ``[library] lease_seconds`` (600 s by
default), renewed every third of it at the chain's thermo rows and checkpoints; storing the
sample ends the claim in the same transaction. A chain whose worker died becomes claimable
when its lease expires (at once when that worker ran on this host and its process is gone),
and the next worker resumes it from the checkpoint in its work directory. A worker whose
lease expired but which finishes anyway is harmless: the first sample stored for a chain is
kept and the second writes nothing (both are the same sample), and the work directory is
left to the worker that holds the claim. A chain whose work directory is locked by a live
process (a worker whose lease lapsed while it kept running) is left to that process. Only
rank 0 prints.

Slurm array tasks on one library file are separate jobs like any others: they claim chains
through the file and need nothing more (``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID`` are
only logged). Claims need POSIX locks that work across hosts; where they do not (NFS
without ``lockd``), a build is split into shards (``[library] shards = n``): the job of
shard ``i`` claims only the chains ``k`` with ``k mod n == i``, in its own file
(:func:`~swapmc.library.settings.shard_path`), which records the split it holds. No two
shards share a chain or a file, whatever order and on whichever hosts they run; the ranks
of one shard job share its file and must run on one host (checked), and a shard file that
another host still holds live claims in (the same shard submitted twice) is refused.
``swapmc library merge`` combines the shard files.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from .._toml import dumps_toml
from ..analysis import crystalline_fraction
from ..config import PRESET_SECTIONS
from ..io import atomic_write
from ..io.lock import DirectoryBusyError
from ..models.presets import build_preset
from ..run import CheckpointUnusable, Run, production_rows
from .certify import Certificate, Criteria, certify
from .settings import (
    QUENCH_FMAX,
    build_fingerprint,
    chain_directory,
    chain_seed,
    chain_template,
    library_path,
    partition,
    resolve,
)
from .store import Library, LibraryError, Worker


@dataclass
class BuildResult:
    """What a build (on this rank) did.

    Attributes
    ----------
    path : str
        The library file (the shard file of a sharded build).
    build : str
        Build fingerprint.
    made : list of int
        Sample ids stored by this rank in this invocation.
    counts : dict
        ``{"certified": k, "failed": m}`` of the whole build at the end.
    chains : list of int
        Chains this rank ran to the end (claimed, run, quenched and stored, or found stored
        by another worker at the end), in order.
    """

    path: str
    build: str
    made: list
    counts: dict
    chains: list = field(default_factory=list)


def warn(message: str) -> None:
    """One warning line on standard error (every rank: a damaged chain is that rank's)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _set_aside(directory: str) -> str:
    """Rename a chain's work directory to a free ``<dir>.damaged[-k]`` name; returns it."""
    base = directory.rstrip(os.sep) + ".damaged"
    target, k = base, 1
    while os.path.exists(target):
        target, k = f"{base}-{k}", k + 1
    os.rename(directory, target)
    return target


def model_fingerprint(model) -> tuple[str, str | None]:
    """SHA-256 of a model and, for EAM, the setfl text it was hashed from.

    LJ mixtures hash their parameter table (species, epsilon, sigma, cut-offs, masses); EAM
    potentials hash the setfl file they write, i.e. exactly what LAMMPS would read.
    """
    if model.kind == "eam":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "potential")
            model.write(path)
            with open(path, encoding="ascii") as fh:
                text = fh.read()
        return hashlib.sha256(text.encode()).hexdigest(), text
    text = json.dumps(model.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), None


def production_energies(thermo_path: str) -> np.ndarray:
    """Energy per particle of the production rows of a run's ``thermo.csv``."""
    return production_rows(thermo_path, ("energy_per_particle",))["energy_per_particle"]


class _Lease:
    """This worker's claim on the chain it runs, renewed every third of the lease.

    :meth:`beat` is called often (every thermo row and checkpoint of the chain); it costs a
    clock reading except when a renewal is due, which is one short library transaction.
    """

    def __init__(self, library: Library, build: str, chain: int, worker: Worker,
                 seconds: float, clock, log):
        self.library, self.build, self.chain, self.worker = library, build, chain, worker
        self.seconds, self.clock, self.log = seconds, clock, log
        self.due = clock() + seconds / 3
        self.held = True

    def beat(self) -> None:
        now = self.clock()
        if now < self.due:
            return
        held = self.library.renew_claim(self.build, self.chain, self.worker, self.seconds,
                                        now=now)
        self.due = now + self.seconds / 3
        if self.held and not held:
            # Another worker took the chain (this lease had lapsed) or stored it. Going on is
            # still correct: the same sample results, and the first one stored is kept.
            self.log(f"chain {self.chain:5d}: lease lapsed and the chain was claimed or stored "
                     "by another worker; finishing it anyway (the first sample stored is kept)")
        self.held = held


class _ChainRun(Run):
    """A chain's :class:`~swapmc.run.Run` that calls ``beat`` after every thermo row and
    checkpoint, the cadence at which a chain shows it is alive.

    These two event methods are the points where a run returns from its compiled sweeps,
    so the renewal needs no thread (which a compiled block would stall anyway).
    """

    def __init__(self, cfg: dict, beat, **kwargs):
        super().__init__(cfg, **kwargs)
        self._beat = beat

    def _thermo_row(self, phase: str):
        super()._thermo_row(phase)
        self._beat()

    def _checkpoint(self):
        super()._checkpoint()
        self._beat()


class LibraryBuilder:
    """Drives one build (see the module docstring).

    Parameters
    ----------
    cfg : dict
        Resolved by :func:`swapmc.library.settings.resolve`.
    comm : communicator, optional
        :func:`swapmc.tempering.comm.get_comm` result (serial by default).
    log : callable
        Receives one line per event; called on rank 0 only.
    clock : callable
        Unix time in seconds, for claims and leases (``time.time``; tests move it).
    """

    def __init__(self, cfg: dict, comm=None, log=print, clock=time.time):
        from ..tempering.comm import SerialComm

        self.clock = clock
        self.cfg = cfg
        self.comm = comm or SerialComm()
        self.log = log if self.comm.rank == 0 else (lambda *a, **k: None)
        self.show_progress = self.comm.rank == 0 and bool(cfg["output"]["progress"])
        self.lib_cfg = cfg["library"]
        self.path = library_path(cfg)
        self.partition = partition(cfg)
        self.criteria = Criteria.from_dict(self.lib_cfg)
        self.template = chain_template(cfg)
        self.build = build_fingerprint(cfg)
        preset_part = {k: v for k, v in cfg.items() if k in PRESET_SECTIONS}
        self.preset = build_preset(preset_part, f"preset {cfg['preset']!r}")
        self.model = self.preset.model
        fmax = self.lib_cfg["quench_fmax"]
        self.fmax = QUENCH_FMAX[self.model.units] if fmax == "auto" else float(fmax)

    # ------------------------------------------------------------------ one chain
    def _run_chain(self, chain: int, beat=lambda: None) -> tuple[Run, Certificate, float, float]:
        cfg = json.loads(json.dumps(self.template))  # deep copy of plain data
        cfg["run"]["seed"] = chain_seed(self.cfg["run"]["seed"], chain)
        cfg["output"]["directory"] = chain_directory(self.cfg, self.build, chain)
        limit = max(self.lib_cfg["max_production_sweeps"], cfg["run"]["production_sweeps"])
        # The production length a chain has been extended to is kept next to its checkpoint,
        # so a chain killed while extended resumes with the same target and ends exactly as
        # an uninterrupted chain would.
        target_file = os.path.join(cfg["output"]["directory"], "production_target.json")
        if os.path.exists(target_file):
            with open(target_file) as fh:
                cfg["run"]["production_sweeps"] = int(json.load(fh)["production_sweeps"])
        restarted = False
        while True:
            # Rank 0 shows the progress of its own chain (stderr); other ranks stay quiet.
            run = _ChainRun(cfg, beat, progress=self.show_progress, log=lambda *a, **k: None)
            try:
                # Wall time of the chain so far, summed over every process that worked on it.
                summary = run.execute().summary
            except CheckpointUnusable as err:
                if restarted:
                    raise
                # Every checkpoint of the chain is damaged. Its seed fixes the chain, so a
                # restart from the melt ends exactly where an undamaged chain would; the
                # damaged directory is kept aside (never deleted) for inspection.
                restarted = True
                aside = _set_aside(cfg["output"]["directory"])
                warn(f"chain {chain}: {err}; its directory is kept as {aside} and the chain "
                     "restarts from the beginning (same seed, same result)")
                cfg["run"]["production_sweeps"] = self.template["run"]["production_sweeps"]
                continue
            wall, cpu = summary["wall_seconds"], summary["cpu_seconds"]
            cert = self._certify(run, quenched=True)
            produced = cfg["run"]["production_sweeps"]
            if not cert.needs_longer_run or produced >= limit:
                return run, cert, wall, cpu
            # Extend: long enough for min_decays tau_alpha (10 % margin) when tau_alpha is
            # known, and at least 1.5 times as long (so an incomplete decay with enough
            # tau_alpha also gets a real extension); twice as long when F_s never reached
            # 1/e. The run resumes from its final checkpoint exactly.
            if np.isfinite(cert.tau_alpha):
                wanted = max(int(np.ceil(1.1 * self.criteria.min_decays * cert.tau_alpha)),
                             int(np.ceil(1.5 * produced)))
            else:
                wanted = 2 * produced
            cfg["run"]["production_sweeps"] = int(min(limit, wanted))
            with atomic_write(target_file) as fh:
                json.dump({"production_sweeps": cfg["run"]["production_sweeps"]}, fh)
            beat()

    def _certify(self, run: Run, quenched: bool, quench=None) -> Certificate:
        t, fs = run.tracker.self_intermediate_scattering()
        energies = production_energies(run.paths["thermo"])
        system = run.mc.system()
        # The energy rows are thermo_every sweeps apart: the drift test needs the spacing to
        # express tau_alpha in samples.
        return certify(t, fs, run.cfg["run"]["production_sweeps"], energies,
                       crystalline_fraction(system.positions, system.box),
                       quench_converged=quenched, criteria=self.criteria,
                       sample_spacing=run.cfg["output"]["thermo_every"])

    def make_sample(self, chain: int, library: Library, worker: Worker | None = None
                    ) -> int | None:
        """Run, certify, quench and store chain ``chain``.

        Parameters
        ----------
        chain : int
            Chain index.
        library : Library
            Opened for writing.
        worker : Worker, optional
            The worker holding the claim on ``chain``: its lease is renewed while the chain
            runs and ends when the sample is stored. Without it the chain is made unclaimed.

        Returns
        -------
        int or None
            The sample id, or None when another worker stored the same chain first.

        Raises
        ------
        DirectoryBusyError
            A live process holds the chain's work directory.
        """
        from ..md.forcefield import ForceField
        from ..md.minimize import fire

        beat = lambda: None  # noqa: E731
        if worker is not None:
            beat = _Lease(library, self.build, chain, worker, self.lib_cfg["lease_seconds"],
                          self.clock, self.log).beat
        run, cert, chain_wall, chain_cpu = self._run_chain(chain, beat)
        beat()
        t0, c0 = time.perf_counter(), time.process_time()
        system = run.mc.system()
        quench = fire(system, ForceField(self.model), fmax=self.fmax,
                      max_steps=self.lib_cfg["quench_max_steps"])
        beat()
        cert = self._certify(run, quenched=quench.converged)
        mc = run.mc
        acc = mc.acceptance()
        wall = chain_wall + (time.perf_counter() - t0)
        cpu = chain_cpu + (time.process_time() - c0)

        def finite(x):
            return None if x is None or not np.isfinite(x) else float(x)

        meta = {
            "build": self.build, "chain": chain, "source": "chain",
            "model": self.cfg["preset"], "model_hash": self.model_hash,
            "kind": self.model.kind, "units": self.model.units,
            "species_names": list(self.model.species),
            "masses": [float(m) for m in self.model.masses],
            "elements": dict(self.cfg.get("elements", {})) or None,
            "composition": dict(zip(self.model.species,
                                    np.bincount(mc.species, minlength=mc.n_species).tolist())),
            "n": mc.n, "temperature": float(self.preset.temperature),
            "pressure": self.preset.pressure, "density": mc.n / mc.volume,
            "seed": run.cfg["run"]["seed"], "sweeps": int(mc.sweeps_done),
            "production_sweeps": int(run.cfg["run"]["production_sweeps"]),
            "acc_displacement": finite(acc["displacement"]), "acc_swap": finite(acc["swap"]),
            "acc_volume": finite(acc["volume"]),
            "tau_alpha": finite(cert.tau_alpha), "decays": finite(cert.decays),
            "tau_alpha_stderr": finite(run.tracker.tau_alpha()[1]),
            "fs_final": finite(cert.fs_final), "fs_q": float(run.tracker.q),
            "fs_species": self.model.species[run.tracker.species],
            "drift_z": finite(cert.drift_z),
            "crystalline_fraction": finite(cert.crystalline_fraction),
            "verdict": cert.verdict, "reasons": "; ".join(cert.reasons),
            "energy": mc.energy / mc.n, "is_energy": quench.energy_per_particle,
            "is_max_force": float(quench.max_force), "wall_seconds": wall,
            "cpu_seconds": cpu,
        }
        if worker is None:
            sample_id, holder = library.add_sample(meta, system, quench.system), None
        else:
            outcome = library.add_claimed_sample(meta, system, quench.system, worker,
                                                 now=self.clock())
            sample_id, holder = outcome.sample_id, outcome.taken_over_by
        if holder is None:
            shutil.rmtree(run.outdir, ignore_errors=True)
        # else: the worker that took the chain over still works in that directory and
        # removes it when it finds the chain stored.
        self._report(chain, sample_id, meta, cert, library)
        return sample_id

    def _report(self, chain, sample_id, meta, cert, library) -> None:
        if sample_id is None:
            # The stored sample wins. It should be this very result (the chain's seed and
            # checkpoints fix it), which is checked, so that a difference is not silent.
            (stored,) = [s for s in library.query(build=self.build, verdict=None)
                         if s.meta["chain"] == chain]
            same = (stored.meta["energy"] == meta["energy"]
                    and stored.meta["is_energy"] == meta["is_energy"])
            self.log(f"chain {chain:5d}: already stored by another worker (sample "
                     f"{stored.id}); this result is dropped"
                     + ("" if same else f" although it differs (E/N {meta['energy']:.8f} vs "
                        f"{stored.meta['energy']:.8f} stored)"))
            return
        tau = "-" if meta["tau_alpha"] is None else f"{meta['tau_alpha']:.4g}"
        text = (f"chain {chain:5d} -> sample {sample_id}: {cert.verdict:9s} "
                f"tau_alpha {tau} sweeps ({cert.decays:.1f} x in {meta['production_sweeps']}), "
                f"drift z {cert.drift_z:+.2f}, crystal {cert.crystalline_fraction:.3f}, "
                f"E/N {meta['energy']:.5f}, E_IS/N {meta['is_energy']:.5f}, "
                f"{meta['wall_seconds']:.0f} s")
        if cert.reasons:
            text += "\n      " + "; ".join(cert.reasons)
        self.log(text)

    # ------------------------------------------------------------------ the build
    def execute(self) -> BuildResult:
        from ..tempering.comm import abort_on_error, agree

        path = self.path
        wanted = self.lib_cfg["samples"]
        part = self.partition
        candidates = range(wanted) if part is None else range(part[0], wanted, part[1])
        if part is not None:
            # The ranks of a shard job share its file through POSIX locks, which are only
            # trusted between processes of one host here.
            hosts = sorted(set(self.comm.allgather(socket.gethostname())))
            agree(self.comm, _one_host, hosts, path)

        def prepare():
            # Rank 0 creates the file and registers the build before anyone writes.
            if self.comm.rank == 0:
                self.model_hash, text = model_fingerprint(self.model)
                with Library(path, create=True) as lib:
                    if part is not None:
                        lib.register_shard(self.build, *part)
                        _refuse_other_hosts(lib, self.build, part, self.clock())
                    lib.register_build(self.build, self.cfg["preset"], self.model_hash,
                                       dumps_toml(self.cfg), __version__)
                    if text is not None:
                        lib.add_potential(self.model_hash, self.model.setfl_kind, text)
                    done = lib.done_chains(self.build)
                    held = {c["chain"] for c in lib.claims(self.build, now=self.clock())
                            if c["live"] and c["chain"] in candidates}
                missing = [k for k in candidates if k not in done]
                return self.model_hash, missing, len(held - done)
            return None

        prepared = agree(self.comm, prepare)
        self.model_hash, missing, elsewhere = self.comm.bcast(prepared, root=0)
        if part is None:
            scope = f"{wanted} sample(s) wanted"
        else:
            scope = (f"shard {part[0]} of {part[1]} (chains k with k mod {part[1]} = "
                     f"{part[0]}): {len(candidates)} of the build's {wanted} sample(s)")
        self.log(f"library {path}: build {self.build[:16]}, {scope}, "
                 f"{len(candidates) - len(missing)} stored, {len(missing)} to make on "
                 f"{self.comm.size} process(es)"
                 + (f" ({elsewhere} of them in flight in other jobs)" if elsewhere else "")
                 + _slurm_job())
        if part is not None:
            others = _other_splits(self.lib_cfg["path"], part[1])
            if others:
                self.log(f"warning: shard files of another split lie next to this one "
                         f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): "
                         "their chains are run again here if they fall in this shard; "
                         "swapmc library merge keeps one copy of each")
        made, chains = [], []
        worker = Worker.this_process(self.comm.rank)
        with abort_on_error(self.comm):
            with Library(path, create=True) as lib:
                skipped: set[int] = set()
                while True:
                    claim = lib.claim_chain(self.build, wanted, worker,
                                            self.lib_cfg["lease_seconds"], now=self.clock(),
                                            exclude=skipped, partition=part)
                    if claim is None:
                        break
                    if claim.previous is not None:
                        directory = chain_directory(self.cfg, self.build, claim.chain)
                        resumes = os.path.exists(os.path.join(directory, "checkpoint.npz"))
                        self.log(f"chain {claim.chain:5d}: taking over from "
                                 f"{claim.previous.describe()}, which holds it no longer "
                                 "(lease expired or process gone); "
                                 + ("resuming from its checkpoint" if resumes
                                    else "starting it afresh (no checkpoint)"))
                    try:
                        sample_id = self.make_sample(claim.chain, lib, worker)
                    except DirectoryBusyError as err:
                        # The lease lapsed but its holder still runs the chain: leave it.
                        lib.release_claim(self.build, claim.chain, worker)
                        skipped.add(claim.chain)
                        self.log(f"chain {claim.chain:5d}: left to the process running it "
                                 f"({err})")
                        continue
                    except BaseException:
                        # Give the chain back at once (Ctrl-C, an error), so another worker
                        # need not wait for the lease; a failure to do so is not the news.
                        try:
                            lib.release_claim(self.build, claim.chain, worker)
                        except Exception:
                            pass
                        raise
                    chains.append(claim.chain)
                    if sample_id is not None:
                        made.append(sample_id)
        per_rank = self.comm.allgather(chains)
        with Library(path) as lib:
            counts = lib.count(self.build)
            held = [c["chain"] for c in lib.claims(self.build, now=self.clock()) if c["live"]]
        if self.comm.rank == 0:
            self._remove_empty_work_directory()
        if self.comm.size > 1:
            self.log("chains run per rank: " + "; ".join(
                f"rank {r}: {sorted(c)}" for r, c in enumerate(per_rank)))
        self.log(f"library {path}: build {self.build[:16]} holds {counts['certified']} "
                 f"certified and {counts['failed']} failed sample(s)"
                 + (f"; chain(s) {held} still in flight in other jobs" if held else ""))
        return BuildResult(path, self.build, made, counts, chains)

    def _remove_empty_work_directory(self) -> None:
        work = os.path.join(self.lib_cfg["work_directory"], self.build[:16])
        for directory in (work, self.lib_cfg["work_directory"]):
            try:
                os.rmdir(directory)
            except OSError:
                pass  # not empty (chains in flight elsewhere) or already gone


def _one_host(hosts: list, path: str) -> None:
    if len(hosts) > 1:
        raise ValueError(f"{path}: the ranks of one shard job must run on one host (they "
                         f"share the shard file), found {', '.join(hosts)}; run one shard "
                         "per node, or use a shared library file where POSIX locks work")


def _refuse_other_hosts(lib: Library, build: str, part: tuple, now: float) -> None:
    """A shard file is written from one host at a time: its file system's locks are not
    trusted between hosts. Live claims of another host mean a job there still writes it
    (e.g. the same array task submitted twice)."""
    host = socket.gethostname()
    foreign = [c for c in lib.claims(build, now=now) if c["live"] and c["host"] != host]
    if foreign:
        c = foreign[0]
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(c["expires"]))
        raise LibraryError(
            f"{lib.path}: shard {part[0]} of {part[1]} is being written by pid {c['pid']} on "
            f"host {c['host']} (its claim on chain {c['chain']} is live until {until}); a "
            "shard file is written from one host at a time: let that job end (or its lease "
            "lapse) and run this shard again")


def _slurm_job(environ=None) -> str:
    """``"; Slurm array job J, task I"`` (or ``"; Slurm job J"``) for the log, else ``""``."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" in env:
        return (f"; Slurm array job {env.get('SLURM_ARRAY_JOB_ID', '?')}, task "
                f"{env['SLURM_ARRAY_TASK_ID']}")
    if "SLURM_JOB_ID" in env:
        return f"; Slurm job {env['SLURM_JOB_ID']}"
    return ""


def _other_splits(path: str, shards: int) -> list[str]:
    """Shard files next to library ``path`` made with a number of shards other than
    ``shards``."""
    stem, ext = os.path.splitext(path)
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"\.shard-\d+-of-(\d+)"
                         + re.escape(ext) + "$")
    found = []
    for name in sorted(glob.glob(glob.escape(stem) + ".shard-*-of-*" + glob.escape(ext))):
        match = pattern.match(os.path.basename(name))
        if match and int(match.group(1)) != shards:
            found.append(os.path.basename(name))
    return found


def build_library(source: str | None = None, overrides: dict | None = None, comm=None,
                  log=print, clock=time.time) -> BuildResult:
    """Resolve a library config and build (or continue building) it.

    Parameters
    ----------
    source : str or None
        Preset name or TOML path with a ``[library]`` table.
    overrides : dict, optional
        Nested overrides (e.g. ``{"library": {"samples": 8}}``).
    comm : communicator, optional
        From :func:`swapmc.tempering.comm.get_comm`; serial by default.
    log : callable
        Progress lines (rank 0 only).
    clock : callable
        Unix time in seconds, for claims and leases (``time.time``).
    """
    return LibraryBuilder(resolve(source, overrides), comm=comm, log=log,
                          clock=clock).execute()
