"""``where:`` restricts an analysis to studies by any studies.csv column (tpsynth.selection)."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from tpsynth.analysis import run_analysis
from tpsynth.config import ConfigError, analysis_settings, validate_config
from tpsynth.harmonise import harmonise
from tpsynth.selection import excluded_reason, value_key
from tpsynth.tables import dataflow_rows
from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"


def run(base, analysis_id, config=None, sheets=None, typed=False, **overrides):
    """The analysis's result: its JSON layout, or the typed result (as the report reads it) with ``typed``."""
    config0, sheets0, _ = base
    config = copy.deepcopy(config or config0)
    sheets = sheets or sheets0
    config["analyses"][analysis_id].update(overrides)
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=harmonise(sheets)[0].rows())
    return res if typed else res.to_dict()


def without_studies(sheets, drop):
    """The sheets with every row of the studies in ``drop`` removed: what where: should be equal to."""
    return dataclasses.replace(
        sheets,
        studies=[s for s in sheets.studies if s["study_id"] not in drop],
        outcomes=[r for r in sheets.outcomes.rows() if r["study_id"] not in drop],
        contrasts=[r for r in sheets.contrasts if r["study_id"] not in drop],
    )


def test_where_equals_the_analysis_without_the_other_studies(fixture_inputs):
    kept = run(fixture_inputs, "pain_md", where={"region": ["lumbar", "gluteal"]})
    assert [s["study_id"] for s in kept["studies"]] == ["a2001", "b2005", "e2020"]
    ref = run(fixture_inputs, "pain_md", sheets=without_studies(fixture_inputs[1], {"c2010"}))
    assert [s["study_id"] for s in ref["studies"]] == ["a2001", "b2005", "e2020"]
    for key in ("estimate", "se", "ci_low", "ci_high", "tau2", "q", "k"):
        assert kept["pooled"][key] == ref["pooled"][key], key
    full = run(fixture_inputs, "pain_md")
    assert full["pooled"]["k"] == 4 and full["pooled"]["estimate"] != kept["pooled"]["estimate"]


def test_excluded_rows_carry_the_reason_into_dataflow(fixture_inputs):
    res = run(fixture_inputs, "pain_md", where={"region": ["lumbar", "gluteal"]})
    reason = "study outside where: region is 'neck', the analysis keeps lumbar, gluteal"
    c2010 = {(r["study_id"]) for r in fixture_inputs[1].outcomes.rows() if r["_line"] in {f["line"] for f in res["flow"] if f["reason"] == reason}}
    assert c2010 == {"c2010"}
    ingest = [{"sheet": "outcomes", "line": str(r["_line"]), "state": "analysable"} for r in fixture_inputs[1].outcomes.rows()
              if r["study_id"] == "c2010" and r["outcome"] == "pain"]  # fmt: skip
    rows = dataflow_rows(ingest, [res])
    assert rows and all(r["state"] == "excluded" and r["reason"] == f"pain_md: {reason}" for r in rows)


def test_several_columns_all_must_match_and_values_compare_as_written(fixture_inputs):
    res = run(fixture_inputs, "pain_md", where={"region": "gluteal", "year": [2005, 2010]})
    assert [s["study_id"] for s in res["studies"]] == ["b2005"]  # e2020 (gluteal) has no year: outside
    study = {"randomised": True, "year": 2005, "region": "gluteal", "author": None}
    assert excluded_reason(study, {"randomised": [True], "year": 2005.0}) is None
    assert excluded_reason(study, {"randomised": "true"}) is None
    assert excluded_reason(study, {"author": ["Beta"]}) == "study outside where: author is empty, the analysis keeps Beta"
    assert [value_key(v) for v in (True, False, 2008, 2008.0, 2.5, " x ", "", None)] == [
        "true", "false", "2008", "2008", "2.5", "x", None, None,
    ]  # fmt: skip


def _problems(where=None, subgroup=None, extra_column=False, tmp_path=None):
    cfg = yaml.safe_load((FIXTURE / "config/config.yaml").read_text())
    if where is not None:
        cfg["analyses"]["pain_md"]["where"] = where
    if subgroup is not None:
        cfg["analyses"]["pain_smd"]["subgroup"] = subgroup
    cfg = validate_config(cfg)
    raw = FIXTURE / "data/raw"
    studies = str(raw / "studies.csv")
    if extra_column:
        shutil.copytree(raw, tmp_path / "raw")
        p = tmp_path / "raw" / "studies.csv"
        lines = p.read_text().splitlines()
        p.write_text("\n".join([lines[0] + ",setting"] + [x + ",clinic" for x in lines[1:]]) + "\n")
        studies = str(p)
    _, probs = validate_sheets(studies, str(raw / "outcomes.csv"), str(raw / "contrasts.csv"), cfg)
    return [str(p) for p in probs]


def test_valid_where_and_extra_columns_pass(tmp_path):
    assert _problems({"region": ["lumbar", "gluteal"], "randomised": True, "year": 2005}) == []
    assert _problems({"setting": "clinic"}, extra_column=True, tmp_path=tmp_path) == []


def test_unknown_column_and_value_say_did_you_mean():
    s = str(FIXTURE / "data/raw/studies.csv")
    assert _problems({"regoin": ["lumbar"]}) == [
        f"config/config.yaml: key analyses.pain_md.where: 'regoin' is not a column of {s}; did you mean 'region'?"
    ]
    assert _problems({"region": ["lumbr", "gluteal", "hip"]}) == [
        f"config/config.yaml: key analyses.pain_md.where.region: no study in {s} has region 'lumbr'; did you mean 'lumbar'?",
        f"config/config.yaml: key analyses.pain_md.where.region: no study in {s} has region 'hip'; "
        "values found: gluteal, lumbar, neck",
    ]  # fmt: skip
    assert _problems(subgroup="regio") == [
        f"config/config.yaml: key analyses.pain_smd.subgroup: 'regio' is not a column of {s}; did you mean 'region'?"
    ]


@pytest.mark.parametrize("where", [{}, {"region": []}, {"region": [None]}, {"region": {"in": "lumbar"}}, ["region"]])
def test_schema_rejects_malformed_where(where):
    cfg = yaml.safe_load((FIXTURE / "config/config.yaml").read_text())
    cfg["analyses"]["pain_md"]["where"] = where
    with pytest.raises(ConfigError, match=r"key analyses\.pain_md\.where"):
        validate_config(cfg)


def test_where_in_words_for_the_report():
    from tpsynth.report import build
    from tpsynth.selection import where_text

    where = {"region": ["lumbar", "gluteal"], "randomised": True, "year": 2005.0}
    assert where_text(where) == "region lumbar or gluteal; randomised true; year 2005"
    html = build.environment().from_string("only studies with {{ w | where }}").render(w={"region": "<b>x</b>"})
    assert html == "only studies with region &lt;b&gt;x&lt;/b&gt;"  # escaped like every value from the data


def test_report_section_says_which_studies_the_analysis_keeps(fixture_inputs):
    from tpsynth.report import build

    res = run(fixture_inputs, "pain_md", typed=True, where={"region": ["lumbar", "gluteal"]})
    assert build.analysis_section(res, {})["settings"]["where"] == {"region": ["lumbar", "gluteal"]}
    assert build.analysis_section(run(fixture_inputs, "pain_md", typed=True), {})["settings"]["where"] is None
    template = (Path(build.TEMPLATE_DIR) / build.TEMPLATE_NAME).read_text(encoding="utf-8")
    assert "only studies with {{ s.settings.where | where }}" in template
