"""EAM forces, energy and virial tensor over a half MD list (LAMMPS ``pair_style eam/*``).

Tables and lookup rules are those of ``EAMPotential.kernel_tables()`` and ``kernels/eam.py``
(``cell_of`` and ``embed`` are reused). ``rhor[a, b]`` is the density a neighbour of type a
contributes at a centre of type b. Two passes over the half list, as LAMMPS does:

1. host densities rho_i, then F_i(rho_i) and fp_i = F'_i(rho_i);
2. with rhojp = d rhor[t_j, t_i] / dr (j's density at i), rhoip = d rhor[t_i, t_j] / dr and
   phip = d phi / dr: psip = fp_i rhojp + fp_j rhoip + phip, fpair = -psip / r.

Speed (ZJW Cu-Zr, N = 2000, 71 listed pairs per atom): the spline coefficients are read by
scalar indexing, once per pair for all three splines (``spline_r(z2r[a, b], ...)`` creates an
array view per call, which cost 35 % of the force time), and the loops are branch-free (a
branch on r < r_c mispredicts for a third of the pairs; pairs beyond the cut-off first got
weight 0, now a branch-free append drops them, see below): together 7.2 -> 4.0 ms per force
call. Identical splines are stored once (LAMMPS's
``type2rhor``/``type2z2r``: eam/alloy densities depend on the neighbour only, r*phi is
symmetric) and value and derivative coefficients are split, so that each pass reads a
smaller table (the ZJW tables are ~1 MB, the size of the L2 cache): ~10 % faster (best of 60
calls); see :func:`pack_tables`. A first pass keeps the pairs within the cut-off (~2/3 of the
listed ones); the density pass visits only those and records their spline cell (m, q), and
the force pass reuses it and computes a row's fpair before scattering its forces (see
``forces_lj.lj_forces``): 3.9 -> 2.4 ms per call (ZJW, N = 2000), with the same arithmetic
and summation order for every non-zero term as before, hence the same bits.

Force and virial conventions are those of ``forces_lj``: force on i = -fpair d with
d = x_j - x_i + shifts[code], W_ab = sum over pairs of fpair d_a d_b.
"""

import numpy as np
from numba import njit

from .eam import cell_of, embed
from .md_neighbors import IMAGE_BITS, IMAGE_MASK


@njit(cache=True)
def eam_forces(pos, species, frho, rho_val, rho_der, rho_id, z2r, z2r_id, sc, nr, nrho, shifts,
               row_atom, row_start, packed, rho, fp, forces, virial, eatom, want_eatom,
               pair_p, pair_m, pair_q, pair_start):
    """Energy, forces and virial tensor of an EAM alloy.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Positions (Å) as used when the list was built, possibly moved since.
    species : ndarray, shape (N,), int32
    frho : ndarray, shape (S, nrho + 1, 7)
        Embedding splines.
    rho_val, rho_der : ndarray, shapes (U, nr + 1, 4) and (U, nr + 1, 3)
        Value (coefficients 3..6) and derivative (0..2) parts of the distinct density
        splines; ``rho_id[a, b]`` (S, S) selects the one for ``rhor[a, b]``.
    z2r : ndarray, shape (V, nr + 1, 7)
        Distinct r*phi splines; ``z2r_id[a, b]`` (S, S) selects the one of pair (a, b).
    sc : ndarray, shape (4,)
        [1/dr, 1/drho, rho_max, cutoff^2].
    nr, nrho : int
        Grid sizes.
    shifts : ndarray, shape (27, 3)
        Lattice vectors of the image codes for the current cell (Å).
    row_atom, row_start, packed : half Verlet list (see ``build_half_list``).
    rho, fp : ndarray, shape (N,)
        Output: host densities and F'(rho) (eV per density unit).
    forces : ndarray, shape (N, 3)
        Output (eV/Å).
    virial : ndarray, shape (3, 3)
        Output W_ab (eV), symmetric.
    eatom : ndarray, shape (N,)
        Output per-atom energies F_i + 1/2 sum_j phi_ij when ``want_eatom``.
    want_eatom : bool
    pair_p, pair_m : ndarray, shape (>= n_pairs,), int32
        Work: packed entry and spline cell of each pair within the cut-off (the list's
        pairs in its order, those beyond the cut-off left out).
    pair_q : ndarray, shape (>= n_pairs,)
        Work: fractional position in the spline cell of each such pair.
    pair_start : ndarray, shape (N + 1,), int64
        Work: row r of those pairs is ``[pair_start[r], pair_start[r + 1])``.

    Returns
    -------
    float
        Potential energy (eV).
    """
    n = pos.shape[0]
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    # Pass 0: the pairs within the cut-off (branch-free append, as in the list build; ~2/3
    # of the listed pairs). Pairs beyond it add exactly zero to every sum below, so skipping
    # them changes no bit of the result and saves their spline work in both passes.
    cnt = 0
    width = 0
    for r in range(n):
        i = row_atom[r]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        pair_start[r] = cnt
        for k in range(row_start[r], row_start[r + 1]):
            p = packed[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - xi + shifts[c, 0]
            dy = pos[j, 1] - yi + shifts[c, 1]
            dz = pos[j, 2] - zi + shifts[c, 2]
            pair_p[cnt] = p
            cnt += dx * dx + dy * dy + dz * dz < cutsq
        width = max(width, cnt - pair_start[r])
    pair_start[n] = cnt
    # Pass 1: host densities; the spline cell of each pair is kept for pass 2.
    rho[:] = 0.0
    for r in range(n):
        i = row_atom[r]
        si = species[i]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        acc = 0.0
        for k in range(pair_start[r], pair_start[r + 1]):
            p = pair_p[k]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - xi + shifts[c, 0]
            dy = pos[j, 1] - yi + shifts[c, 1]
            dz = pos[j, 2] - zi + shifts[c, 2]
            sj = species[j]
            m, q = cell_of(np.sqrt(dx * dx + dy * dy + dz * dz), rdr, nr)
            a = rho_id[sj, si]
            acc += ((rho_val[a, m, 0] * q + rho_val[a, m, 1]) * q
                    + rho_val[a, m, 2]) * q + rho_val[a, m, 3]
            b = rho_id[si, sj]
            rho[j] += ((rho_val[b, m, 0] * q + rho_val[b, m, 1]) * q
                       + rho_val[b, m, 2]) * q + rho_val[b, m, 3]
            pair_m[k] = m
            pair_q[k] = q
        rho[i] += acc
    e = 0.0
    for i in range(n):
        f, d = embed(frho[species[i]], rho[i], rdrho, nrho, rhomax)
        fp[i] = d
        e += f
        if want_eatom:
            eatom[i] = f
    # Pass 2, forces. Row buffers: fpair for a whole row first, then the scatter (as in
    # ``forces_lj.lj_forces``: same arithmetic and summation order, ~10 % faster).
    buf = np.empty((width, 5))
    bj = np.empty(width, np.int64)
    forces[:, :] = 0.0
    wxx = wyy = wzz = wxy = wxz = wyz = 0.0
    for r in range(n):
        i = row_atom[r]
        si = species[i]
        fpi = fp[i]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        k0 = pair_start[r]
        nk = pair_start[r + 1] - k0
        ei = 0.0
        for t in range(nk):
            p = pair_p[k0 + t]
            j = p >> IMAGE_BITS
            c = p & IMAGE_MASK
            dx = pos[j, 0] - xi + shifts[c, 0]
            dy = pos[j, 1] - yi + shifts[c, 1]
            dz = pos[j, 2] - zi + shifts[c, 2]
            sj = species[j]
            rr = np.sqrt(dx * dx + dy * dy + dz * dz)
            m = pair_m[k0 + t]
            q = pair_q[k0 + t]
            z = z2r_id[si, sj]
            z2 = ((z2r[z, m, 3] * q + z2r[z, m, 4]) * q + z2r[z, m, 5]) * q + z2r[z, m, 6]
            z2p = (z2r[z, m, 0] * q + z2r[z, m, 1]) * q + z2r[z, m, 2]
            a = rho_id[si, sj]
            rhoip = (rho_der[a, m, 0] * q + rho_der[a, m, 1]) * q + rho_der[a, m, 2]
            b = rho_id[sj, si]
            rhojp = (rho_der[b, m, 0] * q + rho_der[b, m, 1]) * q + rho_der[b, m, 2]
            recip = 1.0 / rr
            phi = z2 * recip
            phip = z2p * recip - phi * recip
            ei += phi
            buf[t, 0] = dx
            buf[t, 1] = dy
            buf[t, 2] = dz
            buf[t, 3] = -(fpi * rhojp + fp[j] * rhoip + phip) * recip
            buf[t, 4] = phi
            bj[t] = j
        fxi = fyi = fzi = 0.0
        for t in range(nk):
            dx = buf[t, 0]
            dy = buf[t, 1]
            dz = buf[t, 2]
            fpair = buf[t, 3]
            fx = fpair * dx
            fy = fpair * dy
            fz = fpair * dz
            fxi -= fx
            fyi -= fy
            fzi -= fz
            j = bj[t]
            forces[j, 0] += fx
            forces[j, 1] += fy
            forces[j, 2] += fz
            wxx += fx * dx
            wyy += fy * dy
            wzz += fz * dz
            wxy += fx * dy
            wxz += fx * dz
            wyz += fy * dz
            if want_eatom:
                eatom[j] += 0.5 * buf[t, 4]
        forces[i, 0] += fxi
        forces[i, 1] += fyi
        forces[i, 2] += fzi
        e += ei
        if want_eatom:
            eatom[i] += 0.5 * ei
    virial[0, 0] = wxx
    virial[1, 1] = wyy
    virial[2, 2] = wzz
    virial[0, 1] = virial[1, 0] = wxy
    virial[0, 2] = virial[2, 0] = wxz
    virial[1, 2] = virial[2, 1] = wyz
    return e


def _distinct(tables):
    """Distinct tables among ``tables[a, b]`` (S, S, ...): (stack (U, ...), ids (S, S))."""
    s = tables.shape[0]
    found = []
    ids = np.empty((s, s), np.int64)
    for a in range(s):
        for b in range(s):
            for k, t in enumerate(found):
                if np.array_equal(t, tables[a, b]):
                    ids[a, b] = k
                    break
            else:
                ids[a, b] = len(found)
                found.append(tables[a, b])
    return np.ascontiguousarray(np.stack(found)), ids


def pack_tables(rhor, z2r):
    """Kernel tables from ``EAMPotential.kernel_tables()`` rows (plain NumPy, done once).

    Parameters
    ----------
    rhor, z2r : ndarray, shape (S, S, nr + 1, 7)

    Returns
    -------
    rho_val : ndarray, shape (U, nr + 1, 4)
        Value coefficients (3..6) of the U distinct density splines.
    rho_der : ndarray, shape (U, nr + 1, 3)
        Derivative coefficients (0..2) of the same splines.
    rho_id : ndarray, shape (S, S), int64
        ``rhor[a, b]`` is spline ``rho_id[a, b]``.
    z2r_distinct : ndarray, shape (V, nr + 1, 7)
    z2r_id : ndarray, shape (S, S), int64
    """
    rho_all, rho_id = _distinct(np.asarray(rhor))
    z2r_distinct, z2r_id = _distinct(np.asarray(z2r))
    return (np.ascontiguousarray(rho_all[..., 3:7]), np.ascontiguousarray(rho_all[..., 0:3]),
            rho_id, z2r_distinct, z2r_id)
