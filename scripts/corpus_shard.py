"""Snakemake script: pool one shard of the corpus (python -m tpsynth bench-corpus --shard I --shards N)."""

from tpsynth.corpus import bench_corpus, parse_scatteritem
from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    shard, shards = parse_scatteritem(snakemake.wildcards.scatteritem)
    out = snakemake.output
    bench_corpus(snakemake.input[0], out.pooled, out.skipped, shard=shard, shards=shards)
