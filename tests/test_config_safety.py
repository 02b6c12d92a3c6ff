"""A config file is data: no code, no tags, no bombs, no silently ignored typo (issue 14)."""

from __future__ import annotations

import copy
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tpsynth.config import (
    CODE_PATTERN,
    MAX_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    ConfigError,
    _schema,
    load_config,
    parse_config_text,
    read_config_file,
    validate_config,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
FIXTURE_TEXT = (FIXTURE / "config" / "config.yaml").read_text()
RAW = yaml.safe_load(FIXTURE_TEXT)
YTE = '__use_yte__: true\nx: ?__import__("os").system("touch {marker}")\n'


def problems(cfg) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        validate_config(copy.deepcopy(cfg))
    return str(exc.value).splitlines()


# ------------------------------------------------------------------------------------------ code and tags


def test_yte_template_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "config.yaml"
    path.write_text(YTE.format(marker=marker) + FIXTURE_TEXT)
    with pytest.raises(ConfigError, match=r"key __use_yte__: YTE templates are not accepted"):
        read_config_file(path)
    assert not marker.exists()


@pytest.mark.pipeline
@pytest.mark.parametrize("how", ["default", "--config configfile="])
def test_snakemake_documented_commands_never_run_a_yte_config(tmp_path, how):
    """`snakemake` (config/config.yaml) and `snakemake --config configfile=PATH` go through the safe loader."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    marker = tmp_path / "owned"
    evil = tmp_path / "config" / ("config.yaml" if how == "default" else "other.yaml")
    evil.write_text(YTE.format(marker=marker) + FIXTURE_TEXT)
    extra = [] if how == "default" else ["--config", f"configfile={evil}"]
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "-c", "1", *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0
    assert "key __use_yte__: YTE templates are not accepted" in run.stderr
    assert not marker.exists()


@pytest.mark.pipeline
def test_snakemake_configfile_option_is_reread_safely_and_stops(tmp_path):
    """What remains (README): Snakemake itself reads a --configfile, templates included, before the
    Snakefile runs; the Snakefile reads it again through the same checks and stops the run."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    evil = tmp_path / "config" / "other.yaml"
    evil.write_text("__use_yte__: true\n" + FIXTURE_TEXT)
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "-c", "1",
         "--configfile", str(evil)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"{evil}: key __use_yte__: YTE templates are not accepted" in run.stderr
    assert "results/analyses" not in run.stdout


@pytest.mark.pipeline
def test_config_given_with_config_configfile_is_used(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    other = tmp_path / "config" / "other.yaml"
    cfg = copy.deepcopy(RAW)
    del cfg["analyses"]["pain_md"], cfg["analyses"]["resp_rr"]
    other.write_text(yaml.safe_dump(cfg))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "-c", "1",
         "--config", f"configfile={other}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "results/analyses/pain_smd.json" in run.stdout
    assert "results/analyses/pain_md.json" not in run.stdout


@pytest.mark.parametrize(
    "text, tag",
    [
        ('a: !!python/object/apply:os.system ["true"]\n', "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system\n", "!!python/name:os.system"),
        ("a: !custom {b: 1}\n", "!custom"),
        ("a: !!str 12\n", "!!str"),
    ],
)
def test_every_yaml_tag_is_refused_with_its_line(text, tag):
    with pytest.raises(ConfigError) as exc:
        parse_config_text("data: {}\n" + text, "c.yaml")
    msg = str(exc.value)
    assert msg.startswith(f"c.yaml:2: YAML tag {tag!r} is not allowed")
    assert "tab" not in msg


def test_cli_validate_refuses_python_tag_plainly(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(FIXTURE_TEXT + 'x: !!python/object/apply:os.system ["touch owned"]\n')
    run = subprocess.run([sys.executable, "-m", "tpsynth", "validate", "--config", str(path)],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in run.stderr
    assert "tab" not in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "owned").exists()


# ---------------------------------------------------------------------------------------------- bombs


def bomb(levels: int = 9, width: int = 9, under: str = "x") -> str:
    lines = [f"{under}:", "  l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("under", ["unknown_top_level_key", "target"])
def test_alias_bomb_refused_before_expansion(under):
    text = FIXTURE_TEXT + bomb(under=under)
    before = _peak_rss_mb()
    with pytest.raises(ConfigError, match=r"YAML aliases \(\*name\) expand the file by more than 10,000 values"):
        parse_config_text(text)
    assert _peak_rss_mb() - before < 200  # never expanded (the expanded bomb needs gigabytes)


def test_modest_aliases_still_allowed():
    text = FIXTURE_TEXT.replace("intervention: [dn, ic]", "intervention: &active [dn, ic]", 1)
    text = text.replace("intervention: [dn, ic]", "intervention: *active")
    cfg = parse_config_text(text)
    assert cfg["analyses"]["resp_rr"]["intervention"] == ["dn", "ic"]
    assert MAX_ALIAS_NODES >= 1000


def test_recursive_alias_refused():
    with pytest.raises(ConfigError, match="recursive"):
        parse_config_text("a: &a [1, *a]\n")


def test_duplicate_key_refused():
    text = FIXTURE_TEXT.replace("mid: 1.5}", "mid: 1.5, higher_is_better: true}")
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: key 'higher_is_better' appears twice"):
        parse_config_text(text)


def test_size_cap_and_regular_files_only(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(FIXTURE_TEXT + "#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"larger than 2,000,000 bytes"):
        read_config_file(big)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config_file("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config_file(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):  # would block forever if opened
        read_config_file(fifo)


def test_other_document_shapes_refused():
    with pytest.raises(ConfigError, match="more than one YAML document"):
        parse_config_text("a: 1\n---\nb: 2\n")
    with pytest.raises(ConfigError, match="empty"):
        parse_config_text("# nothing\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: not valid YAML"):
        parse_config_text("a: 1\n\tb: 2\n", "c.yaml")


# ------------------------------------------------------------------------------------------ closed schema


def _open_mappings(node, where="(top level)"):
    """Every object schema that accepts keys it does not name."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            extra = node.get("additionalProperties", True)
            if extra is True or extra == {}:
                yield where
        for key, value in node.items():
            yield from _open_mappings(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _open_mappings(value, f"{where}/{i}")


def test_every_mapping_of_the_config_schema_is_closed():
    open_ = list(_open_mappings(_schema()))
    assert not open_, f"add 'additionalProperties: false' to these mappings of config.schema.yaml: {open_}"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda c: c["outcomes"]["pain"].update(higher_is_beter=True),
         "key outcomes.pain.higher_is_beter: unknown key (did you mean 'higher_is_better'?)"),
        (lambda c: c["outcomes"]["pain"].update(reference_scal=[0, 100]),
         "key outcomes.pain.reference_scal: unknown key (did you mean 'reference_scale'?)"),
        (lambda c: c.update(certainity={"alpha": 0.05}), "key certainity: unknown key (did you mean 'certainty'?)"),
        (lambda c: c.update(targets={"label": "low back"}), "key targets: unknown key (did you mean 'target'?)"),
        (lambda c: c["interventions"]["dn"].update(clas="needling"),
         "key interventions.dn.clas: unknown key (did you mean 'class'?)"),
        (lambda c: c["analyses"]["pain_md"].update(mesure="MD"),
         "key analyses.pain_md.mesure: unknown key (did you mean 'measure'?)"),
    ],
)  # fmt: skip
def test_typo_is_refused_with_a_suggestion(edit, expected):
    cfg = copy.deepcopy(RAW)
    edit(cfg)
    assert problems(cfg) == [f"config/config.yaml: {expected}; see config/README.md"]


def test_unknown_key_without_near_match_lists_allowed_keys():
    cfg = copy.deepcopy(RAW)
    cfg["target"] = {"zzz": 1}
    (msg,) = problems(cfg)
    assert msg.startswith("config/config.yaml: key target.zzz: unknown key (allowed keys here: label, regions")


# -------------------------------------------------------------------------------------------- identifiers


def test_code_pattern_is_the_schemas():
    assert _schema()["$defs"]["code"]["pattern"] == CODE_PATTERN


@pytest.mark.parametrize("aid", ["a" * 65, "a" * 300, "pain\n", "pain md", "", "päin"])
def test_bad_analysis_ids_refused(aid):
    cfg = copy.deepcopy(RAW)
    cfg["analyses"][aid] = cfg["analyses"]["pain_md"]
    assert f"config/config.yaml: key analyses: {aid!r} is not a valid code: use 1 to 64 letters" in problems(cfg)[0]


def test_code_with_trailing_newline_refused_in_lists():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["pain_md"]["intervention"] = ["dn\n"]
    assert problems(cfg)[0].startswith("config/config.yaml: key analyses.pain_md.intervention.0: 'dn\\n' is not a valid code")


def test_longest_id_accepted():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["a" * 64] = cfg["analyses"].pop("pain_md")
    validate_config(cfg)


def test_case_only_duplicate_analysis_ids_refused():
    cfg = copy.deepcopy(RAW)
    cfg["analyses"]["Pain_MD"] = copy.deepcopy(cfg["analyses"]["pain_md"])
    assert problems(cfg) == [
        "config/config.yaml: key analyses.Pain_MD: differs from analysis 'pain_md' only by upper/lower case; "
        "their result files would collide on case-insensitive file systems"
    ]


def test_empty_analysis_set_refused(tmp_path):
    cfg = copy.deepcopy(RAW)
    cfg["analyses"] = {}
    assert problems(cfg) == ["config/config.yaml: key analyses: no analyses configured; add at least one (config/README.md)"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="no analyses configured"):
        load_config(path)
