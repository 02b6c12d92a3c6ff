"""Snakemake script: run one configured network meta-analysis and write its JSON result."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.pipeline import run_one_network  # noqa: E402

res = run_one_network(snakemake.config, snakemake.wildcards.network_id, snakemake.output.json)
for part in res["parts"]:
    print(f"{res['network_id']} part {part['part']}: k = {part['k']}, treatments = {len(part['treatments'])}, "
          f"tau2 = {part['tau2']}", file=sys.stderr)  # fmt: skip
print(f"codes in no node: {', '.join(res['unassigned_codes']) or 'none'}", file=sys.stderr)
