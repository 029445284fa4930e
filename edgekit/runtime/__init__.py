"""Runtime runners (no torch): load a model, run float in -> float out, benchmark like the standard tools.

Every runner has ``input_names``, ``output_names``, ``run(feeds) -> list[np.ndarray]`` and
``benchmark(feeds, warmup, runs, min_seconds) -> LatencyStats``; ``open_runner`` picks one by file type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError

RUNNER_FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".xml": "openvino"}


def open_runner(path: str | Path, threads: int = 1, **options: Any):
    """An ONNX Runtime, LiteRT or OpenVINO (IR ``.xml``) runner for ``path``, chosen by its suffix; an option the
    runner does not take (a hand-edited manifest's runner_options) is an ``InputError`` naming it."""
    suffix = Path(path).suffix
    try:
        return _open(path, suffix, threads, options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise InputError(f"runner option {str(exc).rpartition(' ')[2]} is not one the {suffix} runner takes "
                         f"({path})", hint="remove it from runner_options in manifest.json, or export again") from None


def _open(path: str | Path, suffix: str, threads: int, options: dict[str, Any]):
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
