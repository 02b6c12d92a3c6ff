"""Snakemake script: rebuild one evidence slice (of an analysis or a network, deleted by hand) from evidence.json."""

from pathlib import Path

from tpsynth.pipeline import job_log, read_evidence, write_network_slices, write_slices

with job_log(snakemake.log[0]):
    evidence = read_evidence(snakemake.input[0], tables=("studies", "outcomes", "contrasts", "arms", "risk_of_bias"))
    out_dir = Path(snakemake.output[0]).parent
    wc = snakemake.wildcards
    if "network_id" in wc.keys():
        write_network_slices(snakemake.config, evidence, out_dir, only=[wc.network_id])
    else:
        write_slices(snakemake.config, evidence, out_dir, only=[wc.analysis_id])
