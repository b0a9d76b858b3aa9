"""The offline metrics of a policy and its critics on fixed data (no simulator): one equation per
function, and ``offline_metrics``, which computes them all on a dataset in one jitted call.

Shapes: ``B`` states, ``A`` actions, ``K`` critics; ``q`` (K, B, A), ``log_probs`` (B, A).
Each function returns one value per state (B,); ``weighted_mean`` averages them over the
states that count (the held-out split's, or the episode starts for the initial-state value).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from saclab.core import losses
from saclab.core.agent import Learner, SACState, critic_target
from saclab.core.types import Batch

METRICS_WITH_CRITICS = ("td_error", "initial_value", "cql_gap")
"""The metrics that read the critics (behaviour cloning trains none, so it logs only the others)."""
POLICY_METRICS = ("action_agreement", "policy_entropy", "action_nll")


def td_abs_error(q: jax.Array, actions: jax.Array, target: jax.Array) -> jax.Array:
    """|TD error| averaged over the critics: mean_i | Q_i(s, a_data) - y |.   -> (B,)"""
    return jnp.mean(jnp.abs(losses.q_taken(q, actions) - target[None, :]), axis=0)


def policy_value(log_probs: jax.Array, q: jax.Array) -> jax.Array:
    """The critics' value of the policy: V(s) = sum_a pi(a|s) min_i Q_i(s, a).   -> (B,)"""
    return jnp.sum(jnp.exp(log_probs) * jnp.min(q, axis=0), axis=-1)


def action_match(log_probs: jax.Array, actions: jax.Array) -> jax.Array:
    """1 where the greedy action is the data's: [argmax_a pi(a|s) = a_data].   -> (B,)"""
    return (jnp.argmax(log_probs, axis=-1) == actions).astype(jnp.float32)


def policy_entropy(log_probs: jax.Array) -> jax.Array:
    """H(pi(.|s)) = -sum_a pi(a|s) log pi(a|s).   -> (B,)"""
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


def action_nll(log_probs: jax.Array, actions: jax.Array) -> jax.Array:
    """The data's action's negative log-likelihood: -log pi(a_data|s) (behaviour cloning's loss).   -> (B,)"""
    return -jnp.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]


def cql_gap(q: jax.Array, actions: jax.Array) -> jax.Array:
    """How far the data's action stands below a soft maximum, averaged over the critics:
    mean_i [ logsumexp_a Q_i(s, a) - Q_i(s, a_data) ] (>= 0; CQL pushes it down).   -> (B,)"""
    return jnp.mean(jax.nn.logsumexp(q, axis=-1) - losses.q_taken(q, actions), axis=0)


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """sum_b w_b v_b / sum_b w_b (NaN when no weight: no such state)."""
    return jnp.sum(weights * values) / jnp.sum(weights)


def _chunk_sums(learner: Learner, state: SACState, batch: Batch, weights: jax.Array, starts: jax.Array,
                with_critics: bool) -> dict[str, jax.Array]:
    """The weighted sums of every metric over one chunk of states (and the sums of the weights)."""
    log_probs = jax.nn.log_softmax(learner.actor.apply({"params": state.actor_params}, batch.obs))
    sums = {"action_agreement": action_match(log_probs, batch.actions), "policy_entropy": policy_entropy(log_probs),
            "action_nll": action_nll(log_probs, batch.actions)}
    sums = {name: jnp.sum(weights * values) for name, values in sums.items()}
    sums["weight"], sums["start_weight"] = jnp.sum(weights), jnp.sum(starts)
    if with_critics:
        q = learner.critic.apply({"params": state.critic_params}, batch.obs)
        target = critic_target(learner, state, batch)  # the one the update regresses on
        sums["td_error"] = jnp.sum(weights * td_abs_error(q, batch.actions, target))
        sums["cql_gap"] = jnp.sum(weights * cql_gap(q, batch.actions))
        sums["initial_value"] = jnp.sum(starts * policy_value(log_probs, q))
    return sums


@functools.partial(jax.jit, static_argnums=(0, 5))
def offline_metrics(learner: Learner, state: SACState, data: Batch, weights: jax.Array, starts: jax.Array,
                    with_critics: bool = True) -> dict[str, jax.Array]:
    """Every offline metric on ``data``, chunk by chunk (one ``lax.scan``): arrays with a leading
    chunk axis (C, M, ...); ``weights`` (C, M) is 1 for a state that counts and 0 for padding;
    ``starts`` (C, M) is 1 at an episode's first state (the initial-state value's states).

    Returns scalars: ``action_agreement``, ``policy_entropy``, ``action_nll`` and, ``with_critics``,
    ``td_error``, ``initial_value`` (mean V(s_0)) and ``cql_gap``: each a ``weighted_mean``."""

    def body(totals, chunk):
        batch, w, s = chunk
        sums = _chunk_sums(learner, state, batch, w, s, with_critics)
        return jax.tree_util.tree_map(jnp.add, totals, sums), None

    names = POLICY_METRICS + (METRICS_WITH_CRITICS if with_critics else ())
    zeros = {name: jnp.zeros(()) for name in (*names, "weight", "start_weight")}
    totals, _ = jax.lax.scan(body, zeros, (data, weights, starts))
    return {name: totals[name] / totals["start_weight" if name == "initial_value" else "weight"] for name in names}


__all__ = ["td_abs_error", "policy_value", "action_match", "policy_entropy", "action_nll", "cql_gap",
           "weighted_mean", "offline_metrics", "METRICS_WITH_CRITICS", "POLICY_METRICS"]
