"""Parallel tempering (replica exchange of temperature labels), serial or over MPI ranks.

Layers inside this package, bottom to top:

* :mod:`.ladder`, :mod:`.exchange`, :mod:`.statistics` -- pure functions and counters;
* :mod:`.comm` -- :class:`SerialComm` and :class:`MPIComm` (the only place that imports
  mpi4py, lazily);
* :mod:`.engine` -- :class:`ReplicaExchange`, sampler-agnostic rounds and exchanges;
* :mod:`.settings`, :mod:`.checkpoint`, :mod:`.output`, :mod:`.driver` -- the
  ``[tempering]`` config, multi-rank checkpoints, files, and the run loop;
* :mod:`.cli`, :mod:`.plot` -- ``swapmc temper`` and its figures.

Importing this package never imports mpi4py, and loads its submodules only when one of the
names below is used, so that registering the ``temper`` subcommand (:mod:`.cli`) keeps
``swapmc --help`` fast.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "ExchangeStatistics": "statistics",
    "blocking_error": "statistics",
    "MPIComm": "comm",
    "SerialComm": "comm",
    "get_comm": "comm",
    "TemperingResult": "driver",
    "TemperingRun": "driver",
    "temper": "driver",
    "ReplicaExchange": "engine",
    "RoundSample": "engine",
    "acceptance_probability": "exchange",
    "attempt_exchanges": "exchange",
    "log_acceptance": "exchange",
    "pair_starts": "exchange",
    "check_ladder": "ladder",
    "feedback_ladder": "ladder",
    "geometric_ladder": "ladder",
    "resolve": "settings",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
