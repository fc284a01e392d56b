"""Cost of the T = 0 elastic constants from the Hessian (swapmc.md.elasticity).

Cases (single core: every measurement runs in its own process with one BLAS thread, and
its peak resident memory is read from the kernel):

* KA2 (x_C = 0.10) inherent structures at rho = 1.2: N = 4000 quenched by FIRE from random
  insertion; N = 32000 from that glass replicated 2 x 2 x 2, every particle displaced by a
  Gaussian of 0.05 sigma (so the larger glass is not periodic on the smaller cell) and
  minimised again. Direct (SuperLU) and CG solvers at N = 4000, CG at N = 32000 (the LU
  factor of the 4000-particle Hessian already has 6.4e7 entries; it grows as ~N^(4/3) and
  its time as ~N^2, so 32000 would need > 20 GB).
* ZJW Cu50Zr50 at 0.062 Å^-3, N = 4000, CG: the embedding term couples every two atoms
  within 2 r_c (14.3 Å), so its Hessian has ~10x more blocks per row than LJ's.

    python scripts/bench_elasticity.py             # ~10 minutes (mostly the FIRE quenches)
    python scripts/bench_elasticity.py --quick     # N = 4000 LJ only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import Box, System, __version__  # noqa: E402
from swapmc.build import composition_counts, random_configuration  # noqa: E402
from swapmc.md import ForceField, fire  # noqa: E402
from swapmc.models import load_preset, zjw_potential  # noqa: E402

FMAX = {"lj": 1e-8, "metal": 1e-8}


def model_of(name):
    return load_preset("ka2-x10").model if name == "ka2" else zjw_potential()


def save(path, system):
    np.savez(path, positions=system.positions, species=system.species,
             names=np.array(system.species_names), h=system.box.matrix)


def load(path):
    d = np.load(path)
    return System(d["positions"], d["species"], tuple(d["names"].tolist()),
                  Box.from_matrix(d["h"]))


def quench(system, ff):
    t0 = time.perf_counter()
    m = fire(system, ff, fmax=FMAX[ff.units], max_steps=1_000_000)
    print(f"  FIRE: {m.steps} steps, {time.perf_counter() - t0:.0f} s, converged {m.converged},"
          f" E/N = {m.energy_per_particle:.5f}", flush=True)
    return m.system


def prepare(workdir, quick):
    """Inherent structures, written as .npz files; returns [(label, model, path, methods)]."""
    cases = []
    pre = load_preset("ka2-x10")
    ff = ForceField(pre.model)
    print("KA2 N = 4000: random insertion + FIRE", flush=True)
    counts = composition_counts(pre.composition, 4000, pre.model.species)
    small = quench(random_configuration(counts, pre.model.species, 1.2, seed=3,
                                        min_distance=0.75), ff)
    path = os.path.join(workdir, "ka2_4000.npz")
    save(path, small)
    cases.append(("KA2 glass", "ka2", path, ("direct", "cg")))
    if quick:
        return cases
    print("KA2 N = 32000: 2x2x2 replica, 0.05 sigma noise, FIRE", flush=True)
    h = small.box.matrix
    cells = np.array([[a, b, c] for a in range(2) for b in range(2) for c in range(2)])
    pos = (small.positions[None] + (cells @ h.T)[:, None]).reshape(-1, 3)
    pos += np.random.default_rng(5).normal(scale=0.05, size=pos.shape)
    big = System.from_unwrapped(pos, np.tile(small.species, 8), small.species_names,
                                Box.from_matrix(2 * h))
    path = os.path.join(workdir, "ka2_32000.npz")
    save(path, quench(big, ff))
    cases.append(("KA2 glass", "ka2", path, ("cg",)))
    print("Cu50Zr50 ZJW N = 4000: random insertion + FIRE", flush=True)
    pot = zjw_potential()
    s = random_configuration([2000, 2000], pot.species, 0.062, seed=3, min_distance=2.0)
    path = os.path.join(workdir, "cuzr_4000.npz")
    save(path, quench(s, ForceField(pot)))
    cases.append(("Cu50Zr50 ZJW glass", "zjw", path, ("cg",)))
    return cases


def child(model_name, path, method):
    """One measurement (run in a fresh process): prints a JSON line."""
    from swapmc.md.elasticity import elastic_constants

    system = load(path)
    model = model_of(model_name)
    ff = ForceField(model)
    # Load the compiled kernels on a small system first, so the timing is the run's own.
    if model_name == "ka2":
        warm = random_configuration([200, 50], model.species[:2], 1.2, seed=1,
                                    min_distance=0.75)
        warm = System(warm.positions, warm.species, model.species, warm.box)
    else:
        warm = random_configuration([150, 150], model.species, 0.062, seed=1,
                                    min_distance=2.0)
    elastic_constants(fire(warm, ff, fmax=1e-3).system, ff, method=method)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    ec = elastic_constants(system, ff, method=method, rtol=1e-8)
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "n": system.n, "method": method, "total_s": total, "stages": ec.seconds,
        "iterations": ec.solve.iterations, "factor_nnz": ec.solve.factor_nnz,
        "residual": ec.solve.residual, "rss_before_mb": base_rss, "rss_peak_mb": peak,
        "G_xy": ec.G_xy, "G_xy_born": ec.G_xy_born, "G_iso": ec.G_iso, "unit": ec.unit,
        "max_force": ec.max_force,
    }))


def hessian_size(model_name, path):
    from swapmc.md.elasticity import hessian

    h = hessian(load(path), ForceField(model_of(model_name)))
    return h.nnz // 9, h.data.nbytes + h.indices.nbytes + h.indptr.nbytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 4000 KA2 only")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "PATH", "METHOD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, model_name, path, methods in prepare(workdir, args.quick):
            blocks, nbytes = hessian_size(model_name, path)
            for method in methods:
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                      model_name, path, method], env=env, check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                r.update(label=label, blocks=blocks, hessian_mb=nbytes / 2**20)
                rows.append(r)
                print(f"  {label} N = {r['n']} {method}: {r['total_s']:.1f} s", flush=True)
    lines = [
        f"swapmc {__version__} T = 0 elastic constants from the Hessian: wall time and peak "
        "memory, single core (one BLAS thread)",
        machine_line(),
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (wall times on a shared machine grow with it)",
        "",
        f"{'case':<20}{'N':>7}  {'solver':<7}{'blocks/row':>11}{'H (MB)':>8}"
        f"{'pairs+H (s)':>12}{'solve (s)':>10}{'iter':>6}{'LU nnz':>10}{'peak RSS (MB)':>14}"
        f"{'G_xy':>9}{'G_Born':>9}",
        "-" * 123,
    ]
    for r in rows:
        st = r["stages"]
        lines.append(
            f"{r['label']:<20}{r['n']:>7}  {r['method']:<7}{r['blocks'] / r['n']:>11.0f}"
            f"{r['hessian_mb']:>8.0f}{st['pairs'] + st['hessian'] + st['strain']:>12.2f}"
            f"{st['solve']:>10.1f}{r['iterations']:>6}"
            f"{(r['factor_nnz'] / 1e6 if r['factor_nnz'] else 0):>9.1f}M"
            f"{r['rss_peak_mb']:>14.0f}{r['G_xy']:>9.3f}{r['G_xy_born']:>9.3f}")
    lines += [
        "",
        "G in epsilon/sigma^3 (KA2) or GPa (Cu-Zr); G_xy = C66 + sigma_yy (relaxed), G_Born the "
        "affine value. CG: block-Jacobi preconditioner, all six strain columns at once, "
        "relative residual 1e-8. Peak RSS includes the interpreter, NumPy/SciPy and the "
        "compiled kernels (~150-200 MB before any work).",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
