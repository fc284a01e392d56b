"""Parallel tempering with swaps over the deep range: round trips, equilibrium, and cost.

Runs (or continues) ``swapmc temper`` on a geometric ladder down to a deep temperature
(default KA2 x_C = 0.10, N = 500, T = 0.30-0.45, 10 replicas, exchanges every 10 sweeps)
and analyses its output against the single swap chains of the speed-up study
(``docs/speedup_curve.json``, cooling in steps, N = 500):

1. *Round trips* T_min -> T_max -> T_min of the replica labels: the count, and the
   round-trip time from the passage rate, tau_rt = 2 M t / passages (M replicas, t sweeps
   per replica, passages = one-way trips between the ends; its error tau_rt / sqrt(passages)
   treats passages as Poisson events). The mean of completed round trips is also given; it is
   biased low in a finite run (long trips are cut off).
2. *Equilibrium at every temperature*: the production of U/N at each ladder temperature is
   cut into ``--blocks`` blocks; drift_z compares the means of the two halves (batch-means
   errors); the equilibrium value is the mean of the second half with its batch-means error
   (blocks long compared with tau_rt, so they are close to independent).
3. *Against single chains*: at each temperature of the single-chain study inside the ladder,
   the second-half PT energy (linear interpolation between the two bracketing ladder
   temperatures, errors propagated) minus the chain's production mean; the chain's error is
   half the difference of its two production halves (a one-degree-of-freedom estimate).
4. *Cost*: tau_alpha of a single swap chain at T_min from the study's Arrhenius fit of swap
   tau_alpha (T <= 0.6; error from its covariance, scaled by sqrt(chi2/dof)); an independent
   T_min configuration costs ~tau_alpha sweeps on a chain and ~M tau_rt / 2 replica-sweeps
   in PT (one per one-way passage), which also gives configurations at every other ladder
   temperature.

    python scripts/pt_deep.py --quick                        # tiny N and ladder, ~1 min
    python scripts/pt_deep.py --out pt-deep --ranks 2        # the measurement (~1 h, 2 cores)
    python scripts/pt_deep.py --out pt-deep --analyze-only   # the analysis of a run

The run checkpoints and resumes (``swapmc temper``); rerunning with a larger ``--rounds``
extends it. Outputs: ``docs/pt_deep_output.txt`` and ``.json`` (``--report``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def temper_command(args) -> list[str]:
    """``swapmc temper`` for this study, under ``mpiexec -n ranks`` when ranks > 1."""
    cmd = [sys.executable, "-m", "swapmc", "temper", args.preset, "-N", str(args.n),
           "--t-min", repr(args.t_min), "--t-max", repr(args.t_max), "-M", str(args.replicas),
           "-K", str(args.exchange_every), "--equilibration-rounds", str(args.equilibration),
           "-r", str(args.rounds), "-o", os.path.join(args.out, "run"), "--seed",
           str(args.seed), "--checkpoint-every", str(args.checkpoint_every), "--no-progress"]
    if args.ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec, "-n", str(args.ranks)] + cmd
    return cmd


def read_table(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one of ``swapmc temper``'s CSV files (``#`` lines skipped)."""
    with open(path) as f:
        rows = [r for r in csv.reader(line for line in f if not line.startswith("#"))]
    return rows[0], rows[1:]


def block_stats(x: np.ndarray, blocks: int) -> dict:
    """Batch means of ``x`` (shape (n,)): halves' means and errors, their drift z, and the
    second half's mean and error (each half's error from its blocks' spread)."""
    nb = blocks - blocks % 2
    m = len(x) // nb * nb
    b = x[len(x) - m:].reshape(nb, -1).mean(axis=1)
    h1, h2 = b[: nb // 2], b[nb // 2:]
    e1 = h1.std(ddof=1) / math.sqrt(len(h1))
    e2 = h2.std(ddof=1) / math.sqrt(len(h2))
    return {"first_half": float(h1.mean()), "first_err": float(e1),
            "second_half": float(h2.mean()), "second_err": float(e2),
            "drift_z": float((h2.mean() - h1.mean()) / math.hypot(e1, e2)),
            "blocks": int(nb), "points_per_block": int(m // nb)}


def interpolate(ladder: np.ndarray, values: np.ndarray, errors: np.ndarray, t: float):
    """Linear interpolation of ``values`` (shape (M,), at increasing ``ladder``) to ``t``,
    the error propagated from the two bracketing points as independent."""
    k = int(np.clip(np.searchsorted(ladder, t) - 1, 0, len(ladder) - 2))
    w = (t - ladder[k]) / (ladder[k + 1] - ladder[k])
    v = (1 - w) * values[k] + w * values[k + 1]
    e = math.hypot((1 - w) * errors[k], w * errors[k + 1])
    return float(v), float(e)


def arrhenius_tau(fit: dict, t: float) -> tuple[float, float]:
    """tau and its error at ``t`` from a stored Arrhenius fit ln tau = ln tau_inf + E / T;
    the covariance is scaled by chi2/dof when that exceeds 1 (scatter beyond the errors)."""
    p, cov = fit["params"], np.array(fit["cov"], dtype=float)
    scale = max(1.0, fit["chi2"] / fit["dof"]) if fit.get("dof") else 1.0
    g = np.array([1.0, 1.0 / t])
    ln_tau = p["ln_tau_inf"] + p["E"] / t
    return float(math.exp(ln_tau)), float(math.exp(ln_tau) * math.sqrt(scale * g @ cov @ g))


def count_passages(slots: np.ndarray, m: int, start: int = 0) -> tuple[int, int]:
    """One-way passages between the ladder's ends and completed round trips
    T_min -> T_max -> T_min, from the slot of each replica at each round.

    A replica's direction (last end visited) is followed from the first row; passages and
    trips are counted from row ``start`` on, and a trip only when its start (an arrival at
    T_min) lies at or after ``start`` (as ``swapmc temper`` counts its production).

    Parameters
    ----------
    slots : ndarray, shape (rounds, replicas)
        Temperature slot (0 = lowest) of every replica during every round.
    m : int
        Number of slots.
    start : int
        First counted row.

    Returns
    -------
    passages, round_trips : int
    """
    n_rep = slots.shape[1]
    direction = [0] * n_rep  # +1 heading up (last end T_min), -1 heading down
    trip_start = [-1] * n_rep
    passages = trips = 0
    for i, row in enumerate(slots):
        counting = i >= start
        if i == start:
            trip_start = [-1] * n_rep
        for r, s in enumerate(row):
            if s == 0:
                if direction[r] != 1:
                    if direction[r] == -1 and counting:
                        passages += 1
                        if trip_start[r] >= 0:
                            trips += 1
                    trip_start[r] = i
                elif trip_start[r] < 0:
                    trip_start[r] = i
                direction[r] = 1
            elif s == m - 1:
                if direction[r] == 1 and counting:
                    passages += 1
                direction[r] = -1
    return passages, trips


def analyze(run: str, reference: str | None, blocks: int) -> dict:
    """The analysis of a ``swapmc temper`` directory (see the module docstring)."""
    # ladder.csv and the CSV tables are written as the run goes, so a run still going (or
    # killed) can be analysed; summary.json is only used when it covers the same rounds.
    with open(os.path.join(run, "config.toml")) as f:
        k_every = int(next(line.split("=")[1] for line in f
                           if line.strip().startswith("exchange_every")))
    lh, lrows = read_table(os.path.join(run, "ladder.csv"))
    # The last row is the ladder in use (frozen after the equilibration rounds).
    ladder = np.array([float(v) for h, v in zip(lh, lrows[-1])
                       if h.startswith("T") and h[1:].isdigit()], dtype=float)
    m = len(ladder)
    head, rows = read_table(os.path.join(run, "energy_by_temperature.csv"))
    prod = [r for r in rows if r[head.index("phase")] == "production"]
    cols = [head.index(f"T{k}") for k in range(m)]
    u = np.array([[float(r[c]) for c in cols] for r in prod])
    lab_head, lab_rows = read_table(os.path.join(run, "labels.csv"))
    all_slots = np.array([[int(r[lab_head.index(f"r{k}")]) for k in range(m)]
                          for r in lab_rows])
    in_prod = np.array([r[lab_head.index("phase")] == "production" for r in lab_rows])
    first = int(np.argmax(in_prod)) if in_prod.any() else len(lab_rows)
    n_rounds = min(len(u), int(in_prod.sum()))
    u = u[:n_rounds]
    all_slots = all_slots[:first + n_rounds]
    lab = all_slots[first:]
    passages, trips = count_passages(all_slots, m, start=first)
    t_rep = n_rounds * k_every
    summary_path = os.path.join(run, "summary.json")
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    sweeps_per_round = k_every
    per_t = []
    for k in range(m):
        st = block_stats(u[:, k], blocks)
        st["T"] = float(ladder[k])
        per_t.append(st)
    tau_rt = 2.0 * m * t_rep / passages if passages else math.inf
    # Pair acceptance from the label trace: a pair exchanged when two replicas swapped slots.
    moved = np.count_nonzero(np.diff(lab, axis=0), axis=1)
    out = {"run": run, "preset": summary.get("preset"), "n": summary.get("n"),
           "replicas": m, "ladder": ladder.tolist(), "exchange_every": sweeps_per_round,
           "production_rounds": int(n_rounds), "sweeps_per_replica": int(t_rep),
           "round_trips": trips, "passages": passages, "tau_rt_sweeps": tau_rt,
           "tau_rt_err": tau_rt / math.sqrt(passages) if passages else math.inf,
           "exchanges_per_round": float(moved.mean() / 2) if len(moved) else math.nan,
           "per_temperature": per_t}
    if summary.get("rounds_done") == summary.get("equilibration_rounds", 0) + n_rounds:
        # The run's own bookkeeping of the same production rounds, for comparison.
        out["summary_round_trips"] = summary["round_trips"]
        out["pair_acceptance"] = [p.get("acceptance") for p in summary["pairs"]]
    if reference and os.path.exists(reference):
        with open(reference) as f:
            ref = json.load(f)
        second = np.array([p["second_half"] for p in per_t])
        second_err = np.array([p["second_err"] for p in per_t])
        comp = []
        for r in ref["swap"]:
            t = float(r["T"])
            if not ladder[0] - 1e-12 <= t <= ladder[-1] + 1e-12:
                continue
            v, e = interpolate(ladder, second, second_err, t)
            e_ref = abs(r["energy_halves"][0] - r["energy_halves"][1]) / 2.0
            comp.append({"T": t, "pt": v, "pt_err": e, "chain": r["energy"],
                         "chain_err": e_ref, "diff": v - r["energy"],
                         "z": (v - r["energy"]) / math.hypot(e, e_ref)})
        out["versus_chains"] = comp
        fit = ref.get("fits", {}).get("swap", {}).get("arrhenius")
        if fit:
            tau, tau_err = arrhenius_tau(fit, float(ladder[0]))
            out["tau_alpha_chain_at_tmin"] = [tau, tau_err]
            out["tau_alpha_fit_range"] = fit.get("t_range")
            out["cost_per_tmin_sample"] = {
                "chain_sweeps": tau, "pt_replica_sweeps": m * tau_rt / 2.0,
                "ratio_pt_over_chain": (m * tau_rt / 2.0) / tau}
    return out


def report(res: dict, command: str) -> str:
    lines = [f"# {command}", "",
             f"swapmc parallel tempering over the deep range: {res['preset']}, N = {res['n']}, "
             f"{res['replicas']} replicas, T = {res['ladder'][0]:g}-{res['ladder'][-1]:g} "
             f"(geometric), exchanges every {res['exchange_every']} sweeps; "
             f"{res['production_rounds']} production rounds, "
             f"{res['sweeps_per_replica']} sweeps per replica in all", "",
             "1. Round trips T_min -> T_max -> T_min (production rounds, from labels.csv)",
             f"   completed: {res['round_trips']}; one-way passages: {res['passages']}",
             f"   tau_rt = 2 M t / passages = {res['tau_rt_sweeps']:.3g} ± "
             f"{res['tau_rt_err']:.2g} sweeps (Poisson error)"]
    if "summary_round_trips" in res:
        srt = res["summary_round_trips"]
        mean = srt.get("mean_sweeps")
        lines += [f"   the run's own count: {srt['total']} round trips, "
                  f"{srt['passages']} passages, mean completed trip "
                  + (f"{mean:.3g} sweeps (biased low: long trips are cut off)" if mean
                     else "-"),
                  "   pair acceptance (T_k <-> T_k+1): "
                  + " ".join(f"{a:.2f}" for a in res["pair_acceptance"] if a is not None)]
    lines += ["",
             "2. U/N at each temperature (production cut into blocks; batch-means errors)",
             f"{'T':>9s} {'first half':>20s} {'second half':>20s} {'drift_z':>8s}"]
    for p in res["per_temperature"]:
        lines.append(f"{p['T']:9.5f} {p['first_half']:11.5f} ± {p['first_err']:.5f} "
                     f"{p['second_half']:11.5f} ± {p['second_err']:.5f} {p['drift_z']:8.2f}")
    if "versus_chains" in res:
        lines += ["", "3. Against single swap chains (docs/speedup_curve.json, N = 500): "
                  "PT second half (interpolated) minus the chain's production mean",
                  f"{'T':>6s} {'PT':>20s} {'chain':>20s} {'diff':>9s} {'z':>6s}"]
        for c in res["versus_chains"]:
            lines.append(f"{c['T']:6.3f} {c['pt']:11.5f} ± {c['pt_err']:.5f} "
                         f"{c['chain']:11.5f} ± {c['chain_err']:.5f} {c['diff']:+9.5f} "
                         f"{c['z']:+6.2f}")
        lines.append("   chain error: half the difference of its two production halves "
                     "(one degree of freedom)")
    if "cost_per_tmin_sample" in res:
        c, (tau, tau_err) = res["cost_per_tmin_sample"], res["tau_alpha_chain_at_tmin"]
        lines += ["", "4. Cost of an independent configuration at T_min = "
                  f"{res['ladder'][0]:g}",
                  f"   single swap chain: tau_alpha = {tau:.3g} ± {tau_err:.2g} sweeps "
                  f"(Arrhenius fit of swap tau_alpha on T in {res['tau_alpha_fit_range']}"
                  + (", extrapolated)" if res["ladder"][0] < min(res["tau_alpha_fit_range"])
                     else ")"),
                  f"   parallel tempering: M tau_rt / 2 = {c['pt_replica_sweeps']:.3g} "
                  f"replica-sweeps (plus one configuration at each other temperature)",
                  f"   ratio PT / chain: {c['ratio_pt_over_chain']:.2g}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="pt-deep", help="work directory (the run is OUT/run)")
    ap.add_argument("--preset", default="ka2-x10")
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--t-min", type=float, default=0.30)
    ap.add_argument("--t-max", type=float, default=0.45)
    ap.add_argument("-M", "--replicas", type=int, default=10)
    ap.add_argument("-K", "--exchange-every", type=int, default=10)
    ap.add_argument("--equilibration", type=int, default=2000, help="equilibration rounds")
    ap.add_argument("-r", "--rounds", type=int, default=100000, help="production rounds")
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks (mpiexec next to python)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--checkpoint-every", type=int, default=2000, help="sweeps per replica")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--reference", default=os.path.join(ROOT, "docs", "speedup_curve.json"),
                    help="single-chain results (speedup_curve.py --json)")
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--report", default=None, help="write the report here (and .json)")
    ap.add_argument("--quick", action="store_true", help="N = 200, 4 replicas, short run")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.t_min, args.t_max, args.replicas = 200, 0.6, 1.0, 4
        args.equilibration, args.rounds, args.checkpoint_every = 50, 400, 500
    cmd = temper_command(args)
    if not args.analyze_only:
        os.makedirs(args.out, exist_ok=True)
        r = subprocess.run(cmd)
        if r.returncode != 0:
            print(f"pt_deep: swapmc temper failed (exit {r.returncode})", file=sys.stderr)
            return 1
    run = os.path.join(args.out, "run")
    if not os.path.exists(os.path.join(run, "labels.csv")):
        print(f"pt_deep: no run in {run}", file=sys.stderr)
        return 1
    res = analyze(run, args.reference, args.blocks)
    text = report(res, " ".join(cmd))
    print(text, end="")
    if args.report:
        with open(args.report + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.report + ".tmp", args.report)
        with open(args.report.rsplit(".", 1)[0] + ".json.tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(args.report.rsplit(".", 1)[0] + ".json.tmp",
                   args.report.rsplit(".", 1)[0] + ".json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
