"""INT8 OpenVINO IR via NNCF post-training quantization, calibrated on the same samples as the other formats.

NNCF inserts FakeQuantize ops that OpenVINO's CPU plugin runs as int8 kernels (VNNI / AMX where the CPU has
them). The float remainder runs in the precision the runner's ``inference_precision`` hint asks for: f32, or bf16
where the CPU has it (the same IR either way; ``OpenVinoRunner.execution_info`` reports what each compiled to).
An attention-kind model (``model_kind.py``) is quantized with NNCF's transformer preset
(``model_type=TRANSFORMER``: SmoothQuant, asymmetric activations, and the attention patterns NNCF knows to be
sensitive left in float); a profile's generic ``int8`` means this step for OpenVINO whatever the kind
(``recipes.py``). With ``asymmetric``, any other model is quantized with NNCF's mixed preset (asymmetric
activations): the rescue's first, cheapest retry; with ``keep_float``, the named layers stay in float (NNCF's
ignored scope): its second. With ``accuracy_control``, NNCF's accuracy-aware mode is used
instead (the rescue for a budget the plain quantization broke): it ranks the quantized layers by how much they
cost on the validation samples and reverts the worst to float until the metric (the minimum cosine against the
original model's outputs, and against each channel group of a stacked output, as the gate judges them:
``accuracy.groups.sample_cosine``) is back within the budget. That search stops at the rescue's deadline, or as
soon as the pace of its evaluations says it would end past it (``SearchPace``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...accuracy.groups import sample_cosine, stacked_layout
from ...errors import ExportError, InputError
from ...extras import install_hint
from ...files import sha256_file
from ...runtime.openvino import load_openvino
from .base import Artifact, OutOfTime, Step, StepContext, StepResult, check_deadline, register
from .openvino_convert import conversion_reason, openvino_tools

FAKE_QUANTIZE = "FakeQuantize"
COMPUTE_OPS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul")
RANKING_SAMPLES = 16  # validation samples NNCF ranks the quantized layers on (its default: up to 300)
# One model compiles (a thread) while the previous one is scored: NNCF's own estimate chose 1 worker on PP-OCRv4
# rec, whose search (ranking 58 groups, one compile each, and one revert) then took 46-47 s, 31 s with 2 (2-core
# Intel Xeon).
RANKING_WORKERS = 2
# NNCF's search evaluates the float and the quantized model on the validation samples (and one sample first, to see
# what the metric returns), then the model with each quantizer group reverted, then each reverted layer's model
SEARCH_OVERHEAD_EVALUATIONS = 3
FORECAST_AFTER = 5  # evaluations timed before their pace forecasts the search's end (PP-OCRv4 rec: steady from 3)


@dataclass
class AccuracyControl:
    """What NNCF's accuracy-aware mode checks against: the original's outputs per validation sample."""

    reference: list[list[np.ndarray]]
    validation: object  # SampleSet
    cosine_min: float
    max_float_layers: int  # NNCF's max_num_iterations: at most this many layers reverted to float
    quantizers: int  # FakeQuantize ops of the whole-model INT8: NNCF ranks at most this many quantizer groups
    deadline: float | None = None  # time.monotonic() past which the search stops (OutOfTime), between evaluations


class SearchPace:
    """Stops NNCF's accuracy-aware search (``OutOfTime``, between evaluations) past its deadline, or as soon as the
    pace of its evaluations so far says it would end past it. The search is a known number of evaluations at most
    (``AccuracyControl.quantizers`` groups ranked, ``max_float_layers`` reverted), each one compile and a run over
    the samples, so its first few predict the rest (PP-OCRv4 rec: 58 groups at 0.59 s each on the 2-core Xeon);
    where a revert makes it worse, NNCF steps back and ranks the groups left again: past its bound, the search is
    given another ranking pass."""

    def __init__(self, control: AccuracyControl):
        self.quantizers = control.quantizers
        self.evaluations = SEARCH_OVERHEAD_EVALUATIONS + control.quantizers + control.max_float_layers
        self.deadline = control.deadline
        self.started: list[float] = []  # time.monotonic() at the start of each evaluation

    def next_evaluation(self) -> None:
        check_deadline(self.deadline)
        now = time.monotonic()
        self.started.append(now)
        done = len(self.started) - 1
        if done >= self.evaluations:  # a step back: the groups left are ranked again
            self.evaluations += self.quantizers
        if self.deadline is None or done < FORECAST_AFTER:
            return
        pace = (now - self.started[0]) / done
        left = (self.evaluations - done) * pace
        if now + left > self.deadline:
            raise OutOfTime(f"at its pace so far ({pace:.2f} s an evaluation, {done} done of up to "
                            f"{self.evaluations}) it would need about {left:.0f} s more, past the rescue time budget "
                            f"(--rescue-budget-s) by {now + left - self.deadline:.0f} s")


def is_attention(context: StepContext) -> bool:
    """True where NNCF quantizes the model with its transformer preset (asymmetric activations already)."""
    return context.model_kind is not None and context.model_kind.kind == "attention"


def load_nncf():
    try:
        import nncf
    except ImportError as exc:
        raise ExportError("NNCF is needed for OpenVINO INT8 but is not installed",
                          hint=install_hint("openvino")) from exc
    return nncf


def count_fake_quantize(model) -> int:
    return sum(op.get_type_name() == FAKE_QUANTIZE for op in model.get_ops())


def count_compute_layers(model) -> int:
    return sum(op.get_type_name() in COMPUTE_OPS for op in model.get_ops())


@register
class OpenVinoQuantize(Step):
    name = "openvino_quantize"

    def __init__(self, accuracy_control: AccuracyControl | None = None, asymmetric: bool = False,
                 keep_float: tuple[str, ...] = ()):
        self.accuracy_control = accuracy_control
        self.asymmetric = asymmetric  # NNCF's mixed preset for any kind: asymmetric activations, symmetric weights
        self.keep_float = keep_float  # layers NNCF leaves in float (its IgnoredScope, by the float model's names)

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        if context.calibration is None:
            raise InputError("INT8 needs calibration samples", hint="pass --calib FILE.npz")
        count = min(context.profile.quantization.calibration_samples, len(context.calibration))
        transformer = is_attention(context)
        preset = ("mixed (NNCF's default for model_type=transformer)" if transformer else
                  "mixed (asymmetric activations)" if self.asymmetric else "performance (symmetric int8)")
        params = {"method": "nncf.quantize", "preset": preset, "target_device": "CPU",
                  "calibration_samples": count, "calibration_data": context.calibration.origin,
                  "fast_bias_correction": True, "model_type": "transformer" if transformer else "default"}
        if self.keep_float:
            params["kept_float"] = list(self.keep_float)
        details = {}
        try:
            with openvino_tools():
                ov, nncf = load_openvino(), load_nncf()
                params["nncf"] = nncf.__version__
                calibration = nncf.Dataset(list(context.calibration.head(count)))
                preset_settings = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else \
                    {"preset": nncf.QuantizationPreset.MIXED} if self.asymmetric else {}
                if self.accuracy_control is not None:
                    quantized = self._with_accuracy_control(nncf, ov, ov.convert_model(str(artifact.path)),
                                                           calibration, count, params, preset_settings)
                else:  # once per float model, preset and data: int8_bf16's asymmetric retry is int8_static's
                    key = ("nncf", str(artifact.path), sha256_file(artifact.path), preset, count,
                           context.calibration.origin, self.keep_float)
                    if key in context.calibration_ranges:
                        details["quantization"] = "reused: the same model, preset and data were quantized earlier " \
                                                  "in this export"
                    else:
                        if self.keep_float:
                            preset_settings["ignored_scope"] = nncf.IgnoredScope(names=list(self.keep_float))
                        context.calibration_ranges[key] = nncf.quantize(
                            ov.convert_model(str(artifact.path)), calibration, subset_size=count,
                            target_device=nncf.TargetDevice.CPU, **preset_settings)
                    quantized = context.calibration_ranges[key]
        except (ExportError, InputError, OutOfTime):
            raise
        except Exception as exc:
            raise ExportError(f"NNCF INT8 quantization failed: {conversion_reason(exc)}",
                              hint="check that the calibration data matches the model's inputs") from exc
        ov.save_model(quantized, str(out_path), compress_to_fp16=False)
        return StepResult(self.name, Artifact(out_path, "openvino", "int8_static"), params,
                          details={"fake_quantize": count_fake_quantize(quantized), **details})

    def _with_accuracy_control(self, nncf, ov, model, calibration, count: int, params: dict,
                               preset_settings: dict):
        """NNCF's accuracy-aware quantization; the metric is the minimum cosine against the original, per output
        and channel group (``sample_cosine``)."""
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        control = self.accuracy_control
        samples = list(enumerate(control.validation))
        pace = SearchPace(control)
        layouts = [stacked_layout([np.asarray(sample[index]) for sample in control.reference])
                   for index in range(len(control.reference[0]))]

        def min_cosine(compiled, items) -> tuple[float, list[float]]:
            values = []
            for index, feeds in items:
                results = compiled(feeds)
                outputs = [np.asarray(results[port], dtype=np.float64) for port in compiled.outputs]
                values.append(sample_cosine(control.reference[index], outputs, layouts))
            return min(values), values

        def paced_min_cosine(compiled, items) -> tuple[float, list[float]]:
            pace.next_evaluation()
            return min_cosine(compiled, items)

        check_deadline(control.deadline)
        float_metric, _ = min_cosine(ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}),
                                     samples)
        max_drop = max(float_metric - control.cosine_min, 0.0)
        params.update(method="nncf.quantize_with_accuracy_control",
                      metric="cosine_min against the original, per output and channel group",
                      validation_samples=len(samples), float_metric=round(float_metric, 6),
                      max_drop=round(max_drop, 6), max_float_layers=control.max_float_layers,
                      ranking_workers=RANKING_WORKERS)
        validation = nncf.Dataset(samples, lambda item: item[1])
        # the metric is a minimum, so ranking layers on the samples that lose most (NNCF picks those) is enough
        restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=control.max_float_layers,
                                                      ranking_subset_size=min(RANKING_SAMPLES, len(samples)),
                                                      num_ranking_workers=RANKING_WORKERS)
        return nncf.quantize_with_accuracy_control(
            model, calibration, validation, paced_min_cosine, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
            subset_size=count, target_device=nncf.TargetDevice.CPU, advanced_accuracy_restorer_parameters=restorer,
            **preset_settings)
