# The self-contained HTML report (results/report.html): summary of findings, evidence base, one section
# per analysis, methods, provenance and limitations (tpsynth.report). It reads the evidence ingest wrote
# (rows and the SHA-256 of the sheet bytes parsed), never the sheets, and refuses results not computed
# from that evidence. SOURCE_DATE_EPOCH, if set, fixes the date it shows; otherwise the latest git commit
# date of the workflow, else the evidence file's mtime.
import glob
import os


rule report:
    input:
        analyses=expand("results/analyses/{analysis_id}.json", analysis_id=ANALYSES),
        pooled="results/pooled.csv",
        dataflow="data/processed/dataflow.csv",
        arms="data/processed/arms.csv",
        evidence=EVIDENCE,
        configfiles=CONFIG_FILES,
        forest=expand("results/figures/forest_{analysis_id}.svg", analysis_id=ANALYSES),
        funnel=expand("results/figures/funnel_{analysis_id}.svg", analysis_id=ANALYSES),
        summary="results/figures/summary.svg",
        # meta-regression bubble plots: one directory per analysis with moderators (figures.smk)
        bubble=expand("results/figures/bubble_{analysis_id}", analysis_id=MODERATED),
        networks=expand("results/networks/{network_id}.json", network_id=NETWORKS),
        network_graph=expand("results/figures/network_graph_{network_id}.svg", network_id=NETWORKS),
        network_forest=expand("results/figures/network_forest_{network_id}.svg", network_id=NETWORKS),
        league=expand("results/figures/league_{network_id}.svg", network_id=NETWORKS),
        # optional inputs: unpacked (**) so that the named input exists only when configured
        **({"prisma": "results/figures/prisma.svg"} if PRISMA_FIGURE else {}),
        **(
            {
                "rob_traffic_light": "results/figures/rob_traffic_light.svg",
                "rob_summary": "results/figures/rob_summary.svg",
                "rob_weighted": expand("results/figures/rob_summary_{analysis_id}.svg", analysis_id=ANALYSES),
            }
            if ROB_FIGURES
            else {}
        ),
        code=package_files("report"),
        templates=sorted(glob.glob(os.path.join(workflow.basedir, "tpsynth/report/templates/*"))),
        # a README beside the sheets says how the evidence was assembled (read for the limitations)
        evidence_readme=[p for p in [os.path.join(os.path.dirname(SHEETS["studies"]), "README.md")] if os.path.exists(p)],
    output:
        report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
            labels={"document": "evidence-synthesis report"},
        ),
    params:
        analysis_ids=ANALYSES,
        moderated_ids=MODERATED,
        network_ids=NETWORKS,
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/report.log",
    script:
        "../../scripts/report.py"
