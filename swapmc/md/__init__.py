"""Embedded molecular dynamics: forces and stress (LJ, EAM; orthorhombic and triclinic
cells), velocity Verlet with thermostats and a barostat, FIRE minimisation.

Sign conventions of virial, stress and pressure: :mod:`swapmc.md.stress`.
"""

from .._lazy import lazy_exports

# Public names and their submodules, imported on first use (PEP 562), so that registering the
# MD subcommands at every start-up does not load the Numba kernels.
_EXPORTS = {
    "StochasticCellRescale": "barostats",
    "Engine": "engine",
    "MinimizeInfo": "engine",
    "NativeEngine": "engine",
    "RunSamples": "engine",
    "ForceField": "forcefield",
    "ForceResult": "forcefield",
    "MD": "integrators",
    "MinimizeResult": "minimize",
    "fire": "minimize",
    "CellError": "neighborlist",
    "VerletList": "neighborlist",
    "check_cell": "neighborlist",
    "perpendicular_widths": "neighborlist",
    "AQS": "shear",
    "AQSResult": "shear",
    "RateShear": "shear",
    "RateShearResult": "shear",
    "StressDrop": "shear",
    "MVV2E": "stress",
    "kinetic_tensor": "stress",
    "pressure": "stress",
    "pressure_tensor": "stress",
    "stress_tensor": "stress",
    "BussiThermostat": "thermostats",
    "LangevinThermostat": "thermostats",
    "kinetic_energy": "velocities",
    "kinetic_temperature": "velocities",
    "maxwell_boltzmann": "velocities",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
