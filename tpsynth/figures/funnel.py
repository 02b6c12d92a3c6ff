"""Contour-enhanced funnel plot of one analysis.

x: study effect (ratio measures on a log axis, labelled on the ratio scale); y: standard error, inverted
(0 at the top). Shaded regions around the null mark where a study would be statistically significant
(p < 0.10, 0.05, 0.01, two-sided); dashed pseudo-confidence lines run around the pooled estimate;
studies imputed by trim-and-fill are open circles. With fewer than 10 studies the plot is still drawn
but captioned that asymmetry cannot be judged.

SVG ids: ``funnel-study-{i}``, ``funnel-filled-{i}``, ``funnel-contour-{p}``, ``funnel-pseudo-ci``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import FixedLocator, NullLocator

from ..results import AnalysisResult, SmallStudy
from . import common as c

CONTOURS = ((0.01, "#c4c4c4"), (0.05, "#dcdcdc"), (0.10, "#eeeeee"))  # outer to inner (p < level)
MIN_K_ASYMMETRY = 10


#: Above this many studies the points are drawn as one artist (smaller, translucent), not one each.
MANY_POINTS = 300


@c.styled
def funnel_figure(analysis: AnalysisResult, ax=None):
    """Contour-enhanced funnel plot of one analysis.

    Parameters
    ----------
    analysis : tpsynth.results.AnalysisResult
        The analysis result (``results/analyses/{analysis_id}.json``); uses ``studies`` (``yi``, ``vi``),
        ``pooled`` (``estimate``, ``measure``), ``small_study`` (Egger, trim-and-fill) and ``settings``.
    ax : matplotlib.axes.Axes, optional
        Draw the plot into this axes instead of a new figure: the same contours, points, lines, ticks and
        axis labels, the title as the axes title and the legend inside it (upper right, where the funnel
        is narrow). The caption under the pipeline's figure (Egger's test, trim-and-fill, the
        fewer-than-10-studies note) is left out.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        Without ``ax``, the figure (7 x 5 inches); with ``ax``, that axes.
    """
    pooled = analysis.pooled
    small = analysis.small_study or SmallStudy(k=0)
    measure = str(analysis.measure or "")
    ratio = c.is_ratio(measure)
    level = analysis.level or 0.95
    z_level = NormalDist().inv_cdf(1 - (1 - level) / 2)
    studies = [s for s in analysis.studies if c.isnum(s.yi) and c.isnum(s.vi)]
    k = len(studies)

    name = "Funnel plot: " + str(analysis.title)
    if ax is None:
        fig = c.new_figure(7.0, 5.0)
        fig.text(0.02, 0.975, c.wrap(name, 85, 2), fontsize=9.5, fontweight="bold", va="top", ha="left")
    else:
        fig = None
        ax.set_title(c.wrap(name, 60, 2), fontsize=9, fontweight="bold", loc="left")
    if k == 0:
        where = {"transform": ax.transAxes} if fig is None else {}
        (fig or ax).text(0.5, 0.5, "No study with usable data", fontsize=10, ha="center", va="center", color=c.GREY,
                         gid="no-data", **where)  # fmt: skip
        if fig is None:
            ax.set_axis_off()
        return fig or ax

    if fig is not None:
        ax = fig.add_axes((0.1, 0.25, 0.6, 0.62))
    yi = [s.yi for s in studies]
    se = [math.sqrt(max(s.vi, 0.0)) for s in studies]
    fyi = [v for v in small.trimfill_filled_yi if c.isnum(v)]
    fvi = [v for v in small.trimfill_filled_vi if c.isnum(v)]
    filled = list(zip(fyi, [math.sqrt(max(v, 0.0)) for v in fvi], strict=False))
    est = pooled.estimate
    est = est if c.isnum(est) else sum(yi) / k

    se_max = max(se + [s for _, s in filled]) or 1.0
    se_max *= 1.08
    null = 0.0
    # x range (log scale for ratios): the studies, and the funnels around the null and the estimate
    z_out = 2.576
    xs = yi + [v for v, _ in filled] + [est - z_level * se_max, est + z_level * se_max]
    xs += [null - z_out * se_max * 0.8, null + z_out * se_max * 0.8]
    lo, hi = min(xs), max(xs)
    pad = 0.06 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    def X(v):
        return math.exp(v) if ratio else v

    if ratio:
        ax.set_xscale("log")
    ax.set_xlim(X(lo), X(hi))
    ax.set_ylim(se_max, 0)

    # contour regions: background = p < 0.01, then wedges for p >= 0.01, 0.05, 0.10 (white)
    ax.set_facecolor(CONTOURS[0][1])
    shades = [CONTOURS[1][1], CONTOURS[2][1], "white"]
    for (p, _), shade in zip(CONTOURS, shades, strict=True):
        z = NormalDist().inv_cdf(1 - p / 2)
        far = se_max * 1.5
        poly = Polygon([(X(null), 0), (X(null - z * far), far), (X(null + z * far), far)], closed=True,
                       facecolor=shade, edgecolor="none", zorder=0, gid=f"funnel-contour-{p:g}")  # fmt: skip
        ax.add_patch(poly)
    ax.axvline(X(null), color="#777777", lw=0.6, zorder=1)

    # pseudo-confidence region around the pooled estimate
    ys = [0.0, se_max]
    ax.plot([X(est - z_level * s) for s in ys], ys, ls="--", color="black", lw=0.8, zorder=2, gid="funnel-pseudo-ci")
    ax.plot([X(est + z_level * s) for s in ys], ys, ls="--", color="black", lw=0.8, zorder=2)
    ax.plot([X(est), X(est)], ys, color="black", lw=0.9, zorder=2, gid="funnel-estimate")

    tf_est = small.trimfill_estimate
    if filled and c.isnum(tf_est):
        ax.plot([X(tf_est)] * 2, ys, color=c.PI_COLOUR, lw=0.8, ls=":", zorder=2, gid="funnel-trimfill-estimate")
    if len(yi) > MANY_POINTS:  # one artist for all points: drawing time stays linear and small at any k
        ax.plot([X(v) for v in yi], list(se), marker="o", ms=3.0, color=c.SQUARE, mec="white", mew=0.3, ls="none",
                zorder=4, alpha=0.7, gid="funnel-studies")  # fmt: skip
    for i, (v, s) in enumerate(zip(yi, se, strict=True) if len(yi) <= MANY_POINTS else ()):
        ax.plot([X(v)], [s], marker="o", ms=5.5, color=c.SQUARE, mec="white", mew=0.5, ls="none", zorder=4,
                gid=f"funnel-study-{i}")  # fmt: skip
    for i, (v, s) in enumerate(filled):
        ax.plot([X(v)], [s], marker="o", ms=5.5, mfc="white", mec=c.PI_COLOUR, mew=1.0, ls="none", zorder=4,
                gid=f"funnel-filled-{i}")  # fmt: skip

    if ratio:
        ticks = c.ratio_ticks(X(lo), X(hi))
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, [c.tick_label(t, True) for t in ticks])
    else:
        ticks = c.linear_ticks(lo, hi)
        ax.set_xticks(ticks, [c.tick_label(t, False) for t in ticks])
    yt = c.linear_ticks(0, se_max)
    ax.set_yticks(yt, [c.fmt(t, 2 if se_max < 2 else 1) for t in yt])
    ax.set_ylim(se_max, 0)
    name = c.MEASURE_NAMES.get(measure, measure)
    if measure == "MD" and analysis.outcome.reference_scale:
        a, b = analysis.outcome.reference_scale
        name += f" ({a:g}\u2013{b:g} scale)"
    ax.set_xlabel(name + (" (log scale)" if ratio else ""), fontsize=8)
    ax.set_ylabel("Standard error", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    handles = [
        Patch(facecolor="white", edgecolor="#999999", lw=0.5, label="p \u2265 0.10"),
        Patch(facecolor=CONTOURS[2][1], edgecolor="#999999", lw=0.5, label="0.05 \u2264 p < 0.10"),
        Patch(facecolor=CONTOURS[1][1], edgecolor="#999999", lw=0.5, label="0.01 \u2264 p < 0.05"),
        Patch(facecolor=CONTOURS[0][1], edgecolor="#999999", lw=0.5, label="p < 0.01"),
        Line2D([], [], marker="o", ls="none", color=c.SQUARE, mec="white", label="Studies"),
        Line2D([], [], color="black", lw=0.9, label="Pooled estimate"),
        Line2D([], [], color="black", ls="--", lw=0.8, label=f"Pseudo {c.level_pct(analysis)} CI"),
    ]
    if filled:
        handles.append(Line2D([], [], marker="o", ls="none", mfc="white", mec=c.PI_COLOUR, label="Filled (trim-and-fill)"))
    if fig is None:  # the user's axes: the legend inside it, where the inverted funnel is narrow
        ax.legend(handles=handles, loc="upper right", frameon=True, framealpha=0.9, fontsize=6,
                  title="Significance contours\n(two-sided, around the null)", title_fontsize=6,
                  alignment="left")  # fmt: skip
        return ax
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.72, 0.87), frameon=False, fontsize=7,
               title="Significance contours\n(two-sided, around the null)", title_fontsize=7,
               alignment="left")  # fmt: skip

    fig.text(0.02, 0.09, c.wrap(" ".join(_caption(analysis, small, k, filled)), 125, 4), fontsize=7, va="center",
             ha="left", color="#333333", gid="funnel-caption")  # fmt: skip
    return fig


def _caption(analysis: AnalysisResult, small: SmallStudy, k: int, filled: list) -> list[str]:
    out = []
    if k < MIN_K_ASYMMETRY:
        out.append(
            f"Only {k} {'study' if k == 1 else 'studies'}: with fewer than {MIN_K_ASYMMETRY} studies funnel-plot "
            "asymmetry cannot be judged, and Egger's test and trim-and-fill were not done."
        )
    elif small.skipped_reason:
        out.append(f"Small-study tests not done: {small.skipped_reason}.")
    if c.isnum(small.egger_pvalue):
        out.append(f"Egger's regression test: z = {c.fmt(small.egger_stat)}, {c.fmt_p(small.egger_pvalue)}.")
    if c.isnum(small.trimfill_k0):
        ratio = c.is_ratio(analysis.measure)
        est = c.to_display(small.trimfill_estimate, ratio)
        out.append(
            f"Trim-and-fill: {int(small.trimfill_k0)} studies filled"
            + (" (open circles)" if filled else "")
            + (f", adjusted estimate {c.fmt_auto(est, 2, ratio)}." if est is not None else ".")
        )
    out.append("Shading: where a study's effect would be significant against no effect; dashed lines: "
               "pseudo-confidence limits around the pooled estimate.")  # fmt: skip
    return out
