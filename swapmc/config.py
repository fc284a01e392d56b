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

from ._toml import ConfigError, key_line, load_toml_file, unknown_keys_message
from .models.presets import (
    DOPANT_KEYS,
    EAM_MODEL_KEYS,
    LJ_MODEL_KEYS,
    build_preset,
    merge,
    preset_data,
)

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

# Keys that may change between a run and its restart without invalidating the checkpoint:
# the length of production (a longer run extends a finished one) and everything about how
# often results are written, none of which changes the Markov chain. The output directory
# is where the checkpoint was found, so it cannot name a different run however it is
# spelled ("r/", "./r", an absolute path).
RESTART_MUTABLE = {
    ("run", "production_sweeps"),
    ("output", "progress"),
    ("output", "directory"),
    ("output", "thermo_every"),
    ("output", "trajectory_every"),
    ("output", "checkpoint_every"),
}

STATE_KEYS = ("temperature", "density", "pressure")

# Keys a table accepts without a default: they appear in a resolved config only when given,
# so configs (and restart and build fingerprints) written before they existed are unchanged.
OPTIONAL_KEYS = {"system": ("type_map",)}

# Random insertion bins the box into cells of side min_distance (64 slots each); a box so
# dilute that it needs more cells than this would exhaust memory (2 GiB of cell slots at
# 2**22 cells), long before it gives a useful glass. Lattice starts are held to the same
# bound because the sampler's neighbour cells grow with the box in the same way.
MAX_START_CELLS = 2**22


class _Where:
    """Names where a key's value came from: ``file:line`` for a TOML file, the command
    line for an override, else the origin (a preset)."""

    def __init__(self, origin: str, path: str | None, overrides: dict | None):
        self.origin = origin
        self.path = path
        self.overrides = overrides or {}

    def __call__(self, section: str | None, key: str) -> str:
        if section is None:
            if key in self.overrides:
                return f"{self.origin} (command line)"
        elif isinstance(self.overrides.get(section), dict) and key in self.overrides[section]:
            return f"{self.origin} (command line)"
        line = key_line(self.path, section, key) if self.path else None
        return f"{self.path}:{line}" if line else self.origin


def _check_keys(section: str, given: dict, allowed, where) -> None:
    unknown = set(given) - set(allowed)
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(f"{where(section, first)}: "
                          + unknown_keys_message(unknown, allowed, f"[{section}]"))


def _model_file_from_folder(user: dict, source: str) -> None:
    """Take a relative ``[model] file`` (a setfl potential) from the folder of the TOML file
    ``source`` that names it, as ``[system] init`` is, so a config and its potential can be
    moved or run from any working directory together."""
    model = user.get("model")
    if not isinstance(model, dict):
        return
    name = model.get("file")
    if isinstance(name, str) and name and not os.path.isabs(name):
        model["file"] = os.path.normpath(os.path.join(os.path.dirname(source), name))


def resolve(source: str | None = None, overrides: dict | None = None,
            extra_sections: tuple = ()) -> dict:
    """Resolve a preset name or TOML path (``None``: the default preset) plus overrides.

    Parameters
    ----------
    source : str or None
        A built-in preset name, or a path to a ``.toml`` config.
    overrides : dict, optional
        Nested dict merged last (e.g. from command-line flags); relative paths in it are
        taken from the working directory.
    extra_sections : tuple of str, optional
        Further tables a driver accepts (e.g. ``("library",)``); they are returned as given
        (an empty dict when absent) and the driver validates them.

    Returns
    -------
    dict
        ``{"preset": name, <preset sections>, "system": .., "run": .., "output": ..,
        "diagnostics": ..}`` with every default filled in. ``output.directory`` is
        normalised (``"r/"`` and ``"./r"`` become ``"r"``) and a relative ``system.init``
        file given in a TOML file is taken from that file's folder.

    Raises
    ------
    ConfigError
        For an unknown table or key (with the closest known one), a value of the wrong
        type, a number that is not finite or out of range; the message names the key and
        the file and line it came from.
    """
    path = None
    if source is None:
        user = {"preset": DEFAULT_PRESET}
        origin = f"default preset {DEFAULT_PRESET!r}"
    elif source.endswith(".toml") or os.path.sep in source:
        user = load_toml_file(source)
        origin = path = source
        # A start configuration named in the file is found next to the file, so a config
        # works from any working directory (the command line's --init stays cwd-relative).
        init = user.get("system", {}).get("init") if isinstance(user.get("system"),
                                                                dict) else None
        if (isinstance(init, str) and init and init not in ("random", "lattice")
                and not os.path.isabs(init)):
            user["system"]["init"] = os.path.normpath(
                os.path.join(os.path.dirname(source), init))
        _model_file_from_folder(user, source)
    else:
        user = {"preset": source}
        origin = f"preset {source!r}"
    where = _Where(origin, path, overrides)
    if overrides:
        user = merge(user, overrides)
    known = set(PRESET_SECTIONS) | set(DEFAULTS) | {"preset"} | set(extra_sections)
    unknown = set(user) - known
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(f"{where(None, first)}: "
                          + unknown_keys_message(unknown, known, "the top level"))
    preset_name = user.get("preset")
    if preset_name is not None and not isinstance(preset_name, str):
        raise ConfigError(f"{where(None, 'preset')}: preset must be a preset name (a "
                          f"string), got {preset_name!r}")
    for section in PRESET_SECTIONS + tuple(DEFAULTS) + tuple(extra_sections):
        if section in user and section not in ("name", "description", "units") \
                and not isinstance(user[section], dict):
            raise ConfigError(f"{where(None, section)}: [{section}] must be a table, got "
                              f"{user[section]!r}")
    base = preset_data(preset_name) if preset_name else {}
    preset_part = merge(base, {k: v for k, v in user.items() if k in PRESET_SECTIONS})
    out = {"preset": preset_name or str(preset_part.get("name", origin))}
    out.update(preset_part)
    for section, defaults in DEFAULTS.items():
        given = user.get(section, {})
        # A preset may carry its own run defaults (e.g. a melt temperature in kelvin).
        from_preset = base.get(section, {})
        _check_keys(section, from_preset, defaults, lambda s, k: f"preset {preset_name!r}")
        _check_keys(section, given, (*defaults, *OPTIONAL_KEYS.get(section, ())), where)
        out[section] = merge(merge(defaults, from_preset), given)
    for section in extra_sections:
        out[section] = copy.deepcopy(user.get(section, {}))
    _validate_state(out, where)
    _validate_numbers(out, where)
    from .mc.moves import MoveSettings  # here: swapmc.mc loads the compiled kernels

    # The user's own preset tables are checked here first, so that an unknown key is
    # reported with the file's line; build_preset repeats the checks for Python callers.
    for section, allowed in (("moves", MoveSettings.__dataclass_fields__),
                             ("dopant", DOPANT_KEYS)):
        _check_keys(section, user.get(section) or {}, allowed, where)
    if isinstance(user.get("model"), dict):
        kind = preset_part.get("model", {}).get("kind", "lj")
        allowed = {"lj": LJ_MODEL_KEYS, "eam": EAM_MODEL_KEYS}.get(kind)
        if allowed is not None:
            _check_keys("model", user["model"], allowed, where)
    # Validate the model part now, so a bad config fails before any work.
    preset = build_preset(preset_part, origin)
    try:
        MoveSettings.from_dict(dict(preset.moves))
    except ConfigError as err:
        key = str(err).split(" ", 1)[0]
        raise ConfigError(f"{where('moves', key)}: [moves] {err}") from None
    _check_dilution(out, preset, where)
    out["output"]["directory"] = os.path.normpath(out["output"]["directory"])
    return out


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _got(v) -> str:
    if isinstance(v, str):
        return f"got the string {v!r} (write numbers without quotes)"
    return f"got {v!r}"


def _require_real(where, sec: str, key: str, v, *, positive: bool = True,
                  low: float | None = None) -> None:
    """Raise unless ``v`` is a finite number (``> 0`` if ``positive``, ``>= low`` if
    given); NaN and infinities are rejected because every comparison with them passes."""
    ok = _is_real(v) and math.isfinite(v)
    if ok and positive and v <= 0:
        ok = False
    if ok and low is not None and v < low:
        ok = False
    what = ("a finite number > 0" if positive else
            f"a finite number >= {low:g}" if low is not None else "a finite number")
    if not ok:
        raise ConfigError(f"{where(sec, key)}: [{sec}] {key} must be {what}, {_got(v)}")


def _validate_state(cfg: dict, where) -> None:
    state = cfg.get("state", {})
    if not isinstance(state, dict):
        raise ConfigError(f"{where(None, 'state')}: [state] must be a table")
    _check_keys("state", state, STATE_KEYS, where)
    if "temperature" in state:
        _require_real(where, "state", "temperature", state["temperature"])
    if state.get("density") is not None:
        _require_real(where, "state", "density", state["density"])
    if state.get("pressure") is not None:
        # Negative pressures are physical (stretched glasses), so only finiteness is checked.
        _require_real(where, "state", "pressure", state["pressure"], positive=False)


def _validate_numbers(cfg: dict, where) -> None:
    positive_int = [("system", "n"), ("run", "tune_every")]
    non_negative_int = [
        ("system", "melt_sweeps"),
        ("run", "seed"),
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
            raise ConfigError(f"{where(sec, key)}: [{sec}] {key} must be an integer >= {low}, "
                              f"{_got(v)}")
    skin = cfg["run"]["skin"]
    if skin != "auto":
        _require_real(where, "run", "skin", skin)
    for sec, key in [("system", "melt_temperature"), ("system", "min_distance")]:
        _require_real(where, sec, key, cfg[sec][key])
    q = cfg["diagnostics"]["q"]
    if q != "auto" and not (_is_real(q) and math.isfinite(q) and q > 0):
        raise ConfigError(f"{where('diagnostics', 'q')}: [diagnostics] q must be 'auto' or a "
                          f"positive wavenumber (inverse length units), {_got(q)}")
    if not isinstance(cfg["diagnostics"]["fs_species"], str):
        raise ConfigError(f"{where('diagnostics', 'fs_species')}: [diagnostics] fs_species "
                          "must be 'auto' or a species name, got "
                          f"{cfg['diagnostics']['fs_species']!r}")
    for sec, key in [("diagnostics", "tau_alpha"), ("output", "progress")]:
        if not isinstance(cfg[sec][key], bool):
            raise ConfigError(f"{where(sec, key)}: [{sec}] {key} must be true or false, "
                              f"{_got(cfg[sec][key])}")
    init = cfg["system"]["init"]
    if not isinstance(init, str) or not init:
        raise ConfigError(f"{where('system', 'init')}: [system] init must be 'random', "
                          f"'lattice' or a .xyz/.data file name, got {init!r}")
    if "type_map" in cfg["system"]:
        from .io.lammps_data import parse_type_map

        type_map = cfg["system"]["type_map"]
        try:
            if not isinstance(type_map, str):
                raise ValueError(f"must be a string like \"1=A,2=B,3=C\", {_got(type_map)}")
            parse_type_map(type_map)
        except ValueError as err:
            raise ConfigError(f"{where('system', 'type_map')}: [system] type_map: {err}") \
                from None
        if init in ("random", "lattice") or init.endswith((".xyz", ".extxyz")):
            raise ConfigError(f"{where('system', 'type_map')}: [system] type_map names the "
                              f"atom types of a LAMMPS data file, but init is {init!r}")
    directory = cfg["output"]["directory"]
    if not isinstance(directory, str) or not directory.strip():
        raise ConfigError(f"{where('output', 'directory')}: [output] directory must name a "
                          f"directory, got {directory!r}")


def _check_dilution(cfg: dict, preset, where) -> None:
    """Refuse a generated start in a box too dilute to bin (it would exhaust memory)."""
    if cfg["system"]["init"] not in ("random", "lattice") or preset.density is None:
        return
    n = cfg["system"]["n"]
    d = cfg["system"]["min_distance"]
    cells = n / preset.density / d**3
    if cells > MAX_START_CELLS:
        lowest = n / (MAX_START_CELLS * d**3)
        raise ConfigError(
            f"{where('state', 'density')}: [state] density = {preset.density:g} is too low "
            f"for N = {n}: the box (side {(n / preset.density) ** (1 / 3):.4g}) would need "
            f"{cells:.3g} cells of side min_distance = {d:g}; use density >= {lowest:.3g} "
            "for this N"
        )


def overrides(*entries) -> dict:
    """Nested override dict from (section, key, value) triples, skipping ``None`` values
    (command-line flags that were not given)."""
    out: dict = {}
    for section, key, value in entries:
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def fingerprint(cfg: dict) -> dict:
    """The part of a config that must match for a restart to be valid.

    ``[moves] threads`` enters only as serial (1, also when absent) or domain-decomposed
    (>= 2): the domain sweep's chain is the same for every thread count, so a run may
    resume with another count >= 2 (e.g. on a node with more cores), but not switch
    between the serial and the domain sweep.
    """
    fp = copy.deepcopy(cfg)
    for sec, key in RESTART_MUTABLE:
        fp.get(sec, {}).pop(key, None)
    moves = fp.get("moves")
    if isinstance(moves, dict) and "threads" in moves:
        threads = moves.pop("threads")
        if isinstance(threads, int) and not isinstance(threads, bool) and threads > 1:
            moves["threads"] = "domains"
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
