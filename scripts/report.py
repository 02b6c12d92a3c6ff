"""Snakemake script: render results/report.html from the evidence, analyses, tables and figures."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import os
from pathlib import Path

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    from tpsynth.report import build_report
    from tpsynth.tables import write_text

    inp = snakemake.input
    ids = list(snakemake.params.analysis_ids)
    figures = {"summary": inp.summary}
    figures.update({f"forest_{a}": p for a, p in zip(ids, inp.forest, strict=True)})
    figures.update({f"funnel_{a}": p for a, p in zip(ids, inp.funnel, strict=True)})
    # bubble plots: results/figures/bubble_{id}/{moderator}.svg -> "bubble_{id}/{moderator}"
    for a, folder in zip(snakemake.params.moderated_ids, inp.bubble, strict=True):
        figures.update({f"bubble_{a}/{p.stem}": str(p) for p in sorted(Path(folder).glob("*.svg"))})
    nets = list(snakemake.params.network_ids)
    for kind in ("network_graph", "network_forest", "league"):
        figures.update({f"{kind}_{n}": p for n, p in zip(nets, inp[kind], strict=True)})
    if "prisma" in inp.keys():
        figures["prisma"] = inp.prisma
    if "rob_traffic_light" in inp.keys():
        figures["rob_traffic_light"] = inp.rob_traffic_light
        figures["rob_summary"] = inp.rob_summary
        figures.update({f"rob_summary_{a}": p for a, p in zip(ids, inp.rob_weighted, strict=True)})

    html = build_report(
        analysis_paths=list(inp.analyses),
        config=snakemake.config,
        evidence_path=inp.evidence,
        config_paths=list(inp.configfiles),
        dataflow_path=inp.dataflow,
        arms_path=inp.arms,
        pooled_path=inp.pooled,
        figure_paths=figures,
        basedir=str(Path(snakemake.scriptdir).parent),  # the workflow's directory (git commit, date)
        source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"),
        network_paths=list(inp.networks),
    )
    write_text(snakemake.output[0], html)
