"""Snakemake script: the PRISMA 2020 flow diagram (PNG, SVG and PDF)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    from tpsynth.figures.common import save_all
    from tpsynth.figures.prisma import prisma_figure
    from tpsynth.pipeline import read_evidence
    from tpsynth.prisma import Flow

    flow = Flow(**read_evidence(snakemake.input.evidence, tables=())["prisma"])  # derived and checked at ingest
    written = save_all(prisma_figure(flow, "PRISMA 2020 flow diagram"), snakemake.output.png[: -len(".png")])
    included = flow.counts.get("total_studies") or flow.counts.get("new_studies")
    print(f"{len(written)} files written; included studies: {included}", file=sys.stderr)
