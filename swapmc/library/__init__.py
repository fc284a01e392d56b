"""Glass libraries: many certified, quenched configurations in one crash-safe file.

:func:`build_library` runs independent swap-MC chains (serially or on MPI ranks), certifies
each (:func:`certify`) and stores it with its inherent structure in a :class:`Library`
(SQLite); :func:`harvest_tempering` does the same for the lowest-temperature frames of a
parallel-tempering run. Read samples back as :class:`~swapmc.System` objects::

    from swapmc.library import Library
    with Library("glasses.sqlite") as lib:
        for sample in lib.samples(model="ka2-x10", t_max=0.45):
            glass = sample.inherent   # or sample.system (end of production)
"""

from .._lazy import lazy_exports

# The certificate is imported here, not on first use: its function shares the name of its
# module, and a later `import swapmc.library.certify` would otherwise bind the module.
from .certify import Certificate, Criteria, certify, certify_tempering, energy_drift_z

# The other public names and their submodules, imported on first use (PEP 562), so that
# registering the `library` subcommand at every start-up does not load the builder (Numba,
# the structure analysis).
_EXPORTS = {
    "BuildResult": "build",
    "LibraryBuilder": "build",
    "build_library": "build",
    "export_samples": "export",
    "harvest_tempering": "harvest",
    "SAMPLE_COLUMNS": "store",
    "Library": "store",
    "LibraryError": "store",
    "Sample": "store",
}

__all__ = [
    "Certificate",
    "Criteria",
    "certify",
    "certify_tempering",
    "energy_drift_z",
    *sorted(_EXPORTS),
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
