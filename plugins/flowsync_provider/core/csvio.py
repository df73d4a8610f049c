"""The one CSV writer: header first, plain commas, ``\\n`` line endings, minimal quoting, UTF-8, atomic.

Every CSV (flows, campaigns, subscribers; dry-run previews too) goes through ``format_row`` so the
same rows always give the same bytes. Files appear under their final name only when complete
(``core.workdir.atomic_temp`` + ``os.replace``), so an interrupted run never leaves a half CSV behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from flowsync_provider.core.schemas import TEXT, format_value, kind_of
from flowsync_provider.core.workdir import atomic_temp

# OWASP "CSV Injection": a spreadsheet runs a cell starting with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(cell: str) -> str:
    """``'`` before a cell a spreadsheet would run as a formula (OWASP CSV Injection); others unchanged."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def _writer(stream: IO[str]) -> Any:
    return csv.writer(stream, delimiter=",", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def format_row(columns: Sequence[str], row: dict, *, escape_formulas: bool = False) -> list[str]:
    """Cells of ``row`` in ``columns`` order, formatted by the schema table (missing cells → kind default).

    ``escape_formulas`` escapes text columns only (names, tags, emails...): a numeric column such as a
    negative revenue ``-1.50`` must stay a number, while a text cell ``-5% off`` is escaped as OWASP says.
    """
    cells = [format_value(column, row.get(column)) for column in columns]
    if escape_formulas:
        cells = [escape_formula(cell) if kind_of(column) == TEXT else cell
                 for column, cell in zip(columns, cells, strict=True)]
    return cells


def csv_text(columns: Sequence[str], rows: Iterable[dict], *, escape_formulas: bool = False) -> str:
    """The exact text ``write_csv`` would write."""
    buffer = io.StringIO()
    writer = _writer(buffer)
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow(format_row(columns, row, escape_formulas=escape_formulas))
    return buffer.getvalue()


def csv_preview(columns: Sequence[str], rows: Iterable[dict], n: int = 5, *, escape_formulas: bool = False) -> str:
    """Header + the first ``n`` rows as CSV text (dry-run ``csvPreview``)."""
    head = []
    for index, row in enumerate(rows):
        if index >= n:
            break
        head.append(row)
    return csv_text(columns, head, escape_formulas=escape_formulas)


def sample(columns: Sequence[str], rows: Iterable[dict], n: int = 5) -> list[dict[str, str]]:
    """The first ``n`` rows as formatted objects (dry-run ``sample``), in column order."""
    out = []
    for index, row in enumerate(rows):
        if index >= n:
            break
        out.append(dict(zip(columns, format_row(columns, row), strict=True)))
    return out


class CsvStreamWriter:
    """Append rows to a CSV without holding them (audience exports); atomic on ``commit``.

    Use as a context manager: a clean exit commits (renames the temp file into place), an exception
    aborts (removes the temp file) and re-raises.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *, escape_formulas: bool = False,
                 work_dir: str | os.PathLike[str] | None = None):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.escape_formulas = escape_formulas
        self.rows_written = 0
        fd, self._tmp = atomic_temp(self.path, work_dir)
        self._stream: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._writer = _writer(self._stream)
        self._writer.writerow(list(self.columns))

    def write_row(self, row: dict) -> None:
        if self._stream is None:
            raise RuntimeError("CsvStreamWriter is closed")
        self._writer.writerow(format_row(self.columns, row, escape_formulas=self.escape_formulas))
        self.rows_written += 1

    def write_rows(self, rows: Iterable[dict]) -> int:
        before = self.rows_written
        for row in rows:
            self.write_row(row)
        return self.rows_written - before

    def commit(self) -> int:
        """Flush, fsync and move the file into place; returns the number of data rows."""
        if self._stream is None:
            raise RuntimeError("CsvStreamWriter is closed")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        self._stream = None
        os.replace(self._tmp, self.path)
        return self.rows_written

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> CsvStreamWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_csv(path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[dict], *,
              escape_formulas: bool = False) -> int:
    """Write ``rows`` atomically; returns the number of data rows (header excluded)."""
    with CsvStreamWriter(path, columns, escape_formulas=escape_formulas) as writer:
        writer.write_rows(rows)
    return writer.rows_written


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_text(obj: object) -> str:
    """Deterministic JSON (sorted keys, 2-space indent, UTF-8 text, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=_json_default) + "\n"


def write_json(path: str | os.PathLike[str], obj: object) -> None:
    """Write ``json_text(obj)`` atomically (temp file + rename)."""
    target = Path(path)
    text = json_text(obj)  # serialise first: a TypeError must not leave a temp file behind
    fd, tmp = atomic_temp(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
