"""Exclusive locks on output directories.

Two processes writing one output directory interleave its append-only logs and overwrite
each other's checkpoints, and both would exit 0. A run therefore holds an advisory
``flock`` on ``<directory>/.swapmc.lock`` while it writes there. The kernel releases the
lock when the holder exits for any reason (including SIGKILL), so a lock left by a killed
process never blocks a rerun; the file itself stays and only records who held it last.

File systems without working locks (some NFS mounts) make ``flock`` fail with ENOLCK or
EOPNOTSUPP; the run then goes on with a warning on stderr, since refusing would make
swapmc unusable there, and concurrent runs in one directory are not detected.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time

try:  # POSIX only; on other platforms directories are not locked (see DirectoryLock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["DirectoryBusyError", "DirectoryLock", "LOCK_NAME"]

LOCK_NAME = ".swapmc.lock"


class DirectoryBusyError(ValueError):
    """Another live process holds the lock of an output directory."""


class DirectoryLock:
    """Hold an exclusive lock on a directory while writing in it (a context manager).

    Parameters
    ----------
    directory : str
        Output directory (created if missing).
    what : str
        What the holder is doing, recorded in the lock file and quoted to a second process
        (e.g. ``"swapmc run"``).
    """

    def __init__(self, directory: str, what: str = "swapmc"):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock or raise :class:`DirectoryBusyError` naming the holder."""
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _describe_holder(fd)
                os.close(fd)
                raise DirectoryBusyError(
                    f"output directory {self.directory} is in use by {holder}; wait for that "
                    "process to finish (or stop it), or choose another output directory"
                ) from None
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                print(f"warning: {self.directory}: the file system does not support locks; "
                      "a second process writing this directory would not be detected",
                      file=sys.stderr)
                self._fd = fd
                return self
            os.close(fd)
            raise
        record = {"what": self.what, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays; see the module docstring)."""
        if self._fd is None:
            return
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError:
                pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    """'swapmc run (pid 123 on host h since ...)' from the lock file, or a generic text."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return (f"{data['what']} (pid {data['pid']} on host {data['host']} since "
                f"{data['since']})")
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        return "another swapmc process"
