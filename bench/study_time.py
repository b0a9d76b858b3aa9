"""Wall time of the full study (``saclab study --preset notebook``) on this machine, as a
measured per-phase extrapolation: each phase's unit cost is measured here (online steps/s
through ``train_online``, scanned offline updates/s, 100-episode evaluations), then
multiplied by the plan's budgets, with runs spread over the worker processes.

Upper bound: every online episode is counted at the 200-step cap, so each replay
dataset has 200k transitions.

    python bench/study_time.py [--preset notebook] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from update_speed import online_rate  # noqa: E402

from saclab.config import NOTEBOOK  # noqa: E402
from saclab.core.agent import Learner, init_state  # noqa: E402
from saclab.core.types import EnvSpec  # noqa: E402
from saclab.envs.evaluate import Evaluator  # noqa: E402
from saclab.launch.estimate import seconds_per_update  # noqa: E402
from saclab.launch.plan import plan_study  # noqa: E402
from saclab.launch.study import offline_jobs  # noqa: E402
from saclab.runtime import enable_compilation_cache  # noqa: E402

EPISODE_CAP = NOTEBOOK.max_episode_steps  # the study's episode cap on CartPole-v1 (launch.plan.episode_cap)


def eval_seconds(episodes: int) -> float:
    """One greedy evaluation of ``episodes`` episodes kept at the 200-step cap."""
    import jax

    from saclab.config import preset
    from saclab.core.agent import greedy_action

    learner = Learner.from_config(preset("notebook"), EnvSpec("CartPole-v1", 4, 2))
    params = init_state(learner, jax.random.PRNGKey(0)).actor_params
    evaluator = Evaluator("CartPole-v1", episodes, EPISODE_CAP)

    def policy(obs):
        np.asarray(greedy_action(learner, params, obs))
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)

    evaluator.run(policy, 0)
    start = time.perf_counter()
    evaluator.run(policy, 1)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="notebook")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    enable_compilation_cache()
    plan = plan_study(args.preset)
    c = plan.online
    steps_per_s = online_rate(3000) if args.preset == "notebook" else 1 / (seconds_per_update(c) * 1.3)
    per_update = seconds_per_update(plan.offline)
    eval_online, eval_offline = eval_seconds(c.eval_episodes), eval_seconds(plan.offline.offline_eval_episodes)

    steps = c.total_episodes * c.max_episode_steps if c.total_episodes else c.total_steps
    online_run = steps / steps_per_s + (steps / c.max_episode_steps / c.eval_every_episodes) * eval_online
    rounds = math.ceil(len(plan.online_seeds) / args.workers)
    online_phase = rounds * online_run

    jobs, _ = offline_jobs(plan, Path("/nonexistent"))
    offline_total = 0.0
    for job in jobs:
        n = plan.tier_episodes * EPISODE_CAP if "/datasets/" in job.dataset else steps
        offline_total += job.config.epochs * ((n // job.config.batch_size) * per_update + eval_offline)
    offline_phase = offline_total / args.workers

    print(f"preset {args.preset}, {args.workers} workers, one thread each")
    print(f"measured: online {steps_per_s:.0f} steps/s (with updates), offline {1 / per_update:.0f} updates/s, "
          f"evaluation {eval_online:.3f} s ({c.eval_episodes} ep.), {eval_offline:.3f} s "
          f"({plan.offline.offline_eval_episodes} ep.)")
    print(f"online: {len(plan.online_seeds)} runs x {steps} steps (upper bound) = {online_run / 60:.1f} min each, "
          f"{rounds} round(s): {online_phase / 60:.1f} min")
    print(f"offline: {len(jobs)} runs, {offline_total / 60:.1f} min of run time / {args.workers} workers: "
          f"{offline_phase / 60:.1f} min")
    total = online_phase + offline_phase
    print(f"total (upper bound): {total / 60:.1f} min with {args.workers} truly parallel workers; "
          f"{(online_run * len(plan.online_seeds) + offline_total) / 60:.1f} "
          "min on one core (target <= 60 min; the notebook's own code: 13-16 hours)")


if __name__ == "__main__":
    main()
