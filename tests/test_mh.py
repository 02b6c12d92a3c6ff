"""Mantel-Haenszel and Peto pooling (tpsynth.mh) against metafor's rma.mh and rma.peto.

Reference values: tests/reference/mh_peto.json (tests/reference/make_reference.R), on data sets
with single-zero and double-zero tables (dat.nielweise2007, dat.li2007, a sparse set) and dat.bcg.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpsynth.mh import mantel_haenszel, peto

REF = json.loads((Path(__file__).parent / "reference" / "mh_peto.json").read_text())
RTOL = 1e-6


def fit(c):
    if c["measure"] == "PETO":
        return peto(c["ai"], c["n1i"], c["ci"], c["n2i"], level=c["level"])
    return mantel_haenszel(c["ai"], c["n1i"], c["ci"], c["n2i"], measure=c["measure"], level=c["level"])


def nan(x):
    return np.nan if x is None else x


@pytest.mark.parametrize("c", REF["cases"], ids=lambda c: f"{c['name']}-{c['measure']}")
def test_matches_metafor(c):
    r = fit(c)
    assert r.k == c["k"] and r.k_yi == c["k_yi"]
    for ours, ref in [("estimate", "beta"), ("se", "se"), ("pvalue", "pval"), ("ci_low", "ci_lb"),
                      ("ci_high", "ci_ub"), ("q", "QE"), ("q_pvalue", "QEp"), ("i2", "I2"), ("h2", "H2")]:  # fmt: skip
        np.testing.assert_allclose(getattr(r, ours), nan(c[ref]), rtol=RTOL, atol=1e-12, err_msg=ours)
    if c["measure"] == "OR":
        np.testing.assert_allclose([r.mh_chi2, r.mh_pvalue, r.tarone, r.tarone_pvalue],
                                   [nan(c["MH"]), nan(c["MHp"]), nan(c["TA"]), nan(c["TAp"])], rtol=RTOL)  # fmt: skip


def test_zero_cell_sets_are_covered():
    zero = [c for c in REF["cases"] if min(min(c["ai"]), min(c["ci"])) == 0]
    double = [c for c in zero if any(a == 0 and b == 0 for a, b in zip(c["ai"], c["ci"], strict=True))]
    assert {c["measure"] for c in double} == {"RR", "OR", "RD", "PETO"}
    assert all(c["k_yi"] < c["k"] for c in double)


def test_weights_and_estimate_are_consistent():
    c = next(c for c in REF["cases"] if c["name"] == "bcg" and c["measure"] == "RR")
    r = fit(c)
    assert r.weights.sum() == pytest.approx(100.0)
    a, n1, cc, n2 = (np.array(c[k], dtype=float) for k in ("ai", "n1i", "ci", "n2i"))
    # the MH RR is the weighted mean of study risk ratios with the MH weights
    rr = (a / n1) / (cc / n2)
    assert np.log(np.sum(r.weights * rr) / 100) == pytest.approx(r.estimate, rel=1e-12)


def test_bad_tables_and_nonexistent_estimates():
    with pytest.raises(ValueError, match="0 <= events <= n"):
        mantel_haenszel([3], [2], [1], [5])
    with pytest.raises(ValueError, match="measure"):
        mantel_haenszel([1], [5], [1], [5], measure="SMD")
    with pytest.raises(ValueError, match="never occurred"):
        peto([0, 0], [5, 6], [0, 0], [5, 7])
    r = mantel_haenszel([0, 0], [10, 12], [2, 3], [10, 11], measure="RR")
    assert np.isnan(r.estimate) and r.notes
