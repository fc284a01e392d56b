"""Swap showcase: tau_alpha of KA2 with and without swap moves, and the speed-up.

KA2 is the Kob-Andersen A80B20 mixture doped with a third species C whose interactions are
the midpoint of the A and B ones, here at x_C = 0.10 with C replacing A (preset
``ka2-x10``; Parmar, Ozawa & Berthier, PRL 125, 085505 (2020)). Swap moves that exchange
the species of an A (or B) particle and a C particle let the liquid relax by changing
particle sizes instead of waiting for cage escapes, so the structural relaxation time in MC
sweeps is expected to grow more slowly on cooling than with displacements alone; this
script measures by how much. The mode-coupling temperature of KA at density 1.2 is
T_MCT ~ 0.435.

Protocol, temperatures in decreasing order (a cooling sequence):

1. *Equilibrate with swap on* (p_swap = 0.2, classes A-C and B-C), starting from the
   configuration left at the previous temperature (a random insertion at the first one), for
   ``--equil-factor`` times the expected swap tau_alpha (at least ``--equil-min`` sweeps).
   The displacement step is tuned toward 40 % acceptance during this phase, then frozen.
   Swap is the fast way to reach equilibrium at low T, and it samples the same Boltzmann
   distribution (positions and species at fixed composition) as displacements alone, so its
   configurations are valid equilibrium starts for both measurements.
2. *Production with swap on*: F_s(q, t) of the A particles from unwrapped positions.
3. *Production with swap off*: a new sampler (displacements only, p_swap = 0) starts from
   the final swap configuration, tunes its step for ``--tune-sweeps`` sweeps (a short time
   compared with tau_alpha at low T, so the state stays an equilibrium one), then measures
   F_s the same way.

F_s is measured on log-spaced lags (``--per-decade`` per decade) from many time origins, so
one run covers lags from 1 sweep up to the budget. Origins are spaced a quarter of the
current tau_alpha estimate apart (of the elapsed time while F_s has not yet decayed), so
they are neither wastefully dense nor too few. The particles tracked from an origin are
those that are A *at that origin*: a swap changes a particle's species but never its
position, so its displacement stays well defined. A lag enters the tau_alpha estimate once
``--min-origins`` origins have reached it, and a run stops when such lags extend to
``--window`` x tau_alpha, or at ``--max-sweeps``. tau_alpha is where F_s = 1/e. A run that
ends before F_s decays gives only a lower bound, printed as "> X" (and the speed-up as
"> Y"). Once a no-swap run is cut by the budget, no-swap runs at lower temperatures are
skipped and inherit that bound (marked "^"): tau_alpha only grows on cooling. With
``--time-limit``, production runs stop at the deadline (giving bounds) and a temperature
whose expected cost does not fit in the time left is not started.

The per-temperature lines also give tau_alpha from the origins of each half of the run
("halves a/b"): their spread is a rough error bar. With N = 500, dynamic heterogeneity makes
tau_alpha from one run of ~5 tau_alpha uncertain by some 10-30 %, so speed-ups below ~1.5
are not distinguishable from 1.

Time is in MC sweeps of N attempts; with swap, 20 % of the attempts are swaps, so a swap
sweep has fewer displacements than a no-swap one. The speed-up is the ratio of tau_alpha in
sweeps, as in the swap literature.

Usage::

    python scripts/swap_showcase.py --quick
    python scripts/swap_showcase.py --max-sweeps 300000 --time-limit 2400 --plot fs.png
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from swapmc.analysis import self_intermediate_scattering, tau_alpha
from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset

PRESET = "ka2-x10"
#: First peak of S_AA(q) of KA at density 1.2, the usual wavenumber for its F_s.
Q_PEAK = 7.25
QUICK_TEMPERATURES = (1.0, 0.7, 0.55, 0.45)
FULL_TEMPERATURES = (1.0, 0.8, 0.7, 0.6, 0.55, 0.5, 0.47, 0.45, 0.42)
#: Expected swap tau_alpha at the first temperature (T = 1: a few hundred sweeps).
FIRST_TAU_GUESS = 500.0


@dataclass
class Relaxation:
    """Outcome of one F_s production run.

    Attributes
    ----------
    lags : list of int
        Lags (MC sweeps) with at least ``min_origins`` origins, from 0.
    fs : list of float
        Origin-averaged F_s(q, t) of the A particles at those lags.
    origins : list of int
        Number of origins averaged at each lag.
    tau : float
        tau_alpha (sweeps) where F_s = 1/e; ``nan`` when F_s did not decay (see ``bound``).
    bound : float
        When ``tau`` is ``nan``: the largest lag at which F_s was still above 1/e, so that
        tau_alpha > bound. Otherwise ``nan``.
    tau_halves : list of float
        tau_alpha from the origins of the first and of the second half of the run, a rough
        measure of its statistical uncertainty (``nan`` where a half does not reach 1/e).
    sweeps : int
        Production sweeps run.
    energy : float
        Mean potential energy per particle over the origins (energy units).
    acc_displacement, acc_swap : float
        Acceptance ratios during production (``nan`` when no such move was attempted).
    delta : float
        Frozen maximum displacement (length units).
    wall : float
        Wall time of the production run (s).
    """

    lags: list = field(default_factory=list)
    fs: list = field(default_factory=list)
    origins: list = field(default_factory=list)
    tau: float = math.nan
    bound: float = math.nan
    tau_halves: list = field(default_factory=lambda: [math.nan, math.nan])
    sweeps: int = 0
    energy: float = math.nan
    acc_displacement: float = math.nan
    acc_swap: float = math.nan
    delta: float = math.nan
    wall: float = 0.0


def log_lags(t_max: int, per_decade: int) -> np.ndarray:
    """Integer lags 1 .. t_max, about ``per_decade`` per decade (duplicates merged).

    Parameters
    ----------
    t_max : int
        Largest lag (sweeps), included.
    per_decade : int
        Points per decade of the log grid before rounding.

    Returns
    -------
    ndarray of int64
        Strictly increasing lags.
    """
    n = max(2, int(math.ceil(per_decade * math.log10(max(t_max, 10)))) + 1)
    lags = np.unique(np.rint(np.logspace(0.0, math.log10(t_max), n)).astype(np.int64))
    return lags[lags >= 1]


def estimate_tau(lags, fs) -> float:
    """tau_alpha (sweeps) from F_s at increasing lags, with F_s(0) = 1 prepended.

    Returns ``nan`` when F_s stays above 1/e on the lags given.
    """
    if len(lags) == 0:
        return math.nan
    return tau_alpha(np.concatenate([[0.0], lags]), np.concatenate([[1.0], fs]))


def measure_relaxation(
    mc: MonteCarlo,
    species: int,
    q: float,
    max_sweeps: int,
    window: float,
    min_origins: int,
    per_decade: int,
    deadline: float = math.inf,
) -> Relaxation:
    """Run production sweeps and measure F_s(q, t) on log-spaced lags from many origins.

    Parameters
    ----------
    mc : MonteCarlo
        Sampler with tuned (frozen) step sizes, in an equilibrium state.
    species : int
        Model species index of the tracked particles (chosen anew at each origin).
    q : float
        Wavenumber (inverse length units).
    max_sweeps : int
        Largest number of production sweeps.
    window : float
        Stop once lags with ``min_origins`` origins reach ``window * tau_alpha``.
    min_origins : int
        Origins needed before a lag is used for tau_alpha.
    per_decade : int
        Lags per decade.
    deadline : float
        ``time.perf_counter()`` value after which the run stops as if the sweep budget were
        spent (the result is then usually a lower bound).

    Returns
    -------
    Relaxation
    """
    lags = log_lags(max_sweeps, per_decade)
    fs_sum = np.zeros(lags.size)
    # F_s of every origin at every lag (nan until reached): small, and it lets the run be
    # split into halves afterwards for an error estimate.
    per_origin: list = []
    count = np.zeros(lags.size, np.int64)
    start_counts = mc.counts.copy()
    origin_pos, origin_idx, origin_time, energies = [], [], [], []
    # Events (time, origin, lag index): each origin visits its lags in order, so the counts
    # per lag never increase with the lag and the lags with enough origins form a prefix.
    events: list = []
    t, next_origin = 0, 0
    tau = math.nan
    t0 = time.perf_counter()
    while True:
        t_next = min(next_origin, events[0][0]) if events else next_origin
        if t_next > max_sweeps or (t > 0 and time.perf_counter() > deadline):
            break
        mc.sweep(t_next - t)
        t = t_next
        # Positions and species from one snapshot in the user's particle order (the
        # sampler's own arrays are spatially sorted).
        snap = mc.system()
        x = snap.unwrapped_positions()
        while events and events[0][0] == t:
            _, k, j = heapq.heappop(events)
            idx = origin_idx[k]
            fs = self_intermediate_scattering(x[idx] - origin_pos[k], q)
            per_origin[k][j] = fs
            fs_sum[j] += fs
            count[j] += 1
            if j + 1 < lags.size:
                heapq.heappush(events, (origin_time[k] + int(lags[j + 1]), k, j + 1))
        if t == next_origin:
            idx = np.flatnonzero(snap.species == species)
            origin_idx.append(idx)
            origin_pos.append(x[idx])
            origin_time.append(t)
            per_origin.append(np.full(lags.size, np.nan))
            energies.append(mc.energy / mc.n)
            heapq.heappush(events, (t + int(lags[0]), len(origin_time) - 1, 0))
        ok = count >= min_origins
        tau = estimate_tau(lags[ok], fs_sum[ok] / np.maximum(count[ok], 1))
        if math.isfinite(tau) and lags[ok][-1] >= window * tau:
            break
        if next_origin <= t:
            # Decorrelated origins are ~tau apart; a quarter of it keeps the cost of the
            # extra origins small while averaging well. Before F_s decays, the elapsed
            # time is the best (lower) estimate of tau available.
            scale = tau if math.isfinite(tau) else t
            next_origin = t + max(1, int(scale // 4))
    wall = time.perf_counter() - t0

    ok = count >= min_origins
    fs = fs_sum[ok] / np.maximum(count[ok], 1)
    tau = estimate_tau(lags[ok], fs)
    bound = math.nan
    if not math.isfinite(tau):
        above = lags[ok][fs > math.exp(-1.0)]
        bound = float(above[-1]) if above.size else 0.0
    done = mc.counts - start_counts
    halves = split_halves(lags, np.array(per_origin), np.array(origin_time), min_origins)
    return Relaxation(
        lags=[0, *lags[ok].tolist()],
        fs=[1.0, *fs.tolist()],
        origins=[len(origin_time), *count[ok].tolist()],
        tau=float(tau),
        bound=bound,
        tau_halves=halves,
        sweeps=int(t),
        energy=float(np.mean(energies)),
        acc_displacement=float(done[0, 1] / done[0, 0]) if done[0, 0] else math.nan,
        acc_swap=float(done[1, 1] / done[1, 0]) if done[1, 0] else math.nan,
        delta=float(mc.delta),
        wall=wall,
    )


def split_halves(lags, per_origin, origin_time, min_origins) -> list:
    """tau_alpha from the origins before and after the middle of the origin time span.

    Parameters
    ----------
    lags : ndarray, shape (K,)
    per_origin : ndarray, shape (M, K)
        F_s of each origin at each lag, ``nan`` where the origin did not reach the lag.
    origin_time : ndarray, shape (M,)
    min_origins : int
        Origins needed for a lag of the full run; each half needs half as many (at least 2).

    Returns
    -------
    list of two floats
    """
    if len(origin_time) < 2:
        return [math.nan, math.nan]
    late = origin_time > 0.5 * origin_time.max()
    out = []
    for rows in (per_origin[~late], per_origin[late]):
        reached = np.sum(np.isfinite(rows), axis=0)
        ok = reached >= max(2, min_origins // 2)
        fs = np.nansum(rows[:, ok], axis=0) / np.maximum(reached[ok], 1)
        out.append(float(estimate_tau(lags[ok], fs)))
    return out


def guess_next(taus: list) -> float:
    """Expected tau_alpha at the next (lower) temperature from the measured ones so far.

    The last ratio tau(T_k) / tau(T_{k-1}) is applied once more (at least x1.5): crude, but it
    only sets the equilibration length, which is checked afterwards against the measured
    tau_alpha.
    """
    known = [x for x in taus if math.isfinite(x)]
    if not known:
        return FIRST_TAU_GUESS
    ratio = known[-1] / known[-2] if len(known) > 1 else 2.0
    return known[-1] * max(1.5, ratio)


def fmt_tau(r: Relaxation | None, inherited: float = math.nan) -> str:
    """tau_alpha as text: a value, a lower bound "> X", or "-" for a skipped run."""
    if r is None:
        return f"> {inherited:.3g}^" if math.isfinite(inherited) else "-"
    if math.isfinite(r.tau):
        return f"{r.tau:.3g}"
    return f"> {r.bound:.3g}"


def fmt_halves(r: Relaxation) -> str:
    """The two half-run tau_alpha values as "(a/b)", the spread being a rough error bar."""
    return "(halves " + "/".join(f"{x:.3g}" if math.isfinite(x) else "-"
                                 for x in r.tau_halves) + ")"


def speedup(swap: Relaxation, plain: Relaxation | None, inherited: float) -> str:
    """tau_noswap / tau_swap as text, a lower bound when the no-swap tau is one."""
    if not math.isfinite(swap.tau):
        return "-"
    if plain is not None and math.isfinite(plain.tau):
        return f"{plain.tau / swap.tau:.3g}"
    low = plain.bound if plain is not None else inherited
    return f"> {low / swap.tau:.3g}" if math.isfinite(low) else "-"


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(
        description="tau_alpha of KA2 (x_C = 0.10) with and without swap moves",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true",
                    help=f"temperatures {QUICK_TEMPERATURES}, --max-sweeps 20000, "
                         "--window 3: a few minutes")
    ap.add_argument("--temperatures", type=float, nargs="+", default=None,
                    help=f"default {FULL_TEMPERATURES} (sorted to decreasing)")
    ap.add_argument("--n", type=int, default=500, help="number of particles")
    ap.add_argument("--max-sweeps", type=int, default=None,
                    help="production budget per temperature and mode (default 300000, "
                         "20000 with --quick)")
    ap.add_argument("--window", type=float, default=None,
                    help="stop once F_s is known to window x tau_alpha (default 5, 3 quick)")
    ap.add_argument("--min-origins", type=int, default=8,
                    help="time origins needed before a lag is used")
    ap.add_argument("--per-decade", type=int, default=8, help="lags per decade")
    ap.add_argument("--equil-factor", type=float, default=10.0,
                    help="swap equilibration length in units of the expected swap tau_alpha")
    ap.add_argument("--equil-min", type=int, default=2000,
                    help="minimum swap equilibration sweeps per temperature")
    ap.add_argument("--tune-sweeps", type=int, default=200,
                    help="displacement-step tuning sweeps of the no-swap sampler")
    ap.add_argument("--q", type=float, default=Q_PEAK, help="wavenumber of F_s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-skip", action="store_true",
                    help="run no-swap at every T even after one hit the budget")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="wall-time budget: production runs stop at it (giving lower bounds) "
                         "and later temperatures are skipped")
    ap.add_argument("--plot", metavar="PNG", help="save F_s curves (needs matplotlib)")
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    args = ap.parse_args(argv)
    if args.temperatures is None:
        args.temperatures = QUICK_TEMPERATURES if args.quick else FULL_TEMPERATURES
    args.temperatures = sorted(set(args.temperatures), reverse=True)
    if args.max_sweeps is None:
        args.max_sweeps = 20_000 if args.quick else 300_000
    if args.window is None:
        args.window = 3.0 if args.quick else 5.0
    return args


def plot(results: list, path: str) -> None:
    """F_s(q, t) against log t, solid with swap and dashed without, one colour per T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cmap = plt.get_cmap("viridis")
    for k, row in enumerate(results):
        color = cmap(k / max(1, len(results) - 1))
        for key, style in (("swap", "-"), ("noswap", "--")):
            r = row[key]
            if r is not None and len(r.lags) > 1:
                ax.plot(r.lags[1:], r.fs[1:], style, color=color,
                        label=f"T = {row['T']:g}" if key == "swap" else None)
    ax.axhline(math.exp(-1.0), color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("t (MC sweeps)")
    ax.set_ylabel(r"$F_s(q, t)$, A particles")
    ax.set_title("KA2 x_C = 0.10: swap (solid) vs displacements only (dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    """Run the cooling sequence and print the table; returns the exit status."""
    args = parse_args(argv)
    preset = load_preset(PRESET)
    model = preset.model
    a_index = model.species.index("A")
    swap_moves = MoveSettings(**preset.moves)
    counts = composition_counts(preset.composition, args.n, model.species)
    seeds = np.random.SeedSequence(args.seed).spawn(2 + len(args.temperatures))
    system = random_configuration(counts, model.species, preset.density,
                                  seed=int(seeds[0].generate_state(1)[0]))
    mc = MonteCarlo(system, model, args.temperatures[0], moves=swap_moves, seed=seeds[1])
    meas = dict(q=args.q, max_sweeps=args.max_sweeps, window=args.window,
                min_origins=args.min_origins, per_decade=args.per_decade)

    print(f"# swap showcase: preset {PRESET}, N = {args.n} "
          f"({', '.join(f'{s}={c}' for s, c in zip(model.species, counts, strict=True))}), "
          f"rho = {preset.density}, q = {args.q}, moves {preset.moves}")
    print(f"# max {args.max_sweeps} production sweeps per T and mode, window {args.window} "
          f"tau, >= {args.min_origins} origins per lag, seed {args.seed}")
    sys.stdout.flush()

    deadline = math.inf if args.time_limit is None else time.perf_counter() + args.time_limit
    meas["deadline"] = deadline
    results, swap_taus = [], []
    sweep_rate = 0.0  # sweeps per second, measured on the previous temperature
    inherited = math.nan  # no-swap lower bound carried to lower T once the budget is hit
    t_start = time.perf_counter()
    for k, temperature in enumerate(args.temperatures):
        if time.perf_counter() > deadline:
            print(f"# time limit reached: temperatures {args.temperatures[k:]} skipped")
            break
        expected = guess_next(swap_taus)
        n_equil = int(min(args.max_sweeps, max(args.equil_min, args.equil_factor * expected)))
        # Equilibration cannot be cut short without spoiling the state, so a temperature
        # whose expected cost (equilibration + two productions) does not fit in the time
        # left is not started at all.
        cost = n_equil + 2 * min(args.max_sweeps, (args.window + 2) * expected)
        if sweep_rate > 0 and time.perf_counter() + cost / sweep_rate > deadline:
            print(f"# time limit: T = {temperature:g} and below skipped (expected "
                  f"{cost:.3g} sweeps, ~{cost / sweep_rate:.0f} s)")
            break
        t0 = time.perf_counter()
        mc.temperature = temperature
        mc.equilibrate(n_equil)
        swap = measure_relaxation(mc, a_index, **meas)
        swap_taus.append(swap.tau)

        plain = None
        if (args.no_skip or not math.isfinite(inherited)) and time.perf_counter() < deadline:
            plain_mc = MonteCarlo(
                mc.system(), model, temperature,
                moves=MoveSettings(p_swap=0.0, displacement=mc.delta),
                seed=seeds[2 + k],
            )
            plain_mc.equilibrate(args.tune_sweeps)
            plain = measure_relaxation(plain_mc, a_index, **meas)
            if not math.isfinite(plain.tau):
                inherited = plain.bound
        wall = time.perf_counter() - t0
        n_sweeps = n_equil + swap.sweeps + (0 if plain is None else args.tune_sweeps + plain.sweeps)
        sweep_rate = n_sweeps / wall
        row = dict(T=temperature, equil_sweeps=n_equil, swap=swap, noswap=plain,
                   inherited=inherited, wall=wall, sweeps_per_s=sweep_rate)
        results.append(row)
        # Equilibration is trustworthy only if it lasted many swap relaxation times.
        ratio = n_equil / swap.tau if math.isfinite(swap.tau) else math.nan
        flag = "" if ratio >= 10 else "  [WARNING: equilibration < 10 swap tau_alpha]"
        print(f"T={temperature:<5g} equil {n_equil} sweeps ({ratio:.3g} tau_swap){flag}; "
              f"swap: tau {fmt_tau(swap)} {fmt_halves(swap)} in {swap.sweeps} sweeps, "
              f"E/N {swap.energy:.4f}, "
              f"acc swap {swap.acc_swap:.4f} disp {swap.acc_displacement:.3f}, "
              f"delta {swap.delta:.4f}; "
              + (f"no swap: tau {fmt_tau(plain)} {fmt_halves(plain)} in {plain.sweeps} "
                 "sweeps, "
                 f"E/N {plain.energy:.4f}, acc disp {plain.acc_displacement:.3f}"
                 if plain is not None else "no swap: skipped")
              + f"; {wall:.0f} s", flush=True)

    print()
    header = (f"{'T':>5} {'tau_swap':>10} {'tau_noswap':>11} {'speed-up':>9} "
              f"{'acc_swap':>9} {'E/N swap':>9} {'E/N noswap':>10} {'wall_s':>7}")
    print(header)
    print("-" * len(header))
    for row in results:
        swap, plain = row["swap"], row["noswap"]
        e_plain = f"{plain.energy:.4f}" if plain is not None else "-"
        print(f"{row['T']:>5g} {fmt_tau(swap):>10} {fmt_tau(plain, row['inherited']):>11} "
              f"{speedup(swap, plain, row['inherited']):>9} {swap.acc_swap:>9.4f} "
              f"{swap.energy:>9.4f} {e_plain:>10} {row['wall']:>7.0f}")
    print(f"# tau in MC sweeps (F_s(q={args.q}) of A particles = 1/e); '> X': F_s still above "
          "1/e at X sweeps; '^': no-swap run skipped, bound inherited from a higher T; "
          f"total wall {time.perf_counter() - t_start:.0f} s", flush=True)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": [
                {**row, "swap": asdict(row["swap"]),
                 "noswap": None if row["noswap"] is None else asdict(row["noswap"])}
                for row in results]}, fh, indent=1)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
