"""A policy exported by ``saclab export``, run with NumPy alone (no JAX, Flax or Gymnasium).

An exported policy is a directory::

    policy.json          the spec: format, architecture (mlp), activation (relu), obs_dim, num_actions,
                         hidden_sizes, the layers' names, and provenance (env_id, source run, algo, ...)
    actor.safetensors    the actor's float32 weights: layers.K.weight (in, out) and layers.K.bias (out,)

The actor is logits = W_L relu(... relu(W_1 obs + b_1) ...) + b_L; the policy's action is
argmax of the logits (the greedy action saclab evaluates), its probabilities their softmax::

    from saclab.inference import load
    policy = load("policy/")
    actions = policy(observations)              # (N, obs_dim) -> (N,) int64; one observation -> an int
    probabilities = policy.probabilities(observations)

Loading checks the spec and every array's shape, with one ``SaclabError`` line; nothing is
unpickled.  Only this module, NumPy and safetensors are needed to deploy a policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from saclab.errors import SaclabError

FORMAT = "saclab-policy"
FORMAT_VERSION = 1
SPEC_FILE = "policy.json"
WEIGHTS_FILE = "actor.safetensors"


class ExportedPolicy:
    """The actor of a trained run as NumPy arrays: call it for greedy actions."""

    def __init__(self, spec: dict[str, Any], layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.spec = spec
        self.layers = layers
        self.obs_dim = int(spec["obs_dim"])
        self.num_actions = int(spec["num_actions"])

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """The actor's logits, (N, num_actions) float32, for observations (N, obs_dim)."""
        x = np.asarray(obs, np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise SaclabError(f"observations must have shape (N, {self.obs_dim}) or ({self.obs_dim},), "
                              f"got {np.shape(obs)}")
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)  # relu between layers, none after the last
        return x

    def probabilities(self, obs: np.ndarray) -> np.ndarray:
        """pi(.|obs) = softmax(logits), (N, num_actions) (or (num_actions,) for one observation)."""
        single = np.ndim(obs) == 1
        logits = self.logits(np.atleast_2d(obs))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # stable softmax
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return probabilities[0] if single else probabilities

    def __call__(self, obs: np.ndarray) -> Any:
        """Greedy actions argmax_a pi(a|obs): (N,) int64, or an int for one observation (obs_dim,)."""
        actions = np.argmax(self.logits(np.atleast_2d(obs)), axis=1).astype(np.int64)
        return int(actions[0]) if np.ndim(obs) == 1 else actions

    def __repr__(self) -> str:
        return (f"ExportedPolicy(obs_dim={self.obs_dim}, num_actions={self.num_actions}, "
                f"hidden_sizes={self.spec['hidden_sizes']}, env_id={self.spec.get('env_id')!r})")


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``policy.json`` of an exported policy directory."""
    path = Path(path)
    file = path / SPEC_FILE
    if not file.is_file():
        raise SaclabError(f"{path} is not an exported policy (no {SPEC_FILE}; make one with saclab export)")
    try:
        spec = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SaclabError(f"unreadable {file}: {e}".splitlines()[0]) from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise SaclabError(f"{file} is not a saclab policy spec (format must be {FORMAT!r})")
    if not isinstance(spec.get("format_version"), int) or spec["format_version"] > FORMAT_VERSION:
        raise SaclabError(f"{file}: policy format version {spec.get('format_version')!r} is not one this saclab "
                          f"reads ({FORMAT_VERSION})")
    if spec.get("architecture") != "mlp" or spec.get("activation") != "relu":
        raise SaclabError(f"{file}: unknown architecture {spec.get('architecture')!r} / activation "
                          f"{spec.get('activation')!r} (this saclab runs mlp with relu)")
    hidden = spec.get("hidden_sizes")
    if not (_is_size(spec.get("obs_dim")) and _is_size(spec.get("num_actions")) and isinstance(hidden, list)
            and all(_is_size(h) for h in hidden)):
        raise SaclabError(f"{file}: obs_dim, num_actions and hidden_sizes must be positive integers")
    return spec


def load(path: str | os.PathLike) -> ExportedPolicy:
    """The exported policy in directory ``path`` (``saclab export RUN --out path``)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    spec = read_spec(path)
    try:
        arrays = load_file(str(path / WEIGHTS_FILE))
    except (OSError, SafetensorError, ValueError) as e:
        raise SaclabError(f"unreadable {path / WEIGHTS_FILE}: {e}".splitlines()[0]) from None
    widths = [spec["obs_dim"], *spec["hidden_sizes"], spec["num_actions"]]
    layers = []
    for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        weight, bias = arrays.get(f"layers.{k}.weight"), arrays.get(f"layers.{k}.bias")
        if weight is None or bias is None or weight.shape != (fan_in, fan_out) or bias.shape != (fan_out,):
            raise SaclabError(f"{path / WEIGHTS_FILE}: layer {k} must be weight ({fan_in}, {fan_out}) and bias "
                              f"({fan_out},) as {SPEC_FILE} says")
        layers.append((np.asarray(weight, np.float32), np.asarray(bias, np.float32)))
    if len(arrays) != 2 * len(layers):
        raise SaclabError(f"{path / WEIGHTS_FILE}: {len(arrays)} arrays, {SPEC_FILE} describes {2 * len(layers)}")
    return ExportedPolicy(spec, layers)


__all__ = ["load", "read_spec", "ExportedPolicy", "FORMAT", "FORMAT_VERSION", "SPEC_FILE", "WEIGHTS_FILE"]
