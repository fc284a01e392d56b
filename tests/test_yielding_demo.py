"""scripts/yielding_demo.py: the replication and image-overlap measures on known
configurations, and the --quick pipeline end to end (replicate, re-equilibrate, quench,
AQS through ``swapmc shear``, family tables and figures), including a resume after a
glass's shear output was lost."""

import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest

from swapmc import Box, System

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "yielding_demo.py")


@pytest.fixture(scope="module")
def yd():
    spec = importlib.util.spec_from_file_location("yielding_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["yielding_demo"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("yielding_demo", None)


def test_replicate_and_image_overlap(yd):
    """A 2x2x2 replica is periodic on the parent cell (overlap 1 at every replication
    vector); random points of the same density give the ideal-gas value; a replica whose
    copies were displaced independently by 1 sigma loses the overlap."""
    rng = np.random.default_rng(0)
    n0, length = 300, 6.0
    parent = System(rng.uniform(0, length, (n0, 3)), rng.integers(0, 2, n0), ("A", "B"),
                    Box.cube(length))
    big = yd.replicate(parent, (2, 2, 2))
    assert big.n == 8 * n0 and np.allclose(big.box.lengths, 2 * length)
    np.testing.assert_array_equal(big.species[n0:2 * n0], parent.species)
    np.testing.assert_allclose(big.positions[n0], parent.positions[0] + [0, 0, length])
    rep = yd.overlap_report(big, parent.box.lengths, (2, 2, 2), n_random=40)
    assert rep["image_min"] == 1.0 and len(rep["image_values"]) == 7
    # Uniform random points: the random-shift value is the ideal-gas one.
    assert rep["random_mean"] == pytest.approx(rep["ideal_gas"], abs=0.02)
    moved = System(np.mod(big.positions + rng.normal(0, 1.0, big.positions.shape),
                          2 * length), big.species, big.species_names, big.box)
    rep = yd.overlap_report(moved, parent.box.lengths, (2, 2, 2))
    assert rep["image_mean"] < rep["ideal_gas"] + 0.05
    m, e = yd.block_mean(np.arange(100.0), 10)
    assert m == 49.5 and e > 0


def test_quick_pipeline_and_resume(yd, tmp_path, capsys):
    work = str(tmp_path / "work")
    assert yd.main(["--quick", "--work", work]) == 0
    report = os.path.join(work, "report")
    text = open(os.path.join(report, "yielding_demo_quick_output.txt")).read()
    assert "3. Families" in text and "stable T=0.6 (2 of 2 glasses)" in text
    assert "poor T=1 (2 of 2 glasses)" in text
    for name in ("stress_strain", "d2min_maps", "localization"):
        assert os.path.getsize(os.path.join(report, f"yielding_quick_{name}.png")) > 10_000
    data = json.load(open(os.path.join(report, "yielding_demo_quick_output.json")))
    assert set(data["families"]) == {"stable T=0.6", "poor T=1"}
    for y in data["glasses"].values():
        assert y["max_strain"] == pytest.approx(0.03)
        assert 5 < y["modulus_hessian"] < 30  # KA2 inherent structures: G ~ 10-20
    eq = json.load(open(os.path.join(work, "stable-q0", "equilibration.json")))
    assert eq["overlap_before"]["image_min"] == 1.0
    assert eq["overlap_after"]["image_mean"] < 0.9
    # Resume: a glass whose shear output was lost is sheared again, nothing else reruns.
    shutil.rmtree(os.path.join(work, "poor-T1-1", "shear"))
    capsys.readouterr()
    assert yd.main(["--quick", "--work", work]) == 0
    log = capsys.readouterr().out
    assert "poor-T1-1: AQS" in log and "stable-q0: AQS" not in log
    assert "swap MC at T" not in log and ": E_IS/N =" not in log
