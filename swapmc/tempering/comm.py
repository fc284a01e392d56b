"""Communicators: one process (SerialComm) or MPI ranks (MPIComm), same interface.

This is the only module of swapmc that imports mpi4py, and it does so inside
:class:`MPIComm` so that ``import swapmc`` (and the serial twin) never needs MPI.

Only small Python objects cross the network: a few scalars per replica each round, the
ladder when it is re-optimised, and configurations when they are written out.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

from .._toml import ConfigError

__all__ = [
    "CollectiveError",
    "MPIComm",
    "SerialComm",
    "abort_on_error",
    "agree",
    "block_range",
    "get_comm",
    "launched_by_mpi",
]

# Variables that MPI launchers put in each rank's environment (MPICH/Hydra and Intel MPI:
# PMI_*; PMIx-based launchers incl. Open MPI 5 and srun --mpi=pmix: PMIX_RANK; Open MPI:
# OMPI_COMM_WORLD_*; MVAPICH: MV2_*). A batch shell alone sets none of them.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                       "MV2_COMM_WORLD_SIZE")


class CollectiveError(ConfigError):
    """An error every rank raised together (found before any work, agreed via allgather).

    Unlike other exceptions it does not abort the job: all ranks leave cleanly and rank 0
    alone reports it.
    """


def launched_by_mpi(environ=None) -> bool:
    """True when this process looks like a rank started by ``mpiexec``/``srun``."""
    env = os.environ if environ is None else environ
    return any(k in env for k in _LAUNCHER_VARIABLES)


def block_range(n_items: int, size: int, rank: int) -> range:
    """Items of ``rank`` when ``n_items`` are split in contiguous blocks over ``size`` ranks.

    Block sizes differ by at most one; ranks 0..size-1 in order hold items 0..n_items-1.
    """
    return range(rank * n_items // size, (rank + 1) * n_items // size)


class SerialComm:
    """All replicas in one process: the communicator of a single rank.

    Collective calls return what an MPI communicator of size 1 would return.
    """

    rank = 0
    size = 1
    is_mpi = False
    name = "serial"

    def allgather(self, obj) -> list:
        return [obj]

    def gather(self, obj, root: int = 0) -> list:
        return [obj]

    def bcast(self, obj, root: int = 0):
        return obj

    def barrier(self) -> None:
        return None

    def abort(self, code: int = 1) -> None:
        sys.stderr.flush()
        raise SystemExit(code)


class MPIComm:
    """mpi4py's ``COMM_WORLD`` behind the :class:`SerialComm` interface.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Defaults to ``MPI.COMM_WORLD``.

    Raises
    ------
    ImportError
        When mpi4py is missing, with the two ways to install it.
    """

    is_mpi = True

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI
        except ImportError as err:
            raise ImportError(
                f"MPI parallel tempering needs mpi4py ({err}). On a laptop: "
                "pip install 'swapmc[mpich]' (MPICH wheel + mpi4py); on a cluster: load the "
                "site MPI module and pip install --no-binary=mpi4py mpi4py so that mpi4py is "
                "built against it"
            ) from None
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.name = "MPI (" + " ".join(MPI.Get_library_version().split()[:3]) + ")"

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def gather(self, obj, root: int = 0):
        return self.comm.gather(obj, root=root)

    def bcast(self, obj, root: int = 0):
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Abort on COMM_WORLD: the launcher then kills every rank, including those blocked
        # in a collective call waiting for this one.
        self._mpi.COMM_WORLD.Abort(code)


def get_comm(mode: str = "auto"):
    """The communicator for this process.

    Parameters
    ----------
    mode : {"auto", "on", "off"}
        ``"off"``: :class:`SerialComm`. ``"on"``: :class:`MPIComm` (mpi4py required).
        ``"auto"``: :class:`MPIComm` when an MPI launcher started this process
        (:func:`launched_by_mpi`), else :class:`SerialComm`. In auto mode under a launcher,
        missing mpi4py is an error rather than a silent fallback, because K independent
        serial copies would overwrite each other's files.
    """
    if mode == "off":
        return SerialComm()
    if mode == "on" or (mode == "auto" and launched_by_mpi()):
        return MPIComm()
    if mode != "auto":
        raise ValueError(f"MPI mode must be 'auto', 'on' or 'off', got {mode!r}")
    return SerialComm()


# Errors that mean "the input is wrong" rather than "the code is wrong".
_USER_ERRORS = (ValueError, KeyError, OSError, NotImplementedError, ImportError)


def agree(comm, fn, *args, **kwargs):
    """Call ``fn`` on every rank and make all ranks fail together if any rank failed.

    Use it for checks before any work (config, ladder, restart files): each rank's error
    message is allgathered, so no rank proceeds into a collective call that another rank
    will never reach.

    Returns
    -------
    Whatever ``fn`` returned on this rank.

    Raises
    ------
    CollectiveError
        On every rank, with the first failing rank's message (prefixed by ``rank k:`` when
        more than one rank runs and not all failed alike).
    """
    result, message = None, None
    try:
        result = fn(*args, **kwargs)
    except _USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    messages = comm.allgather(message)
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        rank, text = failed[0]
        if comm.size > 1 and (len({m for _, m in failed}) > 1 or len(failed) < comm.size):
            text = f"rank {rank}: {text}"
        raise CollectiveError(text)
    return result


@contextmanager
def abort_on_error(comm, stream=None):
    """End the whole MPI job when this rank raises.

    Inside the block, an exception on one rank would leave the others blocked forever in
    their next collective call. With more than one rank this prints ``rank k: <error>``
    (with the traceback for unexpected errors) and calls ``MPI_Abort``; a
    :class:`CollectiveError` (raised on all ranks alike) and any exception of a serial run
    propagate unchanged.
    """
    try:
        yield
    except CollectiveError:
        raise
    except BaseException as err:
        if comm.size <= 1:
            raise
        out = sys.stderr if stream is None else stream
        if not isinstance(err, _USER_ERRORS):
            traceback.print_exc(file=out)
        out.write(f"rank {comm.rank}: {type(err).__name__}: {err}\n")
        out.flush()
        comm.abort(1)
        raise  # only reached with a communicator whose abort returns (tests)
