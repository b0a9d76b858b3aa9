"""Discrete behaviour cloning, the offline baseline: saclab's actor fit to the dataset's actions
by cross-entropy, as a pure jitted update and an epoch of them in one ``lax.scan``.

It trains the ``actor_params`` (and their Adam state) of the same ``SACState`` that SAC
trains, so checkpoints, ``Policy``, evaluation and export treat a BC run like any other;
the critics and alpha stay at their initial values, unused.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from saclab.core.agent import Learner, SACState
from saclab.core.types import Batch

METRIC_NAMES = ("bc_loss", "entropy", "accuracy")
"""The metrics of a BC update."""


def bc_loss(log_probs: jax.Array, actions: jax.Array) -> jax.Array:
    """Cross-entropy of the policy against the data's actions:

    L_BC = -mean_b log pi(a_b | s_b)          log_probs: (B, A); actions: (B,) -> scalar
    """
    return -jnp.mean(jnp.take_along_axis(log_probs, actions[:, None], axis=-1))


def _bc_update(learner: Learner, state: SACState, batch: Batch) -> tuple[SACState, dict]:
    actor = learner.actor

    def objective(actor_params):
        log_probs = jax.nn.log_softmax(actor.apply({"params": actor_params}, batch.obs))
        return bc_loss(log_probs, batch.actions), log_probs

    (loss, log_probs), grads = jax.value_and_grad(objective, has_aux=True)(state.actor_params)
    updates, actor_opt_state = learner.actor_optimizer.update(grads, state.actor_opt_state)
    actor_params = optax.apply_updates(state.actor_params, updates)
    probs = jnp.exp(log_probs)
    metrics = {"bc_loss": loss, "entropy": -jnp.mean(jnp.sum(probs * log_probs, axis=-1)),
               "accuracy": jnp.mean(jnp.argmax(log_probs, axis=-1) == batch.actions)}
    return state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state,
                         updates=state.updates + 1), metrics


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def bc_update(learner: Learner, state: SACState, batch: Batch) -> tuple[SACState, dict]:
    """One behaviour-cloning step (Adam on the actor) on one minibatch: ``(state, metrics)``."""
    return _bc_update(learner, state, batch)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def bc_update_epoch(learner: Learner, state: SACState, data: Batch,
                    minibatch_indices: jax.Array) -> tuple[SACState, dict]:
    """Many BC steps as one scan, as ``core.agent.update_epoch``: row u of ``minibatch_indices``
    (U, B) indexes ``data`` for step u; metrics come back stacked (U,)."""

    def body(state, idx):
        return _bc_update(learner, state, jax.tree_util.tree_map(lambda x: x[idx], data))

    return jax.lax.scan(body, state, minibatch_indices)


__all__ = ["bc_loss", "bc_update", "bc_update_epoch", "METRIC_NAMES"]
