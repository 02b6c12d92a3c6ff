"""Column specifications of the extraction sheets and a dependency-light CSV reader.

The specifications live in ``workflow/schemas/{studies,outcomes,contrasts}.schema.yaml`` (JSON
Schema written as YAML, one property per column); this module reads them so that the validator,
the documentation and Snakemake share one definition. Only the standard library and PyYAML are
imported when this module is imported (numpy and pandas only when a sheet is read), so the Snakefile's
imports stay light.
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
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import numpy as np

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
class RawColumns:
    """The data rows of a CSV file (blank rows left out) by columns, as text.

    Column ``j``'s cell in row ``i`` is ``texts[j][codes[j][i]]``: each distinct text of a column is held
    once (columns repeat their codes, units and rounded numbers), so a caller types each distinct text
    once. ``lines[i]`` is row ``i``'s physical line (the line its record starts on; the header is line 1).
    ``field_count_errors`` lists (line, number of fields) of the rows left out because their number of
    fields differs from the header's.
    """

    header: list[str]
    lines: np.ndarray
    texts: list[list[str]]
    codes: list[np.ndarray]
    field_count_errors: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


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
#: Rows parsed at a time by the C reader (bounds the memory of the rows' text objects).
CHUNK_ROWS = 250_000


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


def _unquoted_widths(data: bytes, block: int = 1 << 24):
    """The number of fields Python's csv module reads on each line of ``data``, a CSV text without quote
    characters and NUL bytes (0 for an empty line, else its commas plus one), or None when a line is longer
    than csv's field size limit (the csv module reads such a file, to report it).

    Lines end as csv with ``newline=""`` reads them: at ``\\n``, ``\\r\\n`` or a ``\\r`` alone. These bytes
    and commas never occur inside a UTF-8 multibyte character.
    """
    import numpy as np

    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    cr = np.flatnonzero(arr == 13)
    if cr.size:  # a \r not followed by \n ends a line too
        lone = cr[(cr + 1 >= arr.size) | (arr[np.minimum(cr + 1, arr.size - 1)] != 10)]
        if lone.size:
            ends = np.union1d(ends, lone)
    if not arr.size or ends.size == 0 or ends[-1] != arr.size - 1:
        ends = np.append(ends, arr.size)  # a last line without a line end
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts
    if length.size and length.max() > csv.field_size_limit():
        return None
    empty = (length == 0) | ((length == 1) & (arr[np.maximum(ends - 1, 0)] == 13))
    commas = np.zeros(ends.size, dtype=np.int64)
    first = 0
    while first < ends.size:  # a block of lines at a time: the comma positions of ~16 MB of text
        last = int(np.searchsorted(ends, starts[first] + block, side="right")) or first + 1
        last = max(last, first + 1)
        lo, hi = int(starts[first]), int(min(ends[last - 1] + 1, arr.size))
        where = np.flatnonzero(arr[lo:hi] == 44) + lo
        commas[first:last] = np.bincount(np.searchsorted(ends[first:last], where), minlength=last - first)
        first = last
    return np.where(empty, 0, commas + 1)


def _csv_error(reader, err: csv.Error) -> NotCSVError:
    return NotCSVError(f"not valid CSV near line {reader.line_num}: {err}")


class CsvFile:
    """A CSV sheet (UTF-8, optional BOM): its header, then its data rows, read once by either
    :meth:`rows` (row by row, with each row's physical line) or :meth:`columns` (by columns, at C speed).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    IsADirectoryError
        When ``path`` is a directory.
    NotCSVError
        When the file is not a regular file, too large, unreadable, binary, not UTF-8, or not
        parseable as CSV (the header here, a data row in :meth:`rows` or :meth:`columns`). The message
        never quotes the file's content.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        data = _read_regular_file(path)
        for magic, what in _MAGIC.items():
            if data.startswith(magic):
                raise NotCSVError(f"not a CSV text file: it looks like {what}")
        if b"\x00" in data[:4096]:
            raise NotCSVError("not a CSV text file: it contains binary (NUL) bytes")
        try:
            data.decode("utf-8-sig")  # the whole file is checked here; the readers decode it piece by piece
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise NotCSVError(f"not UTF-8 text (undecodable byte on line {line}); save the file as 'CSV UTF-8'") from None
        self.data = data
        self._reader = self._csv_reader()
        self.header: list[str] = []
        self._start = 1  # line of the first data row
        try:
            for fields in self._reader:
                self.header = [h.strip() for h in fields]
                self._start = self._reader.line_num + 1
                break
        except csv.Error as err:
            raise _csv_error(self._reader, err) from None

    def _csv_reader(self):
        """Python's csv reader (strict) over the file's text from its start. The text is decoded as read (a
        str of the whole file, or a StringIO, would hold it at 1-4 bytes a character)."""
        text = io.TextIOWrapper(io.BytesIO(self.data), encoding="utf-8-sig", newline="")
        return csv.reader(text, strict=True)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """The non-blank data rows as (line, fields), parsed as they are consumed."""
        reader, start = self._reader, self._start
        try:
            for fields in reader:
                end = reader.line_num
                if any(f.strip() for f in fields):
                    yield start, fields
                start = end + 1
        except csv.Error as err:
            raise _csv_error(reader, err) from None

    def columns(self) -> RawColumns:
        """The non-blank data rows by columns.

        Python's ``csv`` module (strict) reads the whole file first, keeping nothing: it finds CSV
        errors exactly as :meth:`rows` does and tells whether every record is one line with the
        header's number of fields (a file without a quote character needs no such pass: every line is a
        record, no CSV error can occur, and its fields are its commas plus one, counted by numpy, see
        :func:`_unquoted_widths`). Then pandas' C reader splits the same text by columns, and row
        ``i`` is line ``i + 2``. A file with a record spanning lines (a quoted line break), a row of
        another number of fields, a header not on line 1 or a NUL character is read by :meth:`rows`
        instead (same result, at Python speed).
        """
        nh = len(self.header)
        if self._start == 2 and b"\x00" not in self.data:
            import numpy as np

            widths = _unquoted_widths(self.data) if b'"' not in self.data else None
            if widths is not None:  # no quotes: every line is a record, and no CSV error is possible
                widths, one_line_each = widths[1:], True
            else:
                reader = self._reader
                try:
                    widths = np.fromiter(map(len, reader), dtype=np.int64)  # fields of each record, at C speed
                except csv.Error as err:
                    raise _csv_error(reader, err) from None
                one_line_each = reader.line_num == len(widths) + 1
            n = len(widths)
            odd = np.flatnonzero(widths != nh)
            if (widths[odd] > 0).any():  # a row of another width, unless an empty line: are they blank?
                rows = dict.fromkeys((odd + 1).tolist())  # record numbers (the header is 0)
                for i, fields in enumerate(self._csv_reader()):
                    if i in rows:
                        rows[i] = fields
                odd_rows = list(rows.values())
            else:
                odd_rows = [[]] * len(odd)
            # blank rows of fewer fields are fine (the C reader pads them); others are not
            if one_line_each and all(len(f) < nh and not any(x.strip() for x in f) for f in odd_rows):
                got = self._c_columns(n)
                if got is not None:
                    return got
            self._reader = self._csv_reader()
            next(self._reader)  # the header, read before
        return self._row_columns()

    def _c_columns(self, n: int) -> RawColumns | None:
        """The ``n`` data rows of a file whose records are one line each, by pandas' C reader (None if it
        does not find ``n`` rows: then the rows are read by :meth:`rows`)."""
        import numpy as np
        import pandas as pd

        nh = len(self.header)
        maps: list[dict] = [{} for _ in range(nh)]
        parts: list[list[np.ndarray]] = [[] for _ in range(nh)]
        got = 0
        chunks = pd.read_csv(
            io.BytesIO(self.data), encoding="utf-8", header=None, names=list(range(nh)), index_col=False, skiprows=1, dtype=object,
            na_filter=False, keep_default_na=False, skip_blank_lines=False, chunksize=CHUNK_ROWS, engine="c",
        )  # fmt: skip
        with chunks:
            for chunk in chunks:
                got += len(chunk)
                for j in range(nh):
                    codes, uniques = pd.factorize(chunk[j].to_numpy())
                    seen = maps[j]
                    ids = [seen.setdefault(u, len(seen)) for u in uniques.tolist()]
                    ids.append(seen.setdefault("", len(seen)))  # code -1 (a cell the reader left missing)
                    parts[j].append(np.asarray(ids, dtype=np.int32)[codes])
                del chunk
        if got != n:
            return None
        texts = [list(m) for m in maps]
        codes = [np.concatenate(p) if p else np.zeros(0, np.int32) for p in parts]
        blank = np.ones(n, dtype=bool)
        for t, c in zip(texts, codes, strict=True):
            blank &= np.array([not s.strip() for s in t], dtype=bool)[c]
        lines = np.arange(2, n + 2, dtype=np.int64)
        if blank.any():
            keep = ~blank
            lines, codes = lines[keep], [c[keep] for c in codes]
        return RawColumns(self.header, lines, texts, codes)

    def _row_columns(self) -> RawColumns:
        """:meth:`columns` row by row (records spanning lines, rows of other field counts)."""
        import numpy as np

        nh = len(self.header)
        maps: list[dict] = [{} for _ in range(nh)]
        codes: list[list[int]] = [[] for _ in range(nh)]
        lines, errors = [], []
        for line, fields in self.rows():
            if len(fields) != nh:
                errors.append((line, len(fields)))
                continue
            lines.append(line)
            for seen, col, text in zip(maps, codes, fields, strict=True):
                col.append(seen.setdefault(text, len(seen)))
        return RawColumns(
            self.header, np.asarray(lines, dtype=np.int64), [list(m) for m in maps],
            [np.asarray(c, dtype=np.int32) for c in codes], errors,
        )  # fmt: skip
