"""Contrast-based network meta-analysis (NMA).

Each study enters as the contrasts of its arms against its first arm (in the network's node order)
with their within-study covariance, so that no participant counts twice (Higgins & Whitehead 1996;
Salanti et al. 2008). The consistency model

    y = X d + study random effects + error,   Var = V + tau^2 M,

with ``X`` mapping each contrast onto the basic parameters (every treatment against the reference),
``M`` = 1 on the diagonal and 1/2 between two contrasts of one study (metafor
``rma.mv(yi, V, mods = ~ 0 + X, random = ~ contrast | study, rho = 1/2)``; one tau^2 for every
comparison), is fitted by :func:`tpsynth.multivariate.fit_mv`.

``method``
    ``"REML"`` (default) and ``"ML"`` are metafor's ``rma.mv``; prediction intervals as metafor's
    ``predict()``: ``estimate +/- z sqrt(se^2 + tau^2)``.
    ``"DL"`` is netmeta's random-effects model (Rücker 2012; Balduzzi et al. 2023) with its
    generalised DerSimonian-Laird tau^2 (Jackson, White & Riley 2012). netmeta computes
    ``(Q - df) / tr((I - H)(B B' * E / 2) W)`` on all pairwise comparisons with Rücker's reduced
    weights; because those weights reproduce the information matrix of the arm-level contrasts
    (``C' W C = V^-1`` per study), the trace equals ``tr(P M)`` of the contrast parametrisation, so
    the two agree whenever the within-study variances are additive (MD, log OR, log RR from arm
    data). Prediction intervals as netmeta: ``estimate +/- t(df_Q) sqrt(se^2 + tau^2)``, none when
    ``df_Q < 2``.
    ``"FE"`` is the common-effect model (no prediction interval).

Node splitting by back-calculation (netmeta ``netsplit``, Dias et al. 2010, König et al. 2013): the
direct estimate of ``a`` vs ``b`` pools every study with both arms by inverse variance with weights
``1 / (v + tau^2)``; ``prop = se_network^2 / se_direct^2``; the indirect estimate is
``(network - prop direct) / (1 - prop)`` with SE ``se_network / sqrt(1 - prop)``; the test compares
direct and indirect with a z test. A comparison with only indirect evidence reports the network
estimate as indirect (netmeta); with (almost, ``|prop - 1| < 0.0005``) only direct evidence there is
no indirect estimate.

Design-by-treatment interaction (Higgins et al. 2012; Krahn, Binder & König 2013; netmeta
``decomp.design``): Q is split into the residual Q of the model with one parameter per design and
contrast (within designs) and the rest (between designs). The random-effects version uses tau^2 of
that model (netmeta ``tau.within``, DL) added to every contrast.

P-scores (Rücker & Schwarzer 2015): the mean over the other treatments of ``Phi(z)``, z the network
estimate over its SE, signed so that a better treatment scores higher.

A disconnected network is split into its connected parts (:func:`components`); each is fitted on
its own and nothing is compared across parts.

References
----------
Balduzzi S, Rücker G, Nikolakopoulou A, et al. (2023). netmeta: an R package for network
meta-analysis using frequentist methods. J Stat Softw 106(2).
Dias S, Welton NJ, Caldwell DM, Ades AE (2010). Checking consistency in mixed treatment comparison
meta-analysis. Stat Med 29:932-944.
Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In: Cooper H, Hedges LV, Valentine
JC (eds). The Handbook of Research Synthesis and Meta-Analysis, 2nd ed., 357-376.
Higgins JPT, Jackson D, Barrett JK, et al. (2012). Consistency and inconsistency in network
meta-analysis: concepts and models for multi-arm studies. Res Synth Methods 3:98-110.
König J, Krahn U, Binder H (2013). Visualizing the flow of evidence in network meta-analysis and
characterizing mixed treatment comparisons. Stat Med 32:5414-5429.
Krahn U, Binder H, König J (2013). A graphical tool for locating inconsistency in network
meta-analyses. BMC Med Res Methodol 13:35.
Rücker G, Schwarzer G (2015). Ranking treatments in frequentist network meta-analysis works without
resampling methods. BMC Med Res Methodol 15:58.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from . import effect_sizes as es
from .multivariate import MVFit, fit_mv, gls
from .pooling import pool

__all__ = [
    "MEASURES",
    "NetworkFit",
    "StudyBlock",
    "block_from_arms",
    "block_from_contrast",
    "components",
    "fit_network",
]

MEASURES = ("MD", "SMD", "OR", "RR")
#: netmeta's tolerance for "only direct evidence" in netsplit (tol.direct).
TOL_DIRECT = 0.0005


@dataclass
class StudyBlock:
    """One study's contrasts against its first node, with their covariance.

    ``nodes[0]`` is the study's baseline; ``y[j-1]`` is ``nodes[j]`` minus ``nodes[0]`` on the
    analysis scale (log scale for ratio measures) and ``V`` their covariance matrix.
    """

    study_id: str
    nodes: list[str]
    y: np.ndarray
    V: np.ndarray
    n: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def pair(self, a: str, b: str) -> tuple[float, float]:
        """Estimate of ``a`` minus ``b`` within the study and its variance."""
        ia, ib = self.nodes.index(a), self.nodes.index(b)
        ya = 0.0 if ia == 0 else self.y[ia - 1]
        yb = 0.0 if ib == 0 else self.y[ib - 1]

        def cov(i, j):
            return 0.0 if i == 0 or j == 0 else self.V[i - 1, j - 1]

        return float(ya - yb), float(cov(ia, ia) + cov(ib, ib) - 2 * cov(ia, ib))


def block_from_arms(study_id: str, nodes: list[str], arms: list[dict], measure: str, info=None) -> StudyBlock | None:
    """Contrasts of a study's arms against its first arm.

    ``arms[i]`` holds ``n`` and ``mean``/``sd`` (MD, SMD) or ``events`` (OR, RR) of ``nodes[i]``.

    * MD: ``m_j - m_1``; covariance ``sd_1^2 / n_1`` (the variance of the shared arm).
    * SMD: Hedges' g of each arm against the first with metafor's variance; covariance
      ``1/n_1 + g_j g_l / (2 N)``, N the study's total sample size (Gleser & Olkin 2009, eq. 19.19).
    * OR / RR: log odds / log risk per arm; 0.5 added to every cell of every arm of a study with a
      zero cell in any arm; a study with no events (or only events) in every arm gives ``None``
      (metafor's ``add = 1/2, to = "only0", drop00 = TRUE`` applied to the whole study).
    """
    m = len(nodes)
    if m < 2:
        return None
    n = np.array([float(a["n"]) for a in arms])
    if measure == "MD":
        mean = np.array([float(a["mean"]) for a in arms])
        var = np.array([float(a["sd"]) ** 2 for a in arms]) / n
        y = mean[1:] - mean[0]
        V = np.diag(var[1:]) + var[0]
    elif measure == "SMD":
        mean = np.array([float(a["mean"]) for a in arms])
        sd = np.array([float(a["sd"]) for a in arms])
        k = m - 1
        g, vg = es.standardised_mean_difference(mean[1:], sd[1:], n[1:], [mean[0]] * k, [sd[0]] * k, [n[0]] * k)
        y = np.asarray(g, dtype=float)
        V = 1.0 / n[0] + np.outer(y, y) / (2.0 * n.sum())
        V[np.diag_indices(k)] = np.asarray(vg, dtype=float)
    elif measure in ("OR", "RR"):
        ev = np.array([float(a["events"]) for a in arms])
        non = n - ev
        if np.all(ev == 0) or np.all(non == 0):
            return None
        add = 0.5 if np.any((ev == 0) | (non == 0)) else 0.0
        a_, b_ = ev + add, non + add
        if measure == "OR":
            est, var = np.log(a_ / b_), 1 / a_ + 1 / b_
        else:
            est, var = np.log(a_ / (a_ + b_)), 1 / a_ - 1 / (a_ + b_)
        y = est[1:] - est[0]
        V = np.diag(var[1:]) + var[0]
        info = dict(info or {}, zero_cell_added=bool(add))
    else:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)} (got {measure!r})")
    return StudyBlock(study_id, list(nodes), np.asarray(y, dtype=float), np.atleast_2d(V),
                      n={nd: float(x) for nd, x in zip(nodes, n, strict=True)}, info=dict(info or {}))  # fmt: skip


def block_from_contrast(study_id: str, first: str, second: str, estimate: float, variance: float,
                        n=None, info=None) -> StudyBlock:
    """A two-arm study reported as one contrast: ``estimate`` is ``second`` minus ``first``."""
    return StudyBlock(study_id, [first, second], np.array([float(estimate)]), np.array([[float(variance)]]),
                      n=dict(n or {}), info=dict(info or {}))  # fmt: skip


def components(blocks: list[StudyBlock], order: list[str]) -> list[list[str]]:
    """Connected parts of the network: lists of nodes in ``order``, parts ordered by their first node."""
    adj: dict[str, set[str]] = {}
    for b in blocks:
        for x in b.nodes:
            adj.setdefault(x, set()).update(set(b.nodes) - {x})
    seen: set[str] = set()
    parts = []
    for start in [x for x in order if x in adj]:
        if start in seen:
            continue
        part, todo = set(), [start]
        while todo:
            x = todo.pop()
            if x in part:
                continue
            part.add(x)
            todo.extend(adj[x] - part)
        seen |= part
        parts.append([x for x in order if x in part])
    return parts


# ---------------------------------------------------------------------------
@dataclass
class PairResult:
    treatment: str
    comparator: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    direct_estimate: float
    direct_se: float
    direct_k: int
    indirect_estimate: float
    indirect_se: float
    split_pvalue: float
    prop_direct: float
    contribution: dict = field(default_factory=dict)  # study_id -> share of the estimate


@dataclass
class NetworkFit:
    """Results of one connected part of a network."""

    treatments: list[str]
    reference: str
    method: str
    k: int
    n_designs: int
    tau2: float
    i2: float
    q: float
    q_df: int
    q_pvalue: float
    q_within: float
    q_within_df: int
    q_within_pvalue: float
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    tau2_within: float
    q_between_random: float
    q_between_random_pvalue: float
    pairs: list[PairResult]
    p_scores: dict[str, float]
    fit: MVFit = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def pair(self, a: str, b: str) -> PairResult:
        for p in self.pairs:
            if p.treatment == a and p.comparator == b:
                return p
        raise KeyError((a, b))


def _chi2_sf(q, df):
    return float(special.chdtrc(df, q)) if df > 0 and math.isfinite(q) else math.nan


def _stack(blocks, treatments, reference):
    cols = [t for t in treatments if t != reference]
    ys, Vs, Xrows, studies, labels = [], [], [], [], []
    for b in blocks:
        for j in range(1, len(b.nodes)):
            row = np.zeros(len(cols))
            if b.nodes[j] != reference:
                row[cols.index(b.nodes[j])] += 1
            if b.nodes[0] != reference:
                row[cols.index(b.nodes[0])] -= 1
            Xrows.append(row)
            studies.append(b.study_id)
            labels.append((tuple(b.nodes), b.nodes[j], b.nodes[0]))
        ys.append(b.y)
        Vs.append(b.V)
    y = np.concatenate(ys)
    k = len(y)
    V = np.zeros((k, k))
    i = 0
    for B in Vs:
        V[i : i + len(B), i : i + len(B)] = B
        i += len(B)
    st = np.array(studies)
    M = np.where(st[:, None] == st[None, :], 0.5, 0.0)
    np.fill_diagonal(M, 1.0)
    return y, V, np.array(Xrows), M, cols, labels


def _flow_contributions(h, labels, rows_study, treatments, a, b):
    """Share of each study in the estimate of ``a`` vs ``b`` (Papakonstantinou et al. 2018).

    The hat-matrix row ``h`` is a unit flow from ``b`` to ``a`` over the contrasts (edges
    baseline -> arm). Flows are aggregated per comparison, decomposed into paths (shortest first,
    ties broken by node order), each path's flow is shared equally by its edges, and each edge's
    share is split among its studies in proportion to ``|h|``. This is netmeta's
    ``netcontrib(method = "shortestpath")`` (the algorithm of CINeMA) when every trial has two arms
    (the aggregated hat matrix is then the sum of the study rows per comparison) up to the choice
    among equally short paths; a multi-arm trial enters through its contrasts against its first arm,
    not through all of its pairwise comparisons as in netmeta. Checked against an igraph
    implementation of the algorithm in R on two-arm networks (tests/reference/make_network_reference.R;
    netmeta itself is not installable here).
    """
    flow: dict[tuple[str, str], float] = {}
    rows_on: dict[frozenset, list[int]] = {}
    for r, (_, t2, t1) in enumerate(labels):
        flow[(t1, t2)] = flow.get((t1, t2), 0.0) + h[r]
        flow[(t2, t1)] = flow.get((t2, t1), 0.0) - h[r]
        rows_on.setdefault(frozenset((t1, t2)), []).append(r)
    pos = {e: f for e, f in flow.items() if f > 1e-12}
    edge_contrib: dict[frozenset, float] = {}
    order = {t: i for i, t in enumerate(treatments)}
    for _ in range(10 * len(treatments) ** 2 + 10):
        prev = {b: None}
        dq = deque([b])
        while dq and a not in prev:
            u = dq.popleft()
            for v in sorted((v for (x, v), f in pos.items() if x == u and f > 1e-12), key=order.get):
                if v not in prev:
                    prev[v] = u
                    dq.append(v)
        if a not in prev:
            break
        path, v = [], a
        while prev[v] is not None:
            path.append((prev[v], v))
            v = prev[v]
        phi = min(pos[e] for e in path)
        for e in path:
            pos[e] -= phi
            key = frozenset(e)
            edge_contrib[key] = edge_contrib.get(key, 0.0) + phi / len(path)
    total = sum(edge_contrib.values())
    out: dict[str, float] = {}
    if total <= 0:
        return out
    for key, c in edge_contrib.items():
        rows = rows_on[key]
        w = np.abs(h[rows])
        for r, wr in zip(rows, w / w.sum(), strict=True):
            out[rows_study[r]] = out.get(rows_study[r], 0.0) + c / total * float(wr)
    return out


def fit_network(blocks: list[StudyBlock], treatments: list[str], reference: str | None = None,
                method: str = "REML", level: float = 0.95, higher_is_better: bool | None = False) -> NetworkFit:
    """Fit one connected network.

    Parameters
    ----------
    blocks : list of StudyBlock
        The studies (every node of every block must be in ``treatments``).
    treatments : list of str
        Nodes in the order of the output (every ordered pair in this order).
    reference : str, optional
        Reference treatment of the basic parameters (default: the first); results do not depend on it.
    method : {"REML", "ML", "DL", "FE"}
    level : float
        Confidence (and prediction) level.
    higher_is_better : bool or None
        Direction of the P-scores (Rücker & Schwarzer 2015). ``None`` (direction unknown, e.g. imported
        data): no P-scores (NaN), because a ranking needs to know which values are better; a note says so.
    """
    reference = reference if reference is not None else treatments[0]
    parts = components(blocks, treatments)
    if len(parts) != 1 or set(parts[0]) != set(treatments):
        raise ValueError("fit_network needs one connected network containing every treatment; split it with components()")
    y, V, X, M, cols, labels = _stack(blocks, treatments, reference)
    rows_study = [lab for b in blocks for lab in [b.study_id] * (len(b.nodes) - 1)]
    fit = fit_mv(y, V, X, M, method)
    tau2 = fit.tau2 if math.isfinite(fit.tau2) else 0.0
    notes = []
    if not math.isfinite(fit.tau2) and method != "FE":
        notes.append("tau² not estimable (no degrees of freedom for heterogeneity): estimates use tau² = 0")
    if not fit.converged:
        notes.append(f"{method} did not converge")
    zcrit = float(special.ndtri(0.5 + level / 2))
    S = V + tau2 * M
    Sinv = np.linalg.inv(S)
    hat_base = fit.vcov @ X.T @ Sinv  # rows: basic parameters
    q_df = fit.q_df
    if method == "DL" and q_df >= 2:
        pcrit = float(special.stdtrit(q_df, 0.5 + level / 2))
    elif method in ("REML", "ML") and math.isfinite(fit.tau2):
        pcrit = zcrit
    else:
        pcrit = math.nan

    def L(a, b):
        v = np.zeros(len(cols))
        if a != reference:
            v[cols.index(a)] += 1
        if b != reference:
            v[cols.index(b)] -= 1
        return v

    pairs = []
    for a in treatments:
        for b in treatments:
            if a == b:
                continue
            la = L(a, b)
            est, se = fit.contrast(la)
            if math.isfinite(pcrit):
                sp = math.sqrt(se**2 + tau2)
                pi = (est - pcrit * sp, est + pcrit * sp)
            else:
                pi = (math.nan, math.nan)
            direct = [blk.pair(a, b) for blk in blocks if a in blk.nodes and b in blk.nodes]
            d_est = d_se = i_est = i_se = p_split = math.nan
            prop = 0.0
            if direct:  # inverse-variance pooling with the network's tau^2 (netmeta: metagen, tau.preset)
                dr = pool([e for e, _ in direct], [v + tau2 for _, v in direct], method="FE", ci="wald")
                d_est, d_se = dr.estimate, dr.se
                prop = se**2 / d_se**2
                if abs(prop - 1.0) >= TOL_DIRECT:
                    i_est = (est - prop * d_est) / (1 - prop)
                    i_se = math.sqrt(se**2 / (1 - prop))
                    z = (d_est - i_est) / math.sqrt(d_se**2 + i_se**2)
                    p_split = float(special.erfc(abs(z) / math.sqrt(2)))
            else:
                i_est, i_se = est, se
            h = la @ hat_base
            pairs.append(PairResult(
                a, b, est, se, est - zcrit * se, est + zcrit * se, pi[0], pi[1], d_est, d_se, len(direct),
                i_est, i_se, p_split, prop, _flow_contributions(h, labels, rows_study, treatments, a, b),
            ))  # fmt: skip
    # design-by-treatment interaction
    cells = sorted(set(labels), key=lambda c: (c[0], c[1], c[2]))
    Xin = np.zeros((len(y), len(cells)))
    for r, c in enumerate(labels):
        Xin[r, cells.index(c)] = 1.0
    q_within = gls(y, V, Xin)[3]
    within_df = len(y) - len(cells)
    between_df = q_df - within_df
    q_between = max(0.0, fit.q - q_within) if between_df > 0 else 0.0
    tau2_w = fit_mv(y, V, Xin, M, "DL").tau2 if within_df > 0 else 0.0
    Sw = V + tau2_w * M
    q_between_r = max(0.0, gls(y, Sw, X)[3] - gls(y, Sw, Xin)[3]) if between_df > 0 else 0.0
    # P-scores
    p_scores = {}
    if higher_is_better is None:
        p_scores = dict.fromkeys(treatments, math.nan)
        notes.append("no P-scores: the outcome's direction is not set (higher_is_better: null), so no treatment "
                     "can be ranked as better")  # fmt: skip
    sign = 1.0 if higher_is_better else -1.0
    for a in treatments if higher_is_better is not None else []:
        vals = [float(special.ndtr(sign * p.estimate / p.se)) for p in pairs if p.treatment == a and p.se > 0]
        p_scores[a] = float(np.mean(vals)) if vals else math.nan
    i2 = max(0.0, (fit.q - q_df) / fit.q) * 100 if q_df > 0 and fit.q > 0 else math.nan
    return NetworkFit(
        treatments=list(treatments), reference=reference, method=method, k=len(blocks),
        n_designs=len({tuple(b.nodes) for b in blocks}), tau2=fit.tau2, i2=i2,
        q=fit.q, q_df=q_df, q_pvalue=fit.q_pvalue,
        q_within=q_within, q_within_df=within_df, q_within_pvalue=_chi2_sf(q_within, within_df),
        q_between=q_between, q_between_df=between_df, q_between_pvalue=_chi2_sf(q_between, between_df),
        tau2_within=tau2_w, q_between_random=q_between_r, q_between_random_pvalue=_chi2_sf(q_between_r, between_df),
        pairs=pairs, p_scores=p_scores, fit=fit, notes=notes,
    )  # fmt: skip
