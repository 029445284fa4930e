"""PyTorch -> ONNX with ``torch.onnx`` (dynamo exporter first, TorchScript as recorded fallback), then verified."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from ...errors import ExportError
from ...quiet import quiet
from ..sources import TorchSource
from .base import Artifact, StepContext, StepResult
from .verify import check_outputs, first_lines

DYNAMO_MIN_OPSET = 18
_OP_PATTERN = re.compile(r"(aten::[A-Za-z0-9_.]+|aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?|[a-z_]+::[A-Za-z0-9_]+)")


def export_onnx(source: TorchSource, out_path: Path, context: StepContext, dynamic_batch: bool) -> StepResult:
    """Export, then run the ONNX model in ONNX Runtime against PyTorch on the example inputs."""
    start = time.perf_counter()
    feeds = dict(source.examples)
    if dynamic_batch:  # torch.export specializes size-1 dims, so trace with a batch of 2
        feeds = {k: np.concatenate([v, v]) if v.shape and v.shape[0] == 1 else v for k, v in feeds.items()}
    errors: dict[str, str] = {}
    full_errors: list[str] = []
    exporter = None
    if context.profile.opset < DYNAMO_MIN_OPSET:
        errors["dynamo"] = f"the dynamo exporter needs opset >= {DYNAMO_MIN_OPSET}; the target asks for " \
                           f"{context.profile.opset}"
    for name in ("dynamo", "torchscript"):
        if name in errors:
            continue
        try:
            with quiet():
                _export_with(name, source, feeds, out_path, context.profile.opset, dynamic_batch)
            exporter = name
            break
        except Exception as exc:  # the exporters raise many types; each is recorded with its reason
            errors[name] = f"{type(exc).__name__}: {first_lines(str(exc))}"
            full_errors.append(str(exc))
    if exporter is None:
        ops = sorted({m for text in full_errors for m in _OP_PATTERN.findall(text)})
        op_text = f" (unsupported op: {', '.join(ops)})" if ops else ""
        raise ExportError(f"torch.onnx could not export {source.reference}{op_text}; "
                          f"dynamo: {errors['dynamo'][:200]}; torchscript: {errors['torchscript'][:200]}",
                          hint="replace the op with supported ones, or export the model to ONNX yourself "
                               "and pass the .onnx file")
    max_diff = verify_against_torch(source, out_path, context)
    details = {"exporter": exporter, "verify_max_abs_diff": max_diff}
    if "dynamo" in errors:
        details["dynamo_failed_because"] = errors["dynamo"][:500]
    result = StepResult("export_onnx", Artifact(out_path, "onnx", "fp32"),
                        {"opset": context.profile.opset, "dynamic_batch": dynamic_batch}, details=details)
    result.seconds = time.perf_counter() - start
    return result


def _export_with(exporter: str, source: TorchSource, feeds, out_path: Path, opset: int, dynamic_batch: bool):
    import torch

    names = [s.name for s in source.inputs]
    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)
    if out_path.exists():
        out_path.unlink()
    if exporter == "dynamo":
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) * len(args) if dynamic_batch else None
        program = torch.onnx.export(source.module, args, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=source.output_names or None, dynamic_shapes=dynamic_shapes,
                                    external_data=False, verbose=False)
        program.save(str(out_path), external_data=False)
    else:
        dynamic_axes = {n: {0: "batch"} for n in names} if dynamic_batch else None
        torch.onnx.export(source.module, args, str(out_path), dynamo=False, opset_version=opset, input_names=names,
                          output_names=source.output_names or None, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)


def verify_against_torch(source: TorchSource, onnx_path: Path, context: StepContext) -> float:
    """Max abs difference between ONNX Runtime and PyTorch; a mismatch is an ``OutputMismatchError``."""
    from ...runtime.onnxrt import OnnxRunner

    got = OnnxRunner(onnx_path, threads=context.profile.threads).run(source.examples)
    return check_outputs(source.run(source.examples), got, "exported ONNX",
                         hint="the exporter mistranslated an op; try another opset in the target profile")
