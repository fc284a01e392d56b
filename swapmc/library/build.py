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

With MPI, rank 0 lists the missing chains and every rank takes every size-th of them; each
rank writes its own samples (SQLite serialises the writers). Only rank 0 prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .. import __version__
from .._toml import dumps_toml
from ..analysis import crystalline_fraction
from ..config import PRESET_SECTIONS
from ..io import atomic_write
from ..models.presets import build_preset
from ..run import Run, production_rows
from .certify import Certificate, Criteria, certify
from .settings import (
    QUENCH_FMAX,
    build_fingerprint,
    chain_directory,
    chain_seed,
    chain_template,
    resolve,
)
from .store import Library


@dataclass
class BuildResult:
    """What a build (on this rank) did.

    Attributes
    ----------
    path : str
        The library file.
    build : str
        Build fingerprint.
    made : list of int
        Sample ids stored by this rank in this invocation.
    counts : dict
        ``{"certified": k, "failed": m}`` of the whole build at the end.
    """

    path: str
    build: str
    made: list
    counts: dict


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
    """

    def __init__(self, cfg: dict, comm=None, log=print):
        from ..tempering.comm import SerialComm

        self.cfg = cfg
        self.comm = comm or SerialComm()
        self.log = log if self.comm.rank == 0 else (lambda *a, **k: None)
        self.show_progress = self.comm.rank == 0 and bool(cfg["output"]["progress"])
        self.lib_cfg = cfg["library"]
        self.criteria = Criteria.from_dict(self.lib_cfg)
        self.template = chain_template(cfg)
        self.build = build_fingerprint(cfg)
        preset_part = {k: v for k, v in cfg.items() if k in PRESET_SECTIONS}
        self.preset = build_preset(preset_part, f"preset {cfg['preset']!r}")
        self.model = self.preset.model
        fmax = self.lib_cfg["quench_fmax"]
        self.fmax = QUENCH_FMAX[self.model.units] if fmax == "auto" else float(fmax)

    # ------------------------------------------------------------------ one chain
    def _run_chain(self, chain: int) -> tuple[Run, Certificate, float, float]:
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
        while True:
            # Rank 0 shows the progress of its own chain (stderr); other ranks stay quiet.
            run = Run(cfg, progress=self.show_progress, log=lambda *a, **k: None)
            # Wall time of the chain so far, summed over every process that worked on it.
            summary = run.execute().summary
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

    def make_sample(self, chain: int, library: Library) -> int | None:
        """Run, certify, quench and store chain ``chain``; returns the sample id (None if
        another process stored the same chain first)."""
        from ..md.forcefield import ForceField
        from ..md.minimize import fire

        run, cert, chain_wall, chain_cpu = self._run_chain(chain)
        t0, c0 = time.perf_counter(), time.process_time()
        system = run.mc.system()
        quench = fire(system, ForceField(self.model), fmax=self.fmax,
                      max_steps=self.lib_cfg["quench_max_steps"])
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
        sample_id = library.add_sample(meta, system, quench.system)
        shutil.rmtree(run.outdir, ignore_errors=True)
        self._report(chain, sample_id, meta, cert)
        return sample_id

    def _report(self, chain, sample_id, meta, cert) -> None:
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

        path = self.lib_cfg["path"]
        wanted = self.lib_cfg["samples"]

        def prepare():
            # Rank 0 creates the file and registers the build before anyone writes.
            if self.comm.rank == 0:
                self.model_hash, text = model_fingerprint(self.model)
                with Library(path, create=True) as lib:
                    lib.register_build(self.build, self.cfg["preset"], self.model_hash,
                                       dumps_toml(self.cfg), __version__)
                    if text is not None:
                        lib.add_potential(self.model_hash, self.model.setfl_kind, text)
                    done = lib.done_chains(self.build)
                return self.model_hash, [k for k in range(wanted) if k not in done]
            return None

        prepared = agree(self.comm, prepare)
        self.model_hash, missing = self.comm.bcast(prepared, root=0)
        mine = missing[self.comm.rank::self.comm.size]
        self.log(f"library {path}: build {self.build[:16]}, {wanted} sample(s) wanted, "
                 f"{wanted - len(missing)} stored, {len(missing)} to make on "
                 f"{self.comm.size} process(es)")
        made = []
        with abort_on_error(self.comm):
            with Library(path, create=True) as lib:
                for chain in mine:
                    sample_id = self.make_sample(chain, lib)
                    if sample_id is not None:
                        made.append(sample_id)
        self.comm.barrier()
        with Library(path) as lib:
            counts = lib.count(self.build)
        if self.comm.rank == 0:
            self._remove_empty_work_directory()
        self.log(f"library {path}: build {self.build[:16]} holds {counts['certified']} "
                 f"certified and {counts['failed']} failed sample(s)")
        return BuildResult(path, self.build, made, counts)

    def _remove_empty_work_directory(self) -> None:
        work = os.path.join(self.lib_cfg["work_directory"], self.build[:16])
        for directory in (work, self.lib_cfg["work_directory"]):
            try:
                os.rmdir(directory)
            except OSError:
                pass  # not empty (chains in flight elsewhere) or already gone


def build_library(source: str | None = None, overrides: dict | None = None, comm=None,
                  log=print) -> BuildResult:
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
    """
    return LibraryBuilder(resolve(source, overrides), comm=comm, log=log).execute()
