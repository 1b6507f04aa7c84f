# The two commands a new user needs are `make demo` and `make test`; both set themselves up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: help setup demo test test-fast test-compose check lint format typecheck benchmark benchmark-model benchmark-load \
        benchmark-compare \
        stack-up stack-down train clean

help:
	@echo "make demo             train, promote, run the streaming stack end to end, tear it down"
	@echo "make test             lint, types and the test suite (real services included, no Docker)"
	@echo "make setup            create .venv and install the pinned tools (run by the targets)"
	@echo "make test-fast        unit tests and static deployment checks (markers unit or static)"
	@echo "make test-compose     the docker-compose stack end to end (needs a Docker engine)"
	@echo "make benchmark-model  full model search and the held-out quality report"
	@echo "make benchmark        scoring, latency, reload and memory benchmarks"
	@echo "make benchmark-load   2,000 records/s over 4 shards for 5 minutes"
	@echo "make benchmark-compare BEFORE=rev   scoring, latency and reload of rev and HEAD, side by side"
	@echo "make stack-up / stack-down   the embedded stack as local processes"

setup:
	@scripts/setup.sh

demo: setup
	$(PY) -m scripts.demo

check: setup lint typecheck

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck:
	$(VENV)/bin/mypy consumer training common

# The compose end-to-end test (marker docker) has a target of its own: it builds the images and
# runs the whole stack for several minutes.
# Lint and types run beside the suite, niced so that they take only the CPU its services leave
# idle: their output follows the suite's, and the target fails if any of the three does.
test: setup
	@checks_log=$$(mktemp); \
	  nice -n 10 $(MAKE) --no-print-directory lint typecheck > "$$checks_log" 2>&1 & checks=$$!; \
	  status=0; $(PY) -m pytest -m "not docker" || status=$$?; \
	  wait $$checks || status=1; cat "$$checks_log"; \
	  rm -f "$$checks_log"; exit $$status

test-fast: setup
	$(PY) -m pytest -m "unit or static"

# Builds the three images (COMPOSE_TEST_BUILDER=auto|buildkit|classic), runs the stack under the
# project name dropout-e2e, checks it end to end and removes it with its volumes
# (tests/compose/test_compose_end_to_end.py). One process: the stack is one per engine.
test-compose: setup
	$(PY) -m pytest tests/compose -n 0 -s

train: setup
	$(PY) -m training train

benchmark-model: setup
	$(PY) -m benchmarks.model_quality

benchmark: setup
	$(PY) -m benchmarks.scoring_throughput
	$(PY) -m benchmarks.stream_latency
	$(PY) -m benchmarks.hot_reload

benchmark-load: setup
	$(PY) -m benchmarks.sustained_load

# The commit before the consumer's restructuring (issue 10): the figures it must not fall below.
BEFORE ?= 183baf9
benchmark-compare: setup
	$(PY) -m benchmarks.compare --before $(BEFORE)

stack-up: setup
	$(PY) -m devstack up

stack-down:
	$(PY) -m devstack down

clean:
	rm -rf .stack .cache reports .pytest_cache .mypy_cache .ruff_cache
