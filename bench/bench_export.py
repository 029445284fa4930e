"""Benchmark edgekit's x86 auto export against PyTorch eager and what a user gets from plain ONNX Runtime.

For each model, at batch 1 with 2 threads: PyTorch eager, ORT FP32 on a plain ``torch.onnx.export``, ORT's
``quantize_dynamic`` with defaults on that export, and every candidate ``edgekit.export(..., format="auto")``
built (ONNX and TFLite, fp32 and int8_static), the one edgekit selected marked. The export itself is timed
end to end. Variants are timed round-robin (rotating order); latencies are the median of the round p50s/p90s,
and each speed-up is the median of the per-round ratios, so one busy round on a shared machine cannot pair a
slow baseline with a fast candidate.

    .venv/bin/python bench/bench_export.py [--models mobilenet_v2,resnet18] [--rounds 3] [--json out.json]
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
from edgekit.errors import EdgekitError
from edgekit.quiet import quiet
from edgekit.runtime import open_runner
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.runtime.stats import LatencyStats, time_calls

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import models  # noqa: E402  (bench/models.py, beside this file)

MODELS = {"mobilenet_v2": "mobilenet_v2_style", "resnet18": "resnet18_style"}
THREADS = 2
OPSET = 18
CALIB_SAMPLES = 32
VAL_SAMPLES = 16
WARMUP, RUNS, MIN_SECONDS = 5, 20, 1.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INT8_SPEEDUP_TARGET = 1.6  # issue 2: edgekit ONNX int8_static vs ORT FP32
AUTO_VS_EAGER_TARGET = {"mobilenet_v2": 10.0, "resnet18": 4.4}  # issue 3: edgekit's auto choice vs PyTorch eager
COSINE_TARGET = 0.999
EXPORT_SECONDS_TARGET = 120.0
EAGER, ORT_FP32, ORT_DYNAMIC = "pytorch eager", "ort fp32 (plain export)", "ort quantize_dynamic"
EK_ONNX_INT8 = "edgekit onnx/int8_static"
TARGETS = (f"edgekit ONNX int8_static >= {INT8_SPEEDUP_TARGET}x faster than ORT FP32 (p50)",
           "edgekit auto choice faster than PyTorch eager (p50) by "
           + ", ".join(f">= {t}x for {m}" for m, t in AUTO_VS_EAGER_TARGET.items()),
           f"edgekit auto choice cosine >= {COSINE_TARGET} vs PyTorch (min over val samples)",
           "edgekit auto choice not slower than the fastest FP32 variant of the same round (median ratio >= 1)",
           f"whole edgekit export --target x86 --format auto < {EXPORT_SECONDS_TARGET:.0f} s")


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


def smooth_images(count: int, seed: int) -> np.ndarray:
    """Image-like inputs: coarse and medium random noise upsampled bilinearly, ImageNet-normalised."""
    generator = torch.Generator().manual_seed(seed)
    size = models.INPUT_SHAPE[-2:]

    def octave(cells: int, weight: float) -> torch.Tensor:
        noise = torch.rand(count, 3, cells, cells, generator=generator)
        return weight * torch.nn.functional.interpolate(noise, size=size, mode="bilinear", align_corners=False)

    pixels = (octave(7, 0.7) + octave(28, 0.3)).clamp(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((pixels - mean) / std).numpy().astype(np.float32)


def write_data(folder: Path, input_name: str) -> tuple[Path, Path]:
    """Calibration and validation ``.npz`` files keyed by the model's input name (distinct seeds)."""
    calib, val = folder / "calib.npz", folder / "val.npz"
    np.savez(calib, **{input_name: smooth_images(CALIB_SAMPLES, seed=1)})
    np.savez(val, **{input_name: smooth_images(VAL_SAMPLES, seed=2)})
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


def candidate_label(name: str) -> str:
    """The row of an edgekit candidate, e.g. ``edgekit tflite/int8_static``."""
    return f"edgekit {name}"


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


def fidelity(runner, reference: list[list[np.ndarray]], val: dict[str, np.ndarray]) -> dict:
    """Cosine (min over samples) and top-1 agreement of an ONNX or TFLite variant against PyTorch."""
    outputs = [runner.run({name: arr[i:i + 1] for name, arr in val.items()}) for i in range(len(reference))]
    report = compare_outputs(reference, outputs)
    return {"cosine_min": report.cosine_min, "top1_agreement": report.top1_agreement}


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
    folder = workdir / name
    folder.mkdir()
    ort_fp32 = plain_export(module, example, folder)
    input_name = OnnxRunner(ort_fp32).input_names[0]
    calib, val = write_data(folder, input_name)
    out = folder / "edgekit-x86"
    manifest, export_seconds = edgekit_export(factory, out, calib, val)
    built = {candidate_label(a["name"]): a for a in manifest["artifacts"] if a["file"]}
    paths = {ORT_FP32: ort_fp32, ORT_DYNAMIC: plain_quantize_dynamic(ort_fp32),
             **{v: out / a["file"] for v, a in built.items()}}
    options = {v: a["runner_options"] for v, a in built.items()}
    runners = {v: open_runner(p, threads=THREADS, **options.get(v, {})) for v, p in paths.items()}

    val_inputs = dict(np.load(val))
    feeds = {input_name: val_inputs[input_name][:1]}
    timers = {EAGER: lambda: eager_benchmark(module, torch.from_numpy(feeds[input_name]))}
    timers.update({v: (lambda r=r: r.benchmark(feeds, warmup=WARMUP, runs=RUNS, min_seconds=MIN_SECONDS))
                   for v, r in runners.items()})
    variants = summarise(time_round_robin(timers, rounds))

    reference = torch_reference(module, val_inputs[input_name])
    for variant, runner in runners.items():
        variants[variant].update(fidelity(runner, reference, val_inputs), file=str(paths[variant].relative_to(folder)))
    for variant, artifact in built.items():
        own = artifact["latency"]
        variants[variant].update(status=artifact["status"], rejected_reason=artifact["rejected_reason"],
                                 precision=artifact["precision"], edgekit_p50_ms=own and own["p50_ms"])
    selected = next((a["name"] for a in manifest["artifacts"] if a["status"] == "selected"), None)
    return {"model": name, "factory": f"bench/models.py:{factory}", "input": input_name,
            "edgekit_status": manifest["status"], "edgekit_export_s": round(export_seconds, 1),
            "edgekit_timings_s": manifest["timings_s"], "recommended": manifest["recommended"],
            "selected": selected, "rejected": {a["name"]: a["rejected_reason"] for a in manifest["artifacts"]
                                               if a["status"] == "rejected"},
            "host_fusion": host_fusion(built.get(EK_ONNX_INT8)), "variants": variants}


def host_fusion(artifact: dict | None) -> dict | None:
    """The ONNX int8_static quantize step's fusion report (None when that candidate was not built)."""
    steps = artifact["steps"] if artifact else []
    return next((s["details"]["host_fusion"] for s in steps if s["step"] == "quantize_static"), None)


def speedup(result: dict, baseline: str, variant: str) -> float:
    """Median over rounds of baseline p50 / variant p50, both measured in the same round."""
    rounds = result["variants"]
    return statistics.median(b["p50_ms"] / v["p50_ms"]
                             for b, v in zip(rounds[baseline]["rounds"], rounds[variant]["rounds"]))


def round_ratios(result: dict, baselines: list[str], variant: str) -> list[float]:
    """Per round: the fastest of ``baselines`` (p50) / ``variant`` p50, all measured in that round."""
    rounds = [result["variants"][b]["rounds"] for b in baselines]
    mine = result["variants"][variant]["rounds"]
    return [min(b[i]["p50_ms"] for b in rounds) / mine[i]["p50_ms"] for i in range(len(mine))]


def fp32_variants(result: dict) -> list[str]:
    """ORT FP32 on the plain export and every FP32 candidate edgekit built."""
    return [ORT_FP32] + [v for v, e in result["variants"].items() if e.get("precision") == "fp32"]


def model_targets(result: dict) -> list[tuple[str, bool]]:
    """(figure, met) per entry of ``TARGETS`` for one model."""
    v, auto = result["variants"], result["selected"] and candidate_label(result["selected"])
    int8 = speedup(result, ORT_FP32, EK_ONNX_INT8) if EK_ONNX_INT8 in v else None
    rows = [(f"{int8:.2f}x", int8 >= INT8_SPEEDUP_TARGET) if int8 is not None else ("not built", False)]
    if auto is None:
        rows += [("nothing selected", False)] * 3
    else:
        vs_eager, cosine = speedup(result, EAGER, auto), v[auto]["cosine_min"]
        ratios = round_ratios(result, fp32_variants(result), auto)
        rows += [(f"{vs_eager:.2f}x ({result['selected']})", vs_eager >= AUTO_VS_EAGER_TARGET[result["model"]]),
                 (f"{cosine:.5f}", cosine >= COSINE_TARGET),
                 (f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)",
                  statistics.median(ratios) >= 1.0)]
    seconds = result["edgekit_export_s"]
    return rows + [(f"{seconds:.1f} s", seconds < EXPORT_SECONDS_TARGET)]


def check_targets(results: list[dict]) -> list[dict]:
    """The issues' targets, each with per-model figures and PASS/MISS."""
    per_model = {r["model"]: model_targets(r) for r in results}
    return [{"target": text, "figures": {m: rows[i][0] for m, rows in per_model.items()},
             "passed": all(rows[i][1] for rows in per_model.values())} for i, text in enumerate(TARGETS)]


def gate_text(entry: dict) -> str:
    """edgekit's verdict on a candidate row and the p50 it measured itself; empty for the other variants."""
    if "status" not in entry:
        return ""
    verdict = {"selected": "SELECTED (auto)", "passed": "pass", "rejected": "REJECTED"}[entry["status"]]
    own = entry["edgekit_p50_ms"]
    return verdict + (f" ({own:.2f} ms)" if own is not None else "")


def print_model(result: dict) -> None:
    v = result["variants"]
    print(f"\n== {result['model']} ({result['factory']}, input '{result['input']}' 1x3x224x224, batch 1, "
          f"{THREADS} threads) ==")
    print(f"edgekit export --format auto: status {result['edgekit_status']}, {result['edgekit_export_s']} s wall; "
          "steps: " + ", ".join(f"{k} {s:.1f}" for k, s in result["edgekit_timings_s"].items()))
    print(f"{'variant':<28}{'p50 ms':>9}{'p90 ms':>9}{'vs eager':>10}{'vs ORT fp32':>13}{'cos min':>10}"
          f"{'top1 agr':>10}  edgekit (its own p50)")
    for name, e in v.items():
        cos = f"{e['cosine_min']:.5f}" if "cosine_min" in e else "ref"
        agree = f"{e['top1_agreement']:.3f}" if "top1_agreement" in e else "ref"
        print(f"{name:<28}{e['p50_ms']:>9.2f}{e['p90_ms']:>9.2f}{speedup(result, EAGER, name):>9.2f}x"
              f"{speedup(result, ORT_FP32, name):>12.2f}x{cos:>10}{agree:>10}  {gate_text(e)}")
    chosen = f"{result['selected']} ({result['recommended']})" if result["selected"] else "nothing selected"
    print(f"edgekit auto → {chosen}")
    for name, reason in result["rejected"].items():
        print(f"    rejected {name}: {reason}")
    fusion = result["host_fusion"]
    if fusion:
        print(f"onnx int8_static host fusion (ORT 'all' on this host): integer ops {fusion['integer_ops']}; "
              f"float compute ops left: {fusion['float_compute_ops']}")
        for node in fusion["left_in_float"][:10]:
            print(f"    left in float: {node}")


def print_targets(targets: list[dict]) -> None:
    print("\n== targets ==")
    for t in targets:
        figures = "; ".join(f"{m}: {f}" for m, f in t["figures"].items())
        print(f"[{'PASS' if t['passed'] else 'MISS'}] {t['target']} -- {figures}")


def environment() -> dict:
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "edgekit": edgekit.__version__, "threads": THREADS,
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
            print_model(results[-1])
    targets = check_targets(results)
    print_targets(targets)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rounds": args.rounds, "models": results,
                                         "targets": targets}, indent=2) + "\n")


if __name__ == "__main__":
    main()
