"""Snakemake script: run one configured network meta-analysis on its evidence slice, write its JSON, then draw
its graph, forest plot and league table (PNG, SVG and PDF each) from that result."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_one_network

with job_log(snakemake.log[0]):
    out = snakemake.output
    res = run_one_network(snakemake.input.evidence, out.json)
    for part in res["parts"]:
        print(f"{res['network_id']} part {part['part']}: k = {part['k']}, treatments = {len(part['treatments'])}, "
              f"tau2 = {part['tau2']}", file=sys.stderr)  # fmt: skip
    print(f"codes in no node: {', '.join(res['unassigned_codes']) or 'none'}", file=sys.stderr)

    from tpsynth.figures.common import save_all
    from tpsynth.figures.network import league_figure, network_forest_figure, network_graph_figure
    from tpsynth.tables import read_json

    result = read_json(out.json)  # the figures are drawn from the result as written, as any reader sees it
    for build, key in ((network_graph_figure, "graph"), (network_forest_figure, "forest"), (league_figure, "league")):
        written = save_all(build(result), out[f"{key}_png"][: -len(".png")])
        assert {str(p) for p in written} == {out[f"{key}_{fmt}"] for fmt in ("png", "svg", "pdf")}, written
