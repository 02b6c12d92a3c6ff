"""tpsynth.subset_fits: leave-one-out and cumulative fits from per-subset sums equal the exact refits.

The reference is the general engine refitting every subset (:func:`tpsynth.pooling.pool_subsets`),
itself checked against metafor's ``rma``/``leave1out``/``cumul`` in tests/test_pooling.py (which now
runs through this module for subsets of SMALL_K studies or more).  Every method x interval type,
LOO and cumulative (shuffled order), with and without the Q-profile interval, on data with large
heterogeneity, none (tau² = 0 in some subsets and not others), tau² above the search limits, one
dominant study, and variances over five orders of magnitude.  Each case also checks that the fast
path was used (few exact refits), so the comparison is not of the engine with itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tpsynth import pooling, subset_fits
from tpsynth.meta import meta_analysis

FLOATS = ("estimate", "se", "ci_low", "ci_high", "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_low",
          "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2", "q", "q_pvalue", "fe_estimate", "fe_se",
          "fe_ci_low", "fe_ci_high")  # fmt: skip
EXACT = ("k", "q_df", "converged", "method", "ci_method", "step_halved", "tau2_ci_capped")


def _data(kind, k, seed=14):
    rng = np.random.default_rng(seed)
    if kind == "heterogeneous":
        return rng.normal(0.3, 0.4, k), rng.uniform(0.01, 0.2, k)
    if kind == "homogeneous":  # tau² = 0 for the full data and many subsets, > 0 for others
        v = rng.uniform(0.02, 0.1, k)
        return rng.normal(-0.2, np.sqrt(v)), v
    if kind == "large_tau2":  # tau² ~ 225: Paule-Mandel's limit and the Q-profile search limit
        return rng.normal(0.0, 15.0, k), rng.uniform(1.0, 4.0, k)
    if kind == "dominant":
        y, v = rng.normal(0.3, 0.3, k), rng.uniform(0.05, 0.5, k)
        v[k // 3] = 1e-6
        return y, v
    if kind == "wide_v":
        v = 10.0 ** rng.uniform(-4, 1, k)
        return rng.normal(0.5, 0.5, k) + rng.normal(0, np.sqrt(v)), v
    raise ValueError(kind)


def _exact(y, v, kind, order, method, ci, tau2_ci):
    n = y.size
    subsets = [np.delete(np.arange(n), i) for i in range(n)] if kind == "loo" else [order[: i + 1] for i in range(n)]
    return pooling.pool_subsets(y, v, subsets, method, ci, tau2_ci=tau2_ci)


def _fast(y, v, kind, order, method, ci, tau2_ci):
    if kind == "loo":
        return subset_fits.leave_one_out_fits(y, v, method, ci, tau2_ci=tau2_ci)
    return subset_fits.cumulative_fits(y, v, order, method, ci, tau2_ci=tau2_ci)


#: The engine stops Fisher scoring when tau² changes by at most FS_THRESHOLD * max(1, tau²): a tau²
#: below 1 is known to about 1e-13 absolute (one converging to 0 stops anywhere below that), so tau²
#: and what is computed from it alone get that absolute tolerance (as tests/test_pooling.py does).
ATOL = {"tau2": 1e-12, "tau2_ci_low": 1e-12, "tau2_ci_high": 1e-12, "h2": 1e-9, "i2": 1e-8, "i2_ci_low": 1e-8,
        "i2_ci_high": 1e-8}  # fmt: skip


def _assert_equal_fits(fast, exact):
    for f in EXACT:
        assert_array_equal(fast[f], exact[f], err_msg=f)
    for f in FLOATS:
        ref = np.asarray(exact[f], dtype=float)
        scale = np.nanmax(np.abs(ref)) if np.isfinite(ref).any() else 0.0
        atol = ATOL.get(f, 1e-13 * max(scale, 1e-300))
        assert_allclose(fast[f], ref, rtol=1e-9, atol=atol, err_msg=f)


@pytest.mark.parametrize("method", pooling.METHODS)
@pytest.mark.parametrize("ci", pooling.CI_METHODS)
@pytest.mark.parametrize("kind", ["loo", "cum"])
def test_equal_to_exact_refits_every_method_and_interval(method, ci, kind):
    y, v = _data("heterogeneous", 300)
    order = np.random.default_rng(3).permutation(y.size)
    tau2_ci = ci == "hksj"  # the Q-profile interval once per method and kind
    fast = _fast(y, v, kind, order, method, ci, tau2_ci)
    _assert_equal_fits(fast, _exact(y, v, kind, order, method, ci, tau2_ci))
    # the series path did the work: cumulative refits only the prefixes below SMALL_K studies
    assert fast["n_exact"] <= (0 if kind == "loo" else subset_fits.SMALL_K - 1) + 3


@pytest.mark.parametrize("data", ["homogeneous", "large_tau2", "dominant", "wide_v"])
@pytest.mark.parametrize("method", ["REML", "PM", "DL", "ML", "EB", "SJ"])
def test_equal_to_exact_refits_on_hard_data(data, method):
    y, v = _data(data, 150)
    order = np.argsort(v)[::-1]  # least precise first: tau² and the weights move most along the way
    for kind in ("loo", "cum"):
        fast = _fast(y, v, kind, order, method, "hksj", True)
        _assert_equal_fits(fast, _exact(y, v, kind, order, method, "hksj", True))


def test_hard_data_are_hard():
    """The cases above reach what they are meant to: tau² = 0 in some subsets only, and Paule-Mandel
    roots above 100, inside the engine's search limit max(100, 10 mad(y)²)."""
    y, v = _data("homogeneous", 150)
    t = subset_fits.cumulative_fits(y, v, np.argsort(v)[::-1], "REML", "wald")["tau2"]
    assert (t == 0).any() and (t > 0).any()
    y, v = _data("large_tau2", 150)
    pm = subset_fits.leave_one_out_fits(y, v, "PM", "wald", tau2_ci=True)
    assert (pm["tau2"] > 100).all() and pm["n_exact"] == 0 and pm["converged"].all()
    reml = subset_fits.leave_one_out_fits(y, v, "REML", "wald", tau2_ci=True)
    assert (reml["tau2"] > 100).all() and reml["n_exact"] == 0


def test_paule_mandel_root_above_the_search_limit_falls_back_to_dl_as_the_engine():
    """Tight effects with a few far outliers: tau² ~ 240 but mad(y) ~ 0.5, so the root lies above
    metafor's limit max(100, 10 mad²) = 100 and the engine reports DL (converged False)."""
    rng = np.random.default_rng(7)
    y = np.concatenate([rng.normal(0.0, 0.5, 140), [60.0, -60.0] * 5])
    v = rng.uniform(0.05, 0.2, y.size)
    order = rng.permutation(y.size)
    for kind in ("loo", "cum"):
        fast = _fast(y, v, kind, order, "PM", "hksj", True)
        _assert_equal_fits(fast, _exact(y, v, kind, order, "PM", "hksj", True))
    loo = subset_fits.leave_one_out_fits(y, v, "PM", "wald")
    assert loo["n_exact"] == 0 and (loo["method"] == "DL").all() and not loo["converged"].any()


@pytest.mark.parametrize("k", [2, 3, 10, 40])
def test_small_k_equal_to_exact_refits(k):
    y, v = _data("heterogeneous", k, seed=k)
    order = np.random.default_rng(k).permutation(k)
    for kind in ("loo", "cum"):
        for method in ("REML", "DL", "FE"):
            _assert_equal_fits(_fast(y, v, kind, order, method, "hksj", True),
                               _exact(y, v, kind, order, method, "hksj", True))  # fmt: skip


@pytest.mark.slow  # the exact refits take ~30 s
def test_equal_to_exact_refits_at_k_3000():
    method = "REML"
    y, v = _data("heterogeneous", 3000)
    order = np.random.default_rng(5).permutation(y.size)
    for kind in ("loo", "cum"):
        fast = _fast(y, v, kind, order, method, "hksj", False)
        _assert_equal_fits(fast, _exact(y, v, kind, order, method, "hksj", False))
        assert fast["n_exact"] <= subset_fits.SMALL_K


@pytest.mark.parametrize("method", ["REML", "EB"])
def test_fisher_scoring_half_steps_and_dl_fallback_as_the_engine(monkeypatch, method):
    """Where Fisher scoring has not converged in FS_MAXITER steps, the subset is fitted again with half
    steps and, failing that, by DL, as the engine does (few steps allowed here: DL; half steps that
    converge: test_one_dominant_study_costs_no_exact_refits)."""
    y, v = _data("heterogeneous", 200)
    monkeypatch.setattr(subset_fits, "FS_MAXITER", 4)
    monkeypatch.setattr(pooling, "FS_MAXITER", 4)
    order = np.random.default_rng(9).permutation(y.size)
    for kind in ("loo", "cum"):
        fast = _fast(y, v, kind, order, method, "hksj", False)
        _assert_equal_fits(fast, _exact(y, v, kind, order, method, "hksj", False))
        assert fast["n_exact"] <= subset_fits.SMALL_K
    assert (fast["method"] == "DL").any() and not fast["converged"].all()


def test_one_dominant_study_costs_no_exact_refits():
    """A study 10^5 times more precise than the rest (its weight dominates every sum; REML oscillates
    and needs half steps) is summed apart, so the subsets still go through the sums."""
    y, v = _data("dominant", 500)
    fast = subset_fits.leave_one_out_fits(y, v, "REML", "wald")
    _assert_equal_fits(fast, _exact(y, v, "loo", None, "REML", "wald", False))
    assert fast["n_exact"] == 0 and fast["step_halved"].any() and (fast["method"] == "DL").any()


def test_series_remainder_bound():
    """R_MAX keeps the bound on the series remainder below half the unit roundoff, and the bound is
    a true bound of the binomial series' tail at p = 1, 2, 3."""
    M, r = subset_fits.M_TERMS, subset_fits.R_MAX
    assert subset_fits._tail_bound(r, M) <= np.finfo(float).eps / 2 < subset_fits._tail_bound(1.05 * r, M)
    for p in (1, 2, 3):
        tail = sum(math.comb(p + m - 1, m) * r**m for m in range(M + 1, 400))
        assert tail <= subset_fits._tail_bound(r, M)


def test_sums_about_a_centre_equal_direct_sums():
    """The chunk's sums at tau² = t (series about a centre) equal direct sums over each subset."""
    y, v = _data("wide_v", 200)
    plan = subset_fits._Plan(y, v, "cum", np.random.default_rng(1).permutation(200))
    centres = [[0.05, plan.state(lambda rows: plan.table(rows, 0.05), 0)]]
    ch = subset_fits._Chunk(plan, centres, 0, 200)
    t = np.random.default_rng(2).uniform(0.0, 3.0, 200)  # mostly outside the first centre's radius
    S = ch.sums(np.arange(200), t)
    assert S["ok"].all() and len(centres) > 1
    for i in (0, 57, 199):
        idx = plan.order[: i + 1]
        w, yd = 1.0 / (v[idx] + t[i]), y[idx] - plan.yc
        direct = {"A1": w.sum(), "A2": (w**2).sum(), "A3": (w**3).sum(), "B1": (w * yd).sum(),
                  "B2": (w**2 * yd).sum(), "C1": (w * yd**2).sum(), "C2": (w**2 * yd**2).sum(),
                  "L": np.log(v[idx] + t[i]).sum()}  # fmt: skip
        for key, val in direct.items():
            assert_allclose(S[key][i], val, rtol=1e-12, atol=1e-12 * np.abs(yd).max() * w.sum(), err_msg=key)


def test_meta_analysis_frames_use_the_subset_sums():
    y, v = _data("heterogeneous", 120)
    fit = meta_analysis(y, v, method="REML", ci="hksj_adhoc")
    loo = fit.leave_one_out(frame=False)
    fast = subset_fits.leave_one_out_fits(y, v, "REML", "hksj_adhoc")
    assert_array_equal(loo["estimate"], fast["estimate"])
    order = np.argsort(y)
    cum = fit.cumulative(order, frame=False)
    _assert_equal_fits(subset_fits.cumulative_fits(y, v, order, "REML", "hksj_adhoc"),
                       _exact(y, v, "cum", order, "REML", "hksj_adhoc", False))  # fmt: skip
    assert_array_equal(cum["tau2"], subset_fits.cumulative_fits(y, v, order, "REML", "hksj_adhoc")["tau2"])


def test_bad_input():
    with pytest.raises(ValueError, match="permutation"):
        subset_fits.cumulative_fits([0.1, 0.2], [0.1, 0.1], order=[1, 1])
    with pytest.raises(ValueError, match="two studies"):
        subset_fits.leave_one_out_fits([0.1], [0.1])
    with pytest.raises(ValueError, match="unknown method"):
        subset_fits.leave_one_out_fits([0.1, 0.2], [0.1, 0.1], method="XX")
