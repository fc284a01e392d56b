"""Library builds at scale: samples per hour against ranks, workers kept busy by the claims,
and how far the SQLite store is from being the bottleneck.

1. *Real builds*: the same tiny build (KA2, N = 200, T = 1.0, a few seconds per chain) made
   with 1 rank and with ``mpiexec -n 2`` (two independent jobs on the file when there is no
   mpiexec); samples per hour of wall time, start-up included, and the parallel efficiency.
   The chains are tiny so that this stays small on a shared machine; real chains (minutes
   each) make start-up negligible.
2. *Store write rate*: one process claims chains and stores N = 500 samples (equilibrium and
   inherent structure, 52 kB) through the real store API, on the disk of the output folder;
   the time of each claim, renewal and store transaction, and of a claim against the number
   of samples the build already holds (10^3 .. 10^5).
3. *Fake workers*: W processes (64 by default) claim chains of random lengths through the
   real store, "run" them (sleep, with one lease renewal halfway) and store a tiny sample
   each, at the rate of samples a 1 000-core job of real chains would store and at four
   times that. Reported: the idle fraction (time not spent in chains, from the start until
   the last chain was handed out), duplicates (none allowed), and what a static split of the
   same chains into shards (one per worker, or four per worker with at most W running) would
   leave idle.
4. *On paper*: the transactions a 1 000-core job needs per second (from the measured
   certified samples per core-hour) against the rate measured in 2.

    python scripts/library_scaling.py                 # ~5 min on 2 cores
    python scripts/library_scaling.py --quick         # ~1 min (the test suite runs this)
    python scripts/library_scaling.py --per-core-hour 7.9 --cores 4000   # another workload

On a shared machine, wall times depend on the other jobs; the load average is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import Box, System  # noqa: E402
from swapmc.library.store import Library, Worker  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = "5ca1e" + "0" * 59  # the fake build of parts 2 and 3
# Certified KA2 N = 500 glasses per CPU core-hour at T = 0.45 (docs/library_example_output.txt).
PER_CORE_HOUR = 30.9

CONFIG = """\
preset = "ka2-x10"
[state]
temperature = 1.0
[system]
n = 200
melt_sweeps = 20
[run]
seed = 3
equilibration_sweeps = {equilibration}
production_sweeps = {production}
[output]
checkpoint_every = 500
[library]
path = "{path}"
samples = {samples}
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    # One thread per process: the ranks must not share cores with their own BLAS threads.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    return env


def _system(n: int, seed: int) -> System:
    rng = np.random.default_rng(seed)
    length = (n / 1.2) ** (1 / 3)
    return System(rng.uniform(0, length, (n, 3)), rng.integers(0, 2, n), ("A", "B"),
                  Box([length] * 3, [0.0] * 3))


def _meta(chain: int, n: int) -> dict:
    return {"build": BUILD, "chain": chain, "source": "chain", "model": "fake",
            "model_hash": "0" * 64, "kind": "lj", "units": "lj", "species_names": ["A", "B"],
            "composition": None, "masses": [1.0, 1.0], "n": n, "temperature": 0.45,
            "density": 1.2, "seed": chain, "sweeps": 100_000, "production_sweeps": 50_000,
            "verdict": "certified", "reasons": "", "energy": -7.0, "is_energy": -7.7}


def _sample(chain: int, system: System) -> dict:
    meta = _meta(chain, system.n)
    counts = np.bincount(system.species, minlength=2)
    meta["composition"] = {"A": int(counts[0]), "B": int(counts[1])}
    return meta


# ------------------------------------------------------------------ 1. real builds
def real_builds(work: str, samples: int, equilibration: int, production: int,
                timeout: float) -> list[dict]:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    rows = []
    for ranks in (1, 2):
        folder = os.path.join(work, f"real-{ranks}")
        os.makedirs(folder)
        path = os.path.join(folder, "glasses.sqlite")
        config = os.path.join(folder, "build.toml")
        with open(config, "w") as fh:
            fh.write(CONFIG.format(path=path, samples=samples, equilibration=equilibration,
                                   production=production))
        base = [sys.executable, "-m", "swapmc", "library", "build", config, "--no-progress"]
        if ranks == 1:
            commands, how = [base + ["--mpi", "off"]], "1 process"
        elif os.path.exists(mpiexec):
            commands, how = [[mpiexec, "-n", "2"] + base], "mpiexec -n 2"
        else:
            commands, how = [base + ["--mpi", "off"]] * 2, "2 independent jobs"
        start = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env()) for c in commands]
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(commands[0])} failed:\n{out}\n{err}")
        wall = time.perf_counter() - start
        with Library(path) as lib:
            stored = lib.query(verdict=None)
            chains = sorted(s.meta["chain"] for s in stored)
            chain_wall = sum(s.meta["wall_seconds"] for s in stored)
            cpu = sum(s.meta["cpu_seconds"] for s in stored)
            energies = {s.meta["chain"]: s.meta["energy"] for s in stored}
        if chains != list(range(samples)):
            raise RuntimeError(f"{path}: chains {chains}, expected 0 .. {samples - 1}")
        rows.append({"ranks": ranks, "how": how, "wall": wall, "samples": len(chains),
                     "per_hour": len(chains) / wall * 3600, "chain_wall": chain_wall,
                     "per_core_hour": len(chains) / cpu * 3600, "energies": energies})
    return rows


# ------------------------------------------------------------------ 2. store write rate
def write_rate(work: str, cycles: int, n: int = 500) -> dict:
    path = os.path.join(work, "rate.sqlite")
    system = _system(n, 0)
    worker = Worker.this_process()
    claim, renew, store = [], [], []
    with Library(path, create=True) as lib:
        for _ in range(cycles):
            t0 = time.perf_counter()
            got = lib.claim_chain(BUILD, 10**9, worker, 600.0)
            t1 = time.perf_counter()
            lib.renew_claim(BUILD, got.chain, worker, 600.0)
            t2 = time.perf_counter()
            lib.add_claimed_sample(_sample(got.chain, system), system, system, worker)
            t3 = time.perf_counter()
            claim.append(t1 - t0)
            renew.append(t2 - t1)
            store.append(t3 - t2)
    size = os.path.getsize(path) / cycles
    return {"claim": float(np.median(claim)), "renew": float(np.median(renew)),
            "store": float(np.median(store)), "bytes_per_sample": size, "n": n}


def claim_cost(work: str, sizes: list[int], repeats: int = 30) -> list[tuple[int, float]]:
    """Median time of a claim when the build already holds ``size`` samples."""
    path = os.path.join(work, "big.sqlite")
    with Library(path, create=True) as lib:
        lib.add_sample(_sample(0, _system(20, 0)), _system(20, 0), None)
    rows = []
    for size in sizes:
        # Fill the samples table in one statement (copies of sample 0, metadata only): only
        # the stored chain numbers matter to a claim.
        db = sqlite3.connect(path)
        have = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        columns = [r[1] for r in db.execute("PRAGMA table_info(samples)")
                   if r[1] not in ("id", "chain")]
        db.execute(
            f"WITH RECURSIVE k(c) AS (SELECT {have} UNION ALL SELECT c + 1 FROM k "
            f"WHERE c + 1 < {size}) INSERT INTO samples (chain, {', '.join(columns)}) "
            f"SELECT k.c, {', '.join('s.' + c for c in columns)} FROM k, samples s "
            "WHERE s.id = 1")
        db.commit()
        db.close()
        worker = Worker.this_process()
        times = []
        with Library(path, create=True) as lib:
            for _ in range(repeats):
                t0 = time.perf_counter()
                got = lib.claim_chain(BUILD, 10**9, worker, 600.0)
                times.append(time.perf_counter() - t0)
                lib.release_claim(BUILD, got.chain, worker)
        rows.append((size, float(np.median(times))))
    return rows


# ------------------------------------------------------------------ 3. fake workers
def _fake_worker(path, lengths, rank, barrier, results):
    lib = Library(path, create=True)
    worker = Worker.this_process(rank)
    system = _system(20, rank)
    events = []
    barrier.wait()
    while True:
        t0 = time.time()
        claim = lib.claim_chain(BUILD, len(lengths), worker, 600.0)
        t1 = time.time()
        if claim is None:
            break
        k = claim.chain
        time.sleep(lengths[k] / 2)
        t2 = time.time()
        lib.renew_claim(BUILD, k, worker, 600.0)
        t3 = time.time()
        time.sleep(lengths[k] / 2)
        t4 = time.time()
        out = lib.add_claimed_sample(_sample(k, system), system, None, worker)
        t5 = time.time()
        events.append((k, t0, t1, t2, t3, t4, t5, out.sample_id is not None))
    lib.close()
    results.put((rank, events))


def fake_workers(work: str, workers: int, lengths: list[float], label: str) -> dict:
    path = os.path.join(work, f"fake-{label}.sqlite")
    Library(path, create=True).close()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_fake_worker, args=(path, lengths, r, barrier, results))
             for r in range(workers)]
    for p in procs:
        p.start()
    collected = [results.get(timeout=600 + 4 * sum(lengths) / workers)
                 for _ in range(workers)]
    for p in procs:
        p.join(timeout=60)
    events = [e for _, ev in collected for e in ev]
    start = min(e[1] for e in events)
    handed_out = max(e[2] for e in events)  # the moment the last chain was claimed
    end = max(e[6] for e in events)
    window = handed_out - start
    idle, startup, steady = [], [], []

    def work(ev, t0, t1):
        # Work: the two halves of each chain, (claimed, renewing) and (renewed, storing).
        return sum(max(0.0, min(b, t1) - max(a, t0))
                   for e in ev for a, b in ((e[2], e[3]), (e[4], e[5])))

    for _, ev in collected:
        idle.append(1 - work(ev, start, handed_out) / window)
        # Start-up: every worker claims at the same moment, and the claims queue for the
        # file lock; after its first claim, a worker's idle time is what the steady state
        # costs. A worker that got no chain at all waited the whole window.
        first = min((e[2] for e in ev), default=handed_out)
        startup.append(first - start)
        if handed_out > first:
            steady.append(1 - work(ev, first, handed_out) / (handed_out - first))
    stored_by = [e[0] for e in events if e[7]]
    with Library(path) as lib:
        chains = [s.meta["chain"] for s in lib.query(verdict=None)]
        claims_left = lib.claims()
    return {"workers": workers, "chains": len(lengths), "window": window, "end": end - start,
            "idle_mean": float(np.mean(idle)), "idle_max": float(np.max(idle)),
            "startup_mean": float(np.mean(startup)), "startup_max": float(np.max(startup)),
            "steady_mean": float(np.mean(steady)), "steady_max": float(np.max(steady)),
            "without": sum(1 for _, ev in collected if not ev),
            "claim": float(np.median([e[2] - e[1] for e in events])),
            "renew": float(np.median([e[4] - e[3] for e in events])),
            "store": float(np.median([e[6] - e[5] for e in events])),
            "stored": len(chains), "unique": len(set(chains)),
            "stored_by_workers": len(stored_by), "claims_left": len(claims_left),
            "rate": len(lengths) / (end - start)}


def static_shards(lengths: list[float], workers: int, per_worker: int) -> float:
    """Idle fraction of a static split: ``workers * per_worker`` shards (chain k to shard
    k mod shards), run in index order on ``workers`` slots, each shard taking the next free
    slot (a Slurm array throttled to ``workers`` tasks)."""
    shards = workers * per_worker
    cost = [sum(lengths[k] for k in range(i, len(lengths), shards)) for i in range(shards)]
    slots = [0.0] * workers
    for c in cost:
        j = min(range(workers), key=slots.__getitem__)
        slots[j] += c
    return 1 - sum(lengths) / (workers * max(slots))


# ------------------------------------------------------------------ report
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small version (~1 min)")
    ap.add_argument("--workers", type=int, help="fake workers (default 64; 16 with --quick)")
    ap.add_argument("--cores", type=int, default=1000, help="the job size worked out on paper")
    ap.add_argument("--per-core-hour", type=float, default=PER_CORE_HOUR,
                    help="certified samples per core-hour of the workload on paper")
    ap.add_argument("--lease", type=float, default=600.0, help="lease_seconds on paper")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="keep the work files in this folder (default: removed)")
    args = ap.parse_args(argv)
    quick = args.quick
    workers = args.workers or (16 if quick else 64)
    work = args.keep or tempfile.mkdtemp(prefix="library-scaling-")
    os.makedirs(work, exist_ok=True)
    print(f"swapmc library scaling{' (--quick)' if quick else ''}")
    print(machine_line())
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"work files in {work}")
    try:
        # 1
        samples = 2 if quick else 8
        eq, prod = (300, 600) if quick else (1000, 2000)
        print(f"\n1. Real builds: KA2 N = 200 at T = 1.0, {eq} + {prod} sweeps per chain, "
              f"{samples} samples (tiny chains: start-up weighs)")
        real = real_builds(work, samples, eq, prod, timeout=900)
        print(f"{'ranks':>5s} {'how':20s} {'wall s':>8s} {'samples/h':>10s} "
              f"{'per core-hour':>13s} {'efficiency':>10s}")
        for row in real:
            eff = row["per_hour"] / (row["ranks"] * real[0]["per_hour"])
            print(f"{row['ranks']:5d} {row['how']:20s} {row['wall']:8.1f} "
                  f"{row['per_hour']:10.0f} {row['per_core_hour']:13.0f} {eff:10.2f}")
        same = real[0]["energies"] == real[1]["energies"]
        print(f"samples identical for 1 and 2 ranks (E/N of every chain): {same}")

        # 2
        cycles = 20 if quick else 100
        print(f"\n2. Store write rate on this disk ({cycles} claim + renew + store cycles, "
              "N = 500 samples, one process; SQLite synchronous = FULL)")
        rate = write_rate(work, cycles)
        print(f"claim {1e3 * rate['claim']:.1f} ms, renew {1e3 * rate['renew']:.1f} ms, store "
              f"{1e3 * rate['store']:.1f} ms (medians); {rate['bytes_per_sample'] / 1e3:.0f} kB "
              "per sample on disk")
        tx = 1 / np.mean([rate["claim"], rate["renew"], rate["store"]])
        print(f"-> {tx:.0f} transactions/s, "
              f"{1 / (rate['claim'] + rate['store']):.0f} samples/s (claim + store)")
        sizes = [1000, 10000] if quick else [1000, 10000, 100000]
        cost = claim_cost(work, sizes)
        print("claim time against samples already in the build: " + ", ".join(
            f"{s:,d}: {1e3 * t:.1f} ms" for s, t in cost))

        # 3
        rng = random.Random(args.seed)
        need = args.cores * args.per_core_hour / 3600  # samples/s of the job on paper
        per_worker = 3 if quick else 4
        print(f"\n3. Fake workers: {workers} processes, {per_worker * workers} chains of random "
              "length (uniform 0.25 .. 1.75 x the mean), one renewal per chain, tiny samples")
        fake = []
        for factor in ((1.0,) if quick else (1.0, 4.0)):
            mean = workers / (need * factor)
            lengths = [mean * rng.uniform(0.25, 1.75) for _ in range(per_worker * workers)]
            res = fake_workers(work, workers, lengths, f"{factor:g}")
            res.update(factor=factor, mean=mean,
                       shards_1=static_shards(lengths, workers, 1),
                       shards_4=static_shards(lengths, workers, 4))
            fake.append(res)
        print(f"{'load':>7s} {'chain s':>7s} {'samples/s':>9s} {'idle':>6s} "
              f"{'first claim s':>13s} {'then idle':>13s} {'claim/renew/store ms':>20s} "
              f"{'dupl.':>5s} {'shards 1x':>9s} {'shards 4x':>9s}")
        print(f"{'':7s} {'mean':>7s} {'':9s} {'mean':>6s} {'mean':>6s} {'max':>6s} "
              f"{'mean':>6s} {'max':>6s} {'medians':>20s}")
        for r in fake:
            dup = r["stored"] - r["unique"] + (r["stored_by_workers"] - r["chains"])
            medians = f"{1e3 * r['claim']:.0f} / {1e3 * r['renew']:.0f} / {1e3 * r['store']:.0f}"
            print(f"{r['factor']:5g} x {r['mean']:7.2f} {r['rate']:9.1f} "
                  f"{100 * r['idle_mean']:5.1f}% {r['startup_mean']:6.2f} "
                  f"{r['startup_max']:6.2f} {100 * r['steady_mean']:5.1f}% "
                  f"{100 * r['steady_max']:5.1f}% {medians:>20s} "
                  f"{dup:5d} {100 * r['shards_1']:8.1f}% {100 * r['shards_4']:8.1f}%")
            ok = (r["stored"] == r["unique"] == r["chains"] == r["stored_by_workers"]
                  and r["claims_left"] == 0)
            print(f"        {r['chains']} chains stored once each, no claim left: {ok}"
                  + (f"; {r['without']} worker(s) got no chain (still waiting for the lock)"
                     if r["without"] else ""))
        print(f"load 1 x: the samples per second of a {args.cores}-core job at "
              f"{args.per_core_hour:g} per core-hour. idle: time outside chains (claim, renew "
              "and store transactions, waiting for the file lock), from the start until the "
              "last chain was handed out; first claim: seconds until a worker's first chain "
              "began (all workers claim at the same moment); then idle: the idle fraction "
              "after that. shards: the idle fraction of the same chains split statically "
              "into one or four shards per worker.")

        # 4
        chain_wall = 3600 / args.per_core_hour
        renewals = chain_wall / (args.lease / 3)
        per_sample = 2 + renewals
        demand = need * per_sample
        capacity = 1 / (rate["claim"] + rate["store"] + renewals * rate["renew"])
        print(f"\n4. On paper: {args.cores} cores at {args.per_core_hour:g} certified samples "
              f"per core-hour ({chain_wall:.0f} s of one core per sample) finish {need:.1f} "
              f"samples/s; each takes a claim, a store and {renewals:.2f} renewals (lease "
              f"{args.lease:g} s, renewed every third), i.e. {demand:.1f} transactions/s.")
        print(f"This disk commits one sample's transactions (claim, store, renewals) at "
              f"{capacity:.0f} samples/s in a fresh library: the store is busy "
              f"{100 * need / capacity:.0f} % of the time, and becomes the bottleneck near "
              f"{args.cores * capacity / need:,.0f} cores of this workload.")
        size, claim = cost[-1]
        late = 1 / (claim + rate["store"] + renewals * rate["renew"])
        print(f"With {size:,d} samples of the build stored (a claim then takes "
              f"{1e3 * claim:.0f} ms): {late:.0f} samples/s, busy {100 * need / late:.0f} %, "
              f"bottleneck near {args.cores * late / need:,.0f} cores.")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
