# `make demo` and `make test` work on a fresh clone with only Python, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed
PLUGIN_INSTALLS := $(foreach d,$(PLUGIN_DIRS),-e '$(d)[test]')
TEST_PATHS := tests $(addsuffix tests,$(PLUGIN_DIRS))
# test-oldest: the lowest dependency versions pyproject.toml admits, on the oldest Python
# supported when this machine has it (pyenv's too), else on $(PYTHON).
OLDEST_VENV ?= .venv-oldest
OLDEST_PYTHON ?= $(or $(shell for p in python3.9 "$$(pyenv prefix 3.9 2>/dev/null)/bin/python3.9"; do "$$p" -c '' 2>/dev/null && echo "$$p" && break; done),$(PYTHON))

# dist: wheels of livecall and of every plugin, built with the venv's own setuptools (no download).
DIST ?= dist
# conformance: the Autobahn|Testsuite fuzzing server in a venv of its own, ported to
# Python 3 at set-up time; it needs Python 3.11 or 3.12 (lib2to3).
CONFORMANCE_VENV ?= conformance/.fuzzingserver
CONFORMANCE_PYTHON ?= $(or $(shell for p in python3.11 python3.12; do "$$p" -c '' 2>/dev/null && echo "$$p" && break; done),$(PYTHON))


.PHONY: install lint format test test-oldest docs bench demo dist conformance clean

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,docs,lint]' $(PLUGIN_INSTALLS)
	touch $@

install: $(STAMP)

# demo: only what the demo runs (livecall, the simulator's extra, the plugins), with pip's
# progress shown; the test, docs and lint tools wait for `make install` (and so `make test`).
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on -e '.[testing]' $(foreach d,$(PLUGIN_DIRS),-e '$(d)')
	touch $@

LINT_PATHS := livecall plugins tests benchmarks docs

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

test: install docs
	$(BIN)/python -m pytest $(TEST_PATHS)

# The floors are read by the development environment's Python, which reads TOML on any version.
$(OLDEST_VENV)/.installed: pyproject.toml .ci/oldest_requirements.py $(wildcard plugins/*/pyproject.toml) | $(STAMP)
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e '.[test]' $(PLUGIN_INSTALLS) $$($(BIN)/python .ci/oldest_requirements.py)
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest $(TEST_PATHS)

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: install
	$(BIN)/python -m benchmarks

$(CONFORMANCE_VENV)/.installed: conformance/setup.sh conformance/port_autobahntestsuite.py
	PYTHON=$(CONFORMANCE_PYTHON) conformance/setup.sh $(CONFORMANCE_VENV)
	touch $@

# CONFORMANCE_AGENTS=livecall runs livecall's client alone (CI: about a minute).
conformance: install $(CONFORMANCE_VENV)/.installed
	$(BIN)/python conformance/run.py $(CONFORMANCE_VENV)/bin/python $(CONFORMANCE_AGENTS)

demo: $(DEMO_STAMP)
	$(BIN)/livecall demo

dist: install
	rm -rf $(DIST)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(DIST) . $(PLUGIN_DIRS)
	@ls $(DIST)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(CONFORMANCE_VENV) conformance/reports build *.egg-info docs/_build dist
