"""NPT Monte Carlo cooling of a Cu-Zr liquid at P = 0: energy and density vs temperature.

The glass transition shows as a change of slope of U/N(T) and V/N(T) on cooling. The script
cools step-wise (equilibrate, then average at each temperature, carrying the configuration
down), fits straight lines to the liquid and the glass branches, and reports their
intersection as the computer-glass T_g of this cooling rate.

    python scripts/cuzr_cooling.py                       # Cu50Zr50, N = 500, ZJW EAM
    python scripts/cuzr_cooling.py --preset cu64zr36 --plot cooling.png
    python scripts/cuzr_cooling.py --quick

Rates are in MC sweeps per temperature step; the table is printed and written as CSV.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset


def two_line_fit(t, y, t_split_range):
    """Best split of (t, y) into two straight lines (liquid above, glass below).

    Returns
    -------
    t_g : float
        Intersection of the two lines (K).
    fits : tuple
        (slope, intercept) of the high-T and of the low-T line.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    best = None
    for split in t[(t >= t_split_range[0]) & (t <= t_split_range[1])]:
        hi, lo = t >= split, t <= split
        if hi.sum() < 3 or lo.sum() < 3:
            continue
        ph = np.polyfit(t[hi], y[hi], 1)
        pl = np.polyfit(t[lo], y[lo], 1)
        res = np.sum((np.polyval(ph, t[hi]) - y[hi]) ** 2) + np.sum(
            (np.polyval(pl, t[lo]) - y[lo]) ** 2)
        if best is None or res < best[0]:
            best = (res, ph, pl)
    _, ph, pl = best
    t_g = (pl[1] - ph[1]) / (ph[0] - pl[0])
    return t_g, (tuple(ph), tuple(pl))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cu50zr50")
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--t-high", type=float, default=2000.0)
    ap.add_argument("--t-low", type=float, default=600.0)
    ap.add_argument("--step", type=float, default=100.0, help="K per temperature step")
    ap.add_argument("--sweeps", type=int, default=2000, help="sweeps per temperature step")
    ap.add_argument("--swap", action="store_true", help="also use the preset's swap moves")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", default="cuzr_cooling.csv")
    ap.add_argument("--plot", default=None, help="write a figure (needs matplotlib)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sweeps, args.step = 400, 200.0

    preset = load_preset(args.preset)
    model = preset.model
    counts = composition_counts(preset.composition, args.n, model.species)
    system = random_configuration(counts, model.species, preset.density, seed=args.seed,
                                  min_distance=2.0)
    moves = dict(preset.moves)
    if not args.swap:
        moves["p_swap"] = 0.0
    mc = MonteCarlo(system, model, args.t_high, pressure=0.0, moves=MoveSettings(**moves),
                    seed=args.seed + 1)
    mc.equilibrate(args.sweeps)

    temps = np.arange(args.t_high, args.t_low - 1e-9, -args.step)
    rows = []
    print(f"# {args.preset}: N = {mc.n} {dict(zip(model.species, counts.tolist()))}, P = 0 GPa, "
          f"{args.sweeps} sweeps per {args.step:g} K step (half equilibration, half average), "
          f"swap {'on' if args.swap else 'off'}")
    print(f"{'T (K)':>8s} {'U/N (eV)':>12s} {'err':>8s} {'V/N (A^3)':>10s} {'err':>8s} "
          f"{'rho (A^-3)':>10s} {'acc disp':>8s} {'s':>6s}")
    for temperature in temps:
        t0 = time.perf_counter()
        mc.temperature = float(temperature)
        mc.equilibrate(args.sweeps // 2)
        u, v = [], []
        before = mc.counts.copy()
        for _ in range(args.sweeps // 2 // 10):
            mc.sweep(10)
            u.append(mc.energy / mc.n)
            v.append(mc.volume / mc.n)
        acc = (mc.counts - before)[0]
        u, v = np.array(u), np.array(v)
        # Standard errors from 10 blocks of consecutive samples.
        ue = np.std([b.mean() for b in np.array_split(u, 10)], ddof=1) / np.sqrt(10)
        ve = np.std([b.mean() for b in np.array_split(v, 10)], ddof=1) / np.sqrt(10)
        rows.append((temperature, u.mean(), ue, v.mean(), ve))
        print(f"{temperature:8.0f} {u.mean():12.5f} {ue:8.5f} {v.mean():10.4f} {ve:8.4f} "
              f"{1 / v.mean():10.5f} {acc[1] / max(acc[0], 1):8.3f} "
              f"{time.perf_counter() - t0:6.1f}", flush=True)
    data = np.array(rows)
    np.savetxt(args.csv, data, delimiter=",", header="T_K,U_per_atom_eV,U_err,V_per_atom_A3,"
               "V_err", comments="# ")
    if len(temps) >= 7:
        tg_u, fu = two_line_fit(data[:, 0], data[:, 1], (temps.min() + 2 * args.step,
                                                         temps.max() - 2 * args.step))
        tg_v, fv = two_line_fit(data[:, 0], data[:, 3], (temps.min() + 2 * args.step,
                                                         temps.max() - 2 * args.step))
        print(f"# slope of U/N: liquid {fu[0][0] * 1e4:.3f}e-4 eV/K, glass {fu[1][0] * 1e4:.3f}e-4"
              f" eV/K; intersection T_g(U) = {tg_u:.0f} K")
        print(f"# slope of V/N: liquid {fv[0][0] * 1e4:.3f}e-4 A^3/K, glass "
              f"{fv[1][0] * 1e4:.3f}e-4 A^3/K; intersection T_g(V) = {tg_v:.0f} K")
    print(f"# wrote {args.csv}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        a1.errorbar(data[:, 0], data[:, 1], data[:, 2], fmt="o-", ms=3)
        a1.set_xlabel("T (K)")
        a1.set_ylabel("U/N (eV)")
        a2.errorbar(data[:, 0], data[:, 3], data[:, 4], fmt="o-", ms=3)
        a2.set_xlabel("T (K)")
        a2.set_ylabel("V/N (Å$^3$)")
        fig.suptitle(f"{args.preset}, N = {mc.n}, NPT MC at P = 0")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"# wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
