"""The HTML report: content, escaping, provenance, determinism, and a real headless Chromium.

One Snakemake run on the fixture workspace (module fixture) feeds every test. When the Snakefile
includes the report rule the run builds results/report.html itself; otherwise the run stops at the
analyses and the report is built here through tpsynth.report with stand-in figures.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tpsynth.config import load_config
from tpsynth.report import build
from tpsynth.results import AnalysisResult
from tpsynth.validate import load_sheets

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
IDS = ["pain_md", "pain_smd", "resp_rr"]
MODERATED = "pain_smd"  # given moderators: [year] in the workspace (one bubble plot)
N_IMAGES = 2 * len(IDS) + 1 + 1  # forest and funnel per analysis, the summary figure, the bubble plot
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
XSS = "<script>alert(1)</script>"


def _png(width: int = 4, height: int = 3) -> bytes:
    """A tiny valid grey PNG (stand-in figure)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _report_rule_included() -> bool:
    return "workflow/rules/report.smk" in (ROOT / "Snakefile").read_text()


def _figure_paths(wd: Path) -> dict[str, str]:
    paths = {"summary": str(wd / "results/figures/summary.svg")}
    for a in IDS:
        paths[f"forest_{a}"] = str(wd / f"results/figures/forest_{a}.svg")
        paths[f"funnel_{a}"] = str(wd / f"results/figures/funnel_{a}.svg")
    for svg in sorted((wd / f"results/figures/bubble_{MODERATED}").glob("*.svg")):  # as scripts/report.py
        paths[f"bubble_{MODERATED}/{svg.stem}"] = str(svg)
    return paths


def _build_here(wd: Path, source_date_epoch: str | None = "1700000000") -> str:
    config = load_config(wd / "config/config.yaml")
    return build.build_report(
        analysis_paths=[str(wd / f"results/analyses/{a}.json") for a in IDS], config=config,
        evidence_path=str(wd / "data/processed/evidence.json"),
        config_paths=[str(wd / "config/config.yaml")], dataflow_path=str(wd / "data/processed/dataflow.csv"),
        arms_path=str(wd / "data/processed/arms.csv"), pooled_path=str(wd / "results/pooled.csv"),
        figure_paths=_figure_paths(wd), basedir=str(wd), source_date_epoch=source_date_epoch,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The fixture workspace after one pipeline run, with results/report.html."""
    wd = tmp_path_factory.mktemp("report_wd")
    shutil.copytree(FIXTURE, wd, dirs_exist_ok=True)
    # one analysis with a moderator, so that the run draws a bubble plot and the report shows a meta-regression
    cfg = wd / "config/config.yaml"
    config = yaml.safe_load(cfg.read_text())
    config["analyses"][MODERATED]["moderators"] = ["year"]
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "-c", "2"]
    if _report_rule_included():
        cmd.append("results/report.html")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    if not (wd / "results/report.html").exists():  # the Snakefile does not include the report rule yet
        (wd / "results/figures").mkdir(parents=True, exist_ok=True)
        for p in _figure_paths(wd).values():
            Path(p).write_bytes(_png())
        (wd / "results/report.html").write_text(_build_here(wd), encoding="utf-8")
    return wd


@pytest.fixture(scope="module")
def inputs(workspace):
    """Everything build_context needs, read from the workspace."""
    wd = workspace
    config = load_config(wd / "config/config.yaml")
    data = {k: str(wd / v) for k, v in config["data"].items() if v}
    sheets = load_sheets({**config, "data": data})
    analyses = [AnalysisResult.from_json(wd / f"results/analyses/{a}.json") for a in IDS]
    figures = {k: build.data_uri(v) for k, v in _figure_paths(wd).items()}
    prov = build.provenance([("config/config.yaml", str(wd / "config/config.yaml"))], [], None, "1700000000")
    return {
        "analyses": analyses, "config": config, "studies": sheets.studies, "outcomes": sheets.outcomes.rows(),
        "contrasts": sheets.contrasts, "flow_rows": build.read_csv(wd / "data/processed/dataflow.csv"),
        "arms": build.read_csv(wd / "data/processed/arms.csv"), "figures": figures, "prov": prov,
    }  # fmt: skip


def _render(inputs, **changes) -> str:
    kw = copy.deepcopy(inputs)
    kw.update(changes)
    return build.render(build.build_context(**kw))


class _Tables(HTMLParser):
    """Rows of the table whose class is given (tbody only)."""

    def __init__(self, cls: str):
        super().__init__()
        self.cls, self.depth, self.in_body, self.rows = cls, 0, False, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and self.cls in (a.get("class") or "").split():
            self.depth = 1
        elif tag == "tbody" and self.depth:
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows += 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.depth = 0


# --------------------------------------------------------------------------------------------------
# content


@pytest.mark.pipeline
def test_report_written_and_self_contained(workspace):
    html = (workspace / "results/report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html.split("<main>")[0]), (
        "external resource in head"
    )
    assert not re.search(r"""<(img|link|iframe|object|embed|source)[^>]+(src|href)=["'](?!data:|#)""", html)
    assert "@import" not in html and "url(" not in html
    assert html.count('src="data:image/svg+xml;base64,') == N_IMAGES  # vector figures, text as text
    assert 'src="data:image/png' not in html
    assert "@media print" in html


@pytest.mark.pipeline
def test_every_analysis_has_a_section_and_toc_entry(workspace):
    html = (workspace / "results/report.html").read_text(encoding="utf-8")
    for a in IDS:
        assert f'<section class="analysis" id="analysis-{a}">' in html
        assert f'href="#analysis-{a}"' in html
    for sec in ("key-findings", "evidence-base", "analyses", "methods", "provenance", "limitations"):
        assert f'id="{sec}"' in html and f'href="#{sec}"' in html


@pytest.mark.pipeline
def test_meta_regression_section_equals_the_csv(workspace):
    """The analysis with moderators: its report section shows results/meta_regression.csv and
    results/meta_regression_fit.csv, written by tpsynth.display, and the bubble plot on disk inline."""
    from tpsynth import display

    html = (workspace / "results/report.html").read_text(encoding="utf-8")
    section = html.split(f'id="analysis-{MODERATED}"', 1)[1].split("</section>", 1)[0]
    assert "<h4>Meta-regression on year</h4>" in section
    for other in IDS:
        if other != MODERATED:
            other_section = html.split(f'id="analysis-{other}"', 1)[1].split("</section>", 1)[0]
            assert "Meta-regression" not in other_section
    coef = [r for r in build.read_csv(workspace / "results/meta_regression.csv") if r["analysis_id"] == MODERATED]
    fit = next(r for r in build.read_csv(workspace / "results/meta_regression_fit.csv") if r["analysis_id"] == MODERATED)
    assert [r["term"] for r in coef] == ["intrcpt", "year"]
    for r, label in zip(coef, ["Intercept", "year (per 1 unit)"], strict=True):
        est, lo, hi, stat, p = (float(r[c]) for c in ("estimate", "ci_low", "ci_high", "statistic", "pvalue"))
        cells = f"<td>{label}</td><td>{display.effect(est, lo, hi, digits=3)}</td><td class=\"n\">{display.number(stat)}</td>"
        assert cells + f"<td>{display.p_value(p)}</td>" in section
    qm, qm_p, qe, qe_p = (float(fit[c]) for c in ("qm", "qm_pvalue", "qe", "qe_pvalue"))
    assert f"F({fit['qm_df']}, {fit['qm_df2']}) = {display.number(qm)}, {display.p_value(qm_p)}" in section  # hksj
    assert f"QE = {display.number(qe)} on {fit['qe_df']} df, {display.p_value(qe_p)}" in section
    assert f"tau² = {display.small(float(fit['tau2']))}" in section
    assert "Cochrane Handbook 10.11.5" in section  # 4 studies for one moderator
    svg = workspace / f"results/figures/bubble_{MODERATED}/year.svg"
    assert f'src="{build.data_uri(svg)}"' in section


@pytest.mark.pipeline
def test_summary_of_findings_rows(inputs):
    html = _render(inputs)
    parser = _Tables("sof")
    parser.feed(html)
    assert parser.rows == len(IDS)
    rows = {a.analysis_id: build.sof_row(a) for a in inputs["analyses"]}
    md = rows["pain_md"]
    assert md["effect"]["label"] == "MD, points on 0–10"
    assert md["k"] == 4 and md["participants"] == 268
    assert md["certainty"] in {"high", "moderate", "low", "very low"}
    assert md["plain_language"] and md["plain_language"] in html
    smd = next(a for a in inputs["analyses"] if a.analysis_id == "pain_smd")
    if smd.smd_in_points:
        assert rows["pain_smd"]["effect"]["points_text"].startswith("≈ ")
        assert build.num(smd.smd_in_points.estimate) in rows["pain_smd"]["effect"]["points_text"]


@pytest.mark.pipeline
def test_ratio_measures_are_exponentiated(inputs):
    rr = next(a for a in inputs["analyses"] if a.analysis_id == "resp_rr")
    p = rr.pooled
    eff = build.effect_summary(rr)
    assert eff["estimate"] == pytest.approx(math.exp(p.estimate))
    assert eff["ci_low"] == pytest.approx(math.exp(p.ci_low))
    assert eff["ci_high"] == pytest.approx(math.exp(p.ci_high))
    assert eff["text"].startswith(build.ratio(math.exp(p.estimate)) + " (95% CI ")
    assert build.ratio(math.exp(p.ci_high)) in eff["text"]
    assert "values above 1 favour" in eff["favours"]
    # by hand: log RR 0 is RR 1, log(2) is 2
    assert build.effect_text("RR", 0.0, math.log(0.5), math.log(2.0)) == "1.00 (95% CI 0.50 to 2.00)"
    assert build.effect_text("MD", -0.5, -1.0, 0.0) == "\u22120.50 (95% CI \u22121.00 to 0.00)"
    assert build.ratio(6411.2) == "6,411" and build.ratio(0.000692) == "0.00069"


@pytest.mark.pipeline
def test_text_from_the_data_is_escaped(inputs):
    studies = copy.deepcopy(inputs["studies"])
    studies[0]["author"] = XSS
    studies[0]["citation"] = 'Evil "quoted" & <b>bold</b>'
    studies[0]["source"] = 'https://example.org/a"onmouseover="x <img src=x>'
    analyses = [a.to_dict() for a in inputs["analyses"]]
    for a in analyses:
        a["notes"].append(f"note {XSS}")
        for s in a["studies"]:
            if s["study_id"] == studies[0]["study_id"]:
                s["author"] = XSS
                s["notes"] = [XSS]
        a["settings"]["title"] = f"{a['settings']['title']} {XSS}"
        a["caveat_sentences"].append("<i>caveat</i>")
    html = _render(inputs, studies=studies, analyses=[AnalysisResult.from_dict(a) for a in analyses])
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "note &lt;script&gt;" in html
    assert "&lt;i&gt;caveat&lt;/i&gt;" in html and "<i>caveat</i>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<img src=x>" not in html
    assert 'onmouseover="x' not in html


def test_linkify_escapes_and_links():
    out = str(build.linkify('see https://a.org/x?y=1&z=2 | <b>not</b> "q"'))
    assert (
        '<a href="https://a.org/x?y=1&amp;z=2" rel="noreferrer noopener">https://a.org/x?y=1&amp;z=2</a>'
        in out
    )
    assert "&lt;b&gt;not&lt;/b&gt; &#34;q&#34;" in out
    assert str(build.linkify(None)) == ""


@pytest.mark.pipeline
def test_dataflow_counts_and_groups(inputs):
    flow = build.dataflow_summary(inputs["flow_rows"], inputs["analyses"])
    assert flow["totals"] == {"extracted": 20, "analysable": 18, "used": 12}
    assert {s["sheet"]: s["extracted"] for s in flow["sheets"]} == {"outcomes": 18, "contrasts": 2}
    assert {g["reason"] for g in flow["unusable"]} == {"SD not reported", "percentages only"}
    reasons = {ex for g in flow["left_out"] for ex in g["examples"]}
    assert "non-randomised study; the analysis is randomised-only" in reasons
    assert any("drop00" in r for r in reasons)
    per = {r["analysis_id"]: r for r in flow["per_analysis"]}
    assert per["pain_md"]["rows"] == 8 and per["pain_md"]["k"] == 4


@pytest.mark.pipeline
def test_methods_follow_config_and_data(inputs):
    m = build.methods(inputs["config"], inputs["analyses"], inputs["arms"])
    assert {x["code"] for x in m["tau2_methods"]} == {"REML"}
    assert {x["code"] for x in m["ci_methods"]} == {"hksj", "wald"}
    assert {x["code"] for x in m["measures"]} == {"MD", "SMD", "RR"}
    present = {r["mean_method"] for r in inputs["arms"]} | {r["sd_method"] for r in inputs["arms"]}
    assert {c["method"] for c in m["conversions"]} == present - {""}
    assert {r["key"] for r in m["certainty"]} >= {"alpha", "power", "ratio_threshold"}
    names = [s["name"] for s in m["software"]]
    assert names == ["python", "numpy", "scipy", "statsmodels", "pandas", "matplotlib", "snakemake", "jinja2"]
    html = _render(inputs)
    for s in m["software"]:
        assert f"{s['name']} {s['version']}" in html


@pytest.mark.pipeline
def test_sections_cover_heterogeneity_sensitivity_and_small_study(inputs):
    a = next(a for a in inputs["analyses"] if a.analysis_id == "pain_md")
    sec = build.analysis_section(a, inputs["figures"])
    assert sec["heterogeneity"]["estimable"]
    assert sec["sensitivity"]["loo_range"] is not None
    assert len(sec["sensitivity"]["leave_one_out"]) == a.pooled.k
    assert len(sec["sensitivity"]["cumulative"]) == a.pooled.k
    assert "k = 4 < 10" in sec["small_study"]["skipped_reason"]
    html = _render(inputs)
    assert str(build.escape(sec["small_study"]["skipped_reason"])) in html
    for sentence in a.caveat_sentences:
        assert str(build.escape(sentence)) in html


# --------------------------------------------------------------------------------------------------
# provenance and determinism


@pytest.mark.pipeline
def test_provenance_hashes_equal_hashlib(workspace, tmp_path):
    files = [workspace / "data/raw/studies.csv", workspace / "config/config.yaml"]
    prov = build.provenance([(p.name, str(p)) for p in files], [], tmp_path, None)
    assert [f["sha256"] for f in prov["inputs"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    ]
    assert prov["git_commit"] == "not a git checkout"
    html = (workspace / "results/report.html").read_text(encoding="utf-8")
    for rel in (
        "data/raw/studies.csv",
        "data/raw/outcomes.csv",
        "data/raw/contrasts.csv",
        "config/config.yaml",
    ):
        assert hashlib.sha256((workspace / rel).read_bytes()).hexdigest() in html, rel


def test_date_is_deterministic(tmp_path):
    assert build.report_date("1700000000", 1, [2.0])["date"] == "2023-11-14 22:13 UTC"
    d = build.report_date(None, 1700000000, [1800000000.0])
    assert d["date"] == "2023-11-14 22:13 UTC" and "git" in d["how"]
    assert build.report_date(None, None, [1700000000.5, 1.0])["how"].startswith("modification time")
    assert build.git_info(tmp_path) == {"commit": None, "epoch": None, "dirty": False}


@pytest.mark.pipeline
def test_rendering_twice_gives_identical_bytes(workspace, inputs):
    assert _render(inputs).encode() == _render(inputs).encode()
    first = _build_here(workspace, "1700000000")
    assert first.encode() == _build_here(workspace, "1700000000").encode()
    assert "2023-11-14 22:13 UTC" in first


# --------------------------------------------------------------------------------------------------
# a real browser


@pytest.mark.pipeline
@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it"
)
def test_report_in_headless_chromium(workspace, tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = (workspace / "results/report.html").resolve()
    page_url = page_path.as_uri()
    shots = Path(os.environ.get("REPORT_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def route(r):
                requests.append(r.request.url)
                if r.request.url == page_url:
                    r.continue_()
                else:
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("request", lambda req: requests.append(req.url))
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_url, wait_until="load")
            page.wait_for_load_state("networkidle")

            imgs = page.evaluate(
                "() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
            )
            assert len(imgs) == N_IMAGES
            for alt, complete, w, h in imgs:
                assert complete and w > 0 and h > 0, alt
            missing = page.evaluate(
                """() => Array.from(document.querySelectorAll('nav.toc a[href^="#"], main a[href^="#"]'))
                    .map(a => a.getAttribute('href').slice(1))
                    .filter(id => !document.getElementById(decodeURIComponent(id)))"""
            )
            assert missing == []
            n_toc = page.evaluate("() => document.querySelectorAll('nav.toc a').length")
            assert n_toc == 7 + len(IDS)
            assert page.evaluate("() => document.scripts.length") == 0
            page.screenshot(path=str(shots / "report.png"), full_page=True)
            # phone width (issue 9): at 390 px nothing makes the page wider than the screen
            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            phone.route("**/*", route)
            small = phone.new_page()
            small.goto(page_url, wait_until="load")
            width = small.evaluate("() => document.documentElement.scrollWidth")
            wide = small.evaluate(
                """() => Array.from(document.querySelectorAll('body *'))
                    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                    .filter(e => !e.closest('.table-wrap'))
                    .map(e => e.tagName + '.' + e.className).slice(0, 10)"""
            )
            assert width <= 390 and wide == [], (width, wide)
            small.screenshot(path=str(shots / "report-phone.png"), full_page=False)
            phone.close()
            page.emulate_media(media="print")
            page.screenshot(path=str(shots / "report-print.png"), full_page=True)
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
        finally:
            browser.close()
    assert errors == []
    assert set(requests) == {page_url}, requests
    assert (shots / "report.png").stat().st_size > 10_000


@pytest.mark.pipeline
def test_title_question_population_from_config(inputs):
    html = _render(inputs)
    assert "<title>Evidence synthesis report</title>" in html  # nothing hard-coded about trigger points
    cfg = copy.deepcopy(inputs["config"])
    cfg["report"] = {"title": "Acupuncture <review>", "question": "Does it help?", "population": "Adults",
                     "search": "MEDLINE and CENTRAL to 2025."}  # fmt: skip
    html = _render(inputs, config=cfg)
    assert "<title>Acupuncture &lt;review&gt;</title>" in html
    assert "Does it help?" in html and "Adults" in html
    # the evidence base comes before any finding
    assert html.index("MEDLINE and CENTRAL to 2025.") < html.index('<table class="sof">')


@pytest.mark.pipeline
def test_no_usable_evidence_has_no_badge_and_no_plots(inputs):
    analyses = [x.to_dict() for x in inputs["analyses"]]
    a = next(x for x in analyses if x["analysis_id"] == "pain_md")
    a["pooled"] = {"k": 0, "n_participants": 0, "measure": "MD", "certainty": "no usable evidence",
                   "certainty_reasons": "no study with usable data", "notes": []}  # fmt: skip
    a.update(studies=[], sensitivity=[], subgroups=[], bayes=None, bayes_sensitivity=[], bayes_note="no usable study",
             small_study={"k": 0, "skipped_reason": "no studies"}, imprecision_judged_on=None)  # fmt: skip
    html = _render(inputs, analyses=[AnalysisResult.from_dict(x) for x in analyses])
    sec = html[html.index(f'id="{build.anchor("pain_md")}"'):]
    sec = sec[: sec.index("</section>")]
    assert "No usable evidence." in sec and "<img" not in sec and "cert-" not in sec
    assert "No forest or funnel plot" in sec
    lim = html[html.index('id="limitations"'):]
    assert "no usable evidence" in lim and "1 very low" not in lim.split("Certainty of the evidence:")[1][:80]


@pytest.mark.pipeline
def test_bayesian_section_and_headline_in_report(inputs):
    html = _render(inputs)
    md = next(x for x in inputs["analyses"] if x.analysis_id == "pain_md")
    assert md.pooled.k < 5 and md.bayes.headline
    assert "credible interval" in html and "Prior sensitivity" in html
    assert "Imprecision judged on the Bayesian 95% credible interval" in html
    assert 'id="glossary"' in html and "Q-profile" in html
