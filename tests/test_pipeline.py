"""The Snakemake workflow end to end on the fixture workspace, run from another directory."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pipeline

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]

RESULT_FILES = [
    "results/pooled.csv", "results/study_effects.csv", "results/subgroups.csv", "results/sensitivity.csv",
    "results/small_study.csv", "results/bayes.csv", "results/bayes_sensitivity.csv", "results/bayes_studies.csv",
    "data/processed/effects.csv", "data/processed/dataflow.csv", "data/processed/arms.csv",
    "results/analyses/pain_smd.json", "results/analyses/pain_md.json", "results/analyses/resp_rr.json",
]  # fmt: skip


def smk(wd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([*SNAKEMAKE, "-d", str(wd), "-c", "2", *args], capture_output=True, text=True, env=env)


def digest(wd: Path) -> dict[str, str]:
    return {f: hashlib.sha256((wd / f).read_bytes()).hexdigest() for f in RESULT_FILES}


def repository_outputs() -> dict[str, int]:
    """What the repository's own output folders hold (path -> mtime), to show a -d run writes nothing there."""
    return {
        str(p): p.stat().st_mtime_ns
        for d in ("results", "data/processed", "logs")
        if (ROOT / d).is_dir()
        for p in sorted((ROOT / d).rglob("*"))
    }


@pytest.fixture(scope="module")
def run_once(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wd1")
    shutil.copytree(FIXTURE, wd, dirs_exist_ok=True)
    raw_before = {p.name: p.read_bytes() for p in (wd / "data/raw").iterdir()}
    repo_before = repository_outputs()
    run = smk(wd)
    assert run.returncode == 0, run.stderr[-3000:]
    return wd, raw_before, repo_before


def test_outputs_written_under_workdir(run_once):
    wd, _, repo_before = run_once
    for f in RESULT_FILES:
        assert (wd / f).is_file(), f
    assert repository_outputs() == repo_before, "wrote into the repository, not -d"


def test_raw_data_untouched(run_once):
    wd, raw_before, _ = run_once
    assert {p.name: p.read_bytes() for p in (wd / "data/raw").iterdir()} == raw_before


def test_every_raw_row_has_one_final_state(run_once):
    wd = run_once[0]
    flow = list(csv.DictReader((wd / "data/processed/dataflow.csv").open()))
    n_out = sum(1 for _ in (wd / "data/raw/outcomes.csv").open()) - 1
    n_con = sum(1 for _ in (wd / "data/raw/contrasts.csv").open()) - 1
    assert len(flow) == n_out + n_con
    assert {r["state"] for r in flow} <= {"used", "excluded"}
    for r in flow:
        assert (r["state"] == "used") == bool(r["analyses"]), r
        assert (r["state"] == "excluded") == bool(r["reason"]), r
    by_line = {(r["sheet"], r["line"]): r for r in flow}
    assert by_line[("outcomes", "19")]["reason"] == "unusable as extracted: SD not reported"
    assert "non-randomised" in by_line[("outcomes", "17")]["reason"]
    assert "drop00" in by_line[("outcomes", "11")]["reason"]


def test_bayes_table_contract(run_once):
    """results/bayes.csv: exactly the issue-9 columns, one row per analysis with k >= 2, priors in
    the config's syntax, P(important benefit) blank exactly when the MID is."""
    wd = run_once[0]
    text = (wd / "results/bayes.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert text.splitlines()[0] == (
        "analysis_id,k,tau_prior,mu_prior,estimate,mean,sd,ci_low,ci_high,hdi_low,hdi_high,pi_low,pi_high,"
        "tau_median,tau_ci_low,tau_ci_high,prob_benefit,prob_important_benefit,mid"
    )
    pooled = {r["analysis_id"]: r for r in csv.DictReader((wd / "results/pooled.csv").open())}
    assert [r["analysis_id"] for r in rows] == [a for a, r in pooled.items() if int(r["k"]) >= 2]
    for r in rows:
        assert re.fullmatch(r"(half_normal|half_cauchy|lognormal_tau2|log_t_tau2|uniform)\(.*\)", r["tau_prior"]), r
        assert r["mu_prior"] == "flat"
        assert float(r["ci_low"]) < float(r["estimate"]) < float(r["ci_high"])
        assert float(r["pi_low"]) <= float(r["ci_low"]) and float(r["ci_high"]) <= float(r["pi_high"])
        assert float(r["hdi_high"]) - float(r["hdi_low"]) <= float(r["ci_high"]) - float(r["ci_low"]) + 1e-12
        assert 0 <= float(r["prob_benefit"]) <= 1
        assert (r["mid"] == "") == (r["prob_important_benefit"] == "")
    sens = list(csv.DictReader((wd / "results/bayes_sensitivity.csv").open()))
    for r in rows:
        kinds = [s["kind"] for s in sens if s["analysis_id"] == r["analysis_id"]]
        assert kinds[0] == "main" and len(kinds) == 4 and kinds[3].startswith("frequentist REML"), kinds


def test_pooled_table_contract(run_once):
    wd = run_once[0]
    rows = list(csv.DictReader((wd / "results/pooled.csv").open()))
    assert [r["analysis_id"] for r in rows] == ["pain_md", "pain_smd", "resp_rr"]
    assert list(rows[0])[:29] == [
        "analysis_id", "measure", "method", "ci_method", "k", "n_participants", "estimate", "se", "ci_low", "ci_high",
        "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2",
        "q", "q_df", "q_pvalue", "fe_estimate", "fe_ci_low", "fe_ci_high", "q_between", "q_between_df",
        "q_between_pvalue",
    ]  # fmt: skip
    md = rows[0]
    assert (md["measure"], md["method"], md["ci_method"], md["k"]) == ("MD", "REML", "wald", "4")
    # 20+20 (a2001) + 15+14+15 (b2005, three arms) + 30+30 (c2010) + 62+62 (e2020 contrast)
    assert float(md["n_participants"]) == 268


def test_rerun_does_nothing_and_is_identical(run_once, tmp_path):
    wd = run_once[0]
    again = smk(wd)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stderr + again.stdout
    # a fresh run elsewhere gives byte-identical files
    wd2 = tmp_path / "wd2"
    shutil.copytree(FIXTURE, wd2)
    run = smk(wd2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert digest(wd2) == digest(wd)


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rules that ran and how often, from Snakemake's "Finished jobid: N (Rule: NAME)" lines."""
    counts: dict[str, int] = {}
    for name in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr):
        counts[name] = counts.get(name, 0) + 1
    return counts


def edit_row(wd: Path, old: str, new: str) -> None:
    p = wd / "data/raw/outcomes.csv"
    text = p.read_text()
    assert text.count(old) == 1, old
    p.write_text(text.replace(old, new))


RESP_ROW = "c2010,usual,usual,resp,responders,true,1,final,30,,,,,,,,,,,4,"


def test_editing_one_study_reruns_only_its_analyses(run_once, tmp_path):
    wd = tmp_path / "wd3"
    shutil.copytree(run_once[0], wd, symlinks=True)
    edit_row(wd, RESP_ROW, RESP_ROW.replace(",4,", ",5,"))
    edited = (wd / "data/raw/outcomes.csv").stat().st_mtime_ns
    run = smk(wd)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = jobs_run(run)
    assert jobs.get("analyse") == 1, jobs  # only resp_rr reads that row; its job also draws its plots
    assert {"ingest", "collect", "summary_figure", "report"} <= set(jobs), jobs
    # only resp_rr's plots were redrawn, and the unchanged analyses' results were not rewritten
    changed = {p.name for p in (wd / "results").rglob("*") if p.is_file() and p.stat().st_mtime_ns > edited}
    assert {f"{k}_resp_rr.{x}" for k in ("forest", "funnel") for x in ("png", "svg", "pdf")} <= changed, changed
    assert not {f for f in changed if "pain_md" in f or "pain_smd" in f}, changed
    assert "Nothing to be done" in (again := smk(wd)).stderr + again.stdout


def test_edit_after_deleting_snakemake_metadata_is_never_stale(run_once, tmp_path):
    """The fault run of issue 13: delete .snakemake/, edit one mean, run: the results follow the edit.

    The analysis's input is its evidence slice, rewritten by ingest only when its content changes, so the
    files alone (no digest in .snakemake/ metadata) decide what reruns.
    """
    wd = tmp_path / "wd4"
    shutil.copytree(run_once[0], wd, symlinks=True)
    shutil.rmtree(wd / ".snakemake")
    before = {r["analysis_id"]: r["estimate"] for r in csv.DictReader((wd / "results/pooled.csv").open())}
    edit_row(wd, "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,30,15,", "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,20,15,")
    run = smk(wd)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = jobs_run(run)
    assert jobs.get("analyse") == 2, jobs  # pain_md and pain_smd read a2001's pain rows; resp_rr does not
    # byte-identical to a cold run on the edited sheets
    cold = tmp_path / "cold"
    shutil.copytree(FIXTURE, cold)
    edit_row(cold, "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,30,15,", "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,20,15,")
    assert smk(cold).returncode == 0
    assert digest(wd) == digest(cold)
    after = {r["analysis_id"]: r["estimate"] for r in csv.DictReader((wd / "results/pooled.csv").open())}
    assert after["pain_md"] != before["pain_md"] and after["resp_rr"] == before["resp_rr"]
    shutil.rmtree(wd / ".snakemake")
    again = smk(wd)
    assert "Nothing to be done" in again.stderr + again.stdout, again.stderr[-2000:]


def test_deleted_slice_is_rebuilt_from_the_evidence(run_once, tmp_path):
    wd = tmp_path / "wd5"
    shutil.copytree(run_once[0], wd, symlinks=True)
    (wd / "data/processed/slices/pain_md.json").unlink()
    (wd / "results/analyses/pain_md.json").unlink()
    run = smk(wd, "results/analyses/pain_md.json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ingest" not in jobs_run(run) and jobs_run(run).get("evidence_slice") == 1
    assert digest(wd) == digest(run_once[0])


def test_invalid_sheet_stops_before_any_output(tmp_path):
    wd = tmp_path / "bad"
    shutil.copytree(FIXTURE, wd)
    p = wd / "data/raw/outcomes.csv"
    p.write_text(p.read_text().replace(",30,15,", ",30,-15,"))
    run = smk(wd)
    assert run.returncode == 1
    assert "data/raw/outcomes.csv:2: column sd: must be > 0 (found '-15')" in run.stderr
    assert "Traceback" not in run.stderr
    written = [p for d in ("results", "data/processed") if (wd / d).exists() for p in (wd / d).rglob("*") if p.is_file()]
    assert written == []


def test_analysis_results_follow_their_schema(run_once):
    import json

    import jsonschema
    import yaml

    wd = run_once[0]
    schema = yaml.safe_load((ROOT / "workflow/schemas/analysis_result.schema.yaml").read_text(encoding="utf-8"))
    v = jsonschema.Draft202012Validator(schema)
    paths = sorted((wd / "results/analyses").glob("*.json"))
    assert [p.stem for p in paths] == ["pain_md", "pain_smd", "resp_rr"]
    for p in paths:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(json.loads(p.read_text()))]
        assert errors == [], p.name
