# Corpus re-analysis (python -m tpsynth bench-corpus, sharded): target `corpus`, never part of `all`.
# Shard i of n pools the contiguous block i of the corpus's analyses (sorted by review, analysis group,
# analysis number); the gather rule concatenates the shards in shard order, so the result is
# byte-identical for any shard count. Each job reads only its declared input and writes only its
# declared outputs, so the shards can run on different cluster nodes (workflow/profiles/slurm).
# A missing corpus file only matters when `corpus` is requested (Snakemake then reports the missing input).

CORPUS_PATH = (config.get("corpus") or {}).get("path", "../shared/data/pairwise70/pairwise70.csv.gz")


rule corpus_shard:
    input:
        CORPUS_PATH,
    output:
        pooled="results/corpus/shards/{scatteritem}.csv",
        skipped="results/corpus/shards/{scatteritem}.skipped.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/corpus/{scatteritem}.log",
    wildcard_constraints:
        scatteritem=r"\d+-of-\d+",
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../../scripts/corpus_shard.py"


rule corpus:
    input:
        pooled=gather.corpus("results/corpus/shards/{scatteritem}.csv"),
        skipped=gather.corpus("results/corpus/shards/{scatteritem}.skipped.csv"),
    output:
        pooled="results/corpus/pooled.csv",
        skipped="results/corpus/skipped.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/corpus/gather.log",
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/corpus_gather.py"
