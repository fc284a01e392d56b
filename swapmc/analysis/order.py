"""Bond-orientational order: the crystallisation guard for glass libraries.

A supercooled Kob–Andersen-type mixture at low temperature can crystallise (the large
species orders into fcc domains). Such a sample must be flagged, not stored as a glass. The
test used here is the local criterion of ten Wolde, Ruiz-Montero & Frenkel (J. Chem. Phys.
104, 9932 (1996)), as used by Auer & Frenkel and in the Kob–Andersen crystallisation
literature:

1. neighbours of particle i: all particles closer than ``cutoff`` (default: the first
   minimum of the total g(r), so the first coordination shell);
2. q_6m(i) = (1 / n_b(i)) sum_j Y_6m(r_ij), normalised to a unit complex 13-vector;
3. particles i and j are *connected* when Re sum_m q_6m(i) q_6m(j)* > 0.7;
4. a particle is *solid-like* when it has at least 7 connections.

In fcc, hcp and bcc crystals almost every particle is solid-like; in a liquid or glass the
local q6 vectors of neighbours are nearly uncorrelated and the solid-like fraction is a few
percent at most (measured values are quoted in the tests).
"""

from __future__ import annotations

import numpy as np

from .structure import radial_distribution

# ten Wolde et al. (1996): connection threshold on the normalised q6 dot product and the
# number of connections that makes a particle solid-like.
CONNECTION_THRESHOLD = 0.7
MIN_CONNECTIONS = 7


def _orthorhombic_lengths(box) -> np.ndarray:
    if not box.is_orthorhombic:
        raise NotImplementedError("bond-orientational order is implemented for orthorhombic "
                                  "cells only")
    return np.asarray(box.lengths, dtype=np.float64)


def first_shell_cutoff(positions, box, n_bins=300) -> float:
    """Radius of the first minimum of the total g(r): the edge of the first coordination shell.

    The minimum is searched between 1.2 and 1.8 mean spacings a = (V/N)^(1/3), where it lies
    in simple liquids and glasses (e.g. 1.4 sigma for Kob–Andersen at rho = 1.2, where
    a = 0.94 sigma) and in close-packed and bcc crystals (the gap after the 12 fcc or 8 + 6
    bcc neighbours). Searching only there keeps the split AA/AB sub-peaks of a binary mixture
    from posing as the shell edge. Where g(r) is flat at its minimum (the empty gap of a
    cold crystal) the middle of the flat stretch is returned.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Positions (length units).
    box : Box
        Orthorhombic cell; needs min(L) > 3.6 a.
    n_bins : int
        Histogram bins on [0, 1.9 a).

    Returns
    -------
    float
        Cut-off radius (length units).
    """
    lengths = _orthorhombic_lengths(box)
    n = len(positions)
    spacing = (np.prod(lengths) / n) ** (1.0 / 3.0)
    r_max = 1.9 * spacing
    if r_max > 0.5 * lengths.min():
        raise ValueError(f"box too small for the first-shell search: need min(L) > "
                         f"{2 * r_max:.4g}, have {lengths.min():.4g}")
    r, g = radial_distribution(positions, lengths, r_max, n_bins)
    # A 5-bin running mean keeps single-bin noise from posing as the minimum.
    smooth = np.convolve(g, np.ones(5) / 5.0, mode="same")
    window = np.flatnonzero((r >= 1.2 * spacing) & (r <= 1.8 * spacing))
    values = smooth[window]
    lowest = values.min()
    flat = np.flatnonzero(values <= lowest + 1e-3 * max(1.0, float(smooth.max())))
    # The first contiguous run of minimal bins.
    run_end = 0
    while run_end + 1 < len(flat) and flat[run_end + 1] == flat[run_end] + 1:
        run_end += 1
    k = (flat[0] + flat[run_end]) // 2
    return float(r[window[k]])


def _bonds(positions, lengths, cutoff):
    from scipy.spatial import cKDTree

    # cKDTree's periodic mode needs coordinates in [0, L).
    wrapped = np.mod(positions, lengths)
    wrapped[wrapped >= lengths] = 0.0
    tree = cKDTree(wrapped, boxsize=lengths)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    d = wrapped[j] - wrapped[i]
    d -= np.rint(d / lengths) * lengths
    return i, j, d


def _q6_vectors(n, i, j, d):
    from scipy.special import sph_harm_y

    r = np.linalg.norm(d, axis=1)
    theta = np.arccos(np.clip(d[:, 2] / r, -1.0, 1.0))  # polar angle
    phi = np.arctan2(d[:, 1], d[:, 0])  # azimuth
    q = np.zeros((n, 13), dtype=np.complex128)
    for k, m in enumerate(range(-6, 7)):
        y = sph_harm_y(6, m, theta, phi)
        # Each bond counts for both ends; the reversed bond has Y_lm(-r) = (-1)^l Y_lm(r)
        # = Y_lm(r) for even l.
        np.add.at(q[:, k], i, y)
        np.add.at(q[:, k], j, y)
    counts = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    norm = np.linalg.norm(q, axis=1)
    ok = norm > 0
    q[ok] /= norm[ok, None]
    return q, counts


def solid_like(positions, box, cutoff=None) -> np.ndarray:
    """ten Wolde solid-like flag of every particle.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Positions (length units).
    box : Box
        Orthorhombic periodic cell.
    cutoff : float, optional
        Neighbour radius (length units); default :func:`first_shell_cutoff`.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    positions = np.asarray(positions, dtype=np.float64)
    lengths = _orthorhombic_lengths(box)
    if cutoff is None:
        cutoff = first_shell_cutoff(positions, box)
    if not 0.0 < cutoff < 0.5 * lengths.min():
        raise ValueError(f"neighbour cutoff {cutoff} must lie in (0, L/2 = {0.5 * lengths.min()})")
    n = len(positions)
    i, j, d = _bonds(positions, lengths, cutoff)
    q, _ = _q6_vectors(n, i, j, d)
    dot = np.real(np.sum(q[i] * np.conj(q[j]), axis=1))
    connected = dot > CONNECTION_THRESHOLD
    links = (np.bincount(i[connected], minlength=n)
             + np.bincount(j[connected], minlength=n))
    return links >= MIN_CONNECTIONS


def crystalline_fraction(positions, box, cutoff=None) -> float:
    """Fraction of solid-like particles (ten Wolde criterion), in [0, 1].

    See :func:`solid_like` for the parameters.
    """
    return float(np.mean(solid_like(positions, box, cutoff)))
