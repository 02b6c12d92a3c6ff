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

import gc
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from operator import is_not, itemgetter

import numpy as np
from scipy.special import ndtri

from . import effect_sizes as es
from .columns import Table
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


def _choose(sid, rows, cons, analysis, outcome_cfg, side):
    """One study's contrast, chosen row by row (the rules of the module docstring): every option is tried
    in turn until one gives an effect. Returns (StudyEffect or None, its flow entries: rows, then contrasts).

    :func:`build_study_effects` computes most studies' first choice for all studies at once; this is the
    path of a study whose first choice is refused or that has reported contrasts."""
    flow: list[dict] = []

    def note(sheet, line, state, reason=""):
        flow.append({"sheet": sheet, "line": line, "state": state, "reason": reason})

    # candidate (timepoint, instrument, value_type) sets with both sides
    options = []
    for idx, a in enumerate(rows):
        key = (a["timepoint_weeks"], a["instrument"], a["value_type"])
        if key not in [o[0] for o in options]:
            sel = [b for b in rows if (b["timepoint_weeks"], b["instrument"], b["value_type"]) == key]
            if {side(b["intervention"]) for b in sel} == {"i", "c"}:
                options.append((key, idx, sel))
    times = sorted({o[0][0] for o in options} | {r["timepoint_weeks"] for r in cons})
    chosen, reason_all = None, ONE_SIDE
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
    return chosen, flow


ONE_SIDE = "only one side of the comparison has data"


def arms_table(arms: Table | list[dict]) -> Table:
    """Harmonised arms as a :class:`~tpsynth.columns.Table` (``arms`` itself when it is one): the columns of
    :data:`tpsynth.harmonise.ARM_COLUMNS`, then any other key of the first row; a key a row lacks is None."""
    if isinstance(arms, Table):
        return arms
    from .harmonise import ARM_COLUMNS

    return Table.from_rows(arms, list(dict.fromkeys([*ARM_COLUMNS, *(arms[0] if arms else ())])))


def _picker(idx: np.ndarray, length: int):
    """A function giving ``[column[i] for i in idx]`` of a column of ``length`` values, at C speed (the
    column itself when ``idx`` is every row in order)."""
    if len(idx) == length and np.array_equal(idx, np.arange(length)):
        return lambda column: column
    if len(idx) < 2:
        return lambda column: [column[i] for i in idx.tolist()]
    return itemgetter(*idx.tolist())


def _codes(values) -> np.ndarray:
    """Integer codes of ``values``: equal values (as dict keys) get equal codes."""
    lut = {v: i for i, v in enumerate(set(values))}
    return np.fromiter(map(lut.__getitem__, values), np.int64, len(values))


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal keys begins, for rows sorted by the keys."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(new)


def _first_choices(study, side, t, vcode_final, vcode, icode, tcode, eligible, latest):
    """Each study's first option (the one :func:`_choose` tries first), for rows sorted by study.

    An option is a (timepoint, instrument, value type) of a study with rows on both sides. The first is
    at the study's latest (``latest``) or earliest such timepoint, final values before change scores, then
    the option whose first row comes first in the sheet. Returns (option of each row, first option's
    row positions per study: ``choice`` maps the study code to the option id, -1 for none)."""
    n = len(study)
    perm = np.lexsort((vcode, icode, tcode, study))  # stable: within an option, sheet order
    starts = _run_starts(study[perm], tcode[perm], icode[perm], vcode[perm])
    gid = np.empty(n, dtype=np.int64)
    run = np.zeros(n, dtype=np.int64)
    run[starts] = 1
    gid[perm] = np.cumsum(run) - 1
    first = perm[starts]  # the option's first row (rows are in sheet order within a study)
    has_i = np.logical_or.reduceat(side[perm] == 0, starts) if n else np.zeros(0, dtype=bool)
    has_c = np.logical_or.reduceat(side[perm] == 1, starts) if n else np.zeros(0, dtype=bool)
    ok = np.flatnonzero(has_i & has_c & eligible[first])
    g_study, g_t = study[first[ok]], t[first[ok]]
    order = np.lexsort((first[ok], vcode[first[ok]] != vcode_final, -g_t if latest else g_t, g_study))
    best = ok[order[_run_starts(g_study[order])]] if len(ok) else ok
    return gid, study[first[best]], best


def build_study_effects(analysis: dict, arms: Table, contrasts: list[dict], studies: dict[str, dict], config: dict):
    """Build the study contrasts of one analysis.

    Every study's first choice (see the module docstring) is computed for all studies at once: one call
    of the :mod:`tpsynth.effect_sizes` function per analysis (elementwise, so each study's value is the
    one a call for that study alone gives), and multi-arm sides combined with
    :func:`tpsynth.effect_sizes.combine_many` per number of arms. A study whose first choice is refused
    (zero variance, no events in both arms, an unknown scale) or that has reported contrasts goes
    through the per-study path (:func:`_choose`), which tries its options in turn.

    Parameters
    ----------
    analysis : dict
        Settings of the analysis with defaults filled (see :func:`tpsynth.config.analysis_settings`).
    arms : Table
        Harmonised arms (:func:`tpsynth.harmonise.harmonise`), stored by columns.
    contrasts : list of dict
        Validated rows of contrasts.csv without ``unusable_reason``.
    studies : dict
        study_id -> validated studies.csv row.
    config : dict
        The validated configuration (its ``outcomes``).

    Returns
    -------
    effects : list of StudyEffect
        One per included study, in studies.csv order.
    flow : list of dict
        ``{"sheet", "line", "state": "used"|"not_used", "reason"}`` for every arm/contrast row of
        the analysis's outcome that is on one of its sides: first the rows left out by the timepoint
        window or their kind of data (sheet order, arms then contrasts), then study by study.

    Python's cyclic garbage collector is paused while they are built (:func:`_collector_paused`): the
    ~2 objects made per arm row hold no reference cycles, and at 100,000 studies the collector's passes
    over them took as long as building them.
    """
    with _collector_paused():
        return _build(analysis, arms, contrasts, studies, config)


def data_exclusions(analysis: dict, arms: Table, contrasts: list[dict], studies: dict[str, dict], config: dict):
    """The rows :func:`build_study_effects` leaves out because of their data: the entries of its flow
    whose reason names the sheet column to fix (:class:`tpsynth.validate.Reason` ``column``), in the same
    order, without building the effects or the other entries (what ``python -m tpsynth validate`` warns
    about: :func:`tpsynth.validate.exclusion_warnings`). Same parameters as :func:`build_study_effects`."""
    with _collector_paused():
        _, flow = _build(analysis, arms, contrasts, studies, config, problems_only=True)
    return [f for f in flow if f is not None and f["state"] == "not_used" and getattr(f["reason"], "column", None)]


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector inside the block (as it was before, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(analysis, arms, contrasts, studies, config, problems_only=False):
    """build_study_effects; with ``problems_only``, the flow entries of the rows it takes or leaves out for
    the analysis's own rules (not data problems) may be None and the effects are not built."""
    if not len(arms):  # e.g. a slice of contrasts only: its table of arms has no columns
        arms = arms_table([])
    outcome = analysis["outcome"]
    outcome_cfg = config["outcomes"][outcome]
    lo_w, hi_w = analysis["timepoint_weeks"]
    measure = analysis["measure"]
    dichotomous = measure in DICHOTOMOUS_MEASURES
    side_codes = {"i": set(analysis["intervention"]), "c": set(analysis["comparator"])}
    side_of = {c: 1 for c in side_codes["c"]} | {c: 0 for c in side_codes["i"]}
    flow: list[dict] = []

    def side(code):
        return "i" if code in side_codes["i"] else "c" if code in side_codes["c"] else None

    # arms of the outcome on one side of the analysis, in sheet order
    on_outcome = np.flatnonzero(np.array(arms["outcome"], dtype=object) == outcome) if len(arms) else np.zeros(0, int)
    codes = _picker(on_outcome, len(arms))(arms["intervention"])
    lut = {c: side_of.get(c, -1) for c in set(codes)}
    sides = np.fromiter(map(lut.__getitem__, codes), np.int64, len(codes))
    idx = on_outcome[sides >= 0]
    sides = sides[sides >= 0]
    pick = _picker(idx, len(arms))
    lines = arms["line"]
    tw_obj = pick(arms["timepoint_weeks"])
    tw = np.array(tw_obj, dtype=float)
    inside = (lo_w <= tw) & (tw <= hi_w)
    events = pick(arms["events"])
    fits = np.fromiter(map(is_not, events, repeat(None)), bool, len(events)) == dichotomous
    window: dict = {}
    kind = "means" if dichotomous else "events"
    misfit = Reason(f"row holds {kind}; the analysis pools {measure}", "events" if kind == "events" else "mean")
    for j in np.flatnonzero(~(inside & fits)).tolist():
        if inside[j]:
            flow.append({"sheet": "outcomes", "line": lines[idx[j]], "state": "not_used", "reason": misfit})
            continue
        t = tw_obj[j]
        if t not in window:
            window[t] = f"timepoint {t:g} weeks outside {lo_w:g}-{hi_w:g}"
        flow.append({"sheet": "outcomes", "line": lines[idx[j]], "state": "not_used", "reason": window[t]})
    cand_con: dict[str, list[dict]] = {}
    for r in contrasts:
        if r["outcome"] != outcome:
            continue
        if (side(r["intervention"]), side(r["comparator"])) not in (("i", "c"), ("c", "i")):
            continue
        if not lo_w <= r["timepoint_weeks"] <= hi_w:
            flow.append({"sheet": "contrasts", "line": r["_line"], "state": "not_used",
                         "reason": f"timepoint {r['timepoint_weeks']:g} weeks outside {lo_w:g}-{hi_w:g}"})  # fmt: skip
            continue
        cand_con.setdefault(r["study_id"], []).append(r)

    # the rows kept, study by study (studies.csv order), sheet order within a study
    keep = np.flatnonzero(inside & fits)
    position = {sid: p for p, sid in enumerate(studies)}
    sids = _picker(idx[keep], len(arms))(arms["study_id"])
    if position.keys() >= set(sids):
        spos = np.fromiter(map(position.__getitem__, sids), np.int64, len(sids))
    else:
        spos = np.array([position.get(s, -1) for s in sids], dtype=np.int64)
    keep = keep[spos >= 0]
    spos = spos[spos >= 0]
    o = np.argsort(spos, kind="stable")
    keep, spos = keep[o], spos[o]
    rows, sides, tw, tw_obj = idx[keep], sides[keep], tw[keep], [tw_obj[j] for j in keep.tolist()]
    study_pos = np.union1d(spos, np.array([position[s] for s in cand_con if s in position], dtype=np.int64))
    row_u = np.searchsorted(study_pos, spos)  # study of each row, numbered 0..U-1 in studies.csv order
    first_row = np.searchsorted(spos, study_pos, "left")
    end_row = np.searchsorted(spos, study_pos, "right")
    study_ids = list(studies)
    study_rows = list(studies.values())
    n_studies = len(study_pos)

    # studies left out whole, and studies that take the per-study path (reported contrasts)
    randomised_only = analysis.get("randomised_only", True)
    nonrand = Reason("non-randomised study; the analysis is randomised-only", "study_id")
    where = analysis.get("where")
    outside = [None] * n_studies
    cons_of = [None] * n_studies
    for u, p in enumerate(study_pos.tolist()):
        st = study_rows[p]
        if randomised_only and st.get("randomised") is False:
            outside[u] = nonrand
        elif where:
            outside[u] = excluded_reason(st, where)
        cons_of[u] = cand_con.get(study_ids[p])
    per_study = [outside[u] is None and cons_of[u] is not None for u in range(n_studies)]
    eligible = np.array([outside[u] is None and cons_of[u] is None for u in range(n_studies)], dtype=bool)

    # first choices, their arms: intervention rows then comparator rows, sheet order within a side
    pick = _picker(rows, len(arms))
    vcode = _codes(pick(arms["value_type"]))
    final = np.flatnonzero(np.array(pick(arms["value_type"]), dtype=object) == "final")
    tcode = np.unique(tw, return_inverse=True)[1].reshape(-1) if len(tw) else np.zeros(0, np.int64)
    gid, chosen_u, best = _first_choices(
        row_u, sides, tw, vcode[final[0]] if len(final) else -1, vcode, _codes(pick(arms["instrument"])), tcode, eligible[row_u],
        analysis.get("timepoint_rule", "latest") == "latest",
    )
    choice = np.full(n_studies, -1, dtype=np.int64)
    choice[chosen_u] = best
    used = choice[row_u] == gid
    ur = np.flatnonzero(used)
    ur = ur[np.lexsort((ur, sides[ur], row_u[ur]))]
    n_int = np.bincount(row_u[ur][sides[ur] == 0], minlength=n_studies)[chosen_u].astype(np.int64)
    n_cmp = np.bincount(row_u[ur][sides[ur] == 1], minlength=n_studies)[chosen_u].astype(np.int64)
    off = np.concatenate([[0], np.cumsum(n_int + n_cmp)[:-1]]).astype(np.int64)
    chosen_rows = rows[ur]
    effects_of: dict[int, StudyEffect] = {}
    failed = _first_effects(
        analysis, outcome_cfg, arms, chosen_rows, chosen_u, off, n_int, n_cmp,
        [study_ids[p] for p in study_pos[chosen_u].tolist()], None if problems_only else effects_of,
    )  # fmt: skip
    for u in failed:
        per_study[u] = True
    if problems_only:  # only the rows of studies left out for a data problem (a non-randomised study)
        entries = [None] * len(rows)
        line_of = pick(lines)
        for u, why in enumerate(outside):
            if getattr(why, "column", None):
                for j in range(first_row[u], end_row[u]):
                    entries[j] = {"sheet": "outcomes", "line": line_of[j], "state": "not_used", "reason": why}
    else:
        entries = _fast_flow(effects_of, outside, row_u, tw, used, pick(lines), n_studies)

    # assemble, study by study: the per-study path where needed
    done = 0
    for u in sorted({u for u in range(n_studies) if cons_of[u] is not None} | set(failed)):
        flow.extend(entries[done : first_row[u]])
        cons = cons_of[u] or []
        if per_study[u]:
            study_arms = [arms.row(i) for i in rows[first_row[u] : end_row[u]].tolist()]
            eff, notes = _choose(study_ids[study_pos[u]], study_arms, cons, analysis, outcome_cfg, side)
            if eff is not None:
                effects_of[u] = eff
            flow.extend(notes)
        else:  # left out whole
            flow.extend(entries[first_row[u] : end_row[u]])
            flow.extend({"sheet": "contrasts", "line": r["_line"], "state": "not_used", "reason": outside[u]} for r in cons)
        done = end_row[u]
    flow.extend(entries[done:])
    return [effects_of[u] for u in sorted(effects_of)], flow



def _fast_flow(effects_of, outside, row_u, tw, used, lines, n_studies) -> list[dict]:
    """Flow entries of the rows (``row_u``: their study; ``tw``: timepoint; ``used``: in the study's first
    choice; ``lines``: sheet lines) of studies not on the per-study path, as :func:`_choose` words them."""
    t_of = [None] * n_studies
    for u, e in effects_of.items():
        t_of[u] = e.timepoint_weeks
    other_t = np.zeros(len(row_u), dtype=bool)
    has = np.array([t is not None for t in t_of], dtype=bool)
    if has.any():
        t_chosen = np.array([t if t is not None else np.nan for t in t_of], dtype=float)
        other_t = has[row_u] & (tw != t_chosen[row_u])
    another_t: dict = {}
    another_i: dict = {}
    reason_t = np.empty(n_studies, dtype=object)
    reason_i = np.empty(n_studies, dtype=object)
    for u, e in effects_of.items():
        t, ins = e.timepoint_weeks, e.instrument
        if t not in another_t:
            another_t[t] = f"another timepoint ({t:g} weeks) used for this study"
        if ins not in another_i:
            another_i[ins] = f"another instrument or value type ({ins}) used for this study"
        reason_t[u], reason_i[u] = another_t[t], another_i[ins]
    study_reason = np.array([r if r is not None else ONE_SIDE for r in outside], dtype=object)
    reasons = np.where(other_t, reason_t[row_u], reason_i[row_u])
    chosen_mask = has[row_u]
    reasons[~chosen_mask] = study_reason[row_u[~chosen_mask]]
    states = np.full(len(row_u), "not_used", dtype=object)
    used &= chosen_mask
    states[used] = "used"
    reasons[used] = ""
    return [
        {"sheet": "outcomes", "line": line, "state": state, "reason": reason}
        for line, state, reason in zip(lines, states.tolist(), reasons.tolist(), strict=True)
    ]

def _first_effects(analysis, outcome_cfg, arms, rows, study_u, off, n_int, n_cmp, sids, out) -> list[int]:
    """The effects of the studies' first choices, into ``out`` (study number -> StudyEffect; None: only
    which are refused).

    ``rows``: the arms of every first choice (study by study, intervention arms then comparator arms);
    study ``study_u[c]`` has ``n_int[c]`` intervention and ``n_cmp[c]`` comparator arms from ``off[c]``.
    Each value is computed as :func:`_arm_contrast` computes it for the study alone. Returns the studies
    whose first choice is refused (for the per-study path)."""
    measure = analysis["measure"]
    dichotomous = measure in DICHOTOMOUS_MEASURES
    count = len(study_u)
    if count == 0:
        return []
    pick, pick0 = _picker(rows, len(arms)), _picker(rows[off], len(arms))
    n, line, derived, conf = (pick(arms.get(name)) for name in ("n", "line", "derived", "extraction_confidence"))
    t0, ins0, smin0, smax0, hib0 = (
        pick0(arms.get(name)) for name in ("timepoint_weeks", "instrument", "scale_min", "scale_max", "higher_is_better")
    )
    starts = (off, off + n_int)
    counts = (n_int, n_cmp)
    refused = np.zeros(count, dtype=bool)
    factor, rescaled, flip = [1.0] * count, [None] * count, [False] * count
    yi = np.full(count, np.nan)
    vi = np.full(count, np.nan)
    if dichotomous:
        events = pick(arms["events"])
        sums = [
            [{"n": sum(n[a : a + k]), "events": sum(events[a : a + k])} for a, k in zip(s.tolist(), m.tolist(), strict=True)]
            for s, m in zip(starts, counts, strict=True)
        ]
        fn = {"RR": es.log_risk_ratio, "OR": es.log_odds_ratio, "RD": es.risk_difference}[measure]
        y, v, dropped, adjusted = fn([c["events"] for c in sums[0]], [c["n"] for c in sums[0]],
                                     [c["events"] for c in sums[1]], [c["n"] for c in sums[1]], drop00=True)  # fmt: skip
        yi[:], vi[:] = y, v
        refused |= dropped
    else:
        transforms: dict = {}
        for c in range(count):
            key = (ins0[c], smin0[c], smax0[c], type(smin0[c]), type(smax0[c]))
            if key not in transforms:
                transforms[key] = _transform({"instrument": ins0[c], "scale_min": smin0[c], "scale_max": smax0[c]}, outcome_cfg, measure)
            factor[c], rescaled[c], refusal = transforms[key]
            refused[c] = refusal is not None
        directions: dict = {}
        for c, h in enumerate(hib0):
            if h not in directions:
                directions[h] = opposite_direction({"higher_is_better": h}, outcome_cfg)
            flip[c] = directions[h]
        nf, mf, sf = (np.array(pick(arms[name]), dtype=float) for name in ("n", "mean", "sd"))
        combined = []  # per side: n, mean, sd of each study (NaN where refused)
        for s, m in zip(starts, counts, strict=True):
            got = np.full((3, count), np.nan)
            for k in np.unique(m[~refused]).tolist():
                which = np.flatnonzero((m == k) & ~refused)
                at = s[which][None, :] + np.arange(k)[:, None]
                got[:, which] = es.combine_many(nf[at], mf[at], sf[at])
            combined.append(got)
        ok = np.flatnonzero(~refused)
        (ni, mi, si), (nc, mc, sc) = (side[:, ok] for side in combined)
        fn = es.mean_difference if measure == "MD" else es.standardised_mean_difference
        yi[ok], vi[ok] = fn(mi, si, ni, mc, sc, nc)
        sums = [[{"n": float(x), "mean": float(y), "sd": float(z)} for x, y, z in side.T.tolist()] for side in combined]
    ref = outcome_cfg.get("reference_scale")
    failed = []
    yl, vl = yi.tolist(), vi.tolist()
    low = {v: _low(v) for v in set(conf)}
    any_derived = np.logical_or.reduceat(np.fromiter(map(bool, derived), bool, len(derived)), off).tolist()
    any_low = np.logical_or.reduceat(np.fromiter(map(low.__getitem__, conf), bool, len(conf)), off).tolist()
    used = [("outcomes", x) for x in line]
    n_int, n_cmp, off = n_int.tolist(), n_cmp.tolist(), off.tolist()
    for c, u in enumerate(study_u.tolist()):
        if refused[c]:
            failed.append(u)
            continue
        y, v = yl[c], vl[c]
        if measure == "MD":
            y, v = y * factor[c], v * factor[c] ** 2
        if flip[c] and not dichotomous:
            y = -y
        if not (math.isfinite(y) and math.isfinite(v) and v > 0):
            failed.append(u)
            continue
        if out is None:
            continue
        a, k = off[c], n_int[c] + n_cmp[c]
        ci, cc = sums[0][c], sums[1][c]
        notes = []
        cmp_sd_ref = cmp_risk = None
        if dichotomous:
            if adjusted[c]:
                notes.append("0.5 added to each cell (zero cell)")
            cmp_risk = cc["events"] / cc["n"]
        else:
            if rescaled[c]:
                notes.append(rescaled[c])
            if flip[c]:
                notes.append(f"sign flipped: {ins0[c]} has the opposite direction to the outcome")
            if ref is not None and smin0[c] is not None and smax0[c] is not None:
                cmp_sd_ref = cc["sd"] * (ref[1] - ref[0]) / (smax0[c] - smin0[c])
        if n_int[c] > 1 or n_cmp[c] > 1:
            notes.append(f"{n_int[c]} intervention and {n_cmp[c]} comparator arms combined (Handbook Table 6.5.a)")
        out[u] = StudyEffect(
            side_stats={"intervention": ci, "comparator": cc}, scale_factor=factor[c] if measure == "MD" else 1.0,
            sign=-1.0 if flip[c] and not dichotomous else 1.0, study_id=sids[c], yi=y, vi=v, n_intervention=ci["n"],
            n_comparator=cc["n"], timepoint_weeks=t0[c], instrument=ins0[c], source="arms", derived=any_derived[c],
            comparator_sd_ref=cmp_sd_ref, comparator_risk=cmp_risk, low_confidence=any_low[c],
            arms_text={"intervention": _side_text(None, ci, dichotomous), "comparator": _side_text(None, cc, dichotomous)},
            notes=notes, lines=used[a : a + k],
        )  # fmt: skip
    return failed
