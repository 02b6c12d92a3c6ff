# Network meta-analyses (config networks:): one job per network writes its JSON result and draws its graph,
# forest plot and league table from it (one job, not two: README, Performance); one job the three result
# tables. A network reads its evidence slice (every row, since its nodes may pool any code, and the config
# it uses; written by ingest only when its content changes) and the package code.

NETWORKS = sorted(config.get("networks") or {})


rule network:
    input:
        evidence=network_evidence,
        code=package_files(),
        figure_code=package_files("figures"),
    output:
        json="results/networks/{network_id}.json",
        graph_png=report(
            "results/figures/network_graph_{network_id}.png",
            caption="../report/network_graph.rst",
            category="Network meta-analysis",
            subcategory="{network_id}",
        ),
        graph_svg="results/figures/network_graph_{network_id}.svg",
        graph_pdf="results/figures/network_graph_{network_id}.pdf",
        forest_png=report(
            "results/figures/network_forest_{network_id}.png",
            caption="../report/network_forest.rst",
            category="Network meta-analysis",
            subcategory="{network_id}",
        ),
        forest_svg="results/figures/network_forest_{network_id}.svg",
        forest_pdf="results/figures/network_forest_{network_id}.pdf",
        league_png=report(
            "results/figures/league_{network_id}.png",
            caption="../report/league.rst",
            category="Network meta-analysis",
            subcategory="{network_id}",
        ),
        league_svg="results/figures/league_{network_id}.svg",
        league_pdf="results/figures/league_{network_id}.pdf",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/network/{network_id}.log",
    wildcard_constraints:
        network_id="[A-Za-z0-9_.-]+",
    script:
        "../../scripts/network.py"


rule network_tables:
    input:
        networks=after_ingest("results/networks/{network_id}.json", network_id=NETWORKS),
    output:
        estimates="results/network_estimates.csv",
        fit="results/network_fit.csv",
        ranks="results/network_ranks.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/network_tables.log",
    script:
        "../../scripts/network_tables.py"
