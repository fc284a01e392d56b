"""Libraries at cluster scale: sharded builds (Slurm array tasks, one file each, chains split
k mod n), `swapmc library merge` (verification, idempotence, conflicts, crash safety),
`ls`/`export` over several files, the Slurm array recipe and the scaling script."""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import LIBRARY_TOML, MPIEXEC, REPO, subprocess_env

from swapmc import Box, System
from swapmc.library import Library, build_library
from swapmc.library.merge import MergeConflict, SampleError, merge_libraries
from swapmc.library.settings import (
    build_fingerprint,
    library_path,
    partition,
    resolve,
    shard_path,
)
from swapmc.library.store import Worker, query_many

SAMPLES = 6


def _toml(folder, name, samples=SAMPLES, extra=""):
    path = folder / f"{name}.toml"
    path.write_text(LIBRARY_TOML.format(path=str(folder / f"{name}.sqlite"), samples=samples,
                                extra=extra))
    return str(path)


def _chains(path):
    """chain -> (E/N, E_IS/N, equilibrium positions, inherent positions) of a library."""
    with Library(path) as lib:
        samples = lib.query(verdict="all")
        chains = [s.meta["chain"] for s in samples]
        assert len(chains) == len(set(chains)), f"duplicate chains in {path}: {chains}"
        return {s.meta["chain"]: (s.meta["energy"], s.meta["is_energy"],
                                  s.system.positions, s.inherent.positions) for s in samples}


def _launch(cmd, env=None):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or subprocess_env(),
                            # Background shells may hand SIGINT down ignored; restore it.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _finish(procs, timeout=600):
    deadline = time.time() + timeout
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        pytest.fail("a library process hung")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def _swapmc(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "swapmc", *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """A serial build of the chains: the reference every sharded build must equal."""
    folder = tmp_path_factory.mktemp("serial")
    result = build_library(_toml(folder, "ref"), log=lambda *a: None)
    assert result.chains == list(range(SAMPLES))
    return _chains(result.path)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Three Slurm "array tasks" of a 3-shard build run at once, as separate processes."""
    folder = tmp_path_factory.mktemp("sharded")
    cfg = _toml(folder, "lib", extra="shards = 3\n")
    procs = []
    for task in range(3):
        env = subprocess_env()
        env.update(SLURM_ARRAY_JOB_ID="4242", SLURM_ARRAY_TASK_ID=str(task),
                   SLURM_ARRAY_TASK_COUNT="3")
        procs.append(_launch([sys.executable, "-m", "swapmc", "library", "build", cfg,
                              "--no-progress"], env))
    outs = _finish(procs)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "Traceback" not in err
    return folder, cfg, outs


# ------------------------------------------------------------------ settings
def test_shard_settings_split_names_and_keep_the_fingerprint(tmp_path):
    from swapmc._toml import ConfigError

    cfg = _toml(tmp_path, "lib")
    base = resolve(cfg, environ={})
    assert base["library"]["shards"] == 0 and base["library"]["shard"] is None
    assert partition(base) is None and library_path(base) == str(tmp_path / "lib.sqlite")
    # Shards do not change the build: a sharded build merges with a shared one.
    split = resolve(cfg, {"library": {"shards": 16}}, environ={"SLURM_ARRAY_TASK_ID": "3"})
    assert build_fingerprint(split) == build_fingerprint(base)
    assert partition(split) == (3, 16)
    assert library_path(split) == str(tmp_path / "lib.shard-03-of-16.sqlite")
    for key in ("shards", "shard"):
        del base["library"][key]  # builds made before the keys existed
    assert build_fingerprint(base) == build_fingerprint(split)
    explicit = resolve(cfg, {"library": {"shards": 4, "shard": 2}},
                       environ={"SLURM_ARRAY_TASK_ID": "0"})
    assert partition(explicit) == (2, 4)  # --shard wins over the array index
    # Slurm array tasks on a shared file: the array index is not used.
    assert partition(resolve(cfg, environ={"SLURM_ARRAY_TASK_ID": "5"})) is None
    assert shard_path("g.sqlite", 0, 1) == "g.shard-0-of-1.sqlite"
    assert shard_path("/a/b.c/lib", 7, 100) == "/a/b.c/lib.shard-07-of-100"
    bad = [({"shards": 4}, {}, r"shards = 4 needs this job's shard: give --shard I"),
           ({"shards": 4}, {"SLURM_ARRAY_TASK_ID": "4"},
            r"SLURM_ARRAY_TASK_ID = 4 is not a shard of \[library\] shards = 4 \(0 \.\. 3\): "
            r"submit with --array=0-3"),
           ({"shards": 4}, {"SLURM_ARRAY_TASK_ID": "x"}, r"SLURM_ARRAY_TASK_ID = 'x'"),
           ({"shards": 4, "shard": 4}, {}, r"shard must lie in 0 \.\. 3"),
           ({"shards": 4, "shard": -1}, {}, r"shard must lie in 0 \.\. 3"),
           ({"shard": 1}, {}, r"shard = 1 needs \[library\] shards"),
           ({"shards": -1}, {}, r"shards must be an integer >= 0"),
           ({"shards": 2.0}, {}, r"shards must be an integer >= 0"),
           ({"shards": 2, "shard": "1"}, {}, r"shard must be an integer or 'auto'")]
    for lib, env, message in bad:
        with pytest.raises(ConfigError, match=message):
            resolve(cfg, {"library": lib}, environ=env)
    # The command line: one line, exit 1, the file and line of the key.
    text = open(cfg).read() + "shards = 4\nshard = 9\n"
    (tmp_path / "bad.toml").write_text(text)
    code, _, err = _swapmc("library", "build", str(tmp_path / "bad.toml"))
    assert code == 1 and "Traceback" not in err
    assert re.search(r"bad\.toml:\d+: \[library\] shard must lie in 0 \.\. 3", err), err


def _meta(chain, build="f" * 64, energy=-1.0, n=20):
    return {"build": build, "chain": chain, "source": "chain", "model": "toy",
            "model_hash": "h" * 64, "kind": "lj", "units": "lj", "species_names": ["A", "B"],
            "composition": {"A": n // 2, "B": n - n // 2}, "masses": [1.0, 1.0], "n": n,
            "temperature": 0.5, "density": 1.2, "seed": chain, "sweeps": 10,
            "production_sweeps": 5, "verdict": "certified", "reasons": "",
            "energy": energy - chain}


def _system(n=20, seed=0):
    rng = np.random.default_rng(seed)
    species = np.repeat([0, 1], [n // 2, n - n // 2])
    return System(rng.uniform(0, 4.0, (n, 3)), species, ("A", "B"),
                  Box([4.0, 4.0, 4.0], [0.0, 0.0, 0.0]))


def test_claims_in_a_partition_and_the_lowest_free_chain(tmp_path):
    """The claim search (counted in SQL, with a fallback for gaps) picks what the definition
    says, the lowest chain of the partition neither stored nor held, in random states."""
    rng = np.random.default_rng(5)
    me = Worker("token-me", "node-me", 1, 0, None)
    other = Worker("token-other", "node-other", 2, 0, None)
    for trial in range(40):
        path = str(tmp_path / f"lib{trial}.sqlite")
        wanted = int(rng.integers(1, 40))
        first_step = None if rng.random() < 0.3 else (0, int(rng.integers(1, 5)))
        if first_step is not None:
            first_step = (int(rng.integers(0, first_step[1])), first_step[1])
        with Library(path, create=True) as lib:
            prefix = int(rng.integers(0, wanted + 3))
            stored = {k for k in range(prefix + 5) if k < prefix or rng.random() < 0.3}
            for k in sorted(stored):
                lib.add_sample(_meta(k), _system(), None)
            held = {int(k) for k in rng.integers(0, wanted + 2, int(rng.integers(0, 4)))}
            for k in held:
                lib.renew_claim("f" * 64, k, other, 600, now=0)
            exclude = {int(k) for k in rng.integers(0, wanted + 2, int(rng.integers(0, 3)))}
            first, step = first_step or (0, 1)
            expect = next((k for k in range(first, wanted, step)
                           if k not in stored and k not in held and k not in exclude), None)
            got = lib.claim_chain("f" * 64, wanted, me, 600, now=1, exclude=exclude,
                                  partition=first_step)
            assert (None if got is None else got.chain) == expect, (trial, wanted, first_step)


# ------------------------------------------------------------------ sharded build and merge
def test_three_array_tasks_then_merge_equal_a_serial_build(serial, sharded, tmp_path):
    folder, cfg, outs = sharded
    shards = [str(folder / f"lib.shard-{i}-of-3.sqlite") for i in range(3)]
    assert not os.path.exists(folder / "lib.sqlite")
    for i, (out, _) in enumerate(outs):
        assert f"shard {i} of 3 (chains k with k mod 3 = {i}): 2 of the build's 6" in out
        assert f"Slurm array job 4242, task {i}" in out
        assert "swapmc library merge" in out and "lib.shard-*-of-3.sqlite" in out
        chains = _chains(shards[i])
        assert sorted(chains) == [i, i + 3]  # its partition, nothing else
        with Library(shards[i]) as lib:
            assert set(lib.shards().values()) == {(i, 3)} and lib.claims() == []
    out_path = str(tmp_path / "merged.sqlite")
    code, out, err = _swapmc("library", "merge", out_path, *shards)
    assert code == 0, out + err
    assert out.count("2 sample(s) verified; 2 added") == 3
    merged = _chains(out_path)
    assert sorted(merged) == list(range(SAMPLES))
    for k, (e, e_is, pos, ipos) in merged.items():
        assert (e, e_is) == serial[k][:2], f"chain {k}"
        assert np.array_equal(pos, serial[k][2]) and np.array_equal(ipos, serial[k][3])
    with Library(out_path) as lib:
        assert lib.check() == "ok" and lib.shards() == {} and lib.claims() == []
        (build,) = lib.build_rows()
        shard0 = resolve(cfg, {"library": {"shard": 0}}, environ={})
        assert build["build"] == build_fingerprint(shard0)
        before = {s.meta["chain"]: lib.stored_digest(s.id) for s in lib.query(verdict=None)}
    assert None not in before.values()
    # Idempotent: merging again (in another order, with a shard twice) adds nothing.
    code, out, err = _swapmc("library", "merge", out_path, shards[2], shards[0], shards[1],
                             shards[0])
    assert code == 0, out + err
    assert "0 sample(s) added" in out and out.count("0 added, 2 already in") == 3
    with Library(out_path) as lib:
        assert {s.meta["chain"]: lib.stored_digest(s.id)
                for s in lib.query(verdict=None)} == before
    # The merged library continues the build like any shared file: nothing left to run.
    result = build_library(cfg, {"library": {"path": out_path, "shards": 0}},
                           log=lambda *a: None)
    assert result.made == [] and result.chains == []
    code, out, err = _swapmc("library", "check", out_path)
    assert code == 0 and "6 sample(s) verified (6 with checksums)" in out, out + err


def test_ls_and_export_read_several_files(serial, sharded, tmp_path):
    folder, _, _ = sharded
    shards = [str(folder / f"lib.shard-{i}-of-3.sqlite") for i in range(3)]
    merged = str(tmp_path / "merged.sqlite")
    merge_libraries(merged, shards[:2], log=lambda *a: None)  # chains 0, 1, 3, 4
    code, out, err = _swapmc("library", "ls", merged, *shards, "--verdict", "all")
    assert code == 0, out + err
    assert "6 different sample(s) match in 4 files (4 further copies in later files" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+ ka2-x10", line)]
    assert sorted(int(r[4]) for r in rows) == list(range(SAMPLES))
    assert {r[-1] for r in rows} == {merged, shards[2]}  # the file each came from
    code, out, _ = _swapmc("library", "ls", *shards, "--verdict", "all", "--json")
    import json

    listed = json.loads(out)
    assert sorted((r["chain"], os.path.basename(r["file"])) for r in listed) == sorted(
        (k, f"lib.shard-{k % 3}-of-3.sqlite") for k in range(SAMPLES))
    with Library(shards[0]) as a, Library(shards[1]) as b, Library(merged) as m:
        found = query_many([m, a, b], verdict=None, limit=3)
        assert len(found.samples) == 3 and not found.conflicts
        assert found.matched == {merged: 4, shards[0]: 2, shards[1]: 2}
    exported = tmp_path / "ex"
    code, out, err = _swapmc("library", "export", *shards, merged, "--verdict", "all",
                             "--structure", "both", "-o", str(exported))
    assert code == 0 and "exported 6 sample(s)" in out, out + err
    import csv

    with open(exported / "index.csv") as fh:
        index = list(csv.DictReader(fh))
    assert sorted(int(r["chain"]) for r in index) == list(range(SAMPLES))
    from swapmc.io import read_extxyz

    for r in index:
        k = int(r["chain"])
        assert r["file"] == shards[k % 3]
        back = read_extxyz(str(exported / f"{r['name']}-equilibrium.xyz"),
                           species_names=("A", "B", "C"))
        assert np.array_equal(back.positions, serial[k][2])
    # Ids belong to one file: refused with several.
    code, _, err = _swapmc("library", "export", shards[0], shards[1], "1", "-o",
                           str(tmp_path / "ids"))
    assert code == 1 and "sample ids are per library file" in err
    code, out, err = _swapmc("library", "export", shards[1], "2", "--format", "extxyz", "-o",
                             str(tmp_path / "one"))
    assert code == 0, err
    assert os.path.exists(tmp_path / "one" / "sample-2-inherent.xyz")


def _copy(src, folder, name):
    dst = str(folder / name)
    shutil.copy(src, dst)
    return dst


def test_merge_refuses_a_corrupted_shard_sample(sharded, tmp_path):
    folder, _, _ = sharded
    shards = [str(folder / f"lib.shard-{i}-of-3.sqlite") for i in range(3)]
    out_path = str(tmp_path / "merged.sqlite")
    # A structure cut short ...
    short = _copy(shards[1], tmp_path, "short.sqlite")
    db = sqlite3.connect(short)
    db.execute("UPDATE structures SET positions = substr(positions, 1, 100) WHERE "
               "sample_id = 2 AND kind = 'inherent'")
    db.commit()
    db.close()
    code, out, err = _swapmc("library", "merge", out_path, shards[0], short)
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert ("short.sqlite: sample 2 (build " in err and "chain 4): inherent positions hold 100 "
            "bytes, 200 particles need 4800; nothing merged" in err), err
    assert not os.path.exists(out_path)  # nothing written, not even the first shard
    # ... one flipped bit, which only the checksum sees ...
    flipped = _copy(shards[2], tmp_path, "flipped.sqlite")
    db = sqlite3.connect(flipped)
    blob = bytearray(db.execute("SELECT positions FROM structures WHERE sample_id = 1 AND "
                                "kind = 'equilibrium'").fetchone()[0])
    blob[801] ^= 0x01
    db.execute("UPDATE structures SET positions = ? WHERE sample_id = 1 AND "
               "kind = 'equilibrium'", (bytes(blob),))
    db.commit()
    db.close()
    code, out, err = _swapmc("library", "merge", out_path, flipped)
    assert code == 1 and "Traceback" not in err
    assert "flipped.sqlite: sample 1 (build" in err and "chain 2): its checksum does not " \
        "match" in err, err
    code, out, err = _swapmc("library", "check", flipped)
    assert code == 1 and "1 sample(s) verified (1 with checksums), 1 damaged" in out
    assert "flipped.sqlite: sample 1" in err
    # ... and metadata that no longer describe the structure.
    wrong = _copy(shards[0], tmp_path, "wrong.sqlite")
    db = sqlite3.connect(wrong)
    db.execute("UPDATE samples SET composition = '{\"A\": 150, \"B\": 50}' WHERE id = 1")
    db.commit()
    db.close()
    with pytest.raises(SampleError, match=r"wrong\.sqlite: sample 1 .*equilibrium species do "
                                          r"not match the composition"):
        merge_libraries(out_path, [wrong], log=lambda *a: None)
    assert not os.path.exists(out_path)
    unregistered = _copy(shards[0], tmp_path, "unregistered.sqlite")
    db = sqlite3.connect(unregistered)
    db.execute("DELETE FROM builds")
    db.commit()
    db.close()
    with pytest.raises(SampleError, match=r"its build [0-9a-f]{16} is not registered"):
        merge_libraries(out_path, [unregistered], log=lambda *a: None)


def _altered(src, folder, name, sample_id=1, shift=1e-12):
    """A copy of a library whose sample's equilibrium positions differ by ``shift`` (an
    intact sample with its own checksum: a different result, not damage)."""
    dst = _copy(src, folder, name)
    with Library(dst, create=True) as lib:
        row, structures, _ = lib.raw_sample(sample_id)
        pos = np.frombuffer(structures["equilibrium"]["positions"], "<f8").copy()
        pos[5] += shift
        structures["equilibrium"]["positions"] = pos.tobytes()
    db = sqlite3.connect(dst)
    for table, key in (("digests", "sample_id"), ("structures", "sample_id"), ("samples", "id")):
        db.execute(f"DELETE FROM {table} WHERE {key} = ?", (sample_id,))
    db.commit()
    db.close()
    with Library(dst, create=True) as lib:
        assert lib.copy_sample(dict(row), structures) is not None
    return dst


def test_merge_refuses_a_conflicting_build(sharded, tmp_path):
    folder, _, _ = sharded
    shards = [str(folder / f"lib.shard-{i}-of-3.sqlite") for i in range(3)]
    out_path = str(tmp_path / "merged.sqlite")
    other = _altered(shards[1], tmp_path, "other-host.sqlite")
    with Library(other) as lib:
        assert lib.check() == "ok"
    code, out, err = _swapmc("library", "merge", out_path, shards[1], other)
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert re.search(r"build [0-9a-f]{16} chain 1 is stored with different results in "
                     r".*lib\.shard-1-of-3\.sqlite \(sample 1\) and .*other-host\.sqlite "
                     r"\(sample \d+\): equilibrium positions \(max \|difference\| 1e-12\); "
                     r"nothing merged", err), err
    assert not os.path.exists(out_path)
    # Against what the output already holds: refused too, the output unchanged.
    assert merge_libraries(out_path, shards, log=lambda *a: None).added == SAMPLES
    with pytest.raises(MergeConflict, match=r"chain 1 is stored with different results in "
                                            r".*merged\.sqlite \(sample \d+\) and "
                                            r".*other-host\.sqlite"):
        merge_libraries(out_path, [other], log=lambda *a: None)
    with Library(out_path) as lib:
        assert lib.count()["failed"] + lib.count()["certified"] == SAMPLES
    # Identical copies of a chain (a shard and a copy of it) are kept once.
    twin = _copy(shards[1], tmp_path, "twin.sqlite")
    fresh = str(tmp_path / "fresh.sqlite")
    result = merge_libraries(fresh, [shards[1], twin], log=lambda *a: None)
    assert (result.added, result.duplicates) == (2, 2)
    # One build fingerprint with two different models (a potential file edited between
    # jobs) is a conflict as well.
    model = _copy(shards[0], tmp_path, "model.sqlite")
    db = sqlite3.connect(model)
    db.execute("UPDATE builds SET model_hash = ?", ("e" * 64,))
    db.execute("UPDATE samples SET model_hash = ?", ("e" * 64,))
    db.commit()
    db.close()
    with pytest.raises(MergeConflict, match=r"is registered with model [0-9a-f]{12} in "
                                            r".*merged\.sqlite and eeeeeeeeeeee in "
                                            r".*model\.sqlite"):
        merge_libraries(out_path, [model], log=lambda *a: None)


def test_merge_guards_against_the_usual_mistakes(sharded, tmp_path):
    folder, _, _ = sharded
    shards = [str(folder / f"lib.shard-{i}-of-3.sqlite") for i in range(3)]
    # `merge lib.shard-*.sqlite`, the output forgotten: the first shard would be written.
    code, _, err = _swapmc("library", "merge", *shards)
    assert code == 1 and "is shard 0 of 3 of build" in err and "merge OUT SHARD" in err
    copy = _copy(shards[0], tmp_path, "c.sqlite")
    code, _, err = _swapmc("library", "merge", copy, shards[1], copy)
    assert code == 1 and "is the output library itself" in err
    code, _, err = _swapmc("library", "merge", str(tmp_path / "o.sqlite"),
                           str(tmp_path / "absent.sqlite"))
    assert code == 1 and "no library at" in err and "absent.sqlite" in err
    # A chain outside the shard its file records (a renamed or hand-edited shard).
    moved = _copy(shards[0], tmp_path, "moved.sqlite")
    db = sqlite3.connect(moved)
    db.execute("UPDATE shards SET shard = 1")
    db.commit()
    db.close()
    with pytest.raises(SampleError, match=r"chain 0 is not in the file's shard 1 of 3"):
        merge_libraries(str(tmp_path / "o.sqlite"), [moved], log=lambda *a: None)
    # The shard record also stops a build pointed at another split's file.
    with Library(moved, create=True) as lib:
        (build,) = lib.shards()
        with pytest.raises(OSError, match=r"holds shard 1 of 3 of build .*, not shard 2 of 3"):
            lib.register_shard(build, 2, 3)


_MERGER = r"""
import os, signal, sys, threading
sys.path.insert(0, {repo!r})
from swapmc.library import Library
from swapmc.library.merge import merge_libraries
copied = [0]
original = Library.copy_sample

def copy_sample(self, *args, **kwargs):
    # Once 5 samples are in, the process kills itself after {delay!r} s, while later
    # samples are being written: the moment is set by the merge's own progress, not by
    # how soon a (possibly stalled) parent notices it.
    copied[0] += 1
    if copied[0] == 6:
        threading.Timer({delay!r}, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return original(self, *args, **kwargs)

Library.copy_sample = copy_sample
merge_libraries({out!r}, [{src!r}], log=lambda line: print(line, flush=True))
"""


def test_a_killed_merge_leaves_whole_samples_and_a_rerun_completes_it(tmp_path):
    """SIGKILL a merge of 200 large samples once some are in: the output checks ok, every
    sample in it verifies, and merging again completes it to equal the source."""
    from swapmc.library.merge import verify_library

    src = str(tmp_path / "src.sqlite")
    with Library(src, create=True) as lib:
        lib.register_build("f" * 64, "toy", "h" * 64, "preset = 'toy'\n", "0")
        for k in range(200):
            lib.add_sample(_meta(k, n=4000), _system(4000, k), _system(4000, 10**6 + k))
    out = str(tmp_path / "out.sqlite")
    # The rest of the 200 samples take ~0.45 s to write here: a kill 0-0.15 s after the
    # sixth sample starts lands among them, mid-transaction or between two.
    delay = float(np.random.default_rng(8).uniform(0.0, 0.15))
    code = _MERGER.format(repo=REPO, out=out, src=src, delay=delay)
    proc = _launch([sys.executable, "-c", code])
    try:
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, "the merge ended before it was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Library(out) as lib:
        assert lib.check() == "ok"
        good, problems = verify_library(lib)
        assert problems == [] and 5 <= len(good) < 200, len(good)
    result = merge_libraries(out, [src], log=lambda *a: None)
    assert result.added + result.present == 200 and result.added > 0
    with Library(out) as a, Library(src) as b:
        assert a.check() == "ok"
        got = {s.meta["chain"]: s for s in a.query(verdict=None)}
        assert sorted(got) == list(range(200))
        for s in b.query(verdict=None):
            assert np.array_equal(got[s.meta["chain"]].inherent.positions, s.inherent.positions)
            assert a.stored_digest(got[s.meta["chain"]].id) == b.stored_digest(s.id)


def test_a_library_without_the_new_tables_merges_and_gains_them(tmp_path):
    """A file written before digests and shards existed: read as it is, its samples verified
    by sizes and values, merged; opened for writing it gains the tables."""
    path = str(tmp_path / "old.sqlite")
    with Library(path, create=True) as lib:
        lib.register_build("f" * 64, "toy", "h" * 64, "preset = 'toy'\n", "0")
        lib.add_sample(_meta(0), _system(), _system(seed=1))
    db = sqlite3.connect(path)
    db.execute("DROP TABLE digests")
    db.execute("DROP TABLE shards")
    db.commit()
    db.close()
    code, out, _ = _swapmc("library", "check", path)
    assert code == 0 and "1 sample(s) verified (0 with checksums)" in out
    result = merge_libraries(str(tmp_path / "new.sqlite"), [path], log=lambda *a: None)
    assert result.added == 1
    with Library(str(tmp_path / "new.sqlite")) as lib:
        assert lib.stored_digest(1) is not None
    db = sqlite3.connect(path)
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'digests'").fetchall()
    db.close()
    with Library(path, create=True) as lib:
        lib.add_sample(_meta(1), _system(), None)
        assert lib.stored_digest(1) is None and lib.stored_digest(2) is not None


def test_slurm_array_tasks_on_a_shared_file_are_ordinary_jobs(serial, tmp_path, monkeypatch):
    """Without shards, an array task's index only appears in the log: it claims chains
    from the one library file like any job."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    lines = []
    result = build_library(_toml(tmp_path, "lib", samples=1), log=lines.append)
    assert result.path == str(tmp_path / "lib.sqlite") and result.chains == [0]
    assert "1 sample(s) wanted" in lines[0] and "Slurm array job 77, task 5" in lines[0]
    got = _chains(result.path)
    assert got[0][:2] == serial[0][:2] and np.array_equal(got[0][2], serial[0][2])


@pytest.mark.mpi
def test_ranks_of_one_shard_job_share_its_chains(serial, tmp_path):
    """mpiexec -n 2 on shard 1 of 2 of 6 chains: the ranks claim 1, 3 and 5 between them,
    and a second split's shard files next to it are warned about."""
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")
    cfg = _toml(tmp_path, "lib", extra="shards = 2\n")
    Library(str(tmp_path / "lib.shard-0-of-3.sqlite"), create=True).close()
    proc = _launch([MPIEXEC, "-n", "2", sys.executable, "-m", "swapmc", "library", "build",
                    cfg, "--shard", "1", "--no-progress"])
    ((out, err),) = _finish([proc])
    assert proc.returncode == 0, out + err
    assert "3 of the build's 6 sample(s), 0 stored, 3 to make on 2 process(es)" in out
    assert "warning: shard files of another split" in out and "lib.shard-0-of-3" in out
    got = _chains(str(tmp_path / "lib.shard-1-of-2.sqlite"))
    assert sorted(got) == [1, 3, 5]
    for k in got:
        assert got[k][:2] == serial[k][:2] and np.array_equal(got[k][3], serial[k][3])


def test_a_shard_still_written_from_another_host_is_refused(tmp_path):
    """The same shard submitted twice: the second job finds live claims of another host in
    the shard file and stops before writing a sample (locks are not trusted between hosts);
    once the lease has lapsed it runs."""
    from swapmc.tempering.comm import CollectiveError

    cfg = _toml(tmp_path, "lib", samples=2, extra="shards = 2\nshard = 1\n")
    resolved = resolve(cfg, environ={})
    far = Worker("token-far", "node-far", 4242, 0, None)
    now = time.time()
    with Library(library_path(resolved), create=True) as lib:
        assert lib.claim_chain(build_fingerprint(resolved), 2, far, 600, now=now,
                               partition=(1, 2)).chain == 1
    with pytest.raises(CollectiveError, match=r"lib\.shard-1-of-2\.sqlite: shard 1 of 2 is "
                                              r"being written by pid 4242 on host node-far "
                                              r"\(its claim on chain 1 is live until"):
        build_library(cfg, log=lambda *a: None)
    result = build_library(cfg, log=lambda *a: None, clock=lambda: time.time() + 601)
    assert result.chains == [1]


def test_the_ranks_of_a_shard_job_must_share_a_host():
    from swapmc.library.build import _one_host

    _one_host(["node1"], "x.sqlite")
    with pytest.raises(ValueError, match=r"x\.sqlite: the ranks of one shard job must run on "
                                         r"one host .* found node1, node2"):
        _one_host(["node1", "node2"], "x.sqlite")


# ------------------------------------------------------------------ recipe and script
def test_the_slurm_array_recipe_runs_the_build_it_describes(tmp_path):
    """The recipe runs under `bash -n`, and with a stand-in `swapmc` it passes the config,
    --shards from SHARDS (nothing without it) and extra options, one thread per task."""
    recipe = os.path.join(REPO, "scripts", "library_slurm_array.sh")
    assert subprocess.run(["bash", "-n", recipe], timeout=60).returncode == 0
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv}/bin:$PATH"\n')
    stub = venv / "bin" / "swapmc"
    stub.write_text('#!/bin/bash\necho "args: $*"\necho "threads: $OMP_NUM_THREADS '
                    '$NUMBA_NUM_THREADS task: $SLURM_ARRAY_TASK_ID"\n')
    stub.chmod(0o755)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SWAPMC_VENV": str(venv),
            "SLURM_ARRAY_TASK_ID": "3"}
    for extra, expect in (({}, "args: library build lib.toml --no-progress --samples 9"),
                          ({"SHARDS": "8"},
                           "args: library build lib.toml --no-progress --shards 8 --samples 9")):
        proc = subprocess.run(["bash", recipe, "lib.toml", "--samples", "9"],
                              capture_output=True, text=True, env={**base, **extra},
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [expect, "threads: 1 1 task: 3"]
    proc = subprocess.run(["bash", recipe], capture_output=True, text=True, env=base,
                          timeout=60)
    assert proc.returncode != 0 and "usage" in proc.stderr


def test_scaling_script_quick(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "library_scaling.py"),
                           "--quick", "--keep", str(tmp_path / "work")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "samples identical for 1 and 2 ranks (E/N of every chain): True" in out
    assert re.search(r"-> \d+ transactions/s, \d+ samples/s", out)
    assert "48 chains stored once each, no claim left: True" in out
    assert re.search(r"the store is busy \d+ % of the time, and becomes the bottleneck near "
                     r"[\d,]+ cores", out)
