PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install clean lint browser

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/activate
	$(BIN)/pip install -q -e '.[test,speed,browser]'
	@# pip compiles an installed package; an editable one gets its .pyc files here, so
	@# start-up stays fast where PYTHONDONTWRITEBYTECODE keeps Python from writing them.
	$(BIN)/python -m compileall -q crawler spiders

demo: install
	$(BIN)/crawler demo -O books.jsonl

test: install browser
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

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check crawler tests spiders bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
