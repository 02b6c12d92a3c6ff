"""Snakemake script: run one configured network meta-analysis on its evidence slice and write its JSON."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_one_network

with job_log(snakemake.log[0]):
    res = run_one_network(snakemake.input.evidence, snakemake.output.json)
    for part in res["parts"]:
        print(f"{res['network_id']} part {part['part']}: k = {part['k']}, treatments = {len(part['treatments'])}, "
              f"tau2 = {part['tau2']}", file=sys.stderr)  # fmt: skip
    print(f"codes in no node: {', '.join(res['unassigned_codes']) or 'none'}", file=sys.stderr)
