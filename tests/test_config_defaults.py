"""tpsynth.config.fill_defaults fills the schema's defaults exactly as Snakemake's own
``snakemake.utils.validate(config, schema, set_default=True)`` did (the Snakefile used that before)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from snakemake.utils import validate as snakemake_validate

from tpsynth.config import fill_defaults, read_config_file, validate_config

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*/config/config.yaml"))


def _with_extras(config: dict) -> dict:
    """The fixture's config with nested defaults left to fill: outcomes without type and direction, an empty
    report: mapping, corpus: without shards."""
    config = copy.deepcopy(config)
    for outcome in config["outcomes"].values():
        outcome.pop("type", None)
        outcome.pop("higher_is_better", None)
    config["report"] = {}
    config["corpus"] = {"path": "corpus.csv.gz"}
    return config


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.parent.parent.name)
@pytest.mark.parametrize("extras", [False, True])
def test_fill_defaults_is_snakemake_validate_with_set_default(path, extras):
    config = read_config_file(path)
    if extras:
        config = _with_extras(config)
    validate_config(config, str(path))
    ours, theirs = copy.deepcopy(config), copy.deepcopy(config)
    fill_defaults(ours)
    snakemake_validate(theirs, SCHEMA)
    assert ours == theirs
    if extras:  # nested defaults were filled in
        assert ours["report"]["palette"] == "cochrane" and ours["corpus"]["shards"] == 4
        assert all(o["type"] == "continuous" for o in ours["outcomes"].values())
