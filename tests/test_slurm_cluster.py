"""The workflow on a real SLURM cluster (`make test-cluster` starts one on this machine: .ci/test-cluster).

Through snakemake-executor-plugin-slurm and workflow/profiles/slurm: the corpus target in 4 shards and the
default target on the shipped data, each byte-identical to a local run, and every job seen by SLURM
(`squeue -t all` lists it as COMPLETED; MinJobAge keeps finished jobs there). Skipped unless
TPSYNTH_SLURM_CLUSTER=1 (set by .ci/test-cluster once the node is idle), so `make test` never waits for
a scheduler.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_corpus import REAL_CORPUS, synthetic_rows, write_corpus

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("TPSYNTH_SLURM_CLUSTER") != "1", reason="no SLURM cluster: make test-cluster"),
]
SLURM = [
    "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
    # the CI cluster has no accounts and no accounting database (squeue answers for finished jobs), and
    # every job is short: poll from the first second
    "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
]  # fmt: skip
ENV = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")


def _smk(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)


def _tree(wd: Path, *dirs: str) -> dict[str, str]:
    out = {}
    for d in dirs:
        for p in sorted((wd / d).rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                out[str(p.relative_to(wd))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _slurm_job_ids(proc: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr)


def _assert_ran_in_slurm(proc: subprocess.CompletedProcess, n_jobs: int) -> None:
    ids = _slurm_job_ids(proc)
    assert len(ids) == n_jobs, (ids, proc.stderr[-3000:])
    q = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True,
                       text=True, check=True)  # fmt: skip
    states = dict(line.split() for line in q.stdout.splitlines())
    assert states == dict.fromkeys(ids, "COMPLETED"), states


def _workdir(tmp: Path, name: str, corpus: Path, shards: int) -> Path:
    wd = tmp / name
    shutil.copytree(ROOT / "config", wd / "config")
    shutil.copytree(ROOT / "data" / "raw", wd / "data" / "raw")
    cfg = wd / "config" / "config.yaml"
    text = re.sub(r"(?m)^corpus:\n(  .*\n)+", "", cfg.read_text(encoding="utf-8"))
    cfg.write_text(text + f"corpus:\n  path: {corpus}\n  shards: {shards}\n", encoding="utf-8")
    return wd


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if REAL_CORPUS.is_file():
        return REAL_CORPUS
    return write_corpus(tmp_path_factory.mktemp("corpus") / "mini.csv.gz", synthetic_rows())


def test_corpus_in_4_shards_through_slurm(tmp_path, corpus):
    local = _workdir(tmp_path, "local", corpus, 1)
    run = _smk(local, "corpus", "-c", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    wd = _workdir(tmp_path, "slurm", corpus, 4)
    run = _smk(wd, "corpus", *SLURM)
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_ran_in_slurm(run, 5)  # 4 shards and the gather job
    assert sorted(p.name for p in (wd / "results/corpus/shards").glob("*-of-4.csv")) == [
        f"{i}-of-4.csv" for i in range(1, 5)
    ]
    for f in ("results/corpus/pooled.csv", "results/corpus/skipped.csv"):
        assert (wd / f).read_bytes() == (local / f).read_bytes(), f


def test_shipped_pipeline_through_slurm(tmp_path, corpus):
    local = _workdir(tmp_path, "local", corpus, 4)
    run = _smk(local, "-c", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    wd = _workdir(tmp_path, "slurm", corpus, 4)
    run = _smk(wd, *SLURM)
    assert run.returncode == 0, run.stderr[-3000:]
    n_local = len(re.findall(r"Finished jobid: \d+ \(Rule: (?!all\))", run.stdout + run.stderr))
    _assert_ran_in_slurm(run, n_local)
    got, want = _tree(wd, "results", "data/processed"), _tree(local, "results", "data/processed")
    assert got.keys() == want.keys()
    assert [f for f in got if got[f] != want[f]] == []
    assert "Nothing to be done" in (again := _smk(wd, *SLURM)).stderr + again.stdout
