"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tpsynth.config import validate_config
from tpsynth.harmonise import harmonise
from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "minimal"


@pytest.fixture(scope="session")
def fixture_inputs():
    """(config, sheets, arms) of the minimal fixture workspace, validated and harmonised."""
    config = validate_config(yaml.safe_load((FIXTURE / "config/config.yaml").read_text()))
    raw = FIXTURE / "data/raw"
    sheets, problems = validate_sheets(str(raw / "studies.csv"), str(raw / "outcomes.csv"), str(raw / "contrasts.csv"), config)
    assert problems == []
    return config, sheets, harmonise(sheets)[0]
