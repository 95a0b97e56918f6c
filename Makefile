# `make demo` and `make test` work on a fresh clone with only Python, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/setup.cfg)))
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

$(STAMP): setup.cfg pyproject.toml $(wildcard plugins/*/setup.cfg plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach d,$(PLUGIN_DIRS),-e '$(d)')
	touch $@

install: $(STAMP)

test: install
	$(BIN)/python -m pytest tests $(addsuffix tests,$(PLUGIN_DIRS))

demo: install
	$(BIN)/livecall demo

clean:
	rm -rf $(VENV) build *.egg-info
