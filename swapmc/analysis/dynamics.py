"""Relaxation diagnostics: self-intermediate scattering function, MSD and tau_alpha.

Time is measured in Monte Carlo sweeps (one sweep = N attempted moves), lengths in model
units. Displacements must be computed from *unwrapped* positions
(``system.unwrapped_positions()``), otherwise a particle crossing the box would appear to
jump by L.

Why the orientational average sin(qr)/(qr)
------------------------------------------
F_s(q, t) = < exp(i q . dr_j(t)) > for an isotropic liquid depends only on |q|. Averaging
exp(i q . dr) over all directions of q on the sphere gives exactly sin(q dr) / (q dr), so
``mean_j sinc(q |dr_j|)`` is the full orientational average at once: it has no angular
sampling noise, needs no choice of wavevectors, and, since displacements (unlike
densities) are not periodic, there is no reason to restrict q to the box's reciprocal
lattice, so the result does not depend on box size through q quantisation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["self_intermediate_scattering", "msd", "tau_alpha", "FsTracker"]

#: Default F_s level defining tau_alpha.
INV_E = float(np.exp(-1.0))


def _displacements(displacements) -> np.ndarray:
    d = np.asarray(displacements, dtype=np.float64)
    if d.ndim < 2 or d.shape[-1] != 3 or d.shape[-2] == 0:
        raise ValueError(f"displacements must have shape (..., N, 3), N >= 1; got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("displacements contain non-finite values")
    return d


def _wavenumbers(q) -> np.ndarray:
    qa = np.asarray(q, dtype=np.float64)
    if qa.ndim > 1 or qa.size == 0 or not np.all(np.isfinite(qa)) or np.any(qa < 0):
        raise ValueError(f"q must be a non-negative scalar or 1-D array, got {q!r}")
    return qa


def self_intermediate_scattering(displacements, q):
    """Self-intermediate scattering function F_s(q) of a set of displacements.

    ``F_s(q) = (1/N) sum_j sin(q |dr_j|) / (q |dr_j|)``, the exact orientational average of
    ``exp(i q . dr_j)`` (see the module docstring for why this is the right average).

    Parameters
    ----------
    displacements : array_like, shape (..., N, 3)
        Displacement vectors (length units) of N particles; leading axes, e.g. time origins
        or lags, are kept.
    q : float or array_like, shape (Q,)
        Wavenumber(s) (inverse length units), typically the first peak of S(q).

    Returns
    -------
    float or ndarray
        Shape ``displacements.shape[:-2]`` for scalar q (a float if that is ()), or
        ``displacements.shape[:-2] + (Q,)`` for an array q.
    """
    d = _displacements(displacements)
    qa = _wavenumbers(q)
    r = np.sqrt(np.sum(d * d, axis=-1))  # (..., N)
    # np.sinc(x) = sin(pi x) / (pi x), with the x = 0 limit handled.
    fs = np.mean(np.sinc(r[..., None] * (qa.reshape(-1) / np.pi)), axis=-2)  # (..., Q)
    if qa.ndim == 0:
        fs = fs[..., 0]
        return float(fs) if fs.ndim == 0 else fs
    return fs


def msd(displacements):
    """Mean squared displacement ``(1/N) sum_j |dr_j|^2``.

    Parameters
    ----------
    displacements : array_like, shape (..., N, 3)
        Displacement vectors (length units).

    Returns
    -------
    float or ndarray, shape ``displacements.shape[:-2]``
        In squared length units.
    """
    d = _displacements(displacements)
    out = np.mean(np.sum(d * d, axis=-1), axis=-1)
    return float(out) if out.ndim == 0 else out


def tau_alpha(t, Fs, threshold=INV_E) -> float:
    """Structural relaxation time: first time F_s drops below ``threshold``.

    Between the last sample above and the first sample below the threshold, F_s is
    interpolated linearly in (log t, F_s): relaxation curves are smooth in log t, and for a
    pure exponential exp(-t/tau) the curvature of F_s against log t vanishes at t = tau, so
    the relative error is only about h^2 (e^h - 1) / 8 ~ h^3 / 8 with h = ln(t_k / t_{k-1})
    the log spacing of the bracketing samples. If the bracket starts at t = 0 (log undefined)
    the interpolation is linear in t.

    Parameters
    ----------
    t : array_like, shape (K,)
        Strictly increasing, non-negative times (MC sweeps), e.g. from
        :meth:`FsTracker.self_intermediate_scattering`.
    Fs : array_like, shape (K,)
        F_s(q, t), finite.
    threshold : float
        In (0, 1); 1/e by default.

    Returns
    -------
    float
        tau_alpha in the units of ``t``, or ``nan`` when F_s never drops below the threshold
        (then only tau_alpha > t[-1] is known; report it as such).

    Raises
    ------
    ValueError
        Inputs not 1-D of equal length >= 2, non-finite, t negative or not strictly
        increasing, threshold outside (0, 1), or F_s already below the threshold at t[0]
        (the crossing happened before the first sample and cannot be located).
    """
    t = np.asarray(t, dtype=np.float64)
    f = np.asarray(Fs, dtype=np.float64)
    if t.ndim != 1 or t.shape != f.shape or t.size < 2:
        raise ValueError(
            f"t and Fs must be 1-D arrays of equal length >= 2, got {t.shape} and {f.shape}"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(f))):
        raise ValueError("t and Fs must be finite")
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ValueError("t must be non-negative and strictly increasing")
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    below = np.flatnonzero(f < threshold)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        raise ValueError(
            f"Fs[0] = {f[0]:.4g} at t = {t[0]:g} is already below the threshold "
            f"{threshold:.4g}; tau_alpha < t[0] cannot be located"
        )
    f0, f1 = f[k - 1], f[k]
    frac = (f0 - threshold) / (f0 - f1)  # in (0, 1]: f0 >= threshold > f1
    if t[k - 1] == 0.0:
        return float(t[k] * frac)
    u0, u1 = np.log(t[k - 1]), np.log(t[k])
    return float(np.exp(u0 + frac * (u1 - u0)))


class FsTracker:
    """Running F_s(q, t) and MSD from periodic snapshots, with a ring buffer of time origins.

    Call :meth:`update` every ``every`` sweeps with the current unwrapped positions. Every
    ``origin_every``-th snapshot becomes a time origin; the last ``max_origins`` origins are
    kept (oldest overwritten first). Each snapshot is compared with every stored origin and
    the particle-averaged F_s and MSD are added to the accumulator of the corresponding lag,
    so each lag averages over *all* origins that have reached it during the run, not only
    those currently stored.

    Lags run over ``0 .. n_lags - 1`` snapshots with ``n_lags = origin_every * max_origins``
    (an origin is overwritten exactly when it would reach lag n_lags), i.e. times
    ``t = 0, every, ..., (n_lags - 1) * every`` sweeps.

    Memory is bounded and independent of run length: ``max_origins * n * 3`` float64 for the
    origins (n tracked particles) plus ``n_lags * (Q + 2)`` numbers for the accumulators;
    e.g. 800 particles, 50 origins: 0.96 MB. Cost per snapshot O(max_origins * n * Q).

    Parameters
    ----------
    q : float or array_like, shape (Q,)
        Wavenumber(s) (inverse length units).
    every : int
        Sweeps between snapshots; sets the time unit of the lags.
    origin_every : int
        Snapshots between successive time origins.
    max_origins : int
        Number of origins kept.
    indices : array_like of int, shape (n,), optional
        Particles tracked, e.g. ``np.flatnonzero(system.species == 0)``; :meth:`update`
        then takes all N positions. ``None``: :meth:`update` takes the tracked particles'
        positions directly.
    """

    _STATE_VERSION = 1

    def __init__(self, q, every, origin_every=10, max_origins=50, indices=None):
        self.q = _wavenumbers(q).copy()
        for name, value in (
            ("every", every),
            ("origin_every", origin_every),
            ("max_origins", max_origins),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.every = int(every)
        self.origin_every = int(origin_every)
        self.max_origins = int(max_origins)
        if indices is None:
            self.indices = None
        else:
            idx = np.asarray(indices)
            if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError("indices must be a non-empty 1-D integer array")
            if np.any(idx < 0):
                raise ValueError("indices must be non-negative")
            self.indices = idx.astype(np.int64)
        self.n_lags = self.origin_every * self.max_origins
        nq = self.q.size
        self._fs_sum = np.zeros((self.n_lags, nq))
        self._msd_sum = np.zeros(self.n_lags)
        self._count = np.zeros(self.n_lags, np.int64)
        # Allocated at the first snapshot, when the number of tracked particles is known.
        self._origins = np.zeros((self.max_origins, 0, 3))
        self._origin_snap = np.full(self.max_origins, -1, np.int64)  # -1: empty slot
        self.n_snapshots = 0
        self.first_sweep = -1  # sweep of snapshot 0 when update() was given one

    # ------------------------------------------------------------------ accumulation
    def update(self, positions, sweep=None) -> None:
        """Add a snapshot.

        Parameters
        ----------
        positions : array_like, shape (N, 3) or (n, 3)
            *Unwrapped* positions (length units): all N particles when ``indices`` was
            given, else the n tracked ones.
        sweep : int, optional
            Current sweep number. When given it is checked against ``first_sweep +
            n_snapshots * every`` to catch a missed or doubled call (e.g. after a restart).
        """
        x = np.asarray(positions, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {x.shape}")
        if self.indices is not None:
            if self.indices.max() >= x.shape[0]:
                raise ValueError(
                    f"tracked index {self.indices.max()} out of range for {x.shape[0]} particles"
                )
            x = x[self.indices]
        if not np.all(np.isfinite(x)):
            raise ValueError("positions contain non-finite values")
        if sweep is not None:
            sweep = int(sweep)
            if self.first_sweep < 0 and self.n_snapshots == 0:
                self.first_sweep = sweep
            elif self.first_sweep >= 0:
                expected = self.first_sweep + self.n_snapshots * self.every
                if sweep != expected:
                    raise ValueError(
                        f"snapshot at sweep {sweep}, expected {expected} (every = "
                        f"{self.every}, {self.n_snapshots} snapshots since sweep "
                        f"{self.first_sweep})"
                    )
        if self._origins.shape[1] == 0:
            self._origins = np.zeros((self.max_origins, x.shape[0], 3))
        elif x.shape[0] != self._origins.shape[1]:
            raise ValueError(
                f"snapshot has {x.shape[0]} tracked particles, previous ones had "
                f"{self._origins.shape[1]}"
            )

        s = self.n_snapshots
        if s % self.origin_every == 0:
            slot = (s // self.origin_every) % self.max_origins
            self._origins[slot] = x
            self._origin_snap[slot] = s
        valid = np.flatnonzero(self._origin_snap >= 0)
        lags = s - self._origin_snap[valid]  # distinct, all < n_lags by construction
        d = x[None, :, :] - self._origins[valid]  # (n_origins, n, 3)
        fs = self_intermediate_scattering(d, self.q.reshape(-1))  # (n_origins, Q)
        self._fs_sum[lags] += fs
        self._msd_sum[lags] += msd(d)
        self._count[lags] += 1
        self.n_snapshots = s + 1

    # ------------------------------------------------------------------------ results
    @property
    def lag_counts(self) -> np.ndarray:
        """Number of time origins averaged at each lag, shape (n_lags,), int64."""
        return self._count.copy()

    def _measured(self):
        have = self._count > 0
        t = np.flatnonzero(have).astype(np.int64) * self.every
        return have, t

    def self_intermediate_scattering(self):
        """Origin-averaged F_s(q, t).

        Returns
        -------
        t : ndarray of int64, shape (K,)
            Lags with at least one origin, in sweeps (multiples of ``every``, from 0).
        Fs : ndarray, shape (K,) for scalar q, (K, Q) for an array q
        """
        have, t = self._measured()
        fs = self._fs_sum[have] / self._count[have, None]
        return t, (fs[:, 0] if self.q.ndim == 0 else fs)

    def mean_squared_displacement(self):
        """Origin-averaged mean squared displacement.

        Returns
        -------
        t : ndarray of int64, shape (K,)
            Same lags as :meth:`self_intermediate_scattering` (sweeps).
        msd : ndarray, shape (K,)
            Squared length units.
        """
        have, t = self._measured()
        return t, self._msd_sum[have] / self._count[have]

    # ------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Complete state as a dict of numpy arrays (0-d for scalars), e.g. for ``np.savez``.

        ``indices`` is an empty array when the tracker was built with ``indices=None``.
        """
        return {
            "version": np.asarray(self._STATE_VERSION, dtype=np.int64),
            "q": self.q.copy(),
            "every": np.asarray(self.every, dtype=np.int64),
            "origin_every": np.asarray(self.origin_every, dtype=np.int64),
            "max_origins": np.asarray(self.max_origins, dtype=np.int64),
            "indices": (np.zeros(0, np.int64) if self.indices is None else self.indices.copy()),
            "n_snapshots": np.asarray(self.n_snapshots, dtype=np.int64),
            "first_sweep": np.asarray(self.first_sweep, dtype=np.int64),
            "origins": self._origins.copy(),
            "origin_snap": self._origin_snap.copy(),
            "fs_sum": self._fs_sum.copy(),
            "msd_sum": self._msd_sum.copy(),
            "count": self._count.copy(),
        }

    @classmethod
    def from_state_dict(cls, d) -> FsTracker:
        """Rebuild a tracker from :meth:`state_dict` output (or a loaded ``.npz``); later
        updates give bitwise the same results as on the original."""
        version = int(d["version"])
        if version != cls._STATE_VERSION:
            raise ValueError(f"unsupported FsTracker state version {version}")
        indices = np.asarray(d["indices"], dtype=np.int64)
        tracker = cls(
            np.asarray(d["q"], dtype=np.float64),
            int(d["every"]),
            int(d["origin_every"]),
            int(d["max_origins"]),
            indices if indices.size else None,
        )
        origins = np.array(d["origins"], dtype=np.float64)
        fs_sum = np.array(d["fs_sum"], dtype=np.float64)
        if (
            origins.ndim != 3
            or origins.shape[0] != tracker.max_origins
            or origins.shape[2] != 3
            or fs_sum.shape != tracker._fs_sum.shape
        ):
            raise ValueError("inconsistent FsTracker state: array shapes do not match")
        tracker._origins = origins
        tracker._origin_snap = np.array(d["origin_snap"], dtype=np.int64)
        tracker._fs_sum = fs_sum
        tracker._msd_sum = np.array(d["msd_sum"], dtype=np.float64)
        tracker._count = np.array(d["count"], dtype=np.int64)
        tracker.n_snapshots = int(d["n_snapshots"])
        tracker.first_sweep = int(d["first_sweep"])
        return tracker
