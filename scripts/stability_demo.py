"""Glasses of two stabilities: swap-MC equilibrated vs quenched KA2, measured by MD.

1. Stable glass: KA2 (x_C = 0.10) equilibrated with swap Monte Carlo at a low temperature
   (default T = 0.45), then quenched to its inherent structure.
2. Poor glass: the same model equilibrated at T = 1.0 (a liquid), then quenched the same way.
3. Both are heated to the measurement temperatures and measured by MD: DMS in simple shear
   (M', M'', tan delta at a few periods) and stress relaxation after a step shear (KWW fit).

The stable glass should have the lower inherent-structure energy, the larger storage modulus
and the slower, smaller stress relaxation.

    python scripts/stability_demo.py --quick      # a few minutes on one core
    python scripts/stability_demo.py --samples 4  # more samples, smaller error bars
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.md import ForceField, fire
from swapmc.md.protocols import dms_sweep, step_strain_relaxation
from swapmc.models import load_preset


def make_glass(preset, n, t_prep, sweeps, seed):
    """Swap-MC equilibration at t_prep, then FIRE to the inherent structure."""
    counts = composition_counts(preset.composition, n, preset.model.species)
    system = random_configuration(counts, preset.model.species, preset.density, seed=seed)
    mc = MonteCarlo(system, preset.model, 2.0, moves=MoveSettings(**preset.moves),
                    seed=seed + 1000)
    mc.equilibrate(200)
    mc.temperature = t_prep
    mc.equilibrate(sweeps // 4)
    mc.sweep(sweeps - sweeps // 4)
    ff = ForceField(preset.model)
    inherent = fire(mc.system(), ff, fmax=1e-6, max_steps=20_000)
    return inherent.system, inherent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-N", "--n", type=int, default=500)
    ap.add_argument("--t-stable", type=float, default=0.45)
    ap.add_argument("--t-poor", type=float, default=1.0)
    ap.add_argument("--sweeps", type=int, default=30_000, help="MC sweeps of preparation")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("-T", "--temperatures", type=float, nargs="+", default=[0.2, 0.35])
    ap.add_argument("--periods", type=float, nargs="+", default=[10.0, 100.0])
    ap.add_argument("--duration", type=float, default=50.0, help="relaxation hold time")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.quick:
        args.sweeps, args.samples, args.temperatures = 10_000, 1, [0.3]
        args.periods, args.duration = [10.0, 50.0], 20.0
    preset = load_preset("ka2-x10")
    ff = ForceField(preset.model)
    rng = np.random.default_rng(args.seed)
    print(f"# KA2 x_C = 0.10, N = {args.n}, {args.samples} sample(s) per glass; preparation "
          f"{args.sweeps} swap-MC sweeps; LJ units")
    glasses = {}
    for label, t_prep in (("stable", args.t_stable), ("poor", args.t_poor)):
        t0 = time.perf_counter()
        samples, e_is = [], []
        for k in range(args.samples):
            system, res = make_glass(preset, args.n, t_prep, args.sweeps, args.seed + 10 * k)
            samples.append(system)
            e_is.append(res.energy_per_particle)
        glasses[label] = samples
        print(f"{label:7s} glass: prepared at T = {t_prep}, E_IS/N = {np.mean(e_is):.4f}"
              f" (samples: {', '.join(f'{e:.4f}' for e in e_is)}), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    print("\n# DMS, simple shear, strain amplitude 0.01 (moduli in epsilon/sigma^3); "
          "+- is a 68 % interval (Student-t): over glasses with several samples, over the "
          "cycles of one run with one sample")
    print(f"{'glass':7s} {'T':>5s} {'period':>7s} {'M1 (storage)':>16s} {'M2 (loss)':>16s} "
          f"{'tan delta':>16s}")
    omegas = [2 * np.pi / p for p in args.periods]
    for label, samples in glasses.items():
        rows = dms_sweep(samples, ff, omegas=omegas, temperatures=args.temperatures,
                         strain_amplitude=0.01, n_cycles=4, rng=rng,
                         equilibration_steps=2000)
        for r in rows:
            if r is rows[0]:
                print(f"# {label}: {r.error_method}")
            print(f"{label:7s} {r.temperature:5.2f} {r.period:7.1f} "
                  f"{r.m_storage:8.3f} ± {r.m_storage_err:5.3f} "
                  f"{r.m_loss:8.3f} ± {r.m_loss_err:5.3f} "
                  f"{r.tan_delta:8.4f} ± {r.tan_delta_err:6.4f}", flush=True)
    print("\n# Stress relaxation after a 1 % step shear; KWW fit of M(t) for t >= 1 tau_LJ; "
          "repeats averaged within each glass, +- a 68 % interval from the spread over "
          "glasses (jackknife)")
    print(f"{'glass':7s} {'T':>5s} {'M(0)':>8s} {'M(end)':>8s} {'tau':>18s} {'beta':>16s} "
          f"{'M_r':>16s}")
    for label, samples in glasses.items():
        for temperature in args.temperatures:
            res = step_strain_relaxation(samples, ff, temperature=temperature, strain=0.01,
                                         duration=args.duration, repeats=2, rng=rng,
                                         equilibration_steps=2000)
            m = res.modulus
            tail = m[int(0.9 * len(m)):].mean()
            k = res.kww
            if k is not None:
                fit = (f"{k.format('tau', '8.3g'):>18s} {k.format('beta', '6.3f'):>16s} "
                       f"{k.format('residual_modulus', '7.3f'):>16s}")
                if temperature == args.temperatures[0] and label == "stable":
                    print(f"# {k.error_method}")
            else:
                fit = f"fit failed: {res.kww_error}"
            print(f"{label:7s} {temperature:5.2f} {m[0]:8.3f} {tail:8.3f} {fit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
