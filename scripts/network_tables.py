"""Snakemake script: the network result tables (estimates, fit, ranks) from the per-network JSON files."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.pipeline import run_network_tables  # noqa: E402

run_network_tables(list(snakemake.input.networks), dict(snakemake.output.items()))
print(f"{len(snakemake.input.networks)} networks tabulated", file=sys.stderr)
