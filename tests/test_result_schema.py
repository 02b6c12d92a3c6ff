"""results/analyses/{id}.json follows workflow/schemas/analysis_result.schema.yaml for every kind of analysis,
and the typed result (tpsynth.results.AnalysisResult) writes and reads it back unchanged."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings
from tpsynth.results import AnalysisResult, ResultFormatError
from tpsynth.sheets import SCHEMA_DIR

SCHEMA = yaml.safe_load((SCHEMA_DIR / "analysis_result.schema.yaml").read_text(encoding="utf-8"))
VARIANTS = {
    "MD, REML, Wald, subgroups": ("pain_md", {"subgroup": "region"}),
    "SMD, REML, HKSJ": ("pain_smd", {}),
    "RR, DL, HKSJ ad hoc": ("resp_rr", {"method": "DL", "ci": "hksj_adhoc"}),
    "RR, Mantel-Haenszel": ("resp_rr", {"method": "MH"}),
    "OR, Peto": ("resp_rr", {"method": "PETO", "measure": "OR"}),
    "RD, FE": ("resp_rr", {"method": "FE", "measure": "RD"}),
    "MD with a moderator": ("pain_md", {"moderators": ["year"]}),
    "MD with a factor moderator, too few studies": ("pain_md", {"moderators": ["region", "year", "design"]}),
    "MD, subgroups with a common tau2": ("pain_md", {"subgroup": "region", "subgroup_model": "common_tau2"}),
    "one study": ("pain_md", {"where": {"region": "neck"}}),
    "no study": ("pain_md", {"timepoint_weeks": [100, 200]}),
}


def validator():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def result(fixture_inputs, analysis_id, overrides) -> AnalysisResult:
    config, sheets, arms = fixture_inputs
    config = copy.deepcopy(config)
    config["analyses"][analysis_id].update(overrides)
    return run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms)


def written(fixture_inputs, tmp_path, analysis_id, overrides) -> dict:
    """The result as the pipeline writes it (AnalysisResult.to_json) and reads it back."""
    path = tmp_path / "result.json"
    result(fixture_inputs, analysis_id, overrides).to_json(path)
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_kind_of_result_follows_the_schema(fixture_inputs, tmp_path, variant):
    analysis_id, overrides = VARIANTS[variant]
    res = written(fixture_inputs, tmp_path, analysis_id, overrides)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(res)]
    assert errors == []


def test_schema_rejects_what_the_contract_does_not_allow(fixture_inputs, tmp_path):
    good = written(fixture_inputs, tmp_path, "pain_md", {})
    v = validator()
    for path, value in [
        (("unknown_key",), 1),  # an undeclared top-level key
        (("pooled", "tau2"), -0.1),
        (("pooled", "i2"), 120.0),
        (("studies", 0, "vi"), 0.0),
        (("studies", 0, "source"), "guess"),
        (("flow", 0, "state"), "maybe"),
        (("sensitivity", 0, "extra"), 1),
    ]:
        bad = copy.deepcopy(good)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert not v.is_valid(bad), path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_typed_result_round_trips(fixture_inputs, tmp_path, variant):
    analysis_id, overrides = VARIANTS[variant]
    res = result(fixture_inputs, analysis_id, overrides)
    assert AnalysisResult.from_dict(res.to_dict()) == res
    path = tmp_path / "r.json"
    res.with_evidence("0" * 64).to_json(path)
    back = AnalysisResult.from_json(path)
    assert back.evidence_sha256 == "0" * 64 and back.to_json() == path.read_text(encoding="utf-8")
    assert back.to_dict() == json.loads(path.read_text(encoding="utf-8"))


def test_the_variants_cover_every_part_of_a_result(fixture_inputs):
    """The round-trip and schema tests above see each optional part both present and absent."""
    res = {v: result(fixture_inputs, *VARIANTS[v]) for v in VARIANTS}
    assert res["no study"].pooled.k == 0 and "meta_regression" not in res["no study"].to_dict()
    assert res["one study"].pooled.single and res["one study"].bayes is None
    assert res["SMD, REML, HKSJ"].bayes is not None and res["SMD, REML, HKSJ"].bayes_sensitivity
    assert res["SMD, REML, HKSJ"].smd_in_points.scale is not None  # SMD back in points of the reference scale
    assert res["MD with a moderator"].meta_regression.coefficients
    assert res["MD with a moderator"].meta_regression.bubble[0].moderator == "year"
    assert res["MD with a factor moderator, too few studies"].meta_regression.skipped_reason
    assert res["RR, Mantel-Haenszel"].pooled.tau2 is None and res["RR, Mantel-Haenszel"].pooled.method == "MH"
    assert res["OR, Peto"].pooled.method == "PETO"
    assert res["MD, REML, Wald, subgroups"].subgroups and res["MD, REML, Wald, subgroups"].pooled.q_between is not None
    common = res["MD, subgroups with a common tau2"]
    assert common.subgroups and common.subgroup_regression.terms[0] == "intrcpt"
    assert "bubble" not in common.to_dict()["subgroup_regression"]
    assert res["SMD, REML, HKSJ"].subgroup_regression is None and "subgroup_regression" not in res["SMD, REML, HKSJ"].to_dict()


def test_a_file_that_does_not_fit_names_the_file_and_the_field(fixture_inputs, tmp_path):
    good = result(fixture_inputs, "pain_md", {}).to_dict()
    for change, message in [
        (lambda d: d["studies"][0].pop("weight"), "field studies[0].weight missing"),
        (lambda d: d.pop("pooled"), "field pooled missing"),
        (lambda d: d["studies"][1].update(yi="0.3"), "field studies[1].yi: expected number, got '0.3'"),
        (lambda d: d["pooled"].update(k=2.5), "field pooled.k: expected integer"),
        (lambda d: d["sensitivity"][0].update(weight=3), "field sensitivity[0].weight: not part of an analysis result"),
        (lambda d: d.update(pooled=[]), "field pooled: expected an object"),
    ]:
        bad = copy.deepcopy(good)
        change(bad)
        path = tmp_path / "stale.json"
        path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(ResultFormatError) as err:
            AnalysisResult.from_json(path)
        assert str(err.value).startswith(f"{path}: "), err.value
        assert message in str(err.value), (message, str(err.value))
    path.write_text('{"analysis_id": ', encoding="utf-8")
    with pytest.raises(ResultFormatError, match=rf"{path}:1: not valid JSON"):
        AnalysisResult.from_json(path)
