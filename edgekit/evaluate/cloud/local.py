"""``--cloud local``: the original FP32 model on this host, run the way a serious deployment would run it.

The method is chosen by ``choose_method`` (pure, so it is tested without a GPU) and named in the report:

- CPU: ONNX Runtime, intra-op threads = every core, sequential execution, every graph optimization;
- NVIDIA GPU with ``onnxruntime-gpu``: ONNX Runtime's CUDAExecutionProvider;
- NVIDIA GPU with a CUDA build of PyTorch and a PyTorch source: the module in FP16, captured once as a CUDA graph
  with static input buffers and replayed. Eager PyTorch at batch 1 spends most of its time launching kernels and
  would make the edge look several times better than it is.

Timed per call: input copy in, compute, output copy out (on a GPU: host to device and back).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import CloudError, Reference, accuracy_dict, latency_dict

ORT_CPU = "onnxruntime-cpu"
LITERT_CPU = "litert-cpu"
ORT_CUDA = "onnxruntime-cuda"
TORCH_CUDA_GRAPHS = "torch-cuda-fp16-graphs"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_METHODS = (ORT_CPU, LITERT_CPU)


def choose_method(cuda_available: bool, ort_providers: list[str], torch_cuda_module: bool = False,
                  model_format: str = "onnx") -> tuple[str, list[str]]:
    """The method for this host and the notes that explain a weaker choice.

    ``cuda_available``: an NVIDIA GPU and driver are present; ``ort_providers``: ONNX Runtime's available
    providers; ``torch_cuda_module``: a CUDA build of PyTorch and the PyTorch source module can be loaded."""
    notes: list[str] = []
    if cuda_available:
        if model_format == "onnx" and CUDA_PROVIDER in ort_providers:
            return ORT_CUDA, notes
        if torch_cuda_module:
            return TORCH_CUDA_GRAPHS, notes
        notes.append("an NVIDIA GPU is present, but neither onnxruntime-gpu (CUDAExecutionProvider) nor a CUDA "
                     "build of PyTorch with the model's PyTorch source is usable: the cloud baseline runs on the "
                     "CPU, which is slower than a GPU server and flatters the edge (pip install onnxruntime-gpu)")
    return (LITERT_CPU if model_format == "tflite" else ORT_CPU), notes


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver is loaded (checked without importing torch or CUDA)."""
    return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def torch_cuda_usable(reference: Reference) -> bool:
    """A CUDA build of PyTorch sees a GPU, and the model's PyTorch source file is still there."""
    source = reference.source
    if source.get("kind") != "pytorch" or importlib.util.find_spec("torch") is None:
        return False
    if source.get("path") and not Path(source["path"]).is_file():
        return False
    import torch

    return bool(torch.cuda.is_available())


class LocalCloud:
    """The FP32 reference model on this host; ``measure`` times it and checks its outputs."""

    kind = "local"

    def __init__(self, reference: Reference, threads: int | None = None):
        import onnxruntime as ort

        from ...agent.conditions import device_info

        self.reference = reference
        self.threads = threads or os.cpu_count() or 1
        self.info = device_info()
        gpu = nvidia_gpu_present()
        torch_module = gpu and torch_cuda_usable(reference)
        self.method, self.notes = choose_method(gpu, ort.get_available_providers(), torch_module, reference.format)
        if self.method == ORT_CUDA:
            self._run, self.description, self.device = _ort_cuda(reference)
            if self._run is None:  # the provider is listed but did not take the session: say so, run on the CPU
                self.notes.append(self.description)
                self.method = ORT_CPU
        elif self.method == TORCH_CUDA_GRAPHS:
            self._run, self.description, self.device = _torch_cuda_graphs(reference)
        if self.method in CPU_METHODS:
            self._run, self.description = _cpu(reference, self.threads)
            self.device = f"{self.info['cpu']} ({self.info['cores']} cores)"

    def __enter__(self) -> "LocalCloud":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._run = None

    def measure(self, sample: dict[str, np.ndarray], check: list[dict[str, np.ndarray]], *, warmup: int, runs: int,
                min_seconds: float) -> dict:
        from ...runtime.stats import time_calls

        samples: list[float] = []

        def timed() -> None:
            started = time.perf_counter()
            self._run(sample)
            samples.append(time.perf_counter() - started)

        time_calls(timed, self.threads, warmup, runs, min_seconds)
        outputs = [self._run(feeds) for feeds in check]
        return {"kind": self.kind, "method": self.description, "method_id": self.method, "url": None,
                "model_name": f"{self.reference.path.name} ({self.reference.name})",
                "device": self.device,
                "compute": latency_dict(samples[warmup:], warmup, self.threads if self.method in CPU_METHODS else None),
                "end_to_end": None, "network_rtt": None, "overhead_ms": 0.0,
                "accuracy": accuracy_dict(self.reference, outputs, self.notes),
                "conditions": self.info.get("conditions"),
                "notes": self.notes + ["compute only: no network and no serving overhead; cloud latency at an RTT "
                                       "is this compute time plus the RTT"]}


def _cpu(reference: Reference, threads: int) -> tuple[Callable, str]:
    from ...runtime import open_runner

    runner = open_runner(reference.path, threads=threads, **reference.runner_options)
    if reference.format == "tflite":
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("ai-edge-litert")
        except PackageNotFoundError:
            release = "?"
        return runner.run, f"LiteRT {release} CPU (XNNPACK), {threads} threads (all cores)"
    import onnxruntime as ort

    return runner.run, (f"onnxruntime {ort.__version__} CPU, {threads} threads (all cores), graph optimizations: "
                        "all, sequential execution")


# -- GPU paths: untested without a GPU, kept small on purpose ------------------------------------------------

def _ort_cuda(reference: Reference) -> tuple[Callable | None, str, str]:
    """ONNX Runtime on the CUDA provider (FP32, every graph optimization); (None, why, "") if it would not load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(reference.path), options, providers=[CUDA_PROVIDER, "CPUExecutionProvider"])
    if session.get_providers()[0] != CUDA_PROVIDER:
        return None, ("onnxruntime lists the CUDAExecutionProvider but did not use it for this model (CUDA or cuDNN "
                      "libraries missing?): the cloud baseline runs on the CPU, which flatters the edge"), ""
    names = [i.name for i in session.get_inputs()]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in session.run(None, {n: feeds[n] for n in names})]

    return run, f"onnxruntime {ort.__version__} CUDAExecutionProvider, FP32", _gpu_name()


def _torch_cuda_graphs(reference: Reference) -> tuple[Callable, str, str]:
    """The PyTorch source in FP16 on the GPU, captured as one CUDA graph over static input buffers."""
    import torch

    from ...exporter.sources import flatten_outputs, load_source

    try:
        module = load_source(reference.source["reference"]).module
    except Exception as exc:  # the user's factory: anything can go wrong in it
        raise CloudError(f"cannot load the PyTorch source {reference.source.get('reference')} for the GPU baseline: "
                         f"{type(exc).__name__}: {exc}", hint="pass --cloud with a KServe v2 server instead") from exc
    names = [i["name"] for i in reference.inputs]
    device = torch.device("cuda")
    module = module.to(device).half().eval()
    static = []
    for spec in reference.inputs:
        dtype = torch.float16 if np.dtype(spec["dtype"]).kind == "f" else getattr(torch, np.dtype(spec["dtype"]).name)
        shape = [d if isinstance(d, int) else 1 for d in spec["shape"]]
        static.append(torch.zeros(shape, dtype=dtype, device=device))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):  # warm-up (cuDNN autotuning, lazy init) off the default stream
        for _ in range(3):
            module(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        outputs = flatten_outputs(module(*static))

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for buffer, name in zip(static, names):
            buffer.copy_(torch.from_numpy(np.ascontiguousarray(feeds[name])))
        graph.replay()
        return [o.float().cpu().numpy() for o in outputs]  # .cpu() waits for the replay

    return run, f"torch {torch.__version__} CUDA FP16 + CUDA graphs", _gpu_name()


def _gpu_name() -> str:
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return "NVIDIA GPU"
