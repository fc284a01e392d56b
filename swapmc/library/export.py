"""Export library samples (of one or several library files) to extended XYZ (OVITO, ASE)
and LAMMPS data files."""

from __future__ import annotations

import csv
import hashlib
import json
import os

from .._toml import loads_toml
from ..io import (
    atomic_write,
    lammps_pair_lines,
    write_extxyz,
    write_lammps_data,
    write_lammps_input,
)
from ..io.lammps_input import check_protocol_parameters, write_lammps_protocols
from ..models import EAMPotential, ModelError
from ..models.presets import add_dopant, build_model
from .store import STRUCTURE_KINDS, Library, Sample

FORMATS = ("extxyz", "lammps")
# Metadata written into each extended XYZ comment line (plain numbers and names only).
XYZ_INFO = ("model", "build", "chain", "temperature", "pressure", "verdict", "energy",
            "is_energy", "tau_alpha", "seed", "sweeps")


def export_samples(library: Library | None, samples: list[Sample], directory: str,
                   formats=FORMATS, structures=("inherent",), naming: str = "id",
                   lammps_params=None) -> list[str]:
    """Write each sample's structure(s) to files in ``directory``.

    Files are named ``sample-<id>-<structure>.xyz`` / ``.data`` (or, with ``naming =
    "build-chain"``, ``sample-<build12>-c<chain>-<structure>``, which stay distinct for
    samples of several library files); every file is written atomically. Each model the
    samples used gets a LAMMPS input ``in-<hash12>.lammps`` (units, ``read_data ${data}``,
    ``pair_style``, ``pair_coeff`` of every pair,
    ``pair_modify shift yes`` for LJ, masses; run it as ``lmp -in in-<hash12>.lammps -var
    data sample-<id>-inherent.data``) and, for EAM, its potential
    ``potential-<hash12>.eam.<kind>``, and ready-to-run inputs of the MD protocols,
    ``in-<hash12>.<protocol>.lammps`` for npt, dms, relax, shear_aqs and shear_rate
    (:func:`swapmc.io.lammps_input.lammps_protocol_script`: ``lmp -in
    in-<hash12>.dms.lammps -var data sample-<id>-inherent.data -var T 0.3 -var period
    100``). An ``index.csv`` lists the exported samples with their metadata, the model's
    LAMMPS lines (``lammps_pair_style``, one command per line) and the name of its input
    file (``lammps_input``).

    Parameters
    ----------
    library : Library or None
        The open library; unused (each sample is read from its own library, so samples of
        several files, e.g. from :func:`~swapmc.library.store.query_many`, export
        together).
    samples : list of Sample
        From :meth:`Library.query`.
    directory : str
        Created if missing.
    formats : sequence of {"extxyz", "lammps"}
    structures : sequence of {"equilibrium", "inherent"}
    naming : {"id", "build-chain"}
        File names by sample id (unique within one library file) or by build and chain
        (unique across files); with "build-chain", ``index.csv`` also names each sample's
        ``file``.
    lammps_params : dict, optional
        Defaults written into the protocol inputs instead of swapmc's (name -> value, e.g.
        ``{"T": 0.3, "period": 100}``; see
        :func:`swapmc.io.lammps_input.protocol_parameters`), checked before any file is
        written.

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
    if naming not in ("id", "build-chain"):
        raise ValueError(f"unknown naming {naming!r}; known: 'id', 'build-chain'")
    lammps_params = check_protocol_parameters(lammps_params)
    os.makedirs(directory, exist_ok=True)
    written = []
    lammps = {}  # model hash -> (pair lines, input file name)
    for sample in samples:
        meta = sample.meta
        if meta["model_hash"] not in lammps:
            lammps[meta["model_hash"]] = _write_lammps_model(sample._library, meta, directory,
                                                             written, lammps_params)
        for kind in structures:
            system = sample.structure(kind)
            stem = os.path.join(directory, f"{_name(sample, naming)}-{kind}")
            if "extxyz" in formats:
                info = {k: meta[k] for k in XYZ_INFO if meta.get(k) is not None}
                info.update({"sample_id": sample.id, "structure": kind})
                with atomic_write(stem + ".xyz") as fh:
                    write_extxyz(fh, system, info=info, element_names=meta["elements"],
                                 masses=meta["masses"])
                written.append(stem + ".xyz")
            if "lammps" in formats:
                write_lammps_data(stem + ".data", system, masses=meta["masses"],
                                  comment=f"swapmc library sample {sample.id} ({kind}) "
                                          f"{meta['model']} T={meta['temperature']:g} "
                                          f"{meta['verdict']}")
                written.append(stem + ".data")
    index = os.path.join(directory, "index.csv")
    columns = ["id", "model", "build", "chain", "n", "temperature", "pressure", "verdict",
               "energy", "is_energy", "tau_alpha", "decays", "seed", "lammps_pair_style",
               "lammps_input"]
    if naming == "build-chain":
        columns[1:1] = ["name", "file"]
    with atomic_write(index) as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for s in samples:
            lines, script = lammps[s.meta["model_hash"]]
            row = {**s.meta, "lammps_pair_style": "\n".join(lines), "lammps_input": script,
                   "name": _name(s, naming), "file": s.path}
            w.writerow([row.get(c) for c in columns])
    written.append(index)
    return written


def _name(sample: Sample, naming: str) -> str:
    if naming == "id":
        return f"sample-{sample.id}"
    return f"sample-{sample.meta['build'][:12]}-c{sample.meta['chain']:06d}"


def _lj_model(library: Library, meta: dict):
    """The LJ model of a sample, rebuilt from its build's stored config, or None when that
    does not reproduce the sample's model hash (the parameters are then unknown)."""
    try:
        cfg = loads_toml(library.build_config(meta["build"]), f"build {meta['build']}")
        model = build_model(cfg["model"], "build config")
        dopant = cfg.get("dopant")
        if dopant is not None:
            model = add_dopant(model, dopant["name"], tuple(dopant["between"]),
                               float(dopant.get("weight", 0.5)))
    except (KeyError, ValueError, ModelError):
        return None
    # The library's LJ fingerprint (swapmc.library.build.model_fingerprint).
    digest = hashlib.sha256(json.dumps(model.to_dict(), sort_keys=True).encode()).hexdigest()
    return model if digest == meta["model_hash"] else None


def _write_lammps_model(library: Library, meta: dict, directory: str,
                        written: list, params=None) -> tuple[list, str]:
    """Write the LAMMPS input (and EAM potential) of one model and its protocol inputs;
    ``(lines, input name)``, or ``([], "")`` when the model cannot be recovered from the
    library."""
    tag = meta["model_hash"][:12]
    model = potential = None
    if meta["kind"] == "eam":
        stored = library.potential(meta["model_hash"])
        if stored is not None:
            kind, text = stored
            potential = f"potential-{tag}.eam.{kind}"
            path = os.path.join(directory, potential)
            with atomic_write(path) as fh:
                fh.write(text)
            written.append(path)
            model = EAMPotential.from_file(path, kind)
    elif meta["kind"] == "lj":
        model = _lj_model(library, meta)
    if model is None:
        return [], ""
    script = f"in-{tag}.lammps"
    path = os.path.join(directory, script)
    write_lammps_input(path, model, "${data}", potential,
                       comment=f"swapmc library model {meta['model']} ({meta['model_hash'][:12]}): "
                               f"lmp -in {script} -var data sample-<id>-<structure>.data")
    written.append(path)
    # The pressure the samples were built at (NPT builds, e.g. the EAM presets): the
    # default of the NPT stage before DMS and relaxation.
    protocols = write_lammps_protocols(
        directory, model, None, potential, stem=f"in-{tag}", params=params,
        pressure=meta.get("pressure"),
        comment=f"swapmc library model {meta['model']} ({tag}): lmp -in in-{tag}.<protocol>"
                ".lammps -var data sample-<id>-<structure>.data")
    written.extend(protocols.values())
    return lammps_pair_lines(model, potential), script
