"""Editing a copy of a fixture sheet in a test (never the shipped data): one helper for every test."""

from __future__ import annotations

import csv
from pathlib import Path


def edit_rows(path: Path, edit) -> None:
    """Call ``edit(i, row)`` on every data row (dicts, in order) of the CSV at ``path`` and write it back;
    columns that ``edit`` adds are appended to the header."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    for i, row in enumerate(rows):
        edit(i, row)
    fields += [k for k in rows[0] if k not in fields]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(rows)


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    """Set ``column`` on physical ``line`` (header = 1) of a sheet with one line per row."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(column)] = value
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
