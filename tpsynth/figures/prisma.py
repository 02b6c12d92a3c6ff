"""PRISMA 2020 flow diagram (Page et al. 2021, BMJ 372:n71, Figure 1 layout).

Columns as in the PRISMA 2020 template for updated reviews: previous studies (when reported),
identification of new studies via databases and registers (when reported) and via other methods
(when reported); phase bars Identification, Screening and Included on the left. Boxes without a
reported count say "not reported". Counts come from :mod:`tpsynth.prisma` (already checked).
"""

from __future__ import annotations

import textwrap

from matplotlib.patches import FancyArrowPatch, Rectangle

from ..prisma import Flow
from . import common as c

PHASE = "#9fc5e8"  # blue phase bars
HEAD_NEW = "#ffd966"  # yellow header: new studies via databases and registers
HEAD_OTHER = "#d9d9d9"  # grey headers: previous studies, other methods
BOX_W, SIDE_W, GAP, ROW_H = 2.35, 2.25, 0.3, 1.0


def _n(x) -> str:
    return "not reported" if x is None else f"{x:,}"


def _lines(items: list[str], width: int) -> str:
    return "\n".join(textwrap.fill(t, width, subsequent_indent="  ") for t in items)


def _reasons(d) -> list[str]:
    if d is None:
        return ["not reported"]
    return [f"{r} (n = {n})" for r, n in d.items()] or ["none"]


def prisma_figure(flow: Flow, title: str | None = None):
    """Draw the PRISMA 2020 flow diagram of ``flow``."""
    k, lab = flow.counts, flow.labels
    cols = (["previous"] if flow.has_previous else []) + (["dbr"] if flow.has_databases else []) + (
        ["other"] if flow.has_other else []
    )
    if not cols:
        cols = ["other"]
    col_w = {"previous": BOX_W + GAP, "dbr": BOX_W + SIDE_W + 2 * GAP, "other": BOX_W + SIDE_W + 2 * GAP}
    left = 0.75
    width = left + sum(col_w[cl] for cl in cols) + 0.2
    top_pad = 0.45 if title else 0.2
    n_rows = 5
    width0 = 0.75 + sum({"previous": BOX_W + GAP}.get(cl, BOX_W + SIDE_W + 2 * GAP) for cl in cols) + 0.2
    note_chars = max(60, int((width0 - 1.0) / 0.052))
    note_h = 0.14 * (len(textwrap.wrap(flow.note, note_chars)) + 1) if flow.note else 0.0
    height = top_pad + 0.55 + ROW_H * n_rows + 0.35 + note_h + 0.2
    fig = c.new_figure(width, height)
    inch = fig.dpi_scale_trans

    def box(x, y_top, w, h, text, face="white", gid=None, size=6.8, bold=False):
        fig.add_artist(Rectangle((x, y_top - h), w, h, transform=inch, facecolor=face, edgecolor="black",
                                 linewidth=0.7, gid=gid))  # fmt: skip
        fig.text(x + 0.08, y_top - h / 2, text, transform=inch, fontsize=size, va="center", ha="left",
                 fontweight="bold" if bold else "normal", linespacing=1.25)  # fmt: skip
        return (x, y_top, w, h)

    def arrow(x0, y0, x1, y1, gid=None):
        fig.add_artist(FancyArrowPatch((x0, y0), (x1, y1), transform=inch, arrowstyle="-|>", mutation_scale=7,
                                       linewidth=0.7, color="black", gid=gid))  # fmt: skip

    y0 = height - top_pad
    if title:
        fig.text(left, height - 0.2, title, transform=inch, fontsize=9, fontweight="bold", va="top")
    head_h = 0.4
    rows_top = y0 - head_h - 0.15
    row_top = [rows_top - ROW_H * i for i in range(n_rows)]  # identification, screened, sought, assessed, included
    bh = ROW_H - 0.3
    # phase bars
    for name, r0, r1 in (("Identification", 0, 0), ("Screening", 1, 3), ("Included", 4, 4)):
        top, bottom = row_top[r0], row_top[r1] - bh
        fig.add_artist(Rectangle((0.2, bottom), 0.32, top - bottom, transform=inch, facecolor=PHASE, edgecolor="black",
                                 linewidth=0.6, gid=f"phase-{name.lower()}"))  # fmt: skip
        fig.text(0.36, (top + bottom) / 2, name, transform=inch, rotation=90, ha="center", va="center", fontsize=6.5,
                 fontweight="bold")  # fmt: skip
    x = left
    included_box = None
    total_x = None
    for cl in cols:
        if cl == "previous":
            box(x, y0, BOX_W, head_h, "Previous studies", HEAD_OTHER, "head-previous", 7.5, True)
            box(x, row_top[0], BOX_W, bh, _lines([
                f"Studies included in previous version of review (n = {_n(k.get('previous_studies'))})",
                f"Reports of studies included in previous version of review (n = {_n(k.get('previous_reports'))})",
            ], 40), gid="box-previous")  # fmt: skip
            total_x = x
            x += col_w[cl]
            continue
        other = cl == "other"
        head = ("Identification of new studies via other methods" if other
                else "Identification of new studies via databases and registers")  # fmt: skip
        box(x, y0, BOX_W + SIDE_W + GAP, head_h, head, HEAD_OTHER if other else HEAD_NEW, f"head-{cl}", 7.5, True)
        if other:
            ident = ["Records identified from:"] + [
                f"{lab.get(f, name)} (n = {_n(k.get(f))})"
                for f, name in (("website_results", "Websites"), ("organisation_results", "Organisations"),
                                ("citations_results", "Citation searching"))
                if k.get(f) is not None
            ]  # fmt: skip
            box(x, row_top[0], BOX_W, bh + 0.2, _lines(ident, 44), gid="box-other-identified", size=6.4)
            # other methods: no screening box; sought directly
            arrow(x + BOX_W / 2, row_top[0] - bh - 0.2, x + BOX_W / 2, row_top[2], gid="arrow-other-1")
            pre = "other"
        else:
            ident = ["Records identified from:",
                     f"{lab.get('database_results', 'Databases')} (n = {_n(k.get('database_results'))})",
                     f"{lab.get('register_results', 'Registers')} (n = {_n(k.get('register_results'))})"]  # fmt: skip
            box(x, row_top[0], BOX_W, bh, _lines(ident, 44), gid="box-dbr-identified")
            box(x + BOX_W + GAP, row_top[0], SIDE_W, bh, _lines([
                "Records removed before screening:",
                f"Duplicate records (n = {_n(k.get('duplicates'))})",
                f"Marked ineligible by automation tools (n = {_n(k.get('excluded_automatic'))})",
                f"Removed for other reasons (n = {_n(k.get('excluded_other'))})",
            ], 44), gid="box-dbr-removed", size=6.4)  # fmt: skip
            arrow(x + BOX_W, row_top[0] - bh / 2, x + BOX_W + GAP, row_top[0] - bh / 2)
            arrow(x + BOX_W / 2, row_top[0] - bh, x + BOX_W / 2, row_top[1])
            box(x, row_top[1], BOX_W, bh, f"Records screened\n(n = {_n(k.get('records_screened'))})", gid="box-screened")
            box(x + BOX_W + GAP, row_top[1], SIDE_W, bh, f"Records excluded\n(n = {_n(k.get('records_excluded'))})",
                gid="box-records-excluded")  # fmt: skip
            arrow(x + BOX_W, row_top[1] - bh / 2, x + BOX_W + GAP, row_top[1] - bh / 2)
            arrow(x + BOX_W / 2, row_top[1] - bh, x + BOX_W / 2, row_top[2])
            pre = "dbr"
        box(x, row_top[2], BOX_W, bh, f"Reports sought for retrieval\n(n = {_n(k.get(pre + '_sought_reports'))})",
            gid=f"box-{pre}-sought")  # fmt: skip
        box(x + BOX_W + GAP, row_top[2], SIDE_W, bh,
            f"Reports not retrieved\n(n = {_n(k.get(pre + '_notretrieved_reports'))})", gid=f"box-{pre}-notretrieved")
        arrow(x + BOX_W, row_top[2] - bh / 2, x + BOX_W + GAP, row_top[2] - bh / 2)
        arrow(x + BOX_W / 2, row_top[2] - bh, x + BOX_W / 2, row_top[3])
        box(x, row_top[3], BOX_W, bh, f"Reports assessed for eligibility\n(n = {_n(k.get(pre + '_assessed'))})",
            gid=f"box-{pre}-assessed")  # fmt: skip
        reasons = _reasons(k.get(pre + "_excluded"))
        excl_h = max(bh, 0.13 * (sum(len(textwrap.wrap(r, 46)) for r in reasons) + 1) + 0.1)
        box(x + BOX_W + GAP, row_top[3], SIDE_W, excl_h,
            _lines(["Reports excluded:"] + reasons, 46), gid=f"box-{pre}-excluded", size=6.2)  # fmt: skip
        arrow(x + BOX_W, row_top[3] - bh / 2, x + BOX_W + GAP, row_top[3] - bh / 2)
        if included_box is None:
            arrow(x + BOX_W / 2, row_top[3] - bh, x + BOX_W / 2, row_top[4])
            included_box = x
        else:
            arrow(x + BOX_W / 2, row_top[3] - bh, included_box + BOX_W, row_top[4] - bh / 2)
        x += col_w[cl]
    inc = _lines([f"New studies included in review (n = {_n(k.get('new_studies'))})",
                  f"Reports of new included studies (n = {_n(k.get('new_reports'))})"], 42)  # fmt: skip
    box(included_box, row_top[4], BOX_W, bh, inc, gid="box-included")
    if flow.has_previous:
        tot = _lines([f"Total studies included in review (n = {_n(k.get('total_studies'))})",
                      f"Reports of total included studies (n = {_n(k.get('total_reports'))})"], 42)  # fmt: skip
        box(total_x, row_top[4], BOX_W, bh, tot, gid="box-total")
        arrow(total_x + BOX_W / 2, row_top[0] - bh, total_x + BOX_W / 2, row_top[4])
        arrow(included_box, row_top[4] - bh / 2, total_x + BOX_W, row_top[4] - bh / 2)
    if flow.note:
        fig.text(left, row_top[4] - bh - 0.25, textwrap.fill(flow.note, note_chars), transform=inch, fontsize=6.5, va="top",
                 color=c.GREY, linespacing=1.3)  # fmt: skip
    return fig
