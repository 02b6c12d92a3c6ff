"""Leave-one-out and cumulative pooling at large k: time and peak memory (issue 14).

For each k (default 1,000, 5,000, 10,000 and 20,000) random heterogeneous effects are drawn from a
fixed seed (y ~ N(0.3, 0.4²), v ~ U(0.01, 0.2); tau² about 0.16) and, in a fresh process per k, the
leave-one-out and cumulative fits (random order) are computed as the pipeline does
(``MetaAnalysis.leave_one_out`` / ``.cumulative``, i.e. :mod:`tpsynth.subset_fits`).  Printed per
k and method: wall time of each on one core, the number of subsets refitted by the general engine
(``exact``), and the process's peak resident memory (``wait4``).  ``--exact`` also times the
general engine refitting every subset (:func:`tpsynth.pooling.pool_subsets`), the previous way: k² work,
so only for k <= 5,000.

Usage: python benchmarks/subsets.py [--sizes 1000 5000 10000 20000] [--methods REML DL ...] [--ci hksj]
       [--exact]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CHILD = """
import sys, time
import numpy as np
from tpsynth import meta_analysis, pooling, subset_fits
k, method, ci, exact = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
rng = np.random.default_rng(14)
y, v = rng.normal(0.3, 0.4, k), rng.uniform(0.01, 0.2, k)
order = rng.permutation(k)
fit = meta_analysis(y, v, method=method, ci=ci)
t = time.perf_counter(); fit.leave_one_out(frame=False); loo = time.perf_counter() - t
t = time.perf_counter(); fit.cumulative(order, frame=False); cum = time.perf_counter() - t
n_loo = subset_fits.leave_one_out_fits(y, v, method, ci)["n_exact"]
n_cum = subset_fits.cumulative_fits(y, v, order, method, ci)["n_exact"]
ex = ""
if exact:
    t = time.perf_counter()
    pooling.pool_subsets(y, v, [np.delete(np.arange(k), i) for i in range(k)], method, ci, tau2_ci=False)
    pooling.pool_subsets(y, v, [order[: i + 1] for i in range(k)], method, ci, tau2_ci=False)
    ex = f"{time.perf_counter() - t:.1f}"
print(f"{loo:.2f} {cum:.2f} {n_loo} {n_cum} {ex}")
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 20000])
    ap.add_argument("--methods", nargs="+", default=["REML"])
    ap.add_argument("--ci", default="hksj")
    ap.add_argument("--exact", action="store_true", help="also time the general engine (k <= 5,000)")
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(f"load average {os.getloadavg()[0]:.1f}; ci = {args.ci}; one core per run")
    print(f"{'k':>7} {'method':>6} {'LOO s':>7} {'cum s':>7} {'exact LOO/cum':>14} {'peak MB':>8} {'engine s':>9}")
    for k in args.sizes:
        for method in args.methods:
            exact = "1" if args.exact and k <= 5000 else "0"
            t = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(k), method, args.ci, exact],
                                    stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                sys.exit(f"k = {k} {method}: the run failed (status {status})")
            loo, cum, n_loo, n_cum, *eng = out.split()
            peak = usage.ru_maxrss / 1024
            print(f"{k:>7,} {method:>6} {loo:>7} {cum:>7} {n_loo + '/' + n_cum:>14} {peak:>8.0f} "
                  f"{eng[0] if eng else '-':>9}   ({time.perf_counter() - t:.1f} s in all)")  # fmt: skip


if __name__ == "__main__":
    main()
