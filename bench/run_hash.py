"""A fingerprint of one short compiled run: "same seed, same machine, same numbers" checked across processes.

Trains gymnax CartPole-v1 (preset test, 2,000 steps, 2 updates per step, seed 1) in the compiled
loop and prints a SHA-256 prefix of the final parameters, optimiser states, metrics.jsonl and the
evaluation rows.  Two processes on one machine must print the same line; a difference means
non-deterministic kernels (on a GPU, XLA's scatter-adds use atomics unless
``XLA_FLAGS=--xla_gpu_deterministic_ops=true``).

    python bench/run_hash.py
"""

from __future__ import annotations

import csv
import hashlib
import tempfile

import jax
import numpy as np

from saclab.config import preset
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.online import train_online


def main() -> None:
    digest = hashlib.sha256()
    config = preset("test").replace(env="gymnax:CartPole-v1", total_steps=2000, updates_per_step=2,
                                    eval_every_episodes=3)
    with tempfile.TemporaryDirectory() as d:
        result = train_online(config, seed=1, run_dir=f"{d}/run", progress=False, tensorboard=False,
                              save_replay=False)
        for _, value in sorted(pytree_to_arrays(result.state).items()):
            digest.update(np.ascontiguousarray(value).tobytes())
        with open(f"{d}/run/metrics.jsonl", "rb") as f:
            digest.update(f.read())
        with open(f"{d}/run/evaluations.csv") as f:
            rows = [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]
        digest.update(repr(rows).encode())
    print(f"{digest.hexdigest()[:16]}  ({jax.devices()[0].device_kind}, final return {result.final_return:.1f})")


if __name__ == "__main__":
    main()
