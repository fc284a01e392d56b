"""The replica-exchange engine: sweeps this rank's replicas, gathers scalars, exchanges labels.

Every rank holds the full label permutation, the ladder, the per-temperature step sizes,
the exchange random stream and the statistics, and updates them identically from the
gathered energies. No decision is ever broadcast: the same inputs and the same stream give
the same decisions on every rank, and on a single process running all replicas.

A *replica* is any object with this protocol (:class:`swapmc.mc.MonteCarlo` has it):

``temperature`` (settable float), ``delta`` and ``lnv_step`` (settable step sizes),
``counts`` (ndarray (3, 2) of attempts/acceptances per move type), ``energy`` and
``volume`` (floats), ``sweep(n)`` and ``tune(block_counts)``.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass

import numpy as np

from .exchange import attempt_exchanges, labels_of, pair_starts
from .ladder import check_ladder
from .statistics import ExchangeStatistics

__all__ = ["ReplicaExchange", "RoundSample"]


class RankDisagreementError(RuntimeError):
    """Ranks hold different labels or ladders: their replicated state diverged."""


@dataclass
class RoundSample:
    """What one round's sweeps produced, for every replica (identical on all ranks).

    Attributes
    ----------
    round_index : int
    energies : ndarray, shape (M,)
        Potential energy of each replica (energy units), indexed by replica.
    volumes : ndarray, shape (M,)
        Volume of each replica (length^3).
    perm : ndarray, shape (M,)
        Slot -> replica map under which these values were sampled.
    labels : ndarray, shape (M,)
        Replica -> slot map (inverse of ``perm``).
    """

    round_index: int
    energies: np.ndarray
    volumes: np.ndarray
    perm: np.ndarray
    labels: np.ndarray

    def by_temperature(self, values: np.ndarray) -> np.ndarray:
        """Demultiplex a per-replica array (M,) into per-temperature order (M,)."""
        return np.asarray(values)[self.perm]


class ReplicaExchange:
    """Parallel tempering over the replicas of all ranks.

    Parameters
    ----------
    replicas : dict of int to replica
        This rank's replicas keyed by their global index 0..M-1.
    n_replicas : int
        M, the number of temperatures and of replicas over all ranks.
    ladder : array_like, shape (M,)
        Temperatures T_0 < ... < T_{M-1} (model temperature unit).
    kB : float
        Boltzmann constant (energy per temperature unit).
    pressure : float or None
        Imposed pressure in internal units (energy / length^3) for isobaric replicas.
    comm : SerialComm or MPIComm
    rng : numpy.random.Generator
        The exchange stream; every rank must pass a generator in the same state.

    Notes
    -----
    Step sizes belong to temperatures, not to replicas: a replica that moves to slot t
    takes slot t's step sizes. During equilibration each replica tunes the step sizes of
    the slot it occupies from that round's acceptance, and the result is gathered with the
    energies, so tuning costs no extra communication.
    """

    def __init__(self, replicas: dict, n_replicas: int, ladder, kB: float, pressure, comm,
                 rng: np.random.Generator):
        self.replicas = dict(sorted(replicas.items()))
        self.m = int(n_replicas)
        self.ladder = check_ladder(ladder)
        if self.ladder.size != self.m:
            raise ValueError(f"a ladder of {self.ladder.size} temperatures for {self.m} replicas")
        self.kB = float(kB)
        self.pressure = None if pressure is None else float(pressure)
        self.comm = comm
        self.rng = rng
        self.perm = np.arange(self.m, dtype=np.int64)
        self.labels = np.arange(self.m, dtype=np.int64)
        self.steps = np.zeros((self.m, 2))
        self.round_index = 0
        self.stats = ExchangeStatistics(self.m)
        # Wall seconds of sweeping and of the allgather (which includes waiting for slower
        # ranks), and CPU seconds of sweeping (insensitive to other jobs on the machine).
        self.timing = {"sweep": 0.0, "sweep_cpu": 0.0, "communication": 0.0, "rounds": 0}

    # ----------------------------------------------------------- helpers
    @property
    def betas(self) -> np.ndarray:
        """Inverse temperature of each slot, shape (M,) (1 / energy)."""
        return 1.0 / (self.kB * self.ladder)

    def apply_labels(self) -> None:
        """Give each local replica the temperature and step sizes of its slot."""
        for r, rep in self.replicas.items():
            t = self.labels[r]
            rep.temperature = float(self.ladder[t])
            rep.delta = float(self.steps[t, 0])
            rep.lnv_step = float(self.steps[t, 1])

    def steps_from_replicas(self) -> None:
        """Collective: take each slot's step sizes from the replica occupying it."""
        local = [(r, rep.delta, rep.lnv_step) for r, rep in self.replicas.items()]
        for part in self.comm.allgather(local):
            for r, delta, lnv in part:
                self.steps[self.labels[r]] = (delta, lnv)
        self.apply_labels()

    def set_ladder(self, ladder) -> None:
        """Replace the temperatures (same M); the replicas keep their slots."""
        new = check_ladder(ladder)
        if new.shape != self.ladder.shape:
            raise ValueError("a new ladder must have the same number of temperatures")
        self.ladder = new
        self.apply_labels()

    def _checksum(self) -> int:
        # Replicated state must agree bit for bit across ranks; a CRC of it rides along with
        # the energies each round (no extra message) and catches any divergence at once.
        return zlib.crc32(self.perm.tobytes() + self.ladder.tobytes() + self.steps.tobytes()
                          + np.int64(self.round_index).tobytes())

    # ------------------------------------------------------------ rounds
    def sample(self, n_sweeps: int, tune: bool = False) -> RoundSample:
        """Collective: run ``n_sweeps`` sweeps on every local replica and gather the results.

        With ``tune`` (equilibration only) each replica then adapts its step sizes to this
        round's acceptance and the tuned values become its slot's step sizes.
        """
        t0, c0 = time.perf_counter(), time.process_time()
        local = []
        for r, rep in self.replicas.items():
            before = rep.counts.copy() if tune else None
            rep.sweep(n_sweeps)
            if tune:
                rep.tune(rep.counts - before)
            local.append((r, rep.energy, rep.volume, rep.delta, rep.lnv_step))
        t1 = time.perf_counter()
        self.timing["sweep_cpu"] += time.process_time() - c0
        parts = self.comm.allgather((self._checksum(), local))
        self.timing["sweep"] += t1 - t0
        self.timing["communication"] += time.perf_counter() - t1
        self.timing["rounds"] += 1
        sums = {c for c, _ in parts}
        if len(sums) != 1:
            raise RankDisagreementError(
                f"ranks disagree on the replicated tempering state at round "
                f"{self.round_index} (checksums {[c for c, _ in parts]}); this happens only if "
                "ranks computed different floating-point results (heterogeneous nodes?)"
            )
        energies = np.empty(self.m)
        volumes = np.empty(self.m)
        seen = np.zeros(self.m, bool)
        for _, part in parts:
            for r, u, v, delta, lnv in part:
                energies[r], volumes[r] = u, v
                seen[r] = True
                if tune:
                    self.steps[self.labels[r]] = (delta, lnv)
        if not seen.all():
            raise RuntimeError(f"replicas {np.flatnonzero(~seen).tolist()} are on no rank")
        self.stats.record_walk(self.labels, self.round_index)
        return RoundSample(self.round_index, energies, volumes, self.perm.copy(),
                           self.labels.copy())

    def exchange(self, sample: RoundSample) -> tuple[np.ndarray, np.ndarray]:
        """Try this round's neighbour exchanges (same decision on every rank) and advance
        the round counter.

        Returns
        -------
        starts : ndarray, shape (P,), int64
            Lower slots of the pairs tried.
        accepted : ndarray, shape (P,), bool
        """
        n_pairs = pair_starts(self.m, self.round_index).size
        uniforms = self.rng.random(n_pairs)
        new, starts, accepted = attempt_exchanges(
            self.perm, self.betas, sample.energies, sample.volumes, self.pressure,
            self.round_index, uniforms)
        self.perm = new
        self.labels = labels_of(new)
        self.stats.record_exchanges(starts, accepted)
        self.round_index += 1
        self.apply_labels()
        return starts, accepted

    # ------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """The replicated state (identical on every rank): arrays and a JSON header."""
        header = {"round_index": self.round_index, "rng": self.rng.bit_generator.state,
                  "n_replicas": self.m}
        out = {"pt_header": json.dumps(header), "pt_perm": self.perm.copy(),
               "pt_ladder": self.ladder.copy(), "pt_steps": self.steps.copy()}
        out.update({"pt_stats_" + k: v for k, v in self.stats.state_dict().items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        header = json.loads(str(state["pt_header"]))
        if header["n_replicas"] != self.m:
            raise ValueError(f"checkpoint has {header['n_replicas']} replicas, this run {self.m}")
        perm = np.asarray(state["pt_perm"], dtype=np.int64)
        if sorted(perm.tolist()) != list(range(self.m)):
            raise ValueError(f"checkpoint labels {perm.tolist()} are not a permutation")
        self.perm = perm
        self.labels = labels_of(perm)
        self.ladder = check_ladder(state["pt_ladder"], "checkpoint ladder")
        self.steps = np.asarray(state["pt_steps"], dtype=np.float64).copy()
        self.round_index = int(header["round_index"])
        self.rng.bit_generator.state = header["rng"]
        self.stats.load_state_dict({k[len("pt_stats_"):]: v for k, v in state.items()
                                    if k.startswith("pt_stats_")})
        self.apply_labels()
