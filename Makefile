# The two commands a user needs: `make pipeline` and `make test`. Both set up .venv first.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
INSTALLED := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)

.PHONY: setup pipeline test test-fast lint clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	# torch first, by exact version, so pip takes the local CPU wheel and never
	# resolves a CUDA build from the registry.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

setup: $(INSTALLED)

pipeline: $(INSTALLED)
	dvc repro

test: $(INSTALLED)
	python -m pytest --durations=15   # the slowest tests, so that CI time can be kept in check

# The edit loop: everything but the slow tier (end-to-end runs, subprocesses, espeak-ng speech).
test-fast: $(INSTALLED)
	python -m pytest -m "not slow"

lint: $(INSTALLED)
	ruff check .
	ruff format --check .

clean:
	rm -rf $(VENV)
