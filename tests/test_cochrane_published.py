"""External check: study effects recomputed from arm data equal those Cochrane published (RevMan).

`../shared/data/trigger-point-extraction/extraction.csv` carries, for its Cochrane-derived rows (reviews
CD004871 and CD008112 via Pairwise70), the effect and 95% CI that the review printed (`ref_effect*`).
Pairs of arm rows sharing one printed effect are recomputed with tpsynth.effect_sizes:
- MD with a normal CI and RR (log scale, normal CI) must match to the printed 6 decimals;
- SMD: RevMan uses Hedges' g with the approximate correction J = 1 - 3/(4N - 9) and the variance
  N/(n1 n2) + g²/(2(N - 3.94)), metafor (and tpsynth) the exact J and g²/(2N); the estimates agree to
  1e-4 relative and the CI bounds to 0.01, the size of those formula differences at these n.
The shared file is read where it is (skipped when absent), never copied into the project.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from tpsynth import effect_sizes as es

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "trigger-point-extraction" / "extraction.csv"
Z = 1.959963984540054

pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason=f"shared extraction not present at {SOURCE}")


def pairs():
    if not SOURCE.exists():
        return []
    groups = defaultdict(list)
    with SOURCE.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["ref_effect"] and r["source_type"].startswith("Cochrane") and r["n"]:
                key = (r["study_label"], r["outcome"], r["timepoint"], r["ref_effect"], r["ref_ci_low"])
                groups[key].append(r)
    out = []
    for rows in groups.values():
        if len(rows) != 2:
            continue  # a printed effect shared by more or fewer arm rows: the pairing is ambiguous
        manip_first = "'Experimental' arm = manipulation" in rows[0]["ref_effect_measure"]
        exp_role = "comparator" if manip_first else "intervention"
        exp = [r for r in rows if r["arm_role"] == exp_role]
        ctl = [r for r in rows if r["arm_role"] != exp_role]
        if len(exp) == 1 and len(ctl) == 1:
            out.append(pytest.param(exp[0], ctl[0], id=f"rows {exp[0]['row_id']}-{ctl[0]['row_id']}"))
    return out


PAIRS = pairs()


def test_enough_pairs():
    assert len(PAIRS) >= 20  # 21 unambiguous pairs (MD, SMD, RR) in the shipped extraction


@pytest.mark.parametrize(("exp", "ctl"), PAIRS)
def test_study_effect_matches_cochrane(exp, ctl):
    measure = exp["ref_effect_measure"].split()[0]
    ref = [float(exp[k]) for k in ("ref_effect", "ref_ci_low", "ref_ci_high")]
    n1, n2 = float(exp["n"]), float(ctl["n"])
    if measure == "RR":
        yi, vi, dropped, _ = es.log_risk_ratio([float(exp["events"])], [n1], [float(ctl["events"])], [n2])
        assert not dropped[0]
        y, se = float(yi[0]), math.sqrt(float(vi[0]))
        assert_allclose([math.exp(y), math.exp(y - Z * se), math.exp(y + Z * se)], ref, rtol=5e-6, atol=5e-7)
    elif measure == "MD":
        yi, vi = es.mean_difference([float(exp["mean"])], [float(exp["sd"])], [n1], [float(ctl["mean"])], [float(ctl["sd"])], [n2])
        y, se = float(yi[0]), math.sqrt(float(vi[0]))
        assert_allclose([y, y - Z * se, y + Z * se], ref, rtol=0, atol=5e-6)
    elif measure == "SMD":
        yi, vi = es.standardised_mean_difference(
            [float(exp["mean"])], [float(exp["sd"])], [n1], [float(ctl["mean"])], [float(ctl["sd"])], [n2]
        )
        y, se = float(yi[0]), math.sqrt(float(vi[0]))
        assert_allclose(y, ref[0], rtol=1e-4, atol=1e-6)
        assert_allclose([y - Z * se, y + Z * se], ref[1:], atol=0.01)
    else:
        pytest.skip(f"measure {measure} not checked here")
