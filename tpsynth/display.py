"""One way to write numbers, intervals and p-values, for the report and the figures alike.

Every number a reader sees (forest, funnel and summary figures, the HTML report) goes through these
functions, so that one value is written the same everywhere: ``150 [120, 190]`` in a forest plot is
``150 (95% CI 120 to 190)`` in the report, and a p-value is ``p = 0.27`` in both.

Rules:

* a typographic minus (U+2212) and an en dash (U+2013) for a missing value; ``-0.00`` is ``0.00``;
* :func:`value` (effects on the display scale): ``digits`` decimals (2), none from 100 on
  (``150``, ``6,411``, with a thousands separator from 1,000), and for ratios below 0.01 two
  significant digits (``0.0013``; ``<0.0001`` below that);
* ratio measures (RR, OR) are pooled on the log scale and shown exponentiated (:func:`to_display`);
* :func:`p_value`: ``p < 0.001``, three decimals below 0.1 (``p = 0.031``), two from 0.1 (``p = 0.27``);
* :func:`small`: variances such as tau² with 2 decimals from 1, 3 below, 4 below 0.01.

Standard library only (no matplotlib, no Jinja2).
"""

from __future__ import annotations

import math

from .measures import RATIO_MEASURES

MINUS = "\u2212"
DASH = "\u2013"


def isnum(x) -> bool:
    """True when ``x`` is a finite number (JSON nulls, booleans and NaN are not)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def is_ratio(measure: str | None) -> bool:
    """Ratio measures are pooled on the log scale and shown on the ratio scale."""
    return (measure or "").upper() in RATIO_MEASURES


def to_display(x, ratio: bool):
    """A value of the analysis scale on the display scale (``exp`` for ratio measures); None when missing."""
    if not isnum(x):
        return None
    return math.exp(max(min(x, 700.0), -700.0)) if ratio else x


def number(x, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals and a typographic minus; ``–`` when missing."""
    if not isnum(x):
        return DASH
    s = f"{x:,.{digits}f}" if abs(x) >= 1000 else f"{x:.{digits}f}"
    if s.startswith("-") and float(s.replace(",", "")) == 0:
        s = s[1:]
    return s.replace("-", MINUS)


def value(x, digits: int = 2, ratio: bool = False) -> str:
    """An effect on the display scale: ``digits`` decimals, none from 100 on, 2 significant digits for
    ratios below 0.01."""
    if not isnum(x):
        return DASH
    if ratio and 0 < abs(x) < 0.01:
        if abs(x) < 0.0001:
            return "<0.0001"
        return number(x, 1 - math.floor(math.log10(abs(x))))
    if abs(x) >= 100:
        return number(x, 0)
    return number(x, digits)


def digits_for(values: list, ratio: bool = False) -> int:
    """Decimals for a column of effects: 3 when the smallest non-zero value is below 0.1, else 2."""
    vals = [abs(v) for v in values if isnum(v) and v != 0]
    return 3 if vals and min(vals) < 0.1 else 2


def effect(est, lo, hi, ratio: bool = False, digits: int = 2, style: str = "bracket", level: float = 0.95,
           label: str | None = None) -> str:  # fmt: skip
    """An estimate with its interval, given on the analysis scale (log scale for ratios).

    ``style="bracket"`` gives ``0.89 [0.54, 1.47]`` (figures, tables); ``style="ci"`` gives
    ``0.89 (95% CI 0.54 to 1.47)`` (sentences), or with ``label="95% CrI"`` a credible interval.
    """
    if not isnum(est):
        return DASH if style == "bracket" else "not estimable"
    e, a, b = (value(to_display(v, ratio), digits, ratio) for v in (est, lo, hi))
    if style == "bracket":
        return f"{e} [{a}, {b}]"
    return f"{e} ({label or f'{100 * level:g}% CI'} {a} to {b})"


def interval(lo, hi, ratio: bool = False, digits: int = 2) -> str:
    """``[lo, hi]`` of an interval given on the analysis scale, e.g. a prediction interval."""
    return f"[{value(to_display(lo, ratio), digits, ratio)}, {value(to_display(hi, ratio), digits, ratio)}]"


def p_relation(p) -> str:
    """A p-value without its ``p``: ``< 0.001``, ``= 0.031``, ``= 0.27``."""
    if not isnum(p):
        return f"= {DASH}"
    if p < 0.001:
        return "< 0.001"
    return f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def p_value(p) -> str:
    """A p-value as journals print it: ``p < 0.001``, ``p = 0.031``, ``p = 0.27``."""
    return f"p {p_relation(p)}"


def percent(share, digits: int = 0) -> str:
    """A share (0-1) in percent: ``42%``."""
    return DASH if not isnum(share) else f"{100 * share:.{digits}f}%"


def small_digits(x) -> int:
    """Decimals for a variance such as tau²: 2 from 1 (and for 0), 3 below, 4 below 0.01."""
    if not isnum(x) or x == 0 or abs(x) >= 1:
        return 2
    return 3 if abs(x) >= 0.01 else 4


def small(x, digits: int | None = None) -> str:
    """A variance such as tau² with :func:`small_digits` decimals (or ``digits``)."""
    if not isnum(x):
        return DASH
    return number(x, small_digits(x) if digits is None else digits)
