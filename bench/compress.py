"""Before/after figures of ``edgekit compress`` on real data (scikit-learn's 8x8 digits), in one run.

- prune (structured, 50 % of the channels): the bundled digits CNN (24k parameters) and a wide digits CNN
  (0.4M, trained here first) -- parameters, weights size, validation accuracy, ONNX Runtime / LiteRT FP32 p50
  before and after;
- prune (unstructured, 50 % of the weights) on the wide CNN: zeros, gzip size, and the (missing) speed-up;
- distill: the bundled CNN into a 3.7k-parameter student, against the same student trained on labels alone;
- qat: the fragile digits CNN (testkit/compress_models.py), post-training INT8 vs INT8 after QAT, ONNX and TFLite;
- DDP throughput: the wide CNN's pruning fine-tune under torchrun (gloo, one thread per process) at 1 and 2
  processes, training samples per second (median epoch after the first).

Latencies come from ``edgekit.compress``'s own measurement (both models exported by the export pipeline, timed
together in rotating rounds, median round); compare the ratios, not the milliseconds, on a shared machine.

    .venv/bin/python bench/compress.py [--epochs 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
TEACHER = f"{REPO / 'samples' / 'digits' / 'model.py'}:build"
MODELS = REPO / "testkit" / "compress_models.py"
VAL = REPO / "samples" / "digits" / "val.npz"

WIDE_MODEL = '''"""A wide CNN for the 8x8 digits (bench/compress.py writes and trains it)."""
from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("wide.safetensors")


class WideDigits(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(1, 64), block(64, 128), nn.MaxPool2d(2), block(128, 256),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(256, 10)

    def forward(self, image):
        return self.classifier(self.features(image))


def build():
    from safetensors.torch import load_file

    torch.manual_seed(0)
    net = WideDigits()
    if WEIGHTS.is_file():
        net.load_state_dict(load_file(WEIGHTS))
    return net.eval(), torch.zeros(1, 1, 8, 8)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs of prune and distill")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-compress-"))
    try:
        results = _run_all(work, args.epochs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _run_all(work: Path, epochs: int) -> dict:
    started = time.time()
    load = os.getloadavg()[0]
    data = _digits(work)
    wide = _train_wide(work, data)
    results = {"host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "load_1min_at_start": load}}
    results["prune"] = {name: _prune(reference, data, work / f"pruned-{name}", epochs)
                        for name, reference in (("digits CNN", TEACHER), ("wide CNN", wide))}
    results["unstructured"] = _prune(wide, data, work / "sparse-wide", epochs, unstructured=True)
    results["distill"] = _distill(data, work / "student", max(epochs, 15))
    results["qat"] = _qat(data, work / "qat")
    results["ddp"] = {n: _ddp_throughput(wide, data, work / f"ddp{n}", n) for n in (1, 2)}
    results["seconds"] = round(time.time() - started)
    return results


def _digits(work: Path) -> dict[str, Path]:
    """The training split of samples/digits/train.py (the bundled val.npz is its held-out part)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)[:, None]
    x_train, _, y_train, _ = train_test_split(images, raw.target.astype(np.int64), test_size=0.2, random_state=0,
                                              stratify=raw.target)
    np.savez(work / "train.npz", image=x_train, labels=y_train)
    return {"train": work / "train.npz", "val": VAL}


def _train_wide(work: Path, data: dict[str, Path]) -> str:
    """Write the wide model's file and train it (plain PyTorch, 10 epochs), as a user would bring it."""
    from safetensors.torch import save_file

    (work / "wide.py").write_text(WIDE_MODEL)
    sys.path.insert(0, str(work))
    import wide  # noqa: E402 (written just above)

    net, _ = wide.build()
    with np.load(data["train"]) as npz:
        x, y = torch.from_numpy(npz["image"]), torch.from_numpy(npz["labels"])
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(10):
        for index in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[index]), y[index]).backward()
            optimizer.step()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(work / "wide.safetensors"))
    return f"{work / 'wide.py'}:build"


def _prune(reference: str, data: dict, out: Path, epochs: int, unstructured: bool = False) -> dict:
    from edgekit.compress import prune

    result = prune(reference, amount=0.5, unstructured=unstructured, train=data["train"], val=data["val"], out=out,
                   epochs=epochs, lr=3e-3, threads=1)
    metrics = result.record["metrics"]
    return {"before": metrics["before"], "after": metrics["after"], "runtimes": metrics["runtimes"],
            "sparsity": metrics.get("sparsity", {}).get("zero_fraction"), "notes": result.record["notes"]}


def _distill(data: dict, out: Path, epochs: int) -> dict:
    from edgekit.compress import distill

    result = distill(TEACHER, f"{MODELS}:student", train=data["train"], val=data["val"], out=out, epochs=epochs,
                     lr=1e-2, soft_weight=0.7, hard_weight=0.3, baseline=True, threads=1)
    metrics = result.record["metrics"]
    return {"teacher": metrics["teacher"], "student": metrics["after"],
            "student_alone": metrics["student_alone"]["val_accuracy"], "runtimes": metrics["runtimes"]}


def _qat(data: dict, out: Path) -> dict:
    from edgekit.compress import qat

    result = qat(f"{MODELS}:fragile_digits", train=data["train"], val=data["val"], out=out, epochs=3, lr=1e-4,
                 baseline=True, threads=1)
    metrics = result.record["metrics"]
    rows = {}
    for name, after in metrics["export_qat"]["artifacts"].items():
        before = metrics["export_ptq_before"]["artifacts"][name]
        rows[name] = {"ptq": before["label_accuracy"], "qat": after["label_accuracy"],
                      "size_bytes": after["size_bytes"], "p50_ms": after["p50_ms"]}
    return {"float": metrics["before"]["val_accuracy"], "qat_float": metrics["after"]["val_accuracy"],
            "simulated_int8": metrics["after_simulated_int8"]["val_accuracy"], "int8": rows}


def _ddp_throughput(reference: str, data: dict, out: Path, processes: int) -> dict:
    """Training samples per second of the wide CNN's structured-pruning fine-tune under torchrun."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "-m", "edgekit.cli", "compress", "prune", reference, "--train", str(data["train"]), "--val",
               str(data["val"]), "--epochs", "4", "--batch-size", "64", "--threads", "1", "--no-measure", "--json",
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    record = json.loads(finished.stdout[finished.stdout.index("{"):])
    seconds = statistics.median(h["seconds"] for h in record["training"]["history"][1:])
    samples = (1437 // 64) * 64
    return {"processes": processes, "epoch_seconds": seconds, "samples_per_second": samples / seconds,
            "val_accuracy": record["training"]["best_val_accuracy"],
            "max_weight_difference_across_ranks": record["training"]["max_weight_difference_across_ranks"]}


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def _p50(runtimes: dict, fmt: str, which: str) -> str:
    row = runtimes.get(fmt)
    return f"{row[which]['p50_ms']:.3f}" if isinstance(row, dict) else "—"


def _speedup(runtimes: dict, fmt: str) -> str:
    row = runtimes.get(fmt)
    return f"{row['speedup']:.2f}×" if isinstance(row, dict) else "—"


def _print(results: dict) -> None:
    host = results["host"]
    print(f"\nedgekit compress bench: {host['cpu']}, {host['cores']} cores, 1-min load {host['load_1min_at_start']:.1f} "
          f"at the start; {results['seconds']} s in all. p50 in ms at the x86 profile's 2 threads.\n")
    print("| method | model | params before → after | weights before → after | val acc before → after "
          "| ONNX FP32 p50 before → after | LiteRT FP32 p50 before → after |")
    print("|---|---|---|---|---|---|---|")
    rows = [("prune, structured 50 %", name, r) for name, r in results["prune"].items()]
    rows.append(("prune, unstructured 50 %", "wide CNN", results["unstructured"]))
    for method, name, r in rows:
        rt = r["runtimes"]
        weights = (f"{_kib(r['before']['safetensors_bytes'])} → {_kib(r['after']['safetensors_bytes'])}"
                   + (f" (gzip {_kib(r['before']['safetensors_gzip_bytes'])} → "
                      f"{_kib(r['after']['safetensors_gzip_bytes'])})" if r["sparsity"] else ""))
        print(f"| {method} | {name} | {r['before']['params']:,} → {r['after']['params']:,} | {weights} | "
              f"{r['before']['val_accuracy']:.2%} → {r['after']['val_accuracy']:.2%} | "
              f"{_p50(rt, 'onnx', 'before')} → {_p50(rt, 'onnx', 'after')} (**{_speedup(rt, 'onnx')}**) | "
              f"{_p50(rt, 'tflite', 'before')} → {_p50(rt, 'tflite', 'after')} (**{_speedup(rt, 'tflite')}**) |")
    d = results["distill"]
    rt = d["runtimes"]
    print(f"| distill (T=4) | digits CNN → 3.7k student | {d['teacher']['params']:,} → {d['student']['params']:,} | "
          f"{_kib(d['teacher']['safetensors_bytes'])} → {_kib(d['student']['safetensors_bytes'])} | "
          f"{d['teacher']['val_accuracy']:.2%} → {d['student']['val_accuracy']:.2%} (student alone: "
          f"{d['student_alone']:.2%}) | {_p50(rt, 'onnx', 'before')} → {_p50(rt, 'onnx', 'after')} "
          f"(**{_speedup(rt, 'onnx')}**) | {_p50(rt, 'tflite', 'before')} → {_p50(rt, 'tflite', 'after')} "
          f"(**{_speedup(rt, 'tflite')}**) |")
    q = results["qat"]
    print(f"\nQAT, fragile digits CNN: float {q['float']:.2%}; QAT weights in float {q['qat_float']:.2%}, simulated "
          f"INT8 {q['simulated_int8']:.2%}\n")
    print("| INT8 artifact | post-training INT8 of the original | INT8 after QAT | size | p50 ms |")
    print("|---|---|---|---|---|")
    for name, row in q["int8"].items():
        p50 = f"{row['p50_ms']:.3f}" if row["p50_ms"] is not None else "—"
        print(f"| {name} | {row['ptq']:.2%} | {row['qat']:.2%} | {_kib(row['size_bytes'])} | {p50} |")
    one, two = results["ddp"][1], results["ddp"][2]
    print(f"\nDDP (gloo, CPU, 1 thread per process), wide CNN fine-tune: 1 process {one['samples_per_second']:.0f} "
          f"samples/s, 2 processes {two['samples_per_second']:.0f} samples/s "
          f"(**{two['samples_per_second'] / one['samples_per_second']:.2f}×**); weights identical across ranks "
          f"(max difference {two['max_weight_difference_across_ranks']:g})")
    for name, r in [*results["prune"].items(), ("wide CNN, unstructured", results["unstructured"])]:
        for note in r["notes"]:
            print(f"- {name}: {note}")


if __name__ == "__main__":
    main()
