"""What ``saclab summarize`` writes for a directory of runs: the statistics table
(terminal, ``summary.csv``, ``summary.md``) and the curves (``curves.png``)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saclab.analysis.plots import plot_curves
from saclab.analysis.runfiles import sweep_groups
from saclab.analysis.stats import RANDOM_STATE, RESAMPLES, SCORES, summarize_groups
from saclab.files import write_text

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVES_PNG = "curves.png"
ESTIMATES = ("mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high", "std")
CSV_COLUMNS = ["group", "n", "unfinished"] + [f"{s}_{k}" for s in SCORES for k in ESTIMATES]
TABLE_HEADER = ["configuration", "n", "final: mean [95% CI]", "final: IQM [95% CI]",
                "best: mean [95% CI]", "best: IQM [95% CI]"]


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``summarize_group`` row as the CSV's flat columns (``final_mean``, ``final_iqm_low``, ...)."""
    flat = {"group": row["group"], "n": row["n"], "unfinished": row["unfinished"]}
    for score in SCORES:
        est = row[score]
        flat.update({f"{score}_mean": est["mean"], f"{score}_mean_low": est["mean_ci"][0],
                     f"{score}_mean_high": est["mean_ci"][1], f"{score}_iqm": est["iqm"],
                     f"{score}_iqm_low": est["iqm_ci"][0], f"{score}_iqm_high": est["iqm_ci"][1],
                     f"{score}_std": est["std"]})
    return flat


def _num(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _interval(interval: Sequence[float]) -> str:
    low, high = interval
    return "n/a" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def table_cells(row: Mapping[str, Any]) -> list[str]:
    """The human-readable cells of one summary row (see ``TABLE_HEADER``)."""
    cells = [str(row["group"]), f"{row['n']}" + (f" (+{row['unfinished']} unfinished)" if row["unfinished"] else "")]
    for score in SCORES:
        est = row[score]
        cells += [f"{_num(est['mean'])} {_interval(est['mean_ci'])}", f"{_num(est['iqm'])} {_interval(est['iqm_ci'])}"]
    return cells


def text_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header (for a terminal)."""
    lines = [list(header), *map(list, cells)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (pipes in cells escaped)."""
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells])


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of summary rows (for a terminal)."""
    return text_table(TABLE_HEADER, [table_cells(r) for r in rows])


def format_markdown(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """A Markdown table of summary rows, with a note on the statistics."""
    out = [f"# {title}", ""] if title else []
    out += markdown_table(TABLE_HEADER, [table_cells(r) for r in rows])
    out += ["", "final: the last greedy evaluation's mean return; best: the highest evaluation of the run. "
            "n: finished runs (seeds). IQM: 25%-trimmed mean (scipy.stats.trim_mean). 95% CIs: percentile "
            f"bootstrap over runs (scipy.stats.bootstrap, {RESAMPLES} resamples, random_state {RANDOM_STATE}); "
            "n/a for n = 1, and only a range for n = 2.", ""]
    return "\n".join(out)


def write_summary(rows: Sequence[Mapping[str, Any]], directory: str | os.PathLike, title: str = "") -> list[Path]:
    """Write ``summary.csv`` and ``summary.md`` in ``directory``; returns their paths."""
    directory = Path(directory)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat_row(r) for r in rows)
    paths = [directory / SUMMARY_CSV, directory / SUMMARY_MD]
    write_text(paths[0], buf.getvalue())
    write_text(paths[1], format_markdown(rows, title))
    return paths


def summarize_directory(directory: str | os.PathLike, x: str | None = None) -> tuple[list[dict[str, Any]], list[Path]]:
    """Summarise a sweep directory: rows, and the files written there
    (``summary.csv``, ``summary.md`` and, if there are evaluations, ``curves.png``)."""
    directory = Path(directory)
    groups = sweep_groups(directory)
    rows = summarize_groups(groups)
    paths = write_summary(rows, directory, title=f"Sweep {directory.name}")
    curves = plot_curves(groups, directory / CURVES_PNG, x=x)
    if curves is not None:
        paths.append(curves)
    return rows, paths


__all__ = ["flat_row", "table_cells", "text_table", "markdown_table",
           "format_table", "format_markdown", "write_summary", "summarize_directory",
           "CSV_COLUMNS", "TABLE_HEADER"]
