"""Loading and validating ``config/config.yaml`` against ``workflow/schemas/config.schema.yaml``."""

from __future__ import annotations

from pathlib import Path

import yaml

from .sheets import SCHEMA_DIR


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the key."""


def _apply_defaults(schema: dict, instance: dict) -> None:
    for key, prop in schema.get("properties", {}).items():
        if "default" in prop and key not in instance:
            instance[key] = prop["default"]


def validate_config(config: dict, path: str = "config/config.yaml") -> dict:
    """Check ``config`` against the JSON schema and cross-references; return it with defaults filled.

    Raises
    ------
    ConfigError
        Listing every problem as ``FILE: key a.b.c: message``.
    """
    import jsonschema

    schema = yaml.safe_load((SCHEMA_DIR / "config.schema.yaml").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"{path}: key {where}: {err.message}")
    if problems:
        raise ConfigError("\n".join(problems))
    config.setdefault("defaults", {})
    _apply_defaults(schema["properties"]["defaults"], config["defaults"])
    interventions = config.get("interventions") or {}
    outcomes = config.get("outcomes") or {}
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
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def load_config(path: str | Path = "config/config.yaml") -> dict:
    """Read and validate a config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate_config(config, str(path))


def analysis_settings(config: dict, analysis_id: str) -> dict:
    """The analysis's settings with the config defaults filled in."""
    a = dict(config["analyses"][analysis_id])
    for key, value in config["defaults"].items():
        a.setdefault(key, value)
    a["id"] = analysis_id
    return a
