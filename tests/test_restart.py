"""Kill + resume gives bit-for-bit the same run as an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import pytest

from swapmc._toml import ConfigError
from swapmc.run import run

BASE = {
    "system": {"n": 200, "melt_sweeps": 50},
    "run": {"equilibration_sweeps": 100, "production_sweeps": 400, "seed": 7,
            "energy_check_every": 50},
    "output": {"thermo_every": 10, "trajectory_every": 100, "checkpoint_every": 50,
               "progress": False},
    "diagnostics": {"tau_alpha": True, "fs_every": 10},
}


def _cfg(directory, **run):
    import copy

    c = copy.deepcopy(BASE)
    c["output"]["directory"] = str(directory)
    c["run"].update(run)
    return c


def _read(directory, name):
    with open(os.path.join(directory, name), "rb") as fh:
        return fh.read()


def _same_outputs(a, b):
    for name in ("final.xyz", "final.data", "thermo.csv", "trajectory.xyz", "fs.csv"):
        assert _read(a, name) == _read(b, name), name


def test_extend_equals_uninterrupted(tmp_path):
    full = run("ka2-x10", _cfg(tmp_path / "full"), log=lambda *a: None)
    part = tmp_path / "part"
    run("ka2-x10", _cfg(part, production_sweeps=200), log=lambda *a: None)
    resumed = run("ka2-x10", _cfg(part), log=lambda *a: None)
    assert resumed.resumed
    _same_outputs(tmp_path / "full", part)
    assert full.summary["tau_alpha_sweeps"] == resumed.summary["tau_alpha_sweeps"]


def test_sigkill_then_rerun_is_identical(tmp_path):
    """A run killed with SIGKILL mid-production and rerun with the same command ends
    bit-identical to an uninterrupted run."""
    ref = tmp_path / "ref"
    run("ka2-x10", _cfg(ref, production_sweeps=3000), log=lambda *a: None)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "swapmc", "run", "ka2-x10", "-N", "200", "--seed", "7",
           "-o", str(killed), "--no-progress"]
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(
        'preset = "ka2-x10"\n[system]\nn = 200\nmelt_sweeps = 50\n'
        "[run]\nequilibration_sweeps = 100\nproduction_sweeps = 3000\nseed = 7\n"
        "energy_check_every = 50\n"
        f'[output]\ndirectory = "{killed}"\nthermo_every = 10\ntrajectory_every = 100\n'
        "checkpoint_every = 50\nprogress = false\n"
        "[diagnostics]\ntau_alpha = true\nfs_every = 10\n"
    )
    cmd = [sys.executable, "-m", "swapmc", "run", str(cfg_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = killed / "checkpoint.npz"
    deadline = time.time() + 120
    # Kill after a few checkpoints exist, i.e. somewhere in the middle of production.
    while time.time() < deadline and proc.poll() is None:
        if ck.exists() and (killed / "trajectory.xyz").exists():
            break
        time.sleep(0.01)
    time.sleep(0.3)
    if proc.poll() is not None:
        pytest.fail("run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout
    _same_outputs(ref, killed)


def test_mismatched_restart_is_refused(tmp_path):
    d = tmp_path / "r"
    run("ka2-x10", _cfg(d, production_sweeps=20), log=lambda *a: None)
    cfg = _cfg(d, production_sweeps=20)
    cfg["state"] = {"temperature": 0.5}
    with pytest.raises(ConfigError, match=r"state.temperature: checkpoint has 0.6"):
        run("ka2-x10", cfg, log=lambda *a: None)


def test_eam_npt_extend_equals_uninterrupted(tmp_path):
    """Same for an isobaric EAM run: host densities and volume moves restart exactly too."""
    import copy

    cfg = copy.deepcopy(BASE)
    cfg["system"] = {"n": 220, "melt_sweeps": 10}
    cfg["run"].update({"equilibration_sweeps": 20, "production_sweeps": 60,
                       "energy_check_every": 20})
    cfg["output"].update({"thermo_every": 5, "trajectory_every": 20, "checkpoint_every": 10})
    cfg["diagnostics"] = {"tau_alpha": False}
    full = copy.deepcopy(cfg)
    full["output"]["directory"] = str(tmp_path / "full")
    run("cu50zr50-x10", full, log=lambda *a: None)
    part = copy.deepcopy(cfg)
    part["output"]["directory"] = str(tmp_path / "part")
    part["run"]["production_sweeps"] = 30
    run("cu50zr50-x10", part, log=lambda *a: None)
    part["run"]["production_sweeps"] = 60
    res = run("cu50zr50-x10", part, log=lambda *a: None)
    assert res.resumed
    for name in ("final.xyz", "thermo.csv", "trajectory.xyz"):
        assert _read(tmp_path / "full", name) == _read(tmp_path / "part", name), name
    assert "pair_style eam/alloy" in res.summary["lammps_pair_style"]
    from swapmc.models import EAMPotential

    pot = EAMPotential.from_file(tmp_path / "part" / "potential.eam.alloy")
    assert pot.species == ("Cu", "Zr", "X")
