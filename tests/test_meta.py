"""Tests of the fit object and meta-regression (tpsynth.meta) against metafor.

Reference values: tests/reference/metareg.json, written by tests/reference/make_reference.R
(rma with mods for every estimator and test, predict(newmods), confint, exact permutest).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpsynth import meta_analysis, pooling
from tpsynth.meta import design_matrix

REF = json.loads((Path(__file__).parent / "reference" / "metareg.json").read_text())
POOL = json.loads((Path(__file__).parent / "reference" / "pooling.json").read_text())
RTOL = 1e-6


def arr(x):
    a = np.atleast_1d(np.array(x, dtype=object))
    return np.array([np.nan if e is None else float(e) for e in a], dtype=float)


def close(a, b, rtol=RTOL, atol=1e-10):
    np.testing.assert_allclose(np.asarray(a, dtype=float), arr(b), rtol=rtol, atol=atol)


def case_id(c):
    return f"{c['name']}-{c['method']}-{c['ci']}"


def fit_case(c):
    X = np.array(c["X"], dtype=float)
    return meta_analysis(c["yi"], c["vi"], mods=X[:, 1:], method=c["method"], ci=c["ci"], level=c["level"])


@pytest.mark.parametrize("c", REF["cases"], ids=case_id)
def test_metaregression_matches_rma(c):
    fit = fit_case(c)
    o = c["out"]
    close(fit.beta, o["beta"])
    close(fit.se, o["se"])
    close(fit.zval, o["zval"])
    close(fit.pval, o["pval"])
    close(fit.ci_low, o["ci_lb"])
    close(fit.ci_high, o["ci_ub"])
    close(fit.tau2, o["tau2"])
    close(fit.qe, o["QE"])
    close(fit.qe_pvalue, o["QEp"])
    close(fit.qm, o["QM"])
    close(fit.qm_pvalue, o["QMp"])
    assert fit.qm_df == arr(o["QMdf"])[0]
    df2 = arr(o["QMdf"])
    if fit.ci_method == "wald":
        assert np.isnan(fit.qm_df2)
    else:
        assert fit.qm_df2 == df2[1]
    close(fit.i2, o["I2"])
    close(fit.h2, o["H2"])
    close(fit.r2, o["R2"], atol=1e-8)
    close(fit.weights, o["weights"])
    pr = fit.predict(np.array(c["newmods"], dtype=float))
    close(pr["pred"], o["pred"])
    close(pr["se"], o["pred_se"])
    close(pr["ci_low"], o["pred_ci_lb"])
    close(pr["ci_high"], o["pred_ci_ub"])
    if c["method"] != "FE":
        close(pr["pi_low"], o["pred_pi_lb"])
        close(pr["pi_high"], o["pred_pi_ub"])
    if "tau2_ci_lb" in o:
        close(fit.tau2_ci_low, o["tau2_ci_lb"], rtol=1e-5)
        close(fit.tau2_ci_high, o["tau2_ci_ub"], rtol=1e-5)


def test_reference_covers_every_method_and_test():
    seen = {(c["method"], c["ci"]) for c in REF["cases"]}
    assert seen == {(m, t) for m in pooling.METHODS for t in pooling.CI_METHODS}
    assert {c["name"] for c in REF["cases"]} >= {"bcg_ablat", "bcg_alloc", "bcg_ablat_year"}


@pytest.mark.parametrize("c", REF["permutation"], ids=case_id)
def test_exact_permutation_test_matches_permutest(c):
    fit = fit_case(c)
    pt = fit.permutation_test()
    assert pt.exact and pt.iter == c["exact_iter"] and pt.seed is None
    close(pt.pval, c["pval"], rtol=1e-9)
    close(pt.qm_pvalue, c["QMp"], rtol=1e-9)


def test_approximate_permutation_test_is_seeded_and_documented():
    c = next(c for c in REF["cases"] if c["name"] == "bcg_ablat" and c["method"] == "REML" and c["ci"] == "wald")
    fit = fit_case(c)
    a, b = fit.permutation_test(iter=200), fit.permutation_test(iter=200)
    assert not a.exact and a.iter == 200 and a.seed is not None
    np.testing.assert_array_equal(a.pval, b.pval)
    assert a.qm_pvalue == b.qm_pvalue
    # ablat explains the BCG heterogeneity: few permutations reach the observed QM
    assert a.qm_pvalue < 0.05 and a.qm_pvalue >= 1 / 200


def test_intercept_only_equals_pool_for_every_case():
    """The fit object and pool() are one engine: identical numbers for the metafor cases."""
    for c in POOL["cases"][::7]:
        fit = meta_analysis(c["yi"], c["vi"], method=c["method"], ci=c["ci"])
        ref = pooling.pool(c["yi"], c["vi"], method=c["method"], ci=c["ci"])
        got = fit.as_pooled()
        for f in ("estimate", "se", "ci_low", "ci_high", "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_high", "i2", "q"):
            assert np.array_equal(getattr(got, f), getattr(ref, f), equal_nan=True), f
        np.testing.assert_array_equal(got.weights, ref.weights)


def test_factor_moderators_by_name_with_reference_level():
    c = next(c for c in REF["cases"] if c["name"] == "bcg_alloc" and c["method"] == "REML" and c["ci"] == "hksj")
    X = np.array(c["X"])
    level = np.where(X[:, 1] == 1, "random", np.where(X[:, 2] == 1, "systematic", "alternate"))
    data = pd.DataFrame({"yi": c["yi"], "vi": c["vi"], "alloc": level})
    fit = meta_analysis("yi", "vi", mods=["alloc"], data=data, method="REML", ci="hksj")
    assert fit.terms == ("intrcpt", "alloc[random]", "alloc[systematic]")
    close(fit.beta, c["out"]["beta"])
    pr = fit.predict({"alloc": ["alternate", "random", "systematic"]})
    close(pr["pred"], c["out"]["pred"])
    # another reference level: same model, reparametrised
    fit2 = meta_analysis("yi", "vi", mods=["alloc"], data=data, method="REML", ci="hksj", reference={"alloc": "random"})
    assert fit2.terms[1:] == ("alloc[alternate]", "alloc[systematic]")
    np.testing.assert_allclose(fit2.tau2, fit.tau2, rtol=1e-10)
    np.testing.assert_allclose(fit2.qm, fit.qm, rtol=1e-8)
    with pytest.raises(ValueError, match="unknown level"):
        fit.predict({"alloc": ["quasi"]})


def test_fit_object_is_immutable_and_diagnostics_refit_the_engine():
    c = next(c for c in REF["cases"] if c["name"] == "bcg_ablat" and c["method"] == "DL" and c["ci"] == "wald")
    fit = fit_case(c)
    with pytest.raises(AttributeError):
        fit.tau2 = 0.0
    with pytest.raises(ValueError):
        fit.beta[0] = 1.0
    loo = fit.leave_one_out()
    assert len(loo) == fit.k
    sub = fit.subset(np.arange(fit.k) != 3)
    np.testing.assert_allclose(loo.loc[3, "tau2"], sub.tau2, rtol=1e-12)
    np.testing.assert_allclose(loo.loc[3, "estimate[x1]"], sub.beta[1], rtol=1e-12)
    cum = fit.cumulative(np.argsort(c["yi"]))
    assert cum["k"].tolist() == list(range(1, fit.k + 1))
    assert fit.refit(method="REML").tau2 != fit.tau2
    text = fit.summary()
    assert "Mixed-Effects Model (k = 13; tau^2 estimator: DL)" in text
    assert "Test of Moderators (coefficients 2:2)" in text and "R^2" in text
    frame = fit.to_frame()
    assert list(frame.columns) == ["term", "estimate", "se", "statistic", "pvalue", "ci_low", "ci_high"]


def test_design_matrix_errors_are_clear():
    data = pd.DataFrame({"yi": [0.1, 0.2, 0.3], "vi": [0.1] * 3, "year": [1990, None, 2000]})
    with pytest.raises(ValueError, match="missing values"):
        design_matrix(["year"], data)
    with pytest.raises(ValueError, match="not in data"):
        design_matrix(["dose"], data)
    with pytest.raises(ValueError, match="cannot estimate 2 coefficients and tau²"):
        meta_analysis([0.1, 0.2], [0.1] * 2, mods=[1.0, 2.0])
    assert meta_analysis([0.1, 0.2], [0.1] * 2, mods=[1.0, 2.0], method="FE").qe_df == 0
    with pytest.raises(ValueError, match="collinear"):
        meta_analysis([0.1, 0.2, 0.3, 0.4], [0.1] * 4, mods=np.column_stack([[1, 2, 3, 4], [2, 4, 6, 8]]))


def test_figures_from_the_fit_object_use_the_pipeline_code(tmp_path):
    from tpsynth.figures.common import save_all

    c = next(c for c in REF["cases"] if c["name"] == "bcg_ablat" and c["method"] == "REML" and c["ci"] == "wald")
    fit0 = meta_analysis(c["yi"], c["vi"], slab=[f"trial {i + 1}" for i in range(13)])
    forest = fit0.forest(measure="RR", title="BCG")
    svg = save_all(forest, tmp_path / "forest", formats=("svg",))[0].read_text()
    assert "trial 13" in svg and "Total (k = 13)" in svg
    funnel = save_all(fit0.funnel(measure="RR"), tmp_path / "funnel", formats=("svg",))[0].read_text()
    assert 'id="funnel-study-12"' in funnel
    fit = meta_analysis(c["yi"], c["vi"], mods={"ablat": np.array(c["X"])[:, 1].tolist()})
    b = fit.bubble_data("ablat")
    assert len(b["grid"]) == 101 and b["slope"] == fit.beta[1]
    bubble = save_all(fit.bubble("ablat", measure="RR"), tmp_path / "bubble", formats=("svg",))[0].read_text()
    assert 'id="bubble-fit"' in bubble
    with pytest.raises(ValueError, match="intercept-only"):
        fit.forest()
