# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install what they need; CPU torch is pinned so no CUDA wheels are pulled.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# setuptools' editable install warns in a banner ("Editable installation. Please be careful with
# folders in your working directory..."): informational, and the first thing a newcomer would read.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: install demo test test-fast typecheck bench-translate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e ".[test,plot,workflow]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/virnucpro predict examples/example_contigs.fa -o example-output --models demo

# The README's test command: the type check, then every test (slow end-to-end ones included).
test: install typecheck
	$(BIN)/python -m pytest -q

# The developers' loop: type check and every test not marked slow (a few minutes).
test-fast: install typecheck
	$(BIN)/python -m pytest -q -m "not slow"

typecheck: install
	$(BIN)/python -m mypy virnucpro

bench-translate: install
	$(BIN)/python scripts/bench_translate.py

clean:
	rm -rf $(VENV) example-output .pytest_cache .hypothesis
