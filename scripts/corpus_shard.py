"""Snakemake script: pool one shard of the corpus (python -m tpsynth bench-corpus --shard I --shards N)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.corpus import bench_corpus, parse_scatteritem  # noqa: E402

shard, shards = parse_scatteritem(snakemake.wildcards.scatteritem)
bench_corpus(snakemake.input[0], snakemake.output.pooled, snakemake.output.skipped, shard=shard, shards=shards)
