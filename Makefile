# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install what they need; CPU torch is pinned so no CUDA wheels are pulled.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench-translate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,plot,workflow]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/virnucpro predict examples/example_contigs.fa -o example-output --models demo

test: install
	$(BIN)/python -m pytest -q

bench-translate: install
	$(BIN)/python scripts/bench_translate.py

clean:
	rm -rf $(VENV) example-output .pytest_cache .hypothesis
