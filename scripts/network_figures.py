"""Snakemake script: the graph, forest plot and league table of one network (PNG, SVG and PDF each)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    from tpsynth.figures.common import save_all
    from tpsynth.figures.network import league_figure, network_forest_figure, network_graph_figure
    from tpsynth.tables import read_json

    result = read_json(snakemake.input.json)
    out = snakemake.output
    for build, key in ((network_graph_figure, "graph"), (network_forest_figure, "forest"), (league_figure, "league")):
        written = save_all(build(result), out[f"{key}_png"][: -len(".png")])
        assert {str(p) for p in written} == {out[f"{key}_{fmt}"] for fmt in ("png", "svg", "pdf")}, written
    print(f"{result['network_id']}: figures written", file=sys.stderr)
