"""Re-analyse a whole corpus of Cochrane meta-analyses (Pairwise70 layout) in one vectorised pass.

``python -m tpsynth bench-corpus PATH [--out results/corpus/pooled.csv] [--shard I --shards N]``

An *analysis* is (review, analysis_group, analysis_number) with all its rows, subgroups included.
Analyses are numbered 0..A-1 in sorted key order (reviews sorted as strings, then group and number
numerically); shard ``I`` of ``N`` (0-based) takes the contiguous block of analysis indices
``[I*A//N, (I+1)*A//N)``, so concatenating the shards in shard order gives exactly the unsharded
table.  Each analysis is

* continuous (``SMD``, Hedges' g as ``escalc(measure="SMD")``) when at least two rows have complete
  continuous data in both arms (mean, SD > 0, n > 1); only those rows are used;
* otherwise dichotomous (``logRR`` as ``escalc(measure="RR", add=1/2, to="only0", drop00=TRUE)``)
  when at least two rows have complete event data (0 <= events <= n, n > 0); only those rows are
  used, double-zero (and double-all) rows dropped;
* otherwise skipped, with its reason counted (``generic inverse-variance data only``, ``Peto O-E
  data only``, ``fewer than two rows with complete data``), as are dichotomous analyses left with no
  row after dropping double-zero rows.  Analyses left with one row are pooled as metafor does
  (k = 1: tau^2 = 0, Wald interval).

All analyses of a shard are pooled in ONE :func:`tpsynth.pooling.pool_many` call (REML, HKSJ,
prediction interval, I^2 with its Q-profile CI), and Egger's regression test (k >= 10) is computed
for all of them at once by the same engine (:func:`tpsynth.small_study.egger_many`).

The Pairwise70 export writes 0 for many missing cells (e.g. cases of continuous rows, SD of
dichotomous rows); the completeness rules above (SD > 0, n > 1, events <= n) are what keeps those
out, exactly as stated.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

from . import effect_sizes as es
from .pooling import pool_many
from .small_study import egger_many
from .tables import write_text

KEY = ["review", "analysis_group", "analysis_number"]
NUMERIC = ["exp_mean", "exp_sd", "exp_cases", "exp_n", "ctl_mean", "ctl_sd", "ctl_cases", "ctl_n", "giv_se", "variance"]
USECOLS = KEY + NUMERIC
COLUMNS = [
    "review", "analysis_group", "analysis_number", "measure", "k", "estimate", "se", "ci_low", "ci_high",
    "pi_low", "pi_high", "tau2", "i2", "i2_ci_low", "i2_ci_high", "egger_pvalue", "converged",
]  # fmt: skip
SKIPPED_COLUMNS = ["review", "analysis_group", "analysis_number", "reason"]
EGGER_MIN_K = 10

REASON_GIV = "generic inverse-variance data only"
REASON_PETO = "Peto O-E data only"
REASON_NONE = "fewer than two rows with complete continuous or event data"
REASON_D00 = "no event row left after dropping double-zero rows"


class Progress:
    """Stage-by-stage progress on stderr (elapsed seconds since start)."""

    def __init__(self, stream=None, quiet: bool = False):
        self.t0 = time.perf_counter()
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.3f} s] {msg}", file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def read_corpus(path: str | Path):
    """Read the columns needed from the (gzipped) corpus CSV with pandas' C parser."""
    import pandas as pd

    dtypes = {c: "float64" for c in NUMERIC}
    dtypes.update({"review": "str", "analysis_group": "int64", "analysis_number": "int64"})
    return pd.read_csv(path, usecols=USECOLS, dtype=dtypes, engine="c")


def _sorted_group_codes(df):
    """Per row the index of its analysis (sorted key order) and the table of analysis keys."""
    import pandas as pd

    rev_codes, rev_uniques = pd.factorize(df["review"].to_numpy(), sort=True)
    grp = df["analysis_group"].to_numpy(np.int64)
    num = df["analysis_number"].to_numpy(np.int64)
    # lexicographic (review, group, number) -> dense index
    order = np.lexsort((num, grp, rev_codes))
    r, g, n = rev_codes[order], grp[order], num[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (g[1:] != g[:-1]) | (n[1:] != n[:-1])
    dense_sorted = np.cumsum(new) - 1
    codes = np.empty(order.size, dtype=np.intp)
    codes[order] = dense_sorted
    first = order[new]
    keys = pd.DataFrame(
        {"review": np.asarray(rev_uniques, dtype=object)[rev_codes[first]], "analysis_group": grp[first], "analysis_number": num[first]}
    )
    return codes, keys


def shard_bounds(n_analyses: int, shard: int, shards: int) -> tuple[int, int]:
    """Contiguous block [lo, hi) of analysis indices of 0-based ``shard`` out of ``shards``."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1} (found {shard})")
    return shard * n_analyses // shards, (shard + 1) * n_analyses // shards


def classify(df, codes: np.ndarray, n_analyses: int):
    """Row masks and per-analysis measure / skip reason.

    Returns ``(cont_rows, dich_rows, is_cont, is_dich, reason)`` where ``reason`` is an object array
    (None for analyses that are pooled).
    """
    em, esd, ec, en = (df[c].to_numpy() for c in ("exp_mean", "exp_sd", "exp_cases", "exp_n"))
    cm, csd, cc, cn = (df[c].to_numpy() for c in ("ctl_mean", "ctl_sd", "ctl_cases", "ctl_n"))
    with np.errstate(invalid="ignore"):
        cont = np.isfinite(em) & np.isfinite(cm) & (esd > 0) & (csd > 0) & (en > 1) & (cn > 1)
        cont &= np.isfinite(esd) & np.isfinite(csd) & np.isfinite(en) & np.isfinite(cn)
        dich = (ec >= 0) & (cc >= 0) & (ec <= en) & (cc <= cn) & (en > 0) & (cn > 0)
        dich &= np.isfinite(en) & np.isfinite(cn)
        giv = df["giv_se"].to_numpy() > 0
        peto = df["variance"].to_numpy() > 0
    n_cont = np.bincount(codes, weights=cont, minlength=n_analyses)
    n_dich = np.bincount(codes, weights=dich, minlength=n_analyses)
    is_cont = n_cont >= 2
    is_dich = ~is_cont & (n_dich >= 2)
    n_giv = np.bincount(codes, weights=giv, minlength=n_analyses)
    n_peto = np.bincount(codes, weights=peto, minlength=n_analyses)
    reason = np.full(n_analyses, None, dtype=object)
    skip = ~is_cont & ~is_dich
    reason[skip] = REASON_NONE
    reason[skip & (n_peto >= 2)] = REASON_PETO
    reason[skip & (n_giv >= 2)] = REASON_GIV
    return cont & is_cont[codes], dich & is_dich[codes], is_cont, is_dich, reason


def effect_sizes(df, cont_rows, dich_rows):
    """(yi, vi, row index) for continuous (SMD) and dichotomous (log RR) rows; NaN rows removed."""
    ci = np.flatnonzero(cont_rows)
    col = {c: df[c].to_numpy() for c in NUMERIC}
    y1, v1 = es.standardised_mean_difference(
        col["exp_mean"][ci], col["exp_sd"][ci], col["exp_n"][ci], col["ctl_mean"][ci], col["ctl_sd"][ci], col["ctl_n"][ci]
    )
    di = np.flatnonzero(dich_rows)
    y2, v2, _, _ = es.log_risk_ratio(
        col["exp_cases"][di], col["exp_n"][di], col["ctl_cases"][di], col["ctl_n"][di], add=0.5, to="only0", drop00=True
    )
    idx = np.concatenate([ci, di])
    y = np.concatenate([y1, y2])
    v = np.concatenate([v1, v2])
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    order = np.argsort(idx[ok], kind="stable")  # file order within every analysis
    return y[ok][order], v[ok][order], idx[ok][order]


def _fmt_col(a: np.ndarray) -> list[str]:
    return ["" if not np.isfinite(x) else repr(float(x)) for x in a.tolist()]


def run(path, shard: int = 0, shards: int = 1, progress: Progress | None = None) -> tuple[list[list[str]], list[list[str]], dict]:
    """Analyse one shard of the corpus; return (pooled rows, skipped rows, stats) as text cells."""
    progress = progress or Progress(quiet=True)
    df = read_corpus(path)
    progress(f"read {len(df):,} rows from {path}")
    codes, keys = _sorted_group_codes(df)
    A = len(keys)
    lo, hi = shard_bounds(A, shard, shards)
    sel = (codes >= lo) & (codes < hi)
    df = df.loc[sel].reset_index(drop=True)
    codes = codes[sel] - lo
    keys = keys.iloc[lo:hi].reset_index(drop=True)
    G = hi - lo
    progress(f"{A:,} analyses in the corpus; shard {shard + 1} of {shards}: analyses {lo:,} to {hi - 1:,} ({G:,})")
    cont_rows, dich_rows, is_cont, is_dich, reason = classify(df, codes, G)
    y, v, rows = effect_sizes(df, cont_rows, dich_rows)
    g_all = codes[rows]
    k_all = np.bincount(g_all, minlength=G)
    reason[is_dich & (k_all == 0)] = REASON_D00
    pooled = np.flatnonzero(reason == None)  # noqa: E711 (object array)
    remap = np.full(G, -1, dtype=np.intp)
    remap[pooled] = np.arange(pooled.size)
    g = remap[g_all]
    progress(f"effect sizes: {y.size:,} study rows in {pooled.size:,} analyses "
             f"({int(is_cont.sum()):,} SMD, {int((is_dich & (reason == None)).sum()):,} log RR)")  # noqa: E711
    res = pool_many(y, v, g, method="REML", ci="hksj", level=0.95, tau2_ci=True, n_groups=pooled.size)
    progress(f"pooled {pooled.size:,} analyses (REML, HKSJ, prediction interval, Q-profile I² CI)")
    big = res["k"] >= EGGER_MIN_K  # only these are tested: fit only their rows
    in_big = big[g]
    egger_p = np.full(pooled.size, np.nan)
    egger_p[big] = egger_many(y[in_big], v[in_big], (np.cumsum(big) - 1)[g[in_big]], int(big.sum()))["pvalue"]
    progress(f"Egger's test for {int((res['k'] >= EGGER_MIN_K).sum()):,} analyses with k >= {EGGER_MIN_K}")

    kp = keys.iloc[pooled]
    measure = np.where(is_cont[pooled], "SMD", "logRR")
    cols = [
        kp["review"].astype(str).tolist(),
        [str(x) for x in kp["analysis_group"].tolist()],
        [str(x) for x in kp["analysis_number"].tolist()],
        measure.tolist(),
        [str(int(x)) for x in res["k"].tolist()],
    ]
    for name in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "i2_ci_low", "i2_ci_high"):
        cols.append(_fmt_col(np.asarray(res[name], dtype=float)))
    cols.append(_fmt_col(egger_p))
    cols.append(["true" if c else "false" for c in res["converged"].tolist()])
    out_rows = [list(r) for r in zip(*cols, strict=True)]
    sk = np.flatnonzero(reason != None)  # noqa: E711
    ks = keys.iloc[sk]
    skipped = [
        [r, str(a), str(b), reason[i]]
        for r, a, b, i in zip(ks["review"].tolist(), ks["analysis_group"].tolist(), ks["analysis_number"].tolist(), sk.tolist(), strict=True)
    ]
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s[3]] = reasons.get(s[3], 0) + 1
    stats = {
        "analyses": G,
        "pooled": int(pooled.size),
        "smd": int(is_cont.sum()),
        "logrr": int(pooled.size - is_cont.sum()),
        "rows": int(y.size),
        "not_converged": int((~res["converged"]).sum()),
        "step_halved": int(res["step_halved"].sum()),
        "egger": int(np.isfinite(egger_p).sum()),
        "skipped": reasons,
    }
    return out_rows, skipped, stats


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    """CSV text; cells are numbers, codes and review ids (quoted only if they need it; never a formula)."""

    from .tables import excel_safe

    def q(c: str) -> str:
        c = excel_safe(c)
        return '"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\n\r') else c

    lines = [",".join(header)]
    lines.extend(",".join(q(c) for c in r) for r in rows)
    return "\n".join(lines) + "\n"


def skipped_path_for(out: str | Path) -> Path:
    """Default path of the skipped-analyses table beside ``out``: ``skipped.csv`` beside ``pooled.csv``,
    else ``NAME.skipped.csv`` beside ``NAME.csv``."""
    out = Path(out)
    if out.name == "pooled.csv":
        return out.with_name("skipped.csv")
    return out.with_name(out.stem + ".skipped" + out.suffix)


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is in KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 1024.0 / 1024.0


def bench_corpus(path, out, skipped_out=None, shard: int = 0, shards: int = 1, stream=None, quiet=False) -> dict:
    """Run one shard (or everything), write the tables and report speed and memory on ``stream``."""
    progress = Progress(stream, quiet)
    rows, skipped, stats = run(path, shard, shards, progress)
    out = Path(out)
    write_text(out, _csv_text(COLUMNS, rows))
    sp = Path(skipped_out) if skipped_out else skipped_path_for(out)
    write_text(sp, _csv_text(SKIPPED_COLUMNS, skipped))
    wall = progress.elapsed()
    stats.update(wall_s=wall, analyses_per_s=stats["pooled"] / wall if wall > 0 else float("nan"), peak_mb=peak_memory_mb())
    progress(f"wrote {out} ({len(rows):,} rows) and {sp} ({len(skipped):,} skipped)")
    skipped_txt = "; ".join(f"{n:,} {r}" for r, n in sorted(stats["skipped"].items())) or "none"
    summary = (
        f"{stats['pooled']:,} analyses pooled ({stats['smd']:,} SMD, {stats['logrr']:,} log RR; "
        f"{stats['rows']:,} study rows) in {wall:.2f} s wall: {stats['analyses_per_s']:,.0f} analyses/s; "
        f"peak memory {stats['peak_mb']:.0f} MiB\n"
        f"REML not converged (fell back to DL): {stats['not_converged']}; converged only with half steps: "
        f"{stats['step_halved']}; Egger tests (k >= {EGGER_MIN_K}): {stats['egger']:,}\n"
        f"skipped {sum(stats['skipped'].values()):,}: {skipped_txt}"
    )
    if not quiet:
        print(summary, file=stream or sys.stderr, flush=True)
    return stats


def gather(shard_files: list[str], out: str | Path) -> int:
    """Concatenate shard tables (same header) in the given order into ``out``; return data rows."""
    header = None
    body: list[str] = []
    for f in shard_files:
        text = Path(f).read_text(encoding="utf-8")
        first, _, rest = text.partition("\n")
        if header is None:
            header = first
        elif first != header:
            raise ValueError(f"{f}: header differs from the first shard's")
        body.append(rest)
    write_text(out, (header or "") + "\n" + "".join(body))
    return sum(b.count("\n") for b in body)


def parse_scatteritem(item: str) -> tuple[int, int]:
    """Snakemake's ``{scatteritem}`` ``"i-of-n"`` -> (0-based shard, shards)."""
    i, _, n = item.partition("-of-")
    return int(i) - 1, int(n)
