# Every target sets itself up: a fresh checkout needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Test workers: one per CPU this process may use (`make test JOBS=1` runs the suite in one process).
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install browser demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) browser

# The report.html browser tests drive Debian's Chromium. Installed here when it is missing and
# apt-get can (as root); where it cannot, the install goes on and those tests say why they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	  && DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
	  || echo "make: no Chromium (apt-get install chromium needs root): the browser tests will skip"

## demo: train the default experiment (ViT on the embedded digits, W&B offline)
demo: install
	$(BIN)/attnlab

## test: the whole test suite (CPU, no downloads), in $(JOBS) parallel workers
test: install
	$(BIN)/python -m pytest -n $(JOBS)

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
