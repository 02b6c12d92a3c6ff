"""Snakemake script: run one configured analysis on its evidence slice, write its JSON result, then draw its
forest and funnel plots (PNG, SVG and PDF each) from that result."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys

from tpsynth.pipeline import job_log, run_one_analysis

with job_log(snakemake.log[0]):
    out = snakemake.output
    res = run_one_analysis(snakemake.input.evidence, out.json)
    print(f"{res.analysis_id}: k = {res.pooled.k}, estimate = {res.pooled.estimate}", file=sys.stderr)

    from tpsynth.figures.common import save_all
    from tpsynth.figures.forest import forest_figure
    from tpsynth.figures.funnel import funnel_figure
    from tpsynth.results import AnalysisResult

    analysis = AnalysisResult.from_json(out.json)  # the figures are drawn from the result as written, as any reader sees it
    for build, key in ((forest_figure, "forest"), (funnel_figure, "funnel")):
        written = save_all(build(analysis), out[f"{key}_png"][: -len(".png")])
        assert {str(f) for f in written} == {out[f"{key}_{fmt}"] for fmt in ("png", "svg", "pdf")}, written
