"""Snakemake script: the summary figure of every analysis (PNG, SVG and PDF)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.figures.common import save_all  # noqa: E402
from tpsynth.figures.summary import summary_figure  # noqa: E402
from tpsynth.tables import read_json  # noqa: E402

analyses = [read_json(p) for p in snakemake.input.analyses]
stem = snakemake.output.png[: -len(".png")]
written = save_all(summary_figure(analyses), stem)
print(f"summary of {len(analyses)} analyses: {', '.join(map(str, written))}", file=sys.stderr)
