"""The notebook's study, end to end, on any Discrete env with flat observations.

1. online SAC on the plan's env (the preset's, CartPole-v1 unless given) over
   several seeds (the notebook's protocol: greedy evaluation every 4 episodes on
   a separate env; episodes capped as ``episode_cap`` says);
2. datasets: each online run's replay buffer, plus expert, medium and random
   tiers collected from the best online agent;
3. offline SAC and CQL (the notebook's TRADEOFF_FACTOR, 5) on the replay
   datasets, and on each tier;
4. a CQL-weight sweep on the replay datasets;
5. the report (``saclab.analysis.report``, which reads only the files written here).

Every run is resumable and finished runs are skipped, so running the same
study again continues where it stopped.  The layout::

    STUDY/study.json                     the plan, its env, and where each run group and dataset is
    STUDY/online/seed-N/                 online runs (replay.h5 inside)
    STUDY/datasets/{expert,medium,random}.h5
    STUDY/offline/<dataset>/<sac|cql>/seed-N/
    STUDY/sweep/cql_weight=W/seed-N/     (points at offline/ runs where identical)
    STUDY/report/report.md, report.html, figures/
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saclab.config import NOTEBOOK, NOTEBOOK_CQL_WEIGHT, SACConfig, preset
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.launch.jobs import Job, JobOutcome
from saclab.launch.pool import run_jobs

PLAN_FILE = "study.json"
AGENTS = {"sac": 0.0, "cql": NOTEBOOK_CQL_WEIGHT}


@dataclass(frozen=True)
class StudyPlan:
    """What a study runs (written to study.json; a rerun must match it)."""

    preset: str
    quick: bool
    online: SACConfig
    offline: SACConfig
    online_seeds: tuple[int, ...]
    offline_seeds: tuple[int, ...]
    tiers: tuple[str, ...]
    tier_episodes: int
    tier_seeds: tuple[int, ...]
    tier_epochs: int
    sweep_weights: tuple[float, ...]
    sweep_seeds: tuple[int, ...]
    sweep_epochs: int

    @property
    def env(self) -> str:
        return self.online.env

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["online"], d["offline"] = self.online.to_dict(), self.offline.to_dict()
        d["env"] = self.env
        return json.loads(json.dumps(d))  # tuples -> lists, as stored

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyPlan:
        """The plan in a ``study.json`` (the run groups and datasets recorded beside it are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        d["online"], d["offline"] = SACConfig.from_dict(d["online"]), SACConfig.from_dict(d["offline"])
        for k in ("online_seeds", "offline_seeds", "tiers", "tier_seeds", "sweep_weights", "sweep_seeds"):
            d[k] = tuple(d[k])
        return cls(**d)


def episode_cap(preset_name: str, env: str) -> int:
    """The study's episode cap: the notebook's STEPS_PER_EPISODE (200) on the notebook's own env
    (whatever the preset, so that study's numbers stay the notebook's) and under the ``notebook``
    preset; on another env, its registered limit (Acrobot-v1 500, LunarLander-v3 1000), or the
    preset's cap if it has none."""
    if preset_name.startswith("notebook") or env == NOTEBOOK.env:
        return NOTEBOOK.max_episode_steps
    from saclab.envs.make import registered_episode_limit

    return registered_episode_limit(env) or preset(preset_name).max_episode_steps


def plan_study(preset_name: str = "default", quick: bool = False, env: str | None = None) -> StudyPlan:
    """The study for a preset on ``env`` (default: the preset's env, CartPole-v1).  Full size follows
    the notebook (4 online runs of 1000 episodes, 200 offline epochs with 100 evaluation episodes);
    ``quick`` keeps every phase but shrinks budgets to a few minutes on a 2-core CPU (on CartPole)."""
    base = preset(preset_name)
    env = env or base.env
    protocol = dict(env=env, max_episode_steps=episode_cap(preset_name, env), eval_every_episodes=4,
                    eval_episodes=10)
    if quick:
        online = base.replace(**protocol, total_steps=8_000, total_episodes=0, checkpoint_every_steps=4_000)
        offline = base.replace(**protocol, cql_weight=0.0, epochs=60, offline_eval_episodes=20)
        return StudyPlan(preset_name, True, online, offline, online_seeds=(0, 1, 2), offline_seeds=(0, 1, 2),
                         tiers=("expert", "medium", "random"), tier_episodes=40, tier_seeds=(0,), tier_epochs=60,
                         sweep_weights=(0.0, 0.5, 1.0, 5.0, 10.0, 50.0), sweep_seeds=(0, 1), sweep_epochs=60)
    online = base.replace(**protocol, total_episodes=1000, total_steps=0)
    offline = base.replace(**protocol, cql_weight=0.0, epochs=200, offline_eval_episodes=100)
    # As the notebook, one offline agent of each kind for 200 epochs (over a ~200k-transition buffer,
    # the study's largest cost); the sweep runs two seeds of 25 epochs and the tiers 20 epochs, so the
    # whole study stays within an hour of one core's compute (bench/study_time.py).
    return StudyPlan(preset_name, False, online, offline, online_seeds=(0, 1, 2, 3), offline_seeds=(0,),
                     tiers=("expert", "medium", "random"), tier_episodes=100, tier_seeds=(0,), tier_epochs=20,
                     sweep_weights=(0.0, 0.5, 1.0, 5.0, 10.0, 50.0), sweep_seeds=(0, 1), sweep_epochs=25)


# ---------------------------------------------------------------------------------------
# Jobs of each phase
# ---------------------------------------------------------------------------------------
def online_jobs(plan: StudyPlan, out: Path) -> list[Job]:
    return [Job("online", plan.online, s, str(out / "online" / f"seed-{s}")) for s in plan.online_seeds]


def replay_dataset(plan: StudyPlan, out: Path, seed: int) -> Path:
    """Offline seed N trains on the replay buffer of online seed N (cycling if fewer)."""
    online_seed = plan.online_seeds[seed % len(plan.online_seeds)]
    return out / "online" / f"seed-{online_seed}" / "replay.h5"


def tier_dataset(out: Path, tier: str) -> Path:
    return out / "datasets" / f"{tier}.h5"


def offline_jobs(plan: StudyPlan, out: Path) -> tuple[list[Job], dict[str, list[str]]]:
    """All offline runs (deduplicated) and the run groups the report compares.

    Group names: ``replay/sac``, ``replay/cql``, ``<tier>/sac``, ``<tier>/cql``,
    ``sweep/<weight>``.
    """
    jobs: dict[tuple, Job] = {}
    groups: dict[str, list[str]] = {}

    def add(group: str, config: SACConfig, seed: int, dataset: Path, run_dir: Path) -> None:
        key = (config, seed, str(dataset))
        if key not in jobs:
            jobs[key] = Job("offline", config, seed, str(run_dir), str(dataset), tags={"group": group})
        groups.setdefault(group, []).append(jobs[key].run_dir)

    for agent, weight in AGENTS.items():
        config = plan.offline.replace(cql_weight=weight)
        for s in plan.offline_seeds:
            add(f"replay/{agent}", config, s, replay_dataset(plan, out, s),
                out / "offline" / "replay" / agent / f"seed-{s}")
    for tier in plan.tiers:
        for agent, weight in AGENTS.items():
            config = plan.offline.replace(cql_weight=weight, epochs=plan.tier_epochs)
            for s in plan.tier_seeds:
                add(f"{tier}/{agent}", config, s, tier_dataset(out, tier), out / "offline" / tier / agent / f"seed-{s}")
    for weight in plan.sweep_weights:
        config = plan.offline.replace(cql_weight=weight, epochs=plan.sweep_epochs)
        for s in plan.sweep_seeds:
            add(f"sweep/{weight:g}", config, s, replay_dataset(plan, out, s),
                out / "sweep" / f"cql_weight={weight:g}" / f"seed-{s}")
    return list(jobs.values()), groups


# ---------------------------------------------------------------------------------------
# Time estimate
# ---------------------------------------------------------------------------------------
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


def estimate_seconds(plan: StudyPlan, per_update: float) -> float:
    """Compute time of the whole study on one core, an upper bound: every online episode at the
    cap, offline data as large as the replay.  Parallel workers divide it by the machine's real
    parallel speed-up, which can be far below the number of logical CPUs (bench/scaling.py)."""
    c = plan.online
    steps = c.total_steps or c.total_episodes * c.max_episode_steps
    online = len(plan.online_seeds) * steps * per_update * 1.3  # env, sampling and dispatch overhead
    eval_seconds = 0.0003 * c.max_episode_steps  # one batched evaluation, generous

    def offline(epochs: int, runs: int, transitions: int) -> float:
        return runs * epochs * ((transitions // plan.offline.batch_size) * per_update + eval_seconds)

    tier_size = plan.tier_episodes * c.max_episode_steps
    return (online + offline(plan.offline.epochs, 2 * len(plan.offline_seeds), steps)
            + offline(plan.tier_epochs, 2 * len(plan.tiers) * len(plan.tier_seeds), tier_size)
            + offline(plan.sweep_epochs, len(plan.sweep_weights) * len(plan.sweep_seeds), steps))


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _progress(total: int, phase: str) -> Callable[[JobOutcome], None]:
    done = [0]

    def on_done(outcome: JobOutcome) -> None:
        done[0] += 1
        if outcome.ok:
            s = outcome.summary
            _log(f"{phase} {done[0]}/{total}: {outcome.job.run_dir}  final {s['final_return']:.1f}, "
                 f"best {s['best_return']:.1f}")
        else:
            _log(f"{phase} {done[0]}/{total}: FAILED {outcome.job.run_dir}: {outcome.error}")

    return on_done


def _relative(path: str | Path, out: Path) -> str:
    return Path(path).relative_to(out).as_posix()


def study_record(plan: StudyPlan, out: Path) -> dict[str, Any]:
    """What ``study.json`` holds: the plan (with its env), and where each run group and dataset
    is (paths relative to ``out``): all the report needs to find the runs without this module."""
    _, offline_groups = offline_jobs(plan, out)
    groups = {"online": [_relative(j.run_dir, out) for j in online_jobs(plan, out)]}
    groups.update({name: [_relative(r, out) for r in runs] for name, runs in offline_groups.items()})
    datasets = {f"replay seed {s}": _relative(replay_dataset(plan, out, i), out)
                for i, s in enumerate(plan.online_seeds)}
    datasets.update({tier: _relative(tier_dataset(out, tier), out) for tier in plan.tiers})
    # [name, paths] pairs: write_json sorts a JSON object's keys, and the report keeps this order
    return {**plan.to_dict(), "groups": list(groups.items()), "datasets": list(datasets.items())}


def load_plan(out: str | Path) -> StudyPlan:
    """The plan of the study in ``out``."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        raise SaclabError(f"{out} is not a study directory (no {PLAN_FILE})")
    return StudyPlan.from_dict(json.loads(path.read_text()))


def write_plan(plan: StudyPlan, out: str | Path) -> Path:
    """Claim ``out`` for ``plan``: refuse a different study there, (re)write ``study.json``."""
    out = Path(out)
    path = out / PLAN_FILE
    if path.exists():
        saved = load_plan(out)
        if saved != plan:
            raise SaclabError(f"{out} holds a different study (preset {saved.preset}, quick {saved.quick}, env "
                              f"{saved.env}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return write_json(path, study_record(plan, out))


def run_study(plan: StudyPlan, out: str | Path, backend: str = "local", workers: int | None = None,
              address: str | None = None) -> Path:
    """Run (or resume) every phase of the study, then write the report; returns the report path."""
    from saclab.envs.make import env_spec
    from saclab.launch.jobs import default_workers

    out = Path(out)
    env_spec(plan.env)  # an unknown or unsupported env fails before anything is written
    write_plan(plan, out)
    workers = workers or default_workers()
    per_update = seconds_per_update(plan.online)
    estimate = estimate_seconds(plan, per_update)
    _log(f"{plan.env}, preset {plan.preset}{' (quick)' if plan.quick else ''}: {len(plan.online_seeds)} online runs, "
         f"{len(offline_jobs(plan, out)[0])} offline runs on {workers} worker(s), backend {backend}; "
         f"{per_update * 1e3:.2f} ms/update measured -> at most {estimate / 60:.1f} min of compute on one core "
         f"(less with truly parallel cores) -> {out}")
    started = time.perf_counter()

    jobs = online_jobs(plan, out)
    _log(f"phase 1/4: online SAC, {len(jobs)} seeds")
    _require_all(run_jobs(jobs, backend, workers, address, on_done=_progress(len(jobs), "online")), "online")

    _log("phase 2/4: datasets (replay buffers; expert, medium and random tiers)")
    make_tier_datasets(plan, out)

    jobs, _ = offline_jobs(plan, out)
    _log(f"phase 3/4: offline SAC and CQL, tiers and CQL-weight sweep: {len(jobs)} runs")
    _require_all(run_jobs(jobs, backend, workers, address, on_done=_progress(len(jobs), "offline")), "offline")

    _log("phase 4/4: report")
    from saclab.analysis.report import write_report

    report = write_report(out)
    _log(f"done in {(time.perf_counter() - started) / 60:.1f} min: {report}")
    return report


def _require_all(outcomes: list[JobOutcome], phase: str) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SaclabError(f"{len(failed)} {phase} run(s) failed, first: {failed[0].job.run_dir}: {failed[0].error} "
                          "(rerun the study to retry them; finished runs are kept)")


def best_online_run(plan: StudyPlan, out: Path) -> Path:
    """The online seed with the highest final evaluation (the expert for the tiers)."""
    from saclab.runs.runlog import read_result

    runs = [out / "online" / f"seed-{s}" for s in plan.online_seeds]
    return max(runs, key=lambda r: ((read_result(r) or {}).get("final_return", float("-inf")), -runs.index(r)))


def make_tier_datasets(plan: StudyPlan, out: Path) -> None:
    from saclab.runs.tiers import collect_tier

    expert = best_online_run(plan, out)
    for tier in plan.tiers:
        path = tier_dataset(out, tier)
        if path.exists():
            continue
        dataset = collect_tier(tier, checkpoint=expert, env_id=plan.env, episodes=plan.tier_episodes,
                               seed=0, max_episode_steps=plan.online.max_episode_steps, progress=False)
        dataset.save(path)
        _log(f"  {tier}: {len(dataset)} transitions, mean return {dataset.episode_returns().mean():.1f} -> {path}")
