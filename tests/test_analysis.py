"""run_analysis: subgroups, sensitivity analyses and edge cases on the fixture workspace."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tpsynth import pooling
from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings


@pytest.fixture
def base(fixture_inputs):
    return fixture_inputs


def run(base, analysis_id, **overrides):
    config, sheets, arms = base
    config = copy.deepcopy(config)
    config["analyses"][analysis_id].update(overrides)
    return run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms)


def test_subgroups_pool_separately_and_test_differences(base):
    res = run(base, "pain_md", subgroup="region")
    yi = np.array([s["yi"] for s in res["studies"]])
    vi = np.array([s["vi"] for s in res["studies"]])
    region = [s["subgroup"] for s in res["studies"]]
    assert region == ["lumbar", "gluteal", "neck", "gluteal"]
    groups = {g["subgroup"]: g for g in res["subgroups"]}
    assert sorted(groups) == ["gluteal", "lumbar", "neck"]
    gl = [i for i, r in enumerate(region) if r == "gluteal"]
    ref = pooling.pool(yi[gl], vi[gl], method="REML", ci="wald")
    assert_allclose([groups["gluteal"]["estimate"], groups["gluteal"]["se"], groups["gluteal"]["tau2"]],
                    [ref.estimate, ref.se, ref.tau2], rtol=1e-12)  # fmt: skip
    # single-study subgroups are reported as the study itself
    assert groups["lumbar"]["k"] == 1 and groups["lumbar"]["estimate"] == yi[0]
    # RevMan's test: Q between subgroup estimates with inverse-variance weights
    est = np.array([groups[g]["estimate"] for g in sorted(groups)])
    se = np.array([groups[g]["se"] for g in sorted(groups)])
    w = 1 / se**2
    q = float(np.sum(w * (est - np.sum(w * est) / np.sum(w)) ** 2))
    assert_allclose(res["pooled"]["q_between"], q, rtol=1e-12)
    assert res["pooled"]["q_between_df"] == 2


def test_sensitivity_rows(base):
    res = run(base, "pain_md")
    kinds = [s["kind"] for s in res["sensitivity"]]
    assert kinds.count("leave_one_out") == 4 and kinds.count("cumulative") == 4
    # b2005 is the only high risk-of-bias study; c2010 the only low-confidence one
    high = next(s for s in res["sensitivity"] if s["kind"] == "without_high_rob")
    low = next(s for s in res["sensitivity"] if s["kind"] == "without_low_confidence")
    assert (high["study_id"], high["k"], low["study_id"], low["k"]) == ("b2005", 3, "c2010", 3)
    loo_b = next(s for s in res["sensitivity"] if s["kind"] == "leave_one_out" and s["study_id"] == "b2005")
    assert_allclose(high["estimate"], loo_b["estimate"], rtol=1e-12)
    # cumulative by year: a2001 (2001), b2005, c2010, then e2020 (no year) last; the last equals the full model
    cum = [s for s in res["sensitivity"] if s["kind"] == "cumulative"]
    assert [s["study_id"] for s in cum] == ["a2001", "b2005", "c2010", "e2020"]
    assert_allclose(cum[-1]["estimate"], res["pooled"]["estimate"], rtol=1e-12)


def test_k1_is_reported_not_pooled(base):
    res = run(base, "pain_md", timepoint_weeks=[3, 5])  # only a2001 at 4 weeks
    p = res["pooled"]
    assert p["k"] == 1 and p["method"] == "single study" and p["tau2"] is None
    assert_allclose(p["estimate"], -1.5)
    assert res["small_study"]["skipped_reason"].startswith("k = 1 < 10")


def test_k0_has_a_reason(base):
    res = run(base, "pain_md", timepoint_weeks=[50, 60])
    assert res["pooled"]["k"] == 0
    assert res["pooled"]["certainty"] == "very low"
    assert res["plain_language"].startswith("No study provided usable data")


def test_tau2_upper_bound_at_search_limit_is_flagged():
    from tpsynth.analysis import _pooled_dict

    capped = _pooled_dict(pooling.pool(np.array([0.0, 3.0]), np.array([0.01, 0.01]), method="REML", ci="hksj"))
    assert capped["tau2_ci_high"] == 100.0 and capped["tau2_ci_capped"] is True
    assert "search limit 100" in capped["notes"][-1]
    free = _pooled_dict(pooling.pool(np.array([0.0, 0.3, 0.5]), np.array([0.04, 0.05, 0.06]), method="REML", ci="hksj"))
    assert free["tau2_ci_capped"] is False
