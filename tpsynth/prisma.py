"""PRISMA 2020 flow diagram: counts from a screening log or from the config, checked box by box.

Page MJ, McKenzie JE, Bossuyt PM, et al. The PRISMA 2020 statement: an updated guideline for reporting
systematic reviews. BMJ 2021;372:n71 (flow diagram, Figure 1). The count fields are those of the
PRISMA2020 R package and Shiny app template (Haddaway NR, Page MJ, Pritchard CC, McGuinness LA.
PRISMA2020: An R package and Shiny app for producing PRISMA 2020-compliant flow diagrams. Campbell
Syst Rev 2022;18:e1230; ``inst/extdata/PRISMA.csv``).

Two ways in:

* ``screening.csv`` (``data.screening``): one row per record; the counts are derived from it
  (:func:`counts_from_log`).
* ``prisma:`` in the config: the counts typed in (:func:`counts_from_config`).

Either way :func:`check_counts` checks every box against the boxes it comes from and the included
studies against ``studies.csv``; a number that does not add up is an error naming the box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Count fields of the PRISMA2020 template (Haddaway et al. 2022), with the box each fills
BOXES = {
    "previous_studies": "Studies included in previous version of review",
    "previous_reports": "Reports of studies included in previous version of review",
    "database_results": "Records identified from databases",
    "register_results": "Records identified from registers",
    "website_results": "Records identified from websites",
    "organisation_results": "Records identified from organisations",
    "citations_results": "Records identified from citation searching",
    "duplicates": "Duplicate records removed",
    "excluded_automatic": "Records marked as ineligible by automation tools",
    "excluded_other": "Records removed for other reasons",
    "records_screened": "Records screened",
    "records_excluded": "Records excluded",
    "dbr_sought_reports": "Reports sought for retrieval (databases and registers)",
    "dbr_notretrieved_reports": "Reports not retrieved (databases and registers)",
    "dbr_assessed": "Reports assessed for eligibility (databases and registers)",
    "dbr_excluded": "Reports excluded (databases and registers)",
    "other_sought_reports": "Reports sought for retrieval (other methods)",
    "other_notretrieved_reports": "Reports not retrieved (other methods)",
    "other_assessed": "Reports assessed for eligibility (other methods)",
    "other_excluded": "Reports excluded (other methods)",
    "new_studies": "New studies included in review",
    "new_reports": "Reports of new included studies",
    "total_studies": "Total studies included in review",
    "total_reports": "Reports of total included studies",
}
REASON_FIELDS = ("dbr_excluded", "other_excluded")  # {reason: n}
DBR_SOURCES = {"database": "database_results", "register": "register_results"}
OTHER_SOURCES = {"website": "website_results", "organisation": "organisation_results",
                 "citation_search": "citations_results", "other": "citations_results"}  # fmt: skip
DBR_FIELDS = ("database_results", "register_results", "duplicates", "excluded_automatic", "excluded_other",
              "records_screened", "records_excluded", "dbr_sought_reports", "dbr_notretrieved_reports",
              "dbr_assessed", "dbr_excluded")  # fmt: skip
OTHER_FIELDS = ("website_results", "organisation_results", "citations_results", "other_sought_reports",
                "other_notretrieved_reports", "other_assessed", "other_excluded")  # fmt: skip


@dataclass
class Flow:
    """Counts of a PRISMA 2020 diagram (``None`` = not reported), with labels and a note."""

    counts: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)  # field -> display text replacing the template's box text
    note: str | None = None
    included_ids: list[str] | None = None  # study ids included (screening log only)

    def get(self, key):
        return self.counts.get(key)

    @property
    def has_databases(self) -> bool:
        return any(self.counts.get(f) is not None for f in DBR_FIELDS)

    @property
    def has_other(self) -> bool:
        return any(self.counts.get(f) is not None for f in OTHER_FIELDS)

    @property
    def has_previous(self) -> bool:
        return any(self.counts.get(f) is not None for f in ("previous_studies", "previous_reports"))


def counts_from_config(block: dict) -> Flow:
    """The ``prisma:`` config block as a :class:`Flow` (its ``labels`` and ``note`` keys included)."""
    counts = {k: block.get(k) for k in BOXES}
    for k in REASON_FIELDS:
        if counts[k] is not None:
            counts[k] = dict(counts[k])
    return Flow(counts, dict(block.get("labels") or {}), block.get("note"))


def _sum(d):
    return None if d is None else sum(d.values())


def check_counts(flow: Flow, n_studies: int | None = None, studies_path: str = "studies.csv") -> list[str]:
    """Every box that does not add up, as ``box 'NAME' (field): ...`` messages.

    Checks, where both sides are reported: records screened = identified - duplicates - automation
    - other removals; reports sought = screened - excluded; assessed = sought - not retrieved;
    included reports = assessed - excluded with reasons (both columns); new studies <= new reports;
    totals = new + previous; and the total of included studies equals the studies in ``studies.csv``.
    """
    c = flow.counts
    out: list[str] = []

    def box(key, expected, how):
        got = c.get(key)
        if got is not None and expected is not None and got != expected:
            out.append(f"box '{BOXES[key]}' ({key}) is {got}, but {how} = {expected}")

    def total(*keys):
        vals = [c.get(k) for k in keys]
        return None if all(v is None for v in vals) else sum(v or 0 for v in vals)

    for k, v in c.items():
        if k in REASON_FIELDS and v is not None:
            for reason, n in v.items():
                if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                    out.append(f"box '{BOXES[k]}' ({k}): reason {reason!r} needs a count >= 0 (found {n!r})")
        elif v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            out.append(f"box '{BOXES[k]}' ({k}) needs a count >= 0 (found {v!r})")
    if out:
        return out
    identified = total("database_results", "register_results")
    removed = total("duplicates", "excluded_automatic", "excluded_other")
    if identified is not None:
        box("records_screened", identified - (removed or 0),
            f"records identified {identified} - removed before screening {removed or 0}")
    if c.get("records_screened") is not None and c.get("records_excluded") is not None:
        box("dbr_sought_reports", c["records_screened"] - c["records_excluded"],
            f"records screened {c['records_screened']} - records excluded {c['records_excluded']}")
    for pre in ("dbr", "other"):
        sought, notret = c.get(f"{pre}_sought_reports"), c.get(f"{pre}_notretrieved_reports")
        if sought is not None:
            box(f"{pre}_assessed", sought - (notret or 0),
                f"reports sought {sought} - not retrieved {notret or 0}")
            if notret is not None and notret > sought:
                out.append(f"box '{BOXES[pre + '_notretrieved_reports']}' ({pre}_notretrieved_reports) is "
                           f"{notret}, more than the {sought} reports sought")  # fmt: skip
    other_identified = total("website_results", "organisation_results", "citations_results")
    if other_identified is not None and c.get("other_sought_reports") is not None and c["other_sought_reports"] > other_identified:
        out.append(f"box '{BOXES['other_sought_reports']}' (other_sought_reports) is {c['other_sought_reports']}, "
                   f"more than the {other_identified} records identified by other methods")  # fmt: skip
    kept = []
    for pre in ("dbr", "other"):
        assessed, excl = c.get(f"{pre}_assessed"), _sum(c.get(f"{pre}_excluded"))
        if assessed is not None:
            if excl is not None and excl > assessed:
                out.append(f"box '{BOXES[pre + '_excluded']}' ({pre}_excluded) sums to {excl}, more than the "
                           f"{assessed} reports assessed")  # fmt: skip
            kept.append(assessed - (excl or 0))
    if kept:
        box("new_reports", sum(kept), "reports assessed - reports excluded with reasons (" +
            " + ".join(str(k) for k in kept) + ")")  # fmt: skip
    if c.get("new_studies") is not None and c.get("new_reports") is not None and c["new_studies"] > c["new_reports"]:
        out.append(f"box '{BOXES['new_studies']}' (new_studies) is {c['new_studies']}, more than the "
                   f"{c['new_reports']} reports of new included studies")  # fmt: skip
    for kind in ("studies", "reports"):
        if c.get(f"new_{kind}") is not None or c.get(f"previous_{kind}") is not None:
            box(f"total_{kind}", (c.get(f"new_{kind}") or 0) + (c.get(f"previous_{kind}") or 0),
                f"new {kind} {c.get(f'new_{kind}') or 0} + previous {kind} {c.get(f'previous_{kind}') or 0}")
    included = c.get("total_studies")
    if included is None and c.get("new_studies") is not None:
        included = c["new_studies"] + (c.get("previous_studies") or 0)
    if n_studies is not None and included is not None and included != n_studies:
        key = "total_studies" if c.get("total_studies") is not None else "new_studies"
        out.append(f"box '{BOXES[key]}' ({key}) gives {included} included studies, but {studies_path} has "
                   f"{n_studies}")  # fmt: skip
    return out


SCREENING_SOURCES = ("database", "register", "website", "organisation", "citation_search", "other")


def counts_from_log(rows: list[dict], path: str, study_ids: dict[str, int], studies_path: str,
                    previous: dict | None = None) -> tuple[Flow, list]:
    """Derive the diagram's counts from validated ``screening.csv`` rows.

    Databases and registers: identified -> duplicates removed -> screened on title and abstract ->
    reports sought -> not retrieved -> assessed in full text -> excluded (with reasons) -> included.
    Other methods (websites, organisations, citation searching, other) are not screened on title
    and abstract in PRISMA 2020: a non-duplicate record is a report sought for retrieval.

    Returns the :class:`Flow` and a list of :class:`tpsynth.validate.Problem` (FILE:LINE: column).
    """
    from .validate import Problem

    problems: list[Problem] = []
    c: dict = dict.fromkeys(BOXES)
    seen: dict[str, int] = {}
    dbr_excl: dict[str, int] = {}
    oth_excl: dict[str, int] = {}
    included: dict[str, int] = {}
    counts = {k: 0 for k in ("database_results", "register_results", "website_results", "organisation_results",
                             "citations_results", "duplicates", "records_screened", "records_excluded",
                             "dbr_sought_reports", "dbr_notretrieved_reports", "other_sought_reports",
                             "other_notretrieved_reports", "new_reports")}  # fmt: skip
    used_dbr = used_other = False
    for r in rows:
        line = r["_line"]
        rid = r.get("record_id")
        if rid in seen:
            problems.append(Problem(path, line, "record_id", f"record listed twice, first on line {seen[rid]} (found {rid!r})"))
            continue
        seen[rid] = line
        src = r.get("source")
        dbr = src in DBR_SOURCES
        counts[DBR_SOURCES[src] if dbr else OTHER_SOURCES[src]] += 1
        used_dbr |= dbr
        used_other |= not dbr
        ta, ft, reason, sid = r.get("title_abstract"), r.get("full_text"), r.get("exclusion_reason"), r.get("study_id")
        if r.get("duplicate"):
            for col, v in (("title_abstract", ta), ("full_text", ft)):
                if v is not None:
                    problems.append(Problem(path, line, col, f"a duplicate record is removed before screening; leave {col} blank (found {v!r})"))
            if dbr:
                counts["duplicates"] += 1
            continue
        if dbr:
            counts["records_screened"] += 1
            if ta is None:
                problems.append(Problem(path, line, "title_abstract", "a database or register record needs a title/abstract decision (include or exclude)"))
                continue
            if ta == "exclude":
                counts["records_excluded"] += 1
                if ft is not None:
                    problems.append(Problem(path, line, "full_text", f"a record excluded on title/abstract has no full-text decision (found {ft!r})"))
                continue
            counts["dbr_sought_reports"] += 1
        else:
            if ta == "exclude":
                problems.append(Problem(path, line, "title_abstract", "records from other methods are not screened on title/abstract in PRISMA 2020; leave it blank or 'include'"))
                continue
            counts["other_sought_reports"] += 1
        pre = "dbr" if dbr else "other"
        if ft is None:
            problems.append(Problem(path, line, "full_text", "a report sought for retrieval needs a full-text decision (include, exclude or not_retrieved)"))
        elif ft == "not_retrieved":
            counts[f"{pre}_notretrieved_reports"] += 1
        elif ft == "exclude":
            if reason is None:
                problems.append(Problem(path, line, "exclusion_reason", "a report excluded in full text needs its reason"))
            else:
                excl = dbr_excl if dbr else oth_excl
                excl[reason] = excl.get(reason, 0) + 1
        elif ft == "include":
            counts["new_reports"] += 1
            if sid is None:
                problems.append(Problem(path, line, "study_id", "an included report needs the study_id of the study it reports"))
            elif sid not in study_ids:
                problems.append(Problem(path, line, "study_id", f"unknown study, not in {studies_path} (found {sid!r})"))
            else:
                included.setdefault(sid, line)
        if ft != "include" and sid is not None and ft is not None:
            problems.append(Problem(path, line, "study_id", f"only an included report names a study (full_text is {ft!r})"))
    c.update(counts)
    if used_dbr:
        c["dbr_assessed"] = c["dbr_sought_reports"] - c["dbr_notretrieved_reports"]
        c["dbr_excluded"] = dict(sorted(dbr_excl.items()))
    else:
        for k in DBR_FIELDS:
            c[k] = None
    if used_other:
        c["other_assessed"] = c["other_sought_reports"] - c["other_notretrieved_reports"]
        c["other_excluded"] = dict(sorted(oth_excl.items()))
    else:
        for k in OTHER_FIELDS:
            c[k] = None
    c["new_studies"] = len(included)
    prev = previous or {}
    c["previous_studies"], c["previous_reports"] = prev.get("previous_studies"), prev.get("previous_reports")
    c["total_studies"] = c["new_studies"] + (c["previous_studies"] or 0)
    c["total_reports"] = c["new_reports"] + (c["previous_reports"] or 0)
    missing = [s for s in study_ids if s not in included]
    if missing and not prev.get("previous_studies"):
        problems.append(Problem(path, None, "study_id", f"{len(missing)} study(ies) of {studies_path} have no included "
                                f"report in the screening log: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"))  # fmt: skip
    flow = Flow(c, dict((previous or {}).get("labels") or {}), (previous or {}).get("note"), sorted(included))
    return flow, problems


def load_flow(config: dict, config_path: str, screening: str | None, studies: list[dict], studies_path: str,
              read_sheet) -> tuple[Flow | None, list]:
    """The checked flow of the config's ``prisma:`` block or of the screening log (``None`` without either).

    ``read_sheet(path, name, problems)`` reads and type-checks a sheet (:func:`tpsynth.validate`).
    Returns the flow and a list of :class:`tpsynth.validate.Problem`.
    """
    from .validate import Problem

    block = config.get("prisma")
    problems: list[Problem] = []
    if screening:
        extra = sorted(k for k in (block or {}) if k in BOXES and k not in ("previous_studies", "previous_reports"))
        if extra:
            problems.append(Problem(config_path, None, None, f"prisma: {', '.join(extra)}: these counts come from the "
                                    f"screening log {screening}; keep only previous_studies, previous_reports, labels and note"))  # fmt: skip
        rows = read_sheet(screening, "screening", problems)
        if rows is None:
            return None, problems
        ids = {s["study_id"]: s["_line"] for s in studies if s.get("study_id")}
        flow, log_problems = counts_from_log(rows, screening, ids, studies_path, block)
        problems += log_problems
        where = screening
    elif block:
        flow = counts_from_config(block)
        where = config_path
    else:
        return None, problems
    if problems:  # a log with row problems gives counts that cannot add up: report the rows first
        return flow, problems
    problems += [Problem(where, None, None, ("prisma: " if where == config_path else "") + m)
                 for m in check_counts(flow, len(studies), studies_path)]  # fmt: skip
    return flow, problems
