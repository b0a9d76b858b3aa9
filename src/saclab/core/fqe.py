"""Fitted Q Evaluation (Le, Voloshin & Yue 2019): the value of a fixed policy from logged data.

A Q-network (the critics' MLP, one output per action) is regressed on the policy's Bellman
target, computed with a frozen copy of itself:

    y = r + discount (1 - terminated) sum_a' pi(a'|s') Qt(s', a')

so Q converges to Q^pi, and V^pi(s_0) = sum_a pi(a|s_0) Q(s_0, a) estimates the policy's
expected discounted return from the data's initial states.  The evaluated policy enters only
through its probabilities at s' (``next_probs``), computed once before training: the policy
is fixed, so FQE never runs the actor inside its loop.

The target network gets periodic hard copies (every ``target_update_every`` updates, as
d3rlpy's DiscreteFQE), not Polyak averaging: FQE is, by definition, a sequence of
regressions each onto a *fixed* target T^pi Q_k, and a hard copy every K steps is exactly
that, with K the regression's length; Polyak averaging blends targets of every age.

Shapes: ``B`` batch, ``A`` actions; ``q`` (B, A) from the single Q-network.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from saclab.core.networks import MLP
from saclab.core.types import Batch

METRIC_NAMES = ("fqe_loss", "fqe_target")
"""The metrics of an FQE update (stacked per update by ``fqe_update_epoch``)."""


def greedy_probs(logits: jax.Array) -> jax.Array:
    """The greedy policy as probabilities: pi(a|s) = [a = argmax_a' logits(s, a')].   (B, A) -> (B, A)"""
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=jnp.float32)


def policy_state_value(probs: jax.Array, q: jax.Array) -> jax.Array:
    """V(s) = sum_a pi(a|s) Q(s, a).   probs, q: (B, A) -> (B,)"""
    return jnp.sum(probs * q, axis=-1)


def fqe_target(reward: jax.Array, terminated: jax.Array, next_probs: jax.Array, next_q_target: jax.Array,
               discount: jax.Array | float) -> jax.Array:
    """y = r + discount (1 - terminated) sum_a' pi(a'|s') Qt(s', a').

    Only a true termination stops bootstrapping (a truncation bootstraps).
    reward, terminated: (B,); next_probs, next_q_target: (B, A) -> (B,)
    """
    next_value = policy_state_value(next_probs, next_q_target)
    return reward + discount * (1.0 - terminated.astype(reward.dtype)) * next_value


def clipped_target(target: jax.Array, low: float, high: float) -> jax.Array:
    """y_clip = min(max(y, low), high): a Bellman target outside [low, high], the range every discounted
    return lies in given the data's rewards, is known to be wrong (FQE extrapolating on actions the data
    does not show); clipping it stops the error from feeding on itself.   (B,) -> (B,)"""
    return jnp.clip(target, low, high)


def fqe_loss(q: jax.Array, actions: jax.Array, target: jax.Array) -> jax.Array:
    """L = mean_b (Q(s_b, a_b) - y_b)^2, the target held fixed.   q: (B, A); actions, target: (B,) -> scalar"""
    q_data = jnp.take_along_axis(q, actions[:, None], axis=-1)[:, 0]
    return jnp.mean(jnp.square(q_data - jax.lax.stop_gradient(target)))


class FQELearner(NamedTuple):
    """FQE's hyperparameters (hashable: a jit static argument)."""

    obs_dim: int
    num_actions: int
    hidden_sizes: tuple[int, ...]
    learning_rate: float
    gamma: float
    target_update_every: int
    target_range: tuple[float, float] | None = None
    """Clip the Bellman targets to this range (``clipped_target``); None: no clipping."""

    @property
    def q_network(self) -> MLP:
        return MLP(self.hidden_sizes, self.num_actions)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.learning_rate)


@flax.struct.dataclass
class FQEState:
    """Everything FQE learns: the Q-network, its frozen target copy, Adam's state, the update count."""

    q_params: dict
    q_target_params: dict
    opt_state: optax.OptState
    updates: jax.Array


def init_fqe_state(learner: FQELearner, key: jax.Array) -> FQEState:
    """Fresh Q-network parameters; the target starts as a copy."""
    params = learner.q_network.init(key, jnp.zeros((1, learner.obs_dim), jnp.float32))["params"]
    return FQEState(params, jax.tree_util.tree_map(jnp.array, params), learner.optimizer.init(params),
                    jnp.zeros((), jnp.int32))


def _fqe_update(learner: FQELearner, state: FQEState, batch: Batch, next_probs: jax.Array) -> tuple[FQEState, dict]:
    network = learner.q_network
    next_q_target = network.apply({"params": state.q_target_params}, batch.next_obs)
    target = fqe_target(batch.rewards, batch.terminated, next_probs, next_q_target, learner.gamma)
    if learner.target_range is not None:
        target = clipped_target(target, *learner.target_range)

    def objective(params):
        return fqe_loss(network.apply({"params": params}, batch.obs), batch.actions, target)

    loss, grads = jax.value_and_grad(objective)(state.q_params)
    updates, opt_state = learner.optimizer.update(grads, state.opt_state)
    params = optax.apply_updates(state.q_params, updates)
    count = state.updates + 1
    copy = count % learner.target_update_every == 0  # the next regression's fixed target
    target_params = jax.tree_util.tree_map(lambda new, old: jnp.where(copy, new, old), params, state.q_target_params)
    return FQEState(params, target_params, opt_state, count), {"fqe_loss": loss, "fqe_target": jnp.mean(target)}


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def fqe_update_epoch(learner: FQELearner, state: FQEState, data: Batch, next_probs: jax.Array,
                     minibatch_indices: jax.Array) -> tuple[FQEState, dict]:
    """Many FQE updates as one scan: row u of ``minibatch_indices`` (U, B) indexes ``data`` and
    ``next_probs`` (N, A), pi(.|s') of every transition, for update u.  Metrics come back stacked (U,)."""

    def body(state, idx):
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        return _fqe_update(learner, state, batch, next_probs[idx])

    return jax.lax.scan(body, state, minibatch_indices)


@functools.partial(jax.jit, static_argnums=0)
def initial_values(learner: FQELearner, state: FQEState, obs: jax.Array, probs: jax.Array) -> jax.Array:
    """V(s_0) = sum_a pi(a|s_0) Q(s_0, a) for each state in ``obs`` (S, obs_dim), ``probs`` (S, A) -> (S,)."""
    return policy_state_value(probs, learner.q_network.apply({"params": state.q_params}, obs))


__all__ = ["greedy_probs", "policy_state_value", "fqe_target", "clipped_target", "fqe_loss", "FQELearner", "FQEState",
           "init_fqe_state", "fqe_update_epoch", "initial_values", "METRIC_NAMES"]
