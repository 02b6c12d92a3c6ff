"""Snakemake script: validate the sheets and write harmonised arms and the ingest data flow."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.pipeline import run_ingest  # noqa: E402
from tpsynth.validate import SheetValidationError  # noqa: E402

try:
    n_arms, n_rows = run_ingest(snakemake.config, snakemake.output.arms, snakemake.output.flow)
except SheetValidationError as err:
    print(err, file=sys.stderr)
    sys.exit(1)
print(f"{n_rows} raw rows read; {n_arms} analysable arms written", file=sys.stderr)
