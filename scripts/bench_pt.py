"""Parallel tempering benchmark: cost per exchange round, parallel efficiency, round trips.

1. *Parallel efficiency* (weak scaling at fixed replicas per rank, the figure the spec asks
   for): KA2 (x_C = 0.10), N = 500, R replicas per rank, K sweeps per round. Time per round
   on 1 process (serial twin, R replicas) and on ``mpiexec -n 2`` (2R replicas);
   efficiency = t_1 / t_2. Also the strong-scaling figure (2R replicas on 1 vs 2 ranks) and
   rank 0's split of each round into sweeping and waiting in the allgather.
2. *Round trips*: KA2, N = 500, a geometric ladder over T = 0.45 .. 1.0 (16 replicas by
   default), run on as many ranks as asked; prints the acceptance of every pair and the
   mean round-trip time T_min -> T_max -> T_min in sweeps.

    python scripts/bench_pt.py                       # both parts (~30 min on 2 cores)
    python scripts/bench_pt.py --skip-roundtrip      # efficiency only (~2 min)
    python scripts/bench_pt.py --rt-rounds 500       # shorter round-trip run
    python scripts/bench_pt.py --quick               # smoke run (~1 min)

Each run is a real ``swapmc temper`` process (``python -m swapmc.tempering``), so the times
include everything a user pays per round (sweeps, allgather, exchange, logging) but not
start-up, melt or checkpoints: they are the loop time per round reported in summary.json.
On a shared machine, wall times depend on the other jobs; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_config(path, directory, *, n, replicas, t_min, t_max, sweeps, rounds, eq_rounds,
                 seed=1, optimize=False):
    with open(path, "w") as fh:
        fh.write(
            f'preset = "ka2-x10"\n[system]\nn = {n}\nmelt_sweeps = 200\n'
            f"[run]\nseed = {seed}\n"
            f'[output]\ndirectory = "{directory}"\ncheckpoint_every = 0\nprogress = false\n'
            f"[tempering]\nt_min = {t_min}\nt_max = {t_max}\nn_replicas = {replicas}\n"
            f"exchange_every = {sweeps}\nrounds = {rounds}\n"
            f"equilibration_rounds = {eq_rounds}\n"
            f"optimize_ladder = {'true' if optimize else 'false'}\n")


def run_pt(config, ranks, timeout=None) -> dict:
    """Run one tempering job and return its summary."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    base = [sys.executable, "-m", "swapmc.tempering", config]
    if ranks == 0:  # the serial twin, no MPI at all
        cmd = base + ["--mpi", "off"]
    else:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        if not os.path.exists(mpiexec):
            mpiexec = shutil.which("mpiexec") or "mpiexec"
        cmd = [mpiexec, "-n", str(ranks)] + base
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    with open(os.path.join(directory_of(config), "summary.json")) as fh:
        return json.load(fh)


def directory_of(config):
    with open(config) as fh:
        for line in fh:
            if line.startswith("directory"):
                return line.split("=", 1)[1].strip().strip('"')
    raise ValueError(config)


def efficiency(tmp, args):
    r = args.replicas_per_rank
    common = dict(n=args.n, t_min=0.8, t_max=1.2, sweeps=args.sweeps, rounds=args.rounds,
                  eq_rounds=5)
    cases = [("serial twin", 0, r), ("serial twin", 0, 2 * r), ("mpiexec -n 2", 2, 2 * r)]
    rows = []
    for label, ranks, m in cases:
        best = None
        for rep in range(args.repeat):
            d = os.path.join(tmp, f"eff_{ranks}_{m}_{rep}")
            cfg = d + ".toml"
            write_config(cfg, d, replicas=m, **common)
            s = run_pt(cfg, ranks)["run"]
            if best is None or s["seconds_per_round"] < best["seconds_per_round"]:
                best = s
        rows.append((label, max(ranks, 1), m, best))
    print(f"\n1. Time per exchange round, KA2 N = {args.n}, K = {args.sweeps} sweeps per round, "
          f"{args.rounds} + 5 rounds (best of {args.repeat})")
    print(f"{'run':>14s} {'ranks':>5s} {'replicas':>8s} {'s/round':>9s} "
          f"{'wall ms/rep-sweep':>17s} {'CPU ms/rep-sweep':>16s} {'rank-0 wait %':>13s}")
    for label, ranks, m, s in rows:
        per = s["seconds_per_round"] / (m / ranks) / args.sweeps * 1e3
        sweeps_done = s["rounds_this_call"] * (m / ranks) * args.sweeps
        cpu = s["rank0_sweep_cpu_seconds"] / sweeps_done * 1e3
        total = s["rank0_sweep_seconds"] + s["rank0_communication_seconds"]
        wait = 100 * s["rank0_communication_seconds"] / total if total else float("nan")
        print(f"{label:>14s} {ranks:5d} {m:8d} {s['seconds_per_round']:9.4f} {per:17.3f} "
              f"{cpu:16.3f} {wait:13.1f}")
    t1, t1_strong, t2 = (rows[0][3]["seconds_per_round"], rows[1][3]["seconds_per_round"],
                         rows[2][3]["seconds_per_round"])
    print(f"   weak scaling ({r} replicas per rank), 1 -> 2 ranks: efficiency t1/t2 = "
          f"{100 * t1 / t2:.1f} %  (target >= 90 %)")
    print(f"   strong scaling ({2 * r} replicas), 1 -> 2 ranks: speed-up {t1_strong / t2:.2f}, "
          f"efficiency {100 * t1_strong / (2 * t2):.1f} %")
    cpu = [row[3]["rank0_sweep_cpu_seconds"] / (row[3]["rounds_this_call"] * row[2] / row[1])
           for row in rows]
    print(f"   CPU time per replica-sweep, 2 replicas per rank on 1 -> 2 ranks: "
          f"{1e3 * cpu[0] / args.sweeps:.3f} -> {1e3 * cpu[2] / args.sweeps:.3f} ms "
          f"(ratio {100 * cpu[0] / cpu[2]:.1f} %): the work per rank does not grow; a wall "
          "figure below that ratio means the ranks did not get whole cores")
    gather = allgather_cost(2 * r)
    if gather is not None:
        print(f"   intrinsic cost of a round's allgather ({2 * r} replica records, 2 ranks): "
              f"{gather * 1e6:.0f} us -> efficiency bound on dedicated cores "
              f"{100 * t1 / (t1 + gather):.2f} %, i.e. CPU-normalised efficiency "
              f"{100 * cpu[0] / cpu[2] * t1 / (t1 + gather):.1f} %")


def allgather_cost(n_replicas, iterations=2000):
    """Seconds per allgather of the per-round replica records between 2 ranks."""
    code = (
        "import time; from mpi4py import MPI; c = MPI.COMM_WORLD\n"
        f"recs = [(r, -3000.1, 416.7, 0.1, 0.01) for r in range({n_replicas} // 2)]\n"
        "c.allgather((1, recs)); c.Barrier(); t = time.perf_counter()\n"
        f"for _ in range({iterations}): c.allgather((123456, recs))\n"
        "dt = (time.perf_counter() - t) / " + str(iterations) + "\n"
        "print(c.allreduce(dt, op=MPI.MAX)) if c.rank == 0 else c.allreduce(dt, op=MPI.MAX)\n"
    )
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    try:
        out = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=120)
        return float(out.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def round_trips(tmp, args):
    d = os.path.join(tmp, "roundtrip")
    cfg = d + ".toml"
    write_config(cfg, d, n=args.n, replicas=args.rt_replicas, t_min=0.45, t_max=1.0,
                 sweeps=args.sweeps, rounds=args.rt_rounds, eq_rounds=args.rt_eq_rounds,
                 optimize=args.optimize)
    s = run_pt(cfg, args.rt_ranks)
    rt = s["round_trips"]
    print(f"\n2. Round trips, KA2 N = {s['n']}, {s['n_replicas']} replicas, T = "
          f"{s['ladder'][0]:g} .. {s['ladder'][-1]:g} "
          f"({'feedback-optimised' if s['ladder_optimized'] else 'geometric'}), "
          f"{s['run']['n_ranks'] or 1} rank(s), K = {s['exchange_every']}, "
          f"{s['equilibration_rounds']} + {s['rounds']} rounds")
    print(f"{'pair':>4s} {'T_low':>8s} {'T_high':>8s} {'acceptance':>10s} {'f_up(T_low)':>11s}")
    for k, p in enumerate(s["pairs"]):
        acc = "-" if p["acceptance"] is None else f"{p['acceptance']:.3f}"
        f = s["fraction_up"][k]
        print(f"{k:4d} {p['T_low']:8.4f} {p['T_high']:8.4f} {acc:>10s} "
              f"{'-' if f is None else f'{f:.2f}':>11s}")
    mean = ("none completed" if rt["mean_sweeps"] is None
            else f"{rt['mean_rounds']:.1f} rounds = {rt['mean_sweeps']:.0f} sweeps per replica")
    rate = ("-" if rt["from_rate_sweeps"] is None
            else f"{rt['from_rate_rounds']:.0f} rounds = {rt['from_rate_sweeps']:.3g} sweeps")
    print(f"   round trips: {rt['total']} (per replica {rt['per_replica']}); mean round-trip "
          f"time: {mean}")
    print(f"   one-way passages T_min <-> T_max: {rt['passages']}; round-trip time from the "
          f"passage rate 2 M rounds / passages: {rate}")
    print(f"   {s['run']['seconds_per_round']:.3f} s per round, production wall time "
          f"{s['run']['seconds_per_round'] * s['rounds']:.0f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sweeps", type=int, default=10, help="sweeps per round (K)")
    p.add_argument("--replicas-per-rank", type=int, default=2)
    p.add_argument("--rounds", type=int, default=40, help="timed rounds (efficiency)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rt-replicas", type=int, default=16)
    p.add_argument("--rt-rounds", type=int, default=3000)
    p.add_argument("--rt-eq-rounds", type=int, default=200)
    p.add_argument("--rt-ranks", type=int, default=2, help="0: serial twin")
    p.add_argument("--optimize", action="store_true", help="feedback-optimise the ladder")
    p.add_argument("--skip-efficiency", action="store_true")
    p.add_argument("--skip-roundtrip", action="store_true")
    p.add_argument("--keep", help="keep the run directories here")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: N = 200, 5 timed rounds, 4 replicas for 40 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.repeat = 200, 5, 1
        args.rt_replicas, args.rt_rounds, args.rt_eq_rounds = 4, 40, 5
    from swapmc import __version__

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"swapmc {__version__} parallel tempering benchmark; {platform.processor() or '?'} "
          f"{os.cpu_count()} cores, load average at start {load[0]:.2f} "
          "(other jobs share this machine: wall times are upper bounds)")
    tmp = args.keep or tempfile.mkdtemp(prefix="bench_pt_")
    os.makedirs(tmp, exist_ok=True)
    try:
        if not args.skip_efficiency:
            efficiency(tmp, args)
        if not args.skip_roundtrip:
            round_trips(tmp, args)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(os, "getloadavg"):
        print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
