"""The notebook's study, end to end, on any Discrete env with flat observations.

1. online SAC on the plan's env (the preset's, CartPole-v1 unless given) over
   several seeds (the notebook's protocol: greedy evaluation every 4 episodes on
   a separate env; episodes capped as ``episode_cap`` says);
2. datasets: each online run's replay buffer, plus expert, medium and random
   tiers collected from the best online agent;
3. offline SAC and CQL (the notebook's TRADEOFF_FACTOR, 5) on the replay
   datasets, and on each tier;
4. a CQL-weight sweep on the replay datasets;
   with a ``notebook`` preset, also the ablation of the notebook's deviations
   (``launch.ablation``): online runs of each variant, and offline SAC and CQL
   of each variant on the replay datasets;
5. the report (``saclab.analysis.report``, which reads only the files written here).

Every run is resumable and finished runs are skipped, so running the same
study again continues where it stopped.  The layout::

    STUDY/study.json                     the plan, its env, and where each run group and dataset is
    STUDY/online/seed-N/                 online runs (replay.h5 inside)
    STUDY/datasets/{expert,medium,random}.h5
    STUDY/offline/<dataset>/<sac|cql>/seed-N/
    STUDY/sweep/cql_weight=W/seed-N/     (points at offline/ runs where identical)
    STUDY/ablation/{online,sac,cql}/<variant>/seed-N/   (notebook presets; reuses identical runs)
    STUDY/report/report.md, report.html, figures/
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from saclab.config import NOTEBOOK_CQL_WEIGHT, SACConfig
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.launch.ablation import variants
from saclab.launch.estimate import estimate_seconds, seconds_per_update
from saclab.launch.jobs import Job, JobOutcome
from saclab.launch.plan import StudyPlan
from saclab.launch.pool import run_jobs
from saclab.runs.runlog import REPLAY_FILE, read_json_object

PLAN_FILE = "study.json"
AGENTS: dict[str, dict[str, Any]] = {"sac": {"cql_weight": 0.0}, "cql": {"cql_weight": NOTEBOOK_CQL_WEIGHT},
                                     "bc": {"algo": "bc", "cql_weight": 0.0}}
"""The offline agents on every dataset: SAC, CQL (the notebook's weight) and behaviour cloning (the reference)."""


# ---------------------------------------------------------------------------------------
# Jobs of each phase
# ---------------------------------------------------------------------------------------
def online_jobs(plan: StudyPlan, out: Path) -> list[Job]:
    return [Job("online", plan.online, s, str(out / "online" / f"seed-{s}")) for s in plan.online_seeds]


def ablation_online_jobs(plan: StudyPlan, out: Path) -> tuple[list[Job], dict[str, list[str]]]:
    """The ablation's online runs that the main online group does not already hold, and its run groups
    (``ablation/online/<variant>``; a variant equal to the plan's online config reuses those runs)."""
    # The epoch sampler is offline-only: online runs that differ in it alone are the same run.
    main = {(job.config.replace(notebook_epoch_sampler=False), job.seed): job.run_dir for job in online_jobs(plan, out)}
    jobs: list[Job] = []
    groups: dict[str, list[str]] = {}
    for variant, config in (variants(plan.online, online=True) if plan.ablation_seeds else {}).items():
        for s in plan.ablation_seeds:
            run_dir = main.get((config, s))
            if run_dir is None:
                run_dir = str(out / "ablation" / "online" / variant / f"seed-{s}")
                jobs.append(Job("online", config, s, run_dir, tags={"group": f"ablation/online/{variant}"}))
            groups.setdefault(f"ablation/online/{variant}", []).append(run_dir)
    return jobs, groups


def replay_dataset(plan: StudyPlan, out: Path, seed: int) -> Path:
    """Offline seed N trains on the replay buffer of online seed N (cycling if fewer)."""
    online_seed = plan.online_seeds[seed % len(plan.online_seeds)]
    return out / "online" / f"seed-{online_seed}" / REPLAY_FILE


def tier_dataset(out: Path, tier: str) -> Path:
    return out / "datasets" / f"{tier}.h5"


def offline_jobs(plan: StudyPlan, out: Path) -> tuple[list[Job], dict[str, list[str]]]:
    """All offline runs (deduplicated) and the run groups the report compares.

    Group names: ``replay/<agent>`` and ``<tier>/<agent>`` for each of ``AGENTS`` (sac, cql, bc),
    ``sweep/<weight>``, and with an ablation ``ablation/<sac|cql>/<variant>`` (on the replay datasets).
    """
    jobs: dict[tuple, Job] = {}
    groups: dict[str, list[str]] = {}

    def add(group: str, config: SACConfig, seed: int, dataset: Path, run_dir: Path) -> None:
        key = (config, seed, str(dataset))
        if key not in jobs:
            jobs[key] = Job("offline", config, seed, str(run_dir), str(dataset), tags={"group": group})
        groups.setdefault(group, []).append(jobs[key].run_dir)

    for agent, fields in AGENTS.items():
        config = plan.offline.replace(**fields)
        for s in plan.offline_seeds:
            add(f"replay/{agent}", config, s, replay_dataset(plan, out, s),
                out / "offline" / "replay" / agent / f"seed-{s}")
    for tier in plan.tiers:
        for agent, fields in AGENTS.items():
            config = plan.offline.replace(**fields, epochs=plan.tier_epochs)
            for s in plan.tier_seeds:
                add(f"{tier}/{agent}", config, s, tier_dataset(out, tier), out / "offline" / tier / agent / f"seed-{s}")
    for weight in plan.sweep_weights:
        config = plan.offline.replace(cql_weight=weight, epochs=plan.sweep_epochs)
        for s in plan.sweep_seeds:
            add(f"sweep/{weight:g}", config, s, replay_dataset(plan, out, s),
                out / "sweep" / f"cql_weight={weight:g}" / f"seed-{s}")
    for variant, base in (variants(plan.offline, online=False) if plan.ablation_seeds else {}).items():
        for agent in ("sac", "cql"):  # the deviations are SAC's; BC has none of them
            config = base.replace(**AGENTS[agent], epochs=plan.ablation_epochs)
            for s in plan.ablation_seeds:
                add(f"ablation/{agent}/{variant}", config, s, replay_dataset(plan, out, s),
                    out / "ablation" / agent / variant / f"seed-{s}")
    return list(jobs.values()), groups


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
    for name, runs in [*offline_groups.items(), *ablation_online_jobs(plan, out)[1].items()]:
        groups[name] = [_relative(r, out) for r in runs]
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
    return StudyPlan.from_dict(read_json_object(path), str(path))


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
    ablation = ablation_online_jobs(plan, out)[0]
    _log(f"phase 1/4: online SAC, {len(jobs)} seeds" + (f", and {len(ablation)} runs of the ablation's variants"
                                                        if ablation else ""))
    jobs += ablation
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
