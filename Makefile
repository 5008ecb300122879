# The two commands of the quick start (`make demo`, `make test`) need only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: demo test lint typecheck pytest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The demo's phone finds the laptop by DNS-SD: it needs the discovery extra.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[discovery]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,cli,fast,discovery]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(PY) -m couchlite.demo

lint: $(STAMP_TEST)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

typecheck: $(STAMP_TEST)
	$(PY) -m mypy --strict src

pytest: $(STAMP_TEST)
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(STAMP_TEST)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
