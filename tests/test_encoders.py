"""Observation encoders: which one each shape gets, and the shapes through them, checked by hand."""

import jax
import numpy as np
import pytest

from saclab.config import SACConfig, preset
from saclab.core.agent import Learner, init_state, update
from saclab.core.networks import NatureEncoder, StridedConv, conv_valid, resolve_encoder
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.errors import SaclabError
from saclab.runs.checkpoint import pytree_to_arrays


def shapes(params) -> dict:
    return {k: v.shape for k, v in pytree_to_arrays(params).items()}


@pytest.mark.parametrize(("shape", "expected"), [
    ((4,), "mlp"), ((10, 10, 4), "minatar_cnn"), ((10, 10, 7), "minatar_cnn"), ((84, 84, 4), "nature_cnn"),
    ((4, 84, 84), "nature_cnn"),
])
def test_auto_picks_the_encoder_from_the_shape(shape, expected):
    assert resolve_encoder("auto", shape) == expected


def test_encoders_that_do_not_fit_the_shape_are_refused():
    with pytest.raises(SaclabError, match="no encoder"):
        resolve_encoder("auto", (40, 40, 3))
    with pytest.raises(SaclabError, match="image"):
        resolve_encoder("minatar_cnn", (4,))
    with pytest.raises(SaclabError, match="36x36"):
        resolve_encoder("nature_cnn", (10, 10, 4))
    with pytest.raises(SaclabError, match="encoder"):
        SACConfig(encoder="resnet")
    assert resolve_encoder("mlp", (10, 10, 4)) == "mlp"  # an image flattened into an MLP is allowed


def test_flat_observations_keep_the_mlp_parameter_tree():
    learner = Learner.from_config(preset("test"), EnvSpec("CartPole-v1", 4, 2))
    state = init_state(learner, jax.random.PRNGKey(0))
    assert learner.encoder == "mlp"
    assert shapes(state.actor_params) == {"['MLP_0']['Dense_0']['bias']": (64,),
                                          "['MLP_0']['Dense_0']['kernel']": (4, 64),
                                          "['MLP_0']['Dense_1']['bias']": (64,),
                                          "['MLP_0']['Dense_1']['kernel']": (64, 64),
                                          "['MLP_0']['Dense_2']['bias']": (2,),
                                          "['MLP_0']['Dense_2']['kernel']": (64, 2)}


def test_minatar_network_shapes():
    # 10x10x4 -> 3x3 conv, 16 channels, VALID, stride 1 -> 8x8x16 = 1024 features -> 64 -> 64 -> 3 actions
    spec = EnvSpec.of_shape("gymnax:Breakout-MinAtar", (10, 10, 4), 3)
    learner = Learner.from_config(preset("test"), spec)
    state = init_state(learner, jax.random.PRNGKey(0))
    actor = shapes(state.actor_params)
    assert actor["['EncodedMLP_0']['MinAtarEncoder_0']['kernel']"] == (3, 3, 4, 16)
    assert actor["['EncodedMLP_0']['MLP_0']['Dense_0']['kernel']"] == (1024, 64)
    assert actor["['EncodedMLP_0']['MLP_0']['Dense_2']['kernel']"] == (64, 3)
    critic = shapes(state.critic_params)  # each twin critic its own encoder: a leading axis of 2
    assert critic["['VmapEncodedMLP_0']['MinAtarEncoder_0']['kernel']"] == (2, 3, 3, 4, 16)
    obs = np.random.default_rng(0).integers(0, 2, size=(5, 10, 10, 4)).astype(np.float32)
    assert learner.actor.apply({"params": state.actor_params}, obs).shape == (5, 3)
    q = learner.critic.apply({"params": state.critic_params}, obs)
    assert q.shape == (2, 5, 3)
    assert not np.array_equal(q[0], q[1])  # independent encoders and heads


def test_nature_network_shapes_and_uint8_scaling():
    # 84 -> (84-8)/4+1 = 20 -> (20-4)/2+1 = 9 -> 9-3+1 = 7: 7*7*64 = 3136 -> 512 -> hidden -> actions
    spec = EnvSpec.of_shape("Pong", (84, 84, 4), 6, "uint8")
    learner = Learner.from_config(preset("test").replace(hidden_sizes=(32,)), spec)
    state = init_state(learner, jax.random.PRNGKey(0))
    actor = shapes(state.actor_params)
    assert actor["['EncodedMLP_0']['NatureEncoder_0']['Conv_0']['kernel']"] == (8, 8, 4, 32)
    assert actor["['EncodedMLP_0']['NatureEncoder_0']['Conv_2']['kernel']"] == (3, 3, 64, 64)
    assert actor["['EncodedMLP_0']['NatureEncoder_0']['Dense_0']['kernel']"] == (3136, 512)
    assert actor["['EncodedMLP_0']['MLP_0']['Dense_0']['kernel']"] == (512, 32)
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 84, 84, 4)).astype(np.uint8)
    logits_uint8 = learner.actor.apply({"params": state.actor_params}, pixels)
    logits_scaled = learner.actor.apply({"params": state.actor_params}, pixels.astype(np.float32) / 255.0)
    np.testing.assert_allclose(logits_uint8, logits_scaled, rtol=1e-6, atol=1e-6)
    # a channel-first stack (4, 84, 84) is the same network on the transposed frames
    chw = Learner.from_config(preset("test").replace(hidden_sizes=(32,)), EnvSpec.of_shape("Pong", (4, 84, 84), 6))
    np.testing.assert_allclose(chw.actor.apply({"params": state.actor_params}, pixels.transpose(0, 3, 1, 2)),
                               logits_uint8, rtol=1e-6, atol=1e-6)


def test_update_runs_on_images_with_the_losses_unchanged():
    spec = EnvSpec.of_shape("gymnax:Breakout-MinAtar", (10, 10, 4), 3)
    learner = Learner.from_config(preset("test").replace(cql_weight=1.0), spec)
    r = np.random.default_rng(0)
    n = 8
    obs = r.integers(0, 2, size=(n, 10, 10, 4))
    batch = batch_from_numpy(obs, r.integers(0, 3, n), r.normal(size=n), obs[::-1], r.random(n) < 0.2)
    state, metrics = update(learner, init_state(learner, jax.random.PRNGKey(0)), batch)
    assert all(np.isfinite(float(metrics[k])) for k in ("critic_loss", "cql_penalty", "actor_loss", "alpha_loss"))
    assert int(state.updates) == 1


def test_env_spec_shape_and_size():
    assert EnvSpec("CartPole-v1", 4, 2).obs_shape == (4,)
    spec = EnvSpec.of_shape("x", (10, 10, 4), 3)
    assert spec.obs_dim == 400 and spec.obs_shape == (10, 10, 4)
    with pytest.raises(ValueError):
        EnvSpec("x", 5, 2, (10, 10, 4))


def test_the_minatar_convolution_is_a_3x3_valid_convolution():
    r = np.random.default_rng(0)
    x = r.normal(size=(2, 10, 10, 4)).astype(np.float32)
    kernel = r.normal(size=(3, 3, 4, 16)).astype(np.float32)
    bias = r.normal(size=16).astype(np.float32)
    expected = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv_valid(x, kernel, bias), expected + bias, rtol=1e-5, atol=1e-5)
    # one output by hand: position (0, 0) of channel 0 sums the top-left 3x3x4 window times the kernel
    by_hand = float(np.sum(x[0, :3, :3, :] * kernel[..., 0]) + bias[0])
    assert float(conv_valid(x, kernel, bias)[0, 0, 0, 0]) == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("kernel_size, stride, side", [(8, 4, 84), (4, 2, 20), (3, 1, 9), (8, 4, 87), (4, 2, 11)])
def test_the_strided_convolution_is_lax_conv(kernel_size, stride, side):
    """conv_valid folds a stride into the channels (space to depth); the Nature CNN's three
    layers, and sides the stride does not divide (the last rows and columns unused, as VALID)."""
    r = np.random.default_rng(kernel_size + side)
    x = r.normal(size=(2, side, side + 1, 3)).astype(np.float32)
    kernel = r.normal(size=(kernel_size, kernel_size, 3, 5)).astype(np.float32)
    bias = r.normal(size=5).astype(np.float32)
    expected = jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    got = conv_valid(x, kernel, bias, stride)
    out_h, out_w = (side - kernel_size) // stride + 1, (side + 1 - kernel_size) // stride + 1
    assert got.shape == expected.shape == (2, out_h, out_w, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # output (0, 1, 0): the window starting at row 0, column `stride`, by hand
    window = x[0, :kernel_size, stride:stride + kernel_size, :]
    assert float(got[0, 0, 1, 0]) == pytest.approx(float(np.sum(window * kernel[..., 0]) + bias[0]), rel=1e-4)
    with pytest.raises(SaclabError, match="divide"):
        conv_valid(x, kernel[:3, :3], bias, 2)


def test_the_nature_encoder_has_nn_conv_parameters_and_outputs():
    """StridedConv keeps nn.Conv's parameter names, shapes and initial values (checkpoints of
    either load into the other) and computes the same convolution."""
    import flax.linen as nn

    class ConvNature(nn.Module):  # the encoder as written with nn.Conv
        @nn.compact
        def __call__(self, x):
            for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
                x = nn.relu(nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="VALID")(x))
            return nn.relu(nn.Dense(512)(x.reshape(*x.shape[:-3], -1)))

    x = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4)).astype(np.uint8)
    ours = NatureEncoder().init(jax.random.PRNGKey(3), x)
    theirs = ConvNature().init(jax.random.PRNGKey(3), x.astype(np.float32) / 255.0)
    flat_ours, flat_theirs = (jax.tree_util.tree_flatten_with_path(p)[0] for p in (ours, theirs))
    assert [k for k, _ in flat_ours] == [k for k, _ in flat_theirs]
    for (_, a), (_, b) in zip(flat_ours, flat_theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(NatureEncoder().apply(ours, x), ConvNature().apply(ours, x.astype(np.float32) / 255.0),
                               rtol=1e-4, atol=1e-5)
    assert StridedConv(8, 4, 2).init(jax.random.PRNGKey(0), x[..., :1].astype(np.float32))["params"]["kernel"].shape \
        == (4, 4, 1, 8)
