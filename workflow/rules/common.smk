# Shared helpers for the rules.
EVIDENCE = "data/processed/evidence.json"
SLICE_DIR = "data/processed/slices"
NETWORK_SLICE_DIR = "data/processed/slices/networks"


def analysis_evidence(wildcards):
    """The evidence slice of one analysis, known once the ingest checkpoint has run.

    ingest rewrites a slice only when its content changes, so its modification time alone says whether
    the analysis must rerun; after the checkpoint, Snakemake re-evaluates each analysis on the slice files.
    """
    checkpoints.ingest.get()
    return f"{SLICE_DIR}/{wildcards.analysis_id}.json"


def network_evidence(wildcards):
    """The evidence slice of one network (every row; see evidence_slice)."""
    checkpoints.ingest.get()
    return f"{NETWORK_SLICE_DIR}/{wildcards.network_id}.json"


def after_ingest(pattern, **expand_kw):
    """An input function giving ``pattern`` (formatted with the wildcards, or expanded with ``expand_kw``)
    once the ingest checkpoint has run, so that Snakemake decides whether this job reruns only after it
    knows which analyses reran (otherwise every job downstream of ingest would be scheduled)."""

    def inputs(wildcards):
        checkpoints.ingest.get()
        return expand(pattern, **expand_kw) if expand_kw else pattern.format(**wildcards)

    return inputs
