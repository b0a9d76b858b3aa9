"""Datasets of standard quality tiers, made from a finished run (the D4RL convention).

* ``random``  uniformly random actions;
* ``expert``  the run's greedy policy;
* ``medium``  the expert made epsilon-greedy, epsilon calibrated so that its mean
  return is about halfway (``MEDIUM_FRACTION``) from the random policy's to the expert's
  (half of the expert's return would ask for more than the expert when returns are negative);
* ``replay``  the online run's replay buffer (its ``replay.h5``), as is.

Everything is reproducible from ``seed``.  The collection itself is ``saclab.data.collect``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from saclab.data.collect import behaviour_policy, collect
from saclab.data.dataset import Dataset
from saclab.envs.evaluate import evaluate_policy
from saclab.envs.make import registered_episode_limit
from saclab.errors import SaclabError
from saclab.runs.policy import Policy
from saclab.runs.runlog import REPLAY_FILE

TIERS = ("random", "expert", "medium", "replay")
MEDIUM_FRACTION = 0.5
"""The medium tier's target: random + this fraction of (expert - random) mean return."""


def mean_return(act: Any, env_id: str, episodes: int, max_steps: int, seed: int) -> float:
    return float(np.mean(evaluate_policy(act, env_id, episodes, max_steps, seed)))


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
    run = Path(run)
    for candidate in (run, run / REPLAY_FILE, run.parent / REPLAY_FILE):
        if candidate.is_file():
            return candidate
    raise SaclabError(f"no {REPLAY_FILE} in {run} (the replay tier needs a finished online run)")


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
      bisection so that its mean return is about halfway (``MEDIUM_FRACTION``) from the random
      policy's to the greedy policy's (both measured on ``calibration_episodes`` episodes); pass ``epsilon`` to skip
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
            common["env_id"] = Policy.load(checkpoint).config.env
        return collect("random", **common, metadata={"tier": "random"})
    if checkpoint is None:
        raise SaclabError(f"the {tier} tier needs a checkpoint of a trained agent")
    policy = Policy.load(checkpoint, env=env_id)
    if tier == "expert":
        return collect("greedy", agent=policy, **common, metadata={"tier": "expert"})

    env = env_id or policy.config.env
    cap = max_episode_steps or registered_episode_limit(env) or policy.config.max_episode_steps
    calibration: dict[str, Any] = {}
    if epsilon is None:
        expert = mean_return(policy.act, env, calibration_episodes, cap, seed)
        uniform = behaviour_policy("greedy", policy.learner.num_actions, seed, policy, 1.0)  # epsilon 1: random
        random_return = mean_return(uniform, env, calibration_episodes, cap, seed)
        target = random_return + MEDIUM_FRACTION * (expert - random_return)
        epsilon, measured = calibrate_epsilon(policy, env, target, cap, seed, calibration_episodes)
        calibration = {"expert_return": expert, "random_return": random_return, "target_return": target,
                       "calibrated_return": measured, "calibration_episodes": calibration_episodes}
    return collect("epsilon" if epsilon > 0 else "greedy", agent=policy, epsilon=epsilon, **common,
                   metadata={"tier": "medium", **calibration})


__all__ = ["collect_tier", "calibrate_epsilon", "mean_return", "replay_path", "TIERS", "MEDIUM_FRACTION"]
