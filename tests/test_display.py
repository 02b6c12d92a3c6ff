"""tpsynth.display: one way to write numbers, for the figures and the report alike."""

from __future__ import annotations

import copy
import math

import pytest

from tpsynth import display as d
from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings
from tpsynth.figures import common as c
from tpsynth.figures import forest_figure, summary_figure
from tpsynth.report import build, clinical

M = "\u2212"


@pytest.mark.parametrize(
    ("x", "ratio", "text"),
    [
        (0.456, False, "0.46"), (-0.004, False, "0.00"), (-1.5, False, f"{M}1.50"), (12.345, False, "12.35"),
        (150.0, False, "150"), (-123.4, False, f"{M}123"), (6411.2, False, "6,411"), (None, False, "\u2013"),
        (float("nan"), False, "\u2013"), (True, False, "\u2013"),
        (150.0, True, "150"), (0.5, True, "0.50"), (0.0013, True, "0.0013"), (0.000692, True, "0.00069"),
        (0.00004, True, "<0.0001"), (6411.2, True, "6,411"),
    ],
)  # fmt: skip
def test_value(x, ratio, text):
    assert d.value(x, ratio=ratio) == text


def test_p_values_as_journals_print_them():
    assert [d.p_value(p) for p in (0.0004, 0.001, 0.031, 0.0999, 0.1, 0.123, 0.5, None)] == [
        "p < 0.001", "p = 0.001", "p = 0.031", "p = 0.100", "p = 0.10", "p = 0.12", "p = 0.50", "p = \u2013",
    ]  # fmt: skip
    assert d.p_relation(0.0123) == "= 0.012"


def test_intervals_ratio_back_transform_and_styles():
    log = [math.log(150), math.log(120), math.log(190)]
    assert d.effect(*log, ratio=True) == "150 [120, 190]"
    assert d.effect(*log, ratio=True, style="ci") == "150 (95% CI 120 to 190)"
    assert d.effect(-0.5, -1.0, 0.0, style="ci", level=0.9) == f"{M}0.50 (90% CI {M}1.00 to 0.00)"
    assert d.effect(None, 0, 1) == "\u2013" and d.effect(None, 0, 1, style="ci") == "not estimable"
    assert d.interval(math.log(0.5), math.log(2.0), ratio=True) == "[0.50, 2.00]"
    assert d.to_display(1e6, True) == math.exp(700)  # clamped, no overflow
    assert [d.small(x) for x in (0.0, 0.05, 0.005, 1.234)] == ["0.00", "0.050", "0.0050", "1.23"]
    assert d.percent(0.423) == "42%" and d.percent(None) == "\u2013"


def test_figures_and_report_use_the_same_functions():
    """No second implementation: the figure helpers and the report filters are the display functions."""
    assert (c.fmt, c.fmt_auto, c.fmt_p, c.effect_text, c.fmt_small) == (d.number, d.value, d.p_value, d.effect, d.small)
    assert (build.num, build.pval, build.pct) == (d.number, d.p_relation, d.percent)
    assert (clinical._n, clinical._finite) == (d.number, d.isnum)
    assert clinical._interval("RR", 0.0, math.log(0.5), math.log(2.0), "95% CrI") == "1.00 (95% CrI 0.50 to 2.00)"


def test_forest_summary_figure_and_report_write_one_result_alike(fixture_inputs):
    """The same pooled RR reads the same in the forest plot, the summary figure and the report."""
    config, sheets, arms = fixture_inputs
    config = copy.deepcopy(config)
    res = run_analysis(analysis_settings(config, "resp_rr"), sheets, config, arms=arms)
    p = res.pooled
    nums = [d.value(math.exp(x), ratio=True) for x in (p.estimate, p.ci_low, p.ci_high)]
    bracket = f"{nums[0]} [{nums[1]}, {nums[2]}]"
    forest = [t.get_text() for t in forest_figure(res).texts]
    summary = [t.get_text() for t in summary_figure([res]).texts]
    assert bracket in forest and bracket in summary
    assert build.effect_summary(res)["text"] == f"{nums[0]} (95% CI {nums[1]} to {nums[2]})"
    # the p-value of the test for overall effect: the same digits in the forest plot and the report filter
    assert any(d.p_value(p.pvalue) in t for t in forest)
    assert f"p {build.pval(p.pvalue)}" == d.p_value(p.pvalue)
