"""PRISMA 2020 flow: counts from a screening log or the config, every box checked (error names the box)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from tpsynth.figures.common import save_all
from tpsynth.figures.prisma import prisma_figure
from tpsynth.prisma import check_counts, counts_from_config
from tpsynth.validate import validate_sheets

PRISMA = Path(__file__).parent / "fixtures" / "prisma"

# A complete diagram that adds up (hand-made; every box of the PRISMA2020 template)
FULL = {
    "previous_studies": 5, "previous_reports": 7, "database_results": 300, "register_results": 20, "duplicates": 40,
    "excluded_automatic": 0, "excluded_other": 10, "records_screened": 270, "records_excluded": 200,
    "dbr_sought_reports": 70, "dbr_notretrieved_reports": 5, "dbr_assessed": 65,
    "dbr_excluded": {"wrong population": 30, "not randomised": 25}, "website_results": 10, "citations_results": 4,
    "other_sought_reports": 12, "other_notretrieved_reports": 2, "other_assessed": 10,
    "other_excluded": {"wrong design": 8}, "new_studies": 9, "new_reports": 12, "total_studies": 14, "total_reports": 19,
}  # fmt: skip


def test_full_diagram_adds_up():
    assert check_counts(counts_from_config(FULL), 14) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"records_screened": 271}, "box 'Records screened' (records_screened) is 271, but records identified 320 - "
                                    "removed before screening 50 = 270"),
        ({"dbr_sought_reports": 71}, "box 'Reports sought for retrieval (databases and registers)' (dbr_sought_reports) "
                                     "is 71, but records screened 270 - records excluded 200 = 70"),
        ({"other_assessed": 11}, "box 'Reports assessed for eligibility (other methods)' (other_assessed) is 11, but "
                                 "reports sought 12 - not retrieved 2 = 10"),
        ({"dbr_excluded": {"wrong population": 30, "not randomised": 24}},
         "box 'Reports of new included studies' (new_reports) is 12, but reports assessed - reports excluded with "
         "reasons (11 + 2) = 13"),
        ({"total_studies": 15}, "box 'Total studies included in review' (total_studies) is 15, but new studies 9 + "
                                "previous studies 5 = 14"),
        ({"total_reports": 20}, "box 'Reports of total included studies' (total_reports) is 20, but new reports 12 + "
                                "previous reports 7 = 19"),
        ({"new_studies": 13, "new_reports": 12, "total_studies": 18},
         "box 'New studies included in review' (new_studies) is 13, more than the 12 reports of new included studies"),
        ({"duplicates": -1}, "box 'Duplicate records removed' (duplicates) needs a count >= 0 (found -1)"),
    ],
)
def test_each_box_that_does_not_add_up_is_named(change, message):
    assert message in check_counts(counts_from_config({**FULL, **change}), None)


def test_included_studies_checked_against_studies_sheet():
    assert check_counts(counts_from_config(FULL), 13, "data/raw/studies.csv") == [
        "box 'Total studies included in review' (total_studies) gives 14 included studies, but data/raw/studies.csv has 13"
    ]


def test_not_retrieved_and_excluded_cannot_exceed_their_source():
    got = check_counts(counts_from_config({"other_sought_reports": 3, "other_notretrieved_reports": 4,
                                           "other_assessed": 2, "other_excluded": {"x": 3}}), None)  # fmt: skip
    assert "box 'Reports not retrieved (other methods)' (other_notretrieved_reports) is 4, more than the 3 reports sought" in got
    assert "box 'Reports excluded (other methods)' (other_excluded) sums to 3, more than the 2 reports assessed" in got


@pytest.fixture
def log_ws(ws):
    shutil.copy(PRISMA / "screening.csv", ws / "data/raw/screening.csv")
    return ws


def validate(cfg_edit=None):
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())
    cfg["data"]["screening"] = "data/raw/screening.csv"
    if cfg_edit:
        cfg_edit(cfg)
    sheets, probs = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", cfg)
    return sheets, [str(p) for p in probs]


def test_counts_derived_from_screening_log(log_ws):
    sheets, probs = validate()
    assert probs == []
    c = sheets.prisma.counts
    # 15 records: databases 10 (2 duplicates), registers 2, citation search 1, websites 2
    assert (c["database_results"], c["register_results"], c["duplicates"]) == (10, 2, 2)
    assert (c["records_screened"], c["records_excluded"], c["dbr_sought_reports"]) == (10, 2, 8)
    assert (c["dbr_notretrieved_reports"], c["dbr_assessed"]) == (1, 7)
    assert c["dbr_excluded"] == {"not randomised": 1, "wrong population": 1}
    assert (c["website_results"], c["citations_results"], c["organisation_results"]) == (2, 1, 0)
    assert (c["other_sought_reports"], c["other_notretrieved_reports"], c["other_assessed"]) == (3, 1, 2)
    assert c["other_excluded"] == {"no outcome data": 1}
    assert (c["new_reports"], c["new_studies"], c["total_studies"]) == (6, 5, 5)  # a2001 has two reports
    assert sheets.prisma.included_ids == ["a2001", "b2005", "c2010", "d2015", "e2020"]


def test_screening_log_errors(log_ws):
    p = Path("data/raw/screening.csv")
    text = p.read_text()
    text = text.replace("r05,database,false,include,exclude,not randomised,,", "r05,database,false,include,exclude,,,")
    text = text.replace("r11,database,false,include,include,,d2015,", "r11,database,false,include,include,,zz2099,")
    text = text.replace("r03,database,false,exclude,,,,", "r03,database,false,exclude,include,,,")
    text += "r01,database,false,include,include,,a2001,again\n"
    p.write_text(text)
    _, probs = validate()
    assert probs == [
        "data/raw/screening.csv: column study_id: 1 study(ies) of data/raw/studies.csv have no included report in the "
        "screening log: d2015",
        "data/raw/screening.csv:4: column full_text: a record excluded on title/abstract has no full-text decision "
        "(found 'include')",
        "data/raw/screening.csv:6: column exclusion_reason: a report excluded in full text needs its reason",
        "data/raw/screening.csv:12: column study_id: unknown study, not in data/raw/studies.csv (found 'zz2099')",
        "data/raw/screening.csv:17: column record_id: record listed twice, first on line 2 (found 'r01')",
    ]


def test_config_counts_with_a_log_are_rejected_and_config_block_checked(log_ws):
    _, probs = validate(lambda cfg: cfg.update(prisma={"records_screened": 3}))
    assert probs[0].startswith("config/config.yaml: prisma: records_screened: these counts come from the screening log")
    Path("data/raw/screening.csv").unlink()

    def counts(cfg):
        del cfg["data"]["screening"]
        cfg["prisma"] = {"website_results": 9, "other_sought_reports": 9, "other_notretrieved_reports": 1,
                         "other_assessed": 8, "other_excluded": {"no data": 2}, "new_reports": 6, "new_studies": 6}

    _, probs = validate(counts)
    assert probs == [
        "config/config.yaml: prisma: box 'New studies included in review' (new_studies) gives 6 included studies, "
        "but data/raw/studies.csv has 5"
    ]


def test_figure_layout_and_byte_identical(tmp_path):
    def digest(stem):
        return {e: hashlib.sha256(Path(f"{stem}.{e}").read_bytes()).hexdigest() for e in ("png", "svg", "pdf")}

    flow = counts_from_config(FULL)
    save_all(prisma_figure(flow, "t"), tmp_path / "a")
    save_all(prisma_figure(flow, "t"), tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    svg = (tmp_path / "a.svg").read_text()
    for gid in ("head-previous", "head-dbr", "head-other", "box-screened", "box-dbr-excluded", "box-other-excluded",
                "box-total", "box-included"):
        assert f'id="{gid}"' in svg, gid
    only_other = counts_from_config({"website_results": 3, "other_sought_reports": 3, "other_assessed": 3,
                                     "other_excluded": {}, "new_studies": 3, "new_reports": 3})  # fmt: skip
    save_all(prisma_figure(only_other), tmp_path / "c", formats=("svg",))
    svg = (tmp_path / "c.svg").read_text()
    assert 'id="head-other"' in svg and 'id="head-dbr"' not in svg and 'id="head-previous"' not in svg
