"""MD speed of swapmc, side by side with LAMMPS on the same configurations.

Cases (single core, NVT, velocity Verlet):

* KA (80:20), N = 8000, rho = 1.2, T = 0.8, dt = 0.005 tau_LJ: swapmc with a Bussi
  thermostat (tau = 0.5), LAMMPS with Nose-Hoover (``lj/cut``, shifted, per-pair cut-offs);
* Cu64Zr36 EAM, N = 2000, 0.0627 Å^-3, 1500 K, dt = 2 fs, with the ZJW potential (written
  by swapmc as ``eam/alloy``) and Mendelev's ``CuZr_mm.eam.fs`` (``eam/fs``).

Every configuration is built and relaxed by swapmc (random insertion, FIRE), written with
:func:`swapmc.io.write_lammps_data`, and LAMMPS runs the very same file in the same process.
Rates are atom-steps per *CPU* second of the timed run (robust on a shared machine); wall
rates are printed too. The thermostats differ (global rescaling vs Nose-Hoover) but both are
O(N) with negligible cost next to the forces.

    python scripts/bench_md.py            # ~2-3 minutes
    python scripts/bench_md.py --quick    # ~30 s
    python scripts/bench_md.py --no-lammps
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import __version__  # noqa: E402
from swapmc.build import random_configuration  # noqa: E402
from swapmc.io import write_lammps_data  # noqa: E402
from swapmc.md import MD, BussiThermostat, ForceField, fire, maxwell_boltzmann  # noqa: E402
from swapmc.models import load_preset, zjw_potential  # noqa: E402
from swapmc.models.eam import EAMPotential  # noqa: E402

EAM_DENSITY = 0.0627  # atoms / Å^3, Cu64Zr36 liquid near 1500 K


def prepare_ka(n: int):
    """KA at rho = 1.2: random insertion, then FIRE (300 steps) to remove close pairs."""
    pre = load_preset("ka")
    from swapmc.build import composition_counts

    counts = composition_counts(pre.composition, n, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=1, min_distance=0.75)
    ff = ForceField(pre.model)
    return ff, fire(s, ff, fmax=1e-2, max_steps=300).system


def prepare_eam(potential, n: int):
    """Cu64Zr36 at 0.0627 Å^-3: random insertion, then FIRE (300 steps)."""
    n_cu = int(round(0.64 * n))
    s = random_configuration([n_cu, n - n_cu], potential.species, EAM_DENSITY, seed=1,
                             min_distance=2.1)
    ff = ForceField(potential)
    return ff, fire(s, ff, fmax=1e-2, max_steps=300).system


def time_swapmc(ff, system, temperature, dt, tau, n_steps, warmup):
    """CPU and wall rates of ``MD.run`` after ``warmup`` steps (compilation, first list)."""
    rng = np.random.default_rng(0)
    s = system.copy()
    s.velocities = maxwell_boltzmann(ff.masses(s.species), temperature, ff.kB, ff.mvv2e, rng)
    md = MD(s, ff, dt, thermostat=BussiThermostat(temperature, tau, rng))
    md.run(warmup)
    b0 = md.nlist.builds
    c0, w0 = time.process_time(), time.perf_counter()
    md.run(n_steps)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"rate_cpu": md.n * n_steps / cpu, "rate": md.n * n_steps / wall, "steps": n_steps,
            "cpu_seconds": cpu, "builds": md.nlist.builds - b0,
            "final_temperature": md.temperature, "n": md.n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (~30 s)")
    ap.add_argument("--no-lammps", action="store_true")
    args = ap.parse_args(argv)
    steps_lj, steps_eam = (200, 200) if args.quick else (1000, 1000)
    warmup = 50 if args.quick else 200

    lammps_ok, lammps_why, peer = False, "skipped (--no-lammps)", None
    if not args.no_lammps:
        try:
            import lammps_peer as peer

            lammps_ok, lammps_why = peer.lammps_available()
        except ImportError as err:
            lammps_why = f"unavailable ({err})"
    print(f"swapmc {__version__} MD benchmark: NVT velocity Verlet, single core, "
          f"atom-steps per CPU second")
    print(machine_line())
    print(f"LAMMPS: {lammps_why}\n")
    head = (f"{'case':34s} {'code':7s} {'N':>6s} {'steps':>6s} {'atom-steps/s':>13s} "
            f"{'(wall)':>10s} {'builds':>7s} {'T_end':>8s}")
    print(head)
    print("-" * len(head))

    def row(case, code, r):
        print(f"{case:34s} {code:7s} {r['n']:6d} {r['steps']:6d} {r['rate_cpu']:13.3e} "
              f"{r['rate']:10.3e} {r.get('builds', -1):7d} {r['final_temperature']:8.4g}",
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        # ---- KA LJ
        ff, s = prepare_ka(8000)
        r = time_swapmc(ff, s, 0.8, 0.005, 0.5, steps_lj, warmup)
        row("KA T=0.8 dt=0.005", "swapmc", r)
        if lammps_ok:
            data = os.path.join(tmp, "ka.data")
            write_lammps_data(data, s)
            lr = peer.measure_lj_md_rate(data, 0.8, steps_lj, model="ka", timestep=0.005)
            lr["n"], lr["builds"] = int(lr["n_particles"]), int(lr.get("neighbor_builds", -1))
            row("KA T=0.8 dt=0.005", "LAMMPS", lr)
        # ---- EAM
        eams = [("ZJW", zjw_potential(), "eam/alloy")]
        try:
            mm = peer.default_eam_potential() if peer is not None else None
        except (FileNotFoundError, AttributeError):
            mm = None
        if mm is not None:
            eams.append(("CuZr_mm.eam.fs", EAMPotential.from_file(mm), "eam/fs"))
        for name, pot, style in eams:
            ff, s = prepare_eam(pot, 2000)
            case = f"Cu64Zr36 {name} 1500K 2fs"
            r = time_swapmc(ff, s, 1500.0, 0.002, 0.1, steps_eam, warmup)
            row(case, "swapmc", r)
            if lammps_ok:
                data = os.path.join(tmp, f"cuzr_{style.replace('/', '_')}.data")
                write_lammps_data(data, s, masses=list(pot.masses))
                if style == "eam/alloy":
                    potfile = os.path.join(tmp, "zjw.eam.alloy")
                    pot.write(potfile)
                else:
                    potfile = mm
                lr = peer.measure_eam_md_rate(data, potfile, 1500.0, steps_eam,
                                              pair_style=style, elements=list(pot.species),
                                              timestep=0.002)
                lr["n"], lr["builds"] = (int(lr["n_particles"]),
                                         int(lr.get("neighbor_builds", -1)))
                row(case, "LAMMPS", lr)
    print("\nswapmc: Bussi thermostat; LAMMPS: Nose-Hoover (damping 100 dt). MD skins: "
          "swapmc 0.3 sigma / 1 Å; LAMMPS as in scripts/lammps_peer.py.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
