# `make demo` and `make test` each build the environment they need (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,dev

.PHONY: install test demo lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m ruff check bindsearch indexes cli benchmarks tests
	$(PY) -m pytest -q

demo: install
	$(PY) -m bindsearch.demo --out demo-data

bench: install
	$(PY) benchmarks/encode.py

lint: install
	$(PY) -m ruff check bindsearch indexes cli benchmarks tests

clean:
	rm -rf $(VENV) demo-data .pytest_cache
