"""Networks: an MLP, a categorical actor and a twin-critic ensemble (Flax).

The twin critics are one module vmapped over a leading ensemble axis of 2, so
both critics run as one batched matrix product per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """ReLU multilayer perceptron with a linear output layer."""

    hidden_sizes: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


class Actor(nn.Module):
    """Categorical policy: returns logits; log pi = log_softmax(logits)."""

    hidden_sizes: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.num_actions)(obs)


class TwinCritic(nn.Module):
    """Two independent Q-networks evaluated together: output shape (2, batch, actions)."""

    hidden_sizes: Sequence[int]
    num_actions: int
    num_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_sizes, self.num_actions)(obs)

