"""Benchmark of the whole pipeline against the cost of importing the scientific stack.

Prints, on this machine:
  * the import reference: one Python process importing pandas, scipy.stats, statsmodels.api and
    matplotlib.pyplot (median of 3);
  * a cold run (fresh working directory, nothing computed) of ``snakemake --cores 2``;
  * a rerun with nothing changed;
  * a rerun after editing one study (which jobs rerun, and the time);
and the ratios to the import reference. Targets (issue 2): cold <= 6x, rerun <= 1x.

Usage: python benchmarks/pipeline.py [--workdir-source DIR] (default: this repository's shipped data).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, cwd=None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def import_reference(repeats: int = 3) -> float:
    code = "import pandas, scipy.stats, statsmodels.api, matplotlib.pyplot"
    return statistics.median(timed([sys.executable, "-c", code])[0] for _ in range(repeats))


def make_workdir(source: Path) -> Path:
    wd = Path(tempfile.mkdtemp(prefix="tpsynth-bench-"))
    shutil.copytree(source / "config", wd / "config")
    shutil.copytree(source / "data" / "raw", wd / "data" / "raw")
    return wd


def snakemake(wd: Path, *extra: str):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "2", *extra]
    return timed(cmd)


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    text = proc.stdout + proc.stderr
    block = text.split("Job stats:")[1] if "Job stats:" in text else ""
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M) if k != "total"}


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
    ref = import_reference()
    wd = make_workdir(args.workdir_source)
    try:
        cold, proc = snakemake(wd)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return 1
        cold_jobs = jobs_run(proc)
        rerun, proc2 = snakemake(wd)
        nothing = "Nothing to be done" in proc2.stdout + proc2.stderr
        study = edit_one_study(wd)
        edit_t, proc3 = snakemake(wd)
        edit_jobs = jobs_run(proc3)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    print(f"import reference (pandas, scipy.stats, statsmodels.api, matplotlib.pyplot): {ref:.2f} s")
    print(f"cold run:   {cold:6.2f} s  = {cold / ref:4.2f} x import (target <= 6)   jobs: {cold_jobs}")
    print(f"rerun:      {rerun:6.2f} s  = {rerun / ref:4.2f} x import (target <= 1)   nothing to do: {nothing}")
    print(f"edit {study}: {edit_t:6.2f} s  = {edit_t / ref:4.2f} x import              jobs: {edit_jobs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
