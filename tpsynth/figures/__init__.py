"""Publication figures of the analyses: forest plots, funnel plots and a summary figure.

Every builder takes a typed analysis result (:class:`tpsynth.results.AnalysisResult`, read from
``results/analyses/{id}.json`` with ``AnalysisResult.from_json``) and returns a
:class:`matplotlib.figure.Figure`; :func:`tpsynth.figures.common.save_all` writes PNG, SVG and PDF
byte-identically on every run. ``matplotlib.pyplot`` is never imported (start-up cost); matplotlib
itself is only imported by these modules, so the rest of the package stays fast to import.
"""

from .common import save_all
from .forest import forest_figure
from .funnel import funnel_figure
from .summary import summary_figure

__all__ = ["forest_figure", "funnel_figure", "save_all", "summary_figure"]
