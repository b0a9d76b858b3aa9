"""The losses of discrete SAC and CQL, as small pure functions.

Shapes: ``B`` batch, ``A`` actions, ``K`` critics (2).  ``q`` arrays from the
twin critics have shape ``(K, B, A)``.  Every function is a direct
transcription of the equation in its docstring (Christodoulou 2019, discrete
SAC; Kumar et al. 2020, CQL(H)).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def target_critic_value(
    next_q_target: jax.Array, reduction: str = "min", pessimism: float | jax.Array = 0.0
) -> jax.Array:
    """One value per (s', a') from the K target critics.

    min:  Qt(s', a') = min_i Qt_i(s', a')                          (clipped double Q, Fujimoto et al. 2018)
    mean: Qt(s', a') = mean_i Qt_i(s', a') - k std_i Qt_i(s', a')   (k = pessimism; k = 0: SD-SAC's double
          average, Zhou et al. 2024; Moskovitz et al. 2021's mean + beta std with beta = -k)

    std is the population standard deviation over the K critics: with K = 2 it is |Qt_1 - Qt_2| / 2, so
    k = 1 gives the min and 0 < k < 1 a target between the average and the min.  (K, B, A) -> (B, A)
    """
    if reduction == "min":
        return jnp.min(next_q_target, axis=0)
    if reduction == "mean":
        mean = jnp.mean(next_q_target, axis=0)
        if isinstance(pessimism, (int, float)) and pessimism == 0:  # a traced k (a schedule) always subtracts
            return mean
        return mean - pessimism * jnp.std(next_q_target, axis=0)
    raise ValueError(f"unknown critic target reduction {reduction!r}")


def soft_state_value(
    next_log_probs: jax.Array, next_q_target: jax.Array, alpha: jax.Array, reduction: str = "min",
    pessimism: float | jax.Array = 0.0,
) -> jax.Array:
    """Soft value of the next state under the current policy.

    V(s') = sum_a' pi(a'|s') [ Qt(s', a') - alpha log pi(a'|s') ],   Qt = ``target_critic_value`` (min_i by default)

    next_log_probs: (B, A); next_q_target: (K, B, A) -> (B,)
    """
    q = target_critic_value(next_q_target, reduction, pessimism)
    probs = jnp.exp(next_log_probs)
    return jnp.sum(probs * (q - alpha * next_log_probs), axis=-1)


def td_target(
    reward: jax.Array, terminated: jax.Array, next_value: jax.Array, discount: jax.Array | float
) -> jax.Array:
    """y = r + discount (1 - terminated) V(s').

    discount is gamma for a one-step reward, gamma^m per sample when r sums m
    rewards (an n-step return, ``data.nstep``).  Only a true termination stops
    bootstrapping; a time-limit truncation is not terminal.  (B,) -> (B,)
    """
    return reward + discount * (1.0 - terminated.astype(reward.dtype)) * next_value


def q_taken(q: jax.Array, actions: jax.Array) -> jax.Array:
    """Q_i(s, a_data) for each critic: (K, B, A), (B,) -> (K, B)."""
    return jnp.take_along_axis(q, actions[None, :, None], axis=-1)[..., 0]


def td_penalty(error: jax.Array, kind: str = "mse") -> jax.Array:
    """The penalty on a TD error e, elementwise: the square, or the Huber form with the same
    curvature near 0 (twice SB3's smooth L1, delta 1), linear beyond |e| = 1.

    mse:   rho(e) = e^2
    huber: rho(e) = e^2 if |e| <= 1, else 2|e| - 1
    """
    if kind == "mse":
        return jnp.square(error)
    if kind == "huber":
        magnitude = jnp.abs(error)
        return jnp.where(magnitude <= 1.0, jnp.square(error), 2.0 * magnitude - 1.0)
    raise ValueError(f"unknown critic loss {kind!r}")


def clipped_td_penalty(q_data: jax.Array, q_data_target: jax.Array, target: jax.Array, clip: float,
                       kind: str = "mse") -> jax.Array:
    """SD-SAC's Q-clip (Zhou et al. 2024), elementwise: the larger of the penalty on the TD
    error and on the error of a prediction kept within ``clip`` of the target critic's Q-bar_i(s, a).

    rho_clip = max( rho(Q - y), rho(Q-bar + clip(Q - Q-bar, -c, c) - y) )

    Like PPO's value clipping, a step that moves Q more than c from Q-bar earns no credit for it.
    """
    clipped = q_data_target + jnp.clip(q_data - q_data_target, -clip, clip)
    return jnp.maximum(td_penalty(q_data - target, kind), td_penalty(clipped - target, kind))


def critic_loss(q: jax.Array, actions: jax.Array, target: jax.Array, weights: jax.Array | None = None,
                kind: str = "mse", q_target: jax.Array | None = None, clip: float = 0.0) -> jax.Array:
    """Sum over critics of the (importance-weighted) mean penalty on the TD error.

    L_Q = sum_i mean_b w_b rho(Q_i(s_b, a_b) - y_b)      (w = 1 without prioritised replay;
                                                          rho = td_penalty: e^2, or Huber;
                                                          with clip > 0, clipped_td_penalty
                                                          against the target critics q_target)

    The target y and q_target are constants (no gradient flows into them).
    """
    y = jax.lax.stop_gradient(target)[None, :]
    if clip > 0:
        q_data_target = jax.lax.stop_gradient(q_taken(q_target, actions))
        penalty = clipped_td_penalty(q_taken(q, actions), q_data_target, y, clip, kind)
    else:
        penalty = td_penalty(q_taken(q, actions) - y, kind)
    if weights is not None:
        penalty = penalty * weights[None, :]
    return jnp.sum(jnp.mean(penalty, axis=-1))


def cql_penalty(q: jax.Array, actions: jax.Array) -> jax.Array:
    """CQL(H) regulariser for discrete actions, summed over critics.

    R = sum_i mean_s [ logsumexp_a Q_i(s, a) - Q_i(s, a_data) ]

    Its gradient, (softmax(Q_i(s)) - onehot(a_data)) / B, pushes Q of dataset
    actions up and of all actions (softmax-weighted) down.  It is > 0 and tends
    to 0 only as the dataset action's Q outgrows all others.
    """
    return jnp.sum(jnp.mean(jax.nn.logsumexp(q, axis=-1) - q_taken(q, actions), axis=-1))


def actor_loss(log_probs: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """J_pi = mean_s sum_a pi(a|s) [ alpha log pi(a|s) - min_i Q_i(s, a) ].

    The critics are held fixed (stop_gradient): only the actor learns here.
    log_probs: (B, A); q: (K, B, A)
    """
    q_min = jax.lax.stop_gradient(jnp.min(q, axis=0))
    probs = jnp.exp(log_probs)
    return jnp.mean(jnp.sum(probs * (jax.lax.stop_gradient(alpha) * log_probs - q_min), axis=-1))


def temperature_loss(log_alpha: jax.Array, log_probs: jax.Array, target_entropy: float) -> jax.Array:
    """J(alpha) = -log_alpha * mean_s [ sum_a pi(a|s) log pi(a|s) + H_target ].

    Equivalently log_alpha * (H(pi) - H_target): alpha grows when the policy's
    entropy is below the target and shrinks above it.  The policy is held fixed.
    """
    log_probs = jax.lax.stop_gradient(log_probs)
    neg_entropy = jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    return -log_alpha * jnp.mean(neg_entropy + target_entropy)


def notebook_temperature_loss(log_alpha: jax.Array, log_probs: jax.Array, target_entropy: float) -> jax.Array:
    """The course notebook's temperature loss: a plain mean over states *and actions*, not weighted by pi.

    J_nb(alpha) = -log_alpha * mean_{s,a} [ log pi(a|s) + H_target ]

    Its gradient in log_alpha, -(mean_a log pi(a|s) + H_target), does not measure the entropy: the mean
    of log pi over |A| actions is at most -log|A| (Jensen), so for any H_target < log|A| the gradient is
    positive and alpha only decays, whatever the policy does.  Kept to reproduce the notebook.
    """
    log_probs = jax.lax.stop_gradient(log_probs)
    return -log_alpha * jnp.mean(log_probs + target_entropy)


def entropy(log_probs: jax.Array) -> jax.Array:
    """Mean policy entropy H = -mean_s sum_a pi log pi."""
    return -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))


def value_bound(r_max: float, gamma: float) -> float:
    """The largest discounted return with every reward <= r_max: r_max / (1 - gamma), or r_max itself
    when r_max < 0 (an episode may end after one step)."""
    return r_max / (1.0 - gamma) if r_max >= 0 else r_max


def soft_value_bound(r_max: float, alpha: float, num_actions: int, gamma: float, entropy_backup: bool = True) -> float:
    """The largest value a (soft) Q-value can hold, for judging a critic's estimates.

    Q(s, a) <= (r_max + alpha log|A|) / (1 - gamma)     (entropy in the target: each step adds at most alpha log|A|)
    Q(s, a) <= r_max / (1 - gamma)                      (entropy_backup=False)

    (``value_bound`` of the per-step reward plus the largest entropy bonus.)
    """
    return value_bound(r_max + (alpha * math.log(num_actions) if entropy_backup else 0.0), gamma)
