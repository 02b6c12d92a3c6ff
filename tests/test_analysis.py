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


def run(base, analysis_id, typed=False, **overrides):
    """The analysis's result: its JSON layout (the output contract), or the typed result with ``typed``."""
    config, sheets, arms = base
    config = copy.deepcopy(config)
    config["analyses"][analysis_id].update(overrides)
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config, arms=arms)
    return res if typed else res.to_dict()


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
    assert res["caveat_sentences"][0].startswith("One trial with ")
    assert res["plain_language"].endswith("(evidence from one trial).")


def test_k0_has_a_reason(base):
    res = run(base, "pain_md", timepoint_weeks=[50, 60])
    assert res["pooled"]["k"] == 0
    assert res["pooled"]["certainty"] == "no usable evidence"  # not counted as "very low"
    assert res["plain_language"].startswith("No study provided usable data")
    assert res["caveat_sentences"] == ["No usable evidence: no study reported this comparison and outcome in a usable form."]


def test_tau2_upper_bound_at_search_limit_is_flagged():
    from tpsynth.analysis import _pooled_dict

    capped = _pooled_dict(pooling.pool(np.array([0.0, 3.0]), np.array([0.01, 0.01]), method="REML", ci="hksj"))
    assert capped["tau2_ci_high"] == 100.0 and capped["tau2_ci_capped"] is True
    assert "search limit 100" in capped["notes"][-1]
    free = _pooled_dict(pooling.pool(np.array([0.0, 0.3, 0.5]), np.array([0.04, 0.05, 0.06]), method="REML", ci="hksj"))
    assert free["tau2_ci_capped"] is False


def test_bayes_wiring(base):
    """The analysis's Bayesian result is tpsynth.bayes on its own study effects, with the auto prior
    (Rhodes 2015 scaled by the median comparator SD for MD), benefit in the outcome's direction and
    the MID on the analysis scale; prior sensitivity has half and twice the half-normal scale + REML."""
    from tpsynth import bayes

    res = run(base, "pain_md")
    b = res["bayes"]
    yi = [s["yi"] for s in res["studies"]]
    vi = [s["vi"] for s in res["studies"]]
    sd = res["caveats"]["representative_sd"]
    prior = bayes.auto_tau_prior("MD", "pain", ["needling", "manual"], ["sham", "control"], comparator_sd=sd)
    assert b["tau_prior"] == prior.label and prior.params[0] == round(-3.02 + 2 * np.log(sd), 4)
    ref = bayes.bayes_meta(yi, vi, prior, benefit="lower", mid=1.5)  # pain: lower is better, MID 1.5 points
    assert b["estimate"] == ref.estimate and b["prob_important_benefit"] == ref.prob_important_benefit
    assert b["mid"] == 1.5 and b["headline"] is True  # k = 4 < headline_below_k = 5
    kinds = [s["kind"] for s in res["bayes_sensitivity"]]
    assert kinds[:2] == ["half-normal, half the scale", "half-normal, twice the scale"]
    scale = prior.quantile(0.5) / 0.6744897501960817
    assert res["bayes_sensitivity"][0]["prior"] == f"half_normal({float(f'{scale / 2:.4g}')!r})"
    reml = pooling.pool(np.array(yi), np.array(vi), method="REML", ci="wald")
    assert res["bayes_sensitivity"][2]["estimate"] == reml.estimate
    # the responder outcome has no MID of its own: ratio measures use certainty.ratio_threshold
    rr = run(base, "resp_rr")["bayes"]
    assert rr["mid"] == pytest.approx(np.log(1.25)) and rr["tau_prior"].startswith("lognormal_tau2(")
    # SMD without a representative SD has no MID on its scale: P(important benefit) blank
    smd = run(base, "pain_smd", bayes={"tau_prior": "half_normal(0.5)"})
    assert smd["bayes"]["tau_prior"] == "half_normal(0.5)"
    assert (smd["bayes"]["mid"] is None) == (smd["bayes"]["prob_important_benefit"] is None)


def test_bayes_k1_and_k0(base):
    one = run(base, "pain_md", timepoint_weeks=[3, 5])
    assert one["bayes"] is None and one["bayes_note"].startswith("one trial")
    none = run(base, "pain_md", timepoint_weeks=[100, 200])
    assert none["bayes"] is None and none["bayes_note"] == "no usable study"


def _usable_resp_contrast(base):
    """The fixture with e2020's responder contrast made usable (RR 1.8, 95% CI 1.1 to 2.9)."""
    config, sheets, arms = base
    sheets = copy.deepcopy(sheets)
    for r in sheets.contrasts:
        if r["study_id"] == "e2020" and r["outcome"] == "resp":
            r.update(estimate=1.8, ci_low=1.1, ci_high=2.9, unusable_reason=None)
    return config, sheets, arms


def test_mantel_haenszel_in_the_pipeline(base):
    res = run(_usable_resp_contrast(base), "resp_rr", method="MH")
    p = res["pooled"]
    # a2001 12/20 vs 6/20 and c2010 9/30 vs 4/30 (b2005 has no events in either arm: left out):
    # R = 12*20/40 + 9*30/60 = 10.5, S = 6*20/40 + 4*30/60 = 5, MH RR = R/S = 2.1
    assert [s["study_id"] for s in res["studies"]] == ["a2001", "c2010"]
    assert_allclose(p["estimate"], np.log(2.1), rtol=1e-14)
    assert p["method"] == "MH" and p["ci_method"] == "wald"
    for absent in ("tau2", "tau2_ci_low", "pi_low", "pi_high", "i2_ci_low"):
        assert p[absent] is None, absent
    # weights (%) as metafor's weights(rma.mh): c_i n1_i / N_i = 3 and 2
    assert_allclose([s["weight"] for s in res["studies"]], [60.0, 40.0], rtol=1e-12)
    # the reported contrast cannot enter a Mantel-Haenszel analysis, and the flow says why
    why = [f["reason"] for f in res["flow"] if f["sheet"] == "contrasts" and f["state"] == "not_used"]
    assert any("MH pools 2x2 tables" in w for w in why)
    iv = run(_usable_resp_contrast(base), "resp_rr", method="FE")
    assert [s["study_id"] for s in iv["studies"]] == ["a2001", "c2010", "e2020"]
    # sensitivity analyses refit Mantel-Haenszel; leaving one of two out leaves the other study as is
    loo = [s for s in res["sensitivity"] if s["kind"] == "leave_one_out"]
    assert [s["k"] for s in loo] == [1, 1]
    assert_allclose(loo[0]["estimate"], res["studies"][1]["yi"], rtol=1e-14)


def test_peto_in_the_pipeline(base):
    res = run(base, "resp_rr", method="PETO", measure="OR")
    p = res["pooled"]
    # Peto: sum(O - E) / sum(V); a2001: O = 12, E = 9, V = 18*22*20*20/(40^2*39); c2010: O = 9, E = 6.5,
    # V = 13*47*30*30/(60^2*59)
    v = np.array([18 * 22 * 20 * 20 / (40**2 * 39), 13 * 47 * 30 * 30 / (60**2 * 59)])
    assert_allclose(p["estimate"], (3 + 2.5) / v.sum(), rtol=1e-14)
    assert_allclose(p["se"], 1 / np.sqrt(v.sum()), rtol=1e-14)
    assert p["method"] == "PETO" and p["tau2"] is None


def test_meta_regression_in_the_pipeline(base):
    from tpsynth import meta_analysis

    too_many = run(base, "pain_md", moderators=["year", "region"])["meta_regression"]
    assert too_many["skipped_reason"] == "3 studies with moderator values cannot estimate 4 coefficients and tau²"
    res = run(base, "pain_md", moderators=["year"])
    mr = res["meta_regression"]
    # e2020 has no year: left out of the meta-regression with the reason, not silently
    assert mr["notes"][0] == "e2020 left out of the meta-regression: no value of year"
    assert mr["k"] == 3 and mr["p"] == 2 and mr["terms"] == ["intrcpt", "year"]
    # the numbers are the fit object's (tested against metafor in test_meta.py) on those studies
    keep = [s for s in res["studies"] if s["year"] is not None]
    fit = meta_analysis([s["yi"] for s in keep], [s["vi"] for s in keep], mods={"year": [float(s["year"]) for s in keep]},
                        method="REML", ci="wald")  # fmt: skip
    assert_allclose([c["estimate"] for c in mr["coefficients"]], fit.beta, rtol=1e-12)
    assert_allclose([mr["qm"], mr["qe"]], [fit.qm, fit.qe], rtol=1e-12)
    assert mr["qm_df2"] is None  # Wald: chi², no denominator df
    # 3 studies for 1 moderator: the Cochrane Handbook caveat; 3! = 6 permutations: an exact test
    assert "Cochrane Handbook 10.11.5" in mr["caveat"]
    assert mr["permutation_exact"] is True and mr["permutation_iter"] == 6
    assert [b["moderator"] for b in mr["bubble"]] == ["year"]
    # a text column is a factor; its reference level is stated
    reg = run(base, "pain_md", moderators=["region"], moderator_reference={"region": "lumbar"})["meta_regression"]
    assert reg["k"] == 4 and reg["terms"] == ["intrcpt", "region[gluteal]", "region[neck]"]
    assert reg["reference_levels"] == {"region": "lumbar"} and reg["bubble"] == []


def test_meta_regression_tables_and_bubble_plots(base, tmp_path):
    from tpsynth import tables
    from tpsynth.figures.bubble import bubble_figure
    from tpsynth.figures.common import save_all

    res = run(base, "pain_smd", moderators=["year"], ci="hksj", typed=True)
    t = tables.result_tables([res.to_dict()])
    assert [r["term"] for r in t["meta_regression"]] == ["intrcpt", "year"]
    fit_row = t["meta_regression_fit"][0]
    assert fit_row["moderators"] == "year" and fit_row["qm_df2"] == fit_row["k"] - 2  # F(1, k - p) with HKSJ
    tables.write_csv(tmp_path / "mr.csv", tables.META_REGRESSION_FIT_COLUMNS, t["meta_regression_fit"])
    header = (tmp_path / "mr.csv").read_text().splitlines()[0]
    assert header == ("analysis_id,moderators,k,p,tau2,i2,r2,qm,qm_df,qm_df2,qm_pvalue,qe,qe_df,qe_pvalue,"
                      "permutation_pvalue")  # fmt: skip
    first = [p.read_bytes() for p in save_all(bubble_figure(res, "year"), tmp_path / "a")]
    again = [p.read_bytes() for p in save_all(bubble_figure(res, "year"), tmp_path / "b")]
    assert first == again  # byte-identical PNG, SVG and PDF
    assert b'id="bubble-fit"' in first[1] and b'id="bubble-study-0"' in first[1]
    with pytest.raises(ValueError, match="not a continuous moderator"):
        bubble_figure(res, "region")


def test_common_tau2_subgroups(base):
    from tpsynth import meta_analysis

    res = run(base, "pain_md", subgroup="region", subgroup_model="common_tau2")
    yi = [s["yi"] for s in res["studies"]]
    vi = [s["vi"] for s in res["studies"]]
    fit = meta_analysis(yi, vi, mods={"region": [s["subgroup"] for s in res["studies"]]}, method="REML", ci="wald")
    assert_allclose(res["pooled"]["q_between"], fit.qm, rtol=1e-12)
    assert res["pooled"]["q_between_df"] == 2
    groups = {g["subgroup"]: g for g in res["subgroups"]}
    assert len({g["tau2"] for g in groups.values()}) == 1  # one common tau²
    assert_allclose(groups["gluteal"]["estimate"], fit.beta[0], rtol=1e-12)  # gluteal is the reference level
    # one study per subgroup leaves nothing to estimate a common tau² from: pooled separately, with a note
    few = run(base, "pain_md", subgroup="study_id", subgroup_model="common_tau2")
    assert any("needs more studies (4) than subgroups (4)" in n for n in few["notes"])
    assert few["pooled"]["q_between_df"] == 3 and len(few["subgroups"]) == 4


def test_bayes_probabilities_blank_when_the_direction_is_not_set(base):
    """Imported Cochrane outcomes carry no direction (higher_is_better: null): which side is a benefit is
    unknown, so P(benefit) and P(important benefit) are blank in the main result and the prior sensitivity,
    while the posterior itself is the same as with a known direction."""
    config, sheets, arms = base
    config = copy.deepcopy(config)
    known = run((config, sheets, arms), "pain_md")
    config["outcomes"]["pain"]["higher_is_better"] = None
    unknown = run((config, sheets, arms), "pain_md")
    assert known["bayes"]["prob_benefit"] is not None and known["bayes"]["prob_important_benefit"] is not None
    assert unknown["bayes"]["prob_benefit"] is None and unknown["bayes"]["prob_important_benefit"] is None
    assert unknown["bayes"]["estimate"] == known["bayes"]["estimate"]
    for row in unknown["bayes_sensitivity"]:
        assert row["prob_benefit"] is None and row["prob_important_benefit"] is None
    assert any(row["prob_benefit"] is not None for row in known["bayes_sensitivity"])
