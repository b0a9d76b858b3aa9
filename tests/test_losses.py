"""Each loss against a value worked out by hand (numbers in the comments)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from saclab.core import losses

LOG_P = jnp.log(jnp.array([[0.25, 0.75]]))  # one state, pi = (0.25, 0.75)
Q_NEXT = jnp.array([[[1.0, 2.0]], [[3.0, 0.0]]])  # (K=2, B=1, A=2): min over critics = (1, 0)

# Two states, two actions, two critics.
Q = jnp.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [2.0, 2.0]]])
ACTIONS = jnp.array([1, 0])


def test_soft_state_value():
    # 0.25 (1 - 0.5 log 0.25) + 0.75 (0 - 0.5 log 0.75) = 0.4232868 + 0.1078808
    v = losses.soft_state_value(LOG_P, Q_NEXT, jnp.asarray(0.5))
    assert v.shape == (1,)
    assert float(v[0]) == pytest.approx(0.5311676, abs=1e-6)


def test_state_value_without_entropy_backup_is_the_expected_q():
    # entropy_backup=False passes alpha = 0: V(s') = 0.25 * 1 + 0.75 * 0 = 0.25
    v = losses.soft_state_value(LOG_P, Q_NEXT, jnp.asarray(0.0))
    assert float(v[0]) == pytest.approx(0.25, abs=1e-7)


def test_state_value_with_the_double_average_target():
    # mean over critics = (2, 1): V = 0.25 * 2 + 0.75 * 1 = 1.25 (alpha 0); min gives 0.25 above
    np.testing.assert_allclose(losses.target_critic_value(Q_NEXT, "mean"), [[2.0, 1.0]])
    v = losses.soft_state_value(LOG_P, Q_NEXT, jnp.asarray(0.0), "mean")
    assert float(v[0]) == pytest.approx(1.25, abs=1e-7)
    with pytest.raises(ValueError, match="reduction"):
        losses.target_critic_value(Q_NEXT, "max")


def test_pessimistic_average_lies_between_the_average_and_the_min():
    # critics (1, 3) and (2, 0): mean (2, 1), population std (1, 1); k = 0.5 -> (1.5, 0.5)
    np.testing.assert_allclose(losses.target_critic_value(Q_NEXT, "mean", 0.5), [[1.5, 0.5]])
    # k = 1 is the min for two critics: (1, 0)
    np.testing.assert_allclose(losses.target_critic_value(Q_NEXT, "mean", 1.0), [[1.0, 0.0]])
    # V = 0.25 * 1.5 + 0.75 * 0.5 = 0.75 (alpha 0), between the mean's 1.25 and the min's 0.25
    v = losses.soft_state_value(LOG_P, Q_NEXT, jnp.asarray(0.0), "mean", 0.5)
    assert float(v[0]) == pytest.approx(0.75, abs=1e-7)


def test_td_target_bootstraps_unless_terminated():
    y = losses.td_target(jnp.array([1.0, 1.0]), jnp.array([0.0, 1.0]), jnp.array([10.0, 10.0]), 0.9)
    np.testing.assert_allclose(y, [10.0, 1.0])


def test_critic_loss_sums_each_critics_mse():
    # critic 1 takes (2, 3) vs target 1: errors (1, 2) -> 2.5; critic 2 takes (1, 2): (0, 1) -> 0.5
    target = jnp.array([1.0, 1.0])
    assert float(losses.critic_loss(Q, ACTIONS, target)) == pytest.approx(3.0)
    # importance weights (1, 0): critic 1 -> 1/2, critic 2 -> 0
    assert float(losses.critic_loss(Q, ACTIONS, target, jnp.array([1.0, 0.0]))) == pytest.approx(0.5)


def test_huber_critic_loss_is_linear_beyond_one():
    # errors as above: critic 1 (1, 2) -> (1, 2*2 - 1 = 3), mean 2; critic 2 (0, 1) -> (0, 1), mean 0.5
    target = jnp.array([1.0, 1.0])
    assert float(losses.critic_loss(Q, ACTIONS, target, kind="huber")) == pytest.approx(2.5)
    np.testing.assert_allclose(losses.td_penalty(jnp.array([-3.0, -0.5, 0.5, 3.0]), "huber"), [5.0, 0.25, 0.25, 5.0])
    # the gradient is 2e inside [-1, 1] (as the square's) and +-2 outside
    grad = jax.grad(lambda e: jnp.sum(losses.td_penalty(e, "huber")))(jnp.array([-3.0, 0.5, 3.0]))
    np.testing.assert_allclose(grad, [-2.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="critic loss"):
        losses.td_penalty(jnp.array([1.0]), "l1")


def test_q_clip_credits_at_most_clip_of_a_step_from_the_target_critic():
    # c = 0.5.  Sample 1: Q = 3 hits y = 3, but Q-bar = 1, so the clipped prediction is 1.5: (1.5 - 3)^2
    # = 2.25 wins, and its gradient is 0 (the clip saturates).  Sample 2: Q = 0.2 within c of Q-bar = 0:
    # both errors -0.8, 0.64, gradient 2 * -0.8.  Sample 3: Q = 2.5 moved away from y = 0 (Q-bar = 1.8,
    # clipped 2.3): the unclipped 2.5^2 = 6.25 wins, gradient 5.
    q, q_bar, y = jnp.array([3.0, 0.2, 2.5]), jnp.array([1.0, 0.0, 1.8]), jnp.array([3.0, 1.0, 0.0])
    np.testing.assert_allclose(losses.clipped_td_penalty(q, q_bar, y, 0.5), [2.25, 0.64, 6.25], rtol=1e-6)
    grad = jax.grad(lambda q: jnp.sum(losses.clipped_td_penalty(q, q_bar, y, 0.5)))(q)
    np.testing.assert_allclose(grad, [0.0, -1.6, 5.0], rtol=1e-6)
    # In critic_loss, per critic against its own target critic; the target critics get no gradient.
    # Critic 1 takes (2, 3) against Q-bar (1, 3), y = (1, 1): sample 1 clipped 1.5 -> 0.25 < 1, so 1;
    # sample 2: 4.  Critic 2 takes (1, 2) against Q-bar (1, 2): the TD errors (0, 1).  (1+4)/2 + 1/2 = 3.
    target, q_target = jnp.array([1.0, 1.0]), Q.at[0, 0, 1].set(1.0)
    assert float(losses.critic_loss(Q, ACTIONS, target, q_target=q_target, clip=0.5)) == pytest.approx(3.0)
    grad = jax.grad(lambda qt: losses.critic_loss(Q, ACTIONS, target, q_target=qt, clip=0.5))(q_target)
    np.testing.assert_array_equal(grad, 0.0)


def test_critic_loss_does_not_differentiate_the_target():
    grad = jax.grad(lambda y: losses.critic_loss(Q, ACTIONS, y))(jnp.array([1.0, 1.0]))
    np.testing.assert_array_equal(grad, 0.0)


def test_cql_penalty_hand_value():
    # lse(1,2)-2 = lse(0,1)-1 = log(1+e^-1) = 0.3132617; lse(3,4)-3 = 1.3132617; lse(2,2)-2 = log 2
    c = math.log1p(math.exp(-1.0))
    expected = (c + (1 + c)) / 2 + (c + math.log(2)) / 2
    assert expected == pytest.approx(1.3164661, abs=1e-6)
    assert float(losses.cql_penalty(Q, ACTIONS)) == pytest.approx(expected, abs=1e-6)


def test_cql_gradient_raises_data_action_and_lowers_others():
    grad = jax.grad(losses.cql_penalty)(Q, ACTIONS)  # descent direction is -grad
    for k in range(2):
        for b, a in enumerate(np.asarray(ACTIONS)):
            assert grad[k, b, a] < 0  # minimising raises Q of the dataset action
            assert grad[k, b, 1 - a] > 0  # and lowers the other action
    # d/dQ = (softmax(Q) - onehot(a)) / B, e.g. critic 1, state 0: softmax(1,2) = (0.2689, 0.7311)
    np.testing.assert_allclose(grad[0, 0], [0.2689414 / 2, (0.7310586 - 1) / 2], atol=1e-6)


def test_cql_penalty_vanishes_for_a_dominant_data_action():
    q = jnp.array([[[100.0, 0.0]], [[50.0, -50.0]]])
    assert float(losses.cql_penalty(q, jnp.array([0]))) == pytest.approx(0.0, abs=1e-6)


def test_actor_loss_hand_value_and_fixed_critics():
    # 0.25 (0.5 log 0.25 - 1) + 0.75 (0.5 log 0.75 - 0) = -0.4232868 - 0.1078808
    value = losses.actor_loss(LOG_P, Q_NEXT, jnp.asarray(0.5))
    assert float(value) == pytest.approx(-0.5311676, abs=1e-6)
    q_grad = jax.grad(lambda q: losses.actor_loss(LOG_P, q, jnp.asarray(0.5)))(Q_NEXT)
    np.testing.assert_array_equal(q_grad, 0.0)


def test_actor_gradient_moves_probability_to_the_better_action():
    def loss(logits):
        return losses.actor_loss(jax.nn.log_softmax(logits), Q_NEXT, jnp.asarray(0.01))

    g = jax.grad(loss)(jnp.zeros((1, 2)))
    assert g[0, 0] < 0 < g[0, 1]  # min-Q prefers action 0 (1 > 0)


def test_temperature_loss_hand_value_and_direction():
    # sum pi log pi = 0.25 log 0.25 + 0.75 log 0.75 = -0.5623351; target 0.5
    # loss = -log 2 * (-0.5623351 + 0.5) = 0.0432073
    log_alpha = jnp.asarray(math.log(2.0))
    assert float(losses.temperature_loss(log_alpha, LOG_P, 0.5)) == pytest.approx(0.0432073, abs=1e-6)
    # entropy 0.562 above the target 0.5: the gradient step lowers alpha
    grad = jax.grad(losses.temperature_loss)(log_alpha, LOG_P, 0.5)
    assert float(grad) == pytest.approx(0.0623351, abs=1e-6)
    # entropy below the target: alpha grows
    assert float(jax.grad(losses.temperature_loss)(log_alpha, LOG_P, 0.65)) < 0


def test_temperature_loss_holds_the_policy_fixed():
    g = jax.grad(lambda lp: losses.temperature_loss(jnp.asarray(0.3), lp, 0.5))(LOG_P)
    np.testing.assert_array_equal(g, 0.0)


def test_entropy():
    assert float(losses.entropy(LOG_P)) == pytest.approx(0.5623351, abs=1e-6)


def test_soft_value_bound_hand_values():
    # (1 + 0.5 log 2) / 0.01 = (1 + 0.3465736) / 0.01 = 134.65736
    assert losses.soft_value_bound(1.0, 0.5, 2, 0.99) == pytest.approx(134.65736, abs=1e-4)
    assert losses.soft_value_bound(1.0, 0.5, 2, 0.99, entropy_backup=False) == pytest.approx(100.0)
    # Acrobot-like: every reward -1 and no entropy in the target: no return exceeds -1
    assert losses.soft_value_bound(-1.0, 3.0, 3, 0.99, entropy_backup=False) == pytest.approx(-1.0)


def test_notebook_temperature_loss_hand_value_and_sign():
    # mean over the two actions of (log pi + 0.5): ((log 0.25 + 0.5) + (log 0.75 + 0.5)) / 2
    # = (-0.8862944 + 0.2123179) / 2 = -0.3369882, so J = 0.3369882 * log_alpha
    log_alpha = jnp.asarray(0.2)
    assert float(losses.notebook_temperature_loss(log_alpha, LOG_P, 0.5)) == pytest.approx(0.0673976, abs=1e-6)
    grad = jax.grad(losses.notebook_temperature_loss)(log_alpha, LOG_P, 0.5)
    assert float(grad) == pytest.approx(0.3369882, abs=1e-6)  # > 0: gradient descent lowers alpha
    # a decided policy (H below the target) reverses the sign of the correct loss's gradient, not the notebook's
    decided = jnp.log(jnp.array([[0.02, 0.98]]))  # H = 0.0980 nats
    assert float(jax.grad(losses.temperature_loss)(log_alpha, decided, 0.679)) < 0  # alpha grows
    assert float(jax.grad(losses.notebook_temperature_loss)(log_alpha, decided, 0.679)) > 0  # alpha still decays
