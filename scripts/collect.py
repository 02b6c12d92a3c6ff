"""Snakemake script: assemble result tables and the final data flow from per-analysis JSON."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.pipeline import run_collect  # noqa: E402

run_collect(list(snakemake.input.analyses), snakemake.input.flow, dict(snakemake.output.items()))
