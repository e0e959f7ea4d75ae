PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# setuptools tells every editable install that a folder named like the package could shadow
# it; this project's package folder is that folder, so the notice says nothing here.
PIP := PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip
# Stamps: a target reruns pip only when pyproject.toml changed since the last install.
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev

.PHONY: demo test bench bench-deps install clean lint browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# What a crawl needs: the package and its dependencies, nothing for tests or linting.
$(BASE): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	@# pip compiles an installed package; an editable one gets its .pyc files here, so
	@# start-up stays fast where PYTHONDONTWRITEBYTECODE keeps Python from writing them.
	$(BIN)/python -m compileall -q crawler spiders
	touch $@

# Development: the test and speed extras too (a superset of the base install).
$(DEV): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[test,speed,browser,postgres]'
	$(BIN)/python -m compileall -q crawler spiders
	touch $(BASE) $@

install: $(DEV)

demo: $(BASE)
	$(BIN)/crawler demo -O books.jsonl

test: $(DEV) browser
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's Chromium: installed here when missing and running as root
# (quiet and quick when it is there); elsewhere those tests are skipped, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || command -v google-chrome >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	       && echo "installing Chromium (apt-get install chromium) for the browser tests" \
	       && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y -qq chromium >/dev/null) ; } \
	  || echo "Chromium not installed (needs root and apt-get): the browser tests will be skipped"

# nginx serves the benchmarks' static shop; installed from the system's packages when missing
# (needs root and apt-get). The bench itself installs nothing: without nginx it says so and
# serves the shop with the bundled test site.
bench-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	       && echo "installing nginx (apt-get install nginx-light, else nginx) for the bench" \
	       && { [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' \
	              > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
	              && touch .bench-policy-rc; } ; } \
	       && (apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           --no-install-recommends nginx-light >/dev/null 2>&1 \
	           || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           --no-install-recommends nginx >/dev/null); \
	       status=$$?; [ ! -e .bench-policy-rc ] || rm -f /usr/sbin/policy-rc.d .bench-policy-rc; \
	       exit $$status; } \
	  || echo "nginx not installed (needs root and apt-get): the bench will serve the shop" \
	          "with the bundled test site"

bench: $(DEV) bench-deps
	$(BIN)/python bench/run.py

# Strict on the package (pyproject's [tool.mypy]); the bench scripts are checked, not strictly.

lint: $(DEV)
	$(BIN)/ruff check crawler tests spiders bench
	$(BIN)/mypy
	$(BIN)/mypy --config-file bench/mypy.ini bench
	$(BIN)/mypy tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
