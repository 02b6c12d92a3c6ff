"""Validation of the extraction sheets against their schemas, the config and each other.

Every problem is collected (one run reports them all) as ``FILE:LINE: column COLUMN: what is
wrong (value found)``. Line numbers are physical lines of the file (the header is line 1).
Only the standard library and PyYAML are used, so this runs at Snakefile parse time cheaply.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .measures import RATIO_MEASURES
from .selection import value_key, where_items
from .sheets import ColumnSpec, NotCSVError, SheetSpec, iter_raw_table, sheet_spec

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
    """Typed rows of the three sheets. Each row is a dict with ``_line`` (physical line) added."""

    studies: list[dict] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    contrasts: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    extra_study_columns: list[str] = field(default_factory=list)
    risk_of_bias: list[dict] = field(default_factory=list)  # optional sheet, checked by tpsynth.rob
    warnings: list = field(default_factory=list)  # Problems that do not stop a run (e.g. a derived overall)
    prisma: object = None  # tpsynth.prisma.Flow when the config has prisma: or data.screening


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


#: Distinct cell texts remembered per column while reading a sheet (bounds the memory of the cache).
CELL_CACHE = 100_000


def _cell_value(text: str, cspec: ColumnSpec | None) -> tuple:
    """(value, error or None, cell is blank) of one cell; ``cspec`` None for an extra (studies) column."""
    stripped = text.strip()
    if cspec is None:  # extra column (studies only): kept as text
        return stripped or None, None, not stripped
    if stripped == "":
        return (cspec.default if not cspec.required else None), None, True
    value, err = _parse_cell(text, cspec)
    return value, err, False


def _read_sheet(path: str, spec: SheetSpec, problems: list[Problem]) -> tuple[list[dict], list[str]] | None:
    """Read and type-check one sheet; append problems; return typed rows and extra columns."""
    try:
        header, raw_rows = iter_raw_table(path)
    except FileNotFoundError:
        problems.append(Problem(path, None, None, "file not found"))
        return None
    except IsADirectoryError:
        problems.append(Problem(path, None, None, "is a directory, expected a CSV file"))
        return None
    except NotCSVError as err:
        problems.append(Problem(path, 1, None, str(err)))
        return None
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
        first = next(raw_rows, None)
        if first is None:
            problems.append(Problem(path, 2, None, "no data rows"))
            return None
        if bad:
            return None
        return _typed_rows(path, spec, header, itertools.chain([first], raw_rows), problems), extra
    except NotCSVError as err:  # invalid CSV further down: that alone is reported, as for a bad start
        del problems[n_problems:]
        problems.append(Problem(path, 1, None, str(err)))
        return None


def _typed_rows(path: str, spec: SheetSpec, header: list[str], raw_rows, problems: list[Problem]) -> list[dict]:
    """Type-check each raw row of a sheet whose header is valid; append problems; return typed rows."""
    rows = []
    present = set(header)
    absent = [(col, cspec.default) for col, cspec in spec.columns.items() if col not in present]
    position = {col: i for i, col in enumerate(header)}
    must_fill = [(col, position[col], cspec.may_be_empty_if, position.get(cspec.may_be_empty_if))
                 for col, cspec in spec.columns.items()
                 if col in present and cspec.required and not cspec.may_be_empty]  # fmt: skip
    # Per column, the parsed result of each distinct cell text: columns repeat their values (codes,
    # units, n, rounded statistics), so most cells are parsed once and rows share the value objects.
    columns = [(col, spec.columns.get(col), {}) for col in header]
    for line, fields in raw_rows:
        if len(fields) != len(header):
            problems.append(
                Problem(path, line, None, f"row has {len(fields)} fields but the header has {len(header)}")
            )
            continue
        row: dict = {"_line": line}
        for (col, cspec, cache), text in zip(columns, fields, strict=True):
            got = cache.get(text)
            if got is None:
                got = _cell_value(text, cspec)
                if len(cache) < CELL_CACHE:
                    cache[text] = got
            value, err, _ = got
            if err:
                problems.append(Problem(path, line, col, err))
                row["_invalid"] = True
            row[col] = value
        for col, default in absent:
            row[col] = default
        for col, i, cond, j in must_fill:
            if not fields[i].strip():
                if j is not None and fields[j].strip():
                    continue
                extra_msg = f" (it may be blank only when {cond} is given)" if cond else ""
                problems.append(Problem(path, line, col, f"required value is empty{extra_msg}"))
                row["_invalid"] = True
        rows.append(row)
    return rows


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


def _check_codes(path, rows, column, declared, kind, problems, config_path):
    for row in rows:
        code = row.get(column)
        if code is not None and code not in declared:
            near = difflib.get_close_matches(code, list(declared), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(
                Problem(path, row["_line"], column, f"code not declared under '{kind}' in {config_path}{hint} (found {code!r})")
            )


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_outcome_row(path: str, row: dict, problems: list[Problem]) -> None:
    line = row["_line"]
    get = row.get
    n = get("n")
    # scale
    smin, smax = get("scale_min"), get("scale_max")
    scale_ok = smin is not None and smax is not None
    if (smin is None) != (smax is None):
        col = "scale_max" if smax is None else "scale_min"
        problems.append(Problem(path, line, col, "scale_min and scale_max must be given together"))
    if scale_ok and smin >= smax:
        problems.append(Problem(path, line, "scale_min", f"scale_min must be below scale_max (found {_fmt(smin)} >= {_fmt(smax)})"))
        scale_ok = False
    if get("ci_low") is not None and get("ci_high") is not None and get("ci_low") > get("ci_high"):
        problems.append(
            Problem(path, line, "ci_low", f"ci_low is above ci_high (found {_fmt(get('ci_low'))} > {_fmt(get('ci_high'))})")
        )
    order = [(c, get(c)) for c in ("min", "q1", "median", "q3", "max") if get(c) is not None]
    for (c1, v1), (c2, v2) in zip(order, order[1:], strict=False):
        if v1 > v2:
            problems.append(
                Problem(path, line, c2, f"five-number summary out of order: {c1} {_fmt(v1)} > {c2} {_fmt(v2)}")
            )
    events = get("events")
    if events is not None and n is not None and events > n:
        problems.append(Problem(path, line, "events", f"events exceed n (found {events} > {n})"))
    if scale_ok:
        lo, hi = (smin, smax) if get("value_type") != "change" else (-(smax - smin), smax - smin)
        for col in ("mean", "median", "q1", "q3", "min", "max"):
            v = get(col)
            if v is not None and not lo <= v <= hi:
                kind = "change " if get("value_type") == "change" else ""
                problems.append(
                    Problem(path, line, col, f"{kind}value outside the scale {_fmt(lo)} to {_fmt(hi)} (found {_fmt(v)})")
                )
        _check_spread(path, row, hi - lo, problems)
    if get("unusable_reason") or row.get("_invalid"):
        return  # an invalid cell is reported already; do not pile a consequence on top
    if usable_statistics(row) is None:
        problems.append(
            Problem(
                path,
                line,
                "unusable_reason",
                "no usable set of statistics (n with mean and sd, se or ci_low+ci_high; n with median and "
                "q1+q3 and/or min+max; or n with events) and no unusable_reason given",
            )
        )


def _check_spread(path: str, row: dict, width: float, problems: list[Problem]) -> None:
    """SD and SE no larger than values confined to a scale of ``width`` allow.

    Values within an interval of width w have a population variance of at most w²/4 (Popoviciu's
    inequality, 1935), so the sample SD of n of them is at most (w/2)·sqrt(n/(n-1)) and its SE at most
    (w/2)/sqrt(n-1). For change scores w is twice the scale's width (-(max-min) to max-min).
    """
    n = row.get("n")
    if n is None or n < 2:
        return
    sd_max = width / 2 * math.sqrt(n / (n - 1))
    kind = "change scores" if row.get("value_type") == "change" else "values"
    for col, limit in (("sd", sd_max), ("se", sd_max / math.sqrt(n))):
        v = row.get(col)
        if v is not None and v > limit * (1 + 1e-12):
            problems.append(
                Problem(path, row["_line"], col, f"{col} larger than {n} {kind} within the scale can have: at most "
                        f"{limit:.4g} (found {_fmt(v)}); check the scale and the cell")  # fmt: skip
            )


def usable_statistics(row: dict) -> str | None:
    """Name the set of statistics a row can be analysed from, or None.

    Returns one of ``"mean_sd"``, ``"mean_se"``, ``"mean_ci"``, ``"fivenum"``, ``"events"``.
    """
    g = row.get
    if g("n") is None:
        return None
    if g("events") is not None:
        return "events"
    if g("mean") is not None:
        if g("sd") is not None:
            return "mean_sd"
        if g("se") is not None:
            return "mean_se"
        if g("ci_low") is not None and g("ci_high") is not None:
            return "mean_ci"
    if g("median") is not None and (
        (g("q1") is not None and g("q3") is not None) or (g("min") is not None and g("max") is not None)
    ):
        return "fivenum"
    return None


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

    got = _read_sheet(outcomes, sheet_spec("outcomes"), problems)
    if got:
        sheets.outcomes = got[0]
        keys: dict[tuple, int] = {}
        for row in sheets.outcomes:
            _check_outcome_row(outcomes, row, problems)
            key = (row.get("study_id"), row.get("arm"), row.get("outcome"), row.get("timepoint_weeks"))
            if None not in key[:3] and not row.get("unusable_reason"):
                if key in keys:
                    problems.append(
                        Problem(
                            outcomes,
                            row["_line"],
                            "arm",
                            f"duplicate study+arm+outcome+timepoint, first on line {keys[key]} "
                            f"(found {key[0]} / {key[1]} / {key[2]} / {_fmt(key[3])} weeks)",
                        )
                    )
                else:
                    keys[key] = row["_line"]
        _check_codes(outcomes, sheets.outcomes, "intervention", declared_int, "interventions", problems, config_path)
        _check_codes(outcomes, sheets.outcomes, "outcome", declared_out, "outcomes", problems, config_path)
        if sheets.studies:
            _check_study_refs(outcomes, sheets.outcomes, study_lines, studies, problems)

    if contrasts:
        got = _read_sheet(contrasts, sheet_spec("contrasts"), problems)
        if got:
            sheets.contrasts = got[0]
            for row in sheets.contrasts:
                _check_contrast_row(contrasts, row, problems)
            _check_codes(contrasts, sheets.contrasts, "intervention", declared_int, "interventions", problems, config_path)
            _check_codes(contrasts, sheets.contrasts, "comparator", declared_int, "interventions", problems, config_path)
            _check_codes(contrasts, sheets.contrasts, "outcome", declared_out, "outcomes", problems, config_path)
            if sheets.studies:
                _check_study_refs(contrasts, sheets.contrasts, study_lines, studies, problems)
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


def _check_study_refs(path, rows, study_lines, studies_path, problems):
    for row in rows:
        sid = row.get("study_id")
        if sid is not None and sid not in study_lines:
            near = difflib.get_close_matches(sid, list(study_lines), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(
                Problem(path, row["_line"], "study_id", f"unknown study, not in {studies_path}{hint} (found {sid!r})")
            )


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


def _network_exclusions(sheets, config, arms, ingest_reason, by_line, usable_contrasts, studies, found) -> dict:
    """The rows a configured network will leave out for a data reason (as for analyses, with the network's
    nodes in place of the two sides; named ``network:ID``)."""
    from .network_analysis import network_settings
    from .network_data import build_network_data, node_of

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
                    r.get("study_id") == row.get("study_id") and r.get("outcome") == row.get("outcome")
                    and node.get(r.get("intervention")) not in (None, here)
                    for r in sheets.outcomes
                )  # fmt: skip
            else:
                a, b = node.get(row.get("intervention")), node.get(row.get("comparator"))
                on_node = a is not None and b is not None and a != b
            if on_node:
                found.setdefault((key, getattr(reason, "column", None) or "unusable_reason", str(reason)), []).append(label)
        for f in build_network_data(n, arms, usable_contrasts, studies, config).flow:
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
    from .harmonise import harmonise
    from .study_effects import arms_table, build_study_effects

    paths = {"outcomes": sheets.paths.get("outcomes", "outcomes.csv"), "contrasts": sheets.paths.get("contrasts", "contrasts.csv")}
    arms, ingest = harmonise(sheets)
    ingest_reason = {(f["sheet"], f["line"]): f["reason"] for f in ingest if f["state"] == "excluded"}
    del ingest  # one entry per row: not kept while the analyses' study effects are built
    by_line = {key: r for sheet, rows in (("outcomes", sheets.outcomes), ("contrasts", sheets.contrasts))
               for r in rows if (key := (sheet, r["_line"])) in ingest_reason}  # fmt: skip
    studies = {s["study_id"]: s for s in sheets.studies}
    usable_contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    # which interventions each study has rows of, per outcome (one pass: the check below stays linear)
    arms_of: dict[tuple, set] = {}
    for r in sheets.outcomes:
        arms_of.setdefault((r.get("study_id"), r.get("outcome")), set()).add(r.get("intervention"))
    found: dict[tuple, list[str]] = {}
    arm_table = arms_table(arms)

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
        _, flow = build_study_effects(a, arm_table, usable_contrasts, studies, config)
        for f in flow:
            column = getattr(f["reason"], "column", None)
            if f["state"] == "not_used" and column:
                add((f["sheet"], f["line"]), column, f["reason"], aid)
    found.update(_network_exclusions(sheets, config, arms, ingest_reason, by_line, usable_contrasts, studies, found))
    warnings = []
    for ((sheet, line), column, reason), aids in found.items():
        ids = sorted(set(aids))
        which = f"analysis {ids[0]}" if len(ids) == 1 else f"analyses {', '.join(ids)}"
        warnings.append(Problem(paths[sheet], line, column, f"excluded from {which}: {reason}"))
    order = {paths["outcomes"]: 0, paths["contrasts"]: 1}
    warnings.sort(key=lambda p: (order.get(p.file, 2), p.line or 0, p.column or "", p.message))
    return warnings
