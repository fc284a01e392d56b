"""Metropolis attempt loop for Lennard-Jones mixtures: displacement, swap and volume moves.

One call runs a given number of attempts (N per sweep). Each attempt draws its move type at
random with fixed probabilities; a displacement acts on a particle drawn at random (random
order, detailed balance move by move) or on the particle whose turn it is in storage order
(sequential order, balance); swaps draw their pair at random in both orders. The argument
is in ``mc_common.py``, with the neighbour-list bookkeeping and the state arrays.

The pair loops are branch-free: about half of the list (radius r_c + skin) lies beyond the
cut-off in an order the branch predictor cannot learn, so every pair term is evaluated and
multiplied by a 0/1 weight (a select, not a branch), which measured 1.3-1.4x faster for
displacements and 1.4-1.6x for swaps (KA2, N = 1000-64 000). The result is the same to the
bit: a weight of 1 leaves the term unchanged and a weight of 0 adds a signed zero to the sum
(the term is finite, since r >= r_c there).
"""

import numpy as np
from numba import njit

from .lj import energy_virial, particle_energy_all
from .mc_common import (
    choose_swap,
    commit_swap,
    list_covers_scaled,
    metropolis,
    prepare_trial,
    propose_displacement,
    propose_volume,
    rebuild,
    refresh,
    scale_system,
)
from .neighbors import build_verlet


@njit(cache=True)
def run_attempts(
    pos,
    species,
    images,
    lengths,
    table,
    nbr,
    nnbr,
    ref,
    grid,
    cell_members,
    cell_count,
    p_cell,
    p_slot,
    stamp,
    fstate,
    istate,
    members,
    slot,
    member_counts,
    class_a,
    class_b,
    class_cdf,
    p_swap,
    p_volume,
    delta,
    lnv_step,
    beta,
    pressure,
    n_attempts,
    sequential,
    start,
    rng,
    counts,
    class_counts,
    nstats,
):
    """Run ``n_attempts`` Monte Carlo attempts in place.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Wrapped positions (updated).
    species : ndarray, shape (N,), int32 (updated by swaps).
    images : ndarray, shape (N, 3), int64 (updated when a particle crosses the box).
    lengths : ndarray, shape (3,)
        Box lengths (updated by volume moves).
    table : ndarray, shape (S, S, 4)
        LJ parameters (see ``lj.py``).
    nbr, nnbr, ref :
        Verlet list, its counts and the per-particle reference positions.
    grid, cell_members, cell_count, p_cell, p_slot :
        Cell index of the reference positions (``neighbors.build_ref_cells``).
    stamp : ndarray, shape (N,), int64
        Scratch marks for refreshes.
    fstate, istate : see module docstring.
    members : ndarray, shape (S, N), int64
        ``members[s, :member_counts[s]]`` are the particles of species s.
    slot : ndarray, shape (N,), int64
        Position of each particle in its species row of ``members``.
    member_counts : ndarray, shape (S,), int64
    class_a, class_b : ndarray, shape (C,), int64
        Species pair of each allowed swap class.
    class_cdf : ndarray, shape (C,)
        Cumulative class probabilities (last entry 1).
    p_swap, p_volume : float
        Per-attempt probabilities of a swap and of a volume move.
    delta : float
        Maximum displacement per Cartesian component (length units).
    lnv_step : float
        Maximum change of ln V per volume move.
    beta : float
        1 / (k_B T) (inverse energy units).
    pressure : float
        Imposed pressure for volume moves (energy / length^3).
    n_attempts : int
        Number of attempts (N per sweep).
    sequential : bool
        False: a displacement moves a particle drawn at random (random order). True:
        attempt t is the turn of particle (start + t) mod N, which a displacement moves
        (sequential order). Swaps and volume moves are the same in both orders.
    start : int
        Storage index of the first attempt's particle (sequential order only).
    rng : numpy.random.Generator
    counts, class_counts, nstats : counters (updated).

    Returns
    -------
    nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot :
        The neighbour structures, possibly reallocated.
    """
    n = pos.shape[0]
    site = start
    for _ in range(n_attempts):
        # The particle whose turn this is in sequential order; a swap or a volume move uses
        # the turn.
        k_seq = site
        site += 1
        if site == n:
            site = 0
        il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
        u = rng.random()
        if u < p_volume:
            # ---------------------------------------------------------- volume move
            counts[2, 0] += 1
            v_old = lengths[0] * lengths[1] * lengths[2]
            s, dlnv, allowed = propose_volume(lengths, lnv_step, fstate[2], rng)
            acc_u = rng.random()
            if not allowed:
                nstats[3] += 1
                continue
            if list_covers_scaled(pos, ref, lengths, fstate[2], s, fstate[1]):
                e_new, _w = energy_virial(pos, species, lengths, s, table, nbr, nnbr)
            else:
                tmp = np.empty((n, nbr.shape[1]), np.int32)
                tmp, tnn = build_verlet(pos, lengths, fstate[2] / s + 1e-9, tmp)
                e_new, _w = energy_virial(pos, species, lengths, s, table, tmp, tnn)
                nstats[1] += 1
            dv = v_old * (s * s * s - 1.0)
            arg = -beta * (e_new - fstate[0] + pressure * dv) + (n + 1) * dlnv
            if arg >= 0.0 or acc_u < np.exp(arg):
                counts[2, 1] += 1
                scale_system(pos, images, lengths, s)
                fstate[0] = e_new
                nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot = rebuild(
                    pos, lengths, ref, nbr, cell_members, fstate, nstats
                )
        elif u < p_volume + p_swap:
            # ------------------------------------------------------------ swap move
            # In both orders the pair is drawn at random (see mc_common.py for why).
            c, sa, sb, i, j = choose_swap(rng, class_cdf, class_a, class_b, members,
                                          member_counts)
            acc_u = rng.random()
            counts[1, 0] += 1
            class_counts[c, 0] += 1
            du = 0.0
            # Particle i changes a -> b, j changes b -> a; the i-j pair term is symmetric in
            # the two identities and cancels, so both loops skip it.
            for p in range(2):
                if p == 0:
                    m, other, s_old, s_new = i, j, sa, sb
                else:
                    m, other, s_old, s_new = j, i, sb, sa
                xm, ym, zm = pos[m, 0], pos[m, 1], pos[m, 2]
                for k in range(nnbr[m]):
                    q = nbr[m, k]
                    if q == other:
                        continue
                    sq = species[q]
                    dx = pos[q, 0] - xm
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = pos[q, 1] - ym
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pos[q, 2] - zm
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    # Branch-free (see the module docstring).
                    w = 1.0 if r2 < table[s_new, sq, 2] else 0.0
                    q6 = table[s_new, sq, 1] / r2
                    q6 = q6 * q6 * q6
                    du += w * (table[s_new, sq, 0] * (q6 * q6 - q6) - table[s_new, sq, 3])
                    w = 1.0 if r2 < table[s_old, sq, 2] else 0.0
                    q6 = table[s_old, sq, 1] / r2
                    q6 = q6 * q6 * q6
                    du -= w * (table[s_old, sq, 0] * (q6 * q6 - q6) - table[s_old, sq, 3])
            if metropolis(du, beta, acc_u):
                counts[1, 1] += 1
                class_counts[c, 1] += 1
                commit_swap(i, j, sa, sb, species, members, slot)
                fstate[0] += du
        else:
            # ---------------------------------------------------- displacement move
            i = k_seq if sequential else int(rng.random() * n)
            xn, yn, zn, ix, iy, iz = propose_displacement(pos, i, delta, lengths, rng)
            acc_u = rng.random()
            counts[0, 0] += 1
            nbr, cell_members, use_list = prepare_trial(
                i, xn, yn, zn, pos, ref, lengths, nbr, nnbr, grid, cell_members, cell_count,
                p_cell, p_slot, stamp, fstate, istate, nstats,
            )
            xo, yo, zo = pos[i, 0], pos[i, 1], pos[i, 2]
            si = species[i]
            du = 0.0
            # The trial displacement itself (unwrapped): when half the box exceeds the cut-off
            # by more than the move, a pair's new minimum-image separation is its old one
            # minus the move (a pair that would need re-imaging is beyond the cut-off both
            # ways), which saves three rint per neighbour.
            mx = xn + ix * lengths[0] - xo
            my = yn + iy * lengths[1] - yo
            mz = zn + iz * lengths[2] - zo
            reuse_image = 0.5 * min(lengths[0], min(lengths[1], lengths[2])) - max(
                abs(mx), max(abs(my), abs(mz))) >= fstate[2]
            if use_list and reuse_image:
                for k in range(nnbr[i]):
                    j = nbr[i, k]
                    sj = species[j]
                    rc2 = table[si, sj, 2]
                    sig2 = table[si, sj, 1]
                    e4 = table[si, sj, 0]
                    sh = table[si, sj, 3]
                    dx = pos[j, 0] - xo
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = pos[j, 1] - yo
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pos[j, 2] - zo
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    w = 1.0 if r2 < rc2 else 0.0
                    q6 = sig2 / r2
                    q6 = q6 * q6 * q6
                    du -= w * (e4 * (q6 * q6 - q6) - sh)
                    dx -= mx
                    dy -= my
                    dz -= mz
                    r2 = dx * dx + dy * dy + dz * dz
                    w = 1.0 if r2 < rc2 else 0.0
                    q6 = sig2 / r2
                    q6 = q6 * q6 * q6
                    du += w * (e4 * (q6 * q6 - q6) - sh)
            elif use_list:
                for k in range(nnbr[i]):
                    j = nbr[i, k]
                    sj = species[j]
                    rc2 = table[si, sj, 2]
                    sig2 = table[si, sj, 1]
                    e4 = table[si, sj, 0]
                    sh = table[si, sj, 3]
                    px, py, pz = pos[j, 0], pos[j, 1], pos[j, 2]
                    dx = px - xo
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = py - yo
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pz - zo
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    w = 1.0 if r2 < rc2 else 0.0
                    q6 = sig2 / r2
                    q6 = q6 * q6 * q6
                    du -= w * (e4 * (q6 * q6 - q6) - sh)
                    dx = px - xn
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = py - yn
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pz - zn
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    w = 1.0 if r2 < rc2 else 0.0
                    q6 = sig2 / r2
                    q6 = q6 * q6 * q6
                    du += w * (e4 * (q6 * q6 - q6) - sh)
            else:
                nstats[1] += 1
                du = particle_energy_all(
                    i, xn, yn, zn, si, pos, species, lengths, table, -1
                ) - particle_energy_all(i, xo, yo, zo, si, pos, species, lengths, table, -1)
            if metropolis(du, beta, acc_u):
                counts[0, 1] += 1
                pos[i, 0], pos[i, 1], pos[i, 2] = xn, yn, zn
                images[i, 0] += ix
                images[i, 1] += iy
                images[i, 2] += iz
                fstate[0] += du
                if not use_list:
                    ref[i, 0], ref[i, 1], ref[i, 2] = xn, yn, zn
                    nbr, cell_members = refresh(
                        i, ref, lengths, nbr, nnbr, grid, cell_members, cell_count, p_cell,
                        p_slot, stamp, fstate, istate, nstats,
                    )
    return nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot


@njit(cache=True)
def swap_du_lj(i, j, sa, sb, pos, species, lengths, table, nbr, nnbr):
    """Energy change of re-typing i (sa -> sb) and j (sb -> sa), from their Verlet rows.

    The same arithmetic, in the same order, as the swap branch of :func:`run_attempts`
    (used by the domain-decomposed sweep, ``mc_domains.py``).
    """
    il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
    du = 0.0
    for p in range(2):
        if p == 0:
            m, other, s_old, s_new = i, j, sa, sb
        else:
            m, other, s_old, s_new = j, i, sb, sa
        xm, ym, zm = pos[m, 0], pos[m, 1], pos[m, 2]
        for k in range(nnbr[m]):
            q = nbr[m, k]
            if q == other:
                continue
            sq = species[q]
            dx = pos[q, 0] - xm
            dx -= lengths[0] * np.rint(dx * il0)
            dy = pos[q, 1] - ym
            dy -= lengths[1] * np.rint(dy * il1)
            dz = pos[q, 2] - zm
            dz -= lengths[2] * np.rint(dz * il2)
            r2 = dx * dx + dy * dy + dz * dz
            w = 1.0 if r2 < table[s_new, sq, 2] else 0.0
            q6 = table[s_new, sq, 1] / r2
            q6 = q6 * q6 * q6
            du += w * (table[s_new, sq, 0] * (q6 * q6 - q6) - table[s_new, sq, 3])
            w = 1.0 if r2 < table[s_old, sq, 2] else 0.0
            q6 = table[s_old, sq, 1] / r2
            q6 = q6 * q6 * q6
            du -= w * (table[s_old, sq, 0] * (q6 * q6 - q6) - table[s_old, sq, 3])
    return du


@njit(cache=True)
def displacement_du_lj(i, xn, yn, zn, ix, iy, iz, pos, species, lengths, table, nbr, nnbr,
                       rc_max):
    """Energy change of moving i to the wrapped (xn, yn, zn) (image shift ix, iy, iz) from
    its Verlet row, which the caller guarantees covers every pair closer than the cut-off
    before and after the move. Same arithmetic as the list branches of :func:`run_attempts`.
    """
    il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
    xo, yo, zo = pos[i, 0], pos[i, 1], pos[i, 2]
    si = species[i]
    du = 0.0
    mx = xn + ix * lengths[0] - xo
    my = yn + iy * lengths[1] - yo
    mz = zn + iz * lengths[2] - zo
    reuse_image = 0.5 * min(lengths[0], min(lengths[1], lengths[2])) - max(
        abs(mx), max(abs(my), abs(mz))) >= rc_max
    if reuse_image:
        for k in range(nnbr[i]):
            j = nbr[i, k]
            sj = species[j]
            rc2 = table[si, sj, 2]
            sig2 = table[si, sj, 1]
            e4 = table[si, sj, 0]
            sh = table[si, sj, 3]
            dx = pos[j, 0] - xo
            dx -= lengths[0] * np.rint(dx * il0)
            dy = pos[j, 1] - yo
            dy -= lengths[1] * np.rint(dy * il1)
            dz = pos[j, 2] - zo
            dz -= lengths[2] * np.rint(dz * il2)
            r2 = dx * dx + dy * dy + dz * dz
            w = 1.0 if r2 < rc2 else 0.0
            q6 = sig2 / r2
            q6 = q6 * q6 * q6
            du -= w * (e4 * (q6 * q6 - q6) - sh)
            dx -= mx
            dy -= my
            dz -= mz
            r2 = dx * dx + dy * dy + dz * dz
            w = 1.0 if r2 < rc2 else 0.0
            q6 = sig2 / r2
            q6 = q6 * q6 * q6
            du += w * (e4 * (q6 * q6 - q6) - sh)
    else:
        for k in range(nnbr[i]):
            j = nbr[i, k]
            sj = species[j]
            rc2 = table[si, sj, 2]
            sig2 = table[si, sj, 1]
            e4 = table[si, sj, 0]
            sh = table[si, sj, 3]
            px, py, pz = pos[j, 0], pos[j, 1], pos[j, 2]
            dx = px - xo
            dx -= lengths[0] * np.rint(dx * il0)
            dy = py - yo
            dy -= lengths[1] * np.rint(dy * il1)
            dz = pz - zo
            dz -= lengths[2] * np.rint(dz * il2)
            r2 = dx * dx + dy * dy + dz * dz
            w = 1.0 if r2 < rc2 else 0.0
            q6 = sig2 / r2
            q6 = q6 * q6 * q6
            du -= w * (e4 * (q6 * q6 - q6) - sh)
            dx = px - xn
            dx -= lengths[0] * np.rint(dx * il0)
            dy = py - yn
            dy -= lengths[1] * np.rint(dy * il1)
            dz = pz - zn
            dz -= lengths[2] * np.rint(dz * il2)
            r2 = dx * dx + dy * dy + dz * dz
            w = 1.0 if r2 < rc2 else 0.0
            q6 = sig2 / r2
            q6 = q6 * q6 * q6
            du += w * (e4 * (q6 * q6 - q6) - sh)
    return du
