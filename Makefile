# Two commands: `make run` opens the app, `make test` runs every check offscreen.
# Both create .venv on first use; only Python 3.11+ and make are needed.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench screenshot cards clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

# On Linux, first check that Qt's X11 plugin finds its system libraries (else: the apt command).
run: $(STAMP)
	@$(BIN)/python -m tools.check_qt
	$(BIN)/stablenew

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy stablenew

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	@set -e; for f in bench/[!_]*.py; do echo "== $$f"; QT_QPA_PLATFORM=offscreen $(BIN)/python $$f; done

screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tools.screenshot docs/screenshot.png

# The stage cards' fields as plain data (controller/cards.py), after a pipeline model changed.
cards: $(STAMP)
	$(BIN)/python -m tools.card_table

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
