# Targets CI calls verbatim: setup, test, lint, demo, bench.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-real lint demo demo-model bench clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -m "not real and not slow" -q

# Real-size checks on real checkpoints found in the local Hugging Face cache.
test-real: setup
	$(PY) -m pytest -m real -q

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	$(VENV)/bin/blip2-search demo

# Train the shipped demo model from scratch (58 minutes on 2 cores).
demo-model: setup
	$(VENV)/bin/blip2-search train-demo search/demo_model

bench: setup
	@echo "make bench: the benchmark suite is not available yet" >&2; exit 1

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
