"""Cost of one AQS step (swapmc.md.shear.AQS on the native engine) against N: FIRE, the
default, against L-BFGS with a force-based line search, each with and without the
extrapolated start (affine map plus the previous elastic step's non-affine displacement).

Every variant minimises to the same criterion, max_i |F_i| < 1e-8 epsilon/sigma after
each strain step of 1e-4. Glass: KA2 (x_C = 0.10) at rho = 1.2, random insertion quenched
to max|F| < 1e-10 (a poorly annealed glass: many soft spots, the hard case). Timed: the
first ``--steps`` AQS steps from the inherent structure, CPU time of this process (the
machine is shared; wall time is printed too).

    python scripts/bench_aqs.py             # N = 500 and 4000, ~10 CPU minutes
    python scripts/bench_aqs.py --full      # also N = 32000 (5 steps each; ~1 CPU hour)
    python scripts/bench_aqs.py --quick     # N = 500 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import __version__  # noqa: E402
from swapmc.build import composition_counts, random_configuration  # noqa: E402
from swapmc.md import ForceField  # noqa: E402
from swapmc.md.engine import NativeEngine  # noqa: E402
from swapmc.md.minimize import minimize  # noqa: E402
from swapmc.md.shear import AQS  # noqa: E402
from swapmc.models import load_preset  # noqa: E402

VARIANTS = (("fire", False), ("fire", True), ("lbfgs", False), ("lbfgs", True))


def glass(n: int, ff, pre):
    counts = composition_counts(pre.composition, n, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.75)
    t0 = time.process_time()
    m = minimize(s, ff, fmax=1e-10, max_steps=2_000_000, method="lbfgs")
    print(f"  N = {n}: quench {m.steps} iterations, {time.process_time() - t0:.0f} CPU s, "
          f"E/N = {m.energy_per_particle:.5f}", flush=True)
    return m.system


def bench(system, ff, minimizer, extrapolate, steps):
    aqs = AQS(NativeEngine(system, ff), max_strain=steps * 1e-4, step=1e-4, ftol=1e-8,
              minimizer=minimizer, extrapolate=extrapolate)
    aqs.start()
    c0, w0 = time.process_time(), time.perf_counter()
    aqs.run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    t = aqs.table()
    assert np.all(t[:, 11] == 1.0)
    return t[1:, 10].mean(), cpu / steps, wall / steps, t[:, 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="AQS steps timed per case")
    ap.add_argument("--quick", action="store_true", help="N = 500 only")
    ap.add_argument("--full", action="store_true", help="also N = 32000 (5 steps)")
    args = ap.parse_args(argv)
    pre = load_preset("ka2-x10")
    ff = ForceField(pre.model)
    sizes = [500] if args.quick else [500, 4000] + ([32000] if args.full else [])
    rows = []
    for n in sizes:
        s = glass(n, ff, pre)
        steps = 5 if n > 10_000 else args.steps
        ref = None
        for minimizer, extrapolate in VARIANTS:
            it, cpu, wall, stress = bench(s, ff, minimizer, extrapolate, steps)
            dev = 0.0 if ref is None else float(np.abs(stress - ref).max())
            ref = stress if ref is None else ref
            rows.append((n, minimizer, extrapolate, steps, it, cpu, wall, dev))
            print(f"  N = {n:6d} {minimizer:5s} extrapolate={extrapolate!s:5s}: "
                  f"{it:7.0f} iterations/step, {cpu:7.3f} CPU s/step, {wall:7.3f} wall s/step"
                  f", max|stress - FIRE's| {dev:.1e}", flush=True)
    print()
    print(f"swapmc {__version__} AQS step cost (KA2 glass, steps of 1e-4, max|F_i| < 1e-8 "
          "epsilon/sigma), one process on a shared machine")
    print(machine_line())
    print("load average (1, 5, 15 min) at the end: "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg())
          + " (CPU times are this process's own; wall times grow with the load)")
    print(f"{'N':>6s} {'minimiser':>9s} {'extrap.':>7s} {'steps':>5s} {'iter/step':>9s} "
          f"{'CPU s/step':>10s} {'wall s/step':>11s} {'speed-up':>8s} {'max|dsig|':>9s}")
    base = {}
    for n, mz, ex, st, it, cpu, wall, dev in rows:
        if (mz, ex) == ("fire", False):
            base[n] = cpu
        print(f"{n:6d} {mz:>9s} {str(ex):>7s} {st:5d} {it:9.0f} {cpu:10.3f} {wall:11.3f} "
              f"{base[n] / cpu:8.1f} {dev:9.1e}")
    print("speed-up: CPU time per step of FIRE without extrapolation over that of the row; "
          "max|dsig|: largest difference of the conjugate stress from the FIRE run over "
          "the steps timed (epsilon/sigma^3; nonzero only where a step lands in a different "
          "nearby minimum)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
