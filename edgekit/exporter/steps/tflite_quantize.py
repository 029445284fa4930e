"""Quantize an existing float ``.tflite`` (MediaPipe's and others') with Google's ai-edge-quantizer.

- ``int8_static``: int8 weights and activations, calibrated on the calibration samples; int8 inputs and outputs
  (the runner quantizes and dequantizes them).
- ``int8_dynamic``: int8 weights. Fully connected and batched matmuls are dynamic range (activations quantized on
  the fly: integer kernels). Convolutions are weight-only (dequantized to float when loaded): dynamic-range
  convolutions run in LiteRT's hybrid kernels outside XNNPACK, 17x slower than float on MediaPipe's face
  landmarker here, while weight-only ones keep float speed at a third of the size.

Files written by older converters need two fixes first, made on a copy of the model and recorded: operator
codes kept only in ``deprecated_builtin_code`` (the quantizer reads ``builtin_code`` and saw every op as ADD, so
it quantized nothing and said nothing), and a missing signature (calibration runs by signature). fp16 weights
behind DEQUANTIZE (MediaPipe's fp16 models) are widened to float32 constants, or nothing would be quantizable.

``TfliteQuantization`` holds the recipe; static INT8's calibrated ranges are kept per export and model
(``context.calibration_ranges``), so the accuracy rescue (``rescue.py``) quantizes again with chosen ops kept in
float without calibrating again, and ranks the ops by ai-edge-quantizer's own per-tensor comparison.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data import SampleSet
from ...errors import ExportError, InputError
from ...extras import install_hint
from ...files import sha256_file
from ...quiet import quiet
from ...targets import Precision
from .base import Artifact, StepContext, StepResult
from .verify import first_lines

PRECISIONS = (Precision.int8_static, Precision.int8_dynamic)
SIGNATURE = "serving_default"
_DEQUANTIZE = 6  # BuiltinOperator.DEQUANTIZE
_FLOAT16, _INT8 = 1, 9  # TensorType
DYNAMIC_OPS = ("FULLY_CONNECTED", "BATCH_MATMUL", "EMBEDDING_LOOKUP")  # int8_dynamic: dynamic range
WEIGHT_ONLY_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE")  # int8_dynamic: weight-only int8


def quantize_tflite(tflite_path: Path, out_path: Path, precision: Precision | str,
                    context: StepContext) -> StepResult:
    """Quantize the float model at ``tflite_path`` into ``out_path``. Static INT8 is calibrated on
    ``context.calibration`` (``context.inputs`` name the model's inputs in order; samples in the model's layout)."""
    return TfliteQuantization(tflite_path, precision, context).quantize(out_path)


@dataclass(frozen=True)
class QuantizedOp:
    """An op of the float model that the recipe quantizes."""

    name: str  # its first output tensor's: the name the recipe keeps it in float by
    type: str  # "CONV_2D"
    inputs: tuple[str, ...]  # its input tensors that are not constants


class TfliteQuantization:
    """ai-edge-quantizer's recipe for one precision on the float model at ``tflite_path`` (normalized once),
    quantized as often as asked, with chosen ops kept in float (the rescue)."""

    def __init__(self, tflite_path: Path, precision: Precision | str, context: StepContext):
        self.path, self.precision, self.context = Path(tflite_path), Precision(precision), context
        if self.precision not in PRECISIONS:
            raise ExportError(f"a .tflite source has no {self.precision.value} route; ai-edge-quantizer builds "
                              f"{', '.join(p.value for p in PRECISIONS)}", hint="ask for int8_static or int8_dynamic")
        try:
            with quiet(native=True):
                import ai_edge_quantizer  # noqa: F401
        except ImportError as exc:
            raise ExportError(f"quantizing a .tflite needs ai-edge-quantizer, which is not installed ({exc})",
                              hint=install_hint("tflite")) from exc
        self.content, self.fixes = normalize(self.path.read_bytes(), self.path.name)
        per_channel = context.profile.quantization.per_channel
        self.params = {"quantizer": f"ai-edge-quantizer {_version()}", "per_channel": per_channel,
                       "method": ("static (int8 activations and weights)" if self.precision is Precision.int8_static
                                  else "dynamic range (matmuls), weight-only int8 (convolutions)")}

    def quantize(self, out_path: Path, keep_float: list[str] | tuple[str, ...] = ()) -> StepResult:
        """The quantized model in ``out_path``, the ops named in ``keep_float`` (``QuantizedOp.name``) in float."""
        start = time.perf_counter()
        with self._failures():
            quantizer = self._quantizer(keep_float)
            ranges, reused = self._ranges() if self.precision is Precision.int8_static else (None, False)
            with quiet(native=True):
                result = quantizer.quantize(ranges) if ranges is not None else quantizer.quantize()
        quantized = bytes(result.quantized_model)
        details = {"fixes": self.fixes, **describe(quantized)}
        if reused:
            details["calibration"] = "ranges reused from the first quantization of this model"
        if not details["int8_weights"]:
            raise ExportError(f"ai-edge-quantizer quantized no weights of {self.path.name} "
                              f"({self.precision.value}): the model has no op it quantizes",
                              hint="keep the float model")
        out_path.write_bytes(quantized)
        params = {**self.params, **({"kept_float": list(keep_float)} if keep_float else {})}
        step = StepResult("quantize_tflite", Artifact(out_path, "tflite", self.precision.value), params,
                          details=details)
        step.seconds = time.perf_counter() - start
        return step

    def _ranges(self) -> tuple[dict, bool]:
        """The float model's tensor ranges on the calibration samples, and whether they were measured before: once
        per export and model (kept in ``context.calibration_ranges``; which ops stay float does not change them)."""
        samples = self.context.calibration
        if samples is None:
            raise InputError("static INT8 needs calibration samples", hint="pass --calib FILE.npz")
        count = min(self.context.profile.quantization.calibration_samples, len(samples))
        self.params.update(calibration_samples=count, calibration_data=samples.origin)
        key = (str(self.path), sha256_file(self.path), "ai-edge-quantizer", count, samples.origin)
        reused = key in self.context.calibration_ranges
        if not reused:
            with quiet(native=True):
                self.context.calibration_ranges[key] = self._quantizer().calibrate(
                    {SIGNATURE: self._signature_samples(samples, count)}, num_threads=self.context.profile.threads)
        return self.context.calibration_ranges[key], reused

    def tensor_cosines(self, quantized_path: Path, samples: SampleSet) -> dict[str, float]:
        """ai-edge-quantizer's own comparison of the quantized model with the float one on ``samples``: the cosine
        similarity of every tensor they share (inputs, intermediates and outputs; not weights), mean over samples."""
        from ai_edge_quantizer import Quantizer
        from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric

        metric = ValidationErrorMetric.COSINE_SIMILARITY
        with self._failures(), quiet(native=True):
            quantizer = Quantizer(self.content, previous_quantized_model=Path(quantized_path).read_bytes())
            result = quantizer.validate({SIGNATURE: self._signature_samples(samples, len(samples))},
                                        error_metrics=[metric], num_threads=self.context.profile.threads)
        compared = result.get_signature_comparison_result(SIGNATURE)
        tensors = {**compared.input_tensors, **compared.intermediate_tensors, **compared.output_tensors}
        return {name: values[metric.value] for name, values in tensors.items()}

    def quantized_ops(self) -> list[QuantizedOp]:
        """The ops of the float model whose type the recipe quantizes, in graph order."""
        from ai_edge_litert.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(self.content))
        types = _quantized_types(self.precision)
        out = []
        for subgraph in model.subgraphs:
            tensors = subgraph.tensors
            for op in subgraph.operators:
                kind = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
                if kind in types and len(op.outputs):
                    out.append(QuantizedOp(tensors[op.outputs[0]].name.decode(), kind, tuple(
                        tensors[i].name.decode() for i in op.inputs if i >= 0 and not _constant(model, tensors[i]))))
        return out

    def _quantizer(self, keep_float=()):
        """A quantizer holding the recipe, with NO_QUANTIZE entries for ``keep_float`` (the later matching entry
        wins). An op's scope is its output tensors' names, each followed by ';'; the graph's virtual OUTPUT op's
        scope names every model output, so an op that makes one stays float up to the model's output (else the
        output would be quantized again, with the range that broke the budget)."""
        from ai_edge_quantizer import Quantizer, qtyping
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        ops = qtyping.TFLOperationName
        per_channel = self.params["per_channel"]
        granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
        with quiet(native=True):
            quantizer = Quantizer(self.content)
        if self.precision is Precision.int8_static:
            quantizer.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, granularity)
        else:
            for op in DYNAMIC_OPS:
                quantizer.add_dynamic_config(".*", ops(op), 8, granularity)
            for op in WEIGHT_ONLY_OPS:
                quantizer.add_weight_only_config(".*", ops(op), 8, granularity)
        for name in keep_float:
            quantizer.update_quantization_recipe(f"(^|;){re.escape(name)};", ops.ALL_SUPPORTED,
                                                 algorithm_key=AlgorithmName.NO_QUANTIZE)
        return quantizer

    def _signature_samples(self, samples: SampleSet, count: int) -> list[dict[str, np.ndarray]]:
        """The first ``count`` samples keyed by the signature's input names."""
        names = dict(zip(_signature_inputs(self.content), (spec.name for spec in self.context.inputs)))
        return [{name: np.ascontiguousarray(sample[given]) for name, given in names.items()}
                for sample in itertools.islice(samples, count)]

    @contextmanager
    def _failures(self):
        """What the quantizer raises on a model it cannot take, as an ``ExportError``."""
        try:
            yield
        except (InputError, ExportError):
            raise
        except Exception as exc:  # the quantizer raises ValueError, KeyError, AttributeError on what it cannot take
            raise ExportError(f"ai-edge-quantizer {self.precision.value} of {self.path.name} failed: "
                              f"{type(exc).__name__}: {first_lines(str(exc))[:300]}",
                              hint="keep the float model, or quantize it where it was converted") from exc


def normalize(content: bytes, name: str = "the model") -> tuple[bytes, list[str]]:
    """The model with the fixes the module docstring names, and what was changed (empty: returned as it was).
    A model that holds quantized tensors already is an ``InputError``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    quantized = sum(1 for subgraph in model.subgraphs for t in subgraph.tensors
                    if t.quantization is not None and t.quantization.scale is not None)
    if quantized:
        raise InputError(f"{name} cannot be quantized: {quantized} of its tensors are quantized already",
                         hint="give the float model it was made from")
    fixes = []
    stale = [code for code in model.operatorCodes if code.deprecatedBuiltinCode > code.builtinCode]
    for code in stale:
        code.builtinCode = code.deprecatedBuiltinCode  # what LiteRT itself reads (GetBuiltinCode)
    if stale:
        fixes.append(f"operator codes read from deprecated_builtin_code ({len(stale)})")
    widened = sum(_widen_fp16_weights(model, index) for index in range(len(model.subgraphs)))
    if widened:
        fixes.append(f"fp16 weights widened to float32 ({widened} DEQUANTIZE ops removed)")
    if not model.signatureDefs:
        subgraph = model.subgraphs[0]

        def tensor_map(index: int):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = subgraph.tensors[index].name.decode(), index
            return entry

        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = SIGNATURE, 0
        signature.inputs = [tensor_map(i) for i in subgraph.inputs]
        signature.outputs = [tensor_map(i) for i in subgraph.outputs]
        model.signatureDefs = [signature]
        fixes.append(f"signature '{SIGNATURE}' added (the model had none; names are the tensors')")
    if not fixes:
        return content, fixes
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fixes


def _widen_fp16_weights(model, subgraph_index: int) -> int:
    """Fold DEQUANTIZE(fp16 constant) into a float32 constant; returns how many ops were folded."""
    from ai_edge_litert import schema_py_generated as schema

    subgraph = model.subgraphs[subgraph_index]
    kept, folded = [], 0
    for op in subgraph.operators:
        source = subgraph.tensors[op.inputs[0]] if op.inputs else None
        data = model.buffers[source.buffer].data if source is not None else None
        if (model.operatorCodes[op.opcodeIndex].builtinCode == _DEQUANTIZE and source.type == _FLOAT16
                and data is not None and len(data)):
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(bytes(data), np.float16).astype(np.float32).view(np.uint8)
            model.buffers.append(buffer)
            subgraph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            folded += 1
        else:
            kept.append(op)
    subgraph.operators = kept
    if folded:
        _drop_unused_fp16(model, subgraph_index)
    return folded


def _drop_unused_fp16(model, subgraph_index: int) -> None:
    """Remove the fp16 tensors no op reads any more (calibration reads every tensor, and they would only add
    size), renumbering the tensor indices that ops, the subgraph and signatures hold."""
    subgraph = model.subgraphs[subgraph_index]
    used = {i for op in subgraph.operators for i in (*op.inputs, *op.outputs)} | set(subgraph.inputs) \
        | set(subgraph.outputs)
    keep = [i for i, t in enumerate(subgraph.tensors) if i in used or t.type != _FLOAT16]
    new_index = {old: new for new, old in enumerate(keep)}
    new_index[-1] = -1  # an optional input left out
    dropped = {t.buffer for i, t in enumerate(subgraph.tensors) if i not in new_index}
    subgraph.tensors = [subgraph.tensors[i] for i in keep]
    still_read = {t.buffer for sg in model.subgraphs for t in sg.tensors}
    for buffer in dropped - still_read - {0}:  # buffer 0 is the shared empty one
        model.buffers[buffer].data = None
    for op in subgraph.operators:
        op.inputs = [new_index[i] for i in op.inputs]
        op.outputs = [new_index[i] for i in op.outputs]
    subgraph.inputs = [new_index[i] for i in subgraph.inputs]
    subgraph.outputs = [new_index[i] for i in subgraph.outputs]
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == subgraph_index:
            for entry in (*signature.inputs, *signature.outputs):
                entry.tensorIndex = new_index[entry.tensorIndex]


def _quantized_types(precision: Precision) -> set[str]:
    """The op types the recipe quantizes: every type ai-edge-quantizer's static algorithm supports (static INT8),
    or the dynamic-range and weight-only ones."""
    if precision is not Precision.int8_static:
        return {*DYNAMIC_OPS, *WEIGHT_ONLY_OPS}
    from ai_edge_quantizer import algorithm_manager

    supported = algorithm_manager.get_supported_ops(algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    return {op.value for op in supported} - {"INPUT", "OUTPUT"}


def _constant(model, tensor) -> bool:
    """Whether ``tensor`` holds data in the file (a weight, a bias, a shape)."""
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def _signature_inputs(content: bytes) -> list[str]:
    """The signature's input names in the subgraph's (positional) order, which ``context.inputs`` follows."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet(native=True):
        interpreter = Interpreter(model_content=content)
    position = {d["index"]: i for i, d in enumerate(interpreter.get_input_details())}
    details = interpreter.get_signature_runner(SIGNATURE).get_input_details()
    return sorted(details, key=lambda name: position[details[name]["index"]])


def describe(content: bytes) -> dict:
    """Tensor dtypes, how many constant tensors hold int8 weights, and the ops of the quantized graph."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    tensors = [t for subgraph in model.subgraphs for t in subgraph.tensors]
    ops = Counter(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) or "CUSTOM"
                  for subgraph in model.subgraphs for op in subgraph.operators)
    int8_weights = sum(1 for t in tensors if t.type == _INT8 and model.buffers[t.buffer].data is not None
                       and len(model.buffers[t.buffer].data))
    return {"tensor_dtypes": dict(Counter(flatbuffer_utils.type_to_name(t.type).lower() for t in tensors)),
            "int8_weights": int8_weights, "ops": dict(ops.most_common())}


def _version() -> str:
    from importlib.metadata import version

    return version("ai-edge-quantizer")
