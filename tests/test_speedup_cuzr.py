"""scripts/speedup_cuzr.py: the ratio error and the Arrhenius fit against independent
references, and the --quick pipeline (a short swap chain and the no-swap run from its final
configuration, with the same F_s definition) end to end."""

import importlib.util
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "speedup_cuzr.py")


@pytest.fixture(scope="module")
def sc():
    spec = importlib.util.spec_from_file_location("speedup_cuzr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ratio_error_matches_sampling(sc):
    """First-order error of a / b equals the spread of a / b over Gaussian draws to 3 %
    when the relative errors are small (5 % and 8 %; second-order terms ~0.5 %)."""
    r, e = sc.ratio_error(3000.0, 150.0, 1200.0, 96.0)
    rng = np.random.default_rng(1)
    draws = rng.normal(3000.0, 150.0, 200000) / rng.normal(1200.0, 96.0, 200000)
    assert r == pytest.approx(2.5)
    assert e == pytest.approx(draws.std(), rel=0.03)


def test_arrhenius_fit_recovers_and_predicts(sc):
    """Exact Arrhenius data are recovered; two points give the line through them, and the
    predicted error at one of them equals that point's own error."""
    temps = np.array([1100.0, 1000.0, 950.0])
    taus = 50.0 * np.exp(4000.0 / temps)
    c, e, cov = sc.arrhenius_fit(temps, taus, 0.05 * taus)
    assert c == pytest.approx(math.log(50.0), abs=1e-9) and e == pytest.approx(4000.0)
    c2, e2, cov2 = sc.arrhenius_fit(temps[:2], taus[:2], 0.1 * taus[:2])
    tau, err = sc.arrhenius_predict(c2, e2, cov2, 1100.0)
    assert tau == pytest.approx(taus[0]) and err / tau == pytest.approx(0.1, rel=1e-9)


def test_quick_pipeline(tmp_path):
    """--quick: swap chain and no-swap run at 1500 K (N = 500 Cu-Zr, NPT P = 0), report."""
    out = tmp_path / "q"
    r = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=900,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "speed-up S" in r.stdout and "1500" in r.stdout
    assert (out / "results.json").exists() and (out / "T1500" / "result.json").exists()
    # Rerun: the finished temperature is read back, not run again.
    again = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out)],
                           capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert again.returncode == 0 and "no-swap at T" not in again.stdout


def test_bad_input_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--out", str(tmp_path), "--window", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--window" in r.stderr
