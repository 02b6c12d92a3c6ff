"""Snakemake script: risk-of-bias traffic-light and summary plots (PNG, SVG and PDF each)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys
from pathlib import Path

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    from tpsynth.figures.rob import write_rob_figures
    from tpsynth.pipeline import read_evidence
    from tpsynth.results import AnalysisResult

    ev = read_evidence(snakemake.input.evidence, tables=("studies", "risk_of_bias"))  # checked rows and the studies
    analyses = [AnalysisResult.from_json(p) for p in snakemake.input.analyses]
    out = snakemake.output
    ids = snakemake.params.analysis_ids
    stems = {a: str(Path(p).with_suffix("")) for a, p in zip(ids, out.weighted_png, strict=True)}
    written = write_rob_figures(
        ev.get("risk_of_bias") or [], {s["study_id"]: s for s in ev["studies"]}, analyses, snakemake.params.palette,
        out.traffic_png[: -len(".png")], out.summary_png[: -len(".png")], stems,
    )
    print(f"{len(written)} risk-of-bias figure files written", file=sys.stderr)
