# Two commands for users: `make report` (set up and run the pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: report test test-cluster test-fast reference lint pipeline bench clean-results

# One progress line per step (pip itself stays quiet; its full output is in $(VENV)/install.log).
$(STAMP): requirements.txt pyproject.toml
	@echo "[1/4] creating the virtual environment $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[2/4] upgrading pip"
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@echo "[3/4] installing the pinned dependencies of requirements.txt (about a minute the first time)"
	@$(BIN)/python -m pip install -r requirements.txt >> $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@echo "[4/4] installing tpsynth itself (editable: pip install -e .)"
	@$(BIN)/python -m pip install --no-deps -e . >> $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)
	@echo "set-up done (full pip output: $(VENV)/install.log)"

# One line per finished job; errors in full; Snakemake's complete log is kept in .snakemake/log/.
# Recovers by itself after a crash (stale lock, incomplete outputs): see tpsynth/run.py.
report: $(STAMP)
	@$(BIN)/python -m tpsynth run --cores $(CORES)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/python -m pytest

# The workflow on a real one-node SLURM cluster started on this machine from Debian's packages (needs root:
# apt-get when slurm-wlm/munge are missing, and the daemons); see .ci/test-cluster. CI runs it after `test`.
test-cluster: $(STAMP)
	.ci/test-cluster

# The code tests without the slow ones (pipeline runs, the browser, the full corpus): for quick edit-test loops.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The analyses of data/raw/ + config/config.yaml against metafor: regenerate tests/shipped/shipped.json
# from the current data with R, then compare (tests/shipped/, not part of `make test`).
reference: $(STAMP)
	@Rscript -e 'suppressPackageStartupMessages({library(metafor); library(jsonlite)})' >/dev/null 2>&1 || { \
	  echo "make reference needs R with the metafor and jsonlite packages"; \
	  echo "(Debian/Ubuntu: apt-get install r-base-core r-cran-metafor r-cran-jsonlite; elsewhere install.packages(c('metafor', 'jsonlite')))"; \
	  exit 1; }
	$(BIN)/snakemake --cores $(CORES) data/processed/effects.csv results/pooled.csv results/bayes.csv results/network_estimates.csv
	Rscript tests/shipped/make_shipped_reference.R
	Rscript tests/shipped/make_shipped_network_reference.R
	Rscript tests/shipped/make_shipped_bayes_reference.R
	$(BIN)/python -m pytest tests/shipped

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py

clean-results:
	rm -rf results/* data/processed/* .snakemake/metadata
	touch results/.gitkeep data/processed/.gitkeep
