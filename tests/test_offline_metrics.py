"""The offline metrics and the behaviour-cloning loss, each against a value worked out by hand;
the chunked metric pass against the same equations on the whole batch; the held-out split."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from saclab.config import preset
from saclab.core import offline_metrics as om
from saclab.core.agent import Learner, init_state
from saclab.core.bc import bc_loss
from saclab.core.types import EnvSpec
from saclab.data.dataset import Dataset
from saclab.runs import held_out

# Two critics, two states, two actions.  Q1 = [[1, 2], [0, 4]], Q2 = [[3, 0], [2, 2]].
Q = jnp.array([[[1.0, 2.0], [0.0, 4.0]], [[3.0, 0.0], [2.0, 2.0]]])
ACTIONS = jnp.array([0, 1])
PI = jnp.array([[0.25, 0.75], [0.6, 0.4]])
LOG_PI = jnp.log(PI)


def test_td_abs_error():
    # y = [2, 1]: state 0 |1-2|, |3-2| -> 1; state 1 (action 1) |4-1|, |2-1| -> 2
    np.testing.assert_allclose(om.td_abs_error(Q, ACTIONS, jnp.array([2.0, 1.0])), [1.0, 2.0])


def test_policy_value():
    # min Q = [[1, 0], [0, 2]]: V = [0.25*1 + 0.75*0, 0.6*0 + 0.4*2]
    np.testing.assert_allclose(om.policy_value(LOG_PI, Q), [0.25, 0.8], rtol=1e-6)


def test_action_match_entropy_and_nll():
    np.testing.assert_array_equal(om.action_match(LOG_PI, jnp.array([1, 1])), [1.0, 0.0])  # greedy = [1, 0]
    expected_entropy = [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))]
    np.testing.assert_allclose(om.policy_entropy(LOG_PI), expected_entropy, rtol=1e-6)
    np.testing.assert_allclose(om.action_nll(LOG_PI, ACTIONS), [-math.log(0.25), -math.log(0.4)], rtol=1e-6)


def test_cql_gap():
    # state 0, action 0: Q1 log(e^1 + e^2) - 1, Q2 log(e^3 + e^0) - 3; state 1, action 1: Q1 log(1 + e^4) - 4,
    # Q2 log(2 e^2) - 2 = log 2
    s0 = (math.log(math.e + math.e**2) - 1 + math.log(math.e**3 + 1) - 3) / 2
    s1 = (math.log(1 + math.e**4) - 4 + math.log(2)) / 2
    np.testing.assert_allclose(om.cql_gap(Q, ACTIONS), [s0, s1], rtol=1e-6)


def test_weighted_mean_and_bc_loss():
    assert float(om.weighted_mean(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 1.0]))) == 2.0
    # -mean(log 0.25, log 0.4)
    assert float(bc_loss(LOG_PI, ACTIONS)) == pytest.approx(-(math.log(0.25) + math.log(0.4)) / 2, rel=1e-6)


def tiny_dataset(n=10, episode=4, obs_dim=3, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    starts = np.arange(n) % episode == 0
    ends = np.append(starts[1:], True)
    return Dataset(obs[:-1], rng.integers(0, 2, n), rng.normal(size=n), obs[1:], ends & (rng.random(n) < 0.5),
                   np.zeros(n, bool), starts, metadata={"num_actions": 2})


def test_chunked_metrics_equal_the_equations_on_the_whole_batch(monkeypatch):
    monkeypatch.setattr(held_out, "CHUNK", 4)  # 10 states: 3 chunks, the last padded with 2 rows of weight 0
    config = preset("test").replace(env="")
    data = tiny_dataset()
    learner = Learner.from_config(config, EnvSpec("", 3, 2))
    state = init_state(learner, jax.random.PRNGKey(3))
    state = state.replace(log_alpha=jnp.log(0.5))
    measured = held_out.metric_data(data, config, "train")
    assert measured.batch.obs.shape == (3, 4, 3)
    got = om.offline_metrics(learner, state, measured.batch, measured.weights, measured.starts, True)

    batch = data.transitions.to_batch()
    log_pi = jax.nn.log_softmax(learner.actor.apply({"params": state.actor_params}, batch.obs))
    q = learner.critic.apply({"params": state.critic_params}, batch.obs)
    next_log_pi = jax.nn.log_softmax(learner.actor.apply({"params": state.actor_params}, batch.next_obs))
    next_q = learner.critic.apply({"params": state.critic_target_params}, batch.next_obs)
    twins = jnp.mean(next_q, axis=0) if config.critic_target_reduction == "mean" else jnp.min(next_q, axis=0)
    next_v = jnp.sum(jnp.exp(next_log_pi) * twins, axis=-1)  # no entropy backup (default)
    target = batch.rewards + config.gamma * (1 - batch.terminated) * next_v
    expected = {"td_error": om.td_abs_error(q, batch.actions, target).mean(),
                "initial_value": om.policy_value(log_pi, q)[data.episode_starts].mean(),
                "cql_gap": om.cql_gap(q, batch.actions).mean(),
                "action_agreement": om.action_match(log_pi, batch.actions).mean(),
                "policy_entropy": om.policy_entropy(log_pi).mean(),
                "action_nll": om.action_nll(log_pi, batch.actions).mean()}
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert float(got[name]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
    policy_only = om.offline_metrics(learner, state, measured.batch, measured.weights, measured.starts, False)
    assert set(policy_only) == set(om.POLICY_METRICS)


def test_split_is_by_episode_and_seeded():
    data = tiny_dataset(n=40, episode=4)  # 10 episodes
    train, held = held_out.split_episodes(data, 0.2, seed=5)
    assert len(train) == 32 and len(held) == 8
    assert held.episode_starts.sum() == 2 and train.episode_starts.sum() == 8
    rows = {tuple(r) for r in held.observations.tolist()}
    assert not rows & {tuple(r) for r in train.observations.tolist()}
    again, _ = held_out.split_episodes(data, 0.2, seed=5)
    np.testing.assert_array_equal(again.observations, train.observations)
    others = [held_out.split_episodes(data, 0.2, seed=s)[0].observations for s in range(6, 10)]
    assert any(not np.array_equal(other, train.observations) for other in others)
    assert held_out.split_episodes(data, 0.0, seed=5) == (data, None)
    assert held_out.validation_fraction(preset("test").replace(env=""), 10) == held_out.AUTO_FRACTION
    assert held_out.validation_fraction(preset("test"), 10) == 0.0
