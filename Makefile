# The two commands of the README:
#   make demo   set up, start gateway + web app on SQLite, feed a sample team's mail
#   make test   set up (system packages included) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

SYNAPSE_VENV ?= .venv-synapse

.PHONY: setup system-deps synapse demo test lint bench clean

$(BIN)/sluice: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/sluice

# A real Matrix homeserver for tests/router/test_matrix_synapse.py, in its own environment:
# Synapse's pinned dependencies would clash with Sluice's.
$(SYNAPSE_VENV)/bin/synapse_homeserver:
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SYNAPSE_VENV)/bin/python -m pip install --quiet 'matrix-synapse>=1.100'
	touch $@

synapse: $(SYNAPSE_VENV)/bin/synapse_homeserver

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(BIN)/sluice demo

test: system-deps setup synapse
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup system-deps
	$(BIN)/python benchmarks/relay.py
	$(BIN)/python benchmarks/parse.py

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) data build *.egg-info
