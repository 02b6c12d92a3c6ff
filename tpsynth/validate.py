"""Validation of the extraction sheets against their schemas, the config and each other.

Every problem is collected (one run reports them all) as ``FILE:LINE: column COLUMN: what is
wrong (value found)``. Line numbers are physical lines of the file (the header is line 1).
Only the standard library and PyYAML are used, so this runs at Snakefile parse time cheaply.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from itertools import repeat
from operator import is_not
from pathlib import Path

from .columns import Table
from .measures import RATIO_MEASURES
from .selection import value_key, where_items
from .sheets import ColumnSpec, CsvFile, NotCSVError, RawColumns, SheetSpec, sheet_spec

TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0"}
CONTINUOUS_STATS = ("mean", "sd", "se", "ci_low", "ci_high", "median", "q1", "q3", "min", "max")


@dataclass(frozen=True)
class Problem:
    """One problem in one place of one file."""

    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        col = f" column {self.column}:" if self.column else ""
        return f"{where}:{col} {self.message}"


class Reason(str):
    """Why a row is left out of an analysis; ``column`` names the sheet column to fix, when a data
    problem (not the analysis's own window or selection rules) is the cause.

    A ``str`` subclass, so reasons are written to JSON and ``dataflow.csv`` as plain text;
    ``python -m tpsynth validate`` reports the ones with a column as warnings.
    """

    column: str | None

    def __new__(cls, text: str, column: str | None = None):
        obj = super().__new__(cls, text)
        obj.column = column
        return obj


class SheetValidationError(Exception):
    """Raised when the sheets are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(format_problems(problems))


def format_problems(problems: list[Problem]) -> str:
    n = len(problems)
    lines = [str(p) for p in problems]
    lines.append(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.")
    return "\n".join(lines)


@dataclass
class Sheets:
    """Typed rows of the sheets, each with ``_line`` (its physical line) added.

    ``outcomes`` (up to millions of rows) is a :class:`tpsynth.columns.Table`, stored by columns (a list
    of row dicts given here is turned into one); the other sheets are lists of row dicts.
    """

    studies: list[dict] = field(default_factory=list)
    outcomes: Table = field(default_factory=lambda: Table({}))
    contrasts: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    extra_study_columns: list[str] = field(default_factory=list)
    risk_of_bias: list[dict] = field(default_factory=list)  # optional sheet, checked by tpsynth.rob
    warnings: list = field(default_factory=list)  # Problems that do not stop a run (e.g. a derived overall)
    prisma: object = None  # tpsynth.prisma.Flow when the config has prisma: or data.screening

    def __post_init__(self):
        if not isinstance(self.outcomes, Table):
            rows = list(self.outcomes)
            self.outcomes = Table.from_rows(rows, names=list(dict.fromkeys(k for r in rows for k in r)))


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57] + "...")


#: Words for "not available" in number cells; the sheets say it with an empty cell.
MISSING_WORDS = {"na", "n/a", "n.a.", "nan", "null", "none", "missing", "nr", "n.r.", "not reported", "-", "--", ".",
                 "\u2013", "\u2014", "?", "unknown"}  # fmt: skip


def _number_hint(text: str) -> str:
    """A hint for a number written with a decimal comma or with thousands separators."""
    plain = text.lstrip("+-")
    sign = text[: len(text) - len(plain)]
    if re.fullmatch(r"\d{1,3}(,\d{3})+", plain):
        digits = sign + plain.replace(",", "")
        if plain.count(",") == 1:
            return (
                f": if the comma separates thousands write {digits}, if it is a decimal comma write "
                f"{text.replace(',', '.')}; numbers are written without thousands separators, with a dot as "
                "decimal separator"
            )
        return f": write {digits} (numbers are written without thousands separators)"
    if re.fullmatch(r"\d{1,3}(,\d{3})+\.\d+", plain):
        return f": write {sign}{plain.replace(',', '')} (numbers are written without thousands separators)"
    if re.fullmatch(r"\d{1,3}([ \u00a0\u202f']\d{3})+(\.\d+)?", plain):
        return f": write {sign}{re.sub(r'[^0-9.]', '', plain)} (numbers are written without thousands separators)"
    if re.fullmatch(r"\d{1,3}(\.\d{3})+,\d+", plain):
        return f": write {sign}{plain.replace('.', '').replace(',', '.')} (no thousands separators, a dot as decimal separator)"
    if re.fullmatch(r"\d*,\d+", plain):
        return " (use a dot as decimal separator)"
    return ""


def _parse_cell(raw: str, spec: ColumnSpec):
    """Return (value, error message or None)."""
    text = raw.strip()
    if spec.type == "string":
        if spec.enum and text not in spec.enum:
            return None, f"must be one of {', '.join(spec.enum)} (found {_shown(text)})"
        if spec.pattern and not re.fullmatch(spec.pattern, text):
            return None, f"may contain only letters, digits and _ . - (found {_shown(text)})"
        return text, None
    if spec.type == "boolean":
        low = text.lower()
        if low in TRUE:
            return True, None
        if low in FALSE:
            return False, None
        return None, f"expected true or false (found {_shown(text)})"
    kind = "a whole number" if spec.type == "integer" else "a number"
    if text.lower() in MISSING_WORDS:
        return None, f"expected {kind}; leave the cell empty when the value is not available (found {_shown(text)})"
    try:
        value = float(text)
    except ValueError:
        return None, f"expected {kind}{_number_hint(text)} (found {_shown(text)})"
    if not math.isfinite(value):
        return None, f"expected a finite number (found {_shown(text)})"
    if spec.type == "integer" and value != int(value):
        return None, f"expected a whole number (found {_shown(text)})"
    if spec.type == "integer":
        value = int(value)
    if spec.minimum is not None and value < spec.minimum:
        return None, f"must be >= {spec.minimum:g} (found {_shown(text)})"
    if spec.maximum is not None and value > spec.maximum:
        return None, f"must be <= {spec.maximum:g} (found {_shown(text)})"
    if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
        return None, f"must be > {spec.exclusive_minimum:g} (found {_shown(text)})"
    if spec.exclusive_maximum is not None and value >= spec.exclusive_maximum:
        return None, f"must be < {spec.exclusive_maximum:g} (found {_shown(text)})"
    return value, None


def _cell_value(text: str, cspec: ColumnSpec | None) -> tuple:
    """(value, error or None, cell is blank) of one cell; ``cspec`` None for an extra (studies) column."""
    stripped = text.strip()
    if cspec is None:  # extra column (studies only): kept as text
        return stripped or None, None, not stripped
    if stripped == "":
        return (cspec.default if not cspec.required else None), None, True
    value, err = _parse_cell(text, cspec)
    return value, err, False


def _read_table(
    path: str, spec: SheetSpec, problems: list[Problem], numbers: dict | None = None
) -> tuple[Table, list[str]] | None:
    """Read and type-check one sheet; append problems; return its typed rows (a :class:`Table`, with
    ``_line`` the physical line of each row, and ``_invalid`` when a cell was invalid) and extra columns.
    ``numbers``: filled as :func:`_typed_table` says."""
    try:
        sheet = CsvFile(path)
    except FileNotFoundError:
        problems.append(Problem(path, None, None, "file not found"))
        return None
    except IsADirectoryError:
        problems.append(Problem(path, None, None, "is a directory, expected a CSV file"))
        return None
    except NotCSVError as err:
        problems.append(Problem(path, 1, None, str(err)))
        return None
    header = sheet.header
    if not header or not any(header):
        problems.append(Problem(path, 1, None, "file is empty (no header row)"))
        return None
    n_problems = len(problems)  # a CSV error further down replaces this file's other problems
    known = [h for h in header if h in spec.columns or suggest_column(h, list(spec.columns))]
    if not known:
        # Not one expected column: another separator, or not an extraction sheet at all. The header is
        # not quoted: the file may be anything (a password file, a private document).
        problems.append(Problem(path, 1, None, _foreign_header(header, spec)))
        return None
    bad = False
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name == "":
            problems.append(Problem(path, 1, None, f"header field {i + 1} is empty"))
            bad = True
        elif name in seen:
            problems.append(Problem(path, 1, name, "column appears twice in the header"))
            bad = True
        seen[name] = i
    for col in spec.required:
        if col not in seen:
            problems.append(Problem(path, 1, col, "required column missing"))
            bad = True
    extra = [h for h in header if h and h not in spec.columns]
    if not spec.allow_extra_columns:
        for col in extra:
            near = suggest_column(col, list(spec.columns))
            hint = f"; did you mean {near!r}?" if near else "; allowed columns are listed in config/README.md"
            problems.append(Problem(path, 1, col, f"unknown column{hint}"))
            bad = True
    try:
        if bad:  # only whether a data row follows (a CSV error before it is the file's one problem)
            if next(sheet.rows(), None) is None:
                problems.append(Problem(path, 2, None, "no data rows"))
            return None
        raw = sheet.columns()
        del sheet
        if not len(raw) and not raw.field_count_errors:
            problems.append(Problem(path, 2, None, "no data rows"))
            return None
        return _typed_table(path, spec, raw, problems, numbers), extra
    except NotCSVError as err:  # invalid CSV further down: that alone is reported, as for a bad start
        del problems[n_problems:]
        problems.append(Problem(path, 1, None, str(err)))
        return None


def _read_sheet(path: str, spec: SheetSpec, problems: list[Problem]) -> tuple[list[dict], list[str]] | None:
    """As :func:`_read_table`, the rows as dicts (``_invalid`` only in rows with an invalid cell)."""
    got = _read_table(path, spec, problems)
    if got is None:
        return None
    table, extra = got
    rows = table.rows()
    if "_invalid" in table:
        for row in rows:
            if row["_invalid"] is None:
                del row["_invalid"]
    return rows, extra


def _typed_table(
    path: str, spec: SheetSpec, raw: RawColumns, problems: list[Problem], numbers: dict | None = None
) -> Table:
    """Type-check the columns of a sheet whose header is valid; append problems; return the typed rows.

    Each distinct text of a column is typed once (:func:`_cell_value`); the rows share the value objects.
    A column the sheet leaves out holds its default in every row: one tuple shared by all such columns.
    ``numbers``, when given, gets each number column of the sheet as a float array (NaN where None) and, under
    ``("id", column)``, each column as integers equal where the values are equal (both made per distinct
    text: the checks that follow need not convert whole columns again).
    Problems come in the order of a row-by-row reading: by line, then the cells in header order, then
    the required values in the schema's order.
    """
    import numpy as np

    header, lines, n = raw.header, raw.lines, len(raw)
    line_list = lines.tolist()
    found: list[Problem] = [
        Problem(path, line, None, f"row has {count} fields but the header has {len(header)}")
        for line, count in raw.field_count_errors
    ]
    invalid = np.zeros(n, dtype=bool)
    blank: dict[str, np.ndarray] = {}  # column -> which rows have a blank cell (for the required values)
    needs_blank = {c for c, cs in spec.columns.items() if cs.required and not cs.may_be_empty}
    needs_blank |= {spec.columns[c].may_be_empty_if for c in needs_blank} - {None}
    columns: dict[str, list] = {"_line": line_list}
    for col, texts, codes in zip(header, raw.texts, raw.codes, strict=True):
        cspec = spec.columns.get(col)
        typed = [_cell_value(text, cspec) for text in texts]
        values = np.empty(len(typed), dtype=object)
        values[:] = [t[0] for t in typed]
        columns[col] = values[codes].tolist()
        if numbers is not None:
            if cspec is not None and cspec.type in ("number", "integer"):
                numbers[col] = np.array([np.nan if v is None else v for v in values], dtype=float)[codes]
            same: dict = {}  # Python's equality, as a dict key (1 == 1.0; None is one value)
            numbers["id", col] = np.array([same.setdefault(v, len(same)) for v in values], dtype=np.int64)[codes]
        if col in needs_blank:
            blank[col] = np.array([t[2] for t in typed], dtype=bool)[codes]
        errors = [k for k, t in enumerate(typed) if t[1]]
        if errors:
            rows = np.flatnonzero(np.isin(codes, errors))
            invalid[rows] = True
            found.extend(Problem(path, line_list[i], col, typed[codes[i]][1]) for i in rows.tolist())
    absent: dict = {}  # default -> one tuple for every column absent from the sheet (read-only, shared)
    for col, cspec in spec.columns.items():
        if col not in columns:
            columns[col] = absent.get(cspec.default) or absent.setdefault(cspec.default, (cspec.default,) * n)
        elif cspec.required and not cspec.may_be_empty:
            empty = blank[col]
            cond = cspec.may_be_empty_if
            if cond in blank:
                empty = empty & blank[cond]
            extra_msg = f" (it may be blank only when {cond} is given)" if cond else ""
            rows = np.flatnonzero(empty)
            invalid[rows] = True
            found.extend(Problem(path, line_list[i], col, f"required value is empty{extra_msg}") for i in rows.tolist())
    if invalid.any():
        columns["_invalid"] = np.where(invalid, True, None).tolist()
    found.sort(key=lambda p: p.line)  # stable: within a line, in the order found above
    problems.extend(found)
    return Table(columns, n)


SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _foreign_header(header: list[str], spec: SheetSpec) -> str:
    """Why a header names none of the sheet's columns, without quoting it."""
    line = ",".join(header)
    for sep, name in SEPARATORS.items():
        fields = [f.strip().strip('"') for f in line.split(sep)]
        if sum(f in spec.columns for f in fields) >= 2:
            return (
                f"this file is {name}-separated; export it as CSV with commas (in Excel: 'CSV UTF-8 (comma "
                "delimited)'; European Excel writes ';')"
            )
    expected = ", ".join(spec.required[:4])
    return (
        f"the header line names none of the columns of {'an' if spec.name[0] in 'aeiou' else 'a'} {spec.name} "
        f"sheet (expected {expected}, ...); "
        "is this the right file?"
    )


ALIASES = {
    "stdev": "sd", "std": "sd", "std_dev": "sd", "standard_deviation": "sd", "sem": "se", "std_err": "se",
    "standard_error": "se", "sample_size": "n", "n_total": "n", "average": "mean", "avg": "mean",
    "lower": "ci_low", "upper": "ci_high", "lcl": "ci_low", "ucl": "ci_high", "iqr_low": "q1", "iqr_high": "q3",
    "minimum": "min", "maximum": "max", "cases": "events", "study": "study_id", "group": "arm",
    "time_weeks": "timepoint_weeks", "timepoint": "timepoint_weeks", "weeks": "timepoint_weeks",
}  # fmt: skip


def suggest_column(name: str, allowed: list[str]) -> str | None:
    """The allowed column a misspelt or differently-named column most likely means."""
    low = name.strip().lower().replace(" ", "_").replace("-", "_")
    if low in allowed:
        return low
    if ALIASES.get(low) in allowed:
        return ALIASES[low]
    near = difflib.get_close_matches(low, allowed, n=1, cutoff=0.6)
    return near[0] if near else None


def _unknown_values(values, known) -> list[tuple[int, str, str]]:
    """(row index, value, "; did you mean ...?" hint or "") of each value not in ``known`` (None is no value).

    Each distinct value is looked at once; rows are listed only when some value is unknown."""
    if not any(v is not None and v not in known for v in dict.fromkeys(values)):
        return []
    hints: dict = {}
    out = []
    for i, v in enumerate(values):
        if v is None or v in known:
            continue
        if v not in hints:
            near = difflib.get_close_matches(v, list(known), n=1, cutoff=0.6)
            hints[v] = f"; did you mean {near[0]!r}?" if near else ""
        out.append((i, v, hints[v]))
    return out


def _check_codes(path, values, lines, column, declared, kind, problems, config_path):
    """A problem for each row whose code in ``column`` (``values``, one per row) is not declared."""
    for i, code, hint in _unknown_values(values, declared):
        problems.append(
            Problem(path, lines[i], column, f"code not declared under '{kind}' in {config_path}{hint} (found {code!r})")
        )


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


FIVE = ("min", "q1", "median", "q3", "max")


def _present(values: list):
    """Which cells of a column hold a value (not None), as a numpy mask."""
    import numpy as np

    return np.fromiter(map(is_not, values, repeat(None)), dtype=bool, count=len(values))


def _check_outcomes(path: str, t: Table, problems: list[Problem], numbers: dict | None = None) -> None:
    """The checks of each outcome row that relate its cells, on whole columns.

    Scale given as a pair and ordered; ci_low <= ci_high; the five-number summary in order; events <= n;
    values within the scale (change scores within twice its width) and SD/SE no larger than such values
    allow (:func:`_check_spread`); a usable set of statistics or an ``unusable_reason``. Problems come
    in the order of a row-by-row check (by line after the caller's stable sort; within a row as listed).
    """
    import numpy as np

    line = t["_line"]
    found: list[Problem] = []

    def emit(mask, column, message) -> None:
        found.extend(Problem(path, line[i], column, message(i)) for i in np.flatnonzero(mask).tolist())

    col = t.columns
    wanted = ("n", "events", "scale_min", "scale_max", "ci_low", "ci_high", "sd", "se", *FIVE, "mean")
    num = {c: numbers[c] if numbers and c in numbers else t.floats(c) for c in wanted}
    has = {c: ~np.isnan(v) for c, v in num.items()}
    smin, smax = col["scale_min"], col["scale_max"]
    emit(has["scale_min"] & ~has["scale_max"], "scale_max", lambda i: "scale_min and scale_max must be given together")
    emit(~has["scale_min"] & has["scale_max"], "scale_min", lambda i: "scale_min and scale_max must be given together")
    scale_ok = has["scale_min"] & has["scale_max"]
    with np.errstate(invalid="ignore"):
        reversed_scale = scale_ok & (num["scale_min"] >= num["scale_max"])
    emit(reversed_scale, "scale_min", lambda i: f"scale_min must be below scale_max (found {_fmt(smin[i])} >= {_fmt(smax[i])})")
    scale_ok &= ~reversed_scale
    lo, hi = col["ci_low"], col["ci_high"]
    emit(has["ci_low"] & has["ci_high"] & (np.nan_to_num(num["ci_low"]) > np.nan_to_num(num["ci_high"])), "ci_low",
         lambda i: f"ci_low is above ci_high (found {_fmt(lo[i])} > {_fmt(hi[i])})")  # fmt: skip
    for a in range(len(FIVE)):  # each value with the next one given
        for b in range(a + 1, len(FIVE)):
            c1, c2 = FIVE[a], FIVE[b]
            mask = has[c1] & has[c2]
            for c in FIVE[a + 1 : b]:
                mask &= ~has[c]
            with np.errstate(invalid="ignore"):
                mask &= num[c1] > num[c2]
            v1, v2 = col[c1], col[c2]
            emit(mask, c2, lambda i, c1=c1, c2=c2, v1=v1, v2=v2:
                 f"five-number summary out of order: {c1} {_fmt(v1[i])} > {c2} {_fmt(v2[i])}")  # fmt: skip
    events, n = col["events"], col["n"]
    with np.errstate(invalid="ignore"):
        emit(has["events"] & has["n"] & (num["events"] > num["n"]), "events", lambda i: f"events exceed n (found {events[i]} > {n[i]})")
    change = np.array([v == "change" for v in col["value_type"]], dtype=bool)
    width = num["scale_max"] - num["scale_min"]
    low = np.where(change, -width, num["scale_min"])
    high = np.where(change, width, num["scale_max"])

    def bounds(i):
        if change[i]:
            return -(smax[i] - smin[i]), smax[i] - smin[i]
        return smin[i], smax[i]

    for c in ("mean", "median", "q1", "q3", "min", "max"):
        values = col[c]
        with np.errstate(invalid="ignore"):
            mask = scale_ok & has[c] & ~((low <= num[c]) & (num[c] <= high))

        def outside(i, values=values):
            lo_i, hi_i = bounds(i)
            kind = "change " if change[i] else ""
            return f"{kind}value outside the scale {_fmt(lo_i)} to {_fmt(hi_i)} (found {_fmt(values[i])})"

        emit(mask, c, outside)
    # SD and SE within what values on the scale allow (_check_spread, on whole columns)
    nn = num["n"]
    spread = scale_ok & has["n"] & (np.nan_to_num(nn) >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd_max = (high - low) / 2 * np.sqrt(nn / (nn - 1))
        limits = {"sd": sd_max, "se": sd_max / np.sqrt(nn)}
        for c in ("sd", "se"):
            mask = spread & has[c] & (num[c] > limits[c] * (1 + 1e-12))
            emit(mask, c, lambda i, c=c: _spread_message(t.row(i), c, bounds(i)))
    # a usable set of statistics, unless the row says why not or a cell is invalid already
    skip = _present(col["unusable_reason"])  # a text, never blank (a blank cell is None)
    if "_invalid" in t:
        skip |= _present(col["_invalid"])
    emit(~skip & (usable_kinds(t, num) == ""), "unusable_reason", lambda i: (
        "no usable set of statistics (n with mean and sd, se or ci_low+ci_high; n with median and "
        "q1+q3 and/or min+max; or n with events) and no unusable_reason given"
    ))  # fmt: skip
    problems.extend(found)



def _spread_message(row: dict, column: str, bounds: tuple) -> str:
    """The message of an SD or SE larger than values confined to the scale ``bounds`` allow.

    Values within an interval of width w have a population variance of at most w²/4 (Popoviciu's
    inequality, 1935), so the sample SD of n of them is at most (w/2)·sqrt(n/(n-1)) and its SE at most
    (w/2)/sqrt(n-1). For change scores w is twice the scale's width (-(max-min) to max-min).
    """
    n = row["n"]
    sd_max = (bounds[1] - bounds[0]) / 2 * math.sqrt(n / (n - 1))
    limit = sd_max if column == "sd" else sd_max / math.sqrt(n)
    kind = "change scores" if row.get("value_type") == "change" else "values"
    return (f"{column} larger than {n} {kind} within the scale can have: at most {limit:.4g} "
            f"(found {_fmt(row[column])}); check the scale and the cell")  # fmt: skip


#: The columns that decide which set of statistics a row has (:func:`usable_kinds`).
STATISTICS = ("n", "events", "mean", "sd", "se", "ci_low", "ci_high", *FIVE)


def usable_kinds(t: Table, numbers: dict | None = None):
    """Which set of statistics each row of ``t`` can be analysed from, as a numpy array of str: ``"events"``
    (n and events), ``"mean_sd"``, ``"mean_se"``, ``"mean_ci"`` (n, mean and sd, se or ci_low+ci_high),
    ``"fivenum"`` (n, median and q1+q3 and/or min+max), tried in this order; ``""`` when none.

    ``numbers``: the :data:`STATISTICS` columns as float arrays (``t.floats``), when already made.
    """
    import numpy as np

    if numbers is None:
        numbers = {c: t.floats(c) for c in STATISTICS}
    has = {c: ~np.isnan(numbers[c]) for c in STATISTICS}
    kinds = np.full(len(t), "", dtype=object)
    left = has["n"].copy()
    for kind, mask in (
        ("events", has["events"]),
        ("mean_sd", has["mean"] & has["sd"]),
        ("mean_se", has["mean"] & has["se"]),
        ("mean_ci", has["mean"] & has["ci_low"] & has["ci_high"]),
        ("fivenum", has["median"] & ((has["q1"] & has["q3"]) | (has["min"] & has["max"]))),
    ):
        now = left & mask
        kinds[now] = kind
        left &= ~now
    return kinds


def _check_duplicate_rows(path: str, t: Table, problems: list[Problem], numbers: dict | None = None) -> None:
    """A problem for each usable outcome row repeating an earlier row's study+arm+outcome+timepoint
    (``numbers``: as :func:`_typed_table` fills it, when it did)."""
    import numpy as np
    import pandas as pd

    names = ("study_id", "arm", "outcome", "timepoint_weeks")
    cols = [t.get(c) for c in names]
    keyed = _present(cols[0]) & _present(cols[1]) & _present(cols[2])
    keyed &= ~_present(t["unusable_reason"])
    rows = np.flatnonzero(keyed)
    if not rows.size:
        return
    key = np.zeros(rows.size, dtype=np.int64)
    for name, values in zip(names, cols, strict=True):  # one integer per distinct key (as Python's ==)
        if numbers and ("id", name) in numbers:
            codes = pd.factorize(numbers["id", name][rows])[0]
        else:
            codes = pd.factorize(np.asarray(values, dtype=object)[rows], use_na_sentinel=False)[0]
        key = pd.factorize(key * (int(codes.max(initial=0)) + 1) + codes)[0].astype(np.int64)
    _, first = np.unique(key, return_index=True)
    line, (sid, arm, out, tp) = t["_line"], cols
    for j in np.flatnonzero(first[key] != np.arange(rows.size)).tolist():
        i, f = int(rows[j]), int(rows[first[key[j]]])
        problems.append(Problem(
            path, line[i], "arm",
            f"duplicate study+arm+outcome+timepoint, first on line {line[f]} "
            f"(found {sid[i]} / {arm[i]} / {out[i]} / {_fmt(tp[i])} weeks)",
        ))  # fmt: skip


def _check_contrast_row(path: str, row: dict, problems: list[Problem]) -> None:
    line = row["_line"]
    lo, hi, est = row.get("ci_low"), row.get("ci_high"), row.get("estimate")
    if lo is not None and hi is not None and lo > hi:
        problems.append(Problem(path, line, "ci_low", f"ci_low is above ci_high (found {_fmt(lo)} > {_fmt(hi)})"))
    ratio = row.get("measure") in RATIO_MEASURES
    if ratio:
        for col in ("estimate", "ci_low", "ci_high"):
            v = row.get(col)
            if v is not None and v <= 0:
                problems.append(Problem(path, line, col, f"a ratio ({row['measure']}) must be > 0 (found {_fmt(v)})"))
    if est is not None and lo is not None and hi is not None and lo <= hi and not lo <= est <= hi:
        problems.append(
            Problem(path, line, "estimate", f"estimate lies outside its CI {_fmt(lo)} to {_fmt(hi)} (found {_fmt(est)})")
        )
    smin, smax = row.get("scale_min"), row.get("scale_max")
    if smin is not None and smax is not None and smin >= smax:
        problems.append(Problem(path, line, "scale_min", f"scale_min must be below scale_max (found {_fmt(smin)} >= {_fmt(smax)})"))
    if row.get("unusable_reason") or row.get("_invalid"):
        return
    if est is None or (row.get("se") is None and (lo is None or hi is None)):
        problems.append(
            Problem(path, line, "unusable_reason", "no se or ci_low+ci_high for the estimate and no unusable_reason given")
        )


def validate_sheets(
    studies: str,
    outcomes: str,
    contrasts: str | None,
    config: dict,
    config_path: str = "config/config.yaml",
    risk_of_bias: str | None = None,
) -> tuple[Sheets, list[Problem]]:
    """Validate the three sheets; return typed rows and every problem found.

    Parameters
    ----------
    studies, outcomes, contrasts : str
        Paths of the sheets (``contrasts`` optional: None or a missing default file is allowed
        only when passed as None).
    config : dict
        The parsed configuration (codes declared under ``interventions`` and ``outcomes``).
    """
    problems: list[Problem] = []
    sheets = Sheets(paths={"studies": studies, "outcomes": outcomes, "contrasts": contrasts or ""})
    declared_int = dict(config.get("interventions") or {})
    declared_out = dict(config.get("outcomes") or {})

    got = _read_sheet(studies, sheet_spec("studies"), problems)
    study_lines: dict[str, int] = {}
    if got:
        sheets.studies, sheets.extra_study_columns = got
        for row in sheets.studies:
            sid = row.get("study_id")
            if sid is None:
                continue
            if sid in study_lines:
                problems.append(
                    Problem(studies, row["_line"], "study_id", f"duplicate study_id, first on line {study_lines[sid]} (found {sid!r})")
                )
            else:
                study_lines[sid] = row["_line"]

    numbers: dict = {}
    got = _read_table(outcomes, sheet_spec("outcomes"), problems, numbers)
    if got:
        sheets.outcomes = t = got[0]
        _check_outcomes(outcomes, t, problems, numbers)
        _check_duplicate_rows(outcomes, t, problems, numbers)
        del numbers
        lines = t["_line"]
        _check_codes(outcomes, t["intervention"], lines, "intervention", declared_int, "interventions", problems, config_path)
        _check_codes(outcomes, t["outcome"], lines, "outcome", declared_out, "outcomes", problems, config_path)
        if sheets.studies:
            _check_study_refs(outcomes, t["study_id"], lines, study_lines, studies, problems)

    if contrasts:
        got = _read_sheet(contrasts, sheet_spec("contrasts"), problems)
        if got:
            sheets.contrasts = got[0]
            for row in sheets.contrasts:
                _check_contrast_row(contrasts, row, problems)
            lines = [r["_line"] for r in sheets.contrasts]
            for column, declared, kind in (("intervention", declared_int, "interventions"),
                                           ("comparator", declared_int, "interventions"),
                                           ("outcome", declared_out, "outcomes")):  # fmt: skip
                codes = [r.get(column) for r in sheets.contrasts]
                _check_codes(contrasts, codes, lines, column, declared, kind, problems, config_path)
            if sheets.studies:
                ids = [r.get("study_id") for r in sheets.contrasts]
                _check_study_refs(contrasts, ids, lines, study_lines, studies, problems)
    if sheets.studies:
        _check_study_columns(config, sheets, studies, config_path, problems)
    if risk_of_bias:
        from .rob import check_rows

        got = _read_sheet(risk_of_bias, sheet_spec("risk_of_bias"), problems)
        if got:
            sheets.risk_of_bias = got[0]
            sheets.paths["risk_of_bias"] = risk_of_bias
            rob_problems, sheets.warnings = check_rows(
                risk_of_bias, sheets.risk_of_bias, sheets.studies, studies, declared_out
            )
            problems.extend(rob_problems)
    screening = (config.get("data") or {}).get("screening")
    if config.get("prisma") or screening:
        from .prisma import load_flow

        def read(path, name, probs):
            got = _read_sheet(path, sheet_spec(name), probs)
            return got[0] if got else None

        sheets.prisma, prisma_problems = load_flow(config, config_path, screening, sheets.studies, studies, read)
        problems.extend(prisma_problems)
    order = {studies: 0, outcomes: 1, contrasts: 2, risk_of_bias: 3}
    problems.sort(key=lambda p: (order.get(p.file, 4), p.line or 0))
    return sheets, problems


def _check_study_columns(config, sheets, studies_path, config_path, problems):
    """Each analysis's ``subgroup``, ``moderators`` and ``where`` name columns of studies.csv, and ``where``
    values that occur."""
    columns = list(sheet_spec("studies").columns) + list(sheets.extra_study_columns)

    def unknown(key, col):
        near = difflib.get_close_matches(col, columns, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}?" if near else f"its columns are {', '.join(columns)}"
        problems.append(Problem(config_path, None, None, f"key {key}: {col!r} is not a column of {studies_path}; {hint}"))

    for aid, a in (config.get("analyses") or {}).items():
        if a.get("subgroup") and a["subgroup"] not in columns:
            unknown(f"analyses.{aid}.subgroup", a["subgroup"])
        for col in a.get("moderators") or []:
            if col not in columns:
                unknown(f"analyses.{aid}.moderators", col)
        for col, vals in where_items(a.get("where")):
            if col not in columns:
                unknown(f"analyses.{aid}.where", col)
                continue
            present = sorted({value_key(s.get(col)) for s in sheets.studies} - {None})
            shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "")
            for v in vals:
                k = value_key(v)
                if k in present:
                    continue
                near = difflib.get_close_matches(k or "", present, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}?" if near else f"values found: {shown or 'none'}"
                problems.append(Problem(
                    config_path, None, None,
                    f"key analyses.{aid}.where.{col}: no study in {studies_path} has {col} {k!r}; {hint}",
                ))  # fmt: skip


def _check_study_refs(path, ids, lines, study_lines, studies_path, problems):
    """A problem for each row whose study_id (``ids``, one per row) is not a row of studies.csv."""
    for i, sid, hint in _unknown_values(ids, study_lines):
        problems.append(Problem(path, lines[i], "study_id", f"unknown study, not in {studies_path}{hint} (found {sid!r})"))


def load_sheets(config: dict, config_path: str = "config/config.yaml", base: str | Path = ".") -> Sheets:
    """Validate the sheets named in ``config['data']`` and return them; raise on any problem."""
    data = config["data"]
    base = Path(base)

    def p(key):
        v = data.get(key)
        return str(base / v) if v and base != Path(".") else v

    sheets, problems = validate_sheets(
        p("studies"), p("outcomes"), p("contrasts"), config, config_path, risk_of_bias=p("risk_of_bias")
    )
    if problems:
        raise SheetValidationError(problems)
    return sheets


def _network_exclusions(config, arms, ingest_reason, by_line, arms_of, usable_contrasts, studies, found) -> dict:
    """The rows a configured network will leave out for a data reason (as for analyses, with the network's
    nodes in place of the two sides; named ``network:ID``)."""
    from .network_analysis import network_settings
    from .network_data import build_network_data, node_of

    arm_rows = arms.rows() if config.get("networks") else []  # build_network_data takes row dicts
    for nid in sorted(config.get("networks") or {}):
        n = network_settings(config, nid)
        label = f"network:{nid}"
        node = node_of(n)
        lo, hi = n["timepoint_weeks"]
        for key, reason in ingest_reason.items():
            row = by_line[key]
            t = row.get("timepoint_weeks")
            if row.get("outcome") != n["outcome"] or (t is not None and not lo <= t <= hi):
                continue
            if key[0] == "outcomes":  # a row of a node in a study with rows of another node
                here = node.get(row.get("intervention"))
                on_node = here is not None and any(
                    node.get(code) not in (None, here) for code in arms_of[(row.get("study_id"), row.get("outcome"))]
                )
            else:
                a, b = node.get(row.get("intervention")), node.get(row.get("comparator"))
                on_node = a is not None and b is not None and a != b
            if on_node:
                found.setdefault((key, getattr(reason, "column", None) or "unusable_reason", str(reason)), []).append(label)
        for f in build_network_data(n, arm_rows, usable_contrasts, studies, config).flow:
            column = getattr(f["reason"], "column", None)
            if f["state"] == "not_used" and column:
                found.setdefault(((f["sheet"], f["line"]), column, str(f["reason"])), []).append(label)
    return found


def exclusion_warnings(sheets: Sheets, config: dict) -> list[Problem]:
    """Rows of valid sheets that a configured analysis will leave out, as ``FILE:LINE: column`` warnings.

    The pipeline's own rules decide (:func:`tpsynth.harmonise.harmonise` and
    :func:`tpsynth.study_effects.build_study_effects` run on the sheets), so a warning here is
    exactly an ``excluded`` row of ``dataflow.csv`` caused by the data rather than by the analysis's
    window or selection rules. Warned are rows of an analysis's outcome on one of its sides, inside
    its timepoint window (or without a timepoint), that

    * carry an ``unusable_reason`` (column ``unusable_reason``);
    * cannot be harmonised (e.g. a median summary metafor's ``conv.fivenum`` declines);
    * are refused by the analysis: an ``MD`` instrument without ``scale_min``/``scale_max``, a
      contrast on another measure, a non-randomised study in a randomised-only analysis, a row
      type that does not fit the measure, no events in both arms, zero variance.

    An arm row counts only when its study has rows of the outcome on the other side too. Rows
    outside every analysis's window, of a study with data on one side only, or not chosen because
    the timepoint rule or instrument order picked another row of the same study, are scoping, not
    data problems, and are not warned about (``dataflow.csv`` still records them). One warning per
    row and reason, naming every analysis concerned.
    """
    from .config import analysis_settings
    from .harmonise import harmonise_rows
    from .study_effects import data_exclusions

    paths = {"outcomes": sheets.paths.get("outcomes", "outcomes.csv"), "contrasts": sheets.paths.get("contrasts", "contrasts.csv")}
    outcomes = sheets.outcomes
    arms, reasons, con_reasons = harmonise_rows(sheets)
    # only the excluded rows are looked at (a few, among up to millions): their reasons and cells
    ingest_reason, by_line = {}, {}
    for i, reason in enumerate(reasons):
        if reason is not None:
            key = ("outcomes", outcomes["_line"][i])
            ingest_reason[key], by_line[key] = reason, outcomes.row(i)
    for row, reason in zip(sheets.contrasts, con_reasons, strict=True):
        if reason:
            key = ("contrasts", row["_line"])
            ingest_reason[key], by_line[key] = reason, row
    del reasons
    studies = {s["study_id"]: s for s in sheets.studies}
    usable_contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    # which interventions each study has rows of, per outcome, for the studies and outcomes of excluded rows
    arms_of: dict[tuple, set] = {(r.get("study_id"), r.get("outcome")): set() for r in by_line.values()}
    if arms_of:
        for key in zip(outcomes["study_id"], outcomes["outcome"], outcomes["intervention"], strict=True):
            got = arms_of.get(key[:2])
            if got is not None:
                got.add(key[2])
    found: dict[tuple, list[str]] = {}

    def add(key, column, reason, aid):
        found.setdefault((key, column, str(reason)), []).append(aid)

    for aid in (config.get("analyses") or {}):
        a = analysis_settings(config, aid)
        lo, hi = a["timepoint_weeks"]
        sides = (set(a["intervention"]), set(a["comparator"]))
        for key, reason in ingest_reason.items():
            row = by_line[key]
            if row.get("outcome") != a["outcome"]:
                continue
            t = row.get("timepoint_weeks")
            if t is not None and not lo <= t <= hi:
                continue
            if key[0] == "outcomes":  # a row on one side of a study that has rows on the other side
                here = 0 if row.get("intervention") in sides[0] else 1 if row.get("intervention") in sides[1] else None
                on_side = here is not None and not sides[1 - here].isdisjoint(
                    arms_of.get((row.get("study_id"), row.get("outcome")), ())
                )
            else:
                codes = (row.get("intervention"), row.get("comparator"))
                on_side = (codes[0] in sides[0] and codes[1] in sides[1]) or (codes[0] in sides[1] and codes[1] in sides[0])
            if not on_side:
                continue
            add(key, getattr(reason, "column", None) or "unusable_reason", reason, aid)
        flow = data_exclusions(a, arms, usable_contrasts, studies, config)
        for f in flow:
            column = getattr(f["reason"], "column", None)
            if f["state"] == "not_used" and column:
                add((f["sheet"], f["line"]), column, f["reason"], aid)
        del flow  # not held while the next analysis's are found
    found.update(_network_exclusions(config, arms, ingest_reason, by_line, arms_of, usable_contrasts, studies, found))
    warnings = []
    for ((sheet, line), column, reason), aids in found.items():
        ids = sorted(set(aids))
        which = f"analysis {ids[0]}" if len(ids) == 1 else f"analyses {', '.join(ids)}"
        warnings.append(Problem(paths[sheet], line, column, f"excluded from {which}: {reason}"))
    order = {paths["outcomes"]: 0, paths["contrasts"]: 1}
    warnings.sort(key=lambda p: (order.get(p.file, 2), p.line or 0, p.column or "", p.message))
    return warnings
