"""The CPU-sensitive tests once more with AVX-512 masked off: the path of a CPU without bf16, AVX-512 VNNI or AMX
(the AMD EPYC kind this project also runs on) exercised on an Intel Xeon that has them.

``ONEDNN_MAX_CPU_ISA=AVX2`` is oneDNN's runtime ceiling on the instruction set its kernels may use. OpenVINO's CPU
plugin obeys it (its convolution and matmul kernels are oneDNN's), and ``edgekit.runtime.openvino
.cpu_capabilities()`` drops BF16 under it, so edgekit builds no ``openvino/bf16`` candidate and NNCF's INT8 runs on
AVX2 kernels, as on a CPU without those features. The first test checks that the ceiling really changes what
OpenVINO compiles (``avx512``/``amx`` kernel names without it, ``avx2`` ones under it, FP32 and INT8); the second
reruns every test marked ``cpu_sensitive`` (tests/conftest.py) in a fresh pytest under it and asserts they pass.

What this cannot mask: ONNX Runtime's MLAS picks its kernels (AVX-512, VNNI, AMX) from CPUID when it starts and
has no runtime switch to cap them (none is documented, neither a session option nor an environment variable), so a
``cpu_sensitive`` test whose outcome is ONNX Runtime's runs with this CPU's kernels in both passes; only a run of
the suite on the other kind of CPU covers it. PyTorch's own oneDNN kernels are capped too, which changes nothing
the tests assert.

On a CPU without AVX-512 there is nothing to mask (the suite already runs the AVX2 path): both tests skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from edgekit.agent.conditions import cpu_features
from testkit import REPO

pytest.importorskip("openvino")
pytestmark = pytest.mark.skipif("avx512f" not in cpu_features(),
                                reason="this CPU has no AVX-512: the suite already runs the AVX2 path here, nothing "
                                       "to mask (the masked rerun is for CPUs with AVX-512/VNNI/AMX)")

CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2"}

# Two one-convolution IRs, one plain FP32 and one INT8 (FakeQuantize on activations and weights, which OpenVINO's
# low-precision transformations turn into an integer convolution), compiled by edgekit's runner; prints the kernel
# names OpenVINO chose and the capabilities edgekit reads.
PROBE = textwrap.dedent('''
    import json, sys
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops
    from edgekit.runtime.openvino import OpenVinoRunner, cpu_capabilities

    def const(value):
        return ops.constant(np.asarray(value, np.float32))

    def fake_quantize(node, low, high, levels):
        return ops.fake_quantize(node, const(low), const(high), const(low), const(high), levels)

    weights = np.random.default_rng(0).standard_normal((32, 16, 3, 3)).astype(np.float32)
    kernels = {}
    for name in ("f32", "int8"):
        x = ops.parameter([1, 16, 16, 16], np.float32, name="x")
        source, w = ops.relu(x), const(weights)
        if name == "int8":
            source, w = fake_quantize(source, 0.0, 4.0, 256), fake_quantize(w, -4.0, 4.0, 255)
        y = ops.relu(ops.convolution(source, w, [1, 1], [1, 1], [1, 1], [1, 1]))
        path = f"{sys.argv[1]}/probe-{name}.xml"
        ov.save_model(ov.Model([y], [x], name), path, compress_to_fp16=False)
        info = OpenVinoRunner(path, threads=1, inference_precision="f32").execution_info()
        kernels[name] = {"kernels": list(info["compute_kernels"]), "precisions": list(info["compute_precisions"])}
    print(json.dumps({"kernels": kernels, "capabilities": cpu_capabilities()}))
''')


def _probe(folder, env: dict[str, str]) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=120,
                          env={**environment, **env}, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_isa_cap_changes_the_kernels_openvino_compiles(tmp_path):
    native = _probe(tmp_path, {})
    capped = _probe(tmp_path, CAP)
    assert native["kernels"]["int8"]["precisions"] == capped["kernels"]["int8"]["precisions"] == ["u8"]
    for name in ("f32", "int8"):
        wide = native["kernels"][name]["kernels"]
        narrow = capped["kernels"][name]["kernels"]
        assert any(re.search(r"avx512|amx", k) for k in wide), (name, wide)  # this CPU's own kernels
        assert narrow and all("avx2" in k for k in narrow), (name, narrow)  # e.g. brgconv_avx2_f32, jit_avx2_I8
        assert not any(re.search(r"avx512|amx", k) for k in narrow), (name, narrow)
    assert "BF16" not in capped["capabilities"]  # so edgekit builds no openvino/bf16 candidate under the cap


def test_cpu_sensitive_tests_pass_with_avx512_masked_off():
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cpu_sensitive", "tests"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=REPO, env={**os.environ, **CAP})
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"ONEDNN_MAX_CPU_ISA=AVX2 pytest -m cpu_sensitive failed:\n{tail}"
    summary = done.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 1 and "failed" not in summary and "error" not in summary, tail
