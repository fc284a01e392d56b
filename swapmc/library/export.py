"""Export library samples to extended XYZ (OVITO, ASE) and LAMMPS data files."""

from __future__ import annotations

import csv
import os

from ..io import atomic_write, write_extxyz, write_lammps_data
from .store import STRUCTURE_KINDS, Library, Sample

FORMATS = ("extxyz", "lammps")
# Metadata written into each extended XYZ comment line (plain numbers and names only).
XYZ_INFO = ("model", "build", "chain", "temperature", "pressure", "verdict", "energy",
            "is_energy", "tau_alpha", "seed", "sweeps")


def export_samples(library: Library, samples: list[Sample], directory: str,
                   formats=FORMATS, structures=("inherent",)) -> list[str]:
    """Write each sample's structure(s) to files in ``directory``.

    Files are named ``sample-<id>-<structure>.xyz`` / ``.data``; every file is written
    atomically. An ``index.csv`` lists the exported samples with their metadata, and each
    EAM potential the samples used is written once as ``potential-<hash12>.eam.<kind>``
    (with the ``pair_style``/``pair_coeff`` lines in ``index.csv``), so the set can go
    straight to LAMMPS.

    Parameters
    ----------
    library : Library
        The open library.
    samples : list of Sample
        From :meth:`Library.query`.
    directory : str
        Created if missing.
    formats : sequence of {"extxyz", "lammps"}
    structures : sequence of {"equilibrium", "inherent"}

    Returns
    -------
    list of str
        The files written.
    """
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown export format {f!r}; known: {FORMATS}")
    for k in structures:
        if k not in STRUCTURE_KINDS:
            raise ValueError(f"unknown structure {k!r}; known: {STRUCTURE_KINDS}")
    os.makedirs(directory, exist_ok=True)
    written = []
    potentials = {}
    for sample in samples:
        meta = sample.meta
        if meta["kind"] == "eam" and meta["model_hash"] not in potentials:
            stored = library.potential(meta["model_hash"])
            if stored is not None:
                kind, text = stored
                name = f"potential-{meta['model_hash'][:12]}.eam.{kind}"
                path = os.path.join(directory, name)
                with atomic_write(path) as fh:
                    fh.write(text)
                written.append(path)
                potentials[meta["model_hash"]] = (
                    f"pair_style eam/{kind}; pair_coeff * * {name} "
                    + " ".join(meta["species_names"]))
        for kind in structures:
            system = sample.structure(kind)
            stem = os.path.join(directory, f"sample-{sample.id}-{kind}")
            if "extxyz" in formats:
                info = {k: meta[k] for k in XYZ_INFO if meta.get(k) is not None}
                info.update({"sample_id": sample.id, "structure": kind})
                with atomic_write(stem + ".xyz") as fh:
                    write_extxyz(fh, system, info=info, element_names=meta["elements"])
                written.append(stem + ".xyz")
            if "lammps" in formats:
                write_lammps_data(stem + ".data", system, masses=meta["masses"],
                                  comment=f"swapmc library sample {sample.id} ({kind}) "
                                          f"{meta['model']} T={meta['temperature']:g} "
                                          f"{meta['verdict']}")
                written.append(stem + ".data")
    index = os.path.join(directory, "index.csv")
    columns = ["id", "model", "build", "chain", "n", "temperature", "pressure", "verdict",
               "energy", "is_energy", "tau_alpha", "decays", "seed", "lammps_pair_style"]
    with atomic_write(index) as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for s in samples:
            row = {**s.meta, "lammps_pair_style": potentials.get(s.meta["model_hash"], "")}
            w.writerow([row.get(c) for c in columns])
    written.append(index)
    return written
