"""Yielding of stable and poor KA2 glasses by athermal quasistatic shear (issue 13, item 9).

Stable glasses: certified N = 500 KA2 (ka2-x10) samples of a deep swap-MC library (parent
T = 0.33 and 0.31), each replicated 2x2x2 to N = 4000 and re-equilibrated by swap MC at its
parent temperature for 3.2 tau_alpha of the parent (``swapmc run``, so it checkpoints and
resumes). The replicas' decorrelation is measured (image overlap between the 8 periodic
copies against its value at random shifts, i.e. for unrelated pieces of the same liquid)
and the energy checked for stationarity and against the library value. Poor glasses:
N = 4000 melted and equilibrated at T = 1.0 (4000 sweeps, ~10 tau_alpha). Every glass is
quenched (L-BFGS, then FIRE if needed, to max|F| < 1e-10), sheared by AQS (simple shear to
30 %, steps of 2e-4, L-BFGS to max|F_i| < 1e-8 after each step) with ``swapmc shear``, one
process per glass, and summarised per glass and per family (by parent temperature, the
stable glasses pooled, the poor ones) with ``swapmc.analysis.yielding``: means and
standard errors over glasses.

    python scripts/yielding_demo.py --quick            # the whole pipeline at tiny N
    python scripts/yielding_demo.py --work yd --jobs 4 # the demonstration (CPU hours)

Outputs: ``docs/yielding_demo_output.txt`` and ``.json`` (``--docs``), figures
``docs/figures/yielding_*.png``; work files under ``--work``. Stages run in order
(``--stage`` runs one: prepare, equilibrate, quench, shear, report) and skip what is done,
so a killed run resumes where it stopped; the swap-MC runs and the AQS runs resume from
their checkpoints, and every per-glass output is written atomically. The re-equilibrations
run one at a time; ``--jobs`` AQS runs at once, and ``--stage shear --follow`` quenches and
shears glasses while another process is still equilibrating the others.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np

from swapmc import Box, System
from swapmc.analysis.stability import compare_groups
from swapmc.analysis.yielding import DEFAULT_MODULUS_STRAIN
from swapmc.io import atomic_write, read_extxyz, write_extxyz
from swapmc.md.shear_cli import yielding_record

STAGES = ("prepare", "equilibrate", "quench", "shear", "report")
OVERLAP_RADIUS = 0.3  # sigma_AA


# --------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json(path: str, data) -> None:
    write_text(path, json.dumps(data, indent=1, default=_jsonable) + "\n")


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def replicate(system: System, reps=(2, 2, 2)) -> System:
    """Periodic copies of an orthorhombic configuration, copy k = (kx, ky, kz) occupying
    particle indices k*N0 .. (k+1)*N0 - 1 (k = (kx*ry + ky)*rz + kz)."""
    if not system.box.is_orthorhombic:
        raise ValueError("replicate: orthorhombic cells only")
    lengths = np.asarray(system.box.lengths, dtype=float)
    pos, spec = [], []
    for kx in range(reps[0]):
        for ky in range(reps[1]):
            for kz in range(reps[2]):
                pos.append(system.positions + lengths * np.array([kx, ky, kz], dtype=float))
                spec.append(system.species)
    return System(np.concatenate(pos), np.concatenate(spec), system.species_names,
                  Box(lengths * np.asarray(reps, dtype=float)))


def image_shifts(parent_lengths, reps=(2, 2, 2)) -> list[np.ndarray]:
    """The non-zero translations that map one periodic copy onto another."""
    out = []
    for kx in range(reps[0]):
        for ky in range(reps[1]):
            for kz in range(reps[2]):
                if kx or ky or kz:
                    out.append(np.asarray(parent_lengths, float) * np.array([kx, ky, kz]))
    return out


def shift_overlap(system: System, shift, radius: float = OVERLAP_RADIUS) -> float:
    """Fraction of particles i that have some particle within ``radius`` of x_i + shift
    (periodic, orthorhombic cell): 1 for an exact periodic copy along ``shift``."""
    from scipy.spatial import cKDTree

    lengths = np.asarray(system.box.lengths, dtype=float)
    x = np.mod(system.positions, lengths)
    tree = cKDTree(x, boxsize=lengths)
    y = np.mod(x + np.asarray(shift, float), lengths)
    d, _ = tree.query(y, k=1, distance_upper_bound=radius)
    return float(np.mean(np.isfinite(d)))


def overlap_report(system: System, parent_lengths, reps, seed: int = 0,
                   n_random: int = 20, radius: float = OVERLAP_RADIUS) -> dict:
    """Image overlap between the periodic copies (mean and range over the shifts that map
    copy a onto copy b) against the same measure at random shifts (unrelated pieces of the
    same configuration: the value for independent configurations with this structure) and
    the ideal-gas value 1 - exp(-4 pi rho r^3 / 3)."""
    shifts = image_shifts(parent_lengths, reps)
    q = np.array([shift_overlap(system, s, radius) for s in shifts])
    rng = np.random.default_rng(seed)
    lengths = np.asarray(system.box.lengths, dtype=float)
    qr = np.array([shift_overlap(system, rng.uniform(0, 1, 3) * lengths, radius)
                   for _ in range(n_random)])
    rho = len(system.positions) / float(np.prod(lengths))
    return {"radius": radius, "image_mean": float(q.mean()), "image_min": float(q.min()),
            "image_max": float(q.max()), "image_values": q.tolist(),
            "random_mean": float(qr.mean()),
            "random_std": float(qr.std(ddof=1)) if len(qr) > 1 else 0.0,
            "ideal_gas": float(1.0 - math.exp(-4.0 * math.pi * rho * radius ** 3 / 3.0))}


def block_mean(x, n_blocks: int = 10) -> tuple[float, float]:
    """Mean and its error from ``n_blocks`` contiguous block means."""
    x = np.asarray(x, float)
    nb = min(n_blocks, len(x))
    blocks = np.array([b.mean() for b in np.array_split(x, nb)])
    return float(x.mean()), float(blocks.std(ddof=1) / math.sqrt(nb)) if nb > 1 else math.nan


def read_thermo(path: str) -> dict:
    rows = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                rows.append(line)
    reader = csv.DictReader(rows)
    out: dict[str, list] = {}
    for r in reader:
        for k, v in r.items():
            out.setdefault(k, []).append(v)
    return {k: (np.array(v, dtype=float) if k != "phase" else np.array(v)) for k, v in
            out.items()}


def run_toml(path: str, *, temperature: float, n: int, init: str, seed: int,
             equilibration: int, production: int, directory: str, thermo_every: int,
             trajectory_every: int, checkpoint_every: int, melt_sweeps: int | None = None,
             preset: str = "ka2-x10") -> None:
    lines = [
        "# written by scripts/yielding_demo.py",
        f'preset = "{preset}"',
        "[state]", f"temperature = {temperature!r}",
        "[system]", f"n = {n}", f'init = "{init}"',
    ]
    if melt_sweeps is not None:
        lines.append(f"melt_sweeps = {melt_sweeps}")
    lines += [
        "[run]", f"seed = {seed}", f"equilibration_sweeps = {equilibration}",
        f"production_sweeps = {production}",
        "[output]", f'directory = "{directory}"', f"thermo_every = {thermo_every}",
        f"trajectory_every = {trajectory_every}", f"checkpoint_every = {checkpoint_every}",
        "progress = false",
        "[diagnostics]", "tau_alpha = true",
    ]
    write_text(path, "\n".join(lines) + "\n")


def swapmc_run(toml: str, logfile: str) -> None:
    """``swapmc run toml`` in a subprocess (it resumes from its checkpoint), output to
    ``logfile`` (appended)."""
    cmd = [sys.executable, "-m", "swapmc", "run", toml]
    with open(logfile, "a") as lf:
        lf.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        lf.flush()
        r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit(f"swapmc run {toml} failed (exit {r.returncode}); see {logfile}")


# --------------------------------------------------------------------------- plan
def make_plan(args) -> dict:
    """The glasses: name, family, parent temperature and how each is prepared."""
    glasses = []
    if args.quick:
        for k in range(args.stable_samples_quick):
            glasses.append({"name": f"stable-q{k}", "family": "stable", "kind": "stable",
                            "temperature": args.quick_stable_t, "library_id": None,
                            "parent_n": args.quick_parent_n, "tau_alpha_parent": None,
                            "reeq_sweeps": args.quick_reeq_sweeps, "seed": 7100 + k})
    else:
        from swapmc.library import Library

        with Library(args.library_copy) as lib:
            for sid in args.stable_ids:
                meta = lib.get(sid).meta
                if meta["verdict"] != "certified":
                    raise SystemExit(f"library sample {sid} is not certified")
                tau = float(meta["tau_alpha"])
                glasses.append({
                    "name": f"stable-T{meta['temperature']:g}-s{sid}", "family": "stable",
                    "kind": "stable", "temperature": float(meta["temperature"]),
                    "library_id": sid, "parent_n": int(meta["n"]),
                    "tau_alpha_parent": tau, "tau_alpha_parent_stderr":
                        meta.get("tau_alpha_stderr"),
                    "library_energy": float(meta["energy"]),
                    "library_is_energy": float(meta["is_energy"]),
                    "reeq_sweeps": int(math.ceil(args.reeq_taus * tau / 1000.0) * 1000),
                    "seed": 7100 + sid})
    for k in range(args.poor):
        glasses.append({"name": f"poor-T{args.t_poor:g}-{k}", "family": "poor", "kind": "poor",
                        "temperature": args.t_poor, "library_id": None,
                        "n": args.n_poor, "seed": 8100 + k,
                        "equilibration": args.poor_sweeps // 2,
                        "production": args.poor_sweeps - args.poor_sweeps // 2})
    return {"reps": list(args.reps), "glasses": glasses}


def stage_prepare(args, work: str) -> dict:
    plan_path = os.path.join(work, "plan.json")
    old = read_json(plan_path) if os.path.exists(plan_path) else None
    if not args.quick:
        # Read from a copy: the library itself is never opened by this script.
        if not os.path.exists(args.library_copy):
            shutil.copyfile(args.library, args.library_copy + ".tmp")
            os.replace(args.library_copy + ".tmp", args.library_copy)
    plan = make_plan(args)
    if old is not None:
        # Glasses already planned keep their entries; new ones (a longer --stable-ids or a
        # larger --poor) are added, stable before poor, and prepared below.
        known = {g["name"] for g in old["glasses"]}
        new = [g for g in plan["glasses"] if g["name"] not in known]
        if not new:
            return old
        glasses = ([g for g in old["glasses"] if g["kind"] == "stable"]
                   + [g for g in new if g["kind"] == "stable"]
                   + [g for g in old["glasses"] if g["kind"] != "stable"]
                   + [g for g in new if g["kind"] != "stable"])
        plan = {"reps": old["reps"], "glasses": glasses}
    else:
        new = plan["glasses"]
    for g in new:
        gdir = os.path.join(work, g["name"])
        os.makedirs(gdir, exist_ok=True)
        if g["kind"] == "stable":
            parent_path = os.path.join(gdir, "parent.xyz")
            if g["library_id"] is not None:
                from swapmc.library import Library

                with Library(args.library_copy) as lib:
                    parent = lib.get(g["library_id"]).system
            else:  # --quick: a short swap-MC run stands in for a library sample
                sub = os.path.join(gdir, "parent-run")
                toml = os.path.join(gdir, "parent.toml")
                run_toml(toml, temperature=g["temperature"], n=g["parent_n"], init="random",
                         seed=g["seed"] + 50, equilibration=args.quick_reeq_sweeps,
                         production=args.quick_reeq_sweeps, directory=sub,
                         thermo_every=50, trajectory_every=0, checkpoint_every=500)
                swapmc_run(toml, os.path.join(gdir, "parent.log"))
                parent = read_extxyz(os.path.join(sub, "final.xyz"))
            write_extxyz(parent_path, parent)
            big = replicate(parent, tuple(plan["reps"]))
            g["n"] = len(big.positions)
            g["parent_lengths"] = [float(v) for v in parent.box.lengths]
            init = os.path.join(gdir, "replicated.xyz")
            write_extxyz(init, big)
            eq = min(2000, g["reeq_sweeps"] // 4)
            run_toml(os.path.join(gdir, "reeq.toml"), temperature=g["temperature"], n=g["n"],
                     init=os.path.abspath(init), seed=g["seed"], equilibration=eq,
                     production=g["reeq_sweeps"] - eq,
                     directory=os.path.abspath(os.path.join(gdir, "reeq")),
                     thermo_every=max(1, g["reeq_sweeps"] // 500),
                     trajectory_every=max(1, (g["reeq_sweeps"] - eq) // 8),
                     checkpoint_every=max(100, g["reeq_sweeps"] // 100))
        else:
            run_toml(os.path.join(gdir, "reeq.toml"), temperature=g["temperature"], n=g["n"],
                     init="random", seed=g["seed"], equilibration=g["equilibration"],
                     production=g["production"],
                     directory=os.path.abspath(os.path.join(gdir, "reeq")),
                     thermo_every=max(1, (g["equilibration"] + g["production"]) // 200),
                     trajectory_every=0, checkpoint_every=500)
    write_json(plan_path, plan)
    return plan


def correlated_mean(x) -> tuple[float, float, float]:
    """Mean, its error s sqrt(2 tau_int / n) and tau_int (points; Sokal's window)."""
    from swapmc.analysis.mechanics import integrated_autocorrelation_time

    x = np.asarray(x, float)
    if x.size < 4:
        return float(x.mean()), math.nan, math.nan
    tau = float(integrated_autocorrelation_time(x))
    return float(x.mean()), float(x.std(ddof=1) * math.sqrt(2 * tau / x.size)), tau


def energy_stats(g: dict, run_dir: str) -> dict:
    """E/N over production: mean and correlated error; the two halves (drift_z: their
    difference over the combined error) and the last two quarters (tail_drift_z), each
    piece's error from the whole production's spread and tau_int; the spread of one thermo
    row; for a stable glass the library's N0 = 500 value with z = difference /
    sqrt(sd_N0^2 + err^2), where sd_N0 = sqrt(N / N0) x the spread here is the thermal
    spread of E/N of one N0 sample."""
    th = read_thermo(os.path.join(run_dir, "thermo.csv"))
    e = th["energy_per_particle"][th["phase"] == "production"]
    mean, err, tau = correlated_mean(e)

    def part(x):
        # A piece's error uses the spread and tau_int of the whole production: estimated
        # on a piece only ~1 tau_alpha long, tau_int comes out too small and z too large.
        sd = float(np.std(e, ddof=1))
        return float(x.mean()), sd * math.sqrt(2 * tau / x.size) if x.size else math.nan

    half = len(e) // 2
    (m1, s1), (m2, s2) = part(e[:half]), part(e[half:])
    # The same test on the last half alone: after an extension the early production may
    # still hold the relaxation from the replicated start, which is not what is judged.
    quarter = len(e) // 4
    (m3, s3), (m4, s4) = part(e[2 * quarter:3 * quarter]), part(e[3 * quarter:])
    every = float(np.median(np.diff(th["sweep"])))
    out = {"mean": mean, "stderr": err, "tau_int_sweeps": tau * every,
           "first_half": [m1, s1], "second_half": [m2, s2],
           "drift_z": (m2 - m1) / math.hypot(s1, s2) if s1 > 0 and s2 > 0 else None,
           "tail_drift_z": (m4 - m3) / math.hypot(s3, s4) if s3 > 0 and s4 > 0 else None,
           "std_per_particle": float(np.std(e, ddof=1)), "sweeps": int(th["sweep"][-1]),
           "error_method": "s sqrt(2 tau_int / n), tau_int of the thermo rows (Sokal)"}
    if g["kind"] == "stable" and g.get("library_energy") is not None:
        sd0 = out["std_per_particle"] * math.sqrt(g["n"] / g["parent_n"])
        out["library_value"] = g["library_energy"]
        out["library_sd_at_parent_n"] = sd0
        out["z_vs_library"] = (mean - g["library_energy"]) / math.hypot(sd0, err)
    return out


def equilibration_check(g: dict, plan: dict, gdir: str) -> dict:
    """Decorrelation of the periodic copies and stationarity of the energy."""
    out: dict = {"name": g["name"]}
    run_dir = os.path.join(gdir, "reeq")
    summary = read_json(os.path.join(run_dir, "summary.json"))
    out["energy"] = energy_stats(g, run_dir)
    out["tau_alpha_run"] = summary.get("tau_alpha_sweeps")
    out["tau_alpha_run_stderr"] = summary.get("tau_alpha_stderr_sweeps")
    out["tau_alpha_note"] = summary.get("tau_alpha_note")
    out["production_sweeps"] = summary.get("production")
    if g["kind"] == "stable":
        reps = tuple(plan["reps"])
        before = read_extxyz(os.path.join(gdir, "replicated.xyz"))
        after = read_extxyz(os.path.join(run_dir, "final.xyz"))
        out["overlap_before"] = overlap_report(before, g["parent_lengths"], reps, seed=1)
        out["overlap_after"] = overlap_report(after, g["parent_lengths"], reps, seed=2)
        frames = os.path.join(run_dir, "trajectory.xyz")
        if os.path.exists(frames):
            from swapmc.io import iter_extxyz

            series = []
            for fr in iter_extxyz(frames):
                r = overlap_report(fr, g["parent_lengths"], reps, seed=3, n_random=4)
                series.append([int(fr.info.get("sweep", -1)), r["image_mean"],
                               r["random_mean"]])
            out["overlap_series"] = series
    return out


#: Largest |z| of the last-half energy drift accepted as stationary (a 3-sigma test).
STATIONARY_Z = 3.0

#: Files made from an equilibrated configuration: superseded when its run is extended.
DOWNSTREAM = ("equilibration.json", "inherent.xyz", "inherent.json", "shear", "shear.log",
              "shear_cost.json")


def reeq_verdict(g: dict, res: dict) -> tuple[bool, str]:
    """Whether a re-equilibrated stable glass is accepted: its periodic copies decorrelated
    (image-overlap excess below DECORRELATED_EXCESS) and the energy of the last half of the
    production stationary (|tail_drift_z| < STATIONARY_Z). Poor glasses are always
    accepted (10 tau_alpha at T = 1.0 from a random start)."""
    if g["kind"] != "stable":
        return True, "poor glass"
    why = []
    oa = res.get("overlap_after")
    if oa:
        x = (oa["image_mean"] - oa["random_mean"]) / (1.0 - oa["random_mean"])
        if x >= DECORRELATED_EXCESS:
            why.append(f"image-overlap excess {x:.2f} >= {DECORRELATED_EXCESS:g}")
    z = res["energy"].get("tail_drift_z")
    if z is not None and abs(z) >= STATIONARY_Z:
        why.append(f"last-half energy drift z = {z:+.1f}")
    return not why, "; ".join(why) or "decorrelated and stationary"


def extend_reeq(g: dict, gdir: str, sweeps: int) -> None:
    """Raise the production of ``gdir``'s re-equilibration run by ``sweeps`` (``swapmc run``
    then continues it exactly from its checkpoint) and move what was made from the shorter
    run to ``superseded-<sweeps done>/``."""
    toml = os.path.join(gdir, "reeq.toml")
    text = read_text(toml)
    m = re.search(r"^production_sweeps = (\d+)$", text, flags=re.M)
    done = int(m.group(1))
    old = os.path.join(gdir, f"superseded-{done}")
    os.makedirs(old, exist_ok=True)
    for name in DOWNSTREAM:
        if os.path.exists(os.path.join(gdir, name)):
            os.replace(os.path.join(gdir, name), os.path.join(old, name))
    write_text(toml, text.replace(m.group(0), f"production_sweeps = {done + sweeps}"))


def stage_equilibrate(args, work: str, plan: dict, kinds=("stable", "poor")) -> None:
    """Run each glass's swap MC; a stable glass whose copies are not yet decorrelated (or
    whose energy still drifts) is extended by ``--reeq-chunk-taus`` parent tau_alpha, up to
    ``--reeq-max-taus`` in all; the verdict and the number of extensions are recorded."""
    for g in plan["glasses"]:
        if g["kind"] not in kinds or (args.names and g["name"] not in args.names):
            continue
        gdir = os.path.join(work, g["name"])
        check = os.path.join(gdir, "equilibration.json")
        while True:
            if os.path.exists(check):
                res = read_json(check)
                if "extensions" not in res:  # written before verdicts existed
                    res = equilibration_check(g, plan, gdir) | {
                        "extensions": 0, "wall_seconds_last_call": None}
                if res.get("final"):
                    break
                ok, why = reeq_verdict(g, res)
                tau = g.get("tau_alpha_parent")
                total = res["energy"]["sweeps"]
                cap = args.reeq_max_taus * tau if tau else 0
                if ok or not tau or total >= cap:
                    res.update(accepted=ok, verdict=why, final=True)
                    write_json(check, res)
                    break
                chunk = int(math.ceil(args.reeq_chunk_taus * tau / 1000.0) * 1000)
                log(f"{g['name']}: {why} after {total} sweeps: extending by {chunk}")
                extensions = res.get("extensions", 0) + 1
                extend_reeq(g, gdir, chunk)
            else:
                extensions = 0
            log(f"{g['name']}: swap MC at T = {g['temperature']:g}, N = {g['n']}")
            t0 = time.time()
            swapmc_run(os.path.join(gdir, "reeq.toml"), os.path.join(gdir, "reeq.log"))
            res = equilibration_check(g, plan, gdir)
            res["wall_seconds_last_call"] = time.time() - t0
            res["extensions"] = extensions
            write_json(check, res)
            log(f"{g['name']}: E/N = {res['energy']['mean']:.4f} +- "
                f"{res['energy']['stderr']:.4f}"
                + (f", image overlap {res['overlap_before']['image_mean']:.3f} -> "
                   f"{res['overlap_after']['image_mean']:.3f} (random "
                   f"{res['overlap_after']['random_mean']:.3f})"
                   if "overlap_after" in res else ""))


def equilibrated(gdir: str) -> bool:
    """The glass's re-equilibration has its final verdict (accepted or at the cap)."""
    path = os.path.join(gdir, "equilibration.json")
    return os.path.exists(path) and bool(read_json(path).get("final"))


# --------------------------------------------------------------------------- quench
def stage_quench(args, work: str, plan: dict) -> None:
    """Inherent structure of each equilibrated glass (L-BFGS, finished by FIRE if needed,
    to max|F| < 1e-10: tight enough for the Hessian modulus)."""
    from swapmc.md import ForceField
    from swapmc.md.minimize import minimize
    from swapmc.models import load_preset

    ff = ForceField(load_preset("ka2-x10").model)
    for g in plan["glasses"]:
        gdir = os.path.join(work, g["name"])
        out = os.path.join(gdir, "inherent.xyz")
        if os.path.exists(out) or not equilibrated(gdir):
            continue
        s = read_extxyz(os.path.join(gdir, "reeq", "final.xyz"))
        s.velocities = None
        t0 = time.process_time()
        r = minimize(s, ff, fmax=1e-10, max_steps=1_000_000, method="lbfgs")
        if not r.converged:
            raise SystemExit(f"{g['name']}: quench did not converge (max|F| {r.max_force:.2g})")
        info = {"is_energy": r.energy_per_particle, "max_force": r.max_force,
                "iterations": r.steps, "cpu_seconds": time.process_time() - t0}
        with atomic_write(out) as f:
            write_extxyz(f, r.system, info=info)
        write_json(os.path.join(gdir, "inherent.json"), info)
        log(f"{g['name']}: E_IS/N = {r.energy_per_particle:.5f} ({r.steps} iterations)")


# --------------------------------------------------------------------------- shear
def shear_command(args, gdir: str) -> list[str]:
    return [sys.executable, "-m", "swapmc", "shear", os.path.join(gdir, "inherent.xyz"),
            "--preset", "ka2-x10", "-o", os.path.join(gdir, "shear"),
            "--max-strain", repr(args.max_strain), "--step", repr(args.step),
            "--ftol", repr(args.ftol), "--minimizer", "lbfgs",
            "--steady-window", repr(args.steady_window), "--checkpoint-every", "50",
            "--no-progress"]


def shear_done(gdir: str, args) -> bool:
    path = os.path.join(gdir, "shear", "summary.json")
    if not os.path.exists(path):
        return False
    rec = read_json(path)
    return ("yielding" in rec and rec["summary"]["max_strain"] >= args.max_strain - 1e-9)


def _start_shear(args, work: str, g: dict):
    gdir = os.path.join(work, g["name"])
    cmd = shear_command(args, gdir)
    log(f"{g['name']}: AQS to strain {args.max_strain:g} in steps of {args.step:g}")
    lf = open(os.path.join(gdir, "shear.log"), "a")
    lf.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
    lf.flush()
    proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)
    return {"proc": proc, "log": lf, "glass": g, "t0": time.time(),
            "rows0": _rows(os.path.join(gdir, "shear"))}


def _rows(shear_dir: str) -> int:
    """AQS steps recorded so far in ``shear_dir`` (0 when none)."""
    path = os.path.join(shear_dir, "stress_strain.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max(0, sum(1 for _ in f) - 2)


def _finish_shear(work: str, job: dict, status: int, usage) -> None:
    """Book the CPU and wall time of a finished ``swapmc shear`` (``shear_cost.json``,
    summed over resumed calls) and check its exit code."""
    job["log"].close()
    g = job["glass"]
    gdir = os.path.join(work, g["name"])
    cost_path = os.path.join(gdir, "shear_cost.json")
    cost = read_json(cost_path) if os.path.exists(cost_path) else {"wall": 0.0, "cpu": 0.0}
    cost["wall"] += time.time() - job["t0"]
    cost["cpu"] += usage.ru_utime + usage.ru_stime
    # Steps run by the calls booked (a call killed before its end is not booked).
    cost["steps"] = cost.get("steps", 0) + _rows(os.path.join(gdir, "shear")) - job["rows0"]
    write_json(cost_path, cost)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"swapmc shear failed for {g['name']} (exit {code}); see "
                         f"{gdir}/shear.log")
    if code == 1:
        log(f"{g['name']}: some minimisation stopped at --max-iter (see stress_strain.csv)")
    log(f"{g['name']}: sheared ({cost['cpu']:.0f} CPU s in all)")


def stage_shear(args, work: str, plan: dict) -> None:
    """AQS of every quenched glass with ``swapmc shear`` (one process per glass, which
    checkpoints every 50 steps and resumes), up to ``--jobs`` at a time. With
    ``--follow``, glasses that are still being equilibrated elsewhere are quenched and
    sheared as they become ready, until every glass of the plan is sheared."""
    running: dict[int, dict] = {}
    while True:
        if args.follow:
            stage_quench(args, work, plan)
        started = {job["glass"]["name"] for job in running.values()}
        for g in plan["glasses"]:
            if len(running) >= args.jobs:
                break
            gdir = os.path.join(work, g["name"])
            if (g["name"] in started or shear_done(gdir, args) or not equilibrated(gdir)
                    or not os.path.exists(os.path.join(gdir, "inherent.xyz"))):
                continue
            job = _start_shear(args, work, g)
            running[job["proc"].pid] = job
        pending = [g for g in plan["glasses"]
                   if not shear_done(os.path.join(work, g["name"]), args)]
        if not running and (not args.follow or not pending):
            return
        if not running:
            time.sleep(30)
            continue
        # Wait for one job, or poll for new glasses every 30 s when following.
        deadline = time.time() + (30 if args.follow else 1e9)
        while running and time.time() < deadline:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(2)
                continue
            if pid in running:
                job = running.pop(pid)
                job["proc"].returncode = os.waitstatus_to_exitcode(status)
                _finish_shear(work, job, status, usage)
                break


# --------------------------------------------------------------------------- report
#: A replica counts as decorrelated when the image overlap of its copies exceeds the
#: random-shift value by less than this fraction of the possible excess (1 - q_random).
DECORRELATED_EXCESS = 0.1


def overlap_excess(work: str, g: dict) -> float | None:
    """(q_img - q_random) / (1 - q_random) after the re-equilibration, None if unknown."""
    path = os.path.join(work, g["name"], "equilibration.json")
    if g["kind"] != "stable" or not os.path.exists(path):
        return None
    oa = read_json(path).get("overlap_after")
    if not oa:
        return None
    return (oa["image_mean"] - oa["random_mean"]) / (1.0 - oa["random_mean"])


def _families(plan: dict, work: str | None = None) -> dict:
    """Family name -> glass names: per parent temperature, the stable glasses pooled (and,
    if some replica failed the decorrelation check, those that passed), the poor ones."""
    fam: dict[str, list] = {}
    for g in plan["glasses"]:
        if g["kind"] == "stable":
            fam.setdefault(f"stable T={g['temperature']:g}", []).append(g["name"])
    stable = [g for g in plan["glasses"] if g["kind"] == "stable"]
    if len({g["temperature"] for g in stable}) > 1:
        fam["stable (pooled)"] = [g["name"] for g in stable]
    if work is not None:
        excess = {g["name"]: overlap_excess(work, g) for g in stable}
        ok = [n for n, x in excess.items() if x is not None and x < DECORRELATED_EXCESS]
        if ok and any(x is not None and x >= DECORRELATED_EXCESS for x in excess.values()):
            fam["stable, decorrelated replicas only"] = ok
    poor = [g["name"] for g in plan["glasses"] if g["kind"] == "poor"]
    if poor:
        fam[f"poor T={plan['glasses'][-1]['temperature']:g}"] = poor
    return fam


def _f(v, spec: str) -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def _pm(stat: dict, spec: str) -> str:
    m, e = stat["mean"], stat["sem"]
    if m is None or not math.isfinite(m):
        return "-"
    return format(m, spec) + ("" if e is None or not math.isfinite(e) else
                              " ± " + format(e, spec))


REPORT_QUANTITIES = (
    ("modulus_hessian", "G_H", ".2f"), ("modulus", "G_AQS", ".2f"),
    ("yield_strain", "eps_Y", ".4f"), ("peak_stress", "sig_peak", ".3f"),
    ("steady_stress", "sig_ss", ".3f"), ("overshoot", "overshoot", ".3f"),
    ("stress_excess", "sig_peak-sig_ss", ".3f"),
    ("largest_drop_stress", "dsig_max", ".3f"), ("largest_drop_particles", "n_drop", ".0f"),
    ("largest_drop_strain", "eps_drop", ".4f"), ("n_drops", "n_drops", ".0f"),
    ("localization_at_yield", "loc_Y", ".3f"), ("localization_drop", "loc_drop", ".3f"),
    ("localization_after_yield", "loc_after", ".3f"))


def stage_report(args, work: str, plan: dict, docs: str) -> int:
    from swapmc.analysis.yielding import family_summary

    lines: list[str] = []

    def out(text=""):
        lines.append(text)
        print(text)

    recs, missing = {}, []
    for g in plan["glasses"]:
        gdir = os.path.join(work, g["name"])
        if shear_done(gdir, args):
            rec = read_json(os.path.join(gdir, "shear", "summary.json"))
            rec["_dir"] = rec["directory"] = os.path.join(gdir, "shear")
            rec["_glass"] = g
            # Summarised again from the written tables, so the report follows the current
            # definitions of swapmc.analysis.yielding.
            rec["yielding"] = yielding_record(rec, argparse.Namespace(
                steady_window=args.steady_window, modulus_strain=DEFAULT_MODULUS_STRAIN))
            recs[g["name"]] = rec
        else:
            missing.append(g["name"])
    def note(text, indent="   "):
        for ln in textwrap.wrap(text, 100 - len(indent)):
            out(indent + ln)

    quick = " --quick" if args.quick else ""
    out(f"swapmc yielding demonstration (scripts/yielding_demo.py{quick})")
    note(f"KA2 (ka2-x10), rho = 1.2; AQS simple shear (xy) to strain {args.max_strain:g} in "
         f"steps of {args.step:g}, L-BFGS to max|F_i| < {args.ftol:g} epsilon/sigma after "
         "each step (from the affine map, as FIRE would); units: epsilon_AA, sigma_AA; "
         "stress epsilon/sigma^3", indent="")
    if missing:
        out(f"NOT YET SHEARED: {', '.join(missing)} (rerun the script to continue)")
    out()
    out("1. Preparation")
    out(f"{'glass':22s} {'T':>5s} {'N':>5s} {'sweeps':>8s} {'tau_a(N0)':>9s} {'taus':>5s} "
        f"{'tau_a(N)':>9s} "
        f"{'E/N (run)':>18s} {'E/N lib(N0)':>11s} {'z':>5s} {'drift_z':>7s} {'tail_z':>6s} "
        f"{'ext':>3s} "
        f"{'q_img before':>12s} {'q_img after':>14s} {'q_random':>14s} {'E_IS/N':>9s} "
        f"{'E_IS lib':>9s}")
    for g in plan["glasses"]:
        gdir = os.path.join(work, g["name"])
        path = os.path.join(gdir, "equilibration.json")
        if not os.path.exists(path):
            out(f"{g['name']:22s} (not equilibrated yet)")
            continue
        eq = read_json(path)
        en = eq["energy"] = energy_stats(g, os.path.join(gdir, "reeq"))
        is_path = os.path.join(gdir, "inherent.json")
        e_is = read_json(is_path)["is_energy"] if os.path.exists(is_path) else math.nan
        tau = g.get("tau_alpha_parent") or eq.get("tau_alpha_run")
        sweeps = en["sweeps"]
        ob, oa = eq.get("overlap_before"), eq.get("overlap_after")
        tau_run = eq.get("tau_alpha_run")
        cols = [
            _f(tau, "9.3g"), _f(sweeps / tau if tau else None, "5.1f"), _f(tau_run, "9.3g"),
            f"{en['mean']:10.5f} ± {en['stderr']:.5f}",
            _f(en.get("library_value"), "11.5f"), _f(en.get("z_vs_library"), "5.2f"),
            _f(en.get("drift_z"), "7.2f"), _f(en.get("tail_drift_z"), "6.2f"),
            _f(eq.get("extensions"), "3d"), _f(ob["image_mean"] if ob else None, "12.3f"),
            _f(oa["image_mean"] if oa else None, "11.3f")
            + ("" if not oa else " ok" if overlap_excess(work, g) < DECORRELATED_EXCESS
               else " NO"),
            (f"{oa['random_mean']:.3f} ± {oa['random_std']:.3f}" if oa else "-"),
            _f(e_is, "9.5f"), _f(g.get("library_is_energy"), "9.5f")]
        widths = (9, 5, 9, 18, 11, 5, 7, 6, 3, 12, 14, 14, 9, 9)
        out(f"{g['name']:22s} {g['temperature']:5.2f} {g['n']:5d} {sweeps:8d} "
            + " ".join(f"{c:>{w}s}" for c, w in zip(cols, widths)))
    note("sweeps: swap-MC sweeps at T (tuning + production); tau_a(N0): tau_alpha of the "
        "N = 500 library parent (sweeps), taus = sweeps / tau_a(N0); tau_a(N): tau_alpha "
        "measured in the run itself (F_s of A at q = 7.25; no error bar from a run of only a "
        "few tau_alpha); E/N (run): production mean ± its error from the integrated "
        "autocorrelation time; "
        "E/N lib(N0): the parent's end-of-production E/N, z = difference over the N0 thermal "
        "spread (sqrt(N/N0) x the run's) and the error; drift_z: second half minus first half "
        "of production over their errors (each from the whole production's spread and "
        "tau_int), tail_z: the same for the last two quarters (|tail_z| < "
        f"{STATIONARY_Z:g} is required of a stable glass); ext: extensions of the run by "
        f"{args.reeq_chunk_taus:g} parent tau_alpha (while not decorrelated or not "
        "stationary, up to --reeq-max-taus); q_img: fraction of particles with a particle within "
        f"{OVERLAP_RADIUS} sigma at the position shifted by a replication vector (mean over "
        "the 7 vectors), before (the replicated start, 1 by construction) and after the "
        "re-equilibration, against q_random: the same at random shifts (mean ± sd of 20); "
        "ok/NO: decorrelated or not, i.e. (q_img - q_random) / (1 - q_random) below "
        f"{DECORRELATED_EXCESS:g} or not; "
        "E_IS/N: inherent structure of the glass sheared; E_IS lib: that of the N0 = 500 "
        "library parent")
    ideal = None
    for g in plan["glasses"]:
        p = os.path.join(work, g["name"], "equilibration.json")
        if os.path.exists(p) and "overlap_after" in read_json(p):
            ideal = read_json(p)["overlap_after"]["ideal_gas"]
            break
    if ideal is not None:
        out(f"   (ideal gas at this density: {ideal:.3f})")
    out("   image overlap q_img along the re-equilibration (sweeps: q_img; the random-shift "
        "value in brackets):")
    for g in plan["glasses"]:
        path = os.path.join(work, g["name"], "equilibration.json")
        if g["kind"] != "stable" or not os.path.exists(path):
            continue
        series = read_json(path).get("overlap_series") or []
        out(f"   {g['name']:22s} " + ", ".join(f"{sw}: {q:.3f} ({qr:.3f})"
                                             for sw, q, qr in series))
    out()
    if not recs:
        text = "\n".join(lines) + "\n"
        write_text(os.path.join(docs, report_name(args)), text)
        return 1
    out("2. Yielding per glass (AQS)")
    hdr = f"{'glass':22s} " + " ".join(f"{h:>9.9s}" for _, h, _ in REPORT_QUANTITIES) + \
        f" {'it/step':>7s} {'cpu s/step':>10s}"
    out(hdr)
    for name, rec in recs.items():
        y = rec["yielding"]
        y["modulus_hessian"] = y.get("modulus_hessian")
        tab = rec_table(rec)
        cost_p = os.path.join(work, name, "shear_cost.json")
        cost = read_json(cost_p) if os.path.exists(cost_p) else {}
        cpu = cost["cpu"] / cost["steps"] if cost.get("steps") else math.nan
        vals = []
        for k, _, spec in REPORT_QUANTITIES:
            v = y.get(k)
            vals.append("-" if v is None or not math.isfinite(v) else format(v, spec))
        out(f"{name:22s} " + " ".join(f"{v:>9s}" for v in vals)
            + f" {np.mean([r['iterations'] for r in tab[1:]]):7.0f} {cpu:10.2f}")
    note("G_H: shear modulus dsigma_xy/dgamma of the initial inherent structure from its "
        "Hessian (Born + non-affine); G_AQS: least-squares slope for gamma <= 0.005; eps_Y: "
        "strain of the stress maximum sig_peak; sig_ss: mean stress over the last "
        f"{args.steady_window:g} of strain; overshoot = sig_peak/sig_ss; dsig_max, n_drop, "
        "eps_drop: the largest stress drop (Delta sigma, particles with a non-affine "
        "displacement > 0.1 sigma in that step, strain after it); loc_*: localisation index "
        "of D2min (0 uniform, 1 one thin band) from 0 to yield, across the largest drop, and "
        "from yield to the end (loc_after '-': the stress maximum lies inside the steady-state "
        "window, so there is no post-yield flow to judge; such a glass is left out of that "
        "family mean)")
    out()
    out("3. Families: mean ± standard error over glasses (n glasses)")
    fams = _families(plan, work)
    fam_out = {}
    for fam, names in fams.items():
        have = [recs[n]["yielding"] for n in names if n in recs]
        if not have:
            continue
        st = family_summary(have).as_dict()
        fam_out[fam] = st
        out(f"  {fam} ({len(have)} of {len(names)} glasses):")
        out("    " + "; ".join(f"{h} {_pm(st[k], spec)}" for k, h, spec in REPORT_QUANTITIES))
    out()
    out("4. Stable against poor: difference of family means (stable - poor) ± its standard "
        "error, Welch t test and exact permutation test (two-sided p)")
    poor_names = [n for n in recs if recs[n]["_glass"]["kind"] == "poor"]
    comparisons = {}
    for fam in [f for f in fams if f.startswith("stable (pooled)")
                or f.startswith("stable, decorrelated")] or [
                f for f in fams if f.startswith("stable")][:1]:
        st_names = [n for n in fams[fam] if n in recs]
        out(f"  {fam} ({len(st_names)}) against poor ({len(poor_names)}):")
        comparisons[fam] = {}
        for k, h, spec in REPORT_QUANTITIES:
            c = compare_groups([recs[n]["yielding"].get(k, math.nan) for n in st_names],
                               [recs[n]["yielding"].get(k, math.nan) for n in poor_names])
            if not c:
                continue
            comparisons[fam][k] = c
            out(f"    {h:16s} {format(c['diff'], '+' + spec):>9s} ± {format(c['se'], spec):8s}"
                f" t = {c['t']:+6.2f} (dof {c['dof']:4.1f}), p_Welch = {c['p_welch']:.3f}, "
                f"p_perm = {c['p_permutation']:.3f} ({c['splits']} splits)")
    note("The permutation p cannot be smaller than 1 / (number of splits); with this few "
         "glasses a Welch p rests on near-normal glass-to-glass scatter. Neither is corrected "
         "for the number of quantities compared.")
    write_json(os.path.join(docs, report_name(args).replace(".txt", ".json")),
               {"comparisons": comparisons, "families": fam_out,
                "glasses": {n: r["yielding"] for n, r in recs.items()},
                "plan": plan, "settings": {"max_strain": args.max_strain, "step": args.step,
                                           "ftol": args.ftol,
                                           "steady_window": args.steady_window}})
    figs = make_figures(args, work, plan, recs, docs)
    out()
    out("Figures: " + ", ".join(figs))
    write_text(os.path.join(docs, report_name(args)), "\n".join(lines) + "\n")
    return 0 if not missing else 1


def report_name(args) -> str:
    return "yielding_demo_quick_output.txt" if args.quick else "yielding_demo_output.txt"


def rec_table(rec) -> list[dict]:
    """The stress-strain rows of a sheared glass (floats)."""
    with open(os.path.join(rec["_dir"], "stress_strain.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# --------------------------------------------------------------------------- figures
STABLE_COLOURS = ("#08306b", "#2171b5", "#4292c6", "#6baed6", "#9ecae1", "#c6dbef")
POOR_COLOURS = ("#a50f15", "#de2d26", "#fb6a4a", "#fc9272", "#fcbba1", "#fee0d2")


def _style(recs):
    """Colour and line style per glass: blues for stable (solid T = first parent T, dashed
    the next), reds for poor."""
    out, ks, kp = {}, 0, 0
    temps = sorted({r["_glass"]["temperature"] for r in recs.values()
                    if r["_glass"]["kind"] == "stable"}, reverse=True)
    for name, r in recs.items():
        g = r["_glass"]
        if g["kind"] == "stable":
            ls = ("-", "--", ":")[temps.index(g["temperature"]) % 3]
            out[name] = (STABLE_COLOURS[ks % len(STABLE_COLOURS)], ls)
            ks += 1
        else:
            out[name] = (POOR_COLOURS[kp % len(POOR_COLOURS)], "-")
            kp += 1
    return out


def _label(rec) -> str:
    g = rec["_glass"]
    if g["kind"] == "stable":
        eq = os.path.join(os.path.dirname(rec["_dir"]), "equilibration.json")
        flag = (" *" if os.path.exists(eq) and read_json(eq).get("accepted") is False
                else "")
        return (f"stable, parent T = {g['temperature']:g}"
                + (f" (lib. {g['library_id']})" if g.get("library_id") else "") + flag)
    return f"poor, parent T = {g['temperature']:g}"


def _snapshots(rec):
    """Reference, peak, largest-drop and final states from the AQS checkpoint."""
    from swapmc.md.shear import Snapshot

    with np.load(os.path.join(rec["_dir"], "checkpoint.npz"), allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    snaps = {}
    for key in ("reference", "peak", "drop_before", "drop_after"):
        if f"{key}_scalars" in d:
            snaps[key] = Snapshot.from_arrays(d, f"{key}_")
    # The final state is the engine's.
    from swapmc.md.shear import deformation_gradient

    meta = json.loads(str(d["meta"]))
    strain = meta["k"] * meta["settings"]["step"]
    x = d["engine_positions"] + d["engine_images"] @ d["engine_cell"].T
    snaps["final"] = Snapshot(strain, x, d["engine_cell"],
                              deformation_gradient(strain, "shear"), math.nan, math.nan)
    return snaps


def _d2(a, b, cutoff=1.5):
    from swapmc.analysis.nonaffine import d2min

    f = b.deformation @ np.linalg.inv(a.deformation)
    return d2min(a.positions, b.positions, a.cell, b.cell, cutoff, deformation=f)


def _slab(ax, snap, field, norm, title, slab=1.6):
    from swapmc import Box

    box = Box.from_matrix(snap.cell)
    x, _ = box.wrap(snap.positions)
    fr = box.fractional(x)
    sel = np.abs(fr[:, 2] - 0.5) * snap.cell[2, 2] < 0.5 * slab
    v = field[sel]
    ok = np.isfinite(v)
    v = np.clip(v[ok], norm.vmin, None)
    order = np.argsort(v)
    pts = x[sel][ok][order]
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=v[order], s=9, cmap="inferno", norm=norm,
                    edgecolors="none")
    h = snap.cell
    c = np.array([[0, 0], [h[0, 0], 0], [h[0, 0] + h[0, 1], h[1, 1]], [h[0, 1], h[1, 1]],
                  [0, 0]])
    ax.plot(c[:, 0], c[:, 1], color="0.5", lw=0.7)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(r"$x$ [$\sigma_{AA}$]")
    ax.set_ylabel(r"$y$ [$\sigma_{AA}$]")
    return sc


def make_figures(args, work, plan, recs, docs) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    figdir = os.path.join(docs, "figures") if not args.quick else docs
    os.makedirs(figdir, exist_ok=True)
    prefix = "yielding_quick_" if args.quick else "yielding_"
    style = _style(recs)
    made = []

    # 1. Stress-strain curves, every glass, and family means.
    tabs = {n: rec_table(r) for n, r in recs.items()}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 4.8))
    for name, rec in recs.items():
        t = tabs[name]
        eps = np.array([r["strain"] for r in t]) * 100
        sig = np.array([r["stress"] for r in t])
        c, ls = style[name]
        ax.plot(eps, sig, color=c, ls=ls, lw=1.1, label=_label(rec))
        k = int(np.argmax(sig))
        ax.plot(eps[k], sig[k], "o", color=c, ms=4)
    ax.set_xlabel(r"shear strain $\gamma$ [%]")
    ax.set_ylabel(r"shear stress $\sigma_{xy}$ [$\varepsilon_{AA}/\sigma_{AA}^3$]")
    ax.set_title(f"AQS, KA2 N = {next(iter(recs.values()))['summary']['n']}: every glass "
                 "(dots: stress maxima)", fontsize=10)
    flagged = any(_label(r).endswith(" *") for r in recs.values())
    ax.legend(fontsize=7, loc="lower right",
              title="* periodic copies not decorrelated" if flagged else None,
              title_fontsize=7)
    ax.axhline(0, color="0.8", lw=0.6)
    for kind, colour in (("stable", STABLE_COLOURS[1]), ("poor", POOR_COLOURS[1])):
        names = [n for n in recs if recs[n]["_glass"]["kind"] == kind]
        if not names:
            continue
        m = min(len(tabs[n]) for n in names)
        eps = np.array([r["strain"] for r in tabs[names[0]][:m]]) * 100
        sig = np.array([[r["stress"] for r in tabs[n][:m]] for n in names])
        mean = sig.mean(axis=0)
        ax2.plot(eps, mean, color=colour, lw=1.4,
                 label=f"{kind} (mean of {len(names)})")
        if len(names) > 1:
            sem = sig.std(axis=0, ddof=1) / math.sqrt(len(names))
            ax2.fill_between(eps, mean - sem, mean + sem, color=colour, alpha=0.25, lw=0)
    ax2.set_xlabel(r"shear strain $\gamma$ [%]")
    ax2.set_ylabel(r"$\langle\sigma_{xy}\rangle$ [$\varepsilon_{AA}/\sigma_{AA}^3$]")
    ax2.set_title("family means ± standard error over glasses (drops average out)",
                  fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    ax2.axhline(0, color="0.8", lw=0.6)
    fig.tight_layout()
    path = os.path.join(figdir, prefix + "stress_strain.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    made.append(path)

    # 1b. Decorrelation of the replicas and energy of the re-equilibration runs.
    stable = [g for g in plan["glasses"] if g["kind"] == "stable"
              and os.path.exists(os.path.join(work, g["name"], "equilibration.json"))]
    if stable:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 4.5))
        for k, g in enumerate(stable):
            eq = read_json(os.path.join(work, g["name"], "equilibration.json"))
            tau = g.get("tau_alpha_parent") or 1.0  # --quick: no parent tau_alpha
            c = STABLE_COLOURS[k % len(STABLE_COLOURS)]
            lab = f"parent T = {g['temperature']:g}" + (
                f" (lib. {g['library_id']})" if g.get("library_id") else "")
            ser = np.array([[0, eq["overlap_before"]["image_mean"],
                             eq["overlap_before"]["random_mean"]]]
                           + [list(r) for r in eq.get("overlap_series") or []]
                           + [[eq["energy"]["sweeps"], eq["overlap_after"]["image_mean"],
                               eq["overlap_after"]["random_mean"]]], dtype=float)
            ax.plot(ser[:, 0] / tau, ser[:, 1], "o-", color=c, ms=4, label=lab)
            ax.plot(ser[:, 0] / tau, ser[:, 2], ":", color=c, lw=0.9)
            th = read_thermo(os.path.join(work, g["name"], "reeq", "thermo.csv"))
            sw, e = th["sweep"], th["energy_per_particle"]
            nb = max(1, len(e) // 40)
            m = len(e) // nb * nb
            ax2.plot(sw[:m].reshape(-1, nb).mean(1) / tau, e[:m].reshape(-1, nb).mean(1),
                     color=c, lw=1.0, label=lab)
            if g.get("library_energy") is not None:
                sd = eq["energy"].get("library_sd_at_parent_n", 0.0)
                ax2.errorbar([-0.08 - 0.04 * k], [g["library_energy"]], yerr=[sd], fmt="s",
                             color=c, ms=5, capsize=3)
        ideal = read_json(os.path.join(work, stable[0]["name"], "equilibration.json"))[
            "overlap_after"]["ideal_gas"]
        ax.axhline(ideal, color="0.6", lw=0.8, ls="--", label="ideal gas")
        q_rand = float(np.mean([read_json(os.path.join(work, g["name"], "equilibration.json"))
                                ["overlap_after"]["random_mean"] for g in stable]))
        ax.axhline(q_rand + DECORRELATED_EXCESS * (1.0 - q_rand), color="k", lw=0.8, ls="-.",
                   label="decorrelated below")
        xlab = (r"swap-MC sweeps / $\tau_\alpha$ (parent, N = 500)"
                if stable[0].get("tau_alpha_parent") else "swap-MC sweeps")
        ax.set_xlabel(xlab)
        ax.set_ylabel(r"image overlap $q_{img}$ (within 0.3 $\sigma_{AA}$)")
        ax.set_ylim(0, 1.05)
        ax.set_title("periodic copies of the 2x2x2 replica (dotted: random shifts)",
                     fontsize=10)
        ax.legend(fontsize=7)
        ax2.set_xlabel(xlab)
        ax2.set_ylabel(r"$E/N$ [$\varepsilon_{AA}$]")
        ax2.set_title("energy (block means; squares: N = 500 parent ± its thermal spread)",
                      fontsize=10)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(figdir, prefix + "replica_decorrelation.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        made.append(path)

    # 2. D2min maps: one stable and one poor glass, around the largest drop and after yield.
    def pick(kind):
        names = [n for n in recs if recs[n]["_glass"]["kind"] == kind
                 and recs[n]["yielding"].get("largest_drop_stress") is not None
                 and math.isfinite(recs[n]["yielding"]["largest_drop_stress"])]
        clean = [n for n in names
                 if (overlap_excess(work, recs[n]["_glass"]) or 0.0) < DECORRELATED_EXCESS]
        names = clean or names
        if not names:
            return None
        # The glass whose largest drop is the family's median: typical, not the extreme.
        names.sort(key=lambda n: recs[n]["yielding"]["largest_drop_stress"])
        return names[len(names) // 2]

    rows = [n for n in (pick("stable"), pick("poor")) if n is not None]
    if rows:
        fig, axes = plt.subplots(len(rows), 4, figsize=(18, 4.4 * len(rows)), squeeze=False)
        for i, name in enumerate(rows):
            rec = recs[name]
            sn = _snapshots(rec)
            ref, bef, aft = sn["reference"], sn["drop_before"], sn["drop_after"]
            d_b, d_a, d_x = _d2(ref, bef), _d2(ref, aft), _d2(bef, aft)
            # From yield to the end; a glass whose stress maximum lies in the steady-state
            # window has no post-yield flow, and the whole run is shown instead.
            flows = not rec["yielding"].get("peak_in_window")
            start = sn["peak"] if flows else ref
            d_y = _d2(start, sn["final"]) if sn["final"].strain > start.strain else None
            pool = np.concatenate([d_b, d_a])
            pool = pool[np.isfinite(pool) & (pool > 0)]
            norm = LogNorm(max(np.percentile(pool, 5), 1e-8), np.percentile(pool, 99.7))
            ds = float(aft.stress - bef.stress)
            panels = [(d_b, norm, rf"$D^2_{{min}}$: $\gamma$ 0 → {bef.strain:.4f} (before)"),
                      (d_a, norm, rf"$D^2_{{min}}$: $\gamma$ 0 → {aft.strain:.4f} (after)")]
            x = d_x[np.isfinite(d_x) & (d_x > 0)]
            panels.append((d_x, LogNorm(max(np.percentile(x, 5), 1e-10),
                                        np.percentile(x, 99.7)),
                           rf"across the drop ($\Delta\sigma$ = {ds:.3f})"))
            if d_y is not None:
                y = d_y[np.isfinite(d_y) & (d_y > 0)]
                panels.append((d_y, LogNorm(max(np.percentile(y, 5), 1e-8),
                                            np.percentile(y, 99.7)),
                               (r"yield → end" if flows else
                                r"no post-yield flow: whole run") + rf", $\gamma$ "
                               rf"{start.strain:.4f} → {sn['final'].strain:.3f}"))
            for j, ax in enumerate(axes[i]):
                if j >= len(panels):
                    ax.set_visible(False)
                    continue
                field, nm, title = panels[j]
                snap = aft if j in (1, 2) else (bef if j == 0 else sn["final"])
                sc = _slab(ax, snap, field, nm, title)
                cb = fig.colorbar(sc, ax=ax, shrink=0.8)
                cb.set_label(r"$D^2_{min}$ [$\sigma_{AA}^2$]")
            axes[i][0].set_title(f"{_label(rec)}\n{axes[i][0].get_title()}", fontsize=9)
        fig.suptitle("Falk–Langer $D^2_{min}$ (neighbours within 1.5 σ), slab |z - L/2| < "
                     "0.8 σ; flow along x, gradient along y", fontsize=11)
        fig.tight_layout()
        path = os.path.join(figdir, prefix + "d2min_maps.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    # 3. Localisation profiles and indices.
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for name, rec in recs.items():
        c, ls = style[name]
        for ax, key in ((axes[0], "after_yield"), (axes[1], "across_largest_drop")):
            loc = rec["localization"].get(key)
            if not loc:
                continue
            prof = np.array(loc["y"]["profile"], dtype=float)
            cen = np.array(loc["y"]["centres"], dtype=float)
            mean = np.nanmean(prof)
            if not (mean > 0):
                continue
            ax.plot(cen / loc["y"]["length"], prof / mean, color=c, ls=ls, lw=1.1,
                    marker=".", ms=3)
    axes[0].set_title(r"$D^2_{min}$ from yield to the end, along the gradient", fontsize=10)
    axes[1].set_title(r"$D^2_{min}$ across the largest drop, along the gradient",
                      fontsize=10)
    for ax in axes[:2]:
        ax.set_xlabel(r"$y / L_y$")
        ax.set_ylabel(r"$\langle D^2_{min}\rangle_{bin}$ / mean")
        ax.set_yscale("log")
    keys = (("localization_at_yield", "0 → yield"), ("localization_drop", "largest drop"),
            ("localization_after_yield", "yield → end"))
    ax = axes[2]
    for j, (k, _) in enumerate(keys):
        for kind, off, colour in (("stable", -0.12, STABLE_COLOURS[1]),
                                  ("poor", 0.12, POOR_COLOURS[1])):
            vals = [recs[n]["yielding"].get(k) for n in recs
                    if recs[n]["_glass"]["kind"] == kind]
            vals = np.array([v for v in vals if v is not None and math.isfinite(v)])
            if vals.size == 0:
                continue
            ax.plot(np.full(vals.size, j + off), vals, "o", color=colour, alpha=0.5, ms=5)
            err = vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else 0.0
            ax.errorbar(j + off, vals.mean(), yerr=err, fmt="s", color=colour, ms=8,
                        capsize=4, label=kind if j == 0 else None, mec="k")
    ax.set_xticks(range(len(keys)), [lab for _, lab in keys])
    ax.set_ylabel("localisation index of $D^2_{min}$ (0 uniform, 1 one thin band)")
    ax.set_ylim(0, 1)
    ax.set_title("per glass (dots) and family mean ± s.e. (squares)", fontsize=10)
    ax.legend(fontsize=8)
    handles = [plt.Line2D([], [], color=style[n][0], ls=style[n][1], label=_label(recs[n]))
               for n in recs]
    axes[0].legend(handles=handles, fontsize=6.5, loc="upper right")
    fig.tight_layout()
    path = os.path.join(figdir, prefix + "localization.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    made.append(path)
    return made


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="yielding-demo-work", help="work directory")
    ap.add_argument("--library", default="deep-glasses/glasses.sqlite",
                    help="library of certified N = 500 KA2 glasses, as made by "
                    "scripts/deep_glasses.py (its default output; read from a copy)")
    ap.add_argument("--stable-ids", type=int, nargs="+", default=[4, 5, 10, 11, 3, 9],
                    help="library sample ids of the stable glasses' N = 500 parents")
    ap.add_argument("--reps", type=int, nargs=3, default=[2, 2, 2])
    ap.add_argument("--reeq-taus", type=float, default=3.2,
                    help="re-equilibration length in parent tau_alpha")
    ap.add_argument("--reeq-chunk-taus", type=float, default=2.0,
                    help="extension of a re-equilibration whose periodic copies are not yet "
                    "decorrelated or whose energy drifts, in parent tau_alpha")
    ap.add_argument("--reeq-max-taus", type=float, default=12.0,
                    help="longest re-equilibration (sweeps in parent tau_alpha); a glass "
                    "still failing there is kept and reported as not decorrelated")
    ap.add_argument("--poor", type=int, default=4, help="number of poor glasses")
    ap.add_argument("--t-poor", type=float, default=1.0)
    ap.add_argument("--n-poor", type=int, default=4000)
    ap.add_argument("--poor-sweeps", type=int, default=4000)
    ap.add_argument("--max-strain", type=float, default=0.3)
    ap.add_argument("--step", type=float, default=2e-4, help="AQS strain step")
    ap.add_argument("--ftol", type=float, default=1e-8,
                    help="force tolerance of every AQS minimisation, epsilon/sigma")
    ap.add_argument("--steady-window", type=float, default=0.05,
                    help="strain width of the steady-state average at the end")
    ap.add_argument("--jobs", type=int, default=1,
                    help="glasses sheared at the same time (one process each)")
    ap.add_argument("--follow", action="store_true",
                    help="shear stage: keep quenching and shearing glasses as their "
                    "equilibration (run elsewhere) finishes, until all are sheared")
    ap.add_argument("--stage", choices=STAGES + ("all",), default="all")
    ap.add_argument("--only", choices=("stable", "poor"), default=None,
                    help="equilibrate only this kind")
    ap.add_argument("--names", nargs="+", default=None, metavar="GLASS",
                    help="equilibrate only these glasses (names as in plan.json), in the "
                    "order of the plan")
    ap.add_argument("--quick", action="store_true", help="tiny N, few steps: the pipeline")
    ap.add_argument("--docs", default=None, help="where the report and figures go "
                    "(default: docs/ for the full run, WORK/report for --quick)")
    args = ap.parse_args(argv)
    args.stable_samples_quick = 2
    args.quick_parent_n = 256
    args.quick_stable_t = 0.6
    args.quick_reeq_sweeps = 300
    if args.quick:
        args.reps = [2, 1, 1]
        args.poor, args.n_poor, args.poor_sweeps = 2, 512, 300
        args.max_strain, args.step, args.steady_window = 0.03, 1e-3, 0.01
    args.library_copy = os.path.join(args.work, "library-copy.sqlite")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work
    os.makedirs(work, exist_ok=True)
    stages = STAGES if args.stage == "all" else (args.stage,)
    plan = stage_prepare(args, work)
    if "equilibrate" in stages:
        stage_equilibrate(args, work, plan, kinds=(args.only,) if args.only else
                          ("stable", "poor"))
    if "quench" in stages:
        stage_quench(args, work, plan)
    if "shear" in stages:
        stage_shear(args, work, plan)
    if "report" in stages:
        docs = args.docs or (os.path.join(work, "report") if args.quick else "docs")
        os.makedirs(docs, exist_ok=True)
        return stage_report(args, work, plan, docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
