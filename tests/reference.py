"""Independent brute-force references used by the tests (plain NumPy, O(N^2))."""

import numpy as np


def lj_pair_energy(r, eps, sig, rc):
    """Cut-and-shifted LJ, written out from the textbook formula."""
    r = np.asarray(r, dtype=float)
    sr6 = (sig / r) ** 6
    src6 = (sig / rc) ** 6
    u = 4 * eps * (sr6**2 - sr6) - 4 * eps * (src6**2 - src6)
    return np.where(r < rc, u, 0.0)


def lj_energy(pos, species, lengths, model):
    """Total energy by looping over all pairs with the minimum image (O(N^2))."""
    pos = np.asarray(pos, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    e = 0.0
    n = len(pos)
    for i in range(n - 1):
        d = pos[i + 1 :] - pos[i]
        d -= lengths * np.round(d / lengths)
        r = np.sqrt((d**2).sum(axis=1))
        a = species[i]
        b = species[i + 1 :]
        e += lj_pair_energy(r, model.epsilon[a, b], model.sigma[a, b], model.cutoff[a, b]).sum()
    return float(e)


def lj_virial(pos, species, lengths, model):
    """W = sum over pairs r . f = sum -r du/dr (O(N^2))."""
    pos = np.asarray(pos, dtype=float)
    w = 0.0
    for i in range(len(pos) - 1):
        d = pos[i + 1 :] - pos[i]
        d -= lengths * np.round(d / lengths)
        r = np.sqrt((d**2).sum(axis=1))
        a = species[i]
        b = species[i + 1 :]
        eps, sig, rc = model.epsilon[a, b], model.sigma[a, b], model.cutoff[a, b]
        sr6 = (sig / r) ** 6
        w += np.where(r < rc, 4 * eps * (12 * sr6**2 - 6 * sr6), 0.0).sum()
    return float(w)


def batch_chi2(samples, edges_or_states, probs, n_blocks=50):
    """Chi-square of a histogram against exact probabilities, with batch-means errors.

    Markov-chain samples are correlated, so the variance of each bin frequency is estimated
    from ``n_blocks`` consecutive block means instead of the multinomial formula. Bins whose
    expected frequency is tiny are merged away by the caller.

    Returns
    -------
    chi2 : float
        Sum over bins of ((f - p) / se)^2, approximately chi-square distributed with
        (number of bins) degrees of freedom.
    """
    samples = np.asarray(samples)
    probs = np.asarray(probs, dtype=float)
    blocks = np.array_split(samples, n_blocks)
    freqs = []
    for blk in blocks:
        if isinstance(edges_or_states, np.ndarray) and edges_or_states.dtype.kind == "f":
            h, _ = np.histogram(blk, bins=edges_or_states)
        else:
            h = np.array([(blk == s).sum() for s in edges_or_states])
        freqs.append(h / len(blk))
    freqs = np.array(freqs)
    mean = freqs.mean(axis=0)
    se = freqs.std(axis=0, ddof=1) / np.sqrt(n_blocks)
    se = np.maximum(se, 1e-12)
    return float((((mean - probs) / se) ** 2).sum())


def _spline_eval(table, idx, x, inv_delta, n, clamp_low=False):
    """LAMMPS cubic-spline lookup written out in NumPy.

    table : (..., n + 1, 7) coefficient array; idx : tuple of index arrays selecting the
    function for each point (e.g. (t_neighbour, t_centre)); x : points.
    """
    p = np.asarray(x, float) * inv_delta + 1.0
    m = np.minimum(np.floor(p).astype(int), n - 1)
    if clamp_low:
        m = np.maximum(m, 1)
    p = np.minimum(p - m, 1.0)
    c = table[(*idx, m)]
    value = ((c[..., 3] * p + c[..., 4]) * p + c[..., 5]) * p + c[..., 6]
    deriv = (c[..., 0] * p + c[..., 1]) * p + c[..., 2]
    return value, deriv


def eam_energy(pos, species, lengths, tables):
    """Total EAM energy by brute force over all pairs (O(N^2), plain NumPy).

    E = sum_i F_{t_i}(rho_i) + 1/2 sum_{i != j} phi_{t_i t_j}(r_ij),
    rho_i = sum_j rhor[t_j, t_i](r_ij); tables from ``EAMPotential.kernel_tables()``.
    """
    pos = np.asarray(pos, float)
    species = np.asarray(species)
    lengths = np.asarray(lengths, float)
    n = len(pos)
    d = pos[None, :, :] - pos[:, None, :]
    d -= lengths * np.round(d / lengths)
    r = np.sqrt((d**2).sum(-1))
    np.fill_diagonal(r, np.inf)
    ii, jj = np.nonzero(r < tables["cutoff"])
    rr = r[ii, jj]
    ti, tj = species[ii], species[jj]
    rdr, nr = tables["rdr"], int(tables["nr"])
    dens, _ = _spline_eval(tables["rhor"], (tj, ti), rr, rdr, nr)  # j's density at centre i
    rho = np.bincount(ii, weights=dens, minlength=n)
    z2, _ = _spline_eval(tables["z2r"], (ti, tj), rr, rdr, nr)
    e_pair = 0.5 * np.sum(z2 / rr)
    f, fp = _spline_eval(tables["frho"], (species,), rho, tables["rdrho"],
                         int(tables["nrho"]), clamp_low=True)
    f = f + np.where(rho > tables["rhomax"], fp * (rho - tables["rhomax"]), 0.0)
    return float(e_pair + f.sum())
