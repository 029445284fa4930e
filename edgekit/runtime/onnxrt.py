"""ONNX Runtime runner: a session with fixed threads, float in -> float out, and a benchmark loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .stats import LatencyStats, time_calls

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool", "tensor(string)": "str"}


class OnnxRunner:
    """One ONNX Runtime CPU session. ``threads`` fixes intra-op threads; inter-op is 1 (sequential).

    ``model`` is a path, or the model's bytes: loaded from bytes, a model cannot reach external data files.
    ``spinning``: whether idle intra-op threads spin-wait for work (ONNX Runtime's default, kept by default). On a
    core of its own spinning was 4–6 % faster (MiniLM, YOLOv8n, 2 threads, Xeon); on cores other jobs share it
    was twice as slow at the median (1-min load 5 on 2 cores), because spinning threads take the cores the
    working ones need. ``session_info()`` records the settings.
    """

    format = "onnx"

    def __init__(self, model: str | Path | bytes, threads: int = 1, optimization: str = "all",
                 optimized_model_path: str | Path | None = None, spinning: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only; failures surface as exceptions
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.spinning = spinning
        self.optimization = optimization
        options.graph_optimization_level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        if optimized_model_path is not None:
            options.optimized_model_filepath = str(optimized_model_path)
        self.path = None if isinstance(model, bytes) else Path(model)
        self.threads = threads
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def session_info(self) -> dict:
        """The session's settings as ONNX Runtime reports them back (threads, spinning, optimization level)."""
        options = self.session.get_session_options()
        return {"runtime": "onnxruntime", "providers": self.session.get_providers(),
                "intra_op_threads": options.intra_op_num_threads, "inter_op_threads": options.inter_op_num_threads,
                "execution_mode": options.execution_mode.name,
                "graph_optimization_level": options.graph_optimization_level.name,
                "spinning": options.get_session_config_entry("session.intra_op.allow_spinning") == "1"}

    def input_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}}; symbolic dimensions are given as their names."""
        return {i.name: {"shape": [d if isinstance(d, int) else str(d) for d in i.shape],
                         "dtype": _ORT_TYPES.get(i.type, "float32")} for i in self.session.get_inputs()}

    def output_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}} of what ``run`` returns (floating outputs as float32)."""
        return {o.name: {"shape": [d if isinstance(d, int) else str(d) for d in o.shape],
                         "dtype": _returned_dtype(_ORT_TYPES.get(o.type, "float32"))}
                for o in self.session.get_outputs()}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing inputs {missing}; the model takes {self.input_names}")
        outputs = self.session.run(None, {n: feeds[n] for n in self.input_names})
        return [np.asarray(o, dtype=np.float32) if np.issubdtype(np.asarray(o).dtype, np.floating) else np.asarray(o)
                for o in outputs]

    def benchmark(self, feeds: dict[str, np.ndarray], warmup: int = 10, runs: int = 50,
                  min_seconds: float = 0.0) -> LatencyStats:
        """Warm up, then time ``runs`` calls (more if ``min_seconds`` is not reached yet)."""
        bound = {n: feeds[n] for n in self.input_names}
        return time_calls(lambda: self.session.run(None, bound), self.threads, warmup, runs, min_seconds)


def _returned_dtype(name: str) -> str:
    """The dtype ``run`` gives an output stored as ``name``: floating types come back as float32."""
    return "float32" if np.issubdtype(np.dtype(name), np.floating) else name
