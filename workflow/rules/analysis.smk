# One job per configured analysis, reading only its evidence slice (written by ingest only when the rows
# and settings it carries change), so editing one study reruns only the analyses that read it, and the
# files alone, not Snakemake's metadata, decide what reruns. The same job draws the analysis's forest and
# funnel plots (PNG for Snakemake's report and users' slides, SVG for the HTML report, PDF for journals):
# they depend on that result alone, and one job instead of two per analysis saves a process start and a
# scheduling round each (README, Performance). The computing and the plotting code are inputs too.


rule analyse:
    input:
        evidence=analysis_evidence,
        code=package_files(),
        figure_code=package_files("figures"),
    output:
        json="results/analyses/{analysis_id}.json",
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
        "logs/analyse/{analysis_id}.log",
    wildcard_constraints:
        analysis_id="[A-Za-z0-9_.-]+",
    script:
        "../../scripts/analyse.py"


rule collect:
    input:
        analyses=expand("results/analyses/{analysis_id}.json", analysis_id=ANALYSES),
        evidence=EVIDENCE,
        # rows used only by a network meta-analysis are "used" in the data flow (network.smk)
        networks=lambda wc: after_ingest("results/networks/{network_id}.json", network_id=NETWORKS)(wc),
        code=package_files(),
    output:
        pooled="results/pooled.csv",
        study_effects="results/study_effects.csv",
        subgroups="results/subgroups.csv",
        sensitivity="results/sensitivity.csv",
        small_study="results/small_study.csv",
        bayes="results/bayes.csv",
        bayes_sensitivity="results/bayes_sensitivity.csv",
        bayes_studies="results/bayes_studies.csv",
        meta_regression="results/meta_regression.csv",
        meta_regression_fit="results/meta_regression_fit.csv",
        effects="data/processed/effects.csv",
        dataflow="data/processed/dataflow.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/collect.log",
    script:
        "../../scripts/collect.py"
