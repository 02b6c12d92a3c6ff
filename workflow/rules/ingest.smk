# Validate the extraction sheets once and harmonise every arm to mean/SD (or events), flagging derived
# values. ingest is a checkpoint: it writes data/processed/evidence.json (typed rows, arms, row flow and
# the SHA-256 of the bytes parsed) and one evidence slice per analysis, data/processed/slices/{id}.json
# (per network: data/processed/slices/networks/{id}.json), rewritten only when its content changes; every
# later job reads these, never the raw sheets.

# Content, not only modification times: a sheet or a configuration whose content differs from what the
# evidence was built from (SHA-256 recorded in evidence.json; e.g. a sheet saved while the last ingest
# ran, which then looks older than its outputs, or --config overrides) marks the evidence out of date,
# and ingest reruns. Only the sheets are hashed here; they are validated by ingest.
if evidence_out_of_date(EVIDENCE, config):
    mark_out_of_date(EVIDENCE)


checkpoint ingest:
    input:
        sheets=list(SHEETS.values()),
        configfiles=CONFIG_FILES,
        code=package_files(),
    output:
        evidence=EVIDENCE,
        arms="data/processed/arms.csv",
    params:
        slice_dir=SLICE_DIR,
        network_slice_dir=NETWORK_SLICE_DIR,
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/ingest.log",
    script:
        "../../scripts/ingest.py"


# A slice deleted by hand is rebuilt from evidence.json (ancient: a newer evidence.json alone does not
# rewrite slices; ingest itself rewrites the ones whose content changed).
rule evidence_slice:
    input:
        ancient(EVIDENCE),
    output:
        f"{SLICE_DIR}/{{analysis_id}}.json",
    wildcard_constraints:
        analysis_id="[A-Za-z0-9_.-]+",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/slices/{analysis_id}.log",
    script:
        "../../scripts/evidence_slice.py"


rule network_slice:
    input:
        ancient(EVIDENCE),
    output:
        f"{NETWORK_SLICE_DIR}/{{network_id}}.json",
    wildcard_constraints:
        network_id="[A-Za-z0-9_.-]+",
    conda:
        "../envs/tpsynth.yaml"
    log:
        "logs/slices/networks/{network_id}.log",
    script:
        "../../scripts/evidence_slice.py"
