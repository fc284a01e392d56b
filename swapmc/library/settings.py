"""The ``[library]`` table of a library-build config, and the build fingerprint.

A library config is an ordinary run config (preset, ``[system]``, ``[run]``, ...) that
describes *one chain*, plus a ``[library]`` table::

    preset = "ka2-x10"
    [state]
    temperature = 0.45
    [run]
    seed = 7                      # chain k runs with a seed derived from (7, k)
    equilibration_sweeps = 50000
    production_sweeps = 50000
    [library]
    path = "glasses.sqlite"
    samples = 100
    max_production_sweeps = 200000   # extend a chain whose F_s has not decayed enough

Everything except ``samples``, ``path``, ``work_directory`` and ``lease_seconds`` enters the
build fingerprint: rerunning the same command continues the same build (and asking for more
samples extends it), while changing the protocol starts a new build in the same library file.

``lease_seconds`` (default 600) is how long a claimed chain stays reserved for its worker
without news from it: workers renew their lease every third of it while the chain runs, and
a chain whose worker stopped renewing (killed, out of wall time on another node) can be
claimed by any other worker after that long. It should exceed the longest stretch between two
renewals (the wall time between two thermo rows or checkpoints of a chain, its start-up
including compilation, and its quench); a shorter lease does not change the samples, but a
chain may then be taken over and partly run twice.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os

from .._toml import ConfigError, key_line, unknown_keys_message
from ..config import resolve as resolve_run
from ..models.presets import merge
from .certify import Criteria

LIBRARY_DEFAULTS = {
    "path": "glasses.sqlite",
    "samples": 4,
    "work_directory": "",  # "": <path>.work next to the library file
    "max_production_sweeps": 0,  # 0: never extend production
    "quench_fmax": "auto",  # FIRE force tolerance: 1e-6 (LJ) or 1e-5 eV/Å (metal)
    "quench_max_steps": 200_000,
    "lease_seconds": 600.0,  # a claimed chain is free for others after this long unrenewed
    **{k: f.default for k, f in Criteria.__dataclass_fields__.items()},
}

# Keys that do not change what a sample is (so not part of the build fingerprint).
NOT_FINGERPRINTED = ("samples", "path", "work_directory", "lease_seconds")
QUENCH_FMAX = {"lj": 1e-6, "metal": 1e-5}


def resolve(source: str | None = None, overrides: dict | None = None) -> dict:
    """A run config with a fully defaulted and validated ``library`` table.

    Parameters
    ----------
    source : str or None
        Preset name or TOML path (``None``: the default preset).
    overrides : dict, optional
        Nested overrides; may hold a ``library`` table.
    """
    cfg = resolve_run(source, overrides, extra_sections=("library",))
    origin = source or "default preset"
    if source is not None and not (source.endswith(".toml") or os.path.sep in source):
        source = None  # a preset name: there is no file to point into
    given = cfg["library"]
    unknown = set(given) - set(LIBRARY_DEFAULTS)

    def where(key):
        line = key_line(source, "library", key) if source else None
        return f"{source}:{line}" if line else origin

    if unknown:
        raise ConfigError(f"{where(sorted(unknown)[0])}: "
                          + unknown_keys_message(unknown, LIBRARY_DEFAULTS, "[library]"))
    lib = merge(LIBRARY_DEFAULTS, given)
    for key in ("samples", "quench_max_steps", "drift_blocks"):
        if isinstance(lib[key], bool) or not isinstance(lib[key], int) or lib[key] < 1:
            raise ConfigError(f"{where(key)}: [library] {key} must be a positive integer, got "
                              f"{lib[key]!r}")
    if lib["drift_blocks"] < 2:
        raise ConfigError(f"{where('drift_blocks')}: [library] drift_blocks must be >= 2")
    for key in ("min_decays", "max_fs_final", "max_drift_z", "max_crystalline_fraction"):
        # NaN passes every "<= 0" test and would certify anything, so finiteness is checked.
        v = lib[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or v <= 0):
            raise ConfigError(f"{where(key)}: [library] {key} must be a finite number > 0, "
                              f"got {v!r}")
    for key in ("max_fs_final", "max_crystalline_fraction"):
        if lib[key] > 1:
            raise ConfigError(f"{where(key)}: [library] {key} is a fraction and must be <= 1, "
                              f"got {lib[key]!r}")
    lease = lib["lease_seconds"]
    # Each renewal is one synchronised write to the library, so a lease of under a second
    # would keep the file busy; an infinite one would never free a dead worker's chain.
    if (isinstance(lease, bool) or not isinstance(lease, (int, float)) or not math.isfinite(lease)
            or lease < 1):
        raise ConfigError(f"{where('lease_seconds')}: [library] lease_seconds must be a finite "
                          f"number of seconds >= 1, got {lease!r}")
    lib["lease_seconds"] = float(lease)
    extend = lib["max_production_sweeps"]
    if isinstance(extend, bool) or not isinstance(extend, int) or extend < 0:
        raise ConfigError(f"{origin}: [library] max_production_sweeps must be an integer >= 0")
    if extend and extend < cfg["run"]["production_sweeps"]:
        raise ConfigError(f"{origin}: [library] max_production_sweeps = {extend} is below "
                          f"[run] production_sweeps = {cfg['run']['production_sweeps']}")
    fmax = lib["quench_fmax"]
    if fmax != "auto" and not (isinstance(fmax, (int, float)) and not isinstance(fmax, bool)
                               and math.isfinite(fmax) and fmax > 0):
        raise ConfigError(f"{where('quench_fmax')}: [library] quench_fmax must be 'auto' or a "
                          f"finite number > 0, got {fmax!r}")
    for key in ("path", "work_directory"):
        if not isinstance(lib[key], str):
            raise ConfigError(f"{where(key)}: [library] {key} must be a path, got "
                              f"{lib[key]!r}")
    if not lib["path"].strip():
        raise ConfigError(f"{where('path')}: [library] path must name the library file")
    if not lib["work_directory"]:
        lib["work_directory"] = lib["path"] + ".work"
    if cfg["run"]["production_sweeps"] < 1:
        raise ConfigError(f"{origin}: a library chain needs production_sweeps >= 1")
    cfg["library"] = lib
    return cfg


def chain_template(cfg: dict) -> dict:
    """The run config every chain starts from (before its seed and directory are set).

    F_s is always tracked (certification needs it), with snapshots spaced so that the lags
    reach the longest production a chain may get. The stored progress flag is off; the
    builder shows progress for rank 0's chain only (many chains run at once, and the build
    prints one line per finished sample).
    """
    run_cfg = copy.deepcopy({k: v for k, v in cfg.items() if k != "library"})
    lib = cfg["library"]
    longest = max(run_cfg["run"]["production_sweeps"], lib["max_production_sweeps"])
    run_cfg["diagnostics"]["tau_alpha"] = True
    if run_cfg["diagnostics"]["fs_every"] == 0:
        # F_s snapshots every longest/1000 sweeps: the shortest lag stays far below
        # tau_alpha; the lags themselves reach half the run at any spacing.
        run_cfg["diagnostics"]["fs_every"] = max(1, longest // 1000)
    run_cfg["output"]["progress"] = False
    run_cfg["output"]["directory"] = ""
    return run_cfg


def build_fingerprint(cfg: dict) -> str:
    """Hex SHA-256 naming the build: the chain protocol plus the certification rules."""
    template = chain_template(cfg)
    template["output"].pop("directory")
    template["output"].pop("progress")
    lib = {k: v for k, v in cfg["library"].items() if k not in NOT_FINGERPRINTED}
    text = json.dumps({"chain": template, "library": lib}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def chain_seed(base_seed: int, chain: int) -> int:
    """Independent, reproducible seed of chain ``chain`` (< 2**32, fits any config file)."""
    import numpy as np

    ss = np.random.SeedSequence([int(base_seed), int(chain)])
    return int(ss.generate_state(1, np.uint32)[0])


def chain_directory(cfg: dict, build: str, chain: int) -> str:
    return os.path.join(cfg["library"]["work_directory"], build[:16], f"chain-{chain:06d}")
