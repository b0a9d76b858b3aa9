"""Run directories and metrics: CSV (evaluations), JSON lines (training
metrics) and TensorBoard event files.

A run directory holds::

    config.json        the SACConfig and run settings
    evaluations.csv    one row per evaluation (step, episode/epoch, return stats, diagnostics)
    metrics.jsonl      training metrics averaged over each logging interval
    tb/                TensorBoard events (if tensorboardX is installed)
    checkpoint/        the latest checkpoint (see checkpoint.py)
    result.json        final summary, written when the run completes
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from saclab.files import write_json, write_text

EVAL_FILE = "evaluations.csv"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"


class RunLog:
    """Appends metrics to a run directory; on resume, drops rows after the checkpoint."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True, resume_step: int | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            for name in (EVAL_FILE, METRICS_FILE, RESULT_FILE):
                (self.dir / name).unlink(missing_ok=True)
        else:
            self._truncate(resume_step)
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.dir / "tb"), flush_secs=30)
            except ImportError:  # TensorBoard logging is optional
                self._tb = None

    def _truncate(self, step: int) -> None:
        rows = [r for r in read_evaluations(self.dir) if r["step"] <= step]
        _write_csv(self.dir / EVAL_FILE, rows)
        path = self.dir / METRICS_FILE
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            write_text(path, "".join(line + "\n" for line in kept))

    def log_eval(self, row: dict[str, Any]) -> None:
        """Append one evaluation row (must contain ``step``)."""
        path = self.dir / EVAL_FILE
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if set(row) - set(header):  # a run extended by a newer saclab: widen the file, keep its rows
                rows = read_evaluations(self.dir)
                _write_csv(path, [{**dict.fromkeys(row), **r} for r in rows] + [row])
                self._scalars("eval", row)
                return
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self._scalars("eval", row)

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one line of training metrics (must contain ``step``)."""
        with (self.dir / METRICS_FILE).open("a") as f:
            f.write(json.dumps(row) + "\n")
        self._scalars("train", row)

    def _scalars(self, prefix: str, row: dict[str, Any]) -> None:
        if self._tb is None:
            return
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and np.isfinite(value):
                self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def _number(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_evaluations(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's evaluations.csv, numbers parsed."""
    path = Path(run_dir) / EVAL_FILE
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def write_result(run_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RESULT_FILE, result)


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.exists() else None


class MetricAccumulator:
    """Running sums of per-update metrics between log points.

    The sums live where the updates put them (a device array that the jitted
    step adds to), so nothing is read back per update; ``means`` reads them
    once.  The sums are part of a checkpoint, so a resumed run logs the same
    averages as an uninterrupted one.
    """

    def __init__(self, names: tuple[str, ...], sums: Any = None, count: int = 0) -> None:
        self.names = tuple(names)
        self.sums: Any = np.zeros(len(self.names), np.float32) if sums is None else np.asarray(sums, np.float32)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(np.asarray(self.sums))))

    def means(self) -> dict[str, float]:
        if not self.count:
            return {}
        sums = np.asarray(self.sums, np.float64)
        return {name: float(v) / self.count for name, v in zip(self.names, sums, strict=True)}

    def reset(self) -> None:
        self.sums, self.count = np.zeros(len(self.names), np.float32), 0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": np.asarray(self.sums, np.float32).tolist(), "count": self.count}
