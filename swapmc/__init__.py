"""swapmc: swap Monte Carlo for ultrastable computer glasses.

``import swapmc`` never imports mpi4py; parallel tempering imports it lazily.
"""

import os as _os
import sys as _sys

# swapmc's linear algebra is small (3x3 cells, 3N-vectors); multi-threaded BLAS only spins
# against the MPI ranks and compiled loops sharing the cores (a FIRE quench of N = 4000 ran
# 10x slower on a loaded 2-core machine). One BLAS thread unless the user chose otherwise;
# effective only when numpy has not been imported yet (the `swapmc` command, scripts that
# import swapmc first).
if "numpy" not in _sys.modules:
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ.setdefault(_var, "1")

from ._version import __version__  # noqa: E402
from .box import Box  # noqa: E402
from .system import ConfigurationError, System  # noqa: E402

__all__ = ["Box", "ConfigurationError", "System", "__version__"]
