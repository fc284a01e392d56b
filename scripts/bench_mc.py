"""Monte Carlo attempt rates of swapmc, side by side with LAMMPS on the same configurations.

For KA2 (x_C = 0.10, rho = 1.2) at N = 1000, 8000 and 64 000, single core, this prints
displacement and swap attempts per second of swapmc and -- when the ``lammps`` extra is
installed -- of LAMMPS ``fix gcmc`` (translations only) and ``fix atom/swap`` on the very same
configuration written as a LAMMPS data file. It also times the start-up of a fresh process
(import + loading the cached compiled kernels).

    python scripts/bench_mc.py            # full table (several minutes with LAMMPS)
    python scripts/bench_mc.py --quick    # about a minute
    python scripts/bench_mc.py --no-lammps

Rates are attempts divided by the process CPU time of the timed call, which is robust to
other jobs on a shared machine; wall time is printed too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

# Runnable from a checkout without installing: the repository root and scripts/ itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchinfo import machine_line  # noqa: E402

from swapmc import __version__  # noqa: E402
from swapmc.build import composition_counts, lattice_configuration  # noqa: E402
from swapmc.io import write_lammps_data  # noqa: E402
from swapmc.mc import MonteCarlo, MoveSettings  # noqa: E402
from swapmc.models import load_preset  # noqa: E402

TEMPERATURE = 0.6
EAM_TEMPERATURE = 1500.0  # K
EAM_DENSITY = 0.0585  # atoms / Å^3, Cu50Zr50 liquid


def prepare(n: int, seed: int = 1) -> MonteCarlo:
    """KA2 at N particles: fcc start, 20 sweeps at T = 2 to melt, then 20 tuning sweeps at the
    benchmark temperature (the step size is then frozen as in production)."""
    preset = load_preset("ka2-x10")
    counts = composition_counts(preset.composition, n, preset.model.species)
    system = lattice_configuration(counts, preset.model.species, preset.density, seed)
    mc = MonteCarlo(system, preset.model, 2.0, moves=MoveSettings(**preset.moves), seed=seed)
    mc.equilibrate(20)
    mc.temperature = TEMPERATURE
    mc.equilibrate(20)
    return mc


def prepare_eam(n: int, potential, seed: int = 1) -> MonteCarlo:
    """Cu50Zr50 on ``potential`` at N atoms: random start at 0.0585 Å^-3, 20 sweeps at
    3000 K, then 20 tuning sweeps at 1500 K (constant volume, so LAMMPS sees the same box)."""
    from swapmc.build import random_configuration

    counts = composition_counts({"Cu": 0.5, "Zr": 0.5}, n, potential.species)
    system = random_configuration(counts, potential.species, EAM_DENSITY, seed,
                                  min_distance=2.0)
    moves = MoveSettings(p_swap=0.0, swap_classes=[("Cu", "Zr")], displacement=0.2)
    mc = MonteCarlo(system, potential, 3000.0, moves=moves, seed=seed)
    mc.equilibrate(20)
    mc.temperature = EAM_TEMPERATURE
    mc.equilibrate(20)
    return mc


def eam_rows(sizes, attempts, lammps_ok, quick, tmp):
    """swapmc and LAMMPS EAM rates on the same Cu50Zr50 configurations (CuZr_mm.eam.fs)."""
    import lammps_peer

    from swapmc.models import EAMPotential

    path = lammps_peer.default_eam_potential()
    potential = EAMPotential.from_file(path)
    print(f"\nCu50Zr50, EAM {os.path.basename(path)} (Mendelev, eam/fs), "
          f"{EAM_DENSITY} Å^-3, T = {EAM_TEMPERATURE:g} K, constant volume")
    for n in sizes:
        mc = prepare_eam(n, potential)
        for name, p_swap in (("displacement", 0.0), ("swap Cu<->Zr", 1.0)):
            r = time_moves(mc, p_swap, attempts)
            print(f"{'swapmc':8s} {n:7d} {name:14s} {r['attempts']:10d} {r['rate']:12.3e} "
                  f"{r['acceptance']:10.3f}", flush=True)
        if not lammps_ok:
            continue
        data = os.path.join(tmp, f"cuzr_{n}.data")
        write_lammps_data(data, mc.system(), masses=list(potential.masses))
        few = 100 if quick else 300
        d = lammps_peer.measure_eam_displacement_rate(data, path, EAM_TEMPERATURE, few,
                                                      mc.delta, 17)
        s = lammps_peer.measure_eam_swap_rate(data, path, EAM_TEMPERATURE, few, 19)
        g = lammps_peer.measure_eam_sgcmc_rate(data, path, EAM_TEMPERATURE,
                                               (4 if quick else 20) * n, 23)
        for label, res in (("gcmc transl.", d), ("atom/swap", s), ("sgcmc flips", g)):
            print(f"{'LAMMPS':8s} {n:7d} {label:14s} {res['attempts']:10d} "
                  f"{res.get('rate_cpu', res['rate']):12.3e} {res['acceptance']:10.3f}",
                  flush=True)


def time_moves(mc: MonteCarlo, p_swap: float, attempts: int) -> dict:
    """Time ``attempts`` attempts with the given swap probability."""
    mc.moves.p_swap = p_swap
    mc.attempts(min(attempts, 10_000))  # warm caches
    before = mc.counts.copy()
    c0, w0 = time.process_time(), time.perf_counter()
    mc.attempts(attempts)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    diff = mc.counts - before
    k = 1 if p_swap > 0 else 0
    return {"attempts": int(diff[k, 0]), "rate": diff[k, 0] / cpu, "wall": wall,
            "acceptance": diff[k, 1] / max(diff[k, 0], 1)}


def startup_seconds() -> float:
    """Wall time of a fresh process that imports swapmc and runs one sweep of a tiny system
    (compiled kernels loaded from the cache)."""
    code = (
        "import time; t=time.perf_counter();"
        "from swapmc.models import load_preset; from swapmc.mc import MonteCarlo, MoveSettings;"
        "from swapmc.build import composition_counts, lattice_configuration;"
        "p=load_preset('ka2-x10'); c=composition_counts(p.composition, 256, p.model.species);"
        "s=lattice_configuration(c, p.model.species, 1.2, 1);"
        "m=MonteCarlo(s, p.model, 1.0, moves=MoveSettings(**p.moves)); m.sweep(1);"
        "print(time.perf_counter()-t)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm cache
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 1000, 8000, short runs")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--no-lammps", action="store_true")
    ap.add_argument("--eam-sizes", type=int, nargs="+", default=None)
    ap.add_argument("--no-eam", action="store_true")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([1000, 8000] if args.quick else [1000, 8000, 64000])
    attempts = 1_000_000 if args.quick else 4_000_000

    lammps_ok, lammps_why = False, "disabled (--no-lammps)"
    if not args.no_lammps:
        import lammps_peer

        lammps_ok, lammps_why = lammps_peer.lammps_available()

    print(f"swapmc {__version__} Monte Carlo benchmark: KA2 x_C = 0.10, rho = 1.2, "
          f"T = {TEMPERATURE}, single core")
    print(machine_line())
    print(f"LAMMPS: {lammps_why}")
    print(f"start-up (fresh process, warm kernel cache, 1 sweep of N = 256): "
          f"{startup_seconds():.2f} s\n")
    header = f"{'code':8s} {'N':>7s} {'move':14s} {'attempts':>10s} {'attempts/s':>12s} " \
             f"{'acceptance':>10s}"
    print(header)
    print("-" * len(header))
    tmp = tempfile.mkdtemp(prefix="swapmc-bench-")
    for n in sizes:
        mc = prepare(n)
        for name, p_swap in (("displacement", 0.0), ("swap A,B<->C", 1.0)):
            r = time_moves(mc, p_swap, attempts)
            print(f"{'swapmc':8s} {n:7d} {name:14s} {r['attempts']:10d} {r['rate']:12.3e} "
                  f"{r['acceptance']:10.3f}", flush=True)
        if not lammps_ok:
            continue
        data = os.path.join(tmp, f"ka2_{n}.data")
        write_lammps_data(data, mc.system(), masses=[1.0, 1.0, 1.0])
        # LAMMPS costs grow like N per attempt: scale its attempt counts so each row takes
        # seconds, not hours.
        n_disp = max(2000, int((4e4 if not args.quick else 1e4) * 1000 / n))
        n_swap = max(20, int((400 if not args.quick else 100) * 1000 / n))
        d = lammps_peer.measure_displacement_rate(data, TEMPERATURE, n_disp, mc.delta, 11)
        print(f"{'LAMMPS':8s} {n:7d} {'gcmc transl.':14s} {d['attempts']:10d} "
              f"{d.get('rate_cpu', d['rate']):12.3e} {d['acceptance']:10.3f}", flush=True)
        s = lammps_peer.measure_swap_rate(data, TEMPERATURE, n_swap, [(1, 3), (2, 3)], 13)
        print(f"{'LAMMPS':8s} {n:7d} {'atom/swap':14s} {s['attempts']:10d} "
              f"{s.get('rate_cpu', s['rate']):12.3e} {s['acceptance']:10.3f}", flush=True)
    if not args.no_eam:
        eam_sizes = args.eam_sizes or ([2000] if args.quick else [2000, 16000])
        eam_rows(eam_sizes, attempts // 4, lammps_ok, args.quick, tmp)
    print("\nswapmc rates are attempts per CPU second of the timed call; LAMMPS rates are its "
          "own attempt counters per CPU second of `run` (setup excluded); LAMMPS `fix sgcmc` "
          "flips change the composition (semi-grand canonical), swaps do not.")
    print("LAMMPS displacements are uniform in a ball of radius delta, swapmc's in a cube of "
          "half-width delta (same delta).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
