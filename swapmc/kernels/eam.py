"""Embedded-atom-method energy, densities and virial from tabulated splines.

Tables follow LAMMPS ``pair_style eam/alloy`` and ``eam/fs`` exactly (see
``swapmc.models.eam``): every function is a cubic Hermite spline with 7 coefficients per grid
interval, rows 1..n (row 0 unused).

``frho[a]`` (S, nrho + 1, 7): embedding F_a(rho).
``rhor[a, b]`` (S, S, nr + 1, 7): density a neighbour of type a contributes at a centre of
type b.
``z2r[a, b]`` (S, S, nr + 1, 7): r * phi_ab(r).
``sc`` (4,): [1/dr, 1/drho, rho_max, cutoff^2]; ``nr``, ``nrho``: grid sizes.

E = sum_i F_{t_i}(rho_i) + 1/2 sum_{i != j} phi(r_ij), rho_i = sum_j rhor[t_j, t_i](r_ij).
"""

import numpy as np
from numba import njit


@njit(cache=True)
def spline_r(table, r, rdr, nr):
    """Value and derivative (per unit r) of a radial spline table at r."""
    m, p = cell_of(r, rdr, nr)
    value = ((table[m, 3] * p + table[m, 4]) * p + table[m, 5]) * p + table[m, 6]
    deriv = (table[m, 0] * p + table[m, 1]) * p + table[m, 2]
    return value, deriv


@njit(cache=True)
def spline_r_value(table, r, rdr, nr):
    m, p = cell_of(r, rdr, nr)
    return ((table[m, 3] * p + table[m, 4]) * p + table[m, 5]) * p + table[m, 6]


@njit(cache=True)
def embed(table, rho, rdrho, nrho, rhomax):
    """F(rho) and F'(rho); linear continuation above rho_max as LAMMPS does."""
    m, p = rho_cell_of(rho, rdrho, nrho)
    fp = (table[m, 0] * p + table[m, 1]) * p + table[m, 2]
    f = ((table[m, 3] * p + table[m, 4]) * p + table[m, 5]) * p + table[m, 6]
    if rho > rhomax:
        f += fp * (rho - rhomax)
    return f, fp


@njit(cache=True)
def densities(pos, species, lengths, scale, rhor, sc, nr, nbr, nnbr, rho):
    """Host densities rho_i of every particle into ``rho`` (shape (N,)), from a full list."""
    n = pos.shape[0]
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    rdr = sc[0]
    cutsq = sc[3]
    for i in range(n):
        si = species[i]
        acc = 0.0
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        for k in range(nnbr[i]):
            j = nbr[i, k]
            dx = pos[j, 0] - xi
            dx -= lx * np.rint(dx / lx)
            dy = pos[j, 1] - yi
            dy -= ly * np.rint(dy / ly)
            dz = pos[j, 2] - zi
            dz -= lz * np.rint(dz / lz)
            r2 = (dx * dx + dy * dy + dz * dz) * scale * scale
            if r2 < cutsq:
                acc += spline_r_value(rhor[species[j], si], np.sqrt(r2), rdr, nr)
        rho[i] = acc


@njit(cache=True)
def energy_virial(pos, species, lengths, scale, frho, rhor, z2r, sc, nr, nrho, nbr, nnbr, rho):
    """Total EAM energy and virial; fills ``rho`` with the host densities.

    Parameters
    ----------
    pos : ndarray, shape (N, 3)
        Wrapped positions (Å).
    scale : float
        Isotropic scale factor applied to positions and box (trial volume moves).
    rho : ndarray, shape (N,)
        Output: host electron densities.

    Returns
    -------
    energy : float
        eV.
    virial : float
        W = sum over pairs of r_ij . f_ij (eV); P = N k_B T / V + W / (3 V).
    """
    n = pos.shape[0]
    densities(pos, species, lengths, scale, rhor, sc, nr, nbr, nnbr, rho)
    rdr, rdrho, rhomax, cutsq = sc[0], sc[1], sc[2], sc[3]
    fp = np.empty(n)
    e = 0.0
    for i in range(n):
        f, d = embed(frho[species[i]], rho[i], rdrho, nrho, rhomax)
        e += f
        fp[i] = d
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    w = 0.0
    for i in range(n):
        si = species[i]
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        for k in range(nnbr[i]):
            j = nbr[i, k]
            if j < i:
                continue
            sj = species[j]
            dx = pos[j, 0] - xi
            dx -= lx * np.rint(dx / lx)
            dy = pos[j, 1] - yi
            dy -= ly * np.rint(dy / ly)
            dz = pos[j, 2] - zi
            dz -= lz * np.rint(dz / lz)
            r2 = (dx * dx + dy * dy + dz * dz) * scale * scale
            if r2 < cutsq:
                r = np.sqrt(r2)
                z2, z2p = spline_r(z2r[si, sj], r, rdr, nr)
                phi = z2 / r
                phip = z2p / r - phi / r
                _a, rho_ip = spline_r(rhor[si, sj], r, rdr, nr)  # i's density at j
                _b, rho_jp = spline_r(rhor[sj, si], r, rdr, nr)  # j's density at i
                e += phi
                w -= r * (phip + fp[i] * rho_jp + fp[j] * rho_ip)
    return e, w


@njit(cache=True)
def particle_terms_all(i, x, y, z, si, pos, species, lengths, rhor, z2r, sc, nr, drho_out):
    """O(N) evaluation for particle i of type si placed at (x, y, z): returns (pair energy,
    host density of i) and writes into ``drho_out[j]`` the density i contributes at every j.
    Used only for moves larger than half the Verlet skin."""
    n = pos.shape[0]
    lx, ly, lz = lengths[0], lengths[1], lengths[2]
    rdr, cutsq = sc[0], sc[3]
    e = 0.0
    rho_i = 0.0
    for j in range(n):
        drho_out[j] = 0.0
        if j == i:
            continue
        sj = species[j]
        dx = pos[j, 0] - x
        dx -= lx * np.rint(dx / lx)
        dy = pos[j, 1] - y
        dy -= ly * np.rint(dy / ly)
        dz = pos[j, 2] - z
        dz -= lz * np.rint(dz / lz)
        r2 = dx * dx + dy * dy + dz * dz
        if r2 < cutsq:
            r = np.sqrt(r2)
            e += spline_r_value(z2r[si, sj], r, rdr, nr) / r
            rho_i += spline_r_value(rhor[sj, si], r, rdr, nr)
            drho_out[j] = spline_r_value(rhor[si, sj], r, rdr, nr)
    return e, rho_i


# ------------------------------------------------------------------------------------------
# Compact tables for the Monte Carlo loop. A pair at distance r needs phi_ab, the density a
# contributes at b and the density b contributes at a, all on the same grid cell: packing the
# three value polynomials of a cell into one row of 12 numbers means one cache miss instead
# of three, and one cell lookup instead of three. Derivatives are not needed for MC.
# ------------------------------------------------------------------------------------------


def pack_pair_table(rhor, z2r):
    """Pack value coefficients: (S, S, nr + 1, 12) with [0:4] r*phi_ab, [4:8] density a
    contributes at centre b, [8:12] density b contributes at centre a (coefficients 3..6 of
    the LAMMPS spline rows)."""
    s = z2r.shape[0]
    out = np.empty((s, s, z2r.shape[2], 12))
    out[..., 0:4] = z2r[..., 3:7]
    out[..., 4:8] = rhor[..., 3:7]
    out[..., 8:12] = rhor.transpose(1, 0, 2, 3)[..., 3:7]
    return np.ascontiguousarray(out)


def pack_embedding_table(frho):
    """Value coefficients of F: (S, nrho + 1, 5) with [0:4] coefficients 3..6 and [4] the
    derivative at the cell's end (coefficient sum 0..2), used above rho_max."""
    out = np.empty(frho.shape[:2] + (5,))
    out[..., 0:4] = frho[..., 3:7]
    out[..., 4] = frho[..., 0] + frho[..., 1] + frho[..., 2]
    return np.ascontiguousarray(out)


@njit(cache=True)
def cell_of(r, rdr, nr):
    """Grid cell m and fractional position p of r (LAMMPS rules)."""
    p = r * rdr + 1.0
    m = int(p)
    if m > nr - 1:
        m = nr - 1
    p -= m
    if p > 1.0:
        p = 1.0
    return m, p


@njit(cache=True)
def rho_cell_of(rho, rdrho, nrho):
    """Grid cell m and fractional position p of a density (LAMMPS rules: m >= 1, and m is
    truncated toward zero so a negative density extrapolates the first cell)."""
    p = rho * rdrho + 1.0
    m = int(p)
    if m < 1:
        m = 1
    if m > nrho - 1:
        m = nrho - 1
    p -= m
    if p > 1.0:
        p = 1.0
    return m, p


@njit(cache=True)
def embed_packed(ftab, rho, rdrho, nrho, rhomax):
    """F(rho) from a packed embedding table (same values as :func:`embed`)."""
    m, p = rho_cell_of(rho, rdrho, nrho)
    f = ((ftab[m, 0] * p + ftab[m, 1]) * p + ftab[m, 2]) * p + ftab[m, 3]
    if rho > rhomax:
        # F' at p = 1 of the last cell, as LAMMPS extrapolates.
        f += ftab[m, 4] * (rho - rhomax)
    return f
