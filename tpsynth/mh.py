"""Mantel-Haenszel (RR, OR, RD) and Peto (OR) common-effect pooling of 2x2 tables.

They reproduce metafor's ``rma.mh()`` and ``rma.peto()`` with their defaults (checked to 1e-6
relative by ``tests/test_mh.py`` against ``tests/reference/mh_peto.json``, written by
``tests/reference/make_reference.R``), which are also RevMan's methods for dichotomous data:

* the pooled estimate uses the tables as they are, without continuity correction (metafor
  ``add = c(1/2, 0)``, ``to = c("only0", "none")``, ``drop00 = c(TRUE, FALSE)``: second element);
  a table with no events (or only events) in both arms contributes nothing to an OR or RR, but
  does to an RD;
* the test for heterogeneity (Cochran's Q, I^2, H^2) uses the study estimates with 1/2 added to
  every cell of a table with a zero cell and double-zero tables left out (first element), so its
  df is ``k_yi - 1`` with ``k_yi`` the tables with an estimate.  For Peto, Q is the one of Yusuf
  et al. (1985): ``sum (O - E)^2 / V - (sum (O - E))^2 / sum V`` over tables with V > 0.

Standard errors: Robins, Breslow & Greenland (1986) for the MH log OR; Greenland & Robins (1985)
for the MH log RR and the MH RD (Sato's variant as in metafor); ``1/sqrt(sum V)`` for Peto.  The
Mantel-Haenszel chi^2 test (with continuity correction) and Tarone's (1985) test of homogeneity
of ORs are reported for the OR.

References
----------
Mantel N, Haenszel W (1959). Statistical aspects of the analysis of data from retrospective studies
of disease. J Natl Cancer Inst 22:719-748.
Robins J, Breslow N, Greenland S (1986). Estimators of the Mantel-Haenszel variance consistent in
both sparse data and large-strata limiting models. Biometrics 42:311-323.
Greenland S, Robins JM (1985). Estimation of a common effect parameter from sparse follow-up data.
Biometrics 41:55-68.
Yusuf S, Peto R, Lewis J, Collins R, Sleight P (1985). Beta blockade during and after myocardial
infarction: an overview of the randomized trials. Prog Cardiovasc Dis 27:335-371.
Tarone RE (1985). On heterogeneity tests based on efficient scores. Biometrika 72:91-95.
Deeks JJ, Higgins JPT, Altman DG (2022). Chapter 10: Analysing data and undertaking meta-analyses.
Cochrane Handbook for Systematic Reviews of Interventions, version 6.3, section 10.4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from . import effect_sizes as es

__all__ = ["MH_MEASURES", "TableResult", "mantel_haenszel", "peto"]

MH_MEASURES = ("RR", "OR", "RD")


@dataclass(frozen=True)
class TableResult:
    """A Mantel-Haenszel or Peto analysis (metafor ``rma.mh`` / ``rma.peto``).

    ``estimate``, ``ci_low``, ``ci_high`` are on the analysis scale (log for OR and RR);
    ``weights`` are percent (metafor ``weights()``).  ``q``/``q_df``/``q_pvalue``, ``i2`` and
    ``h2`` describe heterogeneity (df ``k_yi - 1``); ``mh_chi2``/``mh_pvalue`` is the
    Cochran-Mantel-Haenszel test and ``tarone``/``tarone_pvalue`` Tarone's test (OR only, else
    NaN).  NaN where the estimate does not exist (e.g. no events in one arm of every table).
    """

    method: str
    measure: str
    level: float
    k: int
    k_yi: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pvalue: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    mh_chi2: float = float("nan")
    mh_pvalue: float = float("nan")
    tarone: float = float("nan")
    tarone_pvalue: float = float("nan")
    weights: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    notes: tuple[str, ...] = ()


def _tables(ai, n1i, ci, n2i):
    a, n1, c, n2 = (np.asarray(x, dtype=float).ravel() for x in (ai, n1i, ci, n2i))
    if not (a.shape == n1.shape == c.shape == n2.shape):
        raise ValueError("ai, n1i, ci and n2i must have the same length")
    if a.size == 0:
        raise ValueError("at least one table is needed")
    if not all(np.all(np.isfinite(x)) for x in (a, n1, c, n2)):
        raise ValueError("events and group sizes must be finite")
    if np.any(a < 0) or np.any(c < 0) or np.any(a > n1) or np.any(c > n2) or np.any(n1 <= 0) or np.any(n2 <= 0):
        raise ValueError("need 0 <= events <= n and n > 0 in both groups of every table")
    return a, n1 - a, c, n2 - c


def _wald(est, se, level):
    z = est / se
    crit = -special.ndtri((1 - level) / 2)
    return est - crit * se, est + crit * se, float(2 * special.ndtr(-abs(z)))


def _heterogeneity(yi, vi, est):
    """Q, df, p, I^2, H^2 of the corrected study estimates around the pooled one (metafor)."""
    ok = np.isfinite(yi) & np.isfinite(vi)
    k_yi = int(ok.sum())
    if k_yi <= 1:
        return 0.0, 0, 1.0, 0.0, 1.0, k_yi
    q = float(max(0.0, np.sum((yi[ok] - est) ** 2 / vi[ok])))
    df = k_yi - 1
    return q, df, float(special.chdtrc(df, q)), max(0.0, 100 * (q - df) / q) if q > 0 else 0.0, q / df, k_yi


def mantel_haenszel(ai, n1i, ci, n2i, measure: str = "OR", level: float = 0.95) -> TableResult:
    """Mantel-Haenszel common-effect meta-analysis of 2x2 tables (metafor ``rma.mh``).

    Parameters
    ----------
    ai, n1i : array_like
        Events and participants in the intervention group of each study.
    ci, n2i : array_like
        Events and participants in the comparator group.
    measure : {"OR", "RR", "RD"}
        Odds ratio, risk ratio (both on the log scale) or risk difference.
    level : float
        Confidence level of the (Wald) interval.

    Returns
    -------
    TableResult
    """
    if measure not in MH_MEASURES:
        raise ValueError(f"Mantel-Haenszel measure must be one of {MH_MEASURES}, not {measure!r}")
    a, b, c, d = _tables(ai, n1i, ci, n2i)
    n1, n2 = a + b, c + d
    N = n1 + n2
    notes: list[str] = []
    nan = float("nan")
    mh = mhp = ta = tap = nan
    if measure == "OR":
        P, Q = a / N + d / N, b / N + c / N
        R, S = (a / N) * d, (b / N) * c
        Rs, Ss = R.sum(), S.sum()
        if Rs == 0 or Ss == 0:
            est = se = nan
            notes.append("the Mantel-Haenszel odds ratio does not exist (no events, or only events, in one group)")
        else:
            est = float(np.log(Rs / Ss))
            se = float(np.sqrt(0.5 * (np.sum(P * R) / Rs**2 + np.sum(P * S + Q * R) / (Rs * Ss) + np.sum(Q * S) / Ss**2)))
        xt, yt = a + c, b + d
        if xt.sum() > 0 and yt.sum() > 0:
            dev = abs(np.sum(a - (n1 / N) * xt)) - 0.5
            mh = float(dev**2 / np.sum((n1 / N) * (n2 / N) * (xt * (yt / (N - 1)))))
            mhp = float(special.chdtrc(1, mh))
        if np.isfinite(est):
            ta, tap = _tarone(a, n1, n2, xt, yt, N, float(np.exp(est)))
        w = (b / N) * c
    elif measure == "RR":
        R, S = np.sum(a * (n2 / N)), np.sum(c * (n1 / N))
        if a.sum() == 0 or c.sum() == 0:
            est = se = nan
            notes.append("the Mantel-Haenszel risk ratio does not exist (no events in one group)")
        else:
            est = float(np.log(R / S))
            se = float(np.sqrt(np.sum((n1 / N) * (n2 / N) * (a + c) - (a / N) * c) / (R * S)))
        w = (c / N) * n1
    else:  # RD
        den = np.sum(n1 * (n2 / N))
        est = float(np.sum(a * (n2 / N) - c * (n1 / N)) / den)
        num = est * np.sum(c * (n1 / N) ** 2 - a * (n2 / N) ** 2 + (n1 / N) * (n2 / N) * (n2 - n1) / 2)
        num += np.sum(a * (n2 - c) / N + c * (n1 - a) / N) / 2
        se = float(np.sqrt(num / den**2))
        w = (n1 / N) * n2
    lo, hi, p = _wald(est, se, level) if np.isfinite(est) else (nan, nan, nan)
    fn = {"OR": es.log_odds_ratio, "RR": es.log_risk_ratio, "RD": es.risk_difference}[measure]
    yi, vi = fn(a, n1, c, n2, add=0.5, to="only0", drop00=True)[:2]
    q, qdf, qp, i2, h2, k_yi = _heterogeneity(np.asarray(yi, dtype=float), np.asarray(vi, dtype=float), est)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = 100 * w / w.sum()
    return TableResult(
        method="MH", measure=measure, level=level, k=int(a.size), k_yi=k_yi, estimate=est, se=se, ci_low=lo,
        ci_high=hi, pvalue=p, q=q, q_df=qdf, q_pvalue=qp, i2=i2, h2=h2, mh_chi2=mh, mh_pvalue=mhp, tarone=ta,
        tarone_pvalue=tap, weights=weights, notes=tuple(notes),
    )  # fmt: skip


def _tarone(a, n1, n2, xt, yt, N, psi):
    """Breslow-Day statistic with Tarone's correction, df = tables with a defined expectation - 1."""
    if psi == 1:
        n11 = (n1 / N) * xt
    else:
        A = psi * (n1 + xt) + (n2 - xt)
        B = np.sqrt(A * A - 4 * n1 * xt * psi * (psi - 1))
        n11 = (A - B) / (2 * (psi - 1))
    pos = (n11 > 0) & (xt > 0) & (yt > 0)
    k_pos = int(pos.sum())
    n11 = n11[pos]
    n12 = n1[pos] - n11
    n21 = xt[pos] - n11
    n22 = n11 - n1[pos] - xt[pos] + N[pos]
    inv = 1 / (1 / n11 + 1 / n12 + 1 / n21 + 1 / n22)
    bd = max(0.0, float(np.sum((a[pos] - n11) ** 2 / inv)))
    ta = max(0.0, bd - float(np.sum(a[pos] - n11)) ** 2 / float(np.sum(inv)))
    if k_pos > 1:
        return ta, float(special.chdtrc(k_pos - 1, ta))
    return ta, float("nan")


def peto(ai, n1i, ci, n2i, level: float = 0.95) -> TableResult:
    """Peto's one-step odds ratio (Yusuf et al., 1985; metafor ``rma.peto``).

    ``log OR = sum (O - E) / sum V`` with ``O`` the intervention events, ``E = n1 (a + c) / N``
    and ``V = (a + c)(b + d) n1 n2 / (N^2 (N - 1))``; ``se = 1 / sqrt(sum V)``.  Tables with
    V = 0 (no events or only events in both groups) contribute nothing.

    Returns
    -------
    TableResult
    """
    a, b, c, d = _tables(ai, n1i, ci, n2i)
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / N
    with np.errstate(invalid="ignore", divide="ignore"):
        V = xt * yt * (n1 / N) * (n2 / N) / (N - 1)
    V = np.nan_to_num(V, nan=0.0)
    sv = V.sum()
    if sv == 0:
        raise ValueError("one of the two outcomes never occurred in any table: Peto's method cannot be used")
    est = float(np.sum(a - E) / sv)
    se = float(np.sqrt(1 / sv))
    lo, hi, p = _wald(est, se, level)
    pos = V > 0
    k_yi = int(np.sum(~(((a == 0) & (c == 0)) | ((b == 0) & (d == 0)))))  # escalc(drop00 = TRUE)
    q = max(0.0, float(np.sum((a[pos] - E[pos]) ** 2 / V[pos]) - np.sum(a - E) ** 2 / V[pos].sum()))
    if int(pos.sum()) > 1:
        qdf = k_yi - 1
        qp, i2, h2 = float(special.chdtrc(qdf, q)), (max(0.0, 100 * (q - qdf) / q) if q > 0 else 0.0), q / qdf
    else:
        qdf, qp, i2, h2 = max(k_yi - 1, 0), 1.0, 0.0, 1.0
    return TableResult(
        method="PETO", measure="OR", level=level, k=int(a.size), k_yi=k_yi, estimate=est, se=se, ci_low=lo,
        ci_high=hi, pvalue=p, q=q, q_df=qdf, q_pvalue=qp, i2=i2, h2=h2, weights=100 * V / sv,
    )  # fmt: skip
