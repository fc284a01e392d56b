"""Conventional quenches against swap-equilibrated glasses: the equivalent cooling rate.

KA2 (x_C = 0.10, LJ units) by default; any preset with ``--preset``, e.g. a doped Cu-Zr one
in kelvin at P = 0 (NPT: the plain-MC quenches then keep their volume moves, without swaps).
The numbered description below gives the KA2 defaults; ``--help`` lists each preset's.

1. **Quenches.** KA2 (x_C = 0.10, N = 500, rho = 1.2) is equilibrated as a liquid at
   T = ``--t-start`` (1.0) with swap MC (melt at T = 2, then ``--liquid-sweeps``), and then
   cooled linearly to ``--t-end`` (0.2) with *plain* Metropolis MC: displacements only, no
   swaps, a fixed maximum displacement ``--delta`` (0.15 sigma_AA per Cartesian component,
   the conventional MC dynamics of KA mixtures, Berthier & Kob, J. Phys.: Condens. Matter 19,
   205130 (2007)). The temperature is lowered in ``min(duration, 1000)`` equal steps. Each
   quench ends with a FIRE minimisation to its inherent structure. Durations span decades
   (default 10^2 ... 10^6 sweeps); the cooling rate is (t_start - t_end) / duration in
   epsilon/k_B per sweep. Slow quenches (durations >= ``--short-start-from``) start instead
   from a swap-MC liquid equilibrated at ``--short-start`` (0.6) and cool at the same rate
   from there: at these rates the plain-MC liquid stays in equilibrium down to well below
   0.6, so the skipped part of the ramp would have ended in the same state; the saving is
   (t_start - 0.6) / (t_start - t_end) of the sweeps. The claim is checked: at
   ``--short-check-duration`` (a faster rate, where it is least safe) quenches are run both
   ways and compared. One JSON line per quench goes to ``OUTPUT/quenches.jsonl`` as soon
   as it ends (a kill loses the quench in flight only; rerunning skips finished ones).
2. **Equilibrium E_IS(T).** The inherent-structure energies of swap-equilibrated glasses of
   ``scripts/deep_glasses.py`` (``--deep``, certified samples) together with short swap-MC
   equilibrations at ``--eq-temperatures`` done here (from the T = 1 liquids; not certified,
   used only for the E_IS(T) curve) are fitted by E_IS = a + b / T
   (:func:`swapmc.analysis.stability.fit_equilibrium_eis`).
3. **Analysis** (:mod:`swapmc.analysis.stability`): E_IS/N against rate with standard errors
   over quenches; fits of E_IS(rate); the fictive temperature of every glass; the equivalent
   cooling rate of each swap parent temperature by inverting the fits, and the E_IS/N a
   conventional quench with the same number of sweeps as the swap glass would reach. Both are
   extrapolations beyond the slowest quench and are marked as such.

    python scripts/cooling_rate.py -o cooling --deep deep-glasses/results.json
    python scripts/cooling_rate.py --quick -o /tmp/cooling-quick     # < 1 min
    python scripts/cooling_rate.py --preset cu50zr50-x10 -o cooling-cuzr \
        --deep deep-cuzr/results.json                         # doped ZJW Cu-Zr, K, P = 0
    python scripts/cooling_rate.py -o cooling --deep ... --analyze-only   # refit, replot
    python scripts/cooling_rate.py -o cooling --resume-from docs/cooling_rate_output.json \
        --durations 100 1000 10000 100000 300000 1000000 --quenches 3 3 3 2 2 2
                                                   # extend the recorded study by a rate
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from swapmc.analysis import stability
from swapmc.build import composition_counts, random_configuration
from swapmc.io import atomic_write
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.md import ForceField
from swapmc.md.minimize import fire
from swapmc.models import load_preset

PRESET = "ka2-x10"
# FIRE force tolerance (epsilon/sigma or eV/Angstrom), as the library quench.
FMAX = 1e-6

#: Per-unit-system defaults: melt, ramp, shortened start, plain-MC step, extra equilibrium
#: points and the rates. Metal units (Cu-Zr, K): the swap liquid at 1100 K has tau_alpha
#: ~1.2e3 sweeps, so a ramp of >= 1e5 sweeps (0.012 K per sweep) stays in equilibrium there;
#: the 0.1 Angstrom step is the presets' displacement (acceptance ~0.4 near 1000 K).
DEFAULTS = {
    "lj": {"min_distance": 0.7, "t_melt": 2.0, "t_start": 1.0, "t_end": 0.2,
           "short_start": 0.6, "delta": 0.15,
           "eq_temperatures": [0.5], "eq_fit_tmax": 0.6,
           "durations": [100, 1000, 10_000, 100_000, 1_000_000],
           "quenches": [3, 3, 3, 3, 1]},
    "metal": {"min_distance": 2.0, "t_melt": 2500.0, "t_start": 1500.0, "t_end": 300.0,
              "short_start": 1100.0,
              "delta": 0.1, "eq_temperatures": [1200.0], "eq_fit_tmax": 1200.0,
              "durations": [100, 1000, 10_000, 100_000], "quenches": [3, 3, 3, 2]},
}
#: Axis and table units per unit system.
UNITS = {"lj": {"T": "epsilon/k_B", "E": "epsilon", "L": "sigma_AA"},
         "metal": {"T": "K", "E": "eV", "L": "Angstrom"}}


def liquid(args, preset, seed: int, temperature: float, then: float | None = None):
    """An equilibrated swap-MC liquid at ``temperature`` (System, user order); with
    ``then``, continued by swap MC at that temperature for ``--eq-sweeps`` sweeps."""
    counts = composition_counts(preset.composition, args.n, preset.model.species)
    system = random_configuration(counts, preset.model.species, preset.density, seed=seed,
                                  min_distance=DEFAULTS[args.units]["min_distance"])
    mc = MonteCarlo(system, preset.model, temperature=args.t_melt, pressure=preset.pressure,
                    moves=MoveSettings(**preset.moves), seed=seed + 1)
    mc.equilibrate(200)
    mc.temperature = temperature
    mc.equilibrate(args.liquid_sweeps)
    if then is not None:
        mc.temperature = then
        mc.equilibrate(args.eq_sweeps)
    return mc.system()


def quench(args, preset, ff, start, t_from: float, sweeps: int, seed: int) -> dict:
    """Linear plain-MC cooling of ``start`` from ``t_from`` to ``--t-end`` in ``sweeps``
    sweeps, then FIRE. NPT presets keep their volume moves (no swaps either way)."""
    volume = {k: preset.moves[k] for k in ("p_volume", "lnv_step") if k in preset.moves}
    mc = MonteCarlo(start, preset.model, temperature=t_from, pressure=preset.pressure,
                    moves=MoveSettings(displacement=args.delta, **volume), seed=seed)
    steps = min(sweeps, 1000)
    edges = np.linspace(0, sweeps, steps + 1).round().astype(int)
    for k in range(steps):
        # Temperature at the middle of the k-th interval of the linear ramp.
        frac = (edges[k] + edges[k + 1]) / (2.0 * sweeps)
        mc.temperature = t_from + (args.t_end - t_from) * frac
        if edges[k + 1] > edges[k]:
            mc.sweep(int(edges[k + 1] - edges[k]))
    final = mc.system()
    res = fire(final, ff, fmax=FMAX, max_steps=200_000)
    return {"energy_final": mc.energy / mc.n, "is_energy": res.energy_per_particle,
            "volume_per_particle": float(final.box.volume / mc.n),
            "converged": bool(res.converged),
            "acceptance": float(mc.acceptance()["displacement"])}


def is_energy_of(ff, system) -> float:
    res = fire(system, ff, fmax=FMAX, max_steps=200_000)
    return res.energy_per_particle


def pressure_text(args, prefix: str) -> str:
    """``prefix`` + the imposed pressure with its unit, or "" for an NVT preset."""
    if args.pressure is None:
        return ""
    return f"{prefix}{args.pressure:g} {'GPa' if args.units == 'metal' else 'epsilon/sigma^3'}"


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def append_jsonl(path: str, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def run_measurements(args) -> None:
    preset = load_preset(args.preset)
    ff = ForceField(preset.model)
    qpath = os.path.join(args.output, "quenches.jsonl")
    epath = os.path.join(args.output, "equilibrium.jsonl")
    done_q = {(r["duration"], r["index"]) for r in read_jsonl(qpath)}
    done_e = {(r["temperature"], r["index"]) for r in read_jsonl(epath)}
    # Fast rates first, then the check of the shortened ramps, then the slowest rate; the
    # extra equilibrium points last (the short-start liquids already give E_IS at
    # --short-start, and the swap library gives the low temperatures).
    plan = sorted(zip(args.durations, args.quenches))
    for duration, count in plan[:-1]:
        run_quenches(args, preset, ff, qpath, done_q, duration, count)
    if args.short_start is not None and args.short_check_duration:
        run_quenches(args, preset, ff, qpath, done_q, args.short_check_duration,
                     args.short_check_count, check=True)
    run_quenches(args, preset, ff, qpath, done_q, *plan[-1])
    run_equilibrium(args, preset, ff, epath, done_e)


def run_quenches(args, preset, ff, qpath, done_q, duration: int, count: int,
                 check: bool = False) -> None:
    """``count`` independent quenches at the rate of a ``duration``-sweep full ramp
    (finished ones skipped). Durations >= ``--short-start-from`` start from a swap-MC liquid
    at ``--short-start`` and cool at the same rate from there; with ``check``, the quenches
    (indices 200, 201, ...) start there whatever the duration, to compare with full ramps."""
    span = args.t_start - args.t_end
    rate = span / duration
    short = args.short_start is not None and (check or duration >= args.short_start_from)
    t_from = args.short_start if short else args.t_start
    for i in range(200 if check else 0, (200 if check else 0) + count):
        if (duration, i) in done_q:
            continue
        seed = args.seed * 100_000 + 7919 * i + duration % 99_991
        cpu0 = time.process_time()
        if t_from == args.t_start:
            start = liquid(args, preset, seed, args.t_start)
        else:
            start = liquid(args, preset, seed, args.t_start, then=t_from)
        e_liquid_is = is_energy_of(ff, start)
        sweeps = int(round((t_from - args.t_end) / rate))
        out = quench(args, preset, ff, start, t_from, sweeps, seed + 3)
        row = {"duration": duration, "index": i, "seed": seed, "rate": rate,
               "t_from": t_from, "sweeps": sweeps,
               "liquid_is_energy": e_liquid_is, **out,
               "cpu_seconds": time.process_time() - cpu0}
        append_jsonl(qpath, row)
        print(f"quench at rate {rate:.3g} ({sweeps} sweeps from T = {t_from:g}) #{i}: E_IS/N "
              f"{row['is_energy']:.5f} (liquid T={t_from:g} E_IS/N {e_liquid_is:.5f}), "
              f"acceptance {row['acceptance']:.3f}, {row['cpu_seconds']:.0f} s CPU",
              flush=True)


def run_equilibrium(args, preset, ff, epath, done_e) -> None:
    # Equilibrium E_IS at intermediate T by swap MC (continuing down from the T = 1 liquid).
    for i in range(args.eq_samples):
        pending = [t for t in args.eq_temperatures if (t, i) not in done_e]
        if not pending:
            continue
        seed = args.seed * 100_000 + 500_000 + 31 * i
        cpu0 = time.process_time()
        system = liquid(args, preset, seed, args.t_start)
        mc = MonteCarlo(system, preset.model, temperature=args.t_start,
                        pressure=preset.pressure, moves=MoveSettings(**preset.moves),
                        seed=seed + 5)
        for t in sorted(args.eq_temperatures, reverse=True):
            mc.temperature = t
            mc.equilibrate(args.eq_sweeps)
            mc.sweep(args.eq_sweeps)
            if (t, i) in done_e:
                continue
            row = {"temperature": t, "index": i, "seed": seed,
                   "sweeps": 2 * args.eq_sweeps, "energy": mc.energy / mc.n,
                   "is_energy": is_energy_of(ff, mc.system()),
                   "cpu_seconds": time.process_time() - cpu0}
            cpu0 = time.process_time()
            append_jsonl(epath, row)
            print(f"swap equilibrium T = {t:g} #{i}: E/N {row['energy']:.5f}, E_IS/N "
                  f"{row['is_energy']:.5f}", flush=True)


def load_deep(path: str | None) -> dict:
    """Certified swap glasses of ``scripts/deep_glasses.py``: per-glass rows with the sweeps
    and CPU seconds of their whole lineage down to their temperature (the cost of making
    that glass from a melt)."""
    if not path or not os.path.exists(path):
        return {"rows": [], "stop": None}
    with open(path) as fh:
        deep = json.load(fh)
    rows = []
    for r in deep["rows"]:
        if r["verdict"] != "certified":
            continue
        if "lineage_sweeps" in r:
            # A row recorded by this script (``--resume-from``): its lineage cost was summed
            # when it was first analysed, over rows that are no longer here.
            rows.append(r)
            continue
        lineage = [q for q in deep["rows"] if q["lineage"] == r["lineage"]
                   and q["temperature"] >= r["temperature"]]
        rows.append({**r, "lineage_sweeps": sum(q["sweeps"] for q in lineage),
                     # cost_cpu_seconds: measured, or estimated for a chain resumed after a
                     # kill (see deep_glasses.py)
                     "lineage_cpu_seconds": sum(q.get("cost_cpu_seconds", q["cpu_seconds"])
                                                for q in lineage)})
    return {"rows": rows, "stop": deep.get("stop")}


def resume_from(record: str, output: str) -> str:
    """Seed ``output`` from a recorded ``results.json`` of this script, so that a study can
    be extended (a slower rate, more quenches) without redoing what it measured.

    The quench and equilibrium rows go to the JSON-lines files (rows already there are
    kept and win: a quench is identified by its duration and index), the certified swap
    glasses with their lineage costs to ``OUTPUT/deep_recorded.json``. Returns that path,
    to be used as ``--deep``."""
    try:
        with open(record) as fh:
            rec = json.load(fh)
        quenches = rec["quenches"] + rec.get("short_start_checks", [])
        extra, deep_rows = rec["equilibrium_extra"], rec["deep_rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--resume-from {record}: not a results.json of this script "
                         f"({exc})") from None
    qpath = os.path.join(output, "quenches.jsonl")
    epath = os.path.join(output, "equilibrium.jsonl")
    have_q = {(r["duration"], r["index"]) for r in read_jsonl(qpath)}
    have_e = {(r["temperature"], r["index"]) for r in read_jsonl(epath)}
    for r in quenches:
        if (r["duration"], r["index"]) not in have_q:
            append_jsonl(qpath, r)
    for r in extra:
        if (r["temperature"], r["index"]) not in have_e:
            append_jsonl(epath, r)
    deep_path = os.path.join(output, "deep_recorded.json")
    with atomic_write(deep_path) as fh:
        json.dump({"rows": deep_rows, "stop": rec.get("deep_stop")}, fh)
    return deep_path


def fmt_factor(x: float, err: float) -> str:
    """10^x with its 68 % interval 10^(x -+ err)."""
    if not np.isfinite(x):
        return "unreachable by the law"
    if not np.isfinite(err):
        return f"{10 ** x:.3g}"
    return f"{10 ** x:.3g} [{10 ** (x - err):.2g}, {10 ** (x + err):.2g}]"


def analyse(args) -> dict:
    qrows = read_jsonl(os.path.join(args.output, "quenches.jsonl"))
    erows = read_jsonl(os.path.join(args.output, "equilibrium.jsonl"))
    deep = load_deep(args.deep)
    if not qrows:
        raise SystemExit("no quench recorded yet")
    unconverged = [r for r in qrows if not r["converged"]]
    if unconverged:
        print(f"warning: {len(unconverged)} quench(es) whose FIRE did not converge")
    for r in qrows:
        r.setdefault("t_from", args.t_start)
        r.setdefault("sweeps", r["duration"])
    checks = [r for r in qrows if r["index"] >= 200]
    qrows = [r for r in qrows if r["index"] < 200]
    by_rate = stability.group_mean_sem([r["duration"] for r in qrows],
                                       [r["is_energy"] for r in qrows])
    span = args.t_start - args.t_end
    u = UNITS[args.units]
    print(f"\n# Plain-MC quenches, linear in T down to {args.t_end:g} (fixed delta = "
          f"{args.delta:g} {u['L']}), then FIRE; {args.preset}, N = {args.n}"
          f"{pressure_text(args, ', NPT at P = ')}. Rate in "
          f"{u['T']} per sweep (a 'duration' names the rate: the sweeps of a full ramp from "
          f"{args.t_start:g}); E in {u['E']} per particle, +- standard error over quenches (a "
          f"single quench gets the pooled scatter of the others)")
    print(f"{'duration':>9s} {'rate':>9s} {'from T':>6s} {'sweeps':>8s} {'n':>2s} "
          f"{'<E_IS/N>':>20s} {'CPU s/quench':>12s}")
    cpu = {d: np.mean([r["cpu_seconds"] for r in qrows if r["duration"] == d])
           for d, *_ in by_rate}
    for d, n, m, se in by_rate:
        same = [r for r in qrows if r["duration"] == d]
        froms = "/".join(f"{t:g}" for t in sorted({r["t_from"] for r in same}))
        print(f"{d:9d} {span / d:9.2e} {froms:>6s} {same[0]['sweeps']:8d} {n:2d} "
              f"{m:11.5f} ± {se:.5f} {cpu[d]:12.0f}")
    check_out = None
    if checks:
        d = checks[0]["duration"]
        full = np.array([r["is_energy"] for r in qrows if r["duration"] == d])
        short = np.array([r["is_energy"] for r in checks])
        if len(full) > 1 and len(short) > 1:
            diff = short.mean() - full.mean()
            se = np.sqrt(full.var(ddof=1) / len(full) + short.var(ddof=1) / len(short))
            check_out = {"duration": d, "t_from": checks[0]["t_from"],
                         "full_mean": float(full.mean()), "short_mean": float(short.mean()),
                         "difference": float(diff), "difference_se": float(se)}
            print(f"check at rate {span / d:.2e}: from T = {checks[0]['t_from']:g} "
                  f"E_IS/N = {short.mean():.5f} ({len(short)}) against the full ramp "
                  f"{full.mean():.5f} ({len(full)}): difference {diff:+.5f} ± {se:.5f}")
    liquid = np.array([r["liquid_is_energy"] for r in qrows])
    print(f"liquid at T = {args.t_start:g} (swap-equilibrated): E_IS/N = {liquid.mean():.5f} ± "
          f"{liquid.std(ddof=1) / np.sqrt(len(liquid)):.5f} ({len(liquid)} liquids)")

    # The fits take every quench as one point with a common, unknown scatter (ordinary least
    # squares; the scatter of E_IS/N between N = 500 glasses does not depend much on the rate)
    # rather than group means, so that a rate with a single quench needs no borrowed error.
    fit_rows = [r for r in qrows if r["duration"] >= args.fit_min_duration]
    rates = np.array([r["rate"] for r in fit_rows])
    e_rate = np.array([r["is_energy"] for r in fit_rows])
    n_rates = len(set(rates.tolist()))
    fits = {}
    for model in ("log", "vft"):
        if model == "vft" and n_rates < 4:
            # Three parameters need at least one degree of freedom left among the rates.
            print(f"vft fit skipped: {n_rates} rates (< 4)")
            continue
        try:
            fits[model] = stability.fit_rate_law(rates, e_rate, None, model=model)
        except ValueError as exc:
            print(f"{model} fit not possible: {exc}")
    print(f"\n# Fits of E_IS/N(rate) to the {len(fit_rows)} quenches of durations >= "
          f"{args.fit_min_duration} sweeps ({n_rates} rates), ordinary least squares; one "
          f"standard error; residual s.d. = scatter of one glass about the law")
    for model, f in fits.items():
        law = ("E = c0 + c1 log10 r" if model == "log"
               else "E = E0 + B / (L0 - log10 r)")
        pars = ", ".join(f"{k} = {v:.5g} ± {f.errors[k]:.2g}" for k, v in f.params.items())
        resid = np.sqrt(f.chi2 / f.dof) if f.dof > 0 else float("nan")
        print(f"{model:4s} {law}: {pars}; residual s.d. {resid:.4f}, dof = {f.dof}")

    # Equilibrium E_IS(T): certified swap glasses + swap-equilibrated extra points.
    eq_points = [(r["temperature"], r["is_energy"], "certified library glass")
                 for r in deep["rows"]]
    eq_points += [(r["temperature"], r["is_energy"], "swap MC (not certified)") for r in erows]
    # The liquids the shortened quenches start from are swap-MC equilibrium states too.
    eq_points += [(r["t_from"], r["liquid_is_energy"], "swap MC (not certified)")
                  for r in qrows + checks if r["t_from"] != args.t_start]
    eqfit = None
    print(f"\n# Equilibrium inherent-structure energies (swap MC), +- standard error over "
          f"independent glasses; fit E_IS = a + b/T over T <= {args.eq_fit_tmax:g}")
    if eq_points:
        stats_t = stability.group_mean_sem([p[0] for p in eq_points],
                                           [p[1] for p in eq_points])
        for t, n, m, se in stats_t:
            src = sorted({p[2] for p in eq_points if p[0] == t})
            print(f"T = {t:5.4g}: E_IS/N = {m:.5f} ± {se:.5f} ({n} glasses; {', '.join(src)})")
        sel = [(t, e) for t, e, _ in eq_points if t <= args.eq_fit_tmax]
        if len({t for t, _ in sel}) >= 2 and len(sel) >= 3:
            # One point per glass, common unknown scatter (as for the rate fits).
            eqfit = stability.fit_equilibrium_eis(*map(np.array, zip(*sel)))
            resid = np.sqrt(eqfit.chi2 / eqfit.dof) if eqfit.dof > 0 else float("nan")
            print(f"a = {eqfit.a:.5f} ± {np.sqrt(eqfit.cov[0, 0]):.5f}, b = {eqfit.b:.5f} ± "
                  f"{np.sqrt(eqfit.cov[1, 1]):.5f} ({len(sel)} glasses, residual s.d. "
                  f"{resid:.4f})")
    # Scatter of one glass's E_IS/N: pooled over the quench rates (used for the error of a
    # parent temperature with a single glass).
    sd_glass = float(np.sqrt(np.mean([se**2 * n for _, n, _, se in by_rate if n > 1])))
    print(f"scatter of E_IS/N between glasses (pooled over quench rates): {sd_glass:.4f}")

    out = {"quenches": qrows, "short_start_checks": checks, "equilibrium_extra": erows,
           "equilibrium_points": [{"temperature": t, "is_energy": e, "source": src}
                                  for t, e, src in eq_points],
           "deep_rows": deep["rows"],
           "by_duration": [{"duration": d, "rate": span / d, "n": n, "is_energy_mean": m,
                            "is_energy_sem": se, "cpu_seconds_mean": float(cpu[d])}
                           for d, n, m, se in by_rate],
           "fits": {k: f.as_dict() for k, f in fits.items()},
           "equilibrium_fit": eqfit.as_dict() if eqfit else None,
           "short_start_check": check_out, "fit_min_duration": args.fit_min_duration,
           "t_start": args.t_start, "t_end": args.t_end, "delta": args.delta, "n": args.n,
           "preset": args.preset, "units": args.units}

    if eqfit is not None:
        print("\n# Fictive temperature T_f (equilibrium E_IS(T_f) = glass E_IS; +- from the "
              "quench scatter and the fit)")
        out["fictive_quench"] = []
        for d, _n, m, se in by_rate:
            tf, tfe = eqfit.fictive_temperature(m, se)
            extrap = "" if eqfit.t_range[0] <= tf <= eqfit.t_range[1] else \
                " (outside the fitted T range)"
            print(f"quench {d:>8d} sweeps: T_f = {tf:.4f} ± {tfe:.4f}{extrap}")
            out["fictive_quench"].append({"duration": d, "t_f": tf, "t_f_err": tfe})
        out["fictive_swap"] = []
        for r in deep["rows"]:
            tf, tfe = eqfit.fictive_temperature(r["is_energy"])
            out["fictive_swap"].append({"temperature": r["temperature"],
                                        "lineage": r["lineage"], "t_f": tf, "t_f_err": tfe})
            print(f"swap glass T = {r['temperature']:g} lineage {r['lineage']}: E_IS/N "
                  f"{r['is_energy']:.5f} -> T_f = {tf:.4f} ± {tfe:.4f} (fit error only)")

    # Equivalent cooling rates of the swap parent temperatures.
    slowest = max(d for d, *_ in by_rate)
    r_slow = span / slowest
    out["equivalent"] = []
    if deep["rows"] and fits:
        print(f"\n# EXTRAPOLATION: equivalent cooling rate of each swap parent T, as the factor "
              f"by which a plain-MC quench would have to be slower than the slowest run here "
              f"({slowest} sweeps, r = {r_slow:.2e}); central value [68 % interval] from the "
              f"fit covariance and the standard error of <E_IS/N> over glasses (a single "
              f"glass: the pooled scatter of one glass)")
        stats_swap = stability.group_mean_sem([r["temperature"] for r in deep["rows"]],
                                              [r["is_energy"] for r in deep["rows"]])
        for t, n, m, se in sorted(stats_swap, reverse=True):
            if n == 1:
                se = sd_glass  # one glass: its error is the scatter of one glass
            same = [r for r in deep["rows"] if r["temperature"] == t]
            cost = float(np.mean([r["lineage_sweeps"] for r in same]))
            cost_cpu = float(np.mean([r["lineage_cpu_seconds"] for r in same]))
            row = {"temperature": t, "n": n, "is_energy_mean": m, "is_energy_sem": se,
                   "lineage_sweeps": cost, "lineage_cpu_seconds": cost_cpu}
            print(f"parent T = {t:g} ({n} glasses, <E_IS/N> = {m:.5f} ± {se:.5f}; made in "
                  f"{cost:.3g} sweeps, {cost_cpu / 60:.1f} CPU-min from the melt):")
            for model, f in fits.items():
                x, xe = f.log10_rate_at(m, se)
                factor = np.log10(r_slow) - x
                row[model] = {"log10_rate": x, "log10_rate_err": xe,
                              "log10_factor": factor, "log10_factor_err": xe}
                # A conventional quench costing the same sweeps as this glass's lineage.
                r_same = span / cost
                e_same = float(f.energy(r_same))
                e_same_err = float(f.energy_error(r_same)[0])
                row[model]["same_cost_is_energy"] = e_same
                row[model]["same_cost_is_energy_err"] = e_same_err
                tf = eqfit.fictive_temperature(e_same, e_same_err) if eqfit else (None, None)
                row[model]["same_cost_t_f"], row[model]["same_cost_t_f_err"] = tf
                tf_txt = f", T_f = {tf[0]:.3f} ± {tf[1]:.3f}" if eqfit else ""
                print(f"  {model:4s}: {fmt_factor(factor, xe)} times slower "
                      f"(r_eq = 10^({x:.2f} ± {xe:.2f})); a plain-MC quench of the same "
                      f"{cost:.3g} sweeps would reach E_IS/N = {e_same:.4f} ± "
                      f"{e_same_err:.4f}{tf_txt}")
            out["equivalent"].append(row)
    out["deep_stop"] = deep["stop"]
    with atomic_write(os.path.join(args.output, "results.json")) as fh:
        json.dump(out, fh, indent=1)
    figure(args, out, fits, eqfit)
    return out


def figure(args, out, fits, eqfit) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib not installed: no figure")
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5),
                                 gridspec_kw={"width_ratios": [1.5, 1]})
    rates = np.array([b["rate"] for b in out["by_duration"]])
    ax.errorbar(rates, [b["is_energy_mean"] for b in out["by_duration"]],
                [b["is_energy_sem"] for b in out["by_duration"]], fmt="ko", ms=5,
                label="plain-MC quench + FIRE (mean ± s.e.)", zorder=5)
    for q in out["quenches"]:
        ax.plot(q["rate"], q["is_energy"], ".", color="0.6", ms=4, zorder=4)
    lo = min(rates.min(), min((10 ** e["log"]["log10_rate"] for e in out["equivalent"]
                               if "log" in e and np.isfinite(e["log"]["log10_rate"])),
                              default=rates.min())) / 3
    grid = np.logspace(np.log10(lo), np.log10(rates.max()), 200)
    styles = {"log": ("C0", "-", "E = c0 + c1 log10 r"),
              "vft": ("C3", "--", "E = E0 + B/(L0 - log10 r)")}
    fit_lo = 10 ** min(f.log10_rate_range[0] for f in fits.values()) if fits else lo
    for model, f in fits.items():
        color, ls, label = styles[model]
        # Drawn over the fitted rates and, as an extrapolation, below them; not above.
        g = grid[grid <= 10 ** f.log10_rate_range[1] * 1.0001]
        e = f.energy(g)
        ax.plot(g, e, ls, color=color, lw=1.2, label=f"fit: {label}")
        if model == "log":
            err = f.energy_error(g)
            ax.fill_between(g, e - err, e + err, color=color, alpha=0.15, lw=0,
                            label="fit ± 1 s.e.")
    ax.axvspan(grid[0], fit_lo, color="0.9", zorder=0)
    ax.text(grid[0] * 1.3, ax.get_ylim()[0], "extrapolation", va="bottom", fontsize=8)
    swap = out["equivalent"]
    for k, e in enumerate(swap):
        c = f"C{(k + 2) % 10}"
        ax.axhspan(e["is_energy_mean"] - (e["is_energy_sem"] or 0),
                   e["is_energy_mean"] + (e["is_energy_sem"] or 0), color=c, alpha=0.3)
        ax.axhline(e["is_energy_mean"], color=c, lw=1,
                   label=f"swap MC, parent T = {e['temperature']:g} ({e['n']} "
                         f"glass{'es' if e['n'] > 1 else ''}, ± 1 s.e.)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    u = UNITS[args.units]
    ax.set_xlabel(f"cooling rate r [{u['T']} per MC sweep]")
    ax.set_ylabel(f"inherent-structure energy E_IS/N [{u['E']}]")
    ax.set_title(f"{args.preset}, N = {out['n']}"
                 f"{pressure_text(args, ', P = ')}",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    # Right: equilibrium E_IS(T) and the quench glasses at their fictive temperatures.
    for source, marker, label in (
            ("certified library glass", "s", "swap MC, certified library glasses"),
            ("swap MC (not certified)", "^", "swap MC liquids (not certified)")):
        eq = [(p["temperature"], p["is_energy"]) for p in out["equilibrium_points"]
              if p["source"] == source]
        if eq:
            t, e = map(np.array, zip(*eq))
            bx.plot(1 / t, e, marker, color="C2", ms=7, zorder=6, label=label)
    if eqfit is not None:
        lo_t, hi_t = eqfit.t_range
        tt = np.linspace(0.9 * lo_t, 1.15 * hi_t, 100)
        bx.plot(1 / tt, eqfit.energy(tt), "k-", lw=1, label="fit a + b/T")
        for qf, b in zip(out.get("fictive_quench", []), out["by_duration"]):
            if np.isfinite(qf["t_f"]):
                bx.errorbar(1 / qf["t_f"], b["is_energy_mean"],
                            xerr=qf["t_f_err"] / qf["t_f"] ** 2, yerr=b["is_energy_sem"],
                            fmt="o", color="0.4", mfc="none", ms=9, zorder=4)
        bx.plot([], [], "o", color="0.4", mfc="none", ms=9,
                label="plain-MC quenches at their T_f (mean per rate)")
    bx.set_xlabel(f"1 / T (parent or fictive) [1/({u['T']})]")
    bx.set_ylabel(f"E_IS/N [{u['E']}]")
    bx.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(args.output, "equivalent_cooling_rate.png")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="cooling")
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--preset", default=PRESET,
                    help=f"built-in preset (default {PRESET}); NPT presets are quenched at "
                         f"their pressure")
    lj, metal = DEFAULTS["lj"], DEFAULTS["metal"]

    def dflt(key):
        return f"(default {lj[key]} in LJ units, {metal[key]} in metal units)"

    ap.add_argument("--durations", type=int, nargs="+",
                    help=f"quench lengths (sweeps) {dflt('durations')}")
    ap.add_argument("--quenches", type=int, nargs="+",
                    help=f"independent quenches per duration {dflt('quenches')}")
    ap.add_argument("--t-melt", type=float, help=f"melt temperature {dflt('t_melt')}")
    ap.add_argument("--t-start", type=float, help=f"top of the ramp {dflt('t_start')}")
    ap.add_argument("--t-end", type=float, help=f"bottom of the ramp {dflt('t_end')}")
    ap.add_argument("--short-start", type=lambda x: "none" if x.lower() == "none" else float(x),
                    help="slow quenches start from a swap-MC liquid equilibrated here and "
                         "cool at the same rate (the part of the ramp above it is spent in "
                         f"equilibrium); 'none' for full ramps only {dflt('short_start')}")
    ap.add_argument("--short-start-from", type=int, default=100_000,
                    help="durations (sweeps of the full ramp) from which --short-start applies")
    ap.add_argument("--short-check-duration", type=int, default=10_000,
                    help="a (faster) rate at which quenches are run both ways, to check that "
                         "starting at --short-start changes nothing (0: no check)")
    ap.add_argument("--short-check-count", type=int, default=3)
    ap.add_argument("--delta", type=float,
                    help=f"fixed maximum displacement of the plain MC (sigma_AA or Angstrom) "
                         f"{dflt('delta')}")
    ap.add_argument("--liquid-sweeps", type=int, default=3000,
                    help="swap-MC equilibration of each starting liquid at t-start")
    ap.add_argument("--eq-temperatures", type=float, nargs="*",
                    help=f"extra swap-MC equilibrium E_IS points for the E_IS(T) curve "
                         f"{dflt('eq_temperatures')}")
    ap.add_argument("--eq-samples", type=int, default=3)
    ap.add_argument("--eq-sweeps", type=int, default=6000,
                    help="swap-MC sweeps per extra equilibrium T (equilibration, then as "
                         "many again before the quench)")
    ap.add_argument("--deep", help="results.json of scripts/deep_glasses.py")
    ap.add_argument("--resume-from", metavar="RESULTS_JSON",
                    help="extend a recorded study: seed OUTPUT with the quenches, "
                         "equilibrium points and swap glasses of this script's results.json "
                         "(e.g. docs/cooling_rate_output.json), then run what is missing")
    ap.add_argument("--eq-fit-tmax", type=float,
                    help=f"fit E_IS = a + b/T to equilibrium points at T <= this "
                         f"{dflt('eq_fit_tmax')}")
    ap.add_argument("--fit-min-duration", type=int, default=0,
                    help="leave quenches shorter than this out of the rate fits")
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny everything (smoke test)")
    args = ap.parse_args(argv)
    try:
        preset = load_preset(args.preset)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"--preset: {exc.args[0]}") from None
    args.units = preset.model.units
    args.pressure = preset.pressure
    given_plan = (args.durations, args.quenches)
    for key, value in DEFAULTS[args.units].items():
        if getattr(args, key, None) is None and key != "min_distance":
            setattr(args, key, value)
    if args.short_start == "none":
        args.short_start = None
    if args.quick and args.units == "metal":
        args.short_start, args.short_start_from = 1200.0, 300
        args.short_check_duration, args.short_check_count = 100, 2
        args.n, args.durations, args.quenches = 256, [50, 100, 300], [2, 2, 2]
        args.t_start, args.t_end = 1500.0, 700.0
        args.liquid_sweeps, args.eq_temperatures, args.eq_samples = 200, [1300.0], 2
        args.eq_sweeps, args.eq_fit_tmax = 200, 1300.0
    elif args.quick:
        args.short_start, args.short_start_from = 0.8, 1000
        args.short_check_duration, args.short_check_count = 300, 2
        args.n, args.durations, args.quenches = 200, [100, 300, 1000], [2, 2, 2]
        args.liquid_sweeps, args.eq_temperatures, args.eq_samples = 300, [0.8], 2
        args.eq_sweeps = 300
    if args.quick and given_plan[0] is not None:
        # An explicit plan wins over the quick one (extending a quick study).
        args.durations = given_plan[0]
        args.quenches = given_plan[1] if given_plan[1] is not None else [2] * len(given_plan[0])
    if len(args.durations) != len(args.quenches):
        raise SystemExit("--quenches needs one count per --durations entry")
    os.makedirs(args.output, exist_ok=True)
    if args.resume_from:
        recorded = resume_from(args.resume_from, args.output)
        args.deep = args.deep or recorded
    if not args.analyze_only:
        run_measurements(args)
    analyse(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
