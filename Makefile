# The two commands a newcomer needs:   make demo   (the main job)   and   make test   (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo
PRESET ?= tiny-cpu

.PHONY: setup kernels demo lab test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	@touch $@

# Triton for the fused CoCA kernels' tests (interpreted without a GPU); the demo does not need it.
kernels: $(VENV)/.kernels

$(VENV)/.kernels: $(VENV)/.installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[kernels]"
	@touch $@

demo: setup
	$(BIN)/cocattn reproduce --preset $(PRESET) --out $(OUT)

# the retrieval lab's default study: copy task, rope / coca / coca-strict / alibi, 5 seeds, 1-16x
lab: setup
	$(BIN)/cocattn lab extrapolation --out runs/lab-extrapolation

test: setup kernels
	$(BIN)/python -m pytest -q

test-fast: setup kernels
	$(BIN)/python -m pytest -q -m "not slow"

# ruff and mypy (pinned in the dev extra): the lint rules and the formatting of pyproject.toml's
# [tool.ruff], and the type check of the whole package ([tool.mypy])
lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: setup
	$(BIN)/cocattn bench attention

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache
