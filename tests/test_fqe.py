"""Fitted Q Evaluation: each equation by hand, and FQE's estimate on a tiny MDP whose value is known."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from saclab.core import fqe
from saclab.data.dataset import Dataset
from saclab.runs.fqe import (
    EvaluatedPolicy,
    FQEConfig,
    OPEResult,
    fqe_evaluate,
    percentile_ci,
    rank,
    regressions_needed,
    return_range,
)


def test_greedy_probs_are_one_hot_on_the_argmax():
    np.testing.assert_array_equal(fqe.greedy_probs(jnp.array([[0.1, 2.0, -1.0], [5.0, 0.0, 4.9]])),
                                  [[0, 1, 0], [1, 0, 0]])


def test_fqe_target_by_hand():
    # state 1: 1 + 0.9 * (0.25 * 4 + 0.75 * 8) = 1 + 0.9 * 7 = 7.3; state 2 terminated: its reward, 2
    probs = jnp.array([[0.25, 0.75], [0.0, 1.0]])
    q_next = jnp.array([[4.0, 8.0], [100.0, 100.0]])
    y = fqe.fqe_target(jnp.array([1.0, 2.0]), jnp.array([0.0, 1.0]), probs, q_next, 0.9)
    np.testing.assert_allclose(y, [7.3, 2.0], rtol=1e-6)


def test_clipped_target_by_hand():
    # rewards in [0, 1], gamma 0.9: returns lie in [0, 10]; 7.3 stays, 12 -> 10, -0.5 -> 0
    np.testing.assert_allclose(fqe.clipped_target(jnp.array([7.3, 12.0, -0.5]), 0.0, 10.0), [7.3, 10.0, 0.0])


def test_fqe_loss_by_hand():
    # Q(s1, a=1) = 2 vs y = 1: error 1; Q(s2, a=0) = 3 vs y = 0: error 3 -> (1 + 9) / 2 = 5
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    assert float(fqe.fqe_loss(q, jnp.array([1, 0]), jnp.array([1.0, 0.0]))) == pytest.approx(5.0)


def test_policy_state_value_by_hand():
    # 0.5 * 2 + 0.5 * 6 = 4
    assert float(fqe.policy_state_value(jnp.array([[0.5, 0.5]]), jnp.array([[2.0, 6.0]]))[0]) == pytest.approx(4.0)


def chain_dataset(episodes: int = 200, seed: int = 0) -> Dataset:
    """s0 -> s1 -> end, actions uniformly random: from s1 action 1 earns 1 and action 0 earns 0
    (terminal); from s0 either action earns 0.  The policy "always 1" has V(s0) = gamma."""
    rng = np.random.default_rng(seed)
    s0, s1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    obs, actions, rewards, next_obs, terminated, starts = [], [], [], [], [], []
    for _ in range(episodes):
        a0, a1 = rng.integers(2, size=2)
        obs += [s0, s1]
        actions += [a0, a1]
        rewards += [0.0, float(a1 == 1)]
        next_obs += [s1, s1]
        terminated += [False, True]
        starts += [True, False]
    n = len(actions)
    return Dataset(np.array(obs), np.array(actions), np.array(rewards), np.array(next_obs), np.array(terminated),
                   np.zeros(n, bool), np.array(starts), metadata={"num_actions": 2})


def test_fqe_recovers_the_value_of_a_known_policy_on_a_chain():
    dataset = chain_dataset()
    config = FQEConfig(min_updates=1500, batch_size=50, gamma=0.9, hidden_sizes=(16,), target_update_every=50,
                       learning_rate=3e-3)
    always_one = EvaluatedPolicy(lambda obs: np.ones(len(obs), np.int64), 2, 2, Path("chain"), "run")
    result = fqe_evaluate(always_one, dataset, config)
    assert result.estimate == pytest.approx(0.9, abs=0.03)  # V(s0) = 0 + 0.9 * 1
    assert result.data_mc_return == pytest.approx(0.9 * np.mean(dataset.rewards[1::2]), abs=1e-6)
    always_zero = EvaluatedPolicy(lambda obs: np.zeros(len(obs), np.int64), 2, 2, Path("chain"), "run")
    assert fqe_evaluate(always_zero, dataset, config).estimate == pytest.approx(0.0, abs=0.03)
    again = fqe_evaluate(always_one, dataset, config)
    assert again.estimate == result.estimate  # same seed, same estimate


def test_the_automatic_schedule_propagates_the_value_over_the_horizon():
    # ceil(ln 0.01 / ln 0.99) = ceil(458.2) = 459; ceil(ln 0.01 / ln 0.9) = ceil(43.7) = 44
    assert regressions_needed(0.99) == 459 and regressions_needed(0.9) == 44
    assert 0.99 ** 459 <= 0.01 < 0.99 ** 458
    assert FQEConfig(gamma=0.99).updates == 100 * 459 and FQEConfig(min_updates=7).updates == 7


def test_percentile_ci_brackets_the_mean_and_is_seeded():
    values = np.random.default_rng(1).normal(5.0, 1.0, 400)
    low, high = percentile_ci(values, 2000, seed=0)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 / 20, rel=0.2)  # ~ 2 * 1.96 sigma / sqrt(n)
    assert percentile_ci(values, 2000, seed=0) == (low, high)


def test_return_range_and_diverged_estimates_rank_last():
    # rewards in [-1, 2], gamma 0.9: every return lies in [-10, 20]
    assert return_range(np.array([-1.0, 2.0]), 0.9) == pytest.approx((-10.0, 20.0))
    assert return_range(np.array([1.0, 1.0]), 0.9) == pytest.approx((0.0, 10.0))  # an episode may end at once

    def result(name, estimate):
        return OPEResult(name, estimate, estimate, estimate, 1, 0.0, 1, 1, 0.0, 0.0, (0.0, 10.0))

    ranked = rank([result("good", 9.0), result("diverged", 1e5), result("poor", 2.0)])
    assert [r.policy for r in ranked] == ["good", "poor", "diverged"] and ranked[2].diverged
    edge = result("on the edge", 10.0)
    assert edge.at_bound and not edge.diverged and not result("good", 9.0).at_bound
