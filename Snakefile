"""Trigger-point evidence synthesis: extraction sheets -> pooled effects, figures, report.

Run from the repository (or any working directory holding config/config.yaml and the sheets):
    snakemake --cores 2
The tpsynth package must be installed in the environment that runs Snakemake and the jobs
(`make report` does it: pip install -e . into .venv; conda: workflow/envs/tpsynth.post-deploy.sh).
"""

import sys

from snakemake.utils import min_version, update_config

min_version("9.0")

try:
    from tpsynth.config import ConfigError, analysis_ids, fill_defaults, read_config_file, validate_config
    from tpsynth.pipeline import evidence_out_of_date, mark_out_of_date, package_files, sheet_paths
except ImportError as err:
    sys.exit(f"{err}: install the tpsynth package into this environment first (`pip install -e .`, or `make report`)")


# The config is data: it is read here as plain YAML (tpsynth.config.read_config_file: no tags, no YTE
# templates, bounded aliases and size), never with Snakemake's `configfile:` directive, which evaluates
# YTE templates. Another config file: `snakemake --config configfile=PATH`. A file given with Snakemake's
# own --configfile has already been read by Snakemake (YTE included) before this runs; it is read again
# here through the same checks, so that a template or a typo still stops the run (README.md).
# Parse time checks only what the graph needs: the config (which analyses, which sheets). The sheets are
# validated once, by the ingest job, which hands the evidence on to every later job (workflow/rules/ingest.smk).
_overrides = dict(workflow.config_settings.config)
CONFIG_PATH = str(_overrides.pop("configfile", "config/config.yaml"))
try:
    if workflow.overwrite_configfiles:
        _config = {}
        for _f in workflow.overwrite_configfiles:
            update_config(_config, read_config_file(_f))
        CONFIG_FILES = [str(f) for f in workflow.overwrite_configfiles]
    else:
        _config = read_config_file(CONFIG_PATH)
        CONFIG_FILES = [CONFIG_PATH]
    update_config(_config, _overrides)
    # every problem at once, as FILE: key a.b: message; then fill_defaults (below) fills the defaults
    validate_config(_config, ", ".join(CONFIG_FILES))
except ConfigError as err:
    sys.exit(f"Invalid configuration:\n{err}")
config.clear()
config.update(_config)
fill_defaults(config)  # workflow/schemas/config.schema.yaml's defaults, as snakemake.utils.validate would

SHEETS = sheet_paths(config)
ANALYSES = analysis_ids(config)  # natural order: analysis_3_2 before analysis_3_10


# The corpus re-analysis (rule corpus, not part of all) runs in config corpus.shards shards.
scattergather:
    corpus=int((config.get("corpus") or {}).get("shards", 1)),


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/network.smk"
include: "workflow/rules/rob.smk"
include: "workflow/rules/prisma.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.ingest.output,
        rules.collect.output,
        expand(
            "results/figures/{kind}_{analysis_id}.{ext}",
            kind=["forest", "funnel"],
            analysis_id=ANALYSES,
            ext=["png", "svg", "pdf"],
        ),
        rules.summary_figure.output,
        expand("results/figures/bubble_{analysis_id}", analysis_id=MODERATED),
        rules.network_tables.output,
        expand(
            "results/figures/{kind}_{network_id}.{ext}",
            kind=["network_graph", "network_forest", "league"],
            network_id=NETWORKS,
            ext=["png", "svg", "pdf"],
        ),
        rules.rob_figures.output if ROB_FIGURES else [],
        rules.prisma_figure.output if PRISMA_FIGURE else [],
        rules.report.output,
    default_target: True
