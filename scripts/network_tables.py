"""Snakemake script: the network result tables (estimates, fit, ranks) from the per-network JSON files."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_network_tables

with job_log(snakemake.log[0]):
    run_network_tables(list(snakemake.input.networks), dict(snakemake.output.items()))
    print(f"{len(snakemake.input.networks)} networks tabulated", file=sys.stderr)
