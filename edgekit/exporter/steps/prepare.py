"""Graph preparation that published ONNX files need before they are optimized and quantized.

- Dimensions the input specs fix (``--input x:1x3x640x640`` on a ``batch x 3 x H x W`` model) are written into
  the graph with ONNX Runtime's model utilities, output shapes too where they follow, so shape inference and
  the quantizer see static shapes.
- An opset below 13 is upgraded with ``onnx.version_converter`` (per-channel QDQ needs
  ``DequantizeLinear.axis``, new in opset 13); the upgrade is checked by running both graphs on one sample.
  Where the upgrade fails, the model keeps its opset and static INT8 falls back to per-tensor weights.
- Control flow (``If``/``Loop``/``Scan``) is reported: the quantizer leaves subgraphs in float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ...specs import example_arrays
from ..onnx_graph import default_opset
from .base import Artifact, Step, StepContext, StepResult, register
from .verify import check_outputs, first_lines

QDQ_MIN_OPSET = 13
CONTROL_FLOW_OPS = ("If", "Loop", "Scan")


@register
class Prepare(Step):
    name = "prepare"

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        original = onnx.load(str(artifact.path))
        feeds = _sample_feeds(context)
        details: dict = {"opset_before": default_opset(original)}
        model = onnx.ModelProto()
        model.CopyFrom(original)
        details["fixed_dims"] = fix_input_dims(model, context.inputs)
        if details["fixed_dims"]:
            details["fixed_output_shapes"] = _fix_output_shapes(model)
            problem = same_outputs(original, model, feeds, "fixing the input dims")
            if problem:
                model, details["fixed_dims"] = original, f"kept symbolic: {problem}"
        if details["opset_before"] < QDQ_MIN_OPSET:
            model, details["opset_upgrade"] = upgrade_opset(model, feeds)
        details["opset"] = default_opset(model)
        details["control_flow_left_in_float"] = control_flow_nodes(model)
        onnx.save(model, str(out_path))
        return StepResult(self.name, Artifact(out_path, artifact.format, artifact.precision),
                          {"qdq_min_opset": QDQ_MIN_OPSET}, details=details)


def fix_input_dims(model: onnx.ModelProto, specs: list) -> dict[str, list]:
    """Write the specs' fixed dims over symbolic or unknown graph input dims; returns {input: new shape}.

    A symbol fixed to one value everywhere is replaced graph-wide (so inner shapes follow); one that would take
    several values (Paddle writes ``?`` for both height and width) is fixed only where the input uses it.
    """
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed, remove_invalid_dim_values

    remove_invalid_dim_values(model.graph)  # converters write -1 for "dynamic"
    by_name = {s.name: s for s in specs}
    wanted_dims = []  # (graph dim, wanted value) for every dim the specs fix
    for value in model.graph.input:
        spec = by_name.get(value.name)
        dims = value.type.tensor_type.shape.dim
        if spec is not None and len(dims) == len(spec.shape):
            wanted_dims += [(value.name, dim, wanted) for dim, wanted in zip(dims, spec.shape)
                            if isinstance(wanted, int) and not dim.HasField("dim_value")]
    values_of: dict[str, set] = {}
    for _, dim, wanted in wanted_dims:
        values_of.setdefault(dim.dim_param, set()).add(wanted)
    changed = set()
    for name, dim, wanted in wanted_dims:
        symbol = dim.dim_param
        if symbol and len(values_of[symbol]) == 1:
            make_dim_param_fixed(model.graph, symbol, wanted)  # every use of the symbol, graph-wide
        else:
            dim.Clear()
            dim.dim_value = wanted
        changed.add(name)
    return {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
            for v in model.graph.input if v.name in changed}


def _fix_output_shapes(model: onnx.ModelProto) -> str:
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes

    try:
        fix_output_shapes(model)
    except Exception as exc:  # shape inference refuses some graphs; the outputs then stay symbolic
        return f"left symbolic: {type(exc).__name__}: {first_lines(str(exc))[:200]}"
    return "fixed where shape inference could"


def upgrade_opset(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, str]:
    """``model`` at opset 13 if the converter manages it and the outputs do not move, else as it was."""
    before = default_opset(model)
    try:
        upgraded = onnx.version_converter.convert_version(model, QDQ_MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # the converter has no adapter for some ops; the model then keeps its opset
        problem = f"{type(exc).__name__}: {first_lines(str(exc))[:200]}"
    else:
        problem = same_outputs(model, upgraded, feeds, f"the opset-{QDQ_MIN_OPSET} upgrade")
    if problem:
        return model, f"failed, kept opset {before} (static INT8 falls back to per-tensor weights): {problem}"
    return upgraded, f"{before} -> {QDQ_MIN_OPSET} (outputs checked on one sample)"


def same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, feeds: dict[str, np.ndarray],
                 what: str) -> str | None:
    """None if ``after`` loads in ONNX Runtime and computes what ``before`` does on ``feeds``, else why not."""
    from ...runtime.onnxrt import OnnxRunner

    try:
        expected = OnnxRunner(before.SerializeToString(), optimization="disabled").run(feeds)
        got = OnnxRunner(after.SerializeToString(), optimization="basic").run(feeds)
        check_outputs(expected, got, what, hint="")
    except Exception as exc:  # ONNX Runtime refuses the graph, or the outputs moved
        return f"{type(exc).__name__}: {first_lines(str(exc))[:200]}"
    return None


def control_flow_nodes(model: onnx.ModelProto) -> list[str]:
    """Top-level If/Loop/Scan nodes: their subgraphs stay in float (the quantizer does not enter them)."""
    return [f"{node.name or '?'} ({node.op_type})" for node in model.graph.node if node.op_type in CONTROL_FLOW_OPS]


def _sample_feeds(context: StepContext) -> dict[str, np.ndarray]:
    """The first calibration sample (real shapes and values), else random inputs of the specs' shapes."""
    if context.calibration is not None and len(context.calibration):
        return next(iter(context.calibration))
    return example_arrays(context.inputs)
