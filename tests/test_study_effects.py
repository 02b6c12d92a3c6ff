"""Building one contrast per study: arms selection, multi-arm combination, rescaling, direction.

Expected values are computed by hand here from the textbook formulas (Cochrane Handbook Table 6.5.a
for combining groups; Hedges' g with the exact correction), independently of tpsynth's code.
"""

from __future__ import annotations

import copy
import math

import pytest
from numpy.testing import assert_allclose
from scipy import stats

from tpsynth.config import analysis_settings
from tpsynth.study_effects import arms_table, build_study_effects


@pytest.fixture
def base(fixture_inputs):
    return fixture_inputs


def effects_for(base, analysis_id, **overrides):
    config, sheets, arms = base
    config = copy.deepcopy(config)
    config["analyses"][analysis_id].update(overrides)
    a = analysis_settings(config, analysis_id)
    studies = {s["study_id"]: s for s in sheets.studies}
    contrasts = [r for r in sheets.contrasts if not r.get("unusable_reason")]
    eff, flow = build_study_effects(a, arms_table(arms), contrasts, studies, config)
    return {e.study_id: e for e in eff}, flow


def hedges_g(m1, s1, n1, m2, s2, n2):
    m = n1 + n2 - 2
    sp = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / m)
    j = math.exp(math.lgamma(m / 2) - math.log(math.sqrt(m / 2)) - math.lgamma((m - 1) / 2))
    g = j * (m1 - m2) / sp
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def combine(n1, m1, s1, n2, m2, s2):
    n = n1 + n2
    m = (n1 * m1 + n2 * m2) / n
    s = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2 + n1 * n2 / n * (m1 - m2) ** 2) / (n - 1))
    return n, m, s


def test_md_rescales_vas_0_100_to_reference_0_10(base):
    eff, _ = effects_for(base, "pain_md")
    a = eff["a2001"]
    assert_allclose(a.yi, (30 - 45) / 10, rtol=1e-12)
    assert_allclose(a.vi, (15**2 / 20 + 18**2 / 20) / 100, rtol=1e-12)
    assert any("rescaled VAS_0_100 (0-100) to 0-10" in n for n in a.notes)


def test_multi_arm_trial_combines_same_side_arms(base):
    eff, _ = effects_for(base, "pain_smd")
    b = eff["b2005"]
    sd_dn = 0.5 * math.sqrt(15)  # SD from SE
    sd_ic = math.sqrt(14) * (4.7 - 2.5) / (2 * stats.t.ppf(0.975, 13))  # SD from CI, t with n-1 df (n < 60)
    n, m, s = combine(15, 3.1, sd_dn, 14, 3.6, sd_ic)
    g, v = hedges_g(m, s, n, 5.2, 2.1, 15)
    assert_allclose([b.yi, b.vi], [g, v], rtol=1e-10)
    assert (b.n_intervention, b.n_comparator) == (29, 15)
    assert b.derived
    assert b.timepoint_weeks == 2  # latest timepoint in the window, not week 1


def test_timepoint_rule_earliest(base):
    eff, _ = effects_for(base, "pain_smd", timepoint_rule="earliest")
    b = eff["b2005"]
    assert b.timepoint_weeks == 1
    g, v = hedges_g(3.5, 2, 15, 5.0, 2, 15)
    assert_allclose([b.yi, b.vi], [g, v], rtol=1e-10)


def test_window_excludes_later_rows(base):
    eff, flow = effects_for(base, "pain_smd", timepoint_weeks=[0, 1])
    assert set(eff) == {"b2005", "c2010"}
    reasons = [f["reason"] for f in flow if f["state"] == "not_used"]
    assert "timepoint 4 weeks outside 0-1" in reasons


def test_non_randomised_study_left_out_unless_allowed(base):
    eff, flow = effects_for(base, "pain_smd")
    assert "d2015" not in eff
    eff2, _ = effects_for(base, "pain_smd", randomised_only=False)
    g, v = hedges_g(2.4, 1.5, 32, 4.06, 1.76, 32)
    assert_allclose([eff2["d2015"].yi, eff2["d2015"].vi], [g, v], rtol=1e-10)


def test_instrument_direction_is_flipped(base):
    config, sheets, arms = base
    flipped = []
    for a in arms:
        a = dict(a)
        if a["study_id"] == "a2001" and a["outcome"] == "pain":
            a["higher_is_better"] = True  # e.g. a pain-relief score
        flipped.append(a)
    a = analysis_settings(config, "pain_smd")
    studies = {s["study_id"]: s for s in sheets.studies}
    eff, _ = build_study_effects(a, arms_table(flipped), [], studies, config)
    g, _ = hedges_g(30, 15, 20, 45, 18, 20)
    assert_allclose(next(e for e in eff if e.study_id == "a2001").yi, -g, rtol=1e-12)


def test_contrast_enters_with_se_from_ci_and_reversed_direction(base):
    eff, _ = effects_for(base, "pain_md")
    e = eff["e2020"]
    assert_allclose(e.yi, -2.3)
    assert_allclose(math.sqrt(e.vi), (-1.8 - -2.8) / (2 * stats.norm.ppf(0.975)), rtol=1e-12)
    config, sheets, arms = base
    reversed_rows = [dict(r, intervention=r["comparator"], comparator=r["intervention"], estimate=2.3, ci_low=1.8, ci_high=2.8)
                     for r in sheets.contrasts if not r.get("unusable_reason")]  # fmt: skip
    a = analysis_settings(config, "pain_md")
    studies = {s["study_id"]: s for s in sheets.studies}
    eff2, _ = build_study_effects(a, arms_table(arms), reversed_rows, studies, config)
    e2 = next(x for x in eff2 if x.study_id == "e2020")
    assert_allclose([e2.yi, e2.vi], [e.yi, e.vi], rtol=1e-12)
    assert (e2.n_intervention, e2.n_comparator) == (62, 62)


def test_contrast_with_other_measure_is_not_used(base):
    eff, flow = effects_for(base, "pain_smd")
    assert "e2020" not in eff
    assert any(f["reason"] == "reported as MD; the analysis pools SMD" for f in flow)


def test_dichotomous_zero_cells_and_double_zero(base):
    eff, flow = effects_for(base, "resp_rr")
    assert set(eff) == {"a2001", "c2010"}
    assert_allclose(eff["a2001"].yi, math.log((12 / 20) / (6 / 20)), rtol=1e-12)
    assert_allclose(eff["a2001"].vi, 1 / 12 - 1 / 20 + 1 / 6 - 1 / 20, rtol=1e-12)
    assert any("drop00" in f["reason"] for f in flow)


def test_md_refuses_instrument_without_scale(base):
    config, sheets, arms = base
    noscale = [dict(a, scale_min=None, scale_max=None) if a["study_id"] == "c2010" else a for a in arms]
    a = analysis_settings(config, "pain_md")
    studies = {s["study_id"]: s for s in sheets.studies}
    eff, flow = build_study_effects(a, arms_table(noscale), [], studies, config)
    assert "c2010" not in {e.study_id for e in eff}
    assert any("MD needs scale_min/scale_max for instrument NPRS_0_10" in f["reason"] for f in flow)


def test_garbage_collector_is_left_as_it_was(base):
    """build_study_effects pauses the cyclic garbage collector while it builds and puts it back as found,
    also when it raises."""
    import gc

    assert gc.isenabled()
    effects_for(base, "pain_smd")
    assert gc.isenabled()
    config, sheets, arms = base
    with pytest.raises(KeyError):
        build_study_effects(analysis_settings(config, "pain_smd"), arms_table(arms), [], {}, {"outcomes": {}})
    assert gc.isenabled()
    gc.disable()
    try:
        effects_for(base, "pain_smd")
        assert not gc.isenabled()
    finally:
        gc.enable()
