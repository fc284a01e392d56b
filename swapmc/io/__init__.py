"""Reading and writing configurations and trajectories.

* :mod:`~swapmc.io.extxyz` -- extended XYZ snapshots and trajectories (readable by OVITO
  and, with ``element_names``, by ASE);
* :mod:`~swapmc.io.lammps_data` -- LAMMPS data files (``atom_style atomic``);
* :mod:`~swapmc.io.atomic` -- crash-safe whole-file replacement and rollback of
  append-only files for restarts.

All readers return :class:`swapmc.system.System` objects and round-trip positions, box,
image flags and velocities bit-identically; malformed files raise ``ValueError`` naming
the file and line.
"""

from .atomic import atomic_write, fsync_directory, truncate_file
from .extxyz import iter_extxyz, read_extxyz, write_extxyz
from .lammps_data import read_lammps_data, write_lammps_data

__all__ = [
    "atomic_write",
    "fsync_directory",
    "iter_extxyz",
    "read_extxyz",
    "read_lammps_data",
    "truncate_file",
    "write_extxyz",
    "write_lammps_data",
]
