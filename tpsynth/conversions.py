"""Derive means and standard deviations from other reported summary statistics.

Pure, vectorised numpy/scipy functions (no pandas, no I/O). Every function
accepts scalars or array-likes (broadcast against each other, one element per
study arm), returns 1-D ``float`` arrays of derived values and, for every
derived value, a method label that downstream code stores to flag the value as
derived. A label is ``None`` where nothing was derived (missing input, row
excluded); the value is then ``nan``.

Missing inputs (``nan`` or ``None``) propagate to ``nan``. Values that cannot
be right (negative SE, ``ci_high < ci_low``, quantiles out of order, ...)
raise :class:`ValueError` naming the offending rows, because they indicate a
data-entry error rather than a missing number.

Method labels
-------------
``"sd_from_se"``
    SD = SE * sqrt(n) (Cochrane Handbook, section 6.5.2.2).
``"sd_from_ci_t"``
    SD = sqrt(n) * (upper - lower) / (2 * t_{1-alpha/2, n-1}); used when
    n < 60 (Cochrane Handbook, section 6.5.2.2).
``"sd_from_ci_z"``
    As above with the standard normal quantile (3.92 = 2 * 1.96 for a 95% CI);
    used when n >= 60.
``"mean_luo2016_s1"``
    Mean from min, median, max (Luo et al., eq. 7).
``"mean_luo2016_s2"``
    Mean from q1, median, q3 (Luo et al., eq. 11).
``"mean_luo2016_s3"``
    Mean from the full five-number summary (Luo et al., eq. 15).
``"sd_wan2014_range"``
    SD from the range, min and max (Wan et al., eq. 9).
``"sd_wan2014_iqr"``
    SD from the interquartile range, q1 and q3 (Wan et al., eq. 16).
``"sd_shi2020_s3"``
    SD from min, q1, q3, max (Shi et al. 2020, eq. 10).

The five-number-summary methods are the defaults of metafor's
``conv.fivenum()`` (``method = "default"`` = ``"luo/wan/shi"``,
``dist = "norm"``, ``test = TRUE``; metafor >= 4.0, source file
``R/conv.fivenum.r``), reproduced formula for formula including the sample
size handling (rows with n < 5 are not converted), the selection of the three
scenarios, and the skewness test of Shi et al. (2023) that by default stops a
row from being converted. The log-normal variant (``dist = "lnorm"``) and the
alternative methods (``qe``, ``bc``, ``mln``, ``blue``, ``hozo2005``, ...) are
not implemented.

References
----------
Higgins JPT, Li T, Deeks JJ (editors). Chapter 6: Choosing effect measures and
computing estimates of effect. In: Higgins JPT, Thomas J, Chandler J, et al.
(editors). Cochrane Handbook for Systematic Reviews of Interventions, version
6.4. Cochrane, 2023. Section 6.5.2 (6.5.2.2: SDs from SEs and CIs for group
means).

Luo D, Wan X, Liu J, Tong T. Optimally estimating the sample mean from the
sample size, median, mid-range, and/or mid-quartile range. Stat Methods Med
Res. 2018;27(6):1785-1805 (published online 2016).
doi:10.1177/0962280216669183

Wan X, Wang W, Liu J, Tong T. Estimating the sample mean and standard
deviation from the sample size, median, range and/or interquartile range.
BMC Med Res Methodol. 2014;14:135. doi:10.1186/1471-2288-14-135

Shi J, Luo D, Weng H, Zeng X-T, Lin L, Chu H, Tong T. Optimally estimating
the sample standard deviation from the five-number summary. Res Synth
Methods. 2020;11(5):641-654. doi:10.1002/jrsm.1429

Shi J, Luo D, Wan X, Liu Y, Liu J, Bian Z, Tong T. Detecting the skewness of
data from the five-number summary and its application in meta-analysis.
Stat Methods Med Res. 2023. doi:10.1177/09622802231172043

Viechtbauer W. Conducting meta-analyses in R with the metafor package.
J Stat Softw. 2010;36(3):1-48 (function ``conv.fivenum``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special  # not scipy.stats: its import costs ~0.5 s per pipeline job

__all__ = [
    "CI_T_MAX_N",
    "FIVENUM_MIN_N",
    "FivenumResult",
    "SkewnessTest",
    "mean_sd_from_fivenum",
    "fivenum_skewness_test",
    "sd_from_ci",
    "sd_from_se",
    "wan_eta",
    "wan_xi",
]

#: Below this sample size a CI for a mean is taken to be t-based (Cochrane
#: Handbook 6.5.2.2: "say fewer than 60 participants in each group").
CI_T_MAX_N = 60

#: metafor's ``conv.fivenum()`` does not convert rows with n < 5.
FIVENUM_MIN_N = 5

SD_FROM_SE = "sd_from_se"
SD_FROM_CI_T = "sd_from_ci_t"
SD_FROM_CI_Z = "sd_from_ci_z"
MEAN_LUO_S1 = "mean_luo2016_s1"
MEAN_LUO_S2 = "mean_luo2016_s2"
MEAN_LUO_S3 = "mean_luo2016_s3"
SD_WAN_RANGE = "sd_wan2014_range"
SD_WAN_IQR = "sd_wan2014_iqr"
SD_SHI_S3 = "sd_shi2020_s3"


class FivenumResult(NamedTuple):
    """Result of :func:`mean_sd_from_fivenum` (unpacks as a 4-tuple)."""

    mean: np.ndarray
    sd: np.ndarray
    mean_method: np.ndarray
    sd_method: np.ndarray


class SkewnessTest(NamedTuple):
    """Result of :func:`fivenum_skewness_test`."""

    statistic: np.ndarray
    critical: np.ndarray
    significant: np.ndarray
    scenario: np.ndarray


# --------------------------------------------------------------------------
# helpers


def _as_float(x, shape=None) -> np.ndarray:
    """Convert to a float array; ``None`` (or elements that are None) -> nan."""
    if x is None:
        return np.full(shape if shape is not None else (), np.nan)
    arr = np.asarray(x, dtype=object if _has_none(x) else None)
    if arr.dtype == object:
        arr = np.where(arr == None, np.nan, arr)  # noqa: E711 - elementwise
    return arr.astype(float)


def _has_none(x) -> bool:
    if x is None:
        return True
    if isinstance(x, (list, tuple)):
        return any(v is None for v in x)
    return False


def _broadcast(*arrays) -> list[np.ndarray]:
    present = [a for a in arrays if a is not None]
    shape = np.broadcast_shapes(*(np.shape(_as_float(a)) for a in present))
    out = []
    for a in arrays:
        arr = _as_float(a, shape)
        out.append(np.atleast_1d(np.broadcast_to(arr, shape)).astype(float))
    return out


def _labels(mask: np.ndarray, label: str) -> np.ndarray:
    out = np.full(mask.shape, None, dtype=object)
    out[mask] = label
    return out


def _check(bad: np.ndarray, message: str) -> None:
    if np.any(bad):
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(i) for i in rows[:10])
        more = "" if rows.size <= 10 else f", ... ({rows.size} rows)"
        raise ValueError(f"{message} (row index {shown}{more})")


def wan_xi(n) -> np.ndarray:
    """Wan et al. (2014) xi(n) = 2 * Phi^-1((n - 0.375) / (n + 0.25)).

    Approximates the expected range of ``n`` standard normal variables
    (Blom's approximation; Wan et al. 2014, eq. 9, as coded in metafor).

    Parameters
    ----------
    n : array_like
        Sample size(s).

    Returns
    -------
    numpy.ndarray
    """
    n = np.asarray(n, dtype=float)
    return 2.0 * special.ndtri((n - 0.375) / (n + 0.25))


def wan_eta(n) -> np.ndarray:
    """Wan et al. (2014) eta(n) = 2 * Phi^-1((0.75 n - 0.125) / (n + 0.25)).

    Approximates the expected interquartile range of ``n`` standard normal
    variables (Wan et al. 2014, eq. 16, as coded in metafor). Tends to
    2 * Phi^-1(0.75) = 1.349 as n grows.

    Parameters
    ----------
    n : array_like
        Sample size(s).

    Returns
    -------
    numpy.ndarray
    """
    n = np.asarray(n, dtype=float)
    return 2.0 * special.ndtri((0.75 * n - 0.125) / (n + 0.25))


# --------------------------------------------------------------------------
# SE and CI of a group mean


def sd_from_se(se, n) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviation from the standard error of a group mean.

    ``SD = SE * sqrt(n)`` (Cochrane Handbook, section 6.5.2.2). Only valid for
    the SE of a single group's mean, not of a difference in means.

    Parameters
    ----------
    se : array_like
        Standard error(s) of the group mean; must be >= 0 where present.
    n : array_like
        Group sample size(s); must be > 0 where present.

    Returns
    -------
    sd : numpy.ndarray
        Derived SDs (``nan`` where ``se`` or ``n`` is missing).
    method : numpy.ndarray of object
        ``"sd_from_se"`` where an SD was derived, else ``None``.

    Raises
    ------
    ValueError
        If any present ``se`` is negative or any present ``n`` is not positive.

    References
    ----------
    Higgins JPT, Li T, Deeks JJ (eds). Cochrane Handbook for Systematic
    Reviews of Interventions v6.4, chapter 6, section 6.5.2.2.
    """
    se, n = _broadcast(se, n)
    _check(se < 0, "standard error must be >= 0")
    _check(n <= 0, "sample size must be > 0")
    sd = se * np.sqrt(n)
    return sd, _labels(np.isfinite(sd), SD_FROM_SE)


def sd_from_ci(ci_low, ci_high, n, level=0.95) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviation from a confidence interval for a group mean.

    ``SD = sqrt(n) * (upper - lower) / (2 q)`` with ``q`` the
    ``1 - (1 - level) / 2`` quantile of Student's t distribution with
    ``n - 1`` degrees of freedom when ``n < 60``, else of the standard normal
    distribution (Cochrane Handbook, section 6.5.2.2: for a 95% CI from a
    large sample the divisor is 3.92 = 2 x 1.96; for small samples, "say
    fewer than 60 participants in each group", the CI should have been
    computed with a t value, e.g. 2 x 2.0639 = 4.128 for n = 25). The
    Handbook notes that for n between 60 and 100 either may have been used;
    this function uses the normal quantile there. The CI must be symmetric
    about the mean.

    Parameters
    ----------
    ci_low, ci_high : array_like
        Lower and upper limits of the CI for the group mean.
    n : array_like
        Group sample size(s); must be >= 2 where present.
    level : float or array_like, default 0.95
        Confidence level as a fraction in (0, 1) (not a percentage).

    Returns
    -------
    sd : numpy.ndarray
        Derived SDs (``nan`` where an input is missing).
    method : numpy.ndarray of object
        ``"sd_from_ci_t"`` (n < 60) or ``"sd_from_ci_z"`` (n >= 60) where an
        SD was derived, else ``None``.

    Raises
    ------
    ValueError
        If ``ci_high < ci_low``, ``n < 2`` or ``level`` is outside (0, 1).

    References
    ----------
    Higgins JPT, Li T, Deeks JJ (eds). Cochrane Handbook for Systematic
    Reviews of Interventions v6.4, chapter 6, section 6.5.2.2.
    """
    lo, hi, n, level = _broadcast(ci_low, ci_high, n, level)
    _check(hi < lo, "ci_high must be >= ci_low")
    _check(n < 2, "sample size must be >= 2 to derive an SD from a CI")
    _check((level <= 0) | (level >= 1), "level must be a fraction in (0, 1)")
    p = 1.0 - (1.0 - level) / 2.0
    use_t = n < CI_T_MAX_N
    with np.errstate(invalid="ignore"):
        q = np.where(use_t, special.stdtrit(np.where(use_t, n - 1.0, 1.0), p), special.ndtri(p))
    sd = np.sqrt(n) * (hi - lo) / (2.0 * q)
    ok = np.isfinite(sd)
    method = np.full(sd.shape, None, dtype=object)
    method[ok & use_t] = SD_FROM_CI_T
    method[ok & ~use_t] = SD_FROM_CI_Z
    return sd, method


# --------------------------------------------------------------------------
# five-number summary (metafor conv.fivenum defaults)


def _scenarios(mn, q1, q3, mx):
    """metafor's case definitions (the median is not used to pick a case)."""
    has_mn, has_q1, has_q3, has_mx = (~np.isnan(v) for v in (mn, q1, q3, mx))
    s1 = has_mn & ~has_q1 & ~has_q3 & has_mx
    s2 = ~has_mn & has_q1 & has_q3 & ~has_mx
    s3 = has_mn & has_q1 & has_q3 & has_mx
    return s1, s2, s3


def _prepare_fivenum(n, mn, q1, med, q3, mx):
    n, mn, q1, med, q3, mx = _broadcast(n, mn, q1, med, q3, mx)
    # metafor: rows with n < 5 are excluded (all inputs set to NA).
    excluded = n < FIVENUM_MIN_N
    for arr in (n, mn, q1, med, q3, mx):
        arr[excluded] = np.nan
    # metafor: stop if min <= q1 <= median <= q3 <= max fails (NAs skipped).
    vals = np.stack([mn, q1, med, q3, mx], axis=-1)
    unsorted = np.zeros(n.shape, dtype=bool)
    for i in range(5):
        for j in range(i + 1, 5):
            with np.errstate(invalid="ignore"):
                unsorted |= vals[..., i] > vals[..., j]
    _check(unsorted, "min <= q1 <= median <= q3 <= max does not hold")
    return n, mn, q1, med, q3, mx


def _skewness(n, mn, q1, med, q3, mx):
    s1, s2, s3 = _scenarios(mn, q1, q3, mx)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_range = np.abs((mn + mx - 2.0 * med) / (mx - mn))
        t_iqr = np.abs((q1 + q3 - 2.0 * med) / (q3 - q1))
        t3 = np.maximum(2.65 * np.log(0.6 * n) / np.sqrt(n) * t_range, t_iqr)
        stat = np.select([s1, s2, s3], [t_range, t_iqr, t3], np.nan)
        crit = np.select(
            [s1, s2, s3],
            [
                1.0 / np.log(n + 9.0) + 2.5 / (n + 1.0),
                2.65 / np.sqrt(n) - 6.0 / n**2,
                3.0 / np.sqrt(n) - 40.0 / n**3,
            ],
            np.nan,
        )
        # R's isTRUE(tval >= crit): NA/NaN (e.g. no median) is "not significant".
        sig = np.where(np.isnan(stat) | np.isnan(crit), False, stat >= crit)
    scenario = np.select([s1, s2, s3], [1, 2, 3], 0)
    return SkewnessTest(stat, crit, sig.astype(bool), scenario)


def fivenum_skewness_test(n, min=None, q1=None, median=None, q3=None, max=None) -> SkewnessTest:
    """Shi et al. (2023) test for skewness from (part of) a five-number summary.

    Reproduces the test that metafor's ``conv.fivenum()`` runs before
    converting (the constants are those labelled "Shi et al. (2023)" in
    metafor's source):

    * S1 (min, median, max): ``T = |(a + b - 2m) / (b - a)|``, critical value
      ``1 / log(n + 9) + 2.5 / (n + 1)``.
    * S2 (q1, median, q3): ``T = |(q1 + q3 - 2m) / (q3 - q1)|``, critical value
      ``2.65 / sqrt(n) - 6 / n^2``.
    * S3 (all five): ``T = max(2.65 log(0.6 n) / sqrt(n) * T_S1, T_S2)``,
      critical value ``3 / sqrt(n) - 40 / n^3``.

    Skewness is significant when ``T >= critical``. A missing median (or a
    zero range / IQR) gives ``T = nan``, which counts as not significant, as
    in metafor.

    Parameters
    ----------
    n : array_like
        Sample size(s). Rows with n < 5 are not tested.
    min, q1, median, q3, max : array_like or None
        Reported quantiles; ``None`` or ``nan`` where not reported.

    Returns
    -------
    SkewnessTest
        ``statistic``, ``critical``, ``significant`` (bool) and ``scenario``
        (1, 2, 3, or 0 where no scenario applies).

    Raises
    ------
    ValueError
        If the present values are not ordered min <= q1 <= median <= q3 <= max.

    References
    ----------
    Shi J, Luo D, Wan X, et al. Detecting the skewness of data from the
    five-number summary and its application in meta-analysis. Stat Methods
    Med Res. 2023. doi:10.1177/09622802231172043
    """
    return _skewness(*_prepare_fivenum(n, min, q1, median, q3, max))


def mean_sd_from_fivenum(n, min=None, q1=None, median=None, q3=None, max=None, test=True) -> FivenumResult:
    """Estimate mean and SD from (part of) a five-number summary.

    Reproduces metafor's ``conv.fivenum()`` with its defaults
    (``method = "luo/wan/shi"``, ``dist = "norm"``, ``test = TRUE``), which
    assume normally distributed data. With ``a`` = min, ``b`` = max, ``m`` =
    median and ``n`` the sample size, the scenario is chosen from which of
    min, q1, q3, max are present (the median does not decide it):

    * S1 (min and max, no quartiles):
      mean = w (a + b) / 2 + (1 - w) m, w = 4 / (4 + n^0.75)
      (Luo et al., eq. 7); SD = (b - a) / xi(n) (Wan et al., eq. 9).
    * S2 (q1 and q3, no min/max):
      mean = w (q1 + q3) / 2 + (1 - w) m, w = 0.7 + 0.39 / n
      (Luo et al., eq. 11); SD = (q3 - q1) / eta(n) (Wan et al., eq. 16).
    * S3 (min, q1, q3, max):
      mean = w1 (a + b) / 2 + w2 (q1 + q3) / 2 + (1 - w1 - w2) m with
      w1 = 2.2 / (2.2 + n^0.75), w2 = 0.7 - 0.72 / n^0.55 (Luo et al.,
      eq. 15); SD = w (b - a) / xi(n) + (1 - w) (q3 - q1) / eta(n),
      w = 1 / (1 + 0.07 n^0.6) (Shi et al. 2020, eq. 10).

    Here xi(n) = 2 Phi^-1((n - 0.375) / (n + 0.25)) and
    eta(n) = 2 Phi^-1((0.75 n - 0.125) / (n + 0.25)) (see :func:`wan_xi`,
    :func:`wan_eta`).

    Behaviour copied from metafor:

    * rows with n < 5 (or n missing) are not converted;
    * any other combination (e.g. min, q1, median, max without q3, or the
      median alone) is not converted;
    * without the median the SD is still estimated (the SD formulas do not
      use it) but the mean is not;
    * with ``test=True`` a row whose skewness test
      (:func:`fivenum_skewness_test`) is significant gets neither mean nor SD.

    Parameters
    ----------
    n : array_like
        Sample size(s); non-integer values are used as given.
    min, q1, median, q3, max : array_like or None
        Reported quantiles; ``None`` or ``nan`` where not reported.
    test : bool, default True
        Skip rows whose test for skewness is significant (metafor's default).

    Returns
    -------
    FivenumResult
        ``(mean, sd, mean_method, sd_method)``; methods are labels such as
        ``"mean_luo2016_s2"``, ``"sd_wan2014_iqr"``, or ``None`` where nothing
        was estimated.

    Raises
    ------
    ValueError
        If the present values are not ordered min <= q1 <= median <= q3 <= max
        (rows with n < 5 are not checked, as in metafor).

    References
    ----------
    Luo D, Wan X, Liu J, Tong T. Stat Methods Med Res. 2018;27(6):1785-1805.
    Wan X, Wang W, Liu J, Tong T. BMC Med Res Methodol. 2014;14:135.
    Shi J, Luo D, Weng H, et al. Res Synth Methods. 2020;11(5):641-654.
    Shi J, Luo D, Wan X, et al. Stat Methods Med Res. 2023. doi:10.1177/09622802231172043
    """
    n, a, q1, m, q3, b = _prepare_fivenum(n, min, q1, median, q3, max)
    s1, s2, s3 = _scenarios(a, q1, q3, b)
    if test:
        sig = _skewness(n, a, q1, m, q3, b).significant
        s1, s2, s3 = s1 & ~sig, s2 & ~sig, s3 & ~sig

    with np.errstate(divide="ignore", invalid="ignore"):
        xi = wan_xi(n)
        eta = wan_eta(n)

        w_s1 = 4.0 / (4.0 + n**0.75)
        mean_s1 = w_s1 * (a + b) / 2.0 + (1.0 - w_s1) * m
        sd_s1 = (b - a) / xi

        w_s2 = 0.7 + 0.39 / n
        mean_s2 = w_s2 * (q1 + q3) / 2.0 + (1.0 - w_s2) * m
        sd_s2 = (q3 - q1) / eta

        w1 = 2.2 / (2.2 + n**0.75)
        w2 = 0.7 - 0.72 / n**0.55
        mean_s3 = w1 * (a + b) / 2.0 + w2 * (q1 + q3) / 2.0 + (1.0 - w1 - w2) * m
        w_sd = 1.0 / (1.0 + 0.07 * n**0.6)
        sd_s3 = w_sd * (b - a) / xi + (1.0 - w_sd) * (q3 - q1) / eta

    mean = np.select([s1, s2, s3], [mean_s1, mean_s2, mean_s3], np.nan)
    sd = np.select([s1, s2, s3], [sd_s1, sd_s2, sd_s3], np.nan)

    mean_method = np.full(mean.shape, None, dtype=object)
    sd_method = np.full(sd.shape, None, dtype=object)
    has_mean = np.isfinite(mean)
    has_sd = np.isfinite(sd)
    for mask, m_label, s_label in (
        (s1, MEAN_LUO_S1, SD_WAN_RANGE),
        (s2, MEAN_LUO_S2, SD_WAN_IQR),
        (s3, MEAN_LUO_S3, SD_SHI_S3),
    ):
        mean_method[mask & has_mean] = m_label
        sd_method[mask & has_sd] = s_label
    return FivenumResult(mean, sd, mean_method, sd_method)
