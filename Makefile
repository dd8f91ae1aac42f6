# Set-up and everyday commands. `make demo` and `make test` each create the virtual environment
# on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of PyTorch; bring your own build with e.g. `make TORCH_SPEC="torch" install`.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,docs,minilm
DEMO_ARGS ?= --output runs/demo

.PHONY: install demo test lint docs clean test-distributed-loop

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/multifair demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# Every distributed test RUNS times in a row; stops at the first failure (a flaky test is a bug).
RUNS ?= 20
test-distributed-loop: install
	@for i in $$(seq $(RUNS)); do \
		echo "== distributed tests, run $$i of $(RUNS)"; \
		$(BIN)/python -m pytest -m distributed -q -p no:cacheprovider || exit 1; \
	done; echo "== $(RUNS) of $(RUNS) runs green"

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache
