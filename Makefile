# kfp-mlops developer commands. `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench compile lock lint fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: install
	$(PY) -m mlops.demo

# The whole suite, slow end-to-end tests included (CI runs this).
test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# Drift engine and `mlops drift` vs Evidently at 1M rows, the training pipeline vs plain
# functions at 100k and 1M rows (minutes), then the model server side by side with a bare
# kserve.Model and a bare Starlette app (wrk).
# `make bench BENCH_ROWS=100000` runs the pipeline comparison at other sizes.
BENCH_ROWS ?= 100000 1000000
bench: install
	$(PY) bench/bench_drift.py
	$(PY) bench/bench_pipeline.py --rows $(BENCH_ROWS)
	$(PY) bench/bench_serving.py

compile: install
	$(PY) compile.py --out compiled

# Exact pins of the two images (see Dockerfile), from the installed environment.
# To upgrade: install without the constraint (pip install -U -e '.[test]'), test, then lock.
lock: install
	$(PY) -m mlops.core.environment pipeline > requirements.lock
	$(PY) -m mlops.core.environment serving > requirements-serving.lock

# What each tool covers is configured once, in pyproject.toml ([tool.ruff], [tool.mypy]
# files), so no command names paths. tests/unit/test_lint.py runs this recipe's lines too.
lint: install
	$(PY) -m ruff check
	$(PY) -m ruff format --check
	$(PY) -m mypy

# Fixes what ruff can (imports, pyupgrade...), then formats; `make lint` reports the rest.
fmt: install
	$(PY) -m ruff check --fix-only
	$(PY) -m ruff format

clean:
	rm -rf $(VENV) compiled .pytest_cache .mypy_cache .ruff_cache
