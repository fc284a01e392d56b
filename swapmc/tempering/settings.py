"""The ``[tempering]`` config section: defaults, resolution, validation, restart fingerprint.

A tempering config is an ordinary swapmc config (preset + ``[system]``, ``[run]``,
``[output]``...) plus a ``[tempering]`` table::

    [tempering]
    temperatures = [0.45, 0.5, 0.56]       # a ladder from a list, or a geometric one:
    # t_min = 0.45; t_max = 1.0; n_replicas = 16
    exchange_every = 10                    # sweeps per replica between exchange rounds
    equilibration_rounds = 200             # step sizes tuned; ladder optimised if asked
    rounds = 2000                          # production rounds (step sizes, ladder frozen)
    optimize_ladder = false                # Katzgraber et al. (2006) feedback
    optimize_stages = 4                    # feedback stages (lengths 1 : 2 : 4 : ...)

Without a ladder the default is 8 temperatures from the preset's ``[state] temperature`` to
1.5 times that. ``run.seed``, the ``[system]`` keys and ``output.directory``,
``output.checkpoint_every``, ``output.trajectory_every`` (sweeps) and ``output.progress``
keep their meaning; ``run.equilibration_sweeps``, ``run.production_sweeps``,
``run.tune_every`` and ``output.thermo_every`` are not used (energies are logged every round).
"""

from __future__ import annotations

import copy
import math
import os

from .. import config as base_config
from .._toml import ConfigError, key_line, unknown_keys_message
from ..models.presets import merge
from .ladder import check_ladder, geometric_ladder, stage_ends

__all__ = ["TEMPERING_DEFAULTS", "fingerprint", "initial_ladder", "resolve"]

TEMPERING_DEFAULTS = {
    "temperatures": None,
    "t_min": None,
    "t_max": None,
    "n_replicas": None,
    "exchange_every": 10,
    "rounds": 1000,
    "equilibration_rounds": 100,
    "optimize_ladder": False,
    "optimize_stages": 4,
}

# Keys that may change between a run and its restart (more production extends the run).
RESTART_MUTABLE = {("tempering", "rounds"), ("output", "progress")}

_LADDER_KEYS = ("t_min", "t_max", "n_replicas")


def _split(data: dict | None) -> tuple[dict, dict]:
    data = copy.deepcopy(data or {})
    tempering = data.pop("tempering", {})
    if not isinstance(tempering, dict):
        raise ConfigError("[tempering] must be a table")
    return data, tempering


def _merge_ladder(file_part: dict, override: dict) -> dict:
    """Command-line ladder options replace the file's ladder as a whole: a list replaces a
    geometric spec, and geometric options start from the file's list's endpoints/length."""
    out = dict(file_part)
    if override.get("temperatures") is not None:
        for k in _LADDER_KEYS:
            out.pop(k, None)
    elif any(override.get(k) is not None for k in _LADDER_KEYS) and out.get("temperatures"):
        temps = list(out.pop("temperatures"))
        out.setdefault("t_min", temps[0])
        out.setdefault("t_max", temps[-1])
        out.setdefault("n_replicas", len(temps))
    out.update({k: v for k, v in override.items() if v is not None})
    return out


def resolve(source: str | None = None, overrides: dict | None = None) -> dict:
    """Resolve a preset or TOML config with a ``[tempering]`` section, plus overrides.

    Parameters
    ----------
    source : str or None
        A built-in preset name or a ``.toml`` path (``None``: the default preset).
    overrides : dict, optional
        Nested dict of overrides (e.g. from command-line flags), may hold ``tempering``.

    Returns
    -------
    dict
        :func:`swapmc.config.resolve`'s result plus a fully defaulted ``tempering`` table.
    """
    base_over, t_over = _split(overrides)
    # The [tempering] table of a file is resolved as an extra section (so errors name the
    # file and line); command-line ladder options are merged by _merge_ladder, not by the
    # generic merge, because a list on the command line replaces a geometric spec.
    cfg = base_config.resolve(source, base_over, extra_sections=("tempering",))
    t_file = cfg.pop("tempering")
    is_file = source is not None and (source.endswith(".toml") or os.path.sep in source)
    origin = source if is_file else f"preset {cfg['preset']!r}"
    given = _merge_ladder(t_file, t_over)
    unknown = set(given) - set(TEMPERING_DEFAULTS)
    if unknown:
        first = sorted(unknown)[0]
        line = key_line(source, "tempering", first) if is_file else None
        raise ConfigError(f"{origin}{f':{line}' if line else ''}: "
                          + unknown_keys_message(unknown, TEMPERING_DEFAULTS, "[tempering]"))
    t = merge(TEMPERING_DEFAULTS, given)
    _check_ladder_numbers(t, origin)
    if t["temperatures"] is None:
        temp0 = float(cfg.get("state", {}).get("temperature", 1.0))
        t["t_min"] = temp0 if t["t_min"] is None else t["t_min"]
        t["t_max"] = 1.5 * t["t_min"] if t["t_max"] is None else t["t_max"]
        t["n_replicas"] = 8 if t["n_replicas"] is None else t["n_replicas"]
    elif any(t[k] is not None for k in _LADDER_KEYS):
        raise ConfigError(f"{origin}: [tempering] gives both temperatures and "
                          f"{[k for k in _LADDER_KEYS if t[k] is not None]}; give a list or "
                          "t_min, t_max, n_replicas, not both")
    cfg["tempering"] = t
    validate(cfg, origin)
    return cfg


def _check_ladder_numbers(t: dict, origin: str) -> None:
    """The ladder keys are finite positive temperatures (NaN passes every comparison, so
    it is rejected explicitly) and a positive replica count."""
    for key in ("t_min", "t_max"):
        v = t[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            raise ConfigError(f"{origin}: [tempering] {key} must be a finite temperature > 0, "
                              f"got {v!r}")
    if t["n_replicas"] is not None and (isinstance(t["n_replicas"], bool)
                                        or not isinstance(t["n_replicas"], int)
                                        or t["n_replicas"] < 1):
        raise ConfigError(f"{origin}: [tempering] n_replicas must be an integer >= 1, got "
                          f"{t['n_replicas']!r}")
    temps = t["temperatures"]
    if temps is not None and (not isinstance(temps, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0 for v in temps)):
        raise ConfigError(f"{origin}: [tempering] temperatures must be a list of finite "
                          f"temperatures > 0, got {temps!r}")


def validate(cfg: dict, origin: str = "config") -> None:
    """Check the ``[tempering]`` table and the parts of the run config it relies on."""
    t = cfg["tempering"]
    for key, low in (("exchange_every", 1), ("rounds", 0), ("equilibration_rounds", 0),
                     ("optimize_stages", 1)):
        v = t[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{origin}: [tempering] {key} must be an integer >= {low}, "
                              f"got {v!r}")
    _check_ladder_numbers(t, origin)
    if not isinstance(t["optimize_ladder"], bool):
        raise ConfigError(f"{origin}: [tempering] optimize_ladder must be true or false")
    ladder = initial_ladder(cfg)
    if t["optimize_ladder"]:
        opt_rounds = optimisation_rounds(t["equilibration_rounds"])
        try:
            stage_ends(opt_rounds, t["optimize_stages"])
        except ConfigError as err:
            raise ConfigError(
                f"{origin}: [tempering] optimize_ladder: {err} (3/4 of equilibration_rounds "
                f"= {t['equilibration_rounds']} are used for it)"
            ) from None
        if ladder.size < 3:
            raise ConfigError(f"{origin}: optimize_ladder needs at least 3 temperatures")
    if cfg["diagnostics"].get("tau_alpha"):
        raise ConfigError(f"{origin}: [diagnostics] tau_alpha is not supported by "
                          "`swapmc temper`; measure it with `swapmc run` at one temperature")


def initial_ladder(cfg: dict):
    """The starting ladder of a resolved config, shape (M,)."""
    t = cfg["tempering"]
    if t["temperatures"] is not None:
        return check_ladder(t["temperatures"])
    return geometric_ladder(t["t_min"], t["t_max"], t["n_replicas"])


def optimisation_rounds(equilibration_rounds: int) -> int:
    """Rounds of equilibration spent on ladder feedback: the first three quarters; the
    last quarter re-tunes step sizes on the final, frozen ladder."""
    return (3 * int(equilibration_rounds)) // 4


def fingerprint(cfg: dict) -> dict:
    """The part of a config that must match for a restart to be valid."""
    fp = base_config.fingerprint(cfg)
    for sec, key in RESTART_MUTABLE:
        fp.get(sec, {}).pop(key, None)
    return fp
