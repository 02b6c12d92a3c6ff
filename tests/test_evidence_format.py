"""evidence.json and the slices store their row tables by columns (tpsynth-evidence/2): what is read back is
exactly what the row-per-object JSON gave (same rows, same keys in the same order, same values)."""

from __future__ import annotations

import json
import os

import pytest

from tpsynth import pipeline
from tpsynth.columns import Table
from tpsynth.config import load_config


def _as_rows_json(obj):
    """What the old layout (every row an object, keys sorted) read back as (a Table: its rows)."""
    return json.loads(json.dumps(obj, sort_keys=True, allow_nan=False, default=lambda t: t.rows()))


@pytest.fixture
def ingested(ws):
    config = load_config("config/config.yaml")
    pipeline.run_ingest(config, "data/processed/evidence.json", "data/processed/arms.csv", "data/processed/slices")
    return config, pipeline.build_evidence(config)


def test_evidence_reads_back_as_rows(ingested):
    config, ev = ingested
    back = pipeline.read_evidence("data/processed/evidence.json")
    expected = _as_rows_json(ev)
    assert back == expected
    for key in pipeline.TABLES:  # same key order in every row too
        assert [list(r) for r in back[key]] == [list(r) for r in expected[key]], key
    raw = json.loads(open("data/processed/evidence.json", encoding="utf-8").read())
    assert set(raw["outcomes"]) == {"columns", "length"} and raw["outcomes"]["length"] == len(ev["outcomes"])
    assert list(raw["outcomes"]["columns"]) == sorted(ev["outcomes"].names)


def test_slices_read_back_as_rows_and_hash_as_written(ingested):
    config, ev = ingested
    for aid in config["analyses"]:
        path = pipeline.slice_path("data/processed/slices", aid)
        data = path.read_bytes()
        assert pipeline.read_evidence(path) == _as_rows_json(pipeline.evidence_slice(config, ev, aid))
        # the hash the report checks is that of the file's bytes
        assert pipeline._chunks_sha256(pipeline._json_chunks(pipeline.evidence_slice(config, ev, aid))) == (
            pipeline.sha256_bytes(data)
        )


def test_unchanged_slice_is_not_rewritten(ingested):
    config, ev = ingested
    path = pipeline.slice_path("data/processed/slices", "pain_md")
    os.utime(path, (1, 1))
    assert pipeline.write_slices(config, ev, "data/processed/slices") == []
    assert path.stat().st_mtime == 1
    outcome = config["analyses"]["pain_md"]["outcome"]
    i = ev["outcomes"]["outcome"].index(outcome)
    ev["outcomes"]["notes"][i] = "text that reaches no arm"  # the outcome rows are not in the slices
    assert pipeline.write_slices(config, ev, "data/processed/slices") == []
    i = ev["arms"]["outcome"].index(outcome)
    ev["arms"]["mean"][i] += 1
    pain = sorted(a for a in config["analyses"] if config["analyses"][a]["outcome"] == outcome)
    assert pain and pipeline.write_slices(config, ev, "data/processed/slices") == pain
    assert path.stat().st_mtime > 1
    assert not list(path.parent.glob(".*tmp-*"))  # no temporary file left behind


def test_tables_whose_rows_differ_in_keys_are_kept_as_rows(tmp_path):
    obj = {"format": pipeline.EVIDENCE_FORMAT, "flow": [{"a": 1, "b": None}, {"a": 2}], "arms": [], "outcomes": [
        {"x": 1.5, "y": "t"}, {"y": "u", "x": -0.0}], "studies": [{}, {}], "prisma": {"columns": 1}}  # fmt: skip
    path = tmp_path / "e.json"
    pipeline.write_chunks(path, pipeline._json_chunks(obj))
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["flow"] == {"rows": [{"a": 1, "b": None}, {"a": 2}]}
    assert raw["outcomes"] == {"columns": {"x": [1.5, -0.0], "y": ["t", "u"]}, "length": 2}
    assert pipeline.read_evidence(path) == _as_rows_json(obj)
    assert path.read_text(encoding="utf-8") == pipeline._json_text(obj)
    tables = pipeline.read_evidence(path, by_columns=("flow", "outcomes", "arms"))
    assert tables["flow"] == Table({"a": [1, 2], "b": [None, None]})  # every key of any row; None where missing
    assert tables["outcomes"] == Table({"x": [1.5, -0.0], "y": ["t", "u"]})
    assert tables["arms"] == Table({}) and tables["studies"] == [{}, {}]


def test_old_format_is_refused(tmp_path):
    path = tmp_path / "e.json"
    path.write_text('{"format": "tpsynth-evidence/1", "outcomes": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a tpsynth-evidence/2 file"):
        pipeline.read_evidence(path)


def test_analysis_from_its_slice_equals_analysis_from_the_sheets(ingested):
    """A slice carries its outcome's arms, contrasts and studies, not the outcome rows: the analysis reads
    only those, so its result from the slice equals the one computed from the whole validated sheets."""
    from tpsynth.analysis import run_analysis
    from tpsynth.harmonise import harmonise
    from tpsynth.validate import load_sheets

    config, ev = ingested
    sheets = load_sheets(config)
    arms = harmonise(sheets)[0].rows()
    for aid in config["analyses"]:
        sl = pipeline.read_evidence(pipeline.slice_path("data/processed/slices", aid))
        assert "outcomes" not in sl
        from_slice = run_analysis(sl["settings"], pipeline.sheets_from_evidence(sl), sl["config"], arms=sl["arms"])
        direct = run_analysis(sl["settings"], sheets, config, arms=arms)
        assert _as_rows_json(from_slice.to_dict()) == _as_rows_json(direct.to_dict()), aid
        by_columns = pipeline.read_evidence(pipeline.slice_path("data/processed/slices", aid), by_columns=("arms",))
        assert by_columns["arms"] == Table.from_rows(sl["arms"])  # the stored columns, no row dicts
        assert {k: v for k, v in by_columns.items() if k != "arms"} == {k: v for k, v in sl.items() if k != "arms"}
        from_columns = run_analysis(sl["settings"], pipeline.sheets_from_evidence(sl), sl["config"], arms=by_columns["arms"])
        assert from_columns.to_dict() == from_slice.to_dict(), aid


def test_read_evidence_keeps_only_the_tables_asked_for(ingested):
    config, ev = ingested
    full = pipeline.read_evidence("data/processed/evidence.json")
    part = pipeline.read_evidence("data/processed/evidence.json", tables=("flow",))
    assert part["flow"] == full["flow"] and part["sheets"] == full["sheets"]
    assert not set(pipeline.TABLES) - {"flow"} & set(part)
    assert set(pipeline.read_evidence("data/processed/evidence.json", tables=())) == set(full) - set(pipeline.TABLES)


@pytest.mark.parametrize("text", [
    '{"a":1,"b":{"columns":{"x":[1,2]},"length":2},"c":[{"d":"}"}],"e":"\\u00e9,:"}',
    ' { "a" : [1, {"b": 2}] ,\n "skip" : {"deep": [[[]]], "d2": {"x": {}, "y": "}{"}} , "z": null }\n',
    '{"skip": {}, "b": {"columns": {}, "length": 0}, "a": {"skip": 1}}',
    "{}", " { } ", "[1, 2]",
])  # fmt: skip
def test_entries_decoded_one_at_a_time_equal_json_loads(text):
    whole = json.loads(text)
    expected = {k: v for k, v in whole.items() if k not in {"b", "skip"}} if isinstance(whole, dict) else whole
    assert pipeline._load_entries(text, {"b", "skip"}) == expected


@pytest.mark.parametrize("text", ['{"a":1 "b":2}', '{"a" 1}', '{"a":1,}', '{"a":1} x', "{1:2}", '{"a":1',
                                  '{"s": {"a" 1}, "b": 2}', '{"s": {"a": [1,]}}', '{"s": {"a": 1,}}', '{"s": {1: 2}}'])
def test_entries_decoder_refuses_what_json_refuses(text):
    """Also inside a skipped value, which is scanned without being kept."""
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    for skip in (set(), {"s"}):
        with pytest.raises(json.JSONDecodeError):
            pipeline._load_entries(text, skip)


def test_parse_time_check_reads_only_the_head(ingested, monkeypatch):
    """evidence.json starts with format, config_sha256 and sheets; the Snakefile's parse-time check reads
    them from the file's first bytes and never decodes the tables (hundreds of MB at 100,000 studies)."""
    config, ev = ingested
    path = "data/processed/evidence.json"
    text = open(path, encoding="utf-8").read()
    assert text.startswith('{"format":"tpsynth-evidence/2","config_sha256":"')
    full = pipeline.read_evidence(path)
    head = pipeline.evidence_head(path)
    assert head == {k: full[k] for k in pipeline.HEAD}
    assert pipeline.evidence_out_of_date(path, config) == []
    # everything after the head is unreadable: the check does not notice, so it did not read it
    cut = text.index(',"arms":')
    open(path, "w", encoding="utf-8").write(text[:cut] + ',"arms":' + "[" * 10 + "x" * (2 * pipeline.HEAD_BYTES))
    assert pipeline.evidence_head(path) == head
    assert pipeline.evidence_out_of_date(path, config) == []
    # a file in another key order (e.g. sorted keys) is read whole, tables scanned
    open(path, "w", encoding="utf-8").write(json.dumps(_as_rows_json(ev), sort_keys=True))
    assert pipeline.evidence_head(path) == head
    open(path, "w", encoding="utf-8").write("not json")
    assert pipeline.evidence_out_of_date(path, config) == [path]


@pytest.mark.parametrize("values", [
    [], [None, None], ["a", "b", "a", None, "\u00e9\"\\"], [1, 1.0, True, 1, 0, False, 0.0, None],
    [1.5, 2.5, 1.5, None], [0.0, -0.0, 1.0], [-0.0, 0.0], [0, -0.0], [pipeline.EVIDENCE_FORMAT, "x"],
    [[1, 2], [1, 2]], [1e300, 5e-324, 0.1 + 0.2], ["x", "x", "x"], list(range(50)),
])  # fmt: skip
def test_column_json_equals_json_of_the_list(values):
    from tpsynth.validate import Reason

    assert pipeline._column_json(values) == pipeline._dumps(values)
    with_reasons = values + [Reason("why", "n"), "why"]
    assert pipeline._column_json(with_reasons) == pipeline._dumps(with_reasons)


def test_column_json_refuses_nan():
    with pytest.raises(ValueError):
        pipeline._column_json([1.0, float("nan")])


def test_columns_shared_by_tables_are_written_as_copies_would_be():
    from tpsynth.columns import Table

    ids, none = ["a", "b", "a"], (None,) * 3
    obj = {"format": pipeline.EVIDENCE_FORMAT, "arms": Table({"study_id": ids, "x": none}),
           "outcomes": Table({"study_id": ids, "y": none, "z": none, "w": [1.5, 0.0, -0.0]}),
           "flow": Table({"study_id": ids})}  # fmt: skip
    copies = {k: (Table({c: list(v) for c, v in t.columns.items()}) if isinstance(t, Table) else t)
              for k, t in obj.items()}  # fmt: skip
    assert pipeline._json_text(obj) == pipeline._json_text(copies) == pipeline._json_text(
        {k: (t.rows() if isinstance(t, Table) else t) for k, t in obj.items()}
    )


def test_a_column_extending_a_shared_one_is_written_as_its_copy_would_be():
    """The data flow's columns are the outcome columns and then the contrast rows: encoded from the shared
    column's text; the same bytes as copies."""
    from tpsynth.columns import Table

    ids, lines = ["a", "b", "a"], [2, 3, 4]
    obj = {"format": pipeline.EVIDENCE_FORMAT, "arms": Table({"study_id": ids, "line": lines}),
           "outcomes": Table({"study_id": ids, "_line": lines, "y": [ids[0], "z", ids[2]]})}  # fmt: skip
    obj["flow"] = Table({"study_id": ids + ["c", 1.5], "line": lines + [2, 9], "copy": list(ids) + ["d", None],
                         "x": ["a", "q"] * 2 + ["a"]})  # fmt: skip
    copies = {k: (Table({c: list(v) for c, v in t.columns.items()}) if isinstance(t, Table) else t)
              for k, t in obj.items()}  # fmt: skip
    assert pipeline._json_text(obj) == pipeline._json_text(copies)
    assert pipeline._extended_json(obj["flow"]["study_id"], {1: [2, '["a","b","a"]', ids]}) == '["a","b","a","c",1.5]'
    assert pipeline._extended_json(["a", "b"], {1: [2, '["a","b","a"]', ids]}) is None
