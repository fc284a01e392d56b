"""F_s(q, t), MSD and tau_alpha from the multiple-origin, log-lag tracker.

References: a brute-force NumPy evaluation of the documented estimator (every origin on a
lag's grid, species taken at the origin), the exact F_s of Gaussian random walks, and the
coverage of the jackknife error of tau_alpha over independent synthetic runs.
"""

import io
import json
import math

import numpy as np
import pytest

from swapmc.analysis import FsTracker, default_wavenumber


def brute_force(frames, species, q, lags, points, which):
    """F_s and MSD at each lag (snapshots): origins at multiples of the lag's level spacing,
    particles of species ``which`` at the origin (``"all"``: every particle)."""
    n_snap = len(frames)
    half = points // 2
    fs, ms = [], []
    for lag in lags:
        level = 0 if lag < points else int(math.floor(math.log2(lag / half)))
        f_num = m_num = den = 0.0
        for s0 in range(0, n_snap - lag, 2**level):
            sel = np.ones(len(species[s0]), bool) if which == "all" else species[s0] == which
            d = frames[s0 + lag][sel] - frames[s0][sel]
            r = np.linalg.norm(d, axis=1)
            f_num += np.sum(np.sinc(q * r / np.pi))
            m_num += np.sum(r * r)
            den += sel.sum()
        fs.append(f_num / den)
        ms.append(m_num / den)
    return np.array(fs), np.array(ms)


def swap_trajectory(rng, n_snap, n, n_species):
    """Random walks whose species are exchanged between random pairs at every snapshot."""
    x = rng.random((n, 3)) * 5.0
    sp = rng.integers(0, n_species, n)
    frames, species = [], []
    for _ in range(n_snap):
        frames.append(x.copy())
        species.append(sp.copy())
        x = x + rng.normal(0.0, 0.15, size=x.shape)
        for _ in range(3):
            i, j = rng.integers(0, n, 2)
            sp[i], sp[j] = sp[j], sp[i]
    return frames, species


@pytest.mark.parametrize("n_snap", [5, 16, 37, 150])
def test_tracker_equals_brute_force_with_species_at_each_origin(n_snap):
    rng = np.random.default_rng(n_snap)
    frames, species = swap_trajectory(rng, n_snap, 40, 3)
    q, every, points = 6.0, 3, 8
    tracker = FsTracker(q, every, n_species=3, species=1, points=points)
    for s, (x, sp) in enumerate(zip(frames, species)):
        tracker.update(x, sp, sweep=100 + s * every)
    t, fs = tracker.self_intermediate_scattering()
    assert t[0] == 0 and np.all(np.diff(t) > 0) and np.all(t % every == 0)
    lags = t // every
    for which in (1, 0, "all"):
        ref_fs, ref_msd = brute_force(frames, species, q, lags, points, which)
        _, got_fs = tracker.self_intermediate_scattering(which)
        _, got_msd = tracker.mean_squared_displacement(which)
        np.testing.assert_allclose(got_fs, ref_fs, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got_msd, ref_msd, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(fs, tracker.self_intermediate_scattering(1)[1])


@pytest.mark.parametrize("n_snap", [2, 9, 33, 200, 1001])
def test_lags_are_log_spaced_and_reach_half_the_run(n_snap):
    tracker = FsTracker(7.25, every=5, n_species=1, points=16)
    x = np.zeros((3, 3))
    for _ in range(n_snap):
        tracker.update(x, np.zeros(3, np.int64))
    t = tracker.lags
    span = (n_snap - 1) * 5
    assert t[-1] >= span / 2 and t[-1] <= span
    # Linear (step ``every``) up to 15 snapshots, then points / 2 = 8 lags per octave.
    assert np.all(np.diff(t[:16]) == 5)
    above = t[1:-1] >= 8 * 5
    assert np.all(t[2:][above] / t[1:-1][above] <= 1.0 + 1.0 / 8.0 + 1e-12)
    # Every lag is averaged over all origins on its grid: the count of the longest lag
    # is at least one, of the shortest non-zero lag n_snap - 1.
    counts = tracker.lag_counts
    assert counts[0] == n_snap and (n_snap == 1 or counts[1] == n_snap - 1)


def test_random_walk_reproduces_the_exact_fs_and_msd():
    # Gaussian steps of variance v per component: F_s(q, t) = exp(-q^2 v t / 2) exactly
    # (isotropic Gaussian displacement), MSD = 3 v t.
    rng = np.random.default_rng(3)
    n, n_snap, q, v = 2000, 400, 7.0, 2.0e-4
    x = rng.random((n, 3))
    sp = np.zeros(n, np.int64)
    tracker = FsTracker(q, every=1, n_species=1, points=16)
    for _ in range(n_snap):
        tracker.update(x, sp)
        x = x + rng.normal(0.0, math.sqrt(v), size=x.shape)
    t, fs = tracker.self_intermediate_scattering()
    _, m = tracker.mean_squared_displacement()
    exact = np.exp(-0.5 * q * q * v * t)
    # One origin's particle average has std <= sqrt(var(sinc)/n) <= 1/sqrt(n); averaging
    # over origins cannot make it larger. 5 sigma.
    assert np.max(np.abs(fs - exact)) < 5.0 / math.sqrt(n)
    np.testing.assert_allclose(m[1:], 3 * v * t[1:], rtol=5 * math.sqrt(2 / 3 / n))
    tau = 2.0 / (q * q * v)
    assert tracker.tau_alpha()[0] == pytest.approx(tau, rel=0.03)


def test_state_round_trip_and_extension_equal_one_long_run():
    rng = np.random.default_rng(11)
    frames, species = swap_trajectory(rng, 300, 30, 2)
    a = FsTracker(5.0, every=2, n_species=2, species=0, points=8)
    for s in range(123):
        a.update(frames[s], species[s], sweep=2 * s)
    buf = io.BytesIO()
    np.savez(buf, **a.state_dict())
    buf.seek(0)
    with np.load(buf) as data:
        b = FsTracker.from_state_dict(dict(data))
    for s in range(123, 300):
        a.update(frames[s], species[s], sweep=2 * s)
        b.update(frames[s], species[s], sweep=2 * s)
    for which in (0, 1, "all"):
        for ra, rb in ((a.self_intermediate_scattering(which),
                        b.self_intermediate_scattering(which)),
                       (a.mean_squared_displacement(which),
                        b.mean_squared_displacement(which))):
            np.testing.assert_array_equal(ra[0], rb[0])
            np.testing.assert_array_equal(ra[1], rb[1])
    assert a.tau_alpha(0) == b.tau_alpha(0) or np.isnan(a.tau_alpha(0)[0])
    with pytest.raises(ValueError, match="expected"):
        b.update(frames[0], species[0], sweep=0)  # a missed or repeated snapshot is caught


def test_old_checkpoint_state_is_refused_clearly():
    state = FsTracker(7.25, 10, 3).state_dict()
    state["version"] = np.asarray(1)
    with pytest.raises(ValueError, match="older swapmc"):
        FsTracker.from_state_dict(state)


def test_default_wavenumber_is_the_ka_value_scaled_with_the_spacing():
    assert default_wavenumber(1.2) == pytest.approx(7.25, rel=1e-15)
    assert default_wavenumber(1.2 * 8) == pytest.approx(14.5, rel=1e-14)
    with pytest.raises(ValueError):
        default_wavenumber(float("nan"))


def run_walk_tau(seed, n, n_snap, q, v, het):
    """tau_alpha and its jackknife error of one synthetic run.

    Particles random-walk with a mobility that is redrawn for each particle with
    probability ``het`` per snapshot (dynamic heterogeneity with a lifetime of 1/het
    snapshots, which correlates neighbouring origins as in a supercooled liquid).
    """
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3))
    sp = np.zeros(n, np.int64)
    mob = rng.exponential(1.0, n)
    tracker = FsTracker(q, every=1, n_species=1, points=16)
    for _ in range(n_snap):
        tracker.update(x, sp)
        x = x + rng.normal(0.0, 1.0, size=x.shape) * np.sqrt(v * mob)[:, None]
        redraw = rng.random(n) < het
        mob[redraw] = rng.exponential(1.0, redraw.sum())
    return tracker.tau_alpha()


@pytest.mark.physics
def test_tau_alpha_error_bars_have_their_stated_coverage():
    # Truth: the mean tau over many runs of the same synthetic process (its own standard
    # error is 1/sqrt(M) of the spread, small against the per-run errors being tested).
    # With heterogeneous, persistent mobilities (lifetime ~ tau) origins within a tau are
    # correlated, which is what the origin-group jackknife must survive.
    # tau ~ 40 snapshots, runs of 16 tau, N = 60: tau scatters by ~10 % per run.
    n, q, v, het, n_snap, runs = 60, 7.0, 1.0e-3, 0.025, 640, 160
    res = np.array([run_walk_tau(s, n, n_snap, q, v, het) for s in range(runs)])
    tau, err, groups = res.T
    assert np.all(np.isfinite(err)) and np.all(groups >= 2)
    truth = tau.mean()
    # The jackknife error over G groups is Student-t distributed with G - 1 dof: the 68 %
    # interval is t_{0.84, G-1} * err.
    from scipy import stats

    half = stats.t.ppf(0.8413, groups - 1) * err
    inside = np.abs(tau - truth) <= half
    p = inside.mean()
    # Binomial sd of a 68 % coverage over 160 runs is 0.037; 3 sd. (Measured 0.64 for
    # this process; groups of 2 tau_alpha instead of 3 gave 0.58.)
    assert abs(p - 0.683) < 3 * math.sqrt(0.683 * 0.317 / runs), (p, np.median(err / tau))


# ------------------------------------------------------------------ end to end (CLI)
def _cli_run(tmp_path, name, p_swap, temperature, production, every):
    """``swapmc run`` (in-process ``main``) with F_s and trajectory frames at the same
    sweeps; returns the output directory."""
    from swapmc.cli import main

    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        'preset = "ka2-x10"\n'
        f"[moves]\np_swap = {p_swap}\n"
        f"[state]\ntemperature = {temperature}\n"
        "[system]\nn = 200\n"
        f"[run]\nseed = 3\nequilibration_sweeps = 300\nproduction_sweeps = {production}\n"
        f"[output]\ndirectory = \"{tmp_path / name}\"\ntrajectory_every = {every}\n"
        "progress = false\n"
        f"[diagnostics]\ntau_alpha = true\nfs_every = {every}\n"
    )
    assert main(["run", str(cfg)]) == 0
    return tmp_path / name


def _trajectory(directory):
    from swapmc.io import iter_extxyz

    frames = list(iter_extxyz(directory / "trajectory.xyz"))
    x = [f.positions + f.images @ f.box.matrix.T for f in frames]
    return x, [f.species.copy() for f in frames]


def _fs_csv(directory):
    import csv

    with open(directory / "fs.csv") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def _tau_numpy(t, fs):
    """1/e crossing, linear in (ln t, F_s) between the bracketing lags."""
    k = int(np.flatnonzero(fs < math.exp(-1.0))[0])
    frac = (fs[k - 1] - math.exp(-1.0)) / (fs[k - 1] - fs[k])
    if t[k - 1] == 0:
        return t[k] * frac
    return math.exp(math.log(t[k - 1]) + frac * (math.log(t[k]) - math.log(t[k - 1])))


def test_without_swaps_the_tracked_particles_are_the_species_in_user_order(tmp_path):
    # p_swap = 0: species never change, so F_s of "A at each origin" is F_s of the fixed set
    # of A particles of the input order. (Before, the set was taken in the sampler's
    # spatially sorted order and was a random mix of A, B and C.)
    out = _cli_run(tmp_path, "noswap", 0.0, 0.9, 600, 10)
    frames, species = _trajectory(out)
    assert all(np.array_equal(s, species[0]) for s in species)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fs_species"] == "A" and summary["fs_q"] == 7.25
    got = _fs_csv(out)
    lags = got["t"].astype(int) // 10
    # The fixed set: the A particles of the first frame, in the file's (user) order.
    fixed = [species[0]] * len(frames)
    ref, ref_msd = brute_force(frames, fixed, 7.25, lags, 16, 0)
    np.testing.assert_allclose(got["fs"], ref, rtol=1e-12)
    np.testing.assert_allclose(got["msd"], ref_msd, rtol=1e-12, atol=1e-15)
    for name in ("B", "C"):
        assert np.max(np.abs(got["fs"] - got[f"fs_{name}"])) > 1e-3


def test_cli_tau_alpha_equals_numpy_from_the_trajectory_file(tmp_path):
    out = _cli_run(tmp_path, "swap", 0.2, 0.8, 4000, 10)
    frames, species = _trajectory(out)
    assert not all(np.array_equal(s, species[0]) for s in species)  # swaps happened
    summary = json.loads((out / "summary.json").read_text())
    got = _fs_csv(out)
    lags = got["t"].astype(int) // 10
    for column, which in (("fs", 0), ("fs_all", "all"), ("fs_C", 2)):
        ref, ref_msd = brute_force(frames, species, summary["fs_q"], lags, 16, which)
        np.testing.assert_allclose(got[column], ref, rtol=1e-12)
    tau = _tau_numpy(got["t"], brute_force(frames, species, summary["fs_q"], lags, 16, 0)[0])
    assert summary["tau_alpha_sweeps"] == pytest.approx(tau, rel=1e-12)
    # Production of 4000 sweeps covers several tau_alpha: the error bar is there.
    assert summary["tau_alpha_stderr_sweeps"] is not None
    assert 0 < summary["tau_alpha_stderr_sweeps"] < summary["tau_alpha_sweeps"]
