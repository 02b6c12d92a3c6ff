"""Snakemake script: render results/report.html from the analyses, tables, sheets and figures."""

import os
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.report import build_report  # noqa: E402

inp = snakemake.input
ids = list(snakemake.params.analysis_ids)
figures = {"summary": inp.summary}
figures.update({f"forest_{a}": p for a, p in zip(ids, inp.forest, strict=True)})
figures.update({f"funnel_{a}": p for a, p in zip(ids, inp.funnel, strict=True)})
nets = list(snakemake.params.network_ids)
for kind in ("network_graph", "network_forest", "league"):
    figures.update({f"{kind}_{n}": p for n, p in zip(nets, inp[kind], strict=True)})

html = build_report(
    analysis_paths=list(inp.analyses),
    config=snakemake.config,
    sheet_paths=dict(snakemake.params.sheets),
    config_paths=list(inp.configfiles),
    dataflow_path=inp.dataflow,
    arms_path=inp.arms,
    pooled_path=inp.pooled,
    figure_paths=figures,
    basedir=str(Path(snakemake.scriptdir).parent),  # the workflow's directory (git commit, date)
    source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"),
    network_paths=list(inp.networks),
)
with open(snakemake.output[0], "w", encoding="utf-8", newline="\n") as f:
    f.write(html)
