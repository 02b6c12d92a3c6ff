"""Risk of bias by domain: tools, judgement vocabularies, overall algorithms and the optional sheet.

``risk_of_bias.csv`` (schema ``workflow/schemas/risk_of_bias.schema.yaml``) has one row per study, or
per study and outcome (blank ``outcome`` = every outcome of the study), with the domain judgements
``d1`` ... ``d7`` of one tool, the ``overall`` judgement and optional ``support_*`` text.

Overall judgement algorithms
----------------------------
* **RoB 2** (Sterne et al. 2019, BMJ 366:l4898, Table 2; the cluster variant adds domain 1b):
  *low* when every domain is low; *high* when at least one domain is high; otherwise *some concerns*.
  A reviewer may judge *high* when several domains (two or more) have some concerns "in a way that
  substantially lowers confidence in the result": allowed, and flagged as the reviewer's judgement.
  A domain judged *no information* counts as not low (robvis's ``data_rob2`` study 3 does the same).
* **ROBINS-I** (Sterne et al. 2016, BMJ 355:i4919, Table 2): *critical* when at least one domain is
  critical; *serious* when at least one is serious and none critical; *low* when all are low;
  *moderate* when all are low or moderate. With *no information* in a domain and no serious or
  critical one the tool calls for a judgement: *no information* is derived, and *moderate* is
  allowed as the reviewer's judgement that the domain is not key (flagged).
* **ROBINS-I V2** (domain order of the 2024 version, riskofbias.info): the ROBINS-I rules, plus the
  V2 level *low except for concerns about uncontrolled confounding* (``low_except_confounding``),
  allowed in domain 1 and overall; it is the overall judgement when domain 1 has it and every other
  domain is low.
* **generic** (any tool, up to seven domains): no published algorithm; a blank overall is the most
  severe domain judgement, and a given overall less severe than a domain is flagged, not rejected.

A blank ``overall`` is derived by the algorithm and flagged as derived.

Common severity
---------------
GRADE, the forest plot and ``studies.csv``'s ``rob_overall`` use one three-level scale (plus
``not_assessed``): RoB 2 low / some concerns / high as they are; ROBINS-I low -> low, moderate and
low-except-confounding -> some concerns, serious and critical -> high; *no information* -> some
concerns (an unclear risk, as the Cochrane Handbook 5.1 Table 8.7.a treats "unclear").
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DOMAINS = 7
DOMAIN_COLUMNS = tuple(f"d{i}" for i in range(1, MAX_DOMAINS + 1))
ROB2_JUDGEMENTS = ("low", "some_concerns", "high", "no_information")
ROBINS_JUDGEMENTS = ("low", "moderate", "serious", "critical", "no_information")


@dataclass(frozen=True)
class Tool:
    """A risk-of-bias tool: its domains (short label, name), judgements and overall values."""

    code: str
    name: str
    citation: str
    domains: tuple[tuple[str, str], ...]
    judgements: tuple[str, ...]
    overall: tuple[str, ...]
    variable_domains: bool = False  # generic: 1..7 domains, named by the user


TOOLS: dict[str, Tool] = {
    "rob2": Tool(
        "rob2", "RoB 2", "Sterne et al. 2019, BMJ 366:l4898",
        (("D1", "Randomisation process"), ("D2", "Deviations from intended interventions"),
         ("D3", "Missing outcome data"), ("D4", "Measurement of the outcome"),
         ("D5", "Selection of the reported result")),
        ROB2_JUDGEMENTS, ("low", "some_concerns", "high"),
    ),
    "rob2_cluster": Tool(
        "rob2_cluster", "RoB 2 for cluster-randomised trials", "Sterne et al. 2019; Eldridge et al. 2021 (RoB 2 CRT)",
        (("D1a", "Randomisation process"), ("D1b", "Timing of identification or recruitment of participants"),
         ("D2", "Deviations from intended interventions"), ("D3", "Missing outcome data"),
         ("D4", "Measurement of the outcome"), ("D5", "Selection of the reported result")),
        (*ROB2_JUDGEMENTS, "not_applicable"), ("low", "some_concerns", "high"),
    ),
    "robins_i": Tool(
        "robins_i", "ROBINS-I", "Sterne et al. 2016, BMJ 355:i4919",
        (("D1", "Confounding"), ("D2", "Selection of participants"), ("D3", "Classification of interventions"),
         ("D4", "Deviations from intended interventions"), ("D5", "Missing data"),
         ("D6", "Measurement of outcomes"), ("D7", "Selection of the reported result")),
        ROBINS_JUDGEMENTS, ROBINS_JUDGEMENTS,
    ),
    "robins_i_v2": Tool(
        "robins_i_v2", "ROBINS-I V2", "Sterne et al., ROBINS-I V2 (2024), riskofbias.info",
        (("D1", "Confounding"), ("D2", "Classification of interventions"), ("D3", "Selection of participants"),
         ("D4", "Deviations from intended interventions"), ("D5", "Missing data"),
         ("D6", "Measurement of the outcome"), ("D7", "Selection of the reported result")),
        ("low", "low_except_confounding", "moderate", "serious", "critical", "no_information"),
        ("low", "low_except_confounding", "moderate", "serious", "critical", "no_information"),
    ),
    "generic": Tool(
        "generic", "generic tool", "no published overall algorithm (worst domain)",
        tuple((f"D{i}", f"Domain {i}") for i in range(1, MAX_DOMAINS + 1)),
        ("low", "some_concerns", "moderate", "unclear", "high", "serious", "critical", "no_information",
         "not_applicable"),
        ("low", "some_concerns", "moderate", "unclear", "high", "serious", "critical", "no_information"),
        variable_domains=True,
    ),
}  # fmt: skip

# one severity scale for every tool: 0 low, 1 some concerns, 2 high, 3 critical; None = not applicable
SEVERITY = {
    "low": 0, "some_concerns": 1, "moderate": 1, "low_except_confounding": 1, "unclear": 1, "no_information": 1,
    "high": 2, "serious": 2, "critical": 3, "not_applicable": None,
}  # fmt: skip
LEVEL = {0: "low", 1: "some_concerns", 2: "high", 3: "high"}  # the studies.csv rob_overall vocabulary


def level(judgement: str | None) -> str:
    """A tool's judgement on the common scale ``low | some_concerns | high | not_assessed``."""
    if judgement is None or judgement == "not_assessed" or SEVERITY.get(judgement) is None:
        return "not_assessed"
    return LEVEL[SEVERITY[judgement]]


@dataclass(frozen=True)
class Overall:
    """What a tool's algorithm makes of the domain judgements.

    ``derived`` is the judgement the algorithm gives; ``allowed`` the judgements a reviewer may give
    (``derived`` and those in ``flagged``); ``flagged`` maps an allowed alternative to why it is the
    reviewer's judgement; ``why`` explains ``derived``.
    """

    derived: str
    allowed: frozenset[str]
    flagged: dict
    why: str


def _named(domains: list[tuple[str, str]], values: set[str]) -> str:
    hits = [f"{d} {j.replace('_', ' ')}" for d, j in domains if j in values]
    return ", ".join(hits)


def rob2_overall(domains: list[tuple[str, str]]) -> Overall:
    """RoB 2 overall judgement (Sterne et al. 2019, Table 2) from ``[(domain label, judgement), ...]``."""
    used = [(d, j) for d, j in domains if j != "not_applicable"]
    if any(j == "high" for _, j in used):
        return Overall("high", frozenset({"high"}), {}, f"a domain is at high risk ({_named(used, {'high'})})")
    if all(j == "low" for _, j in used):
        return Overall("low", frozenset({"low"}), {}, "every domain is at low risk")
    concerns = [(d, j) for d, j in used if j in ("some_concerns", "no_information")]
    flagged = {}
    if len(concerns) >= 2:
        flagged["high"] = (
            f"the reviewer's judgement: some concerns in several domains ({_named(concerns, {'some_concerns', 'no_information'})}) "
            "substantially lower confidence in the result (RoB 2 allows this)"
        )
    why = f"no domain at high risk; some concerns or no information in {', '.join(d for d, _ in concerns)}"
    return Overall("some_concerns", frozenset({"some_concerns", *flagged}), flagged, why)


def robins_overall(domains: list[tuple[str, str]], v2: bool = False) -> Overall:
    """ROBINS-I overall judgement (Sterne et al. 2016, Table 2); ``v2`` adds the V2 confounding level."""
    used = [(d, j) for d, j in domains if j != "not_applicable"]
    js = {j for _, j in used}
    if "critical" in js:
        return Overall("critical", frozenset({"critical"}), {}, f"a domain is at critical risk ({_named(used, {'critical'})})")
    if "serious" in js:
        return Overall("serious", frozenset({"serious"}), {}, f"a domain is at serious risk ({_named(used, {'serious'})})")
    if "no_information" in js:
        flagged = {"moderate": "the reviewer's judgement that the domain(s) without information are not key (ROBINS-I asks for a judgement here)"}
        return Overall(
            "no_information", frozenset({"no_information", "moderate"}), flagged,
            f"no information in {_named(used, {'no_information'})} and no domain at serious or critical risk",
        )  # fmt: skip
    if js <= {"low"}:
        return Overall("low", frozenset({"low"}), {}, "every domain is at low risk")
    if v2 and js <= {"low", "low_except_confounding"}:
        return Overall(
            "low_except_confounding", frozenset({"low_except_confounding"}), {},
            "every domain at low risk except concerns about uncontrolled confounding",
        )  # fmt: skip
    return Overall("moderate", frozenset({"moderate"}), {}, f"moderate risk in {_named(used, {'moderate', 'low_except_confounding'})}")


def generic_overall(domains: list[tuple[str, str]]) -> Overall:
    """Generic tool: the most severe domain judgement (no published algorithm); anything else flagged."""
    used = [(d, j) for d, j in domains if SEVERITY.get(j) is not None]
    if not used:
        return Overall("no_information", frozenset(TOOLS["generic"].overall), {}, "no domain judged")
    worst = max(used, key=lambda dj: (SEVERITY[dj[1]], dj[1] != "no_information"))
    flagged = {
        j: f"the reviewer's judgement: less severe than domain {worst[0]} ({worst[1].replace('_', ' ')}); the generic tool has no algorithm"
        for j in TOOLS["generic"].overall
        if SEVERITY[j] < SEVERITY[worst[1]]
    }
    return Overall(worst[1], frozenset(TOOLS["generic"].overall), flagged, f"the most severe domain ({worst[0]} {worst[1].replace('_', ' ')})")


def overall_judgement(tool: str, domains: list[tuple[str, str]]) -> Overall:
    """Apply the overall algorithm of ``tool`` to ``[(domain label, judgement), ...]``."""
    if tool in ("rob2", "rob2_cluster"):
        return rob2_overall(domains)
    if tool == "robins_i":
        return robins_overall(domains)
    if tool == "robins_i_v2":
        return robins_overall(domains, v2=True)
    if tool == "generic":
        return generic_overall(domains)
    raise ValueError(f"unknown risk-of-bias tool {tool!r}")


def _shown(j: str) -> str:
    return j.replace("_", " ")


def check_rows(path: str, rows: list[dict], studies: list[dict], studies_path: str, outcomes: dict) -> tuple[list, list]:
    """Check typed rows of ``risk_of_bias.csv``; return ``(problems, warnings)`` as
    :class:`tpsynth.validate.Problem` lists, and complete each row in place with ``domains``
    (``[(label, name, judgement, support)]``), ``overall`` (given or derived), ``overall_derived``
    and ``overall_flag`` (why a given overall is the reviewer's judgement, or None).
    """
    from .validate import Problem

    problems: list[Problem] = []
    warnings: list[Problem] = []
    study_rows = {s["study_id"]: s for s in studies if s.get("study_id")}
    seen: dict[tuple, int] = {}
    for row in rows:
        line = row["_line"]
        sid, tool_code = row.get("study_id"), row.get("tool")
        if sid is not None and sid not in study_rows:
            problems.append(Problem(path, line, "study_id", f"unknown study, not in {studies_path} (found {sid!r})"))
        out = row.get("outcome")
        if out is not None and out not in outcomes:
            problems.append(Problem(path, line, "outcome", f"code not declared under 'outcomes' in the config (found {out!r})"))
        key = (sid, out)
        if sid is not None:
            if key in seen:
                what = f"outcome {out}" if out else "all outcomes (blank outcome)"
                problems.append(Problem(path, line, "study_id", f"second assessment of {sid} for {what}, first on line {seen[key]}"))
            else:
                seen[key] = line
        if row.get("_invalid") or tool_code not in TOOLS:
            continue
        tool = TOOLS[tool_code]
        given = [c for c in DOMAIN_COLUMNS if row.get(c) is not None]
        n = (int(given[-1][1:]) if given else 0) if tool.variable_domains else len(tool.domains)
        bad = False
        for i, col in enumerate(DOMAIN_COLUMNS, start=1):
            j = row.get(col)
            if i <= n and j is None:
                need = f"{tool.name} has {n} domains" if not tool.variable_domains else f"domains d1 to d{n} are used"
                problems.append(Problem(path, line, col, f"judgement missing: {need}"))
                bad = True
            elif i > n and j is not None:
                problems.append(Problem(path, line, col, f"{tool.name} has {n} domains; leave {col} blank (found {j!r})"))
                bad = True
            elif j is not None and j not in tool.judgements:
                problems.append(Problem(path, line, col, f"not a {tool.name} judgement: use one of {', '.join(tool.judgements)} (found {j!r})"))
                bad = True
            elif j == "low_except_confounding" and i != 1:
                problems.append(Problem(path, line, col, f"'low_except_confounding' is a judgement of domain 1 (confounding) only (found in {col})"))
                bad = True
            if i > n and row.get(f"support_{col}") is not None:
                problems.append(Problem(path, line, f"support_{col}", f"{tool.name} has {n} domains; support text for {col} has no domain"))
        if bad:
            continue
        labels = tool.domains[:n]
        domains = [(lab, name, row[f"d{i}"], row.get(f"support_d{i}")) for i, (lab, name) in enumerate(labels, start=1)]
        res = overall_judgement(tool_code, [(lab, j) for lab, _, j, _ in domains])
        given_overall = row.get("overall")
        row["domains"] = domains
        row["overall_flag"] = None
        row["overall_derived"] = given_overall is None
        if given_overall is None:
            row["overall"] = res.derived
            warnings.append(Problem(path, line, "overall", f"blank; derived '{_shown(res.derived)}' by the {tool.name} algorithm ({res.why})"))
        elif given_overall not in tool.overall:
            problems.append(Problem(path, line, "overall", f"not a {tool.name} overall judgement: use one of {', '.join(tool.overall)} (found {given_overall!r})"))
            continue
        elif given_overall not in res.allowed:
            problems.append(Problem(
                path, line, "overall",
                f"'{_shown(given_overall)}' disagrees with the {tool.name} algorithm ({tool.citation}): {res.why}, "
                f"so the overall judgement is '{_shown(res.derived)}'",
            ))  # fmt: skip
            continue
        elif given_overall in res.flagged:
            row["overall_flag"] = res.flagged[given_overall]
            warnings.append(Problem(path, line, "overall", f"'{_shown(given_overall)}' where the algorithm gives '{_shown(res.derived)}': {res.flagged[given_overall]}"))
        study = study_rows.get(sid)
        shorthand = study.get("rob_overall") if study else None
        if shorthand not in (None, "not_assessed") and level(row["overall"]) != shorthand:
            problems.append(Problem(
                path, line, "overall",
                f"'{_shown(row['overall'])}' ({_shown(level(row['overall']))} on the common scale) disagrees with "
                f"rob_overall '{_shown(shorthand)}' of {sid} in {studies_path} line {study['_line']}",
            ))  # fmt: skip
    return problems, warnings


def assessment_for(rows: list[dict], study_id: str, outcome: str) -> dict | None:
    """The assessment of a study for an outcome: its outcome-specific row, else its all-outcomes row."""
    best = None
    for r in rows:
        if r.get("study_id") != study_id or "domains" not in r:
            continue
        if r.get("outcome") == outcome:
            return r
        if r.get("outcome") is None:
            best = r
    return best


def study_judgement(rows: list[dict], study: dict, outcome: str) -> dict:
    """The per-study risk-of-bias judgement an analysis uses (also for GRADE and network CINeMA).

    Returns ``{"level", "tool", "overall", "overall_derived", "overall_flag", "domains", "source"}``:
    ``level`` on the common scale (``low | some_concerns | high | not_assessed``); ``domains`` a list of
    ``{"domain", "name", "judgement", "level", "support"}``; ``source`` where the judgement comes from
    (a ``risk_of_bias.csv`` line, or ``studies.csv`` ``rob_overall`` when the study has no domain data).
    """
    r = assessment_for(rows, study["study_id"], outcome)
    if r is None:
        lev = study.get("rob_overall") or "not_assessed"
        return {"level": lev, "tool": None, "overall": lev, "overall_derived": False, "overall_flag": None,
                "domains": [], "source": "studies.csv rob_overall"}  # fmt: skip
    return {
        "level": level(r["overall"]), "tool": r["tool"], "overall": r["overall"],
        "overall_derived": bool(r.get("overall_derived")), "overall_flag": r.get("overall_flag"),
        "domains": [{"domain": lab, "name": name, "judgement": j, "level": level(j), "support": sup}
                    for lab, name, j, sup in r["domains"]],
        "source": f"risk_of_bias.csv line {r['_line']}",
    }  # fmt: skip
