"""Loading and validating ``config/config.yaml`` against ``workflow/schemas/config.schema.yaml``.

A config file is data, never code. :func:`read_config_file` reads it as plain YAML: no tags (so no
``!!python/...`` objects), no YTE templates (``__use_yte__``, which Snakemake's own ``configfile:``
loader would evaluate), no alias structure that expands beyond :data:`MAX_ALIAS_NODES` nodes (the
"billion laughs" bomb), no duplicate keys, one document, at most :data:`MAX_CONFIG_BYTES` bytes, and only
from a regular file. :func:`validate_config` then checks it against the closed JSON schema (every
mapping lists its keys; an unknown key is an error with a "did you mean" suggestion) and the
cross-references between sections.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from pathlib import Path

import yaml

from .sheets import SCHEMA_DIR

#: Largest config file accepted (the shipped one is ~17 kB; a whole imported Cochrane review ~0.2 MB).
MAX_CONFIG_BYTES = 2_000_000
#: Most YAML nodes that aliases (``*name``) may add when expanded; a bomb adds billions.
MAX_ALIAS_NODES = 10_000
#: Longest code or analysis id (analysis ids become file names).
MAX_ID_LENGTH = 64
#: The schema's pattern of codes and ids ($defs.code): ``(?!\n)$`` so that a trailing line break fails too
#: (Python's ``$`` also matches before a final newline).
CODE_PATTERN = rf"^[A-Za-z0-9_.-]{{1,{MAX_ID_LENGTH}}}(?!\n)$"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the key."""


def _line(node_or_event) -> int:
    return node_or_event.start_mark.line + 1


def _expanded_size(root: yaml.Node, where: str) -> tuple[int, int]:
    """(distinct nodes written, nodes after expanding every alias); raise on a recursive alias."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def children(node):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                yield k
                yield v
        elif isinstance(node, yaml.SequenceNode):
            yield from node.value

    def size(node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise ConfigError(f"{where}:{_line(node)}: a YAML alias refers to the node that contains it (recursive)")
        active.add(key)
        total = 1
        for child in children(node):
            total += size(child)
            if total > 10**12:  # stop adding long before Python integers grow large
                break
        active.discard(key)
        memo[key] = total
        return total

    expanded = size(root)
    return len(memo), expanded


def _check_duplicate_keys(root: yaml.Node, where: str) -> None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in keys and k.value != "<<":
                        raise ConfigError(
                            f"{where}:{_line(k)}: key {k.value!r} appears twice in one mapping "
                            f"(first on line {keys[k.value]}); YAML would silently keep only the last"
                        )
                    keys[k.value] = _line(k)
                stack.extend((k, v))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


#: libyaml's scanner and parser when PyYAML was built with it (~10x faster: the Snakefile reads the config at
#: every start, so this is part of every run, the "nothing to do" rerun included); the constructor is the same.
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_config_text(text: str, where: str = "config/config.yaml") -> dict:
    """Parse config text as plain data (see the module docstring); raise :class:`ConfigError`.

    Parsed with libyaml when available; text it rejects is parsed again with PyYAML's pure-Python loader,
    so that the error (and its line) is always PyYAML's own wording.
    """
    if FAST_LOADER is not yaml.SafeLoader:
        try:
            return _parse_config_text(text, where, FAST_LOADER)
        except ConfigError:
            pass
    return _parse_config_text(text, where, yaml.SafeLoader)


def _parse_config_text(text: str, where: str, loader_class) -> dict:
    try:
        n_docs = 0
        for event in yaml.parse(text, Loader=loader_class):
            tag = getattr(event, "tag", None)
            if tag is not None and tag != "!":
                tag = tag.replace("tag:yaml.org,2002:", "!!")
                raise ConfigError(
                    f"{where}:{_line(event)}: YAML tag {tag!r} is not allowed: the config is plain data "
                    "(mappings, lists, text, numbers, true/false), never objects or code"
                )
            if isinstance(event, yaml.DocumentStartEvent):
                n_docs += 1
                if n_docs > 1:
                    raise ConfigError(f"{where}:{_line(event)}: more than one YAML document ('---'); write one")
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise ConfigError(f"{where}: the file is empty; expected a mapping of keys at the top level")
            written, expanded = _expanded_size(node, where)
            if expanded - written > MAX_ALIAS_NODES:
                raise ConfigError(
                    f"{where}: YAML aliases (*name) expand the file by more than {MAX_ALIAS_NODES:,} values "
                    f"(to {expanded:,}); write the values out instead of nesting aliases"
                )
            _check_duplicate_keys(node, where)
            config = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark else ""
        what = " ".join(x for x in (err.context, err.problem) if x)
        raise ConfigError(f"{where}{line}: not valid YAML: {what}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected a mapping of keys at the top level")
    if "__use_yte__" in config:
        raise ConfigError(
            f"{where}: key __use_yte__: YTE templates are not accepted: a config is data and never runs code; "
            "remove the key and write plain values"
        )
    return config


def read_config_file(path: str | Path) -> dict:
    """Read a config file as plain data, without validating it against the schema.

    Only a regular file of at most :data:`MAX_CONFIG_BYTES` bytes in UTF-8 is read.

    Raises
    ------
    ConfigError
        Naming the file (and line) and what is wrong.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: not a regular file; the config must be a YAML file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a config holds settings, not data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None
    return parse_config_text(text, str(path))


def _apply_defaults(schema: dict, instance: dict) -> None:
    for key, prop in schema.get("properties", {}).items():
        if "default" in prop and key not in instance:
            instance[key] = prop["default"]


def fill_defaults(config: dict) -> dict:
    """Fill every ``default`` of the schema into ``config`` (in place; nested mappings too) and return it.

    The same as Snakemake's ``snakemake.utils.validate(config, schema, set_default=True)`` (the jsonschema
    FAQ's ``extend_with_default`` recipe; tests/test_config.py compares the two), on the schema read once
    with libyaml: Snakemake reads it with its pure-Python YAML loader, ~0.3 s at every start of a run.
    Call it on a config :func:`validate_config` accepted.
    """
    import copy

    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for prop, sub in properties.items():
            if "default" in sub:
                instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    with_defaults = validators.extend(Draft202012Validator, {"properties": set_defaults})
    with_defaults(_schema()).validate(config)
    return config


def _schema() -> dict:
    return yaml.load((SCHEMA_DIR / "config.schema.yaml").read_text(encoding="utf-8"), Loader=FAST_LOADER)


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _unknown_key_problems(err, path: str) -> list[str]:
    """One problem per key the (closed) mapping does not allow, with a "did you mean" suggestion."""
    allowed = list((err.schema.get("properties") or {}).keys())
    patterns = list((err.schema.get("patternProperties") or {}).keys())
    out = []
    for key in err.instance:
        if key in allowed or any(re.search(p, key) for p in patterns):
            continue
        where = _key_path([*err.absolute_path, key])
        near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        if near:
            hint = f"did you mean {near[0]!r}?"
        elif allowed:
            hint = "allowed keys here: " + ", ".join(allowed)
        else:
            hint = "no keys are allowed here"
        out.append(f"{path}: key {where}: unknown key ({hint}); see config/README.md")
    return out


def _schema_problem(err, path: str) -> list[str]:
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties" and err.schema.get("additionalProperties") is False:
        return _unknown_key_problems(err, path)
    if err.validator == "pattern" and err.validator_value == CODE_PATTERN:
        return [
            f"{path}: key {where}: {err.instance!r} is not a valid code: use 1 to {MAX_ID_LENGTH} letters, "
            "digits and _ . - (no spaces or line breaks)"
        ]
    if err.validator == "minProperties" and err.absolute_path and list(err.absolute_path) == ["analyses"]:
        return [f"{path}: key analyses: no analyses configured; add at least one (config/README.md)"]
    return [f"{path}: key {where}: {err.message}"]


def validate_config(config: dict, path: str = "config/config.yaml") -> dict:
    """Check ``config`` against the JSON schema and cross-references; return it with defaults filled.

    Raises
    ------
    ConfigError
        Listing every problem as ``FILE: key a.b.c: message``.
    """
    import jsonschema

    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_schema_problem(err, path))
    if problems:
        raise ConfigError("\n".join(problems))
    config.setdefault("defaults", {})
    _apply_defaults(schema["properties"]["defaults"], config["defaults"])
    interventions = config.get("interventions") or {}
    outcomes = config.get("outcomes") or {}
    folded: dict[str, str] = {}
    for aid in config.get("analyses") or {}:
        other = folded.setdefault(aid.casefold(), aid)
        if other != aid:
            problems.append(
                f"{path}: key analyses.{aid}: differs from analysis {other!r} only by upper/lower case; "
                "their result files would collide on case-insensitive file systems"
            )
    for aid, a in (config.get("analyses") or {}).items():
        for side in ("intervention", "comparator"):
            for code in a[side]:
                if code not in interventions:
                    problems.append(f"{path}: key analyses.{aid}.{side}: code {code!r} is not declared under interventions")
        if a["outcome"] not in outcomes:
            problems.append(f"{path}: key analyses.{aid}.outcome: code {a['outcome']!r} is not declared under outcomes")
        lo, hi = a["timepoint_weeks"]
        if lo > hi:
            problems.append(f"{path}: key analyses.{aid}.timepoint_weeks: minimum {lo} is above maximum {hi}")
        overlap = set(a["intervention"]) & set(a["comparator"])
        if overlap:
            problems.append(f"{path}: key analyses.{aid}: codes on both sides: {', '.join(sorted(overlap))}")
        method = a.get("method", config["defaults"]["method"])
        measure = a.get("measure", config["defaults"]["measure"])
        allowed = {"MH": ("RR", "OR", "RD"), "PETO": ("OR",)}.get(method)
        if allowed and measure not in allowed:
            where = "method" if "method" in a else "measure" if "measure" in a else "method"
            problems.append(
                f"{path}: key analyses.{aid}.{where}: method {method} pools 2x2 tables with measure "
                f"{' or '.join(allowed)}, not {measure}"
            )
        stray = sorted(set(a.get("moderator_reference") or {}) - set(a.get("moderators") or []))
        if stray:
            problems.append(
                f"{path}: key analyses.{aid}.moderator_reference: {', '.join(stray)} not among the analysis's moderators"
            )
    problems += _network_problems(config, path)
    problems.extend(_bayes_problems(config, path))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _network_problems(config: dict, path: str) -> list[str]:
    """Cross-references of ``networks:`` (codes declared, in one node only, reference a node, measure fits)."""
    problems = []
    interventions = config.get("interventions") or {}
    outcomes = config.get("outcomes") or {}
    for nid, n in (config.get("networks") or {}).items():
        where = f"{path}: key networks.{nid}"
        seen: dict[str, str] = {}
        for node, codes in n["nodes"].items():
            for code in codes:
                if code not in interventions:
                    problems.append(f"{where}.nodes.{node}: code {code!r} is not declared under interventions")
                if code in seen and seen[code] != node:
                    problems.append(f"{where}.nodes.{node}: code {code!r} is also in node {seen[code]!r}")
                seen[code] = node
        if n["reference"] not in n["nodes"]:
            problems.append(f"{where}.reference: {n['reference']!r} is not one of its nodes")
        out = outcomes.get(n["outcome"])
        if out is None:
            problems.append(f"{where}.outcome: code {n['outcome']!r} is not declared under outcomes")
        else:
            kind = out.get("type", "continuous")
            if (kind == "dichotomous") != (n["measure"] in ("OR", "RR")):
                problems.append(f"{where}.measure: {n['measure']} does not fit the {kind} outcome {n['outcome']!r}")
        lo, hi = n["timepoint_weeks"]
        if lo > hi:
            problems.append(f"{where}.timepoint_weeks: minimum {lo} is above maximum {hi}")
    return problems


def load_config(path: str | Path = "config/config.yaml") -> dict:
    """Read a config file as plain data (:func:`read_config_file`) and validate it."""
    return validate_config(read_config_file(path), str(path))


BAYES_DEFAULTS = {"tau_prior": "auto", "mu_prior": "flat", "headline_below_k": 5}


def analysis_settings(config: dict, analysis_id: str) -> dict:
    """The analysis's settings with the config defaults filled in.

    ``bayes`` is merged key by key: built-in defaults, then ``defaults.bayes``, then the analysis's own.
    """
    a = dict(config["analyses"][analysis_id])
    for key, value in config["defaults"].items():
        a.setdefault(key, value)
    a["bayes"] = {**BAYES_DEFAULTS, **(config["defaults"].get("bayes") or {}),
                  **(config["analyses"][analysis_id].get("bayes") or {})}  # fmt: skip
    a["id"] = analysis_id
    return a


def _bayes_problems(config: dict, path: str) -> list[str]:
    """Priors that cannot be read, as ``FILE: key ...bayes.tau_prior: message``."""
    from .bayes import PriorError, parse_mu_prior, parse_tau_prior

    places = [("defaults.bayes", (config.get("defaults") or {}).get("bayes"))]
    places += [(f"analyses.{aid}.bayes", a.get("bayes")) for aid, a in (config.get("analyses") or {}).items()]
    out = []
    for where, b in places:
        for key, parse in (("tau_prior", parse_tau_prior), ("mu_prior", parse_mu_prior)):
            text = (b or {}).get(key)
            if text is None or (key == "tau_prior" and text == "auto"):
                continue
            try:
                parse(text)
            except PriorError as err:
                out.append(f"{path}: key {where}.{key}: {err}")
    return out


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside ids by value: ``analysis_3_2`` before ``analysis_3_10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def file_stem(name: str) -> str:
    """A name from the sheets or config (a moderator column) as a file name: characters other than
    letters, digits and ``_ . -`` become ``_`` (``results/figures/bubble_{id}/{file_stem(moderator)}.svg``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def analysis_ids(config: dict) -> list[str]:
    """The configured analysis ids in natural order (the order of jobs, tables and report sections)."""
    return sorted(config["analyses"], key=natural_key)
