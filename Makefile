# Set-up and the two everyday commands. Everything lives in .venv at the repository root.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/edgekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU wheel, so nothing can pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/edgekit

setup: $(BIN)/edgekit
	./scripts/install-chromium.sh

demo: setup
	$(BIN)/edgekit export samples/digits/model.py:build --target x86 \
		--calib samples/digits/calib.npz --val samples/digits/val.npz \
		--out edgekit-out/digits-x86 --overwrite

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_export.py

clean:
	rm -rf $(VENV) edgekit-out .pytest_cache
