"""Snakemake script: run one configured analysis on its evidence slice and write its JSON result."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_one_analysis

with job_log(snakemake.log[0]):
    res = run_one_analysis(snakemake.input.evidence, snakemake.output.json)
    p = res["pooled"]
    print(f"{res['analysis_id']}: k = {p['k']}, estimate = {p.get('estimate')}", file=sys.stderr)
