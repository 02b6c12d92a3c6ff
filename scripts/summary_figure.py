"""Snakemake script: the summary figure of every analysis (PNG, SVG and PDF)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.figures.common import save_all
from tpsynth.figures.summary import summary_figure
from tpsynth.pipeline import job_log
from tpsynth.results import AnalysisResult

with job_log(snakemake.log[0]):
    analyses = [AnalysisResult.from_json(p) for p in snakemake.input.analyses]
    stem = snakemake.output.png[: -len(".png")]
    written = save_all(summary_figure(analyses), stem)
    print(f"summary of {len(analyses)} analyses: {', '.join(map(str, written))}", file=sys.stderr)
