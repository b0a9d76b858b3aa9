"""Collecting datasets: run a behaviour policy in a vector env and record transitions.

All sub-envs step in lockstep with one batched policy call per step.
Gymnasium 1.x vector envs reset a finished sub-env on the *next* step (that
step ignores the action and returns the reset observation with reward 0), so
that reset step is never recorded: after a sub-env terminates or truncates,
its next transition is skipped and the one after starts a new episode.
Each episode is stored contiguously (``episode_starts`` marks its first
transition); episodes are ordered by the step they ended at, then by sub-env.

Behaviour policies (``collect(policy, ...)``):

* ``"greedy"``      argmax pi(a|s) of a checkpoint;
* ``"stochastic"``  a ~ pi(.|s) of a checkpoint;
* ``"epsilon"``     greedy, but a uniformly random action with probability ``epsilon``;
* ``"random"``      uniformly random actions;
* a callable        any function from an observation batch (B, obs_dim) to actions (B,)
                    (e.g. a scripted controller).

``epsilon`` > 0 mixes uniform actions into any of them.  Data-quality tiers
(``collect_tier``) follow the D4RL convention: ``random``, ``expert`` (greedy
checkpoint), ``medium`` (the expert made epsilon-greedy, epsilon calibrated so
its mean return is about half the expert's) and ``replay`` (an online run's
replay buffer, as is).  Everything is reproducible from ``seed``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from saclab.data.dataset import Dataset, provenance
from saclab.envs.evaluate import Evaluator
from saclab.envs.make import check_spaces
from saclab.errors import SaclabError
from saclab.runtime import progress_bar

PolicyFn = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of observations (B, obs_dim) to actions (B,)."""

POLICY_KINDS = ("greedy", "stochastic", "epsilon", "random")
TIERS = ("random", "expert", "medium", "replay")
MEDIUM_FRACTION = 0.5
"""The medium tier's target: this fraction of the expert's mean return."""


def make_collection_env(env_id: str, num_envs: int, max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    """A vector env whose episodes truncate at ``max_episode_steps`` (None: the env's registered limit):
    the env's own fast vector implementation where it has one, else a synchronous one."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = None
    for mode in ("vector_entry_point", "sync"):
        try:
            env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
            break
        except gym.error.Error as e:
            error = e
        except ImportError as e:
            raise SaclabError(f"environment {env_id!r} needs a missing package: {e}") from None
    if env is None:
        raise SaclabError(f"unknown environment {env_id!r}: {error}")
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        env.close()
        raise SaclabError(f"{env_id}: collection needs next-step autoreset, the vector env uses {mode}")
    check_spaces(env_id, env.single_observation_space, env.single_action_space)
    return env


def registered_episode_limit(env_id: str) -> int | None:
    try:
        return gym.spec(env_id).max_episode_steps
    except gym.error.Error:
        return None


# ---------------------------------------------------------------------------------------
# Behaviour policies
# ---------------------------------------------------------------------------------------
def behaviour_policy(
    policy: str | PolicyFn,
    num_actions: int,
    seed: int,
    checkpoint: Any = None,
    epsilon: float = 0.0,
) -> PolicyFn:
    """The acting function of a policy kind (or a callable), with epsilon-random actions mixed in.

    ``checkpoint`` is a ``saclab.policy.Policy`` (for greedy, stochastic, epsilon).
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
        if checkpoint is None:
            raise SaclabError(f"policy {policy!r} needs a checkpoint")
        if policy == "epsilon" and epsilon <= 0.0:
            raise SaclabError("policy 'epsilon' needs epsilon > 0")
        if policy == "stochastic":
            key = jax.random.PRNGKey(seed)
            calls = [0]

            def base(obs: np.ndarray) -> np.ndarray:
                calls[0] += 1
                return checkpoint.act(obs, greedy=False, key=jax.random.fold_in(key, calls[0]))
        else:
            def base(obs: np.ndarray) -> np.ndarray:
                return checkpoint.act(obs)
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
    policy: str | PolicyFn,
    env_id: str | None = None,
    episodes: int | None = None,
    steps: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    epsilon: float = 0.0,
    seed: int = 0,
    max_episode_steps: int | None = None,
    num_envs: int = 16,
    progress: bool | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dataset:
    """Run a behaviour policy and return its transitions as a ``Dataset``.

    Args:
        policy: "greedy", "stochastic", "epsilon" (needs ``checkpoint``), "random", or a
            callable from an observation batch to actions.
        env_id: Gymnasium id (default: the checkpoint's env).
        episodes: collect exactly this many complete episodes (sub-env i runs its share).
        steps: or collect exactly this many transitions (the last episodes may be cut short:
            their final transition is then neither terminated nor truncated).
        checkpoint: run or checkpoint directory of a trained agent.
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
    loaded = None
    if checkpoint is not None:
        from saclab.runs.policy import Policy

        loaded = Policy.load(checkpoint)
        if env_id is not None and env_id != loaded.config.env:
            raise SaclabError(f"the checkpoint was trained on {loaded.config.env}, not {env_id}")
        env_id = loaded.config.env
    if env_id is None:
        raise SaclabError("give an env id (or a checkpoint to take it from)")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise SaclabError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if episodes is not None:
        num_envs = min(num_envs, episodes)

    env = make_collection_env(env_id, num_envs, max_episode_steps)
    try:
        spec = check_spaces(env_id, env.single_observation_space, env.single_action_space)
        act = behaviour_policy(policy, spec.num_actions, seed, loaded, epsilon)
        arrays = _run(env, act, num_envs, episodes, steps, seed, progress)
    finally:
        env.close()

    kind = policy if isinstance(policy, str) else getattr(policy, "__name__", "callable")
    cap = max_episode_steps if max_episode_steps is not None else registered_episode_limit(env_id)
    config = types.SimpleNamespace(env=env_id, max_episode_steps=cap)
    meta = provenance(config, seed, f"collect: {kind} policy", spec.obs_dim, spec.num_actions)
    meta.update({"policy": kind, "epsilon": float(epsilon), "checkpoint": str(loaded.path) if loaded else None,
                 "num_envs": num_envs, "budget": {"episodes": episodes} if episodes else {"steps": steps}})
    meta.update(metadata or {})
    return Dataset(*arrays, metadata=meta)


def _run(env: gym.vector.VectorEnv, act: PolicyFn, num_envs: int, episodes: int | None, steps: int | None,
         seed: int, progress: bool | None) -> tuple[np.ndarray, ...]:
    """Step the vector env until the budget is met; returns the dataset arrays, episodes contiguous."""
    if episodes is not None:
        quota = np.full(num_envs, episodes // num_envs)
        quota[: episodes % num_envs] += 1
    else:
        quota = np.full(num_envs, np.iinfo(np.int64).max)
    completed = np.zeros(num_envs, np.int64)
    resetting = np.zeros(num_envs, bool)  # the next step of these sub-envs is an autoreset step
    record: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc", "valid")}
    recorded = 0
    bar = progress_bar(episodes or steps or 0, desc="collect", enabled=progress)
    obs, _ = env.reset(seed=seed)
    try:
        while (completed < quota).any() if episodes is not None else recorded < steps:
            actions = np.asarray(act(np.asarray(obs, np.float32)))
            next_obs, rewards, terminated, truncated, _ = env.step(actions)
            valid = ~resetting & (completed < quota)
            ended = np.asarray(terminated | truncated)
            for name, value in (("obs", obs), ("act", actions), ("rew", rewards), ("next", next_obs),
                                ("term", terminated), ("trunc", truncated), ("valid", valid)):
                record[name].append(np.array(value))
            finished = valid & ended
            completed += finished
            recorded += int(valid.sum())
            bar.update(int(finished.sum()) if episodes is not None else int(valid.sum()))
            resetting = ended
            obs = next_obs
    finally:
        bar.close()
    return _episodes_contiguous({k: np.stack(v) for k, v in record.items()}, steps)


def _episodes_contiguous(record: dict[str, np.ndarray], steps: int | None) -> tuple[np.ndarray, ...]:
    """Regroup time-major (T, num_envs) records into contiguous episodes.

    Complete episodes come first, ordered by (end step, sub-env); unfinished ones follow
    in sub-env order; with a ``steps`` budget the result is cut to exactly ``steps`` rows.
    """
    valid = record["valid"]
    ended = record["term"] | record["trunc"]
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
    return (record["obs"][t, e], record["act"][t, e], record["rew"][t, e], record["next"][t, e],
            record["term"][t, e], record["trunc"][t, e], starts)


# ---------------------------------------------------------------------------------------
# Tiers
# ---------------------------------------------------------------------------------------
def mean_return(act: PolicyFn, env_id: str, episodes: int, max_steps: int, seed: int) -> float:
    """Mean return of ``episodes`` episodes of ``act`` (one vector env, fixed seed)."""
    evaluator = Evaluator(env_id, episodes, max_steps)
    try:
        return float(np.mean(evaluator.run(act, seed)))
    finally:
        evaluator.close()


def calibrate_epsilon(
    policy: Any,
    env_id: str,
    target: float,
    max_steps: int,
    seed: int = 0,
    episodes: int = 50,
    iterations: int = 8,
) -> tuple[float, float]:
    """The epsilon whose epsilon-greedy ``policy`` has a mean return closest to ``target``.

    Bisection on [0, 1] (the return falls as epsilon grows), every candidate measured on the
    same ``episodes`` episodes (common random numbers); returns (epsilon, measured mean return).
    """
    num_actions = policy.learner.num_actions

    def measure(eps: float) -> float:
        act = behaviour_policy("greedy", num_actions, seed, policy, eps)
        return mean_return(act, env_id, episodes, max_steps, seed)

    tried = {1.0: measure(1.0)}
    if tried[1.0] >= target:
        return 1.0, tried[1.0]
    low, high = 0.0, 1.0
    for _ in range(iterations):
        mid = (low + high) / 2
        tried[mid] = measure(mid)
        if tried[mid] > target:
            low = mid
        else:
            high = mid
    best = min(tried, key=lambda eps: abs(tried[eps] - target))
    return best, tried[best]


def replay_path(run: str | os.PathLike) -> Path:
    """The replay dataset of an online run (a run dir, its checkpoint dir, or the .h5 file)."""
    from saclab.runs.online import REPLAY_DATASET

    run = Path(run)
    for candidate in (run, run / REPLAY_DATASET, run.parent / REPLAY_DATASET):
        if candidate.is_file():
            return candidate
    raise SaclabError(f"no {REPLAY_DATASET} in {run} (the replay tier needs a finished online run)")


def collect_tier(
    tier: str,
    checkpoint: str | os.PathLike | None = None,
    env_id: str | None = None,
    episodes: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    max_episode_steps: int | None = None,
    num_envs: int = 16,
    epsilon: float | None = None,
    calibration_episodes: int = 50,
    progress: bool | None = None,
) -> Dataset:
    """A dataset of a standard quality tier.

    * ``random``: uniformly random actions (``env_id`` or the checkpoint's env).
    * ``expert``: the checkpoint's greedy policy.
    * ``medium``: the checkpoint's policy made epsilon-greedy, with epsilon calibrated by
      bisection so that its mean return is about half (``MEDIUM_FRACTION``) of the greedy
      policy's (measured on ``calibration_episodes`` episodes); pass ``epsilon`` to skip
      the calibration.  The measured returns are stored in the metadata.
    * ``replay``: the replay buffer of the online run at ``checkpoint`` (its ``replay.h5``), as is.
    """
    if tier not in TIERS:
        raise SaclabError(f"unknown tier {tier!r} (choose from {', '.join(TIERS)})")
    common = dict(env_id=env_id, episodes=episodes, steps=steps, seed=seed, max_episode_steps=max_episode_steps,
                  num_envs=num_envs, progress=progress)
    if tier == "replay":
        if checkpoint is None:
            raise SaclabError("the replay tier needs an online run directory (--checkpoint RUN)")
        if episodes is not None or steps is not None:
            raise SaclabError("the replay tier copies a run's replay buffer: episodes/steps do not apply")
        path = replay_path(checkpoint)
        dataset = Dataset.load(path)
        if env_id is not None and dataset.env_id and dataset.env_id != env_id:
            raise SaclabError(f"{path} holds {dataset.env_id} transitions, not {env_id}")
        dataset.metadata.update({"tier": "replay", "copied_from": str(path)})
        return dataset
    if tier == "random":
        if env_id is None and checkpoint is not None:
            from saclab.runs.policy import Policy

            common["env_id"] = Policy.load(checkpoint).config.env
        return collect("random", **common, metadata={"tier": "random"})
    if checkpoint is None:
        raise SaclabError(f"the {tier} tier needs a checkpoint of a trained agent")
    if tier == "expert":
        return collect("greedy", checkpoint=checkpoint, **common, metadata={"tier": "expert"})

    from saclab.runs.policy import Policy

    policy = Policy.load(checkpoint)
    env = env_id or policy.config.env
    cap = max_episode_steps or registered_episode_limit(env) or policy.config.max_episode_steps
    calibration: dict[str, Any] = {}
    if epsilon is None:
        expert = mean_return(policy.act, env, calibration_episodes, cap, seed)
        target = MEDIUM_FRACTION * expert
        epsilon, measured = calibrate_epsilon(policy, env, target, cap, seed, calibration_episodes)
        calibration = {"expert_return": expert, "target_return": target, "calibrated_return": measured,
                       "calibration_episodes": calibration_episodes}
    return collect("epsilon" if epsilon > 0 else "greedy", checkpoint=checkpoint, epsilon=epsilon, **common,
                   metadata={"tier": "medium", **calibration})


__all__ = ["collect", "collect_tier", "behaviour_policy", "make_collection_env", "calibrate_epsilon",
           "mean_return", "replay_path", "POLICY_KINDS", "TIERS", "MEDIUM_FRACTION"]
