"""Presets: models, compositions and default state points stored as TOML data.

A preset file has ``[model]`` (or ``base = "other-preset"``), ``[composition]`` (mole
fractions), ``[state]`` (density, temperature, optional pressure), ``[moves]`` and an optional
``[dopant]`` section that adds a species between two hosts (see :mod:`.dopant`). Values of a
preset can be overridden by a user's TOML config with the same sections.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from importlib import resources

from .._toml import did_you_mean, load_toml_file, loads_toml, unknown_keys_message
from .dopant import doped_fractions
from .lj import LJMixture, ModelError

_PRESET_PACKAGE = "swapmc.models"

STATE_KEYS = ("temperature", "density", "pressure")
DOPANT_KEYS = ("name", "between", "weight", "fraction", "replaces")
LJ_MODEL_KEYS = ("kind", "units", "species", "masses", "pairs", "cutoff_factor")
EAM_MODEL_KEYS = ("kind", "potential", "file", "setfl_kind")


@dataclass(frozen=True)
class Preset:
    """A ready-to-run model with its composition and state point.

    Attributes
    ----------
    name, description : str
    model : LJMixture or EAMPotential
    composition : dict
        Species name -> mole fraction (sums to 1).
    density : float or None
        Number density N/V (length^-3); ``None`` for models run at fixed pressure.
    temperature : float
        Default temperature (k_B T in energy units for LJ).
    pressure : float or None
        Imposed pressure for isobaric runs, ``None`` for constant volume.
    moves : dict
        Default move settings (``p_swap``, ``swap_classes``...).
    source : dict
        The fully resolved preset data (what was built), for provenance.
    """

    name: str
    description: str
    model: LJMixture
    composition: dict
    density: float | None
    temperature: float
    pressure: float | None
    moves: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)


def _preset_files():
    root = resources.files(_PRESET_PACKAGE) / "presets"
    return {p.name[: -len(".toml")]: p for p in root.iterdir() if p.name.endswith(".toml")}


def list_presets() -> dict:
    """Names and one-line descriptions of the built-in presets."""
    out = {}
    for name, path in sorted(_preset_files().items()):
        out[name] = loads_toml(path.read_text(), str(path)).get("description", "")
    return out


def preset_data(name: str) -> dict:
    """Raw TOML data of a built-in preset, with ``base`` presets merged in."""
    files = _preset_files()
    if name not in files:
        raise KeyError(
            f"unknown preset {name!r}{did_you_mean(name, files)}; available presets: "
            f"{', '.join(sorted(files))} (list them with `swapmc presets`)"
        )
    data = loads_toml(files[name].read_text(), str(files[name]))
    base = data.pop("base", None)
    if base is not None:
        data = merge(preset_data(base), data)
        data.pop("base", None)
    return data


def preset_text(name: str) -> str:
    """The TOML text of a built-in preset as shipped."""
    files = _preset_files()
    if name not in files:
        preset_data(name)  # raises the helpful error
    return files[name].read_text()


def merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; values of ``override`` win, nested tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build_preset(data: dict, origin: str = "<preset>") -> Preset:
    """Build a :class:`Preset` from resolved preset data (already merged with its base)."""
    data = copy.deepcopy(data)
    if "model" not in data:
        raise ModelError(f"{origin}: no [model] section (and no base preset)")
    model = build_model(data["model"], origin)
    composition = data.get("composition", {})
    for k, v in composition.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelError(f"{origin}: [composition] {k} must be a mole fraction (a "
                             f"number), got {v!r}")
    composition = {k: float(v) for k, v in composition.items()}
    dopant = data.get("dopant")
    if dopant is not None:
        unknown = set(dopant) - set(DOPANT_KEYS)
        if unknown:
            raise ModelError(f"{origin}: " + unknown_keys_message(unknown, DOPANT_KEYS,
                                                                   "[dopant]"))
        try:
            model = add_dopant(
                model, dopant["name"], tuple(dopant["between"]), float(dopant.get("weight", 0.5))
            )
            composition = doped_fractions(
                composition,
                dopant["name"],
                float(dopant.get("fraction", 0.0)),
                dopant.get("replaces", dopant["between"][0]),
            )
        except (KeyError, ValueError) as err:
            raise ModelError(f"{origin}: [dopant]: {err}") from None
    check_composition(composition, model.species, origin)
    state = data.get("state", {})
    _check_state(state, origin)
    return Preset(
        name=str(data.get("name", origin)),
        description=str(data.get("description", "")),
        model=model,
        composition=composition,
        density=None if state.get("density") is None else float(state["density"]),
        temperature=float(state["temperature"]),
        pressure=None if state.get("pressure") is None else float(state["pressure"]),
        moves=dict(data.get("moves", {})),
        source=data,
    )


def _check_state(state: dict, origin: str) -> None:
    """``[state]``: known keys only; temperature finite and > 0, density finite and > 0,
    pressure finite (a typo such as ``presure`` would otherwise silently run NVT)."""
    unknown = set(state) - set(STATE_KEYS)
    if unknown:
        raise ModelError(f"{origin}: " + unknown_keys_message(unknown, STATE_KEYS, "[state]"))
    if "temperature" not in state:
        raise ModelError(f"{origin}: [state] needs a temperature")
    for key in STATE_KEYS:
        v = state.get(key)
        if v is None and key != "temperature":
            continue
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not number or not math.isfinite(v) or (key != "pressure" and v <= 0):
            what = "a finite number" + ("" if key == "pressure" else " > 0")
            raise ModelError(f"{origin}: [state] {key} must be {what}, got {v!r}")


def build_model(model_data: dict, origin: str = "<model>"):
    """Build the interaction model of a ``[model]`` table.

    ``kind = "lj"``: an :class:`LJMixture` from ``species``/``pairs``. ``kind = "eam"``:
    ``potential = "zjw"`` (the built-in Zhou-Johnson-Wadley Cu-Zr) or ``file = "x.eam.fs"``
    (a LAMMPS eam/alloy or eam/fs setfl file; a relative path is taken from the working
    directory here, and from the TOML file's folder when the table comes from a file read by
    :func:`load_preset_file` or :func:`swapmc.config.resolve`).
    """
    kind = model_data.get("kind", "lj")
    keys = {"lj": LJ_MODEL_KEYS, "eam": EAM_MODEL_KEYS}.get(kind)
    unknown = set(model_data) - set(keys or ())
    if keys is not None and unknown:
        raise ModelError(f"{origin}: " + unknown_keys_message(unknown, keys,
                                                               f"[model] (kind = {kind!r})"))
    try:
        if kind == "lj":
            return LJMixture.from_dict(model_data)
        if kind == "eam":
            from . import eam

            unknown = set(model_data) - {"kind", "potential", "file", "setfl_kind"}
            if unknown:
                raise ModelError(f"unknown EAM model keys {sorted(unknown)}")
            if "file" in model_data:
                return eam.EAMPotential.from_file(model_data["file"],
                                                  kind=model_data.get("setfl_kind"))
            name = model_data.get("potential", "zjw")
            if name != "zjw":
                raise ModelError(f"unknown built-in EAM potential {name!r}; built-in: 'zjw'")
            return eam.zjw_potential()
    except (ModelError, ValueError, OSError) as err:
        raise ModelError(f"{origin}: [model]: {err}") from None
    raise ModelError(f"{origin}: [model] kind {kind!r} is not available "
                     f"{did_you_mean(kind, ('lj', 'eam'))}(available: 'lj', 'eam')")


def add_dopant(model, name: str, between: tuple, weight: float):
    """Add a dopant species between two hosts to any model family."""
    if model.kind == "lj":
        return model.with_dopant(name, between, weight)
    from . import eam

    return eam.doped(model, dopant=name, between=between, weight=weight)


def check_composition(composition: dict, species, origin: str = "<composition>") -> None:
    """Raise unless ``composition`` gives a non-negative fraction to known species summing
    to 1."""
    unknown = set(composition) - set(species)
    if unknown:
        raise ModelError(f"{origin}: [composition] names unknown species "
                         + ", ".join(f"{k!r}{did_you_mean(k, species)}" for k in
                                     sorted(unknown))
                         + f"; the model's species: {', '.join(species)}")
    if any(not math.isfinite(v) for v in composition.values()):
        raise ModelError(f"{origin}: [composition] mole fractions must be finite, got "
                         f"{composition}")
    if any(v < 0 for v in composition.values()):
        raise ModelError(f"{origin}: negative mole fraction in {composition}")
    total = sum(composition.values())
    if abs(total - 1.0) > 1e-9:
        raise ModelError(f"{origin}: mole fractions sum to {total}, not 1: {composition}")


def load_preset(name: str, overrides: dict | None = None) -> Preset:
    """Load a built-in preset by name, optionally overriding any of its TOML values."""
    data = preset_data(name)
    if overrides:
        data = merge(data, overrides)
    return build_preset(data, origin=f"preset {name!r}")


def load_preset_file(path: str) -> Preset:
    """Load a preset from a user's TOML file (it may name a built-in ``base``)."""
    data = load_toml_file(path)
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("file"), str) and model["file"] \
            and not os.path.isabs(model["file"]):
        # The potential named in a preset file is found next to it, whatever the cwd.
        model["file"] = os.path.normpath(os.path.join(os.path.dirname(str(path)),
                                                      model["file"]))
    base = data.pop("base", None)
    if base is not None:
        data = merge(preset_data(base), data)
    return build_preset(data, origin=str(path))
