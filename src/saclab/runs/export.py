"""Exporting a trained run's actor for deployment: safetensors weights and a JSON spec that
``saclab.inference`` runs with NumPy alone (the format is in that module's docstring)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from saclab.errors import SaclabError
from saclab.files import atomic_write, write_json
from saclab.inference import FORMAT, FORMAT_VERSION, SPEC_FILE, WEIGHTS_FILE
from saclab.runs.onnx_export import ONNX_FILE, import_onnx, write_onnx
from saclab.runs.policy import Policy
from saclab.version import __version__


def actor_layers(actor_params: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The actor's dense layers in order, (kernel (in, out), bias (out,)) float32: the flat-observation
    MLP of ``core.networks.Actor`` (parameters ``MLP_0/Dense_K``); other actors are refused."""
    mlp = actor_params.get("MLP_0") if isinstance(actor_params, dict) and len(actor_params) == 1 else None
    names = [f"Dense_{k}" for k in range(len(mlp))] if isinstance(mlp, dict) else []
    if not names or set(names) != set(mlp):
        raise SaclabError("saclab export handles MLP actors on flat observations only (not image encoders)")
    return [(np.asarray(mlp[n]["kernel"], np.float32), np.asarray(mlp[n]["bias"], np.float32)) for n in names]


def export_policy(run: str | os.PathLike, out: str | os.PathLike, force: bool = False, onnx: bool = False) -> Path:
    """Write the actor of ``run`` (a run or checkpoint directory) to the directory ``out``, and with
    ``onnx`` also as ``actor.onnx`` (``runs.onnx_export``; needs the onnx package).

    Refuses an ``out`` that holds anything unless ``force``; the files are written atomically.
    """
    if onnx:
        import_onnx()  # before any file is written
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SaclabError(f"--out {out} is a file, expected a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SaclabError(f"{out} is not empty (pass --force to overwrite it)")
    policy = Policy.load(run)
    layers = actor_layers(policy.state.actor_params)
    if policy.obs_dtype != "float32":  # the network scales uint8 by 1/255 first; the NumPy MLP does not
        raise SaclabError(f"saclab export handles MLP actors on float32 observations only, not {policy.obs_dtype}")
    learner = policy.learner
    spec = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": "mlp", "activation": "relu",
            "obs_dim": learner.obs_dim, "num_actions": learner.num_actions,
            "hidden_sizes": list(learner.hidden_sizes), "layers": [f"layers.{k}" for k in range(len(layers))],
            "output": "logits; action = argmax, probabilities = softmax",
            "env_id": policy.config.env or None, "algo": policy.config.algo, "cql_weight": policy.config.cql_weight,
            "source": str(policy.path), "saclab_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if force and out.is_dir():
        for name in (SPEC_FILE, WEIGHTS_FILE, ONNX_FILE):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, (weight, bias) in enumerate(layers):
        arrays[f"layers.{k}.weight"], arrays[f"layers.{k}.bias"] = weight, bias
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(arrays, str(tmp), metadata={"format": FORMAT}))
    if onnx:
        write_onnx(out, layers, learner.obs_dim, learner.num_actions)
    write_json(out / SPEC_FILE, spec)  # last: a directory with a spec is a complete export
    return out


__all__ = ["export_policy", "actor_layers"]
