"""The columnar sheet reader (issue 14): pandas' C reader where every record is one line, Python's csv
otherwise; either way the same rows, cells, physical line numbers and CSV errors as reading the file row
by row with Python's csv module (the reference below, written here, not imported from the package)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tpsynth import sheets as sheets_mod
from tpsynth.sheets import CsvFile, NotCSVError
from tpsynth.validate import validate_sheets


def reference(text: str):
    """(header, rows kept as (line, fields), (line, field count) of rows of another width), or the CSV error
    message: a row-by-row reading with csv (strict), blank rows skipped but counted."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        start = reader.line_num + 1
        kept, odd = [], []
        for fields in reader:
            end = reader.line_num
            if any(f.strip() for f in fields):
                (kept if len(fields) == len(header) else odd).append(
                    (start, fields) if len(fields) == len(header) else (start, len(fields))
                )
            start = end + 1
    except csv.Error as err:
        return f"not valid CSV near line {reader.line_num}: {err}"
    return header, kept, odd


def read(tmp_path: Path, text: str, encoding_prefix: bytes = b""):
    path = tmp_path / "sheet.csv"
    path.write_bytes(encoding_prefix + text.encode("utf-8"))
    try:
        raw = CsvFile(path).columns()
    except NotCSVError as err:
        return str(err)
    rows = [
        (int(line), [raw.texts[j][raw.codes[j][i]] for j in range(len(raw.header))])
        for i, line in enumerate(raw.lines.tolist())
    ]
    return raw.header, rows, raw.field_count_errors


CASES = {
    "plain LF": "a,b,c\n1,2,3\n4,5,6\n",
    "CRLF": "a,b,c\r\n1,2,3\r\n4,5,6\r\n",
    "CR only": "a,b,c\r1,2,3\r4,5,6\r",
    "no final newline": "a,b,c\n1,2,3\n4,5,6",
    "blank rows counted": "a,b,c\n\n1,2,3\n   \n,,\n , ,\n4,5,6\n\n\n",
    "blank rows with CRLF": "a,b,c\r\n\r\n1,2,3\r\n\r\n4,5,6\r\n",
    "quoted commas and quotes": 'a,b,c\n1,"x, y",3\n4,"say ""hi""",6\n"7",8,""\n',
    "quotes inside unquoted fields": 'a,b,c\n1,ab"c,3\n4, "q",6\n',
    "spaces kept": "a , b ,c\n 1 ,2 , 3\n",
    "quoted line break": 'a,b,c\n1,"two\nlines",3\n4,5,6\n',
    "quoted CRLF": 'a,b,c\r\n1,"two\r\nlines",3\r\n4,5,6\r\n',
    "quoted line break in the header": 'a,"b\nb",c\n1,2,3\n',
    "too few fields": "a,b,c\n1,2\n4,5,6\n",
    "too many fields": "a,b,c\n1,2,3,4\n4,5,6\n",
    "too many blank fields": "a,b,c\n,,,,\n4,5,6\n",
    "strict CSV error": 'a,b,c\n1,"x"y,3\n',
    "unterminated quote": 'a,b,c\n1,"x,3\n4,5,6\n',
    "NUL in a cell": "a,b,c\n" + "1,2,3\n" * 1000 + "1,\x002,3\n",  # past the first 4096 bytes
    "only a header": "a,b,c\n",
    "only blank rows": "a,b,c\n\n,,\n",
    "unicode": "a,b,c\n\u00e9,\u4e2d,\u2014\n",
    "one column": "a\n1\n\n2\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_columns_equal_a_row_by_row_reading(tmp_path, name):
    text = CASES[name]
    assert read(tmp_path, text) == reference(text)


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    text = "study_id,n\ns1,3\n"
    assert read(tmp_path, text, b"\xef\xbb\xbf") == reference(text)
    assert read(tmp_path, text, b"\xef\xbb\xbf")[0] == ["study_id", "n"]


@pytest.mark.parametrize("name", ["plain LF", "CRLF", "CR only", "blank rows counted", "quoted commas and quotes",
                                  "quotes inside unquoted fields", "unicode", "one column"])  # fmt: skip
def test_files_of_one_line_records_are_read_by_the_c_reader(tmp_path, monkeypatch, name):
    def fail(self):
        raise AssertionError("read row by row")

    monkeypatch.setattr(CsvFile, "_row_columns", fail)
    assert read(tmp_path, CASES[name]) == reference(CASES[name])


@pytest.mark.parametrize("name", ["quoted line break", "quoted CRLF", "too few fields", "too many fields",
                                  "too many blank fields", "NUL in a cell", "quoted line break in the header"])  # fmt: skip
def test_other_files_are_read_row_by_row(tmp_path, monkeypatch, name):
    called = []
    original = CsvFile._row_columns

    def spy(self):
        called.append(True)
        return original(self)

    monkeypatch.setattr(CsvFile, "_row_columns", spy)
    assert read(tmp_path, CASES[name]) == reference(CASES[name])
    assert called


def test_rows_are_read_in_chunks(tmp_path, monkeypatch):
    """Distinct texts are numbered across the C reader's chunks."""
    monkeypatch.setattr(sheets_mod, "CHUNK_ROWS", 3)
    text = "a,b\n" + "".join(f"{i % 4},{i % 7}\n" + ("\n" if i % 5 == 0 else "") for i in range(40))
    got = read(tmp_path, text)
    assert got == reference(text)


FIXTURE = Path(__file__).parent / "fixtures" / "minimal" / "data" / "raw"


def _problems(tmp_path, outcomes_text: str) -> list[str]:
    path = tmp_path / "outcomes.csv"
    path.write_text(outcomes_text, encoding="utf-8", newline="")
    config = {"interventions": {"dn": {}, "sham": {}, "tpi": {}, "usual_care": {}, "mt": {}, "lido": {}},
              "outcomes": {"pain": {}, "disability": {}, "resp": {}, "ppt": {}}}  # fmt: skip
    _, problems = validate_sheets(str(FIXTURE / "studies.csv"), str(path), None, config)
    return [str(p) for p in problems if p.file == str(path)]


def test_line_numbers_in_messages_whichever_reader(tmp_path):
    """A bad cell is reported on its physical line after blank rows, CRLF endings and (read row by row) a
    quoted line break; the messages are the same for both readers."""
    lines = (FIXTURE / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    header, first, second = lines[0], lines[1], lines[2]
    n_at = header.split(",").index("n")
    bad = second.split(",")
    bad[n_at] = "12.5"
    bad = ",".join(bad)
    one_line = "\r\n".join([header, "", first, "  ", bad]) + "\r\n"
    got = _problems(tmp_path, one_line)
    assert got == [f"{tmp_path / 'outcomes.csv'}:5: column n: expected a whole number (found '12.5')"]
    notes_at = header.split(",").index("notes") if "notes" in header.split(",") else None
    if notes_at is not None:
        spanning = first.split(",")
        spanning[notes_at] = '"a note\nover two lines"'
        text = "\n".join([header, ",".join(spanning), "", bad]) + "\n"
        assert _problems(tmp_path, text) == [
            f"{tmp_path / 'outcomes.csv'}:5: column n: expected a whole number (found '12.5')"
        ]


def test_field_count_and_csv_errors_keep_their_messages(tmp_path):
    lines = (FIXTURE / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    short = ",".join(lines[1].split(",")[:3])
    width = len(lines[0].split(","))
    assert _problems(tmp_path, "\n".join([lines[0], lines[1], "", short]) + "\n") == [
        f"{tmp_path / 'outcomes.csv'}:4: row has 3 fields but the header has {width}"
    ]
    assert _problems(tmp_path, "\n".join([lines[0], lines[1], '"x"y,' + lines[2]]) + "\n") == [
        f"{tmp_path / 'outcomes.csv'}:1: not valid CSV near line 3: ',' expected after '\"'"
    ]


def _csv_widths(data: bytes) -> list[int]:
    return [len(r) for r in csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""), strict=True)]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("block", [1, 7, 1 << 24])
def test_field_counts_of_unquoted_text_equal_csv(seed, block):
    """Without quotes, csv's fields per record are the commas of each line plus one (none on an empty line),
    lines ending at \\n, \\r\\n or a lone \\r: counted by numpy in blocks of lines."""
    import random

    rng = random.Random(seed)
    pieces = [",", "a", " ", "\r", "\n", "\r\n", "\u00e9", "x,y", ",,"]
    data = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60))).encode("utf-8")
    assert sheets_mod._unquoted_widths(data, block).tolist() == _csv_widths(data)


def test_a_line_longer_than_csvs_field_limit_is_left_to_csv(tmp_path):
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(20)
        assert sheets_mod._unquoted_widths(b"a,b\n" + b"x" * 30 + b",1\n") is None
        text = "a,b\n1,2\n" + "x" * 30 + ",1\n"
        assert read(tmp_path, text) == reference(text) == "not valid CSV near line 3: field larger than field limit (20)"
    finally:
        csv.field_size_limit(limit)
