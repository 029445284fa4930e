"""Accuracy rescue for INT8: keep the layers that add the most quantization error in float.

OpenVINO INT8 candidates are quantized again with asymmetric activations (no layer in float), then with the
layers that add the most error in float (ranked in one pass: ``openvino_sensitivity.py``; each trial judged by the
figure the gate failed on: ``rescue_aim``), then, where that helped the cosine without passing, by NNCF's own
accuracy-aware quantization (``rescue_openvino_int8``);
ai-edge-quantizer's INT8 of a given float .tflite by the same search as ONNX, ranked by the quantizer's own
per-tensor comparison (``rescue_tflite_int8``); the rest of this module is the ONNX route (``rescue_onnx_int8``,
static QDQ and dynamic INT8).

Sensitivity is measured, not guessed, in one of two ways:

- *static INT8 (QDQ)*: the float and the QDQ model are run on validation samples with every intermediate tensor
  exposed, and each compute node is scored by the error it adds (error of its output minus the worst error among
  its inputs, error = 1 - cosine to the float model).
- *dynamic INT8*: each quantized node is quantized alone, the rest in float, and scored by the error of the
  model's outputs. Local scores mislead in a transformer, whose residual stream dwarfs most layer outputs: on
  all-MiniLM-L6 the intermediate-tensor score put one FFN MatMul far ahead (added error 0.30), yet keeping it in
  float moved the embedding cosine only from 0.990 to 0.991; alone, that MatMul cost 0.0004 of output cosine,
  the first layer's FFN output 0.0016.

Where a channel group of a stacked output broke the budget (a YOLO head's class scores, rounded to zero by the
per-tensor scale its boxes set), the nodes feeding that group (``group_head.py``: the final Concat and the score
branch, back to the last compute layers) are kept in float first, and stay in float for the ranking below.

The top 1, 2, 4, … nodes are then excluded from quantization until the candidate meets its budget, or a quarter
of the nodes (at least two, never all) would be float, or fewer where the candidate's lead pays for fewer
(``schedule.FloatAllowance``: a rescued model too slow to win is not worth searching for; where its lead pays for
no layer at all, the rescue is not tried). A candidate that cannot be rescued is rejected naming the
layer to look at: the first layer where it diverges from the float model (static: the first compute node whose
output cosine falls below the budget) or the most sensitive one (dynamic), so the cause can be found.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..accuracy import TASK_TEXT, AccuracyReport, cosine, task_agreement_min
from ..data import SampleSet
from ..errors import ExportError
from ..quiet import quiet
from ..runtime.ir_bundle import artifact_files
from ..runtime.onnxrt import OnnxRunner
from ..runtime.openvino import load_openvino
from .candidates import Candidate, gate, run_samples
from .group_head import COMPUTE_OPS, group_head
from .openvino_sensitivity import rank_layers
from .schedule import FloatAllowance
from .steps import Artifact, StepContext, StepResult
from .steps.base import OutOfTime, check_deadline
from .steps.openvino_quantize import (AccuracyControl, OpenVinoQuantize, count_compute_layers, count_fake_quantize,
                                       is_attention)
from .steps.quantize_dynamic import DYNAMIC_OP_TYPES, QuantizeDynamic
from .steps.quantize_static import QuantizeStatic
from .steps.tflite_quantize import TfliteQuantization

SENSITIVITY_SAMPLES = 8
MAX_FLOAT_FRACTION = 0.25
RESCUABLE = {"int8_static": QuantizeStatic, "int8_dynamic": QuantizeDynamic}


@dataclass
class Sensitivity:
    """Per-node error the quantized model adds, and per compute node the cosine that names the divergence."""

    ranked: list[tuple[str, float]]  # (node, added error), most error-adding first
    cosines: list[tuple[str, str, float]]  # (node, op, cosine), in graph (topological) order
    measured: str = "layer output"  # what the cosines compare: a layer's output, or the model's outputs

    def describe(self, cosine_min: float | None) -> str:
        """The first node whose cosine falls below ``cosine_min``, else the least similar one."""
        if not self.cosines:
            return "no intermediate tensor could be compared"
        below = [entry for entry in self.cosines if cosine_min is not None and entry[2] < cosine_min]
        name, op, value = below[0] if below else min(self.cosines, key=lambda entry: entry[2])
        if self.measured == "layer output":
            what = "first divergent layer" if below else "no layer output below the budget; least similar layer"
            return f"{what}: {name} ({op}), output cosine {value:.4f} against float"
        what = "breaks the budget alone" if below else "no layer breaks the budget alone; most sensitive layer"
        return f"{what}: {name} ({op}), model output cosine {value:.4f} with only it quantized"


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


def measure_isolated_sensitivity(float_path: Path, quantized_path: Path, context: StepContext,
                                 samples: SampleSet, deadline: float | None = None) -> Sensitivity:
    """Quantize each node the dynamic quantizer replaced, alone, and score it by the error of the model outputs
    (1 - cosine to the float model, mean over a few samples and the float outputs)."""
    float_graph = onnx.load(str(float_path), load_external_data=False).graph
    kept = {node.name for node in onnx.load(str(quantized_path), load_external_data=False).graph.node}
    nodes = [(n.name, n.op_type) for n in float_graph.node
             if n.op_type in DYNAMIC_OP_TYPES and n.name and n.name not in kept]
    feeds = samples.head(SENSITIVITY_SAMPLES)
    threads = context.profile.threads
    expected = run_samples(OnnxRunner(float_path, threads=threads), feeds)
    ranked, cosines = [], []
    with tempfile.TemporaryDirectory(prefix="edgekit-sensitivity-") as scratch:
        alone = Path(scratch) / "alone.onnx"
        for name, op in nodes:
            check_deadline(deadline)
            others = [other for other, _ in nodes if other != name]
            QuantizeDynamic(exclude_nodes=others).run(Artifact(float_path, "onnx", "fp32"), alone, context)
            values = _output_cosines(expected, run_samples(OnnxRunner(alone, threads=threads), feeds))
            ranked.append((name, 1.0 - float(np.mean(values))))
            cosines.append((name, op, min(values)))
    return Sensitivity(sorted(ranked, key=lambda item: item[1], reverse=True), cosines, "model outputs")


def _output_cosines(expected: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> list[float]:
    """Cosine of every float output on every sample; NaN counts as the worst (-1)."""
    values = [cosine(ref.ravel(), out.ravel()) for refs, outs in zip(expected, got) for ref, out in zip(refs, outs)
              if np.issubdtype(ref.dtype, np.floating)]
    return [-1.0 if math.isnan(value) else value for value in values] or [1.0]


def float_layer_limit(layers: int) -> int:
    """How many of ``layers`` compute layers a rescue may keep in float: a quarter, at least two, never all."""
    return min(layers - 1, max(2, math.ceil(layers * MAX_FLOAT_FRACTION)))


def _unaffordable(candidate: Candidate, allowance: FloatAllowance | None, compute_layers: int) -> bool:
    """True, with a note, where the candidate's lead pays for no layer in float: any rescue would lose on speed."""
    if allowance is None or allowance.layers(compute_layers) >= 1:
        return False
    candidate.notes.append(f"rescue not tried: {allowance.describe(compute_layers)}")
    return True


def _layer_limit(candidate: Candidate, ranked: int, allowance: FloatAllowance | None, compute_layers: int) -> int:
    """``float_layer_limit(ranked)``, or what the candidate's lead pays for where that is less (noted)."""
    limit = float_layer_limit(ranked)
    if allowance is None or allowance.layers(compute_layers) >= limit:
        return limit
    candidate.notes.append(f"rescue limited: {allowance.describe(compute_layers)}")
    return allowance.layers(compute_layers)


def _trial_sizes(limit: int) -> list[int]:
    """How many of the ranked layers each trial keeps in float: 1, 2, 4, … and ``limit`` last."""
    return sorted({min(2 ** i, limit) for i in range(limit.bit_length() + 1)}) if limit > 0 else []


def _gated_trial(candidate: Candidate, context: StepContext, reference, validation: SampleSet, progress,
                deadline: float | None, what: str, build: Callable[[Path], StepResult]) -> Candidate:
    """Build a trial beside the candidate's files (``build(path)``: the step's result) and gate it as the candidate
    was; a passing trial replaces the candidate's files and marks it rescued ``with {what}``. Checks ``deadline``
    first; leaves no trial file behind."""
    check_deadline(deadline)
    profile = context.profile
    trial_path = candidate.artifact.path.with_name(f"rescue-trial.{candidate.artifact.path.name}")
    try:
        with progress.step(f"rescue {candidate.name}: {what}"):
            result = build(trial_path)
            trial = Candidate(candidate.format, candidate.precision, result.artifact, [result],
                              runner_options=candidate.runner_options)
            gate(trial, reference, validation, profile.accuracy, profile.threads, context.output_names,
                 context.output_kinds)
        if trial.usable:  # the rescued model replaces the whole-model one; a failed rescue leaves that as it was
            for trial_file, kept in zip(artifact_files(trial_path), artifact_files(candidate.artifact.path)):
                trial_file.replace(kept)  # every file of it: an OpenVINO IR's weights too
            result.artifact = candidate.artifact
            candidate.steps, candidate.accuracy = trial.steps, trial.accuracy
            candidate.execution = trial.execution or candidate.execution
            candidate.mark(trial.status, "rescue", f"passes with {what}")
    finally:
        for trial_file in artifact_files(trial_path):
            trial_file.unlink(missing_ok=True)
    return trial


def _stopping_at_deadline(search: Callable) -> Callable:
    """The rescue ``search`` as the schedule calls it: past ``deadline`` (monotonic) it stops between trials, and
    the candidate's notes say so."""

    @functools.wraps(search)
    def rescue(candidate: Candidate, context: StepContext, reference, validation: SampleSet, float_path: Path,
               progress, deadline: float | None = None, allowance: FloatAllowance | None = None) -> None:
        try:
            search(candidate, context, reference, validation, float_path, progress, deadline, allowance)
        except OutOfTime as stop:
            candidate.notes.append(f"rescue stopped: {stop}")

    return rescue


def _rescue_onnx_int8(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                      float_path: Path, progress, deadline: float | None, allowance: FloatAllowance | None) -> None:
    """Retry ``candidate`` (static or dynamic INT8 ONNX) with its most sensitive nodes in float; on success it
    becomes usable again. On failure the rejection names the layer to look at. Where a channel group of a stacked
    output broke the budget (static INT8), the nodes feeding that group are kept in float first (``group_head``),
    and stay in float while layers are ranked."""
    profile = context.profile
    compute_layers = sum(node.op_type in COMPUTE_OPS
                         for node in onnx.load(str(float_path), load_external_data=False).graph.node)
    if _unaffordable(candidate, allowance, compute_layers):
        return
    step_class = RESCUABLE[candidate.precision]
    first_reason, first_cosine = candidate.reason, candidate.accuracy.cosine_min if candidate.accuracy else None
    float_model = Artifact(float_path, "onnx", "fp32")

    def attempt(kept: list[str], what: str) -> Candidate:
        """Quantize with ``kept`` in float and gate it; a passing trial replaces the whole-model candidate."""
        return _gated_trial(candidate, context, reference, validation, progress, deadline, what,
                            lambda path: step_class(exclude_nodes=kept).run(float_model, path, context))

    head, groups, head_figure = [], "", ""
    if step_class is QuantizeStatic and candidate.accuracy is not None:
        head, groups = group_head(float_path, candidate.accuracy, profile.accuracy.cosine_min)
    trial = attempt(head, f"the {len(head)} node(s) feeding {groups} in float") if head else None
    if trial is not None and not trial.usable and trial.accuracy is not None:
        head_figure = f"; with them alone, worst group {_group_figure(trial)}"
    if trial is not None and trial.usable:
        candidate.notes.append(
            f"rescued: whole-model INT8 broke the budget ({first_reason}); kept in float the {len(head)} "
            f"node(s) feeding {groups}: {', '.join(head)}; cosine_min {first_cosine:.5f} -> "
            f"{candidate.accuracy.cosine_min:.5f}, worst group {_group_figure(candidate)}")
        return
    with progress.step(f"rescue {candidate.name}: per-layer sensitivity"):
        if step_class is QuantizeStatic:
            sensitivity = measure_sensitivity(float_path, candidate.artifact.path, validation)
        else:
            sensitivity = measure_isolated_sensitivity(float_path, candidate.artifact.path, context, validation,
                                                       deadline)
    ranked = sensitivity.ranked
    divergence = sensitivity.describe(profile.accuracy.cosine_min)
    limit = _layer_limit(candidate, len(ranked), allowance, compute_layers)
    for count in _trial_sizes(limit):
        kept = [name for name, _ in ranked[:count]]
        what = f"{count} node(s) in float" + (f" and the head of {groups}" if head else "")
        if attempt(head + kept, what).usable:
            with_head = f" and the {len(head)} node(s) feeding {groups}" if head else ""
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}; {divergence}); "
                                   f"cosine_min {first_cosine:.4f} -> {candidate.accuracy.cosine_min:.4f} with "
                                   f"{count} node(s) kept in float: {', '.join(kept)}{with_head}")
            return
    candidate.reject("accuracy", f"{first_reason}; {divergence}", by="rescue")
    tried_head = f" (with the {len(head)} node(s) feeding {groups} in float too{head_figure})" if head else ""
    candidate.notes.append(f"rescue failed: up to {limit} most sensitive node(s) in float{tried_head} "
                           f"still broke the budget (ranked: {', '.join(n for n, _ in ranked[:5])}…)")


def _rescue_tflite_int8(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                        float_path: Path, progress, deadline: float | None, allowance: FloatAllowance | None) -> None:
    """Retry ``candidate`` (ai-edge-quantizer's INT8 of the given float .tflite at ``float_path``) with the ops that
    add the most error kept in float, every trial with the ranges calibrated when it was built; on success it becomes
    usable again. On failure the rejection names the ops to look at."""
    first_reason, first_cosine = candidate.reason, candidate.accuracy.cosine_min if candidate.accuracy else None
    quantization = TfliteQuantization(float_path, candidate.precision, context)
    compute_layers = len(quantization.quantized_ops())
    if _unaffordable(candidate, allowance, compute_layers):
        return
    with progress.step(f"rescue {candidate.name}: per-op sensitivity"):
        sensitivity = measure_tflite_sensitivity(quantization, candidate.artifact.path, validation)
    ranked = sensitivity.ranked
    divergence = sensitivity.describe(context.profile.accuracy.cosine_min)
    limit = _layer_limit(candidate, len(ranked), allowance, compute_layers)
    if limit < 1:
        candidate.notes.append(f"rescue not tried: {len(ranked)} quantized op(s) compared, none to keep in float")
        return
    for count in _trial_sizes(limit):
        kept = [name for name, _ in ranked[:count]]
        if _gated_trial(candidate, context, reference, validation, progress, deadline, f"{count} op(s) in float",
                        lambda path: quantization.quantize(path, kept)).usable:
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}; {divergence}); "
                                   f"cosine_min {first_cosine:.4f} -> {candidate.accuracy.cosine_min:.4f} with "
                                   f"{count} op(s) kept in float: {', '.join(kept)}")
            return
    types = {name: op for name, op, _ in sensitivity.cosines}
    worst = ", ".join(f"{name} ({types[name]}, +{added:.4f})" for name, added in ranked[:3])
    candidate.reject("accuracy", f"{first_reason}; {divergence}; adding the most error: {worst}", by="rescue")
    candidate.notes.append(f"rescue failed: up to {limit} of {len(ranked)} ops in float, the most error-adding "
                           f"first, still broke the budget (ranked: {', '.join(n for n, _ in ranked[:5])}…)")


rescue_onnx_int8 = _stopping_at_deadline(_rescue_onnx_int8)
rescue_tflite_int8 = _stopping_at_deadline(_rescue_tflite_int8)


def measure_tflite_sensitivity(quantization: TfliteQuantization, quantized_path: Path,
                               samples: SampleSet) -> Sensitivity:
    """ai-edge-quantizer's comparison of every tensor of the float and the quantized model on a few samples; each
    quantized op is scored by the error it adds (error of its output minus the worst error among its inputs,
    error = 1 - cosine to the float model, mean over the samples)."""
    cosines = quantization.tensor_cosines(quantized_path, samples.head(SENSITIVITY_SAMPLES))
    errors = {name: 1.0 - value for name, value in cosines.items()}
    ops = [op for op in quantization.quantized_ops() if op.name in errors]
    ranked = [(op.name, errors[op.name] - max((errors.get(i, 0.0) for i in op.inputs), default=0.0)) for op in ops]
    return Sensitivity(sorted(ranked, key=lambda item: item[1], reverse=True),
                       [(op.name, op.type, cosines[op.name]) for op in ops])


def _group_figure(candidate: Candidate) -> str:
    """The worst channel group's cosine after a rescue, in words."""
    groups = [(o.name, g) for o in candidate.accuracy.outputs for g in o.groups]
    if not groups:
        return "—"
    name, group = min(groups, key=lambda item: item[1].cosine_min)
    return f"'{name}' {group.label}: cosine_min {group.cosine_min:.4f}"


def _rescue_openvino_int8(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                          float_path: Path, progress, deadline: float | None, allowance: FloatAllowance | None) -> None:
    """Re-quantize an OpenVINO INT8 candidate with asymmetric activations first (one quantization, no layer in
    float: PP-OCRv4 det's cosine 0.9895 -> 0.9914), then, for ``int8_static``, with as many layers in float as it
    may keep (``_worth_a_search``), and where that helped without passing, with NNCF's accuracy-aware mode (it
    reverts the costliest layers to float until the minimum cosine is back within the budget); on success it
    becomes usable again."""
    profile = context.profile
    first_reason = candidate.reason
    first_cosine = candidate.accuracy.cosine_min if candidate.accuracy else None
    if profile.accuracy.cosine_min is None:
        candidate.notes.append("rescue not tried: NNCF's accuracy-aware mode needs a cosine_min budget to aim at")
        return
    float_model = Artifact(float_path, "onnx", "fp32")
    asymmetric = "asymmetric activations (NNCF's mixed preset)"
    if not is_attention(context):  # the transformer preset's activations are asymmetric already
        trial = _gated_trial(candidate, context, reference, validation, progress, deadline, asymmetric,
                             lambda path: OpenVinoQuantize(asymmetric=True).run(float_model, path, context))
        if trial.usable:
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}); with {asymmetric} "
                                   f"and no layer in float: cosine_min {first_cosine:.5f} -> "
                                   f"{candidate.accuracy.cosine_min:.5f}")
            return
        candidate.notes.append(f"rescue tried {asymmetric} first, still under the budget: {trial.reason}")
    if candidate.precision != "int8_static":
        candidate.notes.append("rescue failed: layers in float are tried on openvino/int8_static only, whose IR this "
                               "candidate shares (one search per quantization)")
        return
    whole_model = load_openvino().Core().read_model(str(candidate.artifact.path))
    compute_layers, whole = count_compute_layers(whole_model), count_fake_quantize(whole_model)
    if float_layer_limit(compute_layers) < 1:
        candidate.notes.append("rescue not tried: the model has a single compute layer, nothing to keep in float")
        return
    if _unaffordable(candidate, allowance, compute_layers):
        return
    limit = _layer_limit(candidate, compute_layers, allowance, compute_layers)
    if _worth_a_search(candidate, context, reference, validation, float_model, progress, deadline, limit):
        _accuracy_aware_search(candidate, context, reference, validation, float_model, progress, deadline, limit,
                               whole)


@dataclass(frozen=True)
class Aim:
    """The figure a rescue's trials must raise, the one the gate failed on: its ``label``, the ``limit`` the budget
    sets and how to ``read`` it from a gate's report."""

    label: str
    limit: float
    read: Callable[[AccuracyReport], float]

    @property
    def is_cosine(self) -> bool:
        """NNCF's accuracy-aware search aims at the worst cosine (``AccuracyControl``), at nothing else."""
        return self.read is _worst_cosine


def rescue_aim(report: AccuracyReport, budget) -> Aim:
    """The worst cosine (every output and channel group) where it breaks ``budget.cosine_min``; else the first
    output's task agreement (detection F1, mask IoU, decoded symbols) or the top-1 agreement that breaks its limit
    (a random-weight YOLOv8n's OpenVINO INT8: class scores at cosine 0.9993, detection F1 0.9446 < 0.97); else the
    worst cosine."""
    cosine_aim = Aim("worst cosine", budget.cosine_min, _worst_cosine)
    if budget.cosine_min is not None and _worst_cosine(report) < budget.cosine_min:
        return cosine_aim
    limit = task_agreement_min(budget)
    for output in report.outputs:
        if output.task is not None and limit is not None and _finite(output.task.value) < limit:
            return Aim(f"output '{output.name}' {TASK_TEXT[output.task.metric]}", limit,
                       functools.partial(_task_value, output.name))
    agreement = report.top1_agreement
    if budget.top1_agreement_min is not None and agreement is not None and \
            _finite(agreement) < budget.top1_agreement_min:
        return Aim("top-1 agreement", budget.top1_agreement_min, lambda r: _finite(r.top1_agreement))
    return cosine_aim


def _task_value(output_name: str, report: AccuracyReport) -> float:
    """The task agreement of ``output_name`` in ``report`` (NaN as -1)."""
    return next(_finite(o.task.value) for o in report.outputs if o.name == output_name)


def _finite(value: float | None) -> float:
    """A figure to compare: NaN (or a missing one) as -1, below any real one."""
    return -1.0 if value is None or math.isnan(value) else value


def _worth_a_search(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                    float_model: Artifact, progress, deadline: float | None, limit: int) -> bool:
    """Keep the 1, 2, 4, … up to ``limit`` layers that add the most error (ranked in one pass:
    ``openvino_sensitivity``) in float, until a trial passes (the candidate is rescued) or keeps no more than the
    trial before it did (more float does not help: NNCF's bias correction and ranges shift with the layers kept).
    Then NNCF's search (one compile per quantizer group, 10-50 s on the corpus) runs only where the best trial took
    the worst cosine closer to the budget: where none did, the error is spread over the model (PP-OCRv4 rec 0.9598
    -> 0.9570 with the worst of its 48 layers in float, on the 2-core EPYC Zen 4, where NNCF's search had spent
    50 s and failed). A trial that helps little still lets the search run: with AVX2 kernels, ``outlier_deep``
    went 0.99911 -> 0.99913 with one layer in float, and NNCF's search rescued it. Trials are compared by the
    figure the gate failed on (``rescue_aim``); where that is not the cosine, NNCF's search cannot aim at it."""
    aim = rescue_aim(candidate.accuracy, context.profile.accuracy)
    first_reason, before = candidate.reason, aim.read(candidate.accuracy)
    with progress.step(f"rescue {candidate.name}: rank its layers in one pass"):
        ranked = rank_layers(float_model.path, candidate.artifact.path, validation)
    best, best_count, tried = before, 0, []
    for count in _trial_sizes(min(limit, len(ranked))):
        names = tuple(name for name, _ in ranked[:count])
        what = f"its {count} most error-adding layer(s) in float (ranked in one pass)"
        trial = _gated_trial(candidate, context, reference, validation, progress, deadline, what,
                             lambda path: OpenVinoQuantize(keep_float=names).run(float_model, path, context))
        after = aim.read(trial.accuracy)
        tried.append(f"{count}: {after:.5f}")
        if trial.usable:
            candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}); with {what}: "
                                   f"{aim.label} {before:.5f} -> {after:.5f}")
            return False
        if after <= best:
            break
        best, best_count = after, count
    figures = f"{aim.label} {before:.5f}, with layers in float {'; '.join(tried)}; budget {aim.limit}"
    if best <= before:
        candidate.notes.append(f"rescue failed: its most error-adding layers in float took it no closer to the "
                               f"budget ({figures}): the error is spread over the model, so NNCF's accuracy-aware "
                               f"search, which may revert no more layers, was not run")
        return False
    if not aim.is_cosine:
        candidate.notes.append(f"rescue failed: its most error-adding layers in float, {best_count} at best, did not "
                               f"meet the budget ({figures}); NNCF's accuracy-aware search aims at the worst cosine, "
                               f"within the budget already, so it was not run")
        return False
    share = (best - before) / (aim.limit - before)
    candidate.notes.append(f"rescue tried its most error-adding layers in float, {best_count} at best, {share:.0%} of "
                           f"the way to the budget ({figures}); NNCF's accuracy-aware search next")
    return True


def _worst_cosine(report) -> float:
    """The lowest cosine over every output and channel group of a gate's report (NaN as -1)."""
    values = [o.cosine_min for o in report.outputs] + [g.cosine_min for o in report.outputs for g in o.groups]
    return min(_finite(value) for value in values)


def _accuracy_aware_search(candidate: Candidate, context: StepContext, reference, validation: SampleSet,
                           float_model: Artifact, progress, deadline: float | None, limit: int, whole: int) -> None:
    """NNCF's accuracy-aware mode on ``candidate`` (symmetric, as it was built), with at most ``limit`` layers back
    in float and bounded by ``deadline``."""
    profile = context.profile
    first_reason = candidate.reason
    control = AccuracyControl(reference, validation, profile.accuracy.cosine_min, limit, whole, deadline)
    with progress.step(f"rescue {candidate.name}: NNCF accuracy-aware quantization"):
        try:
            result = OpenVinoQuantize(control).run(float_model, candidate.artifact.path, context)
        except ExportError as error:
            candidate.notes.append(f"rescue failed: {error.message}")
            return
        except OutOfTime as stop:
            candidate.notes.append(f"rescue stopped inside NNCF's accuracy-aware search: {stop}")
            return
        trial = Candidate(candidate.format, candidate.precision, result.artifact, [result],
                          runner_options=candidate.runner_options)
        gate(trial, reference, validation, profile.accuracy, profile.threads, context.output_names,
             context.output_kinds)
    candidate.steps, candidate.accuracy, candidate.execution = trial.steps, trial.accuracy, trial.execution
    kept = result.details["fake_quantize"]
    if trial.usable and kept > 0:
        candidate.mark(trial.status, "rescue", f"NNCF's accuracy-aware mode kept {kept} of {whole} FakeQuantize ops")
        candidate.notes.append(f"rescued: whole-model INT8 broke the budget ({first_reason}); NNCF's accuracy-aware "
                               f"mode kept {kept} of {whole} FakeQuantize ops (at most {limit} layer(s) back in float)")
    else:
        candidate.reject("accuracy", trial.reason or "accuracy: no INT8 left: every quantized layer went back to "
                                                     "float", by="rescue")
        candidate.notes.append(f"rescue failed: NNCF's accuracy-aware mode, with up to {limit} layer(s) back in "
                               f"float ({kept} of {whole} FakeQuantize ops left), did not meet the budget")


rescue_openvino_int8 = _stopping_at_deadline(_rescue_openvino_int8)
