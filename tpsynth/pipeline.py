"""Glue between Snakemake and the package: what each rule computes, given paths.

Scripts in ``scripts/`` only unpack ``snakemake.input``/``output`` and call these functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import analysis_settings
from .validate import Sheets, load_sheets


def sheet_paths(config: dict) -> dict[str, str]:
    """The sheets named in the config (``contrasts`` only when given)."""
    data = config["data"]
    paths = {"studies": data["studies"], "outcomes": data["outcomes"]}
    if data.get("contrasts"):
        paths["contrasts"] = data["contrasts"]
    return paths


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


PACKAGE_DIR = Path(__file__).resolve().parent


PRESENTATION = ("figures", "report")  # subpackages that only present results


def package_files(part: str = "compute") -> list[str]:
    """Source files of the package, as rule inputs so that a code change reruns the rules using it.

    ``part`` is ``"compute"`` (everything but the presentation subpackages), ``"figures"`` or ``"report"``.
    """
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("*.j2"))
    rel = [(f, f.relative_to(PACKAGE_DIR).parts) for f in files]
    if part == "compute":
        return [str(f) for f, parts in rel if parts[0] not in PRESENTATION]
    return [str(f) for f, parts in rel if parts[0] == part]


def code_digest() -> str:
    """SHA-256 of the computing code: part of every analysis digest, so results never go stale."""
    h = hashlib.sha256()
    for f in package_files():
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def analysis_digest(config: dict, sheets: Sheets, analysis_id: str, code: str = "") -> str:
    """SHA-256 of everything one analysis reads: its settings, its outcome's definition and the
    sheet rows of its outcome with their studies.

    Used as a Snakemake ``params`` value so that editing one study reruns only the analyses
    that read that study's rows.
    """
    a = analysis_settings(config, analysis_id)
    rows = [_public(r) for r in sheets.outcomes if r["outcome"] == a["outcome"]]
    cons = [_public(r) for r in sheets.contrasts if r["outcome"] == a["outcome"]]
    ids = {r["study_id"] for r in rows + cons}
    studies = [_public(s) for s in sheets.studies if s["study_id"] in ids]
    codes = {c: config["interventions"][c] for c in a["intervention"] + a["comparator"]}
    payload = {
        "settings": a,
        "outcome": config["outcomes"][a["outcome"]],
        "codes": codes,
        "outcomes": rows,
        "contrasts": cons,
        "studies": studies,
        "code": code,
        "certainty": config.get("certainty"),
        "target": config.get("target"),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_ingest(config: dict, arms_path: str, flow_path: str) -> tuple[int, int]:
    """Validate and harmonise; write arms.csv and the ingest-stage data flow."""
    from .harmonise import ARM_COLUMNS, harmonise
    from .tables import FLOW_COLUMNS, write_csv

    sheets = load_sheets(config)
    arms, flow = harmonise(sheets)
    write_csv(arms_path, ARM_COLUMNS, arms)
    write_csv(flow_path, FLOW_COLUMNS[:-1], flow)
    return len(arms), len(flow)


def run_one_analysis(config: dict, analysis_id: str, out_path: str) -> dict:
    """Run one analysis from the raw sheets and write its JSON."""
    from .analysis import run_analysis
    from .tables import write_json

    sheets = load_sheets(config)
    res = run_analysis(analysis_settings(config, analysis_id), sheets, config)
    write_json(out_path, res)
    return res


def run_collect(analysis_jsons: list[str], ingest_flow_csv: str, outputs: dict[str, str]) -> None:
    """Assemble the result tables and the final data flow from the per-analysis JSON files."""
    from . import tables

    results = [tables.read_json(p) for p in analysis_jsons]
    t = tables.result_tables(results)
    tables.write_csv(outputs["pooled"], tables.POOLED_COLUMNS, t["pooled"])
    tables.write_csv(outputs["study_effects"], tables.STUDY_COLUMNS, t["study_effects"])
    tables.write_csv(outputs["subgroups"], tables.SUBGROUP_COLUMNS, t["subgroups"])
    tables.write_csv(outputs["sensitivity"], tables.SENSITIVITY_COLUMNS, t["sensitivity"])
    tables.write_csv(outputs["small_study"], tables.SMALL_STUDY_COLUMNS, t["small_study"])
    tables.write_csv(outputs["bayes"], tables.BAYES_COLUMNS, t["bayes"])
    tables.write_csv(outputs["bayes_sensitivity"], tables.BAYES_SENSITIVITY_COLUMNS, t["bayes_sensitivity"])
    tables.write_csv(outputs["bayes_studies"], tables.BAYES_STUDY_COLUMNS, t["bayes_studies"])
    tables.write_csv(outputs["effects"], tables.EFFECT_COLUMNS, t["effects"])
    flow = tables.read_csv(ingest_flow_csv)
    tables.write_csv(outputs["dataflow"], tables.FLOW_COLUMNS, tables.dataflow_rows(flow, results))


def network_digest(config: dict, network_id: str, code: str = "") -> str:
    """SHA-256 of the config a network reads (its settings, outcome, codes, rating rules) and the code.

    The sheets are ordinary rule inputs of a network job, so any sheet edit reruns the networks.
    """
    from .network_analysis import network_settings

    n = network_settings(config, network_id)
    payload = {
        "settings": n,
        "outcome": config["outcomes"].get(n["outcome"]),
        "codes": {c: config["interventions"].get(c) for codes in n["nodes"].values() for c in codes},
        "certainty": config.get("certainty"),
        "target": config.get("target"),
        "network_confidence": config.get("network_confidence"),
        "code": code,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_one_network(config: dict, network_id: str, out_path: str) -> dict:
    """Run one configured network from the raw sheets and write its JSON."""
    from .network_analysis import network_settings, run_network
    from .tables import write_json

    res = run_network(network_settings(config, network_id), load_sheets(config), config)
    write_json(out_path, res)
    return res


def run_network_tables(network_jsons: list[str], outputs: dict[str, str]) -> None:
    """network_estimates.csv, network_fit.csv and network_ranks.csv from the per-network JSON files."""
    from . import network_analysis as na
    from .tables import read_json, write_csv

    t = na.network_tables([read_json(p) for p in network_jsons])
    write_csv(outputs["estimates"], na.ESTIMATE_COLUMNS, t["estimates"])
    write_csv(outputs["fit"], na.FIT_COLUMNS, t["fit"])
    write_csv(outputs["ranks"], na.RANK_COLUMNS, t["ranks"])
