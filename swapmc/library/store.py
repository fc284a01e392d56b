"""The glass library on disk: one SQLite database of samples, their metadata and structures.

Why SQLite
----------
Every sample is written in one transaction (its metadata row, the equilibrium and the
inherent structure), so a process killed at any moment leaves either the whole sample or
none of it: SQLite's rollback journal restores the last committed state the next time the
file is opened. Several processes (MPI ranks, or separate jobs) may write to the same file;
SQLite serialises writers with file locks, and a writer that finds the file busy waits
(``busy_timeout``) instead of failing. The same ``(build, chain)`` is stored at most once (a
UNIQUE constraint), so rerunning a build can never duplicate a sample. Metadata are plain
columns, so queries are SQL. A file shared by several hosts needs a file system with working
POSIX locks (local disks, Lustre/GPFS with locking enabled; not NFS without ``lockd``);
elsewhere a build is split into shard files, each written from one host, and merged
(:mod:`swapmc.library.merge`).

Claims and leases
-----------------
Workers (MPI ranks and separate jobs alike) share the chains of a build through the
``claims`` table: a worker takes the lowest chain that is neither stored nor held by a live
claim (:meth:`Library.claim_chain`, one ``BEGIN IMMEDIATE`` transaction), renews its lease
while the chain runs (:meth:`Library.renew_claim`) and gives the claim up in the transaction
that stores the sample (:meth:`Library.add_claimed_sample`). A claim is live until its lease
expires; a claim whose owner is on this host and no longer runs (its pid is gone, or now
belongs to a process started at another time) is dead at once, so rerunning a killed build
on the same machine does not wait for the lease. Leases compare wall clocks of different
hosts, which NTP keeps within far less than a lease.

Layout
------
``builds``: one row per library build (the fingerprint of its config, the model, the
resolved config as TOML). ``samples``: one row per chain with every metadata column listed in
:data:`SAMPLE_COLUMNS`. ``structures``: positions (float64), images (int64), species (int32)
and the cell (lengths + tilts, float64) as raw little-endian bytes, i.e. at full precision,
for the ``equilibrium`` and ``inherent`` structure of each sample. ``potentials``: the setfl
text of every EAM potential used, keyed by its SHA-256, so an exported sample can be taken to
LAMMPS with exactly its potential. ``claims``: one row per chain being made (build, chain,
the owner's token, host, pid, MPI rank and process start time, and the claim, heartbeat and
expiry times in Unix seconds); files written before claims existed gain the table when next
opened for writing, and read without it. ``digests``: the SHA-256 of each sample as stored
(:func:`sample_digest`: its non-null metadata and every byte of its structures), written in
the sample's transaction, so that a merge or a check can tell a sample that changed on disk
from an intact one; samples written before the table existed have none. ``shards``: for a
shard file (``[library] shards``), which shard of which build it holds.

Tables were only ever added (``CREATE TABLE IF NOT EXISTS``), never altered, so files of
every swapmc with this schema version stay readable and writable by each other.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..box import Box
from ..system import System

SCHEMA_VERSION = 1

# (name, SQL type, meaning) of every metadata column of a sample.
SAMPLE_COLUMNS = [
    ("build", "TEXT NOT NULL", "fingerprint of the build config (hex)"),
    ("chain", "INTEGER NOT NULL", "chain index (or PT frame index) within the build"),
    ("source", "TEXT NOT NULL", "'chain' (independent swap MC) or 'tempering' (PT harvest)"),
    ("model", "TEXT NOT NULL", "preset or model name"),
    ("model_hash", "TEXT NOT NULL", "SHA-256 of the model parameters / potential file"),
    ("kind", "TEXT NOT NULL", "'lj' or 'eam'"),
    ("units", "TEXT NOT NULL", "'lj' (reduced) or 'metal'"),
    ("species_names", "TEXT NOT NULL", "JSON list of species names"),
    ("composition", "TEXT NOT NULL", "JSON {species: count}"),
    ("masses", "TEXT NOT NULL", "JSON list of the species masses (mass units)"),
    ("elements", "TEXT", "JSON {species: element label} for OVITO/ASE, or NULL"),
    ("n", "INTEGER NOT NULL", "number of particles"),
    ("temperature", "REAL NOT NULL", "equilibration temperature"),
    ("pressure", "REAL", "imposed pressure (NPT) or NULL (NVT)"),
    ("density", "REAL NOT NULL", "number density N/V"),
    ("seed", "INTEGER NOT NULL", "seed of the chain's run"),
    ("sweeps", "INTEGER NOT NULL", "MC sweeps done in total (melt + equilibration + production)"),
    ("production_sweeps", "INTEGER NOT NULL", "production sweeps (the certified stretch)"),
    ("acc_displacement", "REAL", "displacement acceptance over the run"),
    ("acc_swap", "REAL", "swap acceptance over the run"),
    ("acc_volume", "REAL", "volume-move acceptance (NPT)"),
    ("tau_alpha", "REAL", "tau_alpha in MC sweeps (F_s = 1/e); NULL if F_s never got there"),
    ("decays", "REAL", "production_sweeps / tau_alpha"),
    ("round_trips", "INTEGER", "PT samples: round trips of the run (NULL for chains)"),
    ("fs_final", "REAL", "F_s at the longest lag measured"),
    ("tau_alpha_stderr", "REAL", "jackknife error of tau_alpha over origin groups (sweeps)"),
    ("fs_q", "REAL", "wavenumber of F_s: 7.25 (rho / 1.2)^(1/3) unless set in the config"),
    ("fs_species", "TEXT", "species tracked by F_s (the particles of it at each time origin)"),
    ("drift_z", "REAL", "energy drift between production halves in standard errors"),
    ("crystalline_fraction", "REAL", "solid-like fraction (ten Wolde q6) of the sample"),
    ("verdict", "TEXT NOT NULL", "'certified' or 'failed'"),
    ("reasons", "TEXT NOT NULL", "why it failed ('' when certified)"),
    ("energy", "REAL NOT NULL", "potential energy per particle at the end of production"),
    ("is_energy", "REAL", "inherent-structure energy per particle"),
    ("is_max_force", "REAL", "largest force left after the quench"),
    ("swapmc_version", "TEXT NOT NULL", "software version"),
    ("created", "TEXT NOT NULL", "UTC creation time (ISO 8601)"),
    ("wall_seconds", "REAL", "wall time of the chain, certification and quench"),
    ("cpu_seconds", "REAL", "CPU (process) time of the chain, certification and quench"),
    ("host", "TEXT", "host name of the process that made the sample"),
]
COLUMN_NAMES = [c[0] for c in SAMPLE_COLUMNS]
JSON_COLUMNS = ("species_names", "composition", "masses", "elements")
STRUCTURE_KINDS = ("equilibrium", "inherent")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS builds (
    build TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    swapmc_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{name} {sql}" for name, sql, _ in SAMPLE_COLUMNS)},
    UNIQUE (build, chain),
    CHECK (verdict IN ('certified', 'failed'))
);
CREATE INDEX IF NOT EXISTS samples_query ON samples (model, verdict, temperature);
CREATE TABLE IF NOT EXISTS structures (
    sample_id INTEGER NOT NULL REFERENCES samples (id),
    kind TEXT NOT NULL CHECK (kind IN ('equilibrium', 'inherent')),
    positions BLOB NOT NULL,
    images BLOB NOT NULL,
    species BLOB NOT NULL,
    cell BLOB NOT NULL,
    PRIMARY KEY (sample_id, kind)
);
CREATE TABLE IF NOT EXISTS potentials (model_hash TEXT PRIMARY KEY, kind TEXT NOT NULL,
                                       text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    build TEXT NOT NULL,
    chain INTEGER NOT NULL,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    started TEXT,
    claimed REAL NOT NULL,
    heartbeat REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (build, chain)
);
CREATE TABLE IF NOT EXISTS digests (
    sample_id INTEGER PRIMARY KEY REFERENCES samples (id),
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    build TEXT PRIMARY KEY,
    shard INTEGER NOT NULL,
    shards INTEGER NOT NULL,
    CHECK (shard >= 0 AND shard < shards)
);
"""

# Writers wait this long for a busy database (other ranks committing) before giving up.
BUSY_TIMEOUT_S = 600.0
# Columns that record how and where a sample was made, not what it is: two runs of one chain
# differ in these and are still the same sample.
PROVENANCE_COLUMNS = ("created", "host", "wall_seconds", "cpu_seconds", "swapmc_version")
STRUCTURE_BLOBS = ("positions", "images", "species", "cell")


class LibraryError(OSError):
    """The library file is missing, not a swapmc library, or damaged."""


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _uri(path: str, mode: str) -> str:
    """SQLite URI of a file path: ``#``, ``?``, ``%`` and spaces would otherwise end the path
    or be decoded (``x%41.sqlite`` would open ``xA.sqlite``)."""
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode={mode}"


def _process_start(pid: int) -> str | None:
    """Start time of a running process (clock ticks since boot, from ``/proc``), or None
    when there is no such process (a zombie counts as gone) or no ``/proc``."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _process_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` of this host still runs (and is the same process, when its
    start time is known: pids are reused)."""
    if os.path.isdir("/proc/self"):
        now = _process_start(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(frozen=True)
class Worker:
    """The owner of claims: one process (one MPI rank) of one build job.

    Attributes
    ----------
    token : str
        Random, unique to this process; a claim belongs to whoever holds its token.
    host : str
        Host name.
    pid : int
        Process id on ``host``.
    rank : int
        MPI rank (0 without MPI).
    started : str or None
        Start time of the process on ``host`` (``/proc``), which tells a reused pid apart.
    """

    token: str
    host: str
    pid: int
    rank: int = 0
    started: str | None = None

    @classmethod
    def this_process(cls, rank: int = 0) -> Worker:
        """The worker identity of the calling process."""
        return cls(secrets.token_hex(8), socket.gethostname(), os.getpid(), int(rank),
                   _process_start(os.getpid()))

    def describe(self) -> str:
        return f"pid {self.pid} (rank {self.rank}) on host {self.host}"


@dataclass(frozen=True)
class Claim:
    """A chain taken by :meth:`Library.claim_chain`.

    Attributes
    ----------
    chain : int
        The chain index.
    previous : Worker or None
        The owner of an expired or dead claim on the chain that this claim replaces (its
        work directory may hold a checkpoint to resume from), or None.
    """

    chain: int
    previous: Worker | None = None


@dataclass(frozen=True)
class StoreOutcome:
    """What :meth:`Library.add_claimed_sample` did.

    Attributes
    ----------
    sample_id : int or None
        The new sample id, or None when the chain was already stored (nothing written).
    taken_over_by : Worker or None
        Another worker holding a live claim on the chain when the sample was stored: this
        worker's lease had expired and the chain was claimed again. That worker still uses
        the chain's work directory (and will find the chain stored when it finishes).
    """

    sample_id: int | None
    taken_over_by: Worker | None = None


def _owner(row: sqlite3.Row) -> Worker:
    return Worker(row["token"], row["host"], int(row["pid"]), int(row["rank"]), row["started"])


def _live(row: sqlite3.Row, now: float, me: Worker) -> bool:
    """Whether a claim row still binds workers other than its owner: its lease has not
    expired and, when its owner ran on this host, that process still runs."""
    if row["expires"] <= now:
        return False
    if row["host"] == me.host and row["token"] != me.token:
        return _process_alive(row["pid"], row["started"])
    return True


@dataclass
class Sample:
    """One library entry.

    Attributes
    ----------
    id : int
        Row id in the library.
    meta : dict
        Every column of :data:`SAMPLE_COLUMNS` (JSON columns decoded).
    """

    id: int
    meta: dict
    _library: Library

    def structure(self, kind: str = "equilibrium") -> System:
        """The stored configuration, ``"equilibrium"`` (end of production) or ``"inherent"``
        (after the quench), with ``info`` holding the sample's metadata."""
        return self._library.structure(self.id, kind)

    @property
    def path(self) -> str:
        """The library file the sample was read from."""
        return self._library.path

    @property
    def system(self) -> System:
        """The equilibrium configuration (end of the certified production run)."""
        return self.structure("equilibrium")

    @property
    def inherent(self) -> System:
        """The inherent structure (energy minimum reached by FIRE from :attr:`system`)."""
        return self.structure("inherent")


def _decode(row: sqlite3.Row) -> dict:
    meta = {k: row[k] for k in row.keys()}
    for key in JSON_COLUMNS:
        if key in meta and isinstance(meta[key], str):
            meta[key] = json.loads(meta[key])
    return meta


def sample_digest(row, structures: dict, exclude: Iterable[str] = ()) -> str:
    """SHA-256 (hex) of a sample as stored.

    Parameters
    ----------
    row : mapping
        The sample's ``samples`` row as stored (JSON columns as their text); columns not in
        :data:`SAMPLE_COLUMNS`, missing ones and NULLs are left out, so a column added to
        the table later (NULL in older rows) does not change the digest.
    structures : dict
        ``{kind: {"positions": bytes, "images": ..., "species": ..., "cell": ...}}``.
    exclude : iterable of str
        Further columns to leave out (:data:`PROVENANCE_COLUMNS` gives the digest of the
        result alone, equal for two runs of one chain).
    """
    import hashlib

    skip = set(exclude)
    keys = set(row.keys())
    meta = {c: row[c] for c in COLUMN_NAMES if c in keys and c not in skip and row[c] is not None}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for kind in STRUCTURE_KINDS:
        if kind in structures:
            h.update(b"\0" + kind.encode())
            for name in STRUCTURE_BLOBS:
                blob = bytes(structures[kind][name])
                h.update(len(blob).to_bytes(8, "little") + blob)
    return h.hexdigest()


class Library:
    """A glass library file.

    Parameters
    ----------
    path : str
        The SQLite file.
    create : bool
        Create the file (and its tables) if missing, and allow writing. With ``False`` a
        missing file or a file that is not a swapmc library raises :class:`LibraryError`,
        and the connection refuses writes (it still rolls back the journal a killed writer
        left behind, so reading after a crash works).
    """

    def __init__(self, path: str, create: bool = False):
        self.path = str(path)
        self.writable = create
        if not create and not os.path.exists(self.path):
            raise LibraryError(f"no library at {self.path!r}")
        try:
            if create:
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, exist_ok=True)
                self._db = sqlite3.connect(_uri(self.path, "rwc"), uri=True,
                                           timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self._db = self._open_for_reading()
            self._db.row_factory = sqlite3.Row
            if create:
                # FULL: a commit is on disk before it returns, so a sample reported stored
                # survives a power cut, not only a killed process.
                self._db.execute("PRAGMA synchronous = FULL")
                with self._transaction():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)",
                                     (str(SCHEMA_VERSION),))
                    self._add_missing_columns()
            version = self._db.execute(
                "SELECT value FROM info WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as err:
            raise LibraryError(f"{self.path}: not a readable swapmc library ({err})") from None
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise LibraryError(f"{self.path}: library schema version {version and version[0]}, "
                               f"this swapmc reads version {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ plumbing
    def _add_missing_columns(self) -> None:
        # A file written by an older swapmc of the same schema version may lack metadata
        # columns added since; those are all nullable, so they are added (empty) in place.
        present = {row[1] for row in self._db.execute("PRAGMA table_info(samples)")}
        for name, sql, _ in SAMPLE_COLUMNS:
            if name not in present:
                if "NOT NULL" in sql:
                    raise LibraryError(f"{self.path}: samples table lacks required column "
                                       f"{name!r}; the file was not written by this schema")
                self._db.execute(f"ALTER TABLE samples ADD COLUMN {name} {sql}")

    def _open_for_reading(self) -> sqlite3.Connection:
        # Opened read-write but with writes refused (query_only): after a writer was killed
        # mid-transaction, the first reader must be able to roll the leftover journal back,
        # which a read-only connection cannot do. Without write permission, plain read-only.
        try:
            db = sqlite3.connect(_uri(self.path, "rw"), uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None)
            db.execute("PRAGMA query_only = ON")
        except sqlite3.OperationalError:
            db = sqlite3.connect(_uri(self.path, "ro"), uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None)
        return db

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                # IMMEDIATE takes the write lock now, so two writers never deadlock while
                # upgrading read locks.
                db.execute("BEGIN IMMEDIATE")
                return db

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check(self) -> str:
        """SQLite's full integrity check: ``"ok"`` for an intact file."""
        return "\n".join(r[0] for r in self._db.execute("PRAGMA integrity_check"))

    # ------------------------------------------------------------------ builds
    def register_build(self, build: str, model: str, model_hash: str, config_text: str,
                       version: str) -> None:
        """Record a build (no-op if it is already there)."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO builds VALUES (?, ?, ?, ?, ?, ?)",
                       (build, model, model_hash, config_text, _utc_now(), version))

    def builds(self) -> list[dict]:
        """Every build with its counts of certified and failed samples."""
        rows = self._db.execute(
            "SELECT b.build, b.model, b.created, b.swapmc_version, "
            "SUM(s.verdict = 'certified') AS certified, SUM(s.verdict = 'failed') AS failed, "
            "SUM(s.wall_seconds) AS wall_seconds "
            "FROM builds b LEFT JOIN samples s ON s.build = b.build GROUP BY b.build "
            "ORDER BY b.created").fetchall()
        return [dict(r) for r in rows]

    def build_config(self, build: str) -> str:
        row = self._db.execute("SELECT config FROM builds WHERE build = ?", (build,)).fetchone()
        if row is None:
            raise LibraryError(f"{self.path}: no build {build!r}")
        return row[0]

    def done_chains(self, build: str) -> set[int]:
        """Chain indices of ``build`` already stored (certified or failed)."""
        rows = self._db.execute("SELECT chain FROM samples WHERE build = ?", (build,))
        return {int(r[0]) for r in rows}

    def build_rows(self) -> list[dict]:
        """Every row of the ``builds`` table as stored (fingerprint, model, model hash, config
        text, creation time, version)."""
        return [dict(r) for r in self._db.execute("SELECT * FROM builds ORDER BY created, build")]

    def copy_build(self, row: dict) -> bool:
        """Register a build exactly as another library holds it (:meth:`build_rows`); False
        when it is registered here already (nothing written)."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO builds VALUES (?, ?, ?, ?, ?, ?)",
                             (row["build"], row["model"], row["model_hash"], row["config"],
                              row["created"], row["swapmc_version"]))
        return cur.rowcount > 0

    def potentials(self) -> list[dict]:
        """Every stored potential: ``{"model_hash", "kind", "text"}``."""
        return [dict(r) for r in self._db.execute("SELECT * FROM potentials ORDER BY model_hash")]

    def register_shard(self, build: str, shard: int, shards: int) -> None:
        """Record that this file holds shard ``shard`` of ``shards`` of ``build``.

        Raises
        ------
        LibraryError
            The file already holds another shard of the build (a renamed shard file, or a
            different split pointed at it).
        """
        with self._transaction() as db:
            row = db.execute("SELECT shard, shards FROM shards WHERE build = ?",
                             (build,)).fetchone()
            if row is not None and (int(row[0]), int(row[1])) != (int(shard), int(shards)):
                raise LibraryError(
                    f"{self.path}: holds shard {row[0]} of {row[1]} of build {build[:16]}, not "
                    f"shard {shard} of {shards}; each shard file keeps the split it was made "
                    "with")
            db.execute("INSERT OR IGNORE INTO shards VALUES (?, ?, ?)",
                       (build, int(shard), int(shards)))

    def shards(self) -> dict:
        """``{build: (shard, shards)}`` for every build this file holds a shard of (empty for
        a library that is not a shard file)."""
        try:
            rows = self._db.execute("SELECT build, shard, shards FROM shards").fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return {}
            raise
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def add_potential(self, model_hash: str, kind: str, text: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO potentials VALUES (?, ?, ?)",
                       (model_hash, kind, text))

    def potential(self, model_hash: str) -> tuple[str, str] | None:
        """``(setfl_kind, text)`` of a stored EAM potential, or None."""
        row = self._db.execute("SELECT kind, text FROM potentials WHERE model_hash = ?",
                               (model_hash,)).fetchone()
        return None if row is None else (row[0], row[1])

    # ------------------------------------------------------------------ claims
    def claim_chain(self, build: str, wanted: int, worker: Worker, lease_s: float,
                    now: float | None = None, exclude: Iterable[int] = (),
                    partition: tuple[int, int] | None = None) -> Claim | None:
        """Claim the lowest chain of a build that nobody has stored or holds.

        Parameters
        ----------
        build : str
            Build fingerprint.
        wanted : int
            Chains ``0 .. wanted - 1`` are candidates.
        worker : Worker
            The claiming process.
        lease_s : float
            Lease length in seconds: the claim binds other workers until ``now + lease_s``
            unless renewed (:meth:`renew_claim`).
        now : float, optional
            Unix time (default: the clock); given by tests.
        exclude : iterable of int
            Chains this worker does not want (e.g. found busy in their work directory).
        partition : (int, int), optional
            ``(i, n)``: only chains ``k`` with ``k mod n == i`` are candidates (shard ``i``
            of a build split into ``n`` shard files).

        Returns
        -------
        Claim or None
            The chain claimed, or None when every candidate is stored, excluded or held by a
            live claim of another worker.
        """
        now = time.time() if now is None else float(now)
        first, step = (0, 1) if partition is None else (int(partition[0]), int(partition[1]))
        with self._transaction() as db:
            busy = {int(c) for c in exclude}
            rows = {int(r["chain"]): r for r in db.execute(
                "SELECT * FROM claims WHERE build = ?", (build,))}
            busy |= {c for c, r in rows.items() if _live(r, now, worker)}
            chain = self._lowest_free(db, build, first, step, int(wanted), busy)
            if chain is None:
                return None
            row = rows.get(chain)
            previous = None if row is None or row["token"] == worker.token else _owner(row)
            self._write_claim(db, build, chain, worker, lease_s, now, claimed=now)
        return Claim(chain, previous)

    @staticmethod
    def _lowest_free(db, build: str, first: int, step: int, wanted: int,
                     busy: set) -> int | None:
        """The lowest chain ``k = first + j * step < wanted`` neither stored nor in ``busy``.

        The claim transaction holds the write lock, so it must not grow with the library:
        the stored chains are counted in SQL (one pass over the index, no rows returned),
        and when the stored and busy candidates fill every slot up to the highest of them,
        as they do while chains are claimed lowest first, the answer is the next slot.
        Only a gap (a chain released, or stored out of order) costs reading the stored
        chains.
        """
        where = "build = ? AND chain >= ? AND chain < ? AND (chain - ?) % ? = 0"
        args = (build, first, wanted, first, step)
        count, top = db.execute(f"SELECT COUNT(*), MAX(chain) FROM samples WHERE {where}",
                                args).fetchone()
        held = {c for c in busy if first <= c < wanted and (c - first) % step == 0}
        if held:
            marks = ", ".join("?" * len(held))
            held -= {int(r[0]) for r in db.execute(
                f"SELECT chain FROM samples WHERE build = ? AND chain IN ({marks})",
                (build, *sorted(held)))}
        highest = max([first - step if top is None else int(top), *held])
        if count + len(held) == (highest - first) // step + 1:
            chain = highest + step
            return chain if chain < wanted else None
        stored = {int(r[0]) for r in db.execute(f"SELECT chain FROM samples WHERE {where}",
                                                 args)}
        return next((k for k in range(first, wanted, step)
                     if k not in stored and k not in held), None)

    def renew_claim(self, build: str, chain: int, worker: Worker, lease_s: float,
                    now: float | None = None) -> bool:
        """Extend this worker's lease on a chain to ``now + lease_s``.

        A claim that lapsed meanwhile is taken back unless another worker now holds it
        live, so a worker that was merely slow keeps its chain when nobody else wanted it.

        Returns
        -------
        bool
            True when the chain is (again) this worker's; False when it has been stored, or
            another worker holds a live claim on it.
        """
        now = time.time() if now is None else float(now)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM samples WHERE build = ? AND chain = ?",
                          (build, int(chain))).fetchone():
                return False
            row = db.execute("SELECT * FROM claims WHERE build = ? AND chain = ?",
                             (build, int(chain))).fetchone()
            if row is not None and row["token"] != worker.token and _live(row, now, worker):
                return False
            if row is not None and row["token"] == worker.token:
                db.execute("UPDATE claims SET heartbeat = ?, expires = ? WHERE build = ? AND "
                           "chain = ?", (now, now + lease_s, build, int(chain)))
            else:
                self._write_claim(db, build, int(chain), worker, lease_s, now, claimed=now)
        return True

    def release_claim(self, build: str, chain: int, worker: Worker) -> None:
        """Give up this worker's claim on a chain without storing it (the chain becomes
        claimable at once); a claim held by another worker is left alone."""
        with self._transaction() as db:
            db.execute("DELETE FROM claims WHERE build = ? AND chain = ? AND token = ?",
                       (build, int(chain), worker.token))

    def claims(self, build: str | None = None, now: float | None = None) -> list[dict]:
        """Every claim (of one build), in chain order, each as a dict of its columns plus
        ``live`` (whether it still binds other workers than its owner)."""
        now = time.time() if now is None else float(now)
        sql, args = "SELECT * FROM claims", []
        if build is not None:
            sql += " WHERE build = ?"
            args.append(build)
        try:
            rows = self._db.execute(sql + " ORDER BY build, chain", args).fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return []  # a file written before claims existed, opened read-only
            raise
        me = Worker("", socket.gethostname(), os.getpid())
        return [{**dict(r), "live": _live(r, now, me)} for r in rows]

    @staticmethod
    def _write_claim(db, build, chain, worker, lease_s, now, claimed) -> None:
        db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (build, int(chain), worker.token, worker.host, int(worker.pid),
                    int(worker.rank), worker.started, float(claimed), float(now),
                    float(now) + float(lease_s)))

    # ------------------------------------------------------------------ samples
    def add_sample(self, meta: dict, equilibrium: System, inherent: System | None) -> int | None:
        """Store one sample and its structures in a single transaction.

        Parameters
        ----------
        meta : dict
            Values for the columns of :data:`SAMPLE_COLUMNS` (``created``, ``swapmc_version``
            and ``host`` are filled in when missing).
        equilibrium : System
            The configuration at the end of production.
        inherent : System or None
            Its inherent structure.

        Returns
        -------
        int or None
            The new sample id, or None when ``(build, chain)`` was already stored (by an
            earlier run or another process) — nothing is written then.
        """
        values = self._sample_values(meta)
        with self._transaction() as db:
            sample_id = self._insert_sample(db, values, equilibrium, inherent)
            # A stored chain is done: claims on it no longer mean anything.
            db.execute("DELETE FROM claims WHERE build = ? AND chain = ?",
                       (meta["build"], meta["chain"]))
        return sample_id

    def add_claimed_sample(self, meta: dict, equilibrium: System, inherent: System | None,
                           worker: Worker, now: float | None = None) -> StoreOutcome:
        """Store the sample of a claimed chain and end every claim on it, in one transaction.

        The first complete sample of a ``(build, chain)`` is kept. A chain's result is a
        function of the build and the chain index alone (chain ``k`` is seeded from
        ``(seed, k)`` and resumes bit-identically from its checkpoints), so a worker whose
        lease expired but which finishes anyway stores the same sample the worker that took
        the chain over would; whichever commits second writes nothing.

        Parameters
        ----------
        meta, equilibrium, inherent
            As for :meth:`add_sample`.
        worker : Worker
            The worker that claimed the chain.
        now : float, optional
            Unix time (default: the clock).
        """
        now = time.time() if now is None else float(now)
        values = self._sample_values(meta)
        with self._transaction() as db:
            row = db.execute("SELECT * FROM claims WHERE build = ? AND chain = ?",
                             (meta["build"], meta["chain"])).fetchone()
            sample_id = self._insert_sample(db, values, equilibrium, inherent)
            db.execute("DELETE FROM claims WHERE build = ? AND chain = ?",
                       (meta["build"], meta["chain"]))
        other = (row is not None and row["token"] != worker.token
                 and _live(row, now, worker))
        return StoreOutcome(sample_id, _owner(row) if other else None)

    @staticmethod
    def _sample_values(meta: dict) -> list:
        from .. import __version__

        meta = dict(meta)
        meta.setdefault("created", _utc_now())
        meta.setdefault("swapmc_version", __version__)
        meta.setdefault("host", os.uname().nodename)
        missing = [c for c, sql, _ in SAMPLE_COLUMNS if "NOT NULL" in sql and meta.get(c) is None]
        if missing:
            raise ValueError(f"sample metadata lacks {missing}")
        unknown = set(meta) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"unknown sample metadata {sorted(unknown)}")
        values = []
        for c in COLUMN_NAMES:
            v = meta.get(c)
            if c in JSON_COLUMNS and v is not None:
                v = json.dumps(v)
            elif isinstance(v, np.generic):
                v = v.item()
            values.append(v)
        return values

    @staticmethod
    def _insert_sample(db, values: list, equilibrium: System,
                       inherent: System | None) -> int | None:
        cur = db.execute(
            f"INSERT OR IGNORE INTO samples ({', '.join(COLUMN_NAMES)}) "
            f"VALUES ({', '.join('?' * len(COLUMN_NAMES))})", values)
        if cur.rowcount == 0:
            return None
        sample_id = int(cur.lastrowid)
        for kind, system in (("equilibrium", equilibrium), ("inherent", inherent)):
            if system is None:
                continue
            cell = np.concatenate([system.box.lengths, system.box.tilts])
            db.execute("INSERT INTO structures VALUES (?, ?, ?, ?, ?, ?)", (
                sample_id, kind,
                np.ascontiguousarray(system.positions, "<f8").tobytes(),
                np.ascontiguousarray(system.images, "<i8").tobytes(),
                np.ascontiguousarray(system.species, "<i4").tobytes(),
                np.ascontiguousarray(cell, "<f8").tobytes()))
        Library._write_digest(db, sample_id)
        return sample_id

    @staticmethod
    def _write_digest(db, sample_id: int) -> str:
        """Record the digest of a sample just inserted, computed from what the database
        holds (column affinities may have changed a value's type, e.g. 1 -> 1.0)."""
        row, structures = Library._raw_sample(db, sample_id)
        digest = sample_digest(row, structures)
        db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?)", (sample_id, digest))
        return digest

    @staticmethod
    def _raw_sample(db, sample_id: int) -> tuple[sqlite3.Row, dict]:
        row = db.execute("SELECT * FROM samples WHERE id = ?", (int(sample_id),)).fetchone()
        structures = {r["kind"]: {name: r[name] for name in STRUCTURE_BLOBS} for r in db.execute(
            "SELECT * FROM structures WHERE sample_id = ?", (int(sample_id),))}
        return row, structures

    def raw_sample(self, sample_id: int) -> tuple[sqlite3.Row, dict, str | None]:
        """A sample exactly as stored: its ``samples`` row (JSON columns as text), its
        structures ``{kind: {"positions": bytes, ...}}`` and its stored digest (None when
        it was written without one)."""
        row, structures = self._raw_sample(self._db, sample_id)
        if row is None:
            raise LibraryError(f"{self.path}: no sample with id {sample_id}")
        return row, structures, self.stored_digest(sample_id)

    def stored_digest(self, sample_id: int) -> str | None:
        """The digest recorded when the sample was written, or None."""
        try:
            found = self._db.execute("SELECT sha256 FROM digests WHERE sample_id = ?",
                                     (int(sample_id),)).fetchone()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return None  # a file written before digests existed, opened read-only
            raise
        return None if found is None else found[0]

    def sample_ids(self) -> list[int]:
        """Every sample id, ascending."""
        return [int(r[0]) for r in self._db.execute("SELECT id FROM samples ORDER BY id")]

    def sample_columns(self) -> list[str]:
        """The columns of this file's ``samples`` table."""
        return [r[1] for r in self._db.execute("PRAGMA table_info(samples)")]

    def copy_sample(self, row, structures: dict) -> int | None:
        """Store a sample exactly as another library holds it (:meth:`raw_sample`), with its
        structures and digest, in one transaction; claims on its chain end.

        Returns
        -------
        int or None
            The new id here, or None when ``(build, chain)`` is already stored (nothing is
            written).
        """
        keys = set(row.keys())
        columns = [c for c in COLUMN_NAMES if c in keys]
        with self._transaction() as db:
            cur = db.execute(
                f"INSERT OR IGNORE INTO samples ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})", [row[c] for c in columns])
            if cur.rowcount == 0:
                return None
            sample_id = int(cur.lastrowid)
            for kind in STRUCTURE_KINDS:
                if kind in structures:
                    blobs = structures[kind]
                    db.execute("INSERT INTO structures VALUES (?, ?, ?, ?, ?, ?)",
                               (sample_id, kind, *(bytes(blobs[n]) for n in STRUCTURE_BLOBS)))
            self._write_digest(db, sample_id)
            db.execute("DELETE FROM claims WHERE build = ? AND chain = ?",
                       (row["build"], row["chain"]))
        return sample_id

    def sample_id(self, build: str, chain: int) -> int | None:
        """The id of chain ``chain`` of ``build``, or None when it is not stored."""
        found = self._db.execute("SELECT id FROM samples WHERE build = ? AND chain = ?",
                                 (build, int(chain))).fetchone()
        return None if found is None else int(found[0])

    def query(self, *, ids=None, model: str | None = None, build: str | None = None,
              verdict: str | None = "certified", t_min: float | None = None,
              t_max: float | None = None, n: int | None = None,
              limit: int | None = None) -> list[Sample]:
        """Samples matching every given filter, in id order.

        Parameters
        ----------
        ids : sequence of int, optional
            Only these ids.
        model : str, optional
            Preset/model name.
        build : str, optional
            Build fingerprint or a unique prefix of it.
        verdict : {"certified", "failed", None}
            ``None`` (or ``"all"``) selects both.
        t_min, t_max : float, optional
            Inclusive bounds on the equilibration temperature.
        n : int, optional
            Number of particles.
        limit : int, optional
            At most this many.
        """
        where, args = [], []
        if ids is not None:
            ids = [int(i) for i in ids]
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args += ids
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if build is not None:
            where.append("build LIKE ?")
            args.append(build + "%")
        if verdict not in (None, "all"):
            if verdict not in ("certified", "failed"):
                raise ValueError(f"verdict must be 'certified', 'failed' or 'all', got "
                                 f"{verdict!r}")
            where.append("verdict = ?")
            args.append(verdict)
        if t_min is not None:
            where.append("temperature >= ?")
            args.append(float(t_min))
        if t_max is not None:
            where.append("temperature <= ?")
            args.append(float(t_max))
        if n is not None:
            where.append("n = ?")
            args.append(int(n))
        sql = "SELECT * FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._db.execute(sql, args).fetchall()
        return [Sample(int(r["id"]), _decode(r), self) for r in rows]

    def samples(self, **filters) -> Iterator[Sample]:
        """Iterate over :meth:`query` results (same filters), e.g. straight into the MD stage:

        >>> for s in Library("glasses.sqlite").samples(model="ka2-x10", t_max=0.45):
        ...     system = s.inherent  # doctest: +SKIP
        """
        yield from self.query(**filters)

    def get(self, sample_id: int) -> Sample:
        """One sample by id (any verdict)."""
        found = self.query(ids=[sample_id], verdict=None)
        if not found:
            raise LibraryError(f"{self.path}: no sample with id {sample_id}")
        return found[0]

    def count(self, build: str | None = None) -> dict:
        """``{"certified": k, "failed": m}`` (of one build, or of the whole library)."""
        sql = "SELECT verdict, COUNT(*) FROM samples"
        args: list = []
        if build is not None:
            sql += " WHERE build = ?"
            args.append(build)
        out = {"certified": 0, "failed": 0}
        for verdict, k in self._db.execute(sql + " GROUP BY verdict", args):
            out[verdict] = int(k)
        return out

    def structure(self, sample_id: int, kind: str = "equilibrium") -> System:
        """A stored structure as a :class:`~swapmc.System` (``info`` = the sample metadata)."""
        if kind not in STRUCTURE_KINDS:
            raise ValueError(f"structure kind must be one of {STRUCTURE_KINDS}, got {kind!r}")
        row = self._db.execute(
            "SELECT s.*, t.positions AS t_pos, t.images AS t_img, t.species AS t_spc, "
            "t.cell AS t_cell FROM samples s JOIN structures t ON t.sample_id = s.id "
            "WHERE s.id = ? AND t.kind = ?", (int(sample_id), kind)).fetchone()
        if row is None:
            raise LibraryError(f"{self.path}: sample {sample_id} has no {kind} structure")
        meta = _decode(row)
        n = int(meta["n"])
        cell = np.frombuffer(row["t_cell"], "<f8")
        info = {k: v for k, v in meta.items() if not k.startswith("t_")}
        info["structure"] = kind
        return System(
            positions=np.frombuffer(row["t_pos"], "<f8").reshape(n, 3).copy(),
            species=np.frombuffer(row["t_spc"], "<i4").copy(),
            species_names=tuple(meta["species_names"]),
            box=Box(cell[:3].copy(), cell[3:].copy()),
            images=np.frombuffer(row["t_img"], "<i8").reshape(n, 3).copy(),
            info=info,
        )


@dataclass
class Combined:
    """Samples of several library files taken together (:func:`query_many`).

    Attributes
    ----------
    samples : list of Sample
        Each ``(build, chain)`` once, from the first file (in the order given) holding it;
        ``Sample.path`` names that file. Copies whose metadata differ are all kept (see
        ``conflicts``).
    copies : dict
        ``{(build, chain): [paths]}`` of every sample found in more than one file with the
        same result metadata (shown once).
    conflicts : list of (Sample, Sample)
        Pairs of samples of one ``(build, chain)`` whose results differ (a sample kept and
        the copy that disagrees with it).
    matched : dict
        ``{path: number of samples of that file matching the filters}``.
    """

    samples: list
    copies: dict
    conflicts: list
    matched: dict


def query_many(libraries: list[Library], limit: int | None = None, **filters) -> Combined:
    """:meth:`Library.query` over several files, each ``(build, chain)`` once.

    A sample is identified by its build fingerprint and chain, which are the same in every
    file holding it (a shard and the library it was merged into); ids are per file. Two
    copies are the same sample when their metadata agree except for
    :data:`PROVENANCE_COLUMNS` (``swapmc library merge`` also compares the structures).

    Parameters
    ----------
    libraries : list of Library
        Open libraries, in the order their samples are listed.
    limit : int, optional
        At most this many samples in all.
    **filters
        As for :meth:`Library.query`.
    """
    samples, copies, conflicts, first, matched = [], {}, [], {}, {}

    def result(meta):
        return {k: v for k, v in meta.items() if k not in PROVENANCE_COLUMNS and k != "id"}

    for lib in libraries:
        found = lib.query(**filters)
        matched[lib.path] = len(found)
        for sample in found:
            key = (sample.meta["build"], sample.meta["chain"])
            kept = first.get(key)
            if kept is None:
                first[key] = sample
                samples.append(sample)
            elif result(kept.meta) == result(sample.meta):
                copies.setdefault(key, [kept.path]).append(sample.path)
            else:
                conflicts.append((kept, sample))
                samples.append(sample)
    if limit is not None:
        samples = samples[:int(limit)]
    return Combined(samples, copies, conflicts, matched)
