"""Snakemake script: validate the sheets once; write evidence.json, arms.csv and the changed evidence slices."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_ingest

with job_log(snakemake.log[0]):
    out, params = snakemake.output, snakemake.params
    n_arms, n_rows, changed = run_ingest(
        snakemake.config, out.evidence, out.arms, params.slice_dir, params.network_slice_dir
    )
    print(f"{n_rows} raw rows read; {n_arms} analysable arms written", file=sys.stderr)
    print(f"evidence slices changed: {', '.join(changed) or 'none'}", file=sys.stderr)
