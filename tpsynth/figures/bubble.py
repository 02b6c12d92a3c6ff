"""Bubble plot of a meta-regression on one continuous moderator (metafor ``regplot``).

x: the moderator; y: the study effects (ratio measures on a log axis, labelled on the ratio scale);
each study is a circle whose area is proportional to its weight in the meta-regression; the line is
the fitted effect with its confidence band, the other moderators held at their means (as metafor's
``regplot`` does). The caption gives the slope, its p-value, QM, R² and the Cochrane Handbook caveat
when there are fewer than ten studies per moderator.

SVG ids: ``bubble-study-{i}``, ``bubble-fit``, ``bubble-band``.
"""

from __future__ import annotations

import math

from matplotlib.ticker import FixedLocator, NullLocator

from ..results import AnalysisResult, BubbleData
from . import common as c


def bubbles(analysis: AnalysisResult) -> list[BubbleData]:
    """The bubble-plot data of every continuous moderator of the analysis (may be empty)."""
    mr = analysis.meta_regression
    return [] if mr is None or mr.skipped_reason else list(mr.bubble)


@c.styled
def bubble_figure(analysis: AnalysisResult, moderator: str, ax=None):
    """Bubble plot of the analysis's meta-regression on ``moderator``.

    Parameters
    ----------
    analysis : tpsynth.results.AnalysisResult
        The analysis result (``results/analyses/{analysis_id}.json``) with its ``meta_regression``.
    moderator : str
        A continuous moderator of that meta-regression.
    ax : matplotlib.axes.Axes, optional
        Draw the plot into this axes instead of a new figure (the title as the axes title; the caption
        under the pipeline's figure, with the tests and the caveat, is left out).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        Without ``ax``, the figure (7 x 5 inches); with ``ax``, that axes.
    """
    mr = analysis.meta_regression
    data = next((b for b in bubbles(analysis) if b.moderator == moderator), None)
    if data is None:
        raise ValueError(f"no bubble plot for {moderator!r}: not a continuous moderator of this meta-regression")
    measure = str(analysis.measure or "")
    ratio = c.is_ratio(measure)

    name = f"Meta-regression on {moderator}: " + str(analysis.title)
    if ax is None:
        fig = c.new_figure(7.0, 5.0)
        fig.text(0.02, 0.975, c.wrap(name, 85, 2), fontsize=9.5, fontweight="bold", va="top", ha="left")
        ax = fig.add_axes((0.11, 0.27, 0.84, 0.6))
    else:
        fig = None
        ax.set_title(c.wrap(name, 60, 2), fontsize=9, fontweight="bold", loc="left")
    x, y, w = data.x, data.yi, data.weights
    wmax = max(w) or 1.0
    for i, (xi, yi, wi) in enumerate(zip(x, y, w, strict=True)):
        ax.scatter([xi], [yi], s=20 + 380 * wi / wmax, facecolor=c.SQUARE, edgecolor="white", alpha=0.75, linewidth=0.6,
                   zorder=3, gid=f"bubble-study-{i}")  # fmt: skip
    ax.fill_between(data.grid, data.ci_low, data.ci_high, color="#d9d9d9", linewidth=0, zorder=1, gid="bubble-band")
    ax.plot(data.grid, data.pred, color=c.DIAMOND, linewidth=1.4, zorder=2, gid="bubble-fit")
    ax.axhline(0.0, color=c.GREY, linewidth=0.6, linestyle=":", zorder=0)
    ax.set_xlabel(moderator)
    ax.set_ylabel(c.MEASURE_NAMES.get(measure, measure) + (" (log scale)" if ratio else ""))
    if ratio:
        lo = min(min(y), min(data.ci_low))
        hi = max(max(y), max(data.ci_high))
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10) if lo - 0.2 <= math.log(t) <= hi + 0.2]
        if len(ticks) >= 2:
            ax.yaxis.set_major_locator(FixedLocator([math.log(t) for t in ticks]))
            ax.set_yticklabels([f"{t:g}" for t in ticks])
            ax.yaxis.set_minor_locator(NullLocator())
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if fig is None:
        return ax

    test = (f"F({mr.qm_df}, {c.fmt(mr.qm_df2, 0)}) = {c.fmt(mr.qm)}"
            if c.isnum(mr.qm_df2) else f"QM({mr.qm_df}) = {c.fmt(mr.qm)}")  # fmt: skip
    lines = [
        f"Slope {c.fmt(data.slope, 3)} per unit of {moderator} ({c.fmt_p(data.slope_pvalue)}); "
        f"test of moderators {test} ({c.fmt_p(mr.qm_pvalue)}); permutation {c.fmt_p(mr.permutation_pvalue)}",
        f"k = {mr.k}; residual \u03c4\u00b2 = {c.fmt_small(mr.tau2)}; I\u00b2 = {c.fmt(mr.i2, 0)}%; "
        f"R\u00b2 = {c.fmt(mr.r2, 0)}%; {c.method_text(mr.method, mr.ci_method)}",
        "Circles: studies (area proportional to weight); line and band: fitted effect with its "
        f"{c.level_pct(analysis)} CI" + ("; other moderators at their means" if len(mr.moderators) > 1 else ""),
    ]
    if mr.caveat:
        lines.append(c.wrap("Caution: " + mr.caveat, 120, 2))
    fig.text(0.02, 0.14, "\n".join(lines), fontsize=7.2, va="top", ha="left", color=c.GREY)
    return fig
