"""Config validation: every problem named by file and key; defaults filled."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tpsynth.config import (
    ConfigError,
    analysis_ids,
    analysis_settings,
    load_config,
    natural_key,
    validate_config,
)

FIXTURE = Path(__file__).parent / "fixtures" / "minimal" / "config" / "config.yaml"
RAW = yaml.safe_load(FIXTURE.read_text())


def errors(cfg) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        validate_config(copy.deepcopy(cfg))
    return str(exc.value).splitlines()


def test_defaults_are_filled():
    cfg = validate_config(copy.deepcopy(RAW))
    a = analysis_settings(cfg, "resp_rr")
    assert (a["measure"], a["method"], a["ci"], a["level"], a["timepoint_rule"], a["randomised_only"]) == (
        "RR", "REML", "hksj", 0.95, "latest", True,
    )  # fmt: skip


def test_schema_defaults_fill_what_the_config_leaves_out():
    cfg = copy.deepcopy(RAW)
    del cfg["defaults"]
    cfg = validate_config(cfg)
    assert cfg["defaults"] == {
        "measure": "SMD", "method": "REML", "ci": "hksj_adhoc", "level": 0.95, "timepoint_rule": "latest",
        "randomised_only": True,
    }  # fmt: skip
    assert analysis_settings(cfg, "resp_rr")["ci"] == "hksj_adhoc"


def test_schema_errors_all_reported():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["resp_rr"]["measure"] = "HR"
    cfg["analyses"]["pain_md"]["method"] = "reml"
    del cfg["analyses"]["pain_smd"]["outcome"]
    assert errors(cfg) == [
        "config/config.yaml: key analyses.pain_md.method: 'reml' is not one of ['REML', 'DL', 'PM', 'ML', 'HE', 'SJ', 'EB', 'FE', 'MH', 'PETO']",
        "config/config.yaml: key analyses.pain_smd: 'outcome' is a required property",
        "config/config.yaml: key analyses.resp_rr.measure: 'HR' is not one of ['MD', 'SMD', 'RR', 'OR', 'RD']",
    ]


def test_cross_references():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["resp_rr"]["intervention"] = ["dn", "icx"]
    cfg["analyses"]["resp_rr"]["outcome"] = "respx"
    cfg["analyses"]["pain_md"]["timepoint_weeks"] = [12, 0]
    cfg["analyses"]["pain_smd"]["comparator"] = ["sham", "dn"]
    assert errors(cfg) == [
        "config/config.yaml: key analyses.pain_smd: codes on both sides: dn",
        "config/config.yaml: key analyses.pain_md.timepoint_weeks: minimum 12 is above maximum 0",
        "config/config.yaml: key analyses.resp_rr.intervention: code 'icx' is not declared under interventions",
        "config/config.yaml: key analyses.resp_rr.outcome: code 'respx' is not declared under outcomes",
    ]


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_reports_config_errors_without_traceback(tmp_path):
    cfg = copy.deepcopy(RAW)
    cfg["defaults"]["ci"] = "knha"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "tpsynth", "validate", "--config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip() == f"{path}: key defaults.ci: 'knha' is not one of ['wald', 'hksj', 'hksj_adhoc']"


def test_bayes_settings_merge_and_bad_priors():
    """bayes: built-in defaults, then defaults.bayes, then the analysis's own, key by key; a prior
    that cannot be read is named by its key."""
    cfg = copy.deepcopy(RAW)
    cfg.setdefault("defaults", {})["bayes"] = {"mu_prior": "normal(0, 4)"}
    cfg["analyses"]["resp_rr"]["bayes"] = {"tau_prior": "half_normal(0.5)"}
    cfg = validate_config(cfg)
    assert analysis_settings(cfg, "resp_rr")["bayes"] == {
        "tau_prior": "half_normal(0.5)", "mu_prior": "normal(0, 4)", "headline_below_k": 5}
    assert analysis_settings(cfg, "pain_md")["bayes"]["tau_prior"] == "auto"
    bad = copy.deepcopy(RAW)
    bad["analyses"]["resp_rr"]["bayes"] = {"tau_prior": "half_normal(-1)", "mu_prior": "normal(0)"}
    bad["analyses"]["pain_md"]["bayes"] = {"tau_prior": "gamma(2, 1)"}
    msgs = errors(bad)
    assert msgs[0].startswith("config/config.yaml: key analyses.pain_md.bayes.tau_prior: unknown tau prior 'gamma(2, 1)'")
    assert msgs[1] == "config/config.yaml: key analyses.resp_rr.bayes.tau_prior: half_normal: scale must be > 0 (got -1)"
    assert msgs[2].startswith("config/config.yaml: key analyses.resp_rr.bayes.mu_prior: unknown mu prior 'normal(0)'")
    bad["analyses"]["pain_md"]["bayes"] = {"headline_below_k": 0}
    assert any("analyses.pain_md.bayes.headline_below_k" in m for m in errors(bad))


def test_mh_and_peto_need_a_dichotomous_measure():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["pain_md"]["method"] = "MH"
    cfg["analyses"]["resp_rr"]["method"] = "PETO"
    assert errors(cfg) == [
        "config/config.yaml: key analyses.pain_md.method: method MH pools 2x2 tables with measure RR or OR or RD, not MD",
        "config/config.yaml: key analyses.resp_rr.method: method PETO pools 2x2 tables with measure OR, not RR",
    ]
    cfg["analyses"]["resp_rr"]["method"] = "MH"
    del cfg["analyses"]["pain_md"]["method"]
    assert validate_config(cfg)["analyses"]["resp_rr"]["method"] == "MH"


def test_analyses_in_natural_order():
    ids = ["analysis_3_10", "analysis_3_2", "analysis_10_1", "analysis_3_1", "pain", "analysis_2_1"]
    assert sorted(ids, key=natural_key) == [
        "analysis_2_1", "analysis_3_1", "analysis_3_2", "analysis_3_10", "analysis_10_1", "pain",
    ]  # fmt: skip
    assert analysis_ids({"analyses": dict.fromkeys(ids)})[:4] == ["analysis_2_1", "analysis_3_1", "analysis_3_2", "analysis_3_10"]
