"""The self-contained HTML report (``results/report.html``).

:func:`build_report` reads the pipeline's outputs and returns the HTML; :func:`build_context` and the
section builders in :mod:`tpsynth.report.build` are pure functions for tests; :func:`render` fills the
Jinja2 template (autoescape on).
"""

from .build import build_context, build_report, render

__all__ = ["build_context", "build_report", "render"]
