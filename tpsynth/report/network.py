"""What the report shows for each network meta-analysis (results of
:func:`tpsynth.network_analysis.run_network`): a plain-language answer to "which treatment?" with its
confidence, the graph, league table and forest plot, the fit, and the confidence in every comparison.
"""

from __future__ import annotations

import re

from .. import display

__all__ = ["network_anchor", "network_section", "network_sections"]

_LEVELS = ["high", "moderate", "low", "very low"]
_METHOD = {
    "REML": "restricted maximum likelihood (metafor rma.mv, one tau² for every comparison)",
    "ML": "maximum likelihood (metafor rma.mv, one tau² for every comparison)",
    "DL": "netmeta's random-effects model with the generalised DerSimonian-Laird tau²",
    "FE": "common-effect model",
}
_MEASURE = {"MD": "mean difference", "SMD": "standardised mean difference (Hedges' g)", "OR": "odds ratio",
            "RR": "risk ratio"}  # fmt: skip


def network_anchor(network_id: str) -> str:
    return "network-" + re.sub(r"[^A-Za-z0-9_-]", "-", network_id)


def _ok(x) -> bool:
    return display.isnum(x)


def _num(x, digits=2) -> str:
    return display.number(x, digits)


def _nat(measure, x):
    return display.to_display(x, display.is_ratio(measure))


def _effect(measure, est, lo, hi, level=0.95) -> str:
    return display.effect(est, lo, hi, ratio=display.is_ratio(measure), style="ci", level=level)


def _interval(measure, lo, hi) -> str:
    return display.interval(lo, hi, ratio=display.is_ratio(measure)) if _ok(lo) else display.DASH


def _better(result: dict, est) -> bool | None:
    """True when ``est`` (treatment minus comparator, analysis scale) favours the treatment; None when the
    outcome's direction is unknown (``higher_is_better: null``)."""
    if result["higher_is_better"] is None:
        return None
    return est > 0 if result["higher_is_better"] else est < 0


def _ranked(part: dict) -> list[str] | None:
    """Treatments by P-score (ties in node order); None when there are no P-scores (direction unknown)."""
    ts, ps = part["treatments"], part["p_scores"]
    if not all(_ok(ps.get(t)) for t in ts):
        return None
    return sorted(ts, key=lambda t: (-ps[t], ts.index(t)))


def _comparison_sentence(result, p) -> str:
    m = result["measure"]
    lo, hi = p["ci_low"], p["ci_high"]
    if lo <= 0 <= hi:
        what = "no clear difference"
    elif _better(result, p["estimate"]) is None:
        what = f"higher with {p['treatment'] if p['estimate'] > 0 else p['comparator']}"
    elif _better(result, p["estimate"]):
        what = f"{p['treatment']} better"
    else:
        what = f"{p['comparator']} better"
    points = ""
    sd, scale = result.get("representative_sd"), result.get("reference_scale")
    if m == "SMD" and sd and scale:
        points = (f" (about {_num(p['estimate'] * sd, 1)} points on the {_num(scale[0], 0)}–{_num(scale[1], 0)} "
                  f"scale, CI {_num(lo * sd, 1)} to {_num(hi * sd, 1)}, with the median arm SD {_num(sd, 2)})")  # fmt: skip
    return (f"{p['treatment']} vs {p['comparator']}: {_MEASURE[m]} {_effect(m, p['estimate'], lo, hi, result['level'])}"
            f"{points}; {what}; {p['confidence']} confidence.")  # fmt: skip


def _plain(result: dict, part: dict) -> list[str]:
    """Plain-language paragraph(s) of one connected part."""
    out = []
    ref = part["reference"]
    ranked = _ranked(part)
    against_ref = [p for p in part["pairs"] if p["comparator"] == ref]
    if ranked is None:  # direction unknown: say where the values are higher, name no better treatment, rank nothing
        differ = [p for p in against_ref if not (p["ci_low"] <= 0 <= p["ci_high"])]
        if differ:
            out.append(f"Compared with {ref}, values are clearly "
                       + "; ".join(f"{'higher' if p['estimate'] > 0 else 'lower'} with {p['treatment']} "
                                   f"({p['confidence']} confidence)" for p in differ) + ".")  # fmt: skip
        else:
            out.append(f"No treatment in this network clearly differs from {ref}: every confidence interval "
                       f"against it includes no difference.")  # fmt: skip
        out.append("Whether higher or lower values are better is not set for this outcome (higher_is_better in the "
                   "config), so the report names no better treatment and ranks none.")  # fmt: skip
        return out
    top = ranked[0]
    top_pairs = [p for p in part["pairs"] if p["treatment"] == top]
    worst = max((_LEVELS.index(p["confidence"]) for p in top_pairs), default=3)
    best = min((_LEVELS.index(p["confidence"]) for p in top_pairs), default=3)
    clear = [p for p in against_ref if not (p["ci_low"] <= 0 <= p["ci_high"]) and _better(result, p["estimate"])]
    if clear:
        names = ", ".join(p["treatment"] for p in clear)
        out.append(f"Compared with {ref}, the network estimates favour {names}; "
                   f"the confidence in {'this comparison' if len(clear) == 1 else 'these comparisons'} is "
                   f"{', '.join(sorted({p['confidence'] for p in clear}, key=_LEVELS.index))}.")  # fmt: skip
    else:
        out.append(f"No treatment in this network is clearly better than {ref}: every confidence interval "
                   f"against it includes no difference.")  # fmt: skip
    out.append(f"{top} ranks first by P-score ({_num(part['p_scores'][top])}; 1 would mean certainly best, 0 "
               f"certainly worst), with {_LEVELS[best]}"
               + (f" to {_LEVELS[worst]}" if worst != best else "") + " confidence in its comparisons.")  # fmt: skip
    if worst >= 2:
        out.append("A ranking is not evidence of benefit: with low or very low confidence the order of the "
                   "treatments may change with the next trial, and the first-ranked treatment may be no better "
                   "than the others. Read the comparisons and their confidence, not the rank.")  # fmt: skip
    else:
        out.append("A ranking alone is not evidence of benefit; read it with the size of the differences and their confidence.")
    return out


def _favours(result: dict) -> str:
    ratio = result["measure"] in ("OR", "RR")
    if result["higher_is_better"] is None:
        return ("the outcome's direction is not set: values above " + ("1" if ratio else "0")
                + " mean higher with the first-named treatment")
    if result["higher_is_better"]:
        return "higher values favour the first-named treatment" + (" (ratios: above 1)" if ratio else "")
    return "lower values favour the first-named treatment" + (" (ratios: below 1)" if ratio else "")


def network_section(result: dict, figures: dict) -> dict:
    """Template context of one network."""
    nid = result["network_id"]
    m = result["measure"]
    parts = []
    for part in result["parts"]:
        ts = part["treatments"]
        comparisons = []
        for i, a in enumerate(ts):
            for b in ts[i + 1 :]:
                p = next(q for q in part["pairs"] if q["treatment"] == b and q["comparator"] == a)
                concerns = [f"{d}: {v['level']} ({v['reason']})" for d, v in p["domains"].items() if v["level"] != "no concerns"]
                comparisons.append({
                    "label": f"{b} vs {a}", "effect": _effect(m, p["estimate"], p["ci_low"], p["ci_high"], result["level"]),
                    "pi": _interval(m, p["pi_low"], p["pi_high"]),
                    "direct": (f"{_num(_nat(m, p['direct_estimate']))} (k = {p['direct_k']})" if _ok(p["direct_estimate"]) else "–"),
                    "indirect": _num(_nat(m, p["indirect_estimate"])) if _ok(p["indirect_estimate"]) and p["direct_k"] else
                                ("only indirect" if not p["direct_k"] else "–"),
                    "split_p": p["split_pvalue"], "confidence": p["confidence"], "concerns": concerns,
                })  # fmt: skip
        sentences = [_comparison_sentence(result, p) for p in part["pairs"] if p["comparator"] == part["reference"]]
        parts.append({
            "part": part["part"], "treatments": ts, "reference": part["reference"], "k": part["k"],
            "n_designs": part["n_designs"], "tau2": part["tau2"], "i2": part["i2"], "q": part["q"], "q_df": part["q_df"],
            "q_pvalue": part["q_pvalue"], "q_within": part["q_within"], "q_within_df": part["q_within_df"],
            "q_between": part["q_between"], "q_between_df": part["q_between_df"], "q_between_pvalue": part["q_between_pvalue"],
            "q_between_random_pvalue": part["q_between_random_pvalue"], "notes": part["notes"],
            "ranks": [{"treatment": t, "p_score": part["p_scores"][t]} for t in (_ranked(part) or [])],
            "plain": _plain(result, part), "sentences": sentences, "comparisons": comparisons,
        })  # fmt: skip
    n_part = sum(sum(p["participants"].values()) for p in result["parts"])
    lead = (f"{len(result['studies'])} randomised trials with {n_part:.0f} participants contribute to "
            f"{result['outcome_label']} within {_num(result['timepoint_weeks'][0], 0)}–"
            f"{_num(result['timepoint_weeks'][1], 0)} weeks.")  # fmt: skip
    caveats = []
    if result["nodes_without_studies"]:
        caveats.append(f"Not connected, no trial with usable data: {', '.join(result['nodes_without_studies'])}. "
                       f"The network cannot say how {'it compares' if len(result['nodes_without_studies']) == 1 else 'they compare'} "
                       f"with the other treatments.")  # fmt: skip
    if len(result["parts"]) > 1:
        caveats.append(f"The network falls apart into {len(result['parts'])} unconnected parts ("
                       + "; ".join(", ".join(p["treatments"]) for p in result["parts"])
                       + "). Each part is analysed on its own; treatments in different parts cannot be compared.")  # fmt: skip
    if result["unassigned_codes"]:
        caveats.append(f"Arms coded {', '.join(result['unassigned_codes'])} belong to no node and are left out.")
    caveats.append("Each node pools several interventions (listed below) and trials of different body regions; the "
                   "network assumes these are similar enough for indirect comparisons (transitivity), which the data "
                   "cannot prove.")  # fmt: skip
    if not parts:
        headline = "no trial with usable data."
    elif len(parts) == 1:
        headline = " ".join(parts[0]["plain"])
    else:
        headline = " ".join(f"Part {p['part']} ({', '.join(p['treatments'])}): {' '.join(p['plain'])}" for p in parts)
    if result["nodes_without_studies"]:
        headline += f" Not included (no trial with usable data): {', '.join(result['nodes_without_studies'])}."
    return {
        "network_id": nid, "anchor": network_anchor(nid), "headline": headline, "title": result["title"], "measure": _MEASURE[m],
        "measure_code": m, "method": _METHOD[result["method"]], "level": result["level"], "lead": lead,
        "caveats": caveats, "parts": parts, "mid": result["mid"], "mid_source": result["mid_source"],
        "favours": _favours(result),
        "nodes": result["node_codes"],
        "excluded": result["excluded"],
        "studies": result["studies"],
        "graph": figures.get(f"network_graph_{nid}"), "forest": figures.get(f"network_forest_{nid}"),
        "league": figures.get(f"league_{nid}"),
    }  # fmt: skip


def network_sections(results: list[dict], figures: dict) -> list[dict]:
    return [network_section(r, figures) for r in sorted(results, key=lambda r: r["network_id"])]
