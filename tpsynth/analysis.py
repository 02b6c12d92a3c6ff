"""Run one configured analysis: study effects, pooling, subgroups, sensitivity, small-study tests.

The result is a typed :class:`tpsynth.results.AnalysisResult` (written as
``results/analyses/{analysis_id}.json``), from which the tables of the output contract
(:mod:`tpsynth.tables`), the figures and the report are made.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from . import mh, pooling
from .columns import Table
from .harmonise import harmonise
from .meta import design_matrix, meta_analysis
from .mh import TableResult
from .results import AnalysisResult
from .rob import study_judgement
from .study_effects import TABLE_METHODS, arms_table, build_study_effects
from .validate import Sheets

MIN_K_SMALL_STUDY = 10


#: Largest k for which the Mantel-Haenszel and Peto leave-one-out and cumulative analyses are computed:
#: they pool the 2x2 tables of each subset again (k pools of up to k studies, ~1 ms each at k = 10,000);
#: above, the analysis notes that they were not.  Inverse-variance methods have no limit: their subset
#: fits are sums per subset (:mod:`tpsynth.subset_fits`), about linear in k.
TABLE_SENSITIVITY_MAX_K = 5_000


def _f(x) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


POOLED_KEYS = [
    "k", "estimate", "se", "ci_low", "ci_high", "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_low",
    "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2", "q", "q_df", "q_pvalue", "fe_estimate", "fe_se",
    "fe_ci_low", "fe_ci_high",
]  # fmt: skip


def _pooled_dict(res: pooling.PooledResult) -> dict:
    out = {k: _f(getattr(res, k)) for k in POOLED_KEYS}
    out["k"] = int(res.k)
    out["q_df"] = None if res.q_df is None else int(res.q_df)
    out["method"] = res.method
    out["method_requested"] = res.method_requested
    out["ci_method"] = res.ci_method
    out["converged"] = bool(res.converged)
    out["notes"] = list(res.notes)
    out["tau2_ci_capped"] = bool(res.tau2_ci_capped)
    return out


def _single_study(yi: float, vi: float, level: float) -> dict:
    z = float(ndtri(0.5 + level / 2))
    se = math.sqrt(vi)
    p = math.erfc(abs(yi / se) / math.sqrt(2))
    d = dict.fromkeys(
        ["pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2", "q",
         "q_df", "q_pvalue"]
    )  # fmt: skip
    d.update(k=1, estimate=yi, se=se, ci_low=yi - z * se, ci_high=yi + z * se, pvalue=p, fe_estimate=yi, fe_se=se,
             fe_ci_low=yi - z * se, fe_ci_high=yi + z * se, method="single study", method_requested="",
             ci_method="wald", converged=True, notes=["single study: reported as is, not pooled"])  # fmt: skip
    return d


def _table_dict(r: TableResult) -> dict:
    """A Mantel-Haenszel / Peto result as the pooled dict; what does not exist for it stays None."""
    out = dict.fromkeys(POOLED_KEYS)
    est, se, lo, hi = _f(r.estimate), _f(r.se), _f(r.ci_low), _f(r.ci_high)
    out.update(k=int(r.k), estimate=est, se=se, ci_low=lo, ci_high=hi, pvalue=_f(r.pvalue), i2=_f(r.i2), h2=_f(r.h2),
               q=_f(r.q), q_df=int(r.q_df), q_pvalue=_f(r.q_pvalue), fe_estimate=est, fe_se=se, fe_ci_low=lo,
               fe_ci_high=hi, method=r.method, method_requested=r.method, ci_method="wald", converged=True,
               notes=list(r.notes), tau2_ci_capped=False)  # fmt: skip
    return out


class _Model:
    """The analysis's model, refitted on any subset of its studies.

    Inverse-variance methods refit the one engine through the fit object
    (:func:`tpsynth.meta.meta_analysis`, ``.subset``, ``.leave_one_out``, ``.cumulative``);
    ``MH`` and ``PETO`` pool the studies' 2x2 tables (:mod:`tpsynth.mh`).  A single study is
    reported as is.
    """

    def __init__(self, yi: np.ndarray, vi: np.ndarray, effects: list, a: dict):
        self.yi, self.vi, self.a = yi, vi, a
        self.tables = None
        self.fit = None
        if a["method"] in TABLE_METHODS:
            s = [e.side_stats for e in effects]
            self.tables = np.array(
                [[x["intervention"]["events"], x["intervention"]["n"], x["comparator"]["events"], x["comparator"]["n"]]
                 for x in s], dtype=float).reshape(-1, 4)  # fmt: skip
        elif len(yi) >= 2:
            self.fit = meta_analysis(yi, vi, method=a["method"], ci=a["ci"], level=a["level"],
                                     slab=[e.study_id for e in effects])  # fmt: skip

    def pooled(self, idx=None) -> tuple[dict, np.ndarray]:
        """Pooled dict and weights (%) of the studies ``idx`` (default all)."""
        idx = np.arange(len(self.yi)) if idx is None else np.asarray(idx, dtype=np.intp)
        if idx.size == 1:
            return _single_study(float(self.yi[idx[0]]), float(self.vi[idx[0]]), self.a["level"]), np.array([100.0])
        if self.tables is not None:
            t = self.tables[idx].T
            if self.a["method"] == "PETO":
                r = mh.peto(*t, level=self.a["level"])
            else:
                r = mh.mantel_haenszel(*t, measure=self.a["measure"], level=self.a["level"])
            return _table_dict(r), np.asarray(r.weights, dtype=float)
        fit = self.fit if idx.size == self.fit.k and np.array_equal(idx, np.arange(self.fit.k)) else self.fit.subset(idx)
        return _pooled_dict(fit.as_pooled()), np.asarray(fit.weights, dtype=float)

    def _briefs(self, cols: dict) -> list[dict]:
        return [
            {"k": int(cols["k"][i]), **{key: _f(cols[key][i]) for key in ("estimate", "ci_low", "ci_high", "tau2", "i2")}}
            for i in range(len(cols["k"]))
        ]

    def leave_one_out(self) -> list[dict]:
        """Brief results without each study in turn (metafor ``leave1out``)."""
        k = len(self.yi)
        if self.fit is not None and k >= 3:
            return self._briefs(self.fit.leave_one_out(frame=False))
        return [_brief(self.pooled(np.delete(np.arange(k), i))[0]) for i in range(k)]

    def cumulative(self, order: list[int]) -> list[dict]:
        """Brief results adding the studies in ``order`` (metafor ``cumul``); the first is one study."""
        first = _brief(self.pooled(order[:1])[0])
        if self.fit is not None:
            return [first] + self._briefs(self.fit.cumulative(order, frame=False))[1:]
        return [first] + [_brief(self.pooled(order[: j + 1])[0]) for j in range(1, len(order))]


def _common_tau2_subgroups(out: dict, pooled: dict, model: _Model, groups: dict, col: str) -> None:
    """Subgroups as one meta-regression on the subgroup factor with a common tau² (metafor
    ``rma(yi, vi, mods = ~ factor(subgroup))``): per-subgroup estimates are its predictions, the
    test for subgroup differences its omnibus QM (chi² with Wald, F with HKSJ).  The model itself
    (coefficients against the reference subgroup, QM, QE, tau², I², R², permutation test) is kept in
    ``out["subgroup_regression"]``, shaped as ``meta_regression``, for the report."""
    labels = [""] * len(model.yi)
    for g, idx in groups.items():
        for i in idx:
            labels[i] = g
    fit = meta_analysis(model.yi, model.vi, mods={col: labels}, method=model.a["method"], ci=model.a["ci"],
                        level=model.a["level"])  # fmt: skip
    levels = sorted(groups)
    pr = fit.predict({col: levels}, frame=False)
    for j, g in enumerate(levels):
        out["subgroups"].append({
            "subgroup": g, "column": col, "k": len(groups[g]), "estimate": _f(pr["pred"][j]), "se": _f(pr["se"][j]),
            "ci_low": _f(pr["ci_low"][j]), "ci_high": _f(pr["ci_high"][j]), "tau2": _f(fit.tau2), "i2": _f(fit.i2),
        })  # fmt: skip
    pooled.update(q_between=_f(fit.qm), q_between_df=int(fit.qm_df), q_between_pvalue=_f(fit.qm_pvalue))
    out["subgroup_regression"] = {"moderators": [col], "notes": list(fit.notes), "skipped_reason": None,
                                  **_regression_summary(fit, fit.coding, 1)}  # fmt: skip
    test = "chi²" if not np.isfinite(fit.qm_df2) else f"F({fit.qm_df}, {int(fit.qm_df2)})"
    out["notes"].append(
        f"subgroups: one model with a common tau² ({model.a['method']}); the test for subgroup differences is "
        f"the omnibus test of the subgroup factor ({test})"
    )


#: Cochrane Handbook 10.11.5: meta-regression is not advisable with fewer than ten studies per characteristic.
MIN_K_PER_MODERATOR = 10


def _moderator_values(studies: dict, effects: list, cols: list[str]) -> tuple[dict, list[str]]:
    """Per moderator its values for each study (numbers when every value reads as one, else text)."""
    values: dict[str, list] = {}
    for col in cols:
        raw = [studies[e.study_id].get(col) for e in effects]
        raw = [None if x is None or (isinstance(x, str) and not x.strip()) else x for x in raw]
        present = [x for x in raw if x is not None]
        try:
            nums = [float(x) if not isinstance(x, bool) else None for x in present]
            numeric = bool(present) and all(v is not None and math.isfinite(v) for v in nums)
        except (TypeError, ValueError):
            numeric = False
        values[col] = [None if x is None else (float(x) if numeric else str(x)) for x in raw]
    return values, [c for c in cols if all(isinstance(v, float) or v is None for v in values[c])]


def _regression_summary(fit, coding, n_moderators: int) -> dict:
    """The reported part of a meta-regression fit: coefficients, QM, QE, tau², I², R², the permutation test
    of QM (metafor ``permutest``) and the Cochrane Handbook 10.11.5 caveat (< 10 studies per moderator)."""
    perm = fit.permutation_test()
    caveat = None
    if fit.k < MIN_K_PER_MODERATOR * n_moderators:
        caveat = (
            f"{fit.k} studies for {n_moderators} moderator(s): fewer than {MIN_K_PER_MODERATOR} studies per moderator, "
            "so the meta-regression is exploratory and may find spurious associations (Cochrane Handbook 10.11.5)"
        )
    return dict(
        caveat=caveat, k=fit.k, p=fit.p, terms=list(fit.terms), method=fit.method, ci_method=fit.ci_method,
        reference_levels={c: lv[0] for c, lv in coding if lv is not None},
        coefficients=[
            {"term": t, "estimate": _f(fit.beta[j]), "se": _f(fit.se[j]), "statistic": _f(fit.zval[j]),
             "pvalue": _f(fit.pval[j]), "ci_low": _f(fit.ci_low[j]), "ci_high": _f(fit.ci_high[j])}
            for j, t in enumerate(fit.terms)
        ],
        tau2=_f(fit.tau2), i2=_f(fit.i2), r2=_f(fit.r2), qm=_f(fit.qm), qm_df=int(fit.qm_df),
        qm_df2=_f(fit.qm_df2), qm_pvalue=_f(fit.qm_pvalue), qe=_f(fit.qe), qe_df=int(fit.qe_df),
        qe_pvalue=_f(fit.qe_pvalue), permutation_pvalue=_f(perm.qm_pvalue), permutation_exact=perm.exact,
        permutation_iter=perm.iter, permutation_seed=perm.seed,
    )  # fmt: skip


def _meta_regression(model: _Model, effects: list, studies: dict, analysis: dict) -> dict | None:
    """Mixed-effects meta-regression on the configured ``moderators`` (studies.csv columns), by the fit object.

    Studies without a value of a moderator are left out of it, each with the reason.  A numeric
    column is a covariate; a text column a factor with the reference level stated (the first in
    sorted order unless ``moderator_reference`` names one).  Reports coefficients, QM, QE, tau², I²,
    the pseudo R², a permutation p-value of QM (metafor ``permutest``), the Cochrane Handbook
    10.11.5 caveat when there are fewer than ten studies per moderator, and the points and fitted
    line of a bubble plot per continuous moderator.
    """
    cols = list(analysis.get("moderators") or [])
    if not cols:
        return None
    out: dict = {"moderators": cols, "notes": [], "caveat": None, "skipped_reason": None}
    if model.fit is None and model.tables is not None:
        out["skipped_reason"] = f"meta-regression needs an inverse-variance method, not {analysis['method']}"
        return out
    values, numeric = _moderator_values(studies, effects, cols)
    keep = [i for i in range(len(effects)) if all(values[c][i] is not None for c in cols)]
    for i in range(len(effects)):
        if i not in keep:
            miss = ", ".join(c for c in cols if values[c][i] is None)
            out["notes"].append(f"{effects[i].study_id} left out of the meta-regression: no value of {miss}")
    mods = {c: [values[c][i] for i in keep] for c in cols}
    ref = dict(analysis.get("moderator_reference") or {})
    try:
        X, terms, coding = design_matrix(mods, reference=ref, k=len(keep))
    except ValueError as err:
        out["skipped_reason"] = str(err)
        return out
    p = X.shape[1]
    if len(keep) <= p:
        out["skipped_reason"] = f"{len(keep)} studies with moderator values cannot estimate {p} coefficients and tau²"
        return out
    if np.linalg.matrix_rank(X) < p:
        out["skipped_reason"] = "the moderators are collinear in these studies (some term is not identified)"
        return out
    idx = np.array(keep, dtype=np.intp)
    a = model.a
    fit = meta_analysis(model.yi[idx], model.vi[idx], mods=mods, method=a["method"], ci=a["ci"], level=a["level"],
                        reference=ref, slab=[effects[i].study_id for i in keep])  # fmt: skip
    out.update(_regression_summary(fit, coding, len(cols)))
    out["notes"] += list(fit.notes)
    out["bubble"] = [fit.bubble_data(c) for c in numeric]
    return out


def _brief(d: dict) -> dict:
    return {k: d.get(k) for k in ("k", "estimate", "ci_low", "ci_high", "tau2", "i2")}


def run_analysis(analysis: dict, sheets: Sheets, config: dict, arms: Table | list[dict] | None = None) -> AnalysisResult:
    """Run one analysis on validated sheets.

    Parameters
    ----------
    analysis : dict
        Settings with defaults filled (:func:`tpsynth.config.analysis_settings`).
    sheets : Sheets
        Validated sheets (:func:`tpsynth.validate.load_sheets`).
    config : dict
        The validated configuration.
    arms : Table or list of dict, optional
        Harmonised arms (:func:`tpsynth.harmonise.harmonise`), by columns or as rows (made into a table
        once: :func:`tpsynth.study_effects.arms_table`); computed from ``sheets`` when not given.

    Returns
    -------
    AnalysisResult
        The typed result (its JSON: :meth:`AnalysisResult.to_json`).
    """
    out = _result_fields(analysis, sheets, config, arms)
    return AnalysisResult.from_dict(out, source=f"analysis {analysis['id']}")


def _result_fields(analysis: dict, sheets: Sheets, config: dict, arms: Table | list[dict] | None) -> dict:
    """The fields of the result; the certainty rating (:mod:`tpsynth.certainty`) reads the parts built before it."""
    arms = arms_table(harmonise(sheets)[0] if arms is None else arms)
    studies = {s["study_id"]: s for s in sheets.studies}
    contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    effects, flow = build_study_effects(analysis, arms, contrasts, studies, config)
    level = analysis["level"]
    z = float(ndtri(0.5 + level / 2))
    out: dict = {
        "analysis_id": analysis["id"],
        "settings": {k: analysis[k] for k in sorted(analysis) if k != "id"},
        "outcome": config["outcomes"][analysis["outcome"]],
        "labels": {
            side: [config["interventions"][c]["label"] for c in analysis[side]] for side in ("intervention", "comparator")
        },
        "flow": flow,
        "notes": [],
    }
    yi = np.array([e.yi for e in effects], dtype=float)
    vi = np.array([e.vi for e in effects], dtype=float)
    k = len(effects)
    n_total = 0.0
    n_missing = 0
    for e in effects:
        if e.n_intervention is None or e.n_comparator is None:
            n_missing += 1
        else:
            n_total += e.n_intervention + e.n_comparator
    if n_missing:
        out["notes"].append(f"{n_missing} study(ies) without arm sizes: participants under-counted")
    if k == 0:
        out["pooled"] = {"k": 0, "notes": ["no study with usable data for this comparison"]}
        out["studies"], out["subgroups"], out["sensitivity"] = [], [], []
        out["small_study"] = {"k": 0, "skipped_reason": "no studies"}
        out["pooled"]["n_participants"] = 0
        out["pooled"]["measure"] = analysis["measure"]
        _add_certainty(out, config, analysis, yi, vi)
        return out
    model = _Model(yi, vi, effects, analysis)
    pooled, weights = model.pooled()
    pooled["n_participants"] = n_total
    pooled["measure"] = analysis["measure"]
    out["pooled"] = pooled
    rows = []
    for e, w in zip(effects, weights, strict=True):
        s = studies[e.study_id]
        se = math.sqrt(e.vi)
        rob = study_judgement(sheets.risk_of_bias, s, analysis["outcome"])
        rows.append({
            "study_id": e.study_id, "author": s.get("author"), "year": s.get("year"), "yi": e.yi, "vi": e.vi,
            "ci_low": e.yi - z * se, "ci_high": e.yi + z * se, "weight": float(w),
            "n_intervention": e.n_intervention, "n_comparator": e.n_comparator, "timepoint_weeks": e.timepoint_weeks,
            "instrument": e.instrument, "source": e.source, "derived": e.derived, "low_confidence": e.low_confidence,
            "rob_overall": rob["level"], "rob": rob, "region": s.get("region"), "design": s.get("design"),
            "arms_text": e.arms_text, "notes": e.notes, "comparator_sd_ref": e.comparator_sd_ref,
            "comparator_risk": e.comparator_risk, "side_stats": e.side_stats, "scale_factor": e.scale_factor,
            "sign": e.sign, "extraction_confidence": s.get("extraction_confidence"),
            "subgroup": (s.get(analysis["subgroup"]) if analysis.get("subgroup") else None),
        })  # fmt: skip
    out["studies"] = rows

    # subgroups
    out["subgroups"] = []
    if analysis.get("subgroup"):
        col = analysis["subgroup"]
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(str(r["subgroup"] if r["subgroup"] is not None else "(missing)"), []).append(i)
        common = analysis.get("subgroup_model", "separate") == "common_tau2" and len(groups) >= 2
        if common and model.fit is None:
            out["notes"].append("subgroup_model common_tau2 needs an inverse-variance method: subgroups pooled separately")
            common = False
        elif common and k <= len(groups) and analysis["method"] != "FE":
            out["notes"].append(
                f"subgroup_model common_tau2 needs more studies ({k}) than subgroups ({len(groups)}) to estimate tau²: "
                "subgroups pooled separately"
            )
            common = False
        if common:
            _common_tau2_subgroups(out, pooled, model, groups, col)
        else:
            ests, ses = [], []
            for g in sorted(groups):
                idx = groups[g]
                d, _ = model.pooled(idx)
                out["subgroups"].append({"subgroup": g, "column": col, **{k: d.get(k) for k in ("k", "estimate", "se", "ci_low", "ci_high", "tau2", "i2")}})
                ests.append(d["estimate"])
                ses.append(d["se"])
            if len(groups) >= 2:
                qb, dfb, pb = pooling.subgroup_difference(np.array(ests), np.array(ses))
                pooled.update(q_between=_f(qb), q_between_df=int(dfb), q_between_pvalue=_f(pb))
    pooled.setdefault("q_between", None)
    pooled.setdefault("q_between_df", None)
    pooled.setdefault("q_between_pvalue", None)

    # sensitivity
    sens = []
    if model.tables is not None and k > TABLE_SENSITIVITY_MAX_K:
        out["notes"].append(
            f"leave-one-out and cumulative analyses not computed: k = {k:,} is above {TABLE_SENSITIVITY_MAX_K:,} "
            f"for {analysis['method']} (each subset's 2x2 tables are pooled again: the cost grows with k²)"
        )
    elif k >= 2:
        for e, d in zip(effects, model.leave_one_out(), strict=True):
            sens.append({"kind": "leave_one_out", "study_id": e.study_id, **d})
        order = sorted(range(k), key=lambda i: (rows[i]["year"] is None, rows[i]["year"] or 0, i))
        for j, d in enumerate(model.cumulative(order)):
            sens.append({"kind": "cumulative", "study_id": effects[order[j]].study_id, **d})
    for kind, drop in (
        ("without_high_rob", [r["rob_overall"] == "high" for r in rows]),
        ("without_low_confidence", [bool(r["low_confidence"]) for r in rows]),
    ):
        if any(drop):
            keep = [i for i in range(k) if not drop[i]]
            if keep:
                d, _ = model.pooled(keep)
                sens.append({"kind": kind, "study_id": ";".join(effects[i].study_id for i in range(k) if drop[i]), **_brief(d)})
            else:
                sens.append({"kind": kind, "study_id": "all", "k": 0, "estimate": None, "ci_low": None,
                             "ci_high": None, "tau2": None, "i2": None})  # fmt: skip
    out["sensitivity"] = sens

    out["small_study"] = _small_study(model)
    out["meta_regression"] = _meta_regression(model, effects, studies, analysis)
    _add_certainty(out, config, analysis, yi, vi)
    return out


def small_study_fields(fit) -> dict:
    """Egger's test and trim-and-fill of an intercept-only fit (:class:`tpsynth.meta.MetaAnalysis`, k >= 10)."""
    eg = fit.egger()
    # metafor's trimfill() refits the filled data with its default Wald CI (test="z"), whatever the
    # input model's test; fit.trimfill() does the same so the numbers match.
    tf = fit.trimfill()
    return {
        "k": fit.k, "egger_stat": _f(eg.statistic), "egger_pvalue": _f(eg.pvalue), "trimfill_k0": int(tf.k0),
        "trimfill_side": tf.side, "trimfill_estimate": _f(tf.estimate), "trimfill_ci_low": _f(tf.ci_low),
        "trimfill_ci_high": _f(tf.ci_high), "trimfill_filled_yi": [float(x) for x in tf.filled_yi],
        "trimfill_filled_vi": [float(x) for x in tf.filled_vi], "skipped_reason": None,
    }  # fmt: skip


HALF_NORMAL_MEDIAN = 0.6744897501960817  # median of half-normal(1) = Phi^-1(0.75)


def _bayes_summary(post, benefit, mid, level, study_ids) -> dict:
    from . import bayes

    d = bayes.summarise(post, level=level, benefit=benefit, mid=mid, study_ids=study_ids).to_dict()
    return {k: (_f(v) if isinstance(v, float) else v) for k, v in d.items()}


def _add_bayes(out: dict, analysis: dict, config: dict, yi, vi) -> None:
    """Bayesian random-effects result (tpsynth.bayes) and its prior sensitivity, into the result.

    ``out["bayes"]`` holds the summaries of the output contract (results/bayes.csv) or, for k < 2,
    ``None`` with ``out["bayes_note"]`` saying why; ``out["bayes_sensitivity"]`` the same analysis under
    half-normal priors with half and twice the scale (the prior's own scale for a half-normal prior,
    otherwise that of the half-normal with the same median) and the frequentist REML result.
    """
    from . import bayes

    settings = analysis["bayes"]
    k = len(yi)
    out["bayes"], out["bayes_sensitivity"] = None, []
    if k == 0:
        out["bayes_note"] = "no usable study"
        return
    if k == 1:
        out["bayes_note"] = "one trial: its own estimate is reported, not pooled"
        return
    outcome = out["outcome"]
    measure = analysis["measure"]
    caveats = out["caveats"]
    mid = caveats["mid_on_analysis_scale"]
    direction = outcome.get("higher_is_better")  # None: not set (e.g. imported Cochrane data)
    benefit = None if direction is None else ("higher" if direction else "lower")
    classes = {side: [config["interventions"][c].get("class", "") for c in analysis[side]]
               for side in ("intervention", "comparator")}  # fmt: skip
    try:
        if settings["tau_prior"] == "auto":
            tau_prior = bayes.auto_tau_prior(measure, analysis["outcome"], classes["intervention"], classes["comparator"],
                                             comparator_sd=caveats["representative_sd"])  # fmt: skip
        else:
            tau_prior = bayes.parse_tau_prior(settings["tau_prior"])
    except bayes.PriorError as err:
        out["bayes_note"] = f"not computed: {err}"
        return
    mu_prior = bayes.parse_mu_prior(settings["mu_prior"])
    level = analysis["level"]
    ids = [r["study_id"] for r in out["studies"]]
    res = _bayes_summary(bayes.posterior(yi, vi, tau_prior, mu_prior), benefit, mid, level, ids)
    res["headline_below_k"] = settings["headline_below_k"]
    res["headline"] = k < settings["headline_below_k"]
    out["bayes"] = res
    out["bayes_note"] = None
    if tau_prior.family == "half_normal":
        scale = tau_prior.params[0]
    else:
        scale = tau_prior.quantile(0.5) / HALF_NORMAL_MEDIAN
    sens = []
    for factor in (0.5, 2.0):
        p = bayes.TauPrior("half_normal", (float(f"{scale * factor:.4g}"),))
        post = bayes.posterior(yi, vi, p, mu_prior)
        a = (1 - level) / 2
        pb, pib = bayes.benefit_probabilities(post, benefit, mid)
        sens.append({"prior": p.label, "kind": f"half-normal, {'half' if factor < 1 else 'twice'} the scale",
                     "estimate": post.quantile(0.5), "ci_low": post.quantile(a), "ci_high": post.quantile(1 - a),
                     "tau_median": post.tau_quantile(0.5), "prob_benefit": pb,
                     "prob_important_benefit": pib})  # fmt: skip
    reml = pooling.pool(np.asarray(yi), np.asarray(vi), method="REML", ci=analysis["ci"], level=level)
    sens.append({"prior": "none", "kind": f"frequentist REML ({reml.ci_method} CI)", "estimate": _f(reml.estimate),
                 "ci_low": _f(reml.ci_low), "ci_high": _f(reml.ci_high), "tau_median": _f(math.sqrt(reml.tau2)),
                 "prob_benefit": None, "prob_important_benefit": None})  # fmt: skip
    out["bayes_sensitivity"] = sens


def _add_certainty(out: dict, config: dict, analysis: dict, yi, vi) -> None:
    """Caveats, the Bayesian analysis, GRADE rating and plain-language statement into the result.

    Below ``bayes.headline_below_k`` studies imprecision is judged on the Bayesian credible
    interval, otherwise on the confidence interval; ``out["imprecision_judged_on"]`` says which.
    """
    from . import certainty

    rules = certainty.rules_from_config(config)
    target = (config.get("target") or {}).get("regions")
    c = certainty.compute_caveats(out, rules, target)
    out["caveats"] = {f: getattr(c, f) for f in c.__dataclass_fields__}
    _add_bayes(out, analysis, config, yi, vi)
    b = out["bayes"]
    interval = None
    if b and b["headline"]:
        interval = (b["ci_low"], b["ci_high"], f"the {analysis['level']:.0%} credible interval")
        out["imprecision_judged_on"] = f"the Bayesian {analysis['level']:.0%} credible interval (k < {b['headline_below_k']})"
    else:
        out["imprecision_judged_on"] = f"the {analysis['level']:.0%} confidence interval" if c.k else None
    level, reasons = certainty.grade(out, c, rules, interval=interval)
    out["caveat_sentences"] = certainty.caveat_sentences(out, c)
    out["pooled"].update(
        certainty=level, certainty_reasons="; ".join(reasons) if reasons else "no downgrade",
        ois=c.ois, n_over_ois=c.n_over_ois, small_trial_weight=c.small_trial_weight, largest_weight=c.largest_weight,
        high_rob_weight=c.high_rob_weight, derived_weight=c.derived_weight, low_confidence_weight=c.low_confidence_weight,
        off_target_weight=c.off_target_weight, ci_crosses_null=c.ci_crosses_null, ci_crosses_mid=c.ci_crosses_mid,
    )  # fmt: skip
    out["plain_language"] = certainty.plain_language(out, level, c)
    out["smd_in_points"] = certainty.smd_in_points(out, c)


def _small_study(model: _Model) -> dict:
    """Egger's test and trim-and-fill (from the fit object) when k >= 10, otherwise the reason they were not done.

    MH and Peto analyses use the inverse-variance common-effect fit of the same study effects
    (metafor's ``regtest`` and ``trimfill`` refit ``rma.uni`` models too).
    """
    k = len(model.yi)
    a = model.a
    if k >= MIN_K_SMALL_STUDY:
        return small_study_fields(model.fit or meta_analysis(model.yi, model.vi, method="FE", ci="wald", level=a["level"]))
    return {
            "k": k, "egger_stat": None, "egger_pvalue": None, "trimfill_k0": None, "trimfill_estimate": None,
            "skipped_reason": f"k = {k} < {MIN_K_SMALL_STUDY}: small-study tests (Egger, trim-and-fill) not done",
        }  # fmt: skip
