"""Column specifications of the extraction sheets and a dependency-light CSV reader.

The specifications live in ``workflow/schemas/{studies,outcomes,contrasts}.schema.yaml`` (JSON
Schema written as YAML, one property per column); this module reads them so that the validator,
the documentation and Snakemake share one definition. Only the standard library and PyYAML are
imported here, so the Snakefile can validate the sheets at parse time for a few milliseconds.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
SHEETS = ("studies", "outcomes", "contrasts", "risk_of_bias", "screening")


@dataclass(frozen=True)
class ColumnSpec:
    """What one sheet column may hold (read from the sheet's JSON schema)."""

    name: str
    type: str  # string | integer | number | boolean
    required: bool
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    may_be_empty: bool = False
    may_be_empty_if: str | None = None
    default: object = None


@dataclass(frozen=True)
class SheetSpec:
    """Columns of one sheet, in documented order."""

    name: str
    columns: dict[str, ColumnSpec]
    allow_extra_columns: bool

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.required]


@cache
def sheet_spec(name: str, schema_dir: str | None = None) -> SheetSpec:
    """Load the column specification of sheet ``name`` from its JSON schema."""
    path = Path(schema_dir) if schema_dir else SCHEMA_DIR
    schema = yaml.load((path / f"{name}.schema.yaml").read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    required = set(schema.get("required", []))
    columns = {}
    for col, prop in schema["properties"].items():
        columns[col] = ColumnSpec(
            name=col,
            type=prop.get("type", "string"),
            required=col in required,
            enum=tuple(prop["enum"]) if "enum" in prop else None,
            pattern=prop.get("pattern"),
            minimum=prop.get("minimum"),
            maximum=prop.get("maximum"),
            exclusive_minimum=prop.get("exclusiveMinimum"),
            exclusive_maximum=prop.get("exclusiveMaximum"),
            may_be_empty=bool(prop.get("x-may-be-empty", False)),
            may_be_empty_if=prop.get("x-may-be-empty-if"),
            default=prop.get("default"),
        )
    return SheetSpec(name, columns, bool(schema.get("additionalProperties", False)))


@dataclass
class RawTable:
    """A CSV file as read: header and rows of strings, each row with its physical line number."""

    path: str
    header: list[str] = field(default_factory=list)
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


class NotCSVError(ValueError):
    """The file cannot be read as CSV text; the message says why."""


_MAGIC = {
    b"PK\x03\x04": "a ZIP archive, e.g. an Excel .xlsx/.ods workbook; export the sheet as 'CSV UTF-8'",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook; export the sheet as 'CSV UTF-8'",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip-compressed file; decompress it first",
}


#: Largest sheet read (2,000,000 outcome rows, 100,000 studies, are about 120 MB).
MAX_SHEET_BYTES = 500_000_000


def _read_regular_file(path: str | Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most :data:`MAX_SHEET_BYTES` bytes.

    Devices (``/dev/urandom`` never ends), pipes and directories are refused before anything is read.
    """
    st = os.stat(path)  # FileNotFoundError propagates
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(st.st_mode):
        raise NotCSVError("not a regular file (a device, pipe or socket); give the path of a CSV file")
    if st.st_size > MAX_SHEET_BYTES:
        raise NotCSVError(f"larger than {MAX_SHEET_BYTES:,} bytes ({st.st_size:,}); split the sheet")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SHEET_BYTES + 1)
    except PermissionError:
        raise NotCSVError("cannot be read: permission denied") from None
    if len(data) > MAX_SHEET_BYTES:
        raise NotCSVError(f"larger than {MAX_SHEET_BYTES:,} bytes; split the sheet")
    return data


def read_raw_table(path: str | Path) -> RawTable:
    """Read a CSV file (UTF-8, optional BOM) keeping each row's physical line number.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    IsADirectoryError
        When ``path`` is a directory.
    NotCSVError
        When the file is not a regular file, too large, unreadable, binary, not UTF-8, or not
        parseable as CSV. The message never quotes the file's content.
    """
    header, rows = iter_raw_table(path)
    return RawTable(str(path), header, list(rows))


def iter_raw_table(path: str | Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header of a CSV file and an iterator over its non-blank rows as (line, fields).

    As :func:`read_raw_table`, but the rows are parsed as they are consumed, so a caller that keeps
    only what it makes of each row never holds every raw field at once. The iterator raises
    :class:`NotCSVError` where the CSV turns invalid.
    """
    data = _read_regular_file(path)
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise NotCSVError(f"not a CSV text file: it looks like {what}")
    if b"\x00" in data[:4096]:
        raise NotCSVError("not a CSV text file: it contains binary (NUL) bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise NotCSVError(f"not UTF-8 text (undecodable byte on line {line}); save the file as 'CSV UTF-8'") from None
    del data
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] = []
    start = 1
    try:
        for fields in reader:
            header = [h.strip() for h in fields]
            start = reader.line_num + 1
            break
    except csv.Error as err:
        raise NotCSVError(f"not valid CSV near line {reader.line_num}: {err}") from None

    def rows():
        nonlocal start
        try:
            for fields in reader:
                end = reader.line_num
                if any(f.strip() for f in fields):
                    yield start, fields
                start = end + 1
        except csv.Error as err:
            raise NotCSVError(f"not valid CSV near line {reader.line_num}: {err}") from None

    return header, rows()
