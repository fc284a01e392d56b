"""Metropolis attempt loop for EAM alloys: displacement, swap and volume moves.

Energy changes are local but many-body: moving or re-typing a particle changes its own host
density and that of every neighbour, so ΔU includes the embedding terms of all of them.
The host densities ``rho`` (shape (N,)) are kept up to date with every accepted move and
reset from a full recomputation at each energy check (see the sampler), so rounding never
accumulates. The neighbour-list bookkeeping and the shared state arrays are described in
``mc_common.py``; tables are described in ``eam.py``.

Scratch arrays: ``drho`` and ``drho_old`` (N,) float64, ``tmark`` and ``touched`` (N,) int64.
"""

import numpy as np
from numba import njit

from .eam import cell_of, embed_packed, energy_virial, particle_terms_all
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
def run_attempts_eam(
    pos,
    species,
    images,
    lengths,
    frho,
    rhor,
    z2r,
    ptab,
    ftab,
    sc,
    nr,
    nrho,
    rho,
    drho,
    drho_old,
    tmark,
    touched,
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
    """Run ``n_attempts`` Monte Carlo attempts in place on an EAM system.

    Arguments are those of ``mc_lj.run_attempts`` with the LJ table replaced by the EAM
    tables (``frho``, ``rhor``, ``z2r``, ``sc``, ``nr``, ``nrho``; see ``eam.py``) and their
    packed forms for the hot loops (``ptab`` from ``eam.pack_pair_table``, ``ftab`` from
    ``eam.pack_embedding_table``), plus the
    host densities ``rho`` (N,) kept current, and scratch arrays. Energies in eV, lengths in
    Å, ``beta`` = 1 / (k_B T) in 1/eV, ``pressure`` in eV/Å^3. ``sequential`` and
    ``start`` choose the attempt order as in ``mc_lj.run_attempts``.

    Returns
    -------
    nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot :
        The neighbour structures, possibly reallocated.
    """
    n = pos.shape[0]
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    rho_trial = np.empty(n)
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
                e_new, _w = energy_virial(pos, species, lengths, s, frho, rhor, z2r, sc, nr,
                                          nrho, nbr, nnbr, rho_trial)
            else:
                tmp = np.empty((n, nbr.shape[1]), np.int32)
                tmp, tnn = build_verlet(pos, lengths, fstate[2] / s + 1e-9, tmp)
                e_new, _w = energy_virial(pos, species, lengths, s, frho, rhor, z2r, sc, nr,
                                          nrho, tmp, tnn, rho_trial)
                nstats[1] += 1
            dv = v_old * (s * s * s - 1.0)
            arg = -beta * (e_new - fstate[0] + pressure * dv) + (n + 1) * dlnv
            if arg >= 0.0 or acc_u < np.exp(arg):
                counts[2, 1] += 1
                scale_system(pos, images, lengths, s)
                fstate[0] = e_new
                rho[:] = rho_trial
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
            mark = istate[1]
            istate[1] += 1
            n_touched = 0
            dpair = 0.0
            rho_i_new = 0.0
            rho_j_new = 0.0
            for p in range(2):
                if p == 0:
                    m, other, s_old, s_new = i, j, sa, sb
                else:
                    m, other, s_old, s_new = j, i, sb, sa
                xm, ym, zm = pos[m, 0], pos[m, 1], pos[m, 2]
                acc_rho = 0.0
                for k in range(nnbr[m]):
                    q = nbr[m, k]
                    dx = pos[q, 0] - xm
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = pos[q, 1] - ym
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pos[q, 2] - zm
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    if r2 >= cutsq:
                        continue
                    m_r, pr = cell_of(np.sqrt(r2), rdr, nr)
                    ir = 1.0 / np.sqrt(r2)
                    if q == other:
                        # The partner now has m's old type; the i-j pair term is symmetric
                        # in the two identities and cancels, but densities do not.
                        row = ptab[s_new, s_old, m_r]
                        acc_rho += ((row[8] * pr + row[9]) * pr + row[10]) * pr + row[11]
                        continue
                    sq = species[q]
                    cn = ptab[s_new, sq, m_r]
                    co = ptab[s_old, sq, m_r]
                    dpair += (((cn[0] * pr + cn[1]) * pr + cn[2]) * pr + cn[3]
                              - (((co[0] * pr + co[1]) * pr + co[2]) * pr + co[3])) * ir
                    acc_rho += ((cn[8] * pr + cn[9]) * pr + cn[10]) * pr + cn[11]
                    dq = (((cn[4] * pr + cn[5]) * pr + cn[6]) * pr + cn[7]
                          - (((co[4] * pr + co[5]) * pr + co[6]) * pr + co[7]))
                    if tmark[q] != mark:
                        tmark[q] = mark
                        drho[q] = 0.0
                        touched[n_touched] = q
                        n_touched += 1
                    drho[q] += dq
                if p == 0:
                    rho_i_new = acc_rho
                else:
                    rho_j_new = acc_rho
            demb = (embed_packed(ftab[sb], rho_i_new, rdrho, nrho, rhomax)
                    - embed_packed(ftab[sa], rho[i], rdrho, nrho, rhomax)
                    + embed_packed(ftab[sa], rho_j_new, rdrho, nrho, rhomax)
                    - embed_packed(ftab[sb], rho[j], rdrho, nrho, rhomax))
            for t in range(n_touched):
                q = touched[t]
                fq = ftab[species[q]]
                demb += (embed_packed(fq, rho[q] + drho[q], rdrho, nrho, rhomax)
                         - embed_packed(fq, rho[q], rdrho, nrho, rhomax))
            du = dpair + demb
            if metropolis(du, beta, acc_u):
                counts[1, 1] += 1
                class_counts[c, 1] += 1
                for t in range(n_touched):
                    q = touched[t]
                    rho[q] += drho[q]
                rho[i] = rho_i_new
                rho[j] = rho_j_new
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
            dpair = 0.0
            demb = 0.0
            rho_i_new = 0.0
            if use_list:
                for k in range(nnbr[i]):
                    j = nbr[i, k]
                    sj = species[j]
                    px, py, pz = pos[j, 0], pos[j, 1], pos[j, 2]
                    dj = 0.0
                    dx = px - xo
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = py - yo
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pz - zo
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    if r2 < cutsq:
                        r = np.sqrt(r2)
                        m_r, pr = cell_of(r, rdr, nr)
                        row = ptab[si, sj, m_r]
                        dpair -= (((row[0] * pr + row[1]) * pr + row[2]) * pr + row[3]) / r
                        dj -= ((row[4] * pr + row[5]) * pr + row[6]) * pr + row[7]
                    dx = px - xn
                    dx -= lengths[0] * np.rint(dx * il0)
                    dy = py - yn
                    dy -= lengths[1] * np.rint(dy * il1)
                    dz = pz - zn
                    dz -= lengths[2] * np.rint(dz * il2)
                    r2 = dx * dx + dy * dy + dz * dz
                    if r2 < cutsq:
                        r = np.sqrt(r2)
                        m_r, pr = cell_of(r, rdr, nr)
                        row = ptab[si, sj, m_r]
                        dpair += (((row[0] * pr + row[1]) * pr + row[2]) * pr + row[3]) / r
                        dj += ((row[4] * pr + row[5]) * pr + row[6]) * pr + row[7]
                        rho_i_new += ((row[8] * pr + row[9]) * pr + row[10]) * pr + row[11]
                    drho[j] = dj
                    if dj != 0.0:
                        fj = ftab[sj]
                        demb += (embed_packed(fj, rho[j] + dj, rdrho, nrho, rhomax)
                                 - embed_packed(fj, rho[j], rdrho, nrho, rhomax))
            else:
                nstats[1] += 1
                e_new, rho_i_new = particle_terms_all(i, xn, yn, zn, si, pos, species, lengths,
                                                      rhor, z2r, sc, nr, drho)
                e_old, _r = particle_terms_all(i, xo, yo, zo, si, pos, species, lengths, rhor,
                                               z2r, sc, nr, drho_old)
                dpair = e_new - e_old
                for j in range(n):
                    drho[j] -= drho_old[j]
                    if drho[j] != 0.0:
                        fj = ftab[species[j]]
                        demb += (embed_packed(fj, rho[j] + drho[j], rdrho, nrho, rhomax)
                                 - embed_packed(fj, rho[j], rdrho, nrho, rhomax))
            du = (dpair + demb + embed_packed(ftab[si], rho_i_new, rdrho, nrho, rhomax)
                  - embed_packed(ftab[si], rho[i], rdrho, nrho, rhomax))
            if metropolis(du, beta, acc_u):
                counts[0, 1] += 1
                if use_list:
                    for k in range(nnbr[i]):
                        j = nbr[i, k]
                        rho[j] += drho[j]
                else:
                    for j in range(n):
                        rho[j] += drho[j]
                rho[i] = rho_i_new
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
def displacement_du_eam(i, xn, yn, zn, pos, species, lengths, ptab, ftab, sc, nrho, nr, rho,
                        nbr, nnbr, dloc):
    """Energy change of moving i to the wrapped (xn, yn, zn), from its Verlet row, which the
    caller guarantees covers every pair closer than the cut-off before and after the move.

    The same arithmetic as the list branch of :func:`run_attempts_eam`, but the density
    change of the k-th neighbour goes into ``dloc[k]`` (shape >= (nnbr[i],)), scratch
    private to the caller, so that domains run in parallel (``mc_domains.py``).

    Returns
    -------
    du : float
        eV.
    rho_i_new : float
        Host density of i at its new position.
    """
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    il0, il1, il2 = 1.0 / lengths[0], 1.0 / lengths[1], 1.0 / lengths[2]
    xo, yo, zo = pos[i, 0], pos[i, 1], pos[i, 2]
    si = species[i]
    dpair = 0.0
    demb = 0.0
    rho_i_new = 0.0
    for k in range(nnbr[i]):
        j = nbr[i, k]
        sj = species[j]
        px, py, pz = pos[j, 0], pos[j, 1], pos[j, 2]
        dj = 0.0
        dx = px - xo
        dx -= lengths[0] * np.rint(dx * il0)
        dy = py - yo
        dy -= lengths[1] * np.rint(dy * il1)
        dz = pz - zo
        dz -= lengths[2] * np.rint(dz * il2)
        r2 = dx * dx + dy * dy + dz * dz
        if r2 < cutsq:
            r = np.sqrt(r2)
            m_r, pr = cell_of(r, rdr, nr)
            row = ptab[si, sj, m_r]
            dpair -= (((row[0] * pr + row[1]) * pr + row[2]) * pr + row[3]) / r
            dj -= ((row[4] * pr + row[5]) * pr + row[6]) * pr + row[7]
        dx = px - xn
        dx -= lengths[0] * np.rint(dx * il0)
        dy = py - yn
        dy -= lengths[1] * np.rint(dy * il1)
        dz = pz - zn
        dz -= lengths[2] * np.rint(dz * il2)
        r2 = dx * dx + dy * dy + dz * dz
        if r2 < cutsq:
            r = np.sqrt(r2)
            m_r, pr = cell_of(r, rdr, nr)
            row = ptab[si, sj, m_r]
            dpair += (((row[0] * pr + row[1]) * pr + row[2]) * pr + row[3]) / r
            dj += ((row[4] * pr + row[5]) * pr + row[6]) * pr + row[7]
            rho_i_new += ((row[8] * pr + row[9]) * pr + row[10]) * pr + row[11]
        dloc[k] = dj
        if dj != 0.0:
            fj = ftab[sj]
            demb += (embed_packed(fj, rho[j] + dj, rdrho, nrho, rhomax)
                     - embed_packed(fj, rho[j], rdrho, nrho, rhomax))
    du = (dpair + demb + embed_packed(ftab[si], rho_i_new, rdrho, nrho, rhomax)
          - embed_packed(ftab[si], rho[i], rdrho, nrho, rhomax))
    return du, rho_i_new


@njit(cache=True)
def _swap_terms(m, q, other, s_old, s_new, pos, species, lengths, ptab, rdr, nr, cutsq):
    """Terms of neighbour q of m when m is re-typed s_old -> s_new (``other``: the partner).

    Returns (inside, dpair, density q gives m, density change at q)."""
    dx = pos[q, 0] - pos[m, 0]
    dx -= lengths[0] * np.rint(dx / lengths[0])
    dy = pos[q, 1] - pos[m, 1]
    dy -= lengths[1] * np.rint(dy / lengths[1])
    dz = pos[q, 2] - pos[m, 2]
    dz -= lengths[2] * np.rint(dz / lengths[2])
    r2 = dx * dx + dy * dy + dz * dz
    if r2 >= cutsq:
        return False, 0.0, 0.0, 0.0
    m_r, pr = cell_of(np.sqrt(r2), rdr, nr)
    ir = 1.0 / np.sqrt(r2)
    if q == other:
        # The partner now has m's old type; the pair term is symmetric in the two
        # identities and cancels, but densities do not.
        row = ptab[s_new, s_old, m_r]
        return False, 0.0, ((row[8] * pr + row[9]) * pr + row[10]) * pr + row[11], 0.0
    sq = species[q]
    cn = ptab[s_new, sq, m_r]
    co = ptab[s_old, sq, m_r]
    dpair = (((cn[0] * pr + cn[1]) * pr + cn[2]) * pr + cn[3]
             - (((co[0] * pr + co[1]) * pr + co[2]) * pr + co[3])) * ir
    gives = ((cn[8] * pr + cn[9]) * pr + cn[10]) * pr + cn[11]
    dq = (((cn[4] * pr + cn[5]) * pr + cn[6]) * pr + cn[7]
          - (((co[4] * pr + co[5]) * pr + co[6]) * pr + co[7]))
    return True, dpair, gives, dq


@njit(cache=True)
def swap_du_eam(i, j, sa, sb, pos, species, lengths, ptab, ftab, sc, nrho, nr, rho, nbr, nnbr,
                tq, tdrho):
    """Energy change of re-typing i (sa -> sb) and j (sb -> sa), from their Verlet rows.

    The neighbours of i and j are visited by merging their sorted rows, so a common
    neighbour gets both density changes without a marks array; the touched neighbours and
    their density changes go into ``tq``/``tdrho`` (shape >= (nnbr[i] + nnbr[j],)), scratch
    private to the caller (``mc_domains.py``). The same terms as the swap branch of
    :func:`run_attempts_eam`, summed in another order.

    Returns
    -------
    du : float
        eV.
    rho_i_new, rho_j_new : float
        Host densities of i and j with their new types.
    n_touched : int
        Entries of ``tq``/``tdrho`` in use.
    """
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    dpair = 0.0
    rho_i_new = 0.0
    rho_j_new = 0.0
    n_touched = 0
    a = 0
    b = 0
    na = nnbr[i]
    nb = nnbr[j]
    while a < na or b < nb:
        qa = nbr[i, a] if a < na else 2147483647
        qb = nbr[j, b] if b < nb else 2147483647
        q = min(qa, qb)
        touched = False
        dq_total = 0.0
        if qa == q:
            a += 1
            inside, dp, gives, dq = _swap_terms(i, q, j, sa, sb, pos, species, lengths, ptab,
                                                rdr, nr, cutsq)
            rho_i_new += gives
            if inside:
                dpair += dp
                dq_total += dq
                touched = True
        if qb == q:
            b += 1
            inside, dp, gives, dq = _swap_terms(j, q, i, sb, sa, pos, species, lengths, ptab,
                                                rdr, nr, cutsq)
            rho_j_new += gives
            if inside:
                dpair += dp
                dq_total += dq
                touched = True
        if touched:
            tq[n_touched] = q
            tdrho[n_touched] = dq_total
            n_touched += 1
    demb = (embed_packed(ftab[sb], rho_i_new, rdrho, nrho, rhomax)
            - embed_packed(ftab[sa], rho[i], rdrho, nrho, rhomax)
            + embed_packed(ftab[sa], rho_j_new, rdrho, nrho, rhomax)
            - embed_packed(ftab[sb], rho[j], rdrho, nrho, rhomax))
    for t in range(n_touched):
        q = tq[t]
        fq = ftab[species[q]]
        demb += (embed_packed(fq, rho[q] + tdrho[t], rdrho, nrho, rhomax)
                 - embed_packed(fq, rho[q], rdrho, nrho, rhomax))
    return dpair + demb, rho_i_new, rho_j_new, n_touched
