# The two commands of the README: `make demo` and `make test`. Both set up .venv when needed, from the
# committed lock (requirements/lock-dev.txt: core + every extra + dev tools, hashed); `make lock`
# refreshes the locks from PyPI for Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock-dev.txt
BENCH_LOCK := requirements/lock-bench.txt
export MPLBACKEND := Agg
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# `make test` explores new hypothesis examples on every run (profiles: tests/conftest.py); replay a
# failure with `make test PYTEST_ARGS=--hypothesis-seed=N`.
PYTEST_ARGS ?=

.PHONY: demo demo-serve test test-thorough lint docs docs-check bench lock wheel clean portal-screenshots

$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/datamarket demo --out demo-report

# The service demo's data kept online: the web portal at http://127.0.0.1:8000/portal/ (Ctrl-C stops it).
demo-serve: $(STAMP)
	$(BIN)/datamarket demo --serve --out demo-report

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy src

test: lint docs-check
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --hypothesis-profile=ci $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Ten times the hypothesis examples (not in CI): run before a release or after touching a theorem.
test-thorough: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --hypothesis-profile=thorough $(PYTEST_ARGS)

# The portal guide's pictures (docs/assets/portal/*.png), taken by the browser tests (Chromium, SQLite).
portal-screenshots: $(STAMP)
	DATAMARKET_PORTAL_GUIDE=docs/assets/portal $(BIN)/python -m pytest -q -p no:cacheprovider -k sqlite \
		tests/service/portal/test_browser.py tests/service/portal/test_browser_families.py

# The wheel, and a check of what it holds (LICENSE, py.typed, the example scenarios; also in make test).
wheel: $(STAMP)
	rm -rf dist
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	$(BIN)/python -m pytest -q -p no:randomly tests/project/test_packaging.py

# Refresh the locks from PyPI alone (ignoring local pip indexes and constraints), for Python 3.11.
UV_COMPILE = $(BIN)/uv pip compile --quiet --no-config --python-version 3.11 --generate-hashes \
	--index-url https://pypi.org/simple --no-header --annotation-style line
lock:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	mkdir -p requirements
	$(UV_COMPILE) pyproject.toml --extra all --extra dev -o $(LOCK)
	$(UV_COMPILE) pyproject.toml --extra all benchmarks/requirements.txt -o $(BENCH_LOCK)

# The documentation site (MkDocs Material); --strict turns a broken link or a failing example into an error.
# No --quiet: it drops warnings before strict mode counts them, so a code block that raised built "fine"
# (tests/docs/test_build.py runs this recipe's command on a page whose block raises).
MKDOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
docs: $(STAMP)
	$(MKDOCS_BUILD) --site-dir site

docs-check: $(STAMP)
	d=$$(mktemp -d); $(MKDOCS_BUILD) --site-dir $$d/site > $$d/log 2>&1; rc=$$?; \
	grep -E -A 12 '^(WARNING|ERROR)|Aborted' $$d/log; rm -rf $$d; exit $$rc

BENCH_VENV := .bench-venv
$(BENCH_VENV)/.installed: pyproject.toml $(BENCH_LOCK)
	test -d $(BENCH_VENV) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r $(BENCH_LOCK)
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(BENCH_VENV)/.installed

bench: $(BENCH_VENV)/.installed
	for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BENCH_VENV)/bin/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(BENCH_VENV) site demo-report .pytest_cache .mypy_cache .ruff_cache dist
