# One job per configured analysis. The sheets are ancient() inputs: a job reruns when the digest of
# the rows and settings it reads changes (a params change), so editing one study reruns only the
# analyses that read it.


rule analyse:
    input:
        raw_sheets(ancient_files=True),
    output:
        json="results/analyses/{analysis_id}.json",
    params:
        digest=lambda wc: DIGESTS[wc.analysis_id],
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
        flow="data/processed/ingest_flow.csv",
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
        effects="data/processed/effects.csv",
        dataflow="data/processed/dataflow.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/collect.log",
    script:
        "../../scripts/collect.py"
