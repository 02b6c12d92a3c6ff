"""Tests for tpsynth.effect_sizes against metafor::escalc reference values.

References are in tests/reference/effect_sizes.json, written by
tests/reference/make_effect_reference.R (run by hand with R + metafor).

Tolerance: values are compared with ``rtol=1e-10`` (``RTOL``) and an absolute
floor ``atol=1e-14`` (``ATOL``, needed only for reference values that are
exactly zero). jsonlite writes 15 significant digits, so the JSON itself
carries ~5e-16 relative rounding; the formulas are the same floating-point
operations as escalc's, so agreement is far tighter than RTOL in practice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tpsynth import effect_sizes as es

RTOL = 1e-10
ATOL = 1e-14

REF_PATH = Path(__file__).parent / "reference" / "effect_sizes.json"
REF = json.loads(REF_PATH.read_text())
CASES = REF["cases"]

CONTINUOUS = {
    "MD": es.mean_difference,
    "SMD": es.standardised_mean_difference,
}
BINARY = {
    "RR": es.log_risk_ratio,
    "OR": es.log_odds_ratio,
    "RD": es.risk_difference,
}


def _arr(values):
    """JSON list (null for R's NA) -> float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _case_id(case):
    return case["name"]


def _cases(measures):
    return [c for c in CASES if c["measure"] in measures]


# ---------------------------------------------------------------------------
# reference file sanity
# ---------------------------------------------------------------------------


def test_reference_file_provenance():
    assert REF["metafor_version"].startswith("3.8")
    assert REF["r_version"].startswith("R version")
    # escalc's defaults as read from the installed function's formals
    assert REF["escalc_defaults"] == {
        "add": 0.5,
        "to": "only0",
        "drop00": False,
        "vtype": "LS",
    }


def test_reference_covers_required_cases():
    names = {c["name"] for c in CASES}
    for required in [
        "normand1999_MD",
        "normand1999_SMD",
        "bcg_RR",
        "bcg_OR",
        "bcg_RD",
        "zero_one_arm_RR",
        "double_zero_OR",
        "double_zero_RR_drop00",
        "all_events_RD",
        "all_events_RD_drop00",
        "tiny_n_SMD",
        "tiny_n_OR",
        "huge_n_SMD",
        "huge_n_RD",
        "equal_means_SMD",
    ]:
        assert required in names


# ---------------------------------------------------------------------------
# agreement with escalc
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases(CONTINUOUS), ids=_case_id)
def test_continuous_matches_escalc(case):
    x = case["inputs"]
    yi, vi = CONTINUOUS[case["measure"]](x["m1i"], x["sd1i"], x["n1i"], x["m2i"], x["sd2i"], x["n2i"])
    ref_yi, ref_vi = _arr(case["yi"]), _arr(case["vi"])
    assert_array_equal(np.isnan(yi), np.isnan(ref_yi))
    assert_array_equal(np.isnan(vi), np.isnan(ref_vi))
    assert_allclose(yi, ref_yi, rtol=RTOL, atol=ATOL)
    assert_allclose(vi, ref_vi, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", _cases(BINARY), ids=_case_id)
def test_binary_matches_escalc(case):
    x = case["inputs"]
    yi, vi, dropped, adjusted = BINARY[case["measure"]](
        x["ai"], x["n1i"], x["ci"], x["n2i"], **case["options"]
    )
    ref_yi, ref_vi = _arr(case["yi"]), _arr(case["vi"])
    # dropped studies are exactly those escalc returned as NA
    assert_array_equal(dropped, np.isnan(ref_yi))
    assert_array_equal(np.isnan(yi), np.isnan(ref_yi))
    assert_array_equal(np.isnan(vi), np.isnan(ref_vi))
    # adjusted studies are exactly those whose escalc result changed
    # relative to escalc(add = 0, to = "none")
    assert_array_equal(adjusted, np.array(case["adjusted"], dtype=bool))
    assert_allclose(yi, ref_yi, rtol=RTOL, atol=ATOL)
    assert_allclose(vi, ref_vi, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# specific behaviours (independent of the reference file)
# ---------------------------------------------------------------------------


def test_default_keeps_double_zero_and_all_event_studies():
    # escalc's default is drop00=FALSE: corrected, not dropped
    yi, vi, dropped, adjusted = es.log_risk_ratio([0, 10], [10, 10], [0, 10], [20, 10])
    assert not dropped.any()
    assert adjusted.all()
    assert yi[0] == pytest.approx(math.log((0.5 / 11) / (0.5 / 21)))
    assert yi[1] == pytest.approx(0.0)


def test_drop00_drops_no_event_and_all_event_studies():
    yi, vi, dropped, adjusted = es.log_odds_ratio(
        [0, 10, 0, 3], [10, 10, 10, 10], [0, 12, 4, 3], [20, 12, 10, 10], drop00=True
    )
    assert_array_equal(dropped, [True, True, False, False])
    assert_array_equal(adjusted, [False, False, True, False])
    assert np.isnan(yi[:2]).all() and np.isnan(vi[:2]).all()
    assert yi[3] == 0.0


def test_risk_difference_is_continuity_corrected_by_default():
    yi, vi, _, adjusted = es.risk_difference([0], [10], [2], [10])
    assert adjusted[0]
    assert yi[0] == pytest.approx(0.5 / 11 - 2.5 / 11)
    yi0, vi0, _, adjusted0 = es.risk_difference([0], [10], [2], [10], to="none")
    assert not adjusted0[0]
    assert yi0[0] == pytest.approx(-0.2)
    assert vi0[0] == pytest.approx(0.2 * 0.8 / 10)


def test_smd_hand_computed():
    # m = 18, pooled SD = sqrt((9*4 + 9*9)/18) = sqrt(6.5)
    yi, vi = es.standardised_mean_difference(5.0, 2.0, 10, 3.0, 3.0, 10)
    d = 2.0 / math.sqrt(6.5)
    j = math.exp(math.lgamma(9) - math.log(math.sqrt(9)) - math.lgamma(8.5))
    assert j == pytest.approx(1 - 3 / (4 * 18 - 1), rel=1e-3)  # Hedges' approximation
    assert yi == pytest.approx(j * d, rel=1e-14)
    assert vi == pytest.approx(0.2 + (j * d) ** 2 / 40, rel=1e-14)


def test_smd_undefined_for_m_le_1():
    yi, vi = es.standardised_mean_difference([1.0], [1.0], [1], [0.0], [1.0], [2])
    assert np.isnan(yi).all() and np.isnan(vi).all()


def test_input_validation():
    with pytest.raises(ValueError):
        es.log_risk_ratio([5], [4], [1], [10])
    with pytest.raises(ValueError):
        es.log_risk_ratio([1], [4], [1], [10], to="sometimes")
    with pytest.raises(ValueError):
        es.mean_difference([1], [-1], [10], [1], [1], [10])
    with pytest.raises(ValueError):
        es.standardised_mean_difference([1], [1], [0], [1], [1], [10])


# ---------------------------------------------------------------------------
# combining groups (Cochrane Handbook Table 6.5.a)
# ---------------------------------------------------------------------------


def test_combine_groups_worked_example():
    # Group A: n=50, mean=26.5, SD=4.5; group B: n=50, mean=32.9, SD=5.8.
    # By hand: N = 100; M = (50*26.5 + 50*32.9)/100 = 29.7;
    # SD^2 = (49*4.5^2 + 49*5.8^2 + 50*50/100 * (26.5-32.9)^2) / 99
    #      = (992.25 + 1648.36 + 25*40.96) / 99 = 3664.61 / 99
    n, mean, sd = es.combine_groups(50, 26.5, 4.5, 50, 32.9, 5.8)
    assert n == 100
    assert mean == pytest.approx(29.7, rel=1e-14)
    assert sd == pytest.approx(math.sqrt(3664.61 / 99), rel=1e-12)
    assert sd == pytest.approx(6.0841, abs=5e-5)


def test_combine_groups_equals_pooled_raw_data():
    rng = np.random.default_rng(20240601)
    x1 = rng.normal(3.0, 2.0, size=17)
    x2 = rng.normal(-1.0, 0.5, size=29)
    n, mean, sd = es.combine_groups(x1.size, x1.mean(), x1.std(ddof=1), x2.size, x2.mean(), x2.std(ddof=1))
    both = np.concatenate([x1, x2])
    assert n == both.size
    assert mean == pytest.approx(both.mean(), rel=1e-12)
    assert sd == pytest.approx(both.std(ddof=1), rel=1e-12)


def test_combine_identical_groups():
    n, mean, sd = es.combine_groups(40, 12.3, 4.0, 40, 12.3, 4.0)
    assert n == 80
    assert mean == pytest.approx(12.3, rel=1e-14)
    # same mean: only the (n-1) vs (2n-1) denominators differ
    assert sd == pytest.approx(4.0 * math.sqrt(2 * 39 / 79), rel=1e-14)
    assert sd == pytest.approx(4.0, rel=0.01)
    assert sd < 4.0


def test_combine_n_is_sum_vectorised():
    n1 = np.array([3, 10, 250])
    n2 = np.array([7, 1, 125])
    n, mean, sd = es.combine_groups(n1, [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], n2, 0.0, 2.0)
    assert_array_equal(n, n1 + n2)
    assert mean.shape == sd.shape == (3,)


def test_combine_many_three_groups():
    # n, mean, SD: (10, 11.8, 2.4), (20, 15.3, 3.2), (15, 8.4, 4.1).
    # Direct pooled sums: sum x = 550, sum x^2 = 7614.34 (each group's
    # sum x^2 = SD^2 (n-1) + (n mean)^2 / n), so N = 45,
    # M = 550/45 = 12.2222..., SD = sqrt((7614.34 - 550^2/45) / 44) = 4.5028...
    n, mean, sd = es.combine_many([10, 20, 15], [11.8, 15.3, 8.4], [2.4, 3.2, 4.1])
    assert n == 45
    assert mean == pytest.approx(550 / 45, rel=1e-13)
    assert sd == pytest.approx(math.sqrt((7614.34 - 550**2 / 45) / 44), rel=1e-10)
    assert sd == pytest.approx(4.5028, abs=5e-5)


def test_combine_many_along_axis_and_single_group():
    n = np.array([[10, 5], [20, 5], [15, 5]])
    mean = np.array([[11.8, 1.0], [15.3, 1.0], [8.4, 1.0]])
    sd = np.array([[2.4, 1.0], [3.2, 1.0], [4.1, 1.0]])
    cn, cm, cs = es.combine_many(n, mean, sd, axis=0)
    assert_array_equal(cn, [45, 15])
    assert cm[1] == pytest.approx(1.0)
    cn_t, cm_t, cs_t = es.combine_many(n.T, mean.T, sd.T, axis=1)
    assert_allclose(cs_t, cs, rtol=1e-14)
    single = es.combine_many([12], [3.0], [1.5])
    assert single == (12, 3.0, 1.5)


def test_combine_dichotomous_sums():
    events, n = es.combine_dichotomous([[3, 0], [4, 1]], [[10, 5], [12, 6]])
    assert_array_equal(events, [7, 1])
    assert_array_equal(n, [22, 11])
    with pytest.raises(ValueError):
        es.combine_dichotomous([5], [4])
