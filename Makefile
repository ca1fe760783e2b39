# One entry point for a fresh machine: `make demo` runs the main job, `make test` the tests.
# Both create/update the virtual environment first (torch==2.13.0 CPU build before anything
# that depends on torch, so pip never fetches a CUDA build).
VENV  ?= .venv
PY    := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,serve]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/transformer demo

test: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks
	$(PY) -m ruff format --check src tests scripts benchmarks
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks
	$(PY) -m ruff format --check src tests scripts benchmarks

bench: $(STAMP)
	$(VENV)/bin/transformer bench attention

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
