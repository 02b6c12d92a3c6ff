"""Shared fixtures and marker rules.

Code tests read only tests/fixtures/ (and the reference JSON made by tests/reference/*.R), never
data/raw/ or config/config.yaml; tests/shipped/ (run by `make reference`) is the one place that does.
"""

from __future__ import annotations

import shutil
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
    return config, sheets, harmonise(sheets)[0].rows()


def pytest_collection_modifyitems(config, items):
    """Every ``pipeline`` and ``browser`` test is also ``slow`` (markers are registered in pyproject.toml)."""
    for item in items:
        if item.get_closest_marker("pipeline") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A copy of the minimal fixture workspace; the test runs inside it."""
    dst = tmp_path / "ws"
    shutil.copytree(FIXTURE, dst)
    monkeypatch.chdir(dst)
    return dst
