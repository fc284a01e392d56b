"""Progress lines (swapmc.progress) and the step reports of the MD protocols.

A log file (any stream that is not a terminal) gets plain lines of at most 80 columns and no
carriage return; only rank 0 draws; the rate and remaining time start after the first
block (the JIT compilation); the protocols report monotone progress in MD steps without
changing their results; ``swapmc dms``/``relax``/``minimize`` draw on standard error only.
"""

import io
import math

import numpy as np
import pytest

from swapmc import progress as progress_module
from swapmc.build import composition_counts, lattice_configuration
from swapmc.io import write_extxyz
from swapmc.md import ForceField, fire
from swapmc.md.protocols import (
    dms_sweep,
    npt_equilibrate,
    oscillatory_strain,
    step_strain_relaxation,
)
from swapmc.models import LJMixture, load_preset
from swapmc.progress import LOG_COLUMNS, Progress


class FakeClock:
    """Stands in for time.perf_counter, so timings are exact."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progress_module.time, "perf_counter", c)
    return c


def _long_text():
    return "production T=0.4321 E/N=-7.123456 and more words than any line can hold " * 2


def test_log_lines_plain_and_narrow(clock):
    """Not a terminal: plain lines, each <= 80 columns, no carriage return, one when the job
    starts, then at most every 30 s, and the final one when forced."""
    s = io.StringIO()
    p = Progress(100_000, stream=s, rank=0)
    assert p.min_interval == 30.0
    clock.now += 45.0
    p.update(1_000, _long_text())
    for k in range(2, 50):  # 48 updates, one per second: no line within 30 s but one
        clock.now += 1.0
        p.update(1_000 * k, _long_text())
    clock.now += 1.0
    p.update(100_000, "done", force=True)
    p.close()
    text = s.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 3  # start, after 30 s, end
    assert all(len(ln) <= LOG_COLUMNS for ln in lines)
    assert lines[0].lstrip().startswith("1%") and "production T=0.4321" in lines[0]
    assert lines[-1].lstrip().startswith("100%") and lines[-1].endswith("done")
    assert "sweeps/s" in lines[1]


def test_rate_and_eta_exclude_compilation(clock):
    """45 s of compilation before the first block, then 100 sweeps/s: the rate says 100 and
    the remaining time is 89 s for the 8 900 sweeps left, not the average over 46 s."""
    s = io.StringIO()
    p = Progress(10_000, stream=s, rank=0, min_interval=0)
    clock.now += 45.0
    p.update(1_000, "melt")
    assert p.rate() is None  # one measurement: no rate yet
    assert "?" in s.getvalue().splitlines()[0]
    clock.now += 1.0
    p.update(1_100, "melt")
    assert p.rate() == pytest.approx(100.0)
    line = s.getvalue().splitlines()[-1]
    assert "100 sweeps/s" in line
    assert "00:46<01:29" in line  # elapsed wall time since the start; 89 s remaining


def test_silent_off_rank_zero_and_when_disabled(clock, monkeypatch):
    for kwargs in ({"rank": 1}, {"enabled": False, "rank": 0}):
        s = Terminal()
        p = Progress(100, stream=s, min_interval=0, **kwargs)
        p.update(10, "x")
        p.update(100, "done", force=True)
        p.close()
        assert s.getvalue() == "", kwargs
    # Under a launcher, the rank comes from its environment when not given.
    monkeypatch.setenv("PMI_RANK", "3")
    s = io.StringIO()
    p = Progress(100, stream=s, min_interval=0)
    p.update(100, "done", force=True)
    assert s.getvalue() == ""
    monkeypatch.setenv("PMI_RANK", "0")
    p = Progress(100, stream=s, min_interval=0)
    p.update(100, "done", force=True)
    assert "100%" in s.getvalue()


def test_terminal_bar_fits_its_width(clock):
    """On a terminal tqdm redraws in place (carriage returns), within the given width, and
    leaves the final state on its own line."""
    s = Terminal()
    p = Progress(5_000, stream=s, rank=0, min_interval=0, columns=60)
    clock.now += 30.0
    p.update(100, _long_text())
    clock.now += 1.0
    p.update(2_600, _long_text())
    p.write("a result row")
    p.update(5_000, "done", force=True)
    p.close()
    text = s.getvalue()
    assert "\r" in text and text.endswith("\n")
    frames = [f.rstrip() for f in text.replace("\n", "\r").split("\r") if f.strip()]
    assert frames and all(len(f) <= 60 for f in frames)
    assert any("2500 sweeps/s" in f for f in frames)
    # The stage text gives way before the numbers, and the bar keeps some cells.
    line = p.format(columns=60, bar=True)
    assert len(line) <= 60 and "sweeps/s" in line and "|" in line


def test_counter_without_total(clock):
    s = io.StringIO()
    p = Progress(None, stream=s, rank=0, min_interval=0, unit="FIRE steps")
    p.update(0, "a.xyz")
    clock.now += 2.0
    p.update(10, "a.xyz")
    clock.now += 1.0
    p.update(510, "a.xyz FIRE max|F|=1e-3")
    line = s.getvalue().splitlines()[-1]
    assert line.startswith("510 FIRE steps") and "500 FIRE steps/s" in line
    assert "%" not in line


# ----------------------------------------------------------------------------- protocols
@pytest.fixture(scope="module")
def crystal():
    """LJ fcc crystal, N = 256 (small and fast; the protocols need no glass to report)."""
    model = LJMixture(("A",), np.ones((1, 1)), np.ones((1, 1)), np.full((1, 1), 2.5), (1.0,))
    return ForceField(model), lattice_configuration([256], ("A",), 1.09, seed=0)


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total, stage):
        self.calls.append((done, total, stage))

    def check(self):
        """Monotone steps, one total, the last report at the total; returns the total."""
        assert self.calls
        done = [c[0] for c in self.calls]
        totals = {c[1] for c in self.calls}
        assert len(totals) == 1
        total = totals.pop()
        assert all(b >= a for a, b in zip(done, done[1:])), done
        assert done[0] == 0 and done[-1] == total
        return total


def test_npt_and_oscillation_report_steps(crystal):
    ff, s = crystal
    rec = Recorder()
    r1 = npt_equilibrate(s, ff, temperature=0.02, pressure=0.0, steps=60,
                         rng=np.random.default_rng(3), step_progress=rec)
    assert rec.check() == 60
    assert all(stage == "NPT T=0.02 P=0" for _, _, stage in rec.calls)
    # The trajectory does not depend on the report.
    r0 = npt_equilibrate(s, ff, temperature=0.02, pressure=0.0, steps=60,
                         rng=np.random.default_rng(3))
    assert np.array_equal(r0.system.positions, r1.system.positions)
    assert r0.volume == r1.volume

    rec = Recorder()
    kwargs = dict(temperature=0.02, period=0.25, n_cycles=3, equilibration_steps=20,
                  pressure=0.0, npt_steps=30)
    run1 = oscillatory_strain(s, ff, rng=np.random.default_rng(4), step_progress=rec, **kwargs)
    n_osc = math.ceil(3 * 0.25 / 0.005) + 1
    assert rec.check() == 30 + 20 + n_osc
    stages = [c[2] for c in rec.calls]
    assert stages[0].startswith("NPT") and any(st.startswith("NVT") for st in stages)
    assert "DMS T=0.02 omega=25.1 cycle 1/3" in stages
    assert stages[-1] == "DMS T=0.02 omega=25.1 cycle 3/3"
    run0 = oscillatory_strain(s, ff, rng=np.random.default_rng(4), **kwargs)
    assert np.array_equal(run0.stress, run1.stress)


def test_dms_sweep_and_relaxation_report_steps(crystal):
    ff, s = crystal
    rec = Recorder()
    rows = dms_sweep([s, s.copy()], ff, omegas=[2 * math.pi / 0.25, 2 * math.pi / 0.3],
                     temperatures=[0.02, 0.03], n_cycles=3, equilibration_steps=15,
                     rng=np.random.default_rng(5), step_progress=rec)
    n_osc = (math.ceil(3 * 0.25 / 0.005) + 1) + (math.ceil(3 * 0.3 / 0.005) + 1)
    assert rec.check() == 2 * 2 * (15 + n_osc)
    stages = {c[2] for c in rec.calls}
    assert "NVT T=0.03, glass 2/2" in stages
    assert any(st.startswith("DMS T=0.02 omega=25.1 cycle 2/3, glass 1/2") for st in stages)
    rows0 = dms_sweep([s, s.copy()], ff, omegas=[2 * math.pi / 0.25, 2 * math.pi / 0.3],
                      temperatures=[0.02, 0.03], n_cycles=3, equilibration_steps=15,
                      rng=np.random.default_rng(5))
    assert [r.m_storage for r in rows] == [r.m_storage for r in rows0]

    rec = Recorder()
    res = step_strain_relaxation([s, s.copy()], ff, temperature=0.02, duration=0.1,
                                 equilibration_steps=10, decorrelation_steps=5, repeats=2,
                                 fit=False, rng=np.random.default_rng(6), step_progress=rec)
    assert rec.check() == 2 * (10 + 2 * (5 + 2 * 20))
    stages = {c[2] for c in rec.calls}
    assert "hold T=0.02 -eps, repeat 2/2, glass 2/2" in stages
    res0 = step_strain_relaxation([s, s.copy()], ff, temperature=0.02, duration=0.1,
                                  equilibration_steps=10, decorrelation_steps=5, repeats=2,
                                  fit=False, rng=np.random.default_rng(6))
    assert np.array_equal(res.stress, res0.stress)


def test_fire_reports_iterations(crystal):
    ff, s = crystal
    rng = np.random.default_rng(7)
    shaken = s.copy()
    shaken.positions = shaken.positions + rng.normal(0, 0.03, shaken.positions.shape)
    calls = []
    r = fire(shaken, ff, fmax=1e-4, max_steps=5000,
             step_progress=lambda done, total, stage: calls.append((done, total, stage)))
    done = [c[0] for c in calls]
    assert done[0] == 0 and done[-1] == r.steps
    assert all(b > a for a, b in zip(done, done[1:]))
    assert {c[1] for c in calls} == {5000}
    assert calls[-1][2].startswith("FIRE max|F|=")
    assert fire(shaken, ff, fmax=1e-4, max_steps=5000).energy == r.energy


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def ka_config(tmp_path_factory):
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = lattice_configuration(counts, pre.model.species, 1.2, seed=1)
    path = tmp_path_factory.mktemp("cfg") / "final.xyz"
    write_extxyz(str(path), s)
    return str(path)


@pytest.mark.filterwarnings("ignore:KWW fit ended on the bound")
@pytest.mark.parametrize("command", [
    ["relax", "--duration", "0.1", "--repeats", "1", "--equilibration-steps", "20",
     "--decorrelation-steps", "10"],
    ["dms", "--periods", "0.2", "--cycles", "3", "--equilibration-steps", "20"],
    ["minimize", "--fmax", "1e-2"],
])
def test_md_commands_draw_progress_on_stderr(command, ka_config, tmp_path, capsys):
    from swapmc.cli import main

    argv = [command[0], ka_config, "--preset", "ka2-x10", "-o", str(tmp_path / "o")]
    argv += command[1:]
    if command[0] != "minimize":
        argv += ["-T", "0.5", "0.6"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    unit = "FIRE steps" if command[0] == "minimize" else "MD steps"
    assert f"{unit}/s" in err and "done" in err.splitlines()[-1]
    bar_lines = [ln for ln in err.splitlines() if f"{unit}/s" in ln]
    assert "\r" not in err and all(len(ln) <= LOG_COLUMNS for ln in bar_lines)
    assert unit not in out and "wrote" in out
    assert main(argv + ["--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert unit not in err
