"""Figures of a network meta-analysis: the network graph, the forest plot against the reference and
the league table. They only present a result of :func:`tpsynth.network_analysis.run_network`.
"""

from __future__ import annotations

import math

from matplotlib.patches import Circle, Rectangle

from .. import display
from .common import DASH, DIAMOND, GREY, MEASURE_NAMES, effect_axis, fmt, isnum, new_figure, styled, wrap

__all__ = ["league_figure", "network_forest_figure", "network_graph_figure"]

CONF_COLOUR = {"high": "#1a9641", "moderate": "#a6d96a", "low": "#fdae61", "very low": "#d7191c"}
DIRECT = "#2b5c8a"
INDIRECT = "#e08214"


def _ratio(result):
    return result["measure"] in ("OR", "RR")


def _disp(x, ratio):
    return display.to_display(x, ratio) if isnum(x) else x


def _est_text(est, lo, hi, ratio):
    """``0.38 [−0.68, 1.43]`` (the figures' convention, :func:`tpsynth.display.effect`)."""
    return display.effect(est, lo, hi, ratio=ratio)


@styled
def network_graph_figure(result: dict):
    """Nodes on a circle in config order; area proportional to participants, edge width to trials."""
    nodes = result["nodes"]
    n = len(nodes)
    pos = {nd: (math.cos(math.pi / 2 - 2 * math.pi * i / n), math.sin(math.pi / 2 - 2 * math.pi * i / n))
           for i, nd in enumerate(nodes)}  # fmt: skip
    part_of, participants, edges = {}, {}, []
    for part in result["parts"]:
        for t in part["treatments"]:
            part_of[t] = part["part"]
            participants[t] = part["participants"].get(t, 0.0)
        edges += part["edges"]
    fig = new_figure(7.2, 6.2)
    ax = fig.add_axes((0.0, 0.06, 1.0, 0.86))
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    kmax = max([e["k"] for e in edges] or [1])
    for e in edges:
        (x1, y1), (x2, y2) = pos[e["a"]], pos[e["b"]]
        ax.plot([x1, x2], [y1, y2], color=GREY, lw=1.0 + 5.0 * e["k"] / kmax, solid_capstyle="round", zorder=1)
        ax.text((x1 + x2) / 2, (y1 + y2) / 2, str(e["k"]), fontsize=7, ha="center", va="center", zorder=3,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})  # fmt: skip
    nmax = max(list(participants.values()) or [1.0]) or 1.0
    for nd in nodes:
        x, y = pos[nd]
        if nd in participants:
            r = 0.06 + 0.16 * math.sqrt(participants[nd] / nmax)
            ax.add_patch(Circle((x, y), r, fc=DIRECT, ec="black", lw=0.6, zorder=2))
            sub = f"n = {participants[nd]:.0f}" + (f", part {part_of[nd]}" if len(result["parts"]) > 1 else "")
        else:
            r = 0.06
            ax.add_patch(Circle((x, y), r, fc="white", ec=GREY, lw=0.8, ls="--", zorder=2))
            sub = "no study with usable data"
        d = r + 0.06
        ha = "center" if abs(x) < 0.3 else ("left" if x > 0 else "right")
        va = "center" if abs(y) < 0.3 or ha != "center" else ("bottom" if y > 0 else "top")
        ax.text(x * (1 + d), y * (1 + d), wrap(nd, 22) + "\n" + sub, fontsize=7.5, ha=ha, va=va, zorder=4)
    fig.text(0.5, 0.965, wrap(result["title"], 90), ha="center", va="top", fontsize=8.5, weight="bold")
    note = "Circle area ∝ participants; line width ∝ trials (number on the line)."
    if len(result["parts"]) > 1:
        note += f" The network has {len(result['parts'])} unconnected parts: no comparison across them."
    fig.text(0.5, 0.02, wrap(note, 110), ha="center", va="bottom", fontsize=7, color=GREY)
    return fig


@styled
def network_forest_figure(result: dict):
    """Every treatment against each part's reference: network, direct and indirect estimates."""
    ratio = _ratio(result)
    rows = []
    for part in result["parts"]:
        ref = part["reference"]
        rows.append(("head", f"versus {ref}" + (f" (part {part['part']})" if len(result["parts"]) > 1 else ""), None))
        for t in part["treatments"]:
            if t == ref:
                continue
            p = next(q for q in part["pairs"] if q["treatment"] == t and q["comparator"] == ref)
            rows.append(("net", t, p))
            if isnum(p["direct_estimate"]) and isnum(p["indirect_estimate"]) and isnum(p["indirect_se"]) and p["direct_k"]:
                rows.append(("dir", "  direct", p))
                rows.append(("ind", "  indirect", p))
    h = max(2.0, 1.0 + 0.26 * len(rows))
    fig = new_figure(8.6, h)
    if not rows:
        fig.text(0.5, 0.5, "No trial with usable data: nothing to compare.", ha="center", va="center", fontsize=8)
        fig.text(0.5, 1 - 0.12 / h, wrap(result["title"], 110), ha="center", va="top", fontsize=8.5, weight="bold")
        return fig
    ax = fig.add_axes((0.33, 0.7 / h, 0.30, 1 - 1.25 / h))
    n = len(rows)
    ax.set_ylim(n - 0.5, -0.6)
    vals, points = [], []
    for i, (kind, label, p) in enumerate(rows):
        weight = "bold" if kind == "head" else "normal"
        ax.text(-0.02, i, wrap(label, 44, 1), transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=7.5, weight=weight)  # fmt: skip
        if p is None:
            continue
        if kind == "net":
            est, lo, hi = p["estimate"], p["ci_low"], p["ci_high"]
        elif kind == "dir":
            est, se = p["direct_estimate"], p["direct_se"]
            lo, hi = est - 1.959963984540054 * se, est + 1.959963984540054 * se
        else:
            est, se = p["indirect_estimate"], p["indirect_se"]
            lo, hi = est - 1.959963984540054 * se, est + 1.959963984540054 * se
        colour = {"net": DIAMOND, "dir": DIRECT, "ind": INDIRECT}[kind]
        ax.plot([_disp(lo, ratio), _disp(hi, ratio)], [i, i], color=colour, lw=1.2)
        ax.plot([_disp(est, ratio)], [i], marker="D" if kind == "net" else "s", color=colour, ms=5 if kind == "net" else 4)
        if kind == "net" and isnum(p["pi_low"]):
            ax.plot([_disp(p["pi_low"], ratio), _disp(p["pi_high"], ratio)], [i + 0.22, i + 0.22], color="#b2182b", lw=0.8)
        vals += [lo, hi] + ([p["pi_low"], p["pi_high"]] if kind == "net" else [])
        points.append(est)
        txt = _est_text(est, lo, hi, ratio)
        if kind == "net":
            txt += f"   {p['confidence']}"
        elif kind == "ind":
            txt += f"   split p = {fmt(p['split_pvalue'], 3)}" if isnum(p["split_pvalue"]) else ""
        ax.text(1.04, i, txt, transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=7.5,
                color=colour if kind != "net" else "black")  # fmt: skip
    effect_axis(ax, points, vals, ratio)  # symmetric around no effect, fixed plain-text tick labels
    ax.set_xlabel(f"{MEASURE_NAMES.get(result['measure'], result['measure'])} (treatment vs reference)", fontsize=7.5)
    fig.text(0.5, 1 - 0.12 / h, wrap(result["title"], 110), ha="center", va="top", fontsize=8.5, weight="bold")
    hib = result["higher_is_better"]
    favours = ("Direction not set: right of no effect = higher with the treatment." if hib is None else
               f"{'Higher' if hib else 'Lower'} values favour the treatment.")  # fmt: skip
    fig.text(0.01, 0.08 / h, wrap(f"Diamonds: network estimate with {int(100 * result['level'])}% CI (red line: prediction "
                                  f"interval); blue: direct, orange: indirect evidence (node-splitting). "
                                  f"{favours} Right: confidence (CINeMA).", 150),
             fontsize=6.8, color=GREY, va="bottom")  # fmt: skip
    return fig


@styled
def league_figure(result: dict):
    """League table per part: below the diagonal the network estimate of the row vs the column treatment
    (cell colour: confidence), above it the direct estimate of the row vs the column treatment."""
    ratio = _ratio(result)
    sizes = [len(p["treatments"]) for p in result["parts"]] or [1]
    total = sum(sizes) + 1.2 * len(sizes)
    cell_w = 1.25
    width = max(4.0, cell_w * max(sizes) + 0.4)
    height = 0.6 + 0.55 * total
    fig = new_figure(width, height)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    y = 0.5
    ax.text(width / 2, 0.25, wrap(result["title"], int(width * 14)), ha="center", va="center", fontsize=8, weight="bold")
    for part in result["parts"]:
        ts = part["treatments"]
        pairs = {(p["treatment"], p["comparator"]): p for p in part["pairs"]}
        if len(result["parts"]) > 1:
            ax.text(0.2, y + 0.3, f"Part {part['part']} (not comparable with the other parts)", fontsize=7.5, weight="bold")
            y += 0.5
        for i, ti in enumerate(ts):
            for j, tj in enumerate(ts):
                x0, y0 = 0.2 + j * cell_w, y + i * 0.55
                if i == j:
                    ax.add_patch(Rectangle((x0, y0), cell_w, 0.55, fc="#dddddd", ec="white"))
                    ax.text(x0 + cell_w / 2, y0 + 0.275, wrap(ti, 18), ha="center", va="center", fontsize=6.5, weight="bold")
                    continue
                p = pairs[(ti, tj)]
                if i > j:
                    fc = CONF_COLOUR.get(p["confidence"], "white")
                    txt = _est_text(p["estimate"], p["ci_low"], p["ci_high"], ratio).replace(" [", "\n[")
                else:
                    fc = "white"
                    if isnum(p["direct_estimate"]):
                        se = p["direct_se"]
                        d = p["direct_estimate"]
                        txt = _est_text(d, d - 1.959963984540054 * se, d + 1.959963984540054 * se, ratio).replace(" [", "\n[")
                    else:
                        txt = DASH
                ax.add_patch(Rectangle((x0, y0), cell_w, 0.55, fc=fc, ec="white", alpha=0.55 if i > j else 1.0))
                ax.text(x0 + cell_w / 2, y0 + 0.275, txt, ha="center", va="center", fontsize=6)
        y += 0.55 * len(ts) + 0.7
    legend = ("Below the diagonal: network estimate, row vs column treatment, coloured by confidence "
              "(green high, light green moderate, orange low, red very low). Above: direct evidence only.")  # fmt: skip
    ax.text(0.2, height - 0.2, wrap(legend, int(width * 16), 3), fontsize=6.3, color=GREY, va="bottom")
    return fig
