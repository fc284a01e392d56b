"""The Metropolis sampler: holds the state arrays and drives the compiled sweep loop."""

from __future__ import annotations

import json

import numpy as np

from ..box import Box
from ..kernels import eam as eam_kernels
from ..kernels import lj as lj_kernels
from ..kernels import mc_domains
from ..kernels.mc_common import rebuild
from ..kernels.mc_eam import run_attempts_eam
from ..kernels.mc_lj import run_attempts
from ..kernels.neighbors import build_ref_cells, build_verlet, sort_rows
from ..system import ConfigurationError, System
from ..units import BOLTZMANN, PRESSURE_TO_INTERNAL
from .moves import MoveSettings

MOVE_TYPES = ("displacement", "swap", "volume")
# Version of the checkpoint layout written by MonteCarlo.state_dict; bump on any change that
# older readers cannot follow. (nstats grew a fourth counter, the volume wall, within format 2:
# a three-entry nstats still loads, see load_state_dict.)
STATE_FORMAT = 2
# Entries of ``nstats`` (see kernels/mc_common.py); [3] counts volume moves rejected because
# the trial box edge would be shorter than 2 r_c (the minimum-image limit).
N_STATS = 4
WALL = 3


class StateError(ValueError):
    """A checkpoint's sampler state is incomplete or inconsistent (names the field)."""


class EnergyDriftError(RuntimeError):
    """The running energy disagrees with a full recomputation: some ΔU was wrong."""


def make_rng(seed) -> np.random.Generator:
    """A PCG64 generator from an int seed, a SeedSequence, or an existing Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.Generator(np.random.PCG64(seed))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))


class MonteCarlo:
    """Metropolis displacement + swap (+ volume) Monte Carlo for an LJ mixture.

    Parameters
    ----------
    system : System
        Starting configuration (orthorhombic box). Copied; the sampler owns its arrays.
    model : LJMixture
        Interaction model. The system's species are matched to the model's by name.
    temperature : float
        Temperature in the model's units (k_B T in epsilon for LJ; kelvin for EAM).
    pressure : float, optional
        Imposed pressure in the model's pressure unit (epsilon/sigma^3 for LJ, GPa for EAM).
        When given, volume moves sample the isobaric ensemble; otherwise the volume is fixed.
    moves : MoveSettings, optional
    seed : int, SeedSequence or Generator
        Source of the sampler's own random stream.
    skin : float, optional
        Verlet skin (length units); default ``model.default_skin`` (0.5 sigma for LJ,
        1.5 Å for EAM). Any positive value gives exact results; it only changes speed.
    energy_check_every : int
        Sweeps between comparisons of the running energy with a full recomputation.
    energy_tolerance : float
        Allowed relative disagreement (relative to max(|E|, N)).
    sort_every : int
        Sweeps between spatial re-sorts of the internal particle order (0: only at start).
        Ignored in sequential order, where the order is sorted once, at construction.

    Notes
    -----
    A *sweep* is N attempts; the move type is drawn per attempt (probabilities
    ``p_volume``, ``p_swap``, rest displacements). In random order (the default) a
    displacement moves a particle chosen uniformly at random. In sequential order
    (``moves.order = "sequential"``) attempt t of a sweep is particle t's turn in storage
    order, a Morton order of the starting configuration, fixed for the whole run because a
    visiting order re-chosen from the current positions would make the sweep a
    state-dependent choice among kernels, which is not guaranteed to preserve the Boltzmann
    distribution (the argument is in ``kernels/mc_common.py``). Swaps pick their pair at
    random in both orders.

    With ``moves.threads = K >= 2`` a sweep is instead the domain-decomposed sweep of
    ``kernels/mc_domains.py`` on K threads (constant volume; whole sweeps only): the
    attribute ``threads`` may be changed between calls, since the chain does not depend on
    it, and ``domain_rejections`` counts displacements rejected for leaving their domain.
    """

    def __init__(
        self,
        system: System,
        model,
        temperature: float,
        *,
        pressure: float | None = None,
        moves: MoveSettings | None = None,
        seed=0,
        skin: float | None = None,
        energy_check_every: int = 100,
        energy_tolerance: float = 1e-9,
        sort_every: int = 1000,
    ):
        if not system.box.is_orthorhombic:
            raise ConfigurationError("Monte Carlo needs an orthorhombic box (tilts must be 0)")
        if temperature <= 0:
            raise ConfigurationError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.moves = moves if moves is not None else MoveSettings()
        self.temperature = float(temperature)
        self.pressure_imposed = None if pressure is None else float(pressure)
        self.skin = float(model.default_skin if skin is None else skin)
        if self.skin <= 0:
            raise ConfigurationError(f"Verlet skin must be positive, got {self.skin}")
        self.energy_check_every = int(energy_check_every)
        self.energy_tolerance = float(energy_tolerance)
        self.kind = model.kind
        self.kB = BOLTZMANN[model.units]
        self.p_factor = PRESSURE_TO_INTERNAL[model.units]
        if self.kind == "lj":
            self.table = model.kernel_table()
        elif self.kind == "eam":
            t = model.kernel_tables()
            self.tables = (t["frho"], t["rhor"], t["z2r"],
                           np.array([t["rdr"], t["rdrho"], t["rhomax"], t["cutforcesq"]]),
                           int(t["nr"]), int(t["nrho"]))
            self.packed = (eam_kernels.pack_pair_table(t["rhor"], t["z2r"]),
                           eam_kernels.pack_embedding_table(t["frho"]))
        else:
            raise NotImplementedError(f"no Monte Carlo kernel for model kind {model.kind!r}")

        # Map the system's species onto the model's species order.
        missing = [s for s in system.species_names if s not in model.species]
        if missing:
            raise ConfigurationError(
                f"configuration has species {missing} that the model {model.species} lacks"
            )
        remap = np.array([model.species.index(s) for s in system.species_names], np.int32)
        self.pos = system.positions.copy()
        self.species = remap[system.species]
        self.images = system.images.copy()
        self.lengths = np.array(system.box.lengths, dtype=np.float64)
        self.n = system.n
        rc = model.max_cutoff
        if 2.0 * rc > self.lengths.min():
            raise ConfigurationError(
                f"box edge {self.lengths.min():.4g} is shorter than twice the largest cut-off "
                f"{rc:.4g}; use more particles"
            )
        system.check_overlaps(model.overlap_distance)

        self.n_species = model.n_species
        self._init_members()
        self._init_swap_classes()

        self.delta = float(self.moves.displacement)
        self.lnv_step = float(self.moves.lnv_step)
        if self.pressure_imposed is None:
            self.p_volume = 0.0
        else:
            self.p_volume = (
                1.0 / self.n if self.moves.p_volume is None else float(self.moves.p_volume)
            )
        if self.p_volume + self.moves.p_swap > 1.0:
            raise ConfigurationError("p_swap + p_volume exceeds 1")
        self.rng = make_rng(seed)
        self.sequential = self.moves.order == "sequential"
        # Storage index of the next turn in sequential order (0 at every sweep boundary).
        self.cursor = 0
        self.counts = np.zeros((3, 2), np.int64)
        self.class_counts = np.zeros((max(1, len(self.moves.swap_classes)), 2), np.int64)
        self.nstats = np.zeros(N_STATS, np.int64)
        # First sweep covered by nstats[WALL] (> 0 only after resuming a checkpoint written
        # before the wall counter existed).
        self.wall_counted_from = 0
        self.sweeps_done = 0
        self.equilibration_sweeps_done = 0
        self.tuned = False

        self.fstate = np.array([0.0, rc + self.skin, rc, self.skin])
        self.istate = np.array([2, 1], np.int64)
        self.ref = self.pos.copy()
        self.nbr = np.empty((self.n, 64), np.int32)
        self.cell_members = np.empty((1, 1), np.int64)
        self.stamp = np.zeros(self.n, np.int64)
        if self.kind == "eam":
            self.rho = np.zeros(self.n)
            self.drho = np.zeros(self.n)
            self.drho_old = np.zeros(self.n)
            self.tmark = np.zeros(self.n, np.int64)
            self.touched = np.zeros(self.n, np.int64)
        # order[k] is the user-visible index of internal particle k (see spatial_sort).
        self.order = np.arange(self.n, dtype=np.int64)
        self.sort_every = int(sort_every)
        self.spatial_sort()
        self.fstate[0] = self.total_energy()
        # The option picks the sweep: serial (1) or domain-decomposed (>= 2). ``threads`` is
        # then only how many threads run the domain sweep; it may be changed between calls
        # (e.g. to 1 to time the same chain on one thread), since the chain does not
        # depend on it.
        self.threads = int(self.moves.threads)
        self.domain_sweep = self.threads > 1
        self.domain_rejections = 0
        if self.domain_sweep:
            self._init_domains()

    # ------------------------------------------------------------------ setup
    def _init_domains(self) -> None:
        """Check that the domain-decomposed sweep applies and lay out its domains."""
        import os

        # A sweep has ~10 parallel regions. GNU OpenMP's default lets idle threads spin
        # before sleeping, which on a node shared with other jobs made every region wait
        # for a scheduler slice (13-20 ms per region, measured; 16 us with passive
        # waiting). Read when Numba first starts its OpenMP pool; a user's value is kept.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import numba

        if self.pressure_imposed is not None:
            raise ConfigurationError(
                "[moves] threads > 1 samples at constant volume; an imposed pressure (volume "
                "moves) needs threads = 1")
        if self.sequential:
            raise ConfigurationError(
                "[moves] threads > 1 gives each particle one turn per sweep in a random order "
                "within its domain; [moves] order = 'sequential' applies to threads = 1 only")
        if self.threads > numba.config.NUMBA_NUM_THREADS:
            raise ConfigurationError(
                f"[moves] threads = {self.threads} exceeds the {numba.config.NUMBA_NUM_THREADS}"
                " threads Numba may start here (environment variable NUMBA_NUM_THREADS)")
        rc = float(self.fstate[2])
        # Pair potentials: a move changes energies within r_c of the moved particle. EAM: it
        # changes the densities of atoms within r_c, whose embedding energies depend on atoms
        # a further r_c away, so domains of one colour must be 2 r_c apart.
        d_min = 2.0 * rc if self.kind == "eam" else rc
        what = "2 r_c" if self.kind == "eam" else "r_c"
        nd = mc_domains.domain_grid(self.lengths, d_min)
        if nd.min() < 2 or nd.prod() // mc_domains.N_COLOURS < 2:
            edge = 4.0 * d_min
            n_min = int(np.ceil(self.n / self.volume * edge**3))
            raise ConfigurationError(
                f"[moves] threads > 1 needs domains of edge >= {what} = {d_min:.4g}, two of "
                f"each colour, i.e. a box edge >= {'8' if self.kind == 'eam' else '4'} r_c = "
                f"{edge:.4g} in some dimension; "
                "this box is "
                f"{' x '.join(f'{v:.4g}' for v in self.lengths)} (N = {self.n}); at this "
                f"density a cubic box needs N >= {n_min}")
        self.domains = nd
        self.colour_doms = mc_domains.colour_domains(nd)

    def spatial_sort(self) -> None:
        """Renumber particles internally along a Morton (Z-order) curve of small cells.

        Neighbours in space become neighbours in memory, which keeps the per-attempt cost
        flat in N (random particle picks otherwise miss the cache at large N). The
        user-visible order is unchanged: :meth:`system` maps back through ``order``. In
        sequential attempt order this storage order is the visiting order, so it is sorted
        only once, by the constructor.
        """
        # Cells of about 1.5 length units: a few particles each, 10 bits per axis.
        ncell = np.clip((self.lengths / 1.5).astype(np.int64), 1, 1024)
        cells = np.minimum((self.pos / self.lengths * ncell).astype(np.int64), ncell - 1)
        code = np.zeros(self.n, np.int64)
        for bit in range(10):
            for d in range(3):
                code |= ((cells[:, d] >> bit) & 1) << (3 * bit + d)
        perm = np.argsort(code, kind="stable")
        names = ("pos", "species", "images", "order") + (("rho",) if self.kind == "eam" else ())
        for name in names:
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[perm]))
        self._init_members()
        self._rebuild()

    def _init_members(self):
        self.member_counts = np.bincount(self.species, minlength=self.n_species).astype(np.int64)
        self.members = np.full((self.n_species, self.n), -1, np.int64)
        self.slot = np.empty(self.n, np.int64)
        fill = np.zeros(self.n_species, np.int64)
        for i, s in enumerate(self.species):
            self.members[s, fill[s]] = i
            self.slot[i] = fill[s]
            fill[s] += 1

    def _init_swap_classes(self):
        names = self.model.species
        ca, cb = [], []
        for a, b in self.moves.swap_classes:
            for s in (a, b):
                if s not in names:
                    raise ConfigurationError(f"swap class ({a}, {b}): unknown species {s!r}")
            ia, ib = names.index(a), names.index(b)
            if self.moves.p_swap > 0:
                for s, i in ((a, ia), (b, ib)):
                    if self.member_counts[i] == 0:
                        raise ConfigurationError(
                            f"swap class ({a}, {b}) is allowed but there is no particle of {s}"
                        )
            ca.append(ia)
            cb.append(ib)
        self.class_a = np.array(ca or [0], np.int64)
        self.class_b = np.array(cb or [0], np.int64)
        self.class_cdf = self.moves.class_cdf()

    def _rebuild(self):
        """Global neighbour rebuild with references at the current positions."""
        (self.nbr, self.nnbr, self.grid, self.cell_members, self.cell_count, self.p_cell,
         self.p_slot) = rebuild(self.pos, self.lengths, self.ref, self.nbr, self.cell_members,
                                self.fstate, self.nstats)

    # ------------------------------------------------------------- sampling
    def _kernel(self, n_attempts: int):
        if self.domain_sweep:
            if n_attempts % self.n:
                raise ValueError(f"with threads > 1 the sampler runs whole sweeps (multiples "
                                 f"of N = {self.n} attempts), got {n_attempts}")
            self._domain_sweeps(n_attempts // self.n)
            return
        if self.kind == "lj":
            model_args = (self.table,)
            kernel = run_attempts
        else:
            frho, rhor, z2r, sc, nr, nrho = self.tables
            model_args = (frho, rhor, z2r, *self.packed, sc, nr, nrho, self.rho, self.drho,
                          self.drho_old, self.tmark, self.touched)
            kernel = run_attempts_eam
        (self.nbr, self.nnbr, self.grid, self.cell_members, self.cell_count, self.p_cell,
         self.p_slot) = kernel(
            self.pos,
            self.species,
            self.images,
            self.lengths,
            *model_args,
            self.nbr,
            self.nnbr,
            self.ref,
            self.grid,
            self.cell_members,
            self.cell_count,
            self.p_cell,
            self.p_slot,
            self.stamp,
            self.fstate,
            self.istate,
            self.members,
            self.slot,
            self.member_counts,
            self.class_a,
            self.class_b,
            self.class_cdf,
            float(self.moves.p_swap),
            float(self.p_volume),
            self.delta,
            self.lnv_step,
            1.0 / (self.kB * self.temperature),
            0.0 if self.pressure_imposed is None else self.pressure_imposed * self.p_factor,
            int(n_attempts),
            self.sequential,
            int(self.cursor),
            self.rng,
            self.counts,
            self.class_counts,
            self.nstats,
        )
        self.cursor = (self.cursor + int(n_attempts)) % self.n

    def _domain_skin(self) -> None:
        """Keep delta sqrt(3) < skin / 2, which the domain sweep needs (one move per particle
        per sweep never reaches a refresh); a larger skin changes the speed, not the chain."""
        reach = self.delta * np.sqrt(3.0)
        if reach >= 0.45 * self.fstate[3]:
            skin = 2.5 * reach
            self.skin = skin
            self.fstate[3] = skin
            self.fstate[1] = self.fstate[2] + skin
            self._rebuild()

    def _domain_sweeps(self, n_sweeps: int) -> None:
        """Run ``n_sweeps`` domain-decomposed sweeps (``kernels/mc_domains.py``): the grid
        shift, the stream key and the colour order of each come from the master generator."""
        import numba

        numba.set_num_threads(self.threads)
        # Domains are handed to threads one at a time as threads come free (dynamic
        # scheduling): on a node shared with other jobs a thread that loses its core no
        # longer holds up the phase with a fixed share of domains. Which thread runs a
        # domain does not change the result.
        previous_chunk = numba.set_parallel_chunksize(1)
        try:
            self._domain_sweeps_body(n_sweeps)
        finally:
            numba.set_parallel_chunksize(previous_chunk)

    def _domain_sweeps_body(self, n_sweeps: int) -> None:
        self._domain_skin()
        ndom = int(self.domains.prod())
        beta = 1.0 / (self.kB * self.temperature)
        eam = self.kind == "eam"
        # The other model's arguments are placeholders of the right types.
        if eam:
            table = np.zeros((1, 1, 4))
            ptab, ftab = self.packed
            sc, nr, nrho = self.tables[3], self.tables[4], self.tables[5]
            rho = self.rho
        else:
            table = self.table
            ptab, ftab = np.zeros((1, 1, 1, 12)), np.zeros((1, 1, 5))
            sc, nr, nrho, rho = np.zeros(4), 1, 1, np.zeros(1)
        for _ in range(int(n_sweeps)):
            shift = self.rng.random(3) * self.lengths
            key = self.rng.integers(0, 2**64, dtype=np.uint64)
            colour_order = self.rng.permutation(mc_domains.N_COLOURS).astype(np.int64)
            (self.nbr, self.cell_members, dstart, dsort, sstart, ssort,
             spos) = mc_domains.prepare_sweep(
                self.pos, self.species, self.lengths, self.ref, self.nbr, self.nnbr, self.grid,
                self.cell_members, self.cell_count, self.p_cell, self.p_slot, self.fstate,
                self.nstats, self.delta, self.n_species, shift, self.domains)
            dcounts = np.zeros((ndom, 3, 2), np.int64)
            dclass = np.zeros((ndom, self.class_counts.shape[0], 2), np.int64)
            de = np.zeros(ndom)
            flags = np.zeros(ndom, np.int64)
            mc_domains.phases(
                eam, self.pos, self.species, self.images, self.lengths, table, ptab, ftab, sc,
                nrho, nr, rho, self.nbr, self.nnbr, self.ref, self.fstate, self.members,
                self.slot, self.class_a, self.class_b, self.class_cdf, self.n_species,
                float(self.moves.p_swap), self.delta, beta, shift, self.domains,
                self.colour_doms, colour_order, key, dstart, dsort, sstart, ssort, spos,
                dcounts, dclass, de, flags)
            if flags.any():
                raise RuntimeError("domain sweep: a trial move reached half the Verlet skin "
                                   "(the sweep's refreshes should exclude this)")
            total = dcounts.sum(axis=0)
            self.counts[:2] += total[:2]
            self.domain_rejections += int(total[2, 0])
            self.class_counts += dclass.sum(axis=0)
            self.fstate[0] += de.sum()

    def attempts(self, n_attempts: int) -> None:
        """Run exactly ``n_attempts`` single attempts (no energy check, no sweep count).

        For tests and fine-grained control; normal runs use :meth:`sweep`.
        """
        self._kernel(int(n_attempts))

    def sweep(self, n_sweeps: int = 1) -> None:
        """Run ``n_sweeps`` sweeps with frozen step sizes.

        The running energy is compared with a full recomputation every
        ``energy_check_every`` sweeps (counted from the start of the run).
        """
        remaining = int(n_sweeps)
        if remaining < 0:
            raise ValueError("number of sweeps must be non-negative")
        k = self.energy_check_every
        while remaining > 0:
            chunk = remaining
            for every in (k, self.sort_every):
                if every > 0:
                    chunk = min(chunk, every - self.sweeps_done % every)
            self._kernel(chunk * self.n)
            self.sweeps_done += chunk
            if (self.sort_every and not self.sequential
                    and self.sweeps_done % self.sort_every == 0):
                self.spatial_sort()
            remaining -= chunk
            if k > 0 and self.sweeps_done % k == 0:
                self.check_energy()

    def equilibrate(self, n_sweeps: int, tune_every: int = 10) -> None:
        """Run ``n_sweeps`` sweeps while tuning step sizes toward the target acceptance.

        Tuning adapts the proposal to the past and so breaks detailed balance; it happens only
        here, and the final step sizes are frozen for all later sweeps (see ``step_sizes``).
        """
        done = 0
        while done < n_sweeps:
            block = min(tune_every, n_sweeps - done)
            before = self.counts.copy()
            self.sweep(block)
            self.tune(self.counts - before)
            done += block
        self.equilibration_sweeps_done += int(n_sweeps)
        self.tuned = True

    def tune(self, block_counts: np.ndarray) -> None:
        """Scale step sizes by (acceptance / target), clipped to [0.5, 1.5], from the
        attempt/acceptance counts of the last block, shape (3, 2)."""
        target = self.moves.target_acceptance
        if block_counts[0, 0] > 0:
            acc = block_counts[0, 1] / block_counts[0, 0]
            self.delta *= float(np.clip(acc / target, 0.5, 1.5))
            # Beyond a quarter box a displacement is a random re-insertion anyway.
            self.delta = float(min(self.delta, 0.25 * self.lengths.min()))
        if block_counts[2, 0] > 0:
            acc = block_counts[2, 1] / block_counts[2, 0]
            self.lnv_step *= float(np.clip(acc / target, 0.5, 1.5))
            self.lnv_step = float(min(self.lnv_step, 0.5))

    # ------------------------------------------------------------ observables
    @property
    def energy(self) -> float:
        """Running potential energy (energy units)."""
        return float(self.fstate[0])

    @property
    def volume(self) -> float:
        return float(np.prod(self.lengths))

    @property
    def box(self) -> Box:
        return Box(self.lengths.copy())

    def _fresh_list(self):
        tmp = np.empty((self.n, self.nbr.shape[1]), np.int32)
        return build_verlet(self.pos, self.lengths, self.fstate[2] + 1e-9, tmp)

    def _energy_virial(self, nbr, nnbr, rho_out=None):
        if self.kind == "lj":
            e, w = lj_kernels.energy_virial(self.pos, self.species, self.lengths, 1.0,
                                            self.table, nbr, nnbr)
        else:
            rho = np.empty(self.n) if rho_out is None else rho_out
            e, w = eam_kernels.energy_virial(self.pos, self.species, self.lengths, 1.0,
                                             *self.tables, nbr, nnbr, rho)
        return float(e), float(w)

    def total_energy(self) -> float:
        """Potential energy recomputed from scratch with a fresh neighbour list (for EAM it
        also refreshes the stored host densities)."""
        nbr, nnbr = self._fresh_list()
        return self._energy_virial(nbr, nnbr, self.rho if self.kind == "eam" else None)[0]

    def virial(self) -> float:
        """W = sum over pairs of r_ij . f_ij (energy units), from the running Verlet list
        (exact: the sampler keeps it valid between moves)."""
        return self._energy_virial(self.nbr, self.nnbr)[1]

    def pressure(self) -> float:
        """Instantaneous pressure N k_B T / V + W / (3 V), in the model's pressure unit
        (epsilon/sigma^3 for LJ, GPa for EAM)."""
        p = self.n * self.kB * self.temperature / self.volume + self.virial() / (3.0 * self.volume)
        return p / self.p_factor

    def check_energy(self) -> None:
        """Compare the running energy with a full recomputation; raise on disagreement and
        otherwise reset it to the recomputed value (so rounding never accumulates)."""
        fresh = self.total_energy()
        scale = max(abs(fresh), float(self.n))
        if abs(fresh - self.fstate[0]) > self.energy_tolerance * scale:
            raise EnergyDriftError(
                f"running energy {self.fstate[0]!r} differs from the recomputed {fresh!r} "
                f"after {self.sweeps_done} sweeps (tolerance {self.energy_tolerance} x {scale}): "
                "an energy change was computed wrongly"
            )
        self.fstate[0] = fresh

    def acceptance(self) -> dict:
        """Acceptance ratios per move type and per swap class (NaN when never attempted)."""
        out = {}
        for k, name in enumerate(MOVE_TYPES):
            att, acc = self.counts[k]
            out[name] = acc / att if att else float("nan")
        for c, (a, b) in enumerate(self.moves.swap_classes):
            att, acc = self.class_counts[c]
            out[f"swap_{a}{b}"] = acc / att if att else float("nan")
        return out

    def counters(self) -> dict:
        """Attempt and acceptance counts per move type and swap class, and list statistics."""
        out = {name: self.counts[k].tolist() for k, name in enumerate(MOVE_TYPES)}
        for c, (a, b) in enumerate(self.moves.swap_classes):
            out[f"swap_{a}{b}"] = self.class_counts[c].tolist()
        out["list_rebuilds"] = int(self.nstats[0])
        out["large_moves"] = int(self.nstats[1])
        out["list_refreshes"] = int(self.nstats[2])
        out["volume_wall_rejections"] = int(self.nstats[WALL])
        if self.domain_sweep:
            out["domain_rejections"] = int(self.domain_rejections)
        return out

    @property
    def min_box_edge(self) -> float:
        """Smallest box edge volume moves may reach: twice the largest cut-off (below it a
        particle would interact with two images of another; minimum image needs L >= 2 r_c)."""
        return 2.0 * float(self.fstate[2])

    @property
    def wall_rejections(self) -> int:
        """Volume moves rejected because the trial box edge was below :attr:`min_box_edge`
        (since sweep :attr:`wall_counted_from`)."""
        return int(self.nstats[WALL])

    def step_sizes(self) -> dict:
        return {"displacement": self.delta, "lnv_step": self.lnv_step}

    def system(self) -> System:
        """A snapshot of the current configuration in the user's particle order (copies)."""
        pos = np.empty_like(self.pos)
        species = np.empty_like(self.species)
        images = np.empty_like(self.images)
        pos[self.order] = self.pos
        species[self.order] = self.species
        images[self.order] = self.images
        return System(pos, species, self.model.species, Box(self.lengths.copy()), images=images)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit: arrays and a JSON-able header."""
        header = {
            "format": STATE_FORMAT,
            "kind": self.kind,
            "temperature": self.temperature,
            "pressure": self.pressure_imposed,
            "delta": self.delta,
            "lnv_step": self.lnv_step,
            "sweeps_done": self.sweeps_done,
            "equilibration_sweeps_done": self.equilibration_sweeps_done,
            "tuned": self.tuned,
            "wall_counted_from": self.wall_counted_from,
            "rng": self.rng.bit_generator.state,
            "species_names": list(self.model.species),
        }
        if self.sequential:
            # Only in sequential order, so random-order checkpoints are written as before.
            header["attempt_order"] = "sequential"
            header["cursor"] = int(self.cursor)
        if self.domain_sweep:
            header["domain_rejections"] = int(self.domain_rejections)
        return {
            "header": json.dumps(header),
            "pos": self.pos,
            "species": self.species,
            "images": self.images,
            "lengths": self.lengths,
            "ref": self.ref,
            "fstate": self.fstate,
            "istate": self.istate,
            "counts": self.counts,
            "class_counts": self.class_counts,
            "nstats": self.nstats,
            "members": self.members,
            "slot": self.slot,
            "order": self.order,
            **({"rho": self.rho} if self.kind == "eam" else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the sampler must have been built for the same model,
        N and species).

        Raises
        ------
        StateError
            When the state is incomplete or inconsistent (see :func:`check_state`), or
            does not fit this sampler; the message names the field.
        """
        header = check_state(state)
        if header["format"] != STATE_FORMAT:
            raise StateError(
                f"checkpoint layout version {header['format']} is not the version "
                f"{STATE_FORMAT} this swapmc writes; restart the run from scratch"
            )
        if header["species_names"] != list(self.model.species):
            raise StateError(
                f"checkpoint species {header['species_names']} do not match the model "
                f"{list(self.model.species)}"
            )
        if header["kind"] != self.kind:
            raise StateError(f"header field 'kind' is {header['kind']!r}, this sampler is "
                             f"{self.kind!r}")
        order = header.get("attempt_order", "random")
        if order != self.moves.order:
            raise StateError(f"header field 'attempt_order' is {order!r}, this sampler's "
                             f"moves.order is {self.moves.order!r}")
        cursor = header.get("cursor", 0)
        if type(cursor) is not int or not 0 <= cursor < state["pos"].shape[0]:
            raise StateError(f"header field 'cursor' is not an integer in 0..N-1: {cursor!r}")
        if state["pos"].shape != self.pos.shape:
            raise StateError(
                f"checkpoint holds {state['pos'].shape[0]} particles, this run has {self.n}"
            )
        for name in ("pos", "species", "images", "lengths", "ref", "fstate", "istate",
                     "counts", "class_counts", "nstats", "members", "slot", "order"
                     ) + (("rho",) if self.kind == "eam" else ()):
            arr = getattr(self, name)
            new = np.asarray(state[name], dtype=arr.dtype)
            if name == "nstats" and new.shape == (WALL,):
                # Written before the wall counter existed: it counts from this sweep on.
                new = np.concatenate([new, np.zeros(N_STATS - WALL, np.int64)])
            if new.shape != arr.shape:
                raise StateError(f"array {name!r} has shape {new.shape}, expected {arr.shape}")
            arr[...] = new
        self.temperature = header["temperature"]
        self.pressure_imposed = header["pressure"]
        self.delta = header["delta"]
        self.lnv_step = header["lnv_step"]
        self.sweeps_done = header["sweeps_done"]
        self.equilibration_sweeps_done = header["equilibration_sweeps_done"]
        self.tuned = header["tuned"]
        self.wall_counted_from = header.get(
            "wall_counted_from", self.sweeps_done if state["nstats"].shape == (WALL,) else 0)
        self.rng.bit_generator.state = header["rng"]
        self.cursor = cursor
        self.domain_rejections = int(header.get("domain_rejections", 0))
        # The domain sweep may have raised the skin (see _domain_skin).
        self.skin = float(self.fstate[3])
        # members/slot order decides which particle a swap picks: restored, not rebuilt.
        self.member_counts[:] = np.bincount(self.species, minlength=self.n_species)
        # Rows are sorted sets {j : |ref_i - ref_j| < r_list}: rebuilding them from ref
        # reproduces the list exactly, including its order.
        self.nbr, self.nnbr = build_verlet(self.ref, self.lengths, self.fstate[1], self.nbr)
        sort_rows(self.nbr, self.nnbr)
        (self.grid, self.cell_members, self.cell_count, self.p_cell,
         self.p_slot) = build_ref_cells(self.ref, self.lengths, self.fstate[1], self.cell_members)
        self.stamp[:] = 0


# name -> (dtype, shape with "N" for the particle count and "S" for the species count, None
# for a free length, finite?) of the arrays MonteCarlo.state_dict writes.
_STATE_ARRAYS = {
    "pos": (np.float64, ("N", 3), True),
    "species": (np.int32, ("N",), False),
    "images": (np.int64, ("N", 3), False),
    "lengths": (np.float64, (3,), True),
    "ref": (np.float64, ("N", 3), True),
    "fstate": (np.float64, (4,), True),
    "istate": (np.int64, (2,), False),
    "counts": (np.int64, (3, 2), False),
    "class_counts": (np.int64, (None, 2), False),
    "nstats": (np.int64, (None,), False),
    "members": (np.int64, ("S", "N"), False),
    "slot": (np.int64, ("N",), False),
    "order": (np.int64, ("N",), False),
}
# header field -> check (value -> bool) and what it must be.
_HEADER_FIELDS = {
    "format": (lambda v: type(v) is int, "an integer"),
    "kind": (lambda v: v in ("lj", "eam"), "'lj' or 'eam'"),
    "temperature": (lambda v: _real(v) and v > 0, "a finite positive number"),
    "pressure": (lambda v: v is None or _real(v), "null or a finite number"),
    "delta": (lambda v: _real(v) and v >= 0, "a finite number >= 0"),
    "lnv_step": (lambda v: _real(v) and v >= 0, "a finite number >= 0"),
    "sweeps_done": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
    "equilibration_sweeps_done": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
    "tuned": (lambda v: type(v) is bool, "true or false"),
    "rng": (lambda v: _pcg64_state(v), "a PCG64 generator state"),
    "species_names": (lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
                      "a list of species names"),
}


def _real(v) -> bool:
    return type(v) in (int, float) and bool(np.isfinite(v))


def _pcg64_state(v) -> bool:
    if not isinstance(v, dict) or v.get("bit_generator") != "PCG64":
        return False
    try:
        np.random.PCG64().state = v
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


def check_state(state: dict) -> dict:
    """Check that a loaded :meth:`MonteCarlo.state_dict` is complete and self-consistent.

    A checkpoint that passes resumes the run exactly; one that fails names what is wrong,
    so a damaged file is never half-loaded (every array present, with the dtype and shape
    it was written with, finite positions and energies, a PCG64 generator state, a
    permutation for the particle order and species lists that match the species array).

    Parameters
    ----------
    state : dict
        Name -> array, as read back from ``np.load`` of a checkpoint.

    Returns
    -------
    dict
        The decoded JSON header.

    Raises
    ------
    StateError
        Naming the first missing, malformed or inconsistent field.
    """
    if "header" not in state:
        raise StateError("array 'header' is missing")
    try:
        header = json.loads(str(state["header"]))
    except ValueError as err:
        raise StateError(f"array 'header' is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise StateError("array 'header' is not a JSON object")
    for key, (ok, what) in _HEADER_FIELDS.items():
        if key not in header:
            raise StateError(f"header field {key!r} is missing")
        if not ok(header[key]):
            raise StateError(f"header field {key!r} is not {what}")
    specs = dict(_STATE_ARRAYS)
    if header["kind"] == "eam":
        specs["rho"] = (np.float64, ("N",), True)
    for name in specs:
        if name not in state:
            raise StateError(f"array {name!r} is missing")
    n = np.shape(state["species"])[0] if np.ndim(state["species"]) == 1 else -1
    sizes = {"N": n, "S": len(header["species_names"])}
    for name, (dtype, shape, finite) in specs.items():
        arr = np.asarray(state[name])
        want = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)
        if arr.ndim != len(want) or any(w is not None and a != w
                                        for a, w in zip(arr.shape, want)):
            shown = ", ".join("*" if w is None else str(w) for w in want)
            raise StateError(f"array {name!r} has shape {arr.shape}, expected "
                             f"({shown}{',' if len(want) == 1 else ''})")
        if arr.dtype != np.dtype(dtype):
            raise StateError(f"array {name!r} has dtype {arr.dtype}, expected "
                             f"{np.dtype(dtype)}")
        if finite and not np.all(np.isfinite(arr)):
            raise StateError(f"array {name!r} holds non-finite values")
    if n < 1:
        raise StateError("array 'species' is empty")
    if state["nstats"].shape[0] not in (WALL, N_STATS):
        raise StateError(f"array 'nstats' has shape {state['nstats'].shape}, expected "
                         f"({N_STATS},)")
    if not np.all(state["lengths"] > 0):
        raise StateError("array 'lengths' holds a box edge <= 0")
    species = state["species"]
    if species.min() < 0 or species.max() >= sizes["S"]:
        raise StateError(f"array 'species' holds an index outside 0..{sizes['S'] - 1}")
    order = state["order"]
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise StateError("array 'order' is not a permutation of the particles")
    slot, members = state["slot"], state["members"]
    if (slot.min() < 0 or slot.max() >= n
            or not np.array_equal(members[species, slot], np.arange(n))):
        raise StateError("arrays 'members' and 'slot' do not match array 'species'")
    return header
