# The README's two commands: `make demo` (the main job) and `make test`.
# Both work on a fresh clone with nothing installed: they create .venv, install
# torch==2.13.0 first (a CPU wheel; a bare `torch` requirement would pull a
# multi-GB CUDA build), then lmforge with the extras the target needs.

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
TORCH   ?= torch==2.13.0
DEMO    ?= demo
STAMP   := $(VENV)/.lmforge-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint format install clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev,hf,peers,serve,serve-test]"
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# pytest exits 5 when it collects no test: that is a failure here, not a pass.
test: lint
	@$(BIN)/python -m pytest -q -m "not slow" --durations=30 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	@$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test-slow: no slow tests collected"; exit 0; fi; exit $$rc

# The whole recipe (docs/recipe.md): resumable, each stage a folder under $(DEMO);
# scripts/demo.sh is the same chain spelled out verb by verb.
demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" lmforge recipe --recipe recipes/cpu-demo.yaml --out $(DEMO)

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
