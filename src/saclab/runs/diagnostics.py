"""Warnings that a run's temperature or critic is running away (read from its evaluation rows).

Two failures of discrete SAC show in the logs long before the returns fall:
alpha growing geometrically (each rise of alpha raises the soft Q-values,
whose growing action gaps push the entropy below its target again), and a
mean Q above the largest value any return can have (``soft_value_bound``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from saclab.core.losses import soft_value_bound

ALPHA_WINDOW_STEPS = 10_000
"""Alpha's growth is judged over the last this many environment steps (or updates)."""
ALPHA_GROWTH_FACTOR = 2.0
"""Growth by this factor within the window, rising at every one of the last evaluations, is a runaway."""
ALPHA_RISING_EVALUATIONS = 3
ALPHA_RUNAWAY_LEVEL = 4.0
"""...and alpha is at least this multiple of its initial value.  The default's early climb on LunarLander
(1 -> 1.9-2.1 within 3k steps, then flat or falling: 3 of 5 seeds) doubles too, and is not a runaway."""


def alpha_runaway(steps: Sequence[int], alphas: Sequence[float], initial_alpha: float) -> bool:
    """True when alpha is at least ``ALPHA_RUNAWAY_LEVEL`` times its initial value, rose at each of the
    last three evaluations and grew by ``ALPHA_GROWTH_FACTOR`` or more within the last
    ``ALPHA_WINDOW_STEPS`` steps."""
    if len(alphas) <= ALPHA_RISING_EVALUATIONS or alphas[-1] < ALPHA_RUNAWAY_LEVEL * initial_alpha:
        return False
    recent = alphas[-ALPHA_RISING_EVALUATIONS - 1:]
    if any(later <= earlier for earlier, later in zip(recent, recent[1:], strict=False)):
        return False
    start = next(i for i, s in enumerate(steps) if s >= steps[-1] - ALPHA_WINDOW_STEPS)
    return alphas[-1] >= ALPHA_GROWTH_FACTOR * min(alphas[start:])


def q_runaway(q: float, bound: float) -> bool:
    """True when a mean Q-value exceeds the largest value a return can have (or is not finite)."""
    return not math.isfinite(q) or q > bound


def runaway_message(what: str, step: int, run: str | None = None) -> str:
    where = f"{run}: " if run else ""
    return (f"saclab: warning: {where}step {step}: {what} (evaluations.csv holds alpha, entropy, q_data and "
            "q_bound per evaluation; docs/presets.md explains the default that prevents this)")


class RunawayWatch:
    """Adds alpha, entropy, mean Q and its bound to each evaluation row; one warning per kind per run.

    ``history`` is the run's earlier evaluation rows (a resumed run), so a warning already given is not
    repeated and alpha's growth is judged across the interruption."""

    def __init__(self, initial_alpha: float, num_actions: int, gamma: float, entropy_backup: bool,
                 run: str | None = None, history: Sequence[dict] = ()) -> None:
        self.initial_alpha, self.num_actions, self.gamma = initial_alpha, num_actions, gamma
        self.entropy_backup, self.run = entropy_backup, run
        rows = [r for r in history if r.get("alpha") not in (None, "")]
        self.steps = [int(r["step"]) for r in rows]
        self.alphas = [float(r["alpha"]) for r in rows]
        self.warned = {kind for kind in ("alpha_runaway", "q_over_bound") if any(_flag(r.get(kind)) for r in rows)}

    def columns(self, step: int, means: dict[str, float], r_max: float) -> dict:
        """The row's diagnostic columns (blank before the first update)."""
        if not means:
            return dict.fromkeys(("alpha", "entropy", "q_data", "q_bound", "alpha_runaway", "q_over_bound"))
        bound = soft_value_bound(r_max, means["alpha"], self.num_actions, self.gamma, self.entropy_backup)
        self.steps.append(step)
        self.alphas.append(means["alpha"])
        return {"alpha": means["alpha"], "entropy": means["entropy"], "q_data": means["q_data"], "q_bound": bound,
                "alpha_runaway": alpha_runaway(self.steps, self.alphas, self.initial_alpha),
                "q_over_bound": q_runaway(means["q_data"], bound)}

    def warnings(self, row: dict) -> list[str]:
        """Messages for the kinds of runaway this row shows for the first time in the run."""
        out = []
        if row.get("alpha_runaway") and "alpha_runaway" not in self.warned:
            out.append(runaway_message(f"alpha grows geometrically ({self.alphas[0]:.3g} -> {row['alpha']:.3g})",
                                       row["step"], self.run))
        if row.get("q_over_bound") and "q_over_bound" not in self.warned:
            out.append(runaway_message(f"mean Q {row['q_data']:.1f} exceeds the soft-value bound "
                                       f"{row['q_bound']:.1f}", row["step"], self.run))
        self.warned |= {kind for kind in ("alpha_runaway", "q_over_bound") if row.get(kind)}
        return out


def final_diagnostics(evaluations: Sequence[dict]) -> dict:
    """For result.json: the last evaluation's alpha, mean Q and bound, and whether either ever ran away."""
    rows = [r for r in evaluations if r.get("alpha") not in (None, "")]
    if not rows:
        return {}
    last = rows[-1]
    return {"final_alpha": last["alpha"], "final_entropy": last["entropy"], "final_q_data": last["q_data"],
            "final_q_bound": last["q_bound"], "alpha_runaway": any(_flag(r.get("alpha_runaway")) for r in rows),
            "q_over_bound": any(_flag(r.get("q_over_bound")) for r in rows)}


def _flag(value: object) -> bool:
    return value is True or str(value).lower() == "true"
