"""The runaway warnings fire on geometric growth of alpha and on Q above its bound, not on healthy runs."""

import math

import pytest

from saclab.runs.diagnostics import alpha_runaway, q_runaway


def test_geometric_alpha_growth_is_a_runaway():
    # the old default on CartPole: alpha 1 -> 4.6 (5.5k steps) -> 46 (13.5k) -> 323 (20k)
    steps = [2000, 5500, 9000, 13500, 17000, 20000]
    assert alpha_runaway(steps, [1.5, 4.6, 12.0, 46.0, 120.0, 323.0], initial_alpha=1.0)


def test_settled_or_decaying_alpha_is_not():
    steps = [5000, 10000, 15000, 20000, 25000]
    assert not alpha_runaway(steps, [0.9, 1.2, 1.3, 1.25, 1.28], initial_alpha=1.0)  # settled
    assert not alpha_runaway(steps, [0.5, 0.2, 0.1, 0.05, 0.03], initial_alpha=1.0)  # decaying
    # rising, but slowly: x1.2 over the last 10k steps
    assert not alpha_runaway(steps, [1.0, 1.05, 1.1, 1.15, 1.2], initial_alpha=1.0)
    # a learning run's climb from a small alpha stays below the initial alpha: not a runaway
    assert not alpha_runaway(steps, [0.03, 0.04, 0.1, 0.2, 0.48], initial_alpha=1.0)
    assert not alpha_runaway(steps[:2], [2.0, 8.0], initial_alpha=1.0)  # too few evaluations to judge
    # the default on LunarLander (seed 4): a doubling in the first 5k steps that settles near 2
    early = [367, 1017, 1763, 2346, 2870, 3598, 4244, 5054]
    climb = [0.98, 0.94, 1.1, 1.33, 1.54, 1.72, 1.88, 2.0]
    assert not alpha_runaway(early, climb, initial_alpha=1.0)
    # the same shape from a small initial alpha, four times over it: a runaway
    assert alpha_runaway(early, [a / 4 for a in climb], initial_alpha=0.1)


def test_q_above_its_bound_or_not_finite():
    assert q_runaway(2100.0, 134.7)
    assert q_runaway(math.nan, 100.0)
    assert not q_runaway(60.0, 100.0)


def test_watch_adds_the_columns_and_warns_once_per_kind():
    from saclab.runs.diagnostics import RunawayWatch

    watch = RunawayWatch(initial_alpha=1.0, num_actions=2, gamma=0.99, entropy_backup=True, run="r")
    assert watch.columns(100, {}, r_max=1.0)["alpha"] is None  # before the first update: blank
    messages = []
    for step, alpha, q in [(2000, 1.5, 50.0), (5500, 4.6, 90.0), (9000, 12.0, 300.0), (13500, 46.0, 900.0),
                           (17000, 120.0, 20000.0)]:  # the bound at alpha 120 is 8418
        row = {"step": step, **watch.columns(step, {"alpha": alpha, "entropy": 0.3, "q_data": q}, r_max=1.0)}
        assert row["q_bound"] == pytest.approx((1.0 + alpha * math.log(2)) / 0.01)
        messages += watch.warnings(row)
    assert len(messages) == 2  # alpha's runaway and Q above its bound, each once
    assert "alpha grows geometrically" in messages[0] or "alpha grows geometrically" in messages[1]
    # a resumed run that already warned does not warn again
    history = [{"step": 17000, "alpha": 120.0, "alpha_runaway": "True", "q_over_bound": "True"}]
    again = RunawayWatch(1.0, 2, 0.99, True, "r", history)
    row = {"step": 20000, **again.columns(20000, {"alpha": 300.0, "entropy": 0.3, "q_data": 5000.0}, 1.0)}
    assert again.warnings(row) == []
