"""Caveats, GRADE rating and plain-language statements."""

from __future__ import annotations

import math

import pytest
from numpy.testing import assert_allclose
from statsmodels.stats.power import NormalIndPower

from tpsynth.certainty import (
    DEFAULT_RULES,
    caveat_sentences,
    compute_caveats,
    grade,
    optimal_information_size,
    plain_language,
    smd_in_points,
)


def test_ois_continuous_matches_statsmodels_power():
    # 4 (z_0.975 + z_0.8)^2 SD^2 / MID^2 is two arms of the normal two-sample size (statsmodels NormalIndPower)
    per_arm = NormalIndPower().solve_power(effect_size=1.5 / 2.5, alpha=0.05, power=0.8, ratio=1.0)
    assert_allclose(optimal_information_size("continuous", DEFAULT_RULES, sd=2.5, mid=1.5), 2 * per_arm, rtol=1e-4)  # statsmodels also counts the far tail: ~2e-6 apart
    # the textbook figure: SMD of 0.2 needs about 785 participants (Guyatt 2011, GRADE 6)
    assert round(optimal_information_size("continuous", DEFAULT_RULES, sd=1, mid=0.2)) == 785


@pytest.mark.parametrize(("p0", "hib"), [(0.2, False), (0.4, True)])
def test_ois_dichotomous_matches_statsmodels_power(p0, hib):
    p1 = p0 * (1.25 if hib else 0.75)
    es = abs(p0 - p1) / math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / 2)
    per_arm = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0)
    assert_allclose(optimal_information_size("dichotomous", DEFAULT_RULES, p0=p0, higher_is_better=hib), 2 * per_arm, rtol=1e-4)  # statsmodels also counts the far tail: ~2e-6 apart


def make_result(yi_ci=(-1.0, -1.6, -0.4), k=4, i2=10.0, rob="low", region="lumbar", n=60, measure="MD", pi=(-1.8, -0.2)):
    est, lo, hi = yi_ci
    studies = [
        {"weight": 100 / k, "n_intervention": n, "n_comparator": n, "rob_overall": rob, "region": region,
         "derived": False, "low_confidence": False, "comparator_sd_ref": 2.0, "comparator_risk": None}
        for _ in range(k)
    ]  # fmt: skip
    return {
        "settings": {"measure": measure, "intervention_label": "dry needling"},
        "outcome": {"label": "Pain intensity (VAS)", "higher_is_better": False, "mid": 1.0, "reference_scale": [0, 10]},
        "pooled": {"k": k, "estimate": est, "ci_low": lo, "ci_high": hi, "i2": i2, "pi_low": pi[0], "pi_high": pi[1],
                   "n_participants": 2 * n * k},
        "studies": studies, "small_study": {}, "labels": {"intervention": ["Dry needling"]},
    }  # fmt: skip


def test_high_certainty_when_nothing_to_downgrade():
    res = make_result()
    c = compute_caveats(res, DEFAULT_RULES, ["lumbar"])
    # OIS = 4 * 7.849 * 4 / 1 = 125.6 < 480 participants
    assert c.ois < c.n
    assert grade(res, c, DEFAULT_RULES) == ("high", [])
    assert plain_language(res, "high", c) == "Dry needling reduces pain intensity."


def test_each_domain_downgrades_with_reason():
    res = make_result(rob="not_assessed", region="neck", i2=60.0)
    c = compute_caveats(res, DEFAULT_RULES, ["lumbar"])
    level, reasons = grade(res, c, DEFAULT_RULES)
    assert level == "low" or level == "very low"
    assert [r.split(" (")[0] for r in reasons] == ["risk of bias", "inconsistency", "indirectness"]
    assert level == "very low"


def test_imprecision_two_levels_when_ci_spans_benefit_and_harm():
    res = make_result(yi_ci=(0.1, -2.0, 2.2), n=10)
    c = compute_caveats(res, DEFAULT_RULES, None)
    level, reasons = grade(res, c, DEFAULT_RULES)
    assert reasons == [
        "imprecision (-2): the CI includes no effect; 80 participants, below the optimal information size of 126; "
        "the CI includes both important benefit and important harm"
    ]
    assert level == "low"
    assert plain_language(res, level, c) == "Dry needling may result in little to no difference in pain intensity."


def test_very_low_wording_and_smd_translation():
    res = make_result(measure="SMD", yi_ci=(-0.5, -0.9, -0.1))
    c = compute_caveats(res, DEFAULT_RULES, None)
    assert plain_language(res, "very low", c) == "The evidence is very uncertain about the effect of dry needling on pain intensity."
    pts = smd_in_points(res, c)
    assert_allclose([pts["estimate"], pts["ci_low"], pts["ci_high"]], [-1.0, -1.8, -0.2])
    assert_allclose(c.mid_on_analysis_scale, 0.5)  # MID 1 point / representative SD 2


def test_weights_shares():
    res = make_result(k=2, n=30)
    res["studies"][0].update(rob_overall="high", derived=True, n_intervention=80, n_comparator=80, weight=70.0)
    res["studies"][1].update(weight=30.0)
    c = compute_caveats(res, DEFAULT_RULES, ["lumbar"])
    assert_allclose([c.high_rob_weight, c.derived_weight, c.small_trial_weight, c.largest_weight], [0.7, 0.7, 0.3, 0.7])


def test_imprecision_without_ois_counts_small_sample_and_null():
    res = make_result(k=2, n=30, yi_ci=(0.3, -2.0, 2.5))
    res["outcome"]["mid"] = None  # no MID: no OIS can be computed
    c = compute_caveats(res, DEFAULT_RULES, None)
    assert c.ois is None
    level, reasons = grade(res, c, DEFAULT_RULES)
    assert reasons == [
        "imprecision (-2): the CI includes no effect; only 120 participants (optimal information size not computable)"
    ]
    assert level == "low"


def test_imprecision_judged_on_the_given_interval():
    """With a credible interval given (k below bayes.headline_below_k) imprecision judges it, by name."""
    res = make_result(yi_ci=(0.1, -2.0, 2.2), n=10)
    c = compute_caveats(res, DEFAULT_RULES, None)
    level, reasons = grade(res, c, DEFAULT_RULES, interval=(-1.9, -0.2, "the 95% credible interval"))
    assert reasons == ["imprecision (-1): 80 participants, below the optimal information size of 126"]
    level, reasons = grade(res, c, DEFAULT_RULES, interval=(-1.5, 1.2, "the 95% credible interval"))
    assert reasons == [
        "imprecision (-2): the 95% credible interval includes no effect; 80 participants, below the optimal "
        "information size of 126; the 95% credible interval includes both important benefit and important harm"
    ]


@pytest.mark.parametrize(("ci", "better_up", "says"), [
    ((-3.0, -1.2), False, "an important benefit is shown"),
    ((-3.0, -1.2), True, "an important harm is shown"),
    ((1.2, 3.0), True, "an important benefit is shown"),
    ((-0.8, 0.9), False, "an important effect in either direction is ruled out"),
    ((-1.5, 0.2), False, "neither shown nor ruled out"),
])
def test_mid_sentence_means_one_thing(ci, better_up, says):
    """'On one side of the MID' was printed both when a benefit was shown and when one was ruled out."""
    from tpsynth.certainty import mid_sentence

    res = make_result(yi_ci=(sum(ci) / 2, *ci))
    res["outcome"]["higher_is_better"] = better_up
    c = compute_caveats(res, DEFAULT_RULES, None)
    assert says in mid_sentence(res, c)
    assert says in " ".join(caveat_sentences(res, c))
