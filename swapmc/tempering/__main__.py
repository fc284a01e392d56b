"""``python -m swapmc.tempering`` == ``swapmc temper`` (also usable under mpiexec)."""

import sys

from .cli import main

sys.exit(main())
