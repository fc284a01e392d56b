"""Pieces of the Monte Carlo attempt loop shared by every model family.

Neighbour-list bookkeeping (why the list is exact for any move size): the Verlet list always
equals {j : |ref_i - ref_j| < r_list} with r_list = rc_max + skin (see ``neighbors.py``), and
every particle stays closer than skin / 2 to its reference ``ref``. A pair closer than rc now
is therefore in the list. A trial displacement that would end skin / 2 or more from the
reference first refreshes that particle's reference (O(neighbours)); a trial move larger than
skin / 2 itself is evaluated against all particles (O(N), rare), and the particle is
refreshed if it is accepted. Swaps do not move particles and the list radius uses the largest
cut-off of all species pairs, so swaps never touch the list. An accepted volume move rebuilds
it.

Attempt orders, and why both sample the Boltzmann distribution pi(x) ∝ exp(-beta U(x))
(times V^N exp(-beta P V) with volume moves). Let V be the volume move (a random walk in
ln V, Metropolis with the Jacobian), S the swap of a pair drawn by :func:`choose_swap` (a
class with fixed probability, then one particle of each of its species uniformly: a
symmetric proposal, since swaps never change species counts) and D_k the displacement of
particle k (uniform in a cube, symmetric). Each of V, S and D_k satisfies detailed balance
with respect to pi, and so does any mixture of them with fixed weights.

* Random order: every attempt applies K = p_v V + p_s S + (1 - p_v - p_s) (1/N) sum_k D_k:
  detailed balance attempt by attempt.
* Sequential order: attempt t of a sweep applies T_k = p_v V + p_s S + (1 - p_v - p_s) D_k
  with k = t, the storage index (a swap or a volume move uses particle k's turn). Each T_k
  satisfies detailed balance, hence leaves pi invariant, and so does the sweep
  T_0 T_1 ... T_{N-1} (pi T_0 = pi, then pi T_1 = pi, ...): *balance*. The sweep is not
  reversible (its time reverse is T_{N-1} ... T_0), which stationarity does not need.
  Every T_k displaces particle k with positive probability and rejections occur, so the
  sweep is irreducible and aperiodic whenever random order is. The argument needs the
  visiting order to be the same in every sweep, not chosen from the current state: a
  kernel picked as a function of the state, K_{sigma(x)}, need not preserve pi even when
  every K_sigma does. The sampler therefore fixes the storage order when it is built and
  never re-sorts in sequential order. That order is a function of the starting
  configuration x_0; every later sweep uses the same kernel, whose invariant distribution
  is pi, so the chain converges to pi from any start. Only a start drawn from pi itself is
  correlated with the order chosen from it: its later states are not exactly pi-distributed
  but relax to pi over the chain's correlation time, as from any other start.

Swaps draw their pair at random in both orders rather than re-typing the particle whose turn
it is: re-typing particle k (species a) with a uniform partner of species b is not a
symmetric proposal (the reverse move from k, now of species b, picks among the N_a particles
of species a), and the Hastings factor N_b / N_a (times the class weights) that restores
detailed balance halved the accepted swaps of the doped KA2 model and lengthened tau_alpha
by 1.25x at T = 0.45, while the random pair keeps the swap flux of random order.

Shared state arrays (mutated in place):
``fstate``: [0] running energy, [1] r_list, [2] rc_max, [3] skin.
``istate``: [0] next stamp id for refreshes, [1] next mark id for swap scratch (EAM).
``counts``: shape (3, 2), attempts/acceptances for displacement, swap, volume.
``class_counts``: shape (n_classes, 2), swap attempts/acceptances per pair class.
``nstats``: [0] global list builds, [1] moves evaluated with the O(N) fallback,
[2] particle refreshes, [3] volume moves rejected because the trial box edge would be shorter
than 2 rc_max (the minimum-image wall; a box pinned there does not sample the imposed
pressure).
"""

import numpy as np
from numba import njit

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
def min_image_norm(dx, dy, dz, lengths):
    dx -= lengths[0] * np.rint(dx / lengths[0])
    dy -= lengths[1] * np.rint(dy / lengths[1])
    dz -= lengths[2] * np.rint(dz / lengths[2])
    return np.sqrt(dx * dx + dy * dy + dz * dz)


@njit(cache=True)
def propose_displacement(pos, i, delta, lengths, rng):
    """Trial position of particle i, uniform in a cube of half-width delta, wrapped.

    Returns
    -------
    xn, yn, zn : float
        Wrapped trial position.
    ix, iy, iz : int
        Image shift to add to ``images[i]`` if the move is accepted.
    """
    xn = pos[i, 0] + (2.0 * rng.random() - 1.0) * delta
    yn = pos[i, 1] + (2.0 * rng.random() - 1.0) * delta
    zn = pos[i, 2] + (2.0 * rng.random() - 1.0) * delta
    ix = int(np.floor(xn / lengths[0]))
    iy = int(np.floor(yn / lengths[1]))
    iz = int(np.floor(zn / lengths[2]))
    xn -= ix * lengths[0]
    yn -= iy * lengths[1]
    zn -= iz * lengths[2]
    # Guard against a coordinate equal to L after rounding a tiny negative value.
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
def prepare_trial(i, xn, yn, zn, pos, ref, lengths, nbr, nnbr, grid, cell_members, cell_count,
                  p_cell, p_slot, stamp, fstate, istate, nstats):
    """Make the list valid for a trial move of particle i to (xn, yn, zn).

    Returns
    -------
    nbr, cell_members : possibly reallocated.
    use_list : bool
        False when the move itself is larger than skin / 2: the caller must then evaluate the
        new position against all particles and call :func:`refresh` if it accepts.
    """
    half_skin = 0.5 * fstate[3]
    d_trial = min_image_norm(xn - ref[i, 0], yn - ref[i, 1], zn - ref[i, 2], lengths)
    if d_trial >= half_skin:
        ref[i, 0], ref[i, 1], ref[i, 2] = pos[i, 0], pos[i, 1], pos[i, 2]
        nbr, cell_members = refresh(i, ref, lengths, nbr, nnbr, grid, cell_members, cell_count,
                                    p_cell, p_slot, stamp, fstate, istate, nstats)
        d_trial = min_image_norm(xn - pos[i, 0], yn - pos[i, 1], zn - pos[i, 2], lengths)
    return nbr, cell_members, d_trial < half_skin


@njit(cache=True)
def refresh(i, ref, lengths, nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot, stamp,
            fstate, istate, nstats):
    """Refresh particle i whose reference ``ref[i]`` the caller has just set."""
    nbr, cell_members = refresh_particle(
        i, ref, lengths, fstate[1], nbr, nnbr, grid, cell_members, cell_count, p_cell, p_slot,
        stamp, istate[0],
    )
    istate[0] += 2
    nstats[2] += 1
    return nbr, cell_members


@njit(cache=True)
def list_covers_scaled(pos, ref, lengths, rc, s, r_list):
    """True when every pair closer than rc after scaling by s (i.e. closer than rc / s now)
    is in the list: rc / s + 2 max|pos - ref| < r_list."""
    dmax = 0.0
    for q in range(pos.shape[0]):
        dq = min_image_norm(pos[q, 0] - ref[q, 0], pos[q, 1] - ref[q, 1], pos[q, 2] - ref[q, 2],
                            lengths)
        dmax = max(dmax, dq)
    return rc / s + 2.0 * dmax < r_list


@njit(cache=True)
def propose_volume(lengths, lnv_step, rc, rng):
    """Random walk in ln V. Returns (s, dlnv, allowed): the linear scale factor, the change of
    ln V, and False when the trial box would be shorter than twice the cut-off (such volumes
    lie outside the sampled ensemble; rejecting them keeps balance)."""
    dlnv = (2.0 * rng.random() - 1.0) * lnv_step
    s = np.exp(dlnv / 3.0)
    allowed = 2.0 * rc <= s * min(lengths[0], min(lengths[1], lengths[2]))
    return s, dlnv, allowed


@njit(cache=True)
def scale_system(pos, images, lengths, s):
    """Scale box and positions by s in place (after an accepted volume move)."""
    for d in range(3):
        lengths[d] *= s
    for i in range(pos.shape[0]):
        for d in range(3):
            pos[i, d] *= s
            # Rounding can put a coordinate exactly on the upper face.
            if pos[i, d] >= lengths[d]:
                pos[i, d] -= lengths[d]
                images[i, d] += 1


@njit(cache=True)
def choose_swap(rng, class_cdf, class_a, class_b, members, member_counts):
    """Pick a swap class with fixed probabilities, then one particle of each of its species
    uniformly: a symmetric proposal, since swaps never change species counts.

    Returns (c, sa, sb, i, j) with species[i] == sa and species[j] == sb.
    """
    uc = rng.random()
    c = 0
    while c < class_a.shape[0] - 1 and uc >= class_cdf[c]:
        c += 1
    sa = class_a[c]
    sb = class_b[c]
    i = members[sa, int(rng.random() * member_counts[sa])]
    j = members[sb, int(rng.random() * member_counts[sb])]
    return c, sa, sb, i, j


@njit(cache=True)
def commit_swap(i, j, sa, sb, species, members, slot):
    """Exchange the identities of i (sa -> sb) and j (sb -> sa), keeping members/slot."""
    species[i] = sb
    species[j] = sa
    si_slot = slot[i]
    sj_slot = slot[j]
    members[sa, si_slot] = j
    members[sb, sj_slot] = i
    slot[i] = sj_slot
    slot[j] = si_slot


@njit(cache=True)
def metropolis(delta_e, beta, u):
    """Accept with probability min(1, exp(-beta delta_e)) given a uniform u."""
    return delta_e <= 0.0 or u < np.exp(-beta * delta_e)

