"""Corpus benchmark: re-analyse every Cochrane analysis of Pairwise70, ours against metafor.

Prints, on this machine:
  * our side, end to end from the gz file: ``python -m tpsynth bench-corpus PATH`` in a subprocess
    (median wall time of ``--repeats`` runs, analyses per second, peak memory of the child);
  * metafor's side on the same analyses: ``Rscript benchmarks/corpus_metafor.R`` (escalc + rma(REML,
    knha) + predict per analysis in one R process; its wall time and its time per fit), and the ratio;
  * agreement: a random sample (fixed seed) of ``--sample`` analyses fitted by metafor with tight
    control (threshold = tol = 1e-12, maxiter = 10000, also in confint), and per statistic the largest
    relative difference (values below 1e-6 in magnitude are compared by absolute difference: a
    relative difference of two numbers that are both ~0, e.g. a tau^2 of 4e-15 against 6e-13 that
    REML's stopping rule leaves, means nothing), plus analyses where either side's REML failed.

The R parts are skipped with a message when Rscript or metafor is missing.
Targets (issue): >= 20x faster than metafor end to end on 2 cores, peak memory < 1 GB, differences
below 1e-6 relative.

Usage: python benchmarks/corpus.py [PATH] [--repeats 3] [--sample 400] [--seed 20240601]
       [--r-analyses N (time R on a random N analyses and scale its fit time up; default all)]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "pairwise70" / "pairwise70.csv.gz"
R_SCRIPT = ROOT / "benchmarks" / "corpus_metafor.R"
KEY = ["review", "analysis_group", "analysis_number"]
STATS = ["k", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "i2_ci_low", "i2_ci_high", "egger_pvalue"]
SMALL = 1e-6


def run_ours(corpus: Path, out: Path, repeats: int) -> tuple[float, str, float]:
    """Median wall time of the CLI run, its stderr (last run) and the peak RSS of the children (MiB)."""
    cmd = [sys.executable, "-m", "tpsynth", "bench-corpus", str(corpus), "--out", str(out)]
    times, err = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            sys.exit(f"bench-corpus failed:\n{proc.stderr}")
        err = proc.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return statistics.median(times), err, peak


def have_metafor() -> str | None:
    """None when Rscript with metafor is usable, else why not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    proc = subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "R package metafor not installed"
    return None


def run_r(corpus: Path, keys: pd.DataFrame, tmp: Path, mode: str, tag: str) -> tuple[float, pd.DataFrame, str]:
    kfile = tmp / f"keys_{tag}.csv"
    out = tmp / f"metafor_{tag}.csv"
    keys[[*KEY, "measure"]].to_csv(kfile, index=False)
    cmd = ["Rscript", str(R_SCRIPT), f"--corpus={corpus}", f"--analyses={kfile}", f"--out={out}", f"--mode={mode}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"Rscript failed:\n{proc.stderr}")
    return wall, pd.read_csv(out, dtype={"status": str}), proc.stdout.strip()


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[tuple]:
    m = theirs.merge(ours, on=KEY, suffixes=("_r", ""))
    ok = (m["status"] == "ok") & (m["converged"].astype(str).str.lower() == "true")
    rows = []
    for c in STATS:
        a = m.loc[ok, c].to_numpy(float)
        b = m.loc[ok, c + "_r"].to_numpy(float)
        both = np.isfinite(a) & np.isfinite(b)
        only_one = int((np.isfinite(a) != np.isfinite(b)).sum())
        a, b = a[both], b[both]
        big = np.maximum(np.abs(a), np.abs(b)) >= SMALL
        rel = np.abs(a[big] - b[big]) / np.maximum(np.abs(a[big]), np.abs(b[big]))
        ab = np.abs(a[~big] - b[~big])
        rows.append((c, int(both.sum()), float(rel.max()) if rel.size else 0.0, float(ab.max()) if ab.size else 0.0, only_one))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=400, help="analyses in the agreement check (>= 300)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--r-analyses", type=int, default=0, help="time R on this many random analyses (0: all)")
    args = ap.parse_args(argv)
    corpus = Path(args.corpus).resolve()
    if not corpus.is_file():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tpsynth-corpus-bench-"))
    try:
        out = tmp / "pooled.csv"
        wall, err, peak = run_ours(corpus, out, args.repeats)
        ours = pd.read_csv(out)
        n = len(ours)
        print("== tpsynth (python -m tpsynth bench-corpus, end to end from the gz file) ==")
        print(err.strip())
        print(f"median of {args.repeats}: {wall:.2f} s wall for {n:,} analyses = {n / wall:,.0f} analyses/s; "
              f"peak memory {peak:.0f} MiB")
        why = have_metafor()
        if why:
            print(f"\n== metafor: skipped ({why}) ==")
            return 0
        keys = ours[[*KEY, "measure"]]
        tkeys = keys if not args.r_analyses else keys.sample(min(args.r_analyses, n), random_state=args.seed)
        r_wall, r_res, r_msg = run_r(corpus, tkeys, tmp, "time", "time")
        fit_s = float(re.search(r"fits ([\d.]+) s", r_msg).group(1))
        read_s = float(re.search(r"read ([\d.]+) s", r_msg).group(1))
        scale = n / len(tkeys)
        r_total = (r_wall - fit_s) + fit_s * scale
        print("\n== metafor (Rscript benchmarks/corpus_metafor.R, default control) ==")
        print(r_msg)
        if scale != 1:
            print(f"(timed on {len(tkeys):,} of {n:,} analyses; fit time scaled up by {scale:.2f})")
        print(f"R end to end: {r_total:.1f} s (read {read_s:.1f} s, fits {fit_s * scale:.1f} s = "
              f"{1000 * fit_s / len(tkeys):.2f} ms per analysis); REML failures: {int((r_res['status'] != 'ok').sum())}")
        print(f"\nratio, end to end: {r_total / wall:.1f}x faster than metafor "
              f"(fits only vs our whole run: {fit_s * scale / wall:.1f}x)")

        sample = keys.sample(min(max(args.sample, 300), n), random_state=args.seed)
        _, r_agree, r_msg = run_r(corpus, sample, tmp, "agree", "agree")
        print(f"\n== agreement with metafor on {len(sample)} random analyses (seed {args.seed}; tight control) ==")
        print(r_msg)
        m = r_agree.merge(ours, on=KEY, suffixes=("_r", ""))
        r_fail = int((m["status"] != "ok").sum())
        our_fail = int((m["converged"].astype(str).str.lower() != "true").sum())
        print(f"REML not converged: metafor {r_fail}, tpsynth {our_fail} (fell back to DL); compared on the others")
        print(f"{'statistic':<14}{'n':>6}{'max rel diff':>15}{'max abs (|x|<1e-6)':>21}{'NaN on one side':>17}")
        worst = 0.0
        for c, nn, rel, ab, one in compare(ours, r_agree):
            print(f"{c:<14}{nn:>6}{rel:>15.2e}{ab:>21.2e}{one:>17}")
            worst = max(worst, rel)
        all_fail = int((~ours["converged"].astype(str).str.lower().eq("true")).sum())
        print(f"largest relative difference: {worst:.2e} (target < 1e-6); "
              f"REML not converged in the whole corpus (tpsynth): {all_fail}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
