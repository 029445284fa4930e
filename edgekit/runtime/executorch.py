"""ExecuTorch runner: a ``.pte`` program (XNNPACK-delegated where it was lowered), float in -> float out.

Unlike the other runners this one needs torch: the ``executorch`` wheel's Python bindings link libtorch and take
and return ``torch.Tensor`` only (numpy arrays are refused). A device that runs ``.pte`` files therefore needs the
``executorch`` extra, torch included; the agent's default extras stay torch-free.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np

from ..errors import ExportError, InputError
from ..extras import install_hint
from ..quiet import quiet
from .stats import LatencyStats, time_calls

# ExecuTorch's ScalarType codes (c10's numbering) as numpy dtypes.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                 7: "float64", 11: "bool"}
_OPEN: weakref.WeakSet = weakref.WeakSet()  # the runners alive in this process (their delegates hold the pool)


def load_runtime():
    """ExecuTorch's ``Runtime`` and its ``portable_lib`` bindings (imported once per process)."""
    try:
        with quiet(native=True):  # its import warns ("experimental API", torch/torchao deprecations) and logs
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
    except ImportError as exc:
        raise ExportError(f"ExecuTorch is needed to run .pte models but is not installed ({exc})",
                          hint=install_hint("executorch", device=True)) from exc
    return Runtime.get(), portable_lib


class ExecuTorchRunner:
    """The ``forward`` method of one ``.pte`` program. ``input_names`` name the positional inputs (default
    ``input_0``, …); outputs are ``output_0``, … like a PyTorch source's.

    ``threads`` sizes ExecuTorch's thread pool, which is process-wide, and XNNPACK's delegates keep the pool they
    were loaded with: resizing it under a loaded program crashed the process (segfault, ExecuTorch 1.5.1). So the
    pool is resized only while no other runner is alive, and a runner asking for another size meanwhile is refused.
    """

    format = "executorch"

    def __init__(self, path: str | Path, threads: int = 1, input_names: list[str] | None = None):
        runtime, self._lib = load_runtime()
        self.path = Path(path)
        self.threads = threads
        if not self.path.is_file():
            raise InputError(f"{self.path} does not exist", hint="check the path")
        self._size_pool(threads)
        try:
            with quiet(native=True):
                program = runtime.load_program(self.path)
                self.method = program.load_method("forward")
        except (RuntimeError, ValueError) as exc:
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise InputError(f"{self.path} is not a loadable ExecuTorch program: {reason}",
                             hint="re-export the model; the file may be truncated or not a .pte at all") from exc
        meta = self.method.metadata
        self._inputs = [meta.input_tensor_meta(i) for i in range(meta.num_inputs())]
        self._outputs = [meta.output_tensor_meta(i) for i in range(meta.num_outputs())]
        if input_names is not None and len(input_names) != len(self._inputs):
            raise InputError(f"{self.path} has {len(self._inputs)} inputs but {len(input_names)} input names were "
                             f"given: {input_names}", hint="give one name per model input, in the model's order")
        self.input_names = list(input_names) if input_names is not None else [f"input_{i}"
                                                                            for i in range(len(self._inputs))]
        self.output_names = [f"output_{i}" for i in range(len(self._outputs))]
        _OPEN.add(self)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self.method.execute(self._prepare(feeds))
        return [np.asarray(o.numpy(), dtype=np.float32) if o.is_floating_point() else o.numpy() for o in outputs]

    def benchmark(self, feeds: dict[str, np.ndarray], warmup: int = 10, runs: int = 50,
                  min_seconds: float = 0.0) -> LatencyStats:
        """Warm up, then time ``runs`` executions (more if ``min_seconds`` is not reached yet)."""
        prepared = self._prepare(feeds)
        return time_calls(lambda: self.method.execute(prepared), self.threads, warmup, runs, min_seconds)

    def input_specs(self) -> dict[str, dict]:
        return {name: _spec(info) for name, info in zip(self.input_names, self._inputs)}

    def output_specs(self) -> dict[str, dict]:
        """{name: {"shape", "dtype"}} of what ``run`` returns (floating outputs as float32)."""
        specs = {name: _spec(info) for name, info in zip(self.output_names, self._outputs)}
        for spec in specs.values():
            if np.issubdtype(np.dtype(spec["dtype"]), np.floating):
                spec["dtype"] = "float32"
        return specs

    def _size_pool(self, threads: int) -> None:
        with quiet(native=True):  # the pool is made at the first call, and cpuinfo logs what it cannot read
            if self._lib._threadpool_get_thread_count() == threads:
                return
        gc.collect()  # runners dropped in a reference cycle still hold their delegates until collected
        if _OPEN:
            sizes = sorted({runner.threads for runner in _OPEN})
            raise InputError(f"ExecuTorch's thread pool is process-wide and open runners use {sizes} threads; "
                             f"{self.path.name} asked for {threads}",
                             hint="close the other ExecuTorch runners first, or open this one with the same threads")
        with quiet(native=True):
            self._lib._unsafe_reset_threadpool(threads)

    def _prepare(self, feeds: dict[str, np.ndarray]) -> list:
        """The feeds as torch tensors of the declared dtypes, in positional order; the shapes must match (a .pte
        has static shapes unless it was exported with dynamic ones)."""
        import torch  # the bindings take torch tensors only (see the module docstring)

        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing inputs {missing}; the model takes {self.input_names}")
        tensors = []
        for name, info in zip(self.input_names, self._inputs):
            value = np.asarray(feeds[name])
            expected = tuple(info.sizes())
            if value.shape != expected:
                raise InputError(f"input '{name}' has shape {list(value.shape)} but {self.path.name} takes "
                                 f"{list(expected)}", hint="feed the shape the model was exported with")
            dtype = np.dtype(_SCALAR_TYPES.get(info.dtype(), "float32"))
            tensors.append(torch.from_numpy(np.ascontiguousarray(value, dtype=dtype)))
        return tensors


def _spec(info) -> dict:
    return {"shape": [int(s) for s in info.sizes()], "dtype": _SCALAR_TYPES.get(info.dtype(), "float32")}
