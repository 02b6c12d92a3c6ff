"""The network meta-analyses of data/raw/ with config/config.yaml agree with metafor's rma.mv
(tests/shipped/network.json, made by tests/shipped/make_shipped_network_reference.R from the arm
statistics the pipeline used; run by `make reference`, never by the code tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tpsynth.config import load_config
from tpsynth.network_analysis import network_settings, run_network
from tpsynth.validate import load_sheets

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((ROOT / "tests/shipped/network.json").read_text())
CONFIG = load_config(ROOT / "config/config.yaml")


@pytest.mark.parametrize("network_id", sorted(REF["networks"]))
def test_network_matches_metafor(network_id):
    sheets = load_sheets(CONFIG)
    r = run_network(network_settings(CONFIG, network_id), sheets, CONFIG)
    ref = REF["networks"][network_id]
    assert len(r["parts"]) == len(ref["parts"])
    for part, rp in zip(r["parts"], ref["parts"], strict=True):
        assert part["treatments"] == rp["treatments"]
        if rp["tau2"] is None:
            assert part["tau2"] is None
        else:
            assert math.isclose(part["tau2"], rp["tau2"], rel_tol=1e-6, abs_tol=1e-10)
        assert math.isclose(part["q"], rp["q"], rel_tol=1e-6) and part["q_df"] == rp["q_df"]
        got = {(p["treatment"], p["comparator"]): p for p in part["pairs"]}
        for p in rp["pairs"]:
            g = got[(p["treatment"], p["comparator"])]
            for key in ("estimate", "se", "ci_low", "ci_high"):
                assert math.isclose(g[key], p[key], rel_tol=1e-6, abs_tol=1e-6 * p["se"]), (key, p)
