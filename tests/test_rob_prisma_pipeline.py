"""A user's risk_of_bias.csv and screening log through the workflow: traffic-light and summary plots,
domain columns in the forest plot, the PRISMA diagram and both in the report; byte-identical reruns."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.pipeline

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
ROB_SHEET = (
    "study_id,outcome,tool,d1,d2,d3,d4,d5,overall,support_d4\n"
    "a2001,,rob2,low,low,some_concerns,high,low,,assessor not blinded\n"
    "b2005,,rob2,low,high,low,low,low,high,\n"
    "c2010,pain,rob2,low,low,some_concerns,low,low,some_concerns,\n"
)
FIGS = ["rob_traffic_light", "rob_summary", "rob_summary_pain_md", "prisma", "forest_pain_md"]


def workspace(tmp: Path, palette: str) -> Path:
    shutil.copytree(FIXTURES / "minimal", tmp, dirs_exist_ok=True)
    studies = tmp / "data/raw/studies.csv"
    studies.write_text(studies.read_text().replace("a2001,Alpha,2001,parallel,true,lumbar,low,",
                                                   "a2001,Alpha,2001,parallel,true,lumbar,not_assessed,"))  # fmt: skip
    (tmp / "data/raw/risk_of_bias.csv").write_text(ROB_SHEET)
    shutil.copy(FIXTURES / "prisma/screening.csv", tmp / "data/raw/screening.csv")
    cfg_path = tmp / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["data"].update(risk_of_bias="data/raw/risk_of_bias.csv", screening="data/raw/screening.csv")
    cfg["report"] = {"palette": palette}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp


def run(wd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "-c", "2"]
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SOURCE_DATE_EPOCH="0"))


def digests(wd: Path) -> dict[str, str]:
    return {f"{f}.{e}": hashlib.sha256((wd / "results/figures" / f"{f}.{e}").read_bytes()).hexdigest()
            for f in FIGS for e in ("png", "svg", "pdf")}  # fmt: skip


def test_rob_and_prisma_outputs_and_report(tmp_path):
    wd = workspace(tmp_path / "wd", "colourblind")
    r = run(wd)
    assert r.returncode == 0, r.stderr[-3000:]
    first = digests(wd)
    svg = (wd / "results/figures/forest_pain_md.svg").read_text()
    assert 'id="rob-head-5"' in svg and 'id="rob-0-d4"' in svg  # D1-D5 + overall columns
    tl = (wd / "results/figures/rob_traffic_light.svg").read_text().lower()
    assert "#fe9929" in tl and "#02c100" not in tl  # the colour-blind palette
    html = (wd / "results/report.html").read_text()
    for anchor in ('id="prisma"', 'id="risk-of-bias"', "weighted by its weight in the pooled estimate"):
        assert anchor in html, anchor
    import re

    row = re.search(r'id="study-a2001".*?</tr>', html, flags=re.S).group(0)
    assert 'class="rob rob-high"' in row  # the studies table shows the sheet's judgement (derived high), not not_assessed
    pooled = (wd / "results/pooled.csv").read_text()
    assert "risk of bias (-1)" in pooled and "high risk in D2" in pooled
    # byte-identical rerun from scratch
    for d in ("results", "data/processed", ".snakemake"):
        shutil.rmtree(wd / d, ignore_errors=True)
    r = run(wd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert digests(wd) == first


def test_inconsistent_overall_stops_the_workflow(tmp_path):
    wd = workspace(tmp_path / "wd", "cochrane")
    (wd / "data/raw/risk_of_bias.csv").write_text(ROB_SHEET.replace("a2001,,rob2,low,low,some_concerns,high,low,,",
                                                                    "a2001,,rob2,low,low,some_concerns,high,low,low,"))
    r = run(wd)
    assert r.returncode != 0
    assert ("data/raw/risk_of_bias.csv:2: column overall: 'low' disagrees with the RoB 2 algorithm" in r.stderr)
    assert not (wd / "results").exists() or not any((wd / "results").iterdir())
