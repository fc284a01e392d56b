"""False-positive rate, detection rate and coverage of the beta-relaxation test
(:mod:`swapmc.analysis.beta_relaxation`) on synthetic loss spectra with known parameters.

Isothermal spectra: M''(omega) at 21 frequencies, 4 per decade over 1e-2..1e3 rad per time
unit (5 decades), alpha relaxation at tau_a = 1 (KWW beta = 0.5, or Havriliak-Negami
alpha = 0.8, gamma = 0.6; Delta_a = 1), Gaussian noise of standard deviation ``--noise``
(default 0.02) times the alpha peak height, the same value given as the error. With a beta
term: Cole-Cole, Delta_b = 0.3, a = 0.6, at omega_b = 100 (two decades above the alpha
peak; "beta") or omega_b = 1e4 (beyond the highest frequency; "wing").

Isochronal spectra: tan delta(T) at omega = 2 pi (T in units of T_g, 0.50..1.15 in steps
of 0.025), M* = 1 - 0.9 chi_KWW(omega tau_a; 0.5) - Delta_b chi_CC(omega tau_b; 0.5), with
tau_a VFT above T_g (ln tau_a = -30 + 10.4 / (T - 0.7), tau_a(T_g) = 100) and Arrhenius
below it with the slope it has at T_g (the glass), and an Arrhenius beta,
ln tau_b = -32.2 + 26 / T (E_b = 26 R T_g); its loss maximum at this omega is at
T_b = 26 / (32.2 - ln 2 pi) = 0.856 T_g. Noise: 0.002 + 3 % of each value (the same as the
error). Delta_b = 0 ("null") or 0.05.

For each case ``--n`` spectra are drawn and tested with the defaults (p_max = 0.01,
amplitude >= 2 errors). Reported: the fraction of spectra in each class; the false-positive
rate (a peak, shoulder or wing kept in alpha-only spectra) with its 95 % Clopper-Pearson
upper limit; and, where the truth has a beta peak inside the window, the fraction whose
68 % interval of the position contains the truth (coverage, +- its binomial standard error)
and the tails of z = (estimate - truth) / error (fractions beyond 2 and 3 errors).

Usage: ``python scripts/beta_detection_calibration.py [--n 200] [--out FILE]``; ``--quick``
runs 10 spectra per case (a smoke test, seconds to a minute).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import numpy as np
from scipy import stats

from swapmc.analysis.beta_relaxation import (
    cole_cole_loss,
    detect_beta_isochronal,
    detect_beta_isothermal,
)
from swapmc.analysis.loss_models import hn_susceptibility, kww_susceptibility

OMEGA = np.geomspace(1e-2, 1e3, 21)
T_GRID = np.arange(0.5, 1.1501, 0.025)
OMEGA_CHRON = 2 * math.pi
T_BETA = 26.0 / (32.2 - math.log(OMEGA_CHRON))


def isothermal_truth(alpha="kww", beta_amp=0.0, omega_b=100.0, a_b=0.6):
    """Noise-free M''(OMEGA) of the isothermal cases (module docstring)."""
    if alpha == "kww":
        y = -kww_susceptibility(OMEGA, 0.5).imag
    else:
        y = -hn_susceptibility(OMEGA, 0.8, 0.6).imag
    if beta_amp:
        y = y + beta_amp * cole_cole_loss(OMEGA, 1.0 / omega_b, a_b)
    return y


def isochronal_truth(beta_amp=0.0):
    """Noise-free tan delta(T_GRID) of the isochronal cases (module docstring)."""
    t = T_GRID
    ln_ta = np.where(t >= 1.0, -30.0 + 10.4 / np.maximum(t - 0.7, 1e-3),
                     4.6 + 10.4 / 0.09 * (1.0 / t - 1.0))
    ln_ta = np.minimum(ln_ta, 40.0)  # far below T_g the alpha loss is ~0 anyway
    chi_a = kww_susceptibility(OMEGA_CHRON * np.exp(ln_ta), 0.5)
    chi_b = hn_susceptibility(OMEGA_CHRON * np.exp(-32.2 + 26.0 / t), 0.5, 1.0)
    m1 = 1.0 - 0.9 * chi_a.real - beta_amp * chi_b.real
    m2 = -0.9 * chi_a.imag - beta_amp * chi_b.imag
    return m2 / m1


def noisy_isochronal(rng, truth):
    err = 0.002 + 0.03 * truth
    return truth + err * rng.standard_normal(truth.size), err


CASES = {
    # name: (kind, kwargs, true position or None)
    "isothermal KWW, alpha only": ("iso", dict(alpha="kww"), None),
    "isothermal HN, alpha only": ("iso", dict(alpha="havriliak_negami"), None),
    "isothermal KWW + beta at omega_b = 100": (
        "iso", dict(alpha="kww", beta_amp=0.3, omega_b=100.0), math.log(100.0)),
    "isothermal KWW + beta at omega_b = 1e4 (wing)": (
        "iso", dict(alpha="kww", beta_amp=0.3, omega_b=1e4), None),
    "isochronal tan delta, alpha only": ("chron", dict(beta_amp=0.0), None),
    "isochronal tan delta + beta (Delta_b = 0.05)": ("chron", dict(beta_amp=0.05), T_BETA),
}


def run_case(name, n, seed, noise):
    """Test ``n`` spectra of one case; returns a summary dict."""
    kind, kw, truth_pos = CASES[name]
    rng = np.random.default_rng(seed)
    classes, z = {}, []
    if kind == "iso":
        truth = isothermal_truth(**kw)
        alpha_peak = float(np.max(isothermal_truth(alpha=kw["alpha"])))
    else:
        truth = isochronal_truth(**kw)
    for _ in range(n):
        if kind == "iso":
            err = np.full(truth.size, noise * alpha_peak)
            y = truth + err * rng.standard_normal(truth.size)
            f = detect_beta_isothermal(OMEGA, y, err, alpha_model=kw["alpha"])
        else:
            y, err = noisy_isochronal(rng, truth)
            f = detect_beta_isochronal(T_GRID, y, err, omega=OMEGA_CHRON)
        classes[f.kind] = classes.get(f.kind, 0) + 1
        if truth_pos is not None and f.kind in ("peak", "shoulder"):
            z.append((f.position - truth_pos) / f.position_err)
    kept = sum(classes.get(k, 0) for k in ("peak", "shoulder", "wing"))
    out = {"name": name, "n": n, "classes": classes, "kept": kept,
           "kept_upper95": float(stats.beta.ppf(0.95, kept + 1, n - kept)) if kept < n
           else 1.0}
    if truth_pos is not None:
        z = np.array(z)
        cov = float(np.mean(np.abs(z) < 1.0)) if z.size else math.nan
        out.update(truth=truth_pos, n_located=int(z.size), coverage=cov,
                   coverage_se=math.sqrt(cov * (1 - cov) / z.size) if z.size else math.nan,
                   z_mean=float(np.mean(z)) if z.size else math.nan,
                   beyond2=float(np.mean(np.abs(z) > 2.0)) if z.size else math.nan,
                   beyond3=float(np.mean(np.abs(z) > 3.0)) if z.size else math.nan,
                   z_sd=float(np.std(z, ddof=1)) if z.size > 1 else math.nan)
    return out


def report(res, noise) -> str:
    lines = [f"{res['name']}: {res['n']} spectra"]
    cls = ", ".join(f"{k} {v}" for k, v in sorted(res["classes"].items()))
    lines.append(f"  classes: {cls}")
    lines.append(f"  kept (peak/shoulder/wing): {res['kept']}/{res['n']} = "
                 f"{res['kept'] / res['n']:.3f} (95 % upper limit {res['kept_upper95']:.3f})")
    if "coverage" in res:
        lines.append(f"  position located (peak/shoulder): {res['n_located']}; 68 % interval "
                     f"covers the truth ({res['truth']:.4g}) in {res['coverage']:.3f} +- "
                     f"{res['coverage_se']:.3f}; z = (estimate - truth) / error: mean "
                     f"{res['z_mean']:.2f}, sd {res['z_sd']:.2f}, |z| > 2 in "
                     f"{res['beyond2']:.3f}, |z| > 3 in {res['beyond3']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="spectra per case (default 200)")
    p.add_argument("--quick", action="store_true", help="10 spectra per case")
    p.add_argument("--noise", type=float, default=0.02,
                   help="isothermal noise, fraction of the alpha peak (default 0.02)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    p.add_argument("--cases", help="comma-separated case numbers (1-based) to run "
                   "(default all)")
    p.add_argument("--out", help="also write the report to this file")
    args = p.parse_args(argv)
    n = 10 if args.quick else args.n
    if n < 2:
        print("error: --n must be >= 2", file=sys.stderr)
        return 1
    names = list(CASES)
    if args.cases:
        try:
            names = [names[int(c) - 1] for c in args.cases.split(",")]
        except (ValueError, IndexError):
            print(f"error: --cases must be numbers 1..{len(CASES)}", file=sys.stderr)
            return 1
    cmd = "python scripts/beta_detection_calibration.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = [f"# command: {cmd.strip()}",
            f"# {n} spectra per case, seed {args.seed}, isothermal noise {args.noise:g} of "
            "the alpha peak; decision: F test p < 0.01 and beta amplitude >= 2 errors"]
    print("\n".join(text), flush=True)
    results = []
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, name in enumerate(names):
            res = run_case(name, n, args.seed + k, args.noise)
            results.append(res)
            block = report(res, args.noise)
            print(block, flush=True)
            text.append(block)
    tail = f"# CPU time {time.process_time() - t0:.0f} s"
    print(tail)
    text.append(tail)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
