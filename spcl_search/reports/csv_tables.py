"""``compare --csv``: every table compare prints, one CSV file per table.

``--csv gain.csv`` writes the gain table to ``gain.csv`` (as it always did), the method view (when compare shows
it) to ``gain-methods.csv``, the answers per study to ``gain-answers.csv`` and the best settings in the paper's
layout to ``gain-best.csv``. Numbers are rounded to 4 decimals, missing values are empty cells.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

from spcl_search.reports.methods import MethodRow


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under ``header`` as CSV text (floats to 4 decimals, None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else round(v, 4) if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def methods_csv(rows: Sequence[MethodRow]) -> str:
    """The method view: one row per balance method (its best tri-modal setting, seeds' mean and std, gains)."""
    names = [f.name for f in fields(MethodRow)]
    return csv_text(names, ([getattr(r, n) for n in names] for r in rows))


def table_path(out: Path, table: str) -> Path:
    """Where table ``table`` goes: ``out`` for the gain table, ``<stem>-<table><suffix>`` beside it for the others."""
    return out if table == "gain" else out.with_name(f"{out.stem}-{table}{out.suffix or '.csv'}")
