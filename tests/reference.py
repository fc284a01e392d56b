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
