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


def test_interrupt_on_other_mpi_ranks_is_silent(capsys, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    assert run_command(_raise_from_kernel, None) == 130
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("delay", [0.2, 1.0])
def test_sigint_during_a_run_exits_130_without_traceback(tmp_path, delay):
    proc = subprocess.Popen(
        [sys.executable, "-m", "swapmc.cli", "run", "ka2-x10", "-N", "300", "-s", "1000000",
         "-o", str(tmp_path / "r"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
        cwd=str(tmp_path),
        # A shell's background jobs (nohup, CI runners) may inherit SIGINT ignored; restore
        # the default so that the child sees Ctrl-C as a terminal user's process would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        thermo = tmp_path / "r" / "thermo.csv"
        deadline = time.time() + 120
        while not thermo.exists():  # sweeping (in compiled code most of the time) by now
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command" in err
    assert "Traceback" not in err and "SystemError" not in err
    assert os.path.exists(tmp_path / "r" / "config.toml")
