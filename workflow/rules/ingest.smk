# Validate the extraction sheets and harmonise every arm to mean/SD (or events), flagging derived values.


rule ingest:
    input:
        raw_sheets(),
        package_files(),
    output:
        arms="data/processed/arms.csv",
        flow="data/processed/ingest_flow.csv",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/ingest.log",
    script:
        "../../scripts/ingest.py"
