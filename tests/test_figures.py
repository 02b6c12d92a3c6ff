"""Structural tests of the figures: what is drawn (by SVG id and text), axes, layout and reproducibility."""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tpsynth.figures import common, forest_figure, funnel_figure, save_all, summary_figure
from tpsynth.results import AnalysisResult, BayesSummary, Pooled

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"


def make_analysis(*args, **kw) -> AnalysisResult:
    """A hand-made typed analysis result (:func:`analysis_dict`)."""
    return AnalysisResult.from_dict(analysis_dict(*args, **kw), source="test")


def bayes_part(estimate, ci_low, ci_high, k=4) -> BayesSummary:
    """A hand-made Bayesian result: only the numbers the figures draw differ from zero."""
    nums = dict.fromkeys(["mean", "sd", "hdi_low", "hdi_high", "pi_low", "pi_high", "tau_median", "tau_ci_low",
                          "tau_ci_high", "prob_benefit", "prob_important_benefit", "mid"], 0.0)  # fmt: skip
    return BayesSummary(k=k, tau_prior="half_normal(0.5)", tau_prior_source="config", mu_prior="flat",
                              estimate=estimate, ci_low=ci_low, ci_high=ci_high, studies=(), headline_below_k=5,
                              headline=True, **nums)  # fmt: skip


def analysis_dict(k=5, measure="SMD", higher_is_better=False, subgroups=False, tau2=0.05, offaxis=False,
                  aid="test", long_names=False, trimfill=False):  # fmt: skip
    """A hand-made analysis (the JSON layout) with ``k`` studies (log values for ratio measures)."""
    ratio = measure in ("RR", "OR")
    studies = []
    for i in range(k):
        yi = 0.1 * ((i % 7) - 3) + (0.3 if ratio else 0.0)
        vi = 0.02 + 0.01 * (i % 5)
        if offaxis and i == 0:
            vi = 50.0
        se = math.sqrt(vi)
        author = (f"Verylongauthorname-Doublebarrelled{i} et al." if long_names else f"Author{i}")
        studies.append({
            "study_id": f"s{i}", "author": author, "year": (None if i == 1 else 1990 + (i * 7) % 35),
            "yi": yi, "vi": vi, "ci_low": yi - 1.96 * se, "ci_high": yi + 1.96 * se, "weight": 100.0 / k,
            "n_intervention": 20 + i, "n_comparator": 21 + i,
            "arms_text": ({} if i == 2 else (
                {"intervention": f"{10 + i}/{20 + i}", "comparator": f"{8 + i}/{21 + i}"} if ratio else
                {"intervention": f"{1.5 + i:.2f} (1.10), n={20 + i}", "comparator": f"{2.5:.2f} (1.20), n={21 + i}"})),
            "derived": i % 4 == 1, "low_confidence": i % 6 == 2,
            "rob_overall": ["low", "some_concerns", "high", "not_assessed"][i % 4],
            "region": "neck", "source": "contrast" if i == 2 else "arms",
            "subgroup": (["Neck", "Lumbar"][i % 2] if subgroups else None), "notes": [],
        })  # fmt: skip
    est = sum(s["yi"] for s in studies) / k if k else None
    pooled = {
        "k": k, "estimate": est, "se": 0.1 if k else None,
        "ci_low": est - 0.25 if k else None, "ci_high": est + 0.25 if k else None, "pvalue": 0.2,
        "pi_low": est - 0.6 if k >= 3 else None, "pi_high": est + 0.6 if k >= 3 else None,
        "tau2": tau2 if k > 1 else None, "tau2_ci_low": 0.0 if tau2 is not None else None,
        "tau2_ci_high": 0.4 if tau2 is not None else None, "i2": 30.0 if k > 1 else None, "i2_ci_low": 0.0,
        "i2_ci_high": 80.0, "q": 4.0, "q_df": k - 1, "q_pvalue": 0.4, "method": "REML" if k > 1 else "single study",
        "ci_method": "hksj", "n_participants": sum(s["n_intervention"] + s["n_comparator"] for s in studies),
        "measure": measure, "q_between": 1.2 if subgroups else None, "q_between_df": 1 if subgroups else None,
        "q_between_pvalue": 0.27 if subgroups else None, "notes": [],
    }  # fmt: skip
    groups = []
    if subgroups:
        for name in ("Neck", "Lumbar"):
            m = [s for s in studies if s["subgroup"] == name]
            e = sum(s["yi"] for s in m) / len(m)
            groups.append({"subgroup": name, "column": "region", "k": len(m), "estimate": e, "se": 0.1, "ci_low": e - 0.3,
                           "ci_high": e + 0.3, "tau2": 0.01, "i2": 10.0})  # fmt: skip
    small = {"k": k, "egger_stat": None, "egger_pvalue": None, "trimfill_k0": None, "trimfill_estimate": None,
             "skipped_reason": None if k >= 10 else f"k = {k} < 10"}  # fmt: skip
    if trimfill:
        small.update({"egger_stat": 2.1, "egger_pvalue": 0.04, "trimfill_k0": 2, "trimfill_estimate": est - 0.1,
                      "trimfill_filled_yi": [0.9, 1.1], "trimfill_filled_vi": [0.04, 0.06]})  # fmt: skip
    return {
        "analysis_id": aid,
        "settings": {"title": "Dry needling vs sham: pain, up to 3 months", "measure": measure, "level": 0.95},
        "outcome": {"label": "Pain", "higher_is_better": higher_is_better, "type": "dichotomous" if ratio else
                    "continuous"},  # fmt: skip
        "labels": {"intervention": ["Dry needling of trigger points"], "comparator": ["Sham needling"]},
        "pooled": pooled, "studies": studies, "subgroups": groups, "small_study": small,
    }  # fmt: skip


def svg_of(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata=common.METADATA["svg"])
    return buf.getvalue().decode("utf-8")


def ids(svg: str, prefix: str) -> set[str]:
    return set(re.findall(rf'id="({re.escape(prefix)}[^"]*)"', svg))


def texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
    return out


@pytest.mark.parametrize("k", [1, 2, 5, 60])
def test_one_square_and_one_rob_dot_per_study(k):
    svg = svg_of(forest_figure(make_analysis(k)))
    assert ids(svg, "study-square-") == {f"study-square-{i}" for i in range(k)}
    assert ids(svg, "study-ci-") == {f"study-ci-{i}" for i in range(k)}
    assert ids(svg, "rob-") - ids(svg, "rob-legend") == {f"rob-{i}" for i in range(k)}


def test_single_study_is_not_pooled():
    fig = forest_figure(make_analysis(1))
    svg = svg_of(fig)
    assert "diamond-overall" not in svg and "pi-bar" not in svg
    assert any("Single study, not pooled" in t for t in texts(fig))


def test_diamond_prediction_interval_and_method_text():
    fig = forest_figure(make_analysis(5))
    svg = svg_of(fig)
    assert 'id="diamond-overall"' in svg and 'id="pi-bar"' in svg
    all_text = "\n".join(texts(fig))
    assert "Random effects, REML, HKSJ CI" in all_text
    assert "Heterogeneity: \u03c4\u00b2 = 0.050 [0.000, 0.400]" in all_text
    assert "Test for overall effect: t =" in all_text and "df = 4" in all_text
    assert 'id="pi-bar"' not in svg_of(forest_figure(make_analysis(2)))  # no PI with k < 3


def test_subgroups_have_headings_diamonds_and_test():
    fig = forest_figure(make_analysis(6, subgroups=True))
    svg = svg_of(fig)
    assert {'diamond-subgroup-Neck', 'diamond-subgroup-Lumbar'} <= ids(svg, "diamond-subgroup-")
    assert 'id="diamond-overall"' in svg
    all_text = texts(fig)
    assert "Neck" in all_text and "Lumbar" in all_text
    assert any(t.startswith("Test for subgroup differences: Q = 1.20, df = 1 (p = 0.27)") for t in all_text)
    assert ids(svg, "study-square-") == {f"study-square-{i}" for i in range(6)}


def test_ratio_measure_on_log_axis_labelled_on_ratio_scale():
    fig = forest_figure(make_analysis(5, measure="RR", higher_is_better=True))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    assert lo > 0 and math.isclose(lo * hi, 1.0)  # symmetric around 1
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in labels and all(not lab.startswith("\u2212") for lab in labels)
    # the pooled estimate is printed on the ratio scale
    est = math.exp(make_analysis(5, measure="RR").pooled.estimate)
    assert any(t.startswith(f"{est:.2f} [") for t in texts(fig))
    assert forest_figure(make_analysis(5)).axes[0].get_xscale() == "linear"


def test_favours_labels_follow_outcome_direction():
    def favours(fig):
        return {t.get_gid(): t.get_text().replace("\n", " ") for t in fig.texts if (t.get_gid() or "").startswith("favours")}

    lower = favours(forest_figure(make_analysis(3, higher_is_better=False)))
    higher = favours(forest_figure(make_analysis(3, higher_is_better=True)))
    assert lower["favours-left"] == "Favours dry needling of trigger points" and lower["favours-right"] == "Favours sham needling"
    assert higher["favours-left"] == lower["favours-right"] and higher["favours-right"] == lower["favours-left"]
    # direction unknown (imported Cochrane outcomes): only where values are higher, no side favoured
    unknown = favours(forest_figure(make_analysis(3, higher_is_better=None)))
    assert unknown == {"favours-left": "Higher with sham needling", "favours-right": "Higher with dry needling of trigger points"}


def test_ci_running_off_the_axis_gets_an_arrow():
    svg = svg_of(forest_figure(make_analysis(4, offaxis=True)))
    assert {"ci-arrow-0-left", "ci-arrow-0-right"} <= ids(svg, "ci-arrow-")
    assert not ids(svg, "ci-arrow-1")


def test_null_tau2_and_empty_analysis():
    fig = forest_figure(make_analysis(4, tau2=None))
    assert any("\u03c4\u00b2 not estimated" in t for t in texts(fig))
    empty = make_analysis(0)
    for build in (forest_figure, funnel_figure):
        assert 'id="no-data"' in svg_of(build(empty))


def test_sort_by_year_missing_last_and_configurable():
    a = make_analysis(5)
    fig = forest_figure(a)
    labels = [t.get_text() for t in fig.texts if t.get_text().startswith("Author")]
    years = [int(re.search(r"\d{4}", x).group()) for x in labels[:-1]]
    assert years == sorted(years) and not re.search(r"\d{4}", labels[-1])  # Author1 has no year
    by_author = [t.get_text().split()[0] for t in forest_figure(a, sort_by="author").texts
                 if t.get_text().startswith("Author")]  # fmt: skip
    assert by_author == sorted(by_author)
    with pytest.raises(ValueError):
        forest_figure(a, sort_by="colour")


def test_derived_and_low_confidence_marks_explained():
    fig = forest_figure(make_analysis(5))
    all_text = texts(fig)
    assert any(t.endswith(common.DAGGER) for t in all_text)  # study 1 is derived
    assert any(t.endswith(common.DDAGGER) for t in all_text)  # study 2 is low confidence
    foot = "\n".join(all_text)
    assert f"{common.DAGGER} statistics converted" in foot and f"{common.DDAGGER} low extraction confidence" in foot
    assert "reported contrast" in all_text


def _overlaps(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    artists = [t for t in fig.texts if t.get_text().strip()]
    for ax in fig.axes:
        artists += [t for t in ax.get_xticklabels() if t.get_text().strip()]
    boxes = [(t, t.get_window_extent(renderer)) for t in artists]
    bad = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i][1], boxes[j][1]
            if a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5:
                bad.append((boxes[i][0].get_text(), boxes[j][0].get_text()))
    fw, fh = fig.bbox.width, fig.bbox.height
    outside = [t.get_text() for t, bb in boxes if bb.x0 < -0.5 or bb.x1 > fw + 0.5 or bb.y0 < -0.5 or bb.y1 > fh + 0.5]
    return bad, outside


@pytest.mark.parametrize("k,subgroups", [(60, False), (60, True), (1, False), (5, True)])
def test_no_overlapping_text_in_forest(k, subgroups):
    fig = forest_figure(make_analysis(k, subgroups=subgroups, long_names=True, offaxis=True))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    bad, outside = _overlaps(fig)
    assert not bad, bad[:5]
    assert not outside, outside[:5]
    if k == 60:
        assert fig.get_figheight() > 15  # height scales with rows


def test_no_overlapping_text_in_funnel_and_summary():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in (funnel_figure(make_analysis(12, trimfill=True)),
                summary_figure([make_analysis(5, aid="a"), make_analysis(3, "RR", aid="b"), make_analysis(0, aid="c")])):  # fmt: skip
        FigureCanvasAgg(fig)
        bad, outside = _overlaps(fig)
        assert not bad, bad[:5]
        assert not outside, outside[:5]


def test_funnel_contours_inverted_se_and_filled_studies():
    fig = funnel_figure(make_analysis(12, trimfill=True))
    ax = fig.axes[0]
    y0, y1 = ax.get_ylim()
    assert y1 == 0 and y0 > 0  # standard error inverted, 0 at the top
    svg = svg_of(fig)
    assert ids(svg, "funnel-study-") == {f"funnel-study-{i}" for i in range(12)}
    assert ids(svg, "funnel-filled-") == {"funnel-filled-0", "funnel-filled-1"}
    assert {"funnel-contour-0.01", "funnel-contour-0.05", "funnel-contour-0.1"} <= ids(svg, "funnel-contour-")
    assert "funnel-pseudo-ci" in svg
    few = funnel_figure(make_analysis(4, measure="OR"))
    assert few.axes[0].get_xscale() == "log"
    caption = [t.get_text() for t in few.texts if t.get_gid() == "funnel-caption"][0]
    assert "cannot be judged" in caption.replace("\n", " ")
    assert "funnel-filled" not in svg_of(few)


def test_summary_rows_blocks_and_certainty():
    a = make_analysis(5, aid="a_smd")
    b = make_analysis(3, "RR", aid="b_rr")
    b = replace(b, pooled=replace(b.pooled, certainty="moderate"))
    c0 = make_analysis(0, aid="c_empty")
    fig = summary_figure([a, b, c0])
    svg = svg_of(fig)
    assert ids(svg, "summary-est-") == {"summary-est-a_smd", "summary-est-b_rr"}
    assert {"summary-pi-a_smd", "summary-pi-b_rr"} <= ids(svg, "summary-pi-")
    scales = sorted(ax.get_xscale() for ax in fig.axes)
    assert scales == ["linear", "log"]  # one block per measure family
    cert = {t.get_gid(): t.get_text() for t in fig.texts if (t.get_gid() or "").startswith("certainty-")}
    assert cert == {"certainty-a_smd": common.DASH, "certainty-b_rr": "Moderate", "certainty-c_empty": common.DASH}
    assert "no usable data" in texts(fig)


@pytest.mark.slow
def test_saving_twice_is_byte_identical(tmp_path):
    for name, build in (("forest", forest_figure), ("funnel", funnel_figure)):
        first = save_all(build(make_analysis(5, subgroups=True)), tmp_path / "one" / name)
        second = save_all(build(make_analysis(5, subgroups=True)), tmp_path / "two" / name)
        for p, q in zip(first, second, strict=True):
            assert p.read_bytes() == q.read_bytes(), p.name
    pdf = (tmp_path / "one" / "forest.pdf").read_bytes()
    svg = (tmp_path / "one" / "forest.svg").read_text()
    assert b"CreationDate" not in pdf and "<dc:date>" not in svg
    assert (tmp_path / "one" / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pyplot_not_imported():
    code = "import sys, tpsynth.figures; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.pipeline
def test_pipeline_writes_every_figure(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-c", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    for aid in ("pain_smd", "pain_md", "resp_rr"):
        for kind in ("forest", "funnel"):
            for ext in ("png", "svg", "pdf"):
                f = tmp_path / "results" / "figures" / f"{kind}_{aid}.{ext}"
                assert f.is_file() and f.stat().st_size > 1000, f
    for ext in ("png", "svg", "pdf"):
        assert (tmp_path / "results" / "figures" / f"summary.{ext}").is_file()
    svg = (tmp_path / "results" / "figures" / "forest_resp_rr.svg").read_text()
    assert "study-square-0" in svg


def test_capped_tau2_bound_is_shown_as_lower_limit():
    from tpsynth.figures.forest import _stats_lines

    pooled = {"tau2": 0.595, "tau2_ci_low": 0.0, "tau2_ci_high": 100.0, "q": 3.29, "q_df": 1, "q_pvalue": 0.07,
              "i2": 70.0, "i2_ci_low": 0.0, "i2_ci_high": 99.7}  # fmt: skip
    capped = _stats_lines(None, Pooled(k=2, measure="MD", tau2_ci_capped=True, **pooled), 2, False, False)[0]
    plain = _stats_lines(None, Pooled(k=2, measure="MD", **pooled), 2, False, False)[0]
    assert "[0.000, >100]" in capped
    assert "[0.000, 100.000]" in plain


def test_bayesian_result_is_a_labelled_second_diamond_and_in_the_summary():
    """Issue 9: the Bayesian posterior median and credible interval appear as their own labelled row in the
    forest plot and beside the frequentist interval in the summary figure; never for a single study."""
    a = make_analysis(4, aid="few")
    est = a.pooled.estimate
    a = replace(a, bayes=bayes_part(est + 0.05, est - 0.4, est + 0.5))
    fig = forest_figure(a)
    svg = svg_of(fig)
    assert 'id="diamond-bayes"' in svg and 'id="diamond-overall"' in svg
    assert any(t.startswith("Bayesian random effects (95% credible interval)") for t in texts(fig))
    assert any("Purple diamond: Bayesian random-effects posterior median" in t for t in texts(fig))
    one = make_analysis(1, aid="one")
    one = replace(one, bayes=a.bayes)
    assert "diamond-bayes" not in svg_of(forest_figure(one))
    s = svg_of(summary_figure([a, one]))
    assert ids(s, "summary-bayes-") == {"summary-bayes-few", "summary-bayes-ci-few"}
