# Figures: one job per analysis writes its forest and funnel plots (PNG for the report, SVG and PDF for
# journals); one job writes the summary figure of all analyses. Inputs include the figure modules so
# that a change to the plotting code redraws the figures.

FIGURE_CODE = package_files("figures")


rule figures:
    input:
        json=after_ingest("results/analyses/{analysis_id}.json"),
        code=FIGURE_CODE,
    output:
        forest_png=report(
            "results/figures/forest_{analysis_id}.png",
            caption="../report/forest.rst",
            category="Forest plots",
            subcategory="{analysis_id}",
        ),
        forest_svg="results/figures/forest_{analysis_id}.svg",
        forest_pdf="results/figures/forest_{analysis_id}.pdf",
        funnel_png=report(
            "results/figures/funnel_{analysis_id}.png",
            caption="../report/funnel.rst",
            category="Funnel plots",
            subcategory="{analysis_id}",
        ),
        funnel_svg="results/figures/funnel_{analysis_id}.svg",
        funnel_pdf="results/figures/funnel_{analysis_id}.pdf",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/figures/{analysis_id}.log",
    wildcard_constraints:
        analysis_id="[A-Za-z0-9_.-]+",
    script:
        "../../scripts/figures.py"


rule summary_figure:
    input:
        analyses=after_ingest("results/analyses/{analysis_id}.json", analysis_id=ANALYSES),
        code=FIGURE_CODE,
    output:
        png=report(
            "results/figures/summary.png",
            caption="../report/summary.rst",
            category="Summary",
        ),
        svg="results/figures/summary.svg",
        pdf="results/figures/summary.pdf",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/figures/summary.log",
    script:
        "../../scripts/summary_figure.py"


# Meta-regression (analyses with moderators:): one bubble plot per continuous moderator, in a directory
# per analysis (which moderators are continuous is known only from the sheets): {moderator}.png/.svg/.pdf
MODERATED = [a for a in ANALYSES if config["analyses"][a].get("moderators")]


rule bubble:
    input:
        json=after_ingest("results/analyses/{analysis_id}.json"),
        code=FIGURE_CODE,
    output:
        report(
            directory("results/figures/bubble_{analysis_id}"),
            patterns=["{moderator}.png"],
            caption="../report/bubble.rst",
            category="Meta-regression",
            subcategory="{analysis_id}",
        ),
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/figures/bubble_{analysis_id}.log",
    wildcard_constraints:
        analysis_id="[A-Za-z0-9_.-]+",
    script:
        "../../scripts/bubble.py"
