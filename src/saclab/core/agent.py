"""The SAC learner: networks + optimisers + one jitted pure update.

``update(state, batch) -> (state, metrics)`` is the whole algorithm for one
minibatch, in order:

1. critics:  TD loss (+ CQL penalty) against a target from the target critics
   and the current policy, one Adam step on both critics;
2. actor:    policy loss against the *updated* critics (held fixed);
3. alpha:    temperature loss with the policy's probabilities held fixed;
4. targets:  Polyak averaging with tau.

Discrete SAC needs no sampling inside the update (expectations over actions
are exact sums), so the update is a deterministic function of its inputs.
Offline epochs and benchmarks run many updates as one ``lax.scan``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from saclab.config import SACConfig
from saclab.core import losses
from saclab.core.networks import Actor, TwinCritic, resolve_encoder
from saclab.core.types import Batch, EnvSpec


class Learner(NamedTuple):
    """The hyperparameters the update depends on (hashable: a jit static argument)."""

    obs_dim: int
    num_actions: int
    hidden_sizes: tuple[int, ...]
    actor_lr: float
    critic_lr: float
    alpha_lr: float
    gamma: float
    tau: float
    initial_alpha: float
    autotune_alpha: bool
    target_entropy: float
    cql_weight: float
    entropy_backup: bool
    notebook_temperature_loss: bool
    n_step: int
    critic_target_reduction: str = "min"
    critic_target_pessimism: float = 0.0
    critic_target_pessimism_start: int = 0
    critic_target_pessimism_ramp: int = 0
    critic_loss: str = "mse"
    q_clip: float = 0.0
    obs_shape: tuple[int, ...] = ()  # () means (obs_dim,)
    encoder: str = "mlp"  # resolved (never "auto"): core.networks

    @classmethod
    def from_config(cls, config: SACConfig, spec: EnvSpec) -> Learner:
        return cls(
            obs_dim=spec.obs_dim,
            num_actions=spec.num_actions,
            hidden_sizes=tuple(config.hidden_sizes),
            actor_lr=config.actor_lr,
            critic_lr=config.critic_lr,
            alpha_lr=config.alpha_lr,
            gamma=config.gamma,
            tau=config.tau,
            initial_alpha=config.initial_alpha,
            autotune_alpha=config.autotune_alpha,
            target_entropy=config.target_entropy_ratio * math.log(spec.num_actions),
            cql_weight=config.cql_weight,
            entropy_backup=config.entropy_backup,
            notebook_temperature_loss=config.notebook_temperature_loss,
            n_step=config.n_step,
            critic_target_reduction=config.critic_target_reduction,
            critic_target_pessimism=config.critic_target_pessimism,
            critic_target_pessimism_start=config.critic_target_pessimism_start,
            critic_target_pessimism_ramp=config.critic_target_pessimism_ramp,
            critic_loss=config.critic_loss,
            q_clip=config.q_clip,
            obs_shape=tuple(spec.obs_shape),
            encoder=resolve_encoder(config.encoder, tuple(spec.obs_shape)),
        )

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.obs_shape or (self.obs_dim,)

    @property
    def actor(self) -> Actor:
        return Actor(self.hidden_sizes, self.num_actions, self.encoder, self.observation_shape)

    @property
    def critic(self) -> TwinCritic:
        return TwinCritic(self.hidden_sizes, self.num_actions, encoder=self.encoder, obs_shape=self.observation_shape)

    @property
    def actor_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.actor_lr)

    @property
    def critic_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.critic_lr)

    @property
    def alpha_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.alpha_lr)


@flax.struct.dataclass
class SACState:
    """Everything that learns: a pytree (checkpointed as a whole)."""

    actor_params: dict
    critic_params: dict
    critic_target_params: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    updates: jax.Array  # number of updates applied


def init_state(learner: Learner, key: jax.Array) -> SACState:
    """Fresh parameters; the target critics start as a hard copy of the critics."""
    actor_key, critic_key = jax.random.split(key)
    dummy = jnp.zeros((1, *learner.observation_shape), jnp.float32)
    actor_params = learner.actor.init(actor_key, dummy)["params"]
    critic_params = learner.critic.init(critic_key, dummy)["params"]
    log_alpha = jnp.asarray(math.log(learner.initial_alpha), jnp.float32)
    return SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        critic_target_params=jax.tree_util.tree_map(jnp.array, critic_params),
        log_alpha=log_alpha,
        actor_opt_state=learner.actor_optimizer.init(actor_params),
        critic_opt_state=learner.critic_optimizer.init(critic_params),
        alpha_opt_state=learner.alpha_optimizer.init(log_alpha),
        updates=jnp.zeros((), jnp.int32),
    )


def target_pessimism(learner: Learner, updates: jax.Array) -> float | jax.Array:
    """k of ``losses.target_critic_value`` after ``updates`` updates: 0 for the first
    ``critic_target_pessimism_start``, then linear up to ``critic_target_pessimism`` over
    ``critic_target_pessimism_ramp`` updates (the average's optimism while exploring, the min's caution
    later); a constant k when neither is set."""
    final = learner.critic_target_pessimism
    if final == 0 or (learner.critic_target_pessimism_start == 0 and learner.critic_target_pessimism_ramp == 0):
        return final
    progress = (updates.astype(jnp.float32) - learner.critic_target_pessimism_start) / max(
        learner.critic_target_pessimism_ramp, 1)
    return final * jnp.clip(progress, 0.0, 1.0)


def critic_target(learner: Learner, state: SACState, batch: Batch) -> jax.Array:
    """The critics' regression target y = r + gamma^m (1 - terminated) V(s') for each sample (B,), V from
    the target critics and the current policy at s' (with the entropy bonus only if ``entropy_backup``).
    The update regresses on it; ``core.offline_metrics`` measures the TD error against it."""
    next_log_probs = jax.nn.log_softmax(learner.actor.apply({"params": state.actor_params}, batch.next_obs))
    next_q_target = learner.critic.apply({"params": state.critic_target_params}, batch.next_obs)
    alpha = jnp.exp(state.log_alpha)
    backup_alpha = alpha if learner.entropy_backup else jnp.zeros_like(alpha)  # 0: V(s') = E_pi min Qt
    next_value = losses.soft_state_value(next_log_probs, next_q_target, backup_alpha,
                                         learner.critic_target_reduction, target_pessimism(learner, state.updates))
    discount = learner.gamma if learner.n_step == 1 else jnp.power(learner.gamma, batch.horizons)  # gamma^m
    return losses.td_target(batch.rewards, batch.terminated, next_value, discount)


def _update(learner: Learner, state: SACState, batch: Batch) -> tuple[SACState, dict]:
    actor, critic = learner.actor, learner.critic
    alpha = jnp.exp(state.log_alpha)

    # 1. Critics.  Target from the target critics and the current policy at s'.
    target = critic_target(learner, state, batch)

    # Q-clip's anchor: the target critics at (s, a), one more forward pass only when it is on.
    q_target = (critic.apply({"params": state.critic_target_params}, batch.obs) if learner.q_clip > 0 else None)

    def critic_objective(critic_params):
        q = critic.apply({"params": critic_params}, batch.obs)  # computed once for TD and CQL
        td = losses.critic_loss(q, batch.actions, target, batch.weights, learner.critic_loss, q_target,
                                learner.q_clip)
        penalty = losses.cql_penalty(q, batch.actions) if learner.cql_weight > 0 else jnp.zeros(())
        return td + learner.cql_weight * penalty, (td, penalty, q)

    (_, (td_loss, penalty, q_old)), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(
        state.critic_params
    )
    critic_updates, critic_opt_state = learner.critic_optimizer.update(critic_grads, state.critic_opt_state)
    critic_params = optax.apply_updates(state.critic_params, critic_updates)

    # 2. Actor, against the updated critics (no gradient into them).
    q_new = critic.apply({"params": critic_params}, batch.obs)

    def actor_objective(actor_params):
        log_probs = jax.nn.log_softmax(actor.apply({"params": actor_params}, batch.obs))
        return losses.actor_loss(log_probs, q_new, alpha), log_probs

    (actor_loss, log_probs), actor_grads = jax.value_and_grad(actor_objective, has_aux=True)(state.actor_params)
    actor_updates, actor_opt_state = learner.actor_optimizer.update(actor_grads, state.actor_opt_state)
    actor_params = optax.apply_updates(state.actor_params, actor_updates)

    # 3. Temperature, with the policy's probabilities held fixed.
    temperature_loss = (losses.notebook_temperature_loss if learner.notebook_temperature_loss
                        else losses.temperature_loss)
    alpha_loss, alpha_grad = jax.value_and_grad(temperature_loss)(
        state.log_alpha, log_probs, learner.target_entropy
    )
    if learner.autotune_alpha:
        alpha_updates, alpha_opt_state = learner.alpha_optimizer.update(alpha_grad, state.alpha_opt_state)
        log_alpha = optax.apply_updates(state.log_alpha, alpha_updates)
    else:
        log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state

    # 4. Target critics: Polyak averaging.
    critic_target_params = optax.incremental_update(critic_params, state.critic_target_params, learner.tau)

    q_data = losses.q_taken(q_old, batch.actions)  # (K, B)
    greedy = jnp.argmax(log_probs, axis=-1)
    metrics = {
        "critic_loss": td_loss,
        "cql_penalty": penalty,
        "actor_loss": actor_loss,
        "alpha_loss": alpha_loss,
        "alpha": alpha,
        "entropy": losses.entropy(log_probs),
        "q_data": jnp.mean(jnp.min(q_data, axis=0)),
        "q_greedy": jnp.mean(jnp.min(losses.q_taken(q_old, greedy), axis=0)),
        "td_target": jnp.mean(target),
        "td_abs_error": jnp.mean(jnp.abs(q_data - target[None, :]), axis=0),  # (B,) for priorities
    }
    new_state = SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        critic_target_params=critic_target_params,
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        alpha_opt_state=alpha_opt_state,
        updates=state.updates + 1,
    )
    return new_state, metrics


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def update(learner: Learner, state: SACState, batch: Batch) -> tuple[SACState, dict]:
    """One SAC (+CQL) update on one minibatch: ``(state, metrics)``."""
    return _update(learner, state, batch)


def _sample_action(learner: Learner, actor_params: dict, obs: jax.Array, key: jax.Array) -> jax.Array:
    logits = learner.actor.apply({"params": actor_params}, obs)
    return jax.random.categorical(key, logits, axis=-1)


METRIC_NAMES = ("critic_loss", "cql_penalty", "actor_loss", "alpha_loss", "alpha", "entropy", "q_data",
                "q_greedy", "td_target")
"""The scalar metrics of an update, in the order of ``online_step``'s running sums."""


def scan_updates(learner: Learner, state: SACState, metric_sums: jax.Array,
                 batches: Batch) -> tuple[SACState, jax.Array, jax.Array]:
    """K updates in order on ``batches`` (stacked on a leading axis K) as one ``lax.scan``, their
    scalar metrics added to ``metric_sums``.  Returns (state, metric_sums, |TD error| (K, B))."""

    def one_update(carry: tuple, batch: Batch) -> tuple:
        state, sums = carry
        state, metrics = _update(learner, state, batch)
        return (state, sums + metric_vector(metrics)), metrics["td_abs_error"]

    (state, metric_sums), td_abs_errors = jax.lax.scan(one_update, (state, metric_sums), batches)
    return state, metric_sums, td_abs_errors


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(1, 6))
def online_updates(
    learner: Learner, state: SACState, batches: Batch, obs: jax.Array, act_key: jax.Array, step: jax.Array,
    metric_sums: jax.Array,
) -> tuple[SACState, jax.Array, jax.Array, jax.Array]:
    """The online loop's device work in one call: the K updates due (``batches`` stacked on a leading
    axis K; K = 1 after every step, K = ``update_every`` otherwise), their metrics added to
    ``metric_sums`` (so nothing is read back per step), then an action for the next observation
    ``obs`` (1-D) sampled from the updated policy with ``fold_in(act_key, step)``.

    Returns (state, metric_sums, action (scalar), |TD error| per sample (K, B)).
    """
    # A loop for every encoder, K = 1 included (XLA drops a one-trip loop): the convolutions are matrix
    # products (networks.conv_valid), which XLA:CPU runs inside a loop at full speed (a lax.conv ran
    # 5-10x slower there), and a loop compiles faster than K unrolled copies.
    state, metric_sums, td_abs_errors = scan_updates(learner, state, metric_sums, batches)
    action = _sample_action(learner, state.actor_params, obs[None], jax.random.fold_in(act_key, step))[0]
    return state, metric_sums, action, td_abs_errors


def metric_vector(metrics: dict) -> jax.Array:
    """The scalar metrics of one update as a vector, in ``METRIC_NAMES`` order."""
    return jnp.stack([metrics[name] for name in METRIC_NAMES])


@functools.partial(jax.jit, static_argnums=0)
def sample_action(learner: Learner, actor_params: dict, obs: jax.Array, key: jax.Array) -> jax.Array:
    """Actions sampled from pi(.|obs) (training behaviour)."""
    return _sample_action(learner, actor_params, obs, key)


@functools.partial(jax.jit, static_argnums=0)
def sample_action_at(learner: Learner, actor_params: dict, obs: jax.Array, act_key: jax.Array,
                     step: jax.Array) -> jax.Array:
    """One action for one observation (1-D), drawn with ``fold_in(act_key, step)``."""
    return _sample_action(learner, actor_params, obs[None], jax.random.fold_in(act_key, step))[0]


@functools.partial(jax.jit, static_argnums=0)
def greedy_action(learner: Learner, actor_params: dict, obs: jax.Array) -> jax.Array:
    """argmax_a pi(a|obs) (evaluation behaviour)."""
    return jnp.argmax(learner.actor.apply({"params": actor_params}, obs), axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def q_values(learner: Learner, critic_params: dict, obs: jax.Array) -> jax.Array:
    """min_i Q_i(obs, .), shape (B, A)."""
    return jnp.min(learner.critic.apply({"params": critic_params}, obs), axis=0)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def update_epoch(
    learner: Learner, state: SACState, data: Batch, minibatch_indices: jax.Array
) -> tuple[SACState, dict]:
    """Many updates as one scan: row u of ``minibatch_indices`` (U, B) indexes
    ``data`` (device-resident arrays) for update u.  Metrics come back stacked (U,)."""

    def body(state, idx):
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        state, metrics = _update(learner, state, batch)
        metrics.pop("td_abs_error")
        return state, metrics

    return jax.lax.scan(body, state, minibatch_indices)

