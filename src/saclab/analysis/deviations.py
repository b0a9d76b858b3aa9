"""What the notebook's deviations cost (the study's ablation), and why alpha grew or decayed.

The ablation's groups are ``ablation/<phase>/<variant>``: phase ``online``, or
``sac`` and ``cql`` trained offline on the study's replay datasets; variant
``corrected`` (the same hyperparameters, the correct algorithm), one deviation
alone (``config.NOTEBOOK_DEVIATIONS``), or ``all`` of them.  Each variant is
compared with ``corrected`` on its final and best return (IQM, 95% CIs).

alpha's direction follows from the sign of the temperature loss's gradient in
log alpha (``core.losses``), evaluated for the configuration that ran:

* policy-weighted loss:  dJ/dlog_alpha = H(pi) - H_target: alpha grows while the
  policy's entropy is below the target and shrinks above it;
* the notebook's loss:   dJ/dlog_alpha = -(mean_a log pi + H_target) >= log|A| - H_target > 0
  (Jensen: mean_a log pi <= -log|A|), so alpha decays whatever the policy does.
"""

from __future__ import annotations

import math
from typing import Any

from saclab.analysis.verdicts import compare
from saclab.config import NOTEBOOK_DEVIATIONS
from saclab.core.losses import soft_value_bound

PHASES = ("online", "sac", "cql")
VARIANTS = ("corrected", *NOTEBOOK_DEVIATIONS, "all")
STEADY = 0.1  # |log(alpha_final / alpha_initial)| below this: alpha held about still


def temperature_trend(group: dict[str, Any], config: dict[str, Any], num_actions: int) -> dict[str, Any]:
    """Why a group's alpha moved: its start and end, the policy's final entropy against the target,
    and the direction the temperature gradient gives (``grows``, ``decays``, ``fixed``)."""
    alpha_start = float(config.get("initial_alpha", 1.0))
    target = float(config.get("target_entropy_ratio", math.nan)) * math.log(max(num_actions, 1))
    notebook_loss = bool(config.get("notebook_temperature_loss", False))
    alpha, entropy = group.get("alpha", math.nan), group.get("entropy", math.nan)
    if not config.get("autotune_alpha", True):
        predicted = "fixed"
    elif notebook_loss:
        predicted = "decays"
    elif math.isnan(entropy):
        predicted = "unknown"
    else:
        predicted = "grows" if entropy < target else "decays"
    change = math.log(alpha / alpha_start) if alpha > 0 and alpha_start > 0 else math.nan
    observed = ("unknown" if math.isnan(change) else "steady" if abs(change) < STEADY
                else "grew" if change > 0 else "decayed")
    return {"alpha_start": alpha_start, "alpha_final": alpha, "entropy_final": entropy, "target_entropy": target,
            "log_num_actions": math.log(max(num_actions, 1)), "notebook_loss": notebook_loss,
            "predicted": predicted, "observed": observed}


def _row(variant: str, group: dict[str, Any], corrected: dict[str, Any] | None, config: dict[str, Any],
         env: dict[str, Any]) -> dict[str, Any]:
    alpha = group.get("alpha", math.nan)
    bound = (soft_value_bound(env["r_max"], alpha, env["num_actions"], env["gamma"],
                              bool(config.get("entropy_backup", True)))
             if not math.isnan(alpha) and env["num_actions"] else math.nan)
    row = {"variant": variant, "n": group["n"], "final": group["final"], "best": group["best"],
           "alpha": alpha, "entropy": group.get("entropy", math.nan), "q_data": group.get("q_data", math.nan),
           "q_bound": bound, "temperature": temperature_trend(group, config, env["num_actions"])}
    if corrected is not None and variant != "corrected":
        row["vs_corrected"] = {key: compare(variant, group, "corrected", corrected, key) for key in ("final", "best")}
    return row


def ablation_numbers(groups: dict[str, dict[str, Any]], configs: dict[str, dict[str, Any]],
                     env: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per phase, one row per variant that ran (``corrected`` first), each compared with ``corrected``.
    ``groups``: the study's group summaries; ``configs``: each group's run config; empty if no ablation."""
    out: dict[str, list[dict[str, Any]]] = {}
    for phase in PHASES:
        names = {v: f"ablation/{phase}/{v}" for v in VARIANTS if f"ablation/{phase}/{v}" in groups}
        if not names:
            continue
        corrected = groups.get(names.get("corrected", ""))
        out[phase] = [_row(v, groups[name], corrected, configs.get(name, {}), env) for v, name in names.items()]
    return out


__all__ = ["ablation_numbers", "temperature_trend", "PHASES", "VARIANTS"]
