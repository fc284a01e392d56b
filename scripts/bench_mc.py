"""Monte Carlo attempt rates of swapmc, side by side with a plain kernel and LAMMPS.

For KA2 (x_C = 0.10, rho = 1.2) at N = 1000, 8000 and 64 000, single core, this prints
displacement and swap attempts per second of swapmc in random and in sequential attempt
order, of a plain reference kernel written in this script (a textbook Numba Verlet-list
displacement loop, below), and -- when the ``lammps`` extra is installed -- of LAMMPS
``fix gcmc`` (translations only) and ``fix atom/swap`` on the very same configuration written
as a LAMMPS data file; then the same for Cu50Zr50 EAM, with Mendelev's ``CuZr_mm.eam.fs``
and with the built-in ZJW potential (written as a setfl file for LAMMPS), including LAMMPS
``fix sgcmc`` type flips. It also times the start-up of a fresh process (import + loading the
cached compiled kernels).

    python scripts/bench_mc.py            # full table (several minutes with LAMMPS)
    python scripts/bench_mc.py --quick    # one to two minutes
    python scripts/bench_mc.py --no-lammps
    python scripts/bench_mc.py --aging    # also: sequential order as its storage order ages
    python scripts/bench_mc.py --eam-profile   # also: EAM cost against table length and skin
    python scripts/bench_mc.py --threads-only [--cold-start]   # only the threaded rows

The threaded rows (``[moves] threads``, the domain-decomposed sweep) time whole sweeps by wall
clock, since CPU time adds up over threads: the serial sweep, the domain sweep on one thread
and on two, interleaved as above, with the load average before and after; the speed-up on
two cores gives the serial fraction by Amdahl's law and the scaling it implies on 64 cores.

Rates are attempts divided by the process CPU time of the timed call, which is robust to
other jobs on a shared machine. swapmc's two orders and the plain kernel are timed
interleaved (``--repeats`` rounds, the order alternating between rounds) on the same
configuration and step size; each row gives the median rate, and the ratios are medians of
the per-round ratios with their smallest and largest value.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit, prange

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


def sequential_twin(mc: MonteCarlo) -> MonteCarlo:
    """A sequential-order sampler on ``mc``'s configuration with its step size; ``mc`` is
    re-sorted so that both start from a fresh Morton order."""
    mc.spatial_sort()
    moves = MoveSettings(**{**mc.moves.to_dict(), "order": "sequential"})
    twin = MonteCarlo(mc.system(), mc.model, mc.temperature, moves=moves, seed=2,
                      energy_check_every=mc.energy_check_every)
    twin.delta = mc.delta
    return twin


def compare(samplers, moves, attempts, repeats, plain=None):
    """Interleaved timings: ``repeats`` rounds of every (sampler, move) pair and the plain
    kernel, the order of the samplers reversed every other round.

    Returns
    -------
    dict
        (label, move name) -> list of :func:`time_moves` results, one per round.
    """
    out = {}
    labels = list(samplers)
    for r in range(repeats):
        for label in (labels if r % 2 == 0 else labels[::-1]):
            for name, p_swap in moves:
                out.setdefault((label, name), []).append(
                    time_moves(samplers[label], p_swap, attempts))
        if plain is not None:
            out.setdefault(("plain", "displacement"), []).append(plain.time(attempts))
    return out


def print_rows(code, n, results, orders):
    for (label, name), rs in results.items():
        if label not in orders:
            continue
        rates = [r["rate"] for r in rs]
        print(f"{code if label != 'plain' else 'plain':8s} {n:7d} {name:14s} "
              f"{orders[label]:10s} {sum(r['attempts'] for r in rs):10d} "
              f"{np.median(rates):12.3e} {np.mean([r['acceptance'] for r in rs]):10.3f}",
              flush=True)


def ratio(results, a, b):
    """'median [min, max]' of the per-round rate ratios a / b (keys of ``results``)."""
    q = np.array([x["rate"] / y["rate"] for x, y in zip(results[a], results[b])])
    return f"{np.median(q):.2f} [{q.min():.2f}, {q.max():.2f}]"


def eam_potentials(tmp):
    """The Cu-Zr potentials benchmarked: Mendelev's ``CuZr_mm.eam.fs`` (from the LAMMPS
    package) and swapmc's built-in ZJW, written as a setfl file so that LAMMPS reads the
    very same tables.

    Returns
    -------
    list of (label, EAMPotential, potential file, LAMMPS pair style)
    """
    import lammps_peer

    from swapmc.models import EAMPotential, zjw_potential

    out = []
    try:
        path = lammps_peer.default_eam_potential()
    except FileNotFoundError as exc:
        print(f"# Mendelev Cu-Zr skipped: {exc}")
    else:
        out.append(("Mendelev CuZr_mm.eam.fs", EAMPotential.from_file(path), path, "eam/fs"))
    zjw = zjw_potential()
    zjw_file = os.path.join(tmp, "zjw.eam.alloy")
    zjw.write(zjw_file)
    out.append(("ZJW (built-in, written as setfl)", zjw, zjw_file, "eam/alloy"))
    return out


def eam_rows(sizes, attempts, repeats, lammps_ok, quick, tmp, ratio_lines):
    """swapmc and LAMMPS EAM rates on the same Cu50Zr50 configurations, for each potential
    of :func:`eam_potentials`."""
    import lammps_peer

    moves = (("displacement", 0.0), ("swap Cu<->Zr", 1.0))
    for label, potential, path, style in eam_potentials(tmp):
        print(f"\nCu50Zr50, EAM {label} ({style}), {EAM_DENSITY} Å^-3, "
              f"T = {EAM_TEMPERATURE:g} K, constant volume")
        tag = label.split()[0]
        for n in sizes:
            mc = prepare_eam(n, potential)
            seq = sequential_twin(mc)
            res = compare({"random": mc, "sequential": seq}, moves, attempts, repeats)
            print_rows("swapmc", n, res, {"random": "random", "sequential": "sequential"})
            ratio_lines.append(
                f"Cu-Zr {tag} N = {n:6d}: sequential / random: displacement "
                f"{ratio(res, ('sequential', moves[0][0]), ('random', moves[0][0]))}, swap "
                f"{ratio(res, ('sequential', moves[1][0]), ('random', moves[1][0]))}")
            if not lammps_ok:
                continue
            data = os.path.join(tmp, f"cuzr_{tag}_{n}.data")
            write_lammps_data(data, mc.system(), masses=list(potential.masses))
            few = 100 if quick else 300
            common = {"pair_style": style, "elements": list(potential.species)}
            d = lammps_peer.measure_eam_displacement_rate(data, path, EAM_TEMPERATURE, few,
                                                          mc.delta, 17, **common)
            s = lammps_peer.measure_eam_swap_rate(data, path, EAM_TEMPERATURE, few, 19,
                                                  **common)
            # sgcmc is the EAM peer of the targets: timed in as many rounds as swapmc (each a
            # fresh LAMMPS instance, seconds long), so its rate is a median too.
            flips = [lammps_peer.measure_eam_sgcmc_rate(data, path, EAM_TEMPERATURE,
                                                        (4 if quick else 20) * n, 23 + k,
                                                        **common)
                     for k in range(repeats)]
            flip_rates = np.array([g.get("rate_cpu", g["rate"]) for g in flips])
            g = dict(flips[0], attempts=sum(x["attempts"] for x in flips),
                     rate_cpu=float(np.median(flip_rates)),
                     acceptance=float(np.mean([x["acceptance"] for x in flips])))
            for name, r in (("gcmc transl.", d), ("atom/swap", s), ("sgcmc flips", g)):
                print(f"{'LAMMPS':8s} {n:7d} {name:14s} {'':10s} {r['attempts']:10d} "
                      f"{r.get('rate_cpu', r['rate']):12.3e} {r['acceptance']:10.3f}",
                      flush=True)
            over = []
            for name, _ in moves:
                q = np.array([x["rate"] for x in res[("random", name)]]) / flip_rates
                over.append(f"{np.median(q):.2f} [{q.min():.2f}, {q.max():.2f}]")
            ratio_lines.append(
                f"Cu-Zr {tag} N = {n:6d}: swapmc (random order) / LAMMPS sgcmc flips, "
                f"round by round: displacement {over[0]}, swap {over[1]}; sgcmc rate spread "
                f"[{flip_rates.min():.2e}, {flip_rates.max():.2e}]")


def eam_profile_rows(n, attempts, repeats):
    """Where an EAM attempt's time goes, measured by changing one thing at a time on one
    Cu50Zr50 configuration (ZJW, N = ``n``, 1500 K): the spline-table length (the built-in
    ZJW re-tabulated with nr = nrho rows, every table of the same potential; Mendelev's file
    has 10 000 rows) and the Verlet skin (the listed neighbours each attempt loops over, and
    the share of moves the O(N) fallback evaluates when the skin is small against the step).
    """
    from swapmc.models import zjw_potential

    print(f"\nEAM profile: Cu50Zr50 ZJW, N = {n}, T = {EAM_TEMPERATURE:g} K, random order, "
          f"median of {repeats} rounds of {attempts} attempts")
    base = prepare_eam(n, zjw_potential())
    print(f"step delta = {base.delta:.3f} Å (largest trial move {3 ** 0.5 * base.delta:.3f} Å)")
    header = (f"{'table rows':>10s} {'skin [Å]':>8s} {'listed':>7s} {'in r_c':>7s} "
              f"{'displ./s':>10s} {'ns/displ.':>9s} {'O(N) share':>10s} {'swaps/s':>10s} "
              f"{'ns/swap':>8s}")
    print(header)
    print("-" * len(header))
    cases = [(nr, 1.0) for nr in (500, 1000, 2000, 5000, 10000, 20000)]
    cases += [(5000, skin) for skin in (0.3, 0.5, 0.7, 1.5)]
    rc = None
    for nr, skin in cases:
        pot = zjw_potential(nr=nr, nrho=nr)
        rc = pot.cutoff
        mc = MonteCarlo(base.system(), pot, base.temperature, moves=base.moves, seed=3,
                        skin=skin)
        mc.delta = base.delta
        fallback0, tried0 = int(mc.nstats[1]), int(mc.counts[0, 0])
        disp = [time_moves(mc, 0.0, attempts) for _ in range(repeats)]
        # Warm-up attempts included: both counters cover every displacement made.
        fallback = (int(mc.nstats[1]) - fallback0) / (int(mc.counts[0, 0]) - tried0)
        swap = [time_moves(mc, 1.0, attempts // 2) for _ in range(repeats)]
        rd = float(np.median([r["rate"] for r in disp]))
        rs = float(np.median([r["rate"] for r in swap]))
        in_rc = 4.0 / 3.0 * np.pi * rc ** 3 * EAM_DENSITY
        print(f"{nr:10d} {skin:8.1f} {np.mean(mc.nnbr):7.1f} {in_rc:7.1f} {rd:10.3e} "
              f"{1e9 / rd:9.0f} {fallback:10.4f} {rs:10.3e} {1e9 / rs:8.0f}", flush=True)
    print(f"listed: mean Verlet-list length (r_c + skin, r_c = {rc:.3f} Å); in r_c: mean "
          "number of neighbours inside the cut-off at this density. A displacement computes "
          "every listed distance twice (old and new position) and, inside r_c, 2 pair, 3 "
          "density and 2 embedding spline rows per neighbour; a swap re-types two atoms "
          "(one distance pass each), i.e. two type flips.")


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


# --------------------------------------------------------------- plain reference kernel
# A textbook Metropolis displacement loop: one global Verlet list (radius r_c + skin, built
# from a cell list) rebuilt whenever a particle has moved far enough from its position at
# the last build that a trial move could reach a pair the list lacks; random particle
# choice, cut-and-shifted LJ with a branch per pair.


@njit(cache=True)
def plain_build(pos, box, r_list, cap):
    """Verlet list (N, cap) and counts; ``ok`` is False when a row would exceed ``cap``."""
    n = pos.shape[0]
    nbr = np.empty((n, cap), np.int32)
    cnt = np.zeros(n, np.int32)
    rl2 = r_list * r_list
    nc = int(box / r_list)
    if nc < 3:
        nc = 1  # one cell holding everything: all pairs
    side = box / nc
    cell = np.empty(n, np.int64)
    for i in range(n):
        cx = min(int(pos[i, 0] / side), nc - 1)
        cy = min(int(pos[i, 1] / side), nc - 1)
        cz = min(int(pos[i, 2] / side), nc - 1)
        cell[i] = (cx * nc + cy) * nc + cz
    order = np.argsort(cell)
    start = np.searchsorted(cell[order], np.arange(nc**3 + 1))
    span = 1 if nc >= 3 else 0
    for i in range(n):
        c = cell[i]
        cx, cy, cz = c // (nc * nc), (c // nc) % nc, c % nc
        for ox in range(-span, span + 1):
            for oy in range(-span, span + 1):
                for oz in range(-span, span + 1):
                    c2 = (((cx + ox) % nc) * nc + (cy + oy) % nc) * nc + (cz + oz) % nc
                    for t in range(start[c2], start[c2 + 1]):
                        j = order[t]
                        if j == i:
                            continue
                        dx = pos[j, 0] - pos[i, 0]
                        dy = pos[j, 1] - pos[i, 1]
                        dz = pos[j, 2] - pos[i, 2]
                        dx -= box * np.rint(dx / box)
                        dy -= box * np.rint(dy / box)
                        dz -= box * np.rint(dz / box)
                        if dx * dx + dy * dy + dz * dz < rl2:
                            if cnt[i] == cap:
                                return nbr, cnt, False
                            nbr[i, cnt[i]] = j
                            cnt[i] += 1
    return nbr, cnt, True


@njit(cache=True)
def plain_attempts(pos, species, box, eps4, sig2, rc2, shift, delta, beta, skin, n_attempts,
                   rng):
    """``n_attempts`` displacement attempts; returns (accepted, list builds)."""
    n = pos.shape[0]
    r_list = np.sqrt(rc2.max()) + skin
    limit = 0.5 * skin - np.sqrt(3.0) * delta  # |pos - ref| bound keeping trials covered
    cap = 64
    ok = False
    while not ok:
        cap *= 2
        nbr, cnt, ok = plain_build(pos, box, r_list, cap)
    ref = pos.copy()
    trial = np.empty(3)
    inv = 1.0 / box
    accepted, builds = 0, 1
    for _ in range(n_attempts):
        i = int(rng.random() * n)
        for d in range(3):
            x = pos[i, d] + delta * (2.0 * rng.random() - 1.0)
            trial[d] = x - box * np.floor(x / box)
        du = 0.0
        a = species[i]
        for k in range(cnt[i]):
            j = nbr[i, k]
            b = species[j]
            for new in range(2):
                x0, y0, z0 = (trial[0], trial[1], trial[2]) if new else (pos[i, 0], pos[i, 1],
                                                                         pos[i, 2])
                dx = pos[j, 0] - x0
                dy = pos[j, 1] - y0
                dz = pos[j, 2] - z0
                dx -= box * np.rint(dx * inv)
                dy -= box * np.rint(dy * inv)
                dz -= box * np.rint(dz * inv)
                r2 = dx * dx + dy * dy + dz * dz
                if r2 < rc2[a, b]:
                    sr2 = sig2[a, b] / r2
                    sr6 = sr2 * sr2 * sr2
                    u = eps4[a, b] * (sr6 * sr6 - sr6) - shift[a, b]
                    du += u if new else -u
        if du <= 0.0 or rng.random() < np.exp(-beta * du):
            accepted += 1
            pos[i, 0], pos[i, 1], pos[i, 2] = trial[0], trial[1], trial[2]
            dx = pos[i, 0] - ref[i, 0]
            dy = pos[i, 1] - ref[i, 1]
            dz = pos[i, 2] - ref[i, 2]
            dx -= box * np.rint(dx / box)
            dy -= box * np.rint(dy / box)
            dz -= box * np.rint(dz / box)
            if dx * dx + dy * dy + dz * dz > limit * limit:
                ok = False
                while not ok:
                    nbr, cnt, ok = plain_build(pos, box, r_list, cap)
                    if not ok:
                        cap *= 2
                ref[:, :] = pos
                builds += 1
    return accepted, builds


# Verlet skins (sigma_AA) tried for the plain kernel; it runs at the fastest of them.
PLAIN_SKINS = (0.5, 0.7, 1.0, 1.3)


class PlainKernel:
    """The plain kernel on a copy of a sampler's configuration (its storage order, so both
    read memory alike), step size and temperature, at its own best Verlet skin.

    The skin is chosen by timing ``PLAIN_SKINS`` on untimed copies of the configuration
    before the measurement: the global rebuilds make the plain kernel's best skin larger
    than swapmc's (0.5 sigma), and running it at swapmc's skin would handicap the peer.
    """

    def __init__(self, mc: MonteCarlo, trial_attempts: int = 200_000):
        model = mc.model
        self.pos = mc.pos.copy()
        self.species = mc.species.astype(np.int64)
        self.box = float(mc.lengths[0])
        src6 = (model.sigma / model.cutoff) ** 6
        self.params = (4.0 * model.epsilon, model.sigma**2, model.cutoff**2,
                       4.0 * model.epsilon * (src6 * src6 - src6))
        self.delta, self.beta = mc.delta, 1.0 / mc.temperature
        self.rng = np.random.default_rng(5)
        self.skin_rates = {}
        for skin in PLAIN_SKINS:
            pos = self.pos.copy()
            rng = np.random.default_rng(7)
            plain_attempts(pos, self.species, self.box, *self.params, self.delta, self.beta,
                           skin, 10_000, rng)
            c0 = time.process_time()
            plain_attempts(pos, self.species, self.box, *self.params, self.delta, self.beta,
                           skin, trial_attempts, rng)
            self.skin_rates[skin] = trial_attempts / (time.process_time() - c0)
        self.skin = max(self.skin_rates, key=self.skin_rates.get)

    def describe(self) -> str:
        rates = ", ".join(f"{s:g}: {r:.2e}/s" for s, r in self.skin_rates.items())
        return f"plain kernel skin {self.skin:g} sigma (fastest of {rates})"

    def time(self, attempts: int) -> dict:
        plain_attempts(self.pos, self.species, self.box, *self.params, self.delta, self.beta,
                       self.skin, min(attempts, 10_000), self.rng)  # compile, warm caches
        c0 = time.process_time()
        acc, builds = plain_attempts(self.pos, self.species, self.box, *self.params,
                                     self.delta, self.beta, self.skin, attempts, self.rng)
        cpu = time.process_time() - c0
        return {"attempts": attempts, "rate": attempts / cpu, "acceptance": acc / attempts,
                "builds": builds}


def blur_order(mc: MonteCarlo, noise: float, seed: int = 1) -> None:
    """Re-sort ``mc``'s storage along the Morton curve of its positions plus Gaussian noise
    of standard deviation ``noise`` per coordinate (inf: a random order), as if it had been
    sorted when the particles were elsewhere; the configuration itself is unchanged."""
    rng = np.random.default_rng(seed)
    pos = (mc.pos + rng.normal(0.0, noise, mc.pos.shape) if np.isfinite(noise)
           else rng.random(mc.pos.shape) * mc.lengths) % mc.lengths
    ncell = np.clip((mc.lengths / 1.5).astype(np.int64), 1, 1024)  # as MonteCarlo sorts
    cells = np.minimum((pos / mc.lengths * ncell).astype(np.int64), ncell - 1)
    code = np.zeros(mc.n, np.int64)
    for bit in range(10):
        for d in range(3):
            code |= ((cells[:, d] >> bit) & 1) << (3 * bit + d)
    perm = np.argsort(code, kind="stable")
    for name in ("pos", "species", "images", "order"):
        setattr(mc, name, np.ascontiguousarray(getattr(mc, name)[perm]))
    mc._init_members()
    mc._rebuild()
    mc.fstate[0] = mc.total_energy()


def aging_rows(n, attempts, repeats):
    """Sequential order with an aged storage order: what a long run's fixed order costs."""
    mc = prepare(n)
    mc.moves.p_swap = 0.0
    print(f"\nSequential order as its storage order ages (KA2 N = {n}, displacements): the "
          "storage order is the Morton order of the positions plus Gaussian noise of the "
          "given standard deviation per coordinate (sigma_AA); rates relative to random "
          "order (freshly sorted)")
    samplers = {"random": mc}
    for noise in (0.0, 1.0, 2.0, 4.0, 8.0, np.inf):
        twin = sequential_twin(mc)
        if noise > 0:
            blur_order(twin, noise)
        samplers[f"noise {noise:g}"] = twin
    res = compare(samplers, (("displacement", 0.0),), attempts, repeats)
    for label in samplers:
        rates = [r["rate"] for r in res[(label, "displacement")]]
        print(f"  {label:10s} {np.median(rates):12.3e} /s   "
              f"{ratio(res, (label, 'displacement'), ('random', 'displacement'))}")


def threaded_twins(mc: MonteCarlo) -> dict:
    """Serial and domain-decomposed samplers on ``mc``'s configuration and step size."""
    out = {}
    for label, threads in (("serial", 1), ("domains", 2)):
        moves = MoveSettings(**{**mc.moves.to_dict(), "threads": threads})
        twin = MonteCarlo(mc.system(), mc.model, mc.temperature, moves=moves, seed=3,
                          energy_check_every=0)
        twin.delta = mc.delta
        out[label] = twin
    return out


def time_sweeps(mc: MonteCarlo, threads: int, sweeps: int, inside=None) -> dict:
    """Wall-clock rate of ``sweeps`` sweeps; for the domain sweep on ``threads`` threads.
    ``inside``: the accumulator of :func:`_timed_phases`, reset after the warm-up sweep, to
    return the CPU-time fraction spent outside the parallel phases."""
    if mc.domain_sweep:
        mc.threads = threads
    mc.sweep(1)  # warm caches (and the thread pool)
    if inside is not None:
        inside[0] = 0.0
    before = mc.counts.copy()
    c0, w0 = time.process_time(), time.perf_counter()
    mc.sweep(sweeps)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    diff = mc.counts - before
    return {"attempts": int(diff[:2, 0].sum()), "rate": diff[:2, 0].sum() / wall,
            "cpu_rate": diff[:2, 0].sum() / cpu, "acceptance": diff[0, 1] / max(diff[0, 0], 1),
            "outside": None if inside is None else 1.0 - inside[0] / cpu}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


@njit(parallel=True, cache=True)
def _control_loop(work):
    """An embarrassingly parallel loop (no shared writes, no memory traffic): its speed-up
    is what the machine offers this process at the moment, the ceiling for the sweep."""
    out = np.zeros(work.shape[0])
    for i in prange(work.shape[0]):
        x = 0.0
        for k in range(work[i]):
            x += np.sqrt(k + 0.5 * i)
        out[i] = x
    return out


def control_rate(threads: int) -> float:
    """Iterations per wall second of :func:`_control_loop` on ``threads`` threads."""
    import numba

    numba.set_num_threads(threads)
    work = np.full(64, 2_000_000, np.int64)
    _control_loop(work[:2] // 1000)
    w0 = time.perf_counter()
    _control_loop(work)
    return work.sum() / (time.perf_counter() - w0)


def _timed_phases(inside):
    """``mc_domains.phases`` wrapped to add its CPU time to ``inside[0]``."""
    from swapmc.kernels import mc_domains

    phases = mc_domains.phases

    def timed(*a):
        t0 = time.process_time()
        phases(*a)
        inside[0] += time.process_time() - t0

    return phases, timed


def threaded_rows(sizes, sweeps, repeats, cores, eam_sizes=()):
    """Serial sweep, domain sweep on 1 thread and on ``cores`` threads, interleaved, for
    KA2 at ``sizes`` and Cu50Zr50 (Mendelev EAM, p_swap = 0.2) at ``eam_sizes``."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < cores:
        print(f"\nthreaded rows skipped: Numba may start {numba.config.NUMBA_NUM_THREADS} "
              f"threads, {cores} needed")
        return []
    print(f"\nThreaded sweep ([moves] threads, domain decomposition; KA2 T = {TEMPERATURE}, "
          f"p_swap as in the preset; Cu50Zr50 Mendelev EAM {EAM_TEMPERATURE:g} K, p_swap = "
          f"0.2): wall-clock attempts/s, median of {repeats} interleaved rounds of {sweeps} "
          "sweeps; OMP_WAIT_POLICY = "
          f"{os.environ.get('OMP_WAIT_POLICY', 'PASSIVE (set by swapmc)')}")
    header = f"{'model':5s} {'N':>7s} {'sweep':18s} {'domains':>9s} {'attempts/s':>12s} " \
             f"{'acceptance':>10s} {'load avg (1, 5, 15 min)':>24s}"
    print(header)
    print("-" * len(header))
    from swapmc.kernels import mc_domains

    lines = []
    cases = [("KA2", n) for n in sizes] + [("Cu-Zr", n) for n in eam_sizes]
    for system, n in cases:
        if system == "KA2":
            mc = prepare(n)
        else:
            import lammps_peer

            from swapmc.models import EAMPotential

            mc = prepare_eam(n, EAMPotential.from_file(lammps_peer.default_eam_potential()))
            mc.moves.p_swap = 0.2
        twins = threaded_twins(mc)
        dom = twins["domains"]
        runs = (("serial", twins["serial"], 1), ("domains, 1 thread", dom, 1),
                (f"domains, {cores} threads", dom, cores))
        res = {label: [] for label, _, _ in runs}
        load0 = load_average()
        f_bound = []
        control = []
        for r in range(repeats):
            control.append(control_rate(cores) / control_rate(1))
            for label, sampler, threads in (runs if r % 2 == 0 else runs[::-1]):
                if label == "domains, 1 thread":
                    # CPU time inside the parallel colour phases on one thread (robust to
                    # other jobs): the rest of the sweep (refresh bookkeeping, domain sorts,
                    # Python) is at most the serial fraction (the refreshes' new rows run in
                    # parallel too).
                    inside = [0.0]
                    phases, mc_domains.phases = _timed_phases(inside)
                    try:
                        res[label].append(time_sweeps(sampler, threads, sweeps, inside))
                        f_bound.append(res[label][-1]["outside"])
                    finally:
                        mc_domains.phases = phases
                else:
                    res[label].append(time_sweeps(sampler, threads, sweeps))
        load1 = load_average()
        grid = "x".join(str(k) for k in dom.domains)
        for label, _, _ in runs:
            rs = res[label]
            print(f"{system:5s} {n:7d} {label:18s} {grid if label != 'serial' else '':>9s} "
                  f"{np.median([x['rate'] for x in rs]):12.3e} "
                  f"{np.mean([x['acceptance'] for x in rs]):10.3f} "
                  f"{load0 + ' -> ' + load1:>24s}", flush=True)
        par = f"domains, {cores} threads"
        s_dom = np.array([a["rate"] / b["rate"] for a, b in zip(res[par],
                                                               res["domains, 1 thread"])])
        s_ser = np.array([a["rate"] / b["rate"] for a, b in zip(res[par], res["serial"])])
        one = np.array([a["rate"] / b["rate"] for a, b in zip(res["domains, 1 thread"],
                                                              res["serial"])])
        # CPU seconds per attempt, all threads together, 2 threads against 1: the work the
        # parallel run adds (waiting threads sleep, so this is robust to other jobs).
        cpu_cost = np.array([b["cpu_rate"] / a["cpu_rate"] for a, b in zip(
            res[par], res["domains, 1 thread"])])
        # Amdahl: S = 1 / (f + (1 - f) / p)  =>  f = (p / S - 1) / (p - 1).
        f = (cores / s_dom - 1.0) / (cores - 1)
        f_med = float(np.median(f))
        s64 = 1.0 / (np.clip(f, 0.0, 1.0) + (1.0 - np.clip(f, 0.0, 1.0)) / 64)
        lines.append(
            f"{system:5s} N = {n:6d}: {cores} threads / 1 thread (same chain) "
            f"{np.median(s_dom):.2f} [{s_dom.min():.2f}, {s_dom.max():.2f}]; {cores} threads "
            f"/ serial sweep {np.median(s_ser):.2f} [{s_ser.min():.2f}, {s_ser.max():.2f}]; "
            f"1 thread / serial {np.median(one):.2f} [{one.min():.2f}, {one.max():.2f}]; "
            f"control loop (embarrassingly parallel) {cores} threads / 1 thread "
            f"{np.median(control):.2f} [{min(control):.2f}, {max(control):.2f}]; "
            f"CPU time per attempt, {cores} threads / 1 thread {np.median(cpu_cost):.2f} "
            f"[{cpu_cost.min():.2f}, {cpu_cost.max():.2f}]; "
            f"serial fraction f = {f_med:.3f} [{f.min():.3f}, {f.max():.3f}] -> 64 cores "
            f"{np.median(s64):.1f}x [{s64.min():.1f}, {s64.max():.1f}] "
            f"(domains per colour {int(dom.domains.prod()) // 8}); CPU time outside the "
            f"parallel phases on 1 thread {np.median(f_bound):.3f} [{min(f_bound):.3f}, "
            f"{max(f_bound):.3f}] of the sweep -> Amdahl "
            f"{1.0 / (np.median(f_bound) + (1 - np.median(f_bound)) / 64):.1f}x on 64 cores")
    return lines


def threaded_startup() -> tuple[float, float]:
    """Wall time of a fresh process that imports swapmc, builds a threaded sampler (KA2,
    N = 1500) and runs one sweep, with an empty kernel cache (every kernel compiled) and
    then with the cache it left; returns (cold, warm) seconds."""
    code = (
        "from swapmc.models import load_preset; from swapmc.mc import MonteCarlo, MoveSettings;"
        "from swapmc.build import composition_counts, lattice_configuration;"
        "p=load_preset('ka2-x10'); c=composition_counts(p.composition, 1500, p.model.species);"
        "s=lattice_configuration(c, p.model.species, 1.2, 1);"
        "m=MonteCarlo(s, p.model, 1.0, moves=MoveSettings(**p.moves, threads=2)); m.sweep(1)"
    )
    with tempfile.TemporaryDirectory(prefix="swapmc-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="2")
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           env=env)
            times.append(time.perf_counter() - t0)
    return times[0], times[1]


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
    ap.add_argument("--repeats", type=int, default=None,
                    help="interleaved timing rounds (default 3 with --quick, else 5)")
    ap.add_argument("--no-lammps", action="store_true")
    ap.add_argument("--eam-sizes", type=int, nargs="+", default=None)
    ap.add_argument("--no-eam", action="store_true")
    ap.add_argument("--aging", action="store_true",
                    help="also time sequential order with aged storage orders (largest N)")
    ap.add_argument("--threads-only", action="store_true",
                    help="only the threaded rows (KA2 N = 32 000 and 64 000 by default)")
    ap.add_argument("--thread-sizes", type=int, nargs="+", default=[32000, 64000])
    ap.add_argument("--thread-eam-sizes", type=int, nargs="*", default=[16000])
    ap.add_argument("--thread-sweeps", type=int, default=10,
                    help="sweeps per timed round of the threaded rows (default 10)")
    ap.add_argument("--no-threads", action="store_true", help="no threaded rows")
    ap.add_argument("--eam-profile", action="store_true",
                    help="also time EAM attempts against spline-table length and Verlet skin "
                         "(ZJW, N = 2000)")
    ap.add_argument("--cold-start", action="store_true",
                    help="also time a process compiling every kernel from an empty cache")
    args = ap.parse_args(argv)
    if args.threads_only:
        repeats = args.repeats or 5
        print(f"swapmc {__version__} threaded Monte Carlo sweep benchmark: KA2 x_C = 0.10, "
              f"rho = 1.2, T = {TEMPERATURE}")
        print(machine_line())
        print(f"load average (1, 5, 15 min) at the start: {load_average()}")
        if args.cold_start:
            cold, warm = threaded_startup()
            print(f"start-up with threads = 2 (fresh process, KA2 N = 1500, one sweep): "
                  f"{cold:.1f} s with an empty kernel cache (every kernel compiled), "
                  f"{warm:.2f} s with the cache it left")
        lines = threaded_rows(args.thread_sizes, args.thread_sweeps, repeats, 2,
                              args.thread_eam_sizes)
        print(f"\nRatios in the same run (median [min, max] over the {repeats} rounds):")
        for line in lines:
            print("  " + line)
        print(f"load average (1, 5, 15 min) at the end: {load_average()}")
        return 0
    sizes = args.sizes or ([1000, 8000] if args.quick else [1000, 8000, 64000])
    attempts = 500_000 if args.quick else 1_000_000
    repeats = args.repeats or (3 if args.quick else 5)

    lammps_ok, lammps_why = False, "disabled (--no-lammps)"
    if not args.no_lammps:
        import lammps_peer

        lammps_ok, lammps_why = lammps_peer.lammps_available()

    print(f"swapmc {__version__} Monte Carlo benchmark: KA2 x_C = 0.10, rho = 1.2, "
          f"T = {TEMPERATURE}, single core")
    print(machine_line())
    print(f"LAMMPS: {lammps_why}")
    print(f"start-up (fresh process, warm kernel cache, 1 sweep of N = 256): "
          f"{startup_seconds():.2f} s")
    print(f"swapmc and plain rows: median of {repeats} interleaved rounds of {attempts} "
          "attempts each (attempts column: all rounds)\n")
    header = f"{'code':8s} {'N':>7s} {'move':14s} {'order':10s} {'attempts':>10s} " \
             f"{'attempts/s':>12s} {'acceptance':>10s}"
    print(header)
    print("-" * len(header))
    tmp = tempfile.mkdtemp(prefix="swapmc-bench-")
    ratio_lines = []
    moves = (("displacement", 0.0), ("swap A,B<->C", 1.0))
    for n in sizes:
        mc = prepare(n)
        seq = sequential_twin(mc)
        plain = PlainKernel(mc, 50_000 if args.quick else 200_000)
        print(f"# N = {n}: swapmc skin {mc.skin:g} sigma; {plain.describe()}", flush=True)
        res = compare({"random": mc, "sequential": seq}, moves, attempts, repeats,
                      plain=plain)
        print_rows("swapmc", n, res, {"random": "random", "sequential": "sequential",
                                      "plain": "random"})
        disp, swap = moves[0][0], moves[1][0]
        ratio_lines.append(
            f"KA2   N = {n:6d}: sequential / random: displacement "
            f"{ratio(res, ('sequential', disp), ('random', disp))}, swap "
            f"{ratio(res, ('sequential', swap), ('random', swap))}; swapmc / plain "
            f"displacement: random {ratio(res, ('random', disp), ('plain', disp))}, "
            f"sequential {ratio(res, ('sequential', disp), ('plain', disp))}; swap / "
            f"displacement: random {ratio(res, ('random', swap), ('random', disp))}, "
            f"sequential {ratio(res, ('sequential', swap), ('sequential', disp))}")
        if not lammps_ok:
            continue
        data = os.path.join(tmp, f"ka2_{n}.data")
        write_lammps_data(data, mc.system(), masses=[1.0, 1.0, 1.0])
        # LAMMPS costs grow like N per attempt: scale its attempt counts so each row takes
        # seconds, not hours.
        n_disp = max(2000, int((4e4 if not args.quick else 1e4) * 1000 / n))
        n_swap = max(20, int((400 if not args.quick else 100) * 1000 / n))
        d = lammps_peer.measure_displacement_rate(data, TEMPERATURE, n_disp, mc.delta, 11)
        print(f"{'LAMMPS':8s} {n:7d} {'gcmc transl.':14s} {'':10s} {d['attempts']:10d} "
              f"{d.get('rate_cpu', d['rate']):12.3e} {d['acceptance']:10.3f}", flush=True)
        s = lammps_peer.measure_swap_rate(data, TEMPERATURE, n_swap, [(1, 3), (2, 3)], 13)
        print(f"{'LAMMPS':8s} {n:7d} {'atom/swap':14s} {'':10s} {s['attempts']:10d} "
              f"{s.get('rate_cpu', s['rate']):12.3e} {s['acceptance']:10.3f}", flush=True)
    if not args.no_eam:
        eam_sizes = args.eam_sizes or ([2000] if args.quick else [2000, 16000])
        eam_rows(eam_sizes, attempts // 4, repeats, lammps_ok, args.quick, tmp, ratio_lines)
    if not args.no_threads:
        ratio_lines += threaded_rows(args.thread_sizes if not args.quick else [32000],
                                     args.thread_sweeps, repeats, 2,
                                     [] if args.no_eam or args.quick else args.thread_eam_sizes)
    print(f"\nRatios in the same run (median [min, max] over the {repeats} rounds):")
    for line in ratio_lines:
        print("  " + line)
    if args.aging:
        aging_rows(max(sizes), attempts, repeats)
    if args.eam_profile:
        eam_profile_rows(2000, attempts // 10 if args.quick else attempts // 4, repeats)
    print("\nswapmc and plain rates are attempts per CPU second of the timed call; LAMMPS "
          "rates are its own attempt counters per CPU second of `run` (setup excluded); "
          "LAMMPS `fix sgcmc` flips change the composition (semi-grand canonical), swaps do "
          "not.")
    print("plain: the reference kernel in this script (global Verlet list; same "
          "configuration, storage order and step size as swapmc, at its own fastest skin).")
    print("LAMMPS displacements are uniform in a ball of radius delta, swapmc's in a cube of "
          "half-width delta (same delta).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
