"""Off-policy evaluation of a trained policy on a dataset: Fitted Q Evaluation (``core.fqe``) run to
a fixed number of updates, the initial-state estimate with a bootstrap CI, and ranking candidates.

What the estimate is: the mean over the dataset's episode starts of V(s_0) = Q(s_0, pi(s_0)) for the
GREEDY policy (argmax of the actor's logits, what evaluation episodes run), in the data's reward
units and discounted with ``gamma``.  The 95% CI resamples the initial states (a percentile
bootstrap): it says how much the estimate moves with *which* starts were logged, not how wrong
the fitted Q-function may be (its bias under poor coverage is not in it).

FQE trains for a fixed schedule with no checkpoint: it is minutes at most, and the same seed gives
the same estimate (a test holds it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from saclab.core.fqe import FQELearner, fqe_update_epoch, init_fqe_state, initial_values
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.runs.checkpoint import find_checkpoint
from saclab.runs.epochs import epoch_indices
from saclab.runtime import enable_compilation_cache

POLICY_SPEC = "policy.json"  # an exported policy directory (saclab.inference)
ACT_CHUNK = 8192
"""Observations per call of the evaluated policy (bounds its memory on large datasets)."""


@dataclass(frozen=True)
class FQEConfig:
    """FQE's schedule and network (the defaults suit datasets of 10^3 to 10^6 transitions)."""

    epochs: int = 0
    """Passes over the dataset; 0: as many as make ``min_updates`` updates."""
    min_updates: int = 0
    """0: ``target_update_every`` x ``regressions_needed(gamma)``, enough regressions to propagate
    the value over the discount's horizon (45.9k updates at gamma 0.99)."""
    batch_size: int = 256
    learning_rate: float = 3e-4
    gamma: float = 0.99
    target_update_every: int = 100
    """Updates per regression: the target network is a hard copy refreshed this often."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    clip_targets: bool = True
    """Clip every Bellman target, and the initial-state values, to ``return_range`` of the data's rewards
    (``core.fqe.clipped_target``): measured in bench/ope_quality.py, it stops FQE diverging on policies whose
    actions the data rarely shows (CartPole: 14 of 24 estimates out of range without it, 0 with it)."""
    resamples: int = 2000
    """Bootstrap resamples of the initial states for the 95% CI."""
    seed: int = 0

    @property
    def updates(self) -> int:
        """The updates FQE makes at least (``min_updates``, or the automatic schedule)."""
        return self.min_updates or self.target_update_every * regressions_needed(self.gamma)


UNPROPAGATED = 0.01
"""The share of a value that FQE's schedule may leave unpropagated (``regressions_needed``)."""


def regressions_needed(gamma: float, unpropagated: float = UNPROPAGATED) -> int:
    """K = ceil(log(unpropagated) / log(gamma)) Bellman regressions.

    From Q = 0, K exact regressions onto T^pi Q give the value of the first K steps: what is still
    missing is at most gamma^K of the value, <= ``unpropagated``.  A 500-step episode of -1 rewards
    at gamma 0.99 is worth -99.3; after 200 regressions FQE can say no more than -86.6 (measured:
    the bench's Acrobot policies that never reach the goal were all estimated at -85.6 to -87.6).
    gamma 0.99 -> 459; 0.9 -> 44.
    """
    return max(1, math.ceil(math.log(unpropagated) / math.log(gamma)))


@dataclass
class EvaluatedPolicy:
    """A policy to evaluate: its greedy action function and sizes."""

    act: Callable[[np.ndarray], np.ndarray]
    obs_dim: int
    num_actions: int
    path: Path
    kind: str
    """"run" (a checkpoint) or "exported" (a saclab export directory)."""


@dataclass
class OPEResult:
    """An FQE estimate of one policy on one dataset."""

    policy: str
    estimate: float
    ci_low: float
    ci_high: float
    initial_states: int
    data_mc_return: float
    """The data's own mean discounted return from its initial states (the behaviour policy's)."""
    epochs: int
    updates: int
    final_loss: float
    seconds: float
    return_range: tuple[float, float] = (-math.inf, math.inf)
    """Where every discounted return lies given the data's rewards (``return_range``)."""

    @property
    def diverged(self) -> bool:
        """The estimate lies outside ``return_range``: no return can be there, FQE has diverged (typically a
        policy whose actions the data rarely shows)."""
        return not self.return_range[0] <= self.estimate <= self.return_range[1]

    @property
    def at_bound(self) -> bool:
        """The estimate sits on an edge of ``return_range`` (with clipped targets: every initial state's
        value was clipped there, so the fit may be extrapolating)."""
        low, high = self.return_range
        tolerance = 1e-6 * (high - low) if math.isfinite(high - low) else 0.0
        return self.estimate <= low + tolerance or self.estimate >= high - tolerance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_evaluated_policy(path: str | os.PathLike) -> EvaluatedPolicy:
    """A run directory, checkpoint directory or exported policy directory, as its greedy policy."""
    path = Path(path)
    if (path / POLICY_SPEC).is_file():
        from saclab.inference import load

        exported = load(path)
        return EvaluatedPolicy(lambda obs: exported(obs), exported.obs_dim, exported.num_actions, path, "exported")
    if not path.exists():
        raise SaclabError(f"not found: {path}")
    from saclab.runs.policy import Policy

    policy = Policy.load(path)
    return EvaluatedPolicy(policy.act, policy.learner.obs_dim, policy.learner.num_actions, path, "run")


def candidate_dirs(paths: list[Path], depth: int = 3) -> list[Path]:
    """The policies under ``paths``: each path that is a run, checkpoint or exported policy itself,
    else every such directory below it (a sweep: its configurations' seed-N runs), in name order."""
    found: list[Path] = []

    def is_policy(path: Path) -> bool:
        return (path / POLICY_SPEC).is_file() or find_checkpoint(path) is not None

    def walk(path: Path, left: int) -> None:
        if is_policy(path):
            found.append(path)
        elif left > 0:
            for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if child.name not in ("checkpoint", "checkpoint.old", "checkpoint.new", "tb"):
                    walk(child, left - 1)

    for path in paths:
        if not path.exists():
            raise SaclabError(f"not found: {path}")
        if not path.is_dir():
            raise SaclabError(f"{path} is not a directory (a run, a sweep or an exported policy)")
        before = len(found)
        walk(path, depth)
        if len(found) == before:
            raise SaclabError(f"no run, checkpoint or exported policy in {path}")
    return found


def greedy_one_hot(act: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, num_actions: int) -> np.ndarray:
    """pi(.|s) of the greedy policy, one-hot (N, A) float32, calling ``act`` on chunks of ``obs``."""
    actions = np.concatenate([np.asarray(act(obs[i:i + ACT_CHUNK])).reshape(-1)
                              for i in range(0, len(obs), ACT_CHUNK)]).astype(np.int64)
    if actions.min() < 0 or actions.max() >= num_actions:
        raise SaclabError(f"the policy returned actions outside [0, {num_actions})")
    return np.eye(num_actions, dtype=np.float32)[actions]


def percentile_ci(values: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``, seeded (resampled with replacement)."""
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0FE]))
    means = values[rng.integers(len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def check_fit(policy: EvaluatedPolicy, dataset: Dataset) -> None:
    """Refuse a dataset whose observation size or action count differs from the policy's."""
    if dataset.obs_dim != policy.obs_dim or dataset.num_actions > policy.num_actions:
        raise SaclabError(f"{policy.path} takes obs_dim={policy.obs_dim} with {policy.num_actions} actions; "
                          f"dataset {dataset.path or ''} has obs_dim={dataset.obs_dim}, {dataset.num_actions} actions")


def fqe_evaluate(policy: EvaluatedPolicy, dataset: Dataset, config: FQEConfig = FQEConfig()) -> OPEResult:
    """FQE of ``policy``'s greedy policy on ``dataset``: the estimated discounted return of its initial states."""
    enable_compilation_cache()
    started = time.perf_counter()
    check_fit(policy, dataset)
    if len(dataset) < config.batch_size:
        raise SaclabError(f"dataset has {len(dataset)} transitions, fewer than one minibatch ({config.batch_size})")
    bounds = return_range(dataset.rewards, config.gamma)
    learner = FQELearner(policy.obs_dim, policy.num_actions, tuple(config.hidden_sizes), config.learning_rate,
                         config.gamma, config.target_update_every, bounds if config.clip_targets else None)
    data = jax.device_put(dataset.transitions.to_batch())
    next_probs = jnp.asarray(greedy_one_hot(policy.act, dataset.next_observations, policy.num_actions))
    per_epoch = len(dataset) // config.batch_size
    epochs = config.epochs or max(1, math.ceil(config.updates / per_epoch))
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xFE]))
    indices = np.concatenate([epoch_indices(rng, len(dataset), config.batch_size) for _ in range(epochs)])
    state = init_fqe_state(learner, jax.random.PRNGKey(config.seed))
    state, metrics = fqe_update_epoch(learner, state, data, next_probs, jnp.asarray(indices))
    losses = np.asarray(metrics["fqe_loss"])
    if not np.all(np.isfinite(losses)):
        raise SaclabError(f"FQE diverged on {policy.path} (non-finite loss): lower --learning-rate")

    starts = dataset.observations[dataset.episode_starts]
    start_probs = greedy_one_hot(policy.act, starts, policy.num_actions)
    values = np.asarray(initial_values(learner, state, jnp.asarray(starts), jnp.asarray(start_probs)), np.float64)
    if config.clip_targets:  # the fit can overshoot its clipped targets a little; no value lies outside
        values = np.clip(values, *bounds)
    low, high = percentile_ci(values, config.resamples, config.seed)
    data_mc = float(dataset.discounted_returns(config.gamma)[dataset.episode_starts].mean())
    return OPEResult(str(policy.path), float(values.mean()), low, high, len(values), data_mc, epochs, len(indices),
                     float(losses[-min(len(losses), per_epoch):].mean()), round(time.perf_counter() - started, 3),
                     bounds)


def rank(results: list[OPEResult]) -> list[OPEResult]:
    """Best estimate first; diverged estimates (outside every return's range) last, whatever their value."""
    return sorted(results, key=lambda r: (not r.diverged, r.estimate), reverse=True)


def return_range(rewards: np.ndarray, gamma: float) -> tuple[float, float]:
    """Where every discounted return lies when each reward is in [r_min, r_max]:
    [min(r_min, 0), max(r_max, 0)] / (1 - gamma) (an episode may end at any step)."""
    return min(float(rewards.min()), 0.0) / (1 - gamma), max(float(rewards.max()), 0.0) / (1 - gamma)


__all__ = ["return_range", "FQEConfig", "EvaluatedPolicy", "OPEResult", "load_evaluated_policy", "candidate_dirs",
           "greedy_one_hot", "percentile_ci", "regressions_needed", "check_fit", "fqe_evaluate", "rank"]
