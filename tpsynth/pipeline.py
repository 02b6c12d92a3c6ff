"""Glue between Snakemake and the package: what each rule computes, given paths.

Scripts in ``scripts/`` only unpack ``snakemake.input``/``output`` and call these functions.

The graph carries the evidence once: ``ingest`` validates and harmonises the sheets and writes
``data/processed/evidence.json`` (the typed rows, harmonised arms, row flow and the SHA-256 of the
exact bytes it parsed) and one evidence slice per analysis, ``data/processed/slices/{id}.json``: what
that analysis reads (its settings, the config parts it uses, its outcome's rows, arms and studies).
A slice is rewritten only when its content changes, so the slice files' modification times alone
decide which analyses rerun: no digest kept in Snakemake's metadata is needed, and deleting
``.snakemake/`` cannot make a result stale. Nothing after ``ingest`` reads the raw sheets.
"""

from __future__ import annotations

import dataclasses
import errno
import filecmp
import hashlib
import json
import os
import re
import sys
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from json.encoder import encode_basestring
from operator import itemgetter
from pathlib import Path

from .columns import Table
from .config import analysis_settings
from .tables import constant_text, read_json, replace_atomically, write_json
from .validate import Sheets, load_sheets

#: Version tag of evidence.json and of the slices (bump when their layout changes).
EVIDENCE_FORMAT = "tpsynth-evidence/2"
#: Row tables of evidence.json and of the slices. Each is written by columns (:func:`_table_chunks`):
#: ``{"columns": {name: [value of each row], ...}, "length": rows}``, column names sorted; a table whose
#: rows do not all have the same keys is written as ``{"rows": [row, ...]}``.
TABLES = ("studies", "outcomes", "contrasts", "arms", "flow", "risk_of_bias")
#: Top-level config keys no analysis reads (left out of the slices so editing them reruns no analysis).
NOT_READ_BY_ANALYSES = ("data", "corpus", "analyses", "networks", "interventions", "outcomes", "prisma")


class SheetChangedError(Exception):
    """A sheet changed on disk while ``ingest`` was reading it."""


def sheet_paths(config: dict) -> dict[str, str]:
    """The sheets named in the config (``contrasts`` only when given)."""
    data = config["data"]
    paths = {"studies": data["studies"], "outcomes": data["outcomes"]}
    for optional in ("contrasts", "risk_of_bias", "screening"):
        if data.get(optional):
            paths[optional] = data[optional]
    return paths


PACKAGE_DIR = Path(__file__).resolve().parent


PRESENTATION = ("figures", "report")  # subpackages that only present results


def package_files(part: str = "compute") -> list[str]:
    """Source files of the package, as rule inputs so that a code change reruns the rules using it.

    ``part`` is ``"compute"`` (everything but the presentation subpackages), ``"figures"`` or ``"report"``.
    """
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("*.j2"))
    rel = [(f, f.relative_to(PACKAGE_DIR).parts) for f in files]
    if part == "compute":
        return [str(f) for f, parts in rel if parts[0] not in PRESENTATION]
    return [str(f) for f, parts in rel if parts[0] == part]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- evidence


def _hashes(paths: dict[str, str]) -> dict[str, str]:
    return {name: sha256_bytes(Path(p).read_bytes()) for name, p in paths.items() if Path(p).is_file()}


def config_sha256(config: dict) -> str:
    """SHA-256 of the configuration as loaded (files merged, --config overrides applied, defaults filled),
    without ``corpus`` (the corpus re-analysis reads no evidence: changing its shards reruns no ingest)."""
    relevant = {k: v for k, v in config.items() if k != "corpus"}
    return sha256_bytes(json.dumps(relevant, sort_keys=True, default=str).encode("utf-8"))


def evidence_out_of_date(evidence_path: str | Path, config: dict) -> list[str]:
    """The sheets (and ``config``) whose content differs from what ``evidence_path`` was built from.

    Snakemake decides on modification times, and it sets the time of a job's outputs when the job ends:
    a sheet saved while ingest was running looks older than the evidence built before the edit. Called
    at parse time, this compares content instead (the SHA-256 recorded in evidence.json); the Snakefile
    then marks the evidence out of date (:func:`mark_out_of_date`) so that ingest reruns.
    """
    path = Path(evidence_path)
    if not path.is_file():
        return []
    try:
        ev = evidence_head(path)
        recorded = {s["path"]: s["sha256"] for s in ev["sheets"]}
        recorded_config = ev.get("config_sha256")
    except (ValueError, KeyError, TypeError):
        return [str(path)]
    current = _hashes(sheet_paths(config))
    changed = [p for name, p in sheet_paths(config).items() if recorded.get(p) != current.get(name)]
    if recorded_config != config_sha256(config):
        changed.append("the configuration")
    return changed


def mark_out_of_date(path: str | Path) -> None:
    """Set ``path``'s modification time to the epoch, so that Snakemake reruns the job writing it."""
    os.utime(path, (0, 0))


def build_evidence(config: dict) -> dict:
    """Validate and harmonise the sheets once; return the evidence (typed rows, arms, flow, hashes).

    Raises
    ------
    tpsynth.validate.SheetValidationError
        When any sheet is invalid (every problem, as FILE:LINE: column messages).
    SheetChangedError
        When a sheet's bytes changed while it was being read (an edit during the run): the hashes
        recorded are always those of the bytes the rows came from.
    """
    from .harmonise import harmonise

    paths = sheet_paths(config)
    before = _hashes(paths)
    sheets = load_sheets(config)
    after = _hashes(paths)
    changed = sorted(paths[n] for n in paths if before.get(n) != after.get(n))
    if changed:
        raise SheetChangedError(f"{', '.join(changed)}: changed while being read; run again")
    arms, flow = harmonise(sheets)
    return {
        "format": EVIDENCE_FORMAT,
        "sheets": [{"name": name, "path": paths[name], "sha256": before[name]} for name in paths],
        "config_sha256": config_sha256(config),
        "studies": sheets.studies,
        "outcomes": sheets.outcomes,
        "contrasts": sheets.contrasts,
        "extra_study_columns": sheets.extra_study_columns,
        "arms": arms,
        "flow": flow,
        "risk_of_bias": sheets.risk_of_bias,  # checked rows (with domains and the overall judgement)
        "prisma": dataclasses.asdict(sheets.prisma) if sheets.prisma is not None else None,  # checked counts
    }


#: Bytes of evidence.json read by :func:`evidence_head` before it falls back to the whole file.
HEAD_BYTES = 1 << 20


def evidence_head(path: str | Path) -> dict:
    """The :data:`HEAD` entries of evidence.json (format, config_sha256, sheets), read from the file's first
    bytes: the Snakefile calls this at parse time, which must not decode the whole evidence (hundreds of MB
    at 100,000 studies). A file whose first entries are not these (written otherwise) is read whole, with
    its tables only scanned."""
    with open(path, "rb") as fh:
        start = fh.read(HEAD_BYTES)
    text = start.decode("utf-8", errors="ignore")  # a character cut at the end lies past the head
    decoder = json.JSONDecoder()
    head: dict = {}
    i = _SPACE.match(text, 0).end()
    if text.startswith("{", i):
        i += 1
        try:
            while set(HEAD) - set(head):
                i = _SPACE.match(text, i).end()
                key, i = decoder.raw_decode(text, i)
                i = _SPACE.match(text, i).end()
                if key not in HEAD or not text.startswith(":", i):
                    break
                head[key], i = decoder.raw_decode(text, _SPACE.match(text, i + 1).end())
                i = _SPACE.match(text, i).end()
                if not text.startswith(",", i):
                    break
                i += 1
        except json.JSONDecodeError:
            pass
    if not set(HEAD) - set(head):
        return head
    full = _load_entries(Path(path).read_text(encoding="utf-8"), set(TABLES))
    return {k: full[k] for k in HEAD if k in full} if isinstance(full, dict) else full


def read_evidence(
    path: str | Path, data: bytes | None = None, tables: tuple[str, ...] | None = None, by_columns: tuple[str, ...] = ()
) -> dict:
    """evidence.json or a slice as written by :func:`run_ingest` (checks the format tag), its tables as
    lists of row dicts (keys in sorted order, as JSON with sorted keys reads back). ``data``: the file's
    bytes, when already read. ``tables``: the row tables wanted (default all); the others are left out,
    which saves the memory of their rows (at 100,000 studies each table has up to 2,000,000): the file is
    then decoded one top-level entry at a time, so a table left out is never held with the others.
    ``by_columns``: tables given as a :class:`tpsynth.columns.Table` instead, straight from the stored
    columns (no dict per row)."""
    raw = Path(path).read_bytes() if data is None else data
    ev = json.loads(raw) if tables is None else _load_entries(raw.decode("utf-8"), set(TABLES) - set(tables))
    if not isinstance(ev, dict) or ev.get("format") != EVIDENCE_FORMAT:
        found = ev.get("format") if isinstance(ev, dict) else None
        raise ValueError(f"{path}: not a {EVIDENCE_FORMAT} file (found {found!r}); rerun ingest")
    for key in TABLES:
        if tables is not None and key not in tables:
            ev.pop(key, None)
        elif key in by_columns and key in ev:
            ev[key] = _table(ev[key])
        elif isinstance(ev.get(key), dict):
            ev[key] = _table_rows(ev[key])
    return ev


def _table(stored: dict | list) -> Table:
    """A table as written by :func:`_table_chunks` (or as a list of rows), as a Table; equal texts of a
    column share one string, as in :func:`_table_rows`. Rows that differ in keys: every key of any row,
    None where a row lacks it."""
    if isinstance(stored, dict) and "columns" in stored:
        return Table({name: _shared_strings(values) for name, values in stored["columns"].items()}, stored["length"])
    rows = stored["rows"] if isinstance(stored, dict) else stored
    return Table.from_rows(rows, list(dict.fromkeys(k for r in rows for k in r)))


_SPACE = re.compile(r"[ \t\n\r]*")


def _load_entries(text: str, skip: set[str]):
    """``json.loads(text)`` of a JSON object, without the values of the keys in ``skip``: each top-level
    value is decoded on its own, and a skipped one is only scanned (an object entry by entry, so at most
    one of its leaves, e.g. one column of a table, is ever built). Not an object: decoded whole."""
    decoder = json.JSONDecoder()
    i = _SPACE.match(text, 0).end()
    if not text.startswith("{", i):
        return json.loads(text)
    out: dict = {}
    end = _object(decoder, text, i, skip, out)
    if text[end:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, end)
    return out


def _object(decoder, text: str, i: int, skip: set[str] | None, out: dict | None) -> int:
    """Scan the JSON object at ``text[i]``; put each value whose key is not in ``skip`` into ``out`` (None:
    keep nothing, every value only scanned). Returns the index after the object."""
    i = _SPACE.match(text, i + 1).end()
    if text.startswith("}", i):
        return i + 1
    while True:
        key, i = decoder.raw_decode(text, i)
        if not isinstance(key, str):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        i = _SPACE.match(text, i).end()
        if not text.startswith(":", i):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
        i = _SPACE.match(text, i + 1).end()
        if out is not None and key not in skip:
            out[key], i = decoder.raw_decode(text, i)
        elif text.startswith("{", i):
            i = _object(decoder, text, i, None, None)
        else:
            i = decoder.raw_decode(text, i)[1]
        i = _SPACE.match(text, i).end()
        if text.startswith(",", i):
            i = _SPACE.match(text, i + 1).end()
        elif text.startswith("}", i):
            return i + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)


def _table_rows(table: dict) -> list[dict]:
    """The rows of a table written by :func:`_table_chunks`; equal texts of a column share one string
    (``sys.intern``: codes and ids repeat down a column, and JSON gives every cell its own object)."""
    if "rows" in table:
        return table["rows"]
    names = list(table["columns"])
    if not names:
        return [{} for _ in range(table["length"])]
    columns = [_shared_strings(table["columns"][name]) for name in names]
    table.clear()
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _shared_strings(values: list) -> list:
    try:
        return list(map(sys.intern, values))
    except TypeError:  # not only strings
        return [sys.intern(v) if v.__class__ is str else v for v in values]


def sheets_from_evidence(ev: dict, outcomes: bool = True) -> Sheets:
    """The validated :class:`~tpsynth.validate.Sheets` carried by evidence.json or a slice (``outcomes``
    False: without the outcome rows, for a reader that does not use them)."""
    return Sheets(
        studies=ev["studies"], outcomes=ev.get("outcomes", []) if outcomes else [], contrasts=ev["contrasts"],
        paths={s["name"]: s["path"] for s in ev.get("sheets") or []},
        extra_study_columns=list(ev.get("extra_study_columns") or []),
        risk_of_bias=list(ev.get("risk_of_bias") or []),
    )  # fmt: skip


def evidence_slice(config: dict, evidence: dict, analysis_id: str) -> dict:
    """Everything analysis ``analysis_id`` reads: its settings, the config it uses (its outcome, its
    intervention codes, the defaults, certainty and target settings), the harmonised arms (with their line
    numbers) and contrasts of its outcome, and the studies with rows of that outcome.

    The outcome rows themselves are not included: an analysis reads the arms harmonised from them
    (:func:`tpsynth.analysis.run_analysis` with ``arms``), and a row left out at ingest is in the evidence's
    data flow, which ``collect`` reads. At 100,000 studies the rows would double the slice. Editing a row
    of another outcome, a row's text that does not reach its arm (e.g. ``notes``), or a config key no
    analysis reads, leaves the slice unchanged.
    """
    a = analysis_settings(config, analysis_id)
    outcome = a["outcome"]
    cons = [r for r in evidence["contrasts"] if r["outcome"] == outcome]
    arms = _of_outcome(evidence["arms"], outcome)
    rows = evidence["outcomes"]
    if isinstance(rows, Table):
        ids = set(map(rows["study_id"].__getitem__, _rows_of(rows, outcome))) if rows else set()
    else:
        ids = {r["study_id"] for r in rows if r["outcome"] == outcome}
    ids |= {r["study_id"] for r in cons}
    cfg = {k: v for k, v in config.items() if k not in NOT_READ_BY_ANALYSES}
    cfg["analyses"] = {analysis_id: config["analyses"][analysis_id]}
    cfg["outcomes"] = {outcome: config["outcomes"][outcome]}
    cfg["interventions"] = {c: config["interventions"][c] for c in sorted(set(a["intervention"] + a["comparator"]))}
    return {
        "format": EVIDENCE_FORMAT,
        "analysis_id": analysis_id,
        "settings": a,
        "config": cfg,
        "studies": [s for s in evidence["studies"] if s["study_id"] in ids],
        "contrasts": cons,
        "extra_study_columns": evidence["extra_study_columns"],
        "arms": arms,
        "risk_of_bias": [r for r in evidence.get("risk_of_bias") or [] if r.get("study_id") in ids],
    }


def _of_outcome(table, outcome: str):
    """The rows of ``table`` (a :class:`~tpsynth.columns.Table` or a list of row dicts) of ``outcome``."""
    if isinstance(table, Table):
        return table.take(_rows_of(table, outcome))
    return [r for r in table if r["outcome"] == outcome]


def _rows_of(table: Table, outcome: str) -> list[int]:
    """The indices of the rows of ``table`` whose ``outcome`` is ``outcome``."""
    import numpy as np

    if not table:
        return []
    return np.flatnonzero(np.asarray(table["outcome"], dtype=object) == outcome).tolist()


def _dumps(obj) -> str:
    # compact: only json.dumps (one shot, no indentation) uses the C encoder, ~10x faster than json.dump;
    # sorted keys keep the bytes deterministic
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False)


def _column_json(values: list) -> str:
    """``_dumps(values)`` of one column, each distinct value encoded once (columns repeat their codes, ids and
    rounded numbers). Values are told apart by type too (``1``, ``1.0`` and ``True`` are equal as keys but
    encoded differently); a column holding unhashable values, or a float zero (``0.0 == -0.0``), is encoded
    whole."""
    if constant_text(values):
        return "[" + ",".join([_dumps(values[0])] * len(values)) + "]"  # one value all down (often None)
    if values and values[0].__class__ is int and values[-1].__class__ is int and set(map(type, values)) == {int}:
        return _dumps(values)  # integers only (line numbers, sample sizes): the encoder is as fast
    try:
        text = dict.fromkeys(values)
    except TypeError:
        return _dumps(values)
    keys = values
    if any(isinstance(key, (int, float)) for key in text):  # numbers: 1, 1.0 and True are one key
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if not (len(kinds) == 1 and kinds <= {float, int, bool}):
            keys = list(zip(map(type, values), values, strict=True))
            text = dict.fromkeys(keys)
        if 0.0 in values and float in kinds:
            return _dumps(values)  # 0.0 and -0.0 are one key but encoded differently
    if len(text) * 4 > len(values):
        return _dumps(values)  # mostly distinct values (line numbers): one call encodes them faster
    if keys is values and all(key.__class__ is str for key in text if key is not None):
        text = dict(zip(text, map(_encode_text, text), strict=True))  # text (and None): at C speed
    else:
        for key in text:
            text[key] = _dumps(key if keys is values else key[1])
    return "[" + ",".join(map(text.__getitem__, keys)) + "]"


def _encode_text(value: str | None) -> str:
    """``_dumps(value)`` of a str or None."""
    return "null" if value is None else encode_basestring(value)


def _extended_json(values, shared: dict | None) -> str | None:
    """``_column_json(values)`` from the text of an already encoded shared column that ``values`` begins
    with (the same cells, then more), or None when there is none."""
    for _, text, base in (shared or {}).values():
        n = len(base)
        if text is None or not 0 < n <= len(values) or values[0] is not base[0] or values[n - 1] is not base[-1]:
            continue
        if values[:n] == base:
            rest = _column_json(values[n:])
            return text if rest == "[]" else text[:-1] + "," + rest[1:]
    return None


def _table_chunks(rows, shared: dict | None = None):
    """JSON text of a row table (a list of row dicts or a :class:`~tpsynth.columns.Table`), by columns, in
    pieces of one column each (see :data:`TABLES`). ``shared``: the id of a column list held by several
    tables -> [tables left to write it, its text once encoded, the list] (the arms share the outcome rows'
    columns; the data flow's columns are those columns and then the contrast rows')."""
    if isinstance(rows, Table):
        names = sorted(rows.columns) if rows else []  # no rows: as an empty list of rows
        yield '{"columns":{'
        for i, name in enumerate(names):
            values = rows[name]
            entry = (shared or {}).get(id(values))
            if entry is None:
                text = _extended_json(values, shared) or _column_json(values)
            else:
                entry[0] -= 1
                text = entry[1] = entry[1] or _column_json(values)
                if not entry[0]:
                    del shared[id(values)]
            yield ("," if i else "") + _dumps(name) + ":" + text
        yield '},"length":' + str(len(rows)) + "}"
        return
    names = sorted(rows[0]) if rows else []
    keys = set(names)
    if not all(r.keys() == keys for r in rows):
        yield '{"rows":' + _dumps(rows) + "}"
        return
    yield '{"columns":{'
    for i, name in enumerate(names):
        yield ("," if i else "") + _dumps(name) + ":" + _dumps(list(map(itemgetter(name), rows)))
    yield '},"length":' + str(len(rows)) + "}"


#: Small keys written first in evidence.json and the slices, in this order (then the others, sorted): the
#: parse-time check reads them from the file's first bytes (:func:`evidence_head`).
HEAD = ("format", "config_sha256", "sheets")


def _json_chunks(obj: dict):
    """The text of evidence.json or a slice (a dict: the :data:`HEAD` keys first, then the others sorted; its
    :data:`TABLES` by columns) in pieces, so that a large file is written without its whole text in memory."""
    yield "{"
    keys = [k for k in HEAD if k in obj] + sorted(k for k in obj if k not in HEAD)
    lists = Counter(id(v) for k in TABLES if isinstance(obj.get(k), Table) and obj[k] for v in obj[k].columns.values())
    columns = {id(v): v for k in TABLES if isinstance(obj.get(k), Table) for v in obj[k].columns.values()}
    shared = {i: [count, None, columns[i]] for i, count in lists.items() if count > 1}
    for i, key in enumerate(keys):
        yield ("," if i else "") + _dumps(key) + ":"
        if key in TABLES and isinstance(obj[key], list | Table):
            yield from _table_chunks(obj[key], shared)
        else:
            yield _dumps(obj[key])
    yield "}\n"


def _json_text(obj: dict) -> str:
    return "".join(_json_chunks(obj))


def _chunks_sha256(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode("utf-8"))
    return h.hexdigest()


def write_chunks(path: str | Path, chunks) -> None:
    """Write text ``chunks`` to ``path`` atomically (UTF-8, as given: no newline translation)."""
    with replace_atomically(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for c in chunks:
            fh.write(c)


def write_if_changed(path: str | Path, chunks) -> bool:
    """Write text ``chunks`` to ``path`` (atomically) unless the file already holds exactly that text;
    True if written. The new text is written to a temporary file and compared there (never held whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # of a killed writer (as replace_atomically)
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for c in chunks:
                fh.write(c)
        if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            tmp.unlink()
            return False
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def slice_path(slice_dir: str | Path, analysis_id: str) -> Path:
    return Path(slice_dir) / f"{analysis_id}.json"


def write_slices(config: dict, evidence: dict, slice_dir: str | Path, only: list[str] | None = None) -> list[str]:
    """Write the evidence slice of every configured analysis (or of ``only``); rewrite only changed ones.

    Returns the ids of the slices written.
    """
    written = []
    for aid in sorted(config["analyses"]) if only is None else only:
        if write_if_changed(slice_path(slice_dir, aid), _json_chunks(evidence_slice(config, evidence, aid))):
            written.append(aid)
    return written


def run_ingest(
    config: dict, evidence_path: str, arms_path: str, slice_dir: str, network_slice_dir: str | None = None
) -> tuple[int, int, list[str]]:
    """Validate and harmonise once; write evidence.json, arms.csv and the changed evidence slices
    (of the analyses into ``slice_dir``, of the networks into ``network_slice_dir``).

    Returns (number of arms, number of raw rows, ids of the analyses and networks whose slice changed).
    """
    from .harmonise import ARM_COLUMNS
    from .tables import write_csv

    ev = build_evidence(config)
    changed = write_slices(config, ev, slice_dir)
    if network_slice_dir:
        changed += [f"network {n}" for n in write_network_slices(config, ev, network_slice_dir)]
    write_csv(arms_path, ARM_COLUMNS, ev["arms"])
    write_chunks(evidence_path, _json_chunks(ev))  # by columns, never the whole text in memory
    return len(ev["arms"]), len(ev["flow"]), changed


def run_one_analysis(slice_file: str, out_path: str):
    """Run one analysis on its evidence slice and write its JSON (with the slice's SHA-256).

    Returns the :class:`tpsynth.results.AnalysisResult` written.
    """
    from .analysis import run_analysis

    data = Path(slice_file).read_bytes()
    sl = read_evidence(slice_file, data, by_columns=("arms",))
    res = run_analysis(sl["settings"], sheets_from_evidence(sl), sl["config"], arms=sl["arms"])
    res = res.with_evidence(sha256_bytes(data))
    res.to_json(out_path)
    return res


def check_results_match_evidence(config: dict, evidence: dict, analyses: list, where: str) -> None:
    """Raise ValueError unless every analysis (:class:`tpsynth.results.AnalysisResult`) was computed from
    the slice ``evidence`` gives it now.

    The report and the result tables call this so that they never pair the hashes of one version
    of the sheets with estimates computed from another.
    """
    stale = []
    for res in analyses:
        aid = res.analysis_id
        expected = _chunks_sha256(_json_chunks(evidence_slice(config, evidence, aid)))
        if res.evidence_sha256 != expected:
            stale.append(aid)
    if stale:
        raise ValueError(
            f"{where}: results of {', '.join(sorted(stale))} were not computed from the current evidence "
            "(the sheets or config changed during the run); run the pipeline again"
        )


def run_collect(analysis_jsons: list[str], evidence_path: str, outputs: dict[str, str],
                network_jsons: list[str] = ()) -> None:
    """Assemble the result tables and the final data flow from the per-analysis (and per-network) JSON files."""
    from . import tables

    results = [tables.read_json(p) for p in analysis_jsons]  # the JSON layout, which the tables flatten
    flow = read_evidence(evidence_path, tables=("flow",))["flow"]
    t = tables.result_tables(results)
    tables.write_csv(outputs["pooled"], tables.POOLED_COLUMNS, t["pooled"])
    tables.write_csv(outputs["study_effects"], tables.STUDY_COLUMNS, t["study_effects"])
    tables.write_csv(outputs["subgroups"], tables.SUBGROUP_COLUMNS, t["subgroups"])
    tables.write_csv(outputs["sensitivity"], tables.SENSITIVITY_COLUMNS, t["sensitivity"])
    tables.write_csv(outputs["small_study"], tables.SMALL_STUDY_COLUMNS, t["small_study"])
    tables.write_csv(outputs["bayes"], tables.BAYES_COLUMNS, t["bayes"])
    tables.write_csv(outputs["bayes_sensitivity"], tables.BAYES_SENSITIVITY_COLUMNS, t["bayes_sensitivity"])
    tables.write_csv(outputs["bayes_studies"], tables.BAYES_STUDY_COLUMNS, t["bayes_studies"])
    tables.write_csv(outputs["meta_regression"], tables.META_REGRESSION_COLUMNS, t["meta_regression"])
    tables.write_csv(outputs["meta_regression_fit"], tables.META_REGRESSION_FIT_COLUMNS, t["meta_regression_fit"])
    tables.write_csv(outputs["effects"], tables.EFFECT_COLUMNS, t["effects"])
    networks = [tables.read_json(p) for p in network_jsons]
    tables.write_csv(outputs["dataflow"], tables.FLOW_COLUMNS, tables.dataflow_rows(flow, results + networks, copy=False))


def network_slice(config: dict, evidence: dict, network_id: str) -> dict:
    """Everything network ``network_id`` reads: its settings, the config (without the pairwise analyses,
    the other networks, the data paths and the corpus) and every row, arm and study (its nodes may pool
    any intervention code). Like :func:`evidence_slice`, rewritten only when its content changes."""
    from .network_analysis import network_settings

    cfg = {k: v for k, v in config.items() if k not in ("data", "corpus", "analyses", "networks", "prisma")}
    cfg["networks"] = {network_id: config["networks"][network_id]}
    return {
        "format": EVIDENCE_FORMAT,
        "network_id": network_id,
        "settings": network_settings(config, network_id),
        "config": cfg,
        **{k: evidence[k] for k in ("studies", "outcomes", "contrasts", "extra_study_columns", "arms")},
        "risk_of_bias": evidence.get("risk_of_bias") or [],
    }


def write_network_slices(config: dict, evidence: dict, slice_dir: str | Path, only: list[str] | None = None) -> list[str]:
    """Write the slice of every configured network (or of ``only``); rewrite only changed ones."""
    written = []
    for nid in sorted(config.get("networks") or {}) if only is None else only:
        if write_if_changed(slice_path(slice_dir, nid), _json_chunks(network_slice(config, evidence, nid))):
            written.append(nid)
    return written


def run_one_network(slice_file: str, out_path: str) -> dict:
    """Run one configured network on its evidence slice and write its JSON."""
    from .network_analysis import run_network

    sl = read_evidence(slice_file)
    res = run_network(sl["settings"], sheets_from_evidence(sl), sl["config"], arms=sl["arms"])
    write_json(out_path, res)
    return res


def run_network_tables(network_jsons: list[str], outputs: dict[str, str]) -> None:
    """network_estimates.csv, network_fit.csv and network_ranks.csv from the per-network JSON files."""
    from . import network_analysis as na
    from .tables import write_csv

    t = na.network_tables([read_json(p) for p in network_jsons])
    write_csv(outputs["estimates"], na.ESTIMATE_COLUMNS, t["estimates"])
    write_csv(outputs["fit"], na.FIT_COLUMNS, t["fit"])
    write_csv(outputs["ranks"], na.RANK_COLUMNS, t["ranks"])


# ---------------------------------------------------------------------------------------------- job logs


def _disk_full(err: BaseException) -> OSError | None:
    """The "No space left on device" error in ``err``'s chain of causes and contexts, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def job_log(path: str):
    """Send stderr to the job's log; on failure put the error on the console too, then exit 1.

    Without this a job that fails while writing (a full disk) lost its message: the log is on the same
    disk, and Python's final flush of the redirected stderr failed with exit status 120 and an empty log.
    Here the one-line error (e.g. ``OSError: [Errno 28] No space left on device: 'results/...'``) always
    reaches the console Snakemake shows, the traceback goes to the log when it can be written.
    """
    console = sys.stderr
    t0 = time.perf_counter()
    try:
        log = open(path, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as err:
        print(f"cannot write the log {path}: {err}", file=console)
        raise SystemExit(1) from None
    sys.stderr = log
    failed = None
    try:
        yield
    except SystemExit as err:
        if err.code not in (0, None):
            failed = str(err.code) if not isinstance(err.code, int) else f"exit status {err.code}"
    except BaseException as err:  # noqa: BLE001 - every failure must reach the user
        user_error = isinstance(err, SheetChangedError) or hasattr(err, "problems")
        failed = str(err) if user_error else "".join(traceback.format_exception_only(err)).strip()
        full = _disk_full(err)
        if full is not None:  # e.g. matplotlib's PDF writer fails in its clean-up after the ENOSPC
            failed = "".join(traceback.format_exception_only(full)).strip()
            failed += f" (the disk holding {os.getcwd()} is full: free some space and run again)"
        try:
            traceback.print_exc(file=log)
        except OSError:
            pass
    finally:
        if failed is None:  # benchmarks/pipeline.py sums these per rule
            cpu = time.process_time()  # the whole process: interpreter start and imports included
            print(f"job: {cpu:.2f} s CPU, {time.perf_counter() - t0:.2f} s wall", file=log)
        sys.stderr = console
        try:
            log.close()
        except OSError as err:
            failed = failed or f"cannot write the log {path}: {err}"
    if failed:
        print(f"Error: {failed}", file=console)
        console.flush()
        os._exit(1)  # nothing left to flush into a full disk
