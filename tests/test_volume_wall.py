"""NPT at the minimum-image wall: volume moves that would make the box edge shorter than
2 r_c are rejected; a box pinned there does not sample the imposed pressure, and the run
says so (warning lines, ``summary.json``) instead of reporting a lower P silently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from swapmc.cli import main
from swapmc.mc import MonteCarlo, MoveSettings


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path, directory, pressure, n, production=200, checkpoint_every=0, name=None):
    path = tmp_path / (name or f"{directory.name}.toml")
    path.write_text(
        'preset = "ka2-x10"\n'
        f"[state]\npressure = {pressure}\n"
        f"[system]\nn = {n}\nmelt_sweeps = 20\n"
        f"[run]\nequilibration_sweeps = 100\nproduction_sweeps = {production}\nseed = 3\n"
        f'[output]\ndirectory = "{directory}"\nthermo_every = 10\n'
        f"checkpoint_every = {checkpoint_every}\nprogress = false\n")
    return ["run", str(path)]


def _summary(directory):
    return json.loads((directory / "summary.json").read_text())


def test_box_pinned_at_the_wall_warns_and_flags_the_pressure(tmp_path, capsys):
    """N = 160 at P = 60: the box edge wants to go below 2 r_c = 5 sigma."""
    d = tmp_path / "high"
    assert main(_toml(tmp_path, d, 60.0, 160)) == 0
    captured = capsys.readouterr()
    err = captured.err
    # The printed summary says it next to the pressure it qualifies.
    assert "    note: " in captured.out and "not sampled" in captured.out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    # Once per phase at a thermo row, and once at the end for production.
    assert any("equilibration, sweep" in w for w in warnings), err
    assert any("production, sweep" in w for w in warnings), err
    final = warnings[-1]
    assert "the imposed pressure P = 60" in final and "was not sampled" in final
    assert "2 r_c = 5" in final and "minimum-image" in final
    assert "more particles" in final and "lower pressure" in final
    s = _summary(d)
    wall = s["volume_wall"]
    assert wall["min_box_edge"] == 5.0 and wall["from_sweep"] == 120
    assert wall["attempts"] > 0 and wall["fraction"] > 0.01
    assert wall["rejected"] == round(wall["fraction"] * wall["attempts"])
    assert s["counters"]["volume_wall_rejections"] == wall["total_rejected"] >= wall["rejected"]
    assert s["pressure_note"] == wall["note"] and "not sampled" in s["pressure_note"]
    assert s["pressure"] < 60.0
    assert s["final_volume"] ** (1 / 3) < 5.0 * 1.01


def test_normal_pressure_gives_no_warning(tmp_path, capsys):
    d = tmp_path / "normal"
    assert main(_toml(tmp_path, d, 2.0, 200)) == 0
    assert "warning" not in capsys.readouterr().err
    s = _summary(d)
    assert s["volume_wall"]["rejected"] == 0 and s["volume_wall"]["note"] is None
    assert "pressure_note" not in s


def test_nvt_has_no_volume_wall_entry(tmp_path, capsys):
    d = tmp_path / "nvt"
    path = tmp_path / "nvt.toml"
    path.write_text('preset = "ka2-x10"\n[system]\nn = 200\nmelt_sweeps = 10\n'
                    "[run]\nequilibration_sweeps = 20\nproduction_sweeps = 20\n"
                    f'[output]\ndirectory = "{d}"\nprogress = false\n')
    assert main(["run", str(path)]) == 0
    assert _summary(d)["volume_wall"] is None


def test_wall_counter_survives_restart_exactly(tmp_path, capsys):
    """The counter is checkpointed: a run extended from a shorter one reports the same
    wall statistics as an uninterrupted one."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_toml(tmp_path, full, 60.0, 160, production=200, checkpoint_every=50)) == 0
    assert main(_toml(tmp_path, part, 60.0, 160, production=90, checkpoint_every=50,
                      name="p1.toml")) == 0
    assert main(_toml(tmp_path, part, 60.0, 160, production=200, checkpoint_every=50,
                      name="p2.toml")) == 0
    a, b = _summary(full), _summary(part)
    assert a["volume_wall"] == b["volume_wall"] and a["counters"] == b["counters"]
    assert (full / "thermo.csv").read_bytes() == (part / "thermo.csv").read_bytes()


def _sampler(ka2, liquid_factory, pressure, n=160, density=1.2):
    system = liquid_factory(ka2, n=n, density=density, seed=4)
    return MonteCarlo(system, ka2.model, 0.6, pressure=pressure,
                      moves=MoveSettings(p_swap=0.0, p_volume=0.2, lnv_step=0.05), seed=9)


def test_kernel_counts_moves_rejected_at_the_wall(ka2, liquid_factory):
    """Every volume attempt is accepted, rejected by Metropolis or rejected at the wall; a
    wall rejection only ever proposes an edge below 2 r_c."""
    mc = _sampler(ka2, liquid_factory, 60.0)
    mc.sweep(100)
    attempts, accepted = mc.counts[2]
    assert mc.wall_rejections > 0
    assert mc.wall_rejections <= attempts - accepted
    assert mc.lengths.min() >= mc.min_box_edge
    assert mc.counters()["volume_wall_rejections"] == mc.wall_rejections


def test_checkpoint_without_the_counter_still_loads(ka2, liquid_factory):
    """A sampler state written before the wall counter existed (three-entry ``nstats``, no
    ``wall_counted_from``) resumes; the counter then starts at the resume sweep."""
    mc = _sampler(ka2, liquid_factory, 60.0)
    mc.sweep(20)
    before = mc.wall_rejections
    state = mc.state_dict()
    header = json.loads(state["header"])
    del header["wall_counted_from"]
    state["header"] = json.dumps(header)
    state["nstats"] = state["nstats"][:3].copy()
    other = _sampler(ka2, liquid_factory, 60.0)
    other.load_state_dict({k: np.asarray(v) for k, v in state.items()})
    assert other.wall_rejections == 0 and other.wall_counted_from == 20
    assert np.array_equal(other.nstats[:3], mc.nstats[:3])
    # The sampling itself is unchanged: both continue identically.
    mc.sweep(20)
    other.sweep(20)
    assert np.array_equal(mc.pos, other.pos) and mc.energy == other.energy
    assert other.wall_rejections == mc.wall_rejections - before
