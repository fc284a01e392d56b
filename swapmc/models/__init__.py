"""Interaction models and presets (model definitions are data; kernels get arrays)."""

from .dopant import add_pair_value, add_species_value, doped_fractions
from .eam import EAMPotential, doped, zjw_potential
from .lj import LJMixture, ModelError
from .presets import Preset, build_preset, list_presets, load_preset, load_preset_file

__all__ = [
    "EAMPotential",
    "doped",
    "zjw_potential",
    "LJMixture",
    "ModelError",
    "Preset",
    "add_pair_value",
    "add_species_value",
    "build_preset",
    "doped_fractions",
    "list_presets",
    "load_preset",
    "load_preset_file",
]
