"""Figures survive any string: user text is drawn as plain text, never as mathtext (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import pytest
import yaml
from matplotlib.text import Text
from sheet_edit import edit_rows

from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings, validate_config
from tpsynth.figures import forest_figure, funnel_figure, save_all, summary_figure
from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
HOSTILE = ["Gemmell $x^$", r"$\frac{}{}$", "a $$ b", "US$50 vs US$100"]



@pytest.fixture(scope="module")
def hostile_analyses(tmp_path_factory):
    """The fixture's analyses with every user string (titles, labels, authors, arms, subgroups) hostile."""
    wd = tmp_path_factory.mktemp("hostile")
    shutil.copytree(FIXTURE, wd, dirs_exist_ok=True)
    raw = wd / "data" / "raw"

    def study(i, row):
        row["author"] = HOSTILE[i % len(HOSTILE)]
        row["notes"] = HOSTILE[(i + 1) % len(HOSTILE)]
        row["setting"] = HOSTILE[i % 2]  # subgroup column: two hostile values

    edit_rows(raw / "studies.csv", study)
    edit_rows(raw / "outcomes.csv", lambda i, row: row.update(arm=row["arm"] + " " + HOSTILE[i % len(HOSTILE)]))
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    for j, (code, item) in enumerate(sorted(cfg["interventions"].items())):
        item["label"] = f"{code} {HOSTILE[j % len(HOSTILE)]}"
    for j, item in enumerate(cfg["outcomes"].values()):
        item["label"] = HOSTILE[j % len(HOSTILE)] + " pain"
    for j, a in enumerate(cfg["analyses"].values()):
        a["title"] = " / ".join(HOSTILE[j:] + HOSTILE[:j])
        a["intervention_label"] = HOSTILE[j % len(HOSTILE)]
        a["comparator_label"] = HOSTILE[(j + 1) % len(HOSTILE)]
        a["subgroup"] = "setting"
    cfg = validate_config(cfg)
    sheets, problems = validate_sheets(*(str(raw / f"{s}.csv") for s in ("studies", "outcomes", "contrasts")), cfg)
    assert problems == []
    return [run_analysis(analysis_settings(cfg, aid), sheets, cfg) for aid in sorted(cfg["analyses"])]


def _drawn(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


def _check(fig, stem: Path) -> str:
    texts = _drawn(fig)
    assert texts and all(not t.get_parse_math() for t in texts)
    for path in save_all(fig, stem, ("png",)):  # drawing is where mathtext used to fail
        assert path.stat().st_size > 1000
    return "\n".join(t.get_text() for t in texts)


@pytest.mark.slow
def test_every_figure_draws_hostile_strings_as_plain_text(hostile_analyses, tmp_path):
    with matplotlib.rc_context({"text.parse_math": True}):  # whatever the caller's settings
        for a in hostile_analyses:
            assert a.pooled.k >= 1, a.analysis_id
            forest = _check(forest_figure(a), tmp_path / f"forest_{a.analysis_id}")
            _check(funnel_figure(a), tmp_path / f"funnel_{a.analysis_id}")
            assert "Gemmell $x^$" in forest  # the author, as typed
            assert "$" in forest
        summary = _check(summary_figure(hostile_analyses), tmp_path / "summary")
    assert r"$\frac{}{}$" in summary


def test_money_is_not_set_in_math_italics(tmp_path):
    from tpsynth.figures import common

    fig = common.styled(lambda: common.new_figure(3, 1))()
    with matplotlib.rc_context({"text.parse_math": True}):
        t = fig.text(0.1, 0.5, "US$50 vs US$100")
    # created outside a builder under the caller's settings, mathtext would apply; builders never do this
    assert t.get_parse_math()
    built = common.styled(lambda: common.new_figure(3, 1).text(0.1, 0.5, "US$50 vs US$100"))()
    assert not built.get_parse_math()
    assert built.get_text() == "US$50 vs US$100"
