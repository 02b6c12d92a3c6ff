"""CINeMA domain rules (tpsynth.cinema) on hand-made comparisons (Nikolakopoulou et al. 2020)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tpsynth.cinema import DEFAULT_RULES, rate_comparison

INFO = {
    "low": {"rob_overall": "low", "region": "lumbar"},
    "high": {"rob_overall": "high", "region": "neck"},
    "na": {"rob_overall": "not_assessed", "region": "lumbar"},
}
FIT = SimpleNamespace(method="REML", tau2=0.1, q_between_random_pvalue=0.5)


def pair(contribution, ci=(-0.5, 0.5), pi=(-0.6, 0.6), split=math.nan):
    return SimpleNamespace(contribution=contribution, ci_low=ci[0], ci_high=ci[1], pi_low=pi[0], pi_high=pi[1],
                           split_pvalue=split)  # fmt: skip


def rate(p, mid=1.0, fit=FIT, rules=None, **kw):
    return rate_comparison(p, fit, INFO, dict(DEFAULT_RULES, **(rules or {})), mid, ["lumbar"], **kw)


def level(r, domain):
    return r["domains"][domain]["level"]


@pytest.mark.parametrize("contrib,rule,expected", [
    ({"low": 1.0}, "average", "no concerns"),
    ({"low": 0.5, "high": 0.5}, "average", "some concerns"),  # mean score 2
    ({"low": 0.7, "high": 0.3}, "average", "some concerns"),  # mean score 1.6 rounds to 2
    ({"low": 0.8, "high": 0.2}, "average", "no concerns"),  # mean score 1.4 rounds to 1
    ({"low": 0.6, "high": 0.4}, "majority", "no concerns"),
    ({"low": 0.6, "high": 0.4}, "highest", "major concerns"),
    ({"na": 1.0}, "average", "major concerns"),  # not assessed counted as high by default
])  # fmt: skip
def test_within_study_bias(contrib, rule, expected):
    r = rate(pair(contrib), rules={"rob_rule": rule})
    assert level(r, "within-study bias") == expected
    assert "contribution" in r["domains"]["within-study bias"]["reason"]


def test_imprecision_and_heterogeneity_zones():
    assert level(rate(pair({"low": 1}, ci=(-0.5, 0.5))), "imprecision") == "no concerns"
    assert level(rate(pair({"low": 1}, ci=(-1.5, 0.5))), "imprecision") == "some concerns"
    assert level(rate(pair({"low": 1}, ci=(-1.5, 1.5), pi=(-2, 2))), "imprecision") == "major concerns"
    assert level(rate(pair({"low": 1}, ci=(-0.5, 0.5), pi=(-1.5, 0.6))), "heterogeneity") == "some concerns"
    assert level(rate(pair({"low": 1}, ci=(-0.5, 0.5), pi=(-1.5, 1.5))), "heterogeneity") == "major concerns"
    # no MID: the CI against no effect
    r = rate(pair({"low": 1}, ci=(-0.5, 0.5)), mid=None)
    assert level(r, "imprecision") == "some concerns" and "no MID" in r["domains"]["imprecision"]["reason"]


def test_incoherence_prefers_node_split():
    assert level(rate(pair({"low": 1}, split=0.005)), "incoherence") == "major concerns"
    assert level(rate(pair({"low": 1}, split=0.05)), "incoherence") == "some concerns"
    r = rate(pair({"low": 1}), fit=SimpleNamespace(method="REML", tau2=0.1, q_between_random_pvalue=0.03))
    assert level(r, "incoherence") == "some concerns" and "design-by-treatment" in r["domains"]["incoherence"]["reason"]


def test_indirectness_reporting_bias_and_overall():
    r = rate(pair({"low": 0.7, "high": 0.3}), k_direct=3)
    assert level(r, "indirectness") == "some concerns"  # 30% from the neck study, outside the target
    assert level(r, "reporting bias") == "no concerns" and "not assessable" in r["domains"]["reporting bias"]["reason"]
    r = rate(pair({"low": 1.0}), k_direct=12, egger_p=0.02)
    assert level(r, "reporting bias") == "some concerns"
    assert r["confidence"] == "moderate" and r["reasons"][0].startswith("reporting bias")
    r = rate(pair({"high": 1.0}, ci=(-1.5, 1.5)), k_direct=1)  # -2 bias, -2 indirectness, -2 imprecision
    assert r["confidence"] == "very low"


def test_reporting_bias_uses_egger_on_the_direct_trials():
    """With at least publication_bias_min_k trials of a comparison, Egger's test on them (engine's
    small_study.egger_test) decides reporting bias; the network passes each trial's own contrast."""
    from tpsynth.network import block_from_contrast
    from tpsynth.network_analysis import _egger_p
    from tpsynth.small_study import egger_test

    ys = [-0.9, -0.7, -0.2, -0.5, 0.1, -0.3, -1.1, -0.4, 0.0, -0.6, -0.8, -0.25]
    vs = [0.30, 0.22, 0.05, 0.12, 0.03, 0.08, 0.40, 0.10, 0.02, 0.15, 0.25, 0.06]
    blocks = [block_from_contrast(f"s{i}", "A", "B", y, v) for i, (y, v) in enumerate(zip(ys, vs, strict=True))]
    p = _egger_p(blocks, "B", "A")
    assert p == egger_test(ys, vs).pvalue and 0 < p < 1
    r = rate(pair({"low": 1.0}), k_direct=len(ys), egger_p=p)
    level_expected = "some concerns" if p < DEFAULT_RULES["publication_bias_p"] else "no concerns"
    assert level(r, "reporting bias") == level_expected
