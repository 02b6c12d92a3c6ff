"""Inverse-variance pooling of study effect sizes (random- and common-effect models).

This module is the statistical core of :mod:`tpsynth`.  It reproduces the
intercept-only ``rma.uni()`` model of the R package *metafor* (Viechtbauer,
2010) together with ``predict()``, ``confint()`` (Q-profile),
``weights()``, ``leave1out()`` and ``cumul()``.  Agreement with metafor is
checked to a relative tolerance of 1e-6 (1e-5 for Q-profile bounds) by
``tests/test_pooling.py`` against reference values written by
``tests/reference/make_reference.R``.

Everything is computed *vectorised across analyses*: :func:`pool_many` fits
any number of independent meta-analyses (given as one long vector of effects
plus an integer group code per row) with ``np.bincount`` sums, simultaneous
Fisher scoring and simultaneous safeguarded Newton/bisection root finding.
:func:`pool` is a thin wrapper around it; :func:`leave_one_out` and
:func:`cumulative` use :mod:`tpsynth.subset_fits` (the same fits from
per-subset sums, refitting here only the subsets it cannot vouch for).

Estimators of the between-study variance tau^2 (``method``)
-----------------------------------------------------------
``"DL"``
    DerSimonian & Laird (1986) method of moments.
``"PM"``
    Paule & Mandel (1982): root of the generalised Q statistic equal to k-1.
``"REML"``, ``"ML"``
    (Restricted) maximum likelihood by Fisher scoring started at the HE
    estimate, exactly as metafor (Viechtbauer, 2005).
``"HE"``
    Hedges' variance-component (Hedges & Olkin, 1985) estimator.
``"SJ"``
    Sidik & Jonkman (2005) two-step estimator; see also Sidik & Jonkman (2002).
``"EB"``
    Empirical Bayes (Morris, 1983; Berkey et al., 1995), Fisher-scoring-type
    iteration as in metafor.
``"FE"``
    Common-effect (fixed-effect) model, tau^2 = 0.

Every estimate is truncated at 0 (never negative).  If the REML/ML/EB
iteration does not converge (or PM cannot bracket its root) the analysis
is first retried with half Fisher-scoring steps (metafor's documented
remedy ``control=list(stepadj=0.5)``), and if that fails too it falls back
to DL, as metafor does for ``method=c("REML", "DL")``; the fallback is
reported in ``converged=False`` and in ``notes``.

Confidence intervals for the pooled effect (``ci``)
---------------------------------------------------
``"wald"``
    Normal-theory (metafor ``test="z"``).
``"hksj"``
    Hartung & Knapp (2001) / Sidik & Jonkman (2002): the variance of the
    estimate is multiplied by the weighted residual variance
    ``q = sum w_i (y_i - mu)^2 / (k - 1)`` and a t(k-1) distribution is used
    (metafor ``test="knha"``).  As in metafor, ``q`` is set to 0 if the
    weighted residual sum of squares is below machine epsilon (identical
    effects), which gives a zero-width interval.
``"hksj_adhoc"``
    As ``"hksj"`` but ``q`` is floored at 1 (Knapp & Hartung, 2003; metafor
    ``test="adhoc"``), so the interval is never narrower than the Wald one's
    standard error.

With k = 1 metafor silently switches to ``test="z"``; so does this module.

Heterogeneity
-------------
``Q`` is Cochran's statistic under common-effect weights.  ``I2`` (percent)
and ``H2`` follow Higgins & Thompson (2002) in metafor's parametrisation
``I2 = 100 tau^2 / (tau^2 + s^2)``, ``H2 = tau^2 / s^2 + 1`` with the
"typical" within-study variance ``s^2 = (k-1) sum w / ((sum w)^2 - sum w^2)``;
for the common-effect model ``I2 = max(0, 100 (Q - (k-1)) / Q)`` and
``H2 = Q / (k-1)``.  Confidence bounds for tau^2 use the Q-profile method
(Viechtbauer, 2007); bounds for I2 and H2 are transformations of them.  A
bound whose Q-profile root lies below 0 is reported as 0; the upper search
limit is ``max(100, 10 tau^2)`` as in metafor.

Prediction intervals (Higgins, Thompson & Spiegelhalter, 2009; IntHout et
al., 2016) are ``mu +/- crit * sqrt(se^2 + tau^2)`` with ``crit`` the same
critical value as for the confidence interval (normal for ``"wald"``,
t(k-1) for ``"hksj"``/``"hksj_adhoc"``), which is metafor's ``predict()``
default.  For ``"FE"`` the prediction interval equals the confidence
interval (metafor reports none).

References
----------
DerSimonian R, Laird N (1986). Meta-analysis in clinical trials. Controlled
Clinical Trials 7:177-188.
Paule RC, Mandel J (1982). Consensus values and weighting factors. Journal of
Research of the National Bureau of Standards 87:377-385.
Viechtbauer W (2005). Bias and efficiency of meta-analytic variance
estimators in the random-effects model. J Educ Behav Stat 30:261-293.
Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity in
meta-analysis. Statistics in Medicine 26:37-52.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
Journal of Statistical Software 36(3).
Hartung J, Knapp G (2001). On tests of the overall treatment effect in
meta-analysis with normally distributed responses. Stat Med 20:1771-1782.
Sidik K, Jonkman JN (2002). A simple confidence interval for meta-analysis.
Stat Med 21:3153-3159.
Sidik K, Jonkman JN (2005). Simple heterogeneity variance estimation for
meta-analysis. J R Stat Soc C 54:367-384.
Knapp G, Hartung J (2003). Improved tests for a random effects
meta-regression with a single covariate. Stat Med 22:2693-2710.
Higgins JPT, Thompson SG (2002). Quantifying heterogeneity in a
meta-analysis. Stat Med 21:1539-1558.
IntHout J, Ioannidis JPA, Borm GF (2014). The Hartung-Knapp-Sidik-Jonkman
method for random effects meta-analysis is straightforward and considerably
outperforms the standard DerSimonian-Laird method. BMC Med Res Methodol 14:25.
IntHout J, Ioannidis JPA, Rovers MM, Goeman JJ (2016). Plea for routinely
presenting prediction intervals in meta-analysis. BMJ Open 6:e010247.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special  # not scipy.stats: its import costs ~0.5 s per pipeline job

__all__ = [
    "CI_METHODS",
    "METHODS",
    "PooledResult",
    "cumulative",
    "leave_one_out",
    "pool",
    "pool_many",
    "pool_subsets",
    "wls_many",
    "subgroup_difference",
]

METHODS = ("REML", "DL", "PM", "ML", "HE", "SJ", "EB", "FE")
CI_METHODS = ("wald", "hksj", "hksj_adhoc")
RANDOM_METHODS = ("REML", "DL", "PM", "ML", "HE", "SJ", "EB")

#: Convergence threshold of Fisher scoring: |change of tau^2| <= FS_THRESHOLD * max(1, tau^2).
FS_THRESHOLD = 1e-13
#: Maximum number of Fisher scoring iterations (per attempt).
FS_MAXITER = 1000
#: Tolerance of the ML/REML "stuck at a local maximum" check (metafor ``tol``).
LL_TOL = 1e-12
#: Relative / absolute tolerance of the Newton-bisection root finder.
ROOT_RTOL = 1e-15
ROOT_ATOL = 1e-300
ROOT_MAXITER = 200
_EPS = np.finfo(float).eps

_SCALAR_FIELDS = (
    "k",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pvalue",
    "pi_low",
    "pi_high",
    "tau2",
    "tau2_ci_low",
    "tau2_ci_high",
    "i2",
    "i2_ci_low",
    "i2_ci_high",
    "h2",
    "q",
    "q_df",
    "q_pvalue",
    "fe_estimate",
    "fe_se",
    "fe_ci_low",
    "fe_ci_high",
    "converged",
)


@dataclass(frozen=True)
class PooledResult:
    """Result of one meta-analysis (metafor ``rma.uni`` equivalent).

    Attributes
    ----------
    k : int
        Number of studies.
    method : str
        tau^2 estimator actually used (``"DL"`` after a fallback).
    ci_method : str
        ``"wald"``, ``"hksj"`` or ``"hksj_adhoc"`` (``"wald"`` when k = 1).
    level : float
        Confidence level, e.g. 0.95.
    estimate, se, ci_low, ci_high, pvalue : float
        Pooled effect, its standard error (HKSJ-scaled where requested),
        confidence interval and two-sided p-value.
    pi_low, pi_high : float
        Prediction interval.
    tau2, tau2_ci_low, tau2_ci_high : float
        Between-study variance and its Q-profile interval (NaN for FE/k=1).
    i2, i2_ci_low, i2_ci_high : float
        I^2 in percent and its interval.
    h2 : float
        H^2.
    q, q_df, q_pvalue : float, int, float
        Cochran's Q, its degrees of freedom (k-1) and p-value.
    fe_estimate, fe_se, fe_ci_low, fe_ci_high : float
        Common-effect estimate with its Wald interval.
    weights : numpy.ndarray
        Study weights in percent under the fitted model.
    converged : bool
        False when the requested iterative estimator failed (fell back to DL).
    method_requested : str
        The estimator that was asked for.
    notes : tuple of str
        Human-readable remarks (fallbacks, k = 1, ...).
    tau2_ci_capped : bool
        The upper Q-profile bound of tau^2 is metafor's search limit
        ``max(100, 10 tau^2)``: the true bound is larger.
    """

    k: int
    method: str
    ci_method: str
    level: float
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pvalue: float
    pi_low: float
    pi_high: float
    tau2: float
    tau2_ci_low: float
    tau2_ci_high: float
    i2: float
    i2_ci_low: float
    i2_ci_high: float
    h2: float
    q: float
    q_df: int
    q_pvalue: float
    fe_estimate: float
    fe_se: float
    fe_ci_low: float
    fe_ci_high: float
    weights: np.ndarray = field(repr=False)
    converged: bool = True
    method_requested: str = ""
    notes: tuple[str, ...] = ()
    tau2_ci_capped: bool = False


# ---------------------------------------------------------------------------
# vectorised helpers
# ---------------------------------------------------------------------------
class _Groups:
    """Grouping of rows into analyses with cached per-group sums.

    ``X`` is the design matrix (n x p, first column the intercept) or None for
    the intercept-only model (p = 1), which keeps its closed-form sums.
    """

    def __init__(self, g: np.ndarray, n_groups: int, v: np.ndarray, is_top=None, X=None):
        self.g = g
        self.G = n_groups
        self.k = np.bincount(g, minlength=n_groups)
        self.X = X
        self.p = 1 if X is None else X.shape[1]
        self._v = v
        self._is_top = is_top

    @property
    def is_top(self) -> np.ndarray:
        """Per row: is it the row with the smallest variance of its group?

        That row has the largest weight for every tau^2; "sum over the others" for it is summed
        directly to avoid cancellation (one dominant study).  Computed on first use (only the
        intercept-only sums need it).
        """
        if self._is_top is None:
            g, v = self.g, self._v
            order = np.lexsort((v, g))
            first = np.ones(order.size, dtype=bool)
            first[1:] = g[order][1:] != g[order][:-1]
            is_top = np.zeros(g.size, dtype=bool)
            is_top[order[first]] = True
            self._is_top = is_top
        return self._is_top

    def sum(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(self.g, weights=x, minlength=self.G)

    def others(self, x: np.ndarray) -> np.ndarray:
        """Per row: sum of ``x`` over the *other* rows of the same group."""
        out = self.sum(x)[self.g] - x
        top_rest = self.sum(np.where(self.is_top, 0.0, x))
        out[self.is_top] = top_rest[self.g[self.is_top]]
        return out

    # --- design-matrix sums (p > 1) -----------------------------------------
    def msum(self, w: np.ndarray) -> np.ndarray:
        """Per group ``X' diag(w) X``, shape (G, p, p)."""
        X, p = self.X, self.p
        out = np.empty((self.G, p, p))
        for a in range(p):
            for b in range(a, p):
                out[:, a, b] = out[:, b, a] = self.sum(w * X[:, a] * X[:, b])
        return out

    def vsum(self, w: np.ndarray) -> np.ndarray:
        """Per group ``X' w``, shape (G, p)."""
        return np.column_stack([self.sum(w * self.X[:, a]) for a in range(self.p)])

    def rows(self, beta: np.ndarray) -> np.ndarray:
        """Per row ``x_i' beta_g``."""
        return np.einsum("ij,ij->i", self.X, beta[self.g])


def _inv(A: np.ndarray) -> np.ndarray:
    """Batched inverse of (G, p, p) matrices; NaN for singular or empty groups."""
    if A.shape[1] == 2:  # closed form, the common case (one moderator; Egger's regression)
        a, b, d = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            det = a * d - b * b
            det = np.where(np.abs(det) > 1e-12 * np.abs(a * d), det, np.nan)
            out = np.empty_like(A)
            out[:, 0, 0] = d / det
            out[:, 1, 1] = a / det
            out[:, 0, 1] = out[:, 1, 0] = -b / det
        return out
    out = np.full_like(A, np.nan)
    ok = np.all(np.isfinite(A), axis=(1, 2))
    if ok.any():
        d = np.linalg.det(A[ok])
        scale = np.prod(np.maximum(np.abs(np.diagonal(A[ok], axis1=1, axis2=2)), 1e-300), axis=1)
        good = np.flatnonzero(ok)[np.abs(d) > 1e-12 * scale]
        if good.size:
            out[good] = np.linalg.inv(A[good])
    return out


def _wls(gr: _Groups, y: np.ndarray, w: np.ndarray):
    """Weighted least squares per group (p > 1): (X'WX)^-1, coefficients and residuals."""
    Ainv = _inv(gr.msum(w))
    beta = np.einsum("gij,gj->gi", Ainv, gr.vsum(w * y))
    return Ainv, beta, y - gr.rows(beta)


def wls_many(y, w, group, n_groups: int, X) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of many groups at once: the engine's core (per-group p x p sums).

    Parameters
    ----------
    y, w : array_like, shape (n,)
        Responses and weights.
    group : array_like of int, shape (n,)
        Group code 0..n_groups-1 of each row.
    X : array_like, shape (n, p)
        Design matrix, p >= 2 (intercept first).

    Returns
    -------
    (beta, XtWX_inv, rss, k)
        Coefficients (G, p), ``(X'WX)^-1`` (G, p, p; NaN where singular), the weighted residual sum
        of squares ``sum w r^2`` (G,) and the group sizes (G,).
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    g = np.asarray(group, dtype=np.intp)
    X = np.asarray(X, dtype=float)
    gr = _Groups(g, int(n_groups), w, X=X)
    with np.errstate(invalid="ignore", divide="ignore"):
        Ainv, beta, r = _wls(gr, y, w)
        rss = gr.sum(w * r * r)
    return beta, Ainv, rss, gr.k


def _tr(A: np.ndarray) -> np.ndarray:
    return np.trace(A, axis1=1, axis2=2)


def _fe_parts(gr: _Groups, w: np.ndarray):
    """sum w, tr(P) and tr(P^2) of P = W - W X (X'WX)^-1 X' W.

    Intercept only: P = W - w w'/sum w with sums over "the other" rows, so one
    dominant study loses no digits.  With a design matrix (p > 1):
    tr(P) = sum w - tr(A^-1 B) and
    tr(P^2) = sum w^2 - 2 tr(A^-1 C) + tr(A^-1 B A^-1 B) with A = X'WX,
    B = X'W^2X, C = X'W^3X.
    """
    sw = gr.sum(w)
    if gr.p > 1:
        Ainv = _inv(gr.msum(w))
        AB = Ainv @ gr.msum(w * w)
        trP = sw - _tr(AB)
        trPP = gr.sum(w * w) - 2 * _tr(Ainv @ gr.msum(w**3)) + _tr(AB @ AB)
        return sw, trP, trPP
    ow = gr.others(w)
    ow2 = gr.others(w * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        trP = gr.sum(w * ow) / sw
        trPP = (gr.sum(w * w * ow * ow) / sw + gr.sum(w * w * ow2) / sw) / sw
    return sw, trP, trPP


def _wmean(gr: _Groups, y: np.ndarray, w: np.ndarray, sw=None):
    if sw is None:
        sw = gr.sum(w)
    return gr.sum(w * y) / sw


def _qstat(gr: _Groups, y, v, tau2):
    """Generalised Q(tau2) = y'P y = sum w r^2, w = 1/(v + tau2), r the WLS residuals."""
    w = 1.0 / (v + tau2[gr.g])
    if gr.p > 1:
        r = _wls(gr, y, w)[2]
    else:
        mu = _wmean(gr, y, w)
        r = y - mu[gr.g]
    return gr.sum(w * r * r), w, r


def _solve_q(gr, y, v, target, lo, hi, active):
    """Vectorised root of Q(tau2) = target on [lo, hi] for ``active`` groups.

    Q is strictly decreasing in tau2 and Q(lo) > target > Q(hi) is assumed
    for the active groups.  Newton steps (dQ/dtau2 = -sum w^2 r^2) are
    safeguarded by bisection of the bracket.
    """
    lo = np.where(active, lo, 0.0).astype(float)
    hi = np.where(active, hi, 0.0).astype(float)
    x = lo.copy()
    todo = active.copy()
    for _ in range(ROOT_MAXITER):
        if not todo.any():
            break
        q, w, r = _qstat(gr, y, v, x)
        f = q - target
        dq = -gr.sum(w * w * r * r)
        lo = np.where(todo & (f > 0), x, lo)
        hi = np.where(todo & (f <= 0), x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = np.where(f == 0, x, x - f / dq)  # an exact root is kept (it is also the new bracket end)
        bad = (f != 0) & (~np.isfinite(xn) | (xn <= lo) | (xn >= hi))
        xn = np.where(bad, 0.5 * (lo + hi), xn)
        tol = ROOT_RTOL * np.maximum(np.abs(xn), 1e-12) + ROOT_ATOL
        done = todo & ((np.abs(xn - x) <= tol) | (f == 0) | (hi - lo <= tol))
        x = np.where(todo, xn, x)
        todo &= ~done
    return np.where(active, x, np.nan)


def _group_mad(gr: _Groups, y: np.ndarray) -> np.ndarray:
    """R's ``mad(y)`` (constant 1.4826) per group."""
    med = _group_median(gr, y)
    return 1.4826 * _group_median(gr, np.abs(y - med[gr.g]))


def _group_median(gr: _Groups, y: np.ndarray) -> np.ndarray:
    order = np.lexsort((y, gr.g))
    ys = y[order]
    start = np.concatenate(([0], np.cumsum(gr.k)[:-1]))
    k = gr.k
    out = np.full(gr.G, np.nan)
    ok = k > 0
    i1 = start + (k - 1) // 2
    i2 = start + k // 2
    out[ok] = 0.5 * (ys[i1[ok]] + ys[i2[ok]])
    return out


def _crit_and_p(z, df, level):
    """Critical value and two-sided p-value; t with ``df`` where df is finite."""
    alpha = 1.0 - level
    is_t = np.isfinite(df)
    crit = np.where(is_t, 0.0, -special.ndtri(alpha / 2))
    p = np.where(is_t, 0.0, 2 * special.ndtr(-np.abs(z)))
    if is_t.any():
        d = df[is_t]
        with np.errstate(invalid="ignore"):
            crit[is_t] = np.where(d > 0, -special.stdtrit(np.maximum(d, 1), alpha / 2), np.nan)
            p[is_t] = np.where(d > 0, 2 * special.stdtr(np.maximum(d, 1), -np.abs(z[is_t])), np.nan)
    p = np.where(np.isnan(z), np.nan, p)
    return crit, p


# ---------------------------------------------------------------------------
# tau^2 estimators (vectorised)
# ---------------------------------------------------------------------------
def _tau2_he(gr, y, v):
    """Hedges: (y'Hy - tr(HV)) / (k - p), H the ordinary least-squares residual maker."""
    k = gr.k.astype(float)
    if gr.p > 1:
        one = np.ones_like(y)
        Ainv, _, e = _wls(gr, y, one)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gr.sum(e * e) - (gr.sum(v) - _tr(Ainv @ gr.msum(v)))) / (k - gr.p)
    ybar = gr.sum(y) / k
    rss = gr.sum((y - ybar[gr.g]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rss - (1.0 - 1.0 / k) * gr.sum(v)) / (k - 1.0)


def _tau2_dl(gr, y, v):
    k = gr.k.astype(float)
    q0, _, _ = _qstat(gr, y, v, np.zeros(gr.G))
    _, trP, _ = _fe_parts(gr, 1.0 / v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.maximum(0.0, (q0 - (k - gr.p)) / trP)


def _tau2_sj(gr, y, v):
    k = gr.k.astype(float)
    ybar = gr.sum(y) / k
    t0 = gr.sum((y - ybar[gr.g]) ** 2) / k
    q, _, _ = _qstat(gr, y, v, t0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.maximum(0.0, t0 * q / (k - gr.p))


def _tau2_pm(gr, y, v):
    """Paule-Mandel; returns (tau2, ok) with ok=False where tau2.max too low."""
    k = gr.k.astype(float)
    target = k - gr.p
    zero = np.zeros(gr.G)
    q0, _, _ = _qstat(gr, y, v, zero)
    tau2 = np.zeros(gr.G)
    need = (gr.k > gr.p) & (q0 >= target)
    ok = np.ones(gr.G, dtype=bool)
    if need.any():
        tmax = np.full(gr.G, 100.0)
        mad = _group_mad(gr, y)
        tmax = np.maximum(tmax, np.where(np.isfinite(mad), 10 * mad**2, 0.0))
        qmax, _, _ = _qstat(gr, y, v, tmax)
        ok = ~(need & (qmax > target))
        act = need & ok
        root = _solve_q(gr, y, v, target, zero, tmax, act)
        tau2 = np.where(act, root, tau2)
    return np.maximum(tau2, 0.0), ok


def _fisher_steps(y, v, g, G, method, tau2, stepadj, maxiter, X=None):
    """Fisher scoring iterations on the groups in ``g`` (codes 0..G-1).

    Work is compacted to the still-iterating groups as they converge, so a
    few slow or oscillating analyses do not cost a pass over all rows.
    Returns (tau2, converged).
    """
    tau2 = tau2.copy()
    conv = np.zeros(G, dtype=bool)
    ids = np.arange(G)  # working group -> original group
    gr = _Groups(g, G, v, X=X)
    p = gr.p
    conv[gr.k <= p] = True
    active = gr.k > p
    if not active.all():
        keep = active[g]
        y, v, X, g, ids, gr = _compact(y, v, X, g, ids, active, keep, gr.is_top)
    t = tau2[ids]
    running = np.ones(ids.size, dtype=bool)
    for _ in range(maxiter + 1):
        if ids.size == 0:
            break
        k = gr.k.astype(float)
        w = 1.0 / (v + t[gr.g])
        sw = gr.sum(w)
        if p > 1:
            r = _wls(gr, y, w)[2]
        else:
            mu = gr.sum(w * y) / sw
            r = y - mu[gr.g]
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "REML":
                _, trP, trPP = _fe_parts(gr, w)
                adj = (gr.sum(w * w * r * r) - trP) / trPP
            elif method == "ML":
                adj = (gr.sum(w * w * r * r) - sw) / gr.sum(w * w)
            else:  # EB
                adj = (gr.sum(w * r * r) * k / (k - p) - k) / sw
        new, done = _fisher_update(t, np.where(np.isnan(adj), 0.0, adj) * stepadj)
        t = np.where(running, new, t)
        newly = done & running
        if newly.any():
            tau2[ids[newly]] = t[newly]
            conv[ids[newly]] = True
            running &= ~done
            n_run = int(running.sum())
            if n_run == 0:
                ids, t, running = ids[running], t[running], running[running]
                break
            if n_run <= 0.5 * running.size:  # drop finished groups' rows
                y, v, X, g, ids, gr = _compact(y, v, X, gr.g, ids, running, running[gr.g], gr.is_top)
                t = t[running]
                running = np.ones(ids.size, dtype=bool)
    tau2[ids[running]] = t[running]  # not converged: last iterate (unused)
    return tau2, conv


def _fisher_update(t, adj):
    """One Fisher scoring step from tau² ``t`` by ``adj``: (new tau², converged).

    metafor halves the step while tau2 + adj < tau2.min = 0; at tau2 = 0 that ends with adj
    underflowing to 0.  Converged: the change is at most ``FS_THRESHOLD * max(1, new)``.
    """
    adj = np.where((t == 0) & (adj < 0), 0.0, adj)
    neg = np.flatnonzero(t + adj < 0)
    while neg.size:
        adj[neg] /= 2
        neg = neg[t[neg] + adj[neg] < 0]
    new = t + adj
    return new, np.abs(new - t) <= FS_THRESHOLD * np.maximum(1.0, new)


def _compact(y, v, X, g, ids, keep_groups, keep_rows, is_top):
    remap = np.cumsum(keep_groups) - 1
    g2 = remap[g[keep_rows]]
    y2, v2 = y[keep_rows], v[keep_rows]
    X2 = None if X is None else X[keep_rows]
    ids2 = ids[keep_groups]
    return y2, v2, X2, g2, ids2, _Groups(g2, ids2.size, v2, is_top[keep_rows], X=X2)


def _tau2_fisher(gr, y, v, method, init):
    """Fisher scoring for ML / REML / EB as in metafor's rma.uni().

    Starts at max(0, HE) and stops when the change in tau^2 is at most
    ``FS_THRESHOLD * max(1, tau^2)``.  Analyses that have not converged after
    ``FS_MAXITER`` iterations are retried with half steps (metafor's
    ``control=list(stepadj=0.5)`` remedy).  Returns (tau2, converged, halved).
    """
    tau2 = np.maximum(0.0, np.nan_to_num(init, nan=0.0))
    tau2, conv = _fisher_steps(y, v, gr.g, gr.G, method, tau2, 1.0, FS_MAXITER, gr.X)
    halved = np.zeros(gr.G, dtype=bool)
    if not conv.all():
        retry = ~conv
        rows = retry[gr.g]
        sub_ids = np.flatnonzero(retry)
        remap = np.cumsum(retry) - 1
        t0 = np.maximum(0.0, np.nan_to_num(init[sub_ids], nan=0.0))
        Xr = None if gr.X is None else gr.X[rows]
        t2, c2 = _fisher_steps(y[rows], v[rows], remap[gr.g[rows]], sub_ids.size, method, t0, 0.5, FS_MAXITER, Xr)
        tau2[sub_ids] = t2
        conv[sub_ids] = c2
        halved[sub_ids] = c2
    if method in ("ML", "REML"):
        tau2 = _ll0_check(gr, y, v, tau2, method, conv)
    return tau2, conv, halved


def _loglik(gr, y, v, tau2, method):
    k = gr.k.astype(float)
    w = 1.0 / (v + tau2[gr.g])
    rss, _, _ = _qstat(gr, y, v, tau2)
    slv = gr.sum(np.log(v + tau2[gr.g]))
    if method == "ML":
        return -0.5 * k * np.log(2 * np.pi) - 0.5 * slv - 0.5 * rss
    if gr.p > 1:
        logdet = np.linalg.slogdet(gr.msum(w))[1]
    else:
        logdet = np.log(gr.sum(w))
    return -0.5 * (k - gr.p) * np.log(2 * np.pi) - 0.5 * slv - 0.5 * logdet - 0.5 * rss


def _ll0_check(gr, y, v, tau2, method, conv):
    """metafor: if ll(0) beats ll(tau2) the algorithm was stuck; use tau2 = 0."""
    cand = conv & (tau2 > FS_THRESHOLD) & (gr.k > gr.p)
    if not cand.any():
        return tau2
    ll0 = _loglik(gr, y, v, np.zeros(gr.G), method)
    ll = _loglik(gr, y, v, tau2, method)
    return np.where(cand & (ll0 - ll > LL_TOL), 0.0, tau2)


def _estimate_tau2(gr, y, v, method):
    """Return (tau2, converged, halved) arrays; non-converged groups fall back to DL."""
    G = gr.G
    conv = np.ones(G, dtype=bool)
    halved = np.zeros(G, dtype=bool)
    if method == "FE":
        tau2 = np.zeros(G)
    elif method == "DL":
        tau2 = _tau2_dl(gr, y, v)
    elif method == "HE":
        tau2 = np.maximum(0.0, _tau2_he(gr, y, v))
    elif method == "SJ":
        tau2 = _tau2_sj(gr, y, v)
    elif method == "PM":
        tau2, conv = _tau2_pm(gr, y, v)
    elif method in ("REML", "ML", "EB"):
        tau2, conv, halved = _tau2_fisher(gr, y, v, method, _tau2_he(gr, y, v))
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if not conv.all():
        tau2 = np.where(conv, tau2, _tau2_dl(gr, y, v))
    tau2 = np.where(gr.k <= gr.p, 0.0, np.maximum(tau2, 0.0))
    return tau2, conv, halved


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def _check_inputs(yi, vi):
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError("yi and vi must have the same length")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError("yi and vi must be finite (remove missing studies first)")
    if np.any(v <= 0):
        raise ValueError("sampling variances vi must be positive")
    return y, v


def _design(X, n):
    """Validated design matrix (n x p, first column the intercept) or None for intercept only."""
    if X is None:
        return None
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != n:
        raise ValueError(f"X must have one row per study ({n}); found shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (remove studies with missing moderators first)")
    if not np.all(X[:, 0] == 1.0):
        raise ValueError("the first column of X must be the intercept (all ones)")
    return None if X.shape[1] == 1 else X


def pool_many(yi, vi, group, method="REML", ci="hksj", level=0.95, tau2_ci=True, n_groups=None, X=None):
    """Fit many independent meta-analyses (or meta-regressions) at once, vectorised.

    Parameters
    ----------
    yi, vi : array_like, shape (n,)
        Effect sizes and their sampling variances (all > 0), all analyses
        concatenated; rows need not be sorted by group.
    group : array_like of int, shape (n,)
        Analysis code 0..G-1 of each row.
    method : str
        tau^2 estimator: one of ``METHODS`` (see module docstring).
    ci : str
        ``"wald"``, ``"hksj"`` or ``"hksj_adhoc"``.
    level : float
        Confidence level (0.95).
    tau2_ci : bool
        Compute Q-profile intervals for tau^2 / I^2 (Viechtbauer, 2007).
    n_groups : int, optional
        Number of analyses G (default ``max(group) + 1``); empty groups give NaN.
    X : array_like, shape (n, p), optional
        Design matrix of a mixed-effects meta-regression (metafor
        ``rma(yi, vi, mods = X[:, 1:])``); its first column must be the
        intercept.  Default: intercept only.  Every per-group sum becomes a
        p x p sum ``X' W X`` (Viechtbauer, 2010, section 3.3); degrees of
        freedom ``k - 1`` become ``k - p``.

    Returns
    -------
    dict of numpy.ndarray
        One length-G array per scalar field of :class:`PooledResult`
        (``k``, ``estimate``, ..., ``converged``) plus ``method`` (estimator
        used per analysis, ``"DL"`` after a fallback), ``ci_method``
        (``"wald"`` where k = 1), ``level``, ``step_halved`` (Fisher scoring
        needed half steps), ``tau2_ci_capped`` (the upper Q-profile bound is
        the search limit ``max(100, 10 tau^2)``: the true bound is larger) and
        ``weights`` (length n, percent, aligned with the input rows).  Always
        also ``p``, ``beta``, ``vb``, ``se_beta``, ``zval``, ``pval_beta``,
        ``ci_low_beta``, ``ci_high_beta`` (shape (G, p[, p])), the omnibus
        test ``qm``, ``qm_df``, ``qm_df2`` (NaN for chi^2), ``qm_pvalue`` of
        all coefficients but the intercept (of the intercept when p = 1, as
        metafor) and ``r2`` (pseudo R^2 in percent, NaN when p = 1).  With
        p > 1 ``estimate``, ``se``, ``ci_*`` and ``pvalue`` are those of the
        intercept, ``q``/``i2``/``h2`` describe residual heterogeneity (QE),
        and the prediction interval and common-effect fields are NaN (use
        predictions at chosen moderator values instead).

    Notes
    -----
    REML/ML/EB use Fisher scoring started at the HE estimate and stopped when
    the change in tau^2 is below ``FS_THRESHOLD * max(1, tau^2)`` (metafor's
    algorithm, Viechtbauer 2005).  Analyses that do not converge within
    ``FS_MAXITER`` iterations (Fisher scoring can oscillate) are retried with
    half steps (metafor's ``stepadj=0.5`` remedy; flagged in ``step_halved``);
    those that still fail (or, for PM, whose root lies above metafor's search
    limit ``max(100, 10 mad(y)^2)``) fall back to DerSimonian-Laird and get
    ``converged = False``.

    The pseudo R^2 is metafor's: ``max(0, 100 (tau2_0 - tau2) / tau2_0)`` with
    ``tau2_0`` from the intercept-only model fitted by the same estimator (0
    when ``tau2_0 = 0``, NaN when that fit fell back to DL), and for ``"FE"``
    the adjusted R^2 of the weighted least-squares regression (Raudenbush,
    2009).  A group whose design matrix is singular gets NaN coefficients.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if ci not in CI_METHODS:
        raise ValueError(f"unknown ci {ci!r}; expected one of {CI_METHODS}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    y, v = _check_inputs(yi, vi)
    g = np.asarray(group).ravel()
    if g.shape != y.shape:
        raise ValueError("group must have the same length as yi")
    if g.size and (g.min() < 0 or not np.issubdtype(g.dtype, np.integer)):
        raise ValueError("group must hold non-negative integer codes")
    g = g.astype(np.intp)
    G = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    X = _design(X, y.size)
    gr = _Groups(g, G, v, X=X)
    p = gr.p
    k = gr.k.astype(float)
    alpha = 1.0 - level

    with np.errstate(invalid="ignore", divide="ignore"):  # empty groups -> NaN
        tau2, conv, halved = _estimate_tau2(gr, y, v, method)

    # --- model fit -----------------------------------------------------------
    w = 1.0 / (v + tau2[g])
    sw = gr.sum(w)
    use_t = (ci != "wald") & (k > p)
    with np.errstate(invalid="ignore", divide="ignore"):
        if p > 1:
            Ainv, beta, r = _wls(gr, y, w)
        else:
            beta = (gr.sum(w * y) / sw)[:, None]
            Ainv = (1.0 / sw)[:, None, None]
            r = y - beta[g, 0]
        vb = Ainv
        if ci != "wald":
            rss = gr.sum(w * r**2)
            s2w = np.where(rss <= _EPS, 0.0, rss / (k - p))
            if ci == "hksj_adhoc":
                s2w = np.maximum(s2w, 1.0)
            vb = np.where(use_t, s2w, 1.0)[:, None, None] * Ainv
        se_b = np.sqrt(np.diagonal(vb, axis1=1, axis2=2))
        zb = beta / se_b
    df = np.where(use_t, k - p, np.inf)
    crit_b, pval_b = _crit_and_p(zb.ravel(), np.repeat(df, p), level)
    crit_b = crit_b.reshape(zb.shape)
    pval_b = pval_b.reshape(zb.shape)
    est, se, crit, pval = beta[:, 0], se_b[:, 0], crit_b[:, 0], pval_b[:, 0]
    ci_low = est - crit * se
    ci_high = est + crit * se
    if p > 1:
        pi_low = pi_high = np.full(G, np.nan)
    else:
        pi_half = crit * np.sqrt(vb[:, 0, 0] + tau2)
        pi_low = est - pi_half
        pi_high = est + pi_half
    qm, qm_df, qm_df2, qm_p = _omnibus(beta, vb, use_t, k, p, zb[:, 0], pval_b[:, 0])

    # --- common-effect fit and (residual) heterogeneity ---------------------------
    w0 = 1.0 / v
    sw0, trP0, _ = _fe_parts(gr, w0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if p > 1:
            q = _qstat(gr, y, v, np.zeros(G))[0]
            fe_est = fe_se = fe_lo = fe_hi = np.full(G, np.nan)
        else:
            fe_est = gr.sum(w0 * y) / sw0
            fe_se = np.sqrt(1.0 / sw0)
            zc = -special.ndtri(alpha / 2)
            fe_lo = fe_est - zc * fe_se
            fe_hi = fe_est + zc * fe_se
            q = gr.sum(w0 * (y - fe_est[g]) ** 2)
        has_df = k > p
        q = np.maximum(0.0, q)
        qdf = k - p
        qp = np.where(has_df, special.chdtrc(np.maximum(qdf, 1), q), 1.0)
        q = np.where(has_df, q, 0.0)
        vt = qdf / trP0
        if method == "FE":
            i2 = np.where(has_df, np.maximum(0.0, 100 * (q - qdf) / q), 0.0)
            i2 = np.where(has_df & (q == 0), 0.0, i2)
            h2 = np.where(has_df, q / qdf, 1.0)
        else:
            i2 = np.where(has_df, 100 * tau2 / (vt + tau2), 0.0)
            h2 = np.where(has_df, tau2 / vt + 1.0, 1.0)

    # --- Q-profile CI for tau^2 -------------------------------------------------
    t_lo = np.full(G, np.nan)
    t_hi = np.full(G, np.nan)
    capped = np.zeros(G, dtype=bool)
    if tau2_ci and method != "FE":
        t_lo, t_hi, capped = _qprofile(gr, y, v, tau2, q, k, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        i2_lo = 100 * t_lo / (vt + t_lo)
        i2_hi = 100 * t_hi / (vt + t_hi)

    r2 = _pseudo_r2(gr, y, v, method, tau2, q, k) if p > 1 else np.full(G, np.nan)

    empty = gr.k == 0
    out = {
        "k": gr.k.copy(),
        "estimate": est,
        "se": se,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "pvalue": pval,
        "pi_low": pi_low,
        "pi_high": pi_high,
        "tau2": tau2,
        "tau2_ci_low": t_lo,
        "tau2_ci_high": t_hi,
        "i2": i2,
        "i2_ci_low": i2_lo,
        "i2_ci_high": i2_hi,
        "h2": h2,
        "q": q,
        "q_df": np.maximum(gr.k - p, 0),
        "q_pvalue": qp,
        "fe_estimate": fe_est,
        "fe_se": fe_se,
        "fe_ci_low": fe_lo,
        "fe_ci_high": fe_hi,
        "qm": qm,
        "qm_df": qm_df,
        "qm_df2": qm_df2,
        "qm_pvalue": qm_p,
        "r2": r2,
        "converged": conv,
        "step_halved": halved,
        "tau2_ci_capped": capped,
    }
    for key, arr in out.items():
        if key not in ("k", "q_df", "qm_df", "converged", "step_halved", "tau2_ci_capped") and empty.any():
            arr = np.asarray(arr, dtype=float)
            arr[empty] = np.nan
            out[key] = arr
    out["method"] = np.where(conv, method, "DL")
    out["ci_method"] = np.where(use_t, ci, "wald")
    out["level"] = np.full(G, level)
    out["weights"] = 100.0 * w / sw[g]
    out["p"] = p
    out["beta"] = beta
    out["vb"] = vb
    out["se_beta"] = se_b
    out["zval"] = zb
    out["pval_beta"] = pval_b
    out["ci_low_beta"] = beta - crit_b * se_b
    out["ci_high_beta"] = beta + crit_b * se_b
    out["df"] = df
    return out


def _omnibus(beta, vb, use_t, k, p, z0, p0):
    """Omnibus (Wald-type) test of all coefficients but the intercept, as metafor's QM.

    ``QM = b' V^-1 b`` over the tested coefficients: chi^2(m) for Wald, ``QM/m``
    against F(m, k - p) for (ad hoc) Knapp-Hartung.  With p = 1 the intercept
    itself is tested (metafor's ``btt = 1`` for intercept-only models).
    """
    G = beta.shape[0]
    if p == 1:  # QM = z^2 (t^2): its chi^2(1) (F(1, k - 1)) p-value is the two-sided p-value of z (t)
        return z0 ** 2, np.full(G, 1), np.where(use_t, k - 1.0, np.nan), p0
    sel = slice(1, None) if p > 1 else slice(0, 1)
    m = p - 1 if p > 1 else 1
    b = beta[:, sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        if m == 1:
            qm = b[:, 0] ** 2 / vb[:, sel, sel][:, 0, 0]
        else:
            qm = np.einsum("gi,gij,gj->g", b, _inv(vb[:, sel, sel]), b)
        df2 = np.where(use_t, k - p, np.nan)
        qm = np.where(use_t, qm / m, qm)
        pf = special.fdtrc(m, np.maximum(np.nan_to_num(df2, nan=1.0), 1.0), qm)
        pc = special.chdtrc(m, qm)
        qm_p = np.where(use_t, np.where(df2 > 0, pf, np.nan), pc)
    return qm, np.full(G, m), df2, qm_p


def _pseudo_r2(gr, y, v, method, tau2, qe, k):
    """metafor's pseudo R^2 (percent) of a meta-regression; see :func:`pool_many`."""
    zero = np.zeros(gr.G)
    gr0 = _Groups(gr.g, gr.G, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "FE":
            q0 = _qstat(gr0, y, v, zero)[0]  # weighted total sum of squares
            adj = 1.0 - (qe / (k - gr.p)) / (q0 / (k - 1.0))
            return np.where(q0 > 0, np.maximum(0.0, 100 * adj), 0.0)
        tau0, conv0, _ = _estimate_tau2(gr0, y, v, method)
        r2 = np.where(tau0 == 0, 0.0, np.maximum(0.0, 100 * (tau0 - tau2) / tau0))
    return np.where(conv0, r2, np.nan)


def _qprofile(gr, y, v, tau2, q0, k, level):
    """Q-profile confidence interval for tau^2 (Viechtbauer, 2007), as metafor.

    Returns (lower, upper, capped) with ``capped`` where the upper bound is the
    search limit ``max(100, 10 tau^2)`` (the true bound is larger).
    """
    alpha = 1.0 - level
    p = gr.p
    df = np.maximum(k - p, 1.0)
    crit_u = special.chdtri(df, alpha / 2)
    crit_l = special.chdtri(df, 1 - alpha / 2)
    ok = k > p
    tmax = np.maximum(100.0, 10.0 * tau2)
    qmax, _, _ = _qstat(gr, y, v, tmax)
    zero = np.zeros(gr.G)
    lo = np.full(gr.G, np.nan)
    hi = np.full(gr.G, np.nan)
    # upper bound
    null = ok & (q0 < crit_l)
    hi = np.where(null, 0.0, hi)
    cap = ok & ~null & (qmax > crit_l)
    hi = np.where(cap, tmax, hi)
    act = ok & ~null & ~cap
    if act.any():
        hi = np.where(act, _solve_q(gr, y, v, crit_l, zero, tmax, act), hi)
    # lower bound
    capl = ok & (qmax > crit_u)
    lo = np.where(capl, tmax, lo)
    hi = np.where(capl, tmax, hi)
    zl = ok & ~capl & (q0 < crit_u)
    lo = np.where(zl, 0.0, lo)
    act = ok & ~capl & ~zl
    if act.any():
        lo = np.where(act, _solve_q(gr, y, v, crit_u, zero, tmax, act), lo)
    return lo, hi, cap | capl


def _result_from(out, i, sl, method_requested, notes=(), weights=None):
    vals = {f: out[f][i] for f in _SCALAR_FIELDS}
    conv = bool(vals.pop("converged"))
    notes = list(notes)
    if not conv:
        notes.append(f"{method_requested} did not converge; fell back to DL")
    if bool(out["step_halved"][i]):
        notes.append(
            f"{method_requested} Fisher scoring oscillated; converged with "
            "half steps (metafor control stepadj=0.5)"
        )
    k = int(vals.pop("k"))
    capped = bool(out["tau2_ci_capped"][i])
    if capped:
        notes.append(
            f"upper Q-profile bound of tau² reached the search limit {max(100.0, 10.0 * vals['tau2']):g}: "
            "the true bound is larger"
        )
    if k == 1:
        notes.append("k = 1: tau2 = 0 and a Wald interval are used (as metafor)")
    return PooledResult(
        k=k,
        method=str(out["method"][i]),
        ci_method=str(out["ci_method"][i]),
        level=float(out["level"][i]),
        q_df=int(vals.pop("q_df")),
        **{f: float(x) for f, x in vals.items()},
        weights=np.asarray(out["weights"][sl] if weights is None else weights, dtype=float),
        converged=conv,
        method_requested=method_requested,
        notes=tuple(notes),
        tau2_ci_capped=capped,
    )


def pool(yi, vi, method="REML", ci="hksj", level=0.95) -> PooledResult:
    """Pool one set of studies (metafor ``rma.uni`` + ``predict`` + ``confint``).

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (> 0).
    method : str
        One of ``"REML"`` (default), ``"DL"``, ``"PM"``, ``"ML"``, ``"HE"``,
        ``"SJ"``, ``"EB"``, ``"FE"``; see the module docstring.  REML/ML/EB
        (and PM) fall back to DL if they fail, noted in ``notes``.
    ci : str
        ``"hksj"`` (default, Hartung & Knapp 2001), ``"hksj_adhoc"`` (Knapp &
        Hartung 2003) or ``"wald"``.
    level : float
        Confidence level.

    Returns
    -------
    PooledResult

    Examples
    --------
    >>> r = pool([0.1, 0.3, 0.35, 0.65], [0.01, 0.02, 0.015, 0.05], method="DL", ci="wald")
    >>> round(r.estimate, 4)
    0.2974
    """
    y, v = _check_inputs(yi, vi)
    if y.size == 0:
        raise ValueError("at least one study is needed")
    out = pool_many(y, v, np.zeros(y.size, dtype=np.intp), method, ci, level)
    return _result_from(out, 0, slice(None), method)


#: Most rows :func:`pool_subsets` hands to one :func:`pool_many` call (memory stays bounded: leave-one-out
#: of k studies has k(k-1) rows, 10^8 at k = 10,000).
SUBSET_CHUNK_ROWS = 1_000_000


def pool_subsets(y, v, subsets, method="REML", ci="hksj", level=0.95, tau2_ci=True, X=None,
                 chunk_rows=SUBSET_CHUNK_ROWS) -> dict:  # fmt: skip
    """:func:`pool_many` of the analyses ``y[s], v[s]`` for each index array ``s`` of ``subsets``.

    The subsets (leave-one-out, cumulative, ...) are fitted in consecutive chunks of at most
    ``chunk_rows`` rows (a single larger subset is its own chunk), so memory grows with the chunk, not
    with the total number of rows; the result is the same dict as one :func:`pool_many` call over all of
    them (``weights`` aligned with ``np.concatenate(subsets)``).
    """
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    sizes = np.array([len(s) for s in subsets], dtype=np.int64)
    parts, start = [], 0
    while start < len(subsets):
        stop, rows = start + 1, sizes[start]
        while stop < len(subsets) and rows + sizes[stop] <= chunk_rows:
            rows += sizes[stop]
            stop += 1
        idx = np.concatenate(subsets[start:stop])
        grp = np.repeat(np.arange(stop - start, dtype=np.intp), sizes[start:stop])
        parts.append((stop - start, pool_many(y[idx], v[idx], grp, method, ci, level, tau2_ci=tau2_ci,
                                              n_groups=stop - start, X=None if X is None else X[idx])))  # fmt: skip
        start = stop
    if len(parts) == 1:
        return parts[0][1]
    out = {}
    for key, first in parts[0][1].items():
        per_group = key == "weights" or (np.ndim(first) >= 1 and len(first) == parts[0][0])
        out[key] = np.concatenate([o[key] for _, o in parts]) if per_group else first
    return out


def _subset_results(y, v, out, subsets, method) -> list[PooledResult]:
    """PooledResults of :mod:`tpsynth.subset_fits` output; weights 100 w / sum w of each subset."""
    res = []
    for j, idx in enumerate(subsets):
        w = 1.0 / (v[idx] + out["tau2"][j])
        res.append(_result_from(out, j, None, method, weights=100.0 * w / w.sum()))
    return res


def leave_one_out(yi, vi, method="REML", ci="hksj", level=0.95, tau2_ci=True) -> list[PooledResult]:
    """Leave-one-out analyses (metafor ``leave1out()``).

    Element ``i`` of the returned list is the analysis without study ``i``, computed by
    :func:`tpsynth.subset_fits.leave_one_out_fits` (series sums about shared tau² centres, about
    linear in k; equal to refitting each subset with :func:`pool_many`).  Weights are those of the
    remaining k-1 studies in their original order (k² numbers in all).  ``tau2_ci=False`` skips the
    Q-profile intervals.
    """
    from .subset_fits import leave_one_out_fits

    y, v = _check_inputs(yi, vi)
    n = y.size
    if n < 2:
        raise ValueError("leave-one-out needs at least two studies")
    out = leave_one_out_fits(y, v, method, ci, level, tau2_ci=tau2_ci)
    all_idx = np.arange(n)
    return _subset_results(y, v, out, (np.delete(all_idx, i) for i in range(n)), method)


def cumulative(yi, vi, order=None, method="REML", ci="hksj", level=0.95, tau2_ci=True) -> list[PooledResult]:
    """Cumulative meta-analysis (metafor ``cumul()``).

    Parameters
    ----------
    order : array_like of int, optional
        0-based permutation giving the order in which studies are added
        (e.g. ``np.argsort(year)``); default the input order.  Element ``i``
        of the result pools studies ``order[:i + 1]`` (the first one is a
        k = 1 "analysis", for which metafor uses a Wald interval).  Computed by
        :func:`tpsynth.subset_fits.cumulative_fits`, as :func:`leave_one_out`.
    """
    from .subset_fits import cumulative_fits

    y, v = _check_inputs(yi, vi)
    n = y.size
    order = np.arange(n) if order is None else np.asarray(order, dtype=np.intp)
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError("order must be a permutation of 0..k-1")
    out = cumulative_fits(y, v, order, method, ci, level, tau2_ci=tau2_ci)
    return _subset_results(y, v, out, (order[: i + 1] for i in range(n)), method)


def subgroup_difference(estimates, ses) -> tuple[float, int, float]:
    """Test for subgroup differences as RevMan does it.

    ``Q_between = sum w_j (est_j - est_FE)^2`` with ``w_j = 1/se_j^2`` and
    ``est_FE`` the inverse-variance mean of the subgroup estimates; chi-square
    with (number of subgroups - 1) df.  Subgroups with a non-finite estimate
    or SE (e.g. empty) are ignored.  With fewer than two subgroups the result
    is ``(0.0, 0, 1.0)`` (metafor's convention for k = 1).

    Returns
    -------
    (Q_between, df, p)
    """
    e = np.asarray(estimates, dtype=float).ravel()
    s = np.asarray(ses, dtype=float).ravel()
    if e.shape != s.shape:
        raise ValueError("estimates and ses must have the same length")
    ok = np.isfinite(e) & np.isfinite(s) & (s > 0)
    e, s = e[ok], s[ok]
    if e.size < 2:
        return 0.0, 0, 1.0
    w = 1.0 / s**2
    mu = np.sum(w * e) / np.sum(w)
    qb = float(max(0.0, np.sum(w * (e - mu) ** 2)))
    df = int(e.size - 1)
    return qb, df, float(special.chdtrc(df, qb))
