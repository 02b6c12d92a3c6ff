"""Snakemake script: concatenate the corpus shards, in shard order, into results/corpus/."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.corpus import gather, parse_scatteritem  # noqa: E402


def in_shard_order(files):
    return sorted(files, key=lambda f: parse_scatteritem(Path(f).name.split(".")[0]))


n = gather(in_shard_order(snakemake.input.pooled), snakemake.output.pooled)
m = gather(in_shard_order(snakemake.input.skipped), snakemake.output.skipped)
print(f"{len(snakemake.input.pooled)} shards: {n} pooled analyses, {m} skipped", file=sys.stderr)
