"""Tests of tpsynth.small_study against metafor (regtest, trimfill).

Reference values: tests/reference/small_study.json, written by
tests/reference/make_reference.R.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpsynth.small_study import egger_many, egger_test, trim_and_fill

REF = json.loads((Path(__file__).parent / "reference" / "small_study.json").read_text())
RTOL = 1e-6


def arr(x):
    if x is None:
        return np.array([np.nan])
    a = np.atleast_1d(np.array(x, dtype=object))
    return np.array([np.nan if e is None else float(e) for e in a], dtype=float)


@pytest.mark.parametrize("c", REF["egger"], ids=lambda c: c["name"])
def test_egger_matches_regtest(c):
    r = egger_test(c["yi"], c["vi"])
    assert r.df == c["ddf"] == r.k - 2
    np.testing.assert_allclose(r.t, c["zval"], rtol=RTOL)
    np.testing.assert_allclose(r.pvalue, c["pval"], rtol=RTOL)
    np.testing.assert_allclose(r.slope, c["slope"], rtol=RTOL)
    np.testing.assert_allclose(r.slope_se, c["slope_se"], rtol=RTOL)
    np.testing.assert_allclose(r.intercept, c["intercept"], rtol=RTOL)
    np.testing.assert_allclose(r.intercept, c["est"], rtol=RTOL)
    np.testing.assert_allclose(r.intercept_se, c["intercept_se"], rtol=RTOL)
    np.testing.assert_allclose(r.limit_ci_low, c["ci_lb"], rtol=RTOL)
    np.testing.assert_allclose(r.limit_ci_high, c["ci_ub"], rtol=RTOL)


def test_egger_many_fits_all_reference_sets_in_one_call():
    """The vectorised form (used by the corpus) against regtest, rows shuffled across groups."""
    cases = REF["egger"]
    y = np.concatenate([c["yi"] for c in cases])
    v = np.concatenate([c["vi"] for c in cases])
    g = np.concatenate([np.full(len(c["yi"]), j) for j, c in enumerate(cases)])
    perm = np.random.default_rng(1).permutation(y.size)
    out = egger_many(y[perm], v[perm], g[perm], len(cases))
    for j, c in enumerate(cases):
        np.testing.assert_allclose(
            [out["t"][j], out["pvalue"][j], out["slope"][j], out["slope_se"][j], out["intercept"][j],
             out["intercept_se"][j], out["limit_ci_low"][j], out["limit_ci_high"][j]],
            [c["zval"], c["pval"], c["slope"], c["slope_se"], c["intercept"], c["intercept_se"], c["ci_lb"],
             c["ci_ub"]], rtol=RTOL)  # fmt: skip


def test_egger_many_degenerate_groups_are_nan():
    y = np.array([0.1, 0.2, 0.3, 0.1, 0.5, 0.2, 0.4, 0.1, 0.3, 0.2])
    v = np.array([0.1, 0.1, 0.1, 0.2, 0.3, 0.05, 0.07, 0.1, 0.2, 0.3])
    g = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 3])  # equal SEs; k = 2; k = 2; fine
    out = egger_many(y, v, g, 4)
    for key, val in out.items():
        assert np.all(np.isnan(val[:3])), key
        assert np.isfinite(val[3]), key


def test_egger_detects_asymmetry_and_validates():
    c = next(c for c in REF["egger"] if c["name"] == "right_side")
    assert egger_test(c["yi"], c["vi"]).pvalue < 1e-4
    with pytest.raises(ValueError):
        egger_test([0.1, 0.2], [0.1, 0.2])
    with pytest.raises(ValueError):
        egger_test([0.1, 0.2, 0.3], [0.1, 0.1, 0.1])


def tf_id(c):
    return f"{c['name']}-{c['method']}-{c['estimator']}"


@pytest.mark.parametrize("c", REF["trimfill"], ids=tf_id)
def test_trimfill_matches_metafor(c):
    r = trim_and_fill(c["yi"], c["vi"], method=c["method"], estimator=c["estimator"])
    assert r.side == c["side"]
    assert r.k0 == c["k0"]
    np.testing.assert_allclose(r.se_k0, c["se_k0"], rtol=RTOL)
    if c["estimator"] == "R0":
        np.testing.assert_allclose(r.p_k0, c["p_k0"], rtol=RTOL)
    else:
        assert np.isnan(r.p_k0)
    if r.k0 > 0:
        np.testing.assert_allclose(r.yi_filled, arr(c["yi_filled"]), rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(r.vi_filled, arr(c["vi_filled"]), rtol=RTOL)
    else:
        assert r.yi_filled.size == 0
    res = r.result
    assert res.k == c["k"] == len(c["yi"]) + r.k0
    for ours, theirs in [
        ("estimate", "beta"),
        ("se", "se"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
        ("pvalue", "pval"),
        ("q", "QE"),
    ]:
        np.testing.assert_allclose(getattr(res, ours), c[theirs], rtol=RTOL, err_msg=ours)
    for ours, theirs in [("tau2", "tau2"), ("i2", "I2")]:
        np.testing.assert_allclose(getattr(res, ours), c[theirs], rtol=RTOL, atol=1e-9, err_msg=ours)


def test_trimfill_reference_covers_both_sides():
    sides = {(c["side"], c["k0"] > 0) for c in REF["trimfill"]}
    assert ("left", True) in sides and ("right", True) in sides


def test_trimfill_explicit_side_and_symmetric_data():
    y = np.array([-0.3, -0.1, 0.0, 0.1, 0.3])
    v = np.array([0.05, 0.02, 0.01, 0.02, 0.05])
    r = trim_and_fill(y, v, method="FE")
    assert r.k0 == 0 and r.result.k == 5
    c = next(c for c in REF["trimfill"] if c["name"] == "right_side" and c["method"] == "FE")
    left = trim_and_fill(c["yi"], c["vi"], method="FE", side="left")
    right = trim_and_fill(c["yi"], c["vi"], method="FE")
    assert right.side == "right" and right.k0 > 0
    assert np.all(right.yi_filled > right.result.estimate - 1e-12)
    assert left.result.estimate <= right.result.estimate
    with pytest.raises(ValueError):
        trim_and_fill(c["yi"], c["vi"], estimator="Q9")


def test_aliases_used_by_analysis():
    from tpsynth import small_study

    c = next(
        c
        for c in REF["trimfill"]
        if c["name"] == "hackshaw" and c["method"] == "REML" and c["estimator"] == "L0"
    )
    tf = small_study.trimfill(c["yi"], c["vi"], method="REML", ci="wald", level=0.95)
    assert tf.k0 == c["k0"]
    np.testing.assert_allclose(
        [tf.estimate, tf.ci_low, tf.ci_high], [c["beta"], c["ci_lb"], c["ci_ub"]], rtol=RTOL
    )
    np.testing.assert_allclose(tf.filled_yi, arr(c["yi_filled"]), rtol=RTOL)
    eg = small_study.egger_test(c["yi"], c["vi"])
    assert eg.statistic == eg.t
