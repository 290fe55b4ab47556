# Baton developer commands. GNU make; needs only python3 (3.11+) on a fresh machine.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_INITDB := /usr/lib/postgresql/15/bin/initdb
PYTEST_ARGS ?=

.PHONY: help install postgres documents-deps browser run test soak lint fmt bench i18n

help:
	@echo "make install  create .venv and install Baton with its dev dependencies"
	@echo "make run      start the embedded stack: Temporal dev server + UI, worker, API, demo data"
	@echo "make test     run the whole test suite (PYTEST_ARGS='-k ...' to narrow it)"
	@echo "make soak     full-size fault runs: 100 lifecycles with worker kills, a PostgreSQL and a Temporal outage (tens of minutes)"
	@echo "make lint     ruff check"
	@echo "make fmt      ruff format"
	@echo "make i18n     extract the pages' strings, update and compile the zh_CN and en catalogs"
	@echo "make bench    settlement benchmark vs. the floor query (SQLite + PostgreSQL, 100k and 1M orders; BENCH_ARGS='...')"
	@echo "              valuation refresh vs. its aggregate query (20k customers, 100k and 1M orders; VALUATION_BENCH_ARGS='...'),"
	@echo "              lifecycle throughput vs. a bare workflow (LIFECYCLE_BENCH_ARGS='--count 100') and the API under load"
	@echo "              (API_LOAD_BENCH_ARGS='...') and the PDFs' render CPU (RENDER_BENCH_ARGS='--count 5'); see bench/README.md"

install: $(STAMP) postgres documents-deps browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Baton needs Python 3.11 or newer ($(PYTHON) is too old)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# The test suite also runs against PostgreSQL 15; install it where we may (root + apt).
postgres:
	@if [ ! -x $(PG_INITDB) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update && apt-get install -y postgresql-15; \
		else \
			echo "note: $(PG_INITDB) is missing; the PostgreSQL tests cannot run" >&2; \
		fi; \
	fi

# Reports render HTML to PDF with WeasyPrint: it needs pango, harfbuzz-subset (fast font
# subsetting) and a CJK font for Chinese text; pdftoppm/pdftotext help to look at the result.
DOC_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk poppler-utils
documents-deps:
	@missing=$$(for p in $(DOC_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update && apt-get install -y --no-install-recommends $$missing; \
		else \
			echo "note: missing Debian packages for PDF reports: $$missing" >&2; \
		fi; \
	fi

# The e2e tests (tests/e2e, `pytest -m e2e`) drive Debian's chromium through Playwright; we
# never run `playwright install` (no browser downloads), so install it from apt as root.
browser:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update && apt-get install -y --no-install-recommends chromium; \
		else \
			echo "note: chromium is missing; the browser tests (tests/e2e) cannot run" >&2; \
		fi; \
	fi

# The pages' translations (web/translations): extract every marked string from web/ (babel.cfg;
# keywords _, gettext, ngettext, N_ and t's 2nd argument), merge it into both catalogs, copy
# new English entries from their msgid, compile. New Chinese entries are left empty for a
# person to translate: tests/web/test_i18n.py fails until they are (and on fuzzy ones).
I18N_DIR := web/translations
i18n: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k t:2 --no-location --sort-output \
		--project Baton --copyright-holder Baton -o $(I18N_DIR)/messages.pot .
	$(BIN)/pybabel update -i $(I18N_DIR)/messages.pot -d $(I18N_DIR) --ignore-obsolete \
		--no-fuzzy-matching
	$(BIN)/python -m web.i18n_catalogs fill-en
	$(BIN)/pybabel compile -d $(I18N_DIR) --statistics
	@$(BIN)/python -m web.i18n_catalogs check || \
		echo "translate the entries above in $(I18N_DIR)/zh_CN/LC_MESSAGES/messages.po, then run make i18n again" >&2

run: install
	$(BIN)/python cli.py dev

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The soak-sized runs of tests/reliability (marker soak; `make test` skips them and runs the
# small ones). BATON_FAULT_SEED=<n> replays a run's random fault moments.
soak: install
	$(BIN)/pytest -m soak -s tests/reliability $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

fmt: install
	$(BIN)/ruff format .

# Not part of `make test`: minutes, and 1M orders per backend (see bench/README.md).
BENCH_ARGS ?=
VALUATION_BENCH_ARGS ?=
LIFECYCLE_BENCH_ARGS ?=
API_LOAD_BENCH_ARGS ?=
RENDER_BENCH_ARGS ?=
bench: install
	$(BIN)/python -m bench.settlement $(BENCH_ARGS)
	$(BIN)/python -m bench.valuation $(VALUATION_BENCH_ARGS)
	$(BIN)/python -m bench.lifecycle $(LIFECYCLE_BENCH_ARGS)
	$(BIN)/python -m bench.api_load $(API_LOAD_BENCH_ARGS)
	$(BIN)/python -m bench.render $(RENDER_BENCH_ARGS)
