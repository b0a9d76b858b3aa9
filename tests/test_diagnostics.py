"""The runaway warnings fire on geometric growth of alpha and on Q above its bound, not on healthy runs."""

import math

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


def test_q_above_its_bound_or_not_finite():
    assert q_runaway(2100.0, 134.7)
    assert q_runaway(math.nan, 100.0)
    assert not q_runaway(60.0, 100.0)
