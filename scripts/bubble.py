"""Snakemake script: the meta-regression bubble plots of one analysis (PNG, SVG and PDF per continuous moderator)."""

from tpsynth.worker import hand_over

hand_over(globals())  # run in the pre-imported worker when one is running (tpsynth/worker.py)

from pathlib import Path

from tpsynth.pipeline import job_log

with job_log(snakemake.log[0]):
    from tpsynth.config import file_stem
    from tpsynth.figures.bubble import bubble_figure, bubbles
    from tpsynth.figures.common import save_all
    from tpsynth.results import AnalysisResult

    analysis = AnalysisResult.from_json(snakemake.input.json)
    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    for b in bubbles(analysis):
        save_all(bubble_figure(analysis, b.moderator), out / file_stem(b.moderator))
    mr = analysis.meta_regression
    if mr is not None and mr.caveat:
        print(f"{analysis.analysis_id}: {mr.caveat}")
    print(f"{analysis.analysis_id}: {len(bubbles(analysis))} bubble plot(s) in {out}")
