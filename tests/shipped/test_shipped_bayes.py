"""results/bayes.csv of the data in data/raw/ with config/config.yaml agrees with independent quadrature
(tests/shipped/bayes.json, made by tests/shipped/make_shipped_bayes_reference.R with R's integrate()).

Not a code test: run by `make reference`, which first regenerates the reference from the current data.
The analyses are rerun in-process and every reported number is compared at rtol 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings, load_config
from tpsynth.harmonise import harmonise
from tpsynth.validate import load_sheets

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((ROOT / "tests/shipped/bayes.json").read_text())
KEYS = ["estimate", "mean", "sd", "ci_low", "ci_high", "hdi_low", "hdi_high", "pi_low", "pi_high", "tau_median",
        "tau_ci_low", "tau_ci_high"]  # fmt: skip


@pytest.fixture(scope="module")
def shipped():
    config = load_config(ROOT / "config/config.yaml")
    sheets = load_sheets(config, base=ROOT)
    arms = harmonise(sheets)[0].rows()
    return config, sheets, arms


@pytest.mark.parametrize("analysis_id", sorted(REF["analyses"]))
def test_shipped_bayes_matches_integrate(shipped, analysis_id):
    config, sheets, arms = shipped
    ref = REF["analyses"][analysis_id]
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms).to_dict()  # the JSON layout
    b = res["bayes"]
    assert (b["k"], b["tau_prior"], b["mu_prior"]) == (ref["k"], ref["tau_prior"], ref["mu_prior"])
    r = ref["result"]
    scale = (r["ci_high"] - r["ci_low"]) / 4
    for key in KEYS:
        if key == "sd" and b["sd"] is None:  # infinite (k = 2, heavy-tailed prior): R's value is a truncated integral
            continue
        tol = 1e-6 * (max(abs(r[key]), scale) if not key.startswith("tau") else abs(r[key]))
        assert abs(b[key] - r[key]) <= tol, (key, b[key], r[key])
    higher = bool(res["outcome"].get("higher_is_better"))
    assert b["prob_benefit"] == pytest.approx(1 - r["p_below_0"] if higher else r["p_below_0"], rel=1e-6, abs=1e-9)
    if ref["mid"] is not None:
        want = 1 - r["p_below_mid"] if higher else r["p_below_minus_mid"]
        assert b["prob_important_benefit"] == pytest.approx(want, rel=1e-6, abs=1e-9)
