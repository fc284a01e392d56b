"""Embedded molecular dynamics: forces and stress (LJ, EAM; orthorhombic and triclinic
cells), velocity Verlet with thermostats and a barostat, FIRE minimisation.

Sign conventions of virial, stress and pressure: :mod:`swapmc.md.stress`.
"""

from .barostats import StochasticCellRescale
from .engine import Engine, MinimizeInfo, NativeEngine, RunSamples
from .forcefield import ForceField, ForceResult
from .integrators import MD
from .minimize import MinimizeResult, fire
from .neighborlist import CellError, VerletList, check_cell, perpendicular_widths
from .shear import AQS, AQSResult, RateShear, RateShearResult, StressDrop
from .stress import MVV2E, kinetic_tensor, pressure, pressure_tensor, stress_tensor
from .thermostats import BussiThermostat, LangevinThermostat
from .velocities import kinetic_energy, kinetic_temperature, maxwell_boltzmann

__all__ = [
    "AQS",
    "MD",
    "MVV2E",
    "AQSResult",
    "BussiThermostat",
    "CellError",
    "Engine",
    "ForceField",
    "ForceResult",
    "LangevinThermostat",
    "MinimizeInfo",
    "MinimizeResult",
    "NativeEngine",
    "RateShear",
    "RateShearResult",
    "RunSamples",
    "StochasticCellRescale",
    "StressDrop",
    "VerletList",
    "check_cell",
    "fire",
    "kinetic_energy",
    "kinetic_temperature",
    "kinetic_tensor",
    "maxwell_boltzmann",
    "perpendicular_widths",
    "pressure",
    "pressure_tensor",
    "stress_tensor",
]
