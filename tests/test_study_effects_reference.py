"""build_study_effects (all studies' first choices at once) gives exactly what the per-study loop gave,
and data_exclusions exactly its flow entries that name a column.

``reference_build_study_effects`` below is the implementation of ``build_study_effects`` before it took a
Table and computed every study's first choice in one call per measure (tpsynth main 1dedf39), kept here
verbatim as the reference: a loop over studies calling ``_arm_contrast``/``_contrast_effect`` for one study
at a time. Every field of every StudyEffect (yi and vi with ==, types included: an ``n`` of 20 is not
20.0) and every flow entry (order, state, reason text, its class and the Reason's column) must be equal,
on the fixtures and on random workspaces built to hit every rule: multi-arm sides, several instruments,
final and change values, timepoints inside and outside the window (int and float), rows of the wrong kind,
MD rescaling and unknown scales, direction flips, zero cells, double zeros, zero variance, reported
contrasts (reversed, ratio, CI or SE, other measure), non-randomised studies, ``where:``, studies on one
side only, codes of no side, studies missing from studies.csv, both timepoint rules.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path

import pytest
import yaml

from tpsynth.columns import Table
from tpsynth.config import analysis_settings, validate_config
from tpsynth.harmonise import harmonise
from tpsynth.measures import DICHOTOMOUS_MEASURES
from tpsynth.selection import excluded_reason
from tpsynth.study_effects import (
    _arm_contrast,
    _contrast_effect,
    arms_table,
    build_study_effects,
    data_exclusions,
)
from tpsynth.validate import Reason, validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
BCG = Path(__file__).parent / "fixtures" / "bcg"


def reference_build_study_effects(analysis, arms, contrasts, studies, config):
    """build_study_effects of tpsynth main 1dedf39 (arms: list of dicts), verbatim."""
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

    effects = []
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
        options = []
        for idx, a in enumerate(rows):
            key = (a["timepoint_weeks"], a["instrument"], a["value_type"])
            if key not in [o[0] for o in options]:
                sel = [b for b in rows if (b["timepoint_weeks"], b["instrument"], b["value_type"]) == key]
                if {side(b["intervention"]) for b in sel} == {"i", "c"}:
                    options.append((key, idx, sel))
        times = sorted({o[0][0] for o in options} | {r["timepoint_weeks"] for r in cons})
        chosen, reason_all = None, "only one side of the comparison has data"
        refused = {}
        for t in reversed(times) if analysis.get("timepoint_rule", "latest") == "latest" else times:
            at_t = [o for o in options if o[0][0] == t]
            at_t.sort(key=lambda o: (o[0][2] != "final", o[1]))
            for _key, _idx, sel in at_t:
                int_arms = [b for b in sel if side(b["intervention"]) == "i"]
                cmp_arms = [b for b in sel if side(b["intervention"]) == "c"]
                eff, why = _arm_contrast(sid, int_arms, cmp_arms, analysis, outcome_cfg)
                if eff:
                    chosen = eff
                    break
                reason_all = why
                for b in sel:
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


def typed(value):
    """``value`` with the type of every leaf, so that 20 and 20.0 (or True and 1) differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [type(value).__name__, [typed(v) for v in value]]
    return (type(value).__name__, value)


def assert_same(analysis, arms, contrasts, studies, config):
    want_eff, want_flow = reference_build_study_effects(analysis, arms, contrasts, studies, config)
    got_eff, got_flow = build_study_effects(analysis, arms_table(arms), contrasts, studies, config)
    assert [e.study_id for e in got_eff] == [e.study_id for e in want_eff]
    for got, want in zip(got_eff, want_eff, strict=True):
        assert type(got) is type(want)
        for f in dataclasses.fields(want):
            g, w = getattr(got, f.name), getattr(want, f.name)
            assert typed(g) == typed(w), (want.study_id, f.name, g, w)
        assert got.yi == want.yi and got.vi == want.vi  # exact, not approximate

    def entries(flow):
        return [(f["sheet"], f["line"], f["state"], str(f["reason"]), type(f["reason"]).__name__,
                 getattr(f["reason"], "column", None), list(f)) for f in flow]  # fmt: skip

    assert entries(got_flow) == entries(want_flow)
    problems = [f for f in want_flow if f["state"] == "not_used" and getattr(f["reason"], "column", None)]
    assert entries(data_exclusions(analysis, arms_table(arms), contrasts, studies, config)) == entries(problems)
    return want_eff, want_flow


def _workspace(root):
    config = validate_config(yaml.safe_load((root / "config/config.yaml").read_text()))
    raw = root / "data/raw"
    contrasts = raw / "contrasts.csv"
    sheets, problems = validate_sheets(
        str(raw / "studies.csv"), str(raw / "outcomes.csv"), str(contrasts) if contrasts.exists() else None, config
    )
    assert problems == []
    return config, sheets, harmonise(sheets)[0].rows()


FIXTURE_VARIANTS = [
    {},
    {"timepoint_rule": "earliest"},
    {"randomised_only": False},
    {"timepoint_weeks": [0, 1]},
    {"timepoint_weeks": [2, 8]},
    {"where": {"region": ["lumbar", "gluteal"]}},
    {"where": {"region": "neck"}, "randomised_only": False},
]


@pytest.mark.parametrize("variant", FIXTURE_VARIANTS, ids=repr)
@pytest.mark.parametrize("measure", [None, "MD", "SMD", "RR", "OR", "RD"])
def test_minimal_fixture_every_analysis(variant, measure):
    config, sheets, arms = _workspace(FIXTURE)
    studies = {s["study_id"]: s for s in sheets.studies}
    contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    checked = 0
    for aid in config["analyses"]:
        cfg = copy.deepcopy(config)
        a = analysis_settings(cfg, aid)
        if measure is not None:
            if (measure in DICHOTOMOUS_MEASURES) != (a["measure"] in DICHOTOMOUS_MEASURES):
                continue
            a["measure"] = measure
        a.update(copy.deepcopy(variant))
        eff, flow = assert_same(a, arms, contrasts, studies, cfg)
        checked += len(eff) + len(flow)
    assert checked > 0


@pytest.mark.parametrize("method", ["REML", "MH"])
def test_minimal_fixture_table_methods_refuse_contrasts(method):
    config, sheets, arms = _workspace(FIXTURE)
    a = analysis_settings(config, "resp_rr")
    a["method"] = method
    contrasts = [dict(r, unusable_reason=None, estimate=1.8, ci_low=1.1, ci_high=2.9) for r in sheets.contrasts]
    assert_same(a, arms, contrasts, {s["study_id"]: s for s in sheets.studies}, config)


def test_bcg_fixture_every_analysis():
    config, sheets, arms = _workspace(BCG)
    studies = {s["study_id"]: s for s in sheets.studies}
    contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    for aid in config["analyses"]:
        for measure in ("RR", "OR", "RD"):
            a = analysis_settings(config, aid)
            a["measure"] = measure
            eff, _ = assert_same(a, arms, contrasts, studies, config)
            assert len(eff) >= 6


CONFIG = {
    "outcomes": {
        "pain": {"type": "continuous", "higher_is_better": False, "reference_scale": [0, 10]},
        "pain_noref": {"type": "continuous", "higher_is_better": None},
        "resp": {"type": "dichotomous", "higher_is_better": True},
    },
}
INSTRUMENTS = [("VAS", 0, 100), ("NPRS", 0, 10), ("NPRS", 0.0, 10.0), ("PPT", None, None), ("ODI", 0, 50)]


def random_workspace(seed: int, n_studies: int = 40):
    """Arms (harmonised-arm dicts), contrasts and studies hitting every selection rule, valid as the
    sheets' checks leave them (n >= 1, SD > 0 or 0 for zero variance, 0 <= events <= n)."""
    rng = random.Random(seed)
    arms, contrasts, studies = [], [], {}
    line = 2
    ids = [f"s{seed}_{i:03d}" for i in range(n_studies)]
    for sid in ids:
        studies[sid] = {"study_id": sid, "randomised": rng.choice([True, True, True, False, None]),
                        "region": rng.choice(["lumbar", "gluteal", "neck", None])}  # fmt: skip
    ghost = f"s{seed}_ghost"  # rows of a study missing from studies.csv
    for sid in ids + [ghost]:
        shape = rng.choice(["two", "multi", "one_side", "many", "zero"])
        codes = {"two": ["dn", "sham"], "multi": ["dn", "ic", "sham", "usual"], "one_side": ["dn", "ic"],
                 "many": ["dn", "sham", "usual", "other"], "zero": ["dn", "sham"]}[shape]  # fmt: skip
        times = rng.sample([0, 1, 2, 2.0, 4, 8, 12.5, 13, 26], rng.randint(1, 3))
        for outcome in ("pain", "pain_noref", "resp"):
            for t in times:
                for ins, smin, smax in rng.sample(INSTRUMENTS, rng.randint(1, 2)):
                    if rng.random() < 0.15:  # a study-level scale unknown for one row only
                        smin, smax = None, None
                    hib = rng.choice([None, False, False, True])
                    for vt in rng.sample(["final", "change"], rng.randint(1, 2)):
                        for code in codes:
                            if rng.random() < 0.1:
                                continue  # an arm missing at this timepoint
                            n = rng.choice([1, 2, 5, 20, 33, 20.0]) if rng.random() < 0.9 else rng.randint(40, 400)
                            dich = outcome == "resp"
                            if rng.random() < 0.05:
                                dich = not dich  # a row of the wrong kind
                            row = {"study_id": sid, "arm": code, "intervention": code, "outcome": outcome,
                                   "instrument": ins, "higher_is_better": hib, "timepoint_weeks": t,
                                   "value_type": vt, "n": n, "mean": None, "sd": None, "events": None,
                                   "mean_method": "", "sd_method": "", "derived": rng.random() < 0.2,
                                   "scale_min": smin, "scale_max": smax,
                                   "extraction_confidence": rng.choice([None, "high", "low", "Low", "medium"]),
                                   "source_row": str(line), "line": line}  # fmt: skip
                            if dich:
                                ni = int(n)
                                row["events"] = 0 if shape == "zero" else rng.choice([0, ni, rng.randint(0, ni)])
                            else:
                                row["mean"] = rng.choice([rng.uniform(-5, 60), 3, 3.0])
                                row["sd"] = 0.0 if shape == "zero" and rng.random() < 0.7 else rng.choice([rng.uniform(0.1, 20), 2])
                            arms.append(row)
                            line += 1
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            outcome = rng.choice(["pain", "pain_noref", "resp"])
            measure = rng.choice(["MD", "SMD", "RR", "OR", "RD"])
            est = rng.uniform(0.2, 3) if measure in ("RR", "OR") else rng.uniform(-3, 3)
            pair = rng.choice([("dn", "sham"), ("sham", "dn"), ("ic", "usual"), ("dn", "ic"), ("other", "dn")])
            se = rng.choice([None, rng.uniform(0.05, 1)])
            width = rng.uniform(0.1, 0.9)
            lo, hi = (est * (1 - width), est * (1 + width)) if measure in ("RR", "OR") else (est - width, est + width)
            smin, smax = rng.choice([(0, 10), (0, 100), (None, None)])
            contrasts.append({"study_id": sid, "intervention": pair[0], "comparator": pair[1], "outcome": outcome,
                              "instrument": rng.choice(["VAS", "", None]), "timepoint_weeks": rng.choice(times + [40]),
                              "measure": measure, "estimate": est, "se": se,
                              "ci_low": None if se is not None else lo, "ci_high": None if se is not None else hi,
                              "ci_level": rng.choice([None, 90.0, 95]), "n_intervention": rng.choice([None, 30]),
                              "n_comparator": 31, "scale_min": smin, "scale_max": smax,
                              "extraction_confidence": rng.choice([None, "low"]), "_line": 1000 + len(contrasts)})  # fmt: skip
    rng.shuffle(arms)  # arms of a study need not be together in the sheet
    return arms, contrasts, studies


def random_analyses(rng: random.Random):
    for outcome, measures in (("pain", ["MD", "SMD"]), ("pain_noref", ["MD", "SMD"]), ("resp", ["RR", "OR", "RD"])):
        for measure in measures:
            a = {"id": "x", "outcome": outcome, "measure": measure, "method": rng.choice(["REML", "REML", "MH"]),
                 "intervention": rng.choice([["dn"], ["dn", "ic"], ["dn", "sham"]]), "comparator": rng.choice([["sham"], ["sham", "usual"]]),
                 "timepoint_weeks": rng.choice([[0, 12], [0, 26], [2, 8], [0, 13]]),
                 "timepoint_rule": rng.choice(["latest", "earliest"]), "randomised_only": rng.choice([True, False])}  # fmt: skip
            if rng.random() < 0.3:
                a["where"] = {"region": rng.choice([["lumbar", "gluteal"], "neck"])}
            yield a


@pytest.mark.parametrize("seed", range(40))
def test_random_workspaces(seed):
    arms, contrasts, studies = random_workspace(seed)
    rng = random.Random(seed)
    used = 0
    for a in random_analyses(rng):
        eff, flow = assert_same(a, arms, contrasts, studies, CONFIG)
        used += sum(f["state"] == "used" for f in flow)
    assert used > 0


def test_random_workspace_covers_the_per_study_paths():
    """The random workspaces reach every refusal that sends a study to the per-study path, and every
    column a data problem can name."""
    reasons, columns = set(), set()
    for seed in range(40):
        arms, contrasts, studies = random_workspace(seed)
        for a in random_analyses(random.Random(seed)):
            _, flow = reference_build_study_effects(a, arms, contrasts, studies, CONFIG)
            reasons |= {str(f["reason"]) for f in flow}
            columns |= {getattr(f["reason"], "column", None) for f in flow}
    for expected in ("effect size not computable from these arms", "no events (or only events) in both arms: left out",
                     "MD needs scale_min/scale_max", "another arm of this comparison: MD needs scale_min/scale_max",
                     "non-randomised study; the analysis is randomised-only", "study outside where: region is 'neck', the analysis keeps lumbar, gluteal",
                     "only one side of the comparison has data", "arm-level data or another timepoint used for this study",
                     "row holds events; the analysis pools MD", "row holds means; the analysis pools RR"):  # fmt: skip
        assert any(r.startswith(expected) for r in reasons), expected
    assert {"sd", "events", "scale_min", "study_id", "mean", "measure"} <= columns


def test_table_with_other_column_order_and_rows_of_other_outcomes():
    """The table's column order and rows the analysis does not read change nothing."""
    arms, contrasts, studies = random_workspace(7)
    a = next(random_analyses(random.Random(7)))
    want = reference_build_study_effects(a, arms, contrasts, studies, CONFIG)
    names = sorted(arms[0])
    got = build_study_effects(a, Table.from_rows(arms, names), contrasts, studies, CONFIG)
    assert [dataclasses.asdict(e) for e in got[0]] == [dataclasses.asdict(e) for e in want[0]]
    assert got[1] == want[1]


def test_no_arms_at_all():
    """An analysis of reported contrasts only (a slice whose table of arms has no columns)."""
    arms, contrasts, studies = random_workspace(3)
    for a in random_analyses(random.Random(3)):
        want = reference_build_study_effects(a, [], contrasts, studies, CONFIG)
        got = build_study_effects(a, Table({}), contrasts, studies, CONFIG)
        assert [dataclasses.asdict(e) for e in got[0]] == [dataclasses.asdict(e) for e in want[0]]
        assert got[1] == want[1]
        assert_same(a, [], contrasts, studies, CONFIG)
