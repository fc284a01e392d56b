"""``swapmc library harvest``: samples from the lowest temperature of a parallel-tempering run.

A finished ``swapmc temper`` run leaves the configurations sampled at each temperature slot
in ``trajectories/T00.xyz`` (slot 0 = the lowest temperature, demultiplexed: whichever
replica sat there). Frames are taken as samples when

1. they are at least ``stride`` sweeps after the previous sample (default: the round-trip
   time, estimated as production rounds x replicas / round trips completed in production,
   from ``labels.csv``; see :func:`swapmc.tempering.statistics.renewal_round_trip_time`.
   The run's reported mean of *completed* trips is biased low, because the long trips
   still under way at the end are left out), and
2. the replica sitting at the lowest temperature in that frame has visited the highest
   temperature since the previous sample (for the first sample: since production began),
   read from the replicas' walks in ``labels.csv``. The configuration has then been
   carried through the hot, fast-relaxing end of the ladder since the previous sample
   was taken, rather than having stayed at the bottom all along. A frame that fails
   this is skipped (its successors are tried), not stored as failed: it is a correlated
   copy of the previous sample, and the next frames may qualify.

The certificate of a PT sample (:func:`swapmc.library.certify.certify_tempering`) replaces
the F_s test of a chain by the replicas' walk: the run must have made at least
``min_round_trips`` end-to-end round trips; the lowest-temperature energy series must show
no drift between its production halves (the drift test of the chains, with the round-trip
time as the correlation time); no crystal; converged quench. Each stored sample
records the round-trip count.

Harvesting is idempotent: the build fingerprint covers the tempering config (except the
number of rounds), the stride and the thresholds, and frames are keyed by their index in
``T00.xyz``, so rerunning never duplicates; extending the PT run and harvesting again with
an explicit ``--stride`` adds the new frames to the same build.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time

import numpy as np

from .. import __version__
from .._toml import ConfigError, dumps_toml
from ..analysis import crystalline_fraction
from ..config import PRESET_SECTIONS
from ..io import iter_extxyz
from ..models.presets import build_preset
from ..tempering.statistics import last_visits, renewal_round_trip_time
from .build import BuildResult, model_fingerprint
from .certify import Criteria, certify_tempering
from .settings import QUENCH_FMAX
from .store import Library


def _walks(run_dir: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Rounds (R,), label walks (R, M) and the first production row, from labels.csv."""
    from ..tempering.output import read_table

    table = read_table(os.path.join(run_dir, "labels.csv"))
    rounds = np.asarray(table["round"], np.int64)
    names = sorted((k for k in table if k.startswith("r") and k[1:].isdigit()),
                   key=lambda k: int(k[1:]))
    labels = np.column_stack([np.asarray(table[k], np.int64) for k in names])
    production = np.flatnonzero(np.array([p == "production" for p in table["phase"]]))
    first = int(production[0]) if production.size else len(rounds)
    return rounds, labels, first


def _lowest_energies(run_dir: str) -> np.ndarray:
    from ..tempering.output import read_table

    table = read_table(os.path.join(run_dir, "energy_by_temperature.csv"))
    prod = np.array([p == "production" for p in table["phase"]], bool)
    return np.asarray(table["T0"], float)[prod]


def harvest_tempering(run_dir: str, library_path: str, *, stride: int | None = None,
                      min_round_trips: int = 10, criteria: Criteria | None = None,
                      quench_fmax: float | None = None, quench_max_steps: int = 200_000,
                      log=print) -> BuildResult:
    """Store the lowest-temperature configurations of a finished PT run in a library.

    Parameters
    ----------
    run_dir : str
        Output directory of ``swapmc temper`` (needs ``config.toml``, ``summary.json`` and
        ``trajectories/T00.xyz``).
    library_path : str
        Library file (created if missing).
    stride : int, optional
        Minimum sweeps between harvested frames; default: the round-trip time (production
        rounds x replicas / completed round trips, in sweeps), rounded up to a multiple of
        the trajectory interval. Frames are also skipped until the replica at the bottom
        has visited the top since the previous harvested frame (module docstring).
    min_round_trips : int
        Round trips the run must have made for its samples to be certified.
    criteria : Criteria, optional
        Drift and crystal thresholds (the F_s thresholds do not apply).
    quench_fmax : float, optional
        FIRE tolerance (default 1e-6 LJ, 1e-5 eV/Å metal).
    quench_max_steps : int
    log : callable

    Returns
    -------
    BuildResult
    """
    from ..md.forcefield import ForceField
    from ..md.minimize import fire
    from ..tempering.settings import fingerprint as pt_fingerprint
    from ..tempering.settings import resolve as resolve_pt

    criteria = criteria or Criteria()
    config_path = os.path.join(run_dir, "config.toml")
    summary_path = os.path.join(run_dir, "summary.json")
    frames_path = os.path.join(run_dir, "trajectories", "T00.xyz")
    labels_path = os.path.join(run_dir, "labels.csv")
    for path, hint in ((config_path, "the run's resolved config"),
                       (summary_path, "written when the run finishes"),
                       (labels_path, "the replicas' walks, written every round"),
                       (frames_path, "set [output] trajectory_every")):
        if not os.path.exists(path):
            raise ConfigError(f"{run_dir}: not a finished tempering run with frames: missing "
                              f"{os.path.relpath(path, run_dir)} ({hint})")
    cfg = resolve_pt(config_path)
    with open(summary_path) as fh:
        summary = json.load(fh)
    preset = build_preset({k: v for k, v in cfg.items() if k in PRESET_SECTIONS},
                          config_path)
    model = preset.model
    ladder = summary["ladder"]
    trips = int(summary["round_trips"]["total"])
    every = int(cfg["output"]["trajectory_every"])
    per_round = int(summary["exchange_every"])
    rounds, walks, first_production = _walks(run_dir)
    n_slots = len(ladder)
    # Rounds per round trip; NaN without a completed trip in production.
    round_trip = renewal_round_trip_time(walks, n_slots, first_production)
    if stride is None:
        if not np.isfinite(round_trip):
            raise ConfigError(f"{run_dir}: no completed round trip, so no default stride; "
                              "run longer or give --stride")
        stride = every * max(1, math.ceil(round_trip * per_round / every))
    if stride < 1:
        raise ConfigError(f"stride must be >= 1 sweep, got {stride}")
    fmax = quench_fmax or QUENCH_FMAX[model.units]
    rules = {"stride": int(stride), "min_round_trips": int(min_round_trips),
             "max_drift_z": criteria.max_drift_z, "drift_blocks": criteria.drift_blocks,
             "max_crystalline_fraction": criteria.max_crystalline_fraction,
             "quench_fmax": fmax, "quench_max_steps": quench_max_steps,
             "frames": "bottom replica visited the top since the previous frame"}
    text = json.dumps({"tempering": pt_fingerprint(cfg), "harvest": rules}, sort_keys=True,
                      default=str)
    build = hashlib.sha256(text.encode()).hexdigest()
    model_hash, potential = model_fingerprint(model)
    energies = _lowest_energies(run_dir)
    # One energy row per round: the round-trip time in rounds is the correlation time the
    # drift test allows for (None without a round trip; the sample then fails anyway).
    correlation = float(round_trip) if np.isfinite(round_trip) else None
    last_top = last_visits(walks, n_slots - 1)
    production_sweeps = (len(rounds) - first_production) * per_round
    ff = ForceField(model)
    made = []
    skipped = 0
    with Library(library_path, create=True) as lib:
        lib.register_build(build, cfg["preset"], model_hash, dumps_toml(cfg), __version__)
        if potential is not None:
            lib.add_potential(model_hash, model.setfl_kind, potential)
        done = lib.done_chains(build)
        last = None
        since = first_production - 1  # the first frame's replica must reach the top after it
        for index, system in enumerate(iter_extxyz(frames_path, species_names=model.species)):
            sweep = int(system.info["sweep"])
            if last is not None and sweep - last < stride:
                continue
            row = int(np.searchsorted(rounds, int(system.info["round"])))
            if row >= len(rounds) or rounds[row] != int(system.info["round"]):
                raise ConfigError(f"{frames_path}: frame {index} is from round "
                                  f"{system.info['round']}, which labels.csv does not hold")
            bottom = int(np.flatnonzero(walks[row] == 0)[0])
            if last_top[row, bottom] <= since:
                skipped += 1
                continue
            last, since = sweep, row
            if index in done:
                continue
            t0 = time.perf_counter()
            quench = fire(system, ff, fmax=fmax, max_steps=quench_max_steps)
            cert = certify_tempering(trips, min_round_trips, energies,
                                     crystalline_fraction(system.positions, system.box),
                                     quench.converged, criteria, correlation)
            counts = np.bincount(system.species, minlength=len(model.species))
            meta = {
                "build": build, "chain": index, "source": "tempering",
                "model": cfg["preset"], "model_hash": model_hash, "kind": model.kind,
                "units": model.units, "species_names": list(model.species),
                "composition": dict(zip(model.species, counts.tolist())),
                "masses": [float(m) for m in model.masses],
                "elements": dict(cfg.get("elements", {})) or None, "n": system.n,
                "temperature": float(ladder[0]), "pressure": preset.pressure,
                "density": system.n / system.box.volume, "seed": int(cfg["run"]["seed"]),
                "sweeps": sweep, "production_sweeps": int(production_sweeps),
                "round_trips": trips, "drift_z": cert.drift_z,
                "crystalline_fraction": cert.crystalline_fraction,
                "verdict": cert.verdict, "reasons": "; ".join(cert.reasons),
                "energy": float(system.info["energy"]) / system.n,
                "is_energy": quench.energy_per_particle,
                "is_max_force": float(quench.max_force),
                "wall_seconds": time.perf_counter() - t0,
            }
            sample_id = lib.add_sample(meta, system, quench.system)
            if sample_id is not None:
                made.append(sample_id)
                log(f"frame {index:5d} (sweep {sweep}) -> sample {sample_id}: {cert.verdict}"
                    f", E_IS/N {quench.energy_per_particle:.5f}"
                    + (f" ({'; '.join(cert.reasons)})" if cert.reasons else ""))
        counts = lib.count(build)
    log(f"library {library_path}: build {build[:16]} (T = {ladder[0]:g} of {run_dir}, stride "
        f"{stride} sweeps, round-trip time {round_trip * per_round:.4g} sweeps, {trips} round "
        f"trips; {skipped} frame(s) skipped: their bottom replica had not visited the top "
        f"since the previous sample) holds {counts['certified']} certified and "
        f"{counts['failed']} failed sample(s)")
    return BuildResult(library_path, build, made, counts)
