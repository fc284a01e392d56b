"""Ctrl-C ends every command with one line and exit code 130, never a traceback, also when
the interrupt lands inside a compiled kernel."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import subprocess_env

from swapmc.cli import run_command


def _raise_from_kernel(args):
    # What CPython reports when SIGINT arrives while a Numba dispatcher is running.
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as err:
        raise SystemError("CPUDispatcher(<function run_attempts>) returned a result with an "
                          "exception set") from err


def _raise_plain(args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("func", [_raise_from_kernel, _raise_plain])
def test_interrupt_inside_and_outside_kernels_is_one_line(func, capsys):
    assert run_command(func, None) == 130
    err = capsys.readouterr().err
    assert "interrupted; rerun the same command" in err and "Traceback" not in err


def test_unrelated_system_error_is_not_swallowed():
    def boom(args):
        raise SystemError("something else")

    with pytest.raises(SystemError):
        run_command(boom, None)


def _interrupt_swallowed(args):
    # What Numba does when SIGINT lands while it compiles a kernel for the first time: the
    # KeyboardInterrupt is lost and an unrelated error surfaces instead.
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        pass
    raise RuntimeError("no compiled object yet for propose_volume")


def test_interrupt_that_surfaces_as_another_error_is_still_one_line(capsys):
    assert run_command(_interrupt_swallowed, None) == 130
    err = capsys.readouterr().err
    assert "interrupted; rerun the same command" in err and "Traceback" not in err
    # The handler is Python's own again afterwards, and a RuntimeError without a Ctrl-C
    # is not swallowed.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def boom(args):
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        run_command(boom, None)


def test_swallowed_interrupt_stops_the_run_loop(tmp_path, monkeypatch):
    """A Ctrl-C that never became an exception (noted, then swallowed by a compilation)
    stops `swapmc run` at its next block: exit 130, and rerunning resumes."""
    from swapmc import interrupts
    from swapmc.cli import main
    from swapmc.mc import MonteCarlo

    original = MonteCarlo.sweep
    calls = []

    def sweep(self, n):
        calls.append(n)
        if len(calls) == 3:
            interrupts.note()  # what the SIGINT handler does before its exception is lost
        return original(self, n)

    monkeypatch.setattr(MonteCarlo, "sweep", sweep)
    out = str(tmp_path / "r")
    argv = ["run", "ka2-x10", "-N", "200", "-s", "400", "--equilibration-sweeps", "200",
            "-o", out, "--no-progress"]
    assert main(argv) == 130
    assert len(calls) == 3
    monkeypatch.setattr(MonteCarlo, "sweep", original)
    assert main(argv) == 0  # resumes and finishes
    assert not interrupts.received()


def _interrupted_run(tmp_path, sweeps, delay, env=None):
    """Start `swapmc run`, send Ctrl-C ``delay`` s after its thermo.csv appears; return the
    exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "swapmc.cli", "run", "ka2-x10", "-N", "300", "-s", str(sweeps),
         "-o", str(tmp_path / "r"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env or subprocess_env(), cwd=str(tmp_path),
        # A shell's background jobs (nohup, CI runners) may inherit SIGINT ignored; restore
        # the default so that the child sees Ctrl-C as a terminal user's process would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        thermo = tmp_path / "r" / "thermo.csv"
        deadline = time.time() + 120
        while not thermo.exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_swallowed_interrupt_stops_tempering(tmp_path, monkeypatch):
    """The same for `swapmc temper`: it stops after the round in which Ctrl-C arrived."""
    from swapmc import interrupts
    from swapmc.tempering.cli import main
    from swapmc.tempering.engine import ReplicaExchange

    original = ReplicaExchange.sample
    calls = []

    def sample(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            interrupts.note()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ReplicaExchange, "sample", sample)
    argv = ["ka2-x10", "-N", "200", "--t-min", "0.8", "--t-max", "1.2", "-M", "4", "-K", "5",
            "--equilibration-rounds", "4", "-r", "20", "-o", str(tmp_path / "pt"),
            "--no-progress", "--mpi", "off"]
    assert main(argv) == 130
    assert len(calls) == 2


def test_sigint_during_the_first_compilation_exits_130(tmp_path):
    """An empty Numba cache: Ctrl-C as soon as the run starts lands while its kernels
    compile."""
    env = dict(subprocess_env(), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    code, err = _interrupted_run(tmp_path, 1000, 0.0, env)
    assert code == 130, err
    assert "interrupted; rerun the same command" in err and "Traceback" not in err


def test_interrupt_on_other_mpi_ranks_is_silent(capsys, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    assert run_command(_raise_from_kernel, None) == 130
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("delay", [0.2, 1.0])
def test_sigint_during_a_run_exits_130_without_traceback(tmp_path, delay):
    # By then the run is sweeping, in compiled code most of the time.
    code, err = _interrupted_run(tmp_path, 1_000_000, delay)
    assert code == 130, err
    assert "interrupted; rerun the same command" in err
    assert "Traceback" not in err and "SystemError" not in err
    assert os.path.exists(tmp_path / "r" / "config.toml")


def _lattice_glass(path, n=256):
    from swapmc.build import composition_counts, lattice_configuration
    from swapmc.io import write_extxyz
    from swapmc.models import load_preset

    preset = load_preset("ka2-x10")
    counts = composition_counts(preset.composition, n, preset.model.species)
    system = lattice_configuration(counts, preset.model.species, preset.density, 1)
    with open(path, "w") as fh:
        write_extxyz(fh, system)
    return preset, system


def test_swallowed_interrupt_stops_md_and_minimisers(tmp_path):
    """A noted but swallowed Ctrl-C stops MD at its next step and FIRE / L-BFGS at their
    next iteration, before any work is done."""
    import numpy as np

    from swapmc import interrupts
    from swapmc.md import MD, ForceField, fire, maxwell_boltzmann
    from swapmc.md.minimize import lbfgs

    preset, system = _lattice_glass(tmp_path / "g.xyz")
    ff = ForceField(preset.model)
    system.velocities = maxwell_boltzmann(ff.masses(system.species), 0.5, ff.kB, ff.mvv2e,
                                          np.random.default_rng(1))
    md = MD(system, ff, 0.005)
    interrupts.note()
    try:
        with pytest.raises(KeyboardInterrupt):
            md.run(100)
        assert md.step == 0
        for minimiser in (fire, lbfgs):
            with pytest.raises(KeyboardInterrupt):
                minimiser(system, ff, fmax=1e-8, max_steps=1000)
    finally:
        interrupts.clear()
    md.run(3)
    assert md.step == 3


def test_swallowed_interrupt_stops_an_md_command(tmp_path, monkeypatch):
    """`swapmc relax` with a Ctrl-C noted after a few MD steps (as if a compilation had
    swallowed it) ends with exit 130 long before its hold is over."""
    from swapmc import interrupts
    from swapmc.cli import main
    from swapmc.md import MD

    _lattice_glass(tmp_path / "g.xyz")
    original = MD.compute_forces
    calls = []

    def compute_forces(self):
        calls.append(1)
        if len(calls) == 20:
            interrupts.note()
        return original(self)

    monkeypatch.setattr(MD, "compute_forces", compute_forces)
    argv = ["relax", str(tmp_path / "g.xyz"), "--preset", "ka2-x10", "-T", "0.3",
            "--duration", "50", "--equilibration-steps", "200", "-o", str(tmp_path / "r"),
            "--no-progress"]
    try:
        assert main(argv) == 130
        assert 20 <= len(calls) <= 25  # stopped at the next step, not after 10 000
    finally:
        interrupts.clear()
