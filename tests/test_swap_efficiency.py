"""scripts/swap_efficiency.py: identity-change counting, relabelling, error propagation, and
the --quick study end to end."""

import importlib.util
import json
import math
import os
import sys

import numpy as np
import pytest

from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "swap_efficiency.py")


@pytest.fixture(scope="module")
def se():
    spec = importlib.util.spec_from_file_location("swap_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules.
    sys.modules["swap_efficiency"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("swap_efficiency", None)


def _liquid(preset, n=200, seed=3):
    counts = composition_counts(preset.composition, n, preset.model.species)
    return random_configuration(counts, preset.model.species, preset.density, seed=seed,
                                min_distance=0.75)


def test_identity_changes_equal_an_independent_count(se, ka2):
    """2 x accepted swaps (from the sampler's counters) equals the number of particles whose
    species differs between consecutive user-order snapshots, attempt by attempt."""
    moves = MoveSettings(p_swap=0.5, swap_classes=[["A", "C"], ["B", "C"]],
                         class_weights=[1.0, 2.0])
    mc = MonteCarlo(_liquid(ka2), ka2.model, 1.0, moves=moves, seed=5)
    mc.equilibrate(50)  # also crosses spatial re-sorts and energy checks
    before = mc.counts.copy()
    species = mc.system().species
    independent = 0
    for _ in range(3000):
        mc.attempts(1)
        now = mc.system().species
        independent += int(np.count_nonzero(now != species))
        species = now
    counted = se.identity_changes(before, mc.counts)
    assert independent > 20  # enough accepted swaps for the comparison to mean something
    assert counted == independent
    # A wrong factor (1 x accepted swaps) would be caught.
    assert counted // 2 != independent


def test_identity_changes_across_spatial_resorts(se, ka2):
    """The same equality when the sampler renumbers its particles internally in between
    (spatial re-sorts), so the user-order snapshots really follow the same particles."""
    moves = MoveSettings(p_swap=0.5, swap_classes=[["A", "C"], ["B", "C"]])
    mc = MonteCarlo(_liquid(ka2, seed=9), ka2.model, 1.0, moves=moves, seed=6)
    mc.equilibrate(20)
    before = mc.counts.copy()
    species = mc.system().species
    independent = 0
    for k in range(2000):
        if k % 200 == 0:
            mc.spatial_sort()
        mc.attempts(1)
        now = mc.system().species
        independent += int(np.count_nonzero(now != species))
        species = now
    assert independent > 20
    assert se.identity_changes(before, mc.counts) == independent


def test_changes_per_tau_and_ratio(se):
    value, err = se.changes_per_particle_per_tau(1000, 500, 200, 4000.0, 400.0)
    assert value == pytest.approx(1000 / (500 * 200) * 4000.0)
    assert err == pytest.approx(value * 0.1)
    r, dr = se.ratio(2.0, 0.2, 4.0, 0.3)
    assert r == pytest.approx(0.5)
    assert dr == pytest.approx(0.5 * math.hypot(0.1, 0.075))


@pytest.mark.parametrize("fraction, replaces", [(0.05, "A"), (0.20, "A"), (0.10, "B"),
                                                (0.10, "both"), (0.01, "A")])
def test_transmute_reaches_counts_along_size_order(se, fraction, replaces):
    """Relabelling reaches the target counts and only ever changes A <-> C or B <-> C."""
    ref = load_preset("ka2-x10")
    system = _liquid(ref, n=500, seed=1)
    target_preset = load_preset("ka2-x10", {"dopant": {"fraction": fraction,
                                                       "replaces": replaces}})
    target = composition_counts(target_preset.composition, 500, target_preset.model.species)
    out = se.transmute(system, target, np.random.default_rng(0))
    np.testing.assert_array_equal(out.counts, target)
    np.testing.assert_array_equal(out.positions, system.positions)
    names = system.species_names
    a, b = names.index("A"), names.index("B")
    changed = out.species != system.species
    pairs = {(int(x), int(y)) for x, y in zip(system.species[changed], out.species[changed])}
    assert (a, b) not in pairs and (b, a) not in pairs
    # Each particle is relabelled at most once, along the shortest A - C - B path.
    assert np.count_nonzero(changed) <= int(np.abs(np.asarray(target) - system.counts).sum())


def test_tau_guess_interpolates(se):
    assert se.tau_guess(0.45) == pytest.approx(se.TAU_GUESS[0.45])
    assert se.TAU_GUESS[0.5] < se.tau_guess(0.47) < se.TAU_GUESS[0.45]


def test_quick_run_end_to_end(se, tmp_path, capsys):
    """--quick runs the whole pipeline: reference chain, shared-state point, relabelled
    composition, table, per-point files; a rerun reads the points back instead of
    recomputing them."""
    work = tmp_path / "work"
    assert se.main(["--quick", "--work", str(work)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("command: python scripts/swap_efficiency.py --quick")
    names = [p.name for p in se.quick_grid()]
    rows = [line for line in out.splitlines() if line.startswith("| ") and "T1.0" in line]
    assert [r.split("|")[1].strip() for r in rows] == names
    for name in names:
        with open(work / "points" / (name.replace(" ", "_") + ".json")) as fh:
            r = json.load(fh)
        assert r["n"] == 200
        assert math.isfinite(r["tau"]) and r["tau"] > 0
        assert math.isfinite(r["tau_err"]) and r["groups"] >= 2
        assert r["prod_sweeps"] >= 6 * r["tau"]
        assert r["eq_over_tau"] > 0
        assert r["identity_changes"] == 2 * r["swap_accepted"] > 0
        assert r["changes_per_particle_per_tau"] == pytest.approx(
            r["identity_changes"] / (r["n"] * r["prod_sweeps"]) * r["tau"])
        assert r["tau_cpu"] == pytest.approx(r["tau"] * r["cpu_per_sweep"])
        assert sum(r["counts"]) == 200
    both = json.load(open(work / "points" / "C_from_both_T1.0.json"))
    assert both["counts"] == [144, 36, 20]
    only_ac = json.load(open(work / "points" / "only_A-C_T1.0.json"))
    assert only_ac["class_counts"][1] == [0, 0]  # weight 0: B-C never attempted
    # Rerun: everything is read back, nothing is sampled again.
    assert se.main(["--quick", "--work", str(work)]) == 0
    again = capsys.readouterr().out
    assert again.count("read from") == len(names)
    assert [line for line in again.splitlines() if line.startswith("| ")] == [
        line for line in out.splitlines() if line.startswith("| ")]
