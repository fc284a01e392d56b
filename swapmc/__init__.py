"""swapmc: swap Monte Carlo for ultrastable computer glasses.

``import swapmc`` never imports mpi4py; parallel tempering imports it lazily.
"""

from ._version import __version__
from .box import Box
from .system import ConfigurationError, System

__all__ = ["Box", "ConfigurationError", "System", "__version__"]
