"""Hessian, mixed strain derivatives and Born term of an energy given through pair distances.

The energy is E({r_p}) over the pairs p = (i, j) within the cut-off, with pair vector
d_p = x_j - x_i + image shift, r_p = |d_p|, n_p = d_p / r_p, and

    dE/dr_p = g_p,    d2E/dr_p dr_q = s_p delta_pq + sum_k F''_k a_kp a_kq,

where a_kp = d rho_k / d r_p is non-zero only for the two atoms of p (EAM: the slope of the
density the partner contributes at k; LJ has no such term). ``hessian_lj`` and
``hessian_eam`` give g, s, a and F''.

Homogeneous deformation uses the Lagrangian strain eta: with reference-frame displacements
u, r_p^2 = d_p^T (1 + 2 eta) d_p, d_p = d0_p + u_j - u_i. Voigt index I = (a, b) runs over
xx, yy, zz, yz, xz, xy, with engineering shears (eta_4 = 2 eta_yz ...), so that at eta = 0

    dr/du_j = n,   dr/d eta_I = r n_a n_b,   d2r/du_j du_j = (1 - n n) / r,
    d2r/du_j,c d eta_I = delta_ca n_b + delta_cb n_a - n_a n_b n_c,
    d2r/d eta_I d eta_J = -r n_a n_b n_c n_d,

and the chain rule gives (Lutsko, J. Appl. Phys. 65, 2991 (1989); Maloney & Lemaitre,
PRE 74, 016118 (2006)):

* Hessian block of pair p: K_p = s_p n n + (g_p / r)(1 - n n) at (i, i) and (j, j), -K_p
  at (i, j) and (j, i); plus sum_k F''_k v_k v_k^T with v_k = d rho_k / dx (3N);
* mixed derivative Xi_{j,c,I} = d2E/du_j,c d eta_I: +xi_p for j, -xi_p for i, with
  xi_p,c,I = (s_p r - g_p) n_a n_b n_c + g_p (delta_ca n_b + delta_cb n_a); plus
  sum_k F''_k v_k w_k,I with w_k,I = d rho_k / d eta_I;
* Born term V C^B_IJ = d2E/d eta_I d eta_J = sum_p (s_p r^2 - g_p r) n_a n_b n_c n_d +
  sum_k F''_k w_k,I w_k,J;
* dE/d eta_I = sum_p g_p r n_a n_b = V sigma_ab (Cauchy stress at eta = 0, potential part,
  positive in tension).

The g_p (delta n + delta n) term of Xi adds up, over the pairs of an atom, to minus its
force times a unit tensor: it vanishes at mechanical equilibrium, where Xi takes the form
quoted by Maloney & Lemaitre.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def incidences(n, pi, pj):
    """Full adjacency over the pairs: every pair appears in the rows of both its atoms.

    Parameters
    ----------
    n : int
        Number of particles.
    pi, pj : ndarray, shape (P,), int64

    Returns
    -------
    start : ndarray, shape (n + 1,), int64
        Incidences of atom k are ``start[k]:start[k + 1]``.
    pair : ndarray, shape (2 P,), int64
        The pair of each incidence.
    other : ndarray, shape (2 P,), int64
        The partner atom.
    sign : ndarray, shape (2 P,)
        +1 when the atom is the pair's j (then dr/dx_atom = +n), -1 when it is i.
    rev : ndarray, shape (2 P,), int64
        The incidence of the same pair in the partner's row.
    """
    npair = pi.shape[0]
    start = np.zeros(n + 1, np.int64)
    for q in range(npair):
        start[pi[q] + 1] += 1
        start[pj[q] + 1] += 1
    for k in range(n):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    pair = np.empty(2 * npair, np.int64)
    other = np.empty(2 * npair, np.int64)
    sign = np.empty(2 * npair)
    rev = np.empty(2 * npair, np.int64)
    for q in range(npair):
        i, j = pi[q], pj[q]
        ei = fill[i]
        fill[i] += 1
        ej = fill[j]
        fill[j] += 1
        pair[ei] = q
        other[ei] = j
        sign[ei] = -1.0
        pair[ej] = q
        other[ej] = i
        sign[ej] = 1.0
        rev[ei] = ej
        rev[ej] = ei
    return start, pair, other, sign, rev


@njit(cache=True)
def density_gradients(n, d, start, pair, sign, a_inc):
    """The vectors v_k = d rho_k / dx and w_k = d rho_k / d eta.

    Parameters
    ----------
    n : int
    d : ndarray, shape (P, 3)
        Pair vectors.
    start, pair, sign : from :func:`incidences`.
    a_inc : ndarray, shape (2 P,)
        d rho_k / d r_p for each incidence (k the incidence's atom).

    Returns
    -------
    vself : ndarray, shape (n, 3)
        d rho_k / d x_k.
    vnb : ndarray, shape (2 P, 3)
        d rho_k / d x_partner for each incidence of k.
    w : ndarray, shape (n, 6)
        d rho_k / d eta_I (Voigt, engineering shears).
    """
    vself = np.zeros((n, 3))
    vnb = np.empty((a_inc.shape[0], 3))
    w = np.zeros((n, 6))
    for k in range(n):
        for e in range(start[k], start[k + 1]):
            q = pair[e]
            dx, dy, dz = d[q, 0], d[q, 1], d[q, 2]
            r = np.sqrt(dx * dx + dy * dy + dz * dz)
            c = a_inc[e] * sign[e] / r
            # dr/dx_k = sign n; the partner has the opposite sign.
            vself[k, 0] += c * dx
            vself[k, 1] += c * dy
            vself[k, 2] += c * dz
            vnb[e, 0] = -c * dx
            vnb[e, 1] = -c * dy
            vnb[e, 2] = -c * dz
            c = a_inc[e] / r
            w[k, 0] += c * dx * dx
            w[k, 1] += c * dy * dy
            w[k, 2] += c * dz * dz
            w[k, 3] += c * dy * dz
            w[k, 4] += c * dx * dz
            w[k, 5] += c * dx * dy
    return vself, vnb, w


@njit(cache=True)
def _row_columns(i, start, other, many_body, mark, cols):
    """Columns (block indices) of row i into ``cols``; returns their number.

    ``mark`` (n,) must be -1 everywhere on entry and is left so.
    """
    m = 0
    mark[i] = 0
    cols[m] = i
    m += 1
    for e in range(start[i], start[i + 1]):
        o = other[e]
        if mark[o] < 0:
            mark[o] = 0
            cols[m] = o
            m += 1
    if many_body:
        # F''_k v_k v_k^T couples every two atoms of {k} + neighbours(k), for k = i and
        # every neighbour k of i.
        for e in range(start[i], start[i + 1]):
            k = other[e]
            for f in range(start[k], start[k + 1]):
                o = other[f]
                if mark[o] < 0:
                    mark[o] = 0
                    cols[m] = o
                    m += 1
    for t in range(m):
        mark[cols[t]] = -1
    return m


@njit(cache=True)
def _add_outer(block, c, u, v):
    for a in range(3):
        for b in range(3):
            block[a, b] += c * u[a] * v[b]


@njit(cache=True)
def assemble_hessian(n, d, g, s, start, pair, other, rev, fpp, vself, vnb):
    """The Hessian as block-sparse rows (BSR, 3 x 3 blocks), columns sorted in each row.

    Parameters
    ----------
    n : int
    d, g, s : ndarray, shapes (P, 3), (P,), (P,)
        Pair vectors and dE/dr, the diagonal part of d2E/dr^2.
    start, pair, other, rev : from :func:`incidences`.
    fpp : ndarray, shape (n,) or (0,)
        F''_k; empty for pair potentials (no many-body term).
    vself, vnb : from :func:`density_gradients` (ignored when ``fpp`` is empty).

    Returns
    -------
    indptr : ndarray, shape (n + 1,), int64
    indices : ndarray, shape (nnzb,), int64
    data : ndarray, shape (nnzb, 3, 3)
        Blocks d2E / dx_i dx_j (energy / length^2).
    """
    many_body = fpp.shape[0] > 0
    mark = np.full(n, -1, np.int64)
    cols = np.empty(n, np.int64)
    indptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        indptr[i + 1] = indptr[i] + _row_columns(i, start, other, many_body, mark, cols)
    indices = np.empty(indptr[n], np.int64)
    data = np.zeros((indptr[n], 3, 3))
    nn = np.empty((3, 3))
    for i in range(n):
        m = _row_columns(i, start, other, many_body, mark, cols)
        row = np.sort(cols[:m])
        b0 = indptr[i]
        for t in range(m):
            indices[b0 + t] = row[t]
            mark[row[t]] = b0 + t
        # Pair part.
        for e in range(start[i], start[i + 1]):
            q = pair[e]
            dx, dy, dz = d[q, 0], d[q, 1], d[q, 2]
            r2 = dx * dx + dy * dy + dz * dz
            r = np.sqrt(r2)
            t_ = g[q] / r
            c = (s[q] - t_) / r2
            nn[0, 0] = c * dx * dx + t_
            nn[1, 1] = c * dy * dy + t_
            nn[2, 2] = c * dz * dz + t_
            nn[0, 1] = nn[1, 0] = c * dx * dy
            nn[0, 2] = nn[2, 0] = c * dx * dz
            nn[1, 2] = nn[2, 1] = c * dy * dz
            bi = mark[i]
            bo = mark[other[e]]
            for a in range(3):
                for b in range(3):
                    data[bi, a, b] += nn[a, b]
                    data[bo, a, b] -= nn[a, b]
        if many_body:
            # k = i: v_i[i] = vself[i].
            vi = vself[i]
            _add_outer(data[mark[i]], fpp[i], vi, vself[i])
            for f in range(start[i], start[i + 1]):
                _add_outer(data[mark[other[f]]], fpp[i], vi, vnb[f])
            # k a neighbour of i: v_k[i] is the entry of k's incidence pointing back to i.
            for e in range(start[i], start[i + 1]):
                k = other[e]
                vi = vnb[rev[e]]
                _add_outer(data[mark[k]], fpp[k], vi, vself[k])
                for f in range(start[k], start[k + 1]):
                    _add_outer(data[mark[other[f]]], fpp[k], vi, vnb[f])
        for t in range(m):
            mark[row[t]] = -1
    return indptr, indices, data


@njit(cache=True)
def strain_terms(n, pi, pj, d, g, s, start, other, fpp, vself, vnb, w):
    """Mixed derivatives Xi, Born term and stress (times volume) at eta = 0.

    Parameters
    ----------
    n : int
    pi, pj : ndarray, shape (P,), int64
        The two atoms of each pair.
    d, g, s : ndarray, shapes (P, 3), (P,), (P,)
    start, other : from :func:`incidences`.
    fpp : ndarray, shape (n,) or (0,)
        F''_k; empty for pair potentials.
    vself, vnb, w : from :func:`density_gradients` (ignored when ``fpp`` is empty).

    Returns
    -------
    xi : ndarray, shape (n, 3, 6)
        d2E / dx_i,c d eta_I (energy / length).
    born : ndarray, shape (6, 6)
        d2E / d eta_I d eta_J (energy units), affine.
    dE : ndarray, shape (6,)
        dE / d eta_I = V sigma_ab (energy units).
    forces : ndarray, shape (n, 3)
        -dE/dx (energy / length), to judge how close to equilibrium the state is.
    """
    # Voigt order xx, yy, zz, yz, xz, xy.
    va = np.array([0, 1, 2, 1, 0, 0])
    vb = np.array([0, 1, 2, 2, 2, 1])
    npair = d.shape[0]
    xi = np.zeros((n, 3, 6))
    born = np.zeros((6, 6))
    de = np.zeros(6)
    forces = np.zeros((n, 3))
    nab = np.empty(6)
    for q in range(npair):
        dx, dy, dz = d[q, 0], d[q, 1], d[q, 2]
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        nv = np.array([dx / r, dy / r, dz / r])
        for ii in range(6):
            nab[ii] = nv[va[ii]] * nv[vb[ii]]
        gq, sq = g[q], s[q]
        cb = sq * r * r - gq * r
        for ii in range(6):
            de[ii] += gq * r * nab[ii]
            for jj in range(6):
                born[ii, jj] += cb * nab[ii] * nab[jj]
        cx = sq * r - gq
        i = pi[q]
        j = pj[q]
        for c in range(3):
            for ii in range(6):
                a, b = va[ii], vb[ii]
                v = cx * nab[ii] * nv[c]
                if c == a:
                    v += gq * nv[b]
                if c == b:
                    v += gq * nv[a]
                xi[i, c, ii] -= v
            forces[i, c] += gq * nv[c]
        for c in range(3):
            for ii in range(6):
                a, b = va[ii], vb[ii]
                v = cx * nab[ii] * nv[c]
                if c == a:
                    v += gq * nv[b]
                if c == b:
                    v += gq * nv[a]
                xi[j, c, ii] += v
            forces[j, c] -= gq * nv[c]
    if fpp.shape[0] > 0:
        for k in range(n):
            f2 = fpp[k]
            for ii in range(6):
                for jj in range(6):
                    born[ii, jj] += f2 * w[k, ii] * w[k, jj]
                for c in range(3):
                    xi[k, c, ii] += f2 * vself[k, c] * w[k, ii]
            for e in range(start[k], start[k + 1]):
                o = other[e]
                for c in range(3):
                    for ii in range(6):
                        xi[o, c, ii] += f2 * vnb[e, c] * w[k, ii]
    return xi, born, de, forces


@njit(cache=True)
def bsr_matmul(indptr, indices, data, x, out):
    """out = H x for a 3 x 3 block-sparse H and k right-hand sides at once.

    One pass over the blocks for all k columns (SciPy's sparse-times-dense product reads
    the matrix once per column: 1.5-2x slower for k = 6 at N = 32000).

    Parameters
    ----------
    indptr, indices : ndarray, int
        Block rows of H (BSR layout).
    data : ndarray, shape (nnzb, 3, 3)
    x : ndarray, shape (n, 3, k)
    out : ndarray, shape (n, 3, k)
        Overwritten with H x.
    """
    n = indptr.shape[0] - 1
    k = x.shape[2]
    acc = np.empty((3, k))
    for i in range(n):
        acc[:, :] = 0.0
        for b in range(indptr[i], indptr[i + 1]):
            j = indices[b]
            b00, b01, b02 = data[b, 0, 0], data[b, 0, 1], data[b, 0, 2]
            b10, b11, b12 = data[b, 1, 0], data[b, 1, 1], data[b, 1, 2]
            b20, b21, b22 = data[b, 2, 0], data[b, 2, 1], data[b, 2, 2]
            for c in range(k):
                x0, x1, x2 = x[j, 0, c], x[j, 1, c], x[j, 2, c]
                acc[0, c] += b00 * x0 + b01 * x1 + b02 * x2
                acc[1, c] += b10 * x0 + b11 * x1 + b12 * x2
                acc[2, c] += b20 * x0 + b21 * x1 + b22 * x2
        for a in range(3):
            for c in range(k):
                out[i, a, c] = acc[a, c]
    return out
