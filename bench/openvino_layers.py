"""Where an OpenVINO INT8 model of ``bench/models.py`` spends its time, and what OpenVINO's settings change.

The network (MobileNetV2-style by default) is exported with ``torch.onnx`` (dynamo, opset 18), converted and
quantized with NNCF's defaults on smooth images (as ``make bench``'s pick is built), then compiled with
``OpenVinoRunner``'s settings (2 threads, one stream, the LATENCY hint, f32 remainder) and with one change each:
the bf16 hint for the float remainder, no CPU pinning, the denormals optimization, one thread, and no config at
all. Each is timed in rotating rounds (median p50 and fastest run, ms) beside PyTorch eager, and then the
per-layer counters of the first give each layer type and kernel its share of the time.

    .venv/bin/python bench/openvino_layers.py [--model mobilenet_v2] [--rounds 3] [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testkit
import models  # noqa: E402  (bench/models.py, beside this script)

from edgekit.runtime.openvino import load_openvino  # noqa: E402
from edgekit.runtime.stats import time_calls  # noqa: E402
from testkit import smooth_images  # noqa: E402

THREADS = 2
BASE = {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32"}  # OpenVinoRunner's config for an INT8 IR with an f32 remainder
VARIANTS = {"edgekit's settings": BASE, "bf16 remainder": {**BASE, "INFERENCE_PRECISION_HINT": "bf16"},
            "no CPU pinning": {**BASE, "ENABLE_CPU_PINNING": False},
            "denormals optimization": {**BASE, "CPU_DENORMALS_OPTIMIZATION": True},
            "1 thread": {**BASE, "INFERENCE_NUM_THREADS": 1}, "no config": {}}


def int8_model(module: torch.nn.Module, example: torch.Tensor, folder: Path):
    """The network exported to ONNX and quantized by NNCF with its defaults on 32 smooth images."""
    import nncf

    ov = load_openvino()
    path = folder / "model.onnx"
    torch.onnx.export(module, (example,), str(path), input_names=["x"], dynamo=True, opset_version=18)
    images = smooth_images(32, shape=tuple(example.shape[1:]), seed=1)
    return nncf.quantize(ov.convert_model(str(path)), nncf.Dataset([{"x": image[None]} for image in images]),
                         subset_size=len(images))


def layer_shares(compiled, feed: np.ndarray, runs: int = 100) -> Counter:
    """Milliseconds per (layer type, kernel) per inference, from OpenVINO's per-layer counters."""
    request = compiled.create_infer_request()
    request.set_input_tensor(load_openvino().Tensor(feed))
    for _ in range(30):
        request.infer()
    spent: Counter = Counter()
    for _ in range(runs):
        request.infer()
        for layer in request.profiling_info:
            spent[(layer.node_type, layer.exec_type)] += layer.real_time.total_seconds() * 1e3 / runs
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2", help="a network of bench/models.py, without '_style'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=300, help="timed runs per variant per round")
    args = parser.parse_args()
    ov = load_openvino()
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    module, example = getattr(models, f"{args.model}_style")()
    feed = smooth_images(1, shape=tuple(example.shape[1:]), seed=2)
    with tempfile.TemporaryDirectory(prefix="edgekit-ovlayers-") as folder:
        quantized = int8_model(module, example, Path(folder))
    core = ov.Core()
    requests = {}
    for name, config in VARIANTS.items():
        request = core.compile_model(quantized, "CPU", config).create_infer_request()
        request.set_input_tensor(ov.Tensor(feed))
        requests[name] = request

    def infer(request):
        return lambda: (request.start_async(), request.wait())

    calls = {"PyTorch eager": lambda: module(torch.from_numpy(feed)), **{n: infer(r) for n, r in requests.items()}}
    figures = {name: [] for name in calls}
    with torch.no_grad():
        for index in range(args.rounds):
            names = list(calls)[index % len(calls):] + list(calls)[:index % len(calls)]
            for name in names:
                figures[name].append(time_calls(calls[name], THREADS, warmup=30, runs=args.runs, min_seconds=0))
    print(f"{args.model}_style, input {list(example.shape)}, NNCF INT8, {THREADS} threads, {args.rounds} rounds x "
          f"{args.runs} runs")
    for name, rounds in figures.items():
        p50s = [stats.p50_ms for stats in rounds]
        print(f"  {name:<24} p50 {statistics.median(p50s):7.3f} ms [{min(p50s):.3f}-{max(p50s):.3f}]  "
              f"fastest {min(stats.min_ms for stats in rounds):.3f} ms")
    spent = layer_shares(core.compile_model(quantized, "CPU", {**BASE, "PERF_COUNT": True}), feed)
    total = sum(spent.values())
    print(f"per-layer counters, edgekit's settings: {total:.3f} ms an inference")
    for (layer, kernel), ms in spent.most_common(10):
        print(f"  {layer:<32} {kernel:<28} {ms:6.3f} ms {100 * ms / total:4.0f} %")


if __name__ == "__main__":
    main()
