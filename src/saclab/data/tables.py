"""Reading a table of named columns from a CSV, Parquet or npz file (no pandas).

A table is a dict column name -> NumPy array, all of one length N (rows), in
file order.  CSV cells stay text (``str`` arrays): ``data.logs`` converts each
column by its role (numbers, flags, episode ids) and names the row of a bad
cell.  npz arrays come as stored (``allow_pickle=False``: an object array is
refused, never unpickled).  A Parquet column of lists (one array per row)
becomes a 2-D array.  Anything unreadable is one ``SaclabError`` line.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np

from saclab.errors import SaclabError

FORMATS = {".csv": "csv", ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}
"""File suffix -> table format."""


def table_format(path: str | os.PathLike) -> str | None:
    """The table format a file name says (csv, npz, parquet), or None."""
    return FORMATS.get(Path(path).suffix.lower())


def read_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a CSV, npz or Parquet file (checked non-empty; ``data.logs`` checks their lengths)."""
    path = Path(path)
    kind = table_format(path)
    if kind is None:
        raise SaclabError(f"{path}: unknown table format (expected {', '.join(FORMATS)})")
    if not path.is_file():
        raise SaclabError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise SaclabError(f"{path} is empty")
    reader = {"csv": _read_csv, "npz": _read_npz, "parquet": _read_parquet}[kind]
    table = reader(path)
    if not table:
        raise SaclabError(f"{path} has no columns")
    if all(len(column) == 0 for column in table.values()):
        raise SaclabError(f"{path} has no rows")
    return table


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SaclabError(f"unreadable CSV {path}: {e}".splitlines()[0]) from None
    lines = [line for line in lines if line]  # blank lines (a trailing newline) carry no row
    if not lines:
        raise SaclabError(f"{path} is empty")
    header = [name.strip() for name in lines[0]]
    _check_names(header, path)
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(header):
            raise SaclabError(f"{path}: line {number} has {len(line)} fields, the header has {len(header)} "
                              "(ragged rows)")
    cells = np.array([[cell.strip() for cell in line] for line in lines[1:]], dtype=str).reshape(-1, len(header))
    return {name: cells[:, i] for i, name in enumerate(header)}


def _check_names(names: list[str], path: Path) -> None:
    if any(not name for name in names):
        raise SaclabError(f"{path}: the header has an empty column name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SaclabError(f"{path}: column {name!r} appears twice")
        seen.add(name)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            table = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        # ValueError includes "Object arrays cannot be loaded when allow_pickle=False"
        raise SaclabError(f"unreadable npz {path}: {e}".splitlines()[0]) from None
    for name, column in table.items():
        if column.ndim == 0:
            raise SaclabError(f"{path}: {name} is a scalar, expected one value per row")
    return table


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SaclabError("reading Parquet needs pyarrow: pip install 'saclab[parquet]'") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise SaclabError(f"unreadable Parquet {path}: {e}".splitlines()[0]) from None
    _check_names(list(table.column_names), path)
    return {name: _parquet_column(table.column(name), name, path) for name in table.column_names}


def _parquet_column(column, name: str, path: Path) -> np.ndarray:
    """One Parquet column as NumPy: a list column (an array per row) becomes 2-D; nulls become NaN
    (numbers) or None (anything else), which the importer then refuses with the row."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) \
            or pa.types.is_fixed_size_list(column.type):
        rows = column.to_pylist()
        lengths = {len(row) if row is not None else -1 for row in rows}
        if len(lengths) > 1 or -1 in lengths:
            raise SaclabError(f"{path}: column {name!r} holds arrays of different lengths (ragged)")
        try:
            return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        except (TypeError, ValueError):
            raise SaclabError(f"{path}: column {name!r} holds arrays that are not numbers") from None
    return column.to_numpy(zero_copy_only=False)


__all__ = ["read_table", "table_format", "FORMATS"]
