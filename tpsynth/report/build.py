"""Collect everything the HTML report shows, and render it.

Every function here is pure (inputs in, plain dicts and lists out) except the small readers at the end
(:func:`build_report`, :func:`provenance`, :func:`git_info`), so the content of each section can be
unit-tested without a browser. :func:`render` fills ``templates/report.html.j2`` with Jinja2 with
autoescaping on: text that comes from the data (study names, notes, reasons) is always escaped.

The report is byte-identical on every rerun with the same inputs: nothing reads the clock (the date is
``SOURCE_DATE_EPOCH``, else the latest git commit date, else the newest input file's mtime), every
mapping is rendered in a fixed order and figures are embedded as they are on disk.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import platform
import re
import subprocess
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from .. import display
from ..certainty import rules_from_config
from ..config import analysis_settings, file_stem, natural_key
from ..measures import MEASURE_NAMES, RATIO_MEASURES
from ..results import AnalysisResult, MetaRegression, Sensitivity, SmallStudy
from ..selection import where_text
from . import clinical
from .network import network_sections

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"

SOFTWARE = ["python", "numpy", "scipy", "statsmodels", "pandas", "matplotlib", "snakemake", "jinja2"]

RATIO = RATIO_MEASURES
TAU2_METHODS = {
    "REML": "restricted maximum likelihood (REML)",
    "DL": "DerSimonian-Laird (DL)",
    "PM": "Paule-Mandel (PM)",
    "ML": "maximum likelihood (ML)",
    "HE": "Hedges (HE)",
    "SJ": "Sidik-Jonkman (SJ)",
    "EB": "empirical Bayes (EB)",
    "FE": "none: common-effect (fixed-effect) model",
    "MH": "none: common-effect Mantel-Haenszel model (2x2 tables)",
    "PETO": "none: common-effect Peto odds ratio (2x2 tables)",
    "single study": "none: a single study, reported as is",
}
CI_METHODS = {
    "wald": "Wald (normal quantile)",
    "hksj": 'Hartung-Knapp-Sidik-Jonkman (t with k-1 degrees of freedom; metafor test="knha")',
    "hksj_adhoc": 'Hartung-Knapp-Sidik-Jonkman, never narrower than Wald (metafor test="adhoc")',
}
CONVERSIONS = {
    "reported": "as reported",
    "sd_from_se": "SD from the standard error (SD = SE x sqrt(n))",
    "sd_from_ci_t": "SD from a CI of the mean, t quantile (n < 60; Cochrane Handbook 6.5.2.2)",
    "sd_from_ci_z": "SD from a CI of the mean, normal quantile (n >= 60; Cochrane Handbook 6.5.2.2)",
    "mean_luo2016_s1": "mean from median and minimum/maximum (Luo et al. 2016, scenario 1)",
    "mean_luo2016_s2": "mean from median and quartiles (Luo et al. 2016, scenario 2)",
    "mean_luo2016_s3": "mean from median, quartiles and minimum/maximum (Luo et al. 2016, scenario 3)",
    "sd_wan2014_range": "SD from the range (Wan et al. 2014)",
    "sd_wan2014_iqr": "SD from the interquartile range (Wan et al. 2014)",
    "sd_shi2020_s3": "SD from median, quartiles and range (Shi et al. 2020, scenario 3)",
}
CERTAINTY_RULES = {
    "alpha": "two-sided alpha of the optimal information size (OIS)",
    "power": "power of the OIS",
    "dichotomous_relative_change": "relative risk change a dichotomous OIS is powered for",
    "small_trial_per_arm": "trials with fewer participants per arm count as small",
    "risk_of_bias_weight": "risk of bias -1 when at least this share of the weight is at high risk",
    "not_assessed_counts_as_risk": "risk of bias 'not assessed' counts as high risk",
    "inconsistency_i2_serious": "inconsistency -1 at or above this I² (%)",
    "inconsistency_i2_very_serious": "inconsistency -2 at or above this I² (%) when the PI includes no effect",
    "indirectness_weight": "indirectness -1 when at least this share of weight is outside the target regions",
    "publication_bias_p": "publication bias -1 when Egger's p is below this ...",
    "publication_bias_min_k": "... and k is at least this",
    "ratio_threshold": "RR/OR of appreciable benefit or harm (imprecision)",
}
SENSITIVITY_KINDS = {
    "without_high_rob": "Without studies at high risk of bias",
    "without_low_confidence": "Without low-confidence extractions",
}
_URL = re.compile(r"https?://[^\s|;,()<>\"']+")


# --------------------------------------------------------------------------------------------------
# formatting (registered as Jinja2 filters)


# Numbers are written by tpsynth.display, as in the figures (one value reads the same in both).
_finite = display.isnum
num = display.number
pval = display.p_relation
pct = display.percent


def weeks(window, unit: bool = True) -> str:
    """A timepoint window ``[lo, hi]``: ``4–12 weeks``; one number when ``lo == hi`` (``0 weeks``, never ``0–0``)."""
    if not window:
        return "–"
    lo, hi = (f"{float(x):g}" for x in window)
    text = lo if lo == hi else f"{lo}–{hi}"
    return f"{text} weeks" if unit else text


def ratio(x) -> str:
    """A ratio (RR/OR) on the ratio scale, readable over many orders of magnitude."""
    return display.value(x, ratio=True)


def linkify(text) -> Markup:
    """Escape ``text`` and turn each http(s) address in it into a link (no request is made until clicked)."""
    text = "" if text is None else str(text)
    out, pos = [], 0
    for m in _URL.finditer(text):
        out.append(escape(text[pos : m.start()]))
        url = escape(m.group(0))
        out.append(Markup('<a href="{0}" rel="noreferrer noopener">{0}</a>').format(url))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def breakable(text) -> Markup:
    """Escape ``text`` and allow line breaks after underscores (long identifiers in narrow columns)."""
    return Markup(str(escape("" if text is None else str(text))).replace("_", "_<wbr>"))


def anchor(analysis_id: str) -> str:
    """The HTML id of an analysis's section: one id per analysis id (``dn.pain`` and ``dn-pain`` differ).

    Letters, digits and ``_ . -`` (all a config id may hold) are kept; anything else becomes ``:HEX;``,
    which no kept character can spell, so two different analysis ids never share an anchor.
    """
    return "analysis-" + re.sub(r"[^A-Za-z0-9_.-]", lambda m: f":{ord(m.group()):x};", analysis_id)


# --------------------------------------------------------------------------------------------------
# effects in natural units


def _scale_text(scale) -> str:
    if not scale:
        return ""
    lo, hi = scale
    return f"{num(lo, 0) if float(lo).is_integer() else num(lo)}–{num(hi, 0) if float(hi).is_integer() else num(hi)}"


def effect_text(measure: str, est, lo, hi, level: float = 0.95) -> str:
    """'−0.46 (95% CI −1.04 to 0.12)' with ratio measures exponentiated from the log scale."""
    return display.effect(est, lo, hi, ratio=display.is_ratio(measure), style="ci", level=level)


def natural(measure: str, x):
    """A value of the analysis scale in natural units (exp for RR/OR)."""
    return display.to_display(x, display.is_ratio(measure))


def fmt_natural(measure: str, x) -> str:
    r = display.is_ratio(measure)
    return display.value(display.to_display(x, r), ratio=r)


def favours_text(measure: str, higher_is_better: bool | None, intervention: str) -> str:
    """Which side of no effect favours the intervention; neutral when the direction is unknown (None)."""
    null = "1" if measure in RATIO else "0"
    if higher_is_better is None:
        return f"values above {null} mean higher with {intervention} (which direction is better is not set)"
    side = "above" if higher_is_better else "below"
    return f"values {side} {null} favour {intervention}"


def effect_summary(a: AnalysisResult) -> dict:
    """The pooled effect of one analysis in natural units, with its label and direction."""
    p = a.pooled
    s = a.settings
    measure = s.measure
    level = s.level
    outcome = a.outcome
    scale = outcome.reference_scale
    label = measure
    if measure == "MD" and scale:
        label = f"MD, points on {_scale_text(scale)}"
    elif measure in RATIO:
        label = f"{measure} (ratio scale)"
    out = {
        "measure": measure,
        "label": label,
        "text": effect_text(measure, p.estimate, p.ci_low, p.ci_high, level),
        "estimate": natural(measure, p.estimate),
        "ci_low": natural(measure, p.ci_low),
        "ci_high": natural(measure, p.ci_high),
        "points_text": None,
        "favours": favours_text(measure, outcome.higher_is_better, s.intervention_label or "the intervention"),
    }
    pts = a.smd_in_points
    if pts and _finite(pts.estimate):
        on = f" on {_scale_text(pts.scale)}" if pts.scale else ""
        out["points_text"] = (
            f"≈ {effect_text('MD', pts.estimate, pts.ci_low, pts.ci_high, level)} points{on} "
            f"(SMD × representative SD {num(pts.sd)})"
        )
    return out


def split_reasons(text: str | None) -> list[str]:
    """'risk of bias (-1): ...; imprecision (-1): a; b' -> one item per GRADE domain."""
    if not text:
        return []
    return [t.strip() for t in re.split(r";\s+(?=[a-z][a-z ]* \(-\d\):)", text) if t.strip()]


def sof_row(a: AnalysisResult) -> dict:
    """One row of the summary-of-findings table."""
    p = a.pooled
    s = a.settings
    return {
        "analysis_id": a.analysis_id,
        "anchor": anchor(a.analysis_id),
        "comparison": a.title,
        "intervention": s.intervention_label or "",
        "comparator": s.comparator_label or "",
        "outcome": a.outcome.label,
        "timepoint": s.timepoint_weeks,
        "k": p.k,
        "participants": p.n_participants,
        "effect": effect_summary(a),
        "certainty": p.certainty or "not rated",
        "certainty_reasons": split_reasons(p.certainty_reasons),
        "plain_language": a.plain_language or "",
        "headline": clinical.headline(a),
        "no_evidence": not p.k,
    }


# --------------------------------------------------------------------------------------------------
# per-analysis detail


def heterogeneity(a: AnalysisResult) -> dict:
    p = a.pooled
    m = a.settings.measure
    k = p.k or 0
    return {
        "estimable": k >= 2 and _finite(p.tau2),
        "k": k,
        "tau2": p.tau2,
        "tau2_ci_low": p.tau2_ci_low,
        "tau2_ci_high": p.tau2_ci_high,
        "tau2_ci_capped": bool(p.tau2_ci_capped),
        "i2": p.i2,
        "i2_ci_low": p.i2_ci_low,
        "i2_ci_high": p.i2_ci_high,
        "q": p.q,
        "q_df": p.q_df,
        "q_pvalue": p.q_pvalue,
        "pi": (
            f"{fmt_natural(m, p.pi_low)} to {fmt_natural(m, p.pi_high)}"
            if _finite(p.pi_low) and _finite(p.pi_high)
            else None
        ),
        "log_scale": m in RATIO,
    }


def _sens_row(m: str, level: float, r: Sensitivity) -> dict:
    return {
        "study_id": r.study_id,
        "k": r.k,
        "effect": effect_text(m, r.estimate, r.ci_low, r.ci_high, level),
        "estimate": natural(m, r.estimate),
        "tau2": r.tau2,
        "i2": r.i2,
    }


def sensitivity(a: AnalysisResult) -> dict:
    """Leave-one-out range, the two restricted re-analyses and the cumulative analysis."""
    m = a.settings.measure
    level = a.settings.level
    rows = a.sensitivity
    loo = [_sens_row(m, level, r) for r in rows if r.kind == "leave_one_out"]
    cum = [_sens_row(m, level, r) for r in rows if r.kind == "cumulative"]
    loo_range = None
    est = [r for r in loo if r["estimate"] is not None]
    if est:
        lo = min(est, key=lambda r: r["estimate"])
        hi = max(est, key=lambda r: r["estimate"])
        fmt = ratio if m in RATIO else num
        loo_range = {"low": fmt(lo["estimate"]), "low_without": lo["study_id"],
                     "high": fmt(hi["estimate"]), "high_without": hi["study_id"]}  # fmt: skip
    restricted = []
    for kind, title in SENSITIVITY_KINDS.items():
        r = next((r for r in rows if r.kind == kind), None)
        if r is None:
            restricted.append({"title": title, "applies": False, "row": None})
        else:
            row = _sens_row(m, level, r)
            row["dropped"] = [x for x in str(r.study_id or "").split(";") if x]
            restricted.append({"title": title, "applies": True, "row": row})
    return {"leave_one_out": loo, "loo_range": loo_range, "restricted": restricted, "cumulative": cum}


def subgroups(a: AnalysisResult) -> dict:
    m = a.settings.measure
    level = a.settings.level
    p = a.pooled
    rows = [
        {"subgroup": g.subgroup, "column": g.column, "k": g.k,
         "effect": effect_text(m, g.estimate, g.ci_low, g.ci_high, level), "tau2": g.tau2, "i2": g.i2}
        for g in a.subgroups
    ]  # fmt: skip
    return {
        "column": a.settings.subgroup,
        "rows": rows,
        "q_between": p.q_between,
        "q_between_df": p.q_between_df,
        "q_between_pvalue": p.q_between_pvalue,
    }


def small_study(a: AnalysisResult) -> dict:
    s = a.small_study or SmallStudy(k=0)
    m = a.settings.measure
    return {
        "done": not s.skipped_reason,
        "skipped_reason": s.skipped_reason,
        "egger_stat": s.egger_stat,
        "egger_pvalue": s.egger_pvalue,
        "trimfill_k0": s.trimfill_k0,
        "trimfill_estimate": fmt_natural(m, s.trimfill_estimate),
    }


#: Cochrane Handbook (version 6) 10.11.6: subgroup analyses and meta-regressions are observational.
OBSERVATIONAL = (
    "This compares trials with one another, not patients within trials: it is an observational association "
    "across trials, not evidence of cause and effect: other characteristics of the trials that go with {what} "
    "may explain it (Cochrane Handbook 10.11.6)."
)


def _term_text(term: str, moderators: list[str], reference: dict, numeric: set[str]) -> tuple[str, str]:
    """(label, kind) of a coefficient: ``intercept``, ``covariate`` or ``level`` of a factor."""
    if term == "intrcpt":
        return "Intercept", "intercept"
    for col in moderators:
        if term.startswith(f"{col}[") and term.endswith("]") and col in reference:
            return f"{col}: {term[len(col) + 1 : -1]} vs {reference[col]}", "level"
    return (f"{term} (per 1 unit)" if term in numeric else term), "covariate"


def _qm_text(mr: MetaRegression) -> str:
    """The omnibus test of moderators: ``QM = 11.06 (chi² on 3 df), p = 0.011`` or ``F(1, 11) = 12.59, p = 0.005``."""
    if display.isnum(mr.qm_df2):
        return f"F({mr.qm_df}, {num(mr.qm_df2, 0)}) = {num(mr.qm)}, {display.p_value(mr.qm_pvalue)}"
    return f"QM = {num(mr.qm)} (chi² on {mr.qm_df} df), {display.p_value(mr.qm_pvalue)}"


def _permutation_text(mr: MetaRegression) -> str:
    """The permutation p-value of QM with how it was obtained (metafor ``permutest``)."""
    if not display.isnum(mr.permutation_pvalue):
        return "not computed"
    n = mr.permutation_iter
    if mr.permutation_exact:
        how = f"exact: all {num(n, 0) if n is not None and n >= 1000 else n} distinct permutations"
    else:
        how = f"{num(n, 0) if n is not None and n >= 1000 else n} random permutations, seed {mr.permutation_seed}"
    return f"{display.p_value(mr.permutation_pvalue)} ({how})"


def meta_regression_section(a: AnalysisResult, key: str = "meta_regression", figures: dict | None = None) -> dict | None:
    """The meta-regression of an analysis (``key="meta_regression"``: its ``moderators:``) or its subgroup
    model with a common tau² (``key="subgroup_regression"``), as the report shows it.

    Coefficients on the analysis scale with CI, test statistic and p; for ratio measures also
    exponentiated (the intercept is then the ratio at the reference, a moderator's coefficient the
    factor by which the ratio is multiplied per unit or against the reference level); the omnibus test
    (chi² with Wald, F with HKSJ, as metafor), QE, residual tau² and I², pseudo R², the permutation
    p-value, the Cochrane Handbook 10.11.5 caveat and a plain-language sentence. None when the
    analysis has no such model.
    """
    if key not in ("meta_regression", "subgroup_regression"):
        raise ValueError(f"key must be meta_regression or subgroup_regression, not {key!r}")
    mr = getattr(a, key)
    if not mr:
        return None
    aid = a.analysis_id
    measure = a.settings.measure
    r = display.is_ratio(measure)
    level = a.settings.level
    moderators = list(mr.moderators)
    subgroup = key == "subgroup_regression"
    what = " and ".join(moderators)
    out = {
        "kind": "subgroup" if subgroup else "moderators",
        "title": f"Subgroup model with a common tau² (meta-regression on {what})" if subgroup
                 else f"Meta-regression on {what}",
        "moderators": moderators, "skipped_reason": mr.skipped_reason,
        "notes": list(mr.notes), "caveat": mr.caveat, "rows": [], "bubbles": [],
    }  # fmt: skip
    if mr.skipped_reason:
        return out
    reference = dict(mr.reference_levels)
    bubbles = list(mr.bubble)
    numeric = {b.moderator for b in bubbles} | {m for m in moderators if m not in reference}
    stat = "z" if mr.ci_method == "wald" else "t"
    pct = f"{100 * level:g}%"
    at = [f"{m} = 0" for m in moderators if m in numeric] + [f"{m} {lv}" for m, lv in reference.items()]
    plain = []
    for c in mr.coefficients:
        label, kind = _term_text(c.term, moderators, reference, numeric)
        row = {
            "label": label, "kind": kind,
            "coefficient": display.effect(c.estimate, c.ci_low, c.ci_high, digits=3),
            "ratio": display.effect(c.estimate, c.ci_low, c.ci_high, ratio=True, digits=3) if r else None,
            "statistic": num(c.statistic), "p": display.p_value(c.pvalue),
        }  # fmt: skip
        out["rows"].append(row)
        if kind == "intercept":
            continue
        est, lo, hi = (display.value(display.to_display(x, r), 3, r) for x in (c.estimate, c.ci_low, c.ci_high))
        change = f"{est} ({pct} CI {lo} to {hi}; {display.p_value(c.pvalue)})"
        if kind == "level":
            col = next(m for m in moderators if c.term.startswith(f"{m}["))
            lead = f"in trials with {col} {c.term[len(col) + 1 : -1]} rather than {reference[col]}"
        else:
            lead = f"per 1 unit higher {c.term}"
        verb = f"the {measure} is multiplied by" if r else f"the {measure} changes by"
        plain.append(f"{lead}, {verb} {change}")
    sig = display.isnum(mr.qm_pvalue) and mr.qm_pvalue < 0.05
    test = f"test of moderators {display.p_value(mr.qm_pvalue)}"
    verdict = (
        f"the effect differs with {what} beyond chance ({test})" if sig
        else f"the data show no clear difference in the effect with {what} ({test}); this does not show that there is none"
    )  # fmt: skip
    intercept_text = (
        f"The intercept is the {measure} predicted at {', '.join(at)}." if at else ""
    )
    out.update(
        model="Meta-regression with a common effect (no tau²)" if mr.method == "FE"
              else "Mixed-effects meta-regression",
        k=mr.k, stat=stat, pct=pct, ratio=r, measure=measure,
        reference=[{"moderator": m, "level": lv} for m, lv in sorted(reference.items())],
        method=TAU2_METHODS.get(mr.method, mr.method),
        ci=CI_METHODS.get(mr.ci_method, mr.ci_method),
        qm=_qm_text(mr),
        qe=f"QE = {num(mr.qe)} on {mr.qe_df} df, {display.p_value(mr.qe_pvalue)}",
        tau2=display.small(mr.tau2), i2=f"{num(mr.i2, 0)}%", r2=f"{num(mr.r2, 0)}%",
        permutation=_permutation_text(mr), intercept_text=intercept_text,
        plain=(f"Across {mr.k} studies, " + verdict + ". " + ("; ".join(plain)[:1].upper() + "; ".join(plain)[1:] + ". "
               if plain else "") + OBSERVATIONAL.format(what=what)),
        bubbles=[
            {"moderator": b.moderator, "src": (figures or {}).get(f"bubble_{aid}/{file_stem(b.moderator)}")}
            for b in bubbles
        ],
    )  # fmt: skip
    return out


def study_rows(a: AnalysisResult) -> list[dict]:
    """The studies of one analysis as they entered it (effect in natural units, weight)."""
    m = a.settings.measure
    level = a.settings.level
    out = []
    for s in a.studies:
        out.append({
            "study_id": s.study_id,
            "label": f"{s.author or s.study_id} {s.year or ''}".strip(),
            "timepoint_weeks": s.timepoint_weeks,
            "instrument": s.instrument,
            "intervention": s.arms_text.intervention,
            "comparator": s.arms_text.comparator,
            "effect": effect_text(m, s.yi, s.ci_low, s.ci_high, level),
            "weight": s.weight,
            "notes": list(s.notes),
        })  # fmt: skip
    return out


def analysis_section(a: AnalysisResult, figures: dict) -> dict:
    aid = a.analysis_id
    p = a.pooled
    s = a.settings
    return {
        "analysis_id": aid,
        "anchor": anchor(aid),
        "title": a.title,
        "settings": {
            "measure": MEASURE_NAMES.get(s.measure, s.measure),
            "method": TAU2_METHODS.get(p.method or s.method, p.method or s.method),
            "ci": CI_METHODS.get(p.ci_method or s.ci, s.ci),
            "level": s.level,
            "timepoint_weeks": s.timepoint_weeks,
            "timepoint_rule": s.timepoint_rule,
            "randomised_only": s.randomised_only,
            "where": s.where,
        },
        "labels": {"intervention": list(a.labels.intervention), "comparator": list(a.labels.comparator)},
        "sof": sof_row(a),
        "pvalue": p.pvalue,
        "heterogeneity": heterogeneity(a),
        "caveats": list(a.caveat_sentences),
        "notes": list(a.notes) + list(p.notes),
        "studies": study_rows(a),
        "sensitivity": sensitivity(a),
        "subgroups": subgroups(a),
        "small_study": small_study(a),
        "regressions": [x for x in (meta_regression_section(a, "meta_regression", figures),
                                    meta_regression_section(a, "subgroup_regression", figures)) if x],
        "forest": figures.get(f"forest_{aid}") if p.k else None,
        "funnel": figures.get(f"funnel_{aid}") if p.k else None,
        "bayes": clinical.prior_sensitivity(a),
        "bayes_note": a.bayes_note,
        "judged_on": a.imprecision_judged_on,
        "rob_summary": figures.get(f"rob_summary_{aid}") if p.k else None,
    }


# --------------------------------------------------------------------------------------------------
# evidence base


def _by_study(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by study_id, in sheet order (one pass: the evidence table stays linear in rows)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["study_id"], []).append(r)
    return out


def _arms_text(study_outcomes: list[dict], study_contrasts: list[dict]) -> str:
    """Arms and their largest n of one study (its outcome rows), else its contrasts' sizes."""
    arms: dict[str, int | None] = {}
    for r in study_outcomes:
        n = r.get("n")
        cur = arms.get(r["arm"])
        arms[r["arm"]] = n if cur is None else (max(cur, n) if n is not None else cur)
    if arms:
        return ", ".join(f"{arm} {n:.0f}" if n is not None else f"{arm} n?" for arm, n in arms.items())
    cons = study_contrasts
    for r in cons:
        ni, nc = r.get("n_intervention"), r.get("n_comparator")
        if ni is not None or nc is not None:
            return (
                f"contrast only: {ni:.0f} vs {nc:.0f}"
                if ni is not None and nc is not None
                else "contrast only"
            )
    return "contrast only" if cons else "–"


def study_table(
    studies: list[dict], outcomes: list[dict], contrasts: list[dict], analyses: list[AnalysisResult]
) -> list[dict]:
    """One row per study of the studies sheet, with the analyses it entered."""
    used: dict[str, list[str]] = {}
    for a in analyses:
        for s in a.studies:
            used.setdefault(s.study_id, []).append(a.analysis_id)
    outcomes_of, contrasts_of = _by_study(outcomes), _by_study(contrasts)
    rows = []
    for s in studies:
        sid = s["study_id"]
        rows.append({
            "study_id": sid,
            "label": f"{s.get('author') or sid} {s.get('year') or ''}".strip(),
            "citation": s.get("citation") or "",
            "region": s.get("region") or "",
            "design": s.get("design") or "",
            "randomised": s.get("randomised", True) is not False,
            "arms": _arms_text(outcomes_of.get(sid, []), contrasts_of.get(sid, [])),
            "rob": (s.get("rob_overall") or "").replace("_", " "),
            "confidence": s.get("extraction_confidence") or "",
            "source": s.get("source") or "",
            "analyses": [{"id": x, "anchor": anchor(x)} for x in sorted(set(used.get(sid, [])))],
        })  # fmt: skip
    return rows


UNUSABLE = "unusable as extracted: "
NOT_CONFIGURED = "not part of any configured analysis"


def _split_analysis_reasons(reason: str, ids: list[str]) -> list[tuple[str, str]]:
    """'a1: why; still why; a2: why' -> [(a1, 'why; still why'), (a2, 'why')]."""
    if not ids:
        return []
    alt = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    parts = re.split(rf"(?:^|;\s+)({alt}):\s+", reason)
    if parts[0].strip():
        return []
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def dataflow_summary(flow: list[dict], analyses: list[AnalysisResult]) -> dict:
    """Counts of rows extracted, analysable and used, and the exclusions grouped by reason.

    ``flow`` holds the rows of ``data/processed/dataflow.csv`` (strings, as csv.DictReader gives them).
    """
    ids = [a.analysis_id for a in analyses]
    sheets: dict[str, Counter] = {}
    unusable: dict[str, dict] = {}
    not_configured: dict[str, set] = {"rows": set(), "studies": set(), "outcomes": set()}
    left_out: dict[str, dict] = {}
    per_analysis = {i: 0 for i in ids}
    for r in flow:
        c = sheets.setdefault(r["sheet"], Counter())
        c["extracted"] += 1
        reason = r.get("reason") or ""
        if r["state"] == "used":
            c["analysable"] += 1
            c["used"] += 1
            for aid in filter(None, (r.get("analyses") or "").split(";")):
                per_analysis[aid] = per_analysis.get(aid, 0) + 1
            continue
        if reason == NOT_CONFIGURED:
            c["analysable"] += 1
            not_configured["rows"].add((r["sheet"], r["line"]))
            not_configured["studies"].add(r["study_id"])
            not_configured["outcomes"].add(r.get("outcome") or "")
            continue
        parts = _split_analysis_reasons(reason, ids)
        if parts:
            c["analysable"] += 1
            for aid, why in parts:
                g = left_out.setdefault(
                    re.sub(r"\d+(\.\d+)? weeks", "N weeks", why),
                    {"rows": 0, "analyses": set(), "studies": set(), "examples": set()},
                )
                g["rows"] += 1
                g["analyses"].add(aid)
                g["studies"].add(r["study_id"])
                g["examples"].add(why)
            continue
        why = reason[len(UNUSABLE) :] if reason.startswith(UNUSABLE) else reason
        g = unusable.setdefault(why, {"rows": 0, "studies": set()})
        g["rows"] += 1
        g["studies"].add(r["study_id"])

    def _rows_sorted(d):
        return sorted(d.items(), key=lambda kv: (-kv[1]["rows"], kv[0]))

    totals = Counter()
    for c in sheets.values():
        totals.update(c)
    analysis_rows = []
    for a in analyses:
        analysis_rows.append({
            "analysis_id": a.analysis_id, "anchor": anchor(a.analysis_id), "title": a.title,
            "rows": per_analysis.get(a.analysis_id, 0), "k": a.pooled.k, "participants": a.pooled.n_participants,
        })  # fmt: skip
    return {
        "sheets": [{"sheet": name, **{k: c[k] for k in ("extracted", "analysable", "used")}}
                   for name, c in sorted(sheets.items(), key=lambda kv: (kv[0] != "outcomes", kv[0]))],
        "totals": {k: totals[k] for k in ("extracted", "analysable", "used")},
        "per_analysis": analysis_rows,
        "unusable": [{"reason": k, "rows": v["rows"], "studies": sorted(v["studies"])} for k, v in _rows_sorted(unusable)],
        "unusable_rows": sum(v["rows"] for v in unusable.values()),
        "not_configured": {"rows": len(not_configured["rows"]), "studies": sorted(not_configured["studies"]),
                           "outcomes": sorted(o for o in not_configured["outcomes"] if o)},
        "left_out": [
            {"reason": k, "examples": sorted(v["examples"]), "rows": v["rows"],
             "analyses": sorted(v["analyses"]), "studies": sorted(v["studies"])}
            for k, v in _rows_sorted(left_out)
        ],
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# methods and provenance


def software_versions() -> list[dict]:
    out = [{"name": "python", "version": platform.python_version()}]
    for name in SOFTWARE[1:]:
        try:
            v = version(name)
        except PackageNotFoundError:
            v = "not installed"
        out.append({"name": name, "version": v})
    return out


def methods(config: dict, analyses: list[AnalysisResult], arms: list[dict]) -> dict:
    """What was done, written from the configuration and data actually used."""
    ids = [a.analysis_id for a in analyses]
    settings = []
    for aid in ids:
        try:
            s = analysis_settings(config, aid)  # the configuration (a dict), as the methods section quotes it
        except KeyError:
            s = next(a.settings for a in analyses if a.analysis_id == aid).to_dict()
        settings.append({
            "analysis_id": aid, "anchor": anchor(aid), "measure": s.get("measure"), "method": s.get("method"),
            "ci": s.get("ci"), "level": s.get("level", 0.95), "timepoint_weeks": s.get("timepoint_weeks"),
            "timepoint_rule": s.get("timepoint_rule"), "randomised_only": s.get("randomised_only"),
            "subgroup": s.get("subgroup"),
        })  # fmt: skip
    used_methods = sorted({s["method"] for s in settings if s["method"]})
    used_ci = sorted({s["ci"] for s in settings if s["ci"]})
    used_measures = sorted({s["measure"] for s in settings if s["measure"]})
    conv = Counter()
    for r in arms:
        for col in ("mean_method", "sd_method"):
            v = (r.get(col) or "").strip()
            if v:
                conv[(col, v)] += 1
    conversions = [
        {"column": col, "method": v, "rows": n, "description": CONVERSIONS.get(v, v)}
        for (col, v), n in sorted(conv.items())
    ]
    rules = rules_from_config(config)
    order = [k for k in CERTAINTY_RULES if k in rules] + sorted(k for k in rules if k not in CERTAINTY_RULES)
    certainty = [
        {"key": k, "value": ("yes" if rules[k] else "no") if isinstance(rules[k], bool) else rules[k],
         "meaning": CERTAINTY_RULES.get(k, "")}
        for k in order
    ]  # fmt: skip
    target = config.get("target") or {}
    return {
        "defaults": dict(sorted((config.get("defaults") or {}).items())),
        "settings": settings,
        "measures": [{"code": m, "name": MEASURE_NAMES.get(m, m)} for m in used_measures],
        "tau2_methods": [{"code": m, "name": TAU2_METHODS.get(m, m)} for m in used_methods],
        "ci_methods": [{"code": c, "name": CI_METHODS.get(c, c)} for c in used_ci],
        "conversions": conversions,
        "any_derived": any(c["method"] != "reported" for c in conversions),
        "certainty": certainty,
        "target": {"label": target.get("label"), "regions": list(target.get("regions") or [])},
        "software": software_versions(),
    }


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(basedir: str | Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(basedir), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def git_info(basedir: str | Path | None) -> dict:
    """Commit, commit date (Unix seconds) and whether tracked files differ from it, or not a checkout."""
    commit = _git(basedir, "rev-parse", "HEAD") if basedir else None
    if not commit:
        return {"commit": None, "epoch": None, "dirty": False}
    epoch = _git(basedir, "log", "-1", "--format=%ct")
    dirty = _git(basedir, "status", "--porcelain", "--untracked-files=no") is not None
    return {"commit": commit, "epoch": int(epoch) if epoch and epoch.isdigit() else None, "dirty": dirty}


def report_date(source_date_epoch: str | None, git_epoch: int | None, input_mtimes: list[float]) -> dict:
    """A deterministic date: SOURCE_DATE_EPOCH, else the latest commit date, else the newest input's mtime."""
    if source_date_epoch and source_date_epoch.strip().isdigit():
        epoch, how = int(source_date_epoch.strip()), "SOURCE_DATE_EPOCH"
    elif git_epoch is not None:
        epoch, how = git_epoch, "date of the latest git commit"
    elif input_mtimes:
        epoch, how = int(max(input_mtimes)), "modification time of the newest input file"
    else:
        return {"date": "unknown", "how": "no date source available"}
    d = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return {"date": d.strftime("%Y-%m-%d %H:%M UTC"), "day": d.strftime("%d %B %Y").lstrip("0"), "how": how}


def provenance(
    inputs: list[tuple[str, str]],
    results: list[tuple[str, str]],
    basedir: str | Path | None,
    source_date_epoch: str | None,
    recorded: list[tuple[str, str]] | None = None,
    mtime_paths: list[str] | None = None,
) -> dict:
    """SHA-256 of every input, git commit and a deterministic date.

    ``inputs`` and ``results`` are (display name, path) pairs hashed here; ``recorded`` are (display
    name, SHA-256) pairs hashed when the file was read (the sheets, by ingest), listed first.
    ``mtime_paths`` (default: the inputs) date the report when neither SOURCE_DATE_EPOCH nor git can.
    """
    git = git_info(basedir)
    files = [{"name": name, "sha256": digest} for name, digest in recorded or []]
    files += [{"name": name, "sha256": file_sha256(path)} for name, path in inputs]
    res = [{"name": name, "sha256": file_sha256(path)} for name, path in results]
    mtimes = [os.stat(path).st_mtime for path in (mtime_paths or [p for _, p in inputs])]
    return {
        "inputs": files,
        "results": res,
        "git_commit": git["commit"] or "not a git checkout",
        "git_dirty": git["dirty"],
        "date": report_date(source_date_epoch, git["epoch"], mtimes),
        "software": software_versions(),
        "platform": f"{platform.python_implementation()} {platform.python_version()}",
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# limitations


def limitations(
    analyses: list[AnalysisResult], studies: list[dict], flow: dict, shipped_note: bool, config: dict | None = None
) -> dict:
    ks = [a.pooled.k or 0 for a in analyses]
    rob = Counter(s.get("rob_overall") or "not_assessed" for s in studies)
    certainty = Counter(a.pooled.certainty or "not rated" for a in analyses)
    return {
        "n_studies": len(studies),
        "rob_not_assessed": rob.get("not_assessed", 0),
        "rob_high": rob.get("high", 0),
        "n_analyses": len(analyses),
        "max_k": max(ks) if ks else 0,
        "k_le_2": sum(1 for k in ks if k <= 2),
        "k_lt_10": sum(1 for k in ks if k < 10),
        "extracted": flow["totals"]["extracted"],
        "unusable": flow["unusable_rows"],
        "used": flow["totals"]["used"],
        "low_confidence": sum(1 for s in studies if s.get("extraction_confidence") == "low"),
        "certainty": [{"level": lv, "n": certainty[lv]} for lv in ("high", "moderate", "low", "very low", "not rated",
                                                                  "no usable evidence")
                      if certainty[lv]],
        "shipped_note": shipped_note,
        "not_assessed_counts": bool(rules_from_config(config or {}).get("not_assessed_counts_as_risk")),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# assembly and rendering


IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}


def data_uri(path: str | Path | None) -> str | None:
    """A PNG or SVG file as a data: URI (None when there is no file).

    The report embeds the SVG of each figure (text as text, ~15 kB): vector, so it prints sharply, and
    the shipped report stays under 1.5 MB where 200-dpi PNGs made it 4.7 MB.
    """
    if not path or not Path(path).is_file():
        return None
    mime = IMAGE_TYPES[Path(path).suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def build_context(
    *,
    analyses: list[AnalysisResult],
    config: dict,
    studies: list[dict],
    outcomes: list[dict],
    contrasts: list[dict],
    flow_rows: list[dict],
    arms: list[dict],
    figures: dict[str, str | None],
    prov: dict,
    shipped_note: bool = False,
    networks: list[dict] | None = None,
) -> dict:
    """Everything the template shows. ``figures`` maps 'summary', 'forest_ID', 'funnel_ID' and
    'bubble_ID/MODERATOR' (:func:`tpsynth.config.file_stem` of the moderator) to data URIs."""
    analyses = sorted(analyses, key=lambda a: natural_key(a.analysis_id))
    flow = dataflow_summary(flow_rows, analyses)
    sections = [analysis_section(a, figures) for a in analyses]
    net_sections = network_sections(networks or [], figures)
    toc = [
        {"id": "key-findings", "title": "1. Key findings for clinicians", "children": []},
        {"id": "evidence-base", "title": "2. The evidence base", "children": []},
        {"id": "analyses", "title": "3. Analyses", "children": [{"id": s["anchor"], "title": s["title"]} for s in sections]},
        *([{"id": "networks", "title": "3b. Which treatment? Network meta-analyses",
             "children": [{"id": n["anchor"], "title": n["title"]} for n in net_sections]}] if net_sections else []),
        {"id": "methods", "title": "4. Methods", "children": []},
        {"id": "provenance", "title": "5. Provenance", "children": []},
        {"id": "limitations", "title": "6. Limitations", "children": []},
        {"id": "glossary", "title": "7. Glossary", "children": []},
    ]  # fmt: skip
    rep = config.get("report") or {}
    return {
        "title": rep.get("title") or "Evidence synthesis report",
        "question": rep.get("question"),
        "population": rep.get("population"),
        "glance": clinical.evidence_glance(analyses, studies, config, shipped_note),
        "glossary": clinical.GLOSSARY,
        "toc": toc,
        "sof": [s["sof"] for s in sections],
        "summary_figure": figures.get("summary"),
        "studies": study_table(studies, outcomes, contrasts, analyses),
        "flow": flow,
        "sections": sections,
        "methods": methods(config, analyses, arms),
        "provenance": prov,
        "limitations": limitations(analyses, studies, flow, shipped_note, config),
        "target": (config.get("target") or {}).get("label"),
        "networks": net_sections,
        "prisma_figure": figures.get("prisma"),
        "prisma_note": (config.get("prisma") or {}).get("note"),
        "rob_traffic_light": figures.get("rob_traffic_light"),
        "rob_summary": figures.get("rob_summary"),
    }


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=num, ratio=ratio, pval=pval, pct=pct, linkify=linkify, breakable=breakable, weeks=weeks,
                       where=where_text)
    return env


def render(context: dict) -> str:
    return environment().get_template(TEMPLATE_NAME).render(**context)


# --------------------------------------------------------------------------------------------------
# reading the inputs (used by scripts/report.py)


def read_csv(path: str | Path) -> list[dict]:
    """A CSV written by tpsynth.tables.write_csv, with its original strings (spreadsheet guards removed)."""
    from ..tables import read_csv as read_table

    return read_table(path)


def _display(path: str | Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)
    return str(p)


def is_shipped_evidence(studies_path: str | Path) -> bool:
    """True for the trigger-point extraction shipped with the pipeline (its README sits beside the sheets)."""
    readme = Path(studies_path).parent / "README.md"
    return readme.is_file() and "trigger-point-extraction" in readme.read_text(
        encoding="utf-8", errors="replace"
    )


def build_report(
    *,
    analysis_paths: list[str],
    config: dict,
    evidence_path: str,
    config_paths: list[str],
    dataflow_path: str,
    arms_path: str,
    pooled_path: str | None = None,
    figure_paths: dict[str, str | None] | None = None,
    basedir: str | None = None,
    source_date_epoch: str | None = None,
    network_paths: list[str] | None = None,
) -> str:
    """Read every input and return the report's HTML.

    The sheets are not read: their rows and the SHA-256 of the bytes they were parsed from come from
    ``evidence_path`` (written by ingest). Raises ValueError when an analysis was not computed from that
    evidence (the sheets changed during the run), so the report never pairs new hashes with old estimates.
    ``arms_path`` is listed in the provenance; the arms themselves are the evidence's (arms.csv is written
    from them), so the report does not hold a second copy of every arm.
    """
    from ..pipeline import check_results_match_evidence, read_evidence, sheets_from_evidence

    analyses = [AnalysisResult.from_json(p) for p in analysis_paths]
    evidence = read_evidence(evidence_path, tables=("studies", "outcomes", "contrasts", "arms", "risk_of_bias"))
    check_results_match_evidence(config, evidence, analyses, str(evidence_path))
    sheets = sheets_from_evidence(evidence, outcomes=False)  # the outcome rows are read as they are
    figures = {k: data_uri(v) for k, v in sorted((figure_paths or {}).items())}
    sheet_inputs = [(_display(s["path"]), s["sha256"]) for s in evidence["sheets"]]
    results = [(_display(p), p) for p in [dataflow_path, arms_path, *([pooled_path] if pooled_path else []),
                                          *sorted(analysis_paths), *sorted(network_paths or [])]]  # fmt: skip
    prov = provenance(
        [(_display(p), p) for p in config_paths], results, basedir, source_date_epoch,
        recorded=sheet_inputs, mtime_paths=[evidence_path],
    )  # fmt: skip
    # the studies table shows each study's all-outcomes risk-of-bias judgement when risk_of_bias.csv has one
    from ..rob import study_judgement

    studies = [{**st, "rob_overall": study_judgement(sheets.risk_of_bias, st, None)["level"]} for st in sheets.studies]
    ctx = build_context(
        analyses=analyses, config=config, studies=studies, outcomes=evidence["outcomes"],
        contrasts=sheets.contrasts, flow_rows=read_csv(dataflow_path), arms=evidence["arms"], figures=figures,
        prov=prov, shipped_note=is_shipped_evidence(sheets.paths["studies"]),
        networks=[json.loads(Path(p).read_text(encoding="utf-8")) for p in sorted(network_paths or [])],
    )  # fmt: skip
    return render(ctx)
