"""DMS scans (swapmc.md.dms_scan and ``swapmc dms``): grids, cycle rule, per-point files,
resume after SIGKILL, MPI farming, peaks and their Arrhenius law, CLI errors.

MD runs use two tiny KA2 lattices (N = 250) with periods of 40-400 steps, so a whole scan
takes seconds; the physics of the numbers is tested elsewhere (tests/test_md_protocols.py).
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import MPIEXEC, subprocess_env

from swapmc.build import composition_counts, lattice_configuration
from swapmc.io import write_extxyz
from swapmc.md.cli import add_parsers
from swapmc.md.dms_scan import (
    ScanPoint,
    period_grid,
    point_seed,
    scan_cycles,
    scan_peaks,
    scan_points,
    temperature_grid,
)
from swapmc.md.protocols import DMSRow
from swapmc.models import load_preset


def _parse(argv):
    p = argparse.ArgumentParser(prog="swapmc")
    add_parsers(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def glasses(tmp_path_factory):
    """Two KA2 configurations (N = 250, rho = 1.2) as independent samples."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    folder = tmp_path_factory.mktemp("glasses")
    paths = []
    for k in (1, 2):
        path = folder / f"g{k}.xyz"
        write_extxyz(str(path), lattice_configuration(counts, pre.model.species, 1.2, seed=k))
        paths.append(str(path))
    return paths


# 2 T x 3 periods x 2 samples = 12 points; periods 0.2-2 tau_LJ (40-400 steps).
SCAN = ["--preset", "ka2-x10", "-T", "0.3", "0.4", "--period-range", "0.2", "2",
        "--per-decade", "2", "--cycles", "3", "--equilibration-steps", "100", "--no-progress"]


# ----------------------------------------------------------------------------- grids
def test_temperature_grid():
    assert temperature_grid([0.3, 0.5]) == [0.3, 0.5]
    assert temperature_grid(t_range=(0.3, 0.5), t_step=0.1) == pytest.approx([0.3, 0.4, 0.5])
    assert temperature_grid(t_range=(300, 700), t_step=150) == [300, 450, 600]
    # Exactly the decimal values, so point file names carry no float noise.
    grid = temperature_grid(t_range=(0.3, 0.9), t_step=0.1)
    assert grid == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert [repr(t) for t in grid] == ["0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    for kw, text in [(dict(t_range=(0.5, 0.3), t_step=0.1), "TMIN <= TMAX"),
                     (dict(t_range=(0.3, 0.5)), "--t-step"),
                     (dict(t_range=(0.3, 0.5), t_step=0.0), "--t-step must be > 0"),
                     (dict(temperatures=[0.3, math.nan]), "finite"),
                     (dict(temperatures=[0.3, -1.0]), "> 0"),
                     (dict(temperatures=[0.3, 0.3]), "differ")]:
        with pytest.raises(ValueError, match=text):
            temperature_grid(**kw)


def test_period_grid():
    p = period_grid(period_range=(10, 1e4), per_decade=3)
    assert len(p) == 10 and p[0] == pytest.approx(10) and p[-1] == pytest.approx(1e4)
    assert np.allclose(np.diff(np.log10(p)), 1 / 3)
    # metal units, 1-100 GHz: periods 10-1000 ps
    assert len(period_grid(period_range=(10, 1000), per_decade=4)) == 9
    assert period_grid(omegas=[2 * math.pi]) == pytest.approx([1.0])
    for kw, text in [(dict(period_range=(0, 10), per_decade=2), "> 0"),
                     (dict(period_range=(10, 1), per_decade=2), "PMIN <= PMAX"),
                     (dict(period_range=(1, 10)), "--per-decade"),
                     (dict(periods=[math.inf]), "finite"),
                     (dict(), "give --periods")]:
        with pytest.raises(ValueError, match=text):
            period_grid(**kw)


def test_cycle_rule():
    # the slowest period: the least cycles, one dropped
    assert scan_cycles(1000.0, 1000.0) == (7, 1)
    # 10x faster: 10x the analysed cycles (same MD time), 2 dropped (1/omega_min = 1.6 P)
    assert scan_cycles(100.0, 1000.0) == (60 + 2, 2)
    # 1000x faster: capped at 100 analysed, 160 dropped (the time 1/omega_min)
    assert scan_cycles(1.0, 1000.0) == (100 + 160, 160)
    assert scan_cycles(1.0, 1000.0, max_analysed=20) == (20 + 160, 160)
    assert scan_cycles(5.0, 5.0, min_cycles=3) == (3, 1)
    with pytest.raises(ValueError, match="--cycles"):
        scan_cycles(1.0, 1.0, min_cycles=2)
    with pytest.raises(ValueError, match="--max-cycles"):
        scan_cycles(1.0, 1.0, max_analysed=3)


def test_points_and_seeds():
    pts = scan_points(2, [0.3, 0.4], [1.0, 10.0], min_cycles=3)
    assert len(pts) == 8 and pts[0].period == 10.0  # slowest first
    assert len({p.name for p in pts}) == 8
    # a point's stream depends on its values only, not on the grid it belongs to
    other = scan_points(2, [0.4], [10.0, 3.0], min_cycles=3)
    a = next(p for p in pts if (p.sample, p.temperature, p.period) == (1, 0.4, 10.0))
    b = next(p for p in other if (p.sample, p.temperature, p.period) == (1, 0.4, 10.0))
    assert point_seed(5, a).generate_state(4).tolist() == \
        point_seed(5, b).generate_state(4).tolist()
    c = ScanPoint(1, 0.4, 10.0 * (1 + 1e-15), 3, 1)
    assert point_seed(5, a).generate_state(4).tolist() != \
        point_seed(5, c).generate_state(4).tolist()


# ----------------------------------------------------------------------------- peaks
def _debye_rows(temps, omegas, ln_w0=15.0, e_over_k=10.0, noise=0.0, seed=0):
    """Rows of a Debye loss peak M'' = h wt/(1 + (wt)^2) with Arrhenius tau(T)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in temps:
        tau = math.exp(-(ln_w0 - e_over_k / t))
        for w in omegas:
            x = w * tau
            m = 2.0 * x / (1 + x * x) * (1 + noise * rng.standard_normal())
            rows.append(DMSRow(t, w, 2 * math.pi / w, 10.0, 0.1, m, 0.01 + noise * m,
                               m / 10.0, 0.001, 4, "shear", "", "", density=1.2,
                               error_dof=3.0))
    return rows


def test_scan_peaks_recover_arrhenius():
    temps = [0.5, 0.6, 0.7, 0.8]
    omegas = list(np.geomspace(1e-4, 1e2, 16))
    res = scan_peaks(_debye_rows(temps, omegas), units="lj", tg=0.45)
    assert len(res["isothermal"]) == 4 and res["isochronal"] == []
    for p, t in zip(res["isothermal"], temps):
        assert p.found and p.position == pytest.approx(15.0 - 10.0 / t, abs=0.05)
    fit = res["arrhenius"]
    assert fit.e_over_k == pytest.approx(10.0, rel=0.02)
    assert fit.ratio == pytest.approx(10.0 / 0.45, rel=0.02)
    # isochronal: T_p at each of a few omegas over a fine T grid
    temps = list(np.linspace(0.4, 1.2, 25))
    omegas = [math.exp(15.0 - 10.0 / 0.6), math.exp(15.0 - 10.0 / 0.8)]
    res = scan_peaks(_debye_rows(temps, omegas), units="lj")
    assert res["isothermal"] == [] and len(res["isochronal"]) == 2
    assert [p.position for p in res["isochronal"]] == pytest.approx([0.6, 0.8], abs=0.01)
    assert res["arrhenius"].e_over_k == pytest.approx(10.0, rel=0.03)
    # one peak only: no fit, said why
    res = scan_peaks(_debye_rows([0.6], list(np.geomspace(1e-4, 1e2, 16))))
    assert res["arrhenius"] is None and "needs 2" in res["arrhenius_error"]


# ----------------------------------------------------------------------------- CLI runs
def _table(out):
    return (out / "dms.csv").read_text()


@pytest.fixture(scope="module")
def reference_scan(glasses, tmp_path_factory):
    """The uninterrupted serial scan (in process)."""
    out = tmp_path_factory.mktemp("ref") / "scan"
    args = _parse(["dms", *glasses, *SCAN, "-o", str(out)])
    assert args.func(args) == 0
    return out


def test_scan_outputs(reference_scan, capsys):
    out = reference_scan
    data = json.loads((out / "dms.json").read_text())
    assert len(data["rows"]) == 6 and all(r["n_samples"] == 2 for r in data["rows"])
    cycles = [(c["n_cycles"], c["discard_cycles"]) for c in data["cycles_per_period"]]
    assert cycles == [(22, 2), (8, 1), (3, 1)]  # periods 0.2, 0.63, 2
    assert len(os.listdir(out / "points")) == 12  # claims removed, one file per point
    scan = json.loads((out / "scan.json").read_text())
    assert scan["temperatures"] == [0.3, 0.4] and len(scan["periods"]) == 3
    assert scan["arrhenius"] is None  # three frequencies: no peak search
    assert (out / "peaks.csv").read_text().startswith("scan,temperature,omega")
    rec = json.loads((out / "points" / "T=0.3_period=2.0_sample=0.json").read_text())
    assert rec["n_cycles"] == 3 and rec["discard_cycles"] == 1
    assert rec["result"]["discard_cycles"] == 1 and rec["result"]["n_cycles"] == 2
    assert (out / "dms_series.csv").exists()


def test_rerun_skips_finished_points(glasses, reference_scan, capsys):
    capsys.readouterr()
    before = _table(reference_scan)
    args = _parse(["dms", *glasses, *SCAN, "-o", str(reference_scan)])
    assert args.func(args) == 0
    assert "12 of 12 points were already measured" in capsys.readouterr().out
    assert _table(reference_scan) == before
    # other settings in the same directory are refused, not mixed in
    args = _parse(["dms", *glasses, *SCAN, "--amplitude", "0.02", "-o", str(reference_scan)])
    with pytest.raises(ValueError, match="other scan settings"):
        args.func(args)


def _launch(argv, **kw):
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(),
                            # Background shells may hand SIGINT down ignored; restore it.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kw)


def test_kill_and_resume_equals_uninterrupted(glasses, reference_scan, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "swapmc", "dms", *glasses, *SCAN, "-o", str(out)]
    proc = _launch(cmd)
    points = out / "points"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            done = [f for f in os.listdir(points) if f.endswith(".json")] \
                if points.exists() else []
            if len(done) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the scan ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    done = sorted(f for f in os.listdir(points) if f.endswith(".json"))
    assert 3 <= len(done) < 12 and not (out / "dms.csv").exists()
    proc = _launch(cmd)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"{len(done)} of 12 points were already measured" in stdout
    assert _table(out) == _table(reference_scan)
    assert (out / "scan.json").exists()


def test_mpi_two_ranks_equal_serial(glasses, reference_scan, tmp_path):
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    out = tmp_path / "mpi"
    proc = _launch([MPIEXEC, "-n", "2", sys.executable, "-m", "swapmc", "dms", *glasses,
                    *SCAN, "-o", str(out)])
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "over 2 ranks" in stdout and stdout.count("wrote ") == 1  # rank 0 writes
    per_rank = stdout.split("per rank: ")[1].split(")")[0]
    assert sum(map(int, per_rank.split(", "))) == 12
    assert _table(out) == _table(reference_scan)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("extra, text", [
    (["-T", "0.3", "--period-range", "0", "10", "--per-decade", "2"], "--period-range"),
    (["-T", "0.3", "nan", "--periods", "1"], "finite"),
    (["--t-range", "0.3", "0.5", "--periods", "1"], "--t-step"),
    (["-T", "0.3", "--period-range", "1", "10"], "--per-decade"),
    (["-T", "0.3", "--periods", "1", "--per-decade", "3"], "--per-decade needs"),
    (["-T", "0.3", "--periods", "1", "--cycles", "2"], "--cycles"),
    (["-T", "0.3", "--periods", "1", "--tg", "inf"], "--tg"),
])
def test_cli_errors(glasses, tmp_path, extra, text):
    proc = subprocess.run([sys.executable, "-m", "swapmc", "dms", glasses[0], "--preset",
                           "ka2-x10", *extra, "-o", str(tmp_path / "e")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapmc: error:") and text in lines[0], \
        proc.stderr
    assert "Traceback" not in proc.stderr


def test_isochronal_scan_through_the_cli(glasses, tmp_path, capsys):
    """--t-range: six temperatures at one period, one sample (errors over its cycles); the
    peak search runs on the T grid and its outcome, found or not, is reported and saved."""
    out = tmp_path / "iso"
    args = _parse(["dms", glasses[0], "--preset", "ka2-x10", "--t-range", "0.3", "0.8",
                   "--t-step", "0.1", "--periods", "0.5", "--cycles", "3",
                   "--equilibration-steps", "50", "--tg", "0.45", "--no-progress",
                   "-o", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "6 temperature(s) x 1 period(s) x 1 sample(s) = 6 points" in text
    assert "isochronal" in text and "Arrhenius fit: none" in text
    scan = json.loads((out / "scan.json").read_text())
    assert scan["temperatures"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert scan["tg"] == 0.45 and scan["isothermal_peaks"] == []
    (peak,) = scan["isochronal_peaks"]
    assert peak["variable"] == "temperature" and peak["fixed"] == pytest.approx(4 * math.pi)
    lines = (out / "peaks.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("isochronal,")
    assert len(json.loads((out / "dms.json").read_text())["rows"]) == 6


def test_live_claim_is_skipped_and_stale_claim_file_is_not(tmp_path):
    """A point whose claim a live process holds (flock) is left to it; a claim file nobody
    holds (left by a killed process) does not block."""
    import fcntl

    from swapmc.md import dms_scan

    point = ScanPoint(0, 0.3, 1.0, 3, 1)
    folder = tmp_path / "points"
    folder.mkdir()
    claim = folder / (point.name + ".claim")
    fd = os.open(claim, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    calls = []
    try:
        n = dms_scan.run_points([point], [None], None, directory=str(tmp_path), settings={},
                                seed=1, oscillation={},
                                on_done=lambda p, r: calls.append(p))
        assert n == 0 and not calls and not (folder / (point.name + ".json")).exists()
    finally:
        os.close(fd)  # the claim file stays, as after a SIGKILL
    assert claim.exists()
    got = dms_scan._claim(str(claim))
    assert got is not None
    os.close(got)
