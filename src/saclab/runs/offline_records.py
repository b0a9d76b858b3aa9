"""The records of an offline run: its counters, config.json, checkpoint meta, evaluation rows,
warnings and result.json (what ``train_offline`` writes and what resuming reads)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from saclab.config import SACConfig
from saclab.core.types import EnvSpec
from saclab.data.dataset import Dataset
from saclab.runs.checkpoint import find_checkpoint, load_meta, load_state
from saclab.runs.run import check_compatible, return_stats, summarize
from saclab.runs.runlog import read_evaluations, write_result
from saclab.version import __version__

KIND = "offline"


def new_counters() -> dict[str, Any]:
    """A fresh run's counters (saved in every checkpoint)."""
    return {"epoch": 0, "updates": 0, "wall_time": 0.0}


def dataset_info(dataset: Dataset) -> dict[str, Any]:
    """The dataset's identity as recorded in config.json and checkpoints (the sha256 guards resume)."""
    return {"path": str(dataset.path) if dataset.path else None, "transitions": len(dataset),
            "sha256": dataset.fingerprint(), "env_id": dataset.env_id}


def run_config(config: SACConfig, seed: int, spec: EnvSpec, data_info: dict[str, Any],
               held_out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of an offline run's config.json (``held_out``: the split the metrics use)."""
    return {"kind": KIND, "seed": seed, "config": config.to_dict(), "env": vars(spec),
            "dataset": data_info, "held_out": held_out or {}, "saclab_version": __version__}


def checkpoint_meta(config: SACConfig, seed: int, counters: dict[str, Any], rng: np.random.Generator,
                    data_info: dict[str, Any], spec: EnvSpec | None = None) -> dict[str, Any]:
    """The meta.json of an offline checkpoint (what ``train_offline(resume=True)`` reads); ``spec``
    gives the networks' sizes to a run without an env (``Policy.load``)."""
    meta = {"kind": KIND, "seed": seed, "config": config.to_dict(), "counters": counters,
            "rng": rng.bit_generator.state, "dataset": data_info, "saclab_version": __version__}
    if spec is not None:
        meta["spec"] = {"obs_dim": spec.obs_dim, "num_actions": spec.num_actions,
                        "obs_shape": list(spec.obs_shape), "obs_dtype": spec.obs_dtype}
    return meta


def restore_checkpoint(run_dir: Path, config: SACConfig, seed: int, data_info: dict[str, Any], template: Any,
                       rng: np.random.Generator) -> tuple[Any, dict[str, Any]] | None:
    """Load ``run_dir``'s checkpoint, if any, after checking it fits: ``(state, counters)``, and
    ``rng`` set to the saved permutation generator's state; None when there is no checkpoint."""
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is None:
        return None
    meta = load_meta(checkpoint)
    check_compatible(meta, KIND, config, seed, checkpoint, data_info["sha256"])
    state = load_state(checkpoint, template)
    rng.bit_generator.state = meta["rng"]
    return state, meta["counters"]


def non_finite(means: dict[str, float]) -> list[str]:
    """The names of the non-finite epoch means, sorted."""
    return sorted(k for k, v in means.items() if not math.isfinite(v))


def diverged_message(bad: list[str], epoch: int, last_epoch: int, checkpoint_dir: Path) -> str:
    return (f"training diverged: non-finite {', '.join(bad)} in epoch {epoch} "
            f"(last good checkpoint: epoch {last_epoch} in {checkpoint_dir})")


def evaluation_row(step: int, epoch: int, returns: np.ndarray | None, means: dict[str, float], mc_return: float,
                   bound: float, time_s: float, offline: dict[str, float] | None = None) -> dict[str, Any]:
    """One row of evaluations.csv: return statistics (``returns`` None: no simulator, none), the
    value diagnostics (SAC's; behaviour cloning has no critics) and the ``offline`` metrics."""
    row: dict[str, Any] = {"step": step, "epoch": epoch, **(return_stats(returns) if returns is not None else {})}
    if "q_data" in means:
        row.update(q_data=means["q_data"], q_greedy=means["q_greedy"], mc_return=mc_return, q_bound=bound,
                   overestimated=means["q_data"] > bound or means["q_greedy"] > bound)
    return {**row, **(offline or {}), "time_s": time_s}


def overestimation_message(epoch: int, means: dict[str, float], bound: float, run_dir: Path | None = None) -> str:
    q = max(means["q_data"], means["q_greedy"])
    where = f"{run_dir}: " if run_dir is not None else ""
    return (f"saclab: warning: {where}epoch {epoch}: mean Q {q:.1f} exceeds r_max/(1-gamma) = {bound:.1f} "
            "(overestimation; the 'overestimated' column of evaluations.csv flags every epoch)")


def finish_run(run_dir: Path, config: SACConfig, counters: dict[str, Any], transitions: int, wall: float,
               **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write result.json from the run's evaluations; returns (summary, evaluations)."""
    evaluations = read_evaluations(run_dir)
    last = evaluations[-1] if evaluations else {}
    finals = {f"final_{name}": last[name] for name in OFFLINE_METRICS if name in last}
    counts = dict(epochs=counters["epoch"], updates=counters["updates"], transitions=transitions,
                  algo=config.algo, cql_weight=config.cql_weight, wall_time_s=round(wall, 2),
                  updates_per_s=round(counters["updates"] / max(wall, 1e-9), 1), **finals, **extra)
    if "return_mean" in last:
        summary = summarize(evaluations, **counts)
    else:  # no simulator: no returns; the held-out metrics are the run's result
        summary = {"simulator": False, "evaluations": len(evaluations), **counts}
    write_result(run_dir, summary)
    return summary, evaluations


OFFLINE_METRICS = ("td_error", "initial_value", "cql_gap", "action_agreement", "policy_entropy", "action_nll")
"""The offline metrics' columns of evaluations.csv (``core.offline_metrics``), in display order."""


def describe(summary: dict[str, Any]) -> str:
    """A run's result in a few words: its returns, or without a simulator its held-out metrics."""
    if "final_return" in summary:
        return f"final {summary['final_return']:.1f}, best {summary['best_return']:.1f}"
    shown = [f"{name} {summary[f'final_{name}']:.3g}" for name in OFFLINE_METRICS if f"final_{name}" in summary]
    return "no simulator: " + ", ".join(shown)


def warn(bar: Any, message: str) -> None:
    """A warning line on stderr that does not break the progress bar."""
    if bar.disable:
        print(message, file=sys.stderr)
    else:
        bar.write(message, file=sys.stderr)
