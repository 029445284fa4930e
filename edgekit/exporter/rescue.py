"""Accuracy rescue for static INT8: keep the layers that add the most quantization error in float.

OpenVINO INT8 candidates are rescued by NNCF's own accuracy-aware quantization (``rescue_openvino_int8``); the
rest of this module is the ONNX route:

Sensitivity is measured, not guessed: the float and the QDQ model are run on validation samples with every
intermediate tensor exposed, and each compute node is scored by the error it adds (error of its output minus
the worst error among its inputs, error = 1 - cosine to the float model). The top 1, 2, 4, … nodes are then
excluded from quantization until the candidate meets its budget, or a quarter of the nodes (at least two, never
all) would be float.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..accuracy import cosine
from ..data import SampleSet
from ..errors import ExportError
from ..quiet import quiet
from .candidates import Candidate, gate
from .steps import Artifact, StepContext
from ..runtime.openvino import load_openvino
from .steps.openvino_quantize import AccuracyControl, OpenVinoQuantize, count_compute_layers
from .steps.quantize_static import QuantizeStatic

COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
SENSITIVITY_SAMPLES = 8
MAX_FLOAT_FRACTION = 0.25


def rank_sensitive_nodes(float_path: Path, qdq_path: Path, samples: SampleSet) -> list[tuple[str, float]]:
    """Named compute nodes of the float model, most error-adding first."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    feeds = list(samples.head(SENSITIVITY_SAMPLES))
    activations = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-sensitivity-") as scratch, quiet():
        for tag, path in (("float", float_path), ("qdq", qdq_path)):
            augmented = Path(scratch) / f"{tag}.onnx"
            modify_model_output_intermediate_tensors(str(path), str(augmented))
            activations[tag] = collect_activations(str(augmented), feeds)
    errors = {name: 1.0 - cosine(np.concatenate([a.ravel() for a in values]),
                                 np.concatenate([a.ravel() for a in activations["qdq"][name]]))
              for name, values in activations["float"].items() if name in activations["qdq"]}
    graph = onnx.load(str(float_path), load_external_data=False).graph
    ranked = []
    for node in graph.node:
        measured = _measured_output(graph, node, errors)
        if node.op_type in COMPUTE_OPS and node.name and measured is not None:
            added = errors[measured] - max((errors.get(i, 0.0) for i in node.input), default=0.0)
            ranked.append((node.name, added))
    return sorted(ranked, key=lambda item: item[1], reverse=True)


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
    """Retry ``candidate`` with its most sensitive nodes in float; on success it becomes usable again."""
    profile = context.profile
    with progress.step(f"rescue {candidate.name}: per-layer sensitivity"):
        ranked = rank_sensitive_nodes(float_path, candidate.artifact.path, validation)
    limit = float_layer_limit(len(ranked))
    if limit < 1:
        candidate.notes.append(f"no rescue: the model has {len(ranked)} quantizable compute node(s), and keeping "
                               "all of them in float leaves nothing quantized")
        return
    sizes = sorted({min(2 ** i, limit) for i in range(limit.bit_length() + 1)})
    first_reason = candidate.reason
    for count in sizes:
        kept = [name for name, _ in ranked[:count]]
        with progress.step(f"rescue {candidate.name}: {count} node(s) in float"):
            result = QuantizeStatic(exclude_nodes=kept).run(Artifact(float_path, "onnx", "fp32"),
                                                            candidate.artifact.path, context)
            trial = Candidate(candidate.format, candidate.precision, result.artifact, [result])
            gate(trial, reference, validation, profile.accuracy, profile.threads)
        if trial.usable:
            candidate.steps, candidate.accuracy = trial.steps, trial.accuracy
            candidate.status, candidate.reason, candidate.failure = trial.status, None, None
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}); kept in float: "
                                   f"{', '.join(kept)}")
            return
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
        gate(trial, reference, validation, profile.accuracy, profile.threads)
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
