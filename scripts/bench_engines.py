"""The two engines of the mechanical protocols side by side: swapmc's own MD/FIRE
(:class:`swapmc.md.engine.NativeEngine`, one core) and LAMMPS through its Python module
(:class:`swapmc.md.engine_lammps.LammpsEngine`, 1 rank, and ``mpiexec -n 2`` with the box
decomposed over two ranks).

Cases, each on the same configuration for every engine:

* **MD NVT** (``Engine.run`` with the Bussi thermostat; LAMMPS ``fix nve`` +
  ``fix temp/csvr``): KA2 (LJ with the dopant, rho = 1.2, T = 0.8, dt = 0.005 tau_LJ) and
  Cu64Zr36 with the ZJW EAM (0.0627 Å^-3, 1500 K, dt = 2 fs). Rate: atom-steps per second.
* **AQS step** (one strain increment of 1e-4 in simple shear + FIRE to max|F_i| < ftol, as
  ``swapmc shear``): KA2 glass made by random insertion and a FIRE quench, minimised once
  (not timed) before the timed steps. Cost: seconds per AQS step, with the FIRE iterations
  per step.

Times are wall-clock (with ``mpiexec`` the ranks run at once); serial runs also give the
process CPU rate, steadier when other jobs share the machine. The load average at the start
and end is printed: on a loaded machine, absolute rates are lower bounds and the 2-rank
speed-up is understated.

    python scripts/bench_engines.py              # a few minutes
    python scripts/bench_engines.py --quick      # ~1 minute (N = 2000 MD, 1000 AQS)
    python scripts/bench_engines.py --big        # also MD at N = 256 000 (both engines)
    python scripts/bench_engines.py --no-mpi     # without the mpiexec -n 2 rows

Each row also shows the 1-minute load average when it started: on a shared machine the
ratios of one size (measured minutes apart in the same run) are more trustworthy than the
absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import __version__  # noqa: E402
from swapmc.build import (  # noqa: E402
    composition_counts,
    lattice_configuration,
    random_configuration,
)
from swapmc.io import read_extxyz, write_extxyz  # noqa: E402
from swapmc.md import ForceField, fire  # noqa: E402
from swapmc.md.engine import NativeEngine  # noqa: E402
from swapmc.models import load_preset, zjw_potential  # noqa: E402

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MODELS = {
    # name: (preset or potential, density, temperature, dt)
    "KA2 LJ": ("ka2-x10", 1.2, 0.8, 0.005),
    "Cu64Zr36 ZJW EAM": ("zjw", 0.0627, 1500.0, 0.002),
}
AQS_STEP = 1e-4


def model_of(name):
    spec = MODELS[name][0]
    if spec == "zjw":
        return zjw_potential()
    return load_preset(spec).model


def prepare(name: str, n: int):
    """Random insertion (LJ) or fcc sites (EAM) at the model's density, then FIRE (300
    steps) off the overlaps."""
    model = model_of(name)
    density = MODELS[name][1]
    if model.kind == "lj":
        counts = composition_counts(load_preset("ka2-x10").composition, n, model.species)
        s = random_configuration(counts, model.species, density, seed=1, min_distance=0.75)
    else:
        # Random insertion jams at this density for N >~ 2000: fcc sites, species at random
        # (the MD rate does not depend on the structure).
        n_cu = int(round(0.64 * n))
        s = lattice_configuration([n_cu, n - n_cu], model.species, density, seed=1)
    ff = ForceField(model)
    return ff, fire(s, ff, fmax=1e-2, max_steps=300).system


def make_engine(kind, system, ff, dt, seed=0):
    if kind == "native":
        return NativeEngine(system, ff, dt=dt, seed=seed)
    from swapmc.md.engine_lammps import LammpsEngine

    return LammpsEngine(system, ff, dt=dt, seed=seed)


def time_md(engine, temperature, steps, warmup):
    engine.thermalize(temperature)
    engine.run(warmup, temperature=temperature, sample_every=max(warmup, 1))
    c0, w0 = time.process_time(), time.perf_counter()
    r = engine.run(steps, temperature=temperature, sample_every=steps)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"n": engine.n, "steps": steps, "rate": engine.n * steps / wall,
            "rate_cpu": engine.n * steps / cpu, "seconds": wall,
            "T_end": float(r.temperature[-1])}


def time_aqs(engine, steps, ftol):
    """Seconds per AQS step (affine increment + FIRE) after the untimed start."""
    from swapmc.md.shear import AQS

    proto = AQS(engine, max_strain=steps * AQS_STEP, step=AQS_STEP, ftol=ftol,
                max_iter=200_000)
    proto.start()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        proto.advance()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    iters = proto.table()[1:, 10]
    return {"n": engine.n, "steps": steps, "seconds_per_step": wall / steps,
            "cpu_per_step": cpu / steps, "iterations": float(iters.mean()),
            "converged": bool(np.all(proto.table()[:, 11] == 1.0))}


def run_case(spec: dict) -> dict:
    """One measurement on this process (spec as JSON: kind, case, model, path, ...)."""
    model = model_of(spec["model"])
    ff = ForceField(model)
    system = read_extxyz(spec["path"], species_names=model.species)
    dt, temperature = MODELS[spec["model"]][3], MODELS[spec["model"]][2]
    engine = make_engine(spec["engine"], system, ff, dt)
    try:
        if spec["case"] == "md":
            out = time_md(engine, temperature, spec["steps"], spec["warmup"])
        else:
            out = time_aqs(engine, spec["steps"], spec["ftol"])
        out["ranks"] = getattr(engine, "ranks", 1)
    finally:
        getattr(engine, "close", lambda: None)()
    return out


def worker(spec_json: str) -> int:
    """``mpiexec -n K python bench_engines.py --worker SPEC``: rank 0 measures, the other
    ranks serve its LAMMPS calls; rank 0 prints one JSON line."""
    from swapmc.md.engine_lammps import drive

    out = drive(lambda: run_case(json.loads(spec_json)))
    if out is not None:
        print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_mpi(spec: dict, ranks: int, timeout: float) -> dict | None:
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           json.dumps(spec)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, few steps (a check)")
    ap.add_argument("--big", action="store_true", help="also MD at N = 256 000")
    ap.add_argument("--no-mpi", action="store_true", help="skip the mpiexec -n 2 rows")
    ap.add_argument("--ftol", type=float, default=1e-8,
                    help="AQS force tolerance (energy/length), default 1e-8 as swapmc shear")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    from swapmc.md.engine_lammps import lammps_version

    try:
        lmp_version = lammps_version()
    except ImportError as err:
        print(f"bench_engines: {err}", file=sys.stderr)
        return 1
    mpi = not args.no_mpi and os.path.exists(MPIEXEC)
    md_sizes = [2000] if args.quick else [4000, 32000] + ([256000] if args.big else [])
    aqs_sizes = [1000] if args.quick else [4000, 32000]
    md_steps = {2000: 50, 4000: 400, 32000: 60, 256000: 20}
    aqs_steps = {1000: 1, 4000: 3, 32000: 1}

    print(f"swapmc {__version__}: native engine against LAMMPS (MD and AQS)")
    print("command: python scripts/bench_engines.py " + " ".join(sys.argv[1:]))
    print(machine_line())
    print(f"{lmp_version}; mpiexec -n 2: {'yes' if mpi else 'no'}")
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on "
          f"{os.cpu_count()} cores (other jobs share this machine: rates are lower bounds)\n")

    head = (f"{'case':34s} {'engine':13s} {'N':>7s} {'steps':>6s} {'atom-steps/s':>13s} "
            f"{'(CPU)':>10s} {'vs native':>9s} {'load':>5s}")
    rows_md, rows_aqs = [], []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for name in MODELS:
            for n in sorted(set(md_sizes) | (set(aqs_sizes) if name == "KA2 LJ" else set())):
                ff, s = prepare(name, n)
                path = os.path.join(tmp, f"{name.split()[0]}-{n}.xyz")
                write_extxyz(path, s)
                configs[(name, n)] = path

        print("MD NVT (Bussi / temp/csvr thermostat), wall-clock rates")
        print(head)
        print("-" * len(head))
        for name in MODELS:
            for n in md_sizes:
                steps = md_steps[n]
                spec = {"case": "md", "model": name, "path": configs[(name, n)],
                        "steps": steps, "warmup": max(5, steps // 10)}
                results = []
                for kind in ("native", "lammps"):
                    load = os.getloadavg()[0]
                    results.append((kind, dict(run_case(dict(spec, engine=kind)), load=load)))
                if mpi:
                    load = os.getloadavg()[0]
                    results.append(("lammps", dict(run_mpi(dict(spec, engine="lammps"), 2,
                                                           1800), load=load)))
                base = next((r["rate"] for k, r in results if k == "native"), None)
                for kind, r in results:
                    label = f"{kind} x{r.get('ranks', 2)}"
                    if "error" in r:
                        print(f"{'MD NVT ' + name:34s} {label:13s} {n:7d} failed: {r['error']}")
                        continue
                    ratio = f"{r['rate'] / base:9.2f}" if base else f"{'-':>9s}"
                    cpu = f"{r['rate_cpu']:10.3e}" if r["ranks"] == 1 else f"{'-':>10s}"
                    print(f"{'MD NVT ' + name:34s} {label:13s} {n:7d} {steps:6d} "
                          f"{r['rate']:13.3e} {cpu} {ratio} {r['load']:5.1f}", flush=True)
                    rows_md.append((name, kind, r))

        head2 = (f"{'case':34s} {'engine':13s} {'N':>7s} {'steps':>6s} {'s/step':>10s} "
                 f"{'(CPU)':>10s} {'FIRE it.':>9s} {'us/atom-it':>10s} {'vs native':>9s} "
                 f"{'load':>5s}")
        print(f"\nAQS step: strain {AQS_STEP:g} (simple shear) + FIRE to max|F_i| < "
              f"{args.ftol:g}, KA2 LJ glass (random insertion + FIRE quench)")
        print(head2)
        print("-" * len(head2))
        for n in aqs_sizes:
            spec = {"case": "aqs", "model": "KA2 LJ", "path": configs[("KA2 LJ", n)],
                    "steps": aqs_steps[n], "ftol": args.ftol}
            # The start configuration: minimised once here, so every engine times steps
            # from the same inherent structure.
            model = model_of("KA2 LJ")
            ff = ForceField(model)
            s = read_extxyz(configs[("KA2 LJ", n)], species_names=model.species)
            r0 = fire(s, ff, fmax=args.ftol, max_steps=200_000)
            start = os.path.join(tmp, f"is-{n}.xyz")
            write_extxyz(start, r0.system)
            spec["path"] = start
            results = []
            for kind in ("native", "lammps"):
                load = os.getloadavg()[0]
                results.append((kind, dict(run_case(dict(spec, engine=kind)), load=load)))
            if mpi:
                load = os.getloadavg()[0]
                results.append(("lammps", dict(run_mpi(dict(spec, engine="lammps"), 2, 1800),
                                               load=load)))
            base = results[0][1]["seconds_per_step"]
            for kind, r in results:
                label = f"{kind} x{r.get('ranks', 2)}"
                if "error" in r:
                    print(f"{'AQS step KA2 LJ':34s} {label:13s} {n:7d} failed: {r['error']}")
                    continue
                cpu = f"{r['cpu_per_step']:10.3g}" if r["ranks"] == 1 else f"{'-':>10s}"
                per = 1e6 * r["seconds_per_step"] / (n * max(r["iterations"], 1.0))
                print(f"{'AQS step KA2 LJ':34s} {label:13s} {n:7d} {r['steps']:6d} "
                      f"{r['seconds_per_step']:10.3g} {cpu} {r['iterations']:9.0f} "
                      f"{per:10.3f} {base / r['seconds_per_step']:9.2f} {r['load']:5.1f}",
                      flush=True)
                rows_aqs.append((n, kind, r))
    load1 = os.getloadavg()
    print(f"\nload average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; "
          f"total {time.perf_counter() - t_start:.0f} s")
    print("vs native: speed relative to the native engine on the same configuration (> 1: "
          "faster). The native engine runs on one core (no MPI); 'lammps x2' is mpiexec -n 2 "
          "with the box decomposed over both ranks. AQS iteration counts differ between "
          "engines only through rounding in FIRE; us/atom-it = wall time per atom and FIRE "
          "iteration. load: 1-minute load average when the row started (2 cores; a load "
          "above 2 means other jobs took part of the cores, most of all from the x2 rows).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
