"""The ``--quick`` modes of the benchmark and demonstration scripts run to the end.

These are smoke tests: each script runs in a subprocess (with a timeout, so that a hang
fails) and must exit 0 and print the table it exists for. The numbers themselves are
checked where they are computed (kernels, fits and protocols have their own tests); the
recorded full runs live in ``docs/``.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.scripts


def run_script(name, *args, cwd, timeout=900):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                         cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def _has_lammps():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import lammps_peer
    finally:
        sys.path.pop(0)
    return lammps_peer.lammps_available()[0]


def test_bench_mc_quick(tmp_path):
    out = run_script("bench_mc.py", "--quick", "--sizes", "1000", "--no-threads",
                     "--eam-sizes", "2000", "--eam-profile", cwd=tmp_path)
    assert "plain       1000 displacement" in out
    assert "swapmc      1000 swap A,B<->C" in out
    # Both Cu-Zr potentials, and the profile table over table lengths and skins.
    assert "EAM Mendelev" in out or "Mendelev Cu-Zr skipped" in out
    assert "EAM ZJW" in out
    assert "EAM profile" in out and "ns/displ." in out
    if _has_lammps():
        assert "sgcmc flips" in out


def test_bench_md_quick(tmp_path):
    out = run_script("bench_md.py", "--quick", cwd=tmp_path)
    assert "atom-steps/s" in out and "swapmc" in out


def test_bench_pt_quick(tmp_path):
    out = run_script("bench_pt.py", "--quick", "--rt-ranks", "0", cwd=tmp_path)
    assert "Time per exchange round" in out


def test_bench_aqs_quick(tmp_path):
    out = run_script("bench_aqs.py", "--quick", "--steps", "2", cwd=tmp_path)
    assert "500" in out


def test_bench_elasticity_quick(tmp_path):
    out = run_script("bench_elasticity.py", "--quick", cwd=tmp_path)
    assert "4000" in out


def test_cuzr_cooling_quick(tmp_path):
    out = run_script("cuzr_cooling.py", "--quick", "--csv", "cool.csv", cwd=tmp_path)
    assert (tmp_path / "cool.csv").exists()
    assert out


def test_stability_demo_quick(tmp_path):
    out = run_script("stability_demo.py", "--quick", cwd=tmp_path)
    assert out


def test_library_example_quick(tmp_path):
    out = run_script("library_example.py", "--quick", "-o", "ex", cwd=tmp_path)
    assert "cert/core-h" in out


@pytest.mark.mpi
def test_dms_families_quick_resumes_and_plans(tmp_path):
    """Two glass families built and scanned on 2 MPI ranks and compared; a rerun redoes
    nothing and reports the same comparison; --plan prints the cost of each stage."""
    import json

    out = run_script("dms_families.py", "--quick", "--ranks", "2", "-o", "fam", cwd=tmp_path)
    assert "stable - poor at every (T, period)" in out and "tan_delta" in out
    first = json.loads((tmp_path / "fam" / "results.json").read_text())["comparison"]
    assert len(first) == 2 * 3  # 2 temperatures x 1 period x 3 quantities
    assert all(r["stable"]["n"] == 2 and r["poor"]["n"] == 2 for r in first)
    assert (tmp_path / "fam" / "tan_delta_T.png").stat().st_size > 10_000
    out = run_script("dms_families.py", "--quick", "--ranks", "2", "-o", "fam", cwd=tmp_path)
    for family in ("stable", "poor"):
        log = (tmp_path / "fam" / family / "dms.log").read_text()
        assert "4 of 4 points were already measured (resumed); 0 measured now" in log
    again = json.loads((tmp_path / "fam" / "results.json").read_text())["comparison"]
    assert again == first
    out = run_script("dms_families.py", "--quick", "--plan", "-o", "plan", cwd=tmp_path)
    assert "build stable" in out and "scan poor" in out and "core-hours" in out
