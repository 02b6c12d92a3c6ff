"""Snakemake script: the graph, forest plot and league table of one network (PNG, SVG and PDF each)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")  # noqa: SIM115
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # tpsynth, also inside a bare conda env

from tpsynth.figures.common import save_all  # noqa: E402
from tpsynth.figures.network import league_figure, network_forest_figure, network_graph_figure  # noqa: E402
from tpsynth.tables import read_json  # noqa: E402

result = read_json(snakemake.input.json)
out = snakemake.output
for build, key in ((network_graph_figure, "graph"), (network_forest_figure, "forest"), (league_figure, "league")):
    written = save_all(build(result), out[f"{key}_png"][: -len(".png")])
    assert {str(p) for p in written} == {out[f"{key}_{fmt}"] for fmt in ("png", "svg", "pdf")}, written
print(f"{result['network_id']}: figures written", file=sys.stderr)
