"""Benchmark of the whole pipeline against the cost of importing the scientific stack.

Prints, on this machine:
  * the import reference: one Python process importing pandas, scipy.stats, statsmodels.api and
    matplotlib.pyplot (median of 3);
  * a cold run (fresh working directory, nothing computed) of ``snakemake --cores 2``, and one without the
    pre-imported worker (``TPSYNTH_WORKER=0``: every job imports what it needs in its own process), with the
    CPU seconds of the whole run (Snakemake, its jobs and the worker);
  * a rerun with nothing changed;
  * a rerun after editing one study (which jobs rerun, and the time);
and the ratios to the import reference, measured side by side (before and after the runs, on the same
machine). Targets (issue 13): cold <= 4x, rerun <= 1x. Then where the time goes: CPU seconds per rule
(each job's log ends with its CPU and wall time, tpsynth.pipeline.job_log) and, in one process, the
cost of drawing each figure and writing it as PNG (200 dpi), SVG and PDF.

Usage: python benchmarks/pipeline.py [--workdir-source DIR] (default: this repository's shipped data).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, cwd=None, env=None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, proc


def children_cpu() -> float:
    """CPU seconds of every finished (and waited-for) descendant of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def import_reference(repeats: int = 3) -> float:
    code = "import pandas, scipy.stats, statsmodels.api, matplotlib.pyplot"
    return statistics.median(timed([sys.executable, "-c", code])[0] for _ in range(repeats))


def make_workdir(source: Path) -> Path:
    wd = Path(tempfile.mkdtemp(prefix="tpsynth-bench-"))
    shutil.copytree(source / "config", wd / "config")
    shutil.copytree(source / "data" / "raw", wd / "data" / "raw")
    return wd


def snakemake(wd: Path, *extra: str, worker: bool = True):
    """(wall seconds, process, CPU seconds of Snakemake, its jobs and the worker)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "2", *extra]
    env = {k: v for k, v in os.environ.items() if k != "TPSYNTH_WORKER"}
    if not worker:
        env["TPSYNTH_WORKER"] = "0"
    cpu0 = children_cpu()
    wall, proc = timed(cmd, env=env)
    return wall, proc, children_cpu() - cpu0


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs that ran, by rule (from "Finished jobid: N (Rule: NAME)"; the job stats printed first list
    every job downstream of the ingest checkpoint, before Snakemake knows which of them must rerun)."""
    counts: dict[str, int] = {}
    for name in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr):
        if name != "all":
            counts[name] = counts.get(name, 0) + 1
    return counts


def cpu_by_rule(wd: Path) -> dict[str, tuple[int, float, float]]:
    """(jobs, CPU s, wall s) per rule from the last line of each job log (written by job_log)."""
    out: dict[str, list] = {}
    for log in sorted((wd / "logs").rglob("*.log")):
        m = re.search(r"^job: ([\d.]+) s CPU, ([\d.]+) s wall", log.read_text(errors="replace"), flags=re.M)
        if m:
            rule = log.relative_to(wd / "logs").parts[0].removesuffix(".log")
            if rule == "figures":  # logs/figures/{summary,prisma,rob,bubble_ID}.log
                rule = {"summary": "summary_figure", "prisma": "prisma_figure", "rob": "rob_figures"}.get(
                    log.stem, "bubble")
            acc = out.setdefault(rule, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += float(m.group(1))
            acc[2] += float(m.group(2))
    return {k: tuple(v) for k, v in sorted(out.items(), key=lambda kv: -kv[1][1])}


def figure_costs(wd: Path) -> dict[str, float]:
    """Seconds to draw every analysis's forest and funnel plot and to write each format, in one process."""
    import io

    import matplotlib

    from tpsynth.figures.common import METADATA, PNG_COMPRESS_LEVEL, PNG_DPI, STYLE
    from tpsynth.figures.forest import forest_figure
    from tpsynth.figures.funnel import funnel_figure
    from tpsynth.results import AnalysisResult

    cost = {"draw (build the figure)": 0.0, "png": 0.0, "svg": 0.0, "pdf": 0.0}
    for path in sorted((wd / "results" / "analyses").glob("*.json")):
        analysis = AnalysisResult.from_json(path)
        for build in (forest_figure, funnel_figure):
            t0 = time.perf_counter()
            fig = build(analysis)
            cost["draw (build the figure)"] += time.perf_counter() - t0
            with matplotlib.rc_context(STYLE):
                for fmt in ("png", "svg", "pdf"):
                    t0 = time.perf_counter()
                    kw = {"dpi": PNG_DPI, "pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}} if fmt == "png" else {}
                    fig.savefig(io.BytesIO(), format=fmt, metadata=METADATA[fmt], facecolor="white", **kw)
                    cost[fmt] += time.perf_counter() - t0
    return cost


def edit_one_study(wd: Path) -> str:
    """Add one participant to the first arm with mean and SD (a copy; the shipped data is never touched)."""
    path = wd / "data" / "raw" / "outcomes.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    i_n, i_sd, i_study = header.index("n"), header.index("sd"), header.index("study_id")
    for row in rows[1:]:
        if row[i_n].isdigit() and row[i_sd]:
            row[i_n] = str(int(row[i_n]) + 1)
            with path.open("w", encoding="utf-8", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerows(rows)
            return row[i_study]
    raise SystemExit("no editable row found")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir-source", type=Path, default=ROOT, help="directory with config/ and data/raw/")
    args = ap.parse_args()
    ref_before = import_reference()
    wd = make_workdir(args.workdir_source)
    wd0 = make_workdir(args.workdir_source)
    try:
        load_cold = load()
        cold, proc, cold_cpu = snakemake(wd)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return 1
        cold_jobs = jobs_run(proc)
        by_rule = cpu_by_rule(wd)
        report_kb = (wd / "results" / "report.html").stat().st_size / 1024
        load_cold0 = load()
        cold0, proc0, cold0_cpu = snakemake(wd0, worker=False)  # every job in its own process, as before
        if proc0.returncode != 0:
            print(proc0.stderr[-4000:], file=sys.stderr)
            return 1
        figures = figure_costs(wd)
        load_rerun = load()
        rerun, proc2, _ = snakemake(wd)
        nothing = "Nothing to be done" in proc2.stdout + proc2.stderr
        study = edit_one_study(wd)
        load_edit = load()
        edit_t, proc3, _ = snakemake(wd)
        edit_jobs = jobs_run(proc3)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
        shutil.rmtree(wd0, ignore_errors=True)
    ref_after = import_reference()
    ref = statistics.median([ref_before, ref_after])
    print(f"import reference (pandas, scipy.stats, statsmodels.api, matplotlib.pyplot): {ref:.2f} s "
          f"(before {ref_before:.2f}, after {ref_after:.2f}); load average (1 min) before each run in []")  # fmt: skip
    print(f"cold run:   {cold:6.2f} s  = {cold / ref:4.2f} x import (target <= 4)  [{load_cold}]  "
          f"CPU {cold_cpu:.1f} s   jobs: {cold_jobs}")  # fmt: skip
    print(f"  without the worker (TPSYNTH_WORKER=0): {cold0:6.2f} s  = {cold0 / ref:4.2f} x  [{load_cold0}]  "
          f"CPU {cold0_cpu:.1f} s")  # fmt: skip
    print(f"rerun:      {rerun:6.2f} s  = {rerun / ref:4.2f} x import (target <= 1)  [{load_rerun}]  nothing to do: {nothing}")
    print(f"edit {study}: {edit_t:6.2f} s  = {edit_t / ref:4.2f} x import  [{load_edit}]  jobs: {edit_jobs}")
    print(f"report: {report_kb:.0f} kB")
    total = sum(c for _, c, _ in by_rule.values())
    print(f"CPU inside the jobs of the cold run, by rule ({total:.1f} s in all; each job's own process, forked "
          "from the worker when it ran there, so its imports are not counted; Snakemake's own and the worker's "
          "imports are in the CPU of the whole run above):")  # fmt: skip
    for rule, (n, cpu, wall) in by_rule.items():
        print(f"  {rule:<18} {n:3d} jobs  {cpu:6.2f} s CPU  {wall:6.2f} s wall  ({cpu / total:5.1%})")
    print("figures of every analysis (forest + funnel) in one process:")
    for what, sec in figures.items():
        print(f"  {what:<24} {sec:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
