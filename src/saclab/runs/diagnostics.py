"""Warnings that a run's temperature or critic is running away (read from its evaluation rows).

Two failures of discrete SAC show in the logs long before the returns fall:
alpha growing geometrically (each rise of alpha raises the soft Q-values,
whose growing action gaps push the entropy below its target again), and a
mean Q above the largest value any return can have (``soft_value_bound``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ALPHA_WINDOW_STEPS = 10_000
"""Alpha's growth is judged over the last this many environment steps (or updates)."""
ALPHA_GROWTH_FACTOR = 2.0
"""Growth by this factor within the window, rising at every one of the last evaluations, is a runaway."""
ALPHA_RISING_EVALUATIONS = 3


def alpha_runaway(steps: Sequence[int], alphas: Sequence[float], initial_alpha: float) -> bool:
    """True when alpha is above its initial value, rose at each of the last three evaluations and
    grew by ``ALPHA_GROWTH_FACTOR`` or more within the last ``ALPHA_WINDOW_STEPS`` steps."""
    if len(alphas) <= ALPHA_RISING_EVALUATIONS or alphas[-1] <= initial_alpha:
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
