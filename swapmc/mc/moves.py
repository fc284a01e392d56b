"""Move settings: what the Monte Carlo sampler may propose and how often."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .._toml import ConfigError


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
    """

    p_swap: float = 0.0
    swap_classes: list = field(default_factory=list)
    class_weights: list | None = None
    displacement: float = 0.1
    p_volume: float | None = None
    lnv_step: float = 0.01
    target_acceptance: float = 0.4

    def __post_init__(self):
        self.swap_classes = [tuple(c) for c in self.swap_classes]
        for c in self.swap_classes:
            if len(c) != 2 or c[0] == c[1]:
                raise ConfigError(f"a swap class is a pair of two different species, got {c}")
        if not 0.0 <= self.p_swap <= 1.0:
            raise ConfigError(f"p_swap must be in [0, 1], got {self.p_swap}")
        if self.p_swap > 0 and not self.swap_classes:
            raise ConfigError("p_swap > 0 needs at least one swap class, e.g. [['A', 'C']]")
        if self.class_weights is not None:
            w = np.asarray(self.class_weights, dtype=float)
            if w.shape != (len(self.swap_classes),) or np.any(w < 0) or w.sum() <= 0:
                raise ConfigError(
                    f"class_weights must give one non-negative weight per swap class "
                    f"({len(self.swap_classes)}), got {self.class_weights}"
                )
        if self.displacement <= 0:
            raise ConfigError(f"displacement must be positive, got {self.displacement}")
        if self.lnv_step <= 0:
            raise ConfigError(f"lnv_step must be positive, got {self.lnv_step}")
        if self.p_volume is not None and not 0.0 <= self.p_volume <= 1.0:
            raise ConfigError(f"p_volume must be in [0, 1], got {self.p_volume}")
        if not 0.0 < self.target_acceptance < 1.0:
            raise ConfigError(f"target_acceptance must be in (0, 1), got {self.target_acceptance}")

    @classmethod
    def from_dict(cls, d: dict) -> MoveSettings:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(f"unknown [moves] keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["swap_classes"] = [list(c) for c in self.swap_classes]
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
