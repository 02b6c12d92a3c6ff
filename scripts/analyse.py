"""Snakemake script: run one configured analysis and write its JSON result."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.pipeline import run_one_analysis  # noqa: E402

res = run_one_analysis(snakemake.config, snakemake.wildcards.analysis_id, snakemake.output.json)
p = res["pooled"]
print(f"{res['analysis_id']}: k = {p['k']}, estimate = {p.get('estimate')}", file=sys.stderr)
