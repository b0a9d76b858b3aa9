"""How long a study takes: one update measured on this machine, and the study's compute from its plan."""

from __future__ import annotations

import time

from saclab.config import SACConfig
from saclab.launch.plan import StudyPlan


def seconds_per_update(config: SACConfig) -> float:
    """Measured cost of one update of ``config`` on this machine (a short scanned run)."""
    import jax
    import numpy as np

    from saclab.core.agent import Learner, init_state, update_epoch
    from saclab.core.types import batch_from_numpy
    from saclab.envs.make import env_spec

    learner = Learner.from_config(config, env_spec(config.env))
    r = np.random.default_rng(0)
    n, b, u = 4096, config.batch_size, 100
    data = jax.device_put(batch_from_numpy(r.normal(size=(n, learner.obs_dim)),
                                           r.integers(0, learner.num_actions, n), np.ones(n),
                                           r.normal(size=(n, learner.obs_dim)), np.zeros(n)))
    idx = jax.device_put(r.integers(0, n, (u, b)).astype(np.int32))
    for _ in range(2):  # the first call compiles
        state = init_state(learner, jax.random.PRNGKey(0))
        jax.block_until_ready(state)
        start = time.perf_counter()
        jax.block_until_ready(update_epoch(learner, state, data, idx)[1])
    return (time.perf_counter() - start) / u


AGENTS = 3
"""Offline agents per dataset (SAC, CQL, behaviour cloning; BC, an actor alone, is counted as a full update)."""


def estimate_seconds(plan: StudyPlan, per_update: float) -> float:
    """Compute time of the whole study on one core, an upper bound: every online episode at the
    cap, offline data as large as the replay, every ablation variant run anew.  Parallel workers
    divide it by the machine's real parallel speed-up, which can be far below the number of
    logical CPUs (bench/scaling.py)."""
    c = plan.online
    steps = c.total_steps or c.total_episodes * c.max_episode_steps
    online_run = steps * per_update * 1.3  # env, sampling and dispatch overhead
    eval_seconds = 0.0003 * c.max_episode_steps  # one batched evaluation, generous

    def offline(epochs: int, runs: int, transitions: int) -> float:
        return runs * epochs * ((transitions // plan.offline.batch_size) * per_update + eval_seconds)

    tier_size = plan.tier_episodes * c.max_episode_steps
    # The ablation: at most 4 online variants (corrected, two deviations, all) and 5 offline ones, SAC and CQL.
    return (online_run * (len(plan.online_seeds) + 4 * len(plan.ablation_seeds))
            + offline(plan.offline.epochs, AGENTS * len(plan.offline_seeds), steps)
            + offline(plan.tier_epochs, AGENTS * len(plan.tiers) * len(plan.tier_seeds), tier_size)
            + offline(plan.sweep_epochs, len(plan.sweep_weights) * len(plan.sweep_seeds), steps)
            + offline(plan.ablation_epochs, 2 * 5 * len(plan.ablation_seeds), steps))


__all__ = ["seconds_per_update", "estimate_seconds"]
