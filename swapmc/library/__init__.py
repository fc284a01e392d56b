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

from .build import BuildResult, LibraryBuilder, build_library
from .certify import Certificate, Criteria, certify, certify_tempering, energy_drift_z
from .export import export_samples
from .harvest import harvest_tempering
from .store import SAMPLE_COLUMNS, Library, LibraryError, Sample

__all__ = [
    "SAMPLE_COLUMNS",
    "BuildResult",
    "Certificate",
    "Criteria",
    "Library",
    "LibraryBuilder",
    "LibraryError",
    "Sample",
    "build_library",
    "certify",
    "certify_tempering",
    "energy_drift_z",
    "export_samples",
    "harvest_tempering",
]
