"""PyTorch -> TFLite (LiteRT) with litert-torch, no TensorFlow: fp32, fp16, dynamic or static INT8.

fp32, fp16 and dynamic INT8 start from one fp32 conversion checked against PyTorch; static INT8 is PT2E,
calibrated on the same samples as the ONNX route. Quantized numbers are judged later by the accuracy gate; a PT2E
model whose fake-quantized outputs are already far outside the budget is rejected before its conversion.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import AccuracyError, ExportError, InputError
from ...extras import install_hint
from ...quiet import quiet
from ...targets import Precision
from ..sources import TorchSource
from .base import Artifact, StepContext, StepResult, require_static_shapes
from .verify import check_outputs, first_lines

# An op litert-torch cannot lower shows as "Lowering not found: ns.op.overload" or torch.ops.ns.op; else ns::op.
_DOTTED_OP = re.compile(r"(?:Lowering not found: |torch\.ops\.)(\w+)\.(\w+)")
_SCOPED_OP = re.compile(r"\b([a-z_]\w*)::(\w+)")


def export_tflite(source: TorchSource, out_path: Path, precision: Precision | str, context: StepContext,
                  channels_last: bool = False) -> StepResult:
    """Convert ``source`` to ``out_path``. ``channels_last`` makes the 4-D inputs NHWC; other inputs and all
    outputs keep their layout, so a model without 4-D inputs is exported as is (``input_layout`` says which)."""
    start = time.perf_counter()
    try:
        precision = Precision(precision)
    except ValueError:
        raise InputError(f"unknown precision '{precision}'; valid: {', '.join(p.value for p in Precision)}",
                         hint="pick one of those precisions") from None
    try:
        with quiet(native=True):  # its import alone logs from C++ (absl, oneDNN) and torchao
            import litert_torch
        import torch
    except ImportError as exc:
        raise ExportError(f"TFLite export needs litert-torch, which is not installed ({exc})",
                          hint=install_hint("tflite")) from exc
    require_static_shapes(context, "TFLite", "tflite")
    nhwc = [i for i, spec in enumerate(source.inputs) if len(spec.shape) == 4] if channels_last else []
    module = litert_torch.to_channel_last_io(source.module, args=nhwc).eval() if nhwc else source.module
    args = tuple(torch.from_numpy(a) for a in _model_inputs(source, source.examples, nhwc))
    layout = "NHWC" if nhwc else "NCHW"
    params = {"input_layout": layout, "converter": f"litert-torch {litert_torch.__version__}"}
    details = {"input_layout": layout}
    per_channel = context.profile.quantization.per_channel

    def guarded(convert):
        try:
            with quiet(native=True):
                return convert()
        except AccuracyError:
            raise
        except Exception as exc:  # torch.export, the lowering and the quantizers raise many types
            raise _conversion_error(source, precision, exc) from exc

    if precision is Precision.int8_static:
        if context.calibration is None:
            raise InputError("static INT8 needs calibration samples", hint="pass --calib FILE.npz")
        count = min(context.profile.quantization.calibration_samples, len(context.calibration))
        samples = [_model_inputs(source, s, nhwc) for s in itertools.islice(context.calibration, count)]
        params.update(quantizer="pt2e", activation_type="int8", weight_type="int8", per_channel=per_channel,
                      activation_observer="histogram", calibration_samples=count,
                      calibration_data=context.calibration.origin)
        content, how, simulation = guarded(lambda: _static_int8(litert_torch, module, args, samples, context))
        params["torch_export"] = how
        if simulation is not None:
            details["pt2e_simulation"] = simulation
    else:
        content = guarded(lambda: litert_torch.convert(module, args).model_content())
        details["verify_max_abs_diff"] = verify_tflite(source, content, nhwc, context.profile.threads)
        if precision is Precision.fp16:
            params["quantizer"] = "ai-edge-quantizer float casting (fp16 weights)"
        elif precision is Precision.int8_dynamic:
            params.update(quantizer="ai-edge-quantizer dynamic range (int8 weights)", per_channel=per_channel)
        if precision is not Precision.fp32:
            content = guarded(lambda: _quantize_weights(content, precision, per_channel))
    out_path.write_bytes(content)
    details.update(_describe(content, source))
    result = StepResult("export_tflite", Artifact(out_path, "tflite", precision.value), params, details=details)
    result.seconds = time.perf_counter() - start
    return result


def _model_inputs(source: TorchSource, feeds: dict[str, np.ndarray], nhwc: list[int]) -> list[np.ndarray]:
    """Positional inputs in the converted model's layout (NCHW -> NHWC where ``nhwc`` says)."""
    return [np.ascontiguousarray(feeds[spec.name].transpose(0, 2, 3, 1) if i in nhwc else feeds[spec.name])
            for i, spec in enumerate(source.inputs)]


def _static_int8(litert_torch, module, args, samples: list[list[np.ndarray]], context: StepContext):
    """PT2E: symmetric int8 weights, int8 activations observed on ``samples``; int8 model inputs/outputs. Raises
    ``AccuracyError`` before converting when the fake-quantized model is far outside the profile's budget.

    Returns the model, how torch.export ran (``pt2e_ranges.observed``) and the simulation's figures
    (``pt2e_simulation.check_simulation``).
    """
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from .pt2e_ranges import observed
    from .pt2e_simulation import check_simulation

    config = get_symmetric_quantization_config(is_per_channel=context.profile.quantization.per_channel)
    prepared, quantizer, how = observed(module, args, samples, PT2EQuantizer, config)
    converted = convert_pt2e(prepared, fold_quantize=False)
    simulation = check_simulation(module, converted, samples, context, before="conversion")
    content = litert_torch.convert(converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)).model_content()
    return content, how, simulation


def _quantize_weights(fp32_content: bytes, precision: Precision, per_channel: bool) -> bytes:
    """ai-edge-quantizer on the checked fp32 model: fp16 weights, or int8 weights with float activations.

    For dynamic INT8 this beats PT2E's ``is_dynamic=True``, which gave the same graph (same ops, same int8
    weights on MobileNetV2): it reuses the conversion just checked against PyTorch instead of exporting again,
    and takes milliseconds. On CNNs it ran 4.7x slower than fp32 here (hybrid kernels outside XNNPACK): measure.
    """
    from ai_edge_quantizer import Quantizer, algorithm_manager, qtyping

    quantizer = Quantizer(fp32_content)
    ops = qtyping.TFLOperationName.ALL_SUPPORTED
    if precision is Precision.fp16:  # weight-only float casting: fp16 weights, DEQUANTIZE to float32 at load
        quantizer.add_weight_only_config(".*", ops, 16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    else:  # dynamic range: int8 weights, activations quantized on the fly by the kernels
        granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
        quantizer.add_dynamic_config(".*", ops, 8, granularity)
    return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)


def _interpreter(content: bytes, threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter

    with quiet(native=True):
        return Interpreter(model_content=content, num_threads=threads)


def verify_tflite(source: TorchSource, content: bytes, nhwc: list[int], threads: int = 1) -> float:
    """Max abs difference between LiteRT and PyTorch on the examples; a mismatch is an ``OutputMismatchError``."""
    runner = _interpreter(content, threads).get_signature_runner()
    declared = runner.get_input_details()  # litert-torch makes int64 inputs int32: feed what it declares
    feeds = {f"args_{i}": a.astype(declared[f"args_{i}"]["dtype"], copy=False)
             for i, a in enumerate(_model_inputs(source, source.examples, nhwc))}
    with quiet(native=True):
        out = runner(**feeds)
    got = [out[f"output_{i}"] for i in range(len(out))]
    return check_outputs(source.run(source.examples), got, "converted TFLite",
                         hint="litert-torch mistranslated an op; export to ONNX instead or report it to litert-torch")


def _describe(content: bytes, source: TorchSource) -> dict:
    """Input/output dtypes and shapes (scale/zero-point when quantized) and the count of tensor dtypes."""
    interpreter = _interpreter(content)
    runner = interpreter.get_signature_runner()

    def entry(name: str, detail: dict) -> dict:
        info = {"name": name, "dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape"]]}
        scale, zero_point = detail["quantization"]
        return {**info, "scale": float(scale), "zero_point": int(zero_point)} if scale else info

    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    tensors = interpreter.get_tensor_details()
    return {"inputs": [entry(spec.name, inputs[f"args_{i}"]) for i, spec in enumerate(source.inputs)],
            "outputs": [entry(f"output_{i}", outputs[f"output_{i}"]) for i in range(len(outputs))],
            "tensor_dtypes": dict(Counter(np.dtype(t["dtype"]).name for t in tensors))}


def _conversion_error(source: TorchSource, precision: Precision, exc: Exception) -> ExportError:
    text = str(exc)
    ops = sorted({f"{ns}::{op}" for ns, op in _DOTTED_OP.findall(text)}
                 or {f"{ns}::{op}" for ns, op in _SCOPED_OP.findall(text)})
    op_text = f" (unsupported op: {', '.join(ops)})" if ops else ""
    return ExportError(f"TFLite {precision.value} conversion of {source.reference} failed{op_text}: "
                       f"{type(exc).__name__}: {first_lines(text)[:300]}",
                       hint="replace the op with supported ones, or export to ONNX instead")
