"""A fourth route in one file, as a plugin (``EDGEKIT_PLUGINS=tests.system.plugins.gzip_route``): the FP32 ONNX
model gzip-compressed (``.onnx.gz``-style ``.onnxgz`` files), run by ONNX Runtime after decompressing. Nothing
else in edgekit names it: the routes redesign's test that a new backend is one module."""

from __future__ import annotations

import gzip
from pathlib import Path

from edgekit.exporter.routes import PlannedStep, Route, register_route
from edgekit.exporter.steps import Artifact, Step, StepResult
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.runtime.registry import Runtime, register_runtime
from edgekit.targets import Precision

GZIP_MAGIC = b"\x1f\x8b"


class GzipOnnx(Step):
    name = "gzip_onnx"

    def apply(self, artifact: Artifact, out_path: Path, context) -> StepResult:
        out_path.write_bytes(gzip.compress(artifact.path.read_bytes(), mtime=0))
        return StepResult(self.name, Artifact(out_path, "gzonnx", artifact.precision), {"level": 9})


class GzipOnnxRoute(Route):
    name = "gzonnx"
    title = "gzip-compressed ONNX"
    suffix = ".onnxgz"
    precisions = (Precision.fp32,)
    int8_kernel_archs = ("x86_64", "arm64")
    sources = ("pytorch", "onnx")
    float_onnx_sources = ("pytorch", "onnx")

    def plan_steps(self, precision, context) -> list[PlannedStep]:
        return [PlannedStep("gzip_onnx", {"level": 9}, GzipOnnx)]


def _open(path, threads: int = 1, **options):
    return OnnxRunner(gzip.decompress(Path(path).read_bytes()), threads=threads)


register_runtime(Runtime("gzonnx", "ONNX Runtime (gzip)", (".onnxgz",), _open,
                         lambda path, threads, options: _open(path, threads),
                         sniff=lambda head: head[:2] == GZIP_MAGIC, v2_platform="onnxruntime_onnx"))
register_route(GzipOnnxRoute)
