"""Summary figure: one row per analysis, all analyses in one figure.

Columns: analysis title, k, participants, pooled estimate with its CI, prediction interval, the plot
(estimate, CI as a thick line, PI as a thin line) and the certainty of the evidence
(``pooled.certainty`` when rated, otherwise a dash). Analyses are grouped in blocks by measure
(mean differences also by their reference scale), each with its own axis: differences linear around 0,
ratios on a log axis around 1.

SVG ids: ``summary-block-{i}``, ``summary-est-{analysis_id}``, ``summary-ci-{analysis_id}``,
``summary-pi-{analysis_id}``.
"""

from __future__ import annotations

from matplotlib.lines import Line2D

from ..results import AnalysisResult, Pooled
from . import common as c

ROW = 0.36
HEAD = 0.3
AXIS_SPACE = 0.62
WIDTH = 10.8
LEFT = 0.15
X_K, X_N, X_EST, X_PI = 3.78, 4.32, 5.3, 6.5
PLOT_X0, PLOT_W = 7.3, 2.5
X_CERT = 10.3
ORDER = ("MD", "SMD", "RD", "RR", "OR")


BAYES_COLOUR = "#6a3d9a"  # as the Bayesian diamond of the forest plot


def certainty_text(pooled: Pooled) -> str:
    """The certainty of the evidence (``pooled.certainty``) with a capital; a dash when not rated."""
    cert = pooled.certainty
    if cert is None or cert == "":
        return c.DASH
    s = str(cert).replace("_", " ")
    return s[:1].upper() + s[1:]


def _block_key(a: AnalysisResult) -> tuple:
    m = str(a.measure or "")
    scale = None
    if m == "MD":
        rs = a.outcome.reference_scale
        scale = tuple(rs) if rs else None
    return (ORDER.index(m) if m in ORDER else len(ORDER), m, scale)


def _block_title(key: tuple) -> str:
    _, m, scale = key
    name = c.MEASURE_NAMES.get(m, m or "Unknown measure")
    if scale:
        name += f" ({scale[0]:g}\u2013{scale[1]:g} scale)"
    if c.is_ratio(m):
        name += ", log scale"
    return name


@c.styled
def summary_figure(analyses: list[AnalysisResult]):
    """Summary of every analysis in one figure.

    Parameters
    ----------
    analyses : list of tpsynth.results.AnalysisResult
        Analysis results (``results/analyses/{analysis_id}.json``) in the order to show them within
        each measure block.

    Returns
    -------
    matplotlib.figure.Figure
        One row per analysis, grouped in blocks by measure, each block with its own x axis.
    """
    blocks: dict[tuple, list[AnalysisResult]] = {}
    for a in analyses:
        blocks.setdefault(_block_key(a), []).append(a)
    keys = sorted(blocks, key=lambda t: (t[0], t[1], t[2] or ()))
    top = 0.55 + 0.42
    body = sum(HEAD + ROW * len(blocks[k]) + AXIS_SPACE for k in keys)
    bottom = 0.55
    H = top + body + bottom
    fig = c.new_figure(WIDTH, H)
    inch = fig.dpi_scale_trans

    def text(x, y, s, **kw):
        kw.setdefault("fontsize", 8)
        kw.setdefault("va", "center")
        return fig.text(x, y, s, transform=inch, **kw)

    text(LEFT, H - 0.15, "Summary of pooled estimates", fontsize=11, fontweight="bold", va="top")
    text(LEFT, H - 0.42, f"{len(analyses)} analyses; each block has its own axis (measures and scales differ)",
         fontsize=7.5, color=c.GREY, va="top")  # fmt: skip
    yh = H - top + 0.2
    bold = {"fontweight": "bold"}
    text(LEFT, yh, "Analysis", **bold)
    text(X_K, yh, "k", ha="center", **bold)
    text(X_N, yh, "N", ha="center", **bold)
    text(X_EST, yh, "Estimate [95% CI]", ha="center", **bold)
    text(X_PI, yh, "95% PI", ha="center", **bold)
    text(PLOT_X0 + PLOT_W / 2, yh, "Pooled estimate", ha="center", **bold)
    text(X_CERT, yh, "Certainty", ha="center", **bold)
    for y in (yh + 0.14, yh - 0.14):
        fig.add_artist(Line2D([LEFT, WIDTH - LEFT], [y, y], transform=inch, color="black", lw=0.6))

    y = H - top
    for bi, key in enumerate(keys):
        rows = blocks[key]
        ratio = c.is_ratio(key[1])
        text(LEFT, y - HEAD / 2, _block_title(key), fontweight="bold", fontsize=8.5, color=c.SQUARE)
        y -= HEAD
        ax_h = ROW * len(rows)
        ax = fig.add_axes((PLOT_X0 / WIDTH, (y - ax_h) / H, PLOT_W / WIDTH, ax_h / H), gid=f"summary-block-{bi}")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        pts, bnds = [], []
        for a in rows:
            p = a.pooled
            pts.append(p.estimate)
            bnds += [p.ci_low, p.ci_high, p.pi_low, p.pi_high]
            if a.bayes:
                bnds += [a.bayes.ci_low, a.bayes.ci_high]
        xlim = c.effect_axis(ax, pts, bnds, ratio)
        for r, a in enumerate(rows):
            _row(fig, ax, text, a, r, y - (r + 0.5) * ROW, ratio, xlim)
            if r:
                fig.add_artist(Line2D([LEFT, WIDTH - LEFT], [y - r * ROW] * 2, transform=inch, color="#e5e5e5",
                                      lw=0.5, zorder=0))  # fmt: skip
        y -= ax_h
        dirs = {a.outcome.higher_is_better for a in rows}
        if len(dirs) == 1:
            hib = dirs.pop()
            left, right = ("comparator", "intervention") if hib else ("intervention", "comparator")
            word = "Higher with" if hib is None else "Favours"  # None: direction unknown
            for x, side in ((PLOT_X0 + PLOT_W * 0.25, left), (PLOT_X0 + PLOT_W * 0.75, right)):
                text(x, y - 0.3, f"{word}\n{side}", ha="center", va="top", fontsize=7)
        else:
            text(PLOT_X0 + PLOT_W / 2, y - 0.3, "Outcome directions differ:\nsee each forest plot", ha="center",
                 va="top", fontsize=7)  # fmt: skip
        y -= AXIS_SPACE
    note = (
        "Diamonds: pooled estimates (method as in each forest plot) with 95% CI (thick line) and 95% prediction"
        " interval (thin red line; k \u2265 3); purple, just below: Bayesian posterior median with 95% credible"
        " interval (k \u2265 2; prior in each forest plot). k: studies; N: participants. Certainty: certainty of the evidence"
        f" (GRADE); {c.DASH} not yet assessed. Arrows: interval beyond the axis."
    )
    text(LEFT, 0.42, c.wrap(note, 170, 3), fontsize=7, va="top", color="#333333")
    return fig


def _row(fig, ax, text, a: AnalysisResult, r: int, y_in: float, ratio: bool, xlim) -> None:
    p = a.pooled
    aid = str(a.analysis_id or r)
    title = a.settings.title or aid
    text(LEFT, y_in, c.wrap(title, 62, 2), fontsize=7.5, linespacing=1.05)
    k = p.k or 0
    text(X_K, y_in, str(int(k)), ha="center")
    n = p.n_participants
    text(X_N, y_in, f"{round(n)}" if c.isnum(n) and k else c.DASH, ha="center")
    cert = certainty_text(p)
    text(X_CERT, y_in, cert, ha="center", color="black" if cert != c.DASH else c.GREY, gid=f"certainty-{aid}")
    if not k or not c.isnum(p.estimate):
        text(X_EST, y_in, "no usable data", ha="center", color=c.GREY, style="italic")
        text(X_PI, y_in, c.DASH, ha="center", color=c.GREY)
        return
    single = k == 1
    text(X_EST, y_in, c.effect_text(p.estimate, p.ci_low, p.ci_high, ratio), ha="center")
    if single:
        text(X_PI, y_in, "single study", ha="center", color=c.GREY, fontsize=7, style="italic")
    elif c.isnum(p.pi_low) and c.isnum(p.pi_high) and k >= 3:
        lo, hi = c.to_display(p.pi_low, ratio), c.to_display(p.pi_high, ratio)
        text(X_PI, y_in, f"[{c.fmt_auto(lo, 2, ratio)}, {c.fmt_auto(hi, 2, ratio)}]", ha="center")
        _interval(ax, r, p.pi_low, p.pi_high, ratio, xlim, f"summary-pi-{aid}", c.PI_COLOUR, 0.9)
    else:
        text(X_PI, y_in, c.DASH, ha="center", color=c.GREY)
    _interval(ax, r, p.ci_low, p.ci_high, ratio, xlim, f"summary-ci-{aid}", "black", 2.4)
    b = a.bayes if not single else None
    if b and c.isnum(b.estimate):
        yb = r + 0.3
        _interval(ax, yb, b.ci_low, b.ci_high, ratio, xlim, f"summary-bayes-ci-{aid}", BAYES_COLOUR, 1.4)
        eb = c.to_display(b.estimate, ratio)
        if xlim[0] <= eb <= xlim[1]:
            ax.plot([eb], [yb], marker="D", ms=4.5, color=BAYES_COLOUR, mec="white", mew=0.5, ls="none", zorder=5,
                    gid=f"summary-bayes-{aid}")  # fmt: skip
    e = c.to_display(p.estimate, ratio)
    if xlim[0] <= e <= xlim[1]:
        ax.plot([e], [r], marker="s" if single else "D", ms=6.5 if single else 7, color=c.SQUARE if single else
                c.DIAMOND, mec="white", mew=0.6, ls="none", zorder=5, gid=f"summary-est-{aid}")  # fmt: skip


def _interval(ax, y, lo, hi, ratio, xlim, gid, color, lw) -> None:
    a, b = c.to_display(lo, ratio), c.to_display(hi, ratio)
    if a is None or b is None:
        return
    a2, b2 = max(a, xlim[0]), min(b, xlim[1])
    if a2 < b2:
        ax.add_line(Line2D([a2, b2], [y, y], color=color, lw=lw, gid=gid, solid_capstyle="butt", zorder=3))
    if a < xlim[0]:
        ax.plot([xlim[0]], [y], marker="<", ms=4.5, color=color, clip_on=False, gid=f"{gid}-arrow-left")
    if b > xlim[1]:
        ax.plot([xlim[1]], [y], marker=">", ms=4.5, color=color, clip_on=False, gid=f"{gid}-arrow-right")
