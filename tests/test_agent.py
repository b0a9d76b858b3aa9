import jax
import jax.numpy as jnp
import numpy as np
import pytest

from saclab.config import preset
from saclab.core import losses
from saclab.core.agent import (
    METRIC_NAMES,
    Learner,
    critic_target,
    init_state,
    online_updates,
    target_pessimism,
    update,
    update_epoch,
)
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.runs.checkpoint import pytree_to_arrays

SPEC = EnvSpec("CartPole-v1", obs_dim=4, num_actions=2)


def learner(**changes):
    return Learner.from_config(preset("test").replace(**changes), SPEC)


def batch(seed=0, n=64):
    r = np.random.default_rng(seed)
    return batch_from_numpy(r.normal(size=(n, 4)), r.integers(0, 2, n), r.normal(size=n), r.normal(size=(n, 4)),
                            r.random(n) < 0.1)


def leaves(tree):
    return pytree_to_arrays(tree)


def test_shapes_and_hard_copy_of_targets():
    L = learner()
    s = init_state(L, jax.random.PRNGKey(0))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    q = L.critic.apply({"params": s.critic_params}, obs)
    assert q.shape == (2, 5, 2)
    assert L.actor.apply({"params": s.actor_params}, np.zeros((5, 4), np.float32)).shape == (5, 2)
    for k, v in leaves(s.critic_params).items():
        np.testing.assert_array_equal(v, leaves(s.critic_target_params)[k])
    # the two critics are initialised independently
    assert not np.array_equal(q[0], q[1])
    assert L.target_entropy == pytest.approx(preset("test").target_entropy_ratio * np.log(2))


def test_update_is_deterministic_and_polyak_averages_targets():
    L = learner(tau=0.1)
    s0 = init_state(L, jax.random.PRNGKey(0))
    old_target = leaves(s0.critic_target_params)
    s1, m1 = update(L, init_state(L, jax.random.PRNGKey(0)), batch())
    s2, m2 = update(L, init_state(L, jax.random.PRNGKey(0)), batch())
    for k, v in leaves(s1).items():
        np.testing.assert_array_equal(v, leaves(s2)[k])
    new_critic, new_target = leaves(s1.critic_params), leaves(s1.critic_target_params)
    for k in new_target:
        np.testing.assert_allclose(new_target[k], 0.1 * new_critic[k] + 0.9 * old_target[k], rtol=1e-5, atol=1e-7)
    assert int(s1.updates) == 1
    for key in ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_data"):
        assert np.isfinite(float(m1[key]))


def test_q_clip_is_the_plain_loss_when_wide_and_never_below_it():
    def trained(**changes):  # three updates move the critics from their targets, then one with the change
        state = init_state(learner(tau=0.5), jax.random.PRNGKey(0))
        for seed in range(3):
            state, _ = update(learner(tau=0.5), state, batch(seed))
        return update(learner(tau=0.5, **changes), state, batch(9))  # update donates its state

    plain_state, plain = trained(q_clip=0.0)
    wide_state, wide = trained(q_clip=1e6)
    tight_state, tight = trained(q_clip=1e-3)
    assert float(wide["critic_loss"]) == pytest.approx(float(plain["critic_loss"]), rel=1e-6)
    for k, v in leaves(wide_state.critic_params).items():
        np.testing.assert_allclose(v, leaves(plain_state.critic_params)[k], rtol=1e-5, atol=1e-7)
    assert float(tight["critic_loss"]) > float(plain["critic_loss"])
    assert any(not np.allclose(v, leaves(plain_state.critic_params)[k])
               for k, v in leaves(tight_state.critic_params).items())


def test_actor_loss_holds_the_critics_fixed():
    # The actor objective as a function of actor AND critic parameters: its gradient must reach the
    # actor and be exactly zero for every critic parameter (the critics are held fixed), whatever
    # order the update runs its steps in.
    L, s, b = learner(), init_state(learner(), jax.random.PRNGKey(1)), batch()

    def objective(actor_params, critic_params):
        log_probs = jax.nn.log_softmax(L.actor.apply({"params": actor_params}, b.obs))
        q = L.critic.apply({"params": critic_params}, b.obs)
        return losses.actor_loss(log_probs, q, jnp.exp(s.log_alpha))

    actor_grad, critic_grad = jax.grad(objective, argnums=(0, 1))(s.actor_params, s.critic_params)
    assert all(np.all(v == 0.0) for v in leaves(critic_grad).values())
    assert any(np.any(v != 0.0) for v in leaves(actor_grad).values())


def test_the_temperature_loss_holds_the_policy_fixed():
    log_probs = jax.nn.log_softmax(jnp.array([[0.3, -0.2], [1.0, 0.1]]))
    grad = jax.grad(losses.temperature_loss, argnums=1)(jnp.zeros(()), log_probs, 0.5)
    np.testing.assert_array_equal(grad, 0.0)


def test_fixed_alpha_stays_fixed_and_autotune_moves_it():
    fixed, _ = update(learner(autotune_alpha=False, initial_alpha=0.2), init_state(
        learner(autotune_alpha=False, initial_alpha=0.2), jax.random.PRNGKey(0)), batch())
    assert float(np.exp(fixed.log_alpha)) == pytest.approx(0.2)
    tuned, _ = update(learner(), init_state(learner(), jax.random.PRNGKey(0)), batch())
    assert float(tuned.log_alpha) != 0.0


def test_cql_weight_zero_reports_no_penalty_and_positive_weight_does():
    _, m0 = update(learner(), init_state(learner(), jax.random.PRNGKey(0)), batch())
    _, m5 = update(learner(cql_weight=5.0), init_state(learner(cql_weight=5.0), jax.random.PRNGKey(0)), batch())
    assert float(m0["cql_penalty"]) == 0.0 and float(m5["cql_penalty"]) > 0.0


def test_scanned_updates_equal_a_loop_of_single_updates():
    L = learner()
    data = batch(seed=1, n=256)
    idx = np.random.default_rng(0).permutation(256).reshape(4, 64).astype(np.int32)
    scanned, metrics = update_epoch(L, init_state(L, jax.random.PRNGKey(0)), data, idx)
    assert metrics["critic_loss"].shape == (4,)
    state = init_state(L, jax.random.PRNGKey(0))
    for row in idx:
        state, _ = update(L, state, jax.tree_util.tree_map(lambda x, r=row: x[r], data))
    for k, v in leaves(scanned).items():
        np.testing.assert_allclose(v, leaves(state)[k], rtol=1e-5, atol=1e-6)


def test_online_updates_apply_their_batches_in_order_then_act_from_the_result():
    # update_every K: K minibatches in one call must equal K single updates in the same order,
    # with the metrics of all K summed and the action drawn from the final policy.
    L = learner()
    batches = [batch(seed=s) for s in (1, 2, 3)]
    stacked = jax.tree_util.tree_map(lambda *columns: np.stack(columns), *batches)
    obs = np.zeros(4, np.float32)
    key = jax.random.PRNGKey(5)
    state, sums, action, td = online_updates(L, init_state(L, jax.random.PRNGKey(0)), stacked, obs, key, 7,
                                             jnp.zeros(len(METRIC_NAMES)))
    assert td.shape == (3, 64) and action.shape == ()
    single = init_state(L, jax.random.PRNGKey(0))
    expected = np.zeros(len(METRIC_NAMES))
    for b in batches:
        single, metrics = update(L, single, b)
        expected += np.array([float(metrics[name]) for name in METRIC_NAMES])
    for k, v in leaves(state).items():
        np.testing.assert_allclose(v, leaves(single)[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(np.asarray(sums), expected, rtol=1e-5, atol=1e-6)
    logits = L.actor.apply({"params": single.actor_params}, obs[None])
    assert int(action) == int(jax.random.categorical(jax.random.fold_in(key, 7), logits, axis=-1)[0])


@pytest.mark.parametrize("entropy_backup", [True, False])
def test_td_target_holds_the_entropy_bonus_only_with_entropy_backup(entropy_backup):
    # y = r + gamma (1 - d) sum_a' pi(a'|s') [min_i Qt_i(s', a') - alpha log pi(a'|s') * entropy_backup],
    # recomputed here from the networks' outputs at initialisation (alpha = 1, so the bonus is large).
    L = learner(entropy_backup=entropy_backup, gamma=0.9, critic_target_reduction="min")
    s = init_state(L, jax.random.PRNGKey(3))
    b = batch(seed=2)
    log_pi = np.asarray(jax.nn.log_softmax(L.actor.apply({"params": s.actor_params}, b.next_obs)), np.float64)
    q_next = np.asarray(L.critic.apply({"params": s.critic_target_params}, b.next_obs), np.float64).min(axis=0)
    bonus = -log_pi if entropy_backup else 0.0
    value = np.sum(np.exp(log_pi) * (q_next + bonus), axis=-1)
    expected = np.asarray(b.rewards) + 0.9 * (1 - np.asarray(b.terminated)) * value
    _, metrics = update(L, s, b)
    assert float(metrics["td_target"]) == pytest.approx(float(np.mean(expected)), abs=1e-5)


def test_target_pessimism_ramps_from_the_average_to_the_min():
    # k = 0 for the first 100 updates, then 1 * (u - 100) / 200 up to 1 at 300 updates
    L = learner(critic_target_reduction="mean", critic_target_pessimism=1.0, critic_target_pessimism_start=100,
                critic_target_pessimism_ramp=200)
    for updates, k in [(0, 0.0), (100, 0.0), (150, 0.25), (300, 1.0), (10_000, 1.0)]:
        assert float(target_pessimism(L, jnp.asarray(updates, jnp.int32))) == pytest.approx(k)
    constant = learner(critic_target_pessimism=0.5, critic_target_pessimism_start=0, critic_target_pessimism_ramp=0)
    assert target_pessimism(constant, jnp.asarray(7)) == 0.5
    # the target itself: before the ramp the mean target's, after it the min target's
    s = init_state(L, jax.random.PRNGKey(3))
    b = batch(seed=2)
    for updates, reference in [(50, learner(critic_target_reduction="mean", critic_target_pessimism=0.0)),
                               (400, learner(critic_target_reduction="min"))]:
        at = s.replace(updates=jnp.asarray(updates, jnp.int32))
        np.testing.assert_allclose(critic_target(L, at, b), critic_target(reference, at, b), rtol=1e-6, atol=1e-6)
    # before the ramp a whole update is the mean target's bit for bit (runs shorter than the start are unchanged)
    def at_50():  # update donates its state: a fresh copy for each call
        return init_state(L, jax.random.PRNGKey(3)).replace(updates=jnp.asarray(50, jnp.int32))

    ramped, _ = update(L, at_50(), b)
    plain, _ = update(learner(critic_target_reduction="mean", critic_target_pessimism=0.0), at_50(), b)
    for k, v in leaves(plain).items():
        np.testing.assert_array_equal(v, leaves(ramped)[k], err_msg=k)
