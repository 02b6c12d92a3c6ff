"""The clinician-facing headline (tpsynth.report.clinical) on hand-made analysis results."""

from __future__ import annotations

import math

import pytest

from tpsynth.report import clinical
from tpsynth.results import AnalysisResult

CAVEAT_DEFAULTS = dict.fromkeys(  # the caveats these tests do not look at
    ["ois", "n_over_ois", "ci_crosses_null", "ci_crosses_mid"], None) | dict.fromkeys(
    ["small_trial_weight", "largest_weight", "high_rob_weight", "not_assessed_weight", "derived_weight",
     "low_confidence_weight", "off_target_weight"], 0.0) | {"k": 0, "n": 0.0}  # fmt: skip


def typed(a: dict) -> AnalysisResult:
    """The hand-made result as the report reads it: the parts these tests do not set are filled in."""
    a = {**a, "labels": {"intervention": ["needling"], "comparator": ["sham"]},
         "settings": {"title": "needling vs sham", **a["settings"]},
         "pooled": {"measure": a["settings"]["measure"], **a["pooled"]},
         "caveats": {**CAVEAT_DEFAULTS, **a["caveats"]},
         "studies": [{"yi": 0.0, "vi": 1.0, "ci_low": -2.0, "ci_high": 2.0, "weight": 50.0, "source": "arms", **s}
                     for s in a.get("studies", [])]}  # fmt: skip
    if a["bayes"]:
        a["bayes"] = {"k": a["pooled"]["k"], "mean": 0.5, "sd": 0.6, "studies": [], "headline_below_k": 5, **a["bayes"]}
    return AnalysisResult.from_dict(a, source="test")


def result(*args, **kw) -> AnalysisResult:
    return typed(result_dict(*args, **kw))


def result_dict(measure="RR", k=2, est=0.5, lo=-7.0, hi=8.0, bayes=True, headline=True, p0=0.25, mid=None,
           higher_is_better=True, rep_sd=None):  # fmt: skip
    mid_scale = math.log(1.25) if measure in ("RR", "OR") else (mid if measure == "MD" else None)
    a = {
        "analysis_id": "x",
        "settings": {"measure": measure, "level": 0.95, "ci": "hksj_adhoc", "intervention_label": "needling",
                     "comparator_label": "sham"},
        "outcome": {"label": "Pain responders (definition per study)", "higher_is_better": higher_is_better,
                    "mid": mid, "reference_scale": [0, 10] if measure != "RR" else None},
        "pooled": {"k": k, "estimate": est, "ci_low": lo, "ci_high": hi, "ci_method": "hksj_adhoc",
                   "certainty": "low" if k else "no usable evidence"},
        "caveats": {"comparator_risk": p0, "mid_on_analysis_scale": mid_scale, "representative_sd": rep_sd},
        "imprecision_judged_on": "the Bayesian 95% credible interval (k < 5)",
        "bayes": None,
    }  # fmt: skip
    if bayes and k >= 2:
        a["bayes"] = {"estimate": 0.55, "ci_low": -0.4, "ci_high": 1.9, "hdi_low": -0.45, "hdi_high": 1.85,
                      "pi_low": -1.0, "pi_high": 2.6, "tau_median": 0.45, "tau_ci_low": 0.1, "tau_ci_high": 1.6,
                      "prob_benefit": 0.908, "prob_important_benefit": 0.791, "mid": mid_scale,
                      "headline": headline, "tau_prior": "lognormal_tau2(-1.83, 1.52)", "mu_prior": "flat",
                      "tau_prior_source": "Turner 2015"}  # fmt: skip
        a["bayes_sensitivity"] = [
            {"kind": "half-normal, half the scale", "prior": "half_normal(0.3)", "estimate": 0.45, "ci_low": -0.1,
             "ci_high": 1.3, "prob_benefit": 0.94, "prob_important_benefit": 0.79, "tau_median": 0.24},
            {"kind": "frequentist REML", "prior": "none", "estimate": 0.74, "ci_low": -7.3, "ci_high": 8.8,
             "prob_benefit": None, "prob_important_benefit": None, "tau_median": 0.5},
        ]  # fmt: skip
    return a


def test_few_studies_lead_with_the_credible_interval_and_probability_in_words():
    h = clinical.headline(result())
    assert h["mode"] == "bayes"
    assert h["lead"] == "1.73 (95% credible interval 0.67 to 6.69)"
    assert h["probabilities"][0] == "about a 79% chance that the benefit is large enough to notice (beyond the MID)"
    assert h["probabilities"][1] == "about a 91% chance that needling helps at all"
    assert h["frequentist"] == "Frequentist: 1.65 (95% CI 0.00091 to 2,981)"
    assert "1 degree of freedom" in h["why"]
    assert h["judged_on"].startswith("the Bayesian 95% credible interval")


def test_absolute_effect_per_1000_at_the_median_comparator_risk():
    h = clinical.headline(result())
    # RR exp(0.55) = 1.733 at 250 per 1000 -> 433; CrI exp(-0.4) * 250 = 168, exp(1.9) * 250 > 1000 -> 1000
    assert h["absolute"].startswith("433 per 1000 with needling (credible interval 168 to 1000) against 250 per 1000 with sham: 183 more per 1000 (82 fewer to 750 more)")  # noqa: E501
    assert "median risk in the comparator arms" in h["absolute_assumed"]
    a = result(measure="OR")
    odds = math.exp(0.55) * 0.25 / 0.75
    assert clinical.headline(a)["absolute"].startswith(f"{round(1000 * odds / (1 + odds))} per 1000")
    assert clinical.headline(result(p0=None))["absolute"] is None


def test_many_studies_lead_with_the_confidence_interval():
    h = clinical.headline(result(k=6, est=-0.46, lo=-1.1, hi=0.17, measure="MD", mid=1.5, headline=False,
                                 higher_is_better=False, p0=None))  # fmt: skip
    assert h["mode"] == "freq" and h["lead"] == "−0.46 (95% CI −1.10 to 0.17)"
    assert h["frequentist"].startswith("Bayesian: ")
    assert h["magnitude"] == "about 0.5 points less pain responders on the 0–10 scale"
    assert h["mid"] == "the smallest difference patients notice is about 1.5 points on the 0–10 scale"


def test_one_trial_and_no_usable_evidence():
    one = clinical.headline(result(k=1, est=-2.3, lo=-2.8, hi=-1.8, measure="MD", mid=1.5, bayes=False))
    assert one["mode"] == "single" and one["lead_label"] == "One trial"
    none = clinical.headline(result(k=0, bayes=False))
    assert none["mode"] == "none" and none["lead"].startswith("No usable evidence")


@pytest.mark.parametrize(("p", "words"), [(0.791, "about a 79% chance"), (0.87, "about an 87% chance"),
                                          (0.995, "more than a 99% chance"), (0.004, "less than a 1% chance"),
                                          (0.08, "about an 8% chance"), (0.11, "about an 11% chance")])  # fmt: skip
def test_chance_in_words(p, words):
    assert clinical.chance(p) == words


def test_prior_sensitivity_says_whether_the_conclusion_depends_on_the_prior():
    ps = clinical.prior_sensitivity(result())
    assert [r["kind"] for r in ps["rows"]] == ["main analysis", "half-normal, half the scale", "frequentist REML"]
    assert ps["depends"] is False and "does not depend" in ps["text"]
    a = result_dict()
    a["bayes_sensitivity"][0].update(ci_low=0.1)  # excludes no effect under one prior only
    assert clinical.prior_sensitivity(typed(a))["depends"] is True


def test_evidence_glance_counts_target_population():
    a = result_dict()
    a["studies"] = [{"study_id": "s1", "n_intervention": 20, "n_comparator": 20},
                    {"study_id": "s2", "n_intervention": 50, "n_comparator": 40}]  # fmt: skip
    b = result_dict()
    b["studies"] = [{"study_id": "s1", "n_intervention": 25, "n_comparator": 20}]
    a, b = typed(a), typed(b)
    studies = [{"study_id": "s1", "region": "gluteal"}, {"study_id": "s2", "region": "neck"},
               {"study_id": "s3", "region": "lumbar"}]  # fmt: skip
    g = clinical.evidence_glance([a, b], studies, {"target": {"label": "low back", "regions": ["gluteal", "lumbar"]}},
                                 shipped=False)  # fmt: skip
    assert (g["n_studies_sheet"], g["n_used"], g["n_target"]) == (3, 2, 1)
    assert (g["participants_used"], g["participants_target"]) == (135, 45)
    assert g["other_regions"] == ["neck"]


def test_missing_mid_is_said_not_left_blank():
    a = result_dict(measure="SMD", mid=None, p0=None)
    a["bayes"]["prob_important_benefit"] = None
    h = clinical.headline(typed(a))
    assert len(h["probabilities"]) == 1 and "no minimal important difference is set" in h["no_mid"]
    a["outcome"]["mid"] = 1.5
    assert "cannot be put on the SMD scale" in clinical.headline(typed(a))["no_mid"]
    assert clinical.headline(result())["no_mid"] is None
