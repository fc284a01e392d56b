"""Embedded molecular dynamics: forces and stress (LJ, EAM; orthorhombic and triclinic
cells), velocity Verlet with thermostats and a barostat, FIRE minimisation.

Sign conventions of virial, stress and pressure: :mod:`swapmc.md.stress`.
"""

from .barostats import StochasticCellRescale
from .forcefield import ForceField, ForceResult
from .integrators import MD
from .minimize import MinimizeResult, fire
from .neighborlist import CellError, VerletList, check_cell, perpendicular_widths
from .stress import MVV2E, kinetic_tensor, pressure, pressure_tensor, stress_tensor
from .thermostats import BussiThermostat, LangevinThermostat
from .velocities import kinetic_energy, kinetic_temperature, maxwell_boltzmann

__all__ = [
    "MD",
    "MVV2E",
    "BussiThermostat",
    "CellError",
    "ForceField",
    "ForceResult",
    "LangevinThermostat",
    "MinimizeResult",
    "StochasticCellRescale",
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
