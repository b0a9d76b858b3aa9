"""The exported actor as an ONNX graph (``saclab export --onnx``; needs the ``onnx`` extra).

The graph is the same MLP as ``saclab.inference``: input ``observations`` float32 (N, obs_dim);
outputs ``logits`` float32 (N, num_actions) and ``action`` int64 (N,), the argmax of the logits (the
greedy action saclab evaluates).  Layers are MatMul + Add with Relu between them, opset 17, so any
ONNX runtime (onnxruntime, ONNX's reference evaluator, TensorRT, ...) runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from saclab.errors import SaclabError
from saclab.files import atomic_write

ONNX_FILE = "actor.onnx"
OPSET = 17


def import_onnx():
    """The ``onnx`` package, or a one-line error naming the extra."""
    try:
        import onnx
    except ImportError:
        raise SaclabError("ONNX export needs the onnx package: pip install 'saclab[onnx]'") from None
    return onnx


def actor_graph(layers: list[tuple[np.ndarray, np.ndarray]], obs_dim: int, num_actions: int, name: str = "saclab"):
    """An ``onnx.ModelProto`` of logits = W_L relu(... relu(obs W_1 + b_1) ...) + b_L and action = argmax(logits)."""
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes, x = [], [], "observations"
    for k, (weight, bias) in enumerate(layers):
        initializers += [numpy_helper.from_array(np.asarray(weight, np.float32), f"layers.{k}.weight"),
                         numpy_helper.from_array(np.asarray(bias, np.float32), f"layers.{k}.bias")]
        last = k == len(layers) - 1
        nodes += [helper.make_node("MatMul", [x, f"layers.{k}.weight"], [f"matmul_{k}"]),
                  helper.make_node("Add", [f"matmul_{k}", f"layers.{k}.bias"], ["logits" if last else f"dense_{k}"])]
        if not last:
            nodes.append(helper.make_node("Relu", [f"dense_{k}"], [f"relu_{k}"]))
            x = f"relu_{k}"
    nodes.append(helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, f"{name}_actor",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["N", obs_dim])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_actions]),
         helper.make_tensor_value_info("action", TensorProto.INT64, ["N"])],
        initializers)
    model = helper.make_model(graph, producer_name="saclab", opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def write_onnx(out: str | os.PathLike, layers: list[tuple[np.ndarray, np.ndarray]], obs_dim: int,
               num_actions: int) -> Path:
    """Write ``actor.onnx`` in the directory ``out`` (atomically); returns its path."""
    model = actor_graph(layers, obs_dim, num_actions)
    path = Path(out) / ONNX_FILE
    atomic_write(path, lambda tmp: tmp.write_bytes(model.SerializeToString()))
    return path


__all__ = ["ONNX_FILE", "actor_graph", "write_onnx", "import_onnx"]
