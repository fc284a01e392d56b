"""Crash-safe file writing.

Long Monte Carlo and MD runs are killed by batch schedulers, out-of-memory killers and
time limits at arbitrary moments. Every output that a restart reads back must therefore be
either the old complete version or the new complete version, never half of each:

* whole files (checkpoints, LAMMPS data files, single-frame snapshots) are written with
  :func:`atomic_write`: the data goes to a temporary file in the same directory, is flushed
  to disk, and only then renamed onto the target. ``os.replace`` is atomic on POSIX and on
  Windows when source and target are on the same file system, which is why the temporary
  file lives next to the target rather than in ``/tmp``;
* a checkpoint can keep the version it replaces (``atomic_write(..., previous=...)``), so
  that a checkpoint found damaged on restart (a disk fault, a file cut short by a full
  disk) has an intact predecessor to fall back to;
* append-only files (trajectories, logs) cannot be replaced wholesale, so a restart
  remembers their size at the last checkpoint and cuts them back with
  :func:`truncate_file`, discarding frames written after the checkpoint (and any frame the
  kill interrupted half-way).
"""

from __future__ import annotations

import os
import secrets
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy as np

__all__ = ["DamagedFileError", "atomic_write", "fsync_directory", "read_npz", "truncate_file"]

_ALLOWED_MODES = ("w", "wt", "wb")


def fsync_directory(path: str | os.PathLike) -> None:
    """Flush a directory's entries (file creations, renames) to disk, best effort.

    After ``os.replace`` the new *contents* are on disk (the file was fsynced) but the
    rename itself lives in the directory, which on POSIX file systems needs its own fsync
    to survive a power loss. Platforms that cannot open directories (Windows) and file
    systems that refuse to fsync them are silently skipped: the rename is still atomic
    there, only its durability after a power cut is not guaranteed.

    Parameters
    ----------
    path : str or os.PathLike
        A directory.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temporary(directory: str, basename: str) -> tuple[str, int]:
    """Create a new, empty, uniquely named file next to the target.

    ``os.open`` with mode 0o666 lets the process umask decide the permissions, exactly as
    a plain ``open(path, "w")`` would; ``tempfile.mkstemp`` would force 0o600 and silently
    make every output file private.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        # A leading dot hides the temporary from casual ``ls`` and from glob patterns
        # such as ``*.xyz`` that a concurrent analysis script might be using.
        name = os.path.join(directory, f".{basename}.{secrets.token_hex(6)}.tmp")
        try:
            return name, os.open(name, flags, 0o666)
        except FileExistsError:
            continue


@contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    encoding: str | None = "utf-8",
    newline: str | None = None,
    previous: str | os.PathLike | None = None,
) -> Iterator[IO]:
    """Open a file for writing such that the target is replaced all at once or not at all.

    Inside the ``with`` block the caller writes to a temporary file in the target's
    directory. When the block ends normally the temporary file is flushed, fsynced and
    renamed onto ``path`` (``os.replace``), then the directory is fsynced. If the block
    raises, the temporary file is deleted and ``path`` is left exactly as it was. A process
    killed at any moment therefore leaves either the old file or the new one, plus at worst
    a stray ``.<name>.<random>.tmp`` file next to it.

    Parameters
    ----------
    path : str or os.PathLike
        Target file. If it is a symbolic link, the file it points to is replaced (as a
        plain ``open(path, "w")`` would write through the link). An existing target keeps
        its permission bits.
    mode : {"w", "wt", "wb"}
        Text or binary writing. Appending makes no sense for a whole-file replacement.
    encoding : str or None
        Text encoding; ignored in binary mode.
    newline : str or None
        Passed to :func:`open` in text mode; ``"\\n"`` gives identical files on all
        platforms.
    previous : str or os.PathLike, optional
        Keep the file being replaced under this name, replacing any older one there, so
        that a later reader can fall back to it if the new file
        turns out to be damaged. The order is: new contents flushed to the temporary file,
        then ``path`` renamed to ``previous``, then the temporary file renamed to ``path``.
        A kill at any moment therefore leaves at least one complete version: the old
        ``path`` (and old ``previous``) before the first rename, only ``previous`` (the
        old ``path``) between the two renames, and the new ``path`` plus the old one as
        ``previous`` after them. A reader must try ``path`` first and ``previous`` when
        ``path`` is missing or damaged. Only the base name is used: the previous version
        lives next to the target, since a rename cannot cross file systems.

    Yields
    ------
    file object
        The open temporary file.

    Raises
    ------
    ValueError
        For a mode other than ``"w"``, ``"wt"`` or ``"wb"``.

    Examples
    --------
    >>> with atomic_write("state.json") as f:  # doctest: +SKIP
    ...     json.dump(state, f)
    """
    if mode not in _ALLOWED_MODES:
        raise ValueError(f"atomic_write mode must be one of {_ALLOWED_MODES}, got {mode!r}")
    binary = "b" in mode
    # Resolve symlinks so that the rename replaces the real file, not the link, and so that
    # the temporary file is on the same file system as the real file (os.replace would
    # fail across devices).
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target) or os.curdir
    tmp, fd = _create_temporary(directory, os.path.basename(target))
    try:
        if os.path.exists(target):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        if binary:
            f = os.fdopen(fd, mode)
        else:
            f = os.fdopen(fd, mode, encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if previous is not None and os.path.exists(target):
            os.replace(target, os.path.join(directory, os.path.basename(os.fspath(previous))))
        os.replace(tmp, target)
    except BaseException:
        # BaseException, not Exception: a KeyboardInterrupt must not leave the temporary
        # file behind either. The target has not been touched at this point.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def truncate_file(path: str | os.PathLike, size: int) -> None:
    """Cut an append-only file back to ``size`` bytes and flush the change to disk.

    Used on restart to roll a trajectory or log back to its length at the checkpoint
    being resumed, so that frames written after that checkpoint (including a frame the
    kill interrupted half-way) are not duplicated or left corrupt.

    Parameters
    ----------
    path : str or os.PathLike
        An existing file.
    size : int
        New length in bytes, ``0 <= size <= current size``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``size`` is negative or larger than the file: growing a file would pad it with
        NUL bytes, which is never a valid rollback and means the checkpoint does not
        belong to this file.
    """
    size = int(size)
    current = os.path.getsize(path)
    if size < 0 or size > current:
        raise ValueError(
            f"cannot truncate {os.fspath(path)!s} to {size} bytes: the file has {current} "
            "bytes (a rollback can only shorten a file; does the checkpoint belong to it?)"
        )
    if size == current:
        return
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


class DamagedFileError(ValueError):
    """A file that should hold a complete checkpoint cannot be read back whole."""


def read_npz(path: str | os.PathLike) -> dict:
    """Read every array of an ``.npz`` file, verifying each one completely.

    Reading each member to its end makes :mod:`zipfile` compare its CRC-32, so a flipped bit
    anywhere in the data is caught here rather than resumed from.

    Parameters
    ----------
    path : str or os.PathLike
        An existing file written by ``np.savez``.

    Returns
    -------
    dict
        Member name -> array.

    Raises
    ------
    DamagedFileError
        For an empty, truncated or corrupt file; the message says what was found (without
        the path, which the caller adds).
    """
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise DamagedFileError(f"cannot be read ({err.strerror})") from None
    if size == 0:
        raise DamagedFileError("empty (0 bytes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    # MemoryError: a damaged array header can claim an absurd shape.
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            MemoryError) as err:
        text = " ".join(str(err).split()) or "no detail"
        raise DamagedFileError(f"truncated or corrupt ({type(err).__name__}: {text})") from None
