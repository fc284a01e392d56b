"""Cu-Zr swap speed-up: no-swap tau_alpha of doped Cu-Zr where the swap tau_alpha is certified.

Model: preset ``cu50zr50-x10`` (Cu50Zr50 doped with X, x_X = 0.10, ZJW EAM), N = 500, NPT at
P = 0 GPa with volume moves, temperatures in K, time in MC sweeps (N attempts). The swap
reference is a certified library sample per temperature (``swapmc library``; built by
``scripts/deep_glasses.py``): its tau_alpha with the jackknife error, its F_s wavenumber q and
tracked species, its CPU seconds per sweep, and its final (equilibrium) configuration.

No-swap run (one ``swapmc run`` per temperature, ``p_swap = 0``, everything else the preset's):
it starts from the certified configuration, an equilibrium state of the same Boltzmann
distribution, tunes the displacement and volume steps for ``--equil-sweeps`` sweeps, freezes
them, then measures F_s with the *same* definition as the swap chain: the library sample's q
(7.25 (rho / 1.2)^(1/3) at the start of its production) and species (Cu), 1/e crossing,
jackknife error (:class:`swapmc.analysis.FsTracker` inside ``swapmc run``). The production
starts at ``--first-production`` sweeps and is extended (the run resumes from its checkpoint)
until it spans ``--window`` x the measured tau_alpha, at most ``--max-sweeps``; if F_s is
still above 1/e there, the result is a lower bound (the longest lag reached).

Speed-up S = tau_noswap / tau_swap with sigma_S / S = sqrt((sigma_n / tau_n)^2 +
(sigma_s / tau_s)^2) (independent chains). CPU seconds per tau_alpha are tau x the process CPU
seconds per sweep of each run (swap: the library chain's, equilibration included; no-swap:
this run's); a sweep is N attempts of any move in both, so a swap sweep holds 0.8 N
displacement attempts. With >= 2 measured no-swap points, a two-point (or weighted
least-squares) Arrhenius law ln tau = ln tau_0 + E_a / (k_B T) is extrapolated to the other
certified temperatures, with the error from the fit covariance only (no model error).

Resuming: each temperature runs in ``<out>/T<T>/``; ``swapmc run`` checkpoints itself and a
rerun of this script continues where a kill left it. ``--report-only`` prints the report from
what is finished.

Usage::

    nice -n 10 python scripts/speedup_cuzr.py --out /tmp/cuzr_speedup -T 1100 1000
    python scripts/speedup_cuzr.py --quick --out /tmp/cuzr_speedup_quick
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys

import numpy as np

PRESET = "cu50zr50-x10"
DEFAULT_LIBRARY = "deep-glasses/glasses.sqlite"  # scripts/deep_glasses.py --preset cu50zr50-x10
#: Quick mode: a short swap chain from a melt at a liquid temperature (K) stands in for the
#: certified reference, so the pipeline runs end to end without a library.
QUICK_T = 1500.0
K_B_EV = 8.617333262e-5  # Boltzmann constant, eV/K


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 1."""


# ----------------------------------------------------------------------------- helpers
def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def write_config(path: str, sections: dict) -> None:
    """Write a ``swapmc run`` config: top-level ``preset`` and one table per section."""
    lines = [f"preset = {_toml_value(PRESET)}"]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    _write_text(path, "\n".join(lines) + "\n")


def swapmc_run(config: str) -> dict:
    """Run (or resume) ``swapmc run config`` in a child process; returns its summary.json."""
    cmd = [sys.executable, "-m", "swapmc", "run", config, "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(os.path.dirname(config), "out", "summary.json")) as fh:
        return json.load(fh)


def fs_lower_bound(fs_csv: str) -> float:
    """Longest lag (sweeps) of fs.csv: tau_alpha exceeds it when F_s stays above 1/e."""
    with open(fs_csv) as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    return float(rows[-1][0])


def ratio_error(a: float, sa: float, b: float, sb: float) -> tuple[float, float]:
    """a / b and its standard error by first-order propagation (independent a, b)."""
    r = a / b
    return r, abs(r) * math.hypot(sa / a, sb / b)


def arrhenius_fit(temps, taus, errs):
    """Weighted least squares of ln tau = c + E / T on (1/T).

    Parameters
    ----------
    temps, taus, errs : array_like, shape (m,), m >= 2
        Temperatures (K), tau_alpha and their standard errors (sweeps).

    Returns
    -------
    (c, E, cov) : float, float, ndarray (2, 2)
        Intercept ln tau_0, slope E = E_a / k_B (K) and their covariance (from the errors of
        ln tau, sigma / tau; exact for m = 2, not rescaled by the residuals).
    """
    x = 1.0 / np.asarray(temps, float)
    y = np.log(np.asarray(taus, float))
    w = (np.asarray(taus, float) / np.asarray(errs, float)) ** 2
    a = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    c, e = cov @ (a.T @ (w * y))
    return float(c), float(e), cov


def arrhenius_predict(c, e, cov, temperature):
    """tau (sweeps) and its standard error at ``temperature`` (K) from :func:`arrhenius_fit`."""
    g = np.array([1.0, 1.0 / temperature])
    ln_tau = c + e / temperature
    return math.exp(ln_tau), math.exp(ln_tau) * math.sqrt(float(g @ cov @ g))


# --------------------------------------------------------------------------- references
def library_references(library: str, out: str, temps) -> dict:
    """Certified swap samples at ``temps`` from a COPY of ``library``; {T: reference dict}."""
    if not os.path.exists(library):
        raise UsageError(f"library {library} does not exist")
    copy = os.path.join(out, "lib.sqlite")
    if not os.path.exists(copy):
        shutil.copyfile(library, copy + ".tmp")
        os.replace(copy + ".tmp", copy)
    con = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT id, temperature, pressure, n, tau_alpha, tau_alpha_stderr, fs_q, fs_species, "
        "sweeps, production_sweeps, cpu_seconds FROM samples WHERE model = ? AND "
        "verdict = 'certified'", (PRESET,)).fetchall()
    con.close()
    refs = {}
    for t in temps:
        hit = [r for r in rows if abs(r[1] - t) < 1e-6]
        if not hit:
            raise UsageError(f"no certified {PRESET} sample at T = {t:g} K in {library}")
        sid, temp, p, n, tau, err, q, species, sweeps, prod, cpu = hit[0]
        export = os.path.join(out, "export")
        xyz = os.path.join(export, f"sample-{sid}-equilibrium.xyz")
        if not os.path.exists(xyz):
            subprocess.run([sys.executable, "-m", "swapmc", "library", "export", copy,
                            "--id", str(sid), "--structure", "equilibrium", "--format",
                            "extxyz", "-o", export], check=True, capture_output=True)
        refs[t] = {"source": f"library sample {sid}", "temperature": temp, "pressure": p,
                   "n": n, "tau": tau, "err": err, "q": q, "species": species,
                   "sweeps": sweeps, "production": prod, "cpu_per_sweep": cpu / sweeps,
                   "structure": xyz}
    return refs


def quick_reference(out: str) -> dict:
    """A short swap chain from a melt at QUICK_T (uncertified); {T: reference dict}."""
    d = os.path.join(out, "swap_quick")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "config.toml")
    write_config(cfg, {
        "state": {"temperature": QUICK_T},
        "system": {"n": 500, "init": "random"},
        "run": {"seed": 7, "equilibration_sweeps": 300, "production_sweeps": 1500},
        "output": {"directory": os.path.join(d, "out"), "thermo_every": 10,
                   "checkpoint_every": 500},
        "diagnostics": {"tau_alpha": True, "fs_every": 5, "fs_species": "Cu"},
    })
    s = swapmc_run(cfg)
    if s["tau_alpha_sweeps"] is None:
        raise RuntimeError(f"quick swap chain: {s['tau_alpha_note']}")
    err = s["tau_alpha_stderr_sweeps"]
    return {QUICK_T: {"source": "quick swap chain (uncertified)", "temperature": QUICK_T,
                      "pressure": s["pressure_imposed"], "n": s["n"],
                      "tau": s["tau_alpha_sweeps"], "err": err if err is not None else math.nan,
                      "q": s["fs_q"], "species": s["fs_species"], "sweeps": s["sweeps"],
                      "production": 1500, "cpu_per_sweep": s["cpu_seconds"] / s["sweeps"],
                      "structure": os.path.join(d, "out", "final.xyz")}}


# ----------------------------------------------------------------------------- no-swap
def noswap(ref: dict, out: str, args) -> dict:
    """Run (or resume) the no-swap measurement at the reference's temperature."""
    t = ref["temperature"]
    d = os.path.join(out, f"T{t:g}")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "config.toml")
    state = os.path.join(d, "plan.json")
    production = args.first_production
    if os.path.exists(state):
        with open(state) as fh:
            production = json.load(fh)["production_sweeps"]
    while True:
        write_config(cfg, {
            "state": {"temperature": t, "pressure": ref["pressure"]},
            "moves": {"p_swap": 0.0},
            "system": {"n": ref["n"], "init": ref["structure"]},
            "run": {"seed": args.seed + int(round(t)), "equilibration_sweeps": args.equil_sweeps,
                    "production_sweeps": production},
            "output": {"directory": os.path.join(d, "out"), "thermo_every": 50,
                       "checkpoint_every": 1000},
            "diagnostics": {"tau_alpha": True, "fs_every": args.fs_every, "q": ref["q"],
                            "fs_species": ref["species"]},
        })
        _write_text(state, json.dumps({"production_sweeps": production}))
        s = swapmc_run(cfg)
        tau, err = s["tau_alpha_sweeps"], s["tau_alpha_stderr_sweeps"]
        print(f"  T = {t:g}: production {production} sweeps, tau_alpha "
              f"{tau if tau is None else round(tau)} ± {err if err is None else round(err)}, "
              f"CPU {s['cpu_seconds']:.0f} s", flush=True)
        if tau is not None and err is not None and production >= args.window * tau:
            break
        if production >= args.max_sweeps:
            break
        want = args.window * tau * 1.1 if tau is not None else 2 * production
        production = int(min(args.max_sweeps, 1000 * math.ceil(max(want, production + 1000)
                                                                 / 1000)))
    result = {"temperature": t, "production_sweeps": production, "sweeps": s["sweeps"],
              "tau": tau, "err": err, "cpu_seconds": s["cpu_seconds"],
              "cpu_per_sweep": s["cpu_seconds"] / s["sweeps"], "fs_q": s["fs_q"],
              "fs_species": s["fs_species"], "note": s["tau_alpha_note"],
              "acceptance": s["acceptance_total"], "steps": s["step_sizes_frozen"],
              "density": s["density"], "density_stderr": s["density_stderr"],
              "energy": s["energy_per_particle"], "energy_stderr": s["energy_per_particle_stderr"]}
    if tau is None:
        result["lower_bound"] = fs_lower_bound(os.path.join(d, "out", "fs.csv"))
    return result


# ------------------------------------------------------------------------------ report
def report(refs: dict, results: dict) -> str:
    def pm(v, e, f=".0f"):
        return f"{v:{f}} ± {e:{f}}" if e is not None and math.isfinite(e) else f"{v:{f}} ± -"

    lines = ["S = tau_noswap / tau_swap (first-order error propagation); CPU/tau: tau x the "
             "run's process CPU seconds per sweep; 'prod': no-swap production in tau_alpha",
             f"{'T (K)':>6s} {'tau_noswap':>15s} {'tau_swap':>13s} {'speed-up S':>13s} "
             f"{'CPU/tau noswap':>15s} {'CPU/tau swap':>13s} {'S in CPU':>13s} {'prod':>6s}"]
    measured = []
    for t in sorted(refs, reverse=True):
        ref, r = refs[t], results.get(t)
        if r is None:
            lines.append(f"{t:6g}  not run")
            continue
        cs = ref["tau"] * ref["cpu_per_sweep"]
        cs_e = ref["err"] * ref["cpu_per_sweep"]
        if r["tau"] is None:
            lb = r["lower_bound"]
            lines.append(f"{t:6g} {'> ' + format(lb, '.0f'):>15s} "
                         f"{pm(ref['tau'], ref['err']):>13s} "
                         f"{'> ' + format(lb / ref['tau'], '.1f'):>13s} "
                         f"{'> ' + format(lb * r['cpu_per_sweep'], '.0f') + ' s':>15s} "
                         f"{pm(cs, cs_e) + ' s':>13s} "
                         f"{'> ' + format(lb * r['cpu_per_sweep'] / cs, '.1f'):>13s} "
                         f"{'<1':>6s}  (F_s above 1/e in {r['sweeps']} sweeps: lower bound)")
            continue
        err = r["err"] if r["err"] is not None else math.nan
        s, se = ratio_error(r["tau"], err, ref["tau"], ref["err"])
        cn, cn_e = r["tau"] * r["cpu_per_sweep"], err * r["cpu_per_sweep"]
        sc, sce = ratio_error(cn, cn_e, cs, cs_e)
        lines.append(f"{t:6g} {pm(r['tau'], err):>15s} {pm(ref['tau'], ref['err']):>13s} "
                     f"{pm(s, se, '.2f'):>13s} {pm(cn, cn_e) + ' s':>15s} "
                     f"{pm(cs, cs_e) + ' s':>13s} {pm(sc, sce, '.2f'):>13s} "
                     f"{r['production_sweeps'] / r['tau']:6.1f}")
        if math.isfinite(err):
            measured.append((t, r["tau"], err))
    lines.append("")
    for t in sorted(results, reverse=True):
        r = results[t]
        lines.append(f"T = {t:g} K no-swap: {r['note']}; {r['sweeps']} sweeps "
                     f"({r['production_sweeps']} production), CPU {r['cpu_seconds']:.0f} s "
                     f"({1 / r['cpu_per_sweep']:.0f} sweeps/CPU-s; swap chain "
                     f"{1 / refs[t]['cpu_per_sweep']:.0f}); acceptance displacement "
                     f"{r['acceptance']['displacement']:.3f}, volume "
                     f"{r['acceptance']['volume']:.3f}; rho {r['density']:.5f} A^-3, "
                     f"U/N {r['energy']:.5f} eV; swap reference: {refs[t]['source']}")
    if len(measured) >= 2:
        ts, taus, errs = zip(*measured)
        c, e, cov = arrhenius_fit(ts, taus, errs)
        lines.append("")
        lines.append(f"Arrhenius through the {len(measured)} measured no-swap points: "
                     f"E_a = {e * K_B_EV:.3f} ± {math.sqrt(cov[1, 1]) * K_B_EV:.3f} eV, "
                     f"tau_0 = {math.exp(c):.3g} sweeps (error from the points only; a "
                     "supercooled liquid is super-Arrhenius, so these extrapolations are "
                     "lower estimates of tau_noswap)")
        for t in sorted(refs, reverse=True):
            if t in dict((m[0], 1) for m in measured):
                continue
            tau, te = arrhenius_predict(c, e, cov, t)
            s, se = ratio_error(tau, te, refs[t]["tau"], refs[t]["err"])
            lines.append(f"  T = {t:g} K: tau_noswap ~ {tau:.0f} ± {te:.0f} sweeps "
                         f"(extrapolated), speed-up ~ {s:.2f} ± {se:.2f}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="speedup-cuzr", help="output directory")
    p.add_argument("--library", default=DEFAULT_LIBRARY,
                   help="library with the certified swap chains (only a copy is read)")
    p.add_argument("-T", "--temperatures", type=float, nargs="+", default=[1100.0, 1000.0],
                   help="temperatures (K), each with a certified library sample")
    p.add_argument("--window", type=float, default=10.0,
                   help="production wanted, in measured no-swap tau_alpha")
    p.add_argument("--equil-sweeps", type=int, default=2000,
                   help="equilibration sweeps (step sizes tuned, then frozen)")
    p.add_argument("--first-production", type=int, default=30000,
                   help="first production length (sweeps), extended as needed")
    p.add_argument("--max-sweeps", type=int, default=300000,
                   help="production budget per temperature (sweeps)")
    p.add_argument("--fs-every", type=int, default=20, help="sweeps between F_s snapshots")
    p.add_argument("--seed", type=int, default=1, help="seed offset (seed = this + T)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: a short swap chain at {QUICK_T:g} K replaces the library")
    p.add_argument("--report-only", action="store_true",
                   help="report from finished temperatures, run nothing")
    args = p.parse_args(argv)
    for name in ("equil_sweeps", "first_production", "max_sweeps", "fs_every"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.equil_sweeps % 10:
        raise UsageError("--equil-sweeps must be a multiple of 10")
    if not args.window > 0:
        raise UsageError("--window must be > 0")
    if any(not (math.isfinite(t) and t > 0) for t in args.temperatures):
        raise UsageError("temperatures must be finite and > 0")
    if args.quick:
        args.temperatures = [QUICK_T]
        args.equil_sweeps, args.first_production, args.max_sweeps = 200, 1500, 1500
        args.fs_every, args.window = 5, 3.0
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        os.makedirs(args.out, exist_ok=True)
        refs = (quick_reference(args.out) if args.quick
                else library_references(args.library, args.out, args.temperatures))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("# python scripts/speedup_cuzr.py " + shlex.join(sys.argv[1:] if argv is None
                                                          else argv))
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the report")
    results = {}
    for t in sorted(refs, reverse=True):
        res_path = os.path.join(args.out, f"T{t:g}", "result.json")
        if os.path.exists(res_path):
            with open(res_path) as fh:
                results[t] = json.load(fh)
            continue
        if args.report_only:
            continue
        print(f"no-swap at T = {t:g} K from {refs[t]['source']}", flush=True)
        results[t] = noswap(refs[t], args.out, args)
        _write_text(res_path, json.dumps(results[t], indent=1))
    text = report(refs, results)
    print(text)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"references": {str(k): v for k, v in refs.items()},
                   "noswap": {str(k): v for k, v in results.items()}}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
