"""scripts/pt_deep.py: the batch-means and interpolation helpers on known data, and the
--quick pipeline end to end (a short ``swapmc temper`` run and its analysis)."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "pt_deep.py")


@pytest.fixture(scope="module")
def pt():
    spec = importlib.util.spec_from_file_location("pt_deep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_stats_and_interpolation(pt):
    """Independent Gaussian data: the halves' errors are sigma / sqrt(n/2) within the
    scatter of a 4-block estimate (factor 3, ~99 % for 3 degrees of freedom), and a step
    between the halves shows up as a large drift z; interpolation is exact on a line."""
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.5, 8000)
    st = pt.block_stats(x, 8)
    expected = 0.5 / math.sqrt(4000)
    assert expected / 3 < st["second_err"] < 3 * expected
    assert abs(st["second_half"] - 1.0) < 5 * expected
    step = np.concatenate([x[:4000], x[4000:] + 0.2])
    assert pt.block_stats(step, 8)["drift_z"] > 10
    ladder = np.array([0.3, 0.35, 0.4])
    v, e = pt.interpolate(ladder, 2.0 * ladder + 1.0, np.array([0.1, 0.1, 0.1]), 0.325)
    assert v == pytest.approx(1.65, abs=1e-14) and e == pytest.approx(0.1 / math.sqrt(2))


def test_count_passages_on_a_known_walk(pt):
    """Two replicas on 3 slots: replica 0 goes 0 -> 2 -> 0 -> 2 (3 passages, 1 trip);
    replica 1 starts at the top, goes down, up, down (3 passages, 1 trip: the first
    arrival at T_min starts it). Counting from row 3 drops what happened before, but keeps
    the directions."""
    walk = np.array([[0, 2], [1, 1], [2, 0], [1, 1], [0, 2], [1, 1], [2, 0]])
    assert pt.count_passages(walk, 3) == (6, 2)
    # From row 3: replica 0 arrives at 0 (passage, trip start), then 2 (passage);
    # replica 1 arrives at 2 (passage), then 0 (passage, but its trip start was not seen).
    assert pt.count_passages(walk, 3, start=3) == (4, 0)


def test_arrhenius_tau_error_matches_sampling(pt):
    """The propagated error of ln tau at T equals the spread of ln tau over parameter draws
    from the covariance (to 5 %, 20 000 draws)."""
    cov = [[0.01, -0.004], [-0.004, 0.002]]
    fit = {"params": {"ln_tau_inf": 3.0, "E": 2.4}, "cov": cov, "chi2": 10.0, "dof": 10}
    tau, err = pt.arrhenius_tau(fit, 0.3)
    draws = np.random.default_rng(0).multivariate_normal([3.0, 2.4], cov, 20000)
    ln = draws[:, 0] + draws[:, 1] / 0.3
    assert tau == pytest.approx(math.exp(3.0 + 2.4 / 0.3))
    assert err / tau == pytest.approx(ln.std(), rel=0.05)


def test_quick_pipeline(tmp_path):
    """--quick: a 4-replica run of N = 200, then the report and its JSON."""
    out = tmp_path / "pt"
    rep = tmp_path / "pt_deep_output.txt"
    r = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out), "--report",
                        str(rep)], capture_output=True, text=True, timeout=900,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == 0, r.stderr[-2000:]
    text = rep.read_text()
    assert "1. Round trips" in text and "2. U/N at each temperature" in text
    res = json.loads((tmp_path / "pt_deep_output.json").read_text())
    assert res["replicas"] == 4 and len(res["per_temperature"]) == 4
    assert res["production_rounds"] == 400
    # The recount from labels.csv equals the run's own bookkeeping.
    assert res["passages"] == res["summary_round_trips"]["passages"]
    assert res["round_trips"] == res["summary_round_trips"]["total"]
    # U/N increases with T at every step of the ladder.
    u = [p["second_half"] for p in res["per_temperature"]]
    assert all(a < b for a, b in zip(u, u[1:]))
    # The single-chain reference covers T = 0.6, 0.7 and 1.0 of this ladder.
    assert {c["T"] for c in res.get("versus_chains", [])} >= {0.6, 0.7, 1.0}
