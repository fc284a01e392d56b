"""Parallel-tempering harvest: the round-trip time from label walks and the per-frame walk
certificate (the bottom replica visited the top since the previous harvested frame)."""

import numpy as np
import pytest

from swapmc.tempering.statistics import (
    ExchangeStatistics,
    last_visits,
    renewal_round_trip_time,
    round_trip_completions,
)


def _renewal_walks(rng, n_rounds, n_replicas, legs, top):
    """(n_rounds, M) walks: each replica alternates legs bottom -> top -> bottom whose
    durations (rounds) are drawn from ``legs``; slot 0 and ``top`` are visited for one round
    at the end of each leg, slot 1 in between (not a permutation; the estimators only
    look at each replica's own walk)."""
    out = np.ones((n_rounds, n_replicas), np.int64)
    for r in range(n_replicas):
        t, at_top = 0, bool(rng.integers(2))
        while t < n_rounds:
            t += int(rng.choice(legs))
            if t < n_rounds:
                out[t, r] = top if not at_top else 0
            at_top = not at_top
    return out


def test_round_trip_time_estimator_is_unbiased_where_the_completed_mean_is_not():
    """Legs of 5, 5, 5 or 185 rounds (mean 50: a round trip takes 100 rounds on average,
    with a long tail), 8 replicas and temperatures, production of 400 rounds after 4000
    rounds of history (so the walk is stationary when production starts), 400 runs.

    The mean of completed trips (the run's counters, ExchangeStatistics) leaves out the
    long trips still under way at the end: it comes out at 63, 37 % low. Rounds x
    replicas / completions is a ratio whose numerator is fixed and whose denominator n
    has mean M T / tau = 32 exactly (stationary renewal), so its only bias is the ratio's,
    E[1/n] E[n] - 1 ~ Var(n) / E[n]^2 = CV^2 / E[n] = 1.215 / 32 = 3.8 % (CV^2 of a trip:
    2 x 6075 / 100^2): reference 103.8. Measured 104.1 with an sd of 22 per run, so the
    mean of 400 has a standard error of 1.1; the test allows 3 standard errors."""
    rng = np.random.default_rng(11)
    m, top, history, production = 8, 7, 4000, 400
    new, old = [], []
    for _ in range(400):
        walks = _renewal_walks(rng, history + production, m, (5, 5, 5, 185), top)
        new.append(renewal_round_trip_time(walks, top + 1, start=history))
        stats = ExchangeStatistics(top + 1)
        for g in range(history):
            stats.record_walk(walks[g], g)
        stats.reset()  # what the driver does at the start of production
        for g in range(history, history + production):
            stats.record_walk(walks[g], g)
        old.append(stats.mean_round_trip())
    new, old = np.array(new), np.array(old)
    assert abs(new.mean() - 103.8) < 3 * new.std() / np.sqrt(new.size)
    assert np.nanmean(old) < 0.8 * 100.0


def test_completions_and_last_visits_on_a_hand_made_walk():
    # Three slots; replica 0: 0 2 1 0 1 2 2 0, replica 1 stays in the middle.
    walks = np.array([[0, 1], [2, 1], [1, 1], [0, 1], [1, 1], [2, 1], [2, 1], [0, 1]])
    assert round_trip_completions(walks, 3).tolist() == [2, 0]
    assert round_trip_completions(walks, 3, start=4).tolist() == [1, 0]
    # Completions in rows 4..7 (one) for 2 replicas over 4 rounds.
    assert renewal_round_trip_time(walks, 3, start=4) == pytest.approx(8.0)
    assert np.isnan(renewal_round_trip_time(walks[:, 1:], 3))
    lv = last_visits(walks, 2)
    assert lv[:, 0].tolist() == [-1, 1, 1, 1, 1, 5, 6, 6]
    assert lv[:, 1].tolist() == [-1] * 8


@pytest.fixture(scope="module")
def small_pt(tmp_path_factory):
    from swapmc.tempering.driver import temper

    pt = tmp_path_factory.mktemp("pt") / "run"
    temper("ka2-x10", {
        "system": {"n": 200, "melt_sweeps": 20}, "run": {"seed": 5},
        "tempering": {"t_min": 0.8, "t_max": 1.2, "n_replicas": 4, "exchange_every": 5,
                      "rounds": 70, "equilibration_rounds": 10},
        "output": {"directory": str(pt), "trajectory_every": 25, "progress": False}},
        log=lambda *a: None)
    return pt


def test_harvest_takes_only_frames_whose_bottom_replica_visited_the_top(small_pt, tmp_path):
    """The run's labels.csv is replaced by a hand-made walk: replicas sit at slots
    0 1 2 3 except for single rounds in which replicas 0 and 3 trade the ends. Frames are
    written at the rounds g with 5 (g + 1) a multiple of 25 in production (rounds 10-79;
    g = 14, 19, ..., 79: frame k at round 14 + 5 k). Replica 0 sits at the bottom in every
    frame and reaches the top only at rounds 5 (equilibration: does not count), 16 and 17
    (before frame 1), 40 (before frame 6) and 69 (frame 11: replica 0 is then at the top,
    and the bottom is held by replica 3, which sat at the top until round 68, after frame
    6, so it qualifies). Expected samples: frames 1, 6 and 11; the other 11 are skipped (frames 12
    and 13 too: replica 0, back at the bottom, was last at the top in frame 11's round)."""
    from swapmc.io import iter_extxyz
    from swapmc.library import Library, harvest_tempering
    from swapmc.tempering.output import read_table

    labels_path = small_pt / "labels.csv"
    table = read_table(str(labels_path))
    header = [line for line in labels_path.read_text().splitlines(True)
              if line.startswith("#")]
    rows = []
    for k, g in enumerate(table["round"]):
        slots = [3, 1, 2, 0] if int(g) in (5, 16, 17, 40, 69) else [0, 1, 2, 3]
        rows.append(",".join([g, table["sweep"][k], table["phase"][k]] + list(map(str, slots))))
    labels_path.write_text("".join(header) + "round,sweep,phase,r0,r1,r2,r3\n"
                           + "\n".join(rows) + "\n")
    frames = list(iter_extxyz(str(small_pt / "trajectories" / "T00.xyz"),
                              species_names=("A", "B", "C")))
    assert [int(f.info["round"]) for f in frames] == list(range(14, 80, 5))
    lines = []
    result = harvest_tempering(str(small_pt), str(tmp_path / "lib.sqlite"), stride=25,
                               min_round_trips=0, log=lines.append)
    with Library(result.path) as lib:
        samples = lib.query(build=result.build, verdict="all")
        assert sorted(s.meta["chain"] for s in samples) == [1, 6, 11]
        assert all(s.meta["production_sweeps"] == 70 * 5 for s in samples)
    assert "11 frame(s) skipped" in lines[-1]
    # Default stride: in production replica 0 completes round trips at rounds 18, 41 and 70
    # (back at the bottom after the top) and replica 3 at 16, 40 and 69: 6 trips in 70
    # rounds x 4 replicas, 46.7 rounds = 233.3 sweeps, i.e. a stride of 250 sweeps (the
    # next multiple of the frame interval). That leaves frames 1 and 11 (50 rounds apart);
    # frame 0 is skipped by the walk test.
    lines.clear()
    default = harvest_tempering(str(small_pt), str(tmp_path / "default.sqlite"),
                                min_round_trips=0, log=lines.append)
    assert "stride 250 sweeps, round-trip time 233.3 sweeps" in lines[-1]
    assert "1 frame(s) skipped" in lines[-1]
    with Library(default.path) as lib:
        assert sorted(s.meta["chain"] for s in lib.query(verdict="all")) == [1, 11]
