"""The report's meta-regression sections against metafor.

The fixture ``tests/fixtures/bcg`` holds the 13 BCG vaccine trials of ``metadat::dat.bcg`` (written by
its ``make_fixture.R``) with four analyses: moderators latitude + allocation (Wald), latitude (HKSJ: F
test), latitude on the first six trials (exact permutation test) and subgroups by allocation with a
common tau². Each runs through the pipeline's ``run_analysis`` and the real report template; the
numbers in the rendered HTML must be metafor's (``tests/reference/metareg.json``, made by
``tests/reference/make_reference.R``) written by ``tpsynth.display``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from html import unescape
from pathlib import Path

import pytest
import yaml

from tpsynth import display
from tpsynth.analysis import run_analysis
from tpsynth.config import analysis_settings, validate_config
from tpsynth.harmonise import harmonise
from tpsynth.report import build
from tpsynth.results import MetaRegression
from tpsynth.validate import validate_sheets

FIXTURE = Path(__file__).parent / "fixtures" / "bcg"
REFERENCE = json.loads((Path(__file__).parent / "reference" / "metareg.json").read_text())
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6"><rect width="8" height="6"/></svg>'


def _case(name: str, method: str, ci: str) -> dict:
    return next(c for c in REFERENCE["cases"] if (c["name"], c["method"], c["ci"]) == (name, method, ci))


@pytest.fixture(scope="module")
def bcg():
    config = validate_config(yaml.safe_load((FIXTURE / "config/config.yaml").read_text()))
    raw = FIXTURE / "data/raw"
    sheets, problems = validate_sheets(str(raw / "studies.csv"), str(raw / "outcomes.csv"), None, config)
    assert problems == []
    arms = harmonise(sheets)[0].rows()
    results = {aid: run_analysis(analysis_settings(config, aid), sheets, config, arms=arms) for aid in config["analyses"]}
    return config, sheets, results


@pytest.fixture(scope="module")
def html(bcg, tmp_path_factory):
    config, sheets, results = bcg
    svg = tmp_path_factory.mktemp("fig") / "ablat.svg"
    svg.write_bytes(SVG)
    figures = {"bubble_bcg_ablat_alloc/ablat": build.data_uri(svg)}  # bcg_ablat_knha's plot left missing
    prov = build.provenance([("config/config.yaml", str(FIXTURE / "config/config.yaml"))], [], None, "1700000000")
    ctx = build.build_context(
        analyses=list(results.values()), config=config, studies=sheets.studies, outcomes=sheets.outcomes.rows(),
        contrasts=sheets.contrasts, flow_rows=[], arms=[], figures=figures, prov=prov,
    )  # fmt: skip
    return build.render(ctx)


def _block(html: str, analysis_id: str, title: str) -> str:
    """The text of the meta-regression block titled ``title`` in the section of ``analysis_id``."""
    section = html.split(f'id="{build.anchor(analysis_id)}"', 1)[1].split("</section>", 1)[0]
    block = section.split(f"<h4>{title}</h4>", 1)[1].split('<div class="metareg">', 1)[0]
    return block


def _text(block: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", block)))


def _rows(block: str) -> list[list[str]]:
    body = block.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)] for tr in re.findall(r"<tr>(.*?)</tr>", body)]


def _expected_rows(out: dict, labels: list[str], ratio: bool) -> list[list[str]]:
    rows = []
    for j, label in enumerate(labels):
        b, lo, hi = out["beta"][j], out["ci_lb"][j], out["ci_ub"][j]
        row = [label, display.effect(b, lo, hi, digits=3)]
        if ratio:
            row.append(display.effect(b, lo, hi, ratio=True, digits=3))
        rows.append([*row, display.number(out["zval"][j]), display.p_value(out["pval"][j])])
    return rows


def test_moderators_section_equals_metafor(html):
    """rma(yi, vi, mods = ~ ablat + factor(alloc)) on dat.bcg (log RR; REML, Wald)."""
    out = _case("bcg_ablat_alloc", "REML", "wald")["out"]
    block = _block(html, "bcg_ablat_alloc", "Meta-regression on ablat and alloc")
    labels = ["Intercept", "ablat (per 1 unit)", "alloc: random vs alternate", "alloc: systematic vs alternate"]
    assert _rows(block) == _expected_rows(out, labels, ratio=True)
    text = _text(block)
    assert "Reference level of alloc: alternate." in text
    assert "The intercept is the RR predicted at ablat = 0, alloc alternate." in text
    assert f"QM = {display.number(out['QM'])} (chi² on 3 df), {display.p_value(out['QMp'])}" in text
    k, p = 13, 4
    assert f"QE = {display.number(out['QE'])} on {k - p} df, {display.p_value(out['QEp'])}" in text
    assert f"tau² = {display.small(out['tau2'])}; I² = {display.number(out['I2'], 0)}%" in text
    assert f"{display.number(out['R2'], 0)}% of tau² accounted for by the moderators" in text
    assert "1,000 random permutations, seed 20240601" in text
    # the Cochrane Handbook caveat (13 studies, 2 moderators) and the plain-language reading
    assert "fewer than 10 studies per moderator" in text and "Cochrane Handbook 10.11.5" in text
    assert "observational association across trials, not evidence of cause and effect" in text
    assert f"the effect differs with ablat and alloc beyond chance (test of moderators {display.p_value(out['QMp'])})" in text
    slope = [display.value(display.to_display(out[x][1], True), 3, True) for x in ("beta", "ci_lb", "ci_ub")]
    assert (f"Per 1 unit higher ablat, the RR is multiplied by {slope[0]} (95% CI {slope[1]} to {slope[2]}; "
            f"{display.p_value(out['pval'][1])})") in text  # fmt: skip
    # the bubble plot is embedded inline as the other figures are
    assert f'src="data:image/svg+xml;base64,{base64.b64encode(SVG).decode()}"' in block
    assert 'alt="Bubble plot: meta-regression of BCG vaccine vs none, by latitude and allocation on ablat"' in block


def test_hksj_gives_the_f_test_and_t_statistics(html):
    """rma(yi, vi, mods = ~ ablat, test = "knha"): QM is F(1, k - p), coefficients have t statistics."""
    out = _case("bcg_ablat", "REML", "hksj")["out"]
    block = _block(html, "bcg_ablat_knha", "Meta-regression on ablat")
    assert '<th scope="col" class="n">t</th>' in block
    assert _rows(block) == _expected_rows(out, ["Intercept", "ablat (per 1 unit)"], ratio=True)
    text = _text(block)
    assert out["QMdf"] == [1, 11]
    assert f"F(1, 11) = {display.number(out['QM'])}, {display.p_value(out['QMp'])}" in text
    assert "Caution" not in text  # 13 studies for one moderator: no caveat
    assert "Bubble plot not available." in text  # the figure was not given


def test_exact_permutation_test_equals_permutest(html):
    """permutest(rma(yi, vi, mods = ~ ablat, test = "knha")) on the first six trials: exact, 360 permutations."""
    ref = next(c for c in REFERENCE["permutation"] if (c["name"], c["method"], c["ci"]) == ("bcg6_ablat", "REML", "hksj"))
    text = _text(_block(html, "bcg6_ablat_knha", "Meta-regression on ablat"))
    assert ref["exact_iter"] == 360
    assert f"Permutation test {display.p_value(ref['QMp'])} (exact: all 360 distinct permutations)" in text


def test_common_tau2_subgroup_model_section(html):
    """subgroup_model common_tau2 = rma(yi, vi, mods = ~ factor(alloc)): its own section with the same numbers."""
    out = _case("bcg_alloc", "REML", "wald")["out"]
    title = "Subgroup model with a common tau² (meta-regression on alloc)"
    block = _block(html, "bcg_alloc_common", title)
    labels = ["Intercept", "alloc: random vs alternate", "alloc: systematic vs alternate"]
    assert _rows(block) == _expected_rows(out, labels, ratio=True)
    text = _text(block)
    assert f"QM = {display.number(out['QM'])} (chi² on 2 df), {display.p_value(out['QMp'])}" in text
    assert "the data show no clear difference in the effect with alloc" in text and "does not show that there is none" in text
    assert "The intercept is the RR predicted at alloc alternate." in text


def test_analyses_without_a_model_have_no_section(bcg):
    _, _, results = bcg
    a = replace(results["bcg_ablat_knha"], meta_regression=None)
    assert build.meta_regression_section(a) is None
    skipped = replace(a, meta_regression=MetaRegression(moderators=("ablat",), skipped_reason="why"))
    assert build.meta_regression_section(skipped)["skipped_reason"] == "why"


def test_difference_measures_are_not_exponentiated(bcg):
    """On a difference scale there is no exp() column and the sentence says 'changes by'."""
    _, _, results = bcg
    a = results["bcg_ablat_knha"]
    a = replace(a, settings=replace(a.settings, measure="MD"))
    sec = build.meta_regression_section(a)
    assert sec["ratio"] is False and all(r["ratio"] is None for r in sec["rows"])
    assert "Per 1 unit higher ablat, the MD changes by" in sec["plain"]


def test_results_follow_the_schema(bcg, tmp_path):
    """The written JSON of every fixture analysis, including subgroup_regression, follows the result schema."""
    import jsonschema

    from tpsynth.sheets import SCHEMA_DIR

    schema = yaml.safe_load((SCHEMA_DIR / "analysis_result.schema.yaml").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    _, _, results = bcg
    for aid, res in results.items():
        res.to_json(tmp_path / f"{aid}.json")
        written = json.loads((tmp_path / f"{aid}.json").read_text(encoding="utf-8"))
        assert list(validator.iter_errors(written)) == [], aid
    assert results["bcg_alloc_common"].subgroup_regression is not None
    assert "subgroup_regression" not in results["bcg_ablat_knha"].to_dict()
    bad = results["bcg_alloc_common"].to_dict()
    bad["subgroup_regression"]["permutation_exact"] = "yes"
    assert list(validator.iter_errors(bad))


def test_subgroup_test_with_hksj_is_written_as_f(bcg):
    """With a common tau² and HKSJ the test for subgroup differences is metafor's F test, written as F(df1, df2),
    not as a Q on df (the separate-subgroups test keeps RevMan's Q)."""
    import copy

    config, sheets, _ = bcg
    config = copy.deepcopy(config)
    config["analyses"]["bcg_alloc_common"]["ci"] = "hksj"
    arms = harmonise(sheets)[0].rows()
    res = run_analysis(analysis_settings(config, "bcg_alloc_common"), sheets, config, arms=arms)
    out = _case("bcg_alloc", "REML", "hksj")["out"]
    assert out["QMdf"] == [2, 10]
    prov = build.provenance([], [], None, "1700000000")
    html = build.render(build.build_context(analyses=[res], config=config, studies=sheets.studies,
                                            outcomes=sheets.outcomes.rows(), contrasts=sheets.contrasts, flow_rows=[],
                                            arms=[], figures={}, prov=prov))  # fmt: skip
    text = _text(html.split('id="analysis-bcg_alloc_common"', 1)[1].split("</section>", 1)[0])
    f = f"F(2, 10) = {display.number(out['QM'])}, {display.p_value(out['QMp'])}"
    assert f"Test for subgroup differences (the test of the subgroup factor in one model with a common tau², below): {f}." in text
    assert "Test for subgroup differences: Q =" not in text


@pytest.mark.parametrize("ci", ["wald", "hksj"])
def test_forest_plot_writes_the_common_tau2_test(bcg, ci):
    """The forest plot's line for subgroup differences with a common tau²: metafor's QM (chi²) or F."""
    import copy

    from tpsynth.figures.forest import forest_figure

    config, sheets, _ = bcg
    config = copy.deepcopy(config)
    config["analyses"]["bcg_alloc_common"]["ci"] = ci
    res = run_analysis(analysis_settings(config, "bcg_alloc_common"), sheets, config, arms=harmonise(sheets)[0].rows())
    out = _case("bcg_alloc", "REML", ci)["out"]
    texts = [t.get_text() for t in forest_figure(res).texts]
    line = next(t for t in texts if t.startswith("Test for subgroup differences"))
    if ci == "hksj":
        assert line == f"Test for subgroup differences (common τ²): F(2, 10) = {display.number(out['QM'])} ({display.p_value(out['QMp'])})"
    else:
        assert line == f"Test for subgroup differences (common τ²): QM = {display.number(out['QM'])}, df = 2 ({display.p_value(out['QMp'])})"
