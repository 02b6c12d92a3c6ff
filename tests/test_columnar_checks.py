"""The columnar checks of outcome rows and the columnar harmonise (issue 14) equal the row-by-row code they
replaced, kept here as the reference: every message, its order, every arm value (type included), every
reason and its column, on a sheet with every kind of row."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from tpsynth import conversions
from tpsynth.harmonise import ARM_COLUMNS, harmonise
from tpsynth.validate import Problem, Reason, _check_outcomes, _fmt, validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal" / "data" / "raw"
CONFIG = {"interventions": {"dn": {}, "sham": {}}, "outcomes": {"pain": {}, "resp": {}}}
COLUMNS = ["study_id", "arm", "intervention", "outcome", "instrument", "higher_is_better", "timepoint_weeks",
           "value_type", "n", "mean", "sd", "se", "ci_low", "ci_high", "ci_level", "median", "q1", "q3", "min",
           "max", "events", "scale_min", "scale_max", "unusable_reason", "extraction_confidence", "source_row"]  # fmt: skip
# (cells given; the rest blank): every kind of row, usable or not, valid or not
ROWS = [
    dict(mean=5, sd=2), dict(mean=5, se=0.4), dict(mean=5, ci_low=4, ci_high=6), dict(mean=5, ci_low=4, ci_high=6, n=80),
    dict(mean=5, ci_low=4, ci_high=6, ci_level=90), dict(mean=5, ci_low=4, ci_high=6, n=1),
    dict(median=5, q1=4, q3=6), dict(median=5, min=1, max=9), dict(median=5, q1=4, q3=6, min=1, max=9),
    dict(median=5, q1=4, q3=6, n=4), dict(median=1, q1=0.9, q3=9, n=200), dict(median=5, q1=4, q3=6, min=1),
    dict(median=5, q1=4, q3=6, mean=4.5), dict(events=3), dict(events=3, mean=2, sd=1), dict(mean=5),
    dict(n="", mean=5, sd=2, unusable_reason="not reported by arm"), dict(unusable_reason="figure only", n=""),
    dict(mean=5, sd=2, extraction_confidence="low"), dict(mean=5, sd=2, source_row="r7"),
    # invalid rows: each check, alone and together
    dict(mean=5, sd=2, scale_min=0), dict(mean=5, sd=2, scale_min=10, scale_max=0), dict(mean=5, ci_low=6, ci_high=4),
    dict(median=5, q1=6, q3=4, min=7, max=1), dict(median=5, min=6, max=9), dict(events=30, n=20),
    dict(mean=12, sd=2, scale_min=0, scale_max=10), dict(mean=-12, sd=2, scale_min=0, scale_max=10, value_type="change"),
    dict(mean=-8, sd=2, scale_min=0, scale_max=10, value_type="change"), dict(mean=5, sd=9, scale_min=0, scale_max=10),
    dict(mean=5, se=3, scale_min=0, scale_max=10), dict(mean=5, sd=9, scale_min=0, scale_max=10, value_type="change"),
    dict(mean=5, sd=11, scale_min=0, scale_max=10, value_type="change", n=2), dict(mean=5, sd=2, n="x"),
    dict(mean="n/a", sd=2), dict(median=5, q1=4, q3=6, min=1, max=9, scale_min=0, scale_max=4),
]  # fmt: skip


#: The rows above that harmonise takes (it runs on validated sheets; the conversions refuse e.g. a CI whose
#: limits are swapped); "mean" alone is refused by the validator but harmonised with its reason.
HARMONISABLE = 20


def _sheets(tmp_path, rows):
    path = tmp_path / "outcomes.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        w.writeheader()
        for i, cells in enumerate(rows):
            arm = ("dn", "sham")[i % 2]
            base = dict(study_id=("a2001", "b2005")[i % 2 * 0 + (i // 2) % 2], arm=arm, intervention=arm,
                        outcome=("pain", "resp")[i % 3 == 2], instrument="VAS", higher_is_better="false",
                        timepoint_weeks=i, value_type="final", n=30)  # fmt: skip
            w.writerow(base | {k: v for k, v in cells.items()})
    got, problems = validate_sheets(str(FIXTURE / "studies.csv"), str(path), str(FIXTURE / "contrasts.csv"), CONFIG)
    assert problems  # the invalid rows above
    return got


@pytest.fixture
def sheets(tmp_path):
    return _sheets(tmp_path, ROWS)


# ---- the row-by-row code replaced (tpsynth 1dedf39), the reference

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



def harmonise_row(row: dict) -> tuple[dict | None, str | None]:
    """Derive one arm's mean/SD (or events) from a validated outcome row.

    Returns
    -------
    (arm, None) when the row is analysable, (None, reason) when it is not.
    """
    if row.get("unusable_reason"):
        return None, Reason(f"unusable as extracted: {row['unusable_reason']}", "unusable_reason")
    kind = usable_statistics(row)
    n = row["n"]
    arm = {c: row.get(c) for c in ARM_COLUMNS if c in row}
    arm.update(mean=None, sd=None, events=None, mean_method="", sd_method="", derived=False, line=row["_line"])
    if kind == "events":
        arm.update(events=row["events"], mean_method="", sd_method="")
        return arm, None
    if kind == "mean_sd":
        arm.update(mean=row["mean"], sd=row["sd"], mean_method="reported", sd_method="reported")
        return arm, None
    if kind == "mean_se":
        sd, label = conversions.sd_from_se(row["se"], n)
        arm.update(mean=row["mean"], sd=float(sd[0]), mean_method="reported", sd_method=str(label[0]), derived=True)
        return arm, None
    if kind == "mean_ci":
        if n < 2:
            return None, Reason("SD not derivable: a CI needs n >= 2", "n")
        level = (row.get("ci_level") or 95.0) / 100.0
        sd, label = conversions.sd_from_ci(row["ci_low"], row["ci_high"], n, level=level)
        arm.update(mean=row["mean"], sd=float(sd[0]), mean_method="reported", sd_method=str(label[0]), derived=True)
        return arm, None
    if kind == "fivenum":
        res = conversions.mean_sd_from_fivenum(
            n, min=row.get("min"), q1=row.get("q1"), median=row.get("median"), q3=row.get("q3"), max=row.get("max")
        )
        mean, sd = float(res.mean[0]), float(res.sd[0])
        if not (math.isfinite(mean) and math.isfinite(sd)):
            if n < conversions.FIVENUM_MIN_N:
                return None, Reason("median-based summary not converted: n < 5 (as metafor conv.fivenum)", "n")
            test = conversions.fivenum_skewness_test(
                n, min=row.get("min"), q1=row.get("q1"), median=row.get("median"), q3=row.get("q3"), max=row.get("max")
            )
            if int(test.scenario[0]) == 0:
                return None, Reason(
                    "median-based summary not converted: needs median with q1+q3, min+max, or all five numbers "
                    "(metafor conv.fivenum scenarios)",
                    "median",
                )
            return None, Reason(
                "median-based summary not converted: significant skewness "
                f"(Shi et al. 2023 test, T = {float(test.statistic[0]):.3f} >= {float(test.critical[0]):.3f})",
                "median",
            )
        arm.update(
            mean=mean, sd=sd, mean_method=str(res.mean_method[0]), sd_method=str(res.sd_method[0]), derived=True
        )
        return arm, None
    if row.get("mean") is not None:
        return None, Reason("SD neither reported nor derivable (no sd, se or CI)", "sd")
    return None, Reason("no usable statistics", "unusable_reason")



def reference_harmonise(sheets) -> tuple[list[dict], list[dict]]:
    confidence = {s["study_id"]: s.get("extraction_confidence") for s in sheets.studies}
    arms, flow = [], []
    for row in sheets.outcomes.rows():
        arm, reason = harmonise_row(row)
        entry = {
            "sheet": "outcomes", "line": row["_line"], "study_id": row["study_id"], "arm": row["arm"],
            "outcome": row["outcome"], "timepoint_weeks": row.get("timepoint_weeks"),
            "source_row": row.get("source_row") or "",
        }  # fmt: skip
        if arm is None:
            entry.update(state="excluded", reason=reason)
        else:
            if not arm.get("extraction_confidence"):
                arm["extraction_confidence"] = confidence.get(row["study_id"])
            arms.append(arm)
            entry.update(state="analysable", reason="")
        flow.append(entry)
    for row in sheets.contrasts:
        entry = {
            "sheet": "contrasts", "line": row["_line"], "study_id": row["study_id"], "arm": "",
            "outcome": row["outcome"], "timepoint_weeks": row.get("timepoint_weeks"),
            "source_row": row.get("source_row") or "",
        }  # fmt: skip
        if row.get("unusable_reason"):
            entry.update(state="excluded", reason=Reason(f"unusable as extracted: {row['unusable_reason']}", "unusable_reason"))
        else:
            entry.update(state="analysable", reason="")
        flow.append(entry)
    return arms, flow


# ---- the tests


def _typed(rows):
    return [{k: (type(v), v, getattr(v, "column", None)) for k, v in r.items()} for r in rows]


def test_outcome_checks_equal_the_row_by_row_checks(sheets):
    path = "outcomes.csv"
    got: list[Problem] = []
    _check_outcomes(path, sheets.outcomes, got)
    expected: list[Problem] = []
    for row in sheets.outcomes.rows():
        if row.get("_invalid") is None:
            row.pop("_invalid", None)
        _check_outcome_row(path, row, expected)
    assert len(expected) > 15
    key = lambda p: p.line  # noqa: E731 - the validator sorts by line (stably)
    assert sorted(got, key=key) == expected


def test_harmonise_equals_the_row_by_row_harmonise(tmp_path):
    sheets = _sheets(tmp_path, ROWS[:HARMONISABLE])
    arms, flow = harmonise(sheets)
    ref_arms, ref_flow = reference_harmonise(sheets)
    assert _typed(flow.rows()) == _typed(ref_flow)
    assert _typed([{c: a[c] for c in ARM_COLUMNS} for a in arms.rows()]) == _typed(
        [{c: a[c] for c in ARM_COLUMNS} for a in ref_arms]
    )
    reasons = {str(f["reason"]) for f in ref_flow if f["state"] == "excluded"}
    assert any("significant skewness" in r for r in reasons) and any("n < 5" in r for r in reasons)
    assert any("needs median" in r for r in reasons) and any("CI needs n >= 2" in r for r in reasons)
    methods = {a["sd_method"] for a in ref_arms}
    assert {"sd_from_se", "sd_from_ci_t", "sd_from_ci_z", "sd_wan2014_iqr", "sd_wan2014_range", "sd_shi2020_s3"} <= methods


def test_harmonise_of_the_fixture_sheets():
    import yaml

    from tpsynth.config import validate_config

    fixture = FIXTURE.parent.parent
    config = validate_config(yaml.safe_load((fixture / "config" / "config.yaml").read_text()))
    got, problems = validate_sheets(*(str(FIXTURE / f"{s}.csv") for s in ("studies", "outcomes", "contrasts")), config)
    assert problems == []
    arms, flow = harmonise(got)
    ref_arms, ref_flow = reference_harmonise(got)
    assert _typed(flow.rows()) == _typed(ref_flow)
    assert _typed([{c: a[c] for c in ARM_COLUMNS} for a in arms.rows()]) == _typed(
        [{c: a[c] for c in ARM_COLUMNS} for a in ref_arms]
    )


def reference_duplicates(path, rows) -> list[Problem]:
    """The row-by-row duplicate check replaced (tpsynth 1dedf39)."""
    problems, keys = [], {}
    for row in rows:
        key = (row.get("study_id"), row.get("arm"), row.get("outcome"), row.get("timepoint_weeks"))
        if None not in key[:3] and not row.get("unusable_reason"):
            if key in keys:
                problems.append(Problem(path, row["_line"], "arm",
                                        f"duplicate study+arm+outcome+timepoint, first on line {keys[key]} "
                                        f"(found {key[0]} / {key[1]} / {key[2]} / {_fmt(key[3])} weeks)"))  # fmt: skip
            else:
                keys[key] = row["_line"]
    return problems


def test_duplicate_rows_equal_the_row_by_row_check(tmp_path):
    """Equal typed values are one key whatever their text (4 and 4.0 weeks; blank timepoints), rows with an
    unusable_reason or without a study, arm or outcome are not keys."""
    path = tmp_path / "outcomes.csv"
    base = "a2001,dn,dn,pain,VAS,false,{t},final,30,5,2,{reason}\n"
    lines = ["study_id,arm,intervention,outcome,instrument,higher_is_better,timepoint_weeks,value_type,n,mean,sd,"
             "unusable_reason\n"]  # fmt: skip
    for t, reason in [("4", ""), ("4.0", ""), ("04", ""), ("4", "why"), ("", "x"), ("", "y"), ("8", ""), ("8", "")]:
        lines.append(base.format(t=t, reason=reason))
    lines.append(base.format(t="4", reason="").replace("a2001,dn,dn", "a2001,sham,sham"))
    lines.append(",dn,dn,pain,VAS,false,4,final,30,5,2,\n")
    path.write_text("".join(lines), encoding="utf-8")
    sheets, problems = validate_sheets(str(FIXTURE / "studies.csv"), str(path), None, CONFIG)
    got = [p for p in problems if "duplicate" in p.message]
    assert got == reference_duplicates(str(path), sheets.outcomes.rows()) and len(got) == 3
