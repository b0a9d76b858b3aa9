"""Collecting datasets: run a behaviour policy in a vector env and record transitions.

All sub-envs step in lockstep with one batched policy call per step.
Gymnasium 1.x vector envs reset a finished sub-env on the *next* step (that
step ignores the action and returns the reset observation with reward 0), so
that reset step is never recorded: after a sub-env terminates or truncates,
its next transition is skipped and the one after starts a new episode.
Each episode is stored contiguously (``episode_starts`` marks its first
transition); episodes are ordered by the step they ended at, then by sub-env.

Behaviour policies (``collect(policy, ...)``):

* ``"greedy"``      argmax pi(a|s) of a trained ``agent`` (a ``saclab.Policy``);
* ``"stochastic"``  a ~ pi(.|s) of the agent;
* ``"epsilon"``     greedy, but a uniformly random action with probability ``epsilon``;
* ``"random"``      uniformly random actions;
* an ``ActionFn``   any function from an observation batch (B, obs_dim) to actions (B,)
                    (e.g. a scripted controller).

``epsilon`` > 0 mixes uniform actions into any of them.  Everything is
reproducible from ``seed``.  Data-quality tiers built on this (expert, medium,
replay) are in ``saclab.runs.tiers``: they need a finished run.
"""

from __future__ import annotations

import types
from typing import Any

import gymnasium as gym
import numpy as np

from saclab.core.types import Transition, observation_array
from saclab.data.dataset import Dataset, provenance
from saclab.envs.evaluate import ActionFn
from saclab.envs.make import make_vector_env, registered_episode_limit
from saclab.errors import SaclabError
from saclab.runtime import progress_bar

POLICY_KINDS = ("greedy", "stochastic", "epsilon", "random")


def make_collection_env(env_id: str, num_envs: int, max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    """A vector env (``envs.make_vector_env``) whose finished sub-envs reset on the next step,
    the autoreset mode ``_run`` relies on."""
    env = make_vector_env(env_id, num_envs, max_episode_steps)
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        env.close()
        raise SaclabError(f"{env_id}: collection needs next-step autoreset, the vector env uses {mode}")
    return env


# ---------------------------------------------------------------------------------------
# Behaviour policies
# ---------------------------------------------------------------------------------------
def behaviour_policy(
    policy: str | ActionFn,
    num_actions: int,
    seed: int,
    agent: Any = None,
    epsilon: float = 0.0,
) -> ActionFn:
    """The acting function of a policy kind (or a callable), with epsilon-random actions mixed in.

    ``agent`` is a trained ``saclab.Policy`` (for greedy, stochastic, epsilon).
    Random draws come from generators seeded by ``seed``.
    """
    import jax

    if not 0.0 <= epsilon <= 1.0:
        raise SaclabError(f"epsilon must be in [0, 1], got {epsilon}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC011]))
    if callable(policy):
        base = policy
    elif policy == "random":
        def base(obs: np.ndarray) -> np.ndarray:
            return rng.integers(num_actions, size=len(obs))
    elif policy in ("greedy", "epsilon", "stochastic"):
        if agent is None:
            raise SaclabError(f"policy {policy!r} needs a checkpoint (a trained agent)")
        if policy == "epsilon" and epsilon <= 0.0:
            raise SaclabError("policy 'epsilon' needs epsilon > 0")
        if policy == "stochastic":
            key = jax.random.PRNGKey(seed)
            calls = [0]

            def base(obs: np.ndarray) -> np.ndarray:
                calls[0] += 1
                return agent.act(obs, greedy=False, key=jax.random.fold_in(key, calls[0]))
        else:
            def base(obs: np.ndarray) -> np.ndarray:
                return agent.act(obs)
    else:
        raise SaclabError(f"unknown policy {policy!r} (choose from {', '.join(POLICY_KINDS)} or pass a callable)")
    if epsilon <= 0.0:
        return base

    def mixed(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(base(obs)).copy()
        explore = rng.random(len(obs)) < epsilon
        actions[explore] = rng.integers(num_actions, size=int(explore.sum()))
        return actions

    return mixed


# ---------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------
def collect(
    policy: str | ActionFn,
    env_id: str | None = None,
    episodes: int | None = None,
    steps: int | None = None,
    agent: Any = None,
    epsilon: float = 0.0,
    seed: int = 0,
    max_episode_steps: int | None = None,
    num_envs: int = 16,
    progress: bool | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dataset:
    """Run a behaviour policy and return its transitions as a ``Dataset``.

    Args:
        policy: "greedy", "stochastic", "epsilon" (need ``agent``), "random", or a
            callable from an observation batch to actions.
        env_id: Gymnasium id (default: the agent's env).
        episodes: collect exactly this many complete episodes (sub-env i runs its share).
        steps: or collect exactly this many transitions (the last episodes may be cut short:
            their final transition is then neither terminated nor truncated).
        agent: a trained agent (``saclab.Policy.load(run_dir)``).
        epsilon: probability of a uniformly random action instead of the policy's.
        seed: seeds the env resets and every random draw.
        max_episode_steps: time-limit truncation (None: the env's registered limit).
        num_envs: sub-envs stepped in lockstep.
        progress: show a progress bar (None: only on a terminal).
        metadata: extra provenance stored with the dataset.
    """
    if (episodes is None) == (steps is None):
        raise SaclabError("give exactly one budget: episodes or steps")
    budget = episodes if episodes is not None else steps
    if budget is None or budget < 1:
        raise SaclabError(f"the collection budget must be >= 1, got {budget}")
    if num_envs < 1:
        raise SaclabError(f"num_envs must be >= 1, got {num_envs}")
    if agent is not None:
        if env_id is not None and env_id != agent.config.env:
            raise SaclabError(f"the checkpoint was trained on {agent.config.env}, not {env_id}")
        env_id = agent.config.env
    if env_id is None:
        raise SaclabError("give an env id (or a checkpoint to take it from)")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise SaclabError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if episodes is not None:
        num_envs = min(num_envs, episodes)

    env = make_collection_env(env_id, num_envs, max_episode_steps)
    try:
        obs_shape = tuple(int(n) for n in env.single_observation_space.shape)
        obs_dim, num_actions = int(np.prod(obs_shape)), int(env.single_action_space.n)
        act = behaviour_policy(policy, num_actions, seed, agent, epsilon)
        transitions, starts = _run(env, act, num_envs, episodes, steps, seed, progress)
    finally:
        env.close()

    kind = policy if isinstance(policy, str) else getattr(policy, "__name__", "callable")
    cap = max_episode_steps if max_episode_steps is not None else registered_episode_limit(env_id)
    config = types.SimpleNamespace(env=env_id, max_episode_steps=cap)
    meta = provenance(config, seed, f"collect: {kind} policy", obs_dim, num_actions, obs_shape)
    meta.update({"policy": kind, "epsilon": float(epsilon), "checkpoint": str(agent.path) if agent else None,
                 "num_envs": num_envs, "budget": {"episodes": episodes} if episodes else {"steps": steps}})
    meta.update(metadata or {})
    return Dataset.from_transitions(transitions, starts, meta)


def _run(env: gym.vector.VectorEnv, act: ActionFn, num_envs: int, episodes: int | None, steps: int | None,
         seed: int, progress: bool | None) -> tuple[Transition, np.ndarray]:
    """Step the vector env until the budget is met; returns the transitions, episodes contiguous,
    and their episode starts."""
    if episodes is not None:
        quota = np.full(num_envs, episodes // num_envs)
        quota[: episodes % num_envs] += 1
    else:
        quota = np.full(num_envs, np.iinfo(np.int64).max)
    completed = np.zeros(num_envs, np.int64)
    resetting = np.zeros(num_envs, bool)  # the next step of these sub-envs is an autoreset step
    record: list[Transition] = []  # one per step, (num_envs,) arrays
    valid_steps: list[np.ndarray] = []
    recorded = 0
    bar = progress_bar(episodes or steps or 0, desc="collect", enabled=progress)
    obs, _ = env.reset(seed=seed)
    try:
        while (completed < quota).any() if episodes is not None else recorded < steps:
            actions = np.asarray(act(observation_array(obs)))
            next_obs, rewards, terminated, truncated, _ = env.step(actions)
            valid = ~resetting & (completed < quota)
            ended = np.asarray(terminated | truncated)
            record.append(Transition(observation_array(np.array(obs)).reshape(num_envs, -1), *(np.array(v) for v in (
                actions, rewards)), observation_array(np.array(next_obs)).reshape(num_envs, -1), np.array(terminated),
                np.array(truncated)))  # images flat, uint8/bool kept: the dataset's layout
            valid_steps.append(valid)
            finished = valid & ended
            completed += finished
            recorded += int(valid.sum())
            bar.update(int(finished.sum()) if episodes is not None else int(valid.sum()))
            resetting = ended
            obs = next_obs
    finally:
        bar.close()
    return _episodes_contiguous(Transition.stack(record), np.stack(valid_steps), steps)


def _episodes_contiguous(record: Transition, valid: np.ndarray, steps: int | None) -> tuple[Transition, np.ndarray]:
    """Regroup time-major (T, num_envs) records into contiguous episodes (and their starts).

    Complete episodes come first, ordered by (end step, sub-env); unfinished ones follow
    in sub-env order; with a ``steps`` budget the result is cut to exactly ``steps`` rows.
    """
    ended = record.ended()
    pieces: list[tuple[tuple[int, int], int, np.ndarray]] = []  # (sort key, sub-env, its time indices)
    for i in range(valid.shape[1]):
        times = np.flatnonzero(valid[:, i])
        start = 0
        for end in np.flatnonzero(ended[times, i]):
            pieces.append(((0, int(times[end]) * valid.shape[1] + i), i, times[start:end + 1]))
            start = end + 1
        if start < len(times):
            pieces.append(((1, i), i, times[start:]))
    pieces.sort(key=lambda piece: piece[0])
    t = np.concatenate([times for _, _, times in pieces])
    e = np.concatenate([np.full(len(times), i) for _, i, times in pieces])
    starts = np.concatenate([np.arange(len(times)) == 0 for _, _, times in pieces])
    if steps is not None:
        t, e, starts = t[:steps], e[:steps], starts[:steps]
    return record.take((t, e)), starts


__all__ = ["collect", "behaviour_policy", "make_collection_env", "POLICY_KINDS"]
