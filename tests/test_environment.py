"""requirements.txt (pip) and environment.yml (conda) pin the same versions."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pip_pins():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line).groups()
            pins[name.lower().replace("_", "-")] = version
    return pins


def _conda_pins(path="environment.yml"):
    env = yaml.safe_load((ROOT / path).read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and "=" in dep:
            name, version = dep.split("=", 1)
            pins[name.lower()] = version
    return pins


def test_same_pins_in_both_files():
    conda = _conda_pins()
    conda.pop("python")
    assert _pip_pins() == conda


def test_rule_environment_has_the_same_pins():
    assert _conda_pins("workflow/envs/tpsynth.yaml") == _conda_pins()


def test_installed_versions_match_pins():
    from importlib.metadata import version

    for name, pinned in _pip_pins().items():
        assert version(name) == pinned, name
