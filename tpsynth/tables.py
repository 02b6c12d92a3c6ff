"""Deterministic CSV/JSON writing and the result tables of the output contract.

Floats are written with ``repr`` (shortest round-trip form), missing values as empty cells, and
rows in a fixed order, so the same input gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

POOLED_COLUMNS = [
    "analysis_id", "measure", "method", "ci_method", "k", "n_participants", "estimate", "se", "ci_low", "ci_high",
    "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2", "q",
    "q_df", "q_pvalue", "fe_estimate", "fe_ci_low", "fe_ci_high", "q_between", "q_between_df", "q_between_pvalue",
    "certainty", "certainty_reasons", "ois", "n_over_ois", "small_trial_weight", "largest_weight", "high_rob_weight",
    "derived_weight", "low_confidence_weight", "off_target_weight", "ci_crosses_null", "ci_crosses_mid",
]  # fmt: skip
STUDY_COLUMNS = ["analysis_id", "study_id", "yi", "vi", "ci_low", "ci_high", "weight"]
SUBGROUP_COLUMNS = ["analysis_id", "subgroup", "k", "estimate", "se", "ci_low", "ci_high", "tau2", "i2"]
SENSITIVITY_COLUMNS = ["analysis_id", "kind", "study_id", "k", "estimate", "ci_low", "ci_high", "tau2", "i2"]
SMALL_STUDY_COLUMNS = ["analysis_id", "k", "egger_stat", "egger_pvalue", "trimfill_k0", "trimfill_estimate", "skipped_reason"]
BAYES_COLUMNS = [
    "analysis_id", "k", "tau_prior", "mu_prior", "estimate", "mean", "sd", "ci_low", "ci_high", "hdi_low", "hdi_high",
    "pi_low", "pi_high", "tau_median", "tau_ci_low", "tau_ci_high", "prob_benefit", "prob_important_benefit", "mid",
]  # fmt: skip
BAYES_SENSITIVITY_COLUMNS = [
    "analysis_id", "kind", "prior", "estimate", "ci_low", "ci_high", "tau_median", "prob_benefit", "prob_important_benefit",
]  # fmt: skip
BAYES_STUDY_COLUMNS = ["analysis_id", "study_id", "median", "mean", "sd", "ci_low", "ci_high"]
META_REGRESSION_COLUMNS = ["analysis_id", "term", "estimate", "se", "statistic", "pvalue", "ci_low", "ci_high"]
META_REGRESSION_FIT_COLUMNS = [
    "analysis_id", "moderators", "k", "p", "tau2", "i2", "r2", "qm", "qm_df", "qm_df2", "qm_pvalue", "qe", "qe_df",
    "qe_pvalue", "permutation_pvalue",
]  # fmt: skip
EFFECT_COLUMNS = [
    "analysis_id", "study_id", "measure", "yi", "vi", "n_intervention", "n_comparator", "timepoint_weeks",
    "instrument", "source", "derived", "low_confidence", "int_n", "int_mean", "int_sd", "int_events", "cmp_n",
    "cmp_mean", "cmp_sd", "cmp_events", "scale_factor", "sign", "notes",
]  # fmt: skip


def cell(x) -> str:
    """Text of one CSV cell: repr for floats, '' for missing, true/false for booleans."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if not math.isfinite(x):
            return ""
        return repr(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
    if isinstance(x, list | tuple):
        return "; ".join(str(v) for v in x)
    return str(x)


@contextmanager
def replace_atomically(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it to ``path`` in one step.

    A job killed (SIGKILL, power loss of the process, full disk) while writing leaves the old file or no
    file, never a truncated one that a later run would take for a finished result. Temporary files of
    killed writers (``.NAME.tmp-PID``) are removed by the next write of the same file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` with LF line endings, atomically (:func:`replace_atomically`)."""
    with replace_atomically(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def excel_safe(text: str) -> str:
    """``text`` made inert for spreadsheets: a text cell starting with ``= + - @``, tab or CR gets a ``'``.

    OWASP's guidance on CSV injection: Excel, LibreOffice and Google Sheets run such a cell as a formula
    (``=HYPERLINK(...)``, ``@SUM(...)``, ``-2+3``). Numbers (``-0.46``, ``+1e-3``) are left as they are. A
    text that already starts with quotes before such a character gets one more, so that
    :func:`excel_unsafe` gives back exactly the original.
    """
    if text[:1] in FORMULA_START and not _NUMBER.fullmatch(text):
        return "'" + text
    if text[:1] == "'" and text.lstrip("'")[:1] in FORMULA_START:
        return "'" + text
    return text


def excel_unsafe(text: str) -> str:
    """The original text of a cell written by :func:`excel_safe` (inverse of it)."""
    if text[:1] == "'" and text[1:].lstrip("'")[:1] in FORMULA_START:
        return text[1:]
    return text


#: Rows whose cells' text :func:`write_csv` holds at a time.
CSV_BLOCK = 200_000


def write_csv(path: str | Path, columns: list[str], rows) -> None:
    """Write ``rows`` (dicts, or a :class:`tpsynth.columns.Table`) with exactly ``columns``, LF line endings,
    UTF-8, atomically.

    Text cells pass through :func:`excel_safe` (no cell runs as a spreadsheet formula); read the files
    back with :func:`read_csv`.
    """
    if hasattr(rows, "columns"):  # a Table: its columns as they are
        values = [rows.get(c) for c in columns]
    else:
        values = [[r.get(c) for r in rows] for c in columns]
    with replace_atomically(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:  # no copy of the text
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([excel_safe(c) for c in columns])
        for start in range(0, len(values[0]) if values else 0, CSV_BLOCK):  # the cells' text of a block at a time
            cells = [_column_text(v[start : start + CSV_BLOCK]) for v in values]
            w.writerows(zip(*cells, strict=True))


def constant_text(values) -> bool:
    """Whether ``values`` (a column) is one str, or None, all down: then every cell is written alike (no two
    types equal as keys can hide among equal values: 1, 1.0 and True are not text)."""
    if not values or not (values[0] is None or values[0].__class__ is str) or values[-1] != values[0]:
        return False
    return values.count(values[0]) == len(values)


def _column_text(values: list) -> list[str]:
    """``excel_safe(cell(x))`` of each value of one column, each distinct value formatted once.

    Columns repeat their values (codes, sample sizes, rounded statistics), so a large table is written in
    time linear in its cells with a small constant. Values are told apart by type too (``1``, ``1.0`` and
    ``True`` are equal as keys but written differently); NaN is never equal to itself and is formatted each
    time it occurs; a column holding unhashable values (lists) is formatted cell by cell.
    """
    if constant_text(values):
        return [excel_safe(cell(values[0]))] * len(values)  # one value all down the column (often None)
    if values and type(values[0]) is int and set(map(type, values)) == {int} and min(values) >= 0:
        return list(map(str, values))  # e.g. line numbers: digits, never a formula
    try:
        text = dict.fromkeys(values)
    except TypeError:  # a list (e.g. notes) is not hashable
        return [excel_safe(cell(x)) for x in values]
    if not any(isinstance(key, (int, float)) for key in text):  # text and None: no two types equal as keys
        for key in text:
            text[key] = excel_safe(cell(key))
        return list(map(text.__getitem__, values))
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if len(kinds) <= 1 and kinds <= {float, int, bool}:  # one type (and None): the values are the keys
        for key in text:
            text[key] = excel_safe(cell(key))
        return list(map(text.__getitem__, values))
    keys = list(zip(map(type, values), values, strict=True))
    try:
        text = dict.fromkeys(keys)
    except TypeError:  # a list (e.g. notes) is not hashable
        return [excel_safe(cell(x)) for x in values]
    for key in text:
        text[key] = excel_safe(cell(key[1]))
    return list(map(text.__getitem__, keys))


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv` as dicts of the original strings (``'`` guards removed).

    Equal texts share one string object (``sys.intern``): result tables repeat their codes, ids and
    numbers, so 2,000,000 rows of ``arms.csv`` take a fraction of the memory of one object per cell.
    Blank lines are skipped (as ``csv.DictReader`` does); a row with another number of fields than the
    header is an error naming its line.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [excel_unsafe(h) for h in next(reader, [])]
        rows = []
        for fields in reader:
            if len(fields) != len(header):
                if not fields:
                    continue
                raise ValueError(f"{path}:{reader.line_num}: {len(fields)} fields, the header has {len(header)}")
            rows.append(dict(zip(header, map(sys.intern, map(excel_unsafe, fields)), strict=True)))
        return rows


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as sorted, indented JSON (no NaN), atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False)
    write_text(path, text + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def result_tables(results: list[dict]) -> dict[str, list[dict]]:
    """Rows of pooled, study_effects, subgroups, sensitivity, small_study and effects tables."""
    t: dict[str, list[dict]] = {k: [] for k in ("pooled", "study_effects", "subgroups", "sensitivity", "small_study", "effects",
                                                "bayes", "bayes_sensitivity", "bayes_studies", "meta_regression",
                                                "meta_regression_fit")}  # fmt: skip
    for res in results:
        aid = res["analysis_id"]
        p = dict(res["pooled"])
        p.setdefault("measure", res["settings"]["measure"])
        t["pooled"].append({"analysis_id": aid, **p})
        for s in res["studies"]:
            t["study_effects"].append({"analysis_id": aid, **s})
            sides = s.get("side_stats") or {}
            flat = {f"{pre}_{k}": v for pre, side in (("int", "intervention"), ("cmp", "comparator"))
                    for k, v in (sides.get(side) or {}).items()}  # fmt: skip
            t["effects"].append({"analysis_id": aid, "measure": res["settings"]["measure"], **s, **flat})
        for g in res["subgroups"]:
            t["subgroups"].append({"analysis_id": aid, **g})
        for s in res["sensitivity"]:
            t["sensitivity"].append({"analysis_id": aid, **s})
        t["small_study"].append({"analysis_id": aid, **res["small_study"]})
        b = res.get("bayes")
        if b:  # analyses with k >= 2 only
            t["bayes"].append({"analysis_id": aid, **b})
            t["bayes_sensitivity"].append({"analysis_id": aid, "kind": "main", "prior": b["tau_prior"], **b})
            for r in res.get("bayes_sensitivity") or []:
                t["bayes_sensitivity"].append({"analysis_id": aid, **r})
            for r in b["studies"]:
                t["bayes_studies"].append({"analysis_id": aid, **r})
        mr = res.get("meta_regression")
        if mr and not mr.get("skipped_reason"):
            for r in mr["coefficients"]:
                t["meta_regression"].append({"analysis_id": aid, **r})
            t["meta_regression_fit"].append({"analysis_id": aid, **mr, "moderators": ";".join(mr["moderators"])})
    return t


FLOW_COLUMNS = [
    "sheet", "line", "study_id", "arm", "outcome", "timepoint_weeks", "source_row", "state", "reason", "analyses",
]  # fmt: skip


def dataflow_rows(ingest_flow: list[dict], results: list[dict], *, copy: bool = True) -> list[dict]:
    """One final state per raw row: ``used`` (with the analyses) or ``excluded`` (with the reason).

    ``copy=False`` updates the entries of ``ingest_flow`` themselves (collect reads them for this alone;
    at 100,000 studies a copy of each of the 2,000,000 entries costs ~1 GB).

    A row analysable at ingest but used by no analysis is ``excluded`` with every analysis's
    reason for leaving it out, or "not part of any configured analysis". Results of network
    meta-analyses (``network_id``) count as ``network:ID`` users of a row; their reasons for leaving a
    row out stay in the network's JSON and report section.
    """
    used: dict[tuple, list[str]] = {}
    why: dict[tuple, list[str]] = {}
    for res in results:
        network = "analysis_id" not in res
        rid = f"network:{res['network_id']}" if network else res["analysis_id"]
        for f in res["flow"]:
            key = (f["sheet"], int(f["line"]))
            if f["state"] == "used":
                used.setdefault(key, []).append(rid)
            elif not network:
                why.setdefault(key, []).append(f"{rid}: {f['reason']}")
    rows = []
    for f in ingest_flow:
        key = (f["sheet"], int(f["line"]))
        row = dict(f) if copy else f
        row["analyses"] = ""
        if f["state"] == "excluded":
            pass
        elif key in used:
            row.update(state="used", reason="", analyses=";".join(sorted(used[key])))
        else:
            reason = "; ".join(why[key]) if key in why else "not part of any configured analysis"
            row.update(state="excluded", reason=reason)
        rows.append(row)
    return rows
