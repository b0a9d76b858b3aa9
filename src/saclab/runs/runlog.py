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

from saclab.errors import SaclabError
from saclab.files import write_json, write_text

EVAL_FILE = "evaluations.csv"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
REPLAY_FILE = "replay.h5"
"""An online run's replay buffer as a dataset (``data.dataset``), written when the run ends."""


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
        """Keep the rows up to the checkpoint's ``step``; a torn last line (the process died while
        appending it) is dropped by the readers, and so from the rewritten files."""
        rows = [r for r in read_evaluations(self.dir) if r.get("step", 0) <= step]
        _write_csv(self.dir / EVAL_FILE, rows)
        path = self.dir / METRICS_FILE
        if path.exists():
            kept = [row for row in read_metrics(self.dir) if row.get("step", 0) <= step]
            write_text(path, "".join(json.dumps(row) + "\n" for row in kept))

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


def _whole_lines(path: Path) -> list[str]:
    """The lines of an append-only log, without a torn last one: every append ends with a newline,
    so text after the last newline is a line whose writer died mid-write."""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").splitlines()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_evaluations(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's evaluations.csv, numbers parsed (a torn last row dropped); a row
    without a numeric ``return_mean``, or with a ``step`` that is not an integer, is a one-line error.
    An offline run without a simulator logs no returns: its rows need a numeric ``action_agreement``."""
    path = Path(run_dir) / EVAL_FILE
    if not path.exists():
        return []
    try:
        lines = _whole_lines(path)
    except OSError as e:
        raise SaclabError(f"unreadable {path}: {e.strerror or e}") from None
    rows = []
    for i, row in enumerate(csv.DictReader(lines), start=2):
        if None in row or None in row.values():  # a row with more or fewer fields than the header
            raise SaclabError(f"malformed {path}: line {i} has {len(row) - (None in row)} fields, not as the header")
        parsed = {k: _number(v) for k, v in row.items()}
        no_returns = "return_mean" not in parsed and _is_number(parsed.get("action_agreement"))
        if not (_is_number(parsed.get("return_mean")) or no_returns) or not isinstance(parsed.get("step", 0), int):
            raise SaclabError(f"malformed {path}: line {i} needs a numeric return_mean (and an integer step)")
        rows.append(parsed)
    return rows


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl (a torn last line dropped); a line that is not a JSON
    object, or whose ``step`` is not an integer, is a one-line error."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    try:
        lines = _whole_lines(path)
    except OSError as e:
        raise SaclabError(f"unreadable {path}: {e.strerror or e}") from None
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise SaclabError(f"malformed {path}: line {i} is not JSON") from None
        step = row.get("step", 0) if isinstance(row, dict) else None
        if not (isinstance(step, int) and not isinstance(step, bool)):
            raise SaclabError(f"malformed {path}: line {i} is not an object (with an integer step)")
        rows.append(row)
    return rows


def write_result(run_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RESULT_FILE, result)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object, or a one-line error naming it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SaclabError(f"unreadable {path}: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise SaclabError(f"malformed {path}: not a JSON object")
    return data


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A finished run's result.json (None before it finishes): an object whose ``final_return``
    and ``best_return`` are numbers (an offline run without a simulator: absent, ``simulator`` false)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    result = read_json_object(path)
    no_returns = result.get("simulator") is False and not ({"final_return", "best_return"} & set(result))
    if not no_returns and not all(_is_number(result.get(key)) for key in ("final_return", "best_return")):
        raise SaclabError(f"malformed {path}: final_return and best_return must be numbers")
    return result


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run's config.json (None if there is none): an object with a string ``kind`` and a
    ``config`` object (its fields are read one by one, with defaults, by who needs them)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    data = read_json_object(path)
    if not isinstance(data.get("kind"), str) or not isinstance(data.get("config"), dict):
        raise SaclabError(f"malformed {path}: it needs a kind and a config object")
    return data


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
