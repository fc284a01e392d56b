"""LAMMPS input lines for a swapmc model: the interaction as LAMMPS commands.

One function turns a model into the commands that make LAMMPS evaluate exactly swapmc's
energy, one command per line (LAMMPS reads one command per line; ``;`` is not a separator):

* **LJ mixtures** (:class:`swapmc.models.LJMixture`, cut and shifted)::

      pair_style lj/cut 2.5                 <- the largest r_c of the model
      pair_coeff 1 1 1.0 1.0 2.5  # A A     <- eps sigma r_c of every pair, types i <= j
      pair_coeff 1 2 1.5 0.8 2.0  # A B
      ...
      pair_modify shift yes
      mass 1 1.0  # A

* **EAM** (:class:`swapmc.models.EAMPotential`) from the setfl file the model was written to
  (:meth:`~swapmc.models.EAMPotential.write`)::

      pair_style eam/fs
      pair_coeff * * potential.eam.fs Cu Zr X
      mass 1 63.546  # Cu

Type ``t`` is species ``t - 1`` of the model, the numbering of every data file swapmc writes
(:func:`swapmc.io.write_lammps_data`), so the lines apply to those files directly; the
species names follow as comments (they are also the data file's type labels). Numbers are
written with Python's ``repr``, so LAMMPS reads the very float64 values swapmc uses.
"""

from __future__ import annotations

import os

from .atomic import atomic_write

__all__ = ["lammps_input_script", "lammps_pair_lines", "write_lammps_input"]

# LAMMPS unit style of each swapmc unit system.
_LAMMPS_UNITS = {"lj": "lj", "metal": "metal"}


def _num(x) -> str:
    return repr(float(x))


def lammps_pair_lines(model, potential_file: str | None = None) -> list[str]:
    """LAMMPS commands that define the model's interaction and masses, one per entry.

    Parameters
    ----------
    model : LJMixture or EAMPotential
        The model (``kind`` ``"lj"`` or ``"eam"``).
    potential_file : str, optional
        EAM only, required there: the setfl file as LAMMPS should open it (a path relative
        to the directory LAMMPS runs in, or absolute), holding this potential (e.g. written
        by ``model.write(potential_file)``).

    Returns
    -------
    list of str
        ``pair_style``, ``pair_coeff`` (LJ: one per pair i <= j with ε, σ, r_c in the
        model's energy and length units; EAM: ``* * file`` and the element of each type),
        ``pair_modify shift yes`` (LJ) and ``mass`` (mass units) commands. Types are the
        data-file types of swapmc (species index + 1).

    Raises
    ------
    ValueError
        For EAM without ``potential_file``, or a file name containing whitespace (LAMMPS
        would split it).
    NotImplementedError
        For another model kind.
    """
    species = list(model.species)
    if model.kind == "lj":
        lines = [f"pair_style lj/cut {_num(model.max_cutoff)}"]
        for a in range(len(species)):
            for b in range(a, len(species)):
                # LAMMPS rejects "pair_coeff 2 1": the first type must not exceed the second.
                lines.append(
                    f"pair_coeff {a + 1} {b + 1} {_num(model.epsilon[a, b])} "
                    f"{_num(model.sigma[a, b])} {_num(model.cutoff[a, b])}"
                    f"  # {species[a]} {species[b]}"
                )
        # swapmc's LJ energy is shifted to zero at each pair's r_c (forces are not).
        lines.append("pair_modify shift yes")
    elif model.kind == "eam":
        if not potential_file:
            raise ValueError("an EAM model needs potential_file (the setfl file LAMMPS reads)")
        potential_file = os.fspath(potential_file)
        if potential_file.split() != [potential_file]:
            raise ValueError(f"potential file name {potential_file!r} contains whitespace")
        lines = [
            f"pair_style eam/{model.setfl_kind}",
            f"pair_coeff * * {potential_file} {' '.join(species)}",
        ]
    else:
        raise NotImplementedError(f"no LAMMPS pair style for model kind {model.kind!r}")
    lines += [f"mass {t + 1} {_num(m)}  # {name}"
              for t, (m, name) in enumerate(zip(model.masses, species, strict=True))]
    return lines


def lammps_input_script(model, data_file: str, potential_file: str | None = None,
                        comment: str = "") -> str:
    """A complete LAMMPS input that reads a swapmc data file and sets up the model.

    Parameters
    ----------
    model : LJMixture or EAMPotential
        The model.
    data_file : str
        The data file as LAMMPS should open it, e.g. ``"final.data"``, or ``"${data}"`` for
        a file named on the command line (``lmp -in in.lammps -var data sample.data``).
    potential_file : str, optional
        EAM: see :func:`lammps_pair_lines`.
    comment : str
        A first comment line (without ``#``).

    Returns
    -------
    str
        ``units``, ``atom_style atomic``, ``boundary p p p``, ``read_data`` and the lines of
        :func:`lammps_pair_lines`, newline-terminated. Append ``run 0`` to get the energy of
        the configuration, which equals swapmc's.
    """
    units = _LAMMPS_UNITS.get(model.units)
    if units is None:
        raise ValueError(f"no LAMMPS unit style for swapmc units {model.units!r}")
    if data_file.split() != [data_file]:
        raise ValueError(f"data file name {data_file!r} contains whitespace")
    if "\n" in comment or "\r" in comment:
        raise ValueError("comment must be a single line")
    lines = [f"# {comment.strip()}"] if comment.strip() else []
    lines += [f"units {units}", "atom_style atomic", "boundary p p p", f"read_data {data_file}"]
    lines += lammps_pair_lines(model, potential_file)
    return "\n".join(lines) + "\n"


def write_lammps_input(path: str | os.PathLike, model, data_file: str,
                       potential_file: str | None = None, comment: str = "") -> None:
    """Write :func:`lammps_input_script` to ``path`` atomically (parameters as there)."""
    text = lammps_input_script(model, data_file, potential_file, comment)
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
