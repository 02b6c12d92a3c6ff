"""results/analyses/{id}.json follows workflow/schemas/analysis_result.schema.yaml for every kind of analysis."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings
from tpsynth.sheets import SCHEMA_DIR
from tpsynth.tables import write_json

SCHEMA = yaml.safe_load((SCHEMA_DIR / "analysis_result.schema.yaml").read_text(encoding="utf-8"))
VARIANTS = {
    "MD, REML, Wald, subgroups": ("pain_md", {"subgroup": "region"}),
    "SMD, REML, HKSJ": ("pain_smd", {}),
    "RR, DL, HKSJ ad hoc": ("resp_rr", {"method": "DL", "ci": "hksj_adhoc"}),
    "RR, Mantel-Haenszel": ("resp_rr", {"method": "MH"}),
    "OR, Peto": ("resp_rr", {"method": "PETO", "measure": "OR"}),
    "RD, FE": ("resp_rr", {"method": "FE", "measure": "RD"}),
    "MD with a moderator": ("pain_md", {"moderators": ["year"]}),
    "one study": ("pain_md", {"where": {"region": "neck"}}),
    "no study": ("pain_md", {"timepoint_weeks": [100, 200]}),
}


def validator():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def written(fixture_inputs, tmp_path, analysis_id, overrides) -> dict:
    """The result as the pipeline writes it (tables.write_json) and reads it back."""
    config, sheets, arms = fixture_inputs
    config = copy.deepcopy(config)
    config["analyses"][analysis_id].update(overrides)
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms)
    path = tmp_path / "result.json"
    write_json(path, res)
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
