"""Reading sheets safely and saying plainly what is wrong (issue 14): devices, size, foreign files,
separators, NA, thousands separators, SDs beyond the scale; report anchors."""

from __future__ import annotations

import csv
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml
from sheet_edit import set_cell

from tpsynth import sheets as sheets_mod
from tpsynth.config import validate_config
from tpsynth.report.build import anchor
from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
CONFIG = validate_config(yaml.safe_load((FIXTURE / "config" / "config.yaml").read_text()))


@pytest.fixture
def raw(tmp_path) -> Path:
    shutil.copytree(FIXTURE / "data" / "raw", tmp_path / "raw")
    return tmp_path / "raw"


def run(raw: Path, **paths) -> list[str]:
    p = {s: str(raw / f"{s}.csv") for s in ("studies", "outcomes", "contrasts")} | paths
    _, problems = validate_sheets(p["studies"], p["outcomes"], p["contrasts"], CONFIG)
    return [str(x) for x in problems]



# ------------------------------------------------------------------------------------------ what is read


def test_device_is_refused_without_reading(raw):
    assert run(raw, contrasts="/dev/urandom") == [
        "/dev/urandom:1: not a regular file (a device, pipe or socket); give the path of a CSV file"
    ]


def test_fifo_is_refused_without_blocking(raw):
    fifo = raw / "fifo.csv"
    os.mkfifo(fifo)
    (msg,) = run(raw, contrasts=str(fifo))
    assert "not a regular file" in msg


def test_size_limit(raw, monkeypatch):
    monkeypatch.setattr(sheets_mod, "MAX_SHEET_BYTES", 1000)
    size = (raw / "outcomes.csv").stat().st_size
    assert size > 1000 > max((raw / f"{s}.csv").stat().st_size for s in ("studies", "contrasts"))
    assert run(raw) == [f"{raw / 'outcomes.csv'}:1: larger than 1,000 bytes ({size:,}); split the sheet"]


def test_unreadable_file(raw):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    (raw / "contrasts.csv").chmod(0)
    assert run(raw) == [f"{raw / 'contrasts.csv'}:1: cannot be read: permission denied"]


def test_foreign_file_content_is_never_echoed(raw):
    shadow = raw / "shadow"
    shadow.write_text(
        "root:$6$s3cr3tsalt$hashhashhash:19000:0:99999:7:::\n"
        "daemon:*:19000:0:99999:7:::\n"
        "alice:$6$another$secret:19000:0:99999:7:::\n"
    )
    problems = run(raw, outcomes=str(shadow))
    assert problems == [
        f"{shadow}:1: the header line names none of the columns of an outcomes sheet (expected study_id, arm, "
        "intervention, outcome, ...); is this the right file?"
    ]
    text = "\n".join(problems)
    for secret in ("root", "s3cr3t", "hash", "daemon", "alice", "19000"):
        assert secret not in text.replace(str(shadow), "")


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_other_separators_named(raw, sep, name):
    path = raw / "outcomes.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    with path.open("w", newline="") as fh:
        csv.writer(fh, delimiter=sep, lineterminator="\n").writerows(rows)
    assert run(raw) == [
        f"{path}:1: this file is {name}-separated; export it as CSV with commas (in Excel: 'CSV UTF-8 (comma "
        "delimited)'; European Excel writes ';')"
    ]


# ------------------------------------------------------------------------------------------ number cells


@pytest.mark.parametrize("word", ["NA", "n/a", "NaN", "missing", "NR", "-"])
def test_not_available_word_says_leave_empty(raw, word):
    set_cell(raw / "outcomes.csv", 2, "mean", word)
    assert run(raw) == [
        f"{raw / 'outcomes.csv'}:2: column mean: expected a number; leave the cell empty when the value is not "
        f"available (found {word!r})"
    ]


def test_thousands_separator_recognised(raw):
    set_cell(raw / "outcomes.csv", 2, "n", "1,200")
    set_cell(raw / "outcomes.csv", 3, "mean", "1,234.5")
    (a, b) = run(raw)
    assert a == (
        f"{raw / 'outcomes.csv'}:2: column n: expected a whole number: if the comma separates thousands write "
        "1200, if it is a decimal comma write 1.200; numbers are written without thousands separators, with a dot "
        "as decimal separator (found '1,200')"
    )
    assert b.endswith("column mean: expected a number: write 1234.5 (numbers are written without thousands "
                      "separators) (found '1,234.5')")  # fmt: skip


def test_decimal_comma_hint_kept(raw):
    set_cell(raw / "outcomes.csv", 2, "mean", "30,5")
    (msg,) = run(raw)
    assert msg.endswith("column mean: expected a number (use a dot as decimal separator) (found '30,5')")


def _row(path: Path, line: int) -> dict:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))[line - 2]


def test_sd_beyond_the_scale_refused(raw):
    path = raw / "outcomes.csv"
    row = _row(path, 2)  # VAS 0-100, n = 20, final values
    assert (row["scale_min"], row["scale_max"], row["n"], row["value_type"]) == ("0", "100", "20", "final")
    limit = 50 * math.sqrt(20 / 19)
    set_cell(path, 2, "sd", "1e200")
    assert run(raw) == [
        f"{path}:2: column sd: sd larger than 20 values within the scale can have: at most {limit:.4g} "
        "(found 1e+200); check the scale and the cell"
    ]
    set_cell(path, 2, "sd", repr(limit))  # the largest possible SD (half the values at each end) is accepted
    assert run(raw) == []
    set_cell(path, 2, "sd", "")
    set_cell(path, 2, "se", "40")
    assert run(raw) == [
        f"{path}:2: column se: se larger than 20 values within the scale can have: at most "
        f"{limit / math.sqrt(20):.4g} (found 40); check the scale and the cell"
    ]


def test_change_scores_may_spread_over_twice_the_scale(raw):
    path = raw / "outcomes.csv"
    set_cell(path, 2, "value_type", "change")
    set_cell(path, 2, "mean", "-20")
    set_cell(path, 2, "sd", "90")  # above 50 (final values) but possible for changes in -100..100
    assert run(raw) == []
    set_cell(path, 2, "sd", "110")
    (msg,) = run(raw)
    assert "sd larger than 20 change scores within the scale can have: at most 102.6" in msg


# ------------------------------------------------------------------------------------------ report anchors


def test_report_anchors_are_unique():
    ids = ["dn.pain", "dn-pain", "dn_pain", "dnpain", "dn:pain", "dn pain", "dn:3a;pain", "Dn.pain"]
    anchors = [anchor(i) for i in ids]
    assert len(set(anchors)) == len(ids)
    assert anchor("dn.pain") == "analysis-dn.pain"
    assert all(not any(ch.isspace() for ch in a) for a in anchors)  # valid HTML ids


def test_invalid_csv_further_down_is_the_files_one_problem(raw):
    """Rows are parsed as they are checked (memory): a CSV error on a later line still replaces every
    other problem of that file, as one at the start does."""
    path = raw / "outcomes.csv"
    set_cell(path, 2, "mean", "NA")  # a cell problem before the broken line
    with path.open("a") as fh:
        fh.write('a2001,dn,dn,pain,"VAS_0_100"x,false,4,final,20,30,15,,,,,,,,,,0,100,,,1,fixture,\n')
    lines = path.read_text().count("\n")
    assert run(raw) == [f"{path}:1: not valid CSV near line {lines}: ',' expected after '\"'"]
