"""Multi-file, multi-rank checkpoints that are consistent after a kill at any moment.

Layout under ``<output>/checkpoints/``::

    manifest.json                  names the last complete round (written last, atomically)
    round_00000120/shared.npz      replicated tempering state (labels, ladder, stream, stats)
    round_00000120/replica_003.npz one sampler state per replica, written by its owner rank

Protocol of :meth:`CheckpointStore.save`: every rank writes its replicas' files into the
round's own directory (each file atomically), rank 0 writes ``shared.npz``, all ranks meet at
a barrier, and only then rank 0 atomically replaces ``manifest.json`` (naming the new round
and, as ``previous``, the round it supersedes) and deletes the other round directories. A
kill before the manifest update leaves the older rounds named, and their files untouched;
the half-written newer directory is ignored and removed on resume. Replica files do not
depend on the number of ranks, so a run may resume on a different number of ranks.

Two complete rounds are kept so that a damaged latest round (a file cut short by a full
disk, a flipped bit) can fall back to the previous one: :meth:`CheckpointStore.read_round`
checks every file of a round (its CRC, every array with its dtype and shape, finite
positions, the replica and round it claims to be), and the driver resumes from the latest
round only when all of its files pass, else from the previous round only when all of *its*
files pass, so the replicas always restart together from one exchange step.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from .. import __version__
from ..io import atomic_write
from ..io.atomic import DamagedFileError, read_npz
from ..mc.sampler import StateError, check_state

__all__ = ["CheckpointStore", "RoundDamage"]

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
        # The round this run last saved or resumed from (the next save's ``previous``), and
        # the round before it.
        self.current: str | None = None
        self.previous: str | None = None

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
        if name != self.current:
            self.current, self.previous = name, self.current
        if self.comm.rank == 0:
            manifest = {"manifest_version": MANIFEST_VERSION, "swapmc_version": __version__,
                        "round": int(round_index), "directory": name,
                        "previous": self.previous, **manifest_extra}
            with atomic_write(self.manifest_path) as fh:
                json.dump(manifest, fh, indent=1)
            self.remove_stale({name, self.previous})

    def adopt(self, name: str) -> None:
        """Record that the run resumed from round directory ``name`` (the next save keeps it
        as its ``previous``)."""
        self.current, self.previous = name, None

    def remove_stale(self, keep) -> None:
        """Delete round directories not in ``keep`` (a name or a set of names; rank 0; safe
        once the manifest names every round that is kept)."""
        keep = {keep} if isinstance(keep, str) else set(keep)
        if not os.path.isdir(self.root):
            return
        for entry in os.listdir(self.root):
            if entry.startswith("round_") and entry not in keep:
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
        if not isinstance(manifest, dict):
            raise ValueError(f"cannot read {self.manifest_path}: not a JSON object")
        if manifest.get("manifest_version") != MANIFEST_VERSION:
            raise ValueError(f"{self.manifest_path}: unsupported manifest version "
                             f"{manifest.get('manifest_version')!r}")
        for key in ("round", "directory", "config"):
            if key not in manifest:
                raise ValueError(f"{self.manifest_path}: field {key!r} is missing")
        return manifest

    @staticmethod
    def rounds(manifest: dict) -> list[str]:
        """Round directories to try, latest first (the previous one when the manifest has
        it)."""
        names = [manifest["directory"]]
        if manifest.get("previous") and manifest["previous"] != manifest["directory"]:
            names.append(manifest["previous"])
        return names

    @staticmethod
    def round_index(name: str) -> int:
        return int(name[len("round_"):])

    def read_round(self, name: str, replicas, shared: bool = True) -> tuple[dict, dict | None]:
        """Read and check this rank's files of one round.

        Parameters
        ----------
        name : str
            Round directory (``round_XXXXXXXX``).
        replicas : iterable of int
            Global replica indices whose files to read.
        shared : bool
            Also read ``shared.npz``.

        Returns
        -------
        replica_states : dict of int to dict
            Replica -> arrays (sampler state; ``replica_header`` checked and dropped).
        shared_state : dict or None

        Raises
        ------
        RoundDamage
            Naming the first damaged file and what is wrong with it.
        """
        directory = os.path.join(self.root, name)
        if not os.path.isdir(directory):
            raise RoundDamage(f"{directory} is missing")
        expected_round = self.round_index(name)
        states = {}
        for r in replicas:
            path = self.replica_path(name, r)
            ck = _read(path)
            try:
                check_state(ck)
                header = json.loads(str(ck["replica_header"]))
                if header.get("replica") != r or header.get("round") != expected_round:
                    raise StateError(
                        f"replica_header says replica {header.get('replica')!r} at round "
                        f"{header.get('round')!r}, expected replica {r} at round "
                        f"{expected_round}")
            except KeyError as err:
                raise RoundDamage(f"{path}: array {err.args[0]!r} is missing") from None
            except (StateError, ValueError, AttributeError) as err:
                raise RoundDamage(f"{path}: {err}") from None
            states[r] = {k: v for k, v in ck.items() if k != "replica_header"}
        state = None
        if shared:
            path = self.shared_path(name)
            state = _read(path)
            for key in ("pt_header", "pt_perm", "pt_ladder", "pt_steps", "run_header"):
                if key not in state:
                    raise RoundDamage(f"{path}: array {key!r} is missing")
            try:
                round_index = json.loads(str(state["pt_header"]))["round_index"]
            except (ValueError, KeyError, TypeError) as err:
                raise RoundDamage(f"{path}: array 'pt_header' is malformed ({err!r})") from None
            if round_index != expected_round:
                raise RoundDamage(f"{path}: holds round {round_index!r}, expected "
                                  f"{expected_round}")
        return states, state


class RoundDamage(ValueError):
    """A checkpoint round with a damaged or inconsistent file (the message names it)."""


def _read(path: str) -> dict:
    try:
        return read_npz(path)
    except DamagedFileError as err:
        raise RoundDamage(f"{path}: {err}") from None
