"""Select each study's arms for a network from the harmonised arms and reported contrasts.

The rules follow the pairwise analyses (:mod:`tpsynth.study_effects`, config/README.md):

* Arms: the network's ``outcome``; an arm belongs to the node whose code list holds its intervention
  code. Codes in no node are left out and listed (:attr:`NetworkData.unassigned_codes`).
* Timepoint: among the timepoints inside ``timepoint_weeks`` at which the study has arms of at least
  two nodes, the latest (``timepoint_rule: latest``) or earliest; final values before change from
  baseline, then sheet order for the instrument.
* Arms of one node in one study are combined (Cochrane Handbook Table 6.5.a), so no participant
  counts twice; the study then enters with all its node contrasts against its first node.
* MD rescales every instrument to the outcome's ``reference_scale`` (a study whose scale is unknown
  is left out with the reason); an instrument whose direction differs from the outcome's is flipped.
* A study without usable arm data may enter through a ``contrasts.csv`` row between two nodes
  (two-arm comparison; generic inverse variance, as in the pairwise analyses).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .measures import DICHOTOMOUS_MEASURES
from .network import StudyBlock, block_from_arms, block_from_contrast
from .study_effects import _combine_side, _contrast_effect, _transform, opposite_direction
from .validate import Reason

__all__ = ["NetworkData", "build_network_data", "node_of"]


@dataclass
class NetworkData:
    """A network's studies and what was left out."""

    blocks: list[StudyBlock]
    nodes: list[str]
    excluded: list[dict] = field(default_factory=list)  # {"study_id", "reason"}
    unassigned_codes: list[str] = field(default_factory=list)
    flow: list[dict] = field(default_factory=list)  # {"sheet", "line", "state", "reason"}


def node_of(network: dict) -> dict[str, str]:
    """intervention code -> node name."""
    return {code: node for node, codes in network["nodes"].items() for code in codes}


def _arm_options(rows, node):
    options = []
    for idx, a in enumerate(rows):
        key = (a["timepoint_weeks"], a["instrument"], a["value_type"])
        if key in [o[0] for o in options]:
            continue
        sel = [b for b in rows if (b["timepoint_weeks"], b["instrument"], b["value_type"]) == key]
        if len({node[b["intervention"]] for b in sel}) >= 2:
            options.append((key, idx, sel))
    return options


def _block_from_arm_rows(sid, sel, order, node, measure, outcome_cfg, info):
    dichotomous = measure in DICHOTOMOUS_MEASURES
    nodes = [n for n in order if any(node[a["intervention"]] == n for a in sel)]
    a0 = sel[0]
    factor, sign, notes = 1.0, 1.0, []
    if not dichotomous:
        factor, note, refusal = _transform(a0, outcome_cfg, measure)
        if refusal:
            return None, refusal
        if note:
            notes.append(note)
        if opposite_direction(a0, outcome_cfg):
            sign = -1.0
            notes.append(f"sign flipped: {a0['instrument']} has the opposite direction to the outcome")
    arms, sd_ref = [], []
    ref = outcome_cfg.get("reference_scale")
    for a in sel:
        if not dichotomous and ref is not None and a.get("scale_min") is not None and a.get("scale_max") is not None:
            sd_ref.append(a["sd"] * (ref[1] - ref[0]) / (a["scale_max"] - a["scale_min"]))
    for nd in nodes:
        side = _combine_side([a for a in sel if node[a["intervention"]] == nd], dichotomous)
        if not dichotomous:
            side = {"n": side["n"], "mean": sign * factor * side["mean"], "sd": factor * side["sd"]}
        arms.append(side)
        if sum(node[a["intervention"]] == nd for a in sel) > 1:
            notes.append(f"arms of node {nd} combined (Handbook Table 6.5.a)")
    if not dichotomous and any(not a["sd"] or a["sd"] <= 0 or a["n"] <= 1 for a in arms):
        return None, Reason("an arm has no positive SD or fewer than two participants", "sd")
    info = dict(info, source="arms", timepoint_weeks=a0["timepoint_weeks"], instrument=a0["instrument"],
                notes=notes, sd_ref=sd_ref, arms=dict(zip(nodes, arms, strict=True)), derived=any(a.get("derived") for a in sel),
                low_confidence=any((a.get("extraction_confidence") or "").lower() == "low" for a in sel))  # fmt: skip
    block = block_from_arms(sid, nodes, arms, measure, info)
    if block is None:
        return None, Reason("no events (or only events) in every arm: left out (metafor drop00=TRUE)", "events")
    return block, None


def build_network_data(network: dict, arms: list[dict], contrasts: list[dict], studies: dict[str, dict],
                       config: dict) -> NetworkData:
    """Studies of one network (``network``: a ``networks:`` entry with defaults filled).

    Parameters
    ----------
    network : dict
        ``outcome``, ``timepoint_weeks``, ``measure``, ``nodes``, ``timepoint_rule``, ``randomised_only``.
    arms : list of dict
        Harmonised arms (:func:`tpsynth.harmonise.harmonise`).
    contrasts : list of dict
        Usable rows of contrasts.csv.
    studies : dict
        study_id -> studies.csv row.
    config : dict
        The validated config (outcomes).
    """
    outcome = network["outcome"]
    outcome_cfg = config["outcomes"][outcome]
    measure = network["measure"]
    dichotomous = measure in DICHOTOMOUS_MEASURES
    lo_w, hi_w = network["timepoint_weeks"]
    order = list(network.get("node_order") or network["nodes"])
    node = node_of(network)
    flow: list[dict] = []

    def note(sheet, line, state, reason=""):
        flow.append({"sheet": sheet, "line": line, "state": state, "reason": reason})

    unassigned = set()
    cand: dict[str, list[dict]] = {}
    for a in arms:
        if a["outcome"] != outcome:
            continue
        if a["intervention"] not in node:
            unassigned.add(a["intervention"])
            note("outcomes", a["line"], "not_used", f"intervention {a['intervention']} is in no node of the network")
            continue
        if not lo_w <= a["timepoint_weeks"] <= hi_w:
            note("outcomes", a["line"], "not_used", f"timepoint {a['timepoint_weeks']:g} weeks outside {lo_w:g}-{hi_w:g}")
            continue
        if dichotomous != (a["events"] is not None):
            kind = "events" if a["events"] is not None else "means"
            note("outcomes", a["line"], "not_used",
                 Reason(f"row holds {kind}; the network pools {measure}", "events" if kind == "events" else "mean"))
            continue
        cand.setdefault(a["study_id"], []).append(a)
    cand_con: dict[str, list[dict]] = {}
    for r in contrasts:
        if r["outcome"] != outcome:
            continue
        missing = [c for c in (r["intervention"], r["comparator"]) if c not in node]
        if missing:
            unassigned.update(missing)
            note("contrasts", r["_line"], "not_used", f"intervention {', '.join(missing)} is in no node of the network")
            continue
        if node[r["intervention"]] == node[r["comparator"]]:
            note("contrasts", r["_line"], "not_used", "both sides are in the same node")
            continue
        if not lo_w <= r["timepoint_weeks"] <= hi_w:
            note("contrasts", r["_line"], "not_used", f"timepoint {r['timepoint_weeks']:g} weeks outside {lo_w:g}-{hi_w:g}")
            continue
        cand_con.setdefault(r["study_id"], []).append(r)

    blocks, excluded = [], []
    latest = network.get("timepoint_rule", "latest") == "latest"
    for sid in [s for s in studies if s in cand or s in cand_con]:
        study = studies[sid]
        rows, cons = cand.get(sid, []), cand_con.get(sid, [])
        info = {"rob_overall": study.get("rob_overall"), "region": study.get("region"),
                "label": f"{study.get('author', sid)} {study.get('year', '')}".strip()}  # fmt: skip
        if network.get("randomised_only", True) and study.get("randomised") is False:
            why = Reason("non-randomised study; the network is randomised-only", "study_id")
            excluded.append({"study_id": sid, "reason": why})
            for a in rows:
                note("outcomes", a["line"], "not_used", why)
            for r in cons:
                note("contrasts", r["_line"], "not_used", why)
            continue
        options = _arm_options(rows, node)
        times = sorted({o[0][0] for o in options} | {r["timepoint_weeks"] for r in cons}, reverse=latest)
        chosen, used, why_all = None, set(), "arms of only one node in the time window"
        for t in times:
            at_t = sorted([o for o in options if o[0][0] == t], key=lambda o: (o[0][2] != "final", o[1]))
            for _key, _idx, sel in at_t:
                block, why = _block_from_arm_rows(sid, sel, order, node, measure, outcome_cfg, info)
                if block is not None:
                    chosen, used = block, {("outcomes", a["line"]) for a in sel}
                    break
                why_all = why
            if chosen is None:
                for r in [r for r in cons if r["timepoint_weeks"] == t]:
                    eff, why = _contrast_effect(r, {"measure": measure, "intervention": [r["intervention"]],
                                                    "comparator": [r["comparator"]]}, outcome_cfg, None)  # fmt: skip
                    if eff is None:
                        why_all = why
                        continue
                    ni, nc = node[r["intervention"]], node[r["comparator"]]
                    first, second = sorted((ni, nc), key=order.index)
                    est = eff.yi if second == ni else -eff.yi
                    n = {ni: r.get("n_intervention"), nc: r.get("n_comparator")}
                    chosen = block_from_contrast(sid, first, second, est, eff.vi,
                                                 n={k: float(v) for k, v in n.items() if v is not None},
                                                 info=dict(info, source="contrast", timepoint_weeks=t, notes=eff.notes,
                                                           contrast={"first": first, "second": second,
                                                                     "estimate": est, "variance": eff.vi},
                                                           instrument=eff.instrument, derived=True,
                                                           low_confidence=eff.low_confidence))  # fmt: skip
                    used = {("contrasts", r["_line"])}
                    break
            if chosen is not None:
                break
        for a in rows:
            note("outcomes", a["line"], *(("used", "") if ("outcomes", a["line"]) in used else
                                          ("not_used", why_all if chosen is None else "another timepoint, instrument or source used for this study")))  # fmt: skip
        for r in cons:
            note("contrasts", r["_line"], *(("used", "") if ("contrasts", r["_line"]) in used else
                                            ("not_used", why_all if chosen is None else "arm-level data or another timepoint used for this study")))  # fmt: skip
        if chosen is None:
            excluded.append({"study_id": sid, "reason": why_all})
        else:
            blocks.append(chosen)
    return NetworkData(blocks=blocks, nodes=order, excluded=excluded, unassigned_codes=sorted(unassigned), flow=flow)
