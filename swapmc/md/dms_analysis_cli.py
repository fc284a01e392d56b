"""``swapmc dms-analyze DIR``: the analysis of a finished or partial ``swapmc dms`` scan
(:mod:`swapmc.md.dms_analysis`) as a printed table, CSV/JSON files and figures.

Writes into ``--output`` (default ``DIR/analysis``): ``analysis.json`` (everything),
``shift_factors.csv``, ``spectrum_fits.csv``, ``beta.csv``, ``peaks.csv`` and, with
matplotlib, ``master_curve.png``, ``arrhenius_peaks.png``, ``beta_isochronal.png``,
``beta_isothermal.png`` (each when its section ran).
"""

from __future__ import annotations

import math
import os

from .cli import _pyplot, _write_csv, _write_json

# The parser is built at every start-up of `swapmc`, and the modules that define these lists
# (md.dms_analysis.SECTIONS, analysis.loss_models.FAST_TERMS) load scipy.optimize and
# scipy.stats (~1.3 s); tests/test_cli_startup.py checks that the copies agree.
ANALYSIS_SECTIONS = ("peaks", "master", "fits", "beta")
FAST_TERM_CHOICES = ("none", "viscous", "power")

__all__ = ["add_parser", "cmd_dms_analyze"]


def _temp_unit(units):
    return "K" if units == "metal" else "epsilon/k_B"


def _fmt(v, e=None, f=".4g"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if e is None or not math.isfinite(e):
        return f"{v:{f}}"
    return f"{v:{f}} +- {e:.2g}"


def _clean(obj):
    """Drop the private ``_fit`` objects from nested dicts (JSON output)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def _fit_line(name, fit):
    if "error" in fit:
        return f"{name}: failed ({fit['error']})"
    p, e = fit["params"], fit["errors"]
    shape = (f"alpha = {_fmt(p['alpha'], e['alpha'], '.3g')}, gamma = "
             f"{_fmt(p['gamma'], e['gamma'], '.3g')}" if "alpha" in p else
             f"beta = {_fmt(p['beta'], e['beta'], '.3g')}")
    if "fast_amplitude" in p:
        a = p.get("fast_exponent", 1.0)
        shape += (f", fast term A (i omega)^a: A = "
                  f"{_fmt(p['fast_amplitude'], e['fast_amplitude'], '.3g')}, a = "
                  + (_fmt(a, e['fast_exponent'], '.3g') if "fast_exponent" in p else "1"))
    flags = fit["flags"]
    note = []
    if flags["unconstrained"]:
        note.append("unconstrained: " + ", ".join(flags["unconstrained"]))
    if flags["degenerate"]:
        note.append("degenerate: " + ", ".join(f"{a}/{b} (r = {r:.3f})"
                                                for a, b, r in flags["degenerate"]))
    return (f"{name}: tau = {_fmt(p['tau'], e['tau'])}, {shape}, Delta_M = "
            f"{_fmt(p['delta_modulus'], e['delta_modulus'])}, chi2/dof = "
            f"{fit['chi2']:.3g}/{fit['dof']}" + (f"; {'; '.join(note)}" if note else ""))


def cmd_dms_analyze(args) -> int:
    """``swapmc dms-analyze``: analyse a scan directory (module docstring)."""
    from ..plotting import (
        beta_isochronal_figure,
        beta_isothermal_figure,
        master_curve_figure,
        peak_arrhenius_figure,
        save_figures,
    )
    from .dms_analysis import analyze, read_scan
    from .protocols import MODULUS_NAME, STRESS_UNIT, TIME_UNIT

    for name, v in (("--p-max", args.p_max), ("--flank-fraction", args.flank_fraction)):
        if not (math.isfinite(v) and 0 < v <= 1):
            raise ValueError(f"{name} must lie in (0, 1], got {v:g}")
    if args.tg is not None and not (math.isfinite(args.tg) and args.tg > 0):
        raise ValueError(f"--tg must be > 0, got {args.tg:g}")
    if not (math.isfinite(args.tg_err) and args.tg_err >= 0):
        raise ValueError(f"--tg-err must be >= 0, got {args.tg_err:g}")
    sections = None if args.sections is None else [
        s.strip() for s in args.sections.split(",") if s.strip()]
    data = read_scan(args.directory, min_samples=args.min_samples)
    res = analyze(data, sections=sections, quantity=args.quantity,
                  isochronal_quantity=args.isochronal_quantity, alpha_model=args.alpha_model,
                  alpha_form=args.alpha_form, p_max=args.p_max,
                  flank_fraction=args.flank_fraction, mc_scale=args.mc_scale,
                  reference=args.reference, tg=args.tg, tg_err=args.tg_err,
                  fast=args.fast_term)
    out = args.output or os.path.join(args.directory, "analysis")
    os.makedirs(out, exist_ok=True)
    su, tu, temp_u = STRESS_UNIT[data.units], TIME_UNIT[data.units], _temp_unit(data.units)
    n_s = sorted(set(data.counts.values()))
    print(f"DMS scan {data.directory}: {data.n_files} point files, {len(data.rows)} (T, omega) "
          f"rows used ({len(data.temperatures)} T x {len(data.omegas)} omega), samples per "
          f"point {', '.join(map(str, n_s))}; {MODULUS_NAME[data.mode]} in {su}, T in "
          f"{temp_u}, omega in rad/{tu}")
    if data.dropped:
        print(f"  left out ({len(data.dropped)} with fewer than {data.min_samples} samples): "
              + ", ".join(f"T={t:g} period={p:.4g} ({n})" for t, p, n in data.dropped))
    print("+- : 68 % intervals; point errors "
          + ("over glasses" if data.min_samples >= 2 else
             "over the cycles of one glass (glass-to-glass scatter not included)"))
    for sec, why in res["skipped"].items():
        print(f"{sec}: not done ({why})")
    json_out = {"directory": data.directory, "units": data.units, "mode": data.mode,
                "stress_unit": su, "time_unit": tu, "temperature_unit": temp_u,
                "n_files": data.n_files, "min_samples": data.min_samples,
                "dropped": data.dropped, "quantity": args.quantity,
                "isochronal_quantity": args.isochronal_quantity,
                "rows": [r.as_dict() for r in data.rows], "skipped": res["skipped"]}
    figures = {}

    # ---- master curve
    shift_rows = []
    if "master" in res:
        m = res["master"]
        mc = m["master_curve"]
        laws = {k: v for k, v in m["laws"].items() if not isinstance(v, str)}
        print(f"master curve of {args.quantity} ({m['scale']} scale, spline knots every "
              f"{m['knot_spacing']:.3g} in ln omega), T_ref = {mc.reference:g}; chi2/dof = "
              f"{mc.chi2:.3g}/{mc.dof}")
        for w in m["warnings"]:
            print(f"  warning: {w}")
        print(f"  {'T':>10s} {'ln a_T':>10s} {'+-':>8s}")
        for c, t in enumerate(mc.temperatures):
            err = mc.ln_a_err[c]
            row = [float(t), float(mc.ln_a[c]), float(err) if math.isfinite(err) else math.nan]
            for law in ("arrhenius", "vft"):
                if law in laws:
                    v, e = laws[law].ln_a(t)
                    row += [float(v), float(e)]
                else:
                    row += [math.nan, math.nan]
            shift_rows.append(row)
            note = " (reference)" if t == mc.reference else (
                " (at its bound: unconstrained)" if f"ln_a[{c}]" in mc.at_bound else "")
            print(f"  {t:10.5g} {mc.ln_a[c]:10.4g} {err:8.2g}{note}")
        for law, fit in m["laws"].items():
            if isinstance(fit, str):
                print(f"  {law} law of a_T: not fitted ({fit})")
                continue
            pars = ", ".join(f"{k} = {_fmt(v, fit.errors[k])}" for k, v in fit.params.items())
            label = "E" if law == "arrhenius" else "apparent E at T_ref"
            print(f"  {law} law of a_T: {pars}; {label} = "
                  f"{_fmt(fit.energy, fit.energy_err)} {fit.energy_unit}; chi2/dof = "
                  f"{fit.chi2:.3g}/{fit.dof}"
                  + (f" (p = {fit.p_value:.2g})" if math.isfinite(fit.p_value) else "")
                  + (f"; at bound: {', '.join(fit.at_bound)}" if fit.at_bound else ""))
        for name, fit in m["fits"].items():
            print("  master curve " + _fit_line(name, fit) + f" (tau at T_ref, {tu})")
        if "fits_skipped" in m:
            print(f"  master-curve fits: not done ({m['fits_skipped']})")
        json_out["master"] = {"master_curve": mc.as_dict(), "scale": m["scale"],
                              "knot_spacing": m["knot_spacing"],
                              "warnings": m["warnings"],
                              "laws": {k: (v if isinstance(v, str) else v.as_dict())
                                       for k, v in m["laws"].items()},
                              "fits": _clean(m["fits"]),
                              "fits_skipped": m.get("fits_skipped")}
        _write_csv(os.path.join(out, "shift_factors.csv"),
                   ["temperature", "ln_a", "ln_a_err", "ln_a_arrhenius",
                    "ln_a_arrhenius_err", "ln_a_vft", "ln_a_vft_err"], shift_rows)
        figures["master_curve.png"] = lambda: master_curve_figure(
            mc, laws, quantity=args.quantity, stress_unit=su, time_unit=tu,
            temperature_unit=temp_u, modulus=MODULUS_NAME[data.mode])

    # ---- spectrum fits
    fit_rows = []
    if "fits" in res:
        print(f"spectrum fits of M' and M'' (tau in {tu}, moduli in {su})")
        for item in res["fits"]:
            for name in ("havriliak_negami", "kww"):
                print(f"  T = {item['temperature']:g}: " + _fit_line(name, item[name]))
                fit_rows += _fit_csv_rows(item["temperature"], name, item[name])
        json_out["fits"] = _clean(res["fits"])
    if "master" in res:
        for name, fit in res["master"]["fits"].items():
            fit_rows += _fit_csv_rows("master", name, fit)
    if fit_rows:
        _write_csv(os.path.join(out, "spectrum_fits.csv"),
                   ["temperature", "model", "parameter", "value", "error", "flag"], fit_rows)

    # ---- peaks
    if "peaks" in res:
        pk = res["peaks"]
        rows = []
        print(f"loss peaks of {args.quantity} (isothermal: ln omega_p; isochronal: T_p)")
        for kind, plist in (("isothermal", pk["isothermal"]), ("isochronal", pk["isochronal"])):
            for p in plist:
                where = (f"T = {p.fixed:g}" if kind == "isothermal" else
                         f"omega = {p.fixed:.4g}")
                print(f"  {kind:10s} {where:18s} " + (
                    f"peak at {_fmt(p.position, p.position_err)}" if p.found else
                    f"no peak: {p.reason}"))
                rows.append([kind, p.fixed, p.found, p.position, p.position_err, p.reason])
        fit = pk["arrhenius"]
        if fit is None:
            print(f"  Arrhenius fit: none ({pk['arrhenius_error']})")
        else:
            print(f"  Arrhenius fit of {fit.n_points} peaks: E = "
                  f"{_fmt(fit.energy, fit.energy_err)} {fit.energy_unit}, ln omega_0 = "
                  f"{_fmt(fit.ln_omega0, fit.ln_omega0_err)}"
                  + (f", E/(R T_g) = {_fmt(fit.ratio, fit.ratio_err)}"
                     if math.isfinite(fit.ratio) else ""))
        _write_csv(os.path.join(out, "peaks.csv"),
                   ["scan", "fixed", "found", "position", "position_err", "reason"], rows)
        json_out["peaks"] = {
            "isothermal": [p.as_dict() for p in pk["isothermal"]],
            "isochronal": [p.as_dict() for p in pk["isochronal"]],
            "arrhenius": fit.as_dict() if fit is not None else None,
            "arrhenius_error": pk["arrhenius_error"], "failed": pk["failed"]}
        found = [p for p in pk["isothermal"] + pk["isochronal"] if p.found]
        if found:
            figures["arrhenius_peaks.png"] = lambda: peak_arrhenius_figure(
                pk["isothermal"] + pk["isochronal"], pk["arrhenius"], time_unit=tu,
                temperature_unit=temp_u)

    # ---- beta
    if "beta" in res:
        b = res["beta"]
        beta_rows = []
        print(f"beta relaxation test (F test p < {args.p_max:g} and amplitude >= 2 errors; "
              f"isothermal: {args.quantity}, {args.alpha_model} alpha + Cole-Cole beta, "
              f"position ln omega_b; isochronal: {args.isochronal_quantity}, "
              f"{args.alpha_form} alpha flank + symmetric peak in 1/T, position T_b)")
        for kind, feats in (("isothermal", b["isothermal"]), ("isochronal", b["isochronal"])):
            for f in feats:
                where = (f"T = {f.fixed:g}" if kind == "isothermal" else
                         f"omega = {f.fixed:.4g}")
                pos = _fmt(f.position, f.position_err)
                extra = (f"; wing slope {_fmt(f.wing_slope, f.wing_slope_err, '.3g')} vs "
                         f"alpha {_fmt(f.alpha_slope, f.alpha_slope_err, '.3g')}"
                         if f.kind == "wing" else "")
                print(f"  {kind:10s} {where:18s} {f.kind:8s} "
                      + (f"at {pos}" if f.found else f"(best term at {pos})")
                      + f", p = {f.p_value:.2g}{extra}"
                      + (f"; {f.reason}" if f.reason else ""))
                beta_rows.append([kind, f.fixed, f.kind, f.position, f.position_err,
                                  f.amplitude, f.amplitude_err, f.width, f.width_err,
                                  f.f_stat, f.p_value, f.wing_slope, f.wing_slope_err,
                                  f.alpha_slope, f.alpha_slope_err, f.reason])
        for s in b["skipped"]:
            print(f"  not tested: {s}")
        _write_csv(os.path.join(out, "beta.csv"),
                   ["scan", "fixed", "kind", "position", "position_err", "amplitude",
                    "amplitude_err", "width", "width_err", "f_stat", "p_value", "wing_slope",
                    "wing_slope_err", "alpha_slope", "alpha_slope_err", "reason"], beta_rows)
        json_out["beta"] = {"isothermal": [f.as_dict() for f in b["isothermal"]],
                            "isochronal": [f.as_dict() for f in b["isochronal"]],
                            "skipped": b["skipped"]}
        if b["isochronal"]:
            figures["beta_isochronal.png"] = lambda: beta_isochronal_figure(
                data.rows, b["isochronal"], quantity=args.isochronal_quantity,
                stress_unit=su, time_unit=tu, temperature_unit=temp_u)
        if b["isothermal"]:
            figures["beta_isothermal.png"] = lambda: beta_isothermal_figure(
                data.rows, b["isothermal"], quantity=args.quantity, stress_unit=su,
                time_unit=tu, temperature_unit=temp_u)
    _write_json(os.path.join(out, "analysis.json"), json_out)
    if figures and _pyplot() is not None:
        save_figures({k: make() for k, make in figures.items()}, out)
    print(f"wrote {out}/")
    return 0


def _fit_csv_rows(temp, model, fit):
    if "error" in fit:
        return [[temp, model, "", math.nan, math.nan, "failed: " + fit["error"]]]
    rows = []
    degenerate = {n for a, b, _ in fit["flags"]["degenerate"] for n in (a, b)}
    for k, v in fit["params"].items():
        flag = ("unconstrained" if k in fit["flags"]["unconstrained"] else
                "fixed" if k in fit.get("fixed", {}) else
                "degenerate" if k in degenerate else "")
        e = fit["errors"].get(k)
        rows.append([temp, model, k, v, math.nan if e is None else e, flag])
    rows.append([temp, model, "chi2", fit["chi2"], math.nan, f"dof {fit['dof']}"])
    return rows


def add_parser(subparsers) -> None:
    """Register ``swapmc dms-analyze``."""
    from ..cli import HelpFormatter

    a = subparsers.add_parser(
        "dms-analyze", formatter_class=HelpFormatter,
        help="master curve, HN/KWW fits, peaks and beta test of a dms scan directory",
        description="Analyse the point files of a finished or partial `swapmc dms` scan: "
        "time-temperature master curve (shift factors a_T with errors, Arrhenius and VFT "
        "laws of a_T), Havriliak-Negami and KWW fits of M' and M'' at each temperature "
        "and of the master curve, loss peaks with their Arrhenius law, and the beta-"
        "relaxation test (alpha alone against alpha + beta, F test). Errors are 68 % "
        "intervals from the errors over glasses. T in epsilon/k_B (LJ) or K (metal), "
        "omega in rad/tau_LJ or rad/ps, moduli in epsilon/sigma^3 or GPa.")
    a.add_argument("directory", help="output directory of swapmc dms (with points/)")
    a.add_argument("-o", "--output", help="where to write (default: DIRECTORY/analysis)")
    a.add_argument("--sections", help=f"comma-separated subset of {','.join(ANALYSIS_SECTIONS)}; "
                   "each must be possible (default: all, each where the data allow)")
    a.add_argument("--quantity", choices=("m_loss", "tan_delta"), default="m_loss",
                   help="loss quantity of the peaks, the master curve and the isothermal "
                   "beta test")
    a.add_argument("--isochronal-quantity", choices=("tan_delta", "m_loss"),
                   default="tan_delta", help="loss quantity of the isochronal beta test")
    a.add_argument("--alpha-model", choices=("kww", "havriliak_negami"), default="kww",
                   help="alpha shape of the isothermal beta test")
    a.add_argument("--alpha-form", choices=("arrhenius", "vft"), default="arrhenius",
                   help="law of tau_alpha(T) on the alpha flank of the isochronal beta test")
    a.add_argument("--p-max", type=float, default=0.01,
                   help="largest nominal F-test p value for a beta term to be kept")
    a.add_argument("--flank-fraction", type=float, default=0.2,
                   help="isochronal beta test: the window ends below this fraction of the "
                   "alpha maximum when it lies inside the scan")
    a.add_argument("--mc-scale", choices=("auto", "log", "linear"), default="auto",
                   help="master curve of ln y or y (auto: log when every value is > 0)")
    a.add_argument("--reference", type=float,
                   help="master-curve reference temperature (default: the median one)")
    a.add_argument("--min-samples", type=int,
                   help="least samples for a (T, period) to be used (default: 2 when any "
                   "has two or more, else 1)")
    a.add_argument("--tg", type=float, help="T_g for E/(R T_g) of the peak Arrhenius fit")
    a.add_argument("--tg-err", type=float, default=0.0, help="68 %% error of --tg")
    a.add_argument("--fast-term", choices=FAST_TERM_CHOICES, default="none",
                   help="add A (i omega)^a to the HN/KWW fits and to the alpha model of the "
                   "isothermal beta test, for a loss that rises again at the highest "
                   "frequencies: viscous (a = 1, A a viscosity in modulus x time unit) or "
                   "power (a fitted in (0, 1]); default none")
    a.set_defaults(func=cmd_dms_analyze)
