"""The --quick modes of scripts/deep_glasses.py and scripts/cooling_rate.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args, cwd):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                         cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    work = tmp_path_factory.mktemp("deep")
    stdout = run_script("deep_glasses.py", "--quick", "-o", "deep", cwd=work)
    with open(work / "deep" / "results.json") as fh:
        return work, stdout, json.load(fh)


def test_deep_glasses_quick(deep):
    work, stdout, res = deep
    rows, summaries = res["rows"], res["summaries"]
    temps = res["args"]["temperatures"]
    # Every lineage that was certified at one T continues at the next, from its own
    # equilibrium configuration; every row is accounted for as certified or failed.
    assert [s["temperature"] for s in summaries] == temps[:len(summaries)]
    for s in summaries:
        same = [r for r in rows if r["temperature"] == s["temperature"]]
        assert s["samples"] == len(same)
        assert s["certified"] == sum(r["verdict"] == "certified" for r in same)
        assert s["certified"] + len(s["failed"]) == s["samples"]
    later = [r for r in rows if r["temperature"] == temps[1]]
    for r in later:
        with open(work / r["config"]) as fh:
            text = fh.read()
        assert f"T{temps[0]:g}-lineage{r['lineage']}.xyz" in text
    for r in rows:
        # An inherent structure lies below the equilibrium energy at T ~ 1 by > 1 epsilon.
        assert r["is_energy"] < r["energy"] - 1.0
        assert -7.9 < r["is_energy"] < -7.4
        assert r["cpu_seconds"] > 0 and r["sweeps"] > 0
        assert 0.0 <= r["crystalline_fraction"] <= 1.0
        assert 0.0 < r["cc_clustering"] < 3.0
    assert "lowest certified T" in stdout
    assert res["stop"]


def test_cc_clustering_of_random_and_clustered_placements():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        from deep_glasses import cc_clustering
    finally:
        sys.path.pop(0)
    from swapmc.box import Box
    from swapmc.models import load_preset
    from swapmc.system import System

    model = load_preset("ka2-x10").model
    rng = np.random.default_rng(0)
    n, length = 4000, (4000 / 1.2) ** (1 / 3)
    pos = rng.uniform(0, length, (n, 3))
    species = np.zeros(n, np.int32)
    c = model.species.index("C")
    species[rng.choice(n, 400, replace=False)] = c
    ratios = [cc_clustering(System(pos, species, tuple(model.species), Box.cube(length)))]
    # Ideal-gas positions: the ratio is 1 up to the sampling noise of ~ 400 x 4 C-C pairs
    # (s.d. 0.06 over 40 random seeds, so 0.2 is > 3 s.d.).
    assert ratios[0] == pytest.approx(1.0, abs=0.2)
    # All C in one slab: far more C neighbours than random.
    species[:] = 0
    species[np.argsort(pos[:, 0])[:400]] = c
    clustered = cc_clustering(System(pos, species, tuple(model.species), Box.cube(length)))
    assert clustered > 5.0


def test_cooling_rate_quick(tmp_path, deep):
    work, _, _ = deep
    stdout = run_script("cooling_rate.py", "--quick", "-o", "cool", "--deep",
                        str(work / "deep" / "results.json"), "--eq-fit-tmax", "1.3",
                        cwd=tmp_path)
    with open(tmp_path / "cool" / "results.json") as fh:
        res = json.load(fh)
    durations = sorted({q["duration"] for q in res["quenches"]})
    assert durations == [100, 300, 1000]
    for b in res["by_duration"]:
        assert b["n"] == 2 and b["is_energy_sem"] > 0
        assert b["rate"] == pytest.approx(0.8 / b["duration"])
    for q in res["quenches"]:
        assert q["converged"]
        # Quenching lowers the energy: inherent structures lie far below the T = 1 liquid.
        assert q["is_energy"] < q["energy_final"] < -6.0
    assert "log" in res["fits"]
    assert res["equilibrium_fit"] is not None
    assert len(res["equivalent"]) == len({r["temperature"] for r in res["deep_rows"]})
    assert os.path.exists(tmp_path / "cool" / "equivalent_cooling_rate.png")
    assert "EXTRAPOLATION" in stdout


def test_cooling_rate_resume_from_record(tmp_path, deep):
    """A recorded results.json seeds a new work directory: the analysis is reproduced without
    the deep-glass file, and a slower rate added to the plan is the only thing run."""
    work, _, _ = deep
    first = tmp_path / "first"
    run_script("cooling_rate.py", "--quick", "-o", str(first), "--deep",
               str(work / "deep" / "results.json"), "--eq-fit-tmax", "1.3", cwd=tmp_path)
    with open(first / "results.json") as fh:
        rec = json.load(fh)
    again = tmp_path / "again"
    run_script("cooling_rate.py", "--quick", "-o", str(again), "--resume-from",
               str(first / "results.json"), "--eq-fit-tmax", "1.3", "--analyze-only",
               cwd=tmp_path)
    with open(again / "results.json") as fh:
        res = json.load(fh)
    for key in ("quenches", "by_duration", "fits", "equilibrium_fit", "equivalent"):
        assert res[key] == rec[key], key
    # Extend by a slower rate (the quick plan is [100, 300, 1000] x 2): one new quench.
    stdout = run_script("cooling_rate.py", "--quick", "-o", str(again), "--resume-from",
                        str(first / "results.json"), "--eq-fit-tmax", "1.3",
                        "--durations", "100", "300", "1000", "2000",
                        "--quenches", "2", "2", "2", "1", cwd=tmp_path)
    assert stdout.count("quench at rate") == 1 and "swap equilibrium" not in stdout
    with open(again / "results.json") as fh:
        res = json.load(fh)
    assert res["quenches"][:len(rec["quenches"])] == rec["quenches"]
    assert [q["duration"] for q in res["quenches"][len(rec["quenches"]):]] == [2000]


def test_cooling_rate_resume_from_rejects_other_files(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text('{"rows": []}')
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "cooling_rate.py"),
                          "--quick", "-o", str(tmp_path / "c"), "--resume-from", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "other.json: not a results.json of this script" in out.stderr


def test_cooling_rate_quick_metal_npt(tmp_path):
    """A doped Cu-Zr preset: quenches in K at P = 0 with volume moves, E in eV."""
    stdout = run_script("cooling_rate.py", "--preset", "cu50zr50-x10", "--quick", "-o", "cool",
                        cwd=tmp_path)
    with open(tmp_path / "cool" / "results.json") as fh:
        res = json.load(fh)
    assert res["units"] == "metal" and res["preset"] == "cu50zr50-x10"
    assert "K per sweep" in stdout and "NPT at P = 0 GPa" in stdout
    for b in res["by_duration"]:
        assert b["rate"] == pytest.approx((1500.0 - 700.0) / b["duration"])
    volumes = np.array([q["volume_per_particle"] for q in res["quenches"]])
    for q in res["quenches"]:
        assert q["converged"]
        # ZJW Cu-Zr inherent structures: E_IS/N between -5.6 and -5.45 eV (docs/figures/
        # cu50zr50_cooling.txt: U/N -5.50 eV at 700 K, 3 k_B T/2 ~ 0.09 eV above its E_IS),
        # below the energy at the end of the ramp.
        assert -5.6 < q["is_energy"] < -5.45
        assert q["is_energy"] < q["energy_final"]
    # The box breathes at P = 0 (volume moves kept): the glasses' volumes differ, and lie
    # near the cooling curve's 17.0-17.3 A^3 per atom (the dopant is between Cu and Zr).
    assert volumes.std() > 0 and np.all((volumes > 15.5) & (volumes < 19.0))
    assert os.path.exists(tmp_path / "cool" / "equivalent_cooling_rate.png")
