"""What keeps cost linear at large k (issue 14); the figures themselves are in benchmarks/scale.py.

Leave-one-out and cumulative fits run in bounded-memory chunks and equal one big batch and the single
fits; Mantel-Haenszel / Peto ones above TABLE_SENSITIVITY_MAX_K are not computed and the analysis says
so (tests/test_subset_fits.py checks the fast inverse-variance subset fits); forest plots summarise
above FOREST_MAX_STUDIES and funnel plots draw one artist above MANY_POINTS; the report's study table
groups rows once.
"""

from __future__ import annotations

import copy
import io
from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tpsynth import analysis as analysis_mod
from tpsynth import pooling
from tpsynth.config import analysis_settings
from tpsynth.figures import forest, funnel
from tpsynth.report.build import study_table

RNG = np.random.default_rng(14)
YI = RNG.normal(0.3, 0.4, 40)
VI = RNG.uniform(0.01, 0.2, 40)
FIELDS = ("estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q", "k", "weights")


@pytest.mark.parametrize("method", ["REML", "DL", "PM", "FE"])
def test_chunked_subsets_equal_one_batch(method):
    k = YI.size
    loo = [np.delete(np.arange(k), i) for i in range(k)]
    cum = [np.arange(i + 1) for i in range(k)]
    for subsets in (loo, cum):
        whole = pooling.pool_subsets(YI, VI, subsets, method, "hksj", tau2_ci=False, chunk_rows=10**9)
        chunked = pooling.pool_subsets(YI, VI, subsets, method, "hksj", tau2_ci=False, chunk_rows=50)
        for f in FIELDS:
            assert_allclose(chunked[f], whole[f], rtol=1e-10, atol=1e-14, err_msg=f)


def test_chunked_meta_regression_subsets_equal_one_batch():
    X = np.column_stack([np.ones(YI.size), np.linspace(0, 1, YI.size)])
    loo = [np.delete(np.arange(YI.size), i) for i in range(YI.size)]
    whole = pooling.pool_subsets(YI, VI, loo, "REML", "wald", X=X, chunk_rows=10**9)
    chunked = pooling.pool_subsets(YI, VI, loo, "REML", "wald", X=X, chunk_rows=100)
    for f in ("beta", "se_beta", "tau2", "qm"):
        assert_allclose(chunked[f], whole[f], rtol=1e-10, atol=1e-14, err_msg=f)


def test_leave_one_out_and_cumulative_equal_single_fits():
    order = np.argsort(-VI)
    loo = pooling.leave_one_out(YI, VI, "REML", "hksj_adhoc", tau2_ci=False)
    cum = pooling.cumulative(YI, VI, order, "REML", "hksj_adhoc", tau2_ci=False)
    for i in (0, 17, 39):
        single = pooling.pool(np.delete(YI, i), np.delete(VI, i), "REML", "hksj_adhoc")
        assert_allclose([loo[i].estimate, loo[i].ci_low, loo[i].tau2], [single.estimate, single.ci_low, single.tau2],
                        rtol=1e-9)  # fmt: skip
        idx = order[: i + 1]
        single = pooling.pool(YI[idx], VI[idx], "REML", "hksj_adhoc")
        assert_allclose([cum[i].estimate, cum[i].ci_high, cum[i].i2], [single.estimate, single.ci_high, single.i2],
                        rtol=1e-9, atol=1e-12)  # fmt: skip


def test_cumulative_sensitivity_rows_are_the_prefix_fits(fixture_inputs):
    config, sheets, arms = fixture_inputs
    a = analysis_settings(config, "pain_md")
    res = analysis_mod.run_analysis(a, sheets, config, arms).to_dict()
    ids = [s["study_id"] for s in res["studies"]]
    by_id = {s["study_id"]: s for s in res["studies"]}
    cum = [s for s in res["sensitivity"] if s["kind"] == "cumulative"]
    assert cum[0]["k"] == 1 and cum[0]["tau2"] is None  # one study: as is
    for j in range(2, len(cum) + 1):
        members = [by_id[s["study_id"]] for s in cum[:j]]
        single = pooling.pool([m["yi"] for m in members], [m["vi"] for m in members], a["method"], a["ci"], a["level"])
        assert_allclose([cum[j - 1]["estimate"], cum[j - 1]["ci_low"], cum[j - 1]["tau2"]],
                        [single.estimate, single.ci_low, single.tau2], rtol=1e-9, atol=1e-12)  # fmt: skip
    assert len(ids) == len(cum)


def test_table_method_sensitivity_skipped_above_the_limit_with_a_note(fixture_inputs, monkeypatch):
    """Mantel-Haenszel / Peto subsets are pooled one by one (k² work): limited, with a note.  The
    inverse-variance methods have no limit."""
    config, sheets, arms = fixture_inputs
    monkeypatch.setattr(analysis_mod, "TABLE_SENSITIVITY_MAX_K", 1)
    res = analysis_mod.run_analysis(analysis_settings(config, "pain_md"), sheets, config, arms).to_dict()
    assert res["pooled"]["k"] == 4
    assert [s["kind"] for s in res["sensitivity"]].count("leave_one_out") == 4
    assert not any("not computed" in n for n in res["notes"])
    config = copy.deepcopy(config)
    config["analyses"]["resp_rr"]["method"] = "MH"
    res = analysis_mod.run_analysis(analysis_settings(config, "resp_rr"), sheets, config, arms).to_dict()
    assert res["pooled"]["k"] == 2
    assert not {s["kind"] for s in res["sensitivity"]} & {"leave_one_out", "cumulative"}
    assert any("leave-one-out and cumulative analyses not computed: k = 2 is above 1 for MH" in n for n in res["notes"])


def _svg(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue().decode()


def test_forest_summarises_above_the_limit(fixture_inputs, monkeypatch):
    config, sheets, arms = fixture_inputs
    res = analysis_mod.run_analysis(analysis_settings(config, "pain_md"), sheets, config, arms)
    k = len(res.studies)
    monkeypatch.setattr(forest, "FOREST_MAX_STUDIES", k)
    drawn = forest.forest_figure(res)
    assert f"study-square-{k - 1}" in _svg(drawn)
    monkeypatch.setattr(forest, "FOREST_MAX_STUDIES", k - 1)
    summarised = forest.forest_figure(res)
    svg = _svg(summarised)
    assert "study-square-0" not in svg and "studies-summarised" in svg
    assert summarised.get_size_inches()[1] < drawn.get_size_inches()[1]
    # height no longer grows with k
    many = replace(res, studies=tuple(replace(s, study_id=f"{s.study_id}_{i}") for i in range(50) for s in res.studies))
    assert forest.forest_figure(many).get_size_inches()[1] == summarised.get_size_inches()[1]


def test_funnel_draws_one_artist_above_the_limit(fixture_inputs, monkeypatch):
    config, sheets, arms = fixture_inputs
    res = analysis_mod.run_analysis(analysis_settings(config, "pain_md"), sheets, config, arms)
    monkeypatch.setattr(funnel, "MANY_POINTS", 2)
    svg = _svg(funnel.funnel_figure(res))
    assert "funnel-studies" in svg and "funnel-study-0" not in svg


def test_study_table_arms_per_study(fixture_inputs):
    _, sheets, _ = fixture_inputs
    rows = {r["study_id"]: r for r in study_table(sheets.studies, sheets.outcomes.rows(), sheets.contrasts, [])}
    for sid, row in rows.items():
        own = [r for r in sheets.outcomes.rows() if r["study_id"] == sid]
        arms = {}
        for r in own:
            arms[r["arm"]] = max(arms.get(r["arm"]) or 0, r.get("n") or 0) or None
        if own:
            assert row["arms"] == ", ".join(f"{a} {n:.0f}" if n else f"{a} n?" for a, n in arms.items()), sid
        else:
            assert row["arms"].startswith("contrast only") or row["arms"] == "\u2013", sid
