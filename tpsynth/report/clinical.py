"""What a clinician reads first: the headline of each finding in natural units, with the Bayesian
credible interval and the probability of an important benefit when there are few studies, absolute
effects per 1000 for dichotomous outcomes, the evidence base at a glance and a glossary.

Pure functions of one analysis result (:class:`tpsynth.results.AnalysisResult`) or of the
config; :mod:`tpsynth.report.build` puts them into the template's context.

References
----------
Schünemann HJ et al. Cochrane Handbook, chapter 14: Completing 'Summary of findings' tables (absolute
effects at an assumed comparator risk). Santesso N et al. GRADE guidelines 26, J Clin Epidemiol
2020;119:126-35 (informative statements). Röver C et al. Res Synth Methods 2021;12:448 (Bayesian
random effects with few studies).
"""

from __future__ import annotations

import math

from .. import display
from ..certainty import NO_EVIDENCE
from ..measures import RATIO_MEASURES
from ..results import AnalysisResult

GLOSSARY = [
    ("Confidence interval (CI)", "The range of effects compatible with the data by a frequentist rule: in repeated "
     "use, 95% of such intervals contain the true effect."),
    ("Credible interval", "The range that contains the true average effect with 95% probability, given the data "
     "and the prior assumptions of a Bayesian analysis."),
    ("Prediction interval", "Where the true effect of a new study in a new setting would be expected to lie (95%), "
     "allowing for differences between studies."),
    ("Heterogeneity (tau, tau², I²)", "How much the true effects differ between studies: tau is their standard "
     "deviation; I² the share of the observed variation not explained by chance."),
    ("Prior (heterogeneity prior)", "What is assumed about tau before seeing these studies; here taken from analyses "
     "of thousands of Cochrane meta-analyses (Turner 2015, Rhodes 2015)."),
    ("Posterior probability", "The probability of a statement (for example 'the treatment helps') after combining "
     "the prior with the data."),
    ("Minimal important difference (MID)", "The smallest change in an outcome that patients notice as important."),
    ("HKSJ", "Hartung-Knapp-Sidik-Jonkman: a way to compute the confidence interval of a random-effects "
     "meta-analysis that accounts for uncertainty in tau; with 2 studies it uses a t distribution with 1 degree "
     "of freedom and becomes very wide."),
    ("Q-profile", "The method used for the confidence interval of tau² (how uncertain the heterogeneity is)."),
    ("Optimal information size (OIS)", "The number of participants a single adequately powered trial would need; "
     "fewer participants in total means the evidence is imprecise."),
    ("SMD", "Standardised mean difference: a difference in means divided by the standard deviation, so that "
     "different scales can be combined (0.2 small, 0.5 moderate, 0.8 large)."),
    ("RR, OR", "Risk ratio and odds ratio: the chance of the event with the treatment relative to the comparator "
     "(1 = no difference)."),
    ("Shrunken estimate", "A study's effect pulled towards the overall average, by how much depends on its "
     "precision and on the heterogeneity."),
    ("GRADE certainty", "How confident one can be that the true effect is close to the estimate: high, moderate, "
     "low or very low."),
]  # fmt: skip


# Numbers are written by tpsynth.display, as in the figures and the rest of the report.
_finite = display.isnum
_n = display.number


def _ratio(x: float) -> str:
    return display.value(x, ratio=True)


def _fmt(measure: str, x: float) -> str:
    r = display.is_ratio(measure)
    return display.value(display.to_display(x, r), ratio=r)


def _interval(measure: str, est, lo, hi, name: str) -> str:
    return display.effect(est, lo, hi, ratio=display.is_ratio(measure), style="ci", label=name)


def chance(p: float) -> str:
    """A probability in words: 'about a 79% chance'."""
    if p > 0.99:
        return "more than a 99% chance"
    if p < 0.01:
        return "less than a 1% chance"
    n = round(100 * p)
    return f"about {'an' if n in (8, 11, 18) or 80 <= n <= 89 else 'a'} {n}% chance"


def _scale(a: AnalysisResult) -> str | None:
    sc = a.outcome.reference_scale
    if not sc:
        return None
    lo, hi = sc
    return f"{lo:g}–{hi:g}"


def _outcome_noun(a: AnalysisResult) -> str:
    return (a.outcome.label or "").split(" (")[0].lower() or "the outcome"


def mid_text(a: AnalysisResult) -> str | None:
    """The MID named in natural units ('the smallest difference patients notice is about 1.5 points')."""
    m = a.settings.measure
    mid = a.outcome.mid
    c = a.caveats
    mid_scale = c.mid_on_analysis_scale if c else None
    if m in RATIO_MEASURES:
        scale = mid_scale or (a.bayes.mid if a.bayes else None)
        if not _finite(scale):
            return None
        t = math.exp(scale)
        return (f"an important effect is taken to be a relative change of at least {round(100 * (t - 1))}% "
                f"({m} above {_ratio(t)} or below {_ratio(1 / t)}; GRADE's default)")  # fmt: skip
    if mid is None:
        return None
    sc = _scale(a)
    on = f" on the {sc} scale" if sc else ""
    if m == "SMD" and _finite(mid_scale):
        return (f"the smallest difference patients notice is about {mid:g} points{on} "
                f"(SMD {_n(mid_scale)} with the typical SD of {_n(c.representative_sd)})")
    if m == "MD":
        return f"the smallest difference patients notice is about {mid:g} points{on}"
    return None


def magnitude_text(a: AnalysisResult, est: float | None) -> str | None:
    """The effect in natural units: 'about 2.3 points less pain intensity on the 0–10 scale'."""
    m = a.settings.measure
    if not _finite(est) or m in RATIO_MEASURES:
        return None
    sd = a.caveats.representative_sd if a.caveats else None
    noun = _outcome_noun(a)
    sc = _scale(a)
    on = f" on the {sc} scale" if sc else ""
    if m == "MD":
        pts = est
    elif m == "SMD" and _finite(sd):
        pts = est * sd
    else:
        return f"a standardised difference of {_n(abs(est))} ({'small' if abs(est) < 0.5 else 'moderate' if abs(est) < 0.8 else 'large'} by the usual 0.2 / 0.5 / 0.8 rule)"  # noqa: E501
    if abs(pts) < 0.005:
        return f"about no difference in {noun}{on}"
    return f"about {_n(abs(pts), 1)} points {'less' if pts < 0 else 'more'} {noun}{on}"


def _risk(measure: str, p0: float, x: float) -> float:
    r = math.exp(x)
    if measure == "RR":
        return min(p0 * r, 1.0)
    if measure == "OR":
        return r * p0 / (1 - p0 + r * p0)
    return p0 + x  # RD


def absolute_effect(a: AnalysisResult, est, lo, hi, name: str) -> dict | None:
    """Per 1000 people at the median comparator risk of the included studies (GRADE summary of findings)."""
    m = a.settings.measure
    p0 = a.caveats.comparator_risk if a.caveats else None
    if m not in ("RR", "OR", "RD") or not _finite(p0) or not all(_finite(v) for v in (est, lo, hi)):
        return None
    base = round(1000 * p0)
    p1 = [round(1000 * _risk(m, p0, v)) for v in (est, lo, hi)]
    diff = [v - base for v in p1]

    def words(d: int) -> str:
        return "no difference" if d == 0 else f"{abs(d)} {'more' if d > 0 else 'fewer'}"

    noun = _outcome_noun(a)
    return {
        "comparator": base, "intervention": p1[0], "low": p1[1], "high": p1[2],
        "text": (f"{p1[0]} per 1000 with {a.settings.intervention_label or 'the intervention'} "
                 f"({name} {p1[1]} to {p1[2]}) against {base} per 1000 with "
                 f"{a.settings.comparator_label or 'the comparator'}: {words(diff[0])} per 1000 "
                 f"({words(diff[1])} to {words(diff[2])}) for {noun}"),
        "assumed": (f"Assumed comparator risk {base} per 1000: the median risk in the comparator arms of the "
                    "included studies."),
    }  # fmt: skip


def _why_differ(a: AnalysisResult) -> str:
    p, b = a.pooled, a.bayes
    k = p.k
    fw = (p.ci_high or 0) - (p.ci_low or 0)
    bw = b.ci_high - b.ci_low
    ci = p.ci_method or a.settings.ci
    how = ("the HKSJ confidence interval uses a t distribution with only "
           f"{k - 1} degree{'s' if k - 1 != 1 else ''} of freedom") if ci in ("hksj", "hksj_adhoc") else \
        "the confidence interval treats the estimated heterogeneity as if it were known"  # fmt: skip
    if fw > 1.5 * bw:
        return (f"The intervals differ because with {k} studies {how}, which makes it very wide, while the "
                "Bayesian analysis draws on what earlier meta-analyses show about how much trial results usually "
                "vary (its prior), so its interval is narrower but leans on that assumption.")
    if bw > 1.5 * fw:
        return (f"The credible interval is wider because the Bayesian analysis allows for differences between "
                f"studies that {k} studies cannot rule out, whereas the confidence interval uses a single estimate "
                "of them.")
    return "The two intervals are similar: the conclusion does not depend on the method."


def headline(a: AnalysisResult) -> dict:
    """The key-findings cell of one analysis: what leads, in words and numbers."""
    p = a.pooled
    s = a.settings
    m = s.measure
    k = int(p.k or 0)
    lvl = f"{100 * s.level:g}%"
    out = {"mode": "none", "lead": None, "lead_label": None, "probabilities": [], "frequentist": None, "why": None,
           "magnitude": None, "mid": mid_text(a), "absolute": None, "no_mid": None, "absolute_assumed": None, "judged_on":
           a.imprecision_judged_on}  # fmt: skip
    if k == 0 or p.certainty == NO_EVIDENCE:
        out["lead"] = "No usable evidence: no study reported this comparison and outcome in a usable form."
        return out
    freq = _interval(m, p.estimate, p.ci_low, p.ci_high, f"{lvl} CI")
    b = a.bayes
    who = s.intervention_label or "the intervention"
    if k == 1:
        out.update(mode="single", lead_label="One trial", lead=freq)
        est, lo, hi, name = p.estimate, p.ci_low, p.ci_high, f"{lvl} CI"
    elif b and b.headline:
        out.update(mode="bayes", lead_label=f"Bayesian estimate ({k} studies)",
                   lead=_interval(m, b.estimate, b.ci_low, b.ci_high, f"{lvl} credible interval"),
                   frequentist=f"Frequentist: {freq}", why=_why_differ(a))  # fmt: skip
        if _finite(b.prob_important_benefit):
            out["probabilities"].append(
                f"{chance(b.prob_important_benefit)} that the benefit is large enough to notice (beyond the MID)")
        if _finite(b.prob_benefit):
            out["probabilities"].append(f"{chance(b.prob_benefit)} that {who} helps at all")
        if not _finite(b.prob_important_benefit):
            out["no_mid"] = (
                "The chances of a benefit are not computed: which direction of this outcome is better is not set "
                "(higher_is_better in the config)" if a.outcome.higher_is_better is None else
                "The chance of an important benefit is not computed: no minimal important difference is set for "
                "this outcome" if a.outcome.mid is None else
                "The chance of an important benefit is not computed: the outcome's minimal important difference "
                "cannot be put on the SMD scale (no comparator SD)")  # fmt: skip
        est, lo, hi, name = b.estimate, b.ci_low, b.ci_high, "credible interval"
    else:
        out.update(mode="freq", lead_label=f"{k} studies", lead=freq)
        if b:
            out["frequentist"] = ("Bayesian: " + _interval(m, b.estimate, b.ci_low, b.ci_high,
                                                           f"{lvl} credible interval"))  # fmt: skip
            if _finite(b.prob_important_benefit):
                out["probabilities"].append(
                    f"{chance(b.prob_important_benefit)} that the benefit is large enough to notice (beyond the MID)")
        est, lo, hi, name = p.estimate, p.ci_low, p.ci_high, "CI"
    out["magnitude"] = magnitude_text(a, est)
    ab = absolute_effect(a, est, lo, hi, name)
    if ab:
        out["absolute"], out["absolute_assumed"] = ab["text"], ab["assumed"]
    return out


def prior_sensitivity(a: AnalysisResult) -> dict | None:
    """The Bayesian result under each prior and REML, and whether the conclusion depends on the prior."""
    b = a.bayes
    if not b:
        return None
    m = a.settings.measure
    rows = [{"kind": "main analysis", "prior": b.tau_prior, "estimate": b.estimate, "ci_low": b.ci_low,
             "ci_high": b.ci_high, "prob_benefit": b.prob_benefit,
             "prob_important_benefit": b.prob_important_benefit}]  # fmt: skip
    rows += [r.to_dict() for r in a.bayes_sensitivity]  # template rows (dicts), with their effect text added
    for r in rows:
        r["effect"] = _interval(m, r["estimate"], r["ci_low"], r["ci_high"], "")
        r["effect"] = r["effect"].replace("( ", "(")
    bayes_rows = [r for r in rows if r["prior"] != "none"]
    excl = {r["ci_low"] > 0 or r["ci_high"] < 0 for r in bayes_rows}
    side = {(r["prob_benefit"] or 0) > 0.5 for r in bayes_rows}
    depends = len(excl) > 1 or len(side) > 1
    text = ("The conclusion depends on the prior: under some of these priors the credible interval excludes no "
            "effect (or the most likely direction changes) and under others it does not." if depends else
            "The conclusion does not depend on the prior: under every prior shown the credible interval "
            + ("excludes" if excl == {True} else "includes") + " no effect and the most likely direction is the same.")  # fmt: skip
    return {"rows": rows, "depends": depends, "text": text, "source": b.tau_prior_source,
            "mu_prior": b.mu_prior, "tau": (b.tau_median, b.tau_ci_low, b.tau_ci_high),
            "pi": _interval(m, b.estimate, b.pi_low, b.pi_high, f"{100 * a.settings.level:g}% predictive interval"),
            "hdi": (_fmt(m, b.hdi_low), _fmt(m, b.hdi_high)), "log_scale": m in RATIO_MEASURES}  # fmt: skip


def evidence_glance(analyses: list[AnalysisResult], studies: list[dict], config: dict, shipped: bool) -> dict:
    """How the studies were found and how many studies and participants come from the target population."""
    target = config.get("target") or {}
    regions = set(target.get("regions") or [])
    region = {s["study_id"]: s.get("region") for s in studies}
    n_by_study: dict[str, float] = {}
    for a in analyses:
        for st in a.studies:
            n = (st.n_intervention or 0) + (st.n_comparator or 0)
            n_by_study[st.study_id] = max(n_by_study.get(st.study_id, 0), n)
    used = sorted(n_by_study)
    in_target = [sid for sid in used if region.get(sid) in regions]
    rep = config.get("report") or {}
    return {
        "search": rep.get("search"),
        "shipped": shipped,
        "n_studies_sheet": len(studies),
        "n_used": len(used),
        "n_target": len(in_target),
        "participants_used": sum(n_by_study.values()),
        "participants_target": sum(n_by_study[s] for s in in_target),
        "target_label": target.get("label"),
        "has_target": bool(regions),
        "other_regions": sorted({str(region.get(s)) for s in used if region.get(s) not in regions}),
    }
