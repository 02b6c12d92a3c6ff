"""Risk-of-bias figures: traffic-light plot and (weighted) summary bar plot, as robvis draws them.

McGuinness LA, Higgins JPT. Risk-of-bias VISualization (robvis): an R package and Shiny web app for
visualizing risk-of-bias assessments. Res Synth Methods 2021;12:55-61. The two palettes are robvis's
``"cochrane"`` and ``"colourblind"`` colours; each judgement also has robvis's symbol (+, -, X, !, ?)
so that the plots read without colour.

Both figures take the checked rows of ``risk_of_bias.csv`` (:func:`tpsynth.rob.check_rows` completes
them) and draw one panel per tool.
"""

from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..results import AnalysisResult
from ..rob import SEVERITY, TOOLS
from . import common as c

#: robvis colours (R/helpers.R, get_colour) by judgement class
PALETTES = {
    "cochrane": {"low": "#02C100", "concerns": "#E2DF07", "high": "#BF0000", "critical": "#820000",
                 "ni": "#4EA1F7", "na": "#cccccc"},
    "colourblind": {"low": "#fed98e", "concerns": "#fe9929", "high": "#d95f0e", "critical": "#993404",
                    "ni": "#ffffff", "na": "#cccccc"},
}  # fmt: skip
SYMBOL = {"low": "+", "concerns": "\u2212", "high": "X", "critical": "!", "ni": "?", "na": ""}
CLASS_LABEL = {"low": "Low", "concerns": "Some concerns / moderate", "high": "High / serious", "critical": "Critical",
               "ni": "No information", "na": "Not applicable"}  # fmt: skip
CLASS_ORDER = ("low", "concerns", "high", "critical", "ni", "na")


def judgement_class(j: str) -> str:
    """The colour class of a judgement (low, concerns, high, critical, ni, na)."""
    if j == "no_information":
        return "ni"
    if j == "not_applicable" or SEVERITY.get(j) is None:
        return "na"
    return {0: "low", 1: "concerns", 2: "high", 3: "critical"}[SEVERITY[j]]


def _label(row: dict, studies: dict) -> str:
    s = studies.get(row["study_id"], {})
    name = f"{s.get('author') or row['study_id']} {s.get('year') or ''}".strip()
    return f"{name} [{row['outcome']}]" if row.get("outcome") else name


def _panels(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    by_tool: dict[str, list[dict]] = {}
    for r in rows:
        if "domains" in r:
            by_tool.setdefault(r["tool"], []).append(r)
    return [(t, by_tool[t]) for t in TOOLS if t in by_tool]


def _legend_width(classes) -> float:
    return 0.97 + sum(0.3 + 0.055 * len(CLASS_LABEL[k]) for k in classes) + 0.2


def _legend(fig, y: float, classes: list[str], palette: dict, gid: str) -> None:
    inch = fig.dpi_scale_trans
    x = 0.25
    fig.text(x, y, "Judgement:", transform=inch, fontsize=7, va="center")
    x += 0.72
    for k in classes:
        fig.add_artist(Line2D([x], [y], transform=inch, marker="o", ms=7.5, ls="none", mfc=palette[k], mec="black",
                              mew=0.5, gid=f"{gid}-legend-{k}"))  # fmt: skip
        fig.text(x, y, SYMBOL[k], transform=inch, fontsize=5.5, ha="center", va="center", fontweight="bold")
        fig.text(x + 0.1, y, CLASS_LABEL[k], transform=inch, fontsize=7, va="center")
        x += 0.3 + 0.055 * len(CLASS_LABEL[k])


def traffic_light_figure(rows: list[dict], studies: dict[str, dict], palette: str = "cochrane"):
    """Traffic-light plot: one row per assessment, one column per domain plus Overall, one panel per tool.

    Parameters
    ----------
    rows : list of dict
        Checked ``risk_of_bias.csv`` rows (with ``domains`` and ``overall``).
    studies : dict
        study_id -> ``studies.csv`` row (author and year label the rows).
    palette : {"cochrane", "colourblind"}
    """
    pal = PALETTES[palette]
    panels = _panels(rows)
    row_h, head_h, key_h = 0.24, 0.55, 0.16
    n_dom_max = max((len(rs[0]["domains"]) for _, rs in panels), default=1)
    label_w = 2.3
    classes = {judgement_class(j) for r in rows if "domains" in r for j in [d[2] for d in r["domains"]] + [r["overall"]]}
    width = max(label_w + 0.42 * (n_dom_max + 1) + 0.4, 6.0, _legend_width(classes))
    heights = [head_h + row_h * len(rs) + key_h * (len(rs[0]["domains"]) + 1) + 0.25 for _, rs in panels]
    height = sum(heights) + 0.45 if panels else 1.0
    fig = c.new_figure(width, height)
    inch = fig.dpi_scale_trans
    used: set[str] = set()
    y = height - 0.2
    for tool_code, rs in panels:
        tool = TOOLS[tool_code]
        n = len(rs[0]["domains"])
        fig.text(0.25, y, tool.name, transform=inch, fontsize=9, fontweight="bold", va="top")
        y -= 0.35
        xs = [label_w + 0.42 * i for i in range(n + 1)]
        for x, lab in zip(xs, [d[0] for d in rs[0]["domains"]] + ["Overall"], strict=True):
            fig.text(x, y, lab, transform=inch, fontsize=7.5, ha="center", va="center", fontweight="bold")
        for i, r in enumerate(rs):
            yy = y - row_h * (i + 1)
            fig.text(label_w - 0.35, yy, c.shorten(_label(r, studies), 34), transform=inch, fontsize=7.5, ha="right",
                     va="center")  # fmt: skip
            judgements = [d[2] for d in r["domains"]] + [r["overall"]]
            for j_i, (x, j) in enumerate(zip(xs, judgements, strict=True)):
                k = judgement_class(j)
                used.add(k)
                fig.add_artist(Line2D([x], [yy], transform=inch, marker="o", ms=11, ls="none", mfc=pal[k], mec="black",
                                      mew=0.5, gid=f"tl-{tool_code}-{i}-{j_i}"))  # fmt: skip
                mark = SYMBOL[k] + ("*" if j_i == n and r.get("overall_derived") else "")
                fig.text(x, yy, mark, transform=inch, fontsize=7, ha="center", va="center", fontweight="bold")
        y -= row_h * (len(rs) + 0.8)
        for lab, name in [d[:2] for d in rs[0]["domains"]]:
            fig.text(0.25, y, f"{lab}: {name}", transform=inch, fontsize=6.5, va="center", color=c.GREY)
            y -= key_h
        if any(r.get("overall_derived") for r in rs):
            fig.text(0.25, y, f"* overall derived by the {tool.name} algorithm ({tool.citation})", transform=inch,
                     fontsize=6.5, va="center", color=c.GREY)  # fmt: skip
        y -= key_h + 0.09
    _legend(fig, 0.2, [k for k in CLASS_ORDER if k in used], pal, "tl")
    return fig


def summary_shares(rs: list[dict], weights: dict[str, float] | None) -> list[tuple[str, dict[str, float]]]:
    """Share of each judgement class per domain and overall (weighted by ``weights[study_id]`` when given).

    Returns ``[(label, {class: share}), ...]`` with Overall first, then the domains, as robvis.
    """
    def w(r):
        return 1.0 if weights is None else weights.get(r["study_id"], 0.0)

    total = sum(w(r) for r in rs)
    out = []
    cols = [("Overall", None)] + [(f"{lab}: {name}", i) for i, (lab, name, _, _) in enumerate(rs[0]["domains"])]
    for label, idx in cols:
        shares: dict[str, float] = {}
        for r in rs:
            k = judgement_class(r["overall"] if idx is None else r["domains"][idx][2])
            shares[k] = shares.get(k, 0.0) + (w(r) / total if total > 0 else 0.0)
        out.append((label, shares))
    return out


def summary_figure(rows: list[dict], weights: dict[str, float] | None = None, palette: str = "cochrane",
                   title: str | None = None):
    """Summary bar plot: per domain, the share of assessments (or of weight) with each judgement.

    Parameters
    ----------
    rows : list of dict
        Checked ``risk_of_bias.csv`` rows; with ``weights`` only the studies in it are drawn.
    weights : dict, optional
        study_id -> weight of the study in an analysis (robvis ``rob_summary(weighted = TRUE)``);
        ``None`` draws each assessment with equal weight.
    palette : {"cochrane", "colourblind"}
    title : str, optional
    """
    pal = PALETTES[palette]
    if weights is not None:
        rows = [r for r in rows if r["study_id"] in weights]
    panels = _panels(rows)
    bar_h = 0.26
    heights = [0.45 + bar_h * (len(rs[0]["domains"]) + 1) + 0.35 for _, rs in panels]
    height = sum(heights) + 0.55 + (0.25 if title else 0) if panels else 1.2
    width = 7.5
    fig = c.new_figure(width, height)
    inch = fig.dpi_scale_trans
    y = height - 0.2
    if title:
        fig.text(0.25, y, title, transform=inch, fontsize=9, fontweight="bold", va="top")
        y -= 0.3
    if not panels:
        fig.text(0.25, y - 0.3, "No risk-of-bias assessment by domain for these studies.", transform=inch, fontsize=8)
        return fig
    used: set[str] = set()
    x0, x1 = 3.0, width - 0.35
    for tool_code, rs in panels:
        tool = TOOLS[tool_code]
        what = "weighted by study weight" if weights is not None else "unweighted"
        fig.text(0.25, y, f"{tool.name} ({len(rs)} assessment{'s' if len(rs) != 1 else ''}; {what})", transform=inch,
                 fontsize=8.5, fontweight="bold", va="top")  # fmt: skip
        y -= 0.42
        for b, (label, shares) in enumerate(summary_shares(rs, weights)):
            yy = y - bar_h * b
            fig.text(x0 - 0.08, yy, c.shorten(label, 46), transform=inch, fontsize=7, ha="right", va="center",
                     fontweight="bold" if label == "Overall" else "normal")  # fmt: skip
            left = x0
            for k in CLASS_ORDER:
                share = shares.get(k, 0.0)
                if share <= 0:
                    continue
                used.add(k)
                wbar = share * (x1 - x0)
                fig.add_artist(Rectangle((left, yy - bar_h * 0.4), wbar, bar_h * 0.8, transform=inch, facecolor=pal[k],
                                         edgecolor="black", linewidth=0.4, gid=f"bar-{tool_code}-{b}-{k}"))  # fmt: skip
                if wbar > 0.3:
                    fig.text(left + wbar / 2, yy, f"{100 * share:.0f}%", transform=inch, fontsize=6, ha="center",
                             va="center", color="white" if k in ("high", "critical") else "black")  # fmt: skip
                left += wbar
        y -= bar_h * (len(rs[0]["domains"]) + 1) + 0.2
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        x = x0 + frac * (x1 - x0)
        fig.text(x, y + 0.08, f"{100 * frac:.0f}%", transform=inch, fontsize=6.5, ha="center", va="center", color=c.GREY)
    _legend(fig, 0.2, [k for k in CLASS_ORDER if k in used], pal, "sum")
    return fig


def analysis_assessments(rows: list[dict], analysis: AnalysisResult) -> tuple[list[dict], dict[str, float]]:
    """The assessment each study of an analysis uses (outcome-specific, else all-outcomes) and its weight."""
    from ..rob import assessment_for

    outcome = analysis.settings.outcome
    chosen, weights = [], {}
    for s in analysis.studies:
        r = assessment_for(rows, s.study_id, outcome)
        if r is not None:
            chosen.append(r)
            weights[s.study_id] = float(s.weight or 0.0)
    return chosen, weights


def write_rob_figures(rows: list[dict], studies: dict[str, dict], analyses: list[AnalysisResult], palette: str,
                      traffic_stem: str, summary_stem: str, analysis_stems: dict[str, str]) -> list:
    """Draw the traffic-light plot, the unweighted summary and one weighted summary per analysis."""
    written = list(c.save_all(traffic_light_figure(rows, studies, palette), traffic_stem))
    written += c.save_all(summary_figure(rows, None, palette, title="Risk of bias: all assessments"), summary_stem)
    for a in analyses:
        chosen, weights = analysis_assessments(rows, a)
        title = f"Risk of bias weighted by study weight: {a.title}"
        written += c.save_all(summary_figure(chosen, weights, palette, title=c.shorten(title, 110)),
                              analysis_stems[a.analysis_id])  # fmt: skip
    return written
