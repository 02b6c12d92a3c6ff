#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) once after creating the environment of workflow/envs/tpsynth.yaml:
# installs the tpsynth package (editable, so it always is this checkout's code) into it, so that every
# rule's script imports tpsynth the normal way.
set -euo pipefail
python -m pip install --quiet --no-deps --no-build-isolation -e "$(cd "$(dirname "$0")/../.." && pwd)"
