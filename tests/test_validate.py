"""Every kind of bad input gets its exact FILE:LINE: column message, all reported in one run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"


def config():
    return yaml.safe_load(Path("config/config.yaml").read_text())


def problems(contrasts="data/raw/contrasts.csv"):
    _, probs = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", contrasts, config())
    return [str(p) for p in probs]


def edit(path, old, new, count=1):
    p = Path(path)
    text = p.read_text()
    assert old in text, f"fixture does not contain {old!r}"
    p.write_text(text.replace(old, new, count))


def test_fixture_is_valid(ws):
    assert problems() == []


def test_file_missing(ws):
    Path("data/raw/outcomes.csv").unlink()
    assert problems() == ["data/raw/outcomes.csv: file not found"]


def test_file_empty(ws):
    Path("data/raw/studies.csv").write_text("")
    assert "data/raw/studies.csv:1: file is empty (no header row)" in problems()


def test_header_only(ws):
    Path("data/raw/contrasts.csv").write_text(Path("data/raw/contrasts.csv").read_text().splitlines()[0] + "\n")
    assert problems() == ["data/raw/contrasts.csv:2: no data rows"]


def test_renamed_xlsx(ws):
    Path("data/raw/outcomes.csv").write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100)
    assert problems() == [
        "data/raw/outcomes.csv:1: not a CSV text file: it looks like a ZIP archive, e.g. an Excel .xlsx/.ods "
        "workbook; export the sheet as 'CSV UTF-8'"
    ]


def test_not_utf8(ws):
    Path("data/raw/studies.csv").write_bytes(Path("data/raw/studies.csv").read_bytes() + "x,Ölmez\n".encode("latin-1"))
    assert problems() == [
        "data/raw/studies.csv:1: not UTF-8 text (undecodable byte on line 7); save the file as 'CSV UTF-8'"
    ]


def test_bom_accepted(ws):
    p = Path("data/raw/studies.csv")
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert problems() == []


def test_missing_required_column(ws):
    edit("data/raw/outcomes.csv", "value_type,", "")
    edit("data/raw/outcomes.csv", "final,", "", count=100)
    assert problems() == ["data/raw/outcomes.csv:1: column value_type: required column missing"]


def test_unknown_column_suggests_near_name(ws):
    edit("data/raw/outcomes.csv", ",sd,", ",stdev,")
    assert problems() == ["data/raw/outcomes.csv:1: column stdev: unknown column; did you mean 'sd'?"]
    edit("data/raw/outcomes.csv", ",stdev,", ",sd_,")
    assert problems() == ["data/raw/outcomes.csv:1: column sd_: unknown column; did you mean 'sd'?"]


def test_extra_study_column_is_kept(ws):
    edit("data/raw/studies.csv", ",notes\n", ",notes,setting\n")
    text = Path("data/raw/studies.csv").read_text().splitlines()
    Path("data/raw/studies.csv").write_text("\n".join([text[0]] + [t + ",clinic" for t in text[1:]]) + "\n")
    sheets, probs = validate_sheets("data/raw/studies.csv", "data/raw/outcomes.csv", "data/raw/contrasts.csv", config())
    assert probs == []
    assert sheets.extra_study_columns == ["setting"]
    assert sheets.studies[0]["setting"] == "clinic"


def test_wrong_type(ws):
    edit("data/raw/outcomes.csv", "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,30,15", "a2001,dn,dn,pain,VAS_0_100,false,4,final,twenty,30,15")
    assert problems() == ["data/raw/outcomes.csv:2: column n: expected a whole number (found 'twenty')"]


def test_decimal_comma(ws):
    edit("data/raw/outcomes.csv", ",3.1,", ',"3,1",')
    assert problems() == ["data/raw/outcomes.csv:6: column mean: expected a number (use a dot as decimal separator) (found '3,1')"]


def test_wrong_boolean_and_enum(ws):
    edit("data/raw/studies.csv", "a2001,Alpha,2001,parallel,true,lumbar,low", "a2001,Alpha,2001,paralel,yes please,lumbar,low")
    assert problems() == [
        "data/raw/studies.csv:2: column design: must be one of parallel, crossover, cluster (found 'paralel')",
        "data/raw/studies.csv:2: column randomised: expected true or false (found 'yes please')",
    ]


def test_empty_required_cell(ws):
    edit("data/raw/studies.csv", "b2005,Beta,2005,parallel,true,gluteal,", "b2005,Beta,2005,parallel,true,,")
    assert problems() == ["data/raw/studies.csv:3: column region: required value is empty"]


def test_empty_n_needs_unusable_reason(ws):
    edit("data/raw/outcomes.csv", "a2001,sham,sham,pain,VAS_0_100,false,4,final,20,", "a2001,sham,sham,pain,VAS_0_100,false,4,final,,")
    assert problems() == [
        "data/raw/outcomes.csv:3: column n: required value is empty (it may be blank only when unusable_reason is given)"
    ]


def test_duplicate_study_id(ws):
    edit("data/raw/studies.csv", "c2010,Gamma", "b2005,Gamma")
    probs = problems()
    assert probs[0] == "data/raw/studies.csv:4: column study_id: duplicate study_id, first on line 3 (found 'b2005')"


def test_duplicate_arm_row(ws):
    p = Path("data/raw/outcomes.csv")
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines + [lines[1]]) + "\n")
    assert problems() == [
        "data/raw/outcomes.csv:20: column arm: duplicate study+arm+outcome+timepoint, first on line 2 "
        "(found a2001 / dn / pain / 4 weeks)"
    ]


def test_unknown_study(ws):
    edit("data/raw/contrasts.csv", "e2020,dn,usual,pain", "e2021,dn,usual,pain")
    assert problems() == [
        "data/raw/contrasts.csv:2: column study_id: unknown study, not in data/raw/studies.csv; did you mean 'e2020'? (found 'e2021')"
    ]


def test_undeclared_code(ws):
    edit("data/raw/outcomes.csv", "a2001,sham,sham,pain", "a2001,sham,shamm,pain")
    assert problems() == [
        "data/raw/outcomes.csv:3: column intervention: code not declared under 'interventions' in "
        "config/config.yaml; did you mean 'sham'? (found 'shamm')"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be >= 1 (found '0')"), ("2.5", "expected a whole number (found '2.5')"), ("-3", "must be >= 1 (found '-3')")],
)
def test_n_whole_and_positive(ws, value, message):
    edit("data/raw/outcomes.csv", "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,", f"a2001,dn,dn,pain,VAS_0_100,false,4,final,{value},")
    assert problems() == [f"data/raw/outcomes.csv:2: column n: {message}"]


def test_sd_and_se_positive(ws):
    edit("data/raw/outcomes.csv", ",30,15,", ",30,0,")
    edit("data/raw/outcomes.csv", ",3.1,,0.5,", ",3.1,,-0.5,")
    assert problems() == [
        "data/raw/outcomes.csv:2: column sd: must be > 0 (found '0')",
        "data/raw/outcomes.csv:6: column se: must be > 0 (found '-0.5')",
    ]


def test_ci_order(ws):
    edit("data/raw/outcomes.csv", ",2.5,4.7,", ",4.7,2.5,")
    edit("data/raw/contrasts.csv", ",-2.8,-1.8,", ",-1.8,-2.8,")
    assert problems() == [
        "data/raw/outcomes.csv:7: column ci_low: ci_low is above ci_high (found 4.7 > 2.5)",
        "data/raw/contrasts.csv:2: column ci_low: ci_low is above ci_high (found -1.8 > -2.8)",
    ]


def test_quartiles_out_of_order(ws):
    edit("data/raw/outcomes.csv", ",2.5,1.5,4,0.5,7,", ",2.5,3,4,0.5,7,")
    assert problems() == ["data/raw/outcomes.csv:13: column median: five-number summary out of order: q1 3 > median 2.5"]


def test_events_range(ws):
    edit("data/raw/outcomes.csv", "a2001,dn,dn,resp,responders,true,4,final,20,,,,,,,,,,,12,", "a2001,dn,dn,resp,responders,true,4,final,20,,,,,,,,,,,21,")
    edit("data/raw/outcomes.csv", "a2001,sham,sham,resp,responders,true,4,final,20,,,,,,,,,,,6,", "a2001,sham,sham,resp,responders,true,4,final,20,,,,,,,,,,,-1,")
    assert problems() == [
        "data/raw/outcomes.csv:4: column events: events exceed n (found 21 > 20)",
        "data/raw/outcomes.csv:5: column events: must be >= 0 (found '-1')",
    ]


def test_scale_order_and_mean_outside_scale(ws):
    edit("data/raw/outcomes.csv", ",30,15,,,,,,,,,,0,100,", ",30,15,,,,,,,,,,100,0,")
    edit("data/raw/outcomes.csv", ",45,18,,,,,,,,,,0,100,", ",145,18,,,,,,,,,,0,100,")
    assert problems() == [
        "data/raw/outcomes.csv:2: column scale_min: scale_min must be below scale_max (found 100 >= 0)",
        "data/raw/outcomes.csv:3: column mean: value outside the scale 0 to 100 (found 145)",
    ]


def test_change_scores_may_be_negative(ws):
    edit("data/raw/outcomes.csv", "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,30,", "a2001,dn,dn,pain,VAS_0_100,false,4,change,20,-30,")
    edit("data/raw/outcomes.csv", "a2001,sham,sham,pain,VAS_0_100,false,4,final,20,45,", "a2001,sham,sham,pain,VAS_0_100,false,4,change,20,-145,")
    assert problems() == ["data/raw/outcomes.csv:3: column mean: change value outside the scale -100 to 100 (found -145)"]


def test_no_usable_statistics_without_reason(ws):
    edit("data/raw/outcomes.csv", ",SD not reported,", ",,")
    edit("data/raw/outcomes.csv", "a2001,dn,dn,pain,VAS_0_100,false,26,final,,", "a2001,dn,dn,pain,VAS_0_100,false,26,final,20,")
    assert problems() == [
        "data/raw/outcomes.csv:19: column unusable_reason: no usable set of statistics (n with mean and sd, se or "
        "ci_low+ci_high; n with median and q1+q3 and/or min+max; or n with events) and no unusable_reason given"
    ]


def test_ragged_row(ws):
    p = Path("data/raw/studies.csv")
    p.write_text(p.read_text() + "f2021,Zeta,2021\n")
    assert problems() == ["data/raw/studies.csv:7: row has 3 fields but the header has 10"]


def test_all_problems_in_one_run(ws):
    edit("data/raw/studies.csv", "a2001,Alpha,2001,parallel", "a2001,Alpha,1800,parallel")
    edit("data/raw/outcomes.csv", ",30,15,", ",30,-15,")
    edit("data/raw/contrasts.csv", "e2020,dn,usual,pain,NPRS_0_10,8,MD", "e2020,dn,usual,pain,NPRS_0_10,8,XX")
    assert problems() == [
        "data/raw/studies.csv:2: column year: must be >= 1900 (found '1800')",
        "data/raw/outcomes.csv:2: column sd: must be > 0 (found '-15')",
        "data/raw/contrasts.csv:2: column measure: must be one of MD, SMD, RR, OR, RD (found 'XX')",
    ]


def test_cli_exit_code_and_messages(ws):
    edit("data/raw/outcomes.csv", ",30,15,", ",30,-15,")
    run = subprocess.run(
        [sys.executable, "-m", "tpsynth", "validate", "--studies", "data/raw/studies.csv", "--outcomes", "data/raw/outcomes.csv"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "data/raw/outcomes.csv:2: column sd: must be > 0 (found '-15')",
        "1 problem found; nothing was written.",
    ]
    assert "Traceback" not in run.stderr
    edit("data/raw/outcomes.csv", ",30,-15,", ",30,15,")
    ok = subprocess.run([sys.executable, "-m", "tpsynth", "validate"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Valid, with 6 warnings: 5 studies, 18 outcome rows, 2 contrast rows;")


def test_problems_in_line_then_column_order(ws):
    """Every bad cell gets its own message, in line order and, within a line, in column order then the
    required-value checks, also when the same bad text recurs (cells are parsed once per distinct text) and
    when a row has the wrong number of fields."""
    lines = Path("data/raw/outcomes.csv").read_text().splitlines()
    lines[1] = lines[1].replace("pain,VAS_0_100,false,4,final,20,30,15", "pain,VAS_0_100,maybe,4,final,x,30,15")
    lines[2] = lines[2].replace(",false,4,final,20,45,18", ",maybe,4,final,20,4 5,18")
    lines[3] = lines[3] + ",extra"
    lines[4] = lines[4].replace("a2001,sham,sham,resp", ",sham,sham,resp").replace(",true,4,", ",maybe,4,")
    Path("data/raw/outcomes.csv").write_text("\n".join(lines) + "\n")
    found = [p for p in problems() if p.startswith("data/raw/outcomes.csv")]
    assert found == [
        "data/raw/outcomes.csv:2: column higher_is_better: expected true or false (found 'maybe')",
        "data/raw/outcomes.csv:2: column n: expected a whole number (found 'x')",
        "data/raw/outcomes.csv:3: column higher_is_better: expected true or false (found 'maybe')",
        "data/raw/outcomes.csv:3: column mean: expected a number (found '4 5')",
        f"data/raw/outcomes.csv:4: row has {lines[3].count(',') + 1} fields but the header has {lines[0].count(',') + 1}",
        "data/raw/outcomes.csv:5: column higher_is_better: expected true or false (found 'maybe')",
        "data/raw/outcomes.csv:5: column study_id: required value is empty",
    ]
