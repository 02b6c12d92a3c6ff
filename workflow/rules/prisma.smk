# PRISMA 2020 flow diagram (only when the config has prisma: counts or data.screening names a screening
# log): derived and checked by tpsynth.prisma when the sheets are validated, drawn here.

PRISMA_FIGURE = bool(config.get("prisma") or (config.get("data") or {}).get("screening"))


rule prisma_figure:
    input:
        evidence=EVIDENCE,
        code=package_files("figures"),
    output:
        png=report("results/figures/prisma.png", caption="../report/prisma.rst", category="PRISMA 2020"),
        svg="results/figures/prisma.svg",
        pdf="results/figures/prisma.pdf",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/figures/prisma.log",
    script:
        "../../scripts/prisma_figure.py"
