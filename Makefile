# The two commands of the quick start are `make pipeline` and `make test`; everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= small
PYTEST_ARGS ?=

.PHONY: install pipeline test test-gpu test-unit up down status deploy demo demo-check bench lint clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	@touch $@

install: $(STAMP)

# Start the services, run the whole pipeline on $(PRESET), serve the approved chat model; the last screen says
# which version the demo serves and why (a newer one the gate rejected, with its reason) and where to look.
pipeline: install
	$(BIN)/dsllm up
	$(BIN)/dsllm deploy
	$(BIN)/dsllm pipeline --preset $(PRESET)
	$(BIN)/dsllm status
	$(BIN)/dsllm demo deploy

# Every tier but gpu; tests that connect the process to a Ray cluster of their own run in a second process.
test: install
	$(BIN)/python -m pytest -m "not gpu and not own_process" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "own_process and not gpu" $(PYTEST_ARGS)

# The gpu tier on a machine with a CUDA device (tests/gpu: pretraining with FSDP + activation checkpointing through
# Ray Train, MFU and memory at the 7B width, SFT/DPO steps, batched demo decoding); measured numbers to gpu-report.jsonl.
test-gpu: install
	DSLLM_GPU_REPORT=$${DSLLM_GPU_REPORT:-gpu-report.jsonl} $(BIN)/python -m pytest -m gpu -v $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

up: install
	$(BIN)/dsllm up

down:
	@test -x $(BIN)/dsllm && $(BIN)/dsllm down || true

deploy: install
	$(BIN)/dsllm deploy

status: install
	$(BIN)/dsllm status

# The chat demo on models:/dsllm-chat@approved (the deploy_demo flow starts it after a promotion).
demo: install
	$(BIN)/dsllm demo up

# The browser test against the demo `make pipeline` left running (approved version shown, English + Chinese chat).
demo-check: install
	DSLLM_DEMO_CHECK=1 $(BIN)/python -m pytest -q tests/e2e/test_live_demo.py

bench: install
	@mkdir -p benchmarks/results
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b --out benchmarks/results || exit 1; done

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
