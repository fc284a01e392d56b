"""What the tests that launch ``python`` or ``mpiexec`` subprocesses share."""

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
