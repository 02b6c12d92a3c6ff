# Two commands for users: `make report` (set up and run the pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: report test test-fast reference lint pipeline bench clean-results

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/python -m pytest

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
	$(BIN)/snakemake --cores $(CORES) data/processed/effects.csv results/pooled.csv results/network_estimates.csv
	Rscript tests/shipped/make_shipped_reference.R
	Rscript tests/shipped/make_shipped_network_reference.R
	$(BIN)/python -m pytest tests/shipped

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py

clean-results:
	rm -rf results/* data/processed/* .snakemake/metadata
	touch results/.gitkeep data/processed/.gitkeep
