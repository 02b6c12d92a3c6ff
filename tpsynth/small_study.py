"""Small-study effects: Egger's regression test and trim-and-fill.

Both reproduce the R package *metafor* (checked against it by
``tests/test_small_study.py``):

* :func:`egger_test` is ``regtest(x, model="lm", predictor="sei")``: a
  weighted least-squares regression of the effects on their standard errors
  with weights 1/vi (Egger et al., 1997).  The slope on the standard error is
  Egger's bias coefficient (it equals the intercept of the original
  "standard normal deviate on precision" regression); its t test with k-2
  degrees of freedom is the test for funnel-plot asymmetry.  The intercept is
  the "limit" estimate for a study with standard error 0.
* :func:`trim_and_fill` is ``trimfill(x)`` with metafor's defaults
  (Duval & Tweedie, 2000a, 2000b): estimator ``"L0"`` (``"R0"`` also
  available), the side on which studies are missing chosen from the sign of
  the slope of a meta-regression on sqrt(vi) fitted with the same tau^2
  estimator, and every fit made with the same estimator as the input model.

References
----------
Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis
detected by a simple, graphical test. BMJ 315:629-634.
Duval S, Tweedie R (2000a). Trim and fill: a simple funnel-plot-based method
of testing and adjusting for publication bias in meta-analysis. Biometrics
56:455-463.
Duval S, Tweedie R (2000b). A nonparametric "trim and fill" method of
accounting for publication bias in meta-analysis. JASA 95:89-98.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
Journal of Statistical Software 36(3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special  # not scipy.stats: its import costs ~0.5 s per pipeline job
from statsmodels.regression.linear_model import WLS

from tpsynth import pooling
from tpsynth.pooling import PooledResult, pool

__all__ = ["EggerResult", "TrimFillResult", "egger_test", "trim_and_fill", "trimfill"]


@dataclass(frozen=True)
class EggerResult:
    """Egger's regression test (metafor ``regtest(model="lm", predictor="sei")``).

    Attributes
    ----------
    k : int
        Number of studies.
    slope, slope_se : float
        Coefficient of the standard error (Egger's bias coefficient) and its SE.
    t : float
        t statistic of the slope (metafor ``zval``).
    df : int
        Residual degrees of freedom, k - 2.
    pvalue : float
        Two-sided p-value of the asymmetry test.
    intercept, intercept_se : float
        Intercept ("limit estimate" as SE -> 0) and its SE.
    limit_ci_low, limit_ci_high : float
        t(k-2) confidence interval of the limit estimate.
    """

    k: int
    slope: float
    slope_se: float
    t: float
    df: int
    pvalue: float
    intercept: float
    intercept_se: float
    limit_ci_low: float
    limit_ci_high: float

    @property
    def statistic(self) -> float:
        """Alias of :attr:`t` (metafor prints it as ``z``/``t``)."""
        return self.t


def _effects(yi, vi, min_k: int, too_few: str) -> tuple[np.ndarray, np.ndarray]:
    """yi and vi as flat float arrays of equal length, at least ``min_k`` of them."""
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError("yi and vi must have the same length")
    if y.size < min_k:
        raise ValueError(too_few)
    return y, v


def egger_test(yi, vi, level=0.95) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry (Egger et al., 1997).

    Fits ``yi = b0 + b1 * sqrt(vi)`` by weighted least squares with weights
    ``1 / vi`` (statsmodels WLS; the residual variance is estimated, as in
    metafor's ``model="lm"``) and tests ``b1 = 0`` with t(k-2).

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (> 0); at least 3 studies.
    level : float
        Confidence level of the limit-estimate interval.

    Returns
    -------
    EggerResult
    """
    y, v = _effects(yi, vi, 3, "Egger's test needs at least 3 studies")
    if np.any(v <= 0) or not np.all(np.isfinite(y)) or not np.all(np.isfinite(v)):
        raise ValueError("yi must be finite and vi positive")
    sei = np.sqrt(v)
    if np.ptp(sei) == 0:
        raise ValueError("all standard errors are equal: the regression is not identified")
    X = np.column_stack([np.ones_like(sei), sei])
    fit = WLS(y, X, weights=1.0 / v).fit()
    df = int(fit.df_resid)
    b, se = fit.params, fit.bse
    tval = b[1] / se[1]
    p = 2 * special.stdtr(df, -abs(tval))
    crit = -special.stdtrit(df, (1 - level) / 2)
    return EggerResult(
        k=int(y.size),
        slope=float(b[1]),
        slope_se=float(se[1]),
        t=float(tval),
        df=df,
        pvalue=float(p),
        intercept=float(b[0]),
        intercept_se=float(se[0]),
        limit_ci_low=float(b[0] - crit * se[0]),
        limit_ci_high=float(b[0] + crit * se[0]),
    )


@dataclass(frozen=True)
class TrimFillResult:
    """Trim-and-fill result (metafor ``trimfill()``).

    Attributes
    ----------
    k0 : int
        Estimated number of missing studies.
    se_k0 : float
        Standard error of k0.
    side : str
        ``"left"`` or ``"right"``: where the missing studies are imputed.
    estimator : str
        ``"L0"`` or ``"R0"``.
    p_k0 : float
        For R0, the p-value of the test of k0 = 0; NaN for L0.
    yi_filled, vi_filled : numpy.ndarray
        The imputed studies (empty if k0 = 0).
    result : PooledResult
        Analysis of the observed plus imputed studies (the observed-data
        analysis if k0 = 0), rows ordered observed first.
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float
    yi_filled: np.ndarray = field(repr=False)
    vi_filled: np.ndarray = field(repr=False)
    result: PooledResult = field(repr=False)

    # convenience accessors used by tpsynth.analysis
    @property
    def estimate(self) -> float:
        return self.result.estimate

    @property
    def ci_low(self) -> float:
        return self.result.ci_low

    @property
    def ci_high(self) -> float:
        return self.result.ci_high

    @property
    def filled_yi(self) -> np.ndarray:
        return self.yi_filled

    @property
    def filled_vi(self) -> np.ndarray:
        return self.vi_filled


def _metareg_slope(y, v, method):
    """Slope of rma(yi, vi, mods = sqrt(vi), method) (metafor meta-regression).

    Only its sign is used (to choose the trim-and-fill side).  tau^2 uses the
    matrix form of metafor's estimators with X = [1, sqrt(vi)], p = 2.
    """
    k, p = y.size, 2
    X = np.column_stack([np.ones(k), np.sqrt(v)])

    def proj(w):
        W = np.diag(w)
        XtWX_inv = np.linalg.inv(X.T @ W @ X)
        return W - W @ X @ XtWX_inv @ X.T @ W

    def rss(t):
        P = proj(1.0 / (v + t))
        return float(y @ P @ y), P

    tau2 = 0.0
    if method != "FE" and k > p:
        H = np.eye(k) - X @ np.linalg.inv(X.T @ X) @ X.T
        he = (float(y @ H @ y) - float(np.trace(H * v))) / (k - p)
        if method == "HE":
            tau2 = he
        elif method == "DL":
            q, P = rss(0.0)
            tau2 = (q - (k - p)) / np.trace(P)
        elif method == "SJ":
            t0 = float(np.var(y))  # var(y) * (k - 1) / k
            tau2 = t0 * rss(t0)[0] / (k - p)
        elif method == "PM":
            if rss(0.0)[0] >= k - p:
                mad = 1.4826 * np.median(np.abs(y - np.median(y)))
                hi = max(100.0, 10 * mad**2)
                lo = 0.0
                if rss(hi)[0] > k - p:
                    tau2 = 0.0  # metafor would fail; side choice falls back to FE slope
                else:
                    for _ in range(200):
                        mid = 0.5 * (lo + hi)
                        if rss(mid)[0] > k - p:
                            lo = mid
                        else:
                            hi = mid
                    tau2 = 0.5 * (lo + hi)
        else:  # ML, REML, EB: Fisher scoring from max(0, HE)
            tau2 = max(0.0, he)
            for step in (1.0, 0.5):
                t = max(0.0, he)
                ok = False
                for _ in range(pooling.FS_MAXITER):
                    w = 1.0 / (v + t)
                    P = proj(w)
                    Py = P @ y
                    if method == "REML":
                        adj = (Py @ Py - np.trace(P)) / np.sum(P * P)
                    elif method == "ML":
                        adj = (Py @ Py - w.sum()) / np.sum(w * w)
                    else:
                        adj = (float(y @ Py) * k / (k - p) - k) / w.sum()
                    adj = 0.0 if not np.isfinite(adj) else adj * step
                    if t == 0 and adj < 0:
                        adj = 0.0
                    while t + adj < 0:
                        adj /= 2
                    new = t + adj
                    if abs(new - t) <= pooling.FS_THRESHOLD * max(1.0, new):
                        t, ok = new, True
                        break
                    t = new
                if ok:
                    tau2 = t
                    break
    tau2 = max(0.0, tau2)
    w = 1.0 / (v + tau2)
    beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
    return float(beta[1])


def _fit_estimate(y, v, method):
    out = pooling.pool_many(y, v, np.zeros(y.size, dtype=np.intp), method=method, ci="wald", tau2_ci=False)
    return float(out["estimate"][0])


def trim_and_fill(
    yi, vi, method="REML", estimator="L0", side=None, ci="wald", level=0.95, maxiter=100
) -> TrimFillResult:
    """Trim-and-fill (Duval & Tweedie, 2000) as metafor's ``trimfill()``.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (> 0); k >= 2.
    method : str
        tau^2 estimator used for every fit (that of the input model in metafor).
    estimator : {"L0", "R0"}
        Estimator of the number of missing studies (metafor default "L0").
    side : {"left", "right"}, optional
        Side of the funnel plot where studies are missing.  Default: chosen as
        metafor does, from the sign of the slope of ``rma(yi, vi,
        mods=sqrt(vi), method=method)`` ("right" if negative, else "left").
    ci : str
        Interval type of the final analysis.  metafor's ``trimfill()`` refits
        with its default ``test="z"``, i.e. ``"wald"`` (the default here).
    level : float
        Confidence level of the final analysis.
    maxiter : int
        Maximum number of trim-and-fill iterations.

    Returns
    -------
    TrimFillResult
    """
    y0, v0 = _effects(yi, vi, 2, "trim-and-fill needs at least two studies")
    if estimator not in ("L0", "R0"):
        raise ValueError("estimator must be 'L0' or 'R0'")
    if side is None:
        side = "right" if _metareg_slope(y0, v0, method) < 0 else "left"
    elif side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")

    y = -y0 if side == "right" else y0.copy()
    ix = np.argsort(y, kind="stable")
    y, v = y[ix], v0[ix]
    k = y.size
    k0_prev, k0 = -1, 0
    it = 0
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise RuntimeError("trim-and-fill did not converge")
        beta = _fit_estimate(y[: k - k0], v[: k - k0], method)
        yc = y - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(yc), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(yc) * ranks
        if estimator == "L0":
            sr = signed[signed > 0].sum()
            k0f = (4 * sr - k * (k + 1)) / (2 * k - 1)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * k0f**3
                + 27 * k0f**2
                + 17 * k0f
                - 18 * k * k0f**2
                - 18 * k * k0f
                + 6 * k**2 * k0f
            ) / 24
            se_k0 = 4 * np.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else np.nan
        else:
            neg = -signed[signed < 0]
            k0f = (k - (neg.max() if neg.size else 0.0)) - 1
            se_k0 = np.sqrt(2 * max(0.0, k0f) + 2)
        k0 = int(max(0, np.round(k0f)))
        k0 = min(k0, k - 1)
        se_k0 = max(0.0, se_k0)

    if k0 > 0:
        yc = -(yc - beta) if side == "right" else yc - beta
        y_fill = -yc[k - k0 :]
        v_fill = v[k - k0 :]
        res = pool(
            np.concatenate([y0, y_fill]), np.concatenate([v0, v_fill]), method=method, ci=ci, level=level
        )
    else:
        y_fill = np.empty(0)
        v_fill = np.empty(0)
        res = pool(y0, v0, method=method, ci=ci, level=level)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else np.nan
    return TrimFillResult(
        k0=k0,
        se_k0=float(se_k0),
        side=side,
        estimator=estimator,
        p_k0=float(p_k0),
        yi_filled=y_fill,
        vi_filled=v_fill,
        result=res,
    )


#: Alias with metafor's name.
trimfill = trim_and_fill
