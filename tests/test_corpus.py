"""Corpus re-analysis (tpsynth.corpus, python -m tpsynth bench-corpus, the sharded Snakemake target).

A small synthetic corpus in the Pairwise70 column layout is written by the tests; the real corpus
(../shared/data/pairwise70/pairwise70.csv.gz) is used only when present (full run, ~2 s).
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpsynth import corpus, effect_sizes, pooling
from tpsynth.cochrane import PAIRWISE70_COLUMNS
from tpsynth.small_study import egger_test

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
REAL_CORPUS = ROOT.parent / "shared" / "data" / "pairwise70" / "pairwise70.csv.gz"
COLUMNS = PAIRWISE70_COLUMNS  # a synthetic corpus in the layout the importer reads


def synthetic_rows(seed: int = 7) -> list[dict]:
    """A few reviews: continuous, dichotomous (zero cells, double zeros), GIV-only, k >= 10, subgroups."""
    rng = np.random.default_rng(seed)
    rows = []

    def row(review, g, n, study, **kw):
        r = dict.fromkeys(COLUMNS)
        r.update(review=review, review_doi=f"10.1002/14651858.{review}", analysis_group=g, analysis_number=n,
                 analysis_name=f"Outcome {g}.{n}", study=study, study_year=study.split()[-1][:4])  # fmt: skip
        r.update(kw)
        rows.append(r)

    def cont(review, g, n, k, sub=None):
        for i in range(k):
            n1, n2 = int(rng.integers(10, 80)), int(rng.integers(10, 80))
            row(review, g, n, f"Study{i} {1990 + i}", subgroup=sub(i) if sub else None,
                exp_mean=float(rng.normal(1, 1)), exp_sd=float(rng.uniform(0.5, 2)), exp_n=n1,
                ctl_mean=float(rng.normal(0.5, 1)), ctl_sd=float(rng.uniform(0.5, 2)), ctl_n=n2,
                exp_cases=0.0, ctl_cases=0.0)  # fmt: skip  (the export's zero-filled cases)

    def dich(review, g, n, k):
        for i in range(k):
            n1, n2 = int(rng.integers(20, 200)), int(rng.integers(20, 200))
            row(review, g, n, f"Trial{i} {2000 + i}", exp_cases=float(rng.integers(0, n1 // 3)), exp_n=n1,
                ctl_cases=float(rng.integers(0, n2 // 3)), ctl_n=n2, exp_mean=0.0, exp_sd=0.0, ctl_mean=0.0, ctl_sd=0.0)  # fmt: skip

    cont("CD000002_pub2", 1, 1, 4, sub=lambda i: "young" if i < 2 else "old")
    dich("CD000002_pub2", 1, 2, 5)
    rows[-1].update(exp_cases=0.0, ctl_cases=0.0)  # a double-zero row: dropped
    rows[-2].update(exp_cases=0.0)  # a zero cell: 0.5 added
    cont("CD000002_pub2", 2, 1, 12)  # Egger (k >= 10)
    dich("CD000002_pub2", 2, 2, 11)
    # GIV only
    for i in range(3):
        row("CD000002_pub2", 3, 1, f"Giv{i} 2010", giv_mean=0.1 * i, giv_se=0.2, exp_n=30.0, ctl_n=30.0)
    # one row only
    cont("CD000001_pub3", 1, 1, 1)
    # continuous with a missing SD: one complete row; the zero-filled cases make it "dichotomous" by the
    # rules, with only double-zero rows -> skipped with that reason (as ~900 analyses of Pairwise70)
    cont("CD000001_pub3", 1, 2, 2)
    rows[-1].update(exp_sd=0.0)
    # two complete continuous rows among bad ones (n = 1, events > n)
    cont("CD000001_pub3", 1, 3, 4)
    rows[-1].update(exp_n=1.0)
    rows[-2].update(ctl_sd=np.nan)
    dich("CD000001_pub3", 2, 1, 3)
    rows[-1].update(exp_cases=rows[-1]["exp_n"] + 5)  # events > n: not complete
    # all double-zero: dichotomous, no row left
    for i in range(3):
        row("CD000001_pub3", 2, 2, f"Zero{i} 2001", exp_cases=0.0, exp_n=20.0, ctl_cases=0.0, ctl_n=20.0)
    # Peto only
    for i in range(2):
        row("CD000001_pub3", 3, 1, f"Peto{i} 2002", o_e=-1.0, variance=4.0, exp_n=40.0, ctl_n=40.0)
    # a third review, several small analyses (for sharding)
    for n in range(1, 8):
        (cont if n % 2 else dich)("CD000003_pub1", 1, n, 3)
    # file order not sorted: shuffle whole analyses
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_corpus(path: Path, rows: list[dict]) -> Path:
    df = pd.DataFrame(rows, columns=COLUMNS)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "mini.csv.gz", synthetic_rows())


# ---------------------------------------------------------------------------
# the analysis of a synthetic corpus
# ---------------------------------------------------------------------------
def _reference(rows: list[dict]) -> dict[tuple, dict]:
    """Per analysis, the statistics from scalar code (escalc ports + pooling.pool + egger_test)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    out = {}
    for key, d in df.groupby(corpus.KEY):
        c = d[(d.exp_sd > 0) & (d.ctl_sd > 0) & (d.exp_n > 1) & (d.ctl_n > 1) & d.exp_mean.notna() & d.ctl_mean.notna()]
        e = d[(d.exp_cases >= 0) & (d.ctl_cases >= 0) & (d.exp_cases <= d.exp_n) & (d.ctl_cases <= d.ctl_n) & (d.exp_n > 0) & (d.ctl_n > 0)]
        if len(c) >= 2:
            yi, vi = effect_sizes.standardised_mean_difference(c.exp_mean, c.exp_sd, c.exp_n, c.ctl_mean, c.ctl_sd, c.ctl_n)
            measure = "SMD"
        elif len(e) >= 2:
            yi, vi, _, _ = effect_sizes.log_risk_ratio(e.exp_cases, e.exp_n, e.ctl_cases, e.ctl_n, drop00=True)
            measure = "logRR"
        else:
            continue
        ok = np.isfinite(yi)
        yi, vi = yi[ok], vi[ok]
        if yi.size == 0:
            continue
        r = pooling.pool(yi, vi)
        egger = egger_test(yi, vi).pvalue if yi.size >= 10 else np.nan
        out[tuple(key)] = {"measure": measure, "k": r.k, "estimate": r.estimate, "se": r.se, "ci_low": r.ci_low,
                           "ci_high": r.ci_high, "pi_low": r.pi_low, "pi_high": r.pi_high, "tau2": r.tau2, "i2": r.i2,
                           "i2_ci_low": r.i2_ci_low, "i2_ci_high": r.i2_ci_high, "egger_pvalue": egger}  # fmt: skip
    return out


def test_bench_corpus_matches_scalar_code(synth, tmp_path):
    out = tmp_path / "pooled.csv"
    stats = corpus.bench_corpus(synth, out, quiet=True)
    got = pd.read_csv(out)
    assert list(got.columns) == corpus.COLUMNS
    keys = list(zip(got.review, got.analysis_group, got.analysis_number, strict=True))
    assert keys == sorted(keys), "rows in (review, group, number) order"
    ref = _reference(synthetic_rows())
    assert set(keys) == set(ref)
    for row in got.itertuples(index=False):
        exp = ref[(row.review, row.analysis_group, row.analysis_number)]
        assert row.measure == exp["measure"]
        assert row.k == exp["k"]
        for c in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "i2_ci_low", "i2_ci_high", "egger_pvalue"):
            np.testing.assert_allclose(getattr(row, c), exp[c], rtol=1e-10, atol=1e-13, err_msg=f"{row[:3]} {c}")
    assert got.converged.all()
    # the classification rules
    by = {k: r for k, r in zip(keys, got.itertuples(index=False), strict=True)}
    assert by[("CD000002_pub2", 1, 2)].k == 4  # double-zero row dropped
    assert by[("CD000001_pub3", 1, 3)].k == 2  # n = 1 and missing SD rows left out
    assert by[("CD000001_pub3", 1, 3)].measure == "SMD"
    assert np.isfinite(by[("CD000002_pub2", 2, 1)].egger_pvalue)
    assert np.isnan(by[("CD000002_pub2", 1, 1)].egger_pvalue)
    skipped = pd.read_csv(tmp_path / "skipped.csv")
    reasons = {(r.review, r.analysis_group, r.analysis_number): r.reason for r in skipped.itertuples(index=False)}
    assert reasons == {
        ("CD000001_pub3", 1, 1): corpus.REASON_NONE,
        ("CD000001_pub3", 1, 2): corpus.REASON_D00,
        ("CD000001_pub3", 2, 2): corpus.REASON_D00,
        ("CD000001_pub3", 3, 1): corpus.REASON_PETO,
        ("CD000002_pub2", 3, 1): corpus.REASON_GIV,
    }
    assert stats["pooled"] == len(got) and sum(stats["skipped"].values()) == len(skipped)


@pytest.mark.parametrize("shards", [2, 3, 7, 40])
def test_shards_concatenate_to_the_unsharded_table(synth, tmp_path, shards):
    corpus.bench_corpus(synth, tmp_path / "all.csv", quiet=True)
    parts = []
    for i in range(shards):
        corpus.bench_corpus(synth, tmp_path / f"s{i}.csv", shard=i, shards=shards, quiet=True)
        parts.append(tmp_path / f"s{i}.csv")
    corpus.gather([str(p) for p in parts], tmp_path / "gathered.csv")
    assert (tmp_path / "gathered.csv").read_bytes() == (tmp_path / "all.csv").read_bytes()
    corpus.gather([str(p).replace(".csv", ".skipped.csv") for p in parts], tmp_path / "gathered_sk.csv")
    assert (tmp_path / "gathered_sk.csv").read_bytes() == (tmp_path / "all.skipped.csv").read_bytes()


@pytest.mark.slow
def test_cli_reports_progress_speed_and_memory(synth, tmp_path):
    out = tmp_path / "res" / "pooled.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "tpsynth", "bench-corpus", str(synth), "--out", str(out), "--shard", "2", "--shards", "2"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "analyses/s" in proc.stderr and "peak memory" in proc.stderr and "wall" in proc.stderr
    assert "shard 2 of 2" in proc.stderr
    assert out.is_file() and (out.parent / "skipped.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "tpsynth", "bench-corpus", str(synth), "--shard", "3", "--shards", "2"],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "--shard" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "tpsynth", "bench-corpus", str(tmp_path / "nope.csv.gz")],
                             capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 1 and "nope.csv.gz" in missing.stderr


# ---------------------------------------------------------------------------
# Snakemake: scatter/gather through a cluster executor, byte-identical to one shard
# ---------------------------------------------------------------------------
def _workdir(tmp: Path, corpus_path: Path, shards: int) -> Path:
    wd = tmp / f"wd{shards}"
    shutil.copytree(FIXTURE, wd)
    cfg = (wd / "config" / "config.yaml").read_text(encoding="utf-8")
    cfg += f"corpus:\n  path: {corpus_path}\n  shards: {shards}\n"
    (wd / "config" / "config.yaml").write_text(cfg, encoding="utf-8")
    return wd


def _smk(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


SUBMIT = """#!/usr/bin/env bash
# stand-in for sbatch: run the jobscript as its own process, in the background, with a clean environment
js="${@: -1}"
env -i HOME="$HOME" PATH="$PATH" bash "$js" > "$js.out" 2>&1 &
echo "local-$!"
"""


@pytest.mark.pipeline
@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_cluster_generic") is None,
    reason="snakemake-executor-plugin-cluster-generic not installed",
)
def test_sharded_cluster_run_is_byte_identical_to_one_shard(synth, tmp_path):
    one = _workdir(tmp_path, synth, 1)
    run1 = _smk(one, "corpus", "-c", "2")
    assert run1.returncode == 0, run1.stderr[-3000:]

    three = _workdir(tmp_path, synth, 3)
    submit = tmp_path / "submit.sh"
    submit.write_text(SUBMIT, encoding="utf-8")
    submit.chmod(submit.stat().st_mode | stat.S_IEXEC)
    run3 = _smk(
        three, "corpus", "--executor", "cluster-generic", "--cluster-generic-submit-cmd", str(submit),
        "--jobs", "3", "--latency-wait", "5", "--seconds-between-status-checks", "1",
    )  # fmt: skip
    assert run3.returncode == 0, run3.stderr[-3000:]
    log = run3.stdout + run3.stderr
    assert "corpus_shard" in log and "local-" in log  # jobs went through the submit command
    for f in ("results/corpus/pooled.csv", "results/corpus/skipped.csv"):
        assert (three / f).read_bytes() == (one / f).read_bytes(), f
    shards = sorted(p.name for p in (three / "results/corpus/shards").iterdir())
    assert shards == [f"{i}-of-3{s}" for i in (1, 2, 3) for s in (".csv", ".skipped.csv")]
    assert len(list((three / "logs/corpus").iterdir())) == 4  # three shards and the gather
    # the corpus is not part of the default target
    dry = _smk(three, "-n", "-c", "1")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "corpus_shard" not in dry.stdout + dry.stderr


@pytest.mark.pipeline
def test_snakefile_parses_without_the_corpus(tmp_path):
    wd = _workdir(tmp_path, tmp_path / "absent.csv.gz", 2)
    dry = _smk(wd, "-n", "-c", "1")
    assert dry.returncode == 0, dry.stderr[-2000:]
    asked = _smk(wd, "-n", "-c", "1", "corpus")
    assert asked.returncode != 0 and "absent.csv.gz" in asked.stdout + asked.stderr


# ---------------------------------------------------------------------------
# the real corpus (skipped when ../shared is absent)
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not REAL_CORPUS.is_file(), reason="Pairwise70 corpus not present")
def test_real_corpus_full_run(tmp_path):
    stats = corpus.bench_corpus(REAL_CORPUS, tmp_path / "pooled.csv", quiet=True)
    got = pd.read_csv(tmp_path / "pooled.csv")
    assert len(got) == stats["pooled"] > 11_000
    assert set(got.measure) == {"SMD", "logRR"}
    assert (got.measure == "SMD").sum() > 4_500
    assert stats["peak_mb"] < 1024
    assert stats["wall_s"] < 30
    assert np.all(np.isfinite(got.estimate)) and np.all(got.k >= 1)
    assert stats["pooled"] + sum(stats["skipped"].values()) == stats["analyses"]
