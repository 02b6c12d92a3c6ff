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

from tpsynth import pooling
from tpsynth.pooling import PooledResult, pool

__all__ = ["EggerResult", "TrimFillResult", "egger_many", "egger_test", "trim_and_fill", "trimfill"]


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


def egger_many(yi, vi, group, n_groups: int, X=None, level: float = 0.95) -> dict:
    """Egger's regression test for many analyses at once, by the one engine.

    Per group, ``yi`` is regressed on ``[X, sqrt(vi)]`` (X: intercept and any moderators, default
    the intercept) by weighted least squares with weights ``1/vi`` and the residual variance
    ``RSS/(k - p)`` estimated, with t(k - p) tests (metafor ``regtest(model="lm",
    predictor="sei")``): the engine's weighted least-squares core
    (:func:`tpsynth.pooling.wls_many`, per-group p x p sums) fits every group in one vectorised
    call.

    Returns
    -------
    dict of numpy.ndarray
        ``slope``, ``slope_se``, ``t``, ``df``, ``pvalue`` (test of the coefficient of
        sqrt(vi)), ``intercept``, ``intercept_se``, ``limit_ci_low``, ``limit_ci_high``, all of
        length ``n_groups``; NaN where k < p + 1 or the standard errors of a group are all equal
        (the slope is not identified).
    """
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    g = np.asarray(group, dtype=np.intp).ravel()
    sei = np.sqrt(v)
    X = np.ones((y.size, 1)) if X is None else np.asarray(X, dtype=float)
    Xe = np.column_stack([X, sei])
    p = Xe.shape[1]
    w = 1.0 / v
    beta, xtwx_inv, rss, k = pooling.wls_many(y, w, g, n_groups, Xe)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (k - p).astype(float)
        s2 = rss / df  # the residual variance of lm(yi ~ X + sei, weights = 1/vi)
        se = np.sqrt(s2[:, None] * np.diagonal(xtwx_inv, axis1=1, axis2=2))
        t = beta[:, -1] / se[:, -1]
        ok = df > 0
        d = np.where(ok, df, 1.0)
        pval = np.where(ok, 2 * special.stdtr(d, -np.abs(t)), np.nan)
        crit = np.where(ok, -special.stdtrit(d, (1 - level) / 2), np.nan)
        # identical SEs (weighted spread of sqrt(vi) ~ 0 relative to its scale) leave the slope unidentified
        sw = np.bincount(g, weights=w, minlength=n_groups)
        xbar = np.bincount(g, weights=w * sei, minlength=n_groups) / sw
        sxx = np.bincount(g, weights=w * (sei - xbar[g]) ** 2, minlength=n_groups)
        degenerate = (k < p + 1) | ~(sxx > 1e-14 * np.bincount(g, weights=w * v, minlength=n_groups))
    res = {
        "slope": beta[:, -1],
        "slope_se": se[:, -1],
        "t": t,
        "df": np.maximum(df, 0.0),
        "pvalue": pval,
        "intercept": beta[:, 0],
        "intercept_se": se[:, 0],
        "limit_ci_low": beta[:, 0] - crit * se[:, 0],
        "limit_ci_high": beta[:, 0] + crit * se[:, 0],
    }
    return {key: np.where(degenerate, np.nan, val) for key, val in res.items()}


def egger_test(yi, vi, level=0.95, X=None) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry (Egger et al., 1997).

    Fits ``yi = b0 + b1 * sqrt(vi)`` (plus the moderators of ``X``) by weighted least squares with
    weights ``1 / vi`` and an estimated residual variance, as metafor's ``regtest(model="lm")``,
    and tests ``b1 = 0`` with t(k - p); see :func:`egger_many`, which does the work.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (> 0); at least 3 studies.
    level : float
        Confidence level of the limit-estimate interval.
    X : array_like, optional
        Design matrix (intercept first) of a meta-regression; default intercept only.

    Returns
    -------
    EggerResult
    """
    y, v = _effects(yi, vi, 3, "Egger's test needs at least 3 studies")
    if np.any(v <= 0) or not np.all(np.isfinite(y)) or not np.all(np.isfinite(v)):
        raise ValueError("yi must be finite and vi positive")
    if np.ptp(np.sqrt(v)) == 0:
        raise ValueError("all standard errors are equal: the regression is not identified")
    r = egger_many(y, v, np.zeros(y.size, dtype=np.intp), 1, X=X, level=level)
    return EggerResult(
        k=int(y.size),
        slope=float(r["slope"][0]),
        slope_se=float(r["slope_se"][0]),
        t=float(r["t"][0]),
        df=int(r["df"][0]),
        pvalue=float(r["pvalue"][0]),
        intercept=float(r["intercept"][0]),
        intercept_se=float(r["intercept_se"][0]),
        limit_ci_low=float(r["limit_ci_low"][0]),
        limit_ci_high=float(r["limit_ci_high"][0]),
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
    """Slope of ``rma(yi, vi, mods = sqrt(vi), method)``, by the one engine (its sign picks the side)."""
    X = np.column_stack([np.ones(y.size), np.sqrt(v)])
    out = pooling.pool_many(y, v, np.zeros(y.size, dtype=np.intp), method=method, ci="wald", tau2_ci=False, X=X)
    return float(out["beta"][0, 1])


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
