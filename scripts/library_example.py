"""End to end: build a glass library on MPI ranks, then measure its glasses by MD.

1. Two builds go into one library file, each with ``mpiexec -n RANKS swapmc library build``:
   KA2 (x_C = 0.10, N = 500) equilibrated by swap Monte Carlo at a low parent temperature
   (default 0.45) and, for comparison, in the liquid (default 1.0; quenched from there it
   makes a poorly annealed glass). Every sample is certified (F_s decay >= 10 tau_alpha,
   no energy drift, no crystal) and quenched.
2. The library is queried by temperature and its inherent structures go straight into the
   MD stage: dynamic mechanical spectroscopy in simple shear (M', M'', tan delta over
   periods and measurement temperatures) and stress relaxation after a step shear (KWW).
3. Tables, CSV/JSON and plots are written to the output directory, including the library
   throughput (certified samples per core-hour) of each build.

    python scripts/library_example.py                    # about 30 min on 2 cores
    python scripts/library_example.py --quick            # a 2-minute smoke run
    python scripts/library_example.py --build-only --t-low 0.40 --samples 2 \\
        --equilibration-sweeps 120000 --max-production-sweeps 300000
    python scripts/library_example.py --preset cu50zr50-x10 --t-low 900 --t-high 2000 \\
        -T 300 600 --periods 10 50 --duration 50 --fit-from 0.5 -o cuzr-example

Any preset works: the units (LJ or metal: K, ps, GPa) follow the model, and a preset with a
pressure (the EAM presets: NPT at 0 GPa) is equilibrated at that pressure by MD before the
cell is deformed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from swapmc.analysis.mechanics import t_factor68
from swapmc.io import atomic_write
from swapmc.library import Library
from swapmc.md import ForceField
from swapmc.md.protocols import dms_sweep, step_strain_relaxation
from swapmc.models import load_preset

CONFIG = """\
# swapmc library build config written by scripts/library_example.py
preset = "{preset}"
[state]
temperature = {temperature}
[system]
n = {n}
[run]
seed = {seed}
equilibration_sweeps = {equilibration}
production_sweeps = {production}
[library]
path = "{library}"
samples = {samples}
max_production_sweeps = {max_production}
"""


def build(args, temperature: float, equilibration: int) -> str:
    """Write the config of one build and run ``swapmc library build`` on it."""
    path = os.path.join(args.output, f"build-T{temperature:g}.toml")
    with atomic_write(path) as fh:
        fh.write(CONFIG.format(preset=args.preset, temperature=temperature, n=args.n,
                               seed=args.seed,
                               equilibration=equilibration,
                               production=args.production_sweeps,
                               max_production=max(args.max_production_sweeps,
                                                  args.production_sweeps),
                               library=os.path.abspath(args.library),
                               samples=args.samples))
    command = [sys.executable, "-m", "swapmc", "library", "build", path]
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    if args.ranks > 1:
        if mpiexec is None:
            raise SystemExit("no mpiexec found (pip install 'swapmc[mpich]') — or --ranks 1")
        command = [mpiexec, "-n", str(args.ranks), *command]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return path


def _mean_sem(values) -> tuple[float | None, float | None]:
    """Mean and standard error over independent samples (None when undefined)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None)


def throughput_table(library: str) -> list[dict]:
    """Certified samples per core-hour of every build, with errors over samples.

    The cost of a sample is the CPU time of its chain, certification and quench (each chain
    runs on one core; CPU rather than wall time, so that a shared machine does not inflate
    it; older libraries without it fall back to wall time). The rate n_certified / sum(cost)
    has a relative error combining the standard error of the mean cost and the binomial
    error of the certified fraction.
    """
    rows = []
    with Library(library) as lib:
        for b in lib.builds():
            samples = lib.query(build=b["build"], verdict="all")
            if not samples:
                continue
            cost = [s.meta.get("cpu_seconds") or s.meta["wall_seconds"] for s in samples]
            certified = [s for s in samples if s.meta["verdict"] == "certified"]
            n, k = len(samples), len(certified)
            rate = k / (sum(cost) / 3600.0)
            c_mean, c_sem = _mean_sem(cost)
            rel2 = (c_sem / c_mean) ** 2 if c_sem else 0.0
            if 0 < k < n:
                rel2 += (1 - k / n) / k  # binomial: var(k)/k^2 = n p (1-p) / (n p)^2
            tau, tau_err = _mean_sem([s.meta["tau_alpha"] for s in certified])
            eis, eis_err = _mean_sem([s.meta["is_energy"] for s in certified])
            rows.append({
                "build": b["build"][:16], "temperature": samples[0].meta["temperature"],
                "n": samples[0].meta["n"], "samples": n, "certified": k,
                "tau_alpha_mean": tau, "tau_alpha_sem": tau_err,
                "sweeps_mean": float(np.mean([s.meta["sweeps"] for s in samples])),
                "core_hours": sum(cost) / 3600.0,
                "cost_is_cpu": all(s.meta.get("cpu_seconds") for s in samples),
                "certified_per_core_hour": rate,
                "certified_per_core_hour_err": rate * np.sqrt(rel2) if c_sem else None,
                "is_energy_mean": eis, "is_energy_sem": eis_err,
            })
    return rows


def _pm(value, err, fmt) -> str:
    if value is None:
        return "-"
    return f"{value:{fmt}}" + ("" if err is None else f" ± {err:{fmt}}")


def print_throughput(rows) -> None:
    print("\n(errors: standard errors over the samples of a build; cost = CPU time per chain)")
    print(f"{'T':>6s} {'N':>5s} {'samples':>7s} {'certified':>9s} {'<tau_alpha>':>13s} "
          f"{'<sweeps>':>9s} {'core-h':>7s} {'cert/core-h':>13s} {'<E_IS/N>':>17s}")
    for r in rows:
        tau = _pm(r["tau_alpha_mean"], r["tau_alpha_sem"], ".0f")
        eis = _pm(r["is_energy_mean"], r["is_energy_sem"], ".4f")
        rate = _pm(r["certified_per_core_hour"], r["certified_per_core_hour_err"], ".1f")
        print(f"{r['temperature']:6.3g} {r['n']:5d} {r['samples']:7d} {r['certified']:9d} "
              f"{tau:>13s} {r['sweeps_mean']:9.0f} {r['core_hours']:7.3f} "
              f"{rate:>13s} {eis:>17s}")


def units(preset) -> dict:
    metal = preset.model.units == "metal"
    return {"stress": "GPa" if metal else "epsilon/sigma^3", "time": "ps" if metal else "tau_LJ",
            "temperature": "K" if metal else "epsilon/k_B",
            "omega": "rad/ps" if metal else "rad/tau_LJ"}


def measure(args, glasses: dict) -> dict:
    """DMS and stress relaxation of each glass family; returns plain results."""
    preset = load_preset(args.preset)
    ff = ForceField(preset.model)
    u = units(preset)
    # EAM presets are isobaric (P = 0): each sample is first equilibrated at (T, P) by MD.
    npt = {"pressure": preset.pressure} if preset.pressure is not None else {}
    rng = np.random.default_rng(args.seed)
    omegas = [2 * np.pi / p for p in args.periods]
    out = {"dms": [], "relax": [], "units": u}
    print(f"\n# DMS, simple shear, eps_A = {args.amplitude:g}, {args.cycles} cycles "
          f"(first dropped); moduli in {u['stress']}, periods in {u['time']}"
          + (f", NPT at P = {preset.pressure:g} first" if npt else ""))
    print(f"{'parent T':>8s} {'T':>6s} {'period':>7s} {'M_storage':>16s} {'M_loss':>15s} "
          f"{'tan_delta':>16s} {'n':>2s}")
    for parent, systems in glasses.items():
        def show(r, parent=parent):
            print(f"{parent:8.4g} {r.temperature:6.4g} {r.period:7.4g} "
                  f"{r.m_storage:8.3f} ± {r.m_storage_err:5.3f} {r.m_loss:7.3f} ± "
                  f"{r.m_loss_err:5.3f} {r.tan_delta:8.4f} ± {r.tan_delta_err:6.4f} "
                  f"{r.n_samples:2d}", flush=True)

        rows = dms_sweep(systems, ff, omegas=omegas, temperatures=args.temperatures,
                         strain_amplitude=args.amplitude, n_cycles=args.cycles, rng=rng,
                         equilibration_steps=args.md_equilibration_steps, progress=show,
                         **npt)
        for r in rows:
            out["dms"].append({"parent_temperature": parent, **{
                k: v for k, v in r.as_dict().items() if not isinstance(v, (list, dict))}})
    print(f"\n# stress relaxation after a {args.strain:g} step shear, held {args.duration:g} "
          f"{u['time']}, {args.repeats} repeat(s) per sample; KWW fit of M(t) for t >= "
          f"{args.fit_from:g}")
    print(f"{'parent T':>8s} {'T':>6s} {'M(0)':>7s} {'M(end) (68 %)':>15s} {'tau':>16s} "
          f"{'beta':>14s} {'M_r':>15s}")
    for parent, systems in glasses.items():
        for temperature in args.temperatures:
            res = step_strain_relaxation(systems, ff, temperature=temperature,
                                         strain=args.strain, duration=args.duration,
                                         repeats=args.repeats, rng=rng,
                                         fit_from=args.fit_from,
                                         equilibration_steps=args.md_equilibration_steps,
                                         **npt)
            m = res.modulus
            tail = float(m[int(0.9 * len(m)):].mean())
            # M at the end of the hold (mean over its last 10 %) for each glass: the spread
            # over glasses gives its 68 % interval (Student t, G - 1 dof).
            per_glass = res.glass_curves[:, int(0.9 * len(m)):].mean(axis=1) / args.strain
            tail_err = (t_factor68(len(per_glass) - 1) * per_glass.std(ddof=1)
                        / np.sqrt(len(per_glass)) if len(per_glass) > 1 else float("nan"))
            k = res.kww
            # +- is a 68 % interval from the spread over glasses; a parameter at its bound
            # is printed as unconstrained, without an error.
            fit = (f"{k.format('tau', '8.3g')} {k.format('beta', '6.3f')} "
                   f"{k.format('residual_modulus', '7.3f')}"
                   if k is not None else f"KWW fit failed: {res.kww_error}")
            print(f"{parent:8.4g} {temperature:6.4g} {m[0]:7.3f} "
                  f"{tail:7.3f} ± {tail_err:5.2f} {fit}", flush=True)
            out["relax"].append({
                "parent_temperature": parent, "temperature": temperature,
                "t": res.t.tolist(), "modulus": m.tolist(), "modulus_end": tail,
                "modulus_end_err": tail_err, "modulus_end_per_glass": per_glass.tolist(),
                "kww": k.as_dict() if k is not None else None,
                "kww_error_method": k.error_method if k is not None else None,
                # The fitted model only over the fitted range (None elsewhere).
                "kww_curve": [float(k.modulus(x)) if k.fit_range[0] <= x <= k.fit_range[1]
                              else None for x in res.t] if k is not None else None})
    return out


def _save(plt, fig, directory: str, name: str) -> str:
    fig.tight_layout()
    path = os.path.join(directory, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(args, results: dict) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install 'swapmc[plot]')")
        return []
    files = []
    u = results["units"]
    parents = sorted({r["parent_temperature"] for r in results["dms"]})
    styles = dict(zip(parents, ("o", "s", "^", "v")))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for parent in parents:
        for temp in args.temperatures:
            sel = [r for r in results["dms"] if r["parent_temperature"] == parent
                   and r["temperature"] == temp]
            w = [r["omega"] for r in sel]
            label = f"parent T={parent:g}, T={temp:g}"
            axes[0].errorbar(w, [r["m_storage"] for r in sel],
                             [r["m_storage_err"] for r in sel], marker=styles[parent],
                             label=label)
            axes[1].errorbar(w, [r["m_loss"] for r in sel], [r["m_loss_err"] for r in sel],
                             marker=styles[parent], label=label)
    for ax, name in zip(axes, ("storage modulus G'", "loss modulus G''")):
        ax.set_xscale("log")
        ax.set_xlabel(f"omega [{u['omega']}]")
        ax.set_ylabel(f"{name} [{u['stress']}]")
        ax.legend(fontsize=7)
    files.append(_save(plt, fig, args.output, "library_dms.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    for parent in parents:
        for period in args.periods:
            sel = [r for r in results["dms"] if r["parent_temperature"] == parent
                   and abs(r["period"] - period) < 1e-9 * period]
            ax.errorbar([r["temperature"] for r in sel], [r["tan_delta"] for r in sel],
                        [r["tan_delta_err"] for r in sel], marker=styles[parent],
                        label=f"parent T={parent:g}, period {period:g}")
    ax.set_xlabel(f"T [{u['temperature']}]")
    ax.set_ylabel("tan delta")
    ax.legend(fontsize=7)
    files.append(_save(plt, fig, args.output, "library_tan_delta_T.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results["relax"]:
        t, m = np.array(r["t"]), np.array(r["modulus"])
        pos = t > 0
        line = ax.plot(t[pos], m[pos], lw=0.8,
                       label=f"parent T={r['parent_temperature']:g}, T={r['temperature']:g}")[0]
        if r["kww_curve"] is not None:
            fit = np.array([np.nan if v is None else v for v in r["kww_curve"]])
            ax.plot(t[pos], fit[pos], "--", color=line.get_color(), lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"t [{u['time']}]")
    ax.set_ylabel(f"G(t) = sigma_xy / eps_0 [{u['stress']}]")
    ax.legend(fontsize=7)
    files.append(_save(plt, fig, args.output, "library_relaxation.png"))
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="library-example")
    ap.add_argument("--library", help="library file (default OUTPUT/glasses.sqlite)")
    ap.add_argument("--ranks", type=int, default=2, help="MPI ranks of the builds")
    ap.add_argument("--preset", default="ka2-x10", help="model preset (e.g. cu50zr50-x10)")
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--samples", type=int, default=4, help="samples per build")
    ap.add_argument("--t-low", type=float, default=0.45, help="parent T of the stable glasses")
    ap.add_argument("--t-high", type=float, default=1.0,
                    help="parent T of the poorly annealed glasses (a quench from the liquid)")
    ap.add_argument("--equilibration-sweeps", type=int, default=50_000,
                    help="at the low parent T (the high one gets a fifth)")
    ap.add_argument("--production-sweeps", type=int, default=20_000)
    ap.add_argument("--max-production-sweeps", type=int, default=100_000)
    ap.add_argument("--build-only", action="store_true", help="only the low-T build")
    ap.add_argument("-T", "--temperatures", type=float, nargs="+", default=[0.2, 0.3, 0.38],
                    help="MD measurement temperatures")
    ap.add_argument("--periods", type=float, nargs="+", default=[10.0, 100.0])
    ap.add_argument("--amplitude", type=float, default=0.02)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--strain", type=float, default=0.02)
    ap.add_argument("--duration", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fit-from", type=float, default=1.0,
                    help="fit KWW from here on (after the ringing of the step)")
    ap.add_argument("--md-equilibration-steps", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="tiny everything (smoke test)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.samples, args.t_low, args.t_high = 200, 2, 0.8, 1.2
        args.equilibration_sweeps, args.production_sweeps = 2000, 2000
        args.max_production_sweeps = 10_000
        args.temperatures, args.periods, args.cycles = [0.3], [5.0], 3
        args.duration, args.repeats, args.md_equilibration_steps = 5.0, 1, 200
    os.makedirs(args.output, exist_ok=True)
    args.library = args.library or os.path.join(args.output, "glasses.sqlite")
    t0 = time.perf_counter()
    parents = [args.t_low] if args.build_only else [args.t_low, args.t_high]
    for k, parent in enumerate(parents):
        build(args, parent, args.equilibration_sweeps if k == 0
              else max(1, args.equilibration_sweeps // 5))
    subprocess.run([sys.executable, "-m", "swapmc", "library", "ls", args.library,
                    "--verdict", "all"], check=True)
    rows = throughput_table(args.library)
    print_throughput(rows)
    results = {"throughput": rows, "library": args.library}
    if not args.build_only:
        glasses = {}
        with Library(args.library) as lib:
            for parent in parents:
                # Straight from the library into the MD stage.
                glasses[parent] = [s.inherent for s in lib.samples(
                    model=args.preset, n=args.n, t_min=parent, t_max=parent)]
                if not glasses[parent]:
                    raise SystemExit(f"no certified sample at parent T = {parent}")
        results.update(measure(args, glasses))
        for path in plot(args, results):
            print(f"wrote {path}")
    with atomic_write(os.path.join(args.output, "results.json")) as fh:
        json.dump(results, fh, indent=1)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s; results in {args.output}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
