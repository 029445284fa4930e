"""Runtime runners (no torch, except ExecuTorch's opt-in extra): load a model, run float in -> float out, benchmark
like the standard tools.

Every runner has ``input_names``, ``output_names``, ``run(feeds) -> list[np.ndarray]`` and
``benchmark(feeds, warmup, runs, min_seconds) -> LatencyStats``; ``open_runner`` picks one by file type from the
runtimes declared below (``registry.py``: one declaration per format, plugins add theirs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .ir_bundle import is_bundle
from .registry import Runtime, register_runtime, runtime_for_path, runtimes


def _onnx(path, threads: int = 1, **options: Any):
    from .onnxrt import OnnxRunner

    return OnnxRunner(path, threads=threads, **options)


def _litert(path, threads: int = 1, **options: Any):
    from .litert import LiteRtRunner

    return LiteRtRunner(path, threads=threads, **options)


def _openvino(path, threads: int = 1, **options: Any):
    from .openvino import OpenVinoRunner

    return OpenVinoRunner(path, threads=threads, **options)


def _executorch(path, threads: int = 1, **options: Any):
    from .executorch import ExecuTorchRunner

    return ExecuTorchRunner(path, threads=threads, **options)


register_runtime(Runtime(
    "onnx", "ONNX Runtime", (".onnx",), _onnx, lambda path, threads, options: _onnx(path.read_bytes(), threads),
    sniff=lambda head: True, v2_platform="onnxruntime_onnx", fallback=True))  # protobuf has no magic number
register_runtime(Runtime(
    "tflite", "LiteRT", (".tflite",), _litert,
    lambda path, threads, options: _litert(path, threads, input_names=options.get("input_names"),
                                           channels_last_inputs=bool(options.get("channels_last_inputs"))),
    sniff=lambda head: head[4:8] == b"TFL3", v2_platform="tensorflow_lite"))
register_runtime(Runtime(
    "openvino", "OpenVINO", (".xml",), _openvino,
    lambda path, threads, options: _openvino(path.read_bytes(), threads, **{
        k: v for k, v in options.items() if k in ("inference_precision",)}),
    sniff=is_bundle, v2_platform="openvino_ir", archs=("x86_64",),
    archs_why="edgekit builds and gates OpenVINO IRs for x86 CPU kernels, and its ARM device "
              "(scripts/arm64-device.sh) has no OpenVINO"))
register_runtime(Runtime(
    "executorch", "ExecuTorch", (".pte",), _executorch,
    lambda path, threads, options: _executorch(path, threads, input_names=options.get("input_names")),
    sniff=lambda head: head[4:6] == b"ET" and head[6:8].isdigit(), v2_platform="executorch"))


def open_runner(path: str | Path, threads: int = 1, **options: Any):
    """The runner for ``path``, chosen by its suffix; an option the runner does not take (a hand-edited manifest's
    runner_options) is an ``InputError`` naming it."""
    found = runtime_for_path(path)
    if found is None:
        known = ", ".join(s for r in runtimes() for s in r.suffixes)
        raise InputError(f"no runtime runs '{Path(path).suffix}' files ({path}); known: {known}",
                         hint="pass a model file of one of those kinds")
    try:
        return found.open(path, threads=threads, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise InputError(f"runner option {str(exc).rpartition(' ')[2]} is not one the {found.label} runner takes "
                         f"({path})", hint="remove it from runner_options in manifest.json, or export again") from None
