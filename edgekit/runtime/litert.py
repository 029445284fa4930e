"""LiteRT (TFLite) runner: the default XNNPACK CPU interpreter, float in -> float out, and a benchmark loop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ExportError, InputError
from ..extras import install_hint
from ..quiet import quiet
from .stats import LatencyStats, time_calls

_QUANTIZED_DTYPES = (np.int8, np.uint8, np.int16)
_POSITIONAL = re.compile(r"(?:args|output)_(\d+)")


def _load_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ExportError("LiteRT is needed to run .tflite models but neither ai-edge-litert nor "
                              "tflite-runtime is installed",
                              hint=install_hint("tflite", device=True)) from exc
    return Interpreter


def _ordered(details: list[dict], signature: dict[str, int]) -> list[tuple[str, dict]]:
    """(name, details) in positional order. Signatures list names alphabetically (args_10 before args_2), so
    litert-torch's positional names are sorted by number; other names keep the subgraph's order."""
    names = {index: name for name, index in signature.items()}
    entries = [(names.get(d["index"], d["name"]), d) for d in details]
    numbers = [_POSITIONAL.fullmatch(name) for name, _ in entries]
    if all(numbers):
        return [entry for _, entry in sorted(zip((int(m[1]) for m in numbers), entries), key=lambda p: p[0])]
    return entries


def _quantization(details: dict) -> tuple[float, int] | None:
    scale, zero_point = details["quantization"]
    return (scale, zero_point) if details["dtype"] in _QUANTIZED_DTYPES and scale != 0 else None


def _cast(value: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """``value`` as the dtype the interpreter declares (litert-torch makes int64 inputs int32); integers that
    do not fit are refused rather than wrapped around."""
    if (np.issubdtype(dtype, np.integer) and np.issubdtype(value.dtype, np.integer) and value.size
            and (value.min() < np.iinfo(dtype).min or value.max() > np.iinfo(dtype).max)):
        raise InputError(f"input '{name}' holds values {value.min()}..{value.max()} that do not fit the model's "
                         f"{dtype.name} input", hint=f"keep '{name}' within the {dtype.name} range")
    return np.ascontiguousarray(value, dtype=dtype)


class LiteRtRunner:
    """One LiteRT interpreter on ``threads`` CPU threads. ``input_names`` renames the model's inputs (given in
    its positional order); ``channels_last_inputs`` transposes NCHW feeds to the model's NHWC 4-D inputs.

    The interpreter keeps LiteRT's defaults: the XNNPACK delegate applied by the default op resolver. Measured
    against them (issue #23: MiniLM FP32 and dynamic INT8, 2 threads, AMX Xeon, fastest runs of 12 rotating
    rounds): without XNNPACK 8–17× slower, ``experimental_default_delegate_latest_features`` and
    ``experimental_disable_delegate_clustering`` within ±3 %, so no option is set."""

    format = "tflite"

    def __init__(self, path: str | Path, threads: int = 1, input_names: list[str] | None = None,
                 channels_last_inputs: bool = False):
        interpreter_class = _load_interpreter_class()
        self.path = Path(path)
        self.threads = threads
        self.channels_last_inputs = channels_last_inputs
        if not self.path.is_file():
            raise InputError(f"{self.path} does not exist", hint="check the path")
        try:
            with quiet(native=True):
                self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise InputError(f"{self.path} is not a loadable TFLite model: {reason}",
                             hint="re-export the model; the file may be truncated or not TFLite at all") from exc
        signatures = self.interpreter._get_full_signature_list()
        signature = next(iter(signatures.values())) if len(signatures) == 1 else {"inputs": {}, "outputs": {}}
        inputs = _ordered(self.interpreter.get_input_details(), signature["inputs"])
        outputs = _ordered(self.interpreter.get_output_details(), signature["outputs"])
        if input_names is not None and len(input_names) != len(inputs):
            raise InputError(f"{self.path} has {len(inputs)} inputs {[n for n, _ in inputs]} but "
                             f"{len(input_names)} input names were given: {input_names}",
                             hint="give one name per model input, in the model's order")
        self.input_names = list(input_names) if input_names is not None else [n for n, _ in inputs]
        self.output_names = [n for n, _ in outputs]
        self._inputs = dict(zip(self.input_names, (d for _, d in inputs)))
        self._outputs = [d for _, d in outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._set_inputs(self._prepare(feeds))
        self.interpreter.invoke()
        results = []
        for details in self._outputs:
            value = self.interpreter.get_tensor(details["index"])
            quantization = _quantization(details)
            if quantization is not None:
                value = ((value.astype(np.float32) - quantization[1]) * quantization[0]).astype(np.float32)
            elif np.issubdtype(value.dtype, np.floating):
                value = value.astype(np.float32)
            results.append(value)
        return results

    def benchmark(self, feeds: dict[str, np.ndarray], warmup: int = 10, runs: int = 50,
                  min_seconds: float = 0.0) -> LatencyStats:
        """Warm up, then time input copy + invoke ``runs`` times (more if ``min_seconds`` is not reached yet)."""
        prepared = self._prepare(feeds)

        def call() -> None:
            self._set_inputs(prepared)
            self.interpreter.invoke()

        return time_calls(call, self.threads, warmup, runs, min_seconds)

    def io_quantization(self) -> dict:
        """{"inputs": {name: {dtype, shape[, scale, zero_point]}}, "outputs": {...}} as the model stores them."""
        def describe(details: dict) -> dict:
            entry = {"dtype": np.dtype(details["dtype"]).name, "shape": [int(s) for s in details["shape"]]}
            quantization = _quantization(details)
            if quantization is not None:
                entry.update(scale=float(quantization[0]), zero_point=int(quantization[1]))
            return entry

        return {"inputs": {n: describe(d) for n, d in self._inputs.items()},
                "outputs": {n: describe(d) for n, d in zip(self.output_names, self._outputs)}}

    def input_specs(self) -> dict[str, dict]:
        """What callers feed: {name: {"shape", "dtype"}} — float for quantized inputs, NCHW for NHWC ones."""
        specs = {}
        for name, details in self._inputs.items():
            shape = [int(s) for s in details["shape"]]
            if self.channels_last_inputs and len(shape) == 4:
                shape = [shape[0], shape[3], shape[1], shape[2]]
            dtype = "float32" if _quantization(details) else np.dtype(details["dtype"]).name
            specs[name] = {"shape": shape, "dtype": dtype}
        return specs

    def output_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}} of what ``run`` returns: quantized and floating outputs as float32."""
        specs = {}
        for name, details in zip(self.output_names, self._outputs):
            stored = np.dtype(details["dtype"])
            floating = _quantization(details) is not None or np.issubdtype(stored, np.floating)
            specs[name] = {"shape": [int(s) for s in details["shape"]],
                           "dtype": "float32" if floating else stored.name}
        return specs

    def _prepare(self, feeds: dict[str, np.ndarray]) -> list[tuple[dict, np.ndarray]]:
        """Each feed laid out, quantized and cast the way its input tensor wants it; resizes if the shape changed."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing inputs {missing}; the model takes {self.input_names}")
        prepared = []
        for name, details in self._inputs.items():
            value = np.asarray(feeds[name])
            if self.channels_last_inputs and value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            quantization = _quantization(details)
            if quantization is not None:
                limits = np.iinfo(details["dtype"])
                value = np.clip(np.round(value / quantization[0] + quantization[1]), limits.min, limits.max)
            value = _cast(value, np.dtype(details["dtype"]), name)
            self._fit_shape(name, details, value.shape)
            prepared.append((details, value))
        return prepared

    def _fit_shape(self, name: str, details: dict, shape: tuple[int, ...]) -> None:
        current = tuple(int(s) for s in details["shape"])
        if shape == current:
            return
        flexible = [i == 0 or s == -1 for i, s in enumerate(details["shape_signature"])]
        if len(shape) != len(current) or any(a != b and not flexible[i]
                                             for i, (a, b) in enumerate(zip(shape, current))):
            raise InputError(f"input '{name}' has shape {list(shape)} but {self.path.name} takes {list(current)}",
                             hint="feed the shape the model was converted with")
        self.interpreter.resize_tensor_input(details["index"], list(shape))
        self.interpreter.allocate_tensors()
        details["shape"] = np.array(shape, dtype=np.int32)

    def _set_inputs(self, prepared: list[tuple[dict, np.ndarray]]) -> None:
        for details, value in prepared:
            self.interpreter.set_tensor(details["index"], value)
