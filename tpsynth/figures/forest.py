"""Forest plot of one analysis in the RevMan / R ``meta`` layout.

Columns: study (author year, with † for converted statistics and ‡ for low extraction confidence),
intervention and comparator arms (``mean (SD), n`` or ``events/n``), weight, effect with its CI as
text, the plot (squares sized by weight, CI lines, arrows where a CI leaves the axis, the pooled
diamond and the prediction-interval bar) and the risk of bias as coloured dots. Below: heterogeneity,
the test for overall effect, the test for subgroup differences, "Favours" labels and footnotes.

Every row has the same height, so the figure grows with the number of studies and nothing overlaps.
The layout is in inches on a :class:`common.Canvas`: a new figure of that size (the pipeline), or a
user's axes that the same layout fills (``forest_figure(analysis, ax=ax)``, ``MetaAnalysis.forest(ax=)``).
Artists carry SVG ids (``study-square-{i}``, ``study-ci-{i}``, ``ci-arrow-{i}-{side}``, ``rob-{i}``,
``diamond-overall``, ``diamond-subgroup-{name}``, ``pi-bar``) so that tests and readers of the SVG can
find them; ``i`` is the study's position in the plotted order.
"""

from __future__ import annotations

import re

from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from ..results import AnalysisResult, Study
from . import common as c

ROW = 0.2  # row height, inches
FS = 8  # font size of the table
SMALL = 7  # font size of footnotes
LEFT = 0.15
# column geometry (inches from the left edge)
X_STUDY = LEFT
X_INT = 2.62  # centre of the intervention column
X_COMP = 4.02  # centre of the comparator column
X_WEIGHT = 5.22  # right edge of the weight column
X_EFFECT = 6.08  # centre of the effect text column
PLOT_X0, PLOT_W = 7.0, 2.6
X_ROB = 9.98
BAYES_COLOUR = "#6a3d9a"  # the Bayesian diamond (purple), distinct from the frequentist one
WIDTH = 10.4
ROB_COL = 0.24  # width of one risk-of-bias domain column (added to WIDTH when domain data exist)

HEADER_NAMES = {
    "MD": "Mean difference",
    "SMD": "Std. mean difference",
    "RR": "Risk ratio",
    "OR": "Odds ratio",
    "RD": "Risk difference",
}

SORT_KEYS = ("year", "author", "effect", "weight", "none")


def _sort_studies(studies: list[Study], sort_by: str | None) -> list[Study]:
    """Studies sorted by ``sort_by`` (default year); studies without the value go last."""
    key_name = (sort_by or "none").lower()
    if key_name not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {SORT_KEYS}, not {sort_by!r}")
    if key_name == "none":
        return list(studies)
    field = {"year": "year", "author": "author", "effect": "yi", "weight": "weight"}[key_name]

    def key(s):
        v = getattr(s, field)
        missing = v is None or (field != "author" and not c.isnum(v))
        if key_name == "weight" and not missing:
            v = -v  # heaviest first
        return (missing, v if not missing else 0, str(s.author or ""), str(s.study_id or ""))

    return sorted(studies, key=key)


def study_label(s: Study, width: int = 27) -> str:
    """``Author year`` with the dagger marks, shortened to ``width`` characters."""
    name = str(s.author or s.study_id or "?")
    year = s.year
    tail = f" {int(year)}" if c.isnum(year) else ""
    marks = (c.DAGGER if s.derived else "") + (c.DDAGGER if s.low_confidence else "")
    tail += f" {marks}" if marks else ""
    return c.shorten(name, max(width - len(tail), 6)) + tail


def _participants(studies: list[Study]) -> int | None:
    tot, any_n = 0, False
    for s in studies:
        for n in (s.n_intervention, s.n_comparator):
            if c.isnum(n):
                tot += n
                any_n = True
    return round(tot) if any_n else None


def _safe_id(name) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "none"


class _Layout:
    """Rows of equal height from the top of the table; positions in inches from the bottom-left."""

    def __init__(self, top: float, n_rows: int, bottom: float):
        self.top = top
        self.n_rows = n_rows
        self.bottom = bottom
        self.height = top + n_rows * ROW + bottom

    def y(self, row: float) -> float:
        """Centre of ``row`` (inches from the bottom)."""
        return self.height - self.top - (row + 0.5) * ROW


def _empty_figure(analysis: AnalysisResult, message: str, ax=None):
    title = c.wrap(analysis.title, 80, 2)
    if ax is not None:  # the same two lines, in the user's axes
        ax.set_axis_off()
        ax.text(0.03, 0.9, title, fontsize=10, fontweight="bold", va="top", ha="left", transform=ax.transAxes)
        ax.text(0.5, 0.35, message, fontsize=10, ha="center", va="center", color=c.GREY, gid="no-data",
                transform=ax.transAxes)  # fmt: skip
        return ax
    fig = c.new_figure(7.0, 1.6)
    fig.text(0.03, 0.9, title, fontsize=10, fontweight="bold", va="top", ha="left")
    fig.text(0.5, 0.35, message, fontsize=10, ha="center", va="center", color=c.GREY, gid="no-data")
    return fig


#: Most studies a forest plot draws one row each for; above, each group's studies are summarised in one
#: line (the plot would otherwise be k rows high: 400,000 pixels at k = 10,000) and the study-level
#: results are in ``results/study_effects.csv`` and the report.
FOREST_MAX_STUDIES = 300


@c.styled
def forest_figure(analysis: AnalysisResult, sort_by: str | None = "year", ax=None):
    """Forest plot of one analysis.

    Parameters
    ----------
    analysis : tpsynth.results.AnalysisResult
        The analysis result (``AnalysisResult.from_json("results/analyses/{analysis_id}.json")``):
        its ``settings``, ``outcome``, ``labels``, ``pooled``, ``studies``, ``subgroups`` and ``bayes``.
    sort_by : {"year", "author", "effect", "weight", "none"}, optional
        Order of the study rows (within each subgroup). Studies without the value go last.
        ``None`` or ``"none"`` keeps the order of ``analysis.studies``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure: the whole layout (text columns, plot panel as an
        inset axes, footnotes) fills it, with font and marker sizes scaled to it (:class:`common.Canvas`).
        Give the axes the aspect of the figure drawn without ``ax`` (its ``get_size_inches()``).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        Without ``ax``, the figure; its height grows with the number of rows (one row per study, up to
        :data:`FOREST_MAX_STUDIES` studies; above, one summary line per group). With ``ax``, that axes.
    """
    pooled = analysis.pooled
    outcome = analysis.outcome
    studies = [s for s in analysis.studies if c.isnum(s.yi)]
    measure = str(analysis.measure or "")
    ratio = c.is_ratio(measure)
    k = int(pooled.k or len(studies)) if studies else 0
    if not studies:
        return _empty_figure(analysis, "No study with usable data", ax)
    level = c.level_pct(analysis)
    single = k == 1 or pooled.single
    random = not single and str(pooled.method or "").upper() not in {"FE", "EE", "CE", "MH", "PETO"}
    dichotomous = ratio or measure == "RD" or outcome.type == "dichotomous"

    # ------------------------------------------------------------------ rows
    groups = list(analysis.subgroups)
    rows: list[dict] = []
    ordered: list[Study] = []
    many = len(studies) > FOREST_MAX_STUDIES  # summarised: one line per group instead of one row per study

    def study_rows(members):
        if many:
            rows.append({"kind": "many", "n": len(members)})
            return
        for s in members:
            rows.append({"kind": "study", "study": s, "i": len(ordered)})
            ordered.append(s)

    if groups:
        names = [g.subgroup for g in groups]
        for g in groups:
            members = _sort_studies([s for s in studies if s.subgroup == g.subgroup], sort_by)
            rows.append({"kind": "heading", "text": str(g.subgroup)})
            study_rows(members)
            rows.append({"kind": "subtotal", "group": g, "studies": members})
            rows.append({"kind": "blank"})
        rest = _sort_studies([s for s in studies if s.subgroup not in names], sort_by)
        if rest:
            rows.append({"kind": "heading", "text": "Subgroup not reported"})
            study_rows(rest)
            rows.append({"kind": "blank"})
    else:
        study_rows(studies if many else _sort_studies(studies, sort_by))
        rows.append({"kind": "blank"})
    rows.append({"kind": "total"})
    bayes = analysis.bayes if not single else None
    if bayes and c.isnum(bayes.estimate):
        rows.append({"kind": "bayes"})
    has_pi = (not single) and k >= 3 and c.isnum(pooled.pi_low) and c.isnum(pooled.pi_high)
    if has_pi:
        rows.append({"kind": "pi"})
    rows.append({"kind": "blank"})  # space between the last interval and the axis
    n_plot_rows = len(rows)

    stats_lines = _stats_lines(analysis, pooled, k, single, bool(groups))
    foot = _footnotes(analysis, measure, ordered, single, has_pi, level, random) + _rob_domain_note(ordered)

    title = c.wrap(analysis.title, 115, 2)
    n_title = title.count("\n") + 1
    sub = _subtitle(outcome, measure, pooled, k, studies, single, level)
    top = 0.12 + n_title * 0.2 + 0.2 + 2 * ROW + 0.08  # title, subtitle, two header rows
    below_axis = 0.72  # tick labels and "Favours" labels
    n_foot = sum(t.count("\n") + 1 for t in foot) + 1  # + risk-of-bias legend
    bottom = max(len(stats_lines) * ROW + 0.1, below_axis) + 0.12 + n_foot * 0.16 + 0.1
    lay = _Layout(top, n_plot_rows, bottom)
    doms = _rob_domain_labels(studies)  # RevMan-style D1 ... Dn + overall columns when domain data exist
    width = WIDTH + ROB_COL * len(doms)
    cv = c.Canvas(width, lay.height, ax)  # a new figure, or the user's axes filled by the same layout
    inch = cv.transform
    H = lay.height

    def text(x, y, s, **kw):
        kw.setdefault("fontsize", FS)
        kw.setdefault("va", "center")
        return cv.text(x, y, s, **kw)

    # ------------------------------------------------------------------ title and header
    text(LEFT, H - 0.12, title, fontsize=10, fontweight="bold", va="top")
    text(LEFT, H - 0.12 - n_title * 0.2 - 0.02, sub, fontsize=7.5, va="top", color=c.GREY)
    y_h1 = H - top + 2 * ROW - 0.5 * ROW
    y_h2 = y_h1 - ROW
    arm_unit = "events/n" if dichotomous else "mean (SD), n"
    head = {"fontweight": "bold"}
    text(X_STUDY, y_h2, "Study", **head)
    text(X_INT, y_h1, "Intervention", ha="center", **head)
    text(X_INT, y_h2, arm_unit, ha="center", color=c.GREY)
    text(X_COMP, y_h1, "Comparator", ha="center", **head)
    text(X_COMP, y_h2, arm_unit, ha="center", color=c.GREY)
    text(X_WEIGHT, y_h2, "Weight", ha="right", **head)
    mname = HEADER_NAMES.get(measure, measure)
    model = "IV, Random" if random else "IV, Fixed" if not single else "IV"
    text(X_EFFECT, y_h1, mname, ha="center", **head)
    text(X_EFFECT, y_h2, f"{model}, {level} CI", ha="center", color=c.GREY)
    text(PLOT_X0 + PLOT_W / 2, y_h1, mname, ha="center", **head)
    text(PLOT_X0 + PLOT_W / 2, y_h2, f"{model}, {level} CI", ha="center", color=c.GREY)
    if doms:
        text(X_ROB + ROB_COL * len(doms) / 2, y_h1, "Risk of bias", ha="center", **head)
        for j, lab in enumerate([*doms, "Overall"]):
            text(X_ROB + ROB_COL * j, y_h2, lab, ha="center", fontsize=6.5 if j < len(doms) else 5.5,
                 fontweight="bold", gid=f"rob-head-{j}")  # fmt: skip
    else:
        text(X_ROB, y_h1, "Risk", ha="center", **head)
        text(X_ROB, y_h2, "of bias", ha="center", **head)
    for y in (y_h1 + 0.5 * ROW + 0.02, y_h2 - 0.5 * ROW - 0.02):
        cv.add_line(Line2D([LEFT, width - LEFT], [y, y], transform=inch, color="black", lw=0.6))

    # ------------------------------------------------------------------ plot axes
    ax_top = H - top
    ax_h = n_plot_rows * ROW
    plot_ax = cv.add_axes((PLOT_X0 / width, (ax_top - ax_h) / H, PLOT_W / width, ax_h / H))
    plot_ax.set_ylim(n_plot_rows - 0.5, -0.5)
    points = [s.yi for s in studies] + [pooled.estimate]
    points += [g.estimate for g in groups]
    bounds = [b for s in studies for b in (s.ci_low, s.ci_high)]
    bounds += [pooled.ci_low, pooled.ci_high]
    if has_pi:
        bounds += [pooled.pi_low, pooled.pi_high]
    if bayes:
        points.append(bayes.estimate)
        bounds += [bayes.ci_low, bayes.ci_high]
    xlim = c.effect_axis(plot_ax, points, bounds, ratio)

    def disp(v):
        return c.to_display(v, ratio)

    max_w = max((s.weight or 0) for s in studies) or 1.0
    max_side = 0.8 * ROW * 72 * cv.scale

    def interval(y, lo, hi, gid, arrow_gid, **kw):
        """A horizontal interval clipped to the axis, with arrows where it runs off."""
        a, b = disp(lo), disp(hi)
        if a is None or b is None:
            return
        a2, b2 = max(a, xlim[0]), min(b, xlim[1])
        if a2 < b2:
            plot_ax.add_line(Line2D([a2, b2], [y, y], gid=gid, solid_capstyle="butt", **kw))
        color = kw.get("color", "black")
        if a < xlim[0]:
            plot_ax.plot([xlim[0]], [y], marker="<", ms=4.5 * cv.scale, color=color, clip_on=False, gid=f"{arrow_gid}-left")
        if b > xlim[1]:
            plot_ax.plot([xlim[1]], [y], marker=">", ms=4.5 * cv.scale, color=color, clip_on=False, gid=f"{arrow_gid}-right")

    def diamond(y, est, lo, hi, gid, color):
        e, a, b = disp(est), disp(lo), disp(hi)
        if e is None or a is None or b is None:
            return
        h = 0.36
        poly = Polygon([(a, y), (e, y - h), (b, y), (e, y + h)], closed=True, facecolor=color,
                       edgecolor=color, lw=0.6, gid=gid, zorder=4)  # fmt: skip
        plot_ax.add_patch(poly)
        if a < xlim[0]:
            plot_ax.plot([xlim[0]], [y], marker="<", ms=4.5 * cv.scale, color=color, clip_on=False, gid=f"{gid}-arrow-left")
        if b > xlim[1]:
            plot_ax.plot([xlim[1]], [y], marker=">", ms=4.5 * cv.scale, color=color, clip_on=False, gid=f"{gid}-arrow-right")

    digits = 2
    for r, row in enumerate(rows):
        y_in = lay.y(r)
        kind = row["kind"]
        if kind == "heading":
            text(X_STUDY, y_in, c.shorten(row["text"], 70), fontweight="bold")
        elif kind == "many":
            text(X_STUDY, y_in, f"{row['n']:,} studies, not drawn one by one (more than {FOREST_MAX_STUDIES}): "
                 "each study's estimate, CI and weight are in results/study_effects.csv", style="italic",
                 color=c.GREY, gid="studies-summarised")  # fmt: skip
        elif kind == "study":
            s, i = row["study"], row["i"]
            text(X_STUDY, y_in, study_label(s))
            arms = s.arms_text
            if s.source == "contrast" or not (arms.intervention or arms.comparator):
                text((X_INT + X_COMP) / 2, y_in, "reported contrast", ha="center", style="italic", color=c.GREY)
            else:
                text(X_INT, y_in, c.shorten(arms.intervention or c.DASH, 24), ha="center")
                text(X_COMP, y_in, c.shorten(arms.comparator or c.DASH, 24), ha="center")
            w = s.weight
            text(X_WEIGHT, y_in, f"{w:.1f}%" if c.isnum(w) else c.DASH, ha="right")
            text(X_EFFECT, y_in, c.effect_text(s.yi, s.ci_low, s.ci_high, ratio, digits), ha="center")
            interval(r, s.ci_low, s.ci_high, f"study-ci-{i}", f"ci-arrow-{i}", color="black", lw=0.9)
            e = disp(s.yi)
            if xlim[0] <= e <= xlim[1]:
                side = max(max_side * ((w or 0) / max_w) ** 0.5, 2.5 * cv.scale) if c.isnum(w) else 3.0 * cv.scale
                plot_ax.plot([e], [r], marker="s", ms=side, color=c.SQUARE, mec=c.SQUARE, mew=0.3, ls="none",
                        gid=f"study-square-{i}", zorder=3)  # fmt: skip
            else:
                plot_ax.plot([xlim[1] if e > xlim[1] else xlim[0]], [r], marker="s", ms=0.01, alpha=0,
                        gid=f"study-square-{i}", clip_on=False)  # fmt: skip
            rob = str(s.rob_overall or "not_assessed")
            st = c.ROB_STYLE.get(rob, c.ROB_STYLE["not_assessed"])
            cv.add_line(Line2D([X_ROB + ROB_COL * len(doms)], [y_in], transform=inch, marker="o", ms=6.5, ls="none",
                                  mfc=st["color"] if st["fill"] else "white", mec=st["color"], mew=1.0,
                                  gid=f"rob-{i}"))  # fmt: skip
            for j, dom in enumerate((s.rob.domains if s.rob else ())[: len(doms)]):
                sd = c.ROB_STYLE.get(dom.level, c.ROB_STYLE["not_assessed"])
                cv.add_line(Line2D([X_ROB + ROB_COL * j], [y_in], transform=inch, marker="o", ms=5.5, ls="none",
                                      mfc=sd["color"] if sd["fill"] else "white", mec=sd["color"], mew=0.9,
                                      gid=f"rob-{i}-d{j + 1}"))  # fmt: skip
        elif kind == "subtotal":
            g, members = row["group"], row["studies"]
            n = _participants(members)
            gk = g.k or len(members)
            lab = f"Subtotal (k = {gk}" + (f", {n} participants)" if n else ")")
            text(X_STUDY, y_in, lab, fontweight="bold")
            wsum = sum(s.weight or 0 for s in members)
            text(X_WEIGHT, y_in, f"{wsum:.1f}%", ha="right", fontweight="bold")
            text(X_EFFECT, y_in, c.effect_text(g.estimate, g.ci_low, g.ci_high, ratio, digits), ha="center",
                 fontweight="bold")  # fmt: skip
            if gk and gk > 1:
                diamond(r, g.estimate, g.ci_low, g.ci_high, f"diamond-subgroup-{_safe_id(g.subgroup)}", c.SUB_DIAMOND)
                het = f"Heterogeneity: \u03c4\u00b2 = {c.fmt_small(g.tau2)}; I\u00b2 = {c.fmt(g.i2, 0)}%"
                text(X_STUDY + 0.1, y_in - 0.62 * ROW, het, fontsize=6.5, color=c.GREY, va="center")
            elif c.isnum(g.estimate):
                diamond(r, g.estimate, g.ci_low, g.ci_high, f"diamond-subgroup-{_safe_id(g.subgroup)}", c.SUB_DIAMOND)
        elif kind == "total":
            n = pooled.n_participants
            n = round(n) if c.isnum(n) else _participants(studies)
            if single:
                text(X_STUDY, y_in, "Single study, not pooled", fontweight="bold")
            else:
                lab = f"Total (k = {k}" + (f", {n} participants)" if n else ")")
                text(X_STUDY, y_in, lab, fontweight="bold")
                text(X_WEIGHT, y_in, "100.0%", ha="right", fontweight="bold")
                text(X_EFFECT, y_in, c.effect_text(pooled.estimate, pooled.ci_low, pooled.ci_high, ratio, digits),
                     ha="center", fontweight="bold")  # fmt: skip
                diamond(r, pooled.estimate, pooled.ci_low, pooled.ci_high, "diamond-overall", c.DIAMOND)
        elif kind == "bayes":
            text(X_STUDY, y_in, f"Bayesian random effects ({level} credible interval)", fontweight="bold",
                 color=BAYES_COLOUR)  # fmt: skip
            text(X_EFFECT, y_in, c.effect_text(bayes.estimate, bayes.ci_low, bayes.ci_high, ratio, digits),
                 ha="center", fontweight="bold", color=BAYES_COLOUR)  # fmt: skip
            diamond(r, bayes.estimate, bayes.ci_low, bayes.ci_high, "diamond-bayes", BAYES_COLOUR)
        elif kind == "pi":
            text(X_STUDY, y_in, f"{level} prediction interval", color=c.PI_COLOUR)
            lo, hi = c.to_display(pooled.pi_low, ratio), c.to_display(pooled.pi_high, ratio)
            text(X_EFFECT, y_in, f"[{c.fmt_auto(lo, digits, ratio)}, {c.fmt_auto(hi, digits, ratio)}]", ha="center",
                 color=c.PI_COLOUR)  # fmt: skip
            interval(r, pooled.pi_low, pooled.pi_high, "pi-bar", "pi-arrow", color=c.PI_COLOUR, lw=2.2)

    # ------------------------------------------------------------------ below the table
    y_axis = H - top - ax_h
    y = y_axis - 0.08
    for line in stats_lines:
        text(X_STUDY, y - ROW / 2, line, fontsize=7.5)
        y -= ROW
    left, right = c.favours_labels(analysis)
    yf = y_axis - 0.3
    for x, lab in ((PLOT_X0 + PLOT_W * 0.25, left), (PLOT_X0 + PLOT_W * 0.75, right)):
        text(x, yf, c.wrap(lab, 21, 3), ha="center", va="top", fontsize=7, gid="favours-" + ("left" if x < PLOT_X0 + PLOT_W / 2 else "right"))  # fmt: skip
    y_sep = y_axis - max(len(stats_lines) * ROW + 0.1, below_axis) - 0.06
    cv.add_line(Line2D([LEFT, width - LEFT], [y_sep, y_sep], transform=inch, color="#999999", lw=0.4))
    yb = y_sep - 0.06
    for note in foot:
        text(LEFT, yb, note, fontsize=SMALL, va="top", color="#333333")
        yb -= (note.count("\n") + 1) * 0.16
    _rob_legend(cv, yb - 0.08)
    return cv.result()


def _rob_domain_note(studies: list[Study]) -> list[str]:
    """One footnote line naming the risk-of-bias domains of each tool used (when domain data exist)."""
    from ..rob import TOOLS

    tools: dict[str, int] = {}
    for s in studies:
        if s.rob and s.rob.domains:
            tools[s.rob.tool] = max(tools.get(s.rob.tool, 0), len(s.rob.domains))
    lines = []
    for code, n in tools.items():
        t = TOOLS[code]
        lines.append(f"Risk of bias ({t.name}): " + "; ".join(f"{lab} {name.lower()}" for lab, name in t.domains[:n]) + ".")
    return [c.wrap(line, 190, 3) for line in lines]


def _rob_domain_labels(studies: list[Study]) -> list[str]:
    """Domain labels (D1 ...) of the risk-of-bias columns: those of the study with the most domains."""
    best: list[str] = []
    for s in studies:
        doms = [d.domain for d in (s.rob.domains if s.rob else ())]
        if len(doms) > len(best):
            best = doms
    return best


def _subtitle(outcome, measure, pooled, k, studies, single, level) -> str:
    parts = [f"Outcome: {c.shorten(outcome.label or '', 70)}"]
    name = c.MEASURE_NAMES.get(measure, measure)
    if measure == "MD" and outcome.reference_scale:
        lo, hi = outcome.reference_scale
        name += f" on a {lo:g}\u2013{hi:g} scale"
    parts.append(name)
    parts.append(c.method_text(pooled.method, pooled.ci_method))
    n = pooled.n_participants
    n = round(n) if c.isnum(n) else _participants(studies)
    parts.append(f"{k} {'study' if k == 1 else 'studies'}" + (f", {n} participants" if n else ""))
    return "   \u00b7   ".join(parts)


def _stats_lines(analysis, pooled, k, single, has_groups) -> list[str]:
    if single:
        return ["Heterogeneity and test for overall effect: not applicable (one study; its own estimate and CI)."]
    lines = []
    tau2 = pooled.tau2
    tau = f"\u03c4\u00b2 = {c.fmt_small(tau2)}"
    if c.isnum(tau2) and c.isnum(pooled.tau2_ci_low) and c.isnum(pooled.tau2_ci_high):
        d = c.small_digits(tau2)
        upper = c.fmt_small(pooled.tau2_ci_high, d)
        if pooled.tau2_ci_capped:
            upper = f">{c.fmt_small(pooled.tau2_ci_high, 0)}"  # the Q-profile search stopped at its limit
        tau += f" [{c.fmt_small(pooled.tau2_ci_low, d)}, {upper}]"
    elif not c.isnum(tau2):
        tau = "\u03c4\u00b2 not estimated"
    q = pooled.q
    qtxt = f"Q = {c.fmt(q)}, df = {pooled.q_df} ({c.fmt_p(pooled.q_pvalue)})" if c.isnum(q) else ""
    i2 = pooled.i2
    i2txt = f"I\u00b2 = {c.fmt(i2, 0)}%"
    if c.isnum(i2) and c.isnum(pooled.i2_ci_low) and c.isnum(pooled.i2_ci_high):
        i2txt += f" [{c.fmt(pooled.i2_ci_low, 0)}%, {c.fmt(pooled.i2_ci_high, 0)}%]"
    lines.append("Heterogeneity: " + "; ".join(x for x in (tau, qtxt, i2txt) if x))
    est, se = pooled.estimate, pooled.se
    if c.isnum(est) and c.isnum(se) and se > 0:
        stat = est / se
        if str(pooled.ci_method or "").lower().startswith("hksj") and k > 1:
            test = f"t = {c.fmt(stat)}, df = {k - 1}"
        else:
            test = f"z = {c.fmt(stat)}"
        lines.append(f"Test for overall effect: {test} ({c.fmt_p(pooled.pvalue)})")
    if has_groups:
        qb = pooled.q_between
        sr = analysis.subgroup_regression  # subgroup_model common_tau2: the model's omnibus test (metafor QM)
        if sr is not None and c.isnum(sr.qm) and c.isnum(sr.qm_df2):
            lines.append(
                f"Test for subgroup differences (common \u03c4\u00b2): F({sr.qm_df}, {c.fmt(sr.qm_df2, 0)}) = "
                f"{c.fmt(sr.qm)} ({c.fmt_p(sr.qm_pvalue)})"
            )
        elif sr is not None and c.isnum(sr.qm):
            lines.append(
                f"Test for subgroup differences (common \u03c4\u00b2): QM = {c.fmt(sr.qm)}, df = {sr.qm_df} "
                f"({c.fmt_p(sr.qm_pvalue)})"
            )
        elif c.isnum(qb):
            lines.append(
                f"Test for subgroup differences: Q = {c.fmt(qb)}, df = {pooled.q_between_df} "
                f"({c.fmt_p(pooled.q_between_pvalue)})"
            )
        else:
            lines.append("Test for subgroup differences: not estimable")
    return lines


def _footnotes(analysis, measure, studies, single, has_pi, level, random) -> list[str]:
    outcome = analysis.outcome
    notes = []
    what = (
        f"Squares: study estimates (area proportional to weight) with {level} CIs; arrows: CI beyond the axis."
    )
    if not single:
        what += f" Diamond: pooled estimate and its {level} CI ({c.method_text(analysis.pooled.method, analysis.pooled.ci_method)})."
    if has_pi:
        what += f" Red bar: {level} prediction interval."
    b = analysis.bayes if not single else None
    if b and c.isnum(b.estimate):
        what += (f" Purple diamond: Bayesian random-effects posterior median and {level} credible interval (prior on"
                 f" tau {b.tau_prior}, {b.mu_prior} prior on the effect).")  # fmt: skip
    notes.append(what)
    if c.is_ratio(measure):
        notes.append(f"{c.MEASURE_NAMES[measure]}s on a log axis; values > 1 mean more events with the intervention.")
    elif measure == "MD" and outcome.reference_scale:
        lo, hi = outcome.reference_scale
        notes.append(
            f"Mean differences on a {lo:g}\u2013{hi:g} scale (every instrument rescaled); arm statistics as reported,"
            " on each instrument's own scale."
        )
    elif measure == "SMD":
        notes.append("Arm statistics as reported, on each instrument's own scale.")
    marks = []
    if any(s.derived for s in studies):
        marks.append(
            f"{c.DAGGER} statistics converted (e.g. SD from SE or CI, mean and SD from median and IQR or range,"
            " SE from a reported CI)"
        )
    if any(s.low_confidence for s in studies):
        marks.append(f"{c.DDAGGER} low extraction confidence")
    if marks:
        notes.append("; ".join(marks) + ".")
    return [c.wrap(n, 190, 3) for n in notes]


def _rob_legend(cv: c.Canvas, y: float) -> None:
    inch = cv.transform
    x = LEFT
    cv.text(x, y, "Risk of bias:", fontsize=SMALL, va="center")
    x += 0.78
    for key in ("low", "some_concerns", "high", "not_assessed"):
        st = c.ROB_STYLE[key]
        cv.add_line(Line2D([x], [y], transform=inch, marker="o", ms=5.5, ls="none",
                           mfc=st["color"] if st["fill"] else "white", mec=st["color"], mew=1.0,
                           gid=f"rob-legend-{key}"))  # fmt: skip
        cv.text(x + 0.09, y, st["label"], fontsize=SMALL, va="center")
        x += 0.2 + 0.058 * len(st["label"])
