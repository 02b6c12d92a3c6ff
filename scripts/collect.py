"""Snakemake script: assemble result tables and the final data flow from per-analysis JSON."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

from tpsynth.pipeline import job_log, run_collect

with job_log(snakemake.log[0]):
    run_collect(list(snakemake.input.analyses), snakemake.input.evidence, dict(snakemake.output.items()),
                list(snakemake.input.networks))
