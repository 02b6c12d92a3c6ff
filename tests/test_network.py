"""Network meta-analysis against metafor's rma.mv, netmeta's published Stowe2010 numbers and an R
reproduction of netmeta's formulas (tests/reference/make_network_reference.R -> network.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tpsynth.multivariate import fit_mv
from tpsynth.network import block_from_arms, block_from_contrast, components, fit_network

REF = json.loads((Path(__file__).parent / "reference" / "network.json").read_text())
RTOL = 1e-6


def close(a, b, rtol=RTOL, atol=1e-10):
    if b is None:
        return a is None or not math.isfinite(a)
    return abs(a - b) <= rtol * abs(b) + atol


def blocks_for(name):
    net = REF["networks"][name]
    order = net["treatments"]
    by_study: dict[str, list[dict]] = {}
    for a in net["arms"]:
        by_study.setdefault(str(a["study"]), []).append(a)
    blocks = []
    for sid, arms in by_study.items():
        arms = sorted(arms, key=lambda a: order.index(a["treatment"]))
        b = block_from_arms(sid, [a["treatment"] for a in arms], arms, net["measure"])
        if b is not None:
            blocks.append(b)
    return blocks, order


CASES = [(n, i, m) for n in ("senn2013", "hasselblad1998", "stowe2010", "disconnected")
         for i in range(len(REF["networks"][n]["parts"])) for m in ("REML", "ML", "FE", "DL")]


@pytest.fixture(scope="module")
def fits():
    cache = {}
    for name in REF["networks"]:
        blocks, order = blocks_for(name)
        parts = components(blocks, order)
        for i, part in enumerate(parts):
            sub = [b for b in blocks if b.nodes[0] in part]
            for m in ("REML", "ML", "FE", "DL"):
                cache[(name, i, m)] = fit_network(sub, part, method=m)
        cache[(name, "parts")] = parts
    return cache


@pytest.mark.parametrize("name,part,method", CASES)
def test_matches_metafor(fits, name, part, method):
    ref = REF["networks"][name]["parts"][part]
    r = ref["fits"][method]
    f = fits[(name, part, method)]
    assert f.treatments == ref["treatments"]
    assert f.k == ref["k"]
    assert close(f.tau2, r["tau2"], atol=1e-12)
    assert close(f.q, ref["q"]) and f.q_df == ref["q_df"]
    assert close(f.fit.loglik, r["logLik"])
    for p in r["pairs"]:
        got = f.pair(p["treatment"], p["comparator"])
        for key in ("estimate", "se", "ci_low", "ci_high", "direct_estimate", "direct_se",
                    "indirect_estimate", "indirect_se", "split_pvalue"):
            # limits close to 0: 1e-6 of the standard error as absolute tolerance
            assert close(getattr(got, key), p[key], atol=RTOL * p["se"]), (key, p["treatment"], p["comparator"], getattr(got, key), p[key])
        if method != "FE":
            assert close(got.pi_low, p["pi_low"], atol=RTOL * p["se"])
            assert close(got.pi_high, p["pi_high"], atol=RTOL * p["se"])
    for t, v in r["p_score_lower_better"].items():
        assert close(f.p_scores[t], v)


@pytest.mark.parametrize("name,part", [(n, i) for n in REF["networks"] for i in range(len(REF["networks"][n]["parts"]))])
def test_design_decomposition(fits, name, part):
    ref = REF["networks"][name]["parts"][part]
    f = fits[(name, part, "DL")]
    assert f.n_designs == ref["n_designs"]
    assert close(f.q_within, ref["q_within"]) and f.q_within_df == ref["q_within_df"]
    assert close(f.q_between, ref["q_between"]) and f.q_between_df == ref["q_between_df"]
    assert close(f.tau2_within, ref["tau2_within"], atol=1e-12)
    assert close(f.q_between_random, ref["q_between_random"])
    assert close(f.i2, ref["i2_dl"])


@pytest.mark.parametrize("name,part", [(n, i) for n in REF["networks"] for i in range(len(REF["networks"][n]["parts"]))])
def test_dl_equals_netmeta_formula(fits, name, part):
    """netmeta's (Q - df) / tr((I - H)(B B' * E / 2) W) on all pairwise comparisons with reduced weights,
    computed in R from netmeta's definitions, equals the generalised DL tau² fitted here."""
    ref = REF["networks"][name]["parts"][part]
    f = fits[(name, part, "DL")]
    assert close(f.q, ref["q_netmeta"]) and close(f.tau2, ref["tau2_dl_netmeta"])


def test_stowe2010_published_netmeta():
    """Balduzzi et al. (2023), J Stat Softw 106(2), section on Stowe2010 (netmeta, DL)."""
    blocks, order = blocks_for("stowe2010")
    f = fit_network(blocks, order, method="DL", higher_is_better=False)
    assert round(f.tau2, 4) == 0.1518
    assert round(f.i2, 1) == 43.9
    assert round(f.q, 2) == 48.15 and f.q_df == 27
    assert round(f.q_within, 2) == 46.91 and f.q_within_df == 25
    assert round(f.q_between, 2) == 1.24 and f.q_between_df == 2
    ps = {t: round(v, 4) for t, v in f.p_scores.items()}
    assert ps == {"Placebo": 0.0, "Dopamine Agonist": 0.9677, "COMTI": 0.4659, "MAOBI": 0.5664}


def test_disconnected_network_is_split(fits):
    parts = fits[("disconnected", "parts")]
    assert [p[0] for p in parts] == ["senn:placebo", "stowe:Placebo"]
    blocks, order = blocks_for("disconnected")
    with pytest.raises(ValueError, match="connected"):
        fit_network(blocks, order)


def test_reference_choice_does_not_change_results():
    blocks, order = blocks_for("senn2013")
    a = fit_network(blocks, order, method="REML")
    b = fit_network(blocks, order, reference="sitagliptin", method="REML")
    for p in a.pairs:
        q = b.pair(p.treatment, p.comparator)
        assert close(q.estimate, p.estimate, 1e-9) and close(q.se, p.se, 1e-9)


def test_two_arm_contrast_equals_arm_data():
    arms = [{"n": 20, "mean": 3.0, "sd": 2.0}, {"n": 25, "mean": 1.5, "sd": 2.5}]
    b1 = block_from_arms("s", ["A", "B"], arms, "MD")
    b2 = block_from_contrast("s", "A", "B", -1.5, 4 / 20 + 6.25 / 25)
    assert np.allclose(b1.y, b2.y) and np.allclose(b1.V, b2.V)


def test_three_arm_covariances():
    arms = [{"n": 10, "events": 0}, {"n": 12, "events": 3}, {"n": 11, "events": 5}]
    b = block_from_arms("s", ["A", "B", "C"], arms, "OR")
    # 0.5 added to every arm of the study; covariance = variance of the shared arm's log odds
    assert b.info["zero_cell_added"]
    assert math.isclose(b.V[0, 1], 1 / 0.5 + 1 / 10.5)
    assert math.isclose(b.y[0], math.log(3.5 / 9.5) - math.log(0.5 / 10.5))
    assert block_from_arms("s", ["A", "B"], [{"n": 5, "events": 0}, {"n": 6, "events": 0}], "OR") is None
    smd = block_from_arms("s", ["A", "B", "C"], [{"n": 10, "mean": 1, "sd": 1}, {"n": 10, "mean": 2, "sd": 1},
                                                  {"n": 10, "mean": 3, "sd": 1}], "SMD")
    g = smd.y
    assert math.isclose(smd.V[0, 1], 1 / 10 + g[0] * g[1] / 60)


def test_star_network_and_single_trial_node():
    blocks, order = blocks_for("stowe2010")
    star = [b for b in blocks if len(b.nodes) == 2]  # drop the three-arm trial: a star around placebo
    f = fit_network(star, order, method="REML")
    assert f.n_designs == 3 and f.q_between_df == 0
    for p in f.pairs:  # no loop: every estimate is direct only or indirect only
        assert math.isnan(p.split_pvalue)
    senn, sorder = blocks_for("senn2013")
    single = [b for b in senn if "vildagliptin" in b.nodes]
    assert len(single) == 1
    g = fit_network(senn, sorder, method="REML")
    assert math.isfinite(g.pair("vildagliptin", "placebo").se)


def test_contributions_sum_to_one_and_direct_only():
    blocks, order = blocks_for("stowe2010")
    f = fit_network(blocks, order, method="DL")
    for p in f.pairs:
        assert math.isclose(sum(p.contribution.values()), 1.0)
    p = f.pair("Dopamine Agonist", "Placebo")  # only direct evidence: its own studies contribute all
    assert set(p.contribution) == {b.study_id for b in blocks if set(b.nodes) == {"Placebo", "Dopamine Agonist"}}


def test_fit_mv_rejects_rank_deficient_design():
    with pytest.raises(ValueError, match="full column rank"):
        fit_mv([1.0, 2.0], np.eye(2), np.ones((2, 2)), np.eye(2))


@pytest.mark.parametrize("name", sorted(REF["contributions_two_arm"]))
def test_contributions_match_shortest_path_algorithm_in_r(name):
    """Per-comparison contributions equal an igraph implementation of Papakonstantinou et al. (2018)'s
    shortest-path flow decomposition (netmeta netcontrib 'shortestpath'), on two-arm networks."""
    ref = REF["contributions_two_arm"][name]
    blocks, order = blocks_for(name)
    blocks = [b for b in blocks if len(b.nodes) == 2]
    f = fit_network(blocks, order, method="REML")
    assert close(f.tau2, ref["tau2"])
    edge_of = {b.study_id: f"{b.nodes[0]}:{b.nodes[1]}" for b in blocks}
    for p in ref["pairs"]:
        got: dict[str, float] = {}
        for sid, c in f.pair(p["treatment"], p["comparator"]).contribution.items():
            got[edge_of[sid]] = got.get(edge_of[sid], 0.0) + c
        for edge, c in p["contribution"].items():
            assert abs(got.get(edge, 0.0) - c) < 1e-6, (p["treatment"], p["comparator"], edge, got.get(edge), c)


def test_unknown_direction_gives_no_p_scores():
    """higher_is_better=None (direction unknown): same estimates, no P-scores, a note says why."""
    blocks, order = blocks_for("stowe2010")
    known = fit_network(blocks, order, method="DL", higher_is_better=False)
    unknown = fit_network(blocks, order, method="DL", higher_is_better=None)
    assert all(math.isnan(v) for v in unknown.p_scores.values()) and set(unknown.p_scores) == set(order)
    assert any("direction is not set" in n for n in unknown.notes)
    assert [p.estimate for p in unknown.pairs] == [p.estimate for p in known.pairs]
    assert unknown.tau2 == known.tau2 and unknown.q == known.q
