"""python -m tpsynth import-cochrane: Cochrane rows -> extraction sheets + config that validate and run."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tpsynth.cochrane import (
    PAIRWISE70_COLUMNS,
    CochraneImportError,
    import_cochrane,
    slugify,
)
from tpsynth.config import analysis_ids, load_config
from tpsynth.report.build import effect_summary, weeks
from tpsynth.results import AnalysisResult
from tpsynth.validate import validate_sheets

ROOT = Path(__file__).resolve().parent.parent
REAL_CORPUS = ROOT.parent / "shared" / "data" / "pairwise70" / "pairwise70.csv.gz"
COLS = PAIRWISE70_COLUMNS  # a synthetic corpus in the layout the importer reads


def _row(g, n, name, study, year, **kw):
    r = dict.fromkeys(COLS)
    r.update(review="CD999999_pub1", review_doi="10.1002/14651858.CD999999.pub1", analysis_group=g, analysis_number=n,
             analysis_name=name, study=study, study_year=year)  # fmt: skip
    r.update(kw)
    return r


def cochrane_rows() -> list[dict]:
    c = dict(exp_cases=0, ctl_cases=0, giv_mean=0, giv_se=0)  # the export's zero fill
    d = dict(exp_mean=0, exp_sd=0, ctl_mean=0, ctl_sd=0, giv_mean=0, giv_se=0)
    return [
        # 1.1 continuous, subgroups; Smith 2001 twice (two subgroups); Müller 2005 with a missing SD
        _row(1, 1, "Pain", "Smith 2001", "2001", subgroup="Neck", exp_mean=3.1, exp_sd=1.2, exp_n=30, ctl_mean=4.0, ctl_sd=1.1, ctl_n=31, rob_overall="Low risk", **c),
        _row(1, 1, "Pain", "Smith 2001", "2001", subgroup="Back", exp_mean=2.9, exp_sd=1.5, exp_n=25, ctl_mean=3.5, ctl_sd=1.4, ctl_n=24, rob_overall="High risk", **c),
        _row(1, 1, "Pain", "Müller 2005", "2005", subgroup="Neck", exp_mean=3.0, exp_sd=0, exp_n=20, ctl_mean=3.9, ctl_sd=1.3, ctl_n=20, **c),
        _row(1, 1, "Pain", "Jones 2010", "2010", subgroup="Back", exp_mean=2.5, exp_sd=1.0, exp_n=40, ctl_mean=3.2, ctl_sd=1.2, ctl_n=41, **c),
        _row(1, 1, "Pain", "Lee 2012", "2012", subgroup="Back", exp_mean=2.2, exp_sd=0.9, exp_n=0, ctl_mean=3.0, ctl_sd=1.0, ctl_n=18, **c),
        # 1.2 dichotomous: events > N, non-integer N, a zero cell
        _row(1, 2, "Responders", "Smith 2001", "2001", subgroup="Neck", exp_cases=12, exp_n=30, ctl_cases=6, ctl_n=31, **d),
        _row(1, 2, "Responders", "Jones 2010", "2010", subgroup="Back", exp_cases=45, exp_n=40, ctl_cases=10, ctl_n=41, **d),
        _row(1, 2, "Responders", "Lee 2012", "2012", exp_cases=5, exp_n=17.5, ctl_cases=3, ctl_n=18, **d),
        _row(1, 2, "Responders", "Kim 2015", "2015", exp_cases=0, exp_n=25, ctl_cases=4, ctl_n=25, **d),
        _row(1, 2, "Responders", "Park 2016", "2016", exp_cases=8, exp_n=30, ctl_cases=9, ctl_n=30, **d),
        # 2.1 generic inverse variance, ratio scale (Cochrane prints exp(giv_mean))
        _row(2, 1, "Hazard of relapse", "Smith 2001", "2001", giv_mean=-0.2, giv_se=0.1, cochrane_effect=math.exp(-0.2), exp_n=30, ctl_n=31),
        _row(2, 1, "Hazard of relapse", "Kim 2015", "2015", giv_mean=0.1, giv_se=0.2, cochrane_effect=math.exp(0.1), exp_n=25, ctl_n=25),
        _row(2, 1, "Hazard of relapse", "Smith, 2001", "2001", giv_mean=0.3, giv_se=0, cochrane_effect=math.exp(0.3), exp_n=10, ctl_n=10),
        # 1.10 after 1.2 (natural order), written before it in the file
        _row(1, 10, "Adverse events&nbsp;", "Kim 2015", "2015", exp_cases=3, exp_n=25, ctl_cases=1, ctl_n=25, **d),
        _row(1, 10, "Adverse events", "Park 2016", "2016", exp_cases=2, exp_n=30, ctl_cases=2, ctl_n=30, **d),
    ]  # fmt: skip


def write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows, columns=COLS).to_csv(path, index=False)
    return path


def read_csv(p: Path) -> list[dict]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def imported(tmp_path):
    src = write(tmp_path / "cochrane.csv", cochrane_rows())
    out = tmp_path / "review"
    summary = import_cochrane(src, out)
    return out, summary


def test_sheets_validate_and_keep_bad_rows_with_reasons(imported):
    out, summary = imported
    assert "4 analyses" in summary
    config = load_config(out / "config" / "config.yaml")
    raw = out / "data" / "raw"
    sheets, problems = validate_sheets(str(raw / "studies.csv"), str(raw / "outcomes.csv"), str(raw / "contrasts.csv"), config)
    assert problems == [], "\n".join(map(str, problems))
    rows = read_csv(raw / "outcomes.csv")
    assert len(rows) == 2 * 12  # two arms per arm-level Cochrane row, none dropped
    assert {r["higher_is_better"] for r in rows} == {""}  # blank: the outcome's direction, which is unknown
    reasons = {(r["study_id"], r["outcome"], r["arm"]): r["unusable_reason"] for r in rows if r["unusable_reason"]}
    assert reasons == {
        ("muller_2005", "a1_1", "experimental"): "SD missing in the Cochrane row (0)",
        ("lee_2012", "a1_1", "experimental"): "N missing or 0 in the Cochrane row (0)",
        ("jones_2010", "a1_2", "experimental"): "events exceed N in the Cochrane row (45 > 40)",
        ("lee_2012", "a1_2", "experimental"): "N is not a whole number in the Cochrane row (17.5)",
    }
    contrasts = read_csv(raw / "contrasts.csv")
    assert [c["measure"] for c in contrasts] == ["RR"] * 3
    assert float(contrasts[0]["estimate"]) == pytest.approx(math.exp(-0.2))
    assert contrasts[2]["unusable_reason"]  # SE 0


def test_study_ids_unique_slugs_and_repeated_entries(imported):
    out, _ = imported
    studies = read_csv(out / "data" / "raw" / "studies.csv")
    ids = [s["study_id"] for s in studies]
    assert len(ids) == len(set(ids))
    # "Smith, 2001" slugs like "Smith 2001": de-duplicated; Smith 2001's second entry in 1.1 is smith_2001_2
    assert {"smith_2001", "smith_2001_2", "smith_2001_3", "muller_2005", "kim_2015"} <= set(ids)
    by = {s["study_id"]: s for s in studies}
    assert by["smith_2001"]["year"] == "2001" and by["smith_2001"]["author"] == "Smith"
    assert by["smith_2001_2"]["cochrane_subgroup"] == "Back"  # constant for that entry
    assert by["smith_2001"]["cochrane_subgroup"] == ""  # Neck in 1.1 and 1.2, none in 2.1: in notes
    assert "Cochrane subgroups" in by["smith_2001"]["notes"]
    assert by["smith_2001"]["rob_overall"] == "low" and by["smith_2001_2"]["rob_overall"] == "high"
    assert slugify("Ørsted-Ünal 1999a") == "orsted_unal_1999a"


def test_config_entries(imported):
    out, _ = imported
    cfg = yaml.safe_load((out / "config" / "config.yaml").read_text(encoding="utf-8"))
    assert set(cfg["interventions"]) == {"experimental", "control"}
    assert list(cfg["analyses"]) == ["analysis_1_1", "analysis_1_2", "analysis_1_10", "analysis_2_1"]
    assert analysis_ids(cfg) == list(cfg["analyses"])
    a = cfg["analyses"]
    assert [a[x]["measure"] for x in a] == ["SMD", "RR", "RR", "RR"]
    assert cfg["defaults"]["ci"] == "hksj_adhoc" and cfg["defaults"]["method"] == "REML"  # the schema's defaults
    # Cochrane rows carry no direction: unknown (null), not "lower is better"
    assert {o["higher_is_better"] for o in cfg["outcomes"].values()} == {None}
    assert {(x["intervention_label"], x["comparator_label"]) for x in a.values()} == {("experimental", "control")}
    assert all(x["timepoint_weeks"] == [0, 0] for x in a.values())
    assert cfg["outcomes"]["a1_2"]["type"] == "dichotomous"
    assert cfg["outcomes"]["a1_10"]["label"] == "Adverse events"  # HTML entity of the export removed
    assert "subgroup" not in a["analysis_1_1"]  # smith_2001 (in it) has no constant subgroup


def test_review_and_analysis_selection(tmp_path):
    rows = cochrane_rows()
    other = [dict(r, review="CD888888_pub2") for r in rows[:3]]
    src = write(tmp_path / "two.csv", rows + other)
    with pytest.raises(CochraneImportError, match="2 reviews"):
        import_cochrane(src, tmp_path / "x")
    with pytest.raises(CochraneImportError, match="no analysis 9.9"):
        import_cochrane(src, tmp_path / "x", review="CD999999_pub1", analysis="9.9")
    with pytest.raises(CochraneImportError, match="not found"):
        import_cochrane(src, tmp_path / "x", review="CD0")
    import_cochrane(src, tmp_path / "one", review="CD999999_pub1", analysis="1.2")
    cfg = yaml.safe_load((tmp_path / "one" / "config" / "config.yaml").read_text(encoding="utf-8"))
    assert list(cfg["analyses"]) == ["analysis_1_2"]
    assert cfg["data"]["contrasts"] is None and not (tmp_path / "one" / "data" / "raw" / "contrasts.csv").exists()
    proc = subprocess.run([sys.executable, "-m", "tpsynth", "import-cochrane", str(src), "--out", str(tmp_path / "y")],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 1 and "--review" in proc.stderr


@pytest.mark.pipeline
def test_imported_directory_runs_through_the_pipeline(imported):
    out, _ = imported
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(out), "-c", "2",
         "results/pooled.csv"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    pooled = {r["analysis_id"]: r for r in read_csv(out / "results" / "pooled.csv")}
    assert pooled["analysis_1_1"]["k"] == "3"  # Smith 2001 twice + Jones; Müller (SD) and Lee (N = 0) excluded
    assert pooled["analysis_1_2"]["k"] == "3"
    assert pooled["analysis_2_1"]["k"] == "2"
    assert list(pooled) == ["analysis_1_1", "analysis_1_2", "analysis_1_10", "analysis_2_1"]  # natural order
    # direction unknown: nothing flipped (Cochrane's experimental minus control) and neutral wording
    res = AnalysisResult.from_json(out / "results" / "analyses" / "analysis_1_1.json")
    assert res.outcome.higher_is_better is None
    assert not any("sign flipped" in n for s in res.studies for n in s.notes)
    jones = next(s for s in res.studies if s.study_id == "jones_2010")
    assert jones.yi < 0  # experimental 2.5 vs control 3.2: negative, as Cochrane shows it
    summary = effect_summary(res)
    assert summary["favours"] == "values above 0 mean higher with experimental (which direction is better is not set)"
    assert weeks(res.settings.timepoint_weeks) == "0 weeks"
    flow = read_csv(out / "data" / "processed" / "dataflow.csv")
    excluded = [r for r in flow if r["state"] == "excluded"]
    assert any("events exceed N" in r["reason"] for r in excluded)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CORPUS.is_file(), reason="Pairwise70 corpus not present")
def test_real_review_agrees_with_bench_corpus(tmp_path, monkeypatch):
    from tpsynth import corpus
    from tpsynth.config import analysis_settings
    from tpsynth.validate import load_sheets

    out = tmp_path / "cd004871"
    import_cochrane(REAL_CORPUS, out, review="CD004871_pub5")
    monkeypatch.chdir(out)
    config = load_config("config/config.yaml")
    sheets = load_sheets(config)
    from tpsynth.analysis import run_analysis

    bench = tmp_path / "bench.csv"
    corpus.bench_corpus(REAL_CORPUS, bench, quiet=True)
    ref = pd.read_csv(bench)
    ref = ref[ref.review == "CD004871_pub5"].set_index(["analysis_group", "analysis_number"])
    checked = 0
    for (g, n), r in ref.iterrows():
        if r["k"] < 2:
            continue
        res = run_analysis(analysis_settings(config, f"analysis_{g}_{n}"), sheets, config)
        assert res.pooled.k == r["k"]
        assert res.pooled.estimate == pytest.approx(r["estimate"], rel=1e-9)
        assert res.pooled.tau2 == pytest.approx(r["tau2"], rel=1e-6, abs=1e-12)
        checked += 1
    assert checked >= 5
