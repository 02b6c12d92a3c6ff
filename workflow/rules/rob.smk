# Risk of bias by domain (only when data.risk_of_bias names a sheet): the traffic-light plot of every
# assessment, the summary bar plot (unweighted) and, per analysis, the summary weighted by each study's
# weight in it (robvis conventions; palette from report.palette).

ROB_FIGURES = bool(SHEETS.get("risk_of_bias"))


rule rob_figures:
    input:
        evidence=EVIDENCE,
        analyses=after_ingest("results/analyses/{analysis_id}.json", analysis_id=ANALYSES),
        code=package_files("figures"),
    output:
        traffic_png=report(
            "results/figures/rob_traffic_light.png",
            caption="../report/rob_traffic_light.rst",
            category="Risk of bias",
        ),
        traffic_svg="results/figures/rob_traffic_light.svg",
        traffic_pdf="results/figures/rob_traffic_light.pdf",
        summary_png=report(
            "results/figures/rob_summary.png",
            caption="../report/rob_summary.rst",
            category="Risk of bias",
        ),
        summary_svg="results/figures/rob_summary.svg",
        summary_pdf="results/figures/rob_summary.pdf",
        weighted_png=expand("results/figures/rob_summary_{analysis_id}.png", analysis_id=ANALYSES),
        weighted_svg=expand("results/figures/rob_summary_{analysis_id}.svg", analysis_id=ANALYSES),
        weighted_pdf=expand("results/figures/rob_summary_{analysis_id}.pdf", analysis_id=ANALYSES),
    params:
        analysis_ids=ANALYSES,
        palette=(config.get("report") or {}).get("palette", "cochrane"),
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/figures/rob.log",
    script:
        "../../scripts/rob_figures.py"
