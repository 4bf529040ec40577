# The two commands of the README. Each does its own set-up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG := $(if $(wildcard config.toml),config.toml,config.example.toml)

.PHONY: run test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@mkdir -p var
	POINTSBOT_CONFIG=$(CONFIG) $(BIN)/flask --app app db upgrade
	POINTSBOT_CONFIG=$(CONFIG) $(BIN)/flask --app app demo-data
	POINTSBOT_CONFIG=$(CONFIG) $(BIN)/python devserver.py

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/*.db
