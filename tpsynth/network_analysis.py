"""Run one configured network (``networks:`` in the config) and lay out its result tables.

:func:`run_network` selects the studies (:mod:`tpsynth.network_data`), splits the network into its
connected parts, fits each part (:mod:`tpsynth.network`) and rates every comparison
(:mod:`tpsynth.cinema`); the result is a JSON-able dict. :func:`network_tables` gives the rows of
``network_estimates.csv``, ``network_fit.csv`` and ``network_ranks.csv``.
"""

from __future__ import annotations

import math
import statistics

from . import cinema
from .certainty import rules_from_config
from .measures import RATIO_MEASURES
from .network import components, fit_network
from .network_data import build_network_data
from .rob import study_judgement

__all__ = ["ESTIMATE_COLUMNS", "FIT_COLUMNS", "RANK_COLUMNS", "network_settings", "network_tables", "run_network"]

ESTIMATE_COLUMNS = [
    "network_id", "treatment", "comparator", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high",
    "direct_estimate", "direct_se", "indirect_estimate", "indirect_se", "split_pvalue", "confidence",
]  # fmt: skip
FIT_COLUMNS = [
    "network_id", "method", "k", "n_treatments", "n_designs", "tau2", "i2", "q", "q_df", "q_pvalue", "q_within",
    "q_within_df", "q_between", "q_between_df", "q_between_pvalue",
]  # fmt: skip
RANK_COLUMNS = ["network_id", "treatment", "p_score"]


def network_settings(config: dict, network_id: str) -> dict:
    """The network's settings with defaults: method REML, the config's level, timepoint rule, randomised_only."""
    n = dict(config["networks"][network_id])
    n.setdefault("method", "REML")
    # the node order is the order of every output; kept as a list because JSON slices sort mapping keys
    n["node_order"] = list(n.get("node_order") or n["nodes"])
    d = config.get("defaults") or {}
    for key in ("level", "timepoint_rule", "randomised_only"):
        n.setdefault(key, d.get(key, {"level": 0.95, "timepoint_rule": "latest", "randomised_only": True}[key]))
    n["id"] = network_id
    return n


def _f(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def representative_sd(data) -> float | None:
    """Median arm SD on the outcome's reference scale (to read an SMD in points), or None."""
    sds = [s for b in data.blocks for s in b.info.get("sd_ref", [])]
    return statistics.median(sds) if sds else None


def _mid(settings, config, data) -> tuple[float | None, str]:
    outcome = config["outcomes"][settings["outcome"]]
    measure = settings["measure"]
    rules = rules_from_config(config)
    if settings.get("mid") is not None:
        return float(settings["mid"]), "the network's mid setting"
    if measure in RATIO_MEASURES:
        t = rules["ratio_threshold"]
        return math.log(t), f"ratio {t:g} (config certainty.ratio_threshold), log scale"
    mid = outcome.get("mid")
    if mid is None:
        return None, "no MID for this outcome"
    if measure == "MD":
        return float(mid), f"outcome MID {mid:g} points on the {outcome['reference_scale'][0]:g}-{outcome['reference_scale'][1]:g} scale"
    rep = representative_sd(data)
    if rep is None:
        return None, "no arm SD on the outcome's reference scale to express the MID as an SMD"
    return mid / rep, f"outcome MID {mid:g} points divided by the median arm SD {rep:.3g} (reference scale)"


def _egger_p(blocks, a, b):
    from .small_study import egger_test

    pairs = [blk.pair(a, b) for blk in blocks if a in blk.nodes and b in blk.nodes]
    try:
        return egger_test([e for e, _ in pairs], [v for _, v in pairs]).pvalue
    except ValueError:
        return None


def run_network(settings: dict, sheets, config: dict, arms: list[dict] | None = None) -> dict:
    """Run one network.

    Parameters
    ----------
    settings : dict
        :func:`network_settings`.
    sheets : tpsynth.validate.Sheets
        Validated sheets.
    config : dict
        Validated config.
    arms : list of dict, optional
        Harmonised arms (computed from ``sheets`` when not given).
    """
    if arms is None:
        from .harmonise import harmonise

        arms = harmonise(sheets)[0].rows()
    contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    # each study's risk of bias for this outcome (domains by the tool's algorithm, else rob_overall): CINeMA reads it
    studies = {r["study_id"]: {**r, "rob_overall": study_judgement(sheets.risk_of_bias, r, settings["outcome"])["level"]}
               for r in sheets.studies}  # fmt: skip
    data = build_network_data(settings, arms, contrasts, studies, config)
    outcome = config["outcomes"][settings["outcome"]]
    hib = outcome.get("higher_is_better", False)  # None: direction unknown (no ranking, neutral wording)
    hib = None if hib is None else bool(hib)
    rules = dict(cinema.DEFAULT_RULES)
    cert = config.get("certainty") or {}
    for key in ("not_assessed_counts_as_risk", "publication_bias_p", "publication_bias_min_k"):
        if key in cert:
            rules[key] = cert[key]
    rules.update(config.get("network_confidence") or {})
    target = (config.get("target") or {}).get("regions")
    mid, mid_source = _mid(settings, config, data)
    parts = components(data.blocks, data.nodes)
    info = {b.study_id: b.info for b in data.blocks}
    out_parts = []
    for i, part in enumerate(parts):
        blocks = [b for b in data.blocks if b.nodes[0] in part]
        ref = settings["reference"] if settings["reference"] in part else part[0]
        fit = fit_network(blocks, part, reference=ref, method=settings["method"], level=settings["level"],
                          higher_is_better=hib)  # fmt: skip
        pairs = []
        for p in fit.pairs:
            k_direct = p.direct_k
            egger = _egger_p(blocks, p.treatment, p.comparator) if k_direct >= rules["publication_bias_min_k"] else None
            rating = cinema.rate_comparison(p, fit, info, rules, mid, target, egger, k_direct)
            pairs.append({
                "treatment": p.treatment, "comparator": p.comparator, "estimate": _f(p.estimate), "se": _f(p.se),
                "ci_low": _f(p.ci_low), "ci_high": _f(p.ci_high), "pi_low": _f(p.pi_low), "pi_high": _f(p.pi_high),
                "direct_estimate": _f(p.direct_estimate), "direct_se": _f(p.direct_se), "direct_k": k_direct,
                "indirect_estimate": _f(p.indirect_estimate), "indirect_se": _f(p.indirect_se),
                "split_pvalue": _f(p.split_pvalue), "prop_direct": _f(p.prop_direct),
                "contribution": {s: _f(c) for s, c in sorted(p.contribution.items())},
                "confidence": rating["confidence"], "confidence_reasons": rating["reasons"], "domains": rating["domains"],
            })  # fmt: skip
        n_part = {}
        edges: dict[str, int] = {}
        for b in blocks:
            for nd in b.nodes:
                n_part[nd] = n_part.get(nd, 0.0) + float(b.n.get(nd) or 0.0)
            for x in range(len(b.nodes)):
                for y in range(x + 1, len(b.nodes)):
                    key = f"{b.nodes[x]}\t{b.nodes[y]}"
                    edges[key] = edges.get(key, 0) + 1
        out_parts.append({
            "part": i + 1, "treatments": part, "reference": ref, "k": fit.k, "n_designs": fit.n_designs,
            "tau2": _f(fit.tau2), "i2": _f(fit.i2), "q": _f(fit.q), "q_df": fit.q_df, "q_pvalue": _f(fit.q_pvalue),
            "q_within": _f(fit.q_within), "q_within_df": fit.q_within_df, "q_within_pvalue": _f(fit.q_within_pvalue),
            "q_between": _f(fit.q_between), "q_between_df": fit.q_between_df,
            "q_between_pvalue": _f(fit.q_between_pvalue), "tau2_within": _f(fit.tau2_within),
            "q_between_random": _f(fit.q_between_random), "q_between_random_pvalue": _f(fit.q_between_random_pvalue),
            "converged": fit.fit.converged, "notes": fit.notes,
            "p_scores": {t: _f(v) for t, v in fit.p_scores.items()},
            "participants": n_part, "edges": [{"a": k.split("\t")[0], "b": k.split("\t")[1], "k": v} for k, v in edges.items()],
            "pairs": pairs,
        })  # fmt: skip
    return {
        "network_id": settings["id"], "title": settings["title"], "outcome": settings["outcome"],
        "outcome_label": outcome.get("label", settings["outcome"]), "higher_is_better": hib,
        "measure": settings["measure"], "method": settings["method"], "level": settings["level"],
        "timepoint_weeks": list(settings["timepoint_weeks"]), "nodes": data.nodes, "reference": settings["reference"],
        "node_codes": [{"node": nd, "codes": list(settings["nodes"][nd])} for nd in settings["node_order"]],
        "mid": _f(mid), "mid_source": mid_source,
        "representative_sd": _f(representative_sd(data)) if settings["measure"] == "SMD" else None,
        "reference_scale": outcome.get("reference_scale"),
        "nodes_without_studies": [nd for nd in data.nodes if not any(nd in p for p in parts)],
        "unassigned_codes": data.unassigned_codes, "excluded": data.excluded, "flow": data.flow,
        "studies": [{"study_id": b.study_id, "label": b.info.get("label", b.study_id), "nodes": b.nodes,
                     "n": b.n, "source": b.info.get("source"), "timepoint_weeks": b.info.get("timepoint_weeks"),
                     "instrument": b.info.get("instrument"), "rob_overall": b.info.get("rob_overall"),
                     "region": b.info.get("region"), "notes": b.info.get("notes", []),
                     "arms": b.info.get("arms"), "contrast": b.info.get("contrast"),
                     "part": next(i + 1 for i, p in enumerate(parts) if b.nodes[0] in p)} for b in data.blocks],
        "parts": out_parts,
        "confidence_rules": rules,
    }  # fmt: skip


def part_id(result: dict, part: dict) -> str:
    """``network_id``, or ``network_id.partN`` when the network has several connected parts."""
    return result["network_id"] if len(result["parts"]) == 1 else f"{result['network_id']}.part{part['part']}"


def network_tables(results: list[dict]) -> dict[str, list[dict]]:
    """Rows of the three network CSVs (results in the order given, pairs in node order)."""
    est, fits, ranks = [], [], []
    for r in results:
        for part in r["parts"]:
            nid = part_id(r, part)
            for p in part["pairs"]:
                est.append({"network_id": nid, **{c: p.get(c) for c in ESTIMATE_COLUMNS[1:]}})
            fits.append({"network_id": nid, "method": r["method"], "n_treatments": len(part["treatments"]),
                         **{c: part.get(c) for c in FIT_COLUMNS if c not in ("network_id", "method", "n_treatments")}})  # fmt: skip
            for t in part["treatments"]:
                ranks.append({"network_id": nid, "treatment": t, "p_score": part["p_scores"][t]})
    return {"estimates": est, "fit": fits, "ranks": ranks}
