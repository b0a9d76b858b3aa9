"""Networks: observation encoders, an MLP head, a categorical actor and a twin-critic ensemble (Flax).

An encoder turns one observation into a feature vector; the head (``MLP`` over
``hidden_sizes``) turns it into logits or Q-values.  Encoders, by name:

* ``mlp``          flat observations, used as they are (an image is flattened);
* ``minatar_cnn``  small images (H, W <= 16, MinAtar's 10x10xC): one 3x3 conv, 16 channels,
                   stride 1, ReLU (Young & Tian 2019), flattened;
* ``nature_cnn``   84x84 frames (x stacked frames): 8x8/4 32, 4x4/2 64, 3x3/1 64 convs and a
                   512-unit layer, all ReLU (Mnih et al. 2015).

Images are HxWxC (channel-first stacks CxHxW, e.g. Gymnasium's 4x84x84 Atari frame
stacks, are transposed); they may arrive flattened (B, obs_dim), as buffers and
datasets store them.  uint8 pixels are divided by 255 and bool channels read as
0/1 inside the network, so buffers store them as bytes.  The
actor and each twin critic own their encoder.  The twin critics are one module
vmapped over a leading ensemble axis of 2, so both critics run as one batched
matrix product per layer.  Every convolution is a matrix product too (``conv_valid``), which
XLA:CPU runs at full speed inside loops, where its convolutions run 5-10x slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from saclab.config import ENCODERS
from saclab.errors import SaclabError

MINATAR_MAX_SIDE = 16
NATURE_SIDE = 84


def _image_layout(obs_shape: tuple[int, ...]) -> tuple[int, int, int, bool] | None:
    """(H, W, C, channels_first) of an image observation, None for anything else."""
    if len(obs_shape) != 3:
        return None
    if obs_shape[0] < obs_shape[2] and obs_shape[1] == obs_shape[2]:  # (C, H, W): a frame stack
        return obs_shape[1], obs_shape[2], obs_shape[0], True
    return obs_shape[0], obs_shape[1], obs_shape[2], False


def resolve_encoder(name: str, obs_shape: tuple[int, ...]) -> str:
    """The encoder for observations of ``obs_shape``: ``name``, or with ``auto`` the one the
    shape calls for; a one-line error when the shape does not fit the encoder."""
    if name not in ENCODERS:
        raise SaclabError(f"encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    layout = _image_layout(obs_shape)
    if name == "auto":
        if len(obs_shape) == 1:
            return "mlp"
        if layout is not None and max(layout[:2]) <= MINATAR_MAX_SIDE:
            return "minatar_cnn"
        if layout is not None and layout[:2] == (NATURE_SIDE, NATURE_SIDE):
            return "nature_cnn"
        raise SaclabError(f"no encoder for observations of shape {obs_shape}: flat vectors, HxWxC images with "
                          f"H, W <= {MINATAR_MAX_SIDE} and {NATURE_SIDE}x{NATURE_SIDE} frames are handled")
    if name != "mlp" and layout is None:
        raise SaclabError(f"encoder {name} needs HxWxC image observations, got shape {obs_shape}")
    if name == "nature_cnn" and min(layout[:2]) < 36:  # the three convs need 36x36 at least
        raise SaclabError(f"encoder nature_cnn needs images of at least 36x36, got shape {obs_shape}")
    return name


def as_observations(obs: jax.Array, obs_shape: tuple[int, ...]) -> jax.Array:
    """``obs`` shaped (..., *obs_shape): buffers and datasets store images flattened, (B, obs_dim),
    and they are unflattened here, inside the jitted call."""
    n = len(obs_shape)
    if tuple(obs.shape[obs.ndim - n:]) == tuple(obs_shape):
        return obs
    return obs.reshape(*obs.shape[:-1], *obs_shape)


def _pixels(obs: jax.Array) -> jax.Array:
    """Float inputs: uint8 pixels scaled by 1/255 to [0, 1]; bool channels (MinAtar) 0/1, unscaled."""
    if obs.dtype == jnp.uint8:
        return obs.astype(jnp.float32) / 255.0
    return obs.astype(jnp.float32)


def conv_valid(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int = 1) -> jax.Array:
    """An unpadded convolution as one matrix product (im2col): (B, H, W, C), (k, k, C, F) ->
    (B, (H - k) // s + 1, (W - k) // s + 1, F), the same numbers as ``lax.conv`` up to rounding.

    XLA:CPU runs a convolution inside a loop (a ``lax.scan`` of updates) 5-10x slower than at
    top level, and a matrix product at full speed in both (a whole Nature-CNN update, its twin
    critics vmapped, is 1.6-1.7x faster this way even at top level: bench/README.md).

    A stride s that divides k is first folded into the channels (space to depth: s x s pixels
    become one of s*s*C channels, the kernel regrouped to (k/s, k/s, s*s*C, F)), which leaves a
    stride-1 convolution over the k/s x k/s shifted views."""
    k, features = kernel.shape[0], kernel.shape[-1]
    if stride > 1:
        if k % stride:
            raise SaclabError(f"conv_valid needs the stride ({stride}) to divide the kernel size ({k})")
        *lead, h, w, c = x.shape
        h, w, m = h // stride, w // stride, k // stride
        x = x[..., : h * stride, : w * stride, :].reshape(*lead, h, stride, w, stride, c)
        x = jnp.swapaxes(x, -4, -3).reshape(*lead, h, w, stride * stride * c)  # (row, col, C) per block
        kernel = kernel.reshape(m, stride, m, stride, c, features).transpose(0, 2, 1, 3, 4, 5)
        k, kernel = m, kernel.reshape(m, m, stride * stride * c, features)
    h, w = x.shape[-3] - k + 1, x.shape[-2] - k + 1
    views = [x[..., i:i + h, j:j + w, :] for i in range(k) for j in range(k)]  # (kh, kw) order, as the kernel
    patches = jnp.concatenate(views, axis=-1)  # (B, h, w, k*k*C): (kh, kw, C) flattened
    return patches @ kernel.reshape(-1, features) + bias


class StridedConv(nn.Module):
    """``nn.Conv`` with VALID padding and its parameters (``kernel`` (k, k, C, F), ``bias``), computed
    by ``conv_valid``: a checkpoint of either loads into the other."""

    features: int
    kernel_size: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv_valid(x, kernel, bias, self.stride)


class MinAtarEncoder(nn.Module):
    """Young & Tian (2019): Conv 3x3, 16 channels, stride 1, no padding, ReLU; flattened.  (B, H, W, C) -> (B, F)."""

    channels_first: bool = False
    features: int = 16

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _pixels(obs)
        if self.channels_first:
            x = jnp.moveaxis(x, -3, -1)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x = nn.relu(conv_valid(x, kernel, bias))
        return x.reshape(*x.shape[:-3], -1)


class NatureEncoder(nn.Module):
    """Mnih et al. (2015): 8x8/4 32, 4x4/2 64, 3x3/1 64 convs and 512 units, ReLU.  (B, H, W, C) -> (B, 512)."""

    channels_first: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _pixels(obs)
        if self.channels_first:
            x = jnp.moveaxis(x, -3, -1)
        for i, (features, kernel, stride) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            x = nn.relu(StridedConv(features, kernel, stride, name=f"Conv_{i}")(x))  # nn.Conv's names
        return nn.relu(nn.Dense(512)(x.reshape(*x.shape[:-3], -1)))


class MLP(nn.Module):
    """ReLU multilayer perceptron with a linear output layer."""

    hidden_sizes: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


class EncodedMLP(nn.Module):
    """An encoder and an MLP head: (B, *obs_shape) -> (B, out_dim).  With ``mlp`` the observation
    goes to the head directly (flattened if it has more than one axis)."""

    encoder: str
    obs_shape: tuple[int, ...]
    hidden_sizes: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        obs = as_observations(obs, self.obs_shape)
        channels_first = bool((_image_layout(self.obs_shape) or (0, 0, 0, False))[3])
        if self.encoder == "minatar_cnn":
            x = MinAtarEncoder(channels_first)(obs)
        elif self.encoder == "nature_cnn":
            x = NatureEncoder(channels_first)(obs)
        else:
            x = _pixels(obs).reshape(*obs.shape[: obs.ndim - len(self.obs_shape)], math.prod(self.obs_shape))
        return MLP(self.hidden_sizes, self.out_dim)(x)


def _flat(encoder: str, obs_shape: tuple[int, ...]) -> bool:
    # Flat observations keep the original MLP-only module tree: same parameters and checkpoints as before encoders.
    return encoder == "mlp" and len(obs_shape) == 1


class Actor(nn.Module):
    """Categorical policy: returns logits; log pi = log_softmax(logits)."""

    hidden_sizes: Sequence[int]
    num_actions: int
    encoder: str = "mlp"
    obs_shape: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if _flat(self.encoder, self.obs_shape) or not self.obs_shape:
            return MLP(self.hidden_sizes, self.num_actions)(_pixels(obs))
        return EncodedMLP(self.encoder, self.obs_shape, self.hidden_sizes, self.num_actions)(obs)


class TwinCritic(nn.Module):
    """Two independent Q-networks, each with its own encoder, evaluated together: output shape (2, batch, actions)."""

    hidden_sizes: Sequence[int]
    num_actions: int
    num_critics: int = 2
    encoder: str = "mlp"
    obs_shape: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        flat = _flat(self.encoder, self.obs_shape) or not self.obs_shape
        network = MLP if flat else EncodedMLP
        ensemble = nn.vmap(
            network,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        if flat:
            return ensemble(self.hidden_sizes, self.num_actions)(_pixels(obs))
        return ensemble(self.encoder, self.obs_shape, self.hidden_sizes, self.num_actions)(obs)
