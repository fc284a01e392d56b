"""Parallel tempering: exchange rule, label bookkeeping, Boltzmann sampling per temperature,
serial/MPI identity, restart identity and failure handling.

Statistical tests and their tolerances:

* Toy replicas (exact Boltzmann answer, fast tier): per temperature, the mean energy (and
  volume) must agree with the exact value within 4.5 blocking standard errors, and the
  histogram must pass a chi^2 test at p > 1e-4 with the sample count replaced by the
  effective number of independent samples n_eff = n (naive SE / blocking SE)^2 (bins with
  n_eff p < 5 merged). With 4 temperatures x 2 checks the chance of a false alarm is
  < 1e-3. The same checks must fail (|z| > 10) when the exchange rule is wrong, which is
  what makes them tests.
* KA2 physics check (``physics`` tier): PT's per-temperature energy series versus an
  independent single-temperature run: means within 4 combined blocking standard errors,
  and a two-sample Kolmogorov-Smirnov test at p > 1e-3 whose p-value uses the effective
  sample sizes n_eff = n / (2 tau_int) of the two series (tau_int from blocking), with D
  computed from all samples; the same test must reject the neighbouring temperature.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import MPIEXEC, subprocess_env
from scipy import stats as sps

from swapmc._toml import ConfigError
from swapmc.tempering import (
    ExchangeStatistics,
    ReplicaExchange,
    SerialComm,
    TemperingRun,
    acceptance_probability,
    attempt_exchanges,
    blocking_error,
    check_ladder,
    feedback_ladder,
    geometric_ladder,
    log_acceptance,
    pair_starts,
    resolve,
)
from swapmc.tempering import exchange as exchange_module
from swapmc.tempering.comm import CollectiveError, agree, block_range
from swapmc.tempering.ladder import feedback_update, stage_ends
from swapmc.tempering.output import read_table


# --------------------------------------------------------------------- exchange rule
def test_log_acceptance_matches_boltzmann_weight_ratio():
    """Hand-made energies: the ratio equals w(swapped) / w(current) computed directly."""
    kb = 8.617333262e-5  # metal units: beta = 1 / (k_B T) with T in kelvin
    b_i, b_j = 1 / (kb * 600.0), 1 / (kb * 700.0)
    u_i, u_j = -4150.25, -4149.75
    direct = (-b_i * u_j - b_j * u_i) - (-b_i * u_i - b_j * u_j)
    # beta U ~ 8e7 here, so the direct difference carries ~1e-8 of rounding.
    assert log_acceptance(b_i, b_j, u_i, u_j) == pytest.approx(direct, abs=1e-6)
    assert log_acceptance(b_i, b_j, u_i, u_j) == pytest.approx((b_i - b_j) * (u_i - u_j))
    # Low-T replica with the *higher* energy: swapping is downhill, always accepted.
    assert acceptance_probability(2.0, 1.0, -10.0, -12.0) == 1.0
    assert acceptance_probability(2.0, 1.0, -12.0, -10.0) == pytest.approx(np.exp(-2.0))
    # Isobaric: enthalpies U + P V replace energies.
    p, v_i, v_j = 0.7, 410.0, 400.0
    h = (-b_i * (u_j + p * v_j) - b_j * (u_i + p * v_i)) - (-b_i * (u_i + p * v_i)
                                                           - b_j * (u_j + p * v_j))
    assert log_acceptance(b_i, b_j, u_i, u_j, p, v_i, v_j) == pytest.approx(h, abs=1e-6)
    assert acceptance_probability(1.0, 0.5, 0.0, 0.0, 2.0, 10.0, 9.0) == 1.0
    assert acceptance_probability(1.0, 0.5, 0.0, 0.0, 2.0, 9.0, 10.0) == pytest.approx(np.exp(-1))
    with pytest.raises(ValueError, match="volumes"):
        log_acceptance(1.0, 0.5, 0.0, 0.0, 2.0)
    # No overflow for hugely favourable swaps.
    assert acceptance_probability(1e3, 1.0, 1e6, -1e6) == 1.0


def test_attempt_exchanges_thresholds_and_pairs():
    betas = 1 / np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    energies = np.array([-3.0, -5.0, -4.0, -4.0, -1.0])  # by replica
    perm = np.array([1, 0, 2, 4, 3])                    # slot -> replica
    # Round 0: pairs (0,1), (2,3). Pair (0,1): slot 0 holds replica 1 (U=-5), slot 1 replica
    # 0 (U=-3): x = (2 - 1)(-5 + 3) = -2. Pair (2,3): replicas 2 (U=-4), 4 (U=-1):
    # x = (0.5 - 0.25)(-4 + 1) = -0.75.
    p01, p23 = np.exp(-2.0), np.exp(-0.75)
    new, starts, acc = attempt_exchanges(perm, betas, energies, None, None, 0,
                                         [p01 * (1 - 1e-12), p23 * (1 + 1e-12)])
    assert starts.tolist() == [0, 2] and acc.tolist() == [True, False]
    assert new.tolist() == [0, 1, 2, 4, 3]
    new, _, acc = attempt_exchanges(perm, betas, energies, None, None, 0,
                                    [p01 * (1 + 1e-12), p23 * (1 - 1e-12)])
    assert acc.tolist() == [False, True] and new.tolist() == [1, 0, 4, 2, 3]
    # Round 1: pairs (1,2), (3,4) only.
    new, starts, acc = attempt_exchanges(perm, betas, energies, None, None, 1, [0.0, 0.0])
    assert starts.tolist() == [1, 3] and acc.all() and new.tolist() == [1, 2, 0, 3, 4]
    with pytest.raises(ValueError, match="need 2 uniform"):
        attempt_exchanges(perm, betas, energies, None, None, 1, [0.5])
    assert pair_starts(4, 0).tolist() == [0, 2] and pair_starts(4, 7).tolist() == [1]
    assert pair_starts(2, 1).tolist() == []


# ---------------------------------------------------------------------------- ladder
def test_ladders():
    t = geometric_ladder(0.45, 1.0, 16)
    assert t[0] == 0.45 and t[-1] == 1.0 and t.size == 16
    np.testing.assert_allclose(t[1:] / t[:-1], (1.0 / 0.45) ** (1 / 15), rtol=1e-12)
    with pytest.raises(ConfigError, match=r"strictly increasing: T\[1\] = 0.7 is followed by "
                                          r"T\[2\] = 0.6"):
        check_ladder([0.5, 0.7, 0.6])
    with pytest.raises(ConfigError, match="at least two"):
        check_ladder([0.5])
    with pytest.raises(ConfigError, match="positive"):
        check_ladder([-0.1, 0.5])
    with pytest.raises(ConfigError, match="t_min < t_max"):
        geometric_ladder(1.0, 0.5, 4)
    assert stage_ends(12, 4) == [1, 2, 6, 12]
    assert stage_ends(4, 4) == [1, 2, 3, 4]
    ends = stage_ends(150, 4)
    assert ends[-1] == 150 and all(b > a for a, b in zip(ends, ends[1:]))
    np.testing.assert_allclose(np.diff([0, *ends]), [10, 20, 40, 80])


def test_feedback_ladder_exact_cases():
    t = np.array([1.0, 2.0, 3.0, 5.0])
    # f linear in the slot index: already optimal, nothing moves.
    f_lin = np.array([1.0, 2 / 3, 1 / 3, 0.0])
    new, f = feedback_ladder(t, 3000 * f_lin, 3000 * (1 - f_lin))
    np.testing.assert_allclose(new, t, rtol=1e-12)
    np.testing.assert_allclose(f, f_lin, rtol=1e-12)
    # Three temperatures, f = [1, 0.2, 0]: weights sqrt(0.8), sqrt(0.2) -> cumulative
    # [0, 2/3, 1]; the middle temperature goes to 1 + (0.5 / (2/3)) * (2 - 1) = 1.75.
    new, _ = feedback_ladder([1.0, 2.0, 3.0], [10, 2, 0], [0, 8, 10])
    np.testing.assert_allclose(new, [1.0, 1.75, 3.0], rtol=1e-12)
    # A temperature never visited by a labelled replica: no update.
    new, f = feedback_ladder(t, [5, 0, 1, 0], [0, 0, 1, 5])
    np.testing.assert_array_equal(new, t)
    assert np.isnan(f[1])
    # Damped step: half way in ln T, sqrt(2 * 1.75).
    new, _ = feedback_ladder([1.0, 2.0, 3.0], [10, 2, 0], [0, 8, 10], damping=0.5)
    np.testing.assert_allclose(new, [1.0, np.sqrt(3.5), 3.0], rtol=1e-12)
    # The driver's update refuses a histogram taken before replicas crossed the ladder.
    new, _, reason = feedback_update([1.0, 2.0, 3.0], [10, 2, 0], [0, 8, 10], passages=2)
    np.testing.assert_array_equal(new, [1.0, 2.0, 3.0])
    assert "only 2 one-way passages" in reason
    new, _, reason = feedback_update([1.0, 2.0, 3.0], [10, 2, 0], [0, 8, 10], passages=3)
    assert reason is None and new[1] == pytest.approx(np.sqrt(3.5))


def test_feedback_shortens_round_trips_on_a_bad_ladder():
    """Toy replicas (30 levels) on a ladder with one big gap: four damped feedback stages
    must raise the worst pair acceptance and shorten the round-trip time. Measured with the
    same seed and number of rounds before and after (deterministic)."""

    def run(temps, stages, rounds=8000, seed=1):
        m = len(temps)
        reps = {r: LevelReplica(100 * seed + r, levels=30) for r in range(m)}
        eng = ReplicaExchange(reps, m, temps, 1.0, None, SerialComm(),
                              np.random.default_rng(seed))
        eng.steps_from_replicas()
        for _ in range(stages):
            for _ in range(rounds):
                eng.exchange(eng.sample(2))
            new, _, reason = feedback_update(eng.ladder, eng.stats.n_up, eng.stats.n_down,
                                             int(eng.stats.stage_passages[0]))
            assert reason is None
            eng.set_ladder(new)
            eng.stats.reset_histogram()
        eng.stats.reset()
        for _ in range(rounds):
            eng.exchange(eng.sample(2))
        return eng

    bad = [0.25, 0.3, 0.35, 0.4, 8.0, 10.0]
    before, after = run(bad, 0), run(bad, 4)
    assert after.ladder[0] == 0.25 and after.ladder[-1] == 10.0
    assert np.all(np.diff(after.ladder) > 0)
    assert after.stats.acceptance().min() > 2 * before.stats.acceptance().min()
    assert (after.stats.round_trip_time_from_rate()
            < 0.8 * before.stats.round_trip_time_from_rate())


# ------------------------------------------------------------------------ statistics
def test_round_trips_on_a_hand_made_walk():
    # labels[g] = slot of replicas (0, 1, 2) during round g; slot 0 = T_min, 2 = T_max.
    labels = [[0, 2, 1], [1, 2, 0], [2, 1, 0], [1, 2, 0], [0, 2, 1],
              [1, 0, 2], [2, 0, 1], [2, 1, 0], [1, 2, 0], [0, 1, 2]]
    st = ExchangeStatistics(3)
    for g, row in enumerate(labels):
        st.record_walk(np.array(row), g)
    # Replica 0: bottom at 0, top at 2, bottom at 4 (trip of 4), top at 6, bottom at 9 (5).
    # Replica 1 starts at the top: its first arrival at the bottom (round 5) ends no trip.
    # Replica 2: bottom at 1, top at 5, bottom at 7 (trip of 6).
    assert st.trips.tolist() == [2, 0, 1]
    assert st.trip_rounds.tolist() == [9, 0, 6]
    assert st.mean_round_trip() == 5.0
    assert st.direction.tolist() == [1, -1, -1]
    # Up-going replicas are never counted at T_max, down-going ones never at T_min.
    assert st.n_up[2] == 0 and st.n_down[0] == 0
    assert st.n_up.sum() + st.n_down.sum() == 3 * 10 - 1  # replica 2 unlabelled at g = 0
    # One-way passages: replica 0 four, replica 1 two, replica 2 three; rate estimate
    # 2 M rounds / passages = 2 * 3 * 10 / 9.
    assert st.passages.tolist() == [4, 2, 3]
    assert st.round_trip_time_from_rate() == pytest.approx(60 / 9)
    st.reset()
    assert st.trips.sum() == 0 and np.all(st.trip_start == -1) and st.passages.sum() == 0
    assert st.direction.tolist() == [1, -1, -1]
    # Replica 0 was up-going at the reset: its trip starts at its first bottom visit seen
    # after it (round 10) and is counted when it returns (round 12).
    for g, row in ((10, [0, 1, 2]), (11, [2, 0, 1]), (12, [0, 2, 1])):
        st.record_walk(np.array(row), g)
    assert st.trips.tolist() == [1, 0, 0] and st.trip_rounds.tolist() == [2, 0, 0]
    assert st.passages.tolist() == [2, 2, 0]


def test_blocking_error_of_an_ar1_series():
    """AR(1) with coefficient phi: the exact standard error of the mean is
    sigma/sqrt(n) * sqrt((1 + phi) / (1 - phi)) for n >> correlation time."""
    rng = np.random.default_rng(5)
    phi, n = 0.9, 2**17
    x = np.empty(n)
    x[0] = rng.normal() / np.sqrt(1 - phi**2)
    noise = rng.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    sigma = 1 / np.sqrt(1 - phi**2)
    exact = sigma / np.sqrt(n) * np.sqrt((1 + phi) / (1 - phi))
    _, se = blocking_error(x)
    assert se == pytest.approx(exact, rel=0.25)
    assert np.isnan(blocking_error(x[:10])[1])


# ------------------------------------------------------- engine on exact toy replicas
class LevelReplica:
    """Replica with an exactly known Boltzmann distribution: an energy level k = 0..L-1
    (U = k). One "sweep" is one Metropolis step k -> k +- 1. Intra-replica mixing is slow
    on purpose, so the per-temperature histograms depend on the exchange rule being right.
    It has the replica protocol of :mod:`swapmc.tempering.engine`."""

    def __init__(self, seed, levels=5):
        self.rng = np.random.default_rng(seed)
        self.k, self.v = 0, 1
        self.levels = levels
        self.temperature, self.delta, self.lnv_step = 1.0, 0.1, 0.01
        self.counts = np.zeros((3, 2), np.int64)

    @property
    def energy(self):
        return float(self.k)

    @property
    def volume(self):
        return float(self.v)

    def _metropolis(self, new, ok, dh):
        return ok and self.rng.random() < np.exp(-dh / self.temperature)

    def sweep(self, n):
        for _ in range(n):
            step = 1 if self.rng.random() < 0.5 else -1
            if self._metropolis(self.k + step, 0 <= self.k + step < self.levels, step):
                self.k += step

    def tune(self, block_counts):
        pass  # the toy has no step size to adapt


class LevelVolumeReplica(LevelReplica):
    """Isobaric toy: also a volume level v = 1..V, weight exp(-beta (k + P v)); each step
    moves k or v with probability 1/2."""

    def __init__(self, seed, pressure, volumes=3, levels=5):
        super().__init__(seed, levels)
        self.pressure, self.volumes = pressure, volumes

    def sweep(self, n):
        for _ in range(n):
            step = 1 if self.rng.random() < 0.5 else -1
            if self.rng.random() < 0.5:
                if self._metropolis(self.v + step, 1 <= self.v + step <= self.volumes,
                                    self.pressure * step):
                    self.v += step
            elif self._metropolis(self.k + step, 0 <= self.k + step < self.levels, step):
                self.k += step


def _toy_run(temps, rounds, seed, pressure=None, check_trace=True):
    m = len(temps)
    if pressure is None:
        replicas = {r: LevelReplica(1000 * seed + r) for r in range(m)}
    else:
        replicas = {r: LevelVolumeReplica(1000 * seed + r, pressure) for r in range(m)}
    eng = ReplicaExchange(replicas, m, temps, 1.0, pressure, SerialComm(),
                          np.random.default_rng(seed))
    eng.steps_from_replicas()
    u = np.empty((rounds, m))
    v = np.empty((rounds, m))
    perms = np.empty((rounds + 1, m), np.int64)
    for g in range(rounds):
        s = eng.sample(1)
        perms[g] = s.perm
        u[g], v[g] = s.energies[s.perm], s.volumes[s.perm]
        for r, rep in replicas.items():  # each replica runs at its slot's temperature
            assert rep.temperature == temps[s.labels[r]]
        eng.exchange(s)
    perms[rounds] = eng.perm
    return u, v, perms, eng


def _check_label_trace(perms, first_round=0):
    """Labels are a permutation after every round, and consecutive permutations differ only
    by transpositions of pairs (t, t+1) with t of the round's parity."""
    m = perms.shape[1]
    for g in range(len(perms)):
        assert sorted(perms[g].tolist()) == list(range(m))
    changed_pairs = 0
    for g in range(len(perms) - 1):
        a, b = perms[g], perms[g + 1]
        allowed = set(pair_starts(m, first_round + g).tolist())
        t = 0
        while t < m:
            if a[t] == b[t]:
                t += 1
                continue
            assert t in allowed, f"round {g}: slots {t},{t + 1} exchanged out of turn"
            assert a[t] == b[t + 1] and a[t + 1] == b[t]
            changed_pairs += 1
            t += 2
    return changed_pairs


def _z_and_chi2(series, probs):
    """|z| of the mean and chi^2 p-value with the effective sample size (see module doc)."""
    values = np.arange(probs.size)
    mean, se = blocking_error(series)
    z = (mean - (values * probs).sum()) / se
    naive = series.std(ddof=1) / np.sqrt(series.size)
    n_eff = series.size * (naive / se) ** 2
    hist = np.bincount(series.astype(int), minlength=probs.size) / series.size
    last = np.flatnonzero(n_eff * probs >= 5)[-1]
    p_exp = np.append(probs[:last], probs[last:].sum())
    p_obs = np.append(hist[:last], hist[last:].sum())
    chi2 = n_eff * ((p_obs - p_exp) ** 2 / p_exp).sum()
    return abs(z), float(sps.chi2.sf(chi2, p_exp.size - 1))


TOY_T = (0.5, 1.0, 2.0, 4.0)


def _boltzmann(temp, n_levels=5):
    w = np.exp(-np.arange(n_levels) / temp)
    return w / w.sum()


def test_toy_replicas_sample_boltzmann_at_every_temperature():
    u, _, perms, eng = _toy_run(TOY_T, 20000, seed=3)
    assert _check_label_trace(perms) > 1000
    for t, temp in enumerate(TOY_T):
        z, p = _z_and_chi2(u[:, t], _boltzmann(temp))
        assert z < 4.5 and p > 1e-4, (temp, z, p)
    # Per-pair counters: every pair is tried every second round.
    assert eng.stats.proposed.tolist() == [10000, 10000, 10000]


def test_toy_boltzmann_check_detects_a_wrong_exchange_rule(monkeypatch):
    original = exchange_module.log_acceptance
    monkeypatch.setattr(exchange_module, "log_acceptance", lambda *a, **k: -original(*a, **k))
    u, _, _, _ = _toy_run(TOY_T, 20000, seed=3)
    worst = max(_z_and_chi2(u[:, t], _boltzmann(temp))[0] for t, temp in enumerate(TOY_T))
    assert worst > 10


def _npt_exact(temp, pressure, levels=5, volumes=3):
    k = np.arange(levels)[:, None]
    v = np.arange(1, volumes + 1)[None, :]
    w = np.exp(-(k + pressure * v) / temp)
    w /= w.sum()
    return w.sum(axis=1), w.sum(axis=0)


@pytest.mark.parametrize("drop_pv", [False, True])
def test_toy_isobaric_exchange(monkeypatch, drop_pv):
    """NPT rule: energy and volume marginals per temperature are exact; dropping the
    (beta_i - beta_j) P (V_i - V_j) term must be detected."""
    pressure = 1.5
    if drop_pv:
        original = exchange_module.log_acceptance
        monkeypatch.setattr(exchange_module, "log_acceptance",
                            lambda bi, bj, ui, uj, *rest: original(bi, bj, ui, uj))
    u, v, _, _ = _toy_run(TOY_T, 20000, seed=4, pressure=pressure)
    worst_z, worst_p = 0.0, 1.0
    for t, temp in enumerate(TOY_T):
        pu, pv = _npt_exact(temp, pressure)
        for series, probs in ((u[:, t], pu), (v[:, t] - 1, pv)):
            z, p = _z_and_chi2(series, probs)
            worst_z, worst_p = max(worst_z, z), min(worst_p, p)
    if drop_pv:
        assert worst_z > 10
    else:
        assert worst_z < 4.5 and worst_p > 1e-4


# --------------------------------------------------------------- config and preflight
def _overrides(directory, **tempering):
    t = {"t_min": 0.8, "t_max": 1.2, "n_replicas": 4, "exchange_every": 5,
         "equilibration_rounds": 10, "rounds": 20}
    t.update(tempering)
    return {
        "system": {"n": 200, "melt_sweeps": 20},
        "run": {"seed": 11, "energy_check_every": 10},
        "output": {"directory": str(directory), "checkpoint_every": 25,
                   "trajectory_every": 50, "progress": False},
        "tempering": t,
    }


def test_bad_configs_fail_before_any_work(tmp_path):
    def bad(match, **t):
        with pytest.raises(ConfigError, match=match):
            resolve("ka2-x10", _overrides(tmp_path / "never", **t))
        assert not (tmp_path / "never").exists()

    bad(r"strictly increasing", temperatures=[0.5, 0.6, 0.55], t_min=None, t_max=None,
        n_replicas=None)
    bad(r"not both", temperatures=[0.5, 0.6])
    bad(r"exchange_every must be an integer >= 1", exchange_every=0)
    bad(r"unknown key 'sweeps'", sweeps=3)
    bad(r"optimize_ladder: .*stage", optimize_ladder=True, equilibration_rounds=4)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('preset = "ka2-x10"\n[tempering]\ntemperatures = [0.5, 0.5]\n')
    with pytest.raises(ConfigError, match="strictly increasing"):
        resolve(str(cfg_file))
    cfg_file.write_text('preset = "ka2-x10"\n[system]\nn = -3\n')
    with pytest.raises(ConfigError, match=r"c.toml:3: \[system\] n must be"):
        resolve(str(cfg_file))

    class FourRanks(SerialComm):
        size = 4

        def allgather(self, obj):
            return [obj] * 4

    cfg = resolve("ka2-x10", _overrides(tmp_path / "never", n_replicas=3))
    with pytest.raises(CollectiveError, match="3 replicas cannot be spread over 4 MPI ranks"):
        TemperingRun(cfg, comm=FourRanks()).execute()
    assert not (tmp_path / "never").exists()
    assert [list(block_range(7, 3, k)) for k in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]


def test_toml_tempering_section_and_cli_ladder_overrides(tmp_path):
    f = tmp_path / "pt.toml"
    f.write_text('preset = "ka2-x10"\n[system]\nn = 200\n[tempering]\n'
                 "temperatures = [0.6, 0.7, 0.9]\nrounds = 7\n")
    cfg = resolve(str(f))
    assert cfg["tempering"]["temperatures"] == [0.6, 0.7, 0.9] and cfg["system"]["n"] == 200
    assert cfg["tempering"]["rounds"] == 7 and cfg["preset"] == "ka2-x10"
    # A geometric override starts from the file's endpoints and replaces its list.
    cfg = resolve(str(f), {"tempering": {"n_replicas": 5}})
    t = cfg["tempering"]
    assert t["temperatures"] is None and (t["t_min"], t["t_max"], t["n_replicas"]) == (0.6,
                                                                                       0.9, 5)
    cfg = resolve("ka2-x10")
    assert cfg["tempering"]["t_min"] == 0.6 and cfg["tempering"]["n_replicas"] == 8


def test_agree_makes_all_ranks_fail_together():
    comm = SerialComm()
    assert agree(comm, lambda: 3) == 3
    with pytest.raises(CollectiveError, match="boom"):
        agree(comm, lambda: (_ for _ in ()).throw(ValueError("boom")))


# ------------------------------------------------------------- runs, restart, outputs
LOGS = ("labels.csv", "energy_by_temperature.csv", "energy_by_replica.csv", "ladder.csv",
        "pairs.csv", "final/T00.xyz", "final/T03.xyz", "final/T01.data",
        "trajectories/T00.xyz", "trajectories/T03.xyz")


def _read(directory, name):
    with open(os.path.join(directory, name), "rb") as fh:
        return fh.read()


def _same_outputs(a, b):
    for name in LOGS:
        assert _read(a, name) == _read(b, name), name
    sa = json.loads(_read(a, "summary.json"))
    sb = json.loads(_read(b, "summary.json"))
    for s in (sa, sb):
        s.pop("run")
        s.pop("files")
    assert sa == sb


def _run(directory, **tempering):
    return TemperingRun(resolve("ka2-x10", _overrides(directory, **tempering)),
                        log=lambda *a: None).execute()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """Uninterrupted serial run (with ladder feedback), reused by several tests."""
    d = tmp_path_factory.mktemp("pt") / "full"
    result = _run(d, optimize_ladder=True, equilibration_rounds=16)
    return d, result


def test_serial_run_outputs(reference_run):
    d, result = reference_run
    s = result.summary
    assert s["n_replicas"] == 4 and s["rounds_done"] == 36 and s["ensemble"] == "NVT"
    assert [p["proposed"] for p in s["pairs"]] == [10, 10, 10]
    labels = read_table(d / "labels.csv")
    rows = np.array([[int(labels[f"r{r}"][g]) for r in range(4)]
                     for g in range(len(labels["round"]))])
    perms = np.argsort(rows, axis=1)  # slot -> replica
    assert len(rows) == 36
    _check_label_trace(perms)
    # Demultiplexing: the energy at slot t is the energy of the replica whose label is t.
    e_t = read_table(d / "energy_by_temperature.csv")
    e_r = read_table(d / "energy_by_replica.csv")
    for g in (0, 17, 35):
        for r in range(4):
            assert e_t[f"T{rows[g, r]}"][g] == e_r[f"r{r}"][g]
    ladder = read_table(d / "ladder.csv")
    assert ladder["event"][0] == "initial" and ladder["event"][-1] == "frozen"
    assert sum(e.startswith("feedback") for e in ladder["event"]) == 4
    assert s["ladder"][0] == 0.8 and s["ladder"][-1] == 1.2
    frames = (d / "trajectories" / "T00.xyz").read_text().count("Lattice=")
    assert frames == 2  # production rounds 16..35 end at sweeps 85..180: 100 and 150 crossed
    from swapmc.io import read_extxyz

    final = read_extxyz(d / "final" / "T00.xyz")
    assert final.n == 200 and final.info["temperature"] == s["ladder"][0]


def test_extend_equals_uninterrupted(tmp_path, reference_run):
    ref, _ = reference_run
    part = tmp_path / "part"
    first = _run(part, optimize_ladder=True, equilibration_rounds=16, rounds=7)
    assert not first.resumed and first.summary["rounds_done"] == 23
    resumed = _run(part, optimize_ladder=True, equilibration_rounds=16)
    assert resumed.resumed
    _same_outputs(ref, part)


def test_mismatched_restart_is_refused(tmp_path):
    d = tmp_path / "r"
    _run(d, rounds=2, equilibration_rounds=2)
    with pytest.raises(CollectiveError, match=r"tempering.t_max: checkpoint has 1.2, this "
                                              r"run has 1.3"):
        _run(d, rounds=2, equilibration_rounds=2, t_max=1.3)
    with pytest.raises(CollectiveError, match="rounds can only grow"):
        _run(d, rounds=1, equilibration_rounds=2)


def _cli_args(directory, rounds=20, seed=11, extra=()):
    return ["ka2-x10", "-N", "200", "--t-min", "0.8", "--t-max", "1.2", "-M", "4", "-K", "5",
            "--equilibration-rounds", "16", "--optimize-ladder", "-r", str(rounds),
            "--seed", str(seed), "-o", str(directory), "--no-progress",
            "--trajectory-every", "50", "--checkpoint-every", "25", *extra]


def _write_cfg(path, directory, rounds, checkpoint_every=25):
    path.write_text(
        'preset = "ka2-x10"\n[system]\nn = 200\nmelt_sweeps = 20\n'
        "[run]\nseed = 11\nenergy_check_every = 10\n"
        f'[output]\ndirectory = "{directory}"\ncheckpoint_every = {checkpoint_every}\n'
        "trajectory_every = 50\nprogress = false\n"
        "[tempering]\nt_min = 0.8\nt_max = 1.2\nn_replicas = 4\nexchange_every = 5\n"
        f"equilibration_rounds = 16\nrounds = {rounds}\noptimize_ladder = true\n")
    return str(path)


def test_sigkill_then_rerun_is_identical(tmp_path):
    """A serial run killed with SIGKILL after its first checkpoints and rerun with the same
    command ends bit-identical to an uninterrupted run."""
    rounds = 100
    ref = tmp_path / "ref"
    TemperingRun(resolve(_write_cfg(tmp_path / "ref.toml", ref, rounds, 50)),
                 log=lambda *a: None).execute()
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "swapmc.tempering",
           _write_cfg(tmp_path / "killed.toml", killed, rounds, 50), "--mpi", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=subprocess_env())
    manifest = killed / "checkpoints" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["round"] >= 30:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail("run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert "(resumed)" in out.stdout
    _same_outputs(ref, killed)
    leftovers = os.listdir(killed / "checkpoints")
    # The final round and the one before it (the fallback if the final one is damaged).
    assert sorted(leftovers) == ["manifest.json", "round_00000110", "round_00000116"], leftovers


def test_cli_serial_and_plot(tmp_path, capsys):
    """The subcommand as the swapmc CLI registers it (add_parser + args.func), then the
    stand-alone entry point refusing a mismatched restart."""
    import argparse

    from swapmc.tempering.cli import add_parser, main

    parser = argparse.ArgumentParser(prog="swapmc")
    add_parser(parser.add_subparsers(dest="command", required=True))
    d = tmp_path / "cli"
    args = parser.parse_args(["temper", *_cli_args(d, rounds=4, extra=["--mpi", "off",
                                                                        "--plot"])])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "4 replicas on 1 rank(s) [serial]" in out and "round trips" in out
    assert (d / "pt_acceptance.png").stat().st_size > 0 and (d / "pt_walks.png").exists()
    assert main(_cli_args(d, rounds=4, extra=["--mpi", "off", "--t-max", "1.3"])) == 1
    assert "belongs to a different run" in capsys.readouterr().err


def test_import_does_not_load_mpi():
    code = ("import sys, swapmc, swapmc.tempering, swapmc.tempering.cli; "
            "print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------------------ MPI
def _need_mpi():
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")


def _mpirun(n, args, timeout=120):
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "swapmc.tempering", *args]
    t0 = time.time()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=subprocess_env())
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"mpiexec -n {n} hung for {timeout} s: {err}")
    return out, time.time() - t0


@pytest.mark.mpi
def test_label_trace_identical_serial_mpi2_mpi4(tmp_path, reference_run):
    """Same seed: serial, mpiexec -n 2 and -n 4 (oversubscribed) give byte-identical label
    traces, energies, ladders and configurations; a run started serially and finished on 4
    ranks does too."""
    _need_mpi()
    ref, _ = reference_run
    for n in (2, 4):
        d = tmp_path / f"mpi{n}"
        out, _ = _mpirun(n, [_write_cfg(tmp_path / f"m{n}.toml", d, 20)])
        assert out.returncode == 0, out.stderr
        assert f"4 replicas on {n} rank(s) [MPI" in out.stdout
        assert out.stdout.count(" temper: ka2-x10") == 1  # rank 0 alone reports
        _same_outputs(ref, d)
    mixed = tmp_path / "mixed"
    TemperingRun(resolve(_write_cfg(tmp_path / "mx.toml", mixed, 9)),
                 log=lambda *a: None).execute()
    out, _ = _mpirun(4, [_write_cfg(tmp_path / "mx.toml", mixed, 20)])
    assert out.returncode == 0, out.stderr
    assert "(resumed)" in out.stdout
    _same_outputs(ref, mixed)


@pytest.mark.mpi
def test_damaged_replica_on_one_rank(tmp_path):
    """Rank 1's replica file is damaged in the latest round: both ranks fall back to the
    previous round together (one warning). Damaged in both rounds: every rank stops
    promptly with one message naming the file, instead of leaving rank 0 blocked."""
    _need_mpi()
    d = tmp_path / "f"
    cfg = _write_cfg(tmp_path / "f.toml", d, 2)
    TemperingRun(resolve(cfg), log=lambda *a: None).execute()
    manifest = json.loads((d / "checkpoints" / "manifest.json").read_text())
    victim = d / "checkpoints" / manifest["directory"] / "replica_002.npz"  # rank 1 of 2
    victim.write_bytes(b"PK\x03\x04 truncated by a full disk")
    out, elapsed = _mpirun(2, [cfg], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("warning: ") == 1 and "replica_002.npz" in out.stderr
    manifest = json.loads((d / "checkpoints" / "manifest.json").read_text())
    for name in (manifest["directory"], manifest["previous"]):
        victim = d / "checkpoints" / name / "replica_002.npz"
        victim.write_bytes(b"PK\x03\x04 truncated by a full disk")
    out, elapsed = _mpirun(2, [cfg], timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.count("replica_002.npz: truncated or corrupt") == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert elapsed < 45


@pytest.mark.mpi
def test_more_ranks_than_replicas_is_refused_once(tmp_path):
    _need_mpi()
    out, _ = _mpirun(4, _cli_args(tmp_path / "x", extra=["-M", "3"]), timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("3 replicas cannot be spread over 4 MPI ranks") == 1, out.stderr
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------- physics
@pytest.mark.physics
def test_pt_energy_distributions_match_single_temperature_runs(tmp_path):
    """KA2, N = 200: each temperature's U/N from PT (4 replicas, 0.8 .. 1.2) agrees with an
    independent single-temperature run of the same length (tests in the module doc)."""
    from swapmc.run import run

    rounds, k = 2000, 10
    pt_dir = tmp_path / "pt"
    over = _overrides(pt_dir, rounds=rounds, exchange_every=k, equilibration_rounds=100)
    over["system"]["melt_sweeps"] = 200
    over["output"].update(trajectory_every=0, checkpoint_every=0)
    result = TemperingRun(resolve("ka2-x10", over), log=lambda *a: None).execute()
    ladder = result.summary["ladder"]
    table = read_table(pt_dir / "energy_by_temperature.csv")
    prod = np.array(table["phase"]) == "production"
    for t in (0, 3):
        single = run("ka2-x10", {
            "state": {"temperature": ladder[t]},
            "system": {"n": 200, "melt_sweeps": 200},
            "run": {"seed": 100 + t, "equilibration_sweeps": 1000,
                    "production_sweeps": rounds * k},
            "output": {"directory": str(tmp_path / f"single{t}"), "thermo_every": k,
                       "checkpoint_every": 0, "progress": False},
        }, log=lambda *a: None)
        thermo = read_table(os.path.join(single.directory, "thermo.csv"))
        sel = np.array(thermo["phase"]) == "production"
        a = np.array(table[f"T{t}"], float)[prod]
        b = np.array(thermo["energy_per_particle"], float)[sel]
        (ma, sa), (mb, sb) = blocking_error(a), blocking_error(b)
        z = (ma - mb) / np.hypot(sa, sb)
        assert abs(z) < 4, (ladder[t], ma, sa, mb, sb)
        p, n_eff = _ks_effective(a, sa, b, sb)
        assert p > 1e-3, (ladder[t], p, n_eff)
        # The same comparison against the neighbouring temperature's run must fail.
        if t == 0:
            wrong = np.array(table["T1"], float)[prod]
            assert _ks_effective(wrong, blocking_error(wrong)[1], b, sb)[0] < 1e-6


def _ks_effective(a, se_a, b, se_b):
    """Two-sample KS on full correlated series: D from all samples, p-value from the
    asymptotic Kolmogorov distribution with effective sizes n_eff = n (naive SE / blocking
    SE)^2 (= n / 2 tau_int). Thinning instead discards most of the data and its p-value
    swings with the choice of subsample (we saw 4e-4 to 0.2 on one pair of series)."""
    n_eff = [x.size * (x.std(ddof=1) / np.sqrt(x.size) / se) ** 2
             for x, se in ((a, se_a), (b, se_b))]
    d = sps.ks_2samp(a, b).statistic
    en = np.sqrt(n_eff[0] * n_eff[1] / (n_eff[0] + n_eff[1]))
    return float(sps.kstwobign.sf(d * en)), n_eff
