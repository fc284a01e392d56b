"""Reading and writing configurations and trajectories.

* :mod:`~swapmc.io.extxyz` -- extended XYZ snapshots and trajectories (readable by OVITO
  and, with ``element_names``, by ASE);
* :mod:`~swapmc.io.lammps_data` -- LAMMPS data files (``atom_style atomic``, type labels);
* :mod:`~swapmc.io.lammps_input` -- a model as LAMMPS commands (``pair_style``,
  ``pair_coeff``, ``pair_modify``, ``mass``) and a ready ``in.lammps``;
* :mod:`~swapmc.io.atomic` -- crash-safe whole-file replacement and rollback of
  append-only files for restarts.

All readers return :class:`swapmc.system.System` objects and round-trip positions, box,
image flags and velocities bit-identically; malformed files raise ``ValueError`` naming
the file and line.
"""

from .atomic import atomic_write, fsync_directory, truncate_file
from .extxyz import iter_extxyz, read_extxyz, write_extxyz
from .lammps_data import parse_type_map, read_lammps_data, write_lammps_data
from .lammps_input import lammps_input_script, lammps_pair_lines, write_lammps_input

__all__ = [
    "atomic_write",
    "fsync_directory",
    "iter_extxyz",
    "lammps_input_script",
    "lammps_pair_lines",
    "parse_type_map",
    "read_extxyz",
    "read_lammps_data",
    "truncate_file",
    "write_extxyz",
    "write_lammps_data",
    "write_lammps_input",
]
