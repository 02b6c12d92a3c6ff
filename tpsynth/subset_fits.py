"""Leave-one-out and cumulative fits of the intercept-only model in O(k) sums per subset step.

Refitting each of the k subsets of a leave-one-out (metafor ``leave1out``) or cumulative (``cumul``)
analysis with the general engine (:func:`tpsynth.pooling.pool_subsets`) is k refits of up to k
studies: k² work (100 s at k = 10,000).  This module computes the same fits, to rounding, from
per-subset *sums*:

* Every quantity the engine needs for one subset at a given tau² = t is a sum over the subset's
  studies of ``g_j / (v_j + t)^p`` with ``g`` one of 1, y, y² (``p`` = 1, 2, 3), of the unweighted
  ``1, y, y², v`` or of ``log(v_j + t)``.  Sums over a subset are the full sum minus one study's
  term (leave-one-out) or prefix sums in the given order (cumulative).  The study of smallest
  variance is left out of these sums and its terms added exactly per subset; tr(P) and tr(P²) are
  then written as sums of non-negative terms and differences over pairs of the *other* studies, so
  one dominant study costs no digits (the engine sums over "the other studies" for the same reason).
* Each subset has its own t.  Around a centre c the terms are expanded in d = t - c (binomial
  series): ``1/(v_j + c + d)^p = sum_m binom(-p, m) d^m / (v_j + c)^(p + m)`` and
  ``log(v_j + c + d) = log(v_j + c) + sum_m (-1)^(m+1) d^m / (m (v_j + c)^m)``, so the subset sums
  at any t near c follow from the subset sums of the moments ``g_j / (v_j + c)^q`` (q <= p + M).
  With ``r = |d| / min_j(v_j + c)`` (< 1; the minimum over the studies in the series) the remainder after M terms is at most
  ``binom(p + M, M + 1) r^(M+1) / (1 - r)^p`` relative to the sum of ``|g_j| / (v_j + c)^p``; the
  series is used only where that bound is below the double-precision unit roundoff
  (``r <= R_MAX``).  Where a subset's t is outside every centre's radius, a new centre is added
  at t (its moments cost one O(k) pass), so the series is never used beyond its bound.
* With these sums every estimator of the engine is run per subset exactly as the engine runs it:
  the DerSimonian-Laird, Hedges and Sidik-Jonkman closed forms, the Paule-Mandel root (unique: the
  generalised Q is strictly decreasing in tau²) by safeguarded Newton steps, and the REML, ML and
  empirical Bayes Fisher scoring *path* of the engine (started at the subset's Hedges estimate,
  with metafor's step halving below 0, the same stopping rule, the retry with half steps where it
  has not converged in ``FS_MAXITER`` steps, DL where that fails too, and metafor's ll(0) check).
  The Q-profile interval of tau² (Viechtbauer, 2007) is two more roots of the same kind, with the
  engine's checks at 0 and at its search limit ``max(100, 10 tau²)``.

A subset goes through the general engine instead (an exact refit, the same code as before) where
the fast path cannot vouch for its digits: fewer than ``SMALL_K`` studies, a Paule-Mandel root or a
Q-profile check too close to its limit to call, a difference of sums that
cancels more than ``COND_MAX``-fold (e.g. identical effects), an ll(0) check too close to call, or
more than ``MAX_CENTRES`` expansion centres in a chunk.  Results therefore equal the exact refits
to rounding (tests/test_subset_fits.py checks 1e-9 for every method and interval type) and, through
them, metafor's ``leave1out`` and ``cumul`` (tests/test_pooling.py).

Work is done in chunks of ``CHUNK`` subsets (memory ``CHUNK x centres x (3 M + 8)`` doubles) and is
O(k (M + centres)) per chunk, so the whole analysis is about linear in k; Fisher scoring that
oscillates (e.g. one dominant study) takes its up to 2 x FS_MAXITER steps per subset here too.
Meta-regression (p > 1) leave-one-out stays on the general engine.

References
----------
Viechtbauer W (2005). Bias and efficiency of meta-analytic variance estimators in the random-effects
model. J Educ Behav Stat 30:261-293 (Fisher scoring for ML/REML/EB).
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3)
(``leave1out``, ``cumul``).
Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity in meta-analysis. Stat
Med 26:37-52.
DerSimonian R, Laird N (1986). Controlled Clinical Trials 7:177-188.
Paule RC, Mandel J (1982). J Res Natl Bur Stand 87:377-385.
Sidik K, Jonkman JN (2005). J R Stat Soc C 54:367-384.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from . import pooling
from .pooling import (
    _EPS,
    _SCALAR_FIELDS,
    FS_MAXITER,
    FS_THRESHOLD,
    LL_TOL,
    ROOT_ATOL,
    ROOT_MAXITER,
    ROOT_RTOL,
    _crit_and_p,
    _fisher_update,
)

__all__ = ["cumulative_fits", "leave_one_out_fits"]

#: Terms of the binomial series after the leading one.
M_TERMS = 30
#: Subsets with fewer studies are refitted exactly (cheap, and where one study moves tau² most).
SMALL_K = 32
#: Subsets per chunk (memory bound).
CHUNK = 1024
#: Largest cancellation factor (sum of magnitudes / result) accepted in a difference of sums.
COND_MAX = 1e4
#: Most expansion centres per chunk; subsets needing more are refitted exactly.
MAX_CENTRES = 64
#: Rounding level of a computed Q relative to the magnitudes of its terms (a root is found where
#: |Q - target| is below it).
_NOISE = 16 * _EPS


def _tail_bound(r: float, M: int) -> float:
    """Largest relative remainder of the p = 1..3 binomial and the log series after M terms."""
    b = max(math.comb(p + M, M + 1) * r ** (M + 1) / (1 - r) ** p for p in (1, 2, 3))
    return max(b, r ** (M + 1) / ((M + 1) * (1 - r)))


def _r_max(M: int) -> float:
    lo, hi = 0.0, 0.99
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _tail_bound(mid, M) <= _EPS / 2 else (lo, mid)
    return lo


#: Largest |t - c| / min_j(v_j + c) at which the series is used (remainder below eps / 2).
R_MAX = _r_max(M_TERMS)

_M = M_TERMS
_QA, _QB = _M + 3, _M + 2  # highest moment order of g = 1 and of g = y, y²
_A0, _B0, _C0 = 0, _QA, _QA + _QB  # column offsets of the g = 1, y, y² blocks
_LOG = _QA + 2 * _QB
_NCOL = _LOG + 1
_MS = np.arange(_M + 1)
#: binom(-p, m) for p = 1, 2, 3 and m = 0..M
_BINOM = {p: np.array([(-1) ** m * math.comb(p + m - 1, m) for m in range(_M + 1)], dtype=float) for p in (1, 2, 3)}
_LOGC = np.array([0.0] + [(-1) ** (m + 1) / m for m in range(1, _M + 1)])


class _Plan:
    """The studies of each subset: all but study i (``"loo"``) or ``order[:i + 1]`` (``"cum"``)."""

    def __init__(self, y, v, kind, order=None):
        self.y, self.v, self.kind = y, v, kind
        self.k = y.size
        self.order = np.arange(self.k) if order is None else order
        # the study of smallest variance ("top") is left out of the series sums and added exactly
        # per subset: it may dominate every weighted sum, and the series' radius is set by the others
        self.top = int(np.argmin(v))
        others = np.delete(v, self.top)
        self.vmin = float(others.min()) if others.size else float(v[self.top])
        # effects centred at the common-effect mean: the sums of w y and w y² then cancel little
        w = 1.0 / v
        self.yc = float(np.sum(w * y) / np.sum(w))
        self.yd = y - self.yc
        pos = np.empty(self.k, dtype=np.intp)
        pos[self.order] = np.arange(self.k)
        self.top_pos = int(pos[self.top])  # cumulative: subsets from this one on hold the top study

    def has_top(self, a, b):
        i = np.arange(a, b)
        return (i != self.top) if self.kind == "loo" else (i >= self.top_pos)

    def sizes(self, a, b):
        n = np.arange(a, b)
        return np.full(b - a, self.k - 1.0) if self.kind == "loo" else n + 1.0

    def indices(self, i) -> np.ndarray:
        return np.delete(np.arange(self.k), i) if self.kind == "loo" else self.order[: i + 1]

    # --- per-study tables ----------------------------------------------------------------
    def fixed_table(self, rows):
        yd, v = self.yd[rows], self.v[rows]
        return np.column_stack([np.ones(yd.size), yd, yd * yd, v])

    def table(self, rows, c):
        """Per study: (s / (v + c))^q for g = 1, y, y² (q = 1..) and log(v + c); s = min v + c.

        The top study's row is 0 (its terms are added exactly by :meth:`_Chunk.sums`)."""
        v, yd = self.v[rows], self.yd[rows]
        z = (self.vmin + c) / (v + c)
        Z = np.cumprod(np.broadcast_to(z[:, None], (z.size, _QA)), axis=1)
        out = np.empty((z.size, _NCOL))
        out[:, _A0:_A0 + _QA] = Z
        out[:, _B0:_B0 + _QB] = yd[:, None] * Z[:, :_QB]
        out[:, _C0:_C0 + _QB] = (yd * yd)[:, None] * Z[:, :_QB]
        out[:, _LOG] = np.log(v + c)
        out[rows == self.top] = 0.0
        return out

    # --- subset sums of a table for subsets a..b-1 -----------------------------------------
    def state(self, tab, a):
        """What the chunk starting at subset ``a`` needs besides its own rows (totals or a carry)."""
        return _blocked_sum(tab, np.arange(self.k) if self.kind == "loo" else self.order[:a])

    def chunk_sums(self, tab, state, a, b):
        if self.kind == "loo":
            return state[None, :] - tab(np.arange(a, b))
        return state[None, :] + np.cumsum(tab(self.order[a:b]), axis=0)


def _blocked_sum(tab, rows, block=4096):
    total = None
    for s in range(0, rows.size, block):
        part = tab(rows[s:s + block]).sum(axis=0)
        total = part if total is None else total + part
    if total is None:
        total = tab(rows[:0]).sum(axis=0)
    return total


class _Chunk:
    """Subset sums of one chunk of subsets at any tau² per subset, by series about shared centres."""

    def __init__(self, plan: _Plan, centres: list, a: int, b: int):
        self.plan, self.a, self.b = plan, a, b
        self.centres = centres  # shared across chunks: [c, state] lists
        self.n = plan.sizes(a, b)
        self.has_top = plan.has_top(a, b)
        ftab = plan.fixed_table
        self.F = plan.chunk_sums(ftab, plan.state(ftab, a), a, b)
        self.c = np.array([c for c, _ in centres])
        self.H = np.stack([plan.chunk_sums(self._tab(c), st, a, b) for c, st in centres], axis=1)

    def _tab(self, c):
        return lambda rows: self.plan.table(rows, c)

    def _add_centres(self, ts):
        new = []
        for t in np.sort(ts):
            if new and abs(t - new[-1]) <= R_MAX * (self.plan.vmin + new[-1]):
                continue
            new.append(float(t))
        if self.c.size + len(new) > MAX_CENTRES:
            new = new[: max(0, MAX_CENTRES - self.c.size)]
        for c in new:
            st = self.plan.state(self._tab(c), self.a)
            self.centres.append([c, st])
            h = self.plan.chunk_sums(self._tab(c), st, self.a, self.b)
            self.H = np.concatenate([self.H, h[:, None, :]], axis=1)
        self.c = np.array([c for c, _ in self.centres])

    def sums(self, rows, t):
        """Sums at tau² ``t`` (per subset ``rows`` of this chunk) and where they are within bound.

        Returns dict with A1..A3 (sum w^p), B1, B2 (sum w^p y), C1, C2 (sum w^p y²), L (sum log(v+t)),
        y centred at the common-effect mean; R1..R3 (sum w^p over the studies but the top one), ``a``
        (the top study's weight, 0 where the subset does not hold it); and ``ok``.
        """
        s_all = self.plan.vmin + self.c
        r = np.abs(t[:, None] - self.c[None, :]) / s_all[None, :]
        best = np.argmin(r, axis=1)
        ok = r[np.arange(t.size), best] <= R_MAX
        if not ok.all():
            self._add_centres(t[~ok & np.isfinite(t) & (t >= 0)])
            s_all = self.plan.vmin + self.c
            r = np.abs(t[:, None] - self.c[None, :]) / s_all[None, :]
            best = np.argmin(r, axis=1)
            ok = r[np.arange(t.size), best] <= R_MAX
        c, s = self.c[best], s_all[best]
        H = self.H[rows, best]
        x = np.where(ok, (t - c) / s, 0.0)
        X = x[:, None] ** _MS[None, :]
        out = {"ok": ok}
        for name, off, ps in (("A", _A0, (1, 2, 3)), ("B", _B0, (1, 2)), ("C", _C0, (1, 2))):
            for p in ps:
                coef = X * _BINOM[p][None, :]
                out[f"{name}{p}"] = np.einsum("sm,sm->s", coef, H[:, off + p - 1: off + p + _M]) / s**p
        out["L"] = H[:, _LOG] + np.einsum("sm,sm->s", X[:, 1:] * _LOGC[None, 1:], H[:, _A0:_A0 + _M])
        # the top study, exactly
        plan = self.plan
        has = self.has_top[rows]
        with np.errstate(invalid="ignore"):
            a = np.where(has, 1.0 / (plan.v[plan.top] + t), 0.0)
        out["a"] = a
        yt = plan.yd[plan.top]
        for p in (1, 2, 3):
            out[f"R{p}"] = out[f"A{p}"]
            out[f"A{p}"] = out[f"A{p}"] + a**p
        for p in (1, 2):
            out[f"B{p}"] += a**p * yt
            out[f"C{p}"] += a**p * yt * yt
        with np.errstate(invalid="ignore"):
            out["L"] += np.where(has, np.log(plan.v[plan.top] + t), 0.0)
        return out


def _cond_ok(result, *magnitudes):
    """Is a difference of sums ``result`` (of terms of these magnitudes) free of heavy cancellation?"""
    mag = sum(np.abs(m) for m in magnitudes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.isfinite(result) & (np.abs(result) * COND_MAX >= mag) & (result != 0)


def _derived(S):
    """mu (centred), Q = sum w r², sum w² r², tr(P), tr(P²) and their cancellation checks.

    With P = W - w w' / sum w, tr(P) = (A1² - A2) / A1 and
    A1² tr(P²) = A1² A2 - 2 A1 A3 + A2².  Written with the top study's weight ``a`` apart
    (A_p = a^p + R_p) these are sums of non-negative terms but for R1² - R2, R1 R2 - R3 and
    R1² R2 - 2 R1 R3 + R2², sums over pairs of *other* studies, so one dominant study costs no
    digits (the engine sums over "the other studies" for the same reason):
    A1 tr(P) = 2 a R1 + (R1² - R2),
    A1² tr(P²) = a² (R1² + 3 R2) + 2 a (R1 R2 - R3) + (R1² R2 - 2 R1 R3 + R2²).
    """
    A1, A2, B1, B2, C1, C2 = (S[n] for n in ("A1", "A2", "B1", "B2", "C1", "C2"))
    a, R1, R2, R3 = S["a"], S["R1"], S["R2"], S["R3"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = B1 / A1
        q = C1 - B1 * mu
        wwrr = C2 - 2 * mu * B2 + mu * mu * A2
        e2 = R1 * R1 - R2
        e21 = R1 * R2 - R3
        e22 = R1 * R1 * R2 - 2 * R1 * R3 + R2 * R2
        trP_num = 2 * a * R1 + e2
        trPP_num = a * a * (R1 * R1 + 3 * R2) + 2 * a * e21 + e22
        trP = trP_num / A1
        trPP = trPP_num / (A1 * A1)
    good = {
        "q": _cond_ok(q, C1, B1 * mu),
        "wwrr": _cond_ok(wwrr, C2, 2 * mu * B2, mu * mu * A2),
        # the rounding of the differences of pair sums, against the whole
        "trP": _cond_ok(trP_num, R1 * R1, R2),
        "trPP": _cond_ok(trPP_num, 2 * a * R1 * R2, 2 * a * R3, R1 * R1 * R2, 2 * R1 * R3, R2 * R2),
    }
    return mu, q, wwrr, trP, trPP, good


def _fisher(ch, t0, method, fall, stepadj, skip):
    """The engine's Fisher scoring path (REML/ML/EB) for the chunk's subsets but ``fall | skip``;
    see module doc.  Returns (tau², not converged in FS_MAXITER steps)."""
    n_all = ch.n
    tau2 = np.full(t0.size, np.nan)
    notconv = np.zeros(t0.size, dtype=bool)
    run = np.flatnonzero(~fall & ~skip)
    t = t0[run]
    for _ in range(FS_MAXITER + 1):
        if run.size == 0:
            break
        S = ch.sums(run, t)
        n = n_all[run]
        mu, q, wwrr, trP, trPP, good = _derived(S)
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "REML":
                adj = (wwrr - trP) / trPP
                bad = ~(good["wwrr"] & good["trP"] & good["trPP"])
            elif method == "ML":
                adj = (wwrr - S["A1"]) / S["A2"]
                bad = ~good["wwrr"]
            else:  # EB
                adj = (q * n / (n - 1) - n) / S["A1"]
                bad = ~good["q"]
        bad |= ~S["ok"] | ~np.isfinite(adj)
        if bad.any():
            fall[run[bad]] = True
            keep = ~bad
            run, t, adj = run[keep], t[keep], adj[keep]
        new, done = _fisher_update(t, adj * stepadj)
        tau2[run[done]] = new[done]
        run, t = run[~done], new[~done]
    notconv[run] = True
    return tau2, notconv


def _ll(S, n, method):
    mu, q, *_ = _derived(S)
    if method == "ML":
        return -0.5 * n * np.log(2 * np.pi) - 0.5 * S["L"] - 0.5 * q, q
    return -0.5 * (n - 1) * np.log(2 * np.pi) - 0.5 * S["L"] - 0.5 * np.log(S["A1"]) - 0.5 * q, q


def _ll0_check(ch, tau2, S0, method, fall):
    """metafor: where ll(0) beats ll(tau²) by more than LL_TOL, tau² = 0 (too close to call: exact)."""
    cand = np.flatnonzero(~fall & (tau2 > FS_THRESHOLD))
    if cand.size == 0:
        return tau2
    S = ch.sums(cand, tau2[cand])
    n = ch.n[cand]
    ll, q = _ll(S, n, method)
    S0c = {key: val[cand] for key, val in S0.items()}
    ll0, q0 = _ll(S0c, n, method)
    diff = ll0 - ll
    logscale = np.abs(np.log(ch.plan.vmin + tau2[cand])) + np.abs(np.log(ch.plan.v.max() + tau2[cand])) + 1
    margin = 1e-10 * (n * logscale + np.abs(q) + np.abs(q0) + np.abs(np.log(S["A1"])) + np.abs(np.log(S0c["A1"])))
    unsure = ~S["ok"] | ~np.isfinite(diff) | (np.abs(diff - LL_TOL) <= margin)
    fall[cand[unsure]] = True
    tau2 = tau2.copy()
    tau2[cand[~unsure & (diff > LL_TOL)]] = 0.0
    return tau2


def _root(ch, rows, target, x, hi, fall):
    """Root of Q(t) = target on [0, hi] per subset ``rows`` (Q strictly decreasing), safeguarded
    Newton steps from ``x`` with the engine's stopping rule; NaN (and ``fall``) where a sum is not
    within bound."""
    root = np.full(rows.size, np.nan)
    pos = np.arange(rows.size)
    run, target = rows, np.asarray(target, dtype=float)
    lo = np.zeros(rows.size)
    for _ in range(ROOT_MAXITER):
        if run.size == 0:
            break
        S = ch.sums(run, x)
        mu, q, wwrr, _, _, good = _derived(S)
        bad = ~S["ok"] | ~good["q"] | ~good["wwrr"]
        f = q - target
        lo = np.where(f > 0, x, lo)
        hi = np.where(f <= 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = x + f / wwrr
        step_bad = ~np.isfinite(xn) | (xn < lo) | (xn > hi)
        xn = np.where(step_bad, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2 * x + 1e-3), xn)
        tol = ROOT_RTOL * np.maximum(np.abs(xn), 1e-12) + ROOT_ATOL
        # also done where Q - target is at the rounding level of Q (C1 - B1 mu): Newton steps then
        # only alternate between neighbouring doubles (the engine stops there after ROOT_MAXITER)
        noise = _NOISE * (np.abs(S["C1"]) + np.abs(S["B1"] * mu))
        done = ~bad & ((np.abs(xn - x) <= tol) | (np.abs(f) <= noise) | (hi - lo <= tol))
        fall[run[bad]] = True
        root[pos[done]] = xn[done]
        keep = ~bad & ~done
        run, pos, target, lo, hi, x = run[keep], pos[keep], target[keep], lo[keep], hi[keep], xn[keep]
    fall[run] = True
    return root


def _pm(ch, q0, fall, start):
    """Paule-Mandel: the unique root of Q(t) = k - 1, 0 where Q(0) < k - 1; (tau², converged).

    As the engine, a root above the search limit ``max(100, 10 mad(y)²)`` (R's ``mad``) is not
    accepted (metafor stops there; the engine then falls back to DL): the limit is computed for the
    subsets whose root is 100 or more (two medians of the subset, O(k) each).
    """
    n = ch.n
    tau2 = np.zeros(n.size)
    conv = np.ones(n.size, dtype=bool)
    rows = np.flatnonzero(~fall & (q0 >= n - 1))
    tau2[rows] = _root(ch, rows, n[rows] - 1, np.full(rows.size, start), np.full(rows.size, np.inf), fall)
    for i in rows[~fall[rows] & (tau2[rows] >= 100.0 * (1 - 1e-9))]:
        y = ch.plan.y[ch.plan.indices(ch.a + i)]
        mad = 1.4826 * np.median(np.abs(y - np.median(y)))
        tmax = max(100.0, 10 * mad**2 if np.isfinite(mad) else 0.0)
        if _near(tau2[i], tmax):
            fall[i] = True
        elif tau2[i] > tmax:
            conv[i] = False
    return tau2, conv


def _near(a, b):
    """Too close to call on which side of ``b`` the computed ``a`` lies."""
    return np.abs(a - b) <= 1e-9 * np.abs(b)


def _qprofile(ch, tau2, q0, fall, level):
    """Q-profile interval for tau² (Viechtbauer, 2007) as the engine's; (low, high, capped)."""
    n = ch.n
    m = n.size
    alpha = 1.0 - level
    df = np.maximum(n - 1, 1.0)
    crit_u = special.chdtri(df, alpha / 2)
    crit_l = special.chdtri(df, 1 - alpha / 2)
    tmax = np.maximum(100.0, 10.0 * tau2)
    rows = np.flatnonzero(~fall)
    qmax = np.full(m, np.nan)
    S = ch.sums(rows, tmax[rows])
    qmax[rows] = _derived(S)[1]
    fall[rows[~S["ok"]]] = True
    fall |= _near(q0, crit_l) | _near(q0, crit_u) | _near(qmax, crit_l) | _near(qmax, crit_u)
    lo, hi = np.full(m, np.nan), np.full(m, np.nan)
    null = q0 < crit_l
    hi = np.where(null, 0.0, hi)
    cap = ~null & (qmax > crit_l)
    hi = np.where(cap, tmax, hi)
    act = np.flatnonzero(~fall & ~null & ~cap)
    s_hi, s_lo = ch.plan.ci_start
    hi[act] = _root(ch, act, crit_l[act], np.clip(s_hi, 0, tmax[act]), tmax[act], fall)
    capl = qmax > crit_u
    lo = np.where(capl, tmax, lo)
    hi = np.where(capl, tmax, hi)
    zl = ~capl & (q0 < crit_u)
    lo = np.where(zl, 0.0, lo)
    act = np.flatnonzero(~fall & ~capl & ~zl)
    lo[act] = _root(ch, act, crit_u[act], np.clip(s_lo, 0, tmax[act]), tmax[act], fall)
    return lo, hi, cap | capl


def _fit_chunk(ch: _Chunk, method, ci, level, tau2_ci):
    """All fields of the chunk's fits (NaN where ``fall``: those are refitted exactly)."""
    n = ch.n
    m = n.size
    fall = n < SMALL_K
    allr = np.arange(m)
    S0 = ch.sums(allr, np.zeros(m))
    mu0, q0, _, trP0, _, good0 = _derived(S0)
    fall |= ~S0["ok"] | ~good0["trP"] | ~good0["q"]
    F = ch.F
    with np.errstate(divide="ignore", invalid="ignore"):
        rss_u = F[:, 2] - F[:, 1] ** 2 / F[:, 0]  # unweighted sum of squares about the mean
        he = (rss_u - (1.0 - 1.0 / n) * F[:, 3]) / (n - 1.0)
    if method in ("HE", "SJ", "REML", "ML", "EB"):
        fall |= ~_cond_ok(rss_u, F[:, 2], F[:, 1] ** 2 / F[:, 0])
    conv, halved = np.ones(m, dtype=bool), np.zeros(m, dtype=bool)
    if method == "FE":
        tau2 = np.zeros(m)
    elif method == "DL":
        with np.errstate(divide="ignore", invalid="ignore"):
            tau2 = np.maximum(0.0, (q0 - (n - 1)) / trP0)
    elif method == "HE":
        tau2 = np.maximum(0.0, he)
    elif method == "SJ":
        t0 = rss_u / n
        rows = np.flatnonzero(~fall)
        tau2 = np.full(m, np.nan)
        S = ch.sums(rows, t0[rows])
        _, q, *_, good = _derived(S)
        fall[rows[~S["ok"] | ~good["q"]]] = True
        tau2[rows] = np.maximum(0.0, t0[rows] * q / (n[rows] - 1))
    elif method == "PM":
        tau2, conv = _pm(ch, q0, fall, ch.plan.t_full)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau2 = np.where(conv, tau2, np.maximum(0.0, (q0 - (n - 1)) / trP0))
    else:
        # as the engine: Fisher scoring from max(0, HE); where it has not converged in FS_MAXITER
        # steps, again with half steps (metafor's stepadj = 0.5); where that fails too, DL
        init = np.maximum(0.0, np.nan_to_num(he, nan=0.0))
        none = np.zeros(m, dtype=bool)
        tau2, nc = _fisher(ch, init, method, fall, 1.0, none)
        if nc.any():
            t2, nc2 = _fisher(ch, init, method, fall, 0.5, ~nc)
            tau2 = np.where(nc, t2, tau2)
            halved = nc & ~nc2
            conv = ~nc2
        if method in ("REML", "ML"):
            tau2 = _ll0_check(ch, np.where(conv, tau2, 0.0), S0, method, fall)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau2 = np.where(conv, tau2, np.maximum(0.0, (q0 - (n - 1)) / trP0))
    tau2 = np.where(fall, np.nan, np.maximum(tau2, 0.0))

    rows = np.flatnonzero(~fall)
    S = {key: np.full(m, np.nan) for key in ("A1", "B1", "C1")}
    St = ch.sums(rows, tau2[rows])
    fall[rows[~St["ok"]]] = True
    for key in S:
        S[key][rows] = St[key]
    t_lo, t_hi, capped = np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, dtype=bool)
    if tau2_ci and method != "FE":
        t_lo, t_hi, capped = _qprofile(ch, tau2, np.maximum(0.0, q0), fall, level)
    alpha = 1.0 - level
    use_t = np.full(m, ci != "wald")
    with np.errstate(divide="ignore", invalid="ignore"):
        sw = S["A1"]
        mu = S["B1"] / sw
        est = ch.plan.yc + mu
        vb = 1.0 / sw
        if ci != "wald":
            rss = S["C1"] - S["B1"] * mu
            fall |= ~_cond_ok(rss, S["C1"], S["B1"] * mu) & ~np.isnan(tau2)
            s2w = np.where(rss <= _EPS, 0.0, rss / (n - 1))
            if ci == "hksj_adhoc":
                s2w = np.maximum(s2w, 1.0)
            vb = s2w * vb
        se = np.sqrt(vb)
        df = np.where(use_t, n - 1, np.inf)
        crit, pval = _crit_and_p(est / se, df, level)
        fe_se = np.sqrt(1.0 / S0["A1"])
        fe_est = ch.plan.yc + mu0
        zc = -special.ndtri(alpha / 2)
        q = np.maximum(0.0, q0)
        qp = special.chdtrc(np.maximum(n - 1, 1), q)
        vt = (n - 1) / trP0
        if method == "FE":
            i2 = np.where(q == 0, 0.0, np.maximum(0.0, 100 * (q - (n - 1)) / q))
            h2 = q / (n - 1)
        else:
            i2 = 100 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
        i2_lo, i2_hi = 100 * t_lo / (vt + t_lo), 100 * t_hi / (vt + t_hi)
    out = {
        "k": n.astype(np.int64), "estimate": est, "se": se, "ci_low": est - crit * se, "ci_high": est + crit * se,
        "pvalue": pval, "pi_low": est - crit * np.sqrt(vb + tau2), "pi_high": est + crit * np.sqrt(vb + tau2),
        "tau2": tau2, "tau2_ci_low": t_lo, "tau2_ci_high": t_hi, "i2": i2, "i2_ci_low": i2_lo,
        "i2_ci_high": i2_hi, "h2": h2, "q": q,
        "q_df": (n - 1).astype(np.int64), "q_pvalue": qp, "fe_estimate": fe_est, "fe_se": fe_se,
        "fe_ci_low": fe_est - zc * fe_se, "fe_ci_high": fe_est + zc * fe_se, "converged": conv, "step_halved": halved, "tau2_ci_capped": capped,
    }  # fmt: skip
    return out, fall


def _fits(plan: _Plan, method, ci, level, tau2_ci) -> dict:
    k = plan.k
    out = {f: np.empty(k, dtype=np.int64 if f in ("k", "q_df") else bool if f == "converged" else float)
           for f in _SCALAR_FIELDS}  # fmt: skip
    out["tau2_ci_capped"] = np.zeros(k, dtype=bool)
    out["step_halved"] = np.zeros(k, dtype=bool)
    fall = np.zeros(k, dtype=bool)
    # the full data's fit: its tau² and Hedges estimate are the first expansion centres, and its tau²
    # and tau² interval the starting points of the Paule-Mandel and Q-profile roots
    zeros = np.zeros(k, dtype=np.intp)
    full = pooling.pool_many(plan.y, plan.v, zeros, method, "wald", level, tau2_ci=tau2_ci, n_groups=1)
    he = pooling.pool_many(plan.y, plan.v, zeros, "HE", "wald", tau2_ci=False, n_groups=1)
    seeds = [float(full["tau2"][0]), float(he["tau2"][0])]
    plan.t_full = min(max(np.nan_to_num(seeds[0]), 0.0), 99.0)
    plan.ci_start = (float(np.nan_to_num(full["tau2_ci_high"][0])), float(np.nan_to_num(full["tau2_ci_low"][0])))
    starts = sorted({0.0, *[c for c in seeds if np.isfinite(c) and c >= 0]})
    centres = [[c, plan.state(lambda rows, c=c: plan.table(rows, c), 0)] for c in starts]
    for a in range(0, k, CHUNK):
        b = min(k, a + CHUNK)
        ch = _Chunk(plan, centres, a, b)
        if (ch.n >= SMALL_K).any():
            o, f = _fit_chunk(ch, method, ci, level, tau2_ci)
            for key in (*_SCALAR_FIELDS, "step_halved", "tau2_ci_capped"):
                out[key][a:b] = o[key]
            fall[a:b] = f
        else:
            fall[a:b] = True
        if plan.kind == "cum":  # carry the prefix sums to the next chunk
            for j, cs in enumerate(centres):
                cs[1] = ch.H[-1, j].copy()
    out["method"] = np.where(out["converged"], method, "DL").astype(object)
    out["ci_method"] = np.full(k, ci, dtype=object)
    out["level"] = np.full(k, float(level))
    idx = np.flatnonzero(fall)
    if idx.size:
        exact = pooling.pool_subsets(plan.y, plan.v, [plan.indices(i) for i in idx], method, ci, level,
                                     tau2_ci=tau2_ci)  # fmt: skip
        for key in (*_SCALAR_FIELDS, "method", "ci_method", "level", "step_halved", "tau2_ci_capped"):
            out[key][idx] = exact[key]
    out["method"] = out["method"].astype(str)
    out["ci_method"] = out["ci_method"].astype(str)
    out["n_exact"] = int(idx.size)
    return out


def leave_one_out_fits(yi, vi, method="REML", ci="hksj", level=0.95, tau2_ci=False) -> dict:
    """The k leave-one-out fits of the intercept-only model, as :func:`tpsynth.pooling.pool_subsets`.

    Parameters are those of :func:`tpsynth.pooling.pool_many`.  Returns a dict with one length-k
    array per scalar field of :class:`tpsynth.pooling.PooledResult` (element i: without study i) and
    ``method``, ``ci_method``, ``level``, ``step_halved``, ``tau2_ci_capped`` (no weights), and
    ``n_exact``: how many subsets were refitted by the general engine.  The Q-profile interval of
    tau² is computed only with ``tau2_ci=True`` (NaN otherwise).  See the module docstring.
    """
    y, v = pooling._check_inputs(yi, vi)
    _check(method, ci, level)
    if y.size < 2:
        raise ValueError("leave-one-out needs at least two studies")
    return _fits(_Plan(y, v, "loo"), method, ci, level, tau2_ci)


def cumulative_fits(yi, vi, order=None, method="REML", ci="hksj", level=0.95, tau2_ci=False) -> dict:
    """The k cumulative fits (element i pools ``order[:i + 1]``), as :func:`leave_one_out_fits`."""
    y, v = pooling._check_inputs(yi, vi)
    _check(method, ci, level)
    order = np.arange(y.size) if order is None else np.asarray(order, dtype=np.intp)
    if sorted(order.tolist()) != list(range(y.size)):
        raise ValueError("order must be a permutation of 0..k-1")
    if y.size == 0:
        raise ValueError("at least one study is needed")
    return _fits(_Plan(y, v, "cum", order), method, ci, level, tau2_ci)


def _check(method, ci, level):
    if method not in pooling.METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {pooling.METHODS}")
    if ci not in pooling.CI_METHODS:
        raise ValueError(f"unknown ci {ci!r}; expected one of {pooling.CI_METHODS}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
