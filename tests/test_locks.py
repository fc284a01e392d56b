"""One process per output directory, restart rules and `swapmc run` under mpiexec (issue:
hostile input and concurrency). Error paths go through the CLI: exit code and message."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import subprocess_env

from swapmc.cli import main
from swapmc.io.lock import DirectoryBusyError, DirectoryLock

RUN = ["run", "ka2-x01", "-N", "200", "-T", "1.0", "--equilibration-sweeps", "10",
       "--no-progress"]


def test_second_process_on_a_locked_directory_fails_fast_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "r"
    with DirectoryLock(str(out), "swapmc run (test holder)"):
        code = main(RUN + ["-s", "20", "-o", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert "in use by swapmc run (test holder)" in err and f"pid {os.getpid()}" in err
    assert not (out / "thermo.csv").exists()  # nothing was written by the refused run
    assert main(RUN + ["-s", "20", "-o", str(out)]) == 0  # free again


def test_a_lock_left_by_a_killed_process_does_not_block_a_rerun(tmp_path):
    out = tmp_path / "r"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from swapmc.io.lock import DirectoryLock\n"
         f"DirectoryLock({str(out)!r}, 'holder').acquire(); print('held', flush=True)\n"
         "time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusyError, match="in use by holder"):
            DirectoryLock(str(out)).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.time() + 10
    while True:  # the kernel releases the flock when the holder dies
        try:
            DirectoryLock(str(out)).acquire().release()
            break
        except DirectoryBusyError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert (out / ".swapmc.lock").exists()


def test_temper_refuses_a_locked_directory(tmp_path, capsys):
    out = tmp_path / "pt"
    with DirectoryLock(str(out), "another job"):
        code = main(["temper", "ka2-x01", "-N", "200", "--t-min", "1.0", "--t-max", "1.2",
                     "-M", "2", "-r", "2", "-o", str(out), "--no-progress"])
    assert code != 0 and "in use by another job" in capsys.readouterr().err


def test_rerun_with_fewer_sweeps_is_refused_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(RUN + ["-s", "40", "-o", str(out)]) == 0
    # Every output file is unchanged (the lock file only records its latest holder).
    before = {p.name: p.read_bytes() for p in out.iterdir()
              if p.is_file() and p.name != ".swapmc.lock"}
    capsys.readouterr()
    code = main(RUN + ["-s", "20", "-o", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert "production_sweeps = 40" in err and "not shorten" in err
    after = {p.name: p.read_bytes() for p in out.iterdir()
             if p.is_file() and p.name != ".swapmc.lock"}
    assert after == before


@pytest.mark.parametrize("env", [{"PMI_SIZE": "2", "PMI_RANK": "0"},
                                 {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "0"}])
def test_run_under_mpiexec_says_what_to_use(tmp_path, capsys, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main(RUN + ["-s", "20", "-o", str(tmp_path / "r")])
    assert code != 0
    err = capsys.readouterr().err
    assert "library build" in err and "temper" in err
    assert not (tmp_path / "r").exists()


def test_run_under_mpiexec_other_ranks_exit_quietly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    with pytest.raises(SystemExit) as exc:
        main(RUN + ["-s", "20", "-o", str(tmp_path / "r")])
    assert exc.value.code == 1
    assert capsys.readouterr().err == ""
