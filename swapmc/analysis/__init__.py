"""Equilibration diagnostics: static structure (g(r), S(q)) and relaxation (F_s, MSD, tau_alpha).

Pure functions over arrays (lengths in model units, time in MC sweeps) plus
:class:`FsTracker`, a bounded-memory, checkpointable accumulator of F_s(q, t) and the MSD.
"""

from .dynamics import FsTracker, msd, self_intermediate_scattering, tau_alpha
from .structure import first_peak, radial_distribution, structure_factor

__all__ = [
    "FsTracker",
    "first_peak",
    "msd",
    "radial_distribution",
    "self_intermediate_scattering",
    "structure_factor",
    "tau_alpha",
]
