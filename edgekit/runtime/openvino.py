"""OpenVINO runner: an IR compiled for the CPU with fixed threads and the latency hint, float in -> float out.

The compile configuration (``threads`` inference threads, one stream, the LATENCY hint) is what the CPU plugin
settles on by itself with 2 threads on a 2-core machine: every property of the compiled model read back the
same as with no config at all, and each setting alone timed the same as the default compile of the same IR
(within 1 %, MiniLM on the AMX Xeon, ``bench/openvino_peers.py``). It is set anyway, so a bigger host or another
OpenVINO release does not change what is measured, and ``execution_info`` reads it back.

The execution precision is a compile-time hint in OpenVINO, not a property of the file: the same IR runs in f32
or, where the CPU has it, bf16 (AMX, AVX-512 BF16). The runner always sets the hint it is given (``f32`` unless
told otherwise), because the CPU plugin's default on AMX machines is bf16, and reports what was compiled: the
precision the plugin settled on and the kernels its compute layers run on (``execution_info``).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ExportError, InputError
from ..extras import install_hint
from .ir_bundle import BadBundle, is_ir, unpack, weights_path
from .stats import LatencyStats, time_calls

PRECISIONS = ("f32", "bf16", "f16")
COMPUTE_LAYERS = ("Convolution", "Deconvolution", "FullyConnected", "MatMul", "GroupConvolution", "RNNSeq",
                  "ScaledDotProductAttention")


_NOT_ARITHMETIC = ("Const", "Input", "Output", "Parameter", "Result")
_FLOAT_PRECISIONS = ("f32", "bf16", "f16")

_DECLINE_TELEMETRY = {"CI": "true", "NNCF_CI": "1"}


@contextlib.contextmanager
def telemetry_declined() -> Iterator[None]:
    """OpenVINO (already on ``import openvino``, and in its converter) and NNCF send usage telemetry by default
    (opt-out, from a forked process) unless they run in CI. edgekit works offline and sends nothing on its user's
    behalf, on the workstation or on a device: both honour ``CI=true`` (their ``disable_in_ci``), NNCF also
    ``NNCF_CI`` (read on import), so those are set around the calls that import or convert, then restored."""
    saved = {name: os.environ.get(name) for name in _DECLINE_TELEMETRY}
    os.environ.update(_DECLINE_TELEMETRY)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_openvino():
    """The ``openvino`` module (imported with its telemetry declined), or an error naming the extra."""
    try:
        with telemetry_declined():
            import openvino
    except ImportError as exc:
        raise ExportError("OpenVINO is needed for OpenVINO IR models but is not installed",
                          hint=install_hint("openvino", device=True)) from exc
    return openvino


# oneDNN ISA ceilings (``ONEDNN_MAX_CPU_ISA``) below AVX512_CORE_BF16: OpenVINO's plugin still reports BF16 under
# them, but its kernels are capped, so bf16 is as absent as on a CPU without it (how an AVX2-only host is run here).
_ISA_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin says this CPU can run (FP32, INT8, BF16, FP16, …), under any oneDNN ISA cap."""
    capabilities = list(load_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ISA_WITHOUT_BF16:
        capabilities = [c for c in capabilities if c != "BF16"]
    return capabilities


class OpenVinoRunner:
    """One OpenVINO CPU compiled model: ``threads`` inference threads, one stream, the LATENCY hint.

    ``model`` is the IR's ``.xml`` path (its ``.bin`` beside it) or an IR bundle's bytes (see ``ir_bundle``).
    ``inference_precision``: ``f32``, ``bf16`` or ``f16``; ``None`` leaves OpenVINO's default for this CPU.
    """

    format = "openvino"

    def __init__(self, model: str | Path | bytes, threads: int = 1, inference_precision: str | None = "f32"):
        self._ov = ov = load_openvino()
        if inference_precision is not None and inference_precision not in PRECISIONS:
            raise InputError(f"unknown OpenVINO inference precision '{inference_precision}'",
                             hint=f"use one of {', '.join(PRECISIONS)}")
        self.path = None if isinstance(model, bytes) else Path(model)
        self.threads = threads
        core = ov.Core()
        try:
            parsed = core.read_model(*self._ir(model, ov))
            config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
            if inference_precision is not None:
                config["INFERENCE_PRECISION_HINT"] = inference_precision
            self.compiled = core.compile_model(parsed, "CPU", config)
        except RuntimeError as exc:
            where = self.path or "the bundle"
            raise InputError(f"{where} is not a loadable OpenVINO IR: {_first_line(exc)}",
                             hint="re-export the model; the .xml/.bin pair may be truncated or mismatched") from exc
        self.request = self.compiled.create_infer_request()
        self.input_names = [_port_name(p, f"input_{i}") for i, p in enumerate(self.compiled.inputs)]
        self.output_names = [_port_name(p, f"output_{i}") for i, p in enumerate(self.compiled.outputs)]

    def _ir(self, model: str | Path | bytes, ov) -> tuple:
        """``read_model`` arguments: the .xml text and its weights as a tensor."""
        if isinstance(model, bytes):
            try:
                xml, weights = unpack(model)
            except BadBundle as exc:
                raise InputError(f"not an OpenVINO IR bundle: {exc}", hint="upload the IR with edgekit") from exc
        else:
            path = Path(model)
            if not is_ir(path) or not path.is_file() or not weights_path(path).is_file():
                raise InputError(f"{path} is not an OpenVINO IR .xml with its .bin beside it",
                                 hint="keep model.xml and model.bin together")
            xml, weights = path.read_bytes(), weights_path(path).read_bytes()
        return xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8))

    def input_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}}; a dynamic dimension is given as ``"?"``."""
        return {name: {"shape": [d.get_length() if d.is_static else "?" for d in port.partial_shape],
                       "dtype": np.dtype(port.get_element_type().to_dtype()).name}
                for name, port in zip(self.input_names, self.compiled.inputs)}

    def output_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}} of what ``run`` returns (floating outputs as float32; dynamic dims ``"?"``)."""
        specs = {}
        for name, port in zip(self.output_names, self.compiled.outputs):
            stored = np.dtype(port.get_element_type().to_dtype())
            specs[name] = {"shape": [d.get_length() if d.is_static else "?" for d in port.partial_shape],
                           "dtype": "float32" if np.issubdtype(stored, np.floating) else stored.name}
        return specs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(self._bound(feeds))
        outputs = [results[port] for port in self.compiled.outputs]
        return [np.array(o, dtype=np.float32) if np.issubdtype(o.dtype, np.floating) else np.array(o)
                for o in outputs]

    def benchmark(self, feeds: dict[str, np.ndarray], warmup: int = 10, runs: int = 50,
                  min_seconds: float = 0.0) -> LatencyStats:
        """Warm up, then time ``runs`` inferences on inputs set once (more if ``min_seconds`` is not reached).

        Each call is ``start_async`` + ``wait`` on the one infer request, as OpenVINO's benchmark_app times it:
        ``infer()`` would also copy every output into a new array per call (up to 2 % of MiniLM's 1 ms here)."""
        for index, value in self._bound(feeds).items():
            self.request.set_input_tensor(index, self._ov.Tensor(np.ascontiguousarray(value)))
        request = self.request

        def call() -> None:
            request.start_async()
            request.wait()

        return time_calls(call, self.threads, warmup, runs, min_seconds)

    def execution_info(self) -> dict:
        """What the plugin compiled: devices, the inference precision it settled on, per compute layer the
        kernel it runs (e.g. ``jit_avx2_I8``, ``brgconv_avx2_f32``: the name gives the instruction set) and the
        precision it runs in, the precisions of the other floating layers (an INT8 model's float remainder: f32,
        or bf16 under the bf16 hint on a CPU that has it), and the compiled settings (``compiled_config``)."""
        kernels: Counter = Counter()
        precisions: Counter = Counter()
        remainder: Counter = Counter()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            layer, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
            if layer in COMPUTE_LAYERS:
                kernels[info["primitiveType"].astype(str)] += 1
                precisions[precision] += 1
            elif layer not in _NOT_ARITHMETIC and precision in _FLOAT_PRECISIONS:
                remainder[precision] += 1
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return {"runtime": "openvino", "devices": list(self.compiled.get_property("EXECUTION_DEVICES")),
                "inference_precision": precision.get_type_name(), "compute_kernels": dict(kernels.most_common()),
                "compute_precisions": dict(precisions.most_common()),
                "float_remainder_precisions": dict(remainder.most_common()), "compiled_config": self.compiled_config()}

    def compiled_config(self) -> dict:
        """The settings the plugin compiled with, read back from the compiled model (not what was asked): the
        threads, streams, hint and pinning that decide latency, so a manifest shows them next to its figures."""
        config = {}
        for key, name in _COMPILED_PROPERTIES.items():
            try:
                value = self.compiled.get_property(key)
            except RuntimeError:  # an older plugin without the property
                continue
            config[name] = value if isinstance(value, (bool, int, float)) else _property_text(value)
        return config

    def _bound(self, feeds: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
        """Feeds by input index (an input without a tensor name has only its index)."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing inputs {missing}; the model takes {self.input_names}")
        return {i: feeds[n] for i, n in enumerate(self.input_names)}


_COMPILED_PROPERTIES = {"INFERENCE_NUM_THREADS": "threads", "NUM_STREAMS": "streams",
                        "PERFORMANCE_HINT": "performance_hint", "INFERENCE_PRECISION_HINT": "inference_precision",
                        "EXECUTION_MODE_HINT": "execution_mode", "ENABLE_CPU_PINNING": "cpu_pinning",
                        "ENABLE_HYPER_THREADING": "hyper_threading", "SCHEDULING_CORE_TYPE": "core_type"}


def _property_text(value) -> str:
    """``bf16``, ``LATENCY``, ``PERFORMANCE``: OpenVINO's enums and element types as their short names."""
    if hasattr(value, "get_type_name"):
        return value.get_type_name()
    text = str(value)
    return text.rsplit(".", 1)[-1] if "." in text and not text.replace(".", "").isdigit() else text


def _port_name(port, fallback: str) -> str:
    names = port.get_names()
    return port.get_any_name() if names else fallback


def _first_line(exc: Exception) -> str:
    """OpenVINO's messages start with C++ source locations; keep the first line that says something."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0]
