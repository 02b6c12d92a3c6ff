"""Import Cochrane "data and analyses" rows (Pairwise70 layout) as extraction sheets plus a config.

``python -m tpsynth import-cochrane FILE [--review ID] [--analysis G.N] --out DIR`` writes

* ``DIR/data/raw/studies.csv``: one row per study entry of the review (see *study ids* below);
* ``DIR/data/raw/outcomes.csv``: two rows (arms ``experimental`` and ``control``) per Cochrane row
  with arm-level data: mean/SD/N (continuous analyses) or cases/N (dichotomous analyses);
* ``DIR/data/raw/contrasts.csv``: one row per generic inverse-variance row (``giv_mean``, ``giv_se``);
* ``DIR/config/config.yaml``: interventions ``experimental`` / ``control``, one outcome and one analysis
  per Cochrane analysis (measure guessed: ``SMD`` for continuous, ``RR`` for dichotomous data; see
  :func:`_analysis_kind`), REML with HKSJ never narrower than Wald (``hksj_adhoc``, the default).

Conventions (the Cochrane rows carry no time, direction, design or body region):

* ``timepoint_weeks`` is 0 in every row and every analysis's window is ``[0, 0]``;
* direction unknown: every outcome has ``higher_is_better: null`` and every row a blank
  ``higher_is_better`` (= the outcome's), so nothing is sign-flipped (effects keep Cochrane's direction:
  experimental minus / over control) and figures and report say "higher with experimental" instead of
  naming a favoured side, until the user sets the outcome's direction; ``value_type`` ``final``;
  ``instrument`` ``as_reported``;
* ``design`` ``parallel``, ``randomised`` ``true``, ``region`` ``not_reported``; ``rob_overall`` from
  the review's RoB 2 overall judgement where it gives one (the worst over the study's rows), else
  ``not_assessed``;
* study ids: slug of the study label (plus the year when the label lacks it), de-duplicated with
  ``_2``, ``_3``... when two labels give the same slug. A label that appears more than once in the
  same analysis (e.g. in two subgroups, or two comparisons of a multi-arm trial) is, as in Cochrane's
  own forest plot, a separate entry: its n-th appearance gets the id ``SLUG_n`` (the same id in every
  analysis where the label appears at least n times);
* the Cochrane subgroup goes into the ``cochrane_subgroup`` column of studies.csv for studies whose
  subgroup is the same in every row (and the analysis gets ``subgroup: cochrane_subgroup`` when all its
  studies have one); otherwise the subgroups are listed in the study's notes. Every outcome row names
  its analysis and subgroup in its notes.

Rows that cannot be used are kept with ``unusable_reason`` (never dropped, never a crash): N missing
or 0, N or events not whole numbers, events > N or < 0, mean or SD missing (the export writes 0 for a
missing SD), generic inverse-variance rows in analyses with arm-level data (their measure is not
recorded), and rows with no data at all.
"""

from __future__ import annotations

import csv
import html
import math
import re
import unicodedata
from pathlib import Path

import yaml

#: Columns of a Cochrane "data and analyses" file in the Pairwise70 layout (../shared/data/pairwise70/README.md).
PAIRWISE70_COLUMNS = [
    "review", "review_doi", "analysis_group", "analysis_number", "analysis_name", "subgroup", "subgroup_number",
    "study", "study_year", "giv_mean", "giv_se", "exp_mean", "exp_sd", "exp_cases", "exp_n", "ctl_mean", "ctl_sd",
    "ctl_cases", "ctl_n", "o_e", "variance", "weight", "cochrane_effect", "cochrane_ci_low", "cochrane_ci_high",
    "rob_overall",
]  # fmt: skip
OUTCOME_COLUMNS = [
    "study_id", "arm", "intervention", "outcome", "instrument", "higher_is_better", "timepoint_weeks",
    "timepoint_label", "value_type", "n", "mean", "sd", "events", "unusable_reason", "source_row", "source", "notes",
]  # fmt: skip
CONTRAST_COLUMNS = [
    "study_id", "intervention", "comparator", "outcome", "instrument", "timepoint_weeks", "timepoint_label",
    "measure", "estimate", "se", "n_intervention", "n_comparator", "unusable_reason", "source_row", "source", "notes",
]  # fmt: skip
STUDY_COLUMNS = [
    "study_id", "author", "year", "design", "randomised", "region", "rob_overall", "source", "citation", "notes",
]  # fmt: skip
ROB = {"low risk": "low", "some concerns": "some_concerns", "high risk": "high"}
ROB_ORDER = {"not_assessed": -1, "low": 0, "some_concerns": 1, "high": 2}
NUM = ["giv_mean", "giv_se", "exp_mean", "exp_sd", "exp_cases", "exp_n", "ctl_mean", "ctl_sd", "ctl_cases", "ctl_n",
       "cochrane_effect"]  # fmt: skip


_NON_DECOMPOSING = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ß": "ss", "ł": "l", "Ł": "L",
                                  "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "œ": "oe", "Œ": "Oe", "ı": "i"})


class CochraneImportError(Exception):
    """The input cannot be imported (file, review or analysis not found)."""


def slugify(text: str) -> str:
    """ASCII slug of a study label: lower case, runs of other characters as ``_``."""
    text = text.translate(_NON_DECOMPOSING)
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_).strip("_")
    return slug or "study"


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _whole(v: float | None) -> bool:
    return v is not None and float(v).is_integer()


def _year(text) -> int | None:
    v = _num(text)
    if v is not None and v.is_integer() and 1900 <= v <= 2100:
        return int(v)
    return None


def _read(path: str | Path):
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype={c: "float64" for c in NUM} | {"study_year": "str", "subgroup": "str"})
    except FileNotFoundError:
        raise CochraneImportError(f"{path}: file not found") from None
    except ValueError as err:
        raise CochraneImportError(f"{path}: cannot read as a Cochrane data-and-analyses CSV: {err}") from None
    need = {"review", "analysis_group", "analysis_number", "analysis_name", "study", "exp_n", "ctl_n"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise CochraneImportError(f"{path}: missing column(s) {', '.join(missing)} (expected the Pairwise70 layout)")
    for c in NUM + ["subgroup", "study_year", "rob_overall", "review_doi", "o_e", "variance"]:
        if c not in df.columns:
            df[c] = None
    return df


def _analysis_kind(rows: list[dict]) -> str:
    """``continuous``, ``dichotomous`` or ``giv`` from what the rows hold.

    Continuous when any row has a non-zero SD, or (no SD at all) a non-zero mean; dichotomous when any
    row has cases > 0 or cases recorded in both arms; otherwise generic inverse variance when any row
    has ``giv_se``; otherwise dichotomous (nothing usable: every row is reported unusable).
    """

    def pos(r, c):
        v = r.get(c)
        return v is not None and v != 0

    if any(pos(r, "exp_sd") or pos(r, "ctl_sd") for r in rows) or any(pos(r, "exp_mean") or pos(r, "ctl_mean") for r in rows):
        return "continuous"
    if any(pos(r, "exp_cases") or pos(r, "ctl_cases") for r in rows):
        return "dichotomous"
    if any(pos(r, "giv_se") for r in rows):
        return "giv"
    return "dichotomous"


def _giv_is_ratio(rows: list[dict]) -> bool:
    """Cochrane shows exp(GIV) for ratio measures: compare its printed effect with giv_mean."""
    votes = 0
    for r in rows:
        g, eff = r.get("giv_mean"), r.get("cochrane_effect")
        if g is None or eff is None or r.get("giv_se") in (None, 0):
            continue
        if eff > 0 and math.isclose(math.exp(g), eff, rel_tol=1e-3):
            votes += 1
        elif math.isclose(g, eff, rel_tol=1e-3, abs_tol=1e-6):
            votes -= 1
    return votes > 0


def _arm(prefix: str, r: dict, kind: str) -> tuple[dict, str | None]:
    """Statistics of one arm and why it cannot be used (or None)."""
    n = r.get(f"{prefix}_n")
    stats = {"n": None, "mean": None, "sd": None, "events": None}
    if n is None or n <= 0:
        return stats, f"N missing or 0 in the Cochrane row ({_fmt(n) or 'blank'})"
    if not _whole(n):
        return stats, f"N is not a whole number in the Cochrane row ({_fmt(n)})"
    stats["n"] = int(n)
    if kind == "continuous":
        mean, sd = r.get(f"{prefix}_mean"), r.get(f"{prefix}_sd")
        if mean is None:
            return stats, "mean missing in the Cochrane row"
        stats["mean"] = mean
        if sd is None or sd <= 0:
            return stats, f"SD missing in the Cochrane row ({_fmt(sd) or 'blank'})"
        stats["sd"] = sd
        return stats, None
    ev = r.get(f"{prefix}_cases")
    if ev is None:
        return stats, "events missing in the Cochrane row"
    if not _whole(ev) or ev < 0:
        return stats, f"events not a whole number >= 0 in the Cochrane row ({_fmt(ev)})"
    if ev > n:
        return stats, f"events exceed N in the Cochrane row ({_fmt(ev)} > {_fmt(n)})"
    stats["events"] = int(ev)
    return stats, None


def import_cochrane(file: str | Path, out: str | Path, review: str | None = None, analysis: str | None = None) -> str:
    """Write the sheets and config for one review (optionally one analysis ``"G.N"``); return a summary."""
    df = _read(file)
    reviews = sorted(df["review"].dropna().astype(str).unique())
    if review is None:
        if len(reviews) != 1:
            shown = ", ".join(reviews[:5]) + (", ..." if len(reviews) > 5 else "")
            raise CochraneImportError(f"{file}: {len(reviews)} reviews ({shown}); choose one with --review")
        review = reviews[0]
    if review not in reviews:
        raise CochraneImportError(f"{file}: review {review!r} not found")
    df = df[df["review"].astype(str) == review]
    if analysis is not None:
        m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", analysis)
        if not m:
            raise CochraneImportError(f"--analysis must be G.N, e.g. 1.2 (found {analysis!r})")
        g, n = int(m.group(1)), int(m.group(2))
        df = df[(df["analysis_group"] == g) & (df["analysis_number"] == n)]
        if df.empty:
            raise CochraneImportError(f"{file}: review {review} has no analysis {g}.{n}")
    df = df.reset_index(drop=False).rename(columns={"index": "_file_row"})
    records = df.to_dict("records")
    for r in records:
        for c in NUM:
            r[c] = _num(r.get(c))
        for c in ("subgroup", "study_year", "rob_overall", "review_doi", "analysis_name"):
            v = r.get(c)
            r[c] = None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
        r["study"] = str(r["study"]).strip()

    # analyses in (group, number) order, rows in file order
    by_analysis: dict[tuple[int, int], list[dict]] = {}
    for r in records:
        by_analysis.setdefault((int(r["analysis_group"]), int(r["analysis_number"])), []).append(r)
    keys = sorted(by_analysis)

    # study entries: (label, year, occurrence within the analysis)
    base_slug: dict[tuple[str, str | None], str] = {}
    used: set[str] = set()
    entries: dict[str, dict] = {}
    for key in keys:
        seen: dict[tuple[str, str | None], int] = {}
        for r in by_analysis[key]:
            lab = (r["study"], r["study_year"])
            seen[lab] = seen.get(lab, 0) + 1
            if lab not in base_slug:
                s = slugify(r["study"])
                y = _year(r["study_year"])
                if y is not None and str(y) not in r["study"]:
                    s = f"{s}_{y}"
                cand, i = s, 2
                while cand in used:
                    cand, i = f"{s}_{i}", i + 1
                used.add(cand)
                base_slug[lab] = cand
            occ = seen[lab]
            sid = base_slug[lab] if occ == 1 else f"{base_slug[lab]}_{occ}"
            if occ > 1 and sid not in entries:
                cand, i = sid, 2
                while cand in used and cand not in entries:
                    cand, i = f"{sid}_{i}", i + 1
                sid = cand
                used.add(sid)
            r["_sid"] = sid
            r["_occ"] = occ
            e = entries.setdefault(sid, {"label": r["study"], "year": r["study_year"], "occ": occ, "rows": []})
            e["rows"].append(r)

    source = f"Cochrane review {review}" + (f" (doi:{records[0]['review_doi']})" if records and records[0]["review_doi"] else "")
    outcomes_rows: list[dict] = []
    contrast_rows: list[dict] = []
    cfg_outcomes: dict[str, dict] = {}
    cfg_analyses: dict[str, dict] = {}
    n_unusable = 0
    for key in keys:
        rows = by_analysis[key]
        g, n = key
        code = f"a{g}_{n}"
        # names in the export may hold HTML entities ("Pain&nbsp;"): plain text
        name = " ".join(html.unescape(rows[0]["analysis_name"] or "").split()) or f"Analysis {g}.{n}"
        kind = _analysis_kind(rows)
        ratio = kind == "giv" and _giv_is_ratio(rows)
        measure = {"continuous": "SMD", "dichotomous": "RR"}.get(kind, "RR" if ratio else "MD")
        cfg_outcomes[code] = {"label": name, "type": "dichotomous" if kind == "dichotomous" else "continuous", "higher_is_better": None}
        a = {
            "title": f"Analysis {g}.{n}: {name}",
            "intervention": ["experimental"],
            "comparator": ["control"],
            "intervention_label": "experimental",
            "comparator_label": "control",
            "outcome": code,
            "timepoint_weeks": [0, 0],
            "measure": measure,
        }
        cfg_analyses[f"analysis_{g}_{n}"] = a
        for r in rows:
            where = f"Analysis {g}.{n}" + (f", subgroup {r['subgroup']}" if r["subgroup"] else "")
            notes = where + (f"; entry {r['_occ']} of {r['study']} in this analysis" if r["_occ"] > 1 else "")
            line = str(int(r["_file_row"]) + 2)  # physical line of the source CSV (header = 1)
            has_arm = any(r.get(c) not in (None, 0) for c in ("exp_mean", "exp_sd", "ctl_mean", "ctl_sd", "exp_cases", "ctl_cases"))
            giv_ok = r.get("giv_se") is not None and r["giv_se"] > 0 and r.get("giv_mean") is not None
            if kind == "giv" or (giv_ok and not has_arm):
                est, reason = r.get("giv_mean"), None
                if kind != "giv":
                    reason = f"generic inverse-variance row in an analysis of {kind} arm-level data; its measure is not recorded"
                elif not giv_ok:
                    reason = "generic inverse-variance estimate or SE missing in the Cochrane row"
                if reason is None and ratio:
                    est = math.exp(est)
                if reason:
                    n_unusable += 1
                contrast_rows.append({
                    "study_id": r["_sid"], "intervention": "experimental", "comparator": "control", "outcome": code,
                    "instrument": "as_reported", "timepoint_weeks": "0" if not reason else "",
                    "timepoint_label": "not reported (Cochrane analysis)", "measure": measure,
                    "estimate": _fmt(est) if not reason else "", "se": _fmt(r["giv_se"]) if not reason else "",
                    "n_intervention": _fmt(r["exp_n"]) if _whole(r["exp_n"]) and r["exp_n"] >= 1 else "",
                    "n_comparator": _fmt(r["ctl_n"]) if _whole(r["ctl_n"]) and r["ctl_n"] >= 1 else "",
                    "unusable_reason": reason or "", "source_row": line, "source": source,
                    "notes": notes + ("; ratio measure: estimate = exp(giv_mean), SE of the log ratio" if ratio and not reason else ""),
                })  # fmt: skip
                continue
            arm_kind = "continuous" if kind == "continuous" else "dichotomous"
            for prefix, arm in (("exp", "experimental"), ("ctl", "control")):
                stats, reason = _arm(prefix, r, arm_kind)
                if reason:
                    n_unusable += 1
                outcomes_rows.append({
                    "study_id": r["_sid"], "arm": arm, "intervention": arm, "outcome": code, "instrument": "as_reported",
                    "higher_is_better": "", "timepoint_weeks": "0",
                    "timepoint_label": "not reported (Cochrane analysis)", "value_type": "final",
                    "n": _fmt(stats["n"]), "mean": _fmt(stats["mean"]), "sd": _fmt(stats["sd"]),
                    "events": _fmt(stats["events"]), "unusable_reason": reason or "",
                    "source_row": line, "source": source, "notes": notes,
                })  # fmt: skip

    # studies, with the subgroup column where it is constant per study
    study_rows = []
    any_subgroup = any(r["subgroup"] for r in records)
    constant: dict[str, str | None] = {}
    for sid, e in entries.items():
        subs = {r["subgroup"] for r in e["rows"]}
        constant[sid] = next(iter(subs)) if len(subs) == 1 else None
        robs = [ROB.get((r["rob_overall"] or "").lower()) for r in e["rows"]]
        robs = [x for x in robs if x]
        rob = max(robs, key=ROB_ORDER.get) if robs else "not_assessed"
        notes = []
        if e["occ"] > 1:
            notes.append(f"entry {e['occ']} of {e['label']} within an analysis (a separate row in Cochrane's forest plot)")
        if any_subgroup and constant[sid] is None:
            per = sorted({f"Analysis {r['analysis_group']}.{r['analysis_number']}: {r['subgroup'] or '(none)'}" for r in e["rows"]})
            notes.append("Cochrane subgroups: " + "; ".join(per))
        if e["year"] is not None and _year(e["year"]) is None:
            notes.append(f"study year as printed: {e['year']}")
        if len(set(robs)) > 1:
            notes.append("RoB 2 overall judgements differ between results; the worst is shown")
        label = e["label"]
        y = _year(e["year"])
        author = re.sub(rf"\s*{y}[a-z]?$", "", label).strip() if y else label
        row = {
            "study_id": sid, "author": author or label, "year": str(y) if y else "", "design": "parallel",
            "randomised": "true", "region": "not_reported", "rob_overall": rob, "source": source,
            "citation": label, "notes": "; ".join(notes),
        }  # fmt: skip
        if any_subgroup:
            row["cochrane_subgroup"] = constant[sid] or ""
        study_rows.append(row)
    if any_subgroup:
        for (g, n), rows in by_analysis.items():
            if any(r["subgroup"] for r in rows) and all(constant[r["_sid"]] for r in rows):
                cfg_analyses[f"analysis_{g}_{n}"]["subgroup"] = "cochrane_subgroup"

    out = Path(out)
    raw = out / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (out / "config").mkdir(parents=True, exist_ok=True)
    study_cols = STUDY_COLUMNS + (["cochrane_subgroup"] if any_subgroup else [])
    _write(raw / "studies.csv", study_cols, study_rows)
    _write(raw / "outcomes.csv", OUTCOME_COLUMNS, outcomes_rows)
    if contrast_rows:
        _write(raw / "contrasts.csv", CONTRAST_COLUMNS, contrast_rows)
    config = {
        "data": {
            "studies": "data/raw/studies.csv",
            "outcomes": "data/raw/outcomes.csv",
            "contrasts": "data/raw/contrasts.csv" if contrast_rows else None,
        },
        "defaults": {"measure": "SMD", "method": "REML", "ci": "hksj_adhoc", "level": 0.95, "randomised_only": True},
        "interventions": {
            "experimental": {"label": "Experimental (as in the Cochrane review)", "class": "experimental"},
            "control": {"label": "Control (as in the Cochrane review)", "class": "control"},
        },
        "outcomes": cfg_outcomes,
        "analyses": cfg_analyses,
    }
    header = (
        f"# Imported from {Path(file).name}: {source}{f', analysis {analysis}' if analysis else ''}\n"
        "# by python -m tpsynth import-cochrane. Cochrane rows carry no time: every row has timepoint_weeks 0 and\n"
        "# every analysis the window [0, 0]. Measures are guessed (SMD for continuous, RR for dichotomous data;\n"
        "# generic inverse-variance analyses RR on the ratio scale or MD); check them against the review.\n"
        "# Cochrane rows carry no direction: every outcome has higher_is_better: null (unknown), so effects keep\n"
        "# Cochrane's direction (experimental minus / over control) and the report says 'higher with\n"
        "# experimental' instead of naming a favoured side. Set true or false per outcome once you know it.\n"
        "# Add new trials as rows of data/raw/*.csv with intervention experimental/control and the analysis's\n"
        "# outcome code, timepoint_weeks 0 (or widen the window). See config/README.md of tpsynth.\n"
    )
    text = header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=110)
    (out / "config" / "config.yaml").write_text(text, encoding="utf-8")
    return (
        f"{review}: {len(keys)} analyses, {len(study_rows)} studies, {len(outcomes_rows)} outcome rows, "
        f"{len(contrast_rows)} contrast rows ({n_unusable} with unusable_reason) written to {out}"
    )


def _write(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})
