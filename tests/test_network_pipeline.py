"""Network meta-analysis from the sheets: study selection, config checks, tables, figures and the
Snakemake stage, all on the hand-made fixture workspace (never the shipped data)."""

from __future__ import annotations

import copy
import csv
import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tpsynth.config import ConfigError, validate_config
from tpsynth.figures.common import save_all
from tpsynth.figures.network import league_figure, network_forest_figure, network_graph_figure
from tpsynth.network_analysis import (
    ESTIMATE_COLUMNS,
    FIT_COLUMNS,
    network_settings,
    network_tables,
    run_network,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"

NETWORK = {
    "title": "Pain network (fixture)",
    "outcome": "pain",
    "timepoint_weeks": [0, 12],
    "measure": "MD",
    "method": "REML",
    "reference": "Usual care",
    "nodes": {"Needling": ["dn"], "Manual": ["ic"], "Sham": ["sham"], "Usual care": ["usual"]},
}


@pytest.fixture()
def net_config(fixture_inputs):
    config, sheets, arms = fixture_inputs
    config = copy.deepcopy(config)
    config["networks"] = {"pain_net": copy.deepcopy(NETWORK)}
    return validate_config(config), sheets, arms


def test_study_selection(net_config):
    config, sheets, arms = net_config
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    studies = {s["study_id"]: s for s in r["studies"]}
    # a2001 (VAS 0-100 rescaled to 0-10), b2005 with all three arms at its latest timepoint in the window
    # (2 weeks), c2010 (five-number summaries), e2020 through its reported contrast; d2015 not randomised
    assert set(studies) == {"a2001", "b2005", "c2010", "e2020"}
    assert studies["b2005"]["timepoint_weeks"] == 2 and studies["b2005"]["nodes"] == ["Needling", "Manual", "Sham"]
    assert studies["e2020"]["source"] == "contrast" and studies["e2020"]["nodes"] == ["Needling", "Usual care"]
    assert {e["study_id"]: e["reason"] for e in r["excluded"]}["d2015"].startswith("non-randomised")
    assert r["nodes_without_studies"] == [] and len(r["parts"]) == 1
    part = r["parts"][0]
    a = next(p for p in part["pairs"] if p["treatment"] == "Needling" and p["comparator"] == "Sham")
    # direct evidence: a2001 (30 - 45 on 0-100 -> -1.5) and b2005's needling and sham arms (3.1 - 5.2),
    # pooled by inverse variance with tau^2 added
    v_a = (1.5**2 + 1.8**2) / 20
    v_b = 0.5**2 + 2.1**2 / 15  # needling SD from SE: 0.5 sqrt(15)
    tau2 = part["tau2"]
    w = [1 / (v_a + tau2), 1 / (v_b + tau2)]
    assert a["direct_k"] == 2
    assert math.isclose(a["direct_estimate"], (w[0] * -1.5 + w[1] * -2.1) / sum(w), rel_tol=1e-9)
    assert math.isclose(sum(a["contribution"].values()), 1.0)
    for p in part["pairs"]:
        assert p["confidence"] in ("high", "moderate", "low", "very low")
        assert set(p["domains"]) == {"within-study bias", "reporting bias", "indirectness", "imprecision",
                                     "heterogeneity", "incoherence"}  # fmt: skip


def test_codes_in_no_node_are_listed(net_config):
    config, sheets, arms = net_config
    config["networks"]["pain_net"]["nodes"] = {"Needling": ["dn"], "Sham": ["sham"], "Usual care": ["usual"]}
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    assert r["unassigned_codes"] == ["ic"]
    assert any("in no node" in f["reason"] for f in r["flow"])


def test_disconnected_parts_are_not_compared(net_config):
    config, sheets, arms = net_config
    # without b2005's manual arm and the contrast study, needling-sham and manual-usual care fall apart
    sheets2 = copy.copy(sheets)
    sheets2.contrasts = []
    arms2 = [a for a in arms if not (a["study_id"] == "b2005" and a["intervention"] == "ic")]
    r = run_network(network_settings(config, "pain_net"), sheets2, config, arms2)
    assert [p["treatments"] for p in r["parts"]] == [["Needling", "Sham"], ["Manual", "Usual care"]]
    assert r["parts"][1]["reference"] == "Usual care" and r["parts"][0]["reference"] == "Needling"
    t = network_tables([r])
    assert [row["network_id"] for row in t["fit"]] == ["pain_net.part1", "pain_net.part2"]
    pairs = {(row["treatment"], row["comparator"]) for row in t["estimates"]}
    assert ("Needling", "Manual") not in pairs and ("Manual", "Usual care") in pairs
    assert len(pairs) == 4


def test_validate_warns_about_rows_a_network_leaves_out(net_config):
    from tpsynth.validate import exclusion_warnings

    config, sheets, _ = net_config
    warnings = [str(w) for w in exclusion_warnings(sheets, config)]
    mine = [w for w in warnings if "network:pain_net" in w]
    # d2015 is not randomised; its two pain rows are named with the column to look at
    assert sum("study_id" in w and "non-randomised" in w for w in mine) == 2
    assert all("outcomes.csv:" in w or "contrasts.csv:" in w for w in mine)


def test_dataflow_counts_network_use():
    from tpsynth.tables import dataflow_rows

    ingest = [{"sheet": "outcomes", "line": "2", "state": "analysable", "reason": ""},
              {"sheet": "outcomes", "line": "3", "state": "analysable", "reason": ""}]  # fmt: skip
    analysis = {"analysis_id": "a", "flow": [{"sheet": "outcomes", "line": 2, "state": "not_used", "reason": "why"},
                                             {"sheet": "outcomes", "line": 3, "state": "not_used", "reason": "why"}]}  # fmt: skip
    network = {"network_id": "n", "flow": [{"sheet": "outcomes", "line": 2, "state": "used", "reason": ""},
                                           {"sheet": "outcomes", "line": 3, "state": "not_used", "reason": "other"}]}  # fmt: skip
    rows = dataflow_rows(ingest, [analysis, network])
    assert rows[0]["state"] == "used" and rows[0]["analyses"] == "network:n"
    assert rows[1]["state"] == "excluded" and rows[1]["reason"] == "a: why"


def test_smd_read_in_points(net_config):
    from tpsynth.report.network import network_section

    config, sheets, arms = net_config
    config["networks"]["pain_net"]["measure"] = "SMD"
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    sd = r["representative_sd"]
    assert sd is not None and math.isclose(r["mid"], 1.5 / sd)
    sentences = network_section(r, {})["parts"][0]["sentences"]
    p = next(q for q in r["parts"][0]["pairs"] if q["comparator"] == r["parts"][0]["reference"])
    assert f"about {p['estimate'] * sd:.1f} points on the 0–10 scale".replace("-", "\u2212") in sentences[0]


def test_empty_and_single_trial_networks(net_config, tmp_path):
    from tpsynth.report.build import environment
    from tpsynth.report.network import network_section

    config, sheets, arms = net_config
    net = config["networks"]["pain_net"]
    net["timepoint_weeks"] = [100, 200]  # no trial in the window
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    assert r["parts"] == [] and r["nodes_without_studies"] == ["Needling", "Manual", "Sham", "Usual care"]
    assert network_tables([r]) == {"estimates": [], "fit": [], "ranks": []}
    for build in (network_graph_figure, network_forest_figure, league_figure):
        save_all(build(r), tmp_path / build.__name__, ("png",))
    assert "pain_net" in environment().get_template("network.html.j2").render(networks=[network_section(r, {})])
    net["timepoint_weeks"] = [1, 1]  # only c2010 (manual vs usual care) and b2005's week-1 arms
    net["nodes"] = {"Manual": ["ic"], "Usual care": ["usual"]}
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    part = r["parts"][0]
    assert part["k"] == 1 and part["q_df"] == 0 and part["tau2"] is None
    assert all(p["pi_low"] is None for p in part["pairs"])
    assert "not estimable" in part["notes"][0]


@pytest.mark.parametrize("change,message", [
    (lambda n: n["nodes"].update({"Sham": ["sham", "dn"]}), "also in node"),
    (lambda n: n.update({"reference": "Placebo"}), "not one of its nodes"),
    (lambda n: n.update({"measure": "OR"}), "does not fit the continuous outcome"),
    (lambda n: n["nodes"].update({"Sham": ["sham", "nonexistent"]}), "not declared under interventions"),
    (lambda n: n.update({"timepoint_weeks": [5, 1]}), "above maximum"),
])  # fmt: skip
def test_config_errors_name_the_key(fixture_inputs, change, message):
    config = copy.deepcopy(fixture_inputs[0])
    net = copy.deepcopy(NETWORK)
    change(net)
    config["networks"] = {"pain_net": net}
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(config)
    assert "networks.pain_net" in str(err.value)


def test_tables_follow_node_order(net_config):
    config, sheets, arms = net_config
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    t = network_tables([r])
    order = r["parts"][0]["treatments"]
    assert order == ["Needling", "Manual", "Sham", "Usual care"]
    assert [(x["treatment"], x["comparator"]) for x in t["estimates"]] == [(a, b) for a in order for b in order if a != b]
    assert set(t["estimates"][0]) == set(ESTIMATE_COLUMNS) and set(t["fit"][0]) == set(FIT_COLUMNS)
    assert [x["treatment"] for x in t["ranks"]] == order


def test_figures_are_byte_identical(net_config, tmp_path):
    config, sheets, arms = net_config
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    for build in (network_graph_figure, network_forest_figure, league_figure):
        one = save_all(build(r), tmp_path / "one" / build.__name__)
        two = save_all(build(r), tmp_path / "two" / build.__name__)
        for p, q in zip(one, two, strict=True):
            assert p.read_bytes() == q.read_bytes(), p.name


def test_report_section(net_config):
    from tpsynth.report.build import environment
    from tpsynth.report.network import network_section

    config, sheets, arms = net_config
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    sec = network_section(r, {})
    html = environment().get_template("network.html.j2").render(networks=[sec])
    assert 'id="network-pain_net"' in html and "Which treatment?" in html
    part = sec["parts"][0]
    assert len(part["comparisons"]) == 6 and [x["treatment"] for x in part["ranks"]][0] in part["treatments"]
    top_conf = {p["confidence"] for p in r["parts"][0]["pairs"] if p["treatment"] == part["ranks"][0]["treatment"]}
    if top_conf & {"low", "very low"}:
        assert "A ranking is not evidence of benefit" in " ".join(part["plain"])
    assert any("transitivity" in c for c in sec["caveats"])
    # a node without trials is named as unconnected
    r2 = copy.deepcopy(r)
    r2["nodes_without_studies"] = ["Manual"]
    assert any("Not connected" in c and "Manual" in c for c in network_section(r2, {})["caveats"])


def test_figures_draw_node_names_as_plain_text(net_config, tmp_path):
    import matplotlib
    from matplotlib.text import Text

    config, sheets, arms = net_config
    config["networks"]["pain_net"]["nodes"] = {"Needling $x^$": ["dn"], "Manual": ["ic"], "US$50 sham": ["sham"],
                                               "Usual care": ["usual"]}  # fmt: skip
    config["networks"]["pain_net"]["title"] = r"$\frac{}{}$ network"
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    with matplotlib.rc_context({"text.parse_math": True}):
        for build in (network_graph_figure, network_forest_figure, league_figure):
            fig = build(r)
            texts = [t for t in fig.findobj(Text) if t.get_text()]
            assert texts and not any(t.get_parse_math() for t in texts)
            save_all(fig, tmp_path / build.__name__, ("png",))
            assert any("$" in t.get_text() for t in texts)
    # ratio measures: a log axis with plain tick labels (no mathtext markup left in the text)
    net = config["networks"]["pain_net"]
    net.update(outcome="resp", measure="OR")
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    assert r["parts"]
    fig = network_forest_figure(r)
    labels = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
    assert not any("mathdefault" in x for x in labels) and "1" in labels


@pytest.mark.pipeline
def test_snakemake_stage(tmp_path):
    wd = tmp_path / "wd"
    shutil.copytree(FIXTURE, wd)
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["networks"] = {"pain_net": NETWORK}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = ["results/network_estimates.csv", "results/network_fit.csv", "results/network_ranks.csv"]
    figs = [f"results/figures/{k}_pain_net.{e}" for k in ("network_graph", "network_forest", "league") for e in ("png", "svg", "pdf")]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "-c", "2", *targets, *figs]
    run = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 0, run.stderr[-3000:]
    first = {f: hashlib.sha256((wd / f).read_bytes()).hexdigest() for f in targets + figs}
    est = list(csv.DictReader((wd / "results/network_estimates.csv").open()))
    # config node order (not alphabetical) survives the evidence slice
    assert [(r["treatment"], r["comparator"]) for r in est[:3]] == [("Needling", "Manual"), ("Needling", "Sham"),
                                                                    ("Needling", "Usual care")]  # fmt: skip
    rows = list(csv.DictReader((wd / "results/network_fit.csv").open()))
    assert rows[0]["network_id"] == "pain_net" and rows[0]["k"] == "4"
    assert (wd / "logs/network/pain_net.log").read_text().count("codes in no node") == 1
    rerun = subprocess.run([*cmd, "--forceall"], capture_output=True, text=True, env=dict(os.environ))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert first == {f: hashlib.sha256((wd / f).read_bytes()).hexdigest() for f in targets + figs}
    report = subprocess.run([*cmd[:-len(targets) - len(figs)], "results/report.html"], capture_output=True, text=True,
                            env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"))  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    html = (wd / "results/report.html").read_text(encoding="utf-8")
    assert 'id="network-pain_net"' in html and html.count("data:image/svg+xml;base64,") >= 3
    assert "Which treatment? (network meta-analyses" in html  # answered among the key findings
    flow = list(csv.DictReader((wd / "data/processed/dataflow.csv").open()))
    assert any("network:pain_net" in r["analyses"].split(";") for r in flow)


def test_unknown_direction_is_phrased_neutrally(net_config, tmp_path):
    """An outcome with higher_is_better: null (imported data): no ranking, no "better" or "favour" in the
    report's network section, empty P-scores in the ranks table, figures still drawn."""
    from tpsynth.report.build import environment
    from tpsynth.report.network import network_section

    config, sheets, arms = net_config
    outcome = config["networks"]["pain_net"]["outcome"]
    config["outcomes"][outcome]["higher_is_better"] = None
    r = run_network(network_settings(config, "pain_net"), sheets, config, arms)
    assert r["higher_is_better"] is None and r["parts"]
    assert all(v is None for v in r["parts"][0]["p_scores"].values())
    assert all(x["p_score"] is None for x in network_tables([r])["ranks"])
    sec = network_section(r, {})
    text = " ".join(sec["parts"][0]["plain"] + sec["parts"][0]["sentences"]) + " " + sec["favours"]
    assert " better;" not in text and "better than" not in text and "ranks first" not in text and "favour" not in text
    assert "ranks none" in text and "mean higher with the first-named treatment" in sec["favours"]
    assert sec["parts"][0]["ranks"] == []
    html = environment().get_template("network.html.j2").render(networks=[sec])
    assert "none: the outcome&#39;s direction is not set" in html or "none: the outcome's direction is not set" in html
    for build in (network_graph_figure, network_forest_figure, league_figure):
        save_all(build(r), tmp_path / build.__name__, ("svg",))
