"""Run configuration: a preset or TOML file, plus overrides, resolved to one plain dict.

A config file may name a built-in ``preset`` and override any of its sections (``[model]``,
``[dopant]``, ``[composition]``, ``[state]``, ``[moves]``), and adds the run sections
``[system]``, ``[run]``, ``[output]`` and ``[diagnostics]``. Every key has a default, so a bare
preset name is a complete run. The resolved config is written next to the outputs and its
fingerprint guards restarts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os

from ._toml import ConfigError, load_toml_file
from .models.presets import build_preset, merge, preset_data

DEFAULT_PRESET = "ka2-x10"

PRESET_SECTIONS = ("name", "description", "units", "model", "dopant", "composition", "state",
                   "moves", "elements")

DEFAULTS = {
    "system": {
        "n": 500,
        "init": "random",  # "random", "lattice", or a path to .xyz/.extxyz/.data
        "min_distance": 0.7,
        "melt_temperature": 2.0,
        "melt_sweeps": 200,
    },
    "run": {
        "seed": 1,
        "equilibration_sweeps": 1000,
        "production_sweeps": 5000,
        "tune_every": 10,
        "skin": "auto",  # model default: 0.7 sigma (LJ), 1.0 Å (EAM)
        "energy_check_every": 100,
    },
    "output": {
        "directory": "swapmc-run",
        "thermo_every": 50,
        "trajectory_every": 0,
        "checkpoint_every": 500,
        "progress": True,
    },
    "diagnostics": {
        "tau_alpha": False,
        "fs_every": 0,  # sweeps between F_s snapshots; 0: production_sweeps // 1000, >= 1
        "q": "auto",  # "auto": 7.25 (rho / 1.2)^(1/3), KA's S(q) peak scaled with the spacing
        "fs_species": "auto",  # species tracked (at each time origin); "auto": most numerous
    },
}

# Keys that may change between a run and its restart without invalidating the checkpoint.
RESTART_MUTABLE = {("run", "production_sweeps"), ("output", "progress")}


def _check_keys(section: str, given: dict, allowed: dict) -> None:
    unknown = set(given) - set(allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in [{section}]; allowed: {sorted(allowed)}"
        )


def resolve(source: str | None = None, overrides: dict | None = None,
            extra_sections: tuple = ()) -> dict:
    """Resolve a preset name or TOML path (``None``: the default preset) plus overrides.

    Parameters
    ----------
    source : str or None
        A built-in preset name, or a path to a ``.toml`` config.
    overrides : dict, optional
        Nested dict merged last (e.g. from command-line flags).
    extra_sections : tuple of str, optional
        Further tables a driver accepts (e.g. ``("library",)``); they are returned as given
        (an empty dict when absent) and the driver validates them.

    Returns
    -------
    dict
        ``{"preset": name, <preset sections>, "system": .., "run": .., "output": ..,
        "diagnostics": ..}`` with every default filled in.
    """
    if source is None:
        user = {"preset": DEFAULT_PRESET}
        origin = f"default preset {DEFAULT_PRESET!r}"
    elif source.endswith(".toml") or os.path.sep in source:
        user = load_toml_file(source)
        origin = source
    else:
        user = {"preset": source}
        origin = f"preset {source!r}"
    if overrides:
        user = merge(user, overrides)
    known = set(PRESET_SECTIONS) | set(DEFAULTS) | {"preset"} | set(extra_sections)
    unknown = set(user) - known
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) or key(s) {sorted(unknown)}; "
                          f"known: {sorted(known)}")
    preset_name = user.get("preset")
    base = preset_data(preset_name) if preset_name else {}
    preset_part = merge(base, {k: v for k, v in user.items() if k in PRESET_SECTIONS})
    out = {"preset": preset_name or str(preset_part.get("name", origin))}
    out.update(preset_part)
    for section, defaults in DEFAULTS.items():
        given = user.get(section, {})
        # A preset may carry its own run defaults (e.g. a melt temperature in kelvin).
        from_preset = base.get(section, {})
        for g in (given, from_preset):
            if not isinstance(g, dict):
                raise ConfigError(f"{origin}: [{section}] must be a table")
            _check_keys(section, g, defaults)
        out[section] = merge(merge(defaults, from_preset), given)
    for section in extra_sections:
        extra = user.get(section, {})
        if not isinstance(extra, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        out[section] = copy.deepcopy(extra)
    # Validate the model part now, so a bad config fails before any work.
    build_preset(preset_part, origin)
    _validate_numbers(out, origin)
    return out


def _validate_numbers(cfg: dict, origin: str) -> None:
    positive_int = [("system", "n"), ("run", "tune_every")]
    non_negative_int = [
        ("system", "melt_sweeps"),
        ("run", "equilibration_sweeps"),
        ("run", "production_sweeps"),
        ("run", "energy_check_every"),
        ("output", "thermo_every"),
        ("output", "trajectory_every"),
        ("output", "checkpoint_every"),
        ("diagnostics", "fs_every"),
    ]
    for sec, key in positive_int + non_negative_int:
        v = cfg[sec][key]
        low = 1 if (sec, key) in positive_int else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{origin}: [{sec}] {key} must be an integer >= {low}, got {v!r}")
    skin = cfg["run"]["skin"]
    if skin != "auto" and (not isinstance(skin, (int, float)) or skin <= 0):
        raise ConfigError(f"{origin}: [run] skin must be 'auto' or positive, got {skin!r}")
    for sec, key in [("system", "melt_temperature")]:
        v = cfg[sec][key]
        if not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"{origin}: [{sec}] {key} must be positive, got {v!r}")
    q = cfg["diagnostics"]["q"]
    if q != "auto" and (isinstance(q, bool) or not isinstance(q, (int, float))
                        or not math.isfinite(q) or q <= 0):
        raise ConfigError(f"{origin}: [diagnostics] q must be 'auto' or a positive wavenumber "
                          f"(inverse length units), got {q!r}")
    if not isinstance(cfg["diagnostics"]["fs_species"], str):
        raise ConfigError(f"{origin}: [diagnostics] fs_species must be 'auto' or a species "
                          f"name, got {cfg['diagnostics']['fs_species']!r}")
    state = cfg.get("state", {})
    if state.get("temperature", 1.0) <= 0:
        raise ConfigError(f"{origin}: [state] temperature must be positive")
    if state.get("density") is not None and state["density"] <= 0:
        raise ConfigError(f"{origin}: [state] density must be positive")


def overrides(*entries) -> dict:
    """Nested override dict from (section, key, value) triples, skipping ``None`` values
    (command-line flags that were not given)."""
    out: dict = {}
    for section, key, value in entries:
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def fingerprint(cfg: dict) -> dict:
    """The part of a config that must match for a restart to be valid."""
    fp = copy.deepcopy(cfg)
    for sec, key in RESTART_MUTABLE:
        fp.get(sec, {}).pop(key, None)
    return fp


def fingerprint_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint(cfg), sort_keys=True).encode()).hexdigest()


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable list of keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}.{key}" if prefix else key
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differences(va, vb, path)
        elif va != vb:
            out.append(f"{path}: checkpoint has {va!r}, this run has {vb!r}")
    return out
