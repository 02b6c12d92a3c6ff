"""Rows that an analysis will leave out are warned about by ``validate`` (FILE:LINE: column), never a plain OK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings, validate_config
from tpsynth.tables import dataflow_rows
from tpsynth.validate import exclusion_warnings, validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"

FIXTURE_WARNINGS = [
    "data/raw/outcomes.csv:11: column events: excluded from analysis resp_rr: no events (or only events) in both "
    "arms: left out (metafor drop00=TRUE)",
    "data/raw/outcomes.csv:12: column events: excluded from analysis resp_rr: no events (or only events) in both "
    "arms: left out (metafor drop00=TRUE)",
    "data/raw/outcomes.csv:17: column study_id: excluded from analyses pain_md, pain_smd: non-randomised study; "
    "the analysis is randomised-only",
    "data/raw/outcomes.csv:18: column study_id: excluded from analyses pain_md, pain_smd: non-randomised study; "
    "the analysis is randomised-only",
    "data/raw/contrasts.csv:2: column measure: excluded from analysis pain_smd: reported as MD; the analysis pools SMD",
    "data/raw/contrasts.csv:3: column unusable_reason: excluded from analysis resp_rr: unusable as extracted: "
    "percentages only",
]


def config() -> dict:
    return validate_config(yaml.safe_load(Path("config/config.yaml").read_text()))


def warnings(cfg: dict | None = None) -> list[str]:
    cfg = cfg or config()
    sheets, problems = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg)
    assert problems == []
    return [str(w) for w in exclusion_warnings(sheets, cfg)]


def edit(path, old, new):
    p = Path(path)
    text = p.read_text()
    assert old in text, f"fixture does not contain {old!r}"
    p.write_text(text.replace(old, new))


def test_fixture_warnings(ws):
    assert warnings() == FIXTURE_WARNINGS


def test_md_instrument_without_scale_is_warned(ws):
    # b2005's arms lose their scale: the MD analysis cannot rescale NPRS to 0-10 and leaves the study out
    edit("data/raw/outcomes.csv", "NPRS_0_10,false,2,final,15,3.1,,0.5,,,,,,,,,0,10,", "NPRS_0_10,false,2,final,15,3.1,,0.5,,,,,,,,,,,")
    got = [w for w in warnings() if "scale" in w]
    assert got == [
        "data/raw/outcomes.csv:6: column scale_min: excluded from analysis pain_md: MD needs scale_min/scale_max "
        "for instrument NPRS_0_10 to rescale it to the outcome's reference scale 0-10",
    ]
    # the SMD analysis needs no scale: nothing is said about it
    assert not any("pain_smd" in w and "scale" in w for w in warnings())


def test_unusable_row_outside_every_window_is_not_warned(ws):
    # a2001's 26-week row (line 19) is unusable but outside every analysis's 0-12 week window
    assert not any(":19:" in w for w in warnings())
    edit("data/raw/outcomes.csv", "a2001,dn,dn,pain,VAS_0_100,false,26,final,", "a2001,dn,dn,pain,VAS_0_100,false,12,final,")
    assert "data/raw/outcomes.csv:19: column unusable_reason: excluded from analyses pain_md, pain_smd: unusable as " \
        "extracted: SD not reported" in warnings()


def test_warnings_are_excluded_rows_of_the_dataflow(ws):
    """Every warned row ends as `excluded` in dataflow.csv with the warned reason (same rules, not a copy)."""
    cfg = config()
    sheets, _ = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg)
    from tpsynth.harmonise import harmonise

    ingest = harmonise(sheets)[1].rows()
    results = {a: run_analysis(analysis_settings(cfg, a), sheets, cfg).to_dict() for a in cfg["analyses"]}
    final = {(f["sheet"], int(f["line"])): f for f in dataflow_rows(ingest, list(results.values()))}
    found = exclusion_warnings(sheets, cfg)
    assert found
    for w in found:
        key = ("outcomes" if w.file.endswith("outcomes.csv") else "contrasts", w.line)
        which, reason = w.message.removeprefix("excluded from ").split(": ", 1)
        for aid in which.removeprefix("analyses ").removeprefix("analysis ").split(", "):
            assert aid not in final[key]["analyses"].split(";"), w
            per_analysis = {(f["sheet"], f["line"]): f for f in results[aid]["flow"]}
            if key in per_analysis:  # refused by the analysis
                assert per_analysis[key]["state"] == "not_used" and per_analysis[key]["reason"] == reason, w
            else:  # left out at ingest (unusable or not harmonisable)
                assert final[key]["state"] == "excluded" and reason in final[key]["reason"], w
        if final[key]["state"] == "excluded":
            assert reason in final[key]["reason"], (w, final[key]["reason"])


def test_cli_warns_and_does_not_say_ok(ws):
    run = subprocess.run([sys.executable, "-m", "tpsynth", "validate"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [f"warning: {w}" for w in FIXTURE_WARNINGS]
    assert not run.stdout.startswith("OK")
    assert run.stdout.startswith("Valid, with 6 warnings: 5 studies, 18 outcome rows, 2 contrast rows;")
    strict = subprocess.run([sys.executable, "-m", "tpsynth", "validate", "--strict"], capture_output=True, text=True)
    assert strict.returncode == 1


def test_cli_ok_when_nothing_is_left_out(ws):
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())
    cfg["analyses"] = {"pain_md": cfg["analyses"]["pain_md"]}
    Path("config/config.yaml").write_text(yaml.safe_dump(cfg))
    edit("data/raw/studies.csv", "d2015,Delta,2015,parallel,false,", "d2015,Delta,2015,parallel,true,")
    run = subprocess.run([sys.executable, "-m", "tpsynth", "validate"], capture_output=True, text=True)
    assert (run.returncode, run.stderr, run.stdout) == (0, "", "OK: 5 studies, 18 outcome rows, 2 contrast rows\n")


def test_dataflow_rows_in_place_equal_copied(ws):
    """collect lets dataflow_rows update the evidence's flow entries in place (copy=False): the rows are the
    same as with copies, and with copies the entries given are left as they were."""
    import copy

    cfg = config()
    sheets, _ = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg)
    from tpsynth.harmonise import harmonise

    ingest = harmonise(sheets)[1].rows()
    results = [run_analysis(analysis_settings(cfg, a), sheets, cfg).to_dict() for a in cfg["analyses"]]
    before = copy.deepcopy(ingest)
    copied = dataflow_rows(ingest, results)
    assert ingest == before
    assert {r["state"] for r in copied} == {"used", "excluded"}
    assert dataflow_rows(ingest, results, copy=False) == copied
