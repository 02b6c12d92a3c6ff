# Figures of several analyses, or drawn apart from their analysis: the summary figure of all analyses and
# the bubble plots of meta-regressions (each analysis's forest and funnel plots are drawn by its analyse
# job, analysis.smk). Inputs include the figure modules so that a change to the plotting code redraws them.

FIGURE_CODE = package_files("figures")


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
