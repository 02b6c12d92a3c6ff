"""Confidence in network meta-analysis results, following CINeMA's six domains.

Nikolakopoulou A, Higgins JPT, Papakonstantinou T, et al. (2020). CINeMA: an approach for assessing
confidence in the results of a network meta-analysis. PLoS Med 17:e1003082.
Papakonstantinou T, Nikolakopoulou A, Rücker G, et al. (2018). Estimating the contribution of
studies in network meta-analysis: paths, flows and streams. F1000Research 7:610.

Each comparison gets, per domain, ``no concerns``, ``some concerns`` or ``major concerns`` with the
reason, and an overall confidence that starts at ``high`` and goes down one level for every domain
with some concerns and two for major concerns (floor ``very low``). CINeMA leaves the overall
judgement to the reviewers; this mechanical rule and the thresholds below are this pipeline's
operationalisation, set in the config's ``network_confidence`` section (config/README.md):

within-study bias
    The contribution of each study to the comparison (:func:`tpsynth.network` flow decomposition,
    Papakonstantinou et al. 2018) weights its risk of bias (low 1, some concerns 2, high 3; not
    assessed counts as high when ``not_assessed_counts_as_risk``). ``rob_rule: average`` (CINeMA's
    "average RoB") rounds the weighted mean score; ``majority`` takes the level with the largest
    contribution; ``highest`` the worst level with any contribution.
reporting bias
    Not assessable from fewer than ``publication_bias_min_k`` studies with direct evidence (no
    concerns, said as such, as in the pairwise certainty); otherwise Egger's test on the direct
    studies with p < ``publication_bias_p`` gives some concerns.
indirectness
    The contribution-weighted share of studies outside ``target.regions``: some concerns from
    ``indirectness_some``, major from ``indirectness_major``.
imprecision
    The CI against the range of equivalence (-MID, +MID) on the analysis scale: no concerns when it
    stays within one of the three zones (important benefit, no important difference, important
    harm), some when it crosses one boundary, major when it crosses both. Without an MID, a CI
    including no effect gives some concerns.
heterogeneity
    The prediction interval against the same zones: no concerns when it reaches no zone that the CI
    does not, some concerns when one more, major when two more (CINeMA Table 4).
incoherence
    The node-splitting p-value where the comparison has both direct and indirect evidence, else the
    design-by-treatment interaction p (random effects): some concerns below ``incoherence_p_some``,
    major below ``incoherence_p_major``.
"""

from __future__ import annotations

import math

from .certainty import LEVELS

__all__ = ["DEFAULT_RULES", "DOMAINS", "rate_comparison"]

DOMAINS = ("within-study bias", "reporting bias", "indirectness", "imprecision", "heterogeneity", "incoherence")
CONCERNS = ("no concerns", "some concerns", "major concerns")
DEFAULT_RULES = {
    "rob_rule": "average",
    "not_assessed_counts_as_risk": True,
    "indirectness_some": 0.25,
    "indirectness_major": 0.5,
    "incoherence_p_some": 0.10,
    "incoherence_p_major": 0.01,
    "publication_bias_p": 0.10,
    "publication_bias_min_k": 10,
}
_ROB_SCORE = {"low": 1, "some_concerns": 2, "high": 3}


def _rob_level(rob, rules):
    if rob in _ROB_SCORE:
        return _ROB_SCORE[rob]
    return 3 if rules["not_assessed_counts_as_risk"] else 2


def _within_study_bias(contrib: dict, info: dict, rules: dict):
    if not contrib:
        return 2, "no study contributions could be computed"
    shares = {1: 0.0, 2: 0.0, 3: 0.0}
    for sid, c in contrib.items():
        shares[_rob_level(info[sid].get("rob_overall"), rules)] += c
    na = sum(c for sid, c in contrib.items() if info[sid].get("rob_overall") not in _ROB_SCORE)
    rule = rules["rob_rule"]
    if rule == "majority":
        level = max(shares, key=lambda s: (shares[s], s))
    elif rule == "highest":
        level = max(s for s, v in shares.items() if v > 0)
    else:
        level = int(math.floor(sum(s * v for s, v in shares.items()) + 0.5))
    na_level = 3 if rules["not_assessed_counts_as_risk"] else 2
    parts = [f"{100 * v:.0f}% {name}" for v, name in
             ((shares[3] - (na if na_level == 3 else 0), "high"), (shares[2] - (na if na_level == 2 else 0), "some concerns"),
              (shares[1], "low")) if v > 5e-4]  # fmt: skip
    if na:
        parts.append(f"{100 * na:.0f}% not assessed (counted as {'high' if na_level == 3 else 'some concerns'})")
    what = "share of the contribution: " + ", ".join(parts)
    return level - 1, f"risk of bias weighted by contribution ({rule}); {what}"


def _zones(lo, hi, mid):
    """Zones of (-inf, -mid), [-mid, mid], (mid, inf) that the interval [lo, hi] reaches."""
    return {z for z, (a, b) in enumerate([(-math.inf, -mid), (-mid, mid), (mid, math.inf)]) if lo < b and hi > a}


def rate_comparison(pair, fit, info: dict, rules: dict, mid: float | None, target_regions, egger_p=None,
                    k_direct: int = 0) -> dict:
    """CINeMA judgements of one comparison.

    Parameters
    ----------
    pair : tpsynth.network.PairResult
    fit : tpsynth.network.NetworkFit
    info : dict
        study_id -> study info (``rob_overall``, ``region``).
    rules : dict
        :data:`DEFAULT_RULES` updated by the config.
    mid : float or None
        Minimal important difference on the analysis scale (log scale for ratios).
    target_regions : list of str or None
    egger_p : float, optional
        Egger's test on the comparison's direct studies (when there are enough).
    k_direct : int
        Number of studies with direct evidence.

    Returns
    -------
    dict
        ``{"domains": {domain: {"level", "reason"}}, "confidence", "reasons"}``.
    """
    out = {}
    out["within-study bias"] = _within_study_bias(pair.contribution, info, rules)
    if k_direct < rules["publication_bias_min_k"]:
        out["reporting bias"] = (0, f"not assessable: {k_direct} studies with direct evidence (fewer than "
                                    f"{rules['publication_bias_min_k']}); not downgraded, as in the pairwise rating")  # fmt: skip
    elif egger_p is not None and egger_p < rules["publication_bias_p"]:
        out["reporting bias"] = (1, f"suspected: Egger's test on the direct studies p = {egger_p:.3f}")
    else:
        out["reporting bias"] = (0, "undetected: Egger's test on the direct studies" + (f" p = {egger_p:.3f}" if egger_p is not None else ""))
    if target_regions:
        off = sum(c for sid, c in pair.contribution.items() if info[sid].get("region") not in target_regions)
        lvl = 2 if off >= rules["indirectness_major"] else 1 if off >= rules["indirectness_some"] else 0
        out["indirectness"] = (lvl, f"{100 * off:.0f}% of the contribution from studies outside the target population")
    else:
        out["indirectness"] = (0, "no target population configured")
    lo, hi = pair.ci_low, pair.ci_high
    if mid:
        zc = _zones(lo, hi, mid)
        crossed = len(zc) - 1
        out["imprecision"] = (crossed, ["the CI stays within one zone of clinical importance",
                                        f"the CI crosses one of the MID boundaries (±{mid:.3g})",
                                        f"the CI includes important effects in both directions (MID ±{mid:.3g})"][crossed])  # fmt: skip
        if math.isfinite(pair.pi_low):
            extra = len(_zones(pair.pi_low, pair.pi_high, mid) - zc)
            out["heterogeneity"] = (extra, ["the prediction interval reaches no zone of clinical importance beyond the CI",
                                            "the prediction interval reaches one more zone of clinical importance than the CI",
                                            "the prediction interval reaches two more zones of clinical importance than the CI"][extra])  # fmt: skip
        else:
            out["heterogeneity"] = (0, "no prediction interval (common-effect model or too few degrees of freedom)"
                                    if fit.method == "FE" or not math.isfinite(fit.tau2) else "no prediction interval")  # fmt: skip
    else:
        crosses = lo <= 0 <= hi
        out["imprecision"] = (1 if crosses else 0, "no MID on this scale: " + ("the CI includes no effect" if crosses else "the CI excludes no effect"))
        out["heterogeneity"] = (0, "no MID on this scale to judge the prediction interval against")
    if math.isfinite(pair.split_pvalue):
        p, what = pair.split_pvalue, "node-splitting (direct vs indirect)"
    else:
        p, what = fit.q_between_random_pvalue, "design-by-treatment interaction (random effects)"
    if math.isfinite(p):
        lvl = 2 if p < rules["incoherence_p_major"] else 1 if p < rules["incoherence_p_some"] else 0
        out["incoherence"] = (lvl, f"{what} p = {p:.3f}")
    else:
        out["incoherence"] = (0, "not testable: no closed loop in the network")
    down = sum(lvl for lvl, _ in out.values())
    reasons = [f"{d} ({CONCERNS[out[d][0]]}): {out[d][1]}" for d in DOMAINS if out[d][0] > 0]
    return {
        "domains": {d: {"level": CONCERNS[out[d][0]], "reason": out[d][1]} for d in DOMAINS},
        "confidence": LEVELS[min(down, 3)],
        "reasons": reasons,
    }
