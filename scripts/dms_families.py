"""Mechanical spectroscopy of two glass families: does the stable glass dissipate differently?

The isochronal experiment of the metallic-glass DMS literature, on glasses made by swap Monte
Carlo: tan delta(T) and M'(T), M''(T) at fixed frequencies from room temperature to above
T_g, for glasses quenched from a low (stable) and a high (poor) parent temperature, with
errors over glasses, the difference between the families at every (T, omega) (Welch t test
and an exact permutation test over the glasses) and the loss peaks T_p(omega) of each family
with their Arrhenius law.

Stages, each resumable (rerun the same command after a kill; finished work is kept):

1. ``build``: one ``swapmc library build`` per family (``samples`` certified glasses of N
   atoms at the parent temperature, NPT at the preset's pressure), under
   ``mpiexec -n RANKS`` when ``--ranks`` > 1;
2. ``export``: the certified inherent structures of each family as extended XYZ;
3. ``scan``: one ``swapmc dms`` isochronal scan per family (NPT at each T first, then the
   oscillation; every (glass, T, period) point is an independent job farmed over the ranks);
4. ``report``: tables, ``results.json`` and ``tan_delta_T.png`` in the output directory.

``--plan`` times a few Monte Carlo sweeps and MD steps of the chosen system on this machine
and prints the core-hours each stage of the full run would take, without running it.

    python scripts/dms_families.py --plan                   # cost of the default run here
    mpiexec -n 1 python scripts/dms_families.py --ranks 64  # the default run on a node
    python scripts/dms_families.py --quick                  # a one-minute smoke run

Defaults: doped Cu50Zr50 (``cu50zr50-x10``, ZJW EAM, P = 0), N = 2000, 8 glasses per family
from parents at 950 K (certified in equilibrium, just above the T_g of ~920 K that plain MC
cooling gives this alloy) and 2000 K (the liquid; quenched from there, the poorest glass),
T = 300-1100 K in steps of 100 K at periods of 10, 30 and 100 ps (100, 33 and 10 GHz),
shear amplitude 0.02.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from swapmc.io import atomic_write, write_extxyz

FAMILIES = ("stable", "poor")

CONFIG = """\
# library build of the {family} family, written by scripts/dms_families.py
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


def log(msg: str) -> None:
    print(msg, flush=True)


def _mpiexec(ranks: int) -> list[str]:
    """``[mpiexec, -n, K]`` (the one next to this Python first), or [] for one rank."""
    if ranks <= 1:
        return []
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
    if exe is None:
        raise SystemExit("no mpiexec found (pip install 'swapmc[mpich]'), or use --ranks 1")
    return [exe, "-n", str(ranks)]


def _run(command: list[str], logfile: str) -> None:
    log("$ " + " ".join(command) + f"   (log: {logfile})")
    with open(logfile, "a", encoding="utf-8") as fh:
        status = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise SystemExit(f"command failed with exit code {status}; see {logfile}")


def family_settings(args) -> dict:
    """Parent temperature and sweep counts of each family."""
    return {
        "stable": {"temperature": args.stable_t, "equilibration": args.stable_equilibration,
                   "production": args.stable_production,
                   "max_production": args.stable_max_production},
        "poor": {"temperature": args.poor_t, "equilibration": args.poor_equilibration,
                 "production": args.poor_production,
                 "max_production": args.poor_max_production},
    }


# ------------------------------------------------------------------------------ stages
def library_path(args, family: str) -> str:
    return os.path.join(args.output, family, "glasses.sqlite")


def stage_build(args) -> None:
    for k, (family, s) in enumerate(family_settings(args).items()):
        folder = os.path.join(args.output, family)
        os.makedirs(folder, exist_ok=True)
        config = os.path.join(folder, "build.toml")
        with atomic_write(config) as fh:
            fh.write(CONFIG.format(family=family, preset=args.preset, n=args.n,
                                   samples=args.samples, seed=args.seed + 1000 * k,
                                   library=os.path.abspath(library_path(args, family)),
                                   **s))
        _run([*_mpiexec(args.ranks), sys.executable, "-m", "swapmc", "library", "build",
              config, "--no-progress"], os.path.join(folder, "build.log"))


def stage_export(args) -> dict:
    """Write each family's certified inherent structures; returns their paths."""
    from swapmc.library import Library

    out = {}
    for family in FAMILIES:
        folder = os.path.join(args.output, family)
        with Library(library_path(args, family)) as lib:
            samples = lib.query(n=args.n)[: args.samples]
            if len(samples) < 2:
                raise SystemExit(f"{family}: {len(samples)} certified glass(es) in "
                                 f"{folder}/glasses.sqlite; the comparison needs >= 2")
            paths = []
            for s in samples:
                path = os.path.join(folder, "glasses", f"glass-{s.id:04d}.xyz")
                if not os.path.exists(path):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with atomic_write(path) as fh:
                        write_extxyz(fh, s.inherent)
                paths.append(path)
        out[family] = paths
        log(f"{family}: {len(paths)} certified glasses")
    return out


def dms_command(args, paths: list[str], directory: str) -> list[str]:
    return [*_mpiexec(args.ranks), sys.executable, "-m", "swapmc", "dms", *paths,
            "--preset", args.preset, "-o", directory, "--no-progress",
            "-T", *map(str, args.temperatures), "--periods", *map(str, args.periods),
            "--amplitude", str(args.amplitude), "--cycles", str(args.cycles),
            "--max-cycles", str(args.max_cycles), "--npt-steps", str(args.npt_steps),
            "--equilibration-steps", str(args.equilibration_steps),
            "--peak-quantity", "tan_delta", "--seed", str(args.seed),
            *(["--tg", str(args.tg)] if args.tg else [])]


def stage_scan(args, glasses: dict) -> None:
    for family in FAMILIES:
        directory = os.path.join(args.output, family, "dms")
        _run(dms_command(args, glasses[family], directory),
             os.path.join(args.output, family, "dms.log"))


# ------------------------------------------------------------------------------ report
def read_points(directory: str) -> dict:
    """``{(T, period): {sample: result dict}}`` from a scan's point files."""
    out: dict = {}
    for path in sorted(glob.glob(os.path.join(directory, "points", "*.json"))):
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
        key = (float(rec["temperature"]), float(rec["period"]))
        out.setdefault(key, {})[int(rec["sample"])] = rec["result"]
    return out


QUANTITIES = ("tan_delta", "m_storage", "m_loss")


def compare_families(points: dict, quantities=QUANTITIES) -> list[dict]:
    """Per (T, period, quantity): each family's mean with its 68 % interval over glasses and
    the stable - poor difference with Welch and exact permutation p values."""
    from swapmc.analysis import compare_groups, mean_over_glasses

    keys = sorted(set(points["stable"]) & set(points["poor"]))
    rows = []
    for temp, period in keys:
        for q in quantities:
            a = [r[q] for r in points["stable"][(temp, period)].values()]
            b = [r[q] for r in points["poor"][(temp, period)].values()]
            sa, sb = mean_over_glasses(a), mean_over_glasses(b)
            rows.append({"temperature": temp, "period": period, "quantity": q,
                         "stable": sa.as_dict(), "poor": sb.as_dict(),
                         "difference": compare_groups(a, b)})
    return rows


def family_peaks(args) -> dict:
    """Loss peaks T_p(omega) of each family's tan delta and their Arrhenius law."""
    from swapmc.md.dms_analysis import read_scan
    from swapmc.md.dms_scan import scan_peaks

    out = {}
    for family in FAMILIES:
        data = read_scan(os.path.join(args.output, family, "dms"))
        peaks = scan_peaks(data.rows, quantity="tan_delta", units=data.units, tg=args.tg)
        fit = peaks["arrhenius"]
        out[family] = {
            "isochronal": [p.as_dict() for p in peaks["isochronal"]],
            "arrhenius": None if fit is None else fit.as_dict(),
            "arrhenius_error": peaks["arrhenius_error"],
            "rows": [r.as_dict() for r in data.rows],
        }
    return out


def _pm(stat: dict, spec: str = ".3f") -> str:
    mean, err = stat.get("mean"), stat.get("half68")
    if mean is None or not math.isfinite(mean):
        return "-"
    return f"{mean:{spec}}" + ("" if err is None or not math.isfinite(err) else
                               f" ± {err:{spec}}")


def print_report(rows: list[dict], peaks: dict, units: dict) -> None:
    log(f"\nstable - poor at every (T, period); ± = 68 % interval over glasses; p: Welch t "
        f"test, exact permutation test over the glasses (not corrected for the "
        f"{len(rows)} comparisons)")
    log(f"{'T':>6} {'period':>7} {'quantity':>9} {'stable':>18} {'poor':>18} "
        f"{'difference':>18} {'p Welch':>8} {'p perm':>7}")
    for r in rows:
        d = r["difference"]
        diff = "-" if not d else f"{d['diff']:+.3f} ± {d['se']:.3f}"
        pw = "-" if not d else f"{d['p_welch']:.3f}"
        pp = "-" if not d else f"{d['p_permutation']:.3f}"
        log(f"{r['temperature']:6g} {r['period']:7g} {r['quantity']:>9} "
            f"{_pm(r['stable']):>18} {_pm(r['poor']):>18} {diff:>18} {pw:>8} {pp:>7}")
    for family, p in peaks.items():
        found = [q for q in p["isochronal"] if q.get("found")]
        log(f"\n{family}: {len(found)} isochronal tan delta peak(s) of "
            f"{len(p['isochronal'])} frequencies")
        for q in p["isochronal"]:
            where = (f"T_p = {q['position']:.0f} ± {q['position_err']:.0f} {units['T']}"
                     if q.get("found") else f"no peak ({q.get('reason')})")
            log(f"  omega = {q['fixed']:.4g} rad/{units['time']}: {where}")
        fit = p["arrhenius"]
        log("  Arrhenius: " + (p["arrhenius_error"] or "-") if fit is None else
            f"  Arrhenius: E = {fit['energy']:.3g} ± {fit['energy_err']:.2g} "
            f"{fit['energy_unit']}")


def plot(args, rows: list[dict], units: dict) -> str:
    """tan delta(T) of both families at each period (means over glasses, 68 % intervals),
    the values of the report's table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["quantity"] == "tan_delta"]
    periods = sorted({r["period"] for r in rows})
    fig, axes = plt.subplots(1, len(periods), figsize=(4.2 * len(periods) + 0.6, 3.8),
                             squeeze=False, sharey=True)
    style = {"stable": ("C0", "o", f"parent {args.stable_t:g} {units['T']}"),
             "poor": ("C3", "s", f"parent {args.poor_t:g} {units['T']}")}
    for ax, period in zip(axes[0], periods):
        sel = sorted((r for r in rows if r["period"] == period),
                     key=lambda r: r["temperature"])
        for family, (color, marker, label) in style.items():
            stats = [r[family] for r in sel]
            ax.errorbar([r["temperature"] for r in sel], [st["mean"] for st in stats],
                        [st["half68"] for st in stats], color=color, marker=marker, ms=4,
                        capsize=2, lw=1, label=f"{label} ({stats[0]['n']})")
        ghz = 1e3 / period if units["time"] == "ps" else None
        title = f"period {period:g} {units['time']}" + (f" ({ghz:.3g} GHz)" if ghz else "")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"T ({units['T']})")
        ax.axhline(0.0, color="0.7", lw=0.5)
    axes[0][0].set_ylabel(r"tan $\delta$ (mean, 68 % over glasses)")
    axes[0][0].legend(fontsize=8, title="family (glasses)", title_fontsize=8)
    fig.suptitle(f"{args.preset}, N = {args.n}\nisochronal loss in simple shear, strain "
                 f"amplitude {args.amplitude:g}", fontsize=10)
    fig.tight_layout()
    path = os.path.join(args.output, "tan_delta_T.png")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def stage_report(args) -> dict:
    from swapmc.models import load_preset

    metal = load_preset(args.preset).model.units == "metal"
    units = {"T": "K" if metal else "ε/k_B", "time": "ps" if metal else "τ_LJ"}
    points = {f: read_points(os.path.join(args.output, f, "dms")) for f in FAMILIES}
    rows = compare_families(points)
    peaks = family_peaks(args)
    print_report(rows, peaks, units)
    figure = plot(args, rows, units)
    result = {"settings": {k: v for k, v in vars(args).items() if k != "func"},
              "comparison": rows, "peaks": peaks, "figure": figure}
    with atomic_write(os.path.join(args.output, "results.json")) as fh:
        json.dump(_jsonable(result), fh, indent=1)
    log(f"\nwrote {args.output}/results.json and {figure}")
    return result


# ------------------------------------------------------------------------------ plan
def measure_rates(args) -> dict:
    """Monte Carlo sweeps per CPU second (NPT as the builds) and MD steps per CPU second of
    an N-atom liquid of the preset, timed here."""
    from swapmc.build import composition_counts, random_configuration
    from swapmc.mc import MonteCarlo, MoveSettings
    from swapmc.md import MD, BussiThermostat, ForceField, maxwell_boltzmann
    from swapmc.models import load_preset

    preset = load_preset(args.preset)
    counts = composition_counts(preset.composition, args.n, preset.model.species)
    min_distance = 2.0 if preset.model.units == "metal" else 0.7
    system = random_configuration(counts, preset.model.species, preset.density, args.seed,
                                  min_distance=min_distance)
    mc = MonteCarlo(system, preset.model, args.stable_t, pressure=preset.pressure,
                    moves=MoveSettings(**preset.moves), seed=args.seed)
    mc.equilibrate(20)
    c0 = time.process_time()
    mc.sweep(args.plan_sweeps)
    sweeps_per_s = args.plan_sweeps / (time.process_time() - c0)
    ff = ForceField(preset.model)
    s = mc.system()
    rng = np.random.default_rng(args.seed)
    s.velocities = maxwell_boltzmann(ff.masses(s.species), args.stable_t, ff.kB, ff.mvv2e,
                                     rng)
    md = MD(s, ff, args.dt, thermostat=BussiThermostat(args.stable_t, 100 * args.dt, rng))
    md.run(args.plan_steps // 2)  # past the first list rebuilds after the MC start
    c0 = time.process_time()
    md.run(args.plan_steps)
    steps_per_s = args.plan_steps / (time.process_time() - c0)
    return {"sweeps_per_s": sweeps_per_s, "md_steps_per_s": steps_per_s}


def plan(args, rates: dict) -> dict:
    """Core-hours of each stage from the measured rates (no extension of any chain)."""
    from swapmc.md.dms_scan import scan_cycles

    out = {}
    for family, s in family_settings(args).items():
        sweeps = s["equilibration"] + s["production"]
        out[f"build {family}"] = args.samples * sweeps / rates["sweeps_per_s"] / 3600
    slowest = max(args.periods)
    steps = 0.0
    for period in args.periods:
        cycles, _ = scan_cycles(period, slowest, min_cycles=args.cycles,
                                max_analysed=args.max_cycles)
        steps += args.npt_steps + args.equilibration_steps + cycles * period / args.dt
    steps *= len(args.temperatures)
    for family in FAMILIES:
        out[f"scan {family}"] = args.samples * steps / rates["md_steps_per_s"] / 3600
    return out


# ------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-o", "--output", default="dms-families", help="work/output directory")
    p.add_argument("--preset", default="cu50zr50-x10")
    p.add_argument("-N", "--n", type=int, default=2000, help="atoms per glass")
    p.add_argument("--samples", type=int, default=8, help="glasses per family")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks of the builds and scans")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--stable-t", type=float, default=950.0, help="parent T of the stable "
                   "family (K for metal presets)")
    p.add_argument("--stable-equilibration", type=int, default=40000, help="sweeps")
    p.add_argument("--stable-production", type=int, default=40000, help="sweeps")
    p.add_argument("--stable-max-production", type=int, default=120000, help="sweeps")
    p.add_argument("--poor-t", type=float, default=2000.0, help="parent T of the poor family")
    p.add_argument("--poor-equilibration", type=int, default=2000, help="sweeps")
    p.add_argument("--poor-production", type=int, default=3000, help="sweeps")
    p.add_argument("--poor-max-production", type=int, default=20000, help="sweeps")
    p.add_argument("-T", "--temperatures", type=float, nargs="+",
                   default=[300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0])
    p.add_argument("--periods", type=float, nargs="+", default=[10.0, 30.0, 100.0],
                   help="oscillation periods (ps for metal presets)")
    p.add_argument("--amplitude", type=float, default=0.02, help="shear strain amplitude")
    p.add_argument("--cycles", type=int, default=5, help="least cycles per point")
    p.add_argument("--max-cycles", type=int, default=30)
    p.add_argument("--npt-steps", type=int, default=5000)
    p.add_argument("--equilibration-steps", type=int, default=2000)
    p.add_argument("--dt", type=float, default=0.002, help="MD time step (for --plan)")
    p.add_argument("--tg", type=float, default=917.0, help="T_g for E/(R T_g) (K: the "
                   "energy kink of plain-MC cooling, docs/figures/cu50zr50_cooling.txt)")
    p.add_argument("--stages", default="build,export,scan,report")
    p.add_argument("--plan", action="store_true", help="print the cost of the run here and "
                   "exit")
    p.add_argument("--plan-sweeps", type=int, default=100)
    p.add_argument("--plan-steps", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.samples = 256, 2
        args.stable_t, args.poor_t = 2500.0, 3000.0
        args.stable_equilibration, args.stable_production = 100, 500
        args.stable_max_production = 2000
        args.poor_equilibration, args.poor_production = 100, 400
        args.poor_max_production = 2000
        args.temperatures, args.periods = [300.0, 600.0], [2.0]
        args.cycles, args.max_cycles = 3, 3
        args.npt_steps, args.equilibration_steps = 200, 100
        args.plan_sweeps, args.plan_steps = 5, 50
        if args.output == "dms-families":
            args.output = "dms-families-quick"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    if args.plan:
        rates = measure_rates(args)
        costs = plan(args, rates)
        log(f"{args.preset}, N = {args.n}, {args.samples} glasses per family: "
            f"{rates['sweeps_per_s']:.3g} MC sweeps and {rates['md_steps_per_s']:.3g} MD "
            f"steps per CPU second here")
        for stage, hours in costs.items():
            log(f"  {stage:<14} {hours:8.2f} core-hours")
        log(f"  {'total':<14} {sum(costs.values()):8.2f} core-hours (chains that need "
            f"extending cost more)")
        return 0
    stages = args.stages.split(",")
    unknown = set(stages) - {"build", "export", "scan", "report"}
    if unknown:
        raise SystemExit(f"--stages: unknown stage(s) {sorted(unknown)}")
    t0 = time.time()
    if "build" in stages:
        stage_build(args)
    glasses = stage_export(args) if {"export", "scan"} & set(stages) else None
    if "scan" in stages:
        stage_scan(args, glasses)
    if "report" in stages:
        stage_report(args)
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
