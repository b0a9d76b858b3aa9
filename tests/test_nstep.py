"""n-step returns: hand-worked sums, stops at episode ends, the newest transition and episode starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from saclab.config import preset
from saclab.core import losses
from saclab.core.agent import Learner, init_state, update
from saclab.core.types import EnvSpec, Transition
from saclab.data.buffer import ReplayBuffer
from saclab.data.dataset import Dataset
from saclab.data.nstep import n_step_transitions
from saclab.runs.epochs import device_batch

# Six steps, rewards 1..6: t2 terminates episode 1; t4 is truncated (episode 2); t5 begins episode 3.
REWARDS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
TERMINATIONS = [False, False, True, False, False, False]
TRUNCATIONS = [False, False, False, False, True, False]


def fill(buffer):
    for t in range(6):
        buffer.add(np.full(2, t, np.float32), t % 2, REWARDS[t], np.full(2, t + 1, np.float32),
                   TERMINATIONS[t], TRUNCATIONS[t])


def test_sums_by_hand_and_stops_at_episode_ends_and_the_newest():
    b = ReplayBuffer(obs_dim=2, capacity=8)
    fill(b)
    batch = b.gather(np.arange(6), n_step=3, gamma=0.5)
    # t0: 1 + .5*2 + .25*3 = 2.75 (3 steps, ends terminated at t2); t1: 2 + .5*3 = 3.5; t2: 3;
    # t3: 4 + .5*5 = 6.5 (t4's truncation ends the sum, still bootstraps); t4: 5; t5 is the newest: 6.
    np.testing.assert_allclose(batch.rewards, [2.75, 3.5, 3.0, 6.5, 5.0, 6.0])
    np.testing.assert_array_equal(batch.horizons, [3, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(batch.next_obs[:, 0], [3, 3, 3, 5, 5, 6])
    np.testing.assert_array_equal(batch.terminated, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(batch.obs[:, 0], np.arange(6))
    np.testing.assert_array_equal(batch.actions, np.arange(6) % 2)
    # the notebook's done: the truncation at t4 also stops bootstrapping
    np.testing.assert_array_equal(b.gather(np.arange(6), truncation_is_terminal=True, n_step=3, gamma=0.5).terminated,
                                  [1, 1, 1, 1, 1, 0])


def test_one_step_is_the_plain_transition():
    b = ReplayBuffer(obs_dim=2, capacity=8)
    fill(b)
    plain, n1 = b.gather(np.arange(6)), n_step_transitions(b.storage, np.arange(6), 5 - np.arange(6), 1, 0.5)
    np.testing.assert_array_equal(plain.rewards, n1[0].rewards)
    np.testing.assert_array_equal(n1[1], np.ones(6))


def test_a_wrapped_buffer_never_chains_the_newest_into_the_oldest():
    b = ReplayBuffer(obs_dim=2, capacity=4)
    fill(b)  # slots hold t4, t5, t2, t3; head = 2 (t2 is the oldest)
    batch = b.gather(np.array([3, 1, 0]), n_step=3, gamma=0.5)
    np.testing.assert_allclose(batch.rewards, [6.5, 6.0, 5.0])  # t3 -> t4 (truncated); t5 newest; t4
    np.testing.assert_array_equal(batch.horizons, [2, 1, 1])


def test_a_dataset_stops_at_episode_starts_without_end_flags():
    # An unfinished episode followed by another (two buffers joined): no flag ends t1, t2 begins anew.
    stream = Transition(np.arange(4, dtype=np.float32)[:, None], np.zeros(4, np.int32), np.ones(4, np.float32),
                        np.arange(1, 5, dtype=np.float32)[:, None], np.zeros(4, bool), np.zeros(4, bool))
    starts = np.array([True, False, True, False])
    out, horizons = n_step_transitions(stream, np.arange(4), 3 - np.arange(4), 3, 0.5, starts)
    np.testing.assert_allclose(out.rewards, [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_array_equal(horizons, [2, 1, 2, 1])
    dataset = Dataset.from_transitions(stream, starts)
    data = device_batch(dataset, n_step=3, gamma=0.5)
    np.testing.assert_allclose(np.asarray(data.rewards), [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_array_equal(np.asarray(data.next_obs)[:, 0], [2, 2, 4, 4])


def test_td_target_discounts_by_gamma_to_the_horizon():
    # y = r + gamma^m (1 - d) V: 1 + 0.9 * 10 = 10 and 1 + 0.81 * 10 = 9.1
    y = losses.td_target(jnp.array([1.0, 1.0]), jnp.array([0.0, 0.0]), jnp.array([10.0, 10.0]),
                         jnp.array([0.9, 0.81]))
    np.testing.assert_allclose(y, [10.0, 9.1], rtol=1e-6)


def test_the_update_bootstraps_with_gamma_to_each_samples_horizon():
    spec = EnvSpec("CartPole-v1", obs_dim=2, num_actions=2)
    learner = Learner.from_config(preset("test").replace(n_step=3, gamma=0.5, entropy_backup=False), spec)
    state = init_state(learner, jax.random.PRNGKey(0))
    b = ReplayBuffer(obs_dim=2, capacity=8)
    fill(b)
    batch = b.gather(np.arange(6), n_step=3, gamma=0.5)
    log_pi = jax.nn.log_softmax(learner.actor.apply({"params": state.actor_params}, batch.next_obs))
    q_next_twins = learner.critic.apply({"params": state.critic_target_params}, batch.next_obs)
    q_next = q_next_twins.mean(axis=0) if learner.critic_target_reduction == "mean" else q_next_twins.min(axis=0)
    value = np.sum(np.exp(np.asarray(log_pi)) * np.asarray(q_next), axis=-1)
    expected = batch.rewards + 0.5 ** batch.horizons * (1 - batch.terminated) * value
    _, metrics = update(learner, state, batch)
    assert float(metrics["td_target"]) == pytest.approx(float(np.mean(expected)), abs=1e-5)
