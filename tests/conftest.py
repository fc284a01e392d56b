import numpy as np
import pytest

from swapmc import Box, System
from swapmc.build import composition_counts, random_configuration
from swapmc.models import load_preset


@pytest.fixture(scope="session")
def ka2():
    return load_preset("ka2-x10")


@pytest.fixture(scope="session")
def ka():
    return load_preset("ka")


@pytest.fixture
def liquid_factory():
    """Random dense configuration of a preset's model (not equilibrated)."""

    def make(preset, n=200, density=1.2, seed=0, min_distance=0.75):
        counts = composition_counts(preset.composition, n, preset.model.species)
        return random_configuration(
            counts, preset.model.species, density, seed=seed, min_distance=min_distance
        )

    return make


def near_boundary_system(species_names, counts, length, seed, margin=0.5, min_distance=0.8):
    """Particles crowded near the faces of a cubic box (no two closer than min_distance),
    to exercise wrapping and image bookkeeping."""
    rng = np.random.default_rng(seed)
    n = int(sum(counts))
    pos = np.empty((0, 3))
    while len(pos) < n:
        p = rng.random(3) * length
        face = rng.integers(3)
        p[face] = rng.random() * margin if rng.random() < 0.5 else length - rng.random() * margin
        d = pos - p
        d -= length * np.round(d / length)
        if len(pos) == 0 or np.min((d**2).sum(axis=1)) > min_distance**2:
            pos = np.vstack([pos, p])
    species = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return System(pos, species, species_names, Box.cube(length))
