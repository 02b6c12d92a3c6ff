"""Sample-size caveats, automatic GRADE certainty of evidence, and plain-language statements.

Everything here is computed from one analysis result (:func:`tpsynth.analysis.run_analysis`) and
the config's ``certainty`` and ``target`` sections; the thresholds are documented in
config/README.md.

References
----------
Guyatt GH, Oxman AD, Kunz R, et al. GRADE guidelines 6. Rating the quality of evidence:
imprecision. J Clin Epidemiol 2011;64:1283-93 (optimal information size, CI vs thresholds).
Guyatt GH, Oxman AD, Kunz R, et al. GRADE guidelines 7: inconsistency. J Clin Epidemiol
2011;64:1294-302. Guyatt GH et al. GRADE guidelines 8: indirectness. J Clin Epidemiol
2011;64:1303-10. Guyatt GH et al. GRADE guidelines 5: publication bias. J Clin Epidemiol
2011;64:1277-82.
Santesso N, Glenton C, Dahm P, et al. GRADE guidelines 26: informative statements to communicate
the findings of systematic reviews of interventions. J Clin Epidemiol 2020;119:126-35.
"""

from __future__ import annotations

import math
import statistics

from scipy.special import ndtri

from .measures import DICHOTOMOUS_MEASURES, RATIO_MEASURES
from .results import Caveats

LEVELS = ["high", "moderate", "low", "very low"]
NO_EVIDENCE = "no usable evidence"  # the "rating" of an analysis with no usable study

DEFAULT_RULES = {
    "alpha": 0.05,
    "power": 0.80,
    "dichotomous_relative_change": 0.25,
    "small_trial_per_arm": 50,
    "risk_of_bias_weight": 0.5,
    "risk_of_bias_very_serious_weight": 0.5,
    "not_assessed_counts_as_risk": True,
    "inconsistency_i2_serious": 50.0,
    "inconsistency_i2_very_serious": 75.0,
    "indirectness_weight": 0.5,
    "publication_bias_p": 0.10,
    "publication_bias_min_k": 10,
    "ratio_threshold": 1.25,
}


def rules_from_config(config: dict) -> dict:
    rules = dict(DEFAULT_RULES)
    rules.update(config.get("certainty") or {})
    return rules


def optimal_information_size(kind: str, rules: dict, sd: float | None = None, mid: float | None = None,
                             p0: float | None = None, higher_is_better: bool = False) -> float | None:
    """Total sample size a single adequately powered two-arm trial would need (GRADE OIS).

    Continuous: ``4 (z_{1-a/2} + z_{1-b})^2 SD^2 / MID^2``. Dichotomous: two arms of
    ``(z_{1-a/2} + z_{1-b})^2 (p0(1-p0) + p1(1-p1)) / (p0 - p1)^2`` with ``p1`` a relative change of
    ``dichotomous_relative_change`` from the comparator risk ``p0`` (a reduction for an unwanted
    event, an increase for a wanted one such as response).
    """
    z = float(ndtri(1 - rules["alpha"] / 2) + ndtri(rules["power"]))
    if kind == "continuous":
        if sd is None or mid is None or sd <= 0:
            return None
        return 4 * z**2 * sd**2 / mid**2
    if p0 is None or not 0 < p0 < 1:
        return None
    change = rules["dichotomous_relative_change"]
    p1 = min(p0 * (1 + change), 0.999) if higher_is_better else p0 * (1 - change)
    return 2 * z**2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p0 - p1) ** 2


def _share(studies: list[dict], pred) -> float:
    total = sum(s["weight"] for s in studies)
    return sum(s["weight"] for s in studies if pred(s)) / total if total > 0 else 0.0


def mid_on_scale(result: dict, rep_sd: float | None, rules: dict) -> float | None:
    """The MID on the analysis's scale (log scale for ratios)."""
    measure = result["settings"]["measure"]
    mid = result["outcome"].get("mid")
    if measure in RATIO_MEASURES:
        return math.log(rules["ratio_threshold"])
    if measure == "MD":
        return mid
    if measure == "SMD" and mid is not None and rep_sd:
        return mid / rep_sd
    return None


def compute_caveats(result: dict, rules: dict, target_regions: list[str] | None) -> Caveats:
    p = result["pooled"]
    studies = result["studies"]
    k = int(p.get("k") or 0)
    measure = result["settings"]["measure"]
    kind = "dichotomous" if measure in DICHOTOMOUS_MEASURES else "continuous"
    sds = [s["comparator_sd_ref"] for s in studies if s.get("comparator_sd_ref")]
    risks = [s["comparator_risk"] for s in studies if s.get("comparator_risk") is not None]
    rep_sd = statistics.median(sds) if sds else None
    p0 = statistics.median(risks) if risks else None
    ois = optimal_information_size(kind, rules, sd=rep_sd, mid=result["outcome"].get("mid"), p0=p0,
                                   higher_is_better=bool(result["outcome"].get("higher_is_better")))  # fmt: skip
    n = float(p.get("n_participants") or 0)
    mid_scale = mid_on_scale(result, rep_sd, rules)
    null = 0.0
    lo, hi = p.get("ci_low"), p.get("ci_high")
    crosses_null = None if lo is None else bool(lo <= null <= hi)
    crosses_mid = None
    if lo is not None and mid_scale is not None:
        crosses_mid = bool(lo < -mid_scale < hi or lo < mid_scale < hi)
    small = rules["small_trial_per_arm"]
    return Caveats(
        k=k, n=n, ois=ois, n_over_ois=(n / ois if ois else None), representative_sd=rep_sd, comparator_risk=p0,
        small_trial_weight=_share(studies, lambda s: min(s.get("n_intervention") or 0, s.get("n_comparator") or 0) < small),
        largest_weight=max((s["weight"] for s in studies), default=0.0) / 100.0,
        ci_crosses_null=crosses_null, ci_crosses_mid=crosses_mid, mid_on_analysis_scale=mid_scale,
        high_rob_weight=_share(studies, lambda s: s.get("rob_overall") == "high"),
        not_assessed_weight=_share(studies, lambda s: s.get("rob_overall") in (None, "not_assessed")),
        derived_weight=_share(studies, lambda s: bool(s.get("derived"))),
        low_confidence_weight=_share(studies, lambda s: bool(s.get("low_confidence"))),
        off_target_weight=(_share(studies, lambda s: s.get("region") not in target_regions) if target_regions else 0.0),
        some_concerns_weight=_share(studies, lambda s: s.get("rob_overall") == "some_concerns"),
        rob_domains_high=_domains_high(studies),
    )  # fmt: skip


def _domains_high(studies: list[dict]) -> tuple:
    """Weight share judged high (RoB 2 high, ROBINS-I serious or critical) in each domain, in domain order."""
    total = sum(s["weight"] for s in studies)
    shares: dict[str, float] = {}
    for s in studies:
        for dom in (s.get("rob") or {}).get("domains") or []:
            shares.setdefault(dom["domain"], 0.0)
            if dom["level"] == "high" and total > 0:
                shares[dom["domain"]] += s["weight"] / total
    return tuple((d, w) for d, w in shares.items() if w > 0)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def risk_of_bias_downgrade(c: Caveats, rules: dict) -> tuple[int, str]:
    """GRADE risk-of-bias downgrade from the studies' judgements, weighted by their weight in the analysis.

    Each study's judgement is its overall risk of bias for the analysis's outcome, from its domain
    judgements by the tool's algorithm (:mod:`tpsynth.rob`; ``studies.csv`` ``rob_overall`` when it
    has no domain data), on the common scale low / some concerns / high / not assessed. Following the
    Cochrane Handbook (section 14.2.2, which applies the summary assessment of risk of bias across
    studies of Table 8.7.a of version 5.1: "most information from studies at low risk" -> no serious
    limitation; "from studies at low or unclear risk" -> serious; "the proportion of information at
    high risk is sufficient to affect the interpretation" -> serious or very serious), with the
    shares of weight:

    * -2 (very serious) when the weight at high risk is at least ``risk_of_bias_very_serious_weight``;
    * -1 (serious) when the weight not at low risk (high, some concerns, and not assessed when
      ``not_assessed_counts_as_risk``) is at least ``risk_of_bias_weight``;
    * no downgrade otherwise.

    The reason names the shares and, with domain data, the domains judged high and their weight.

    Returns
    -------
    (levels, reason)
    """
    na = c.not_assessed_weight if rules["not_assessed_counts_as_risk"] else 0.0
    not_low = c.high_rob_weight + c.some_concerns_weight + na
    what = []
    if c.high_rob_weight:
        what.append(f"{_pct(c.high_rob_weight)} of the weight from high risk-of-bias studies")
    if c.some_concerns_weight:
        what.append(f"{_pct(c.some_concerns_weight)} from studies with some concerns")
    if na:
        what.append(f"risk of bias not assessed for {_pct(na)} of the weight")
    if c.rob_domains_high:
        what.append("high risk in " + ", ".join(f"{d} ({_pct(w)} of the weight)" for d, w in c.rob_domains_high))
    if c.high_rob_weight >= rules.get("risk_of_bias_very_serious_weight", 0.5):
        return 2, "; ".join(what)
    if not_low >= rules["risk_of_bias_weight"]:
        return 1, "; ".join(what)
    return 0, ""


def grade(result: dict, c: Caveats, rules: dict, interval: tuple[float, float, str] | None = None) -> tuple[str, list[str]]:
    """Automatic GRADE rating: start high for randomised trials, downgrade per domain with reasons.

    Imprecision is judged on the confidence interval of ``result["pooled"]``, or on ``interval``
    (``(low, high, name)``, e.g. the Bayesian credible interval when k is below
    ``bayes.headline_below_k``; config/README.md gives the rule).
    """
    p = result["pooled"]
    if c.k == 0:  # nothing to rate: not counted among the "very low" ratings
        return NO_EVIDENCE, ["no study with usable data"]
    reasons: list[str] = []
    down = 0
    # risk of bias (Cochrane Handbook 14.2.2; rule in risk_of_bias_downgrade)
    rob_down, rob_why = risk_of_bias_downgrade(c, rules)
    if rob_down:
        down += rob_down
        reasons.append(f"risk of bias (-{rob_down}): {rob_why}")
    # inconsistency
    i2 = p.get("i2")
    if c.k >= 2 and i2 is not None:
        pi_null = p.get("pi_low") is not None and p["pi_low"] <= 0 <= p["pi_high"]
        ci_null = bool(c.ci_crosses_null)
        if i2 >= rules["inconsistency_i2_very_serious"] and pi_null:
            down += 2
            reasons.append(f"inconsistency (-2): I² = {i2:.0f}% and the prediction interval includes no effect")
        elif i2 >= rules["inconsistency_i2_serious"] or (c.k >= 3 and pi_null and not ci_null):
            down += 1
            why = f"I² = {i2:.0f}%" if i2 >= rules["inconsistency_i2_serious"] else "the prediction interval includes no effect"
            reasons.append(f"inconsistency (-1): {why}")
    # indirectness
    if c.off_target_weight >= rules["indirectness_weight"]:
        down += 1
        reasons.append(f"indirectness (-1): {_pct(c.off_target_weight)} of the weight from studies outside the target population")
    # imprecision
    imp = 0
    why = []
    crosses_null, crosses_mid, name = c.ci_crosses_null, c.ci_crosses_mid, "the CI"
    lo, hi = p.get("ci_low"), p.get("ci_high")
    if interval is not None:
        lo, hi, name = interval
        m = c.mid_on_analysis_scale
        crosses_null = bool(lo <= 0 <= hi)
        crosses_mid = None if m is None else bool(lo < -m < hi or lo < m < hi)
    if crosses_null:
        imp += 1
        why.append(f"{name} includes no effect")
    if c.ois is None:
        if c.k <= 2 or c.n < 400:
            imp += 1
            why.append(f"only {c.n:.0f} participants (optimal information size not computable)")
    elif c.n < c.ois:
        imp += 1
        why.append(f"{c.n:.0f} participants, below the optimal information size of {c.ois:.0f}")
    if crosses_mid and c.mid_on_analysis_scale and lo is not None:
        m = c.mid_on_analysis_scale
        if lo < -m and hi > m:
            imp = 2
            why.append(f"{name} includes both important benefit and important harm")
    imp = min(imp, 2)
    if imp:
        down += imp
        reasons.append(f"imprecision (-{imp}): " + "; ".join(why))
    # publication bias
    ss = result.get("small_study") or {}
    if ss.get("egger_pvalue") is not None and c.k >= rules["publication_bias_min_k"] and ss["egger_pvalue"] < rules["publication_bias_p"]:
        down += 1
        reasons.append(f"publication bias (-1): Egger's test p = {ss['egger_pvalue']:.3f}")
    start = 0
    return LEVELS[min(start + down, 3)], reasons


def caveat_sentences(result: dict, c: Caveats) -> list[str]:
    """One plain sentence per caveat."""
    if c.k == 0:
        return ["No usable evidence: no study reported this comparison and outcome in a usable form."]
    out = [f"One trial with {c.n:.0f} participants: its own result, nothing pooled." if c.k == 1
           else f"{c.k} studies with {c.n:.0f} participants in total."]  # fmt: skip
    if c.ois:
        out.append(
            f"A single adequately powered trial would need about {c.ois:.0f} participants (optimal information "
            f"size); these studies together have {c.n / c.ois:.0%} of that."
        )
    else:
        out.append("The optimal information size could not be computed (no minimal important difference or representative SD/risk).")
    out.append(
        f"{_pct(c.small_trial_weight)} of the weight comes from small trials (fewer than 50 per arm); the largest "
        f"single study carries {_pct(c.largest_weight)}."
    )
    if c.ci_crosses_null is not None:
        out.append("The confidence interval includes no effect." if c.ci_crosses_null else "The confidence interval excludes no effect.")
    if c.ci_crosses_mid is not None:
        out.append(mid_sentence(result, c))
    if 2 <= c.k < 5:
        out.append("With fewer than 5 studies, tau² and the prediction interval are very uncertain.")
    if c.k < 10:
        out.append("With fewer than 10 studies, small-study effects (publication bias) cannot be tested.")
    out.append(
        f"Weight from high risk-of-bias studies: {_pct(c.high_rob_weight)}; risk of bias not assessed: "
        f"{_pct(c.not_assessed_weight)}; converted statistics: {_pct(c.derived_weight)}; low-confidence extractions: "
        f"{_pct(c.low_confidence_weight)}; studies outside the target population: {_pct(c.off_target_weight)}."
    )
    return out


def mid_sentence(result: dict, c: Caveats, lo: float | None = None, hi: float | None = None,
                 name: str = "confidence interval") -> str:
    """Where an interval lies relative to the minimal important difference, in words that mean one thing:
    an important benefit (or harm) shown, an important effect ruled out, or neither."""
    p = result["pooled"]
    lo = p.get("ci_low") if lo is None else lo
    hi = p.get("ci_high") if hi is None else hi
    m = c.mid_on_analysis_scale
    better_up = result["outcome"].get("higher_is_better", False)  # None: direction unknown
    if m is None or lo is None or hi is None:
        return ""
    if lo < -m < hi or lo < m < hi:
        return (f"The {name} includes the minimal important difference, so an important effect is neither "
                "shown nor ruled out.")  # fmt: skip
    if -m <= lo and hi <= m:
        return (f"The whole {name} lies within the minimal important difference: an important effect in "
                "either direction is ruled out.")  # fmt: skip
    up = lo >= m  # the whole interval is beyond +MID (else beyond -MID)
    if better_up is None:
        return (f"The whole {name} lies beyond the minimal important difference: an important difference "
                f"({'higher' if up else 'lower'} values with the intervention) is shown.")  # fmt: skip
    what = "benefit" if up == bool(better_up) else "harm"
    return f"The whole {name} lies beyond the minimal important difference: an important {what} is shown."


def plain_language(result: dict, certainty: str, c: Caveats) -> str:
    """GRADE narrative statement (Santesso et al. 2020) for the analysis's main effect."""
    s = result["settings"]
    who = s.get("intervention_label") or (result.get("labels", {}).get("intervention") or ["the intervention"])[0]
    outcome = result["outcome"]["label"].split(" (")[0].lower()
    who = who[0].upper() + who[1:]
    if c.k == 0:
        return f"No study provided usable data on {outcome} for this comparison."
    if c.k == 1:
        return _statement(result, certainty, c, who, outcome)[:-1] + " (evidence from one trial)."
    return _statement(result, certainty, c, who, outcome)


def _statement(result: dict, certainty: str, c: Caveats, who: str, outcome: str) -> str:
    if certainty == "very low":
        return f"The evidence is very uncertain about the effect of {who[0].lower() + who[1:]} on {outcome}."
    est = result["pooled"]["estimate"]
    verb = "reduce" if est < 0 else "increase"
    small = c.ci_crosses_null or (c.mid_on_analysis_scale is not None and abs(est) < c.mid_on_analysis_scale)
    if small:
        lead = {"high": "results", "moderate": "likely results", "low": "may result"}[certainty]
        return f"{who} {lead} in little to no difference in {outcome}."
    phrase = {"high": f"{verb}s", "moderate": f"probably {verb}s", "low": f"may {verb}"}[certainty]
    return f"{who} {phrase} {outcome}."


def smd_in_points(result: dict, c: Caveats) -> dict | None:
    """Translate an SMD back to the outcome's reference scale with the representative SD."""
    if result["settings"]["measure"] != "SMD" or not c.representative_sd:
        return None
    p = result["pooled"]
    sd = c.representative_sd
    ref = result["outcome"].get("reference_scale")
    return {
        "sd": sd, "estimate": p["estimate"] * sd, "ci_low": p["ci_low"] * sd, "ci_high": p["ci_high"] * sd,
        "scale": ref, "mid": result["outcome"].get("mid"),
    }  # fmt: skip
