# One-command set-up: `make demo` and `make test` create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast gui weights bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,hardware]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/micromanip demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/sim_render.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
