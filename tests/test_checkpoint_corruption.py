"""Damaged checkpoints: an exact fallback to the previous one, or one clear line.

A checkpoint can be cut short (a full disk, a node dying in the middle of a write on a file
system that does not honour fsync), emptied, or hit by a flipped bit. ``swapmc run`` and
``swapmc temper`` keep the checkpoint before the latest one; resuming from a damaged latest
checkpoint falls back to it with a warning and ends byte-identical to an uninterrupted run.
When no intact checkpoint is left the command prints one line naming the file and what is
wrong with it, and exits with code 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from swapmc.cli import main

RUN_OUTPUTS = ("final.xyz", "final.data", "thermo.csv", "trajectory.xyz", "fs.csv")
TEMPER_OUTPUTS = ("labels.csv", "energy_by_temperature.csv", "energy_by_replica.csv",
                  "ladder.csv", "pairs.csv", "final/T00.xyz", "final/T03.xyz",
                  "final/T01.data", "trajectories/T00.xyz", "trajectories/T03.xyz")


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------- damage kinds
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _bitflip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite(path, change):
    """A CRC-valid file whose contents were changed by ``change(dict)``."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _missing_pos(path):
    _rewrite(path, lambda a: a.pop("pos"))


def _wrong_shape(path):
    _rewrite(path, lambda a: a.update(pos=a["pos"][:-1]))


def _missing_rng(path):
    def change(a):
        header = json.loads(str(a["header"]))
        del header["rng"]
        a["header"] = json.dumps(header)

    _rewrite(path, change)


def _nan_position(path):
    def change(a):
        a["pos"] = a["pos"].copy()
        a["pos"][5, 1] = np.nan

    _rewrite(path, change)


DAMAGE = {
    "truncated": (_truncate, "truncated or corrupt"),
    "empty": (_empty, "empty (0 bytes)"),
    "bitflip": (_bitflip, "truncated or corrupt"),
    "missing_field": (_missing_pos, "array 'pos' is missing"),
    "wrong_shape": (_wrong_shape, "array 'pos' has shape (199, 3), expected (200, 3)"),
    "missing_rng": (_missing_rng, "header field 'rng' is missing"),
    "nan_position": (_nan_position, "array 'pos' holds non-finite values"),
}


def _fails(capsys, argv, *needles):
    """Run the CLI; expect exit code 1 and one error line holding every needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapmc"), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _snapshot(directory, names):
    return {n: (directory / n).read_bytes() for n in names}


def _summary(directory, drop):
    s = json.loads((directory / "summary.json").read_text())
    for key in drop:
        s.pop(key, None)
    return s


# -------------------------------------------------------------------------- run
def _run_toml(tmp_path, directory, production=180, checkpoint_every=50, name=None):
    path = tmp_path / (name or f"{directory.name}.toml")
    path.write_text(
        'preset = "ka2-x10"\n[system]\nn = 200\nmelt_sweeps = 20\n'
        f"[run]\nequilibration_sweeps = 40\nproduction_sweeps = {production}\nseed = 7\n"
        "energy_check_every = 50\n"
        f'[output]\ndirectory = "{directory}"\nthermo_every = 10\ntrajectory_every = 50\n'
        f"checkpoint_every = {checkpoint_every}\nprogress = false\n"
        "[diagnostics]\ntau_alpha = true\nfs_every = 10\n")
    return str(path)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Finished runs to copy: one with checkpoints every 50 sweeps (so the final checkpoint
    at sweep 240 has a predecessor at sweep 200), one with only the final checkpoint."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for key, every in (("periodic", 50), ("final_only", 0)):
        d = root / key
        assert main(["run", _run_toml(root, d, checkpoint_every=every)]) == 0
        out[key] = d
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)
    # The config names its own output directory: point it at the copy.
    return dst


def _rerun_args(tmp_path, directory, **kw):
    return ["run", _run_toml(tmp_path, directory, **kw)]


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_run_damaged_checkpoint_without_fallback_is_one_line(tmp_path, capsys, finished_runs,
                                                             kind):
    d = _copy(finished_runs["final_only"], tmp_path / "r")
    assert not (d / "checkpoint.prev.npz").exists()
    damage, problem = DAMAGE[kind]
    damage(d / "checkpoint.npz")
    _fails(capsys, _rerun_args(tmp_path, d, checkpoint_every=0),
           f"{d}/checkpoint.npz: ", problem, "no previous checkpoint", "cannot resume")
    assert (d / "checkpoint.npz").exists()  # nothing is removed


def test_run_both_checkpoints_damaged_names_both(tmp_path, capsys, finished_runs):
    d = _copy(finished_runs["periodic"], tmp_path / "r")
    _truncate(d / "checkpoint.npz")
    _missing_pos(d / "checkpoint.prev.npz")
    thermo = (d / "thermo.csv").read_bytes()
    _fails(capsys, _rerun_args(tmp_path, d), f"{d}/checkpoint.npz: truncated or corrupt",
           "checkpoint.prev.npz is unusable too: array 'pos' is missing", "cannot resume")
    assert (d / "thermo.csv").read_bytes() == thermo  # outputs untouched


@pytest.mark.parametrize("kind", ["truncated", "empty", "bitflip", "missing_field",
                                  "wrong_shape", "missing_rng"])
def test_run_falls_back_to_previous_checkpoint_exactly(tmp_path, capsys, finished_runs, kind):
    """A finished run whose final checkpoint is damaged: the rerun resumes from the one
    before (sweep 200 of 240), cuts the outputs back to it, redoes the sweeps and ends
    byte-identical."""
    d = _copy(finished_runs["periodic"], tmp_path / "r")
    before = _snapshot(d, RUN_OUTPUTS)
    summary = _summary(d, ("wall_seconds", "cpu_seconds", "files"))
    damage, problem = DAMAGE[kind]
    damage(d / "checkpoint.npz")
    assert main(_rerun_args(tmp_path, d)) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, err
    assert f"{d}/checkpoint.npz: " in warning[0] and problem in warning[0]
    assert "previous checkpoint checkpoint.prev.npz at sweep 200" in warning[0]
    assert _snapshot(d, RUN_OUTPUTS) == before
    assert _summary(d, ("wall_seconds", "cpu_seconds", "files")) == summary
    # The damaged file is set aside, so that the next checkpoint cannot rotate it into
    # the fallback slot.
    assert (d / "checkpoint.damaged.npz").exists()
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        with np.load(d / name) as f:
            assert f["pos"].shape == (200, 3)


def test_run_fallback_then_extension_equals_uninterrupted(tmp_path, capsys):
    """Killed mid-run with a damaged latest checkpoint, rerun longer: identical to a run
    that never stopped (the older checkpoint's file sizes cut thermo.csv, trajectory.xyz
    back)."""
    ref = tmp_path / "ref"
    assert main(["run", _run_toml(tmp_path, ref, production=300)]) == 0
    part = tmp_path / "part"
    assert main(["run", _run_toml(tmp_path, part, production=150, name="p1.toml")]) == 0
    _bitflip(part / "checkpoint.npz")
    capsys.readouterr()
    assert main(["run", _run_toml(tmp_path, part, production=300, name="p2.toml")]) == 0
    err = capsys.readouterr().err
    assert "checkpoint.prev.npz at sweep 200" in err, err
    assert "sweeps 200..210 (10) are redone" in err, err
    assert _snapshot(part, RUN_OUTPUTS) == _snapshot(ref, RUN_OUTPUTS)


def test_run_outputs_shorter_than_the_latest_checkpoint_fall_back(tmp_path, capsys,
                                                                  finished_runs):
    """thermo.csv lost its tail (a disk hiccup) below the size the latest checkpoint
    recorded: the previous checkpoint still fits and the run ends identical."""
    d = _copy(finished_runs["periodic"], tmp_path / "r")
    before = _snapshot(d, RUN_OUTPUTS)
    thermo = d / "thermo.csv"
    thermo.write_bytes(before["thermo.csv"][:-10])
    assert main(_rerun_args(tmp_path, d)) == 0
    err = capsys.readouterr().err
    assert "thermo.csv has" in err and "fewer than the" in err, err
    assert _snapshot(d, RUN_OUTPUTS) == before


def test_run_killed_between_the_two_renames_resumes_from_previous(tmp_path, capsys,
                                                                  finished_runs):
    """The kill window of a checkpoint write in which checkpoint.npz has just become
    checkpoint.prev.npz and the new file is not yet renamed: the run resumes from
    checkpoint.prev.npz, without a warning."""
    d = _copy(finished_runs["periodic"], tmp_path / "r")
    before = _snapshot(d, RUN_OUTPUTS)
    os.replace(d / "checkpoint.npz", d / "checkpoint.prev.npz")
    assert main(_rerun_args(tmp_path, d)) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "checkpoint.npz is missing (the run stopped while replacing it)" in captured.out
    assert _snapshot(d, RUN_OUTPUTS) == before


def test_different_run_is_not_damage(tmp_path, capsys, finished_runs):
    """An intact checkpoint of another configuration keeps the 'different run' refusal
    even when an older checkpoint exists."""
    d = _copy(finished_runs["periodic"], tmp_path / "r")
    assert (d / "checkpoint.prev.npz").exists()
    args = _rerun_args(tmp_path, d)
    _fails(capsys, [*args, "-T", "0.7"], "belongs to a different run",
           "state.temperature")
    assert not (d / "checkpoint.damaged.npz").exists()


def test_atomic_write_keeps_previous_at_every_kill_point(tmp_path, monkeypatch):
    """At each rename of ``atomic_write(..., previous=...)`` a kill leaves a complete
    version under one of the two names."""
    from swapmc.io.atomic import atomic_write, read_npz

    target, prev = tmp_path / "c.npz", tmp_path / "c.prev.npz"
    for k in (1, 2, 3):
        with atomic_write(target, "wb", encoding=None, previous=prev) as fh:
            np.savez(fh, k=np.array(k))
    assert int(read_npz(target)["k"]) == 3 and int(read_npz(prev)["k"]) == 2

    real = os.replace
    calls = []

    def killed_after(n):
        def replace(src, dst):
            if len(calls) == n:
                raise KeyboardInterrupt  # the kill, between two renames
            calls.append((src, dst))
            real(src, dst)
        return replace

    # Kill before the first rename: both old versions intact.
    calls.clear()
    monkeypatch.setattr(os, "replace", killed_after(0))
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "wb", encoding=None, previous=prev) as fh:
            np.savez(fh, k=np.array(4))
    assert int(read_npz(target)["k"]) == 3 and int(read_npz(prev)["k"]) == 2
    # Kill between the renames: the latest is gone, the previous one is the old latest.
    calls.clear()
    monkeypatch.setattr(os, "replace", killed_after(1))
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "wb", encoding=None, previous=prev) as fh:
            np.savez(fh, k=np.array(4))
    assert not target.exists() and int(read_npz(prev)["k"]) == 3
    assert sorted(os.listdir(tmp_path)) == ["c.prev.npz"]  # no temporary file left


def test_read_npz_names_the_problem(tmp_path):
    from swapmc.io.atomic import DamagedFileError, read_npz

    path = tmp_path / "x.npz"
    with open(path, "wb") as fh:
        np.savez(fh, a=np.arange(1000.0))
    assert read_npz(path)["a"].sum() == 499500.0
    _bitflip(path)
    with pytest.raises(DamagedFileError, match="truncated or corrupt .BadZipFile: Bad CRC-32"):
        read_npz(path)
    _empty(path)
    with pytest.raises(DamagedFileError, match=r"empty \(0 bytes\)"):
        read_npz(path)


# ---------------------------------------------------------------------- temper
def _temper_toml(tmp_path, directory, checkpoint_every=15, rounds=6, name=None):
    path = tmp_path / (name or f"{directory.name}-pt.toml")
    path.write_text(
        'preset = "ka2-x10"\n[system]\nn = 200\nmelt_sweeps = 20\n'
        "[run]\nseed = 11\nenergy_check_every = 10\n"
        f'[output]\ndirectory = "{directory}"\ncheckpoint_every = {checkpoint_every}\n'
        "trajectory_every = 10\nprogress = false\n"
        "[tempering]\nt_min = 0.8\nt_max = 1.2\nn_replicas = 4\nexchange_every = 5\n"
        f"equilibration_rounds = 4\nrounds = {rounds}\n")
    return ["temper", str(path), "--mpi", "off"]


def _rounds(directory):
    manifest = json.loads((directory / "checkpoints" / "manifest.json").read_text())
    return manifest["directory"], manifest.get("previous")


@pytest.fixture(scope="module")
def finished_tempering(tmp_path_factory):
    """Finished PT runs: checkpoints every 3 rounds (final round 10, previous 9), and only
    the final one."""
    root = tmp_path_factory.mktemp("pt")
    out = {}
    for key, every in (("periodic", 15), ("final_only", 0)):
        d = root / key
        assert main(_temper_toml(root, d, checkpoint_every=every)) == 0
        out[key] = d
    return out


def _temper_summary(directory):
    s = _summary(directory, ("run", "files"))
    return s


@pytest.mark.parametrize("kind", ["truncated", "empty", "bitflip", "missing_field",
                                  "wrong_shape", "missing_rng"])
def test_temper_damaged_replica_without_fallback_is_one_line(tmp_path, capsys,
                                                             finished_tempering, kind):
    d = _copy(finished_tempering["final_only"], tmp_path / "pt")
    latest, previous = _rounds(d)
    assert previous is None
    victim = d / "checkpoints" / latest / "replica_002.npz"
    damage, problem = DAMAGE[kind]
    damage(victim)
    _fails(capsys, _temper_toml(tmp_path, d, checkpoint_every=0), f"{victim}: ", problem,
           "no previous checkpoint round", "cannot resume")


@pytest.mark.parametrize("kind", ["truncated", "bitflip", "missing_field", "wrong_shape"])
def test_temper_falls_back_to_previous_round_exactly(tmp_path, capsys, finished_tempering,
                                                     kind):
    d = _copy(finished_tempering["periodic"], tmp_path / "pt")
    before = _snapshot(d, TEMPER_OUTPUTS)
    summary = _temper_summary(d)
    latest, previous = _rounds(d)
    assert (latest, previous) == ("round_00000010", "round_00000009")
    damage, problem = DAMAGE[kind]
    damage(d / "checkpoints" / latest / "replica_001.npz")
    assert main(_temper_toml(tmp_path, d)) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, err
    assert "replica_001.npz: " in warning[0] and problem in warning[0]
    assert "previous checkpoint round round_00000009" in warning[0]
    assert "rounds 9..10 (5 sweeps per replica) are redone" in warning[0]
    assert _snapshot(d, TEMPER_OUTPUTS) == before
    assert _temper_summary(d) == summary
    # Round 10 was written again, whole, with round 9 as its predecessor.
    assert _rounds(d) == ("round_00000010", "round_00000009")
    assert sorted(os.listdir(d / "checkpoints")) == ["manifest.json", "round_00000009",
                                                     "round_00000010"]


def test_temper_damaged_shared_state_falls_back(tmp_path, capsys, finished_tempering):
    d = _copy(finished_tempering["periodic"], tmp_path / "pt")
    before = _snapshot(d, TEMPER_OUTPUTS)
    latest, _ = _rounds(d)
    _truncate(d / "checkpoints" / latest / "shared.npz")
    assert main(_temper_toml(tmp_path, d)) == 0
    assert "shared.npz: truncated or corrupt" in capsys.readouterr().err
    assert _snapshot(d, TEMPER_OUTPUTS) == before


def test_temper_rounds_are_never_mixed(tmp_path, capsys, finished_tempering):
    """Replica 1 is damaged in the latest round and replica 3 in the previous one: each
    round misses a replica, and taking replicas from different exchange steps would be
    wrong, so the run stops naming both files."""
    d = _copy(finished_tempering["periodic"], tmp_path / "pt")
    latest, previous = _rounds(d)
    _truncate(d / "checkpoints" / latest / "replica_001.npz")
    _bitflip(d / "checkpoints" / previous / "replica_003.npz")
    labels = (d / "labels.csv").read_bytes()
    _fails(capsys, _temper_toml(tmp_path, d), f"{latest}/replica_001.npz: truncated",
           f"previous checkpoint round {previous} is unusable too",
           f"{previous}/replica_003.npz: truncated or corrupt", "cannot resume")
    assert (d / "labels.csv").read_bytes() == labels


def test_temper_replica_from_another_round_is_refused(tmp_path, capsys, finished_tempering):
    """An intact replica file copied in from another round does not pass as this round's."""
    d = _copy(finished_tempering["final_only"], tmp_path / "pt")
    latest, _ = _rounds(d)
    other = _copy(finished_tempering["periodic"], tmp_path / "other")
    shutil.copy(other / "checkpoints" / "round_00000009" / "replica_000.npz",
                d / "checkpoints" / latest / "replica_000.npz")
    _fails(capsys, _temper_toml(tmp_path, d, checkpoint_every=0),
           "replica_000.npz: replica_header says replica 0 at round 9, expected replica 0 at "
           "round 10")
