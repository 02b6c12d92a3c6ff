"""Harmonise validated arm-level rows: one mean and SD (or events) per arm, derived values flagged.

Each outcome row ends in exactly one state: ``analysable`` (it appears in ``arms.csv``) or
``excluded`` with a reason. Derived values carry the method used (labels from
:mod:`tpsynth.conversions`), and ``derived`` is true for them.

Rules
-----
* ``mean`` + ``sd``: used as reported.
* ``mean`` + ``se``: SD = SE * sqrt(n) (Cochrane Handbook 6.5.2.2).
* ``mean`` + ``ci_low``/``ci_high``: SD from the CI width, t quantile when n < 60
  (Cochrane Handbook 6.5.2.2); the CI level is ``ci_level`` (default 95).
* ``median`` with quartiles and/or range: mean and SD as metafor's ``conv.fivenum()`` defaults
  (Luo et al. 2018; Wan et al. 2014; Shi et al. 2020); rows it declines (n < 5, significant
  skewness) are excluded with that reason.
* ``events`` with ``n``: dichotomous, used as reported.
"""

from __future__ import annotations

import math

from . import conversions
from .validate import Reason, Sheets, usable_statistics

ARM_COLUMNS = [
    "study_id", "arm", "intervention", "outcome", "instrument", "higher_is_better", "timepoint_weeks",
    "value_type", "n", "mean", "sd", "events", "mean_method", "sd_method", "derived", "scale_min",
    "scale_max", "extraction_confidence", "source_row", "line",
]  # fmt: skip

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


def harmonise(sheets: Sheets) -> tuple[list[dict], list[dict]]:
    """Harmonise every outcome row; return (arms, flow) where flow has one entry per raw row."""
    confidence = {s["study_id"]: s.get("extraction_confidence") for s in sheets.studies}
    arms, flow = [], []
    for row in sheets.outcomes:
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
