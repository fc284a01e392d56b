"""Monte Carlo moves and the sampler that drives the compiled sweep loop."""

from .moves import MoveSettings
from .sampler import EnergyDriftError, MonteCarlo, make_rng

__all__ = ["EnergyDriftError", "MonteCarlo", "MoveSettings", "make_rng"]
