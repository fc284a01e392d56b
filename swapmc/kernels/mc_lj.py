"""Metropolis sweep loop for Lennard-Jones mixtures: displacement, swap and volume moves.

One call runs a given number of attempts (N per sweep). Each attempt draws its move type at
random with fixed probabilities, so the mixture of moves satisfies detailed balance move by
move.

Neighbour-list bookkeeping (why it is exact for any move size): the Verlet list always
equals {j : |ref_i - ref_j| < r_list} with r_list = rc_max + skin (see ``neighbors.py``), and
every particle stays closer than skin / 2 to its reference ``ref``. A pair closer than rc now
is therefore in the list. A trial displacement that would end skin / 2 or more from the
reference first refreshes the particle's reference (O(neighbours)); a trial move larger than
skin / 2 itself is summed over all particles (O(N), rare), and the particle is refreshed
if it is accepted. Swaps do not move particles, and the list radius uses the largest cut-off
of all species pairs, so swaps never touch the list. An accepted volume move rebuilds it.

State arrays (mutated in place):
``fstate``: [0] running energy, [1] r_list, [2] rc_max, [3] skin.
``istate``: [0] next stamp id for refreshes.
``counts``: shape (3, 2), attempts/acceptances for displacement, swap, volume.
``class_counts``: shape (n_classes, 2), swap attempts/acceptances per pair class.
``nstats``: [0] global list builds, [1] moves summed with the O(N) fallback,
[2] particle refreshes.
"""

import numpy as np
from numba import njit

from .lj import energy_virial, particle_energy_all
from .neighbors import build_ref_cells, build_verlet, refresh_particle, sort_rows


@njit(cache=True)
def rebuild(pos, lengths, ref, nbr, cell_members, fstate, nstats):
    """Global rebuild: references at the current positions, sorted rows, reference cells."""
    ref[:, :] = pos
    nbr, nnbr = build_verlet(ref, lengths, fstate[1], nbr)
    sort_rows(nbr, nnbr)
    grid, cell_members, cell_count, p_cell, p_slot = build_ref_cells(
        ref, lengths, fstate[1], cell_members
    )
    nstats[0] += 1
    return nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot


@njit(cache=True)
def _min_image_norm(dx, dy, dz, lengths):
    dx -= lengths[0] * np.rint(dx / lengths[0])
    dy -= lengths[1] * np.rint(dy / lengths[1])
    dz -= lengths[2] * np.rint(dz / lengths[2])
    return np.sqrt(dx * dx + dy * dy + dz * dz)


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
    rng : numpy.random.Generator
    counts, class_counts, nstats : counters (updated).

    Returns
    -------
    nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot :
        The neighbour structures, possibly reallocated.
    """
    n = pos.shape[0]
    n_classes = class_a.shape[0]
    il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
    for _ in range(n_attempts):
        u = rng.random()
        if u < p_volume:
            # ---------------------------------------------------------- volume move
            counts[2, 0] += 1
            v_old = lengths[0] * lengths[1] * lengths[2]
            dlnv = (2.0 * rng.random() - 1.0) * lnv_step
            s = np.exp(dlnv / 3.0)
            acc_u = rng.random()
            rc = fstate[2]
            if 2.0 * rc > s * min(lengths[0], min(lengths[1], lengths[2])):
                # Volumes whose box is shorter than twice the cut-off are outside the sampled
                # ensemble (minimum image would break): reject, which keeps balance.
                continue
            # Pairs closer than rc after scaling were closer than rc / s before; the list
            # holds them if rc / s + 2 max|pos - ref| < r_list.
            dmax = 0.0
            for q in range(n):
                dq = _min_image_norm(
                    pos[q, 0] - ref[q, 0], pos[q, 1] - ref[q, 1], pos[q, 2] - ref[q, 2], lengths
                )
                dmax = max(dmax, dq)
            if rc / s + 2.0 * dmax < fstate[1]:
                e_new, _w = energy_virial(pos, species, lengths, s, table, nbr, nnbr)
            else:
                tmp = np.empty((n, nbr.shape[1]), np.int32)
                tmp, tnn = build_verlet(pos, lengths, rc / s + 1e-9, tmp)
                e_new, _w = energy_virial(pos, species, lengths, s, table, tmp, tnn)
                nstats[1] += 1
            du = e_new - fstate[0]
            dv = v_old * (s * s * s - 1.0)
            arg = -beta * (du + pressure * dv) + (n + 1) * dlnv
            if arg >= 0.0 or acc_u < np.exp(arg):
                counts[2, 1] += 1
                for d in range(3):
                    lengths[d] *= s
                for i in range(n):
                    for d in range(3):
                        pos[i, d] *= s
                        # Rounding can put a coordinate exactly on the upper face.
                        if pos[i, d] >= lengths[d]:
                            pos[i, d] -= lengths[d]
                            images[i, d] += 1
                fstate[0] = e_new
                il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
                nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot = rebuild(
                    pos, lengths, ref, nbr, cell_members, fstate, nstats
                )
        elif u < p_volume + p_swap:
            # ------------------------------------------------------------ swap move
            uc = rng.random()
            c = 0
            while c < n_classes - 1 and uc >= class_cdf[c]:
                c += 1
            sa = class_a[c]
            sb = class_b[c]
            i = members[sa, int(rng.random() * member_counts[sa])]
            j = members[sb, int(rng.random() * member_counts[sb])]
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
                    if r2 < table[s_new, sq, 2]:
                        q6 = table[s_new, sq, 1] / r2
                        q6 = q6 * q6 * q6
                        du += table[s_new, sq, 0] * (q6 * q6 - q6) - table[s_new, sq, 3]
                    if r2 < table[s_old, sq, 2]:
                        q6 = table[s_old, sq, 1] / r2
                        q6 = q6 * q6 * q6
                        du -= table[s_old, sq, 0] * (q6 * q6 - q6) - table[s_old, sq, 3]
            if du <= 0.0 or acc_u < np.exp(-beta * du):
                counts[1, 1] += 1
                class_counts[c, 1] += 1
                species[i] = sb
                species[j] = sa
                si_slot = slot[i]
                sj_slot = slot[j]
                members[sa, si_slot] = j
                members[sb, sj_slot] = i
                slot[i] = sj_slot
                slot[j] = si_slot
                fstate[0] += du
        else:
            # ---------------------------------------------------- displacement move
            i = int(rng.random() * n)
            ddx = (2.0 * rng.random() - 1.0) * delta
            ddy = (2.0 * rng.random() - 1.0) * delta
            ddz = (2.0 * rng.random() - 1.0) * delta
            acc_u = rng.random()
            counts[0, 0] += 1
            xo, yo, zo = pos[i, 0], pos[i, 1], pos[i, 2]
            xn, yn, zn = xo + ddx, yo + ddy, zo + ddz
            # Wrap the trial position, remembering the image shift.
            ix = int(np.floor(xn / lengths[0]))
            iy = int(np.floor(yn / lengths[1]))
            iz = int(np.floor(zn / lengths[2]))
            xn -= ix * lengths[0]
            yn -= iy * lengths[1]
            zn -= iz * lengths[2]
            # Guard against xn == L after rounding a tiny negative value.
            if xn >= lengths[0]:
                xn -= lengths[0]
                ix += 1
            if yn >= lengths[1]:
                yn -= lengths[1]
                iy += 1
            if zn >= lengths[2]:
                zn -= lengths[2]
                iz += 1
            half_skin = 0.5 * fstate[3]
            d_trial = _min_image_norm(xn - ref[i, 0], yn - ref[i, 1], zn - ref[i, 2], lengths)
            if d_trial >= half_skin:
                ref[i, 0], ref[i, 1], ref[i, 2] = xo, yo, zo
                nbr, cell_members = refresh_particle(
                    i, ref, lengths, fstate[1], nbr, nnbr, grid, cell_members, cell_count,
                    p_cell, p_slot, stamp, istate[0],
                )
                istate[0] += 2
                nstats[2] += 1
                d_trial = _min_image_norm(xn - xo, yn - yo, zn - zo, lengths)
            si = species[i]
            du = 0.0
            use_list = d_trial < half_skin
            if use_list:
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
                    if r2 < rc2:
                        q6 = sig2 / r2
                        q6 = q6 * q6 * q6
                        du -= e4 * (q6 * q6 - q6) - sh
                    dx = px - xn
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = py - yn
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pz - zn
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    if r2 < rc2:
                        q6 = sig2 / r2
                        q6 = q6 * q6 * q6
                        du += e4 * (q6 * q6 - q6) - sh
            else:
                nstats[1] += 1
                du = particle_energy_all(
                    i, xn, yn, zn, si, pos, species, lengths, table, -1
                ) - particle_energy_all(i, xo, yo, zo, si, pos, species, lengths, table, -1)
            if du <= 0.0 or acc_u < np.exp(-beta * du):
                counts[0, 1] += 1
                pos[i, 0] = xn
                pos[i, 1] = yn
                pos[i, 2] = zn
                images[i, 0] += ix
                images[i, 1] += iy
                images[i, 2] += iz
                fstate[0] += du
                if not use_list:
                    ref[i, 0], ref[i, 1], ref[i, 2] = xn, yn, zn
                    nbr, cell_members = refresh_particle(
                        i, ref, lengths, fstate[1], nbr, nnbr, grid, cell_members, cell_count,
                        p_cell, p_slot, stamp, istate[0],
                    )
                    istate[0] += 2
                    nstats[2] += 1
    return nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot
