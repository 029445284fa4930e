"""Accuracy rescue for static INT8: keep the layers that add the most quantization error in float.

OpenVINO INT8 candidates are rescued by NNCF's own accuracy-aware quantization (``rescue_openvino_int8``); the
rest of this module is the ONNX route:

Sensitivity is measured, not guessed: the float and the QDQ model are run on validation samples with every
intermediate tensor exposed, and each compute node is scored by the error it adds (error of its output minus
the worst error among its inputs, error = 1 - cosine to the float model). The top 1, 2, 4, … nodes are then
excluded from quantization until the candidate meets its budget, or a quarter of the nodes (at least two, never
all) would be float. A candidate that cannot be rescued is rejected with the first layer where it diverges from
the float model (the first compute node whose output cosine falls below the budget), so the cause can be found.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..accuracy import cosine
from ..data import SampleSet
from ..errors import ExportError
from ..quiet import quiet
from ..runtime.openvino import load_openvino
from .candidates import Candidate, gate
from .steps import Artifact, StepContext
from .steps.openvino_quantize import AccuracyControl, OpenVinoQuantize, count_compute_layers
from .steps.quantize_static import QuantizeStatic

COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
SENSITIVITY_SAMPLES = 8
MAX_FLOAT_FRACTION = 0.25


@dataclass
class Sensitivity:
    """Per-node error the QDQ model adds, and each compute node's output cosine against the float model."""

    ranked: list[tuple[str, float]]  # (node, added error), most error-adding first
    cosines: list[tuple[str, str, float]]  # (node, op, output cosine), in graph (topological) order

    def describe(self, cosine_min: float | None) -> str:
        """The first compute node whose output cosine falls below ``cosine_min``, else the least similar one."""
        if not self.cosines:
            return "no intermediate tensor could be compared"
        below = [entry for entry in self.cosines if cosine_min is not None and entry[2] < cosine_min]
        name, op, value = below[0] if below else min(self.cosines, key=lambda entry: entry[2])
        what = "first divergent layer" if below else "no layer output below the budget; least similar layer"
        return f"{what}: {name} ({op}), output cosine {value:.4f} against float"


def measure_sensitivity(float_path: Path, qdq_path: Path, samples: SampleSet) -> Sensitivity:
    """Run the float and the QDQ model with every intermediate tensor exposed, on a few samples."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    feeds = list(samples.head(SENSITIVITY_SAMPLES))
    activations = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-sensitivity-") as scratch, quiet():
        for tag, path in (("float", float_path), ("qdq", qdq_path)):
            augmented = Path(scratch) / f"{tag}.onnx"
            modify_model_output_intermediate_tensors(str(path), str(augmented))
            activations[tag] = collect_activations(str(augmented), feeds)

    def error(name: str, quantized) -> float:
        return 1.0 - cosine(np.concatenate([a.ravel() for a in activations["float"][name]]),
                            np.concatenate([a.ravel() for a in quantized]))

    qdq = activations["qdq"]
    # ranking: the tensor of the same name (as the quantizer left it, before its own Q/DQ pair); naming the
    # divergence: what the QDQ model passes on, the dequantized tensor (a fused Relu only shows after Q/DQ)
    errors = {name: error(name, qdq[name]) for name in activations["float"] if name in qdq}
    passed_on = {name: error(name, qdq.get(f"{name}_DequantizeLinear_Output", qdq.get(name)))
                 for name in activations["float"] if name in qdq or f"{name}_DequantizeLinear_Output" in qdq}
    graph = onnx.load(str(float_path), load_external_data=False).graph
    ranked, cosines = [], []
    for node in graph.node:
        measured = _measured_output(graph, node, errors)
        if node.op_type in COMPUTE_OPS and node.name and measured is not None:
            added = errors[measured] - max((errors.get(i, 0.0) for i in node.input), default=0.0)
            ranked.append((node.name, added))
        shown = _measured_output(graph, node, passed_on)
        if node.op_type in COMPUTE_OPS and node.name and shown is not None:
            cosines.append((node.name, node.op_type, 1.0 - passed_on[shown]))
    return Sensitivity(sorted(ranked, key=lambda item: item[1], reverse=True), cosines)


def _measured_output(graph, node, errors: dict[str, float]) -> str | None:
    """The node's output tensor, or, where quantization fused it away (Conv+Relu), its sole consumer's output."""
    tensor = node.output[0]
    for _ in range(3):
        if tensor in errors:
            return tensor
        consumers = [n for n in graph.node if tensor in n.input]
        if len(consumers) != 1:
            return None
        tensor = consumers[0].output[0]
    return None


def float_layer_limit(layers: int) -> int:
    """How many of ``layers`` compute layers a rescue may keep in float: a quarter, at least two, never all."""
    return min(layers - 1, max(2, math.ceil(layers * MAX_FLOAT_FRACTION)))


def rescue_static_int8(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                       float_path: Path, progress) -> None:
    """Retry ``candidate`` with its most sensitive nodes in float; on success it becomes usable again. On failure
    the rejection names the first layer where the INT8 model diverges from the float one."""
    profile = context.profile
    with progress.step(f"rescue {candidate.name}: per-layer sensitivity"):
        sensitivity = measure_sensitivity(float_path, candidate.artifact.path, validation)
    ranked = sensitivity.ranked
    divergence = sensitivity.describe(profile.accuracy.cosine_min)
    limit = float_layer_limit(len(ranked))
    sizes = sorted({min(2 ** i, limit) for i in range(limit.bit_length() + 1)}) if limit > 0 else []
    first_reason, first_cosine = candidate.reason, candidate.accuracy.cosine_min if candidate.accuracy else None
    for count in sizes:
        kept = [name for name, _ in ranked[:count]]
        with progress.step(f"rescue {candidate.name}: {count} node(s) in float"):
            result = QuantizeStatic(exclude_nodes=kept).run(Artifact(float_path, "onnx", "fp32"),
                                                            candidate.artifact.path, context)
            trial = Candidate(candidate.format, candidate.precision, result.artifact, [result])
            gate(trial, reference, validation, profile.accuracy, profile.threads, context.output_names,
                 context.output_kinds)
        if trial.usable:
            candidate.steps, candidate.accuracy = trial.steps, trial.accuracy
            candidate.status, candidate.reason, candidate.failure = trial.status, None, None
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}; {divergence}); "
                                   f"cosine_min {first_cosine:.4f} -> {trial.accuracy.cosine_min:.4f} with "
                                   f"{count} node(s) kept in float: {', '.join(kept)}")
            return
    candidate.reason = f"{first_reason}; {divergence}"
    candidate.notes.append(f"rescue failed: up to {limit} most sensitive node(s) in float "
                           f"still broke the budget (ranked: {', '.join(n for n, _ in ranked[:5])}…)")


def rescue_openvino_int8(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                         float_path: Path, progress) -> None:
    """Re-quantize an OpenVINO INT8 candidate with NNCF's accuracy-aware mode (it reverts the costliest layers to
    float until the minimum cosine is back within the budget); on success it becomes usable again."""
    profile = context.profile
    first_reason, whole = candidate.reason, candidate.steps[0].details.get("fake_quantize")
    if profile.accuracy.cosine_min is None:
        candidate.notes.append("rescue not tried: NNCF's accuracy-aware mode needs a cosine_min budget to aim at")
        return
    limit = float_layer_limit(count_compute_layers(load_openvino().Core().read_model(str(candidate.artifact.path))))
    if limit < 1:
        candidate.notes.append("rescue not tried: the model has a single compute layer, nothing to keep in float")
        return
    control = AccuracyControl(reference, validation, profile.accuracy.cosine_min, limit)
    with progress.step(f"rescue {candidate.name}: NNCF accuracy-aware quantization"):
        try:
            result = OpenVinoQuantize(control).run(Artifact(float_path, "onnx", "fp32"), candidate.artifact.path,
                                                   context)
        except ExportError as error:
            candidate.notes.append(f"rescue failed: {error.message}")
            return
        trial = Candidate(candidate.format, candidate.precision, result.artifact, [result],
                          runner_options=candidate.runner_options)
        gate(trial, reference, validation, profile.accuracy, profile.threads, context.output_names,
             context.output_kinds)
    candidate.steps, candidate.accuracy, candidate.execution = trial.steps, trial.accuracy, trial.execution
    kept = result.details["fake_quantize"]
    if trial.usable and kept > 0:
        candidate.status, candidate.reason, candidate.failure = trial.status, None, None
        candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}); NNCF's accuracy-aware "
                               f"mode kept {kept} of {whole} FakeQuantize ops (at most {limit} layer(s) back in float)")
    else:
        candidate.reason = trial.reason or "accuracy: no INT8 left: every quantized layer went back to float"
        candidate.notes.append(f"rescue failed: NNCF's accuracy-aware mode, with up to {limit} layer(s) back in "
                               f"float ({kept} of {whole} FakeQuantize ops left), did not meet the budget")
