"""Shared pieces of the figures: style, deterministic saving, colours, number formatting, axis scales.

Only :class:`matplotlib.figure.Figure` and the Agg/SVG/PDF backends are used (never ``pyplot``).
Saving is byte-reproducible: fixed SVG hash salt, no dates in the metadata, one font (DejaVu Sans,
shipped with matplotlib), embedded in the PDF as Type 3 glyphs (Type 42 subsetting costs ~0.5 s a file).
The SVG keeps text as text (``svg.fonttype: none``, with Bitstream Vera Sans / Verdana / sans-serif as
fallbacks where DejaVu Sans is not installed): about 15 kB a figure instead of 100 kB with every glyph
drawn as a path, so the report can embed the SVG of every figure (vector, prints sharply) and stay small.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib

from ..results import AnalysisResult

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.unicode_minus": True,
    "svg.hashsalt": "tpsynth",
    "svg.fonttype": "none",  # text stays text: 7x smaller SVG (the report embeds them), editable, searchable
    "pdf.fonttype": 3,  # Type 42 subsetting (fontTools) costs ~0.5 s per PDF; Type 3 glyphs are embedded too
    "pdf.compression": 6,
    "path.simplify": False,
    "axes.linewidth": 0.8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    # Every string is drawn as plain text: titles, labels, authors and arms come from the user, and
    # mathtext would fail on "Gemmell $x^$" or set "US$50 vs US$100" in math italics.
    "text.parse_math": False,
}
matplotlib.rcParams.update(STYLE)

from matplotlib.figure import Figure  # noqa: E402

# Numbers are written by tpsynth.display, as in the report; re-exported under the names the figure
# modules use (c.fmt, c.fmt_p, ...).
from ..display import (  # noqa: E402, F401
    DASH,
    MINUS,
    digits_for,
    is_ratio,
    isnum,
    small_digits,
    to_display,
)
from ..display import effect as effect_text  # noqa: E402, F401
from ..display import number as fmt  # noqa: E402, F401
from ..display import p_value as fmt_p  # noqa: E402, F401
from ..display import small as fmt_small  # noqa: E402, F401
from ..display import value as fmt_auto  # noqa: E402, F401
from ..measures import SHORT_NAMES, heading  # noqa: E402

PNG_DPI = 200
#: zlib level of the PNG files: the same pixels as the default 6, ~10% less time writing them for ~1% larger
#: files (16 forest and funnel plots: 2.55 -> 2.3 s, 2.62 -> 2.65 MB; benchmarks/pipeline.py).
PNG_COMPRESS_LEVEL = 3
FORMATS = ("png", "svg", "pdf")
#: Metadata per format: no dates, no version strings that change between runs.
#: Fonts a viewer without DejaVu Sans falls back to (Vera and Verdana have DejaVu's wide metrics).
SVG_FONT_FALLBACK = ("font-family: 'DejaVu Sans'", "font-family: 'DejaVu Sans', 'Bitstream Vera Sans', Verdana, sans-serif")
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": "tpsynth (matplotlib)"},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": "tpsynth (matplotlib)", "Producer": "tpsynth"},
}

#: Risk-of-bias colours (RoB 2 traffic-light convention); not_assessed is drawn as an open grey circle.
ROB_STYLE = {
    "low": {"color": "#1a9641", "fill": True, "label": "Low"},
    "some_concerns": {"color": "#e6b800", "fill": True, "label": "Some concerns"},
    "high": {"color": "#d7191c", "fill": True, "label": "High"},
    "not_assessed": {"color": "#8c8c8c", "fill": False, "label": "Not assessed"},
}
SQUARE = "#2b5c8a"  # study squares
DIAMOND = "#1a1a1a"  # overall diamond
SUB_DIAMOND = "#7f7f7f"  # subgroup diamonds
PI_COLOUR = "#b2182b"  # prediction interval bar
GREY = "#555555"

MEASURE_NAMES = {m: heading(m) for m in SHORT_NAMES}
DAGGER = "\u2020"
DDAGGER = "\u2021"


def styled(build):
    """Decorator: build a figure under :data:`STYLE`, whatever the caller's rcParams (plain text included)."""
    import functools

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return build(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches (no pyplot, no global figure manager)."""
    return Figure(figsize=(width, height), dpi=100)


class Canvas:
    """Where a figure builder lays out its text, lines and plot panels, in inches of its natural size.

    ``Canvas(width, height)`` is a new :class:`~matplotlib.figure.Figure` of that size (the pipeline's
    figures): text and lines are placed with the figure's inch transform, panels with
    :meth:`~matplotlib.figure.Figure.add_axes`, exactly as a builder drawing on a Figure would.

    ``Canvas(width, height, ax=ax)`` draws the same layout into a user's :class:`~matplotlib.axes.Axes`:
    the width x height inch box is stretched to fill the axes (its frame and ticks are switched off),
    panels are inset axes of it, and font and marker sizes are multiplied by :attr:`scale`, the
    smaller of (axes width / width, axes height / height), so that the text keeps its place in the
    layout (a 10 x 5 inch layout in a 5 x 2.5 inch axes is drawn at half size). Give the axes the
    aspect of the natural size (:attr:`size`) for an undistorted plot.
    """

    def __init__(self, width: float, height: float, ax=None):
        self.width, self.height, self.ax = width, height, ax
        if ax is None:
            self.fig = new_figure(width, height)
            self.transform = self.fig.dpi_scale_trans
            self.scale = 1.0
        else:
            from matplotlib.transforms import Affine2D

            self.fig = ax.figure
            ax.set_axis_off()
            self.transform = Affine2D().scale(1.0 / width, 1.0 / height) + ax.transAxes
            fw, fh = self.fig.get_size_inches()
            box = ax.get_position()
            self.scale = min(box.width * fw / width, box.height * fh / height)

    @property
    def size(self) -> tuple[float, float]:
        """The natural size (width, height) of the layout in inches."""
        return self.width, self.height

    def fontsize(self, size: float | None = None) -> float:
        """A font size (points; default ``font.size``) at the canvas's scale."""
        size = matplotlib.rcParams["font.size"] if size is None else size
        return size * self.scale

    def text(self, x: float, y: float, s: str, **kw):
        """Text at (``x``, ``y``) inches from the bottom-left of the layout."""
        if self.ax is None:
            return self.fig.text(x, y, s, transform=self.transform, **kw)
        kw["fontsize"] = self.fontsize(kw.get("fontsize"))
        return self.ax.text(x, y, s, transform=self.transform, **kw)

    def add_line(self, line):
        """A :class:`~matplotlib.lines.Line2D` in inches of the layout (its transform: :attr:`transform`)."""
        if not line.is_transform_set():
            line.set_transform(self.transform)
        if self.ax is None:
            return self.fig.add_artist(line)
        line.set_markersize(line.get_markersize() * self.scale)
        line.set_clip_on(False)
        return self.ax.add_artist(line)

    def add_axes(self, rect: tuple[float, float, float, float]):
        """A plot panel at ``rect`` = (left, bottom, width, height) in fractions of the layout."""
        if self.ax is None:
            return self.fig.add_axes(rect)
        panel = self.ax.inset_axes(list(rect))
        panel.tick_params(labelsize=self.fontsize(matplotlib.rcParams["xtick.labelsize"]))
        return panel

    def result(self):
        """What the builder returns: the Figure it made, or the user's Axes it drew into."""
        return self.fig if self.ax is None else self.ax


def save_all(fig: Figure, stem: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``{stem}.png`` (200 dpi), ``{stem}.svg`` and ``{stem}.pdf``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    stem : str or pathlib.Path
        Output path without extension; parent directories are created.
    formats : tuple of str
        Which of ``png``, ``svg``, ``pdf`` to write.

    Returns
    -------
    list of pathlib.Path
        The files written. Two calls on the same figure content give byte-identical files. Each file is
        written under a temporary name and renamed into place, so a killed job never leaves a truncated one.
    """
    from ..tables import replace_atomically

    stem = Path(stem)
    out = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            path = stem.with_name(stem.name + "." + fmt)
            kw = {"dpi": PNG_DPI, "pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}} if fmt == "png" else {}
            with replace_atomically(path) as tmp:
                if fmt == "svg":
                    buf = io.StringIO()
                    fig.savefig(buf, format=fmt, metadata=METADATA[fmt], facecolor="white", **kw)
                    tmp.write_bytes(buf.getvalue().replace(*SVG_FONT_FALLBACK).encode("utf-8"))
                else:
                    fig.savefig(tmp, format=fmt, metadata=METADATA[fmt], facecolor="white", **kw)
            out.append(path)
    return out


# ---------------------------------------------------------------------------------------------- numbers


def level_pct(analysis: AnalysisResult) -> str:
    """The confidence level as ``95%``."""
    return f"{(analysis.level or 0.95) * 100:g}%"


def method_text(method: str | None, ci_method: str | None) -> str:
    """The pooling method as written on the figures, e.g. ``Random effects, REML, HKSJ CI``."""
    method = str(method or "")
    ci = str(ci_method or "").lower()
    ci_name = {"wald": "Wald CI", "hksj": "HKSJ CI", "hksj_adhoc": "HKSJ (ad hoc) CI", "knha": "HKSJ CI"}.get(
        ci, f"{ci} CI" if ci else ""
    )
    if method.lower().startswith("single"):
        return "Single study, not pooled"
    if method.upper() in {"FE", "EE", "CE"}:
        head = "Common effect (inverse variance)"
    elif method.upper() == "MH":
        head = "Common effect (Mantel-Haenszel)"
    elif method.upper() == "PETO":
        head = "Common effect (Peto)"
    else:
        head = f"Random effects, {method}" if method else "Random effects"
    return ", ".join(x for x in (head, ci_name) if x)


# ---------------------------------------------------------------------------------------------- labels


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 1, 1)].rstrip() + "\u2026"


def wrap(text: str, width: int, max_lines: int = 2) -> str:
    """``text`` wrapped to lines of ``width`` characters, at most ``max_lines`` (last one shortened)."""
    lines = textwrap.wrap(" ".join(str(text).split()), width) or [""]
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [shorten(" ".join(lines[max_lines - 1 :]), width)]
    return "\n".join(lines)


def _clean_label(label: str) -> str:
    """A label without parentheses and explanations after ``:``/``;``."""
    out, depth = [], 0
    for ch in str(label):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    s = " ".join("".join(out).split())
    for sep in (":", ";"):
        s = s.split(sep)[0]
    return s.strip(" ,/-")


def side_label(analysis: AnalysisResult, side: str, width: int = 34) -> str:
    """A short name of the intervention or comparator side for "Favours ..." labels.

    The analysis's ``labels[side]`` are used: a single label (without parenthetical remarks); for
    several labels their common leading words (at least two, e.g. "Botulinum toxin A") or, failing
    that, the matching side of the title ("X vs Y: ..."); otherwise the generic word ``side``.
    """
    labels = [str(x) for x in getattr(analysis.labels, side) if x]
    cleaned = [_clean_label(x) for x in labels]
    cleaned = [c for c in cleaned if c]
    if len(set(cleaned)) == 1 and len(cleaned[0]) <= width:
        return cleaned[0]
    if len(cleaned) > 1:
        words = [c.split() for c in cleaned]
        common = []
        for ws in zip(*words, strict=False):
            if len({w.lower() for w in ws}) != 1:
                break
            common.append(ws[0])
        while common and common[-1].lower() in {"of", "+", "at", "into", "the", "and", "or", "with", "/"}:
            common.pop()
        if len(common) >= 2 and len(" ".join(common)) <= width:
            return " ".join(common)
    title = str(analysis.settings.title or "")
    head = title.split(":")[0]
    parts = head.split(" vs ")
    if len(parts) == 2:
        part = _clean_label(parts[0] if side == "intervention" else parts[1])
        if part and len(part) <= width:
            return part
    if len(cleaned) == 1:
        return shorten(cleaned[0], width)
    return side


def favours_labels(analysis: AnalysisResult, width: int = 34) -> tuple[str, str]:
    """("Favours <left side>", "Favours <right side>") for the x axis of the forest plot.

    Right of the null favours the intervention when the outcome's ``higher_is_better`` is true
    (estimates are intervention minus, or over, comparator, so this holds for ratio measures of a
    good outcome such as responders too), otherwise the comparator. When the direction is unknown
    (``higher_is_better: null``, e.g. imported from Cochrane) the labels say only where values are higher.
    """
    hib = analysis.outcome.higher_is_better
    if hib is None:
        return (
            f"Higher with {_lower_first(side_label(analysis, 'comparator', width))}",
            f"Higher with {_lower_first(side_label(analysis, 'intervention', width))}",
        )
    left_side, right_side = ("comparator", "intervention") if hib else ("intervention", "comparator")
    return (
        f"Favours {_lower_first(side_label(analysis, left_side, width))}",
        f"Favours {_lower_first(side_label(analysis, right_side, width))}",
    )


def _lower_first(label: str) -> str:
    """``Dry needling`` -> ``dry needling`` inside a sentence; acronyms (``TENS``, ``MET``) are kept."""
    if len(label) > 1 and label[0].isupper() and not label[1].isupper():
        return label[0].lower() + label[1:]
    return label


# ---------------------------------------------------------------------------------------------- axes


def nice_half_width(r: float, ratio: bool) -> tuple[float, list[float]]:
    """A round half-width of a symmetric axis around the null and its ticks (display scale).

    For ratio measures ``r`` is on the log scale and the axis runs from ``1/R`` to ``R``.
    """
    if ratio:
        for big, ticks in (
            (1.5, [0.67, 0.8, 1, 1.25, 1.5]),
            (2.0, [0.5, 0.7, 1, 1.5, 2]),
            (5.0, [0.2, 0.5, 1, 2, 5]),
            (10.0, [0.1, 0.2, 0.5, 1, 2, 5, 10]),
            (100.0, [0.01, 0.1, 1, 10, 100]),
            (1000.0, [0.001, 0.01, 0.1, 1, 10, 100, 1000]),
        ):
            if math.log(big) >= r * 0.999:
                return big, ticks
        return 1000.0, [0.001, 0.01, 0.1, 1, 10, 100, 1000]
    r = max(r, 1e-9)
    base = 10 ** math.floor(math.log10(r))
    for m in (1, 1.5, 2, 3, 4, 5, 6, 8, 10):
        if m * base >= r * 0.999:
            big = m * base
            break
    half = big / 2
    return big, [-big, -half, 0.0, half, big]


def axis_half_width(points: list, bounds: list, ratio: bool) -> float:
    """Half-width (log scale for ratios) of a symmetric axis around the null.

    It covers every point estimate and, where they are not extreme, the intervals: an interval is
    followed up to 2.5 times the largest point estimate (arrows mark the rest).
    """
    pts = [abs(v) for v in points if isnum(v)]
    bnd = [abs(v) for v in bounds if isnum(v)]
    core = max(pts, default=0.0)
    widest = max(bnd + pts, default=0.0)
    cap = max(2.5 * core, 0.5 if ratio else 0.0)
    r = min(widest, cap) if widest > 0 else 0.0
    r = max(r, core * 1.1)
    if r <= 0:
        r = math.log(2) if ratio else 1.0
    return r


def tick_label(v: float, ratio: bool) -> str:
    """A tick label: ratios as ``0.1``, ``1``, ``10``; differences with a typographic minus."""
    if ratio:
        return f"{v:g}"
    s = f"{v:g}"
    return s.replace("-", MINUS)


def ratio_ticks(lo: float, hi: float) -> list[float]:
    """Round ratio-scale ticks between ``lo`` and ``hi`` (display scale), at least three when possible."""
    for cands in (
        [0.001, 0.01, 0.1, 1, 10, 100, 1000],
        [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100],
        [0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 1, 1.5, 2, 3, 4, 5, 10],
        [0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2],
    ):
        inside = [t for t in cands if lo <= t <= hi]
        if 3 <= len(inside) <= 7:
            return inside
    return [t for t in (0.5, 0.8, 1, 1.25, 2) if lo <= t <= hi] or [1]


def linear_ticks(lo: float, hi: float) -> list[float]:
    """Round ticks between ``lo`` and ``hi``: 4 to 7 of them."""
    span = max(hi - lo, 1e-12)
    base = 10 ** math.floor(math.log10(span))
    for step in (base / 5, base / 4, base / 2, base, 2 * base, 2.5 * base, 5 * base):
        n = math.floor(hi / step) - math.ceil(lo / step) + 1
        if n <= 7:
            start = math.ceil(lo / step)
            return [round((start + j) * step, 10) for j in range(n)]
    return [lo, hi]


def effect_axis(ax, points, bounds, ratio: bool) -> tuple[float, float]:
    """Set up an effect axis symmetric around no effect (log axis around 1 for ratios); return its limits.

    The half-width comes from :func:`axis_half_width` and :func:`nice_half_width`; only the bottom spine,
    the x ticks and a vertical line at no effect are drawn.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    big, ticks = nice_half_width(axis_half_width(points, bounds, ratio), ratio)
    if ratio:
        ax.set_xscale("log")
        xlim = (1 / big, big)
    else:
        xlim = (-big, big)
    ax.set_xlim(*xlim)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [tick_label(t, ratio) for t in ticks])
    ax.yaxis.set_major_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_facecolor("none")
    ax.tick_params(axis="x", length=3, pad=2)
    ax.axvline(1.0 if ratio else 0.0, color="black", lw=0.7, zorder=1)
    return xlim
