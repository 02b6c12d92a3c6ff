"""Snakemake script: the forest and funnel plots of one analysis (PNG, SVG and PDF each)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

import time  # noqa: E402

t0 = time.perf_counter()
from tpsynth.figures.common import save_all  # noqa: E402
from tpsynth.figures.forest import forest_figure  # noqa: E402
from tpsynth.figures.funnel import funnel_figure  # noqa: E402
from tpsynth.tables import read_json  # noqa: E402

t1 = time.perf_counter()
analysis = read_json(snakemake.input.json)
out = snakemake.output
for build, key in ((forest_figure, "forest"), (funnel_figure, "funnel")):
    stem = out[f"{key}_png"][: -len(".png")]
    written = save_all(build(analysis), stem)
    expected = {out[f"{key}_{fmt}"] for fmt in ("png", "svg", "pdf")}
    assert {str(p) for p in written} == expected, (written, expected)
t2 = time.perf_counter()
print(f"{analysis['analysis_id']}: imports {t1 - t0:.2f} s, figures {t2 - t1:.2f} s", file=sys.stderr)
