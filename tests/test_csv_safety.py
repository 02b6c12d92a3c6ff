"""Output CSVs are safe to open in a spreadsheet: no text cell runs as a formula (OWASP CSV injection)."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sheet_edit import edit_rows

from tpsynth.tables import _NUMBER, FORMULA_START, cell, excel_safe, excel_unsafe, read_csv, write_csv

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"

ATTACKS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3+cmd", "@SUM(A1:A9)"]


@pytest.mark.parametrize(
    "text, written",
    [
        ("=1+2", "'=1+2"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
        ("\rx", "'\rx"), ("-", "'-"), ("'=x", "''=x"), ("''-y", "'''-y"),
        ("-0.46", "-0.46"), ("+1e-3", "+1e-3"), ("-.5", "-.5"), ("12", "12"), ("'quoted'", "'quoted'"),
        ("a=b", "a=b"), ("", ""), ("Smith 2001", "Smith 2001"),
    ],
)  # fmt: skip
def test_excel_safe(text, written):
    assert excel_safe(text) == written
    assert excel_unsafe(written) == text


def test_write_then_read_gives_the_original_strings(tmp_path):
    rows = [{"a": t, "b": -1.5, "c": 3} for t in ATTACKS + ["\tx", "'=y", "plain"]]
    path = tmp_path / "t.csv"
    write_csv(path, ["a", "b", "c"], rows)
    with path.open(newline="") as fh:
        raw = list(csv.reader(fh))
    assert [r[0] for r in raw[1:]] == ["'" + t for t in ATTACKS] + ["'\tx", "''=y", "plain"]
    assert {r[1] for r in raw[1:]} == {"-1.5"}  # numbers are never prefixed
    assert read_csv(path) == [{"a": t, "b": "-1.5", "c": "3"} for t in ATTACKS + ["\tx", "'=y", "plain"]]


def test_write_csv_formats_each_cell_as_cell_would(tmp_path):
    """write_csv formats each distinct value of a column once: the text of every cell must still be
    excel_safe(cell(value)) of that cell's own value, also for values equal as keys but written
    differently (True, 1, 1.0; 1e16 and 10**16), NaN, lists and missing keys."""
    values = [None, True, False, 1, 1.0, 0, 0.0, -0.0, math.nan, math.inf, 1e16, 10**16, 2.5, "=x", "-1", "abc",
              "+3", "'=a", "@", "", ["a", "=b"], ("x",)]  # fmt: skip
    rows = [{c: values[(i * (j + 3)) % len(values)] for j, c in enumerate("abc") if (i + j) % 7} for i in range(300)]
    path = tmp_path / "t.csv"
    write_csv(path, ["a", "b", "c"], rows)
    with path.open(newline="") as fh:
        raw = list(csv.reader(fh))
    assert raw[0] == ["a", "b", "c"]
    assert raw[1:] == [[excel_safe(cell(r.get(c))) for c in "abc"] for r in rows]
    assert {"true", "1"} <= {t for row in raw[1:] for t in row}


def test_read_csv_as_dict_reader_with_guards_removed(tmp_path):
    """read_csv gives what csv.DictReader gives, guards removed, blank lines skipped; a short row is an
    error naming its line."""
    path = tmp_path / "t.csv"
    path.write_text("a,'=b,c\n1,'@x,\"q,\"\"r\"\n\n2,,'-y\n", encoding="utf-8")
    with path.open(newline="") as fh:
        expected = [{excel_unsafe(k): excel_unsafe(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    assert read_csv(path) == expected == [{"a": "1", "=b": "@x", "c": 'q,"r'}, {"a": "2", "=b": "", "c": "-y"}]
    path.write_text("a,b\n1,2\n3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"t.csv:3: 1 fields, the header has 2"):
        read_csv(path)


def _attack(i: int) -> str:
    return ATTACKS[i % len(ATTACKS)]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The fixture workspace with a formula in every free-text cell, run through the whole workflow."""
    wd = tmp_path_factory.mktemp("csvsafe")
    shutil.copytree(FIXTURE, wd, dirs_exist_ok=True)
    raw = wd / "data" / "raw"

    def studies(i, row):
        row.update(author=_attack(i), notes=_attack(i + 1), source=_attack(i + 2), setting=_attack(i % 2))

    def outcomes(i, row):
        row.update(arm=_attack(i % 2) + row["arm"], instrument=_attack(i) + row["instrument"], source=_attack(i + 1),
                   source_row=_attack(i + 2), notes=_attack(i + 3))  # fmt: skip
        if row["unusable_reason"]:
            row["unusable_reason"] = _attack(i)

    def contrasts(i, row):
        row.update(instrument=_attack(i), source=_attack(i + 1), notes=_attack(i + 2))
        if row["unusable_reason"]:
            row["unusable_reason"] = _attack(i + 3)

    with (raw / "studies.csv").open(newline="") as fh:
        fields = next(csv.reader(fh))
    edit_rows(raw / "studies.csv", lambda i, r: r.setdefault("setting", ""))
    assert "setting" not in fields
    edit_rows(raw / "studies.csv", studies)
    edit_rows(raw / "outcomes.csv", outcomes)
    edit_rows(raw / "contrasts.csv", contrasts)
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    for a in cfg["analyses"].values():
        a["subgroup"] = "setting"
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "-c", "2"],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return wd


@pytest.mark.pipeline
def test_no_output_csv_cell_is_a_formula(hostile_run):
    files = sorted(hostile_run.glob("results/**/*.csv")) + sorted(hostile_run.glob("data/processed/**/*.csv"))
    names = {f.name for f in files}
    assert {"arms.csv", "effects.csv", "dataflow.csv", "subgroups.csv", "pooled.csv", "study_effects.csv",
            "sensitivity.csv", "small_study.csv"} <= names  # fmt: skip
    guarded = {}
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for c in row:
                    assert not (c[:1] in FORMULA_START and not _NUMBER.fullmatch(c)), (f.name, c)
                    if c[:1] == "'" and c[1:2] in FORMULA_START:
                        guarded.setdefault(f.name, set()).add(c)
    # the attacks did reach these files, guarded
    for name in ("arms.csv", "effects.csv", "dataflow.csv", "subgroups.csv"):
        assert guarded.get(name), name
    assert "'@SUM(A1:A9)" in guarded["subgroups.csv"] or "'=HYPERLINK(\"http://evil.example\",\"x\")" in guarded["subgroups.csv"]


@pytest.mark.pipeline
def test_report_shows_the_original_text(hostile_run):
    html = (hostile_run / "results" / "report.html").read_text()
    assert "@SUM(A1:A9)" in html
    assert "'@SUM" not in html and "&#39;@SUM" not in html


@pytest.mark.parametrize("column", [
    [None] * 5, ["same"] * 5, [0, 1, 2, 10**16, 7], [3, -1, 2], [3, None, 2], [True, 1, 1.0, None, "1"],
    [1.5, 2.5, 1.5, -0.0, 0.0], ["=x", "=x", "a"], [],
])  # fmt: skip
@pytest.mark.parametrize("block", [2, 200_000])
def test_write_csv_of_a_table_equals_write_csv_of_its_rows(tmp_path, monkeypatch, column, block):
    """A Table is written from its columns (constant columns and non-negative integers formatted at once),
    a block of rows at a time: the same bytes as its rows."""
    from tpsynth import tables
    from tpsynth.columns import Table

    monkeypatch.setattr(tables, "CSV_BLOCK", block)
    table = Table({"x": column, "y": [f"r{i}" for i in range(len(column))]})
    write_csv(tmp_path / "t.csv", ["y", "x"], table)
    write_csv(tmp_path / "r.csv", ["y", "x"], table.rows())
    assert (tmp_path / "t.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()
    with (tmp_path / "t.csv").open(newline="") as fh:
        assert [r[1] for r in list(csv.reader(fh))[1:]] == [excel_safe(cell(v)) for v in column]
