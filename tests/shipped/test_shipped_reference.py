"""The analyses of the data in data/raw/ with config/config.yaml agree with metafor (tests/shipped/shipped.json).

Not a code test (those never read the shipped data or config, so that they stay green when a researcher
edits them): this directory is left out of the default `pytest` / `make test` run and is run by
`make reference`, which first regenerates the reference from the current data.

The reference is made by tests/shipped/make_shipped_reference.R (R and metafor versions inside):
escalc() recomputed every study's yi/vi from the arm statistics the pipeline used, and rma(),
predict() and confint() pooled them with each analysis's method and CI method. Here the analyses
are rerun from the raw sheets in-process and compared at rtol 1e-6 (Q-profile bounds 1e-5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings, load_config
from tpsynth.harmonise import harmonise
from tpsynth.validate import load_sheets

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((ROOT / "tests/shipped/shipped.json").read_text())


@pytest.fixture(scope="module")
def shipped():
    config = load_config(ROOT / "config/config.yaml")
    sheets = load_sheets(config, base=ROOT)  # sheet paths in the config are relative to the repository
    arms = harmonise(sheets)[0].rows()
    return config, sheets, arms


def test_reference_covers_every_shipped_analysis(shipped):
    config, _, _ = shipped
    assert set(REF["analyses"]) == set(config["analyses"]), "regenerate the reference: make reference"


@pytest.mark.parametrize("analysis_id", sorted(REF["analyses"]))
def test_shipped_analysis_matches_metafor(shipped, analysis_id):
    config, sheets, arms = shipped
    ref = REF["analyses"][analysis_id]
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms).to_dict()  # the JSON layout
    assert [s["study_id"] for s in res["studies"]] == list(np.atleast_1d(ref["study_id"]))
    assert_allclose([s["yi"] for s in res["studies"]], np.atleast_1d(ref["yi"]), rtol=1e-10, atol=1e-14)
    assert_allclose([s["vi"] for s in res["studies"]], np.atleast_1d(ref["vi"]), rtol=1e-10)
    if ref["k"] < 2:
        return
    p = res["pooled"]
    for key in ("estimate", "se", "ci_low", "ci_high", "pvalue", "tau2", "i2", "h2", "q", "q_pvalue", "pi_low",
                "pi_high", "fe_estimate", "fe_ci_low", "fe_ci_high"):  # fmt: skip
        assert_allclose(p[key], ref[key], rtol=1e-6, atol=1e-10, err_msg=key)
    assert_allclose([s["weight"] for s in res["studies"]], ref["weight"], rtol=1e-6)
    for key in ("tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high"):
        if key in ref:
            assert_allclose(p[key], ref[key], rtol=1e-5, atol=1e-8, err_msg=key)
