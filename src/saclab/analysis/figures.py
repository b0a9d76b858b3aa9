"""The study report's figures, drawn from its numbers and run files (PNG files in ``report/figures``).

Curves use the one curve plotter (``plots.plot_curves``: mean and 95% bootstrap
CI over seeds); titles and reference lines come from the env's numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from saclab.analysis.plots import BAND, plot_curves, save_figure


def _sweep(groups: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    return sorted((float(k.split("/", 1)[1]), v) for k, v in groups.items() if k.startswith("sweep/"))


def _error_bars(estimates: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    lo = [e["iqm"] - e["iqm_ci"][0] if not math.isnan(e["iqm_ci"][0]) else 0 for e in estimates]
    hi = [e["iqm_ci"][1] - e["iqm"] if not math.isnan(e["iqm_ci"][1]) else 0 for e in estimates]
    return lo, hi


def sweep_figure(numbers: dict[str, Any], out: Path) -> Path | None:
    """Final and best return (IQM, 95% CI) and the final Q-values against the CQL weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = _sweep(numbers["groups"])
    if not sweep:
        return None
    weights = [w for w, _ in sweep]
    xs = np.arange(len(weights))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("final", "final return"), ("best", "best return")):
        estimates = [g[key] for _, g in sweep]
        ax1.errorbar(xs, [e["iqm"] for e in estimates], yerr=_error_bars(estimates), marker="o", capsize=3,
                     label=f"{label} (IQM, 95% CI)")
    bc = numbers["groups"].get("replay/bc")
    if bc is not None and bc["n"] and not math.isnan(bc["final"]["iqm"]):  # the reference every offline paper gives
        ax1.axhline(bc["final"]["iqm"], color="gray", linestyle=":", label="behaviour cloning, final (IQM)")
    ax1.set_xlabel("CQL weight (TRADEOFF_FACTOR)")
    ax1.set_ylabel("greedy evaluation return")
    ax2.plot(xs, [g["q_data"] for _, g in sweep], marker="o", label="mean Q(s, a_data)")
    ax2.plot(xs, [g["q_greedy"] for _, g in sweep], marker="s", label="mean Q(s, greedy a)")
    ax2.axhline(sweep[0][1]["mc_return"], color="k", linestyle="--", label="Monte Carlo return of the data")
    ax2.set_yscale("symlog")
    ax2.set_xlabel("CQL weight")
    ax2.set_ylabel("value (final epoch)")
    for ax in (ax1, ax2):
        ax.set_xticks(xs, [f"{w:g}" for w in weights])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Effect of the CQL weight (offline, replay data, {numbers['env']['id']})")
    fig.tight_layout()
    return save_figure(fig, out)


def value_figure(numbers: dict[str, Any], out: Path) -> Path:
    """Each agent's predicted Q against the Monte Carlo return of its training data, with the value bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, env = numbers["groups"], numbers["env"]
    agents = [k for k in ("online", "replay/sac", "replay/cql") if k in groups]
    agents += [k for k in groups if k.split("/")[0] in numbers["plan"]["tiers"]]
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = np.arange(len(agents))
    ax.bar(xs - 0.27, [groups[a]["q_data"] for a in agents], 0.27, label="predicted Q(s, a_data)")
    ax.bar(xs, [groups[a]["q_greedy"] for a in agents], 0.27, label="predicted Q(s, greedy a)")
    ax.bar(xs + 0.27, [groups[a]["mc_return"] for a in agents], 0.27, label="Monte Carlo return")
    formula = "r_max / (1 - γ)" if env["r_max"] >= 0 else "r_max"  # as core.losses.value_bound
    ax.axhline(env["q_bound"], color="grey", linestyle=":", label=f"largest return, {formula} = {env['q_bound']:.1f}")
    ax.set_yscale("symlog")
    shown = [v for a in agents for k in ("q_data", "q_greedy", "mc_return") if math.isfinite(v := groups[a][k])]
    low, high = min(shown + [env["q_bound"], 0.0]), max(shown + [env["q_bound"], 0.0])
    ax.set_ylim(low * 1.5 - 0.5, high * 1.5 + 0.5)  # symlog's autoscale can cut bars off; room for the legend
    ax.set_xticks(xs, agents, rotation=20, fontsize=8)
    ax.set_ylabel("value")
    ax.set_title(f"Predicted Q against the Monte Carlo return of each agent's training data ({env['id']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, out)


def study_figures(numbers: dict[str, Any], figure_dir: Path) -> dict[str, str]:
    """Draw every figure into ``figure_dir``; returns name -> path relative to the report."""
    groups, env = numbers["groups"], numbers["env"]["id"]
    figures = {}
    if plot_curves({"online SAC": groups["online"]["runs"]}, figure_dir / "online.png",
                   title=f"Online SAC on {env}\n{BAND}"):
        figures["online"] = "figures/online.png"
    curves = {"offline SAC": groups["replay/sac"]["runs"], "CQL": groups["replay/cql"]["runs"]}
    if "replay/bc" in groups:  # studies before behaviour cloning have none
        curves["behaviour cloning"] = groups["replay/bc"]["runs"]
    if plot_curves(curves, figure_dir / "offline.png", x="epoch",
                   title=f"Offline SAC vs CQL (and behaviour cloning) on the replay buffers, {env}\n{BAND}"):
        figures["offline"] = "figures/offline.png"
    if sweep_figure(numbers, figure_dir / "cql_sweep.png"):
        figures["sweep"] = "figures/cql_sweep.png"
    value_figure(numbers, figure_dir / "q_vs_mc.png")
    figures["q"] = "figures/q_vs_mc.png"
    return figures


__all__ = ["study_figures", "sweep_figure", "value_figure"]
