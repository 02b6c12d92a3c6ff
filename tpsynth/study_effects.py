"""Build one contrast per study for an analysis from harmonised arms and reported contrasts.

Selection rules (documented in config/README.md):

* Arms: the analysis's ``outcome``; intervention arms are those whose code is in the analysis's
  ``intervention`` list, comparator arms those in ``comparator``.
* Studies: randomised studies only unless ``randomised_only: false``; with ``where:`` only studies
  whose studies.csv columns hold the listed values (:mod:`tpsynth.selection`).
* Timepoint: among timepoints inside ``timepoint_weeks`` (inclusive) at which the study has both
  sides (or a reported contrast), the latest (``timepoint_rule: latest``, default) or earliest.
  At that timepoint arm-level data are preferred to a reported contrast.
* Instrument: when a study reports the outcome on several instruments at that timepoint, the first
  instrument in sheet order with data on both sides is used; final values are preferred to
  change-from-baseline values of the same instrument.
* Multi-arm trials: arms on the same side are combined (Cochrane Handbook Table 6.5.a; events and
  n summed), so no participant counts twice.
* Direction: an instrument whose ``higher_is_better`` differs from the outcome's is sign-flipped
  (only when both are known: :func:`opposite_direction`)
  (SMD and MD). ``MD`` rescales every instrument to the outcome's ``reference_scale`` and refuses
  (excludes the study with the reason) when an instrument's scale is unknown.
* Reported contrasts enter as given (generic inverse variance); ratio measures are logged; SE
  from a CI uses the normal quantile; a contrast stated in the opposite direction is negated.
* Dichotomous measures use metafor's defaults for zero cells: 0.5 added to every cell of a study
  with a zero cell; studies without events (or with all events) in both arms are left out with a
  recorded reason (``add=1/2, to="only0", drop00=TRUE``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy.special import ndtri

from . import effect_sizes as es
from .measures import DICHOTOMOUS_MEASURES, RATIO_MEASURES
from .selection import excluded_reason
from .validate import Reason

#: Methods that pool 2x2 tables rather than effect sizes (tpsynth.mh).
TABLE_METHODS = ("MH", "PETO")


@dataclass
class StudyEffect:
    """One study's contrast on the analysis scale (log scale for ratio measures)."""

    study_id: str
    yi: float
    vi: float
    n_intervention: float | None
    n_comparator: float | None
    timepoint_weeks: float
    instrument: str
    source: str  # "arms" or "contrast"
    derived: bool
    low_confidence: bool
    side_stats: dict = field(default_factory=dict)  # combined n/mean/sd or n/events per side, as used
    scale_factor: float = 1.0  # MD rescaling factor applied to the difference
    sign: float = 1.0  # -1 where the instrument's direction was flipped or a contrast negated
    comparator_sd_ref: float | None = None  # comparator-arm SD on the outcome's reference scale
    comparator_risk: float | None = None  # comparator-arm events / n
    arms_text: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lines: list[tuple[str, int]] = field(default_factory=list)


def opposite_direction(row: dict, outcome_cfg: dict) -> bool:
    """Whether an instrument's values run against the outcome's direction (its effect is sign-flipped).

    Only when both directions are known: a blank ``higher_is_better`` in the row means "as the
    outcome", and an outcome whose ``higher_is_better`` is null (direction unknown, e.g. imported
    from Cochrane) flips nothing.
    """
    mine, theirs = row.get("higher_is_better"), outcome_cfg.get("higher_is_better", False)
    return mine is not None and theirs is not None and bool(mine) != bool(theirs)


def _low(conf) -> bool:
    return (conf or "").lower() == "low"


def _combine_side(arms: list[dict], dichotomous: bool) -> dict:
    if dichotomous:
        return {"n": sum(a["n"] for a in arms), "events": sum(a["events"] for a in arms)}
    n, m, s = es.combine_many([a["n"] for a in arms], [a["mean"] for a in arms], [a["sd"] for a in arms])
    return {"n": float(n), "mean": float(m), "sd": float(s)}


def _side_text(arms: list[dict], combined: dict, dichotomous: bool) -> str:
    if dichotomous:
        return f"{combined['events']}/{combined['n']}"
    return f"{combined['mean']:.2f} ({combined['sd']:.2f}), n={combined['n']:g}"


def _transform(a: dict, outcome_cfg: dict, measure: str) -> tuple[float, str | None, str | None]:
    """Scale factor and sign for an arm's instrument; returns (factor, note, refusal reason)."""
    factor, note = 1.0, None
    if measure == "MD":
        ref = outcome_cfg.get("reference_scale")
        smin, smax = a.get("scale_min"), a.get("scale_max")
        if ref is not None:
            if smin is None or smax is None:
                return 1.0, None, Reason(
                    f"MD needs scale_min/scale_max for instrument {a['instrument']} to rescale it to the "
                    f"outcome's reference scale {ref[0]:g}-{ref[1]:g}",
                    "scale_min",
                )
            if (smin, smax) != (ref[0], ref[1]):
                factor = (ref[1] - ref[0]) / (smax - smin)
                note = f"rescaled {a['instrument']} ({smin:g}-{smax:g}) to {ref[0]:g}-{ref[1]:g}"
    return factor, note, None


def _arm_contrast(sid, int_arms, cmp_arms, analysis, outcome_cfg):
    """Effect from arm-level data, or (None, reason)."""
    measure = analysis["measure"]
    dichotomous = measure in DICHOTOMOUS_MEASURES
    a0 = int_arms[0]
    notes = []
    factor = 1.0
    if dichotomous:
        ci, cc = _combine_side(int_arms, True), _combine_side(cmp_arms, True)
        fn = {"RR": es.log_risk_ratio, "OR": es.log_odds_ratio, "RD": es.risk_difference}[measure]
        out = fn([ci["events"]], [ci["n"]], [cc["events"]], [cc["n"]], drop00=True)
        yi, vi = float(out[0][0]), float(out[1][0])
        dropped, adjusted = bool(out[2][0]), bool(out[3][0])
        if dropped:
            return None, Reason("no events (or only events) in both arms: left out (metafor drop00=TRUE)", "events")
        if adjusted:
            notes.append("0.5 added to each cell (zero cell)")
    else:
        factor, note, refusal = _transform(a0, outcome_cfg, measure)
        if refusal:
            return None, refusal
        if note:
            notes.append(note)
        ci, cc = _combine_side(int_arms, False), _combine_side(cmp_arms, False)
        if measure == "MD":
            yi, vi = es.mean_difference([ci["mean"]], [ci["sd"]], [ci["n"]], [cc["mean"]], [cc["sd"]], [cc["n"]])
            yi, vi = float(yi[0]) * factor, float(vi[0]) * factor**2
        else:
            yi, vi = es.standardised_mean_difference(
                [ci["mean"]], [ci["sd"]], [ci["n"]], [cc["mean"]], [cc["sd"]], [cc["n"]]
            )
            yi, vi = float(yi[0]), float(vi[0])
        if opposite_direction(a0, outcome_cfg):
            yi = -yi
            notes.append(f"sign flipped: {a0['instrument']} has the opposite direction to the outcome")
    cmp_sd_ref = cmp_risk = None
    if dichotomous:
        cmp_risk = cc["events"] / cc["n"]
    else:
        ref = outcome_cfg.get("reference_scale")
        smin, smax = a0.get("scale_min"), a0.get("scale_max")
        if ref is not None and smin is not None and smax is not None:
            cmp_sd_ref = cc["sd"] * (ref[1] - ref[0]) / (smax - smin)
    if len(int_arms) > 1 or len(cmp_arms) > 1:
        notes.append(f"{len(int_arms)} intervention and {len(cmp_arms)} comparator arms combined (Handbook Table 6.5.a)")
    if not (math.isfinite(yi) and math.isfinite(vi) and vi > 0):
        return None, Reason("effect size not computable from these arms (zero variance)", "sd")
    sign = -1.0 if any(n.startswith("sign flipped") for n in notes) else 1.0
    factor_used = factor if not dichotomous and measure == "MD" else 1.0
    eff = StudyEffect(
        side_stats={"intervention": ci, "comparator": cc}, scale_factor=factor_used, sign=sign,
        study_id=sid, yi=yi, vi=vi, n_intervention=ci["n"], n_comparator=cc["n"],
        timepoint_weeks=a0["timepoint_weeks"], instrument=a0["instrument"], source="arms",
        derived=any(a["derived"] for a in int_arms + cmp_arms), comparator_sd_ref=cmp_sd_ref, comparator_risk=cmp_risk,
        low_confidence=any(_low(a.get("extraction_confidence")) for a in int_arms + cmp_arms),
        arms_text={"intervention": _side_text(int_arms, ci, dichotomous), "comparator": _side_text(cmp_arms, cc, dichotomous)},
        notes=notes, lines=[("outcomes", a["line"]) for a in int_arms + cmp_arms],
    )  # fmt: skip
    return eff, None


def _contrast_effect(row, analysis, outcome_cfg, level_z):
    measure = analysis["measure"]
    if analysis.get("method") in TABLE_METHODS:
        return None, f"{analysis['method']} pools 2x2 tables (events and n per arm): a reported contrast cannot enter"
    if row["measure"] != measure:
        return None, Reason(f"reported as {row['measure']}; the analysis pools {measure}", "measure")
    sign = 1.0
    if row["intervention"] in analysis["comparator"] and row["comparator"] in analysis["intervention"]:
        sign = -1.0
    est, lo, hi, se = row["estimate"], row.get("ci_low"), row.get("ci_high"), row.get("se")
    notes = []
    ratio = measure in RATIO_MEASURES
    if ratio:
        est = math.log(est)
        if se is None:
            lo, hi = math.log(lo), math.log(hi)
    if se is None:
        level = (row.get("ci_level") or 95.0) / 100.0
        se = (hi - lo) / (2 * float(ndtri(0.5 + level / 2)))
        notes.append("SE derived from the reported CI (normal quantile)")
    factor = 1.0
    if measure == "MD" and outcome_cfg.get("reference_scale") is not None:
        ref = outcome_cfg["reference_scale"]
        smin, smax = row.get("scale_min"), row.get("scale_max")
        if smin is None or smax is None:
            return None, Reason(
                f"MD needs scale_min/scale_max of the contrast's instrument to rescale it to the outcome's "
                f"reference scale {ref[0]:g}-{ref[1]:g}",
                "scale_min",
            )
        if (smin, smax) != (ref[0], ref[1]):
            factor = (ref[1] - ref[0]) / (smax - smin)
            notes.append(f"rescaled ({smin:g}-{smax:g}) to {ref[0]:g}-{ref[1]:g}")
    if sign < 0:
        notes.append("contrast reported in the opposite direction: negated")
    yi, vi = sign * est * factor, (se * factor) ** 2
    return StudyEffect(
        scale_factor=factor, sign=sign,
        study_id=row["study_id"], yi=yi, vi=vi, n_intervention=row.get("n_intervention" if sign > 0 else "n_comparator"),
        n_comparator=row.get("n_comparator" if sign > 0 else "n_intervention"), timepoint_weeks=row["timepoint_weeks"],
        instrument=row.get("instrument") or "", source="contrast", derived=True,
        low_confidence=_low(row.get("extraction_confidence")), arms_text={}, notes=notes,
        lines=[("contrasts", row["_line"])],
    ), None  # fmt: skip


def build_study_effects(analysis: dict, arms: list[dict], contrasts: list[dict], studies: dict[str, dict], config: dict):
    """Build the study contrasts of one analysis.

    Parameters
    ----------
    analysis : dict
        Settings of the analysis with defaults filled (see :func:`tpsynth.config.analysis_settings`).
    arms : list of dict
        Harmonised arms (:func:`tpsynth.harmonise.harmonise`).
    contrasts : list of dict
        Validated rows of contrasts.csv without ``unusable_reason``.
    studies : dict
        study_id -> validated studies.csv row.

    Returns
    -------
    effects : list of StudyEffect
        One per included study, in studies.csv order.
    flow : list of dict
        ``{"sheet", "line", "state": "used"|"not_used", "reason"}`` for every arm/contrast row of
        the analysis's outcome that is on one of its sides.
    """
    outcome_cfg = config["outcomes"][analysis["outcome"]]
    lo_w, hi_w = analysis["timepoint_weeks"]
    side_codes = {"i": set(analysis["intervention"]), "c": set(analysis["comparator"])}
    dichotomous = analysis["measure"] in DICHOTOMOUS_MEASURES
    flow: list[dict] = []

    def note(sheet, line, state, reason=""):
        flow.append({"sheet": sheet, "line": line, "state": state, "reason": reason})

    def side(code):
        return "i" if code in side_codes["i"] else "c" if code in side_codes["c"] else None

    cand_arms: dict[str, list[dict]] = {}
    for a in arms:
        if a["outcome"] != analysis["outcome"] or side(a["intervention"]) is None:
            continue
        if not lo_w <= a["timepoint_weeks"] <= hi_w:
            note("outcomes", a["line"], "not_used", f"timepoint {a['timepoint_weeks']:g} weeks outside {lo_w:g}-{hi_w:g}")
            continue
        if dichotomous != (a["events"] is not None):
            kind = "events" if a["events"] is not None else "means"
            note("outcomes", a["line"], "not_used", Reason(
                f"row holds {kind}; the analysis pools {analysis['measure']}", "events" if kind == "events" else "mean"
            ))
            continue
        cand_arms.setdefault(a["study_id"], []).append(a)
    cand_con: dict[str, list[dict]] = {}
    for r in contrasts:
        if r["outcome"] != analysis["outcome"]:
            continue
        sides = (side(r["intervention"]), side(r["comparator"]))
        if sides not in (("i", "c"), ("c", "i")):
            continue
        if not lo_w <= r["timepoint_weeks"] <= hi_w:
            note("contrasts", r["_line"], "not_used", f"timepoint {r['timepoint_weeks']:g} weeks outside {lo_w:g}-{hi_w:g}")
            continue
        cand_con.setdefault(r["study_id"], []).append(r)

    effects: list[StudyEffect] = []
    order = [s for s in studies if s in cand_arms or s in cand_con]
    for sid in order:
        study = studies[sid]
        rows = cand_arms.get(sid, [])
        cons = cand_con.get(sid, [])
        if analysis.get("randomised_only", True) and study.get("randomised") is False:
            nonrand = Reason("non-randomised study; the analysis is randomised-only", "study_id")
            for a in rows:
                note("outcomes", a["line"], "not_used", nonrand)
            for r in cons:
                note("contrasts", r["_line"], "not_used", nonrand)
            continue
        outside = excluded_reason(study, analysis.get("where"))
        if outside:
            for a in rows:
                note("outcomes", a["line"], "not_used", outside)
            for r in cons:
                note("contrasts", r["_line"], "not_used", outside)
            continue
        # candidate (timepoint, instrument, value_type) sets with both sides
        options = []
        for idx, a in enumerate(rows):
            key = (a["timepoint_weeks"], a["instrument"], a["value_type"])
            if key not in [o[0] for o in options]:
                sel = [b for b in rows if (b["timepoint_weeks"], b["instrument"], b["value_type"]) == key]
                if {side(b["intervention"]) for b in sel} == {"i", "c"}:
                    options.append((key, idx, sel))
        times = sorted({o[0][0] for o in options} | {r["timepoint_weeks"] for r in cons})
        chosen, reason_all = None, "only one side of the comparison has data"
        refused: dict[tuple[str, int], str] = {}  # rows of an option the analysis could not use, and why
        for t in reversed(times) if analysis.get("timepoint_rule", "latest") == "latest" else times:
            at_t = [o for o in options if o[0][0] == t]
            at_t.sort(key=lambda o: (o[0][2] != "final", o[1]))  # final before change, then sheet order
            for _key, _idx, sel in at_t:
                int_arms = [b for b in sel if side(b["intervention"]) == "i"]
                cmp_arms = [b for b in sel if side(b["intervention"]) == "c"]
                eff, why = _arm_contrast(sid, int_arms, cmp_arms, analysis, outcome_cfg)
                if eff:
                    chosen = eff
                    break
                reason_all = why
                for b in sel:  # a missing scale is the problem of the rows without one
                    own = getattr(why, "column", None) != "scale_min" or b.get("scale_min") is None or b.get("scale_max") is None
                    refused[("outcomes", b["line"])] = why if own else f"another arm of this comparison: {why}"
            if chosen is None:
                for r in [r for r in cons if r["timepoint_weeks"] == t]:
                    eff, why = _contrast_effect(r, analysis, outcome_cfg, None)
                    if eff:
                        chosen = eff
                        break
                    reason_all = why
                    refused[("contrasts", r["_line"])] = why
            if chosen is not None:
                break
        used = set(chosen.lines) if chosen else set()
        for a in rows:
            if ("outcomes", a["line"]) in used:
                note("outcomes", a["line"], "used")
            elif ("outcomes", a["line"]) in refused:
                note("outcomes", a["line"], "not_used", refused[("outcomes", a["line"])])
            elif chosen is None:
                note("outcomes", a["line"], "not_used", reason_all)
            elif a["timepoint_weeks"] != chosen.timepoint_weeks:
                note("outcomes", a["line"], "not_used", f"another timepoint ({chosen.timepoint_weeks:g} weeks) used for this study")
            else:
                note("outcomes", a["line"], "not_used", f"another instrument or value type ({chosen.instrument}) used for this study")
        for r in cons:
            if ("contrasts", r["_line"]) in used:
                note("contrasts", r["_line"], "used")
            elif ("contrasts", r["_line"]) in refused:
                note("contrasts", r["_line"], "not_used", refused[("contrasts", r["_line"])])
            elif chosen is None:
                note("contrasts", r["_line"], "not_used", reason_all)
            else:
                note("contrasts", r["_line"], "not_used", "arm-level data or another timepoint used for this study")
        if chosen is not None:
            effects.append(chosen)
    return effects, flow
