"""Snakemake script: concatenate the corpus shards, in shard order, into results/corpus/."""

import sys
from pathlib import Path

from tpsynth.corpus import gather, parse_scatteritem
from tpsynth.pipeline import job_log


def in_shard_order(files):
    return sorted(files, key=lambda f: parse_scatteritem(Path(f).name.split(".")[0]))


with job_log(snakemake.log[0]):
    n = gather(in_shard_order(snakemake.input.pooled), snakemake.output.pooled)
    m = gather(in_shard_order(snakemake.input.skipped), snakemake.output.skipped)
    print(f"{len(snakemake.input.pooled)} shards: {n} pooled analyses, {m} skipped", file=sys.stderr)
