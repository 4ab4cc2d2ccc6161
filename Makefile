# Targets CI calls verbatim: setup, test, lint, demo, bench. `make check` is the developer's loop.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The fast tier: everything but what needs a browser, PostgreSQL, Ray, the benchmarks or a long
# run, plus one end-to-end test of each front end (marked `smoke`).
CHECK := smoke or not (browser or postgres or ray or bench or slow or real)
# Two workers, a test module each at a time (its fixtures built once): much of the suite waits
# on processes it starts (servers, indexers, Chromium), so two keep both cores busy. In
# collection order (the benchmark smoke run, the longest, first), not by module size.
PARALLEL := -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: setup check test test-real lint docs demo demo-model bench bench-quick clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,distributed]"
	touch $(STAMP)

check: setup
	$(PY) -m pytest -m "$(CHECK)" $(PARALLEL) -q --durations=10

# Everything CI runs: the whole suite (real checkpoints aside) and the docs, built strictly.
test: setup docs
	$(PY) -m pytest -m "not real" $(PARALLEL) -q --durations=25

# Real-size checks on real checkpoints found in the local Hugging Face cache.
test-real: setup
	$(PY) -m pytest -m real -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The reference in docs/, built by MkDocs (Material); a broken link or a page missing from
# the nav fails it.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site

demo: setup
	$(VENV)/bin/blip2-search demo

# Train the shipped demo model from scratch (58 minutes on 2 cores).
demo-model: setup
	$(VENV)/bin/blip2-search train-demo demo/model

# The benchmark suite at real BLIP-2 size (BENCHMARKS.md): about 100 minutes on 2 cores, 24 GB
# of memory and 40 GB of scratch disk (--scratch moves it). Each run merges its figures into
# benchmarks/results/current.json.
bench: setup
	$(PY) -m benchmarks.run --out benchmarks/results/latest.json

# One small iteration of every part (same widths, fewer layers and images); `make test` runs it.
bench-quick: setup
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build
