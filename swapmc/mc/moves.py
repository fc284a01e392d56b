"""Move settings: what the Monte Carlo sampler may propose and how often."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .._toml import ConfigError, unknown_keys_message

# Attempt orders (see MoveSettings.order); the first is the default.
ORDERS = ("random", "sequential")


def _number(name: str, value, low: float, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a finite real number in the interval; NaN
    must be caught explicitly because every comparison with it is False."""
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))
    if ok:
        ok = (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
    if not ok:
        interval = ("(" if low_open else "[") + f"{low:g}, " + (
            "inf)" if high is None else f"{high:g}" + (")" if high_open else "]"))
        raise ConfigError(f"{name} must be a finite number in {interval}, got {value!r}")


@dataclass
class MoveSettings:
    """Move mix and step sizes.

    Parameters
    ----------
    p_swap : float
        Probability that an attempt is a swap (e.g. 0.2 for doped models, Ninarello,
        Berthier & Coslovich, PRX 7, 021039 (2017)).
    swap_classes : list of (str, str)
        Allowed species pairs for swaps, e.g. ``[("A", "C"), ("B", "C")]``.
    class_weights : list of float, optional
        Probability of choosing each class (normalised); equal by default. A class is chosen
        first, then one particle of each of its species uniformly: the proposal is symmetric
        because swaps never change species counts.
    displacement : float
        Initial maximum displacement per Cartesian component (length units); tuned only by
        :meth:`MonteCarlo.equilibrate`.
    p_volume : float or None
        Per-attempt probability of a volume move; ``None`` means 1/N (about one per sweep)
        when a pressure is imposed and 0 otherwise.
    lnv_step : float
        Initial maximum change of ln V per volume move.
    target_acceptance : float
        Acceptance rate the equilibration phase tunes step sizes toward.
    order : {"random", "sequential"}
        Which particle a displacement moves. ``"random"``: one drawn uniformly at each
        attempt (detailed balance move by move). ``"sequential"``: each sweep gives every
        particle one turn in the sampler's storage order, a spatial (Morton) order, so that
        consecutive attempts touch neighbouring memory and the cost per attempt stays flat
        in N; the turn is a displacement of that particle, or a swap or volume move drawn
        as in random order. A sweep then satisfies balance, not detailed balance (see
        ``kernels/mc_common.py``). The storage order is fixed when the sampler is built and
        kept for the whole run, across checkpoints.
    threads : int
        1 (default): the serial attempt loop. K >= 2: the domain-decomposed sweep on K
        shared-memory threads (``kernels/mc_domains.py``): a checkerboard of randomly shifted
        domains, displacements that would leave their domain rejected, swaps within a
        domain, each particle one turn per sweep. Its chain is the same for every K >= 2,
        bit for bit, and differs from the serial one. Needs constant volume and a box of at
        least 4 domain edges in one dimension (domain edge >= r_c for LJ, 2 r_c for EAM:
        KA2 N >= 1201, Cu-Zr N >= ~1e4 at liquid density). Under ``mpiexec`` it applies per
        process: one process per node, threads = cores.
    """

    p_swap: float = 0.0
    swap_classes: list = field(default_factory=list)
    class_weights: list | None = None
    displacement: float = 0.1
    p_volume: float | None = None
    lnv_step: float = 0.01
    target_acceptance: float = 0.4
    order: str = "random"
    threads: int = 1

    def __post_init__(self):
        if not isinstance(self.swap_classes, (list, tuple)) or not all(
                isinstance(c, (list, tuple)) for c in self.swap_classes):
            raise ConfigError("swap_classes must be a list of species pairs, e.g. "
                              f"[['A', 'C'], ['B', 'C']], got {self.swap_classes!r}")
        self.swap_classes = [tuple(c) for c in self.swap_classes]
        for c in self.swap_classes:
            if len(c) != 2 or c[0] == c[1]:
                raise ConfigError(f"a swap class is a pair of two different species, got {c}")
        _number("p_swap", self.p_swap, 0.0, 1.0)
        if self.p_swap > 0 and not self.swap_classes:
            raise ConfigError("p_swap > 0 needs at least one swap class, e.g. [['A', 'C']]")
        if self.class_weights is not None:
            try:
                w = np.asarray(self.class_weights, dtype=float)
            except (TypeError, ValueError):
                w = np.full(1, np.nan)
            if (w.shape != (len(self.swap_classes),) or not np.all(np.isfinite(w))
                    or np.any(w < 0) or w.sum() <= 0):
                raise ConfigError(
                    f"class_weights must give one finite non-negative weight per swap class "
                    f"({len(self.swap_classes)}), got {self.class_weights}"
                )
        _number("displacement", self.displacement, 0.0, low_open=True)
        _number("lnv_step", self.lnv_step, 0.0, low_open=True)
        if self.p_volume is not None:
            _number("p_volume", self.p_volume, 0.0, 1.0)
        _number("target_acceptance", self.target_acceptance, 0.0, 1.0, low_open=True,
                high_open=True)
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(map(repr, ORDERS))}, got "
                              f"{self.order!r}")
        if (isinstance(self.threads, bool) or not isinstance(self.threads, (int, np.integer))
                or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")
        self.threads = int(self.threads)

    @classmethod
    def from_dict(cls, d: dict) -> MoveSettings:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(unknown_keys_message(unknown, allowed, "[moves]"))
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["swap_classes"] = [list(c) for c in self.swap_classes]
        # The default order is left out, like unset options, so settings written before the
        # option existed read back the same.
        if d["order"] == "random":
            del d["order"]
        if d["threads"] == 1:
            del d["threads"]
        return {k: v for k, v in d.items() if v is not None}

    def class_cdf(self) -> np.ndarray:
        """Cumulative class-choice probabilities, shape (C,)."""
        n = len(self.swap_classes)
        if n == 0:
            return np.ones(1)
        w = np.ones(n) if self.class_weights is None else np.asarray(self.class_weights, float)
        cdf = np.cumsum(w / w.sum())
        cdf[-1] = 1.0
        return cdf
