"""Multivariate (correlated-effects) meta-analysis with one variance component.

The model is metafor's ``rma.mv(yi, V, mods = X, random = ...)`` restricted to a single
between-study variance with a known structure::

    y ~ N(X beta, V + tau^2 M)

``V`` is the (block-diagonal) within-study covariance matrix of the effects, ``X`` the fixed-effect
design matrix and ``M`` the known structure of the random effects; a contrast-based network
meta-analysis with ``random = ~ contrast | study, rho = 1/2`` has ``M`` = 1 on the diagonal and 1/2
between two contrasts of one study (Higgins & Whitehead 1996; Salanti et al. 2008). The estimator
names are those of :mod:`tpsynth.pooling`:

``"REML"``, ``"ML"``
    (Restricted) maximum likelihood for tau^2 by Fisher scoring started at the DL value, truncated at
    0 (Harville 1977; Viechtbauer 2005). metafor maximises the same likelihood numerically
    (``nlminb``); the tests compare with the maximiser of metafor's own log-likelihood.
``"DL"``
    Generalised method of moments of Jackson, White & Riley (2012):
    ``tau^2 = max(0, (Q - df) / tr(P M))`` with ``P = W - W X (X'WX)^-1 X'W``, ``W = V^-1``. For a
    network with arm-level data this equals netmeta's estimator
    ``(Q - df) / tr((I - H)(B B' * E / 2) W)`` in Rücker's parametrisation (Rücker 2012; netmeta's
    ``nma_ruecker``): see ``docs`` in :mod:`tpsynth.network`.
``"FE"``
    Common-effect model, tau^2 = 0.

``Q`` is the test of residual heterogeneity ``(y - X b)' V^-1 (y - X b)`` with ``k - p`` degrees of
freedom (metafor ``QE``), computed under the common-effect weights.

References
----------
Harville DA (1977). Maximum likelihood approaches to variance component estimation. JASA 72:320-338.
Higgins JPT, Whitehead A (1996). Borrowing strength from external trials in a meta-analysis. Stat Med
15:2733-2749.
Jackson D, White IR, Riley RD (2012). Quantifying the impact of between-study heterogeneity in
multivariate meta-analyses. Stat Med 31:3805-3820.
Rücker G (2012). Network meta-analysis, electrical networks and graph theory. Res Synth Methods
3:312-324.
Salanti G, Higgins JPT, Ades AE, Ioannidis JPA (2008). Evaluation of networks of randomized trials.
Stat Methods Med Res 17:279-301.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["METHODS", "MVFit", "fit_mv", "gls"]

METHODS = ("REML", "ML", "DL", "FE")
#: Fisher scoring stops when |change of tau^2| <= FS_THRESHOLD * max(1, tau^2) (as pooling.py).
FS_THRESHOLD = 1e-13
FS_MAXITER = 1000


@dataclass(frozen=True)
class MVFit:
    """A fitted multivariate model.

    Attributes
    ----------
    method : str
        Estimator of tau^2 (``REML``, ``ML``, ``DL`` or ``FE``).
    beta, vcov : numpy.ndarray
        Fixed effects and their covariance matrix ``(X' S^-1 X)^-1`` with ``S = V + tau^2 M``.
    tau2 : float
        Between-study variance (0 for ``FE``; NaN when not estimable because ``q_df == 0``, the
        estimates then use tau^2 = 0, as netmeta does).
    q, q_df, q_pvalue : float, int, float
        Residual heterogeneity statistic under common-effect weights, ``k - p`` and its p-value.
    loglik : float
        Log-likelihood of the fit (restricted for REML, as metafor's ``logLik``).
    converged : bool
        False when Fisher scoring did not converge.
    """

    method: str
    beta: np.ndarray
    vcov: np.ndarray
    tau2: float
    q: float
    q_df: int
    q_pvalue: float
    loglik: float
    converged: bool = True

    def contrast(self, L) -> tuple[float, float]:
        """Estimate and standard error of the linear combination ``L beta``."""
        L = np.asarray(L, dtype=float)
        return float(L @ self.beta), float(math.sqrt(max(L @ self.vcov @ L, 0.0)))


def _chi2_sf(q: float, df: int) -> float:
    if df <= 0 or not math.isfinite(q):
        return math.nan
    return float(special.chdtrc(df, q))


def gls(y, S, X):
    """Generalised least squares: ``beta``, ``vcov``, ``S^-1`` and the residual quadratic form."""
    Sinv = np.linalg.inv(S)
    XtSi = X.T @ Sinv
    vcov = np.linalg.inv(XtSi @ X)
    beta = vcov @ (XtSi @ y)
    r = y - X @ beta
    return beta, vcov, Sinv, float(r @ Sinv @ r)


def _p_matrix(Sinv, X):
    SiX = Sinv @ X
    return Sinv - SiX @ np.linalg.inv(X.T @ SiX) @ SiX.T


def _loglik(y, S, X, method):
    beta, vcov, Sinv, rss = gls(y, S, X)
    k, p = X.shape
    ld_s = np.linalg.slogdet(S)[1]
    if method == "REML":
        ld_xsx = -np.linalg.slogdet(vcov)[1]
        ld_xx = np.linalg.slogdet(X.T @ X)[1]
        return float(-0.5 * (k - p) * math.log(2 * math.pi) + 0.5 * ld_xx - 0.5 * ld_s - 0.5 * ld_xsx - 0.5 * rss)
    return float(-0.5 * k * math.log(2 * math.pi) - 0.5 * ld_s - 0.5 * rss)


def _score_info(y, V, X, M, tau2, method):
    S = V + tau2 * M
    Sinv = np.linalg.inv(S)
    P = _p_matrix(Sinv, X)
    Py = P @ y
    A = P if method == "REML" else Sinv
    AM = A @ M
    score = -0.5 * np.trace(AM) + 0.5 * float(Py @ M @ Py)
    info = 0.5 * float(np.sum(AM * AM.T))
    return score, info


def _tau2_dl(y, V, X, M):
    _, _, Vinv, q = gls(y, V, X)
    df = X.shape[0] - np.linalg.matrix_rank(X)
    denom = float(np.trace(_p_matrix(Vinv, X) @ M))
    return max(0.0, (q - df) / denom) if denom > 0 else 0.0


def _tau2_fisher(y, V, X, M, method, start):
    tau2 = start
    for _ in range(FS_MAXITER):
        score, info = _score_info(y, V, X, M, tau2, method)
        new = max(0.0, tau2 + score / info)
        if abs(new - tau2) <= FS_THRESHOLD * max(1.0, tau2):
            return new, True
        tau2 = new
    return tau2, False


def fit_mv(yi, V, X, M, method: str = "REML") -> MVFit:
    """Fit ``y ~ N(X beta, V + tau^2 M)``.

    Parameters
    ----------
    yi : array_like, shape (k,)
        Effects.
    V : array_like, shape (k, k)
        Known within-study covariance matrix (positive definite).
    X : array_like, shape (k, p)
        Design matrix of full column rank.
    M : array_like, shape (k, k)
        Known structure of the random effects (tau^2 M is their covariance).
    method : {"REML", "ML", "DL", "FE"}
        Estimator of tau^2.

    Returns
    -------
    MVFit
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    y = np.asarray(yi, dtype=float)
    V = np.asarray(V, dtype=float)
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    M = np.asarray(M, dtype=float)
    k, p = X.shape
    if np.linalg.matrix_rank(X) < p:
        raise ValueError("design matrix X is not of full column rank")
    _, _, _, q = gls(y, V, X)
    q_df = k - p
    converged = True
    if method == "FE":
        tau2 = 0.0
    elif q_df == 0:
        tau2 = math.nan
    else:
        tau2 = _tau2_dl(y, V, X, M)
        if method in ("REML", "ML"):
            tau2, converged = _tau2_fisher(y, V, X, M, method, tau2)
    t = 0.0 if not math.isfinite(tau2) else tau2
    S = V + t * M
    beta, vcov, _, _ = gls(y, S, X)
    ll_method = "REML" if method in ("REML", "DL") else "ML"
    return MVFit(
        method=method, beta=beta, vcov=vcov, tau2=tau2, q=q, q_df=q_df, q_pvalue=_chi2_sf(q, q_df),
        loglik=_loglik(y, S, X, ll_method), converged=converged,
    )  # fmt: skip
