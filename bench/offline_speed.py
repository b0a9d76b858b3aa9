"""Offline epoch speed over a 150k-transition dataset (notebook configuration), in one run.

* floor          the 39 GEMMs of one SAC+CQL update, timed bare (from update_speed.py)
* saclab epoch   one epoch = one jitted scan over all N // 100 minibatches, CQL weight 5
* evaluation     100 greedy episodes of 200 steps in one vector env (one batched forward per step)
* notebook       the notebook's epoch (``train_networks`` with ``batch_deterministic_start``) and its
                 100 evaluation episodes, single forwards (needs --torch-python; the epoch is timed
                 on --notebook-updates minibatches and scaled to the full epoch)

    taskset -c 1 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        python bench/offline_speed.py --torch-python /path/to/torch-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from update_speed import REFERENCE, floor_products, time_call  # noqa: E402

from saclab.config import preset  # noqa: E402
from saclab.core.agent import Learner, greedy_action, init_state, update_epoch  # noqa: E402
from saclab.core.types import (
    EnvSpec,  # noqa: E402
    batch_from_numpy,  # noqa: E402
)
from saclab.envs.evaluate import Evaluator  # noqa: E402
from saclab.runs.epochs import epoch_indices  # noqa: E402
from saclab.runtime import enable_compilation_cache  # noqa: E402


def balancing_action(obs: np.ndarray) -> np.ndarray:
    """A scripted CartPole controller (keeps episodes at the 200-step cap, the costly case)."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def notebook_times(torch_python: str, transitions: int, updates: int, episodes: int) -> dict[str, float]:
    code = f"""
import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {str(REFERENCE.parent)!r})
import seed_reference as ref
import gymnasium as gym
env = ref.OldGymAPI(gym.make('CartPole-v1'), seed=0)
agent = ref.SACAgent(env)
rng = np.random.default_rng(0)
for i in range({transitions}):
    s = rng.normal(size=4).astype(np.float32)
    agent.replay_buffer.add_transition((s, int(i % 2), 1.0, s, False))
agent.offline = True
t = time.perf_counter()
for b in range({updates}):
    agent.train_networks(transition=None, batch_deterministic_start=b * 100)
per_update = (time.perf_counter() - t) / {updates}
t = time.perf_counter()
for _ in range({episodes}):
    state = env.reset()
    for _ in range(200):
        state, _, done, _ = env.step(int(state[2] + 0.5 * state[3] > 0))
        agent.get_next_action(state, evaluation_episode=True)
        if done:
            break
per_episode = (time.perf_counter() - t) / {episodes}
print(json.dumps({{"per_update": per_update, "per_episode": per_episode}}))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([torch_python, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--transitions", type=int, default=150_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch-python", default=None)
    p.add_argument("--notebook-updates", type=int, default=300)
    p.add_argument("--notebook-episodes", type=int, default=10)
    args = p.parse_args()
    enable_compilation_cache()
    n = args.transitions
    config = preset("notebook").replace(cql_weight=5.0)
    learner = Learner.from_config(config, EnvSpec("CartPole-v1", 4, 2))
    r = np.random.default_rng(0)
    data = jax.device_put(batch_from_numpy(r.normal(size=(n, 4)), r.integers(0, 2, n), np.ones(n),
                                           r.normal(size=(n, 4)), r.random(n) < 0.05))
    rng = np.random.default_rng(0)
    updates = n // config.batch_size
    state = init_state(learner, jax.random.PRNGKey(0))

    def epoch():
        nonlocal state
        state, metrics = update_epoch(learner, state, data, jnp.asarray(epoch_indices(rng, n, config.batch_size)))
        return metrics

    epoch_s = time_call(epoch, args.repeats)
    run, w, xs = floor_products(300)
    floor_rate = 300 / time_call(lambda: run(w, xs), args.repeats)

    evaluator = Evaluator("CartPole-v1", 100, 200)

    def policy(obs):
        np.asarray(greedy_action(learner, state.actor_params, obs))  # the network's cost, every step
        return balancing_action(obs)

    evaluator.run(policy, 0)
    eval_s = statistics.median(_timed(lambda: evaluator.run(policy, 1)) for _ in range(args.repeats))

    rate = updates / epoch_s
    print(f"dataset {n} transitions, {updates} minibatches of {config.batch_size}, CQL weight 5")
    print(f"floor: {floor_rate:.0f} updates/s; saclab epoch: {epoch_s:.2f} s = {rate:.0f} updates/s "
          f"= {rate / floor_rate:.2f}x floor")
    print(f"evaluation, 100 episodes x 200 steps: {eval_s:.3f} s")
    out = {"epoch_s": epoch_s, "updates_per_s": rate, "floor_updates_per_s": floor_rate, "eval_100_s": eval_s}
    if args.torch_python:
        nb = notebook_times(args.torch_python, n, args.notebook_updates, args.notebook_episodes)
        nb_epoch, nb_eval = nb["per_update"] * updates, nb["per_episode"] * 100
        print(f"notebook: epoch {nb_epoch:.1f} s (from {args.notebook_updates} minibatches), evaluation "
              f"{nb_eval:.2f} s (from {args.notebook_episodes} episodes)")
        print(f"saclab vs notebook: epoch {nb_epoch / epoch_s:.1f}x, evaluation {nb_eval / eval_s:.1f}x, "
              f"epoch + evaluation {(nb_epoch + nb_eval) / (epoch_s + eval_s):.1f}x")
        out.update(notebook_epoch_s=nb_epoch, notebook_eval_100_s=nb_eval)
    print(json.dumps({k: round(v, 4) for k, v in out.items()}))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
