"""Domain-decomposed Monte Carlo sweep on shared-memory threads (Numba ``prange``).

One sweep of one large configuration is split over threads by a checkerboard of domains,
as GPU hard-particle Monte Carlo does (Anderson et al., J. Comput. Phys. 254, 27 (2013)):

1. The box is cut into ``nd[0] x nd[1] x nd[2]`` rectangular domains (every ``nd`` even) whose
   origin is shifted by a vector drawn uniformly in the box from the sampler's master
   generator at every sweep. A domain's colour is the parity of its three indices (8
   colours). A particle belongs to the domain that holds it at the start of the sweep.
2. The 8 colours are visited in an order drawn from the master generator. During a colour
   phase, the domains of that colour run in parallel; every other particle is frozen.
   Within domain A each particle of A has one *turn*, in an order drawn uniformly at
   random from the domain's stream: with probability
   ``p_swap`` a swap of a pair drawn within A (a class with its fixed probability, then one
   particle of each of its species uniformly among those in A; no partner in A: the turn is
   a rejected attempt), else a displacement of that particle, uniform in a cube, **rejected
   when the trial position lies outside A**.
3. Domains of one colour are separated by at least one domain edge, and every edge is at
   least ``d_min``: the interaction range for pair potentials (r_c), twice it for EAM (a
   move changes the host densities, hence the embedding energies, of atoms up to r_c away,
   and those atoms' energies depend on atoms up to r_c further). So a move in one active
   domain cannot change the energy change of a move in another, nor write state another
   reads: the parallel phase is the serial product of its domain kernels, in any order.

Why the sweep samples pi(x) ∝ exp(-beta U(x)). For a fixed shift and colour, the kernel of
domain A only moves particles of A and only inside A, so the set M_A of particles in A and
the species counts in A are invariant under it. On each class of states with given M_A and
counts, a displacement turn is a uniform proposal on the cube around the particle restricted
to A: symmetric (x' in A is proposed from x with the same probability as x from x'), with
Metropolis acceptance, so it satisfies detailed balance; a swap turn draws a pair uniformly
within the (invariant) species lists of A: symmetric, so it too satisfies detailed balance.
Each turn preserves pi, hence so does their product in any fixed order (balance, as for the
sequential order in ``mc_common.py``), the mixture over turn orders drawn uniformly whatever
the state, the product over the domains of a colour, the product over colours, and the
mixture over the shift and colour order, which are drawn independently of the state. The
turn order is random rather than the storage order because the sampler re-sorts its storage
by position every ``sort_every`` sweeps: a storage-order kernel would then be chosen as a
function of the state, which need not preserve pi (see ``mc_common.py``); a uniformly
random order makes the kernel independent of the labels. The random shift makes the chain
irreducible: without it, a particle could never cross a domain face. Moves that would leave
their domain are rejected, never clipped or reflected, which would break the symmetry of
the proposal.

Neighbour list. Each particle has at most one displacement per sweep, of at most
``delta sqrt(3)``. At the start of the sweep every particle whose reference is farther than
``skin / 2 - delta sqrt(3)`` is refreshed (new rows in parallel from the final references,
then the other rows patched serially; see :func:`prepare_sweep`), so no trial move can reach
``skin / 2`` during the parallel phases, which therefore only read the list. The sampler keeps
``delta sqrt(3) < skin / 2`` by raising the skin when tuning raises delta. A guard flags any
trial that would still need a refresh (it cannot happen; the sampler raises if it does).

Random numbers. Domain d of a sweep draws from its own SplitMix64 stream seeded from a
64-bit sweep key (drawn from the master generator) and d. Results are combined in domain
order, so a sweep is a pure function of the state, the master generator and nothing else:
the same for any number of threads, bit for bit.

Per-domain counters, shapes: ``dcounts`` (n_domains, 3, 2) attempts/acceptances of
displacements, swaps, and [2, 0] displacements rejected for leaving the domain;
``dclass`` (n_domains, C, 2); ``de`` (n_domains,) energy change; ``flags`` (n_domains,).
"""

import numpy as np
from numba import njit, prange

from .mc_common import commit_swap, metropolis, min_image_norm
from .mc_eam import displacement_du_eam, swap_du_eam
from .mc_lj import displacement_du_lj, swap_du_lj
from .neighbors import _cell_of, _row_insert, _row_remove, sort_by_cell

N_COLOURS = 8
# Fewest refreshed particles whose new rows are computed in a parallel region (~25 us each).
PARALLEL_ROWS = 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0


def domain_grid(lengths, d_min: float) -> np.ndarray:
    """Domains per dimension: the largest even count whose edge is >= ``d_min``.

    Parameters
    ----------
    lengths : array_like, shape (3,)
        Box edges (length units).
    d_min : float
        Smallest allowed domain edge (length units).

    Returns
    -------
    ndarray, shape (3,), int64
        Even counts (0 where the edge is shorter than 2 d_min).
    """
    return (2 * np.floor(np.asarray(lengths, float) / (2.0 * d_min))).astype(np.int64)


def colour_domains(nd) -> np.ndarray:
    """Domain ids of each colour, shape (8, n_domains / 8), int64, in increasing order.

    Domain (cx, cy, cz) has id (cx nd[1] + cy) nd[2] + cz and colour
    4 (cx mod 2) + 2 (cy mod 2) + (cz mod 2).
    """
    cx, cy, cz = np.meshgrid(*(np.arange(k) for k in nd), indexing="ij")
    ids = ((cx * nd[1] + cy) * nd[2] + cz).ravel()
    colour = (4 * (cx % 2) + 2 * (cy % 2) + cz % 2).ravel()
    return np.stack([np.sort(ids[colour == c]) for c in range(N_COLOURS)]).astype(np.int64)


@njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def stream_seed(key, d):
    """Initial SplitMix64 state of domain d's stream in the sweep with 64-bit ``key``."""
    return _mix64(key ^ _mix64((np.uint64(d) + np.uint64(1)) * _GOLDEN))


@njit(cache=True)
def next_uniform(state):
    """SplitMix64 step: returns (new state, uniform double in [0, 1) with 53 random bits)."""
    state = state + _GOLDEN
    return state, float(_mix64(state) >> np.uint64(11)) * _TWO_M53


@njit(cache=True)
def domain_of(x, y, z, lengths, shift, nd):
    """Id of the domain holding the wrapped point (x, y, z) for the grid shifted by ``shift``
    (shape (3,), in [0, L)). The same arithmetic decides membership and the moves' domain
    test, so both agree to the bit."""
    u = x - shift[0]
    if u < 0.0:
        u += lengths[0]
    cx = min(int(u * (nd[0] / lengths[0])), nd[0] - 1)
    u = y - shift[1]
    if u < 0.0:
        u += lengths[1]
    cy = min(int(u * (nd[1] / lengths[1])), nd[1] - 1)
    u = z - shift[2]
    if u < 0.0:
        u += lengths[2]
    cz = min(int(u * (nd[2] / lengths[2])), nd[2] - 1)
    return (cx * nd[1] + cy) * nd[2] + cz


@njit(cache=True)
def _move_to_cell(i, ref, lengths, grid, cell_members, cell_count, p_cell, p_slot):
    """Move particle i to the cell of its (new) reference position; returns cell_members
    (reallocated when a cell is full)."""
    cx, cy, cz = _cell_of(ref[i, 0], ref[i, 1], ref[i, 2], lengths, grid)
    c = (cx * grid[1] + cy) * grid[2] + cz
    if c != p_cell[i]:
        oc = p_cell[i]
        last = cell_members[oc, cell_count[oc] - 1]
        cell_members[oc, p_slot[i]] = last
        p_slot[last] = p_slot[i]
        cell_count[oc] -= 1
        if cell_count[c] >= cell_members.shape[1]:
            bigger = np.empty((cell_members.shape[0], cell_members.shape[1] * 2), np.int64)
            bigger[:, : cell_members.shape[1]] = cell_members
            cell_members = bigger
        cell_members[c, cell_count[c]] = i
        p_slot[i] = cell_count[c]
        p_cell[i] = c
        cell_count[c] += 1
    return cell_members


@njit(cache=True)
def _near(ref, j, xi, yi, zi, lengths, il, rl2):
    """True when ref[j] is closer than sqrt(rl2) to (xi, yi, zi); ``il``: 1 / lengths."""
    dx = ref[j, 0] - xi
    dx -= lengths[0] * np.rint(dx * il[0])
    dy = ref[j, 1] - yi
    dy -= lengths[1] * np.rint(dy * il[1])
    dz = ref[j, 2] - zi
    dz -= lengths[2] * np.rint(dz * il[2])
    return dx * dx + dy * dy + dz * dz < rl2


@njit(cache=True)
def _row_of(i, ref, lengths, r_list, grid, cell_members, cell_count):
    """Sorted {j != i : |ref_i - ref_j| < r_list} from the reference cells (or all particles
    when the box has no cell grid). Returns (row, count); ``row`` may be longer than count.

    Candidates are counted first and stored in a second pass, so that no array is handed
    between functions per candidate (reference counting made that ~10x slower).
    """
    n = ref.shape[0]
    il = 1.0 / lengths
    xi, yi, zi = ref[i, 0], ref[i, 1], ref[i, 2]
    rl2 = r_list * r_list
    if grid[0] > 0:
        cx, cy, cz = _cell_of(xi, yi, zi, lengths, grid)
        cap = 0
        for ox in range(-2, 3):
            for oy in range(-2, 3):
                for oz in range(-2, 3):
                    d = (((cx + ox) % grid[0]) * grid[1] + (cy + oy) % grid[1]) * grid[2] + (
                        (cz + oz) % grid[2])
                    cap += cell_count[d]
        row = np.empty(cap, np.int64)
        count = 0
        for ox in range(-2, 3):
            for oy in range(-2, 3):
                for oz in range(-2, 3):
                    d = (((cx + ox) % grid[0]) * grid[1] + (cy + oy) % grid[1]) * grid[2] + (
                        (cz + oz) % grid[2])
                    for m in range(cell_count[d]):
                        j = cell_members[d, m]
                        if j != i and _near(ref, j, xi, yi, zi, lengths, il, rl2):
                            row[count] = j
                            count += 1
    else:
        row = np.empty(n, np.int64)
        count = 0
        for j in range(n):
            if j != i and _near(ref, j, xi, yi, zi, lengths, il, rl2):
                row[count] = j
                count += 1
    row[:count].sort()
    return row, count


@njit(parallel=True, cache=True)
def _new_rows(flagged, ref, lengths, r_list, grid, cell_members, cell_count, rows, counts):
    """New rows of the flagged particles from the final references, in parallel (reads
    only shared state). A row longer than ``rows.shape[1]`` leaves its count and is
    recomputed by the caller."""
    for f in prange(flagged.shape[0]):
        row, count = _row_of(flagged[f], ref, lengths, r_list, grid, cell_members, cell_count)
        counts[f] = count
        if count <= rows.shape[1]:
            rows[f, :count] = row[:count]


@njit(cache=True)
def prepare_sweep(pos, species, lengths, ref, nbr, nnbr, grid, cell_members, cell_count,
                  p_cell, p_slot, fstate, nstats, delta, n_species, shift, nd):
    """Set-up of a sweep: neighbour refreshes and the domain tables.

    Every particle farther than ``skin / 2 - delta sqrt(3)`` from its reference is refreshed,
    so that no trial move in the parallel phases needs one. All their references move first,
    then their new rows are computed in parallel from the final references, then the rows of
    the other particles gain or lose them (serially, in index order): the list ends equal to
    {j : |ref_i - ref_j| < r_list}, sorted, the pure function of ``ref`` the serial kernel
    keeps. Then the particles are sorted by domain and by (domain, species) (the swap-partner
    lists).

    Returns
    -------
    nbr, cell_members : possibly reallocated.
    dstart : ndarray, shape (n_domains + 1,), int64
    dsort : ndarray, shape (N,), int64
        Domain d's particles are ``dsort[dstart[d]:dstart[d + 1]]``, increasing (the phases
        shuffle each slice into the turn order).
    sstart : ndarray, shape (n_domains S + 1,), int64
    ssort : ndarray, shape (N,), int64
        Particles of species s in domain d are ``ssort[sstart[d S + s]:sstart[d S + s + 1]]``.
    spos : ndarray, shape (N,), int64
        Position of each particle in ``ssort``.
    """
    n = pos.shape[0]
    r_list = fstate[1]
    # A relative margin far above the rounding of the triangle inequality it relies on.
    limit = 0.5 * fstate[3] * (1.0 - 1e-9) - delta * np.sqrt(3.0)
    # Serial: O(N) and cheap, and each parallel region costs a thread wake-up, which on a
    # node shared with other jobs can take a scheduler slice.
    dom = np.empty(n, np.int64)
    skey = np.empty(n, np.int64)
    need = np.zeros(n, np.bool_)
    for i in range(n):
        need[i] = min_image_norm(pos[i, 0] - ref[i, 0], pos[i, 1] - ref[i, 1],
                                 pos[i, 2] - ref[i, 2], lengths) >= limit
        d = domain_of(pos[i, 0], pos[i, 1], pos[i, 2], lengths, shift, nd)
        dom[i] = d
        skey[i] = d * n_species + species[i]
    flagged = np.flatnonzero(need)
    nf = flagged.shape[0]
    if nf > 0:
        refreshing = np.zeros(n, np.bool_)
        for f in range(nf):
            i = flagged[f]
            refreshing[i] = True
            ref[i, 0], ref[i, 1], ref[i, 2] = pos[i, 0], pos[i, 1], pos[i, 2]
            if grid[0] > 0:
                cell_members = _move_to_cell(i, ref, lengths, grid, cell_members, cell_count,
                                             p_cell, p_slot)
        rows = np.empty((nf, nbr.shape[1] + 32), np.int64)
        counts = np.zeros(nf, np.int64)
        if nf >= PARALLEL_ROWS:
            _new_rows(flagged, ref, lengths, r_list, grid, cell_members, cell_count, rows,
                      counts)
        else:
            for f in range(nf):
                row, count = _row_of(flagged[f], ref, lengths, r_list, grid, cell_members,
                                     cell_count)
                counts[f] = count
                if count <= rows.shape[1]:
                    rows[f, :count] = row[:count]
        for f in range(nf):
            i = flagged[f]
            if counts[f] <= rows.shape[1]:
                row = rows[f]
                count = counts[f]
            else:
                row, count = _row_of(i, ref, lengths, r_list, grid, cell_members, cell_count)
            # Merge the old row with the new one: neighbours not being refreshed gain or
            # lose i (rows of refreshed particles are replaced whole).
            a = 0
            b = 0
            m_old = nnbr[i]
            old = nbr[i, :m_old].copy()
            while a < m_old or b < count:
                if b == count or (a < m_old and old[a] < row[b]):
                    j = old[a]
                    a += 1
                    if not refreshing[j]:
                        _row_remove(nbr, nnbr, j, i)
                elif a == m_old or row[b] < old[a]:
                    j = row[b]
                    b += 1
                    if not refreshing[j]:
                        nbr = _row_insert(nbr, nnbr, j, i)
                else:
                    a += 1
                    b += 1
            if count > nbr.shape[1]:
                bigger = np.empty((n, int(count * 1.3) + 8), np.int32)
                bigger[:, : nbr.shape[1]] = nbr
                nbr = bigger
            for k in range(count):
                nbr[i, k] = row[k]
            nnbr[i] = count
        nstats[2] += nf
    ndom = nd[0] * nd[1] * nd[2]
    dstart, dsort = sort_by_cell(dom, ndom)
    sstart, ssort = sort_by_cell(skey, ndom * n_species)
    spos = np.empty(n, np.int64)
    for t in range(n):
        spos[ssort[t]] = t
    return nbr, cell_members, dstart, dsort, sstart, ssort, spos


@njit(cache=True)
def _trial(x, y, z, ux, uy, uz, delta, lengths):
    """Wrapped trial position and image shift from three uniforms (as
    ``mc_common.propose_displacement``)."""
    xn = x + (2.0 * ux - 1.0) * delta
    yn = y + (2.0 * uy - 1.0) * delta
    zn = z + (2.0 * uz - 1.0) * delta
    ix = int(np.floor(xn / lengths[0]))
    iy = int(np.floor(yn / lengths[1]))
    iz = int(np.floor(zn / lengths[2]))
    xn -= ix * lengths[0]
    yn -= iy * lengths[1]
    zn -= iz * lengths[2]
    if xn >= lengths[0]:
        xn -= lengths[0]
        ix += 1
    if yn >= lengths[1]:
        yn -= lengths[1]
        iy += 1
    if zn >= lengths[2]:
        zn -= lengths[2]
        iz += 1
    return xn, yn, zn, ix, iy, iz


@njit(cache=True)
def _domain_turns(d, state, eam, pos, species, images, lengths, shift, nd, table, ptab, ftab,
                  sc, nrho, nr, rho, nbr, nnbr, ref, dstart, dsort, sstart, ssort, spos,
                  members, slot, class_a, class_b, class_cdf, n_species, p_swap, delta, beta,
                  half_skin, rc_max, dcounts, dclass, de, flags):
    """All turns of domain d in one colour phase. ``eam`` selects the model: the LJ table
    ``table``, or the packed EAM tables ``ptab``, ``ftab``, ``sc``, ``nrho``, ``nr`` with the
    host densities ``rho`` (the other model's arrays are unused placeholders). Writes only
    particles of d, their slots, the densities of atoms within r_c of d (EAM), and row d of
    the per-domain counters."""
    # Scratch private to this domain (density changes of neighbours, EAM).
    dloc = np.empty(nbr.shape[1] if eam else 0)
    tq = np.empty(2 * nbr.shape[1] if eam else 0, np.int64)
    tdrho = np.empty(2 * nbr.shape[1] if eam else 0)
    # Turn order: a uniformly random permutation of the domain's particles (Fisher-Yates on
    # its own slice of dsort), so that the kernel does not depend on the particle labels.
    lo = dstart[d]
    for t in range(dstart[d + 1] - 1, lo, -1):
        state, u = next_uniform(state)
        r = lo + int(u * (t - lo + 1))
        dsort[t], dsort[r] = dsort[r], dsort[t]
    for t in range(lo, dstart[d + 1]):
        k = dsort[t]
        state, u = next_uniform(state)
        if u < p_swap:
            state, uc = next_uniform(state)
            state, ua = next_uniform(state)
            state, ub = next_uniform(state)
            state, acc_u = next_uniform(state)
            c = 0
            while c < class_a.shape[0] - 1 and uc >= class_cdf[c]:
                c += 1
            sa = class_a[c]
            sb = class_b[c]
            dcounts[d, 1, 0] += 1
            dclass[d, c, 0] += 1
            ba = d * n_species + sa
            bb = d * n_species + sb
            na = sstart[ba + 1] - sstart[ba]
            nb = sstart[bb + 1] - sstart[bb]
            if na == 0 or nb == 0:
                continue
            i = ssort[sstart[ba] + int(ua * na)]
            j = ssort[sstart[bb] + int(ub * nb)]
            if eam:
                du, rho_i_new, rho_j_new, n_touched = swap_du_eam(
                    i, j, sa, sb, pos, species, lengths, ptab, ftab, sc, nrho, nr, rho, nbr,
                    nnbr, tq, tdrho)
            else:
                du = swap_du_lj(i, j, sa, sb, pos, species, lengths, table, nbr, nnbr)
            if metropolis(du, beta, acc_u):
                dcounts[d, 1, 1] += 1
                dclass[d, c, 1] += 1
                if eam:
                    for q in range(n_touched):
                        rho[tq[q]] += tdrho[q]
                    rho[i] = rho_i_new
                    rho[j] = rho_j_new
                commit_swap(i, j, sa, sb, species, members, slot)
                pi = spos[i]
                pj = spos[j]
                ssort[pi] = j
                ssort[pj] = i
                spos[i] = pj
                spos[j] = pi
                de[d] += du
        else:
            state, ux = next_uniform(state)
            state, uy = next_uniform(state)
            state, uz = next_uniform(state)
            state, acc_u = next_uniform(state)
            dcounts[d, 0, 0] += 1
            xn, yn, zn, ix, iy, iz = _trial(pos[k, 0], pos[k, 1], pos[k, 2], ux, uy, uz,
                                            delta, lengths)
            if domain_of(xn, yn, zn, lengths, shift, nd) != d:
                dcounts[d, 2, 0] += 1
                continue
            if min_image_norm(xn - ref[k, 0], yn - ref[k, 1], zn - ref[k, 2],
                              lengths) >= half_skin:
                flags[d] = 1
                continue
            if eam:
                du, rho_k_new = displacement_du_eam(k, xn, yn, zn, pos, species, lengths,
                                                    ptab, ftab, sc, nrho, nr, rho, nbr, nnbr,
                                                    dloc)
            else:
                du = displacement_du_lj(k, xn, yn, zn, ix, iy, iz, pos, species, lengths,
                                        table, nbr, nnbr, rc_max)
            if metropolis(du, beta, acc_u):
                dcounts[d, 0, 1] += 1
                if eam:
                    # Only atoms within r_c change: a zero must not be written, since the
                    # row reaches atoms another domain may be updating.
                    for q in range(nnbr[k]):
                        if dloc[q] != 0.0:
                            rho[nbr[k, q]] += dloc[q]
                    rho[k] = rho_k_new
                pos[k, 0], pos[k, 1], pos[k, 2] = xn, yn, zn
                images[k, 0] += ix
                images[k, 1] += iy
                images[k, 2] += iz
                de[d] += du
    return state


@njit(parallel=True, cache=True)
def phases(eam, pos, species, images, lengths, table, ptab, ftab, sc, nrho, nr, rho, nbr, nnbr,
           ref, fstate, members, slot, class_a, class_b, class_cdf, n_species, p_swap, delta,
           beta, shift, nd, colour_doms, colour_order, key, dstart, dsort, sstart, ssort, spos,
           dcounts, dclass, de, flags):
    """The 8 colour phases of one sweep; the domains of a colour run in parallel.

    Parameters
    ----------
    eam : bool
        False: LJ (``table``, shape (S, S, 4), see ``lj.py``). True: EAM (``ptab``, ``ftab``
        from ``eam.pack_pair_table``/``pack_embedding_table``, ``sc``, ``nrho``, ``nr``, and
        the host densities ``rho`` (N,), updated). The other model's arrays are unused.
    pos, species, images, lengths, nbr, nnbr, ref, fstate, members, slot :
        As in ``mc_lj.run_attempts`` (``fstate`` read only).
    class_a, class_b, class_cdf : swap classes (as in ``mc_lj.run_attempts``).
    n_species : int
    p_swap, delta, beta : float
        Swap probability per turn, maximum displacement per component (length units),
        1 / (k_B T) (inverse energy units).
    shift : ndarray, shape (3,)
        Origin of the domain grid this sweep, in [0, L).
    nd : ndarray, shape (3,), int64
        Domains per dimension (even).
    colour_doms : ndarray, shape (8, n_domains / 8), int64
        From :func:`colour_domains`.
    colour_order : ndarray, shape (8,), int64
        Order of the colour phases.
    key : uint64
        This sweep's stream key.
    dstart, dsort, sstart, ssort, spos :
        Domain tables from :func:`prepare_sweep` (``ssort`` and ``spos`` updated by swaps).
    dcounts, dclass, de, flags :
        Per-domain counters, zeroed by the caller (see the module docstring).
    """
    half_skin = 0.5 * fstate[3]
    rc_max = fstate[2]
    nper = colour_doms.shape[1]
    for ci in range(N_COLOURS):
        colour = colour_order[ci]
        for t in prange(nper):
            d = colour_doms[colour, t]
            _domain_turns(d, stream_seed(key, d), eam, pos, species, images, lengths, shift,
                          nd, table, ptab, ftab, sc, nrho, nr, rho, nbr, nnbr, ref, dstart,
                          dsort, sstart, ssort, spos, members, slot, class_a, class_b,
                          class_cdf, n_species, p_swap, delta, beta, half_skin, rc_max,
                          dcounts, dclass, de, flags)
