# The two commands of the README:
#   make demo   set up, start gateway + web app on SQLite, feed a sample team's mail
#   make test   set up (system packages included) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup system-deps demo test lint bench clean

$(BIN)/sluice: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/sluice

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(BIN)/sluice demo

test: system-deps setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup system-deps
	$(BIN)/python benchmarks/relay.py
	$(BIN)/python benchmarks/parse.py

clean:
	rm -rf $(VENV) data build *.egg-info
