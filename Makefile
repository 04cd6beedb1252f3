# Every target sets itself up: a fresh checkout needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: train the default experiment (ViT on the embedded digits, W&B offline)
demo: install
	$(BIN)/attnlab

## test: the whole test suite (CPU, no downloads)
test: install
	$(BIN)/python -m pytest

## bench: the performance suite; each benchmark prints a table and writes outputs/bench-<name>.json
bench: install
	$(BIN)/python benchmarks/backbone_vs_torch.py --json outputs/bench-backbone_vs_torch.json
	$(BIN)/python benchmarks/truncated_attention.py --json outputs/bench-truncated_attention.json
	$(BIN)/python benchmarks/speech_features.py --json outputs/bench-speech_features.json
	$(BIN)/python benchmarks/attention_variants.py --json outputs/bench-attention_variants.json
	$(BIN)/python benchmarks/startup.py --json outputs/bench-startup.json
	$(BIN)/python benchmarks/loop_overhead.py --hooks --json outputs/bench-loop_overhead.json
	$(BIN)/python benchmarks/step_overhead.py --json outputs/bench-step_overhead.json
	$(BIN)/python benchmarks/thread_share.py --json outputs/bench-thread_share.json

lint: install
	$(BIN)/ruff check src plugins tests benchmarks
	$(BIN)/ruff format --check src plugins tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
