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

The rows are harmonised by columns: each conversion runs once on all the rows of its kind.
"""

from __future__ import annotations

import numpy as np

from . import conversions
from .columns import Table
from .validate import STATISTICS, Reason, Sheets, usable_kinds

ARM_COLUMNS = [
    "study_id", "arm", "intervention", "outcome", "instrument", "higher_is_better", "timepoint_weeks",
    "value_type", "n", "mean", "sd", "events", "mean_method", "sd_method", "derived", "scale_min",
    "scale_max", "extraction_confidence", "source_row", "line",
]  # fmt: skip
FLOW_COLUMNS = ["sheet", "line", "study_id", "arm", "outcome", "timepoint_weeks", "source_row", "state", "reason"]
#: Columns of an arm computed here; the others are the outcome row's cells.
DERIVED_COLUMNS = ("mean", "sd", "events", "mean_method", "sd_method", "derived", "line")


def harmonise_outcomes(outcomes: Table) -> tuple[Table, list]:
    """Derive each arm's mean/SD (or events) from validated outcome rows.

    Returns
    -------
    arms : Table
        One row per outcome row, :data:`ARM_COLUMNS` (the outcome row's cells, the harmonised
        ``mean``, ``sd``, ``events``, the methods, ``derived`` and ``line``); meaningful where the
        row is analysable.
    reasons : list
        Per row, None when the row is analysable, else the :class:`~tpsynth.validate.Reason` it is
        excluded for.
    """
    t = outcomes
    size = len(t)
    reasons: list = [None] * size
    # object arrays: a kind's rows are filled at once; .tolist() gives back the very value objects
    mean, sd, events = (np.full(size, None, dtype=object) for _ in range(3))
    mean_method, sd_method = np.full(size, "", dtype=object), np.full(size, "", dtype=object)
    derived = np.full(size, False, dtype=object)
    num = {c: t.floats(c) for c in (*STATISTICS, "ci_level")}
    kinds = usable_kinds(t, num)
    said: dict = {}  # reason text -> Reason (rows excluded for the same reason share one object)

    def exclude(rows, text, column) -> None:
        reason = said.get((text, column)) or said.setdefault((text, column), Reason(text, column))
        for i in rows:
            reasons[i] = reason

    unusable = t.get("unusable_reason")
    usable = np.ones(size, dtype=bool)
    for i, text in enumerate(unusable):
        if text:
            usable[i] = False
            exclude([i], f"unusable as extracted: {text}", "unusable_reason")
    of = {k: np.flatnonzero(usable & (kinds == k)) for k in ("events", "mean_sd", "mean_se", "mean_ci", "fivenum", "")}
    raw_mean, raw_sd, raw_events = (np.asarray(t.get(c), dtype=object) for c in ("mean", "sd", "events"))
    rows = of["events"]
    events[rows] = raw_events[rows]
    rows = of["mean_sd"]
    mean[rows], sd[rows] = raw_mean[rows], raw_sd[rows]
    mean_method[rows] = sd_method[rows] = "reported"
    n = num["n"]

    def reported_mean_derived_sd(rows, value, label) -> None:
        mean[rows], sd[rows], mean_method[rows], derived[rows] = raw_mean[rows], value.tolist(), "reported", True
        sd_method[rows] = [str(x) for x in label]

    rows = of["mean_se"]
    if rows.size:
        reported_mean_derived_sd(rows, *conversions.sd_from_se(num["se"][rows], n[rows]))
    rows = of["mean_ci"]
    few = rows[n[rows] < 2]
    exclude(few.tolist(), "SD not derivable: a CI needs n >= 2", "n")
    rows = rows[n[rows] >= 2]
    if rows.size:
        level = num["ci_level"][rows]
        level = np.where(np.isnan(level), 95.0, level) / 100.0
        ci = num["ci_low"][rows], num["ci_high"][rows]
        reported_mean_derived_sd(rows, *conversions.sd_from_ci(*ci, n[rows], level=level))
    rows = of["fivenum"]
    if rows.size:
        five = {c: num[c][rows] for c in ("min", "q1", "median", "q3", "max")}
        res = conversions.mean_sd_from_fivenum(n[rows], **five)
        done = np.isfinite(res.mean) & np.isfinite(res.sd)
        got = rows[done]
        mean[got], sd[got], derived[got] = res.mean[done].tolist(), res.sd[done].tolist(), True
        mean_method[got] = [str(x) for x in res.mean_method[done]]
        sd_method[got] = [str(x) for x in res.sd_method[done]]
        small = ~done & (n[rows] < conversions.FIVENUM_MIN_N)
        exclude(rows[small].tolist(), "median-based summary not converted: n < 5 (as metafor conv.fivenum)", "n")
        left = ~done & ~small
        if left.any():
            test = conversions.fivenum_skewness_test(n[rows][left], **{c: v[left] for c, v in five.items()})
            for i, scenario, stat, crit in zip(rows[left].tolist(), test.scenario.tolist(), test.statistic.tolist(),
                                               test.critical.tolist(), strict=True):  # fmt: skip
                if int(scenario) == 0:
                    exclude([i], "median-based summary not converted: needs median with q1+q3, min+max, or all five "
                            "numbers (metafor conv.fivenum scenarios)", "median")  # fmt: skip
                else:
                    exclude([i], "median-based summary not converted: significant skewness "
                            f"(Shi et al. 2023 test, T = {stat:.3f} >= {crit:.3f})", "median")  # fmt: skip
    rows = of[""]
    for i in rows.tolist():
        if raw_mean[i] is not None:
            exclude([i], "SD neither reported nor derivable (no sd, se or CI)", "sd")
        else:
            exclude([i], "no usable statistics", "unusable_reason")
    computed = {"mean": mean, "sd": sd, "events": events, "mean_method": mean_method, "sd_method": sd_method,
                "derived": derived}  # fmt: skip
    computed = {name: values.tolist() for name, values in computed.items()} | {"line": t["_line"]}
    arms = Table({c: computed[c] if c in computed else t.get(c) for c in ARM_COLUMNS}, size)
    return arms, reasons


def harmonise_rows(sheets: Sheets) -> tuple[Table, list, list]:
    """The arms of the analysable outcome rows (:data:`ARM_COLUMNS`, in the sheet's order; an arm without
    ``extraction_confidence`` takes its study's), and why each outcome row and each contrast row is
    excluded (a :class:`~tpsynth.validate.Reason`; None for an outcome row, "" for a contrast row that is
    analysable)."""
    t = sheets.outcomes
    arms, reasons = harmonise_outcomes(t)
    if reasons.count(None) < len(t):  # (every row kept: the arms share the outcome rows' column lists)
        arms = arms.take([i for i, r in enumerate(reasons) if r is None])
    confidence = {s["study_id"]: s.get("extraction_confidence") for s in sheets.studies}
    given = arms["extraction_confidence"]
    if given.count(None) == len(given):  # none given by row: each arm takes its study's
        arms.columns["extraction_confidence"] = list(map(confidence.get, arms["study_id"]))
    else:
        arms.columns["extraction_confidence"] = [
            value or confidence.get(sid) for value, sid in zip(given, arms["study_id"], strict=True)
        ]
    con_reasons = [
        Reason(f"unusable as extracted: {r['unusable_reason']}", "unusable_reason") if r.get("unusable_reason") else ""
        for r in sheets.contrasts
    ]
    return arms, reasons, con_reasons


def harmonise(sheets: Sheets) -> tuple[Table, Table]:
    """Harmonise every outcome row; return (arms, flow), both :class:`~tpsynth.columns.Table`.

    ``arms`` as :func:`harmonise_rows` gives them. ``flow`` has :data:`FLOW_COLUMNS`, one row per raw row
    (outcome rows, then contrast rows): its state (``analysable`` or ``excluded``) and reason.
    """
    t, contrasts = sheets.outcomes, sheets.contrasts
    arms, reasons, con_reasons = harmonise_rows(sheets)
    if reasons.count(None) == len(reasons):  # every outcome row analysable
        state, reason = ["analysable"] * len(reasons), [""] * len(reasons)
    else:
        state = ["analysable" if r is None else "excluded" for r in reasons]
        reason = ["" if r is None else r for r in reasons]
    source_row = t.get("source_row")
    source_row = [""] * len(t) if source_row.count(None) == len(t) else [v or "" for v in source_row]
    flow = Table({
        "sheet": ["outcomes"] * len(t) + ["contrasts"] * len(contrasts),
        "line": t["_line"] + [r["_line"] for r in contrasts],
        "study_id": t["study_id"] + [r["study_id"] for r in contrasts],
        "arm": t["arm"] + [""] * len(contrasts),
        "outcome": t["outcome"] + [r["outcome"] for r in contrasts],
        "timepoint_weeks": t.get("timepoint_weeks") + [r.get("timepoint_weeks") for r in contrasts],
        "source_row": source_row + [r.get("source_row") or "" for r in contrasts],
        "state": state + ["excluded" if r else "analysable" for r in con_reasons],
        "reason": reason + con_reasons,
    })  # fmt: skip
    return arms, flow
