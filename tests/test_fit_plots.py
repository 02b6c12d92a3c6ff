"""``MetaAnalysis.forest(ax=)``, ``.funnel(ax=)`` and ``.bubble(ax=)``: the pipeline's figure code drawing into
a user's matplotlib axes (one panel of a multi-panel figure).

The drawn text must be the fit's numbers written by ``tpsynth.display`` (the fit's numbers themselves are
checked against metafor in tests/test_meta.py), the whole forest layout must stay inside the axes it was
given, and a meta-regression must be sent to ``bubble()``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tpsynth import display, meta_analysis
from tpsynth.figures.common import save_all

REF = json.loads((Path(__file__).parent / "reference" / "metareg.json").read_text())
BCG = next(c for c in REF["cases"] if (c["name"], c["method"], c["ci"]) == ("bcg_ablat", "REML", "wald"))
SLAB = [f"trial {i + 1}" for i in range(13)]


def _two_panels():
    fig = Figure(figsize=(15, 6), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1.8, 1])
    return fig, left, right


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _inside(fig, ax) -> None:
    """Every text of ``ax`` and its plot panel lie inside the axes' box (1 px tolerance)."""
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    for t in ax.texts:
        e = t.get_window_extent(renderer)
        assert box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1 and box.y0 - 1 <= e.y0 and e.y1 <= box.y1 + 1, t.get_text()
    for child in ax.child_axes:
        e = child.get_position()
        p = ax.get_position()
        assert p.x0 - 1e-9 <= e.x0 and e.x1 <= p.x1 + 1e-9 and p.y0 - 1e-9 <= e.y0 and e.y1 <= p.y1 + 1e-9


def test_forest_and_funnel_side_by_side_ratio_measure_with_prediction_interval(tmp_path):
    fit = meta_analysis(BCG["yi"], BCG["vi"], slab=SLAB, method="REML", ci="wald")
    fig, left, right = _two_panels()
    assert fit.forest(measure="RR", title="BCG vaccine", ax=left) is left
    assert fit.funnel(measure="RR", title="BCG vaccine", ax=right) is right
    fig.canvas.draw()
    texts = _texts(left)
    # pooled effect, its CI and the prediction interval, on the ratio scale, as display.py writes them
    assert display.effect(fit.estimate, fit.ci_low[0], fit.ci_high[0], ratio=True) in texts
    assert display.interval(fit.pi_low, fit.pi_high, ratio=True) in texts
    assert "95% prediction interval" in texts and "Total (k = 13)" in texts
    # every study: its effect with a Wald CI and its weight
    z = -display_ndtri(0.025)
    for yi, vi, w in zip(fit.yi, fit.vi, fit.weights, strict=True):
        se = math.sqrt(vi)
        assert display.effect(yi, yi - z * se, yi + z * se, ratio=True) in texts
        assert f"{w:.1f}%" in texts
    het = next(t for t in texts if t.startswith("Heterogeneity:"))
    assert f"\u03c4\u00b2 = {display.small(fit.tau2)}" in het and f"I\u00b2 = {display.number(fit.i2, 0)}%" in het
    overall = next(t for t in texts if t.startswith("Test for overall effect:"))
    assert f"z = {display.number(fit.zval[0])}" in overall and display.p_value(fit.pval[0]) in overall
    # the layout fills the given axes and stays inside it; the plot is an inset axes, its own frame is off
    _inside(fig, left)
    assert len(left.child_axes) == 1 and not left.axison
    # the funnel: the same points (SVG ids as in the pipeline) in the right panel, with its legend and title
    gids = {line.get_gid() for line in right.lines}
    assert {f"funnel-study-{i}" for i in range(13)} <= gids
    assert right.get_legend() is not None and right.get_title(loc="left").startswith("Funnel plot: BCG vaccine")
    assert [t.get_text() for t in right.get_xticklabels()]  # ratio ticks written
    # the two-panel figure saves byte-identically (same code path as the pipeline's save_all)
    a = [p.read_bytes() for p in save_all(fig, tmp_path / "a")]
    b = [p.read_bytes() for p in save_all(fig, tmp_path / "b")]
    assert a == b


def display_ndtri(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def test_forest_in_a_subplot_without_prediction_interval_difference_measure():
    """Two studies (no prediction interval: it needs k >= 3), mean difference (not exponentiated)."""
    fit = meta_analysis([-1.2, -0.4], [0.16, 0.09], slab=["Alpha 2001", "Beta 2005"], method="DL", ci="wald")
    fig, left, right = _two_panels()
    ax = fit.forest(measure="MD", title="Pain", ax=right)
    assert ax is right
    fig.canvas.draw()
    texts = _texts(right)
    assert display.effect(fit.estimate, fit.ci_low[0], fit.ci_high[0], ratio=False) in texts
    assert not any("prediction interval" in t for t in texts)
    assert "Total (k = 2)" in texts and "Alpha 2001" in texts
    _inside(fig, right)
    assert len(left.texts) == 0 and left.axison  # the other panel is untouched


def test_fonts_scale_with_the_axes():
    """The table's 8-point text is drawn at 8 x (axes size / natural size) in a smaller axes."""
    fit = meta_analysis(BCG["yi"], BCG["vi"], slab=SLAB)
    natural = fit.forest(measure="RR").get_size_inches()
    fig, left, _ = _two_panels()
    fit.forest(measure="RR", ax=left)
    box = left.get_position()
    scale = min(box.width * 15 / natural[0], box.height * 6 / natural[1])
    assert scale < 1
    size = next(t for t in left.texts if t.get_text() == "trial 1").get_fontsize()
    assert size == pytest.approx(8 * scale)


def test_meta_regression_is_sent_to_bubble():
    fit = meta_analysis(BCG["yi"], BCG["vi"], mods={"ablat": np.array(BCG["X"])[:, 1].tolist()})
    fig, left, right = _two_panels()
    for draw in (fit.forest, fit.funnel):
        with pytest.raises(ValueError, match=r"meta-regression on ablat: draw it with bubble\('ablat', ax=\.\.\.\)"):
            draw(ax=left)
    assert len(left.texts) == 0 and left.child_axes == []  # nothing half-drawn
    assert fit.bubble("ablat", measure="RR", ax=right) is right
    assert "bubble-fit" in {line.get_gid() for line in right.lines}
    factor = meta_analysis(BCG["yi"], BCG["vi"], mods={"hemisphere": ["n"] * 7 + ["s"] * 6})
    with pytest.raises(ValueError, match="its moderators are factors"):
        factor.forest(ax=left)


def test_without_ax_the_figure_is_returned_as_before():
    fit = meta_analysis(BCG["yi"], BCG["vi"], slab=SLAB)
    assert isinstance(fit.forest(measure="RR"), Figure) and isinstance(fit.funnel(measure="RR"), Figure)


def test_no_study_message_in_a_users_axes():
    from tpsynth.figures.forest import forest_figure
    from tpsynth.figures.funnel import funnel_figure
    from tpsynth.results import AnalysisResult

    empty = AnalysisResult.from_dict({
        "analysis_id": "nothing", "settings": {"title": "Nothing", "measure": "MD"}, "outcome": {"label": "Pain"},
        "labels": {"intervention": ["A"], "comparator": ["B"]}, "pooled": {"k": 0, "measure": "MD"}, "studies": [],
    })  # fmt: skip
    fig, left, right = _two_panels()
    assert forest_figure(empty, ax=left) is left and funnel_figure(empty, ax=right) is right
    assert "No study with usable data" in _texts(left) and "No study with usable data" in _texts(right)


def test_rows_keep_the_order_of_the_data_unless_sorted():
    """As metafor's forest(): the studies in the order given (trial 1, 2, ..., 13, not trial 1, 10, 11, ...)."""
    fit = meta_analysis(BCG["yi"], BCG["vi"], slab=SLAB)
    texts = [t.get_text() for t in fit.forest(measure="RR").texts]
    assert [t for t in texts if t.startswith("trial ")] == SLAB
    texts = [t.get_text() for t in fit.forest(measure="RR", sort_by="effect").texts]
    assert [t for t in texts if t.startswith("trial ")] == [SLAB[i] for i in np.argsort(fit.yi, kind="stable")]
    with pytest.raises(ValueError, match="sort_by must be one of"):
        fit.forest(sort_by="size")
