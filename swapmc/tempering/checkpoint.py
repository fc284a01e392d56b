"""Multi-file, multi-rank checkpoints that are consistent after a kill at any moment.

Layout under ``<output>/checkpoints/``::

    manifest.json                  names the last complete round (written last, atomically)
    round_00000120/shared.npz      replicated tempering state (labels, ladder, stream, stats)
    round_00000120/replica_003.npz one sampler state per replica, written by its owner rank

Protocol of :meth:`CheckpointStore.save`: every rank writes its replicas' files into the
round's own directory (each file atomically), rank 0 writes ``shared.npz``, all ranks meet at
a barrier, and only then rank 0 atomically replaces ``manifest.json`` and deletes older round
directories. A kill before the manifest update leaves the previous round named, and its
files untouched; the half-written newer directory is ignored and removed on resume.
Replica files do not depend on the number of ranks, so a run may resume on a different
number of ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np

from .. import __version__
from ..io import atomic_write

__all__ = ["CheckpointStore"]

MANIFEST_VERSION = 1


class CheckpointStore:
    """Round-tagged checkpoint directories plus a manifest.

    Parameters
    ----------
    directory : str
        The run's output directory (``checkpoints/`` is created inside it).
    comm : SerialComm or MPIComm
    """

    def __init__(self, directory: str, comm):
        self.root = os.path.join(directory, "checkpoints")
        self.manifest_path = os.path.join(self.root, "manifest.json")
        self.comm = comm

    @staticmethod
    def round_name(round_index: int) -> str:
        return f"round_{int(round_index):08d}"

    def replica_path(self, name: str, replica: int) -> str:
        return os.path.join(self.root, name, f"replica_{int(replica):03d}.npz")

    def shared_path(self, name: str) -> str:
        return os.path.join(self.root, name, "shared.npz")

    # --------------------------------------------------------------- write
    def save(self, round_index: int, replica_states: dict, shared: dict | None,
             manifest_extra: dict) -> None:
        """Collective: write one consistent checkpoint.

        Parameters
        ----------
        round_index : int
            Completed rounds at this checkpoint (names the directory).
        replica_states : dict of int to dict of arrays
            This rank's replicas (global index -> ``np.savez`` keyword arrays).
        shared : dict of arrays or None
            Replicated state; written by rank 0 (other ranks may pass None).
        manifest_extra : dict
            JSON-able data stored in the manifest (e.g. the resolved config).
        """
        name = self.round_name(round_index)
        os.makedirs(os.path.join(self.root, name), exist_ok=True)
        for r, arrays in replica_states.items():
            with atomic_write(self.replica_path(name, r), "wb", encoding=None) as fh:
                np.savez(fh, **arrays)
        if self.comm.rank == 0:
            with atomic_write(self.shared_path(name), "wb", encoding=None) as fh:
                np.savez(fh, **shared)
        # Nobody names this round until every rank's files are on disk.
        self.comm.barrier()
        if self.comm.rank == 0:
            manifest = {"manifest_version": MANIFEST_VERSION, "swapmc_version": __version__,
                        "round": int(round_index), "directory": name, **manifest_extra}
            with atomic_write(self.manifest_path) as fh:
                json.dump(manifest, fh, indent=1)
            self.remove_stale(name)

    def remove_stale(self, keep: str) -> None:
        """Delete round directories other than ``keep`` (rank 0; safe after the manifest
        names ``keep``)."""
        if not os.path.isdir(self.root):
            return
        for entry in os.listdir(self.root):
            if entry.startswith("round_") and entry != keep:
                shutil.rmtree(os.path.join(self.root, entry), ignore_errors=True)

    # ---------------------------------------------------------------- read
    def read_manifest(self) -> dict | None:
        """The manifest as a dict, or None when there is no checkpoint yet.

        Raises
        ------
        ValueError
            When the manifest exists but cannot be read or names a missing directory.
        """
        if not os.path.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path, encoding="utf-8") as fh:
                manifest = json.load(fh)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read {self.manifest_path}: {err}") from None
        if manifest.get("manifest_version") != MANIFEST_VERSION:
            raise ValueError(f"{self.manifest_path}: unsupported manifest version "
                             f"{manifest.get('manifest_version')!r}")
        if not os.path.isdir(os.path.join(self.root, manifest["directory"])):
            raise ValueError(f"{self.manifest_path} names {manifest['directory']}, which is "
                             "missing: the checkpoint directory was tampered with")
        return manifest

    @staticmethod
    def _load(path: str) -> dict:
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"cannot read checkpoint file {path}: {err}") from None

    def load_shared(self, manifest: dict) -> dict:
        return self._load(self.shared_path(manifest["directory"]))

    def load_replica(self, manifest: dict, replica: int) -> dict:
        return self._load(self.replica_path(manifest["directory"], replica))
