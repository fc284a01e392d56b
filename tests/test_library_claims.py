"""Chains claimed through the library store (leases, renewal, expiry, take-over), builds
shared by concurrent jobs and MPI ranks, and library paths that need escaping in a SQLite
URI."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import LIBRARY_TOML, MPIEXEC, subprocess_env

from swapmc import Box, System
from swapmc.library import Library, build_library
from swapmc.library.build import LibraryBuilder
from swapmc.library.settings import build_fingerprint, chain_directory, resolve
from swapmc.library.store import Worker

BUILD = "f" * 64


def _system(n=20, seed=0):
    rng = np.random.default_rng(seed)
    box = Box([4.0, 4.0, 4.0], [0.0, 0.0, 0.0])
    return System(rng.uniform(0, 4.0, (n, 3)), rng.integers(0, 2, n), ("A", "B"), box)


def _meta(chain, build=BUILD, energy=-1.0):
    return {"build": build, "chain": chain, "source": "chain", "model": "toy",
            "model_hash": "h" * 64, "kind": "lj", "units": "lj", "species_names": ["A", "B"],
            "composition": {"A": 10, "B": 10}, "masses": [1.0, 1.0], "n": 20,
            "temperature": 0.5, "density": 1.2, "seed": chain, "sweeps": 10,
            "production_sweeps": 5, "verdict": "certified", "reasons": "",
            "energy": energy - chain}


def _elsewhere(name, pid=4242):
    """A worker on another host (its pid cannot be checked from here)."""
    return Worker(f"token-{name}", f"node-{name}", pid, 0, None)


def _dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60)
    return int(proc.stdout)


# ------------------------------------------------------------------ claims, in the store
def test_claims_take_the_lowest_chain_nobody_stored_or_holds(tmp_path):
    a, b = _elsewhere("a"), _elsewhere("b")
    with Library(str(tmp_path / "lib.sqlite"), create=True) as lib:
        lib.add_sample(_meta(1), _system(), None)  # chain 1 is done
        assert lib.claim_chain(BUILD, 5, a, 60, now=0).chain == 0
        assert lib.claim_chain(BUILD, 5, b, 60, now=1).chain == 2
        assert lib.claim_chain(BUILD, 5, b, 60, now=2, exclude=[3]).chain == 4
        assert lib.claim_chain(BUILD, 5, a, 60, now=3).chain == 3
        assert lib.claim_chain(BUILD, 5, a, 60, now=4) is None  # all stored or held
        assert lib.claim_chain("other-build", 1, a, 60, now=4).chain == 0
        held = {(c["build"], c["chain"]): c for c in lib.claims(now=5)}
        assert sorted(c for bld, c in held if bld == BUILD) == [0, 2, 3, 4]
        c0 = held[(BUILD, 0)]
        assert (c0["token"], c0["host"], c0["pid"], c0["rank"]) == ("token-a", "node-a",
                                                                    4242, 0)
        assert (c0["claimed"], c0["heartbeat"], c0["expires"], c0["live"]) == (0, 0, 60, True)
        # Storing a sample ends the claim on it in the same transaction.
        out = lib.add_claimed_sample(_meta(0), _system(), None, a, now=10)
        assert out.sample_id is not None and out.taken_over_by is None
        assert [c["chain"] for c in lib.claims(BUILD, now=10)] == [2, 3, 4]
        lib.release_claim(BUILD, 4, a)  # not a's: stays
        lib.release_claim(BUILD, 4, b)
        assert [c["chain"] for c in lib.claims(BUILD, now=10)] == [2, 3]
        assert lib.claim_chain(BUILD, 5, a, 60, now=11).chain == 4


def test_a_lease_binds_until_it_expires_and_renewal_extends_it(tmp_path):
    a, b = _elsewhere("a"), _elsewhere("b")
    with Library(str(tmp_path / "lib.sqlite"), create=True) as lib:
        assert lib.claim_chain(BUILD, 1, a, 60, now=0).chain == 0
        assert lib.claim_chain(BUILD, 1, b, 60, now=59.9) is None
        assert lib.renew_claim(BUILD, 0, a, 60, now=50)  # expires at 110 now
        (row,) = lib.claims(BUILD, now=50)
        assert (row["claimed"], row["heartbeat"], row["expires"]) == (0, 50, 110)
        assert lib.claim_chain(BUILD, 1, b, 60, now=109.9) is None
        # Expired: anyone may take it, and learns whose claim it replaces.
        taken = lib.claim_chain(BUILD, 1, b, 60, now=110)
        assert taken.chain == 0 and taken.previous == a
        assert lib.claims(BUILD, now=110)[0]["token"] == "token-b"
        # The late renewal of the old owner fails while b's lease is live ...
        assert not lib.renew_claim(BUILD, 0, a, 60, now=111)
        # ... and takes the chain back once b let it go (or b's lease lapsed).
        lib.release_claim(BUILD, 0, b)
        assert lib.renew_claim(BUILD, 0, a, 60, now=112)
        assert lib.claims(BUILD, now=112)[0]["token"] == "token-a"
        assert lib.claim_chain(BUILD, 1, b, 60, now=500).previous == a
        assert lib.renew_claim(BUILD, 0, a, 60, now=900)  # b's lease lapsed at 560
        # A stored chain cannot be renewed or claimed.
        lib.add_sample(_meta(0), _system(), None)
        assert not lib.renew_claim(BUILD, 0, a, 60, now=901)
        assert lib.claim_chain(BUILD, 1, b, 60, now=2000) is None
        assert lib.claims(BUILD) == []


def test_a_claim_of_a_dead_process_on_this_host_is_free_at_once(tmp_path):
    me = Worker.this_process()
    host = me.host
    dead = Worker("token-dead", host, _dead_pid(), 0, None)
    reused = Worker("token-reused", host, os.getpid(), 0, "1")  # our pid, another start time
    alive = Worker.this_process(rank=1)  # this very process, another token: live
    far = Worker("token-far", "node-far", dead.pid, 0, None)  # cannot be checked: lease rules
    with Library(str(tmp_path / "lib.sqlite"), create=True) as lib:
        for k, owner in enumerate((dead, reused, alive, far)):
            assert lib.renew_claim(BUILD, k, owner, 600, now=0)  # places owner's claim on k
        live = {c["chain"]: c["live"] for c in lib.claims(BUILD, now=1)}
        assert live == {0: False, 1: False, 2: True, 3: True}
        assert lib.claim_chain(BUILD, 4, me, 600, now=1).chain == 0
        assert lib.claim_chain(BUILD, 4, me, 600, now=1).chain == 1
        assert lib.claim_chain(BUILD, 4, me, 600, now=1) is None
        got = lib.claim_chain(BUILD, 4, me, 600, now=600)
        assert got.chain == 2 and got.previous == alive


def test_an_expired_worker_that_finishes_anyway_creates_no_duplicate(tmp_path):
    """a's lease expires, b takes the chain over; a finishes first and stores: the sample is
    kept (it is the chain's sample) and a learns that b still works on the chain; b then
    finds it stored and writes nothing. One sample, no claim left, nothing raised."""
    a, b = _elsewhere("a"), _elsewhere("b")
    path = str(tmp_path / "lib.sqlite")
    with Library(path, create=True) as lib:
        lib.claim_chain(BUILD, 1, a, 60, now=0)
        assert lib.claim_chain(BUILD, 1, b, 60, now=61).previous == a
        first = lib.add_claimed_sample(_meta(0), _system(seed=1), None, a, now=70)
        assert first.sample_id is not None and first.taken_over_by == b
        assert not lib.renew_claim(BUILD, 0, b, 60, now=71)
        second = lib.add_claimed_sample(_meta(0, energy=-9.0), _system(seed=2), None, b,
                                        now=80)
        assert second.sample_id is None and second.taken_over_by is None
        (s,) = lib.query(verdict="all")
        assert s.meta["energy"] == -1.0
        assert np.array_equal(s.system.positions, _system(seed=1).positions)
        assert lib.claims() == []
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute("INSERT INTO samples (build, chain, source, model, model_hash, kind, "
                   "units, species_names, composition, masses, n, temperature, density, "
                   "seed, sweeps, production_sweeps, verdict, reasons, energy, "
                   "swapmc_version, created) SELECT build, chain, source, model, model_hash, "
                   "kind, units, species_names, composition, masses, n, temperature, "
                   "density, seed, sweeps, production_sweeps, verdict, reasons, energy, "
                   "swapmc_version, created FROM samples")
    db.close()


def test_a_library_written_before_claims_is_read_and_gains_the_table(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with Library(path, create=True) as lib:
        lib.add_sample(_meta(0), _system(), None)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE claims")
    db.commit()
    db.close()
    with Library(path) as lib:  # read-only: left as it is
        assert lib.claims() == [] and lib.count() == {"certified": 1, "failed": 0}
    db = sqlite3.connect(path)
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'claims'").fetchall()
    db.close()
    with Library(path, create=True) as lib:
        assert lib.claim_chain(BUILD, 3, _elsewhere("a"), 60, now=0).chain == 1
        assert lib.get(1).meta["chain"] == 0


def test_lease_seconds_is_validated_and_not_fingerprinted(tmp_path):
    from swapmc._toml import ConfigError

    cfg = _toml(tmp_path, "lib", 1)
    base = resolve(cfg)
    assert base["library"]["lease_seconds"] == 600.0
    short = resolve(cfg, {"library": {"lease_seconds": 30}})
    assert build_fingerprint(short) == build_fingerprint(base)
    # Builds made before the key existed keep their fingerprint.
    del base["library"]["lease_seconds"]
    assert build_fingerprint(base) == build_fingerprint(short)
    for bad in (float("nan"), float("inf"), 0.5, -1, "10", True):
        with pytest.raises(ConfigError, match=r"\[library\] lease_seconds must be a finite"):
            resolve(cfg, {"library": {"lease_seconds": bad}})
    text = open(cfg).read() + "lease_seconds = nan\n"
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "swapmc", "library", "build", str(bad_cfg)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.search(r"bad\.toml:\d+: \[library\] lease_seconds must be a finite",
                     proc.stderr), proc.stderr


# ------------------------------------------------------------------ builds


def _toml(tmp_path, name, samples, library=None):
    path = tmp_path / f"{name}.toml"
    lib = library or str(tmp_path / f"{name}.sqlite")
    escaped = lib.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(LIBRARY_TOML.format(path=escaped, samples=samples, extra=""))
    return str(path)


def _chains(path):
    """chain -> (E/N, E_IS/N, equilibrium positions, inherent positions) of a library."""
    with Library(path) as lib:
        samples = lib.query(verdict="all")
        chains = [s.meta["chain"] for s in samples]
        assert len(chains) == len(set(chains)), f"duplicate chains in {path}: {chains}"
        return {s.meta["chain"]: (s.meta["energy"], s.meta["is_energy"],
                                  s.system.positions, s.inherent.positions) for s in samples}


def _assert_same(got, ref):
    assert set(got) <= set(ref)
    for k, (e, e_is, pos, ipos) in got.items():
        assert (e, e_is) == ref[k][:2], f"chain {k}"
        assert np.array_equal(pos, ref[k][2]) and np.array_equal(ipos, ref[k][3]), f"chain {k}"


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """A serial build of 6 chains: the reference every shared build must equal."""
    tmp = tmp_path_factory.mktemp("serial")
    result = build_library(_toml(tmp, "ref", 6), log=lambda *a: None)
    assert result.chains == list(range(6))
    return _chains(result.path)


def _launch(cmd, **kw):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(),
                            # Background shells may hand SIGINT down ignored; restore it.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kw)


def _finish(procs, timeout=600):
    deadline = time.time() + timeout
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        pytest.fail("a library build hung")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


STORED = re.compile(r"^chain\s+(\d+) -> sample \d+:", re.M)


def test_concurrent_jobs_share_the_chains_of_one_build(serial, tmp_path):
    """Three `swapmc library build` jobs on one file at once: each chain is run by exactly
    one job, every chain is stored once, and the samples are those of a serial build."""
    cfg = _toml(tmp_path, "lib", 6)
    cmd = [sys.executable, "-m", "swapmc", "library", "build", cfg, "--no-progress"]
    procs = [_launch(cmd) for _ in range(3)]
    outs = _finish(procs)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "already stored" not in out and "Traceback" not in err
    ran = [[int(k) for k in STORED.findall(out)] for out, _ in outs]
    every = sorted(sum(ran, []))
    assert every == list(range(6)), ran  # no chain run twice, none left out
    got = _chains(str(tmp_path / "lib.sqlite"))
    assert sorted(got) == list(range(6))
    _assert_same(got, serial)
    with Library(str(tmp_path / "lib.sqlite")) as lib:
        assert lib.claims() == [] and lib.check() == "ok"
    assert not os.path.exists(str(tmp_path / "lib.sqlite") + ".work")


def test_a_dead_workers_chain_is_resumed_when_its_lease_expires(serial, tmp_path):
    """A job is killed (SIGKILL) in the middle of chain 0; its claim is made to look as if it
    ran on another node, so only the lease can free it. Another job leaves the chain alone
    while the lease runs, then takes it over, resumes the checkpoint and stores the sample a
    serial build made."""
    cfg = _toml(tmp_path, "lib", 1)
    path = str(tmp_path / "lib.sqlite")
    checkpoint = os.path.join(chain_directory(resolve(cfg), build_fingerprint(resolve(cfg)),
                                              0), "checkpoint.npz")
    proc = _launch([sys.executable, "-m", "swapmc", "library", "build", cfg, "--no-progress"])
    try:
        deadline = time.time() + 300
        while not os.path.exists(checkpoint):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Library(path) as lib:
        assert lib.count() == {"certified": 0, "failed": 0}, "the chain ended before the kill"
        (claim,) = lib.claims()
        # On this host the claim of a process that is gone binds nobody ...
        assert claim["pid"] == proc.pid and not claim["live"]
    db = sqlite3.connect(path)
    db.execute("UPDATE claims SET host = 'node-gone'")
    db.commit()
    db.close()
    with Library(path) as lib:  # ... but from another node only the lease can tell
        assert lib.claims()[0]["live"]
    lines = []
    early = build_library(cfg, log=lines.append)
    assert early.made == [] and early.chains == []
    assert "1 of them in flight in other jobs" in lines[0]
    assert "chain(s) [0] still in flight" in lines[-1]
    assert os.path.exists(checkpoint)
    lines.clear()
    later = build_library(cfg, log=lines.append, clock=lambda: time.time() + 601)
    assert later.chains == [0] and len(later.made) == 1
    assert any(f"taking over from pid {proc.pid} (rank 0) on host node-gone" in line
               and "resuming from its checkpoint" in line for line in lines), lines
    _assert_same(_chains(path), serial)
    with Library(path) as lib:
        assert lib.claims() == []


def test_a_chain_whose_directory_a_live_process_holds_is_left_to_it(serial, tmp_path):
    """A worker whose lease lapsed while it kept running still holds the chain's work
    directory: a new claimant leaves that chain (gives its claim back) and goes on."""
    from swapmc.io.lock import DirectoryLock

    cfg = _toml(tmp_path, "lib", 2)
    resolved = resolve(cfg)
    directory = chain_directory(resolved, build_fingerprint(resolved), 0)
    lines = []
    with DirectoryLock(directory, "swapmc run (a lapsed worker)"):
        first = build_library(cfg, log=lines.append)
    assert first.chains == [1]
    assert any("chain     0: left to the process running it" in line
               and "a lapsed worker" in line for line in lines), lines
    with Library(first.path) as lib:
        assert lib.claims() == []
    second = build_library(cfg, log=lines.append)
    assert second.chains == [0]
    got = _chains(first.path)
    assert sorted(got) == [0, 1]
    _assert_same(got, serial)


def test_the_builder_renews_its_lease_while_a_chain_runs(serial, tmp_path, monkeypatch):
    """With a clock that jumps 100 s at each reading and a 60 s lease, every thermo row and
    checkpoint of the chain is due for a renewal: each one succeeds, and the lease never
    lapses (a lapse would be logged)."""
    renewals = []
    original = Library.renew_claim

    def recording(self, build, chain, worker, lease_s, now=None):
        held = original(self, build, chain, worker, lease_s, now=now)
        renewals.append((chain, now, held))
        return held

    monkeypatch.setattr(Library, "renew_claim", recording)
    ticks = iter(range(10**9))
    lines = []
    cfg = _toml(tmp_path, "lib", 1)
    result = build_library(cfg, {"library": {"lease_seconds": 60}}, log=lines.append,
                           clock=lambda: 1e9 + 100.0 * next(ticks))
    assert result.chains == [0]
    # 1520 sweeps: 30 thermo rows and 15 checkpoints, plus the quench.
    assert len(renewals) >= 40 and all(held for _, _, held in renewals)
    assert [n for _, n, _ in renewals] == sorted(n for _, n, _ in renewals)
    assert not any("lease lapsed" in line for line in lines)
    _assert_same(_chains(result.path), serial)


@pytest.mark.mpi
def test_mpi_ranks_claim_chains_dynamically(serial, tmp_path):
    """mpiexec -n 2 over chains of unequal cost: chains 1 and 2 have already run to the end
    in their work directories (only the quench is left), chains 0 and 3 must run in full.
    Static striding would give the ranks {0, 2} and {1, 3}; claiming gives one rank chain 0
    while the other does 1, 2 and then 3. The samples equal a serial build's."""
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")
    cfg = _toml(tmp_path, "lib", 4)
    ahead = LibraryBuilder(resolve(cfg), log=lambda *a: None)
    for chain in (1, 2):
        ahead._run_chain(chain)
    proc = _launch([MPIEXEC, "-n", "2", sys.executable, "-m", "swapmc", "library", "build",
                    cfg, "--no-progress"])
    ((out, err),) = _finish([proc], timeout=600)
    assert proc.returncode == 0, out + err
    assert "4 to make on 2 process(es)" in out
    found = re.search(r"chains run per rank: rank 0: (\[[\d, ]*\]); rank 1: (\[[\d, ]*\])",
                      out)
    assert found, out
    per_rank = sorted([json.loads(found.group(1)), json.loads(found.group(2))])
    assert per_rank == [[0], [1, 2, 3]], out
    got = _chains(str(tmp_path / "lib.sqlite"))
    assert sorted(got) == [0, 1, 2, 3]
    _assert_same(got, serial)


# ------------------------------------------------------------------ paths in SQLite URIs
@pytest.mark.parametrize("name", ["x%41.sqlite", "a#b.sqlite", "a?b.sqlite",
                                  "with space.sqlite", "glä ß✓.sqlite", "%2e%2F#?x.sqlite"])
def test_library_paths_are_escaped(tmp_path, name):
    folder = tmp_path / "dir #?%41 é"
    path = str(folder / name)
    with Library(path, create=True) as lib:
        lib.add_sample(_meta(0), _system(), None)
    with Library(path) as lib:  # read-only: the URI path
        assert [s.meta["chain"] for s in lib.query()] == [0]
        assert lib.check() == "ok"
    with Library(path, create=True) as lib:
        lib.add_sample(_meta(1), _system(), None)
    assert os.listdir(folder) == [name]
    assert os.listdir(tmp_path) == [folder.name]


def test_build_ls_export_with_a_path_that_needs_escaping(serial, tmp_path, capsys):
    from swapmc.cli import main

    folder = tmp_path / "runs #1? 100%41 ü"
    path = str(folder / "gläss #2?%41.sqlite")
    cfg = _toml(tmp_path, "lib", 1, library=path)
    assert main(["library", "build", cfg, "--no-progress"]) == 0
    assert "holds 0 certified and 1 failed" in capsys.readouterr().out
    assert os.listdir(folder) == ["gläss #2?%41.sqlite"]
    assert main(["library", "ls", path, "--verdict", "all"]) == 0
    assert "1 sample(s) match" in capsys.readouterr().out
    assert main(["library", "export", path, "--verdict", "all", "-o",
                 str(tmp_path / "ex")]) == 0
    assert "exported 1 sample(s)" in capsys.readouterr().out
    assert main(["library", "check", path]) == 0
    assert os.listdir(folder) == ["gläss #2?%41.sqlite"]
    assert sorted(os.listdir(tmp_path)) == sorted(["ex", "lib.toml", folder.name])
    _assert_same(_chains(path), serial)


def test_a_chain_with_every_checkpoint_damaged_restarts_and_equals_the_serial_build(
        serial, tmp_path, capsys):
    # A killed build left chain 0 with both checkpoints destroyed (a full disk): the next
    # build keeps the damaged directory aside, restarts the chain from its seed and stores
    # the same sample as an uninterrupted build.
    from swapmc.library.settings import build_fingerprint, chain_directory, resolve

    cfg_path = _toml(tmp_path, "dmg", 2)
    cfg = resolve(cfg_path)
    chain_dir = chain_directory(cfg, build_fingerprint(cfg), 0)
    os.makedirs(chain_dir)
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        with open(os.path.join(chain_dir, name), "wb") as fh:
            fh.write(b"PK\x03\x04 cut short by a full disk")
    result = build_library(cfg_path, log=lambda *a: None)
    err = capsys.readouterr().err
    assert result.chains == [0, 1]
    _assert_same(_chains(result.path), serial)
    assert "chain 0:" in err and "restarts from the beginning" in err and "Traceback" not in err
    aside = chain_dir + ".damaged"
    kept = sorted(name for name in os.listdir(aside) if name != ".swapmc.lock")
    assert kept == ["checkpoint.npz", "checkpoint.prev.npz"]
