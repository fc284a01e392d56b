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

Everything except ``samples``, ``path``, ``work_directory``, ``lease_seconds``, ``shards``
and ``shard`` enters the build fingerprint: rerunning the same command continues the same
build (and asking for more samples extends it), while changing the protocol starts a new
build in the same library file.

``lease_seconds`` (default 600) is how long a claimed chain stays reserved for its worker
without news from it: workers renew their lease every third of it while the chain runs, and
a chain whose worker stopped renewing (killed, out of wall time on another node) can be
claimed by any other worker after that long. It should exceed the longest stretch between two
renewals (the wall time between two thermo rows or checkpoints of a chain, its start-up
including compilation, and its quench); a shorter lease does not change the samples, but a
chain may then be taken over and partly run twice.

Shards
------
``shards = n`` (default 0: one shared file) splits a build into ``n`` shards for file
systems whose POSIX locks cannot be trusted across hosts (NFS without ``lockd``). Shard
``i`` runs the chains ``k`` with ``k mod n == i`` (``k < samples``) and writes them to its
own file, ``<stem>.shard-<i>-of-<n><ext>`` next to ``path`` (:func:`shard_path`), so no two
hosts ever write one file and no chain belongs to two shards. ``shard = i`` names the shard
(``swapmc library build --shard i``); the default ``"auto"`` takes ``SLURM_ARRAY_TASK_ID``,
so the tasks of ``sbatch --array=0-<n-1>`` are the shards. ``n`` is read from the config,
not from the array's size, so resubmitting some tasks (``--array=3,7``) gives them the same
shards as before. ``swapmc library merge`` combines the shard files into one library.
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
    "shards": 0,  # 0: one shared library file; n: shard files, chains split k mod n
    "shard": "auto",  # this job's shard (0 .. shards-1); "auto": $SLURM_ARRAY_TASK_ID
    **{k: f.default for k, f in Criteria.__dataclass_fields__.items()},
}

# Keys that do not change what a sample is (so not part of the build fingerprint).
NOT_FINGERPRINTED = ("samples", "path", "work_directory", "lease_seconds", "shards", "shard")
QUENCH_FMAX = {"lj": 1e-6, "metal": 1e-5}


def resolve(source: str | None = None, overrides: dict | None = None,
            environ=None) -> dict:
    """A run config with a fully defaulted and validated ``library`` table.

    Parameters
    ----------
    source : str or None
        Preset name or TOML path (``None``: the default preset).
    overrides : dict, optional
        Nested overrides; may hold a ``library`` table.
    environ : mapping, optional
        Environment for ``shard = "auto"`` (``SLURM_ARRAY_TASK_ID``); ``os.environ`` by
        default.

    Notes
    -----
    In the result, ``library.shard`` is the shard index (an int) when ``shards`` > 0 and
    None otherwise.
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
    lib["shard"] = _resolve_shard(lib, where, os.environ if environ is None else environ)
    cfg["library"] = lib
    return cfg


def _resolve_shard(lib: dict, where, environ) -> int | None:
    """The shard index of this job (None for a shared library file), validated."""
    n, shard = lib["shards"], lib["shard"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where('shards')}: [library] shards must be an integer >= 0 (0: one "
                          f"shared library file), got {n!r}")
    if shard is None or shard == "auto":
        if n == 0:
            return None
        text = environ.get("SLURM_ARRAY_TASK_ID")
        if text is None:
            raise ConfigError(f"{where('shards')}: [library] shards = {n} needs this job's "
                              f"shard: give --shard I (0 <= I < {n}) or run it as a Slurm "
                              f"array task (sbatch --array=0-{n - 1})")
        try:
            index = int(text)
        except ValueError:
            raise ConfigError(f"SLURM_ARRAY_TASK_ID = {text!r} is not an integer") from None
        if not 0 <= index < n:
            raise ConfigError(f"SLURM_ARRAY_TASK_ID = {index} is not a shard of [library] "
                              f"shards = {n} (0 .. {n - 1}): submit with --array=0-{n - 1}")
        return index
    if isinstance(shard, bool) or not isinstance(shard, int):
        raise ConfigError(f"{where('shard')}: [library] shard must be an integer or 'auto', "
                          f"got {shard!r}")
    if n == 0:
        raise ConfigError(f"{where('shard')}: [library] shard = {shard} needs [library] shards "
                          "(the number of shards the build is split into)")
    if not 0 <= shard < n:
        raise ConfigError(f"{where('shard')}: [library] shard must lie in 0 .. {n - 1} "
                          f"(shards = {n}), got {shard}")
    return shard


def shard_path(path: str, shard: int, shards: int) -> str:
    """File of shard ``shard`` of ``shards`` next to the library file ``path``:
    ``glasses.sqlite`` -> ``glasses.shard-03-of-16.sqlite`` (indices zero-padded, so the
    shards sort in order)."""
    stem, ext = os.path.splitext(path)
    width = len(str(shards - 1))
    return f"{stem}.shard-{shard:0{width}d}-of-{shards}{ext}"


def library_path(cfg: dict) -> str:
    """The file a build job writes: ``[library] path``, or its shard file."""
    lib = cfg["library"]
    if lib.get("shards") and lib.get("shard") is not None:
        return shard_path(lib["path"], lib["shard"], lib["shards"])
    return lib["path"]


def partition(cfg: dict) -> tuple[int, int] | None:
    """``(shard, shards)`` of a sharded build job (it runs the chains ``k`` with
    ``k mod shards == shard``), or None for a shared library file."""
    lib = cfg["library"]
    if lib.get("shards") and lib.get("shard") is not None:
        return int(lib["shard"]), int(lib["shards"])
    return None


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
