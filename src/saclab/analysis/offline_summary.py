"""``saclab summarize`` for offline runs trained without a simulator: no returns to compare, so the
table compares what the runs measured on their data (``core.offline_metrics``) at the last epoch,
per configuration, with 95% bootstrap CIs over seeds."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saclab.analysis.stats import CONFIDENCE, RANDOM_STATE, RESAMPLES, interval_estimates
from saclab.analysis.summary import SUMMARY_CSV, SUMMARY_MD, markdown_table, text_table
from saclab.files import write_text
from saclab.runs.runlog import read_json_object, read_result

OFFLINE_SCORES = {
    "td_error": "TD error",
    "initial_value": "value of initial states",
    "action_agreement": "action agreement",
    "policy_entropy": "policy entropy",
    "cql_gap": "CQL gap",
}
"""The final-epoch metrics compared (result.json's ``final_<name>``), with their column titles."""

CSV_COLUMNS = ["group", "n", "unfinished", "split"] + [f"{name}_{k}" for name in OFFLINE_SCORES
                                              for k in ("mean", "mean_low", "mean_high")]


def summarize_offline_group(runs: Sequence[str | os.PathLike], label: str = "", confidence: float = CONFIDENCE,
                            n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> dict[str, Any]:
    """One configuration's runs: ``n`` finished, ``unfinished``, and for each of ``OFFLINE_SCORES`` the
    ``interval_estimates`` of the runs' final values (nan where no finished run logged it: BC has no critic)."""
    finished = [(Path(run), result) for run in runs if (result := read_result(run)) is not None]
    results = [result for _, result in finished]
    splits = {str(read_json_object(run / "config.json").get("held_out", {}).get("split", "train"))
              for run, _ in finished if (run / "config.json").is_file()}
    row: dict[str, Any] = {"group": label, "n": len(results), "unfinished": len(runs) - len(results),
                           "split": "/".join(sorted(splits)) or "n/a"}
    for name in OFFLINE_SCORES:
        values = [float(r[f"final_{name}"]) for r in results if isinstance(r.get(f"final_{name}"), (int, float))]
        row[name] = interval_estimates(values, confidence, n_resamples, random_state)
    return row


def _cell(estimate: Mapping[str, Any]) -> str:
    mean, (low, high) = estimate["mean"], estimate["mean_ci"]
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3g}" if math.isnan(low) else f"{mean:.3g} [{low:.3g}, {high:.3g}]"


HEADER = ["configuration", "n", "measured on", *OFFLINE_SCORES.values()]


def table_cells(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The cells of the table, one list per configuration (the same for the terminal and Markdown)."""
    return [[str(r["group"]), f"{r['n']}" + (f" (+{r['unfinished']} unfinished)" if r["unfinished"] else ""),
              r["split"], *(_cell(r[name]) for name in OFFLINE_SCORES)] for r in rows]


def format_offline_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table for a terminal."""
    return text_table(HEADER, table_cells(rows))


NOTE = ("Final epoch of each run, mean over seeds [95% percentile bootstrap CI; none for one seed]. "
        "Measured on: the held-out episodes (validation) where the runs split some off "
        "(--validation-fraction), else the training data (train). TD error: mean |Q(s,a) - y|; value of "
        "initial states: the critic's estimate of the policy's discounted return from the episode starts "
        "(optimistic where the data does not cover the policy's actions: check it with `saclab ope`); action "
        "agreement: share of states where the greedy action is the data's; CQL gap: mean logsumexp_a Q - "
        "Q(s, a_data). Without a simulator none of these is a return: they say which runs fit their data and "
        "how far each policy strays from it.")


def write_offline_summary(rows: Sequence[Mapping[str, Any]], directory: str | os.PathLike,
                          title: str = "") -> list[Path]:
    """``summary.csv`` and ``summary.md`` in ``directory``; returns their paths."""
    directory = Path(directory)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        flat = {"group": r["group"], "n": r["n"], "unfinished": r["unfinished"], "split": r["split"]}
        for name in OFFLINE_SCORES:
            flat.update({f"{name}_mean": r[name]["mean"], f"{name}_mean_low": r[name]["mean_ci"][0],
                         f"{name}_mean_high": r[name]["mean_ci"][1]})
        writer.writerow(flat)
    markdown = ([f"# {title}", ""] if title else []) + markdown_table(HEADER, table_cells(rows)) + ["", NOTE, ""]
    paths = [directory / SUMMARY_CSV, directory / SUMMARY_MD]
    write_text(paths[0], buf.getvalue())
    write_text(paths[1], "\n".join(markdown))
    return paths


__all__ = ["OFFLINE_SCORES", "summarize_offline_group", "format_offline_table", "write_offline_summary"]
