# Targets CI calls verbatim: setup, test, lint, demo, bench.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-real lint demo demo-model bench bench-quick clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,distributed]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -m "not real and not slow" -q

# Real-size checks on real checkpoints found in the local Hugging Face cache.
test-real: setup
	$(PY) -m pytest -m real -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

demo: setup
	$(VENV)/bin/blip2-search demo

# Train the shipped demo model from scratch (58 minutes on 2 cores).
demo-model: setup
	$(VENV)/bin/blip2-search train-demo search/demo/model

# The benchmark suite at real BLIP-2 size (BENCHMARKS.md): about 80 minutes on 2 cores, 24 GB
# of memory and 40 GB of scratch disk (--scratch moves it).
bench: setup
	$(PY) -m benchmarks.run --out benchmarks/results/latest.json

# One small iteration of every part (same widths, fewer layers and images); CI runs it in the tests.
bench-quick: setup
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
