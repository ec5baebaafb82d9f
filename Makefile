# `make demo` and `make test` each build the environment they need (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,dev

.PHONY: install check-venv test demo lint bench clean

# A .venv whose Python is gone (an upgrade removed it) or is another version than $(PYTHON) is made anew: pip
# would refuse it, or the tests run under another Python than asked.
check-venv:
	@if [ -e $(VENV) ] && [ "$$($(PY) -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" != \
	     "$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])')" ]; then \
		echo "$(VENV) does not run $(PYTHON)'s Python: making it anew"; rm -rf $(VENV); fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: check-venv $(VENV)/.installed

test: install
	$(PY) -m ruff check bindsearch indexes cli benchmarks tests
	$(PY) -m pytest -q

demo: install
	$(PY) -m bindsearch.demo --out demo-data

# What runs with nothing to download: the shipped model's accuracy on unseen BindWorld scenes, and the vector
# index's rates (a few minutes). The encoders against the reference need its checkpoints: benchmarks/README.md.
bench: install
	$(PY) benchmarks/bindworld.py
	$(PY) benchmarks/search.py --quick

lint: install
	$(PY) -m ruff check bindsearch indexes cli benchmarks tests

clean:
	rm -rf $(VENV) demo-data .pytest_cache
