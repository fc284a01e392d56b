"""Bad input gets a clear message saying what is wrong and where."""

import numpy as np
import pytest

from swapmc import Box, ConfigurationError, System
from swapmc._toml import ConfigError
from swapmc.build import composition_counts
from swapmc.cli import main
from swapmc.config import resolve
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import ModelError, load_preset


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(KeyError, match="unknown preset 'kaa'.*ka2-x10"):
        load_preset("kaa")


def test_cli_reports_errors_without_traceback(capsys):
    assert main(["run", "no-such-preset", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "unknown preset 'no-such-preset'" in err and "Traceback" not in err


def test_malformed_toml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('preset = "ka"\n[run]\nseed = = 3\n')
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML.*line 3"):
        resolve(str(p))


def test_unknown_key_is_rejected(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('preset = "ka"\n[run]\nsweepz = 3\n')
    with pytest.raises(ConfigError, match=r"c.toml:3: unknown key 'sweepz'.* in \[run\]"):
        resolve(str(p))


def test_impossible_compositions():
    p = load_preset("ka2-x01")
    with pytest.raises(ConfigurationError, match="N = 50 gives no particle of species"):
        composition_counts(p.composition, 50, p.model.species)
    with pytest.raises(ModelError, match="exceeds the fraction"):
        load_preset("ka", {"dopant": {"name": "C", "between": ["A", "B"], "fraction": 0.3,
                                      "replaces": "B"}})
    with pytest.raises(ModelError, match="sum to"):
        load_preset("ka", {"composition": {"A": 0.7, "B": 0.2}})


def test_overlapping_particles_are_named(ka):
    rng = np.random.default_rng(0)
    pos = rng.random((200, 3)) * 5.5
    pos[17] = pos[42] + 0.01
    s = System(pos % 5.5, np.zeros(200, np.int32), ("A", "B"), Box.cube(5.5))
    with pytest.raises(ConfigurationError, match="particles 17 and 42 overlap"):
        MonteCarlo(s, ka.model, 1.0)


@pytest.mark.parametrize(
    "pos,species,match",
    [
        (np.zeros((4, 2)), np.zeros(4), r"positions must have shape \(N, 3\)"),
        (np.full((4, 3), np.nan), np.zeros(4), "particle 0 has a non-finite position"),
        (np.array([[1.0, 1, 1], [9, 1, 1]]), np.zeros(2), "particle 1 .* is outside the box"),
        (np.ones((3, 3)), np.zeros(2), r"species must have shape \(3,\)"),
        (np.ones((2, 3)), np.array([0, 5]), "particle 1 has species index 5"),
    ],
)
def test_system_validation(pos, species, match):
    with pytest.raises(ConfigurationError, match=match):
        System(pos, species, ("A", "B"), Box.cube(6.0))


def test_box_too_small_for_cutoff(ka):
    rng = np.random.default_rng(1)
    s = System(rng.random((20, 3)) * 4.0, np.zeros(20, np.int32), ("A", "B"), Box.cube(4.0))
    with pytest.raises(ConfigurationError, match="shorter than twice the largest cut-off"):
        MonteCarlo(s, ka.model, 1.0)


def test_swap_class_errors(ka, liquid_factory):
    s = liquid_factory(ka, n=200)
    with pytest.raises(ConfigurationError, match="unknown species 'C'"):
        MonteCarlo(s, ka.model, 1.0, moves=MoveSettings(p_swap=0.1, swap_classes=[("A", "C")]))
    with pytest.raises(ConfigError, match="needs at least one swap class"):
        MoveSettings(p_swap=0.1)


def test_species_missing_from_model(ka):
    s = System(np.array([[1.0, 1, 1]]), [0], ("X",), Box.cube(6.0))
    with pytest.raises(ConfigurationError, match=r"species \['X'\] that the model"):
        MonteCarlo(s, ka.model, 1.0)


def test_initial_configurations_reproducible_from_seed(ka2):
    from swapmc.build import lattice_configuration, random_configuration

    counts = composition_counts(ka2.composition, 300, ka2.model.species)
    for make in (random_configuration, lattice_configuration):
        a = make(counts, ka2.model.species, 1.2, 5)
        b = make(counts, ka2.model.species, 1.2, 5)
        c = make(counts, ka2.model.species, 1.2, 6)
        assert a.same_state(b) and not a.same_state(c)
        assert np.array_equal(a.counts, counts)
