"""``where:`` of an analysis: keep only the studies whose studies.csv columns hold the listed values.

``where: {region: [lumbar, gluteal], design: parallel}`` keeps a study when every named column holds
one of its values (a single value may be written without the list). Values are compared as they are
written in the sheet: a YAML ``true`` matches ``true`` in a boolean column, ``2008`` matches the year
2008, text matches exactly (case counts, as for every code). Columns and values are checked against
the sheet before anything runs (:func:`tpsynth.validate.validate_sheets`); a study left out is
recorded in ``data/processed/dataflow.csv`` with :func:`excluded_reason`.

Standard library only: used at Snakefile parse time.
"""

from __future__ import annotations

import math


def value_key(value) -> str | None:
    """The text a value has in a sheet: booleans ``true``/``false``, whole numbers without ``.0``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        v = float(value)
        if math.isfinite(v) and v.is_integer():
            return str(int(v))
        return repr(v)
    text = str(value).strip()
    return text or None


def where_items(where: dict | None) -> list[tuple[str, list]]:
    """``where`` as (column, list of allowed values), in the order written."""
    out = []
    for col, vals in (where or {}).items():
        out.append((col, list(vals) if isinstance(vals, list) else [vals]))
    return out


def where_text(where: dict | None) -> str:
    """``where`` in words for readers: ``region lumbar or gluteal; design parallel``."""
    return "; ".join(f"{col} {' or '.join(str(value_key(v)) for v in vals)}" for col, vals in where_items(where))


def excluded_reason(study: dict, where: dict | None) -> str | None:
    """Why ``study`` (a studies.csv row) is outside ``where``, or None when it is kept."""
    for col, vals in where_items(where):
        keys = [value_key(v) for v in vals]
        got = value_key(study.get(col))
        if got not in keys:
            shown = "empty" if got is None else f"{got!r}"
            return f"study outside where: {col} is {shown}, the analysis keeps {', '.join(map(str, keys))}"
    return None
