"""Certified glass libraries as deep as swap Monte Carlo goes, cooling in steps (KA2 by
default; any preset, e.g. a doped Cu-Zr one in kelvin with ``--preset``).

Each *lineage* is a sequence of library builds (``swapmc library build``, one sample each)
down a temperature ladder: the first step starts from a melt, every later step starts from
the certified equilibrium configuration of the same lineage at the previous, higher
temperature (``[system] init``), so each chain only has to relax across one temperature
step. Lineages have different seeds and share nothing, so the glasses at one temperature are
independent samples. Lineages run one after the other: the first goes as deep as the budget
allows, the later ones add independent glasses along the same ladder.

Sweep counts follow the relaxation time: at each temperature the equilibration lasts
``--eq-taus`` (``--first-eq-taus`` from a melt) times a predicted tau_alpha and the
production ``--prod-taus`` times it (the certificate asks for >= 10 tau_alpha; the builder
extends a chain that was too short, up to ``--max-taus`` times the prediction). The
prediction is the tau_alpha an earlier lineage measured at that T, or else the Arrhenius
extrapolation of the two lowest temperatures measured above it, times ``--tau-safety``
(the dynamics is super-Arrhenius).

A lineage stops at the first temperature where

* the CPU time predicted for the step exceeds what is left of ``--budget-core-minutes``
  ("tau_alpha beyond budget"),
* its chain is not certified (the certificate's reasons are printed: crystallisation through
  the q6 guard, energy drift, or F_s not decayed within ``max_production_sweeps``),
* the C-C clustering ratio of its inherent structure exceeds ``--demix-threshold``
  (demixing of the dopant; see :func:`cc_clustering`).

Per temperature it reports certified/failed samples with reasons, <tau_alpha> +- standard
error over glasses, sweeps per chain, certified glasses per core-hour (CPU time of this
process per chain, and the chains' own wall times as the library records them), <E_IS/N> +-
standard error over glasses, the largest crystalline fraction and the mean C-C clustering
ratio.

    python scripts/deep_glasses.py -o deep-glasses             # the recorded run
    python scripts/deep_glasses.py --quick -o /tmp/deep-quick   # < 1 min smoke run
    python scripts/deep_glasses.py --preset cu50zr50-x10 -T 1200 1100 1000 900 850 800 \
        --first-tau 300 -o deep-cuzr                            # doped ZJW Cu-Zr, P = 0
    python scripts/deep_glasses.py --preset cu50zr50-x10 --model-file CuZr_mm.eam.fs ...

Results go to ``OUTPUT/results.json`` (rewritten after every chain, so a kill loses at most
the chain in flight; rerunning the same command resumes: stored samples are skipped and the
chain in flight continues from its checkpoint), ``OUTPUT/glasses.sqlite``, the build
configs in ``OUTPUT/configs/`` and each chain's final equilibrium configuration in
``OUTPUT/structures/`` (the start of the next step).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from swapmc.io import atomic_write, write_extxyz
from swapmc.library import Library
from swapmc.library.build import build_library
from swapmc.library.settings import build_fingerprint, chain_directory, resolve

CONFIG = """\
# library step written by scripts/deep_glasses.py (lineage {lineage}, T = {temperature})
preset = "{preset}"
{model}[state]
temperature = {temperature}
[system]
n = {n}
init = "{init}"
[run]
seed = {seed}
equilibration_sweeps = {equilibration}
production_sweeps = {production}
[output]
thermo_every = {thermo_every}
checkpoint_every = {checkpoint_every}
[library]
path = "{library}"
samples = 1
max_production_sweeps = {max_production}
"""

PRESET = "ka2-x10"
#: Defaults of the KA2 ladder (epsilon/k_B) and of its first tau_alpha guess (sweeps); other
#: presets must be given both.
KA2_LADDER = [0.45, 0.40, 0.36, 0.33, 0.31, 0.29]
KA2_FIRST_TAU = 4500.0
#: First-shell radius in units of the mean spacing rho^(-1/3): 1.35 sigma_AA at KA's rho = 1.2
#: (near the first minimum of the C-centred g(r) of KA2), 3.7 A for Cu-Zr at 0.0585 A^-3.
SHELL_IN_SPACINGS = 1.35 * 1.2 ** (1.0 / 3.0)


def cc_clustering(system, dopant: str = "C", cutoff: float | None = None) -> float:
    """C-C clustering ratio of one configuration (1: C placed at random among the sites).

    Parameters
    ----------
    system : System
        Orthorhombic cell; positions in the model's length unit.
    dopant : str
        Species whose clustering is measured.
    cutoff : float, optional
        First-shell radius around a C particle (length unit), the same for every neighbour
        species so that an ideal gas gives exactly 1 on average. Default:
        ``SHELL_IN_SPACINGS`` mean spacings (1.35 sigma_AA for KA2 at rho = 1.2).

    Returns
    -------
    float
        (fraction of C among the neighbours of C particles) / ((N_C - 1) / (N - 1)). Demixing
        of C raises it above 1; C avoiding C lowers it below 1.
    """
    if dopant not in list(system.species_names):
        return float("nan")
    c = list(system.species_names).index(dopant)
    is_c = system.species == c
    n, n_c = len(is_c), int(is_c.sum())
    if n_c < 2:
        return float("nan")
    lengths = np.diag(system.box.matrix)
    if cutoff is None:
        cutoff = SHELL_IN_SPACINGS * (float(np.prod(lengths)) / n) ** (1.0 / 3.0)
    d = system.positions[is_c][:, None, :] - system.positions[None, :, :]
    d -= lengths * np.round(d / lengths)
    r2 = (d * d).sum(axis=-1)
    neighbour = (r2 < cutoff * cutoff) & (r2 > 1e-18)
    total = neighbour.sum()
    cc = (neighbour & is_c[None, :]).sum()
    return float((cc / total) / ((n_c - 1) / (n - 1)))


def predicted_tau(measured: dict, temperature: float, first_guess: float,
                  safety: float) -> float:
    """tau_alpha (sweeps) predicted at ``temperature`` from ``measured`` {T: mean tau}.

    If an earlier lineage measured tau at this T, that value times ``safety``. Otherwise
    Arrhenius (ln tau linear in 1/T) through the two lowest measured temperatures above it,
    times ``safety`` (the dynamics is super-Arrhenius, so the straight line underestimates);
    with one such temperature its tau times ``safety``; with none, ``first_guess``.
    """
    if temperature in measured:
        return measured[temperature] * safety
    above = sorted((t, tau) for t, tau in measured.items() if t > temperature)
    if not above:
        return first_guess
    if len(above) == 1:
        return above[0][1] * safety
    (t2, tau2), (t1, tau1) = above[0], above[1]
    slope = math.log(tau2 / tau1) / (1.0 / t2 - 1.0 / t1)
    return tau2 * math.exp(slope * (1.0 / temperature - 1.0 / t2)) * safety


def mean_sem(values) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (None when undefined)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None)


def plan_step(args, measured: dict, temperature: float, from_melt: bool) -> dict:
    """Sweep counts of one step (see the module docstring)."""
    tau = predicted_tau(measured, temperature, args.first_tau, args.tau_safety)
    taus = args.first_eq_taus if from_melt else args.eq_taus
    eq = max(args.min_sweeps, int(round(taus * tau, -2)))
    prod = max(args.min_sweeps, int(round(args.prod_taus * tau, -2)))
    return {"tau_predicted": tau, "equilibration": eq, "production": prod,
            "max_production": max(prod, int(round(args.max_taus * tau, -2)))}


def run_step(args, temperature: float, lineage: int, init: str, plan: dict,
             state: dict) -> dict:
    """One library build (one chain) of one lineage at one temperature."""
    key = f"{temperature:g}/{lineage}"
    directory = os.path.join(args.output, "configs")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"T{temperature:g}-lineage{lineage}.toml")
    every = max(10, plan["production"] // 2000)
    model = "" if not args.model_file else (
        f'[model]\nkind = "eam"\nfile = "{os.path.abspath(args.model_file)}"\n')
    text = CONFIG.format(lineage=lineage, temperature=temperature, preset=args.preset,
                         model=model, n=args.n,
                         # absolute: [system] init is read relative to the config's folder
                         init=init if init == "random" else os.path.abspath(init),
                         seed=args.seed * 1000 + lineage,
                         equilibration=plan["equilibration"], production=plan["production"],
                         thermo_every=every, checkpoint_every=max(1000, 50 * every),
                         library=os.path.abspath(os.path.join(args.output, "glasses.sqlite")),
                         max_production=plan["max_production"])
    if args.report_only:
        # Only steps already in the library are listed; nothing new is run or written.
        probe = path + ".probe.toml"
        with atomic_write(probe) as fh:
            fh.write(text)
        try:
            cfg = resolve(probe)
        finally:
            os.remove(probe)
        with Library(cfg["library"]["path"], create=True) as lib:
            if 0 not in lib.done_chains(build_fingerprint(cfg)):
                return None
    with atomic_write(path) as fh:
        fh.write(text)
    cfg = resolve(path)
    # A chain resumed from the checkpoint of a killed invocation: this process's CPU time
    # misses the killed part, so its cost is estimated from the other chains (see save()).
    resumed = os.path.isdir(chain_directory(cfg, build_fingerprint(cfg), 0))
    cpu0 = time.process_time()
    result = build_library(path)
    cpu = time.process_time() - cpu0
    with Library(result.path) as lib:
        sample = lib.query(build=result.build, verdict=None)[0]
        meta = dict(sample.meta)
        if key in state.get("cpu", {}) and not result.made:
            cpu = state["cpu"][key]  # stored by an earlier invocation: keep its CPU time
        state.setdefault("cpu", {})[key] = cpu
        flags = state.setdefault("resumed", {})
        flags[key] = resumed or flags.get(key, False)
        eq_path = os.path.join(args.output, "structures",
                               f"T{temperature:g}-lineage{lineage}.xyz")
        os.makedirs(os.path.dirname(eq_path), exist_ok=True)
        # Positions and species in the user's order, as the library stores them.
        write_extxyz(eq_path, sample.system)
        clustering = cc_clustering(sample.inherent, args.dopant)
    return {"temperature": temperature, "lineage": lineage, "config": path,
            "sample_id": sample.id if hasattr(sample, "id") else meta.get("id"),
            "verdict": meta["verdict"], "reasons": meta["reasons"],
            "tau_alpha": meta["tau_alpha"], "tau_alpha_stderr": meta["tau_alpha_stderr"],
            "decays": meta["decays"], "sweeps": meta["sweeps"],
            "production_sweeps": meta["production_sweeps"], "drift_z": meta["drift_z"],
            "crystalline_fraction": meta["crystalline_fraction"],
            "energy": meta["energy"], "is_energy": meta["is_energy"],
            "cc_clustering": clustering, "wall_seconds": meta["wall_seconds"],
            "cpu_seconds": cpu, "resumed": state["resumed"][key],
            "plan": plan, "equilibrium_structure": eq_path}


def summarise(temperature: float, rows: list[dict]) -> dict:
    cert = [r for r in rows if r["verdict"] == "certified"]
    tau, tau_se = mean_sem(r["tau_alpha"] for r in cert)
    if len(cert) == 1:
        tau_se = cert[0]["tau_alpha_stderr"]  # one glass: its own jackknife error
    eis, eis_se = mean_sem(r["is_energy"] for r in cert)
    cpu_h = sum(r["cost_cpu_seconds"] for r in rows) / 3600.0
    wall_h = sum(r["wall_seconds"] for r in rows) / 3600.0
    return {
        "temperature": temperature, "samples": len(rows), "certified": len(cert),
        "failed": [{"lineage": r["lineage"], "reasons": r["reasons"]} for r in rows
                   if r["verdict"] != "certified"],
        "tau_alpha_mean": tau, "tau_alpha_sem": tau_se,
        "sweeps_mean": float(np.mean([r["sweeps"] for r in rows])),
        "is_energy_mean": eis, "is_energy_sem": eis_se,
        "crystalline_fraction_max": max(r["crystalline_fraction"] for r in rows),
        "cc_clustering_mean": float(np.mean([r["cc_clustering"] for r in rows])),
        "cpu_hours": cpu_h, "wall_hours": wall_h,
        "cost_estimated": any(r["cost_estimated"] for r in rows),
        "certified_per_core_hour_cpu": len(cert) / cpu_h if cpu_h > 0 else None,
        "certified_per_core_hour_wall": len(cert) / wall_h if wall_h > 0 else None,
        "certified_per_core_hour_from_melt": len(cert) / (
            sum(r["lineage_cost_cpu_seconds"] for r in rows) / 3600.0),
    }


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(summaries: list[dict], dopant: str | None = "C") -> None:
    print("\ncert/core-h: certified glasses per CPU core-hour of this step (from a parent at "
          "the previous T); 'melt': including the parents' steps; 'wall': from the chains' "
          "wall times (inflated by other jobs on a loaded machine). +- standard error over "
          "glasses (tau_alpha of a single glass: its jackknife error); crystal: largest q6 "
          f"solid-like fraction; R_CC: {dopant}-{dopant} clustering ratio of the dopant "
          f"{dopant} (1: placed at random)")
    print(f"{'T':>5s} {'cert':>6s} {'<tau_alpha> (sweeps)':>21s} {'<sweeps>':>9s} "
          f"{'cert/core-h':>11s} {'(melt)':>7s} {'(wall)':>7s} {'<E_IS/N>':>18s} "
          f"{'crystal':>7s} {'R_CC':>5s}")
    for s in summaries:
        tau = f"{fmt(s['tau_alpha_mean'], '.0f')} ± {fmt(s['tau_alpha_sem'], '.0f')}"
        eis = f"{fmt(s['is_energy_mean'], '.4f')} ± {fmt(s['is_energy_sem'], '.4f')}"
        print(f"{s['temperature']:5.3g} {s['certified']:>2d} / {s['samples']:<2d} {tau:>21s} "
              f"{s['sweeps_mean']:9.0f} {fmt(s['certified_per_core_hour_cpu'], '11.1f')} "
              f"{fmt(s['certified_per_core_hour_from_melt'], '7.1f')} "
              f"{fmt(s['certified_per_core_hour_wall'], '7.1f')} {eis:>18s} "
              f"{s['crystalline_fraction_max']:7.3f} {s['cc_clustering_mean']:5.2f}")
        if s["cost_estimated"]:
            print("      (a chain resumed after a kill: its CPU time estimated from the others' "
                  "CPU per sweep)")
        for f in s["failed"]:
            print(f"      lineage {f['lineage']} failed: {f['reasons']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="deep-glasses")
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--preset", default=PRESET,
                    help="built-in preset (a doped one: the dopant's clustering is watched)")
    ap.add_argument("--model-file", default=None,
                    help="EAM setfl file replacing the preset's built-in potential (e.g. "
                         "CuZr_mm.eam.fs; the preset's dopant construction applies to it)")
    ap.add_argument("-T", "--temperatures", type=float, nargs="+", default=None,
                    help=f"the ladder, decreasing, in the preset's unit (epsilon/k_B or K; "
                         f"{PRESET}: {KA2_LADDER})")
    ap.add_argument("--lineages", type=int, default=2, help="independent glasses per T")
    ap.add_argument("--first-tau", type=float, default=None,
                    help=f"tau_alpha guess (sweeps) at the first temperature ({PRESET}: "
                         f"{KA2_FIRST_TAU:g})")
    ap.add_argument("--first-eq-taus", type=float, default=11.0,
                    help="equilibration of the first step (from a melt), in predicted tau")
    ap.add_argument("--tau-safety", type=float, default=1.2)
    ap.add_argument("--eq-taus", type=float, default=2.5,
                    help="equilibration of later steps (from the previous T), in predicted tau")
    ap.add_argument("--prod-taus", type=float, default=11.0)
    ap.add_argument("--max-taus", type=float, default=40.0)
    ap.add_argument("--min-sweeps", type=int, default=5000)
    ap.add_argument("--budget-core-minutes", type=float, default=40.0,
                    help="CPU time of this process the descent may use")
    ap.add_argument("--demix-threshold", type=float, default=1.5,
                    help="stop when the mean C-C clustering ratio exceeds this")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--report-only", action="store_true",
                    help="list what the library holds for this ladder; run nothing new")
    ap.add_argument("--quick", action="store_true", help="tiny everything (smoke test)")
    args = ap.parse_args(argv)
    if args.preset == PRESET:
        args.temperatures = args.temperatures or list(KA2_LADDER)
        args.first_tau = args.first_tau or KA2_FIRST_TAU
    elif args.temperatures is None or args.first_tau is None:
        raise SystemExit(f"--preset {args.preset}: give the ladder (-T) and --first-tau")
    from swapmc.models import load_preset

    species = list(load_preset(args.preset).model.species)
    # The dopant is the species the dopant construction adds, last in every doped preset.
    args.dopant = species[-1] if len(species) > 2 else None
    if args.quick:
        args.n, args.temperatures, args.lineages = 200, [1.2, 1.0], 2
        args.first_tau, args.min_sweeps, args.first_eq_taus = 250.0, 600, 4.0
        args.budget_core_minutes = 1.0
    if any(b >= a for a, b in zip(args.temperatures, args.temperatures[1:])):
        raise SystemExit("--temperatures must decrease")
    os.makedirs(args.output, exist_ok=True)
    results_path = os.path.join(args.output, "results.json")
    state = {}
    if os.path.exists(results_path):
        with open(results_path) as fh:
            old = json.load(fh)
        state = {"cpu": old.get("cpu", {}), "resumed": old.get("resumed", {})}
    print(f"# {args.preset}{' on ' + args.model_file if args.model_file else ''} "
          f"N = {args.n}, {args.lineages} lineage(s), ladder "
          f"{args.temperatures}, budget {args.budget_core_minutes:g} core-minutes", flush=True)
    # Lineage after lineage: the first one goes as deep as the budget allows, later ones add
    # independent glasses at the temperatures already reached (and may go deeper).
    rows, stops = [], {}
    used = 0.0
    seconds_per_sweep = None

    def measured_taus() -> dict:
        taus = {}
        for t in {r["temperature"] for r in rows}:
            v = [r["tau_alpha"] for r in rows if r["temperature"] == t
                 and r["verdict"] == "certified"]
            if v:
                taus[t] = float(np.mean(v))
        return taus

    def save(final: bool = False) -> dict:
        # Cost of each chain in CPU seconds: measured, or for a resumed chain its sweeps times
        # the CPU seconds per sweep of the chains that ran in one piece at the same T (else
        # at any T).
        whole = [r for r in rows if not r["resumed"]]
        for r in rows:
            same = [q for q in whole if q["temperature"] == r["temperature"]] or whole
            if r["resumed"] and same:
                rate = sum(q["cpu_seconds"] for q in same) / sum(q["sweeps"] for q in same)
                r["cost_cpu_seconds"], r["cost_estimated"] = r["sweeps"] * rate, True
            else:
                r["cost_cpu_seconds"], r["cost_estimated"] = r["cpu_seconds"], r["resumed"]
        for r in rows:
            # From a melt: this chain plus its parents at the higher temperatures.
            r["lineage_cost_cpu_seconds"] = sum(
                q["cost_cpu_seconds"] for q in rows
                if q["lineage"] == r["lineage"] and q["temperature"] >= r["temperature"])
        temps = sorted({r["temperature"] for r in rows}, reverse=True)
        summaries = [summarise(t, [r for r in rows if r["temperature"] == t]) for t in temps]
        certified_t = [x["temperature"] for x in summaries if x["certified"]]
        out = {"args": vars(args), "rows": rows, "summaries": summaries,
               "cpu": state.get("cpu", {}), "resumed": state.get("resumed", {}),
               "stops": stops,
               "stop": stops.get(0), "lowest_certified": min(certified_t, default=None),
               "core_minutes_used": used / 60, "complete": final}
        with atomic_write(results_path) as fh:
            json.dump(out, fh, indent=1)
        return out

    for lineage in range(args.lineages):
        init = "random"
        for temperature in args.temperatures:
            plan = plan_step(args, measured_taus(), temperature, init == "random")
            if seconds_per_sweep is not None:
                predicted = (plan["equilibration"] + 1.1 * 10 * plan["tau_predicted"]) \
                    * seconds_per_sweep
                left = args.budget_core_minutes * 60 - used
                if predicted > left:
                    stops[lineage] = (
                        f"tau_alpha beyond budget at T = {temperature:g}: predicted tau_alpha "
                        f"{plan['tau_predicted']:.3g} sweeps, {predicted / 60:.1f} core-min "
                        f"for one chain > {left / 60:.1f} core-min left")
                    break
            if not args.report_only:
                print(f"\n## lineage {lineage}, T = {temperature:g}: predicted tau_alpha "
                      f"{plan['tau_predicted']:.4g} sweeps; equilibration "
                      f"{plan['equilibration']}, production {plan['production']} "
                      f"(extendable to {plan['max_production']})", flush=True)
            row = run_step(args, temperature, lineage, init, plan, state)
            if row is None:
                stops[lineage] = f"T = {temperature:g} not in the library (--report-only)"
                break
            rows.append(row)
            used += row["cpu_seconds"]
            done = [r for r in rows if r["cpu_seconds"] > 0 and not r["resumed"]]
            if done:
                seconds_per_sweep = (sum(r["cpu_seconds"] for r in done)
                                     / sum(r["sweeps"] for r in done))
            save()
            if row["verdict"] != "certified":
                stops[lineage] = f"not certified at T = {temperature:g}: {row['reasons']}"
                break
            if row["cc_clustering"] > args.demix_threshold:
                x = args.dopant
                stops[lineage] = (f"demixing of {x} at T = {temperature:g}: {x}-{x} "
                                  f"clustering ratio {row['cc_clustering']:.2f} > "
                                  f"{args.demix_threshold:g}")
                break
            init = row["equilibrium_structure"]
        else:
            stops[lineage] = "end of the ladder reached"
    out = save(final=True)
    summaries, lowest = out["summaries"], out["lowest_certified"]
    print_table(summaries, args.dopant)
    certified_t = [s["temperature"] for s in summaries if s["certified"]]
    lowest = min(certified_t) if certified_t else None
    print(f"\nlowest certified T: {lowest}")
    for lineage, why in stops.items():
        print(f"lineage {lineage} stopped: {why}")
    print(f"CPU time of the chains: {sum(r['cost_cpu_seconds'] for r in rows) / 60:.1f} "
          f"core-minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
