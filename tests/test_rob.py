"""Risk of bias by domain: each tool's overall algorithm and the checks of risk_of_bias.csv.

Published test data: robvis's example assessments (tests/fixtures/rob/SOURCE.md). Hand-made rows
exercise every branch of the algorithms (Sterne et al. 2019 for RoB 2, Sterne et al. 2016 for ROBINS-I).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from tpsynth.rob import TOOLS, check_rows, level, overall_judgement, study_judgement
from tpsynth.sheets import sheet_spec
from tpsynth.validate import _read_sheet, validate_sheets

ROB = Path(__file__).parent / "fixtures" / "rob"
HEADER = "study_id,outcome,tool,d1,d2,d3,d4,d5,d6,d7,overall,support_d1\n"


def read(path):
    problems = []
    rows, _ = _read_sheet(str(path), sheet_spec("risk_of_bias" if "risk" in path.name else "studies"), problems)
    assert problems == []
    return rows


def test_robvis_examples_agree_with_the_algorithms():
    rows, studies = read(ROB / "risk_of_bias.csv"), read(ROB / "studies.csv")
    assert len(rows) == 28
    problems, warnings = check_rows("risk_of_bias.csv", rows, studies, "studies.csv", {})
    assert problems == []
    # robvis's only overall that is a reviewer's judgement: ROBINS-I study 2 (no information in D2)
    assert [str(w) for w in warnings] == [
        "risk_of_bias.csv:21: column overall: 'moderate' where the algorithm gives 'no information': the reviewer's "
        "judgement that the domain(s) without information are not key (ROBINS-I asks for a judgement here)"
    ]
    with (ROB / "risk_of_bias.csv").open() as fh:
        given = {r["study_id"]: r["overall"] for r in csv.DictReader(fh)}
    for r in rows:
        assert r["overall"] == given[r["study_id"]]
        assert r["overall_derived"] is False
        derived = overall_judgement(r["tool"], [(lab, j) for lab, _, j, _ in r["domains"]]).derived
        assert derived == given[r["study_id"]] or r["study_id"] == "robins_i_2", r["study_id"]


def test_robvis_examples_blank_overall_is_derived():
    """Blank every overall of the robvis sheets: the algorithm gives robvis's judgement back, flagged as derived."""
    rows, studies = read(ROB / "risk_of_bias.csv"), read(ROB / "studies.csv")
    with (ROB / "risk_of_bias.csv").open() as fh:
        given = {r["study_id"]: r["overall"] for r in csv.DictReader(fh)}
    for r in rows:
        r["overall"] = None
    problems, warnings = check_rows("risk_of_bias.csv", rows, studies, "studies.csv", {})
    assert problems == [] and len(warnings) == 28
    assert all(w.column == "overall" and w.message.startswith("blank; derived") for w in warnings)
    got = {r["study_id"]: r["overall"] for r in rows}
    assert {k: v for k, v in got.items() if v != given[k]} == {"robins_i_2": "no_information"}
    assert all(r["overall_derived"] for r in rows)


def d(*js):
    return [(f"D{i}", j) for i, j in enumerate(js, start=1)]


@pytest.mark.parametrize(
    ("domains", "derived", "allowed"),
    [
        (d("low", "low", "low", "low", "low"), "low", {"low"}),
        (d("low", "some_concerns", "low", "low", "low"), "some_concerns", {"some_concerns"}),
        (d("low", "no_information", "low", "low", "low"), "some_concerns", {"some_concerns"}),
        (d("low", "some_concerns", "some_concerns", "low", "low"), "some_concerns", {"some_concerns", "high"}),
        (d("some_concerns", "low", "low", "high", "low"), "high", {"high"}),
        (d("high", "high", "high", "high", "high"), "high", {"high"}),
    ],
)
def test_rob2_algorithm(domains, derived, allowed):
    o = overall_judgement("rob2", domains)
    assert (o.derived, set(o.allowed)) == (derived, allowed)
    assert set(o.flagged) == allowed - {derived}


def test_rob2_cluster_not_applicable_domain_is_ignored():
    doms = [("D1a", "low"), ("D1b", "not_applicable"), ("D2", "low"), ("D3", "low"), ("D4", "low"), ("D5", "low")]
    assert overall_judgement("rob2_cluster", doms).derived == "low"


@pytest.mark.parametrize(
    ("tool", "domains", "derived", "allowed"),
    [
        ("robins_i", d(*["low"] * 7), "low", {"low"}),
        ("robins_i", d("moderate", *["low"] * 6), "moderate", {"moderate"}),
        ("robins_i", d("moderate", "serious", *["low"] * 5), "serious", {"serious"}),
        ("robins_i", d("critical", "serious", *["moderate"] * 5), "critical", {"critical"}),
        ("robins_i", d("no_information", *["low"] * 6), "no_information", {"no_information", "moderate"}),
        ("robins_i", d("no_information", "serious", *["low"] * 5), "serious", {"serious"}),
        ("robins_i_v2", d("low_except_confounding", *["low"] * 6), "low_except_confounding", {"low_except_confounding"}),
        ("robins_i_v2", d("low_except_confounding", "moderate", *["low"] * 5), "moderate", {"moderate"}),
    ],
)
def test_robins_i_algorithms(tool, domains, derived, allowed):
    o = overall_judgement(tool, domains)
    assert (o.derived, set(o.allowed)) == (derived, allowed)


def test_generic_is_worst_domain_and_flags_milder_overall():
    o = overall_judgement("generic", d("low", "unclear", "high"))
    assert o.derived == "high"
    assert "low" in o.flagged and "critical" not in o.flagged and "high" not in o.flagged


def test_common_scale():
    assert [level(j) for j in ("low", "some_concerns", "moderate", "serious", "critical", "no_information", None)] == [
        "low", "some_concerns", "some_concerns", "high", "high", "some_concerns", "not_assessed"
    ]  # fmt: skip
    assert all(set(t.overall) <= set(t.judgements) | {"no_information"} for t in TOOLS.values())


@pytest.fixture
def rob_ws(ws):
    """The minimal workspace with a risk_of_bias.csv (a2001 low, b2005 high, c2010 some_concerns in studies.csv)."""
    return ws


def problems_of(text, config_edit=None):
    Path("data/raw/risk_of_bias.csv").write_text(HEADER + text)
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())
    sheets, probs = validate_sheets(
        "data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg,
        risk_of_bias="data/raw/risk_of_bias.csv",
    )  # fmt: skip
    return [str(p) for p in probs], [str(w) for w in sheets.warnings], sheets


def test_sheet_errors(rob_ws):
    probs, _, _ = problems_of(
        "a2001,,rob2,low,low,low,low,low,,,some_concerns,\n"  # 2: overall disagrees with all-low domains
        "b2005,,rob2,low,some_concerns,low,low,low,,,high,\n"  # 3: high with one domain of concerns
        "c2010,,rob2,low,low,low,low,,,,,\n"  # 4: RoB 2 has five domains
        "e2020,,rob2,low,low,low,low,low,low,,,\n"  # 5: a sixth domain
        "e2020,pain,robins_i,low,low,low,low,low,low,low,some_concerns,\n"  # 6: not a ROBINS-I judgement
        "e2020,resp,robins_i,low_except_confounding,low,low,low,low,low,low,,\n"  # 7: V2 level in ROBINS-I
        "e2020,pain,rob2,low,low,low,low,low,,,,\n"  # 8: second assessment of e2020 for pain
        "zz1999,,rob2,low,low,low,low,low,,,,\n"  # 9: unknown study
        "e2020,qol,rob2,low,low,low,low,low,,,,\n"  # 10: undeclared outcome
    )
    assert probs == [
        "data/raw/risk_of_bias.csv:2: column overall: 'some concerns' disagrees with the RoB 2 algorithm (Sterne et al. "
        "2019, BMJ 366:l4898): every domain is at low risk, so the overall judgement is 'low'",
        "data/raw/risk_of_bias.csv:3: column overall: 'high' disagrees with the RoB 2 algorithm (Sterne et al. 2019, "
        "BMJ 366:l4898): no domain at high risk; some concerns or no information in D2, so the overall judgement is "
        "'some concerns'",
        "data/raw/risk_of_bias.csv:4: column d5: judgement missing: RoB 2 has 5 domains",
        "data/raw/risk_of_bias.csv:5: column d6: RoB 2 has 5 domains; leave d6 blank (found 'low')",
        "data/raw/risk_of_bias.csv:6: column overall: not a ROBINS-I overall judgement: use one of low, moderate, "
        "serious, critical, no_information (found 'some_concerns')",
        "data/raw/risk_of_bias.csv:7: column d1: not a ROBINS-I judgement: use one of low, moderate, serious, critical, "
        "no_information (found 'low_except_confounding')",
        "data/raw/risk_of_bias.csv:8: column study_id: second assessment of e2020 for outcome pain, first on line 6",
        "data/raw/risk_of_bias.csv:9: column study_id: unknown study, not in data/raw/studies.csv (found 'zz1999')",
        "data/raw/risk_of_bias.csv:10: column outcome: code not declared under 'outcomes' in the config (found 'qol')",
    ]


def test_studies_shorthand_must_agree(rob_ws):
    # studies.csv: a2001 low, b2005 high, c2010 some_concerns
    probs, warns, _ = problems_of(
        "a2001,,rob2,low,low,low,high,low,,,high,\n"
        "b2005,,robins_i,low,low,serious,low,low,low,low,,\n"  # serious -> high: agrees; derived
        "c2010,,robins_i,low,low,low,low,low,low,low,low,\n"
    )
    assert probs == [
        "data/raw/risk_of_bias.csv:2: column overall: 'high' (high on the common scale) disagrees with rob_overall "
        "'low' of a2001 in data/raw/studies.csv line 2",
        "data/raw/risk_of_bias.csv:4: column overall: 'low' (low on the common scale) disagrees with rob_overall "
        "'some concerns' of c2010 in data/raw/studies.csv line 4",
    ]
    assert warns == [
        "data/raw/risk_of_bias.csv:3: column overall: blank; derived 'serious' by the ROBINS-I algorithm (a domain "
        "is at serious risk (D3 serious))"
    ]


def test_flagged_reviewer_judgement_and_outcome_specific_row(rob_ws):
    probs, warns, sheets = problems_of(
        "e2020,,rob2,low,some_concerns,some_concerns,low,low,,,high,random sequence\n"
        "e2020,resp,rob2,low,low,low,low,low,,,,\n"
    )
    assert probs == []
    assert warns[0].startswith("data/raw/risk_of_bias.csv:2: column overall: 'high' where the algorithm gives "
                               "'some concerns': the reviewer's judgement: some concerns in several domains (D2 some "
                               "concerns, D3 some concerns)")  # fmt: skip
    assert warns[1].startswith("data/raw/risk_of_bias.csv:3: column overall: blank; derived 'low'")
    study = next(s for s in sheets.studies if s["study_id"] == "e2020")
    pain = study_judgement(sheets.risk_of_bias, study, "pain")
    resp = study_judgement(sheets.risk_of_bias, study, "resp")
    assert (pain["level"], pain["overall_flag"] is not None, pain["source"]) == ("high", True, "risk_of_bias.csv line 2")
    assert [x["judgement"] for x in pain["domains"]] == ["low", "some_concerns", "some_concerns", "low", "low"]
    assert pain["domains"][0]["support"] == "random sequence"
    assert (resp["level"], resp["overall_derived"]) == ("low", True)
    other = next(s for s in sheets.studies if s["study_id"] == "a2001")
    assert study_judgement(sheets.risk_of_bias, other, "pain") == {
        "level": "low", "tool": None, "overall": "low", "overall_derived": False, "overall_flag": None,
        "domains": [], "source": "studies.csv rob_overall",
    }  # fmt: skip


def _result(levels_weights, domains=None):
    """An analysis result with studies at the given (level, weight)s; domain judgements optional."""
    studies = []
    for i, (lev, w) in enumerate(levels_weights):
        rob = {"domains": [{"domain": d, "level": lv} for d, lv in (domains[i] if domains else [])]}
        studies.append({"weight": w, "n_intervention": 100, "n_comparator": 100, "rob_overall": lev, "rob": rob,
                        "region": "lumbar", "derived": False, "low_confidence": False, "comparator_sd_ref": 2.0,
                        "comparator_risk": None})  # fmt: skip
    return {
        "settings": {"measure": "MD", "outcome": "pain"}, "outcome": {"mid": 1.0, "higher_is_better": False},
        "pooled": {"k": len(studies), "estimate": -2.0, "ci_low": -2.5, "ci_high": -1.5, "i2": 0.0, "pi_low": -2.6,
                   "pi_high": -1.4, "n_participants": 200.0 * len(studies)},
        "studies": studies, "small_study": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("levels", "down"),
    [
        ([("low", 60), ("some_concerns", 40)], 0),  # most information at low risk
        ([("low", 40), ("some_concerns", 60)], 1),  # most information at low or unclear risk: serious
        ([("low", 50), ("high", 30), ("some_concerns", 20)], 1),  # half not at low risk, high below half
        ([("high", 55), ("low", 45)], 2),  # most information at high risk: very serious
        ([("low", 45), ("not_assessed", 55)], 1),  # not assessed counts as a risk by default
    ],
)
def test_grade_risk_of_bias_downgrade_weighted(levels, down):
    from tpsynth.certainty import DEFAULT_RULES, compute_caveats, risk_of_bias_downgrade

    c = compute_caveats(_result(levels), DEFAULT_RULES, None)
    assert risk_of_bias_downgrade(c, DEFAULT_RULES)[0] == down


def test_grade_reason_names_domains_and_follows_config():
    from tpsynth.certainty import DEFAULT_RULES, compute_caveats, grade

    doms = [[("D1", "low"), ("D4", "high")], [("D1", "low"), ("D4", "low")], [("D1", "high"), ("D4", "high")]]
    res = _result([("high", 50), ("low", 30), ("high", 20)], doms)
    c = compute_caveats(res, DEFAULT_RULES, None)
    assert c.rob_domains_high == (("D1", pytest.approx(0.2)), ("D4", pytest.approx(0.7)))
    level, reasons = grade(res, c, DEFAULT_RULES)
    assert reasons[0] == ("risk of bias (-2): 70% of the weight from high risk-of-bias studies; high risk in D1 (20% of "
                          "the weight), D4 (70% of the weight)")  # fmt: skip
    lenient = {**DEFAULT_RULES, "risk_of_bias_very_serious_weight": 0.8}
    assert grade(res, c, lenient)[1][0].startswith("risk of bias (-1)")


def test_analysis_carries_per_study_judgement(ws):
    """run_analysis puts each study's judgement (level, tool, domains) in the result: GRADE and CINeMA read it."""
    from tpsynth.analysis import run_analysis
    from tpsynth.config import analysis_settings, validate_config

    Path("data/raw/risk_of_bias.csv").write_text(HEADER + "a2001,,rob2,low,low,low,high,low,,,,\n")
    cfg = validate_config(yaml.safe_load(Path("config/config.yaml").read_text()))
    cfg["data"]["risk_of_bias"] = "data/raw/risk_of_bias.csv"
    sheets, probs = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg,
                                    risk_of_bias="data/raw/risk_of_bias.csv")  # fmt: skip
    # a2001 is 'low' in studies.csv: the domain data (D4 high) must agree, so the sheet is rejected
    assert [str(p) for p in probs] == ["data/raw/risk_of_bias.csv:2: column overall: 'high' (high on the common scale) disagrees with "
                     "rob_overall 'low' of a2001 in data/raw/studies.csv line 2"]  # fmt: skip
    Path("data/raw/studies.csv").write_text(Path("data/raw/studies.csv").read_text().replace(
        "a2001,Alpha,2001,parallel,true,lumbar,low,", "a2001,Alpha,2001,parallel,true,lumbar,not_assessed,"))
    sheets, probs = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg,
                                    risk_of_bias="data/raw/risk_of_bias.csv")  # fmt: skip
    assert probs == []
    res = run_analysis(analysis_settings(cfg, "pain_smd"), sheets, cfg).to_dict()
    a = next(s for s in res["studies"] if s["study_id"] == "a2001")
    assert (a["rob_overall"], a["rob"]["tool"], a["rob"]["overall_derived"]) == ("high", "rob2", True)
    assert [d["judgement"] for d in a["rob"]["domains"]] == ["low", "low", "low", "high", "low"]
    b = next(s for s in res["studies"] if s["study_id"] == "b2005")
    assert (b["rob_overall"], b["rob"]["source"]) == ("high", "studies.csv rob_overall")
    # the result (with domain data) still follows the analysis-result schema
    import json

    import jsonschema

    schema = yaml.safe_load((Path(__file__).resolve().parent.parent / "workflow/schemas/analysis_result.schema.yaml").read_text())
    jsonschema.validate(json.loads(json.dumps(res)), schema)


def test_summary_shares_weighted_and_unweighted():
    from tpsynth.figures.rob import summary_shares

    rows = read(ROB / "risk_of_bias.csv")
    check_rows("risk_of_bias.csv", rows, read(ROB / "studies.csv"), "studies.csv", {})
    rob2 = [r for r in rows if r["tool"] == "rob2"]
    overall = dict(summary_shares(rob2, None))["Overall"]
    # robvis data_rob2: 1 low, 3 some concerns, 5 high
    assert overall == pytest.approx({"low": 1 / 9, "concerns": 3 / 9, "high": 5 / 9})
    w = {r["study_id"]: 0.0 for r in rob2}
    w.update(rob2_1=3.0, rob2_4=1.0)
    shares = dict(summary_shares([r for r in rob2 if r["study_id"] in ("rob2_1", "rob2_4")], w))
    assert shares["Overall"] == pytest.approx({"low": 0.75, "high": 0.25})
    assert shares["D5: Selection of the reported result"] == pytest.approx({"low": 0.75, "concerns": 0.25})


@pytest.mark.slow
@pytest.mark.parametrize("palette", ["cochrane", "colourblind"])
def test_rob_figures_byte_identical_with_palette(tmp_path, palette):
    import hashlib

    from tpsynth.figures.common import save_all
    from tpsynth.figures.rob import PALETTES, summary_figure, traffic_light_figure

    rows, studies = read(ROB / "risk_of_bias.csv"), read(ROB / "studies.csv")
    check_rows("risk_of_bias.csv", rows, studies, "studies.csv", {})
    rows[0]["overall_derived"] = True  # marked with an asterisk
    by_id = {s["study_id"]: s for s in studies}
    for stem in ("a", "b"):
        save_all(traffic_light_figure(rows, by_id, palette), tmp_path / f"tl_{stem}")
        save_all(summary_figure(rows, None, palette), tmp_path / f"sum_{stem}")
    for kind in ("tl", "sum"):
        for ext in ("png", "svg", "pdf"):
            a, b = (hashlib.sha256((tmp_path / f"{kind}_{s}.{ext}").read_bytes()).hexdigest() for s in "ab")
            assert a == b, (kind, ext)
    svg = (tmp_path / "tl_a.svg").read_text()
    pal = PALETTES[palette]
    for k in ("low", "concerns", "high", "critical", "ni"):
        assert pal[k].lower() in svg.lower(), k
    assert 'id="tl-rob2-0-5"' in svg and 'id="tl-robins_i-9-7"' in svg  # overall column of each tool


def test_network_cinema_reads_the_domain_judgement(fixture_inputs):
    """The network's within-study bias (CINeMA) reads the same per-study judgement as GRADE."""
    import copy

    from tpsynth.config import validate_config
    from tpsynth.network_analysis import network_settings, run_network

    config, sheets, arms = fixture_inputs
    config = copy.deepcopy(config)
    config["networks"] = {"net": {"title": "t", "outcome": "pain", "timepoint_weeks": [0, 12], "measure": "MD",
                                  "reference": "Usual care",
                                  "nodes": {"Needling": ["dn"], "Manual": ["ic"], "Sham": ["sham"], "Usual care": ["usual"]}}}
    config = validate_config(config)
    sheets = copy.copy(sheets)
    rows = [{"_line": 2, "study_id": "c2010", "outcome": "pain", "tool": "rob2", "d1": "low", "d2": "low", "d3": "high",
             "d4": "low", "d5": "low", "overall": None}]  # fmt: skip
    studies = [dict(s, rob_overall="not_assessed") if s["study_id"] == "c2010" else s for s in sheets.studies]
    problems, _ = check_rows("risk_of_bias.csv", rows, studies, "studies.csv", {"pain": {}})
    assert problems == []
    sheets.risk_of_bias = rows
    r = run_network(network_settings(config, "net"), sheets, config, arms)
    c2010 = next(s for s in r["studies"] if s["study_id"] == "c2010")
    assert c2010["rob_overall"] == "high"  # the domain data (D3 high) decide, not the studies.csv shorthand
