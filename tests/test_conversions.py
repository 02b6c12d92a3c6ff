"""Tests for tpsynth.conversions against independent references.

Every reference value names its source and tolerance next to it; the sources
are listed in tests/reference/CONVERSIONS_SOURCES.md. "Hand checks" recompute
a published formula with the Python standard library only (math,
statistics.NormalDist), not with scipy or with tpsynth's code.
"""

import math
from statistics import NormalDist

import numpy as np
import pytest

from tpsynth.conversions import (
    fivenum_skewness_test,
    mean_sd_from_fivenum,
    sd_from_ci,
    sd_from_se,
    wan_eta,
    wan_xi,
)

PHI_INV = NormalDist().inv_cdf

# metafor man/conv.fivenum.Rd, first example data frame (studies 1-3; study 4
# reports mean/SD directly and is left out here): case 1 = min/median/max,
# case 2 = q1/median/q3, case 3 = all five, n = 20 each.
RD_N = [20, 20, 20]
RD_MIN = [2, None, 2]
RD_Q1 = [None, 4, 4]
RD_MED = [6, 6, 6]
RD_Q3 = [None, 10, 10]
RD_MAX = [14, None, 14]


# --------------------------------------------------------------------------
# Cochrane Handbook 6.5.2.2: SD from SE and from a CI of a group mean


def test_sd_from_se_hand_check():
    # Handbook 6.5.2.2: SD = SE * sqrt(N). Hand check: 2 * sqrt(100) = 20,
    # 1.5 * sqrt(16) = 6 (exact, tol 1e-12).
    sd, method = sd_from_se([2.0, 1.5, np.nan], [100, 16, 30])
    np.testing.assert_allclose(sd[:2], [20.0, 6.0], rtol=1e-12)
    assert np.isnan(sd[2])
    assert list(method) == ["sd_from_se", "sd_from_se", None]


def test_sd_from_se_rejects_negative_se_and_nonpositive_n():
    with pytest.raises(ValueError, match="row index 1"):
        sd_from_se([1.0, -1.0], [10, 10])
    with pytest.raises(ValueError, match="sample size"):
        sd_from_se(1.0, 0)


def test_sd_from_ci_large_sample_divisor_3_92():
    # Handbook 6.5.2.2: for a 95% CI from a large sample the divisor is
    # 3.92 (= 2 x 1.96, rounded); exact 2 * 1.959964 = 3.919928, so rtol 5e-4.
    n, lo, hi = 100, 10.0, 13.92
    sd, method = sd_from_ci(lo, hi, n)
    np.testing.assert_allclose(sd, math.sqrt(n) * (hi - lo) / 3.92, rtol=5e-4)
    assert list(method) == ["sd_from_ci_z"]


@pytest.mark.parametrize(
    ("level", "divisor"),
    # Handbook 6.5.2.2: "For 90% confidence intervals 3.92 should be replaced
    # by 3.29, and for 99% confidence intervals it should be replaced by 5.15"
    # (3 significant figures, rtol 5e-4).
    [(0.90, 3.29), (0.99, 5.15)],
)
def test_sd_from_ci_other_levels_large_sample(level, divisor):
    sd, _ = sd_from_ci(0.0, 1.0, 400, level=level)
    np.testing.assert_allclose(sd, math.sqrt(400) / divisor, rtol=5e-4)


def test_sd_from_ci_small_sample_t_divisor_4_128():
    # Handbook 6.5.2.2 worked numbers: for n = 25, t(0.975, 24) = 2.0639
    # (Excel tinv(1-0.95, 25-1)) and the divisor 3.92 becomes
    # 2 x 2.0639 = 4.128 (rtol 1e-4, the Handbook's 4-5 significant figures).
    n, lo, hi = 25, 1.2, 3.6
    sd, method = sd_from_ci(lo, hi, n)
    np.testing.assert_allclose(sd, math.sqrt(n) * (hi - lo) / 4.128, rtol=1e-4)
    np.testing.assert_allclose(sd, math.sqrt(n) * (hi - lo) / (2 * 2.0639), rtol=1e-5)
    assert list(method) == ["sd_from_ci_t"]


def test_sd_from_ci_t_below_60_z_from_60():
    # Handbook 6.5.2.2: t distribution when the sample is small ("say fewer
    # than 60"); the brief fixes the switch at n = 60.
    sd, method = sd_from_ci([0.0, 0.0], [1.0, 1.0], [59, 60])
    assert list(method) == ["sd_from_ci_t", "sd_from_ci_z"]
    # Hand check for n = 60: z = NormalDist().inv_cdf(0.975) (tol 1e-12).
    np.testing.assert_allclose(sd[1], math.sqrt(60) / (2 * PHI_INV(0.975)), rtol=1e-12)
    # t quantile with 58 df exceeds z, so the t-based SD is smaller than the
    # z-based SD computed for the same n = 59.
    assert sd[0] < math.sqrt(59) / (2 * PHI_INV(0.975))


def test_sd_from_ci_round_trip_with_se():
    # Consistency: a z-based CI mean +/- z * SE gives back SD = SE * sqrt(n).
    n = np.array([60.0, 150.0, 1000.0])
    se = np.array([0.5, 2.0, 0.1])
    z = PHI_INV(0.975)
    sd_ci, _ = sd_from_ci(5.0 - z * se, 5.0 + z * se, n)
    sd_se, _ = sd_from_se(se, n)
    np.testing.assert_allclose(sd_ci, sd_se, rtol=1e-12)


def test_sd_from_ci_missing_and_invalid():
    sd, method = sd_from_ci([1.0, np.nan], [2.0, 3.0], [30, 30])
    assert np.isfinite(sd[0]) and np.isnan(sd[1])
    assert method[1] is None
    with pytest.raises(ValueError, match="ci_high"):
        sd_from_ci(3.0, 2.0, 30)
    with pytest.raises(ValueError, match=">= 2"):
        sd_from_ci(1.0, 2.0, 1)
    with pytest.raises(ValueError, match="fraction"):
        sd_from_ci(1.0, 2.0, 30, level=95)


# --------------------------------------------------------------------------
# Wan et al. (2014): xi(n) and eta(n)

# Wan et al. 2014, Table 1, "Values of xi(n) in the formula (7) and the
# formula (12) for n <= 50" (exact expected range of n standard normals).
# Formula (9) / metafor use Blom's approximation, so the tolerance is the
# published gap of the approximation: < 1.5% at n = 5, < 0.6% at n = 10,
# < 0.3% for 15 <= n <= 50.
WAN_TABLE1 = [
    (5, 2.326, 0.015),
    (10, 3.078, 0.006),
    (15, 3.472, 0.003),
    (20, 3.735, 0.003),
    (25, 3.931, 0.003),
    (30, 4.086, 0.003),
    (40, 4.322, 0.003),
    (50, 4.498, 0.003),
]


@pytest.mark.parametrize(("n", "xi_table", "rtol"), WAN_TABLE1)
def test_wan_xi_matches_wan2014_table1(n, xi_table, rtol):
    np.testing.assert_allclose(wan_xi(n), xi_table, rtol=rtol)
    # SD from the range: a range equal to the expected range of n standard
    # normal values must give an SD of about 1.
    res = mean_sd_from_fivenum(n, min=0.0, median=xi_table / 2, max=xi_table)
    np.testing.assert_allclose(res.sd, 1.0, rtol=rtol)


def test_wan_xi_eta_hand_check():
    # Hand check of metafor's coding of Wan eq. 9 and eq. 16 with the
    # standard library's normal quantile (tol 1e-12).
    for n in (5, 20, 137):
        xi = 2 * PHI_INV((n - 0.375) / (n + 0.25))
        eta = 2 * PHI_INV((0.75 * n - 0.125) / (n + 0.25))
        np.testing.assert_allclose(wan_xi(n), xi, rtol=1e-12)
        np.testing.assert_allclose(wan_eta(n), eta, rtol=1e-12)


def test_sd_from_iqr_large_n_matches_cochrane_1_35():
    # Cochrane Handbook 6.5.2.5: for a normal distribution the IQR is about
    # 1.35 SDs wide (2 * Phi^-1(0.75) = 1.34898); eta(n) tends to it.
    # rtol 1e-3 for the Handbook's rounded 1.35; 1e-6 against the exact value.
    res = mean_sd_from_fivenum(10_000_000, q1=-1.0, median=0.0, q3=1.0)
    np.testing.assert_allclose(res.sd, 2.0 / 1.35, rtol=1e-3)
    np.testing.assert_allclose(res.sd, 2.0 / (2 * PHI_INV(0.75)), rtol=1e-6)


# --------------------------------------------------------------------------
# Luo et al. (2016/2018) means and Shi et al. (2020) SD


def test_luo_s2_mean_exact_hand_check():
    # Luo eq. 11 by hand: n = 20, w = 0.7 + 0.39/20 = 0.7195;
    # mean = 0.7195 * (4 + 10)/2 + 0.2805 * 6 = 5.0365 + 1.683 = 6.7195 (tol 1e-12).
    res = mean_sd_from_fivenum(20, q1=4, median=6, q3=10)
    np.testing.assert_allclose(res.mean, 6.7195, rtol=1e-12)
    assert list(res.mean_method) == ["mean_luo2016_s2"]
    assert list(res.sd_method) == ["sd_wan2014_iqr"]


def test_luo_s1_mean_exact_hand_check():
    # Luo eq. 7 by hand: n = 16 so n^0.75 = 8 and w = 4/(4 + 8) = 1/3;
    # mean = (1/3) * (2 + 14)/2 + (2/3) * 6 = 8/3 + 4 = 20/3 (tol 1e-12).
    res = mean_sd_from_fivenum(16, min=2, median=6, max=14)
    np.testing.assert_allclose(res.mean, 20 / 3, rtol=1e-12)
    assert list(res.mean_method) == ["mean_luo2016_s1"]
    assert list(res.sd_method) == ["sd_wan2014_range"]


def test_metafor_rd_example_hand_check():
    # metafor man/conv.fivenum.Rd first example (studies 1-3, n = 20), each
    # value recomputed by hand from the papers' equations with the standard
    # library (tol 1e-10). Shi's SD uses the paper's shortcut eq. 11,
    # SD = (b - a)/theta1 + (q3 - q1)/theta2 with
    # theta1 = (2 + 0.14 n^0.6) Phi^-1((n - 0.375)/(n + 0.25)),
    # theta2 = (2 + 2/(0.07 n^0.6)) Phi^-1((0.75 n - 0.125)/(n + 0.25)),
    # the form coded in the R package meta (mean_sd_iqr_range), an algebraic
    # route independent of metafor's eq. 10 coding.
    n, a, q1, m, q3, b = 20.0, 2.0, 4.0, 6.0, 10.0, 14.0
    p_range = PHI_INV((n - 0.375) / (n + 0.25))
    p_iqr = PHI_INV((0.75 * n - 0.125) / (n + 0.25))
    w = 4 / (4 + n**0.75)
    mean1 = w * (a + b) / 2 + (1 - w) * m
    sd1 = (b - a) / (2 * p_range)
    mean2 = 6.7195
    sd2 = (q3 - q1) / (2 * p_iqr)
    w1 = 2.2 / (2.2 + n**0.75)
    w2 = 0.7 - 0.72 / n**0.55
    mean3 = w1 * (a + b) / 2 + w2 * (q1 + q3) / 2 + (1 - w1 - w2) * m
    theta1 = (2 + 0.14 * n**0.6) * p_range
    theta2 = (2 + 2 / (0.07 * n**0.6)) * p_iqr
    sd3 = (b - a) / theta1 + (q3 - q1) / theta2

    res = mean_sd_from_fivenum(RD_N, RD_MIN, RD_Q1, RD_MED, RD_Q3, RD_MAX)
    np.testing.assert_allclose(res.mean, [mean1, mean2, mean3], rtol=1e-10)
    np.testing.assert_allclose(res.sd, [sd1, sd2, sd3], rtol=1e-10)
    assert list(res.mean_method) == ["mean_luo2016_s1", "mean_luo2016_s2", "mean_luo2016_s3"]
    assert list(res.sd_method) == ["sd_wan2014_range", "sd_wan2014_iqr", "sd_shi2020_s3"]


# --------------------------------------------------------------------------
# Skewness test (Shi et al. 2023) as used by metafor


def test_rd_example_1_no_test_significant():
    # metafor man/conv.fivenum.Rd: "none of the tests are significant, so
    # means/SDs are estimated for studies 1-3".
    sk = fivenum_skewness_test(RD_N, RD_MIN, RD_Q1, RD_MED, RD_Q3, RD_MAX)
    assert not sk.significant.any()
    assert list(sk.scenario) == [1, 2, 3]
    # Hand check of the case-1 statistic and critical value (tol 1e-12):
    # T = |2 + 14 - 12| / 12 = 1/3, crit = 1/ln(29) + 2.5/21.
    np.testing.assert_allclose(sk.statistic[0], 1 / 3, rtol=1e-12)
    np.testing.assert_allclose(sk.critical[0], 1 / math.log(29) + 2.5 / 21, rtol=1e-12)
    # Case 2: T = |4 + 10 - 12| / 6 = 1/3, crit = 2.65/sqrt(20) - 6/20^2.
    # Case 3: T = max(2.65 ln(0.6 * 20)/sqrt(20) * 1/3, 1/3),
    # crit = 3/sqrt(20) - 40/20^3 (metafor constants, "Shi et al. (2023)").
    np.testing.assert_allclose(
        sk.statistic[1:], [1 / 3, max(2.65 * math.log(12) / math.sqrt(20) / 3, 1 / 3)], rtol=1e-12
    )
    np.testing.assert_allclose(
        sk.critical[1:], [2.65 / math.sqrt(20) - 6 / 400, 3 / math.sqrt(20) - 40 / 8000], rtol=1e-12
    )


def test_rd_example_3_skewed_study_not_estimated():
    # metafor man/conv.fivenum.Rd third example: study 3 has q3 = 14,
    # max = 20; "the mean and SD are not estimated for study 3; this is
    # because the test for skewness is significant for this study".
    q3 = [None, 10, 14]
    mx = [14, None, 20]
    sk = fivenum_skewness_test(RD_N, RD_MIN, RD_Q1, RD_MED, q3, mx)
    assert list(sk.significant) == [False, False, True]
    res = mean_sd_from_fivenum(RD_N, RD_MIN, RD_Q1, RD_MED, q3, mx)
    assert np.isfinite(res.mean[:2]).all() and np.isfinite(res.sd[:2]).all()
    assert np.isnan(res.mean[2]) and np.isnan(res.sd[2])
    assert res.mean_method[2] is None and res.sd_method[2] is None
    # test=False (metafor's test=FALSE) estimates it anyway.
    res_all = mean_sd_from_fivenum(RD_N, RD_MIN, RD_Q1, RD_MED, q3, mx, test=False)
    assert np.isfinite(res_all.mean).all()
    assert res_all.sd_method[2] == "sd_shi2020_s3"


# --------------------------------------------------------------------------
# metafor's handling of n and of partial summaries


def test_n_below_5_not_converted():
    # metafor: "the sample size must be at least 5 ... Studies where the
    # sample size is smaller are not included in the estimation".
    res = mean_sd_from_fivenum([4, 5, np.nan], q1=1, median=2, q3=3)
    assert np.isnan(res.mean[0]) and np.isnan(res.sd[0])
    assert np.isfinite(res.mean[1]) and np.isfinite(res.sd[1])
    assert np.isnan(res.mean[2]) and np.isnan(res.sd[2])
    assert list(res.sd_method) == [None, "sd_wan2014_iqr", None]


def test_sd_without_median():
    # metafor Rd: "The median is not actually needed in the methods by Wan et
    # al. (2014) and Shi et al. (2020a) and hence it is possible to estimate
    # the SD even if the median is unavailable"; the mean is then missing.
    res = mean_sd_from_fivenum(
        [30, 30, 30], min=[1, None, 1], q1=[None, 3, 3], q3=[None, 7, 7], max=[9, None, 9]
    )
    assert np.isnan(res.mean).all()
    assert np.isfinite(res.sd).all()
    assert list(res.mean_method) == [None, None, None]
    assert list(res.sd_method) == ["sd_wan2014_range", "sd_wan2014_iqr", "sd_shi2020_s3"]
    with_median = mean_sd_from_fivenum(
        [30, 30, 30], [1, None, 1], [None, 3, 3], [5, 5, 5], [None, 7, 7], [9, None, 9]
    )
    np.testing.assert_allclose(res.sd, with_median.sd, rtol=1e-12)


def test_incomplete_patterns_not_converted():
    # metafor's cases need {min, max}, {q1, q3} or all four; e.g. min, q1,
    # median, max without q3, the median alone, or min alone give nothing.
    res = mean_sd_from_fivenum(
        [40, 40, 40], min=[1, None, 1], q1=[2, None, None], median=[4, 4, None], max=[9, None, None]
    )
    assert np.isnan(res.mean).all() and np.isnan(res.sd).all()
    assert list(res.mean_method) == [None, None, None]


def test_unordered_values_raise():
    with pytest.raises(ValueError, match="row index 1"):
        mean_sd_from_fivenum([20, 20], q1=[1, 5], median=[2, 4], q3=[3, 6])
    with pytest.raises(ValueError):
        mean_sd_from_fivenum(20, min=5, median=6, max=4)
    # metafor drops rows with n < 5 before checking the order.
    res = mean_sd_from_fivenum(4, min=5, median=6, max=4)
    assert np.isnan(res.sd).all()


# --------------------------------------------------------------------------
# properties


def _random_fivenum(rng, size):
    x = np.sort(rng.normal(size=(size, 5)) * rng.uniform(0.5, 5, size=(size, 1)), axis=1)
    n = rng.integers(5, 500, size=size)
    return n, x


def test_s3_mean_within_range_for_any_ordered_summary():
    # Luo eq. 15 weights w1, w2, 1 - w1 - w2 are all positive for n >= 5, so
    # the mean is a convex combination of mid-range, mid-quartile range and
    # median and must lie within [min, max] even for skewed summaries.
    rng = np.random.default_rng(20240601)
    n, x = _random_fivenum(rng, 2000)
    res = mean_sd_from_fivenum(n, *x.T, test=False)
    assert np.isfinite(res.mean).all()
    assert (res.mean >= x[:, 0] - 1e-12).all() and (res.mean <= x[:, 4] + 1e-12).all()


def test_s3_mean_between_quartiles_for_normal_samples():
    # Five-number summaries of simulated normal samples (that pass the
    # skewness test, metafor's default) give a mean between q1 and q3.
    rng = np.random.default_rng(11)
    ns = rng.integers(5, 400, size=1000)
    x = np.array([np.quantile(rng.normal(3.0, 2.0, size=k), [0, 0.25, 0.5, 0.75, 1]) for k in ns])
    res = mean_sd_from_fivenum(ns, *x.T)
    ok = np.isfinite(res.mean)
    assert ok.mean() > 0.8  # most normal samples pass the skewness test
    assert (res.mean[ok] >= x[ok, 1]).all() and (res.mean[ok] <= x[ok, 3]).all()


def test_s3_sd_between_range_and_iqr_estimates():
    # Shi eq. 10 is a convex combination of the Wan range and IQR estimates.
    rng = np.random.default_rng(7)
    n, x = _random_fivenum(rng, 500)
    s3 = mean_sd_from_fivenum(n, *x.T, test=False).sd
    s1 = mean_sd_from_fivenum(n, min=x[:, 0], max=x[:, 4], test=False).sd
    s2 = mean_sd_from_fivenum(n, q1=x[:, 1], q3=x[:, 3], test=False).sd
    lo, hi = np.minimum(s1, s2), np.maximum(s1, s2)
    assert ((s3 >= lo - 1e-12) & (s3 <= hi + 1e-12)).all()


def test_larger_n_same_spread_gives_smaller_sd():
    n = np.array([5, 10, 20, 50, 100, 1000, 10000])
    by_range = mean_sd_from_fivenum(n, min=0.0, median=5.0, max=10.0).sd
    by_iqr = mean_sd_from_fivenum(n, q1=0.0, median=1.0, q3=2.0).sd
    assert (np.diff(by_range) < 0).all()
    assert (np.diff(by_iqr) < 0).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min": -3.0, "median": 0.0, "max": 3.0},
        {"q1": -1.0, "median": 0.0, "q3": 1.0},
        {"min": -3.0, "q1": -1.0, "median": 0.0, "q3": 1.0, "max": 3.0},
    ],
)
def test_symmetric_summary_mean_equals_median_and_equivariance(kwargs):
    n = [7, 25, 300]
    base = mean_sd_from_fivenum(n, **kwargs)
    np.testing.assert_allclose(base.mean, 0.0, atol=1e-12)
    shifted = mean_sd_from_fivenum(n, **{k: 10.0 + 2.5 * v for k, v in kwargs.items()})
    np.testing.assert_allclose(shifted.mean, 10.0 + 2.5 * base.mean, rtol=1e-12)
    np.testing.assert_allclose(shifted.sd, 2.5 * base.sd, rtol=1e-12)


def test_vectorised_rows_match_single_rows():
    rows = [
        {"n": 12, "min": 1.0, "median": 3.0, "max": 8.0},
        {"n": 40, "q1": 2.0, "median": 3.0, "q3": 4.5},
        {"n": 90, "min": 0.0, "q1": 2.0, "median": 3.0, "q3": 4.0, "max": 7.0},
    ]
    keys = ["n", "min", "q1", "median", "q3", "max"]
    cols = {k: [r.get(k) for r in rows] for k in keys}
    together = mean_sd_from_fivenum(**cols)
    for i, r in enumerate(rows):
        single = mean_sd_from_fivenum(**r)
        np.testing.assert_allclose(together.mean[i], single.mean[0], rtol=1e-12)
        np.testing.assert_allclose(together.sd[i], single.sd[0], rtol=1e-12)
        assert together.sd_method[i] == single.sd_method[0]
