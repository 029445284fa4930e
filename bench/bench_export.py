"""Benchmark edgekit's x86 auto export against PyTorch eager and what a user gets from plain ONNX Runtime or
plain OpenVINO.

For each model (MobileNetV2-style, ResNet-18-style, a YOLOv8n-shaped detector at 320x320; random weights), at
batch 1 with 2 threads: PyTorch eager, ORT FP32 on a plain ``torch.onnx.export``, ORT's ``quantize_dynamic``
with defaults on that export, OpenVINO on that export with its default precision hint (what a user trying
OpenVINO by hand gets), and every candidate ``edgekit.export(..., format="auto")`` built (ONNX Runtime, LiteRT,
OpenVINO and ExecuTorch; fp32 and int8_static, bf16 where the CPU has it), the one edgekit selected marked. The export
itself is timed end to end. Variants are timed round-robin (rotating order); latencies are the median of the
round p50s/p90s, and each speed-up is the median of the per-round ratios, so one busy round on a shared machine
cannot pair a slow baseline with a fast candidate. ``export_report.py`` prints the tables and the targets.

    .venv/bin/python bench/bench_export.py [--models mobilenet_v2,resnet18,yolov8n] [--rounds 3] [--json out.json]
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
import torch

import edgekit
from edgekit.accuracy import compare_outputs
from edgekit.agent.conditions import cpu_features
from edgekit.errors import EdgekitError
from edgekit.exporter.steps.openvino_convert import openvino_tools
from edgekit.quiet import quiet
from edgekit.runtime import open_runner
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.runtime.openvino import OpenVinoRunner, load_openvino
from edgekit.runtime.stats import LatencyStats, time_calls

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import export_report  # noqa: E402  (bench/export_report.py, beside this file)
import models  # noqa: E402  (bench/models.py, beside this file)
from export_report import EAGER, ORT_DYNAMIC, ORT_FP32, OV_PLAIN, candidate_label  # noqa: E402

MODELS = {"mobilenet_v2": "mobilenet_v2_style", "resnet18": "resnet18_style", "yolov8n": "yolov8n_style"}
DETECTORS = ("yolov8n",)  # [0, 1] pixels like YOLO's; output rows 4: are class scores
THREADS = 2
OPSET = 18
CALIB_SAMPLES = 32
VAL_SAMPLES = 16
WARMUP, RUNS, MIN_SECONDS = 5, 20, 1.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin timing rounds per model (default: 3)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - MODELS.keys())
    if unknown or not args.models:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def smooth_images(count: int, seed: int, size: tuple[int, int], normalise: bool) -> np.ndarray:
    """Image-like inputs: coarse and medium random noise upsampled bilinearly, ImageNet-normalised or not."""
    generator = torch.Generator().manual_seed(seed)

    def octave(cells: int, weight: float) -> torch.Tensor:
        noise = torch.rand(count, 3, cells, cells, generator=generator)
        return weight * torch.nn.functional.interpolate(noise, size=size, mode="bilinear", align_corners=False)

    pixels = (octave(7, 0.7) + octave(28, 0.3)).clamp(0.0, 1.0)
    if not normalise:
        return pixels.numpy().astype(np.float32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((pixels - mean) / std).numpy().astype(np.float32)


def write_data(folder: Path, input_name: str, size: tuple[int, int], normalise: bool) -> tuple[Path, Path]:
    """Calibration and validation ``.npz`` files keyed by the model's input name (distinct seeds)."""
    calib, val = folder / "calib.npz", folder / "val.npz"
    np.savez(calib, **{input_name: smooth_images(CALIB_SAMPLES, 1, size, normalise)})
    np.savez(val, **{input_name: smooth_images(VAL_SAMPLES, 2, size, normalise)})
    return calib, val


def plain_export(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> Path:
    """What a user gets without edgekit: the dynamo exporter at opset 18, saved as is."""
    path = folder / "plain.onnx"
    with quiet():
        torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=OPSET)
    return path


def plain_quantize_dynamic(fp32_path: Path) -> Path:
    """ORT's ``quantize_dynamic`` with every default: what a user would try first."""
    from onnxruntime.quantization import quantize_dynamic

    path = fp32_path.with_name("plain.int8_dynamic.onnx")
    with quiet():
        quantize_dynamic(fp32_path, path)
    return path


def plain_openvino(fp32_path: Path) -> OpenVinoRunner:
    """OpenVINO on the plain export as a user tries it by hand: converted as is, the CPU plugin's default precision
    hint (bf16 on AMX CPUs, f32 elsewhere)."""
    ov = load_openvino()
    path = fp32_path.with_name("plain.openvino.xml")
    with openvino_tools():
        ov.save_model(ov.convert_model(str(fp32_path)), str(path), compress_to_fp16=False)
    return OpenVinoRunner(path, threads=THREADS, inference_precision=None)


def edgekit_export(factory: str, out: Path, calib: Path, val: Path) -> tuple[dict, float]:
    """``edgekit export --target x86 --format auto`` (gate, host latency, selection); manifest and wall seconds.

    A run where no candidate passed raises after writing the folder; the manifest then shows why.
    """
    started = time.perf_counter()
    try:
        edgekit.export(f"{BENCH_DIR / 'models.py'}:{factory}", "x86", out=out, calib=calib, val=val,
                       format="auto", overwrite=True)
    except EdgekitError:
        if not (out / "manifest.json").is_file():
            raise
    seconds = time.perf_counter() - started
    return json.loads((out / "manifest.json").read_text()), seconds


def eager_benchmark(module: torch.nn.Module, x: torch.Tensor) -> LatencyStats:
    """The runners' benchmark loop around a PyTorch eager call."""
    with torch.inference_mode():
        return time_calls(lambda: module(x), torch.get_num_threads(), WARMUP, RUNS, MIN_SECONDS)


def time_round_robin(timers: dict, rounds: int) -> dict[str, list[LatencyStats]]:
    """Call every timer once per round, rotating the order so no variant always follows the same one."""
    names = list(timers)
    results: dict[str, list[LatencyStats]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(timers[name]())
    return results


def fidelity(runner, reference: list[list[np.ndarray]], val: dict[str, np.ndarray], detector: bool) -> dict:
    """Cosine (min over samples) and top-1 agreement of a variant against PyTorch; for a detector also the cosine
    of the class scores alone (the whole output's cosine is dominated by box coordinates in pixels)."""
    outputs = [runner.run({name: arr[i:i + 1] for name, arr in val.items()}) for i in range(len(reference))]
    report = compare_outputs(reference, outputs)
    figures = {"cosine_min": report.cosine_min, "top1_agreement": report.top1_agreement}
    if detector:
        classes = compare_outputs([[r[0][:, 4:]] for r in reference], [[o[0][:, 4:]] for o in outputs])
        figures["class_cosine_min"] = classes.cosine_min
    return figures


def torch_reference(module: torch.nn.Module, inputs: np.ndarray) -> list[list[np.ndarray]]:
    """PyTorch eager outputs per sample, in the layout ``compare_outputs`` takes."""
    with torch.inference_mode():
        return [[module(torch.from_numpy(inputs[i:i + 1])).numpy()] for i in range(len(inputs))]


def summarise(timed: dict[str, list[LatencyStats]]) -> dict[str, dict]:
    """Median of the round p50s and p90s per variant, with every round kept."""
    return {variant: {"p50_ms": statistics.median(s.p50_ms for s in stats),
                      "p90_ms": statistics.median(s.p90_ms for s in stats), "rounds": [s.to_dict() for s in stats]}
            for variant, stats in timed.items()}


def bench_model(name: str, rounds: int, workdir: Path) -> dict:
    """Build, export (plain and edgekit auto), time every variant round-robin and check fidelity, for one model."""
    factory = MODELS[name]
    module, example = getattr(models, factory)()
    detector = name in DETECTORS
    folder = workdir / name
    folder.mkdir()
    ort_fp32 = plain_export(module, example, folder)
    input_name = OnnxRunner(ort_fp32).input_names[0]
    calib, val = write_data(folder, input_name, tuple(example.shape[-2:]), normalise=not detector)
    out = folder / "edgekit-x86"
    manifest, export_seconds = edgekit_export(factory, out, calib, val)
    built = {candidate_label(a["name"]): a for a in manifest["artifacts"] if a["file"]}
    paths = {ORT_FP32: ort_fp32, ORT_DYNAMIC: plain_quantize_dynamic(ort_fp32),
             **{v: out / a["file"] for v, a in built.items()}}
    runners = {v: open_runner(p, threads=THREADS, **built[v]["runner_options"] if v in built else {})
               for v, p in paths.items()}
    runners[OV_PLAIN] = plain_openvino(ort_fp32)
    paths[OV_PLAIN] = runners[OV_PLAIN].path

    val_inputs = dict(np.load(val))
    feeds = {input_name: val_inputs[input_name][:1]}
    timers = {EAGER: lambda: eager_benchmark(module, torch.from_numpy(feeds[input_name]))}
    timers.update({v: (lambda r=r: r.benchmark(feeds, warmup=WARMUP, runs=RUNS, min_seconds=MIN_SECONDS))
                   for v, r in runners.items()})
    variants = summarise(time_round_robin(timers, rounds))

    reference = torch_reference(module, val_inputs[input_name])
    for variant, runner in runners.items():
        variants[variant].update(fidelity(runner, reference, val_inputs, detector),
                                 file=str(paths[variant].relative_to(folder)))
    variants[OV_PLAIN]["execution"] = runners[OV_PLAIN].execution_info()
    for variant, artifact in built.items():
        own = artifact["latency"]
        variants[variant].update(status=artifact["status"], rejected_reason=artifact["rejected_reason"],
                                 precision=artifact["precision"], edgekit_p50_ms=own and own["p50_ms"],
                                 execution=artifact.get("execution"))
    selected = next((a["name"] for a in manifest["artifacts"] if a["status"] == "selected"), None)
    return {"model": name, "factory": f"bench/models.py:{factory}", "input": input_name,
            "input_shape": list(example.shape), "detector": detector,
            "edgekit_status": manifest["status"], "edgekit_export_s": round(export_seconds, 1),
            "edgekit_timings_s": manifest["timings_s"], "recommended": manifest["recommended"],
            "selected": selected, "rejected": {a["name"]: a["rejected_reason"] for a in manifest["artifacts"]
                                               if a["status"] == "rejected"},
            "notes": manifest["notes"], "host_fusion": host_fusion(built.get(candidate_label("onnx/int8_static"))),
            "variants": variants}


def host_fusion(artifact: dict | None) -> dict | None:
    """The ONNX int8_static quantize step's fusion report (None when that candidate was not built)."""
    steps = artifact["steps"] if artifact else []
    return next((s["details"]["host_fusion"] for s in steps if s["step"] == "quantize_static"), None)


def environment() -> dict:
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpu_features": cpu_features(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "openvino": load_openvino().get_version().split("-")[0], "edgekit": edgekit.__version__, "threads": THREADS,
            "cpus": os.cpu_count(), "load_1min_at_start": round(os.getloadavg()[0], 2)}


def print_load_note(env: dict) -> None:
    """Say so when other processes already keep the cores busy: then 2-thread timings are disturbed."""
    spare = env["cpus"] - env["load_1min_at_start"]
    if spare < THREADS - 0.5:
        print(f"note: 1-min load {env['load_1min_at_start']} on {env['cpus']} CPUs before starting: other processes "
              f"compete with the {THREADS} timed threads, so absolute ms are inflated and noisy; "
              "compare the ratios, or rerun on an idle host")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    env = environment()
    print(f"bench_export: {', '.join(f'{k} {v}' for k, v in env.items())}; rounds {args.rounds}, "
          f"each >= {RUNS} runs and {MIN_SECONDS} s after {WARMUP} warm-up; calib {CALIB_SAMPLES}, "
          f"val {VAL_SAMPLES} smooth random images")
    print_load_note(env)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as workdir:
        results = []
        for name in args.models:
            results.append(bench_model(name, args.rounds, Path(workdir)))
            export_report.print_model(results[-1], THREADS)
    targets = export_report.check_targets(results, env["cpu_features"])
    export_report.print_summary(results)
    export_report.print_targets(targets)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rounds": args.rounds, "models": results,
                                         "targets": targets}, indent=2) + "\n")


if __name__ == "__main__":
    main()
