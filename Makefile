# Two commands set everything up on a fresh machine:
#   make demo   creates .venv if missing, installs, scores the bundled samples with the shipped model
#   make test   creates .venv if missing, installs [dev], starts/checks test services, runs the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check inspection scripts tests
	$(VENV)/bin/mypy inspection
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
