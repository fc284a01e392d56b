"""Embedded molecular dynamics: forces and stress (LJ, EAM; orthorhombic and triclinic
cells), velocity Verlet with thermostats and a barostat, FIRE minimisation.

Sign conventions of virial, stress and pressure: :mod:`swapmc.md.stress`.
"""

from importlib import import_module

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


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
