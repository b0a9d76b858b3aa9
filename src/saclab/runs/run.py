"""What a run is, whatever its loop: its result, its directory, its evaluation seeds, its summary,
and the rule for which checkpoints it may resume from."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from saclab.config import SACConfig
from saclab.errors import SaclabError
from saclab.runs.checkpoint import check_resume_meta
from saclab.runs.runlog import read_evaluations, read_result

BUDGET_FIELDS = {"online": ("total_steps", "total_episodes"), "compiled": ("total_steps", "total_episodes"),
                 "offline": ("epochs",)}
"""The config fields a resumed run may change (extending its budget), per kind of run."""


@dataclass
class RunResult:
    """What a finished run returns (its summary is also written to ``result.json``)."""

    dir: Path
    config: SACConfig
    seed: int
    summary: dict[str, Any]
    evaluations: list[dict[str, Any]]
    state: Any = field(default=None, repr=False)  # the SACState (None for a run read back from disk)
    learner: Any = field(default=None, repr=False)

    @property
    def final_return(self) -> float:
        """The last evaluation's mean return (NaN for an offline run without a simulator)."""
        return float(self.summary.get("final_return", math.nan))

    @property
    def best_return(self) -> float:
        return float(self.summary.get("best_return", math.nan))


def finished_result(run_dir: Path, config: SACConfig, seed: int) -> RunResult:
    """The result of a run that finished earlier, read back from its directory."""
    return RunResult(run_dir, config, seed, read_result(run_dir) or {}, read_evaluations(run_dir))


RUN_MARKERS = ("checkpoint", "checkpoint.old", "checkpoint.new", "result.json", "evaluations.csv", "metrics.jsonl")
"""What a run directory holds once a run has begun (a checkpoint, or an interrupted swap's ``.old``/``.new``)."""


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run that a fresh start would overwrite."""
    return any(os.path.lexists(Path(run_dir) / name) for name in RUN_MARKERS)


def default_run_dir(kind: str, config: SACConfig, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{kind}-{config.env or 'no-env'}-{stamp}" / f"seed-{seed}"


def budget_spent(config: SACConfig, counters: dict) -> bool:
    """Whether an online run has used its budget (``total_steps`` or ``total_episodes``, whichever is set)."""
    return bool((config.total_steps and counters["step"] >= config.total_steps)
                or (config.total_episodes and counters["episode"] >= config.total_episodes))


def evaluation_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th evaluation of run ``seed`` (fresh episodes each time)."""
    return int(np.random.SeedSequence([seed, index, 0xE7A1]).generate_state(1)[0])


def return_stats(returns: np.ndarray) -> dict[str, float]:
    """The return columns of an evaluation row."""
    return {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "return_min": float(np.min(returns)), "return_max": float(np.max(returns))}


def summarize(evaluations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A run's summary (``result.json``): its final and best evaluation, and ``extra``."""
    returns = [row["return_mean"] for row in evaluations]
    return {
        "final_return": returns[-1] if returns else math.nan,
        "best_return": max(returns) if returns else math.nan,
        "evaluations": len(returns),
        **extra,
    }


def stack_seeds(trees: Sequence[Any]) -> Any:
    """Pytrees of equal structure stacked on a new leading axis (one row per seed, for ``jax.vmap``)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def take_seed(tree: Any, i: int) -> Any:
    """Row ``i`` of every leaf of a stacked pytree (``None`` leaves stay ``None``)."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def check_compatible(meta: dict, kind: str, config: SACConfig, seed: int, checkpoint: Path,
                     dataset_sha256: str | None = None) -> None:
    """Refuse to resume ``checkpoint`` (its ``meta``) as a ``kind`` run of ``config`` and ``seed``:
    only the budget may change (``BUDGET_FIELDS``), and an offline run keeps its dataset."""
    if meta.get("kind") != kind:
        raise SaclabError(f"cannot resume {checkpoint}: it is a {str(meta.get('kind', 'unknown'))[:40]} run, "
                          f"not {kind}")
    check_resume_meta(meta, kind, checkpoint)
    saved = SACConfig.from_dict(meta["config"]).to_dict()
    differing = [k for k, v in config.to_dict().items() if k not in BUDGET_FIELDS[kind] and saved[k] != v]
    if differing:
        raise SaclabError(f"cannot resume {checkpoint}: config differs in {', '.join(differing)}")
    if meta["seed"] != seed:
        raise SaclabError(f"cannot resume {checkpoint}: it was trained with seed {meta['seed']}, not {seed}")
    if dataset_sha256 is not None and meta["dataset"]["sha256"] != dataset_sha256:
        raise SaclabError(f"cannot resume {checkpoint}: it was trained on a different dataset "
                          f"({meta['dataset'].get('path') or 'sha256 ' + meta['dataset']['sha256'][:12]})")


__all__ = ["RunResult", "budget_spent", "finished_result", "holds_run", "RUN_MARKERS", "default_run_dir",
           "evaluation_seed", "return_stats", "summarize", "check_compatible", "BUDGET_FIELDS",
           "stack_seeds", "take_seed"]
