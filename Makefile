PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install clean lint

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/activate
	$(BIN)/pip install -q -e '.[test,speed,postgres]'
	@# pip compiles an installed package; an editable one gets its .pyc files here, so
	@# start-up stays fast where PYTHONDONTWRITEBYTECODE keeps Python from writing them.
	$(BIN)/python -m compileall -q crawler spiders

demo: install
	$(BIN)/crawler demo -O books.jsonl

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check crawler tests spiders bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
