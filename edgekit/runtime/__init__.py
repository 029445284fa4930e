"""Runtime runners (no torch): load a model, run float in -> float out, benchmark like the standard tools.

Every runner has ``input_names``, ``output_names``, ``run(feeds) -> list[np.ndarray]`` and
``benchmark(feeds, warmup, runs, min_seconds) -> LatencyStats``; ``open_runner`` picks one by file type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RUNNER_FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".xml": "openvino"}


def open_runner(path: str | Path, threads: int = 1, **options: Any):
    """An ONNX Runtime, LiteRT or OpenVINO (IR ``.xml``) runner for ``path``, chosen by its suffix."""
    suffix = Path(path).suffix
    if suffix == ".onnx":
        from .onnxrt import OnnxRunner

        return OnnxRunner(path, threads=threads, **options)
    if suffix == ".tflite":
        from .litert import LiteRtRunner

        return LiteRtRunner(path, threads=threads, **options)
    if suffix == ".xml":
        from .openvino import OpenVinoRunner

        return OpenVinoRunner(path, threads=threads, **options)
    raise ValueError(f"no runner for '{suffix}' files; known: {', '.join(RUNNER_FORMATS)}")
