"""Snakemake script: the forest and funnel plots of one analysis (PNG, SVG and PDF each)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

import sys
import time

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    t0 = time.perf_counter()
    from tpsynth.figures.common import save_all
    from tpsynth.figures.forest import forest_figure
    from tpsynth.figures.funnel import funnel_figure
    from tpsynth.tables import read_json

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
