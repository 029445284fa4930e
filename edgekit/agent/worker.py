"""The child process that touches models: ``python -m edgekit.agent.worker JOB.json RESULT.json``.

It loads the model, benchmarks it or runs inference, and writes a JSON result. Whatever the model does to
this process (segfault, abort, hang, memory blow-up) stays here: the parent only reads the exit status.
ONNX models and OpenVINO IR bundles are loaded from bytes, so they cannot pull other files from the device.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from ..files import to_json

TEST_HOOKS_ENV = "EDGEKIT_AGENT_TEST_HOOKS"
TEST_FAULT_ENV = "EDGEKIT_AGENT_TEST_FAULT"  # with test hooks: the fault of every model run (not upload checks)


def load_runner(path: Path, threads: int, options: dict):
    """The runner for a stored model (``<digest>.<format>``), by its format's runtime; ONNX and OpenVINO load from
    bytes so they cannot reach other files."""
    from ..runtime import registry

    return registry.runtime(path.suffix[1:]).open_stored(path, threads, options)


def _fault_for_tests(job: dict) -> None:
    """Only when the agent was started with test hooks: crash or hang on request, to test isolation."""
    fault = (job.get("runner_options") or {}).get("test_fault")
    if job.get("kind") != "check":
        fault = fault or os.environ.get(TEST_FAULT_ENV)
    if not fault or os.environ.get(TEST_HOOKS_ENV) != "1":
        return
    if fault == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "abort":
        os.abort()
    elif fault == "hang":
        while True:
            time.sleep(1)
    elif fault == "memory":
        hog = [np.ones(1 << 27) for _ in range(1 << 10)]  # 1 GiB chunks until the limit stops it
        del hog


def texts_as_unicode(array: np.ndarray) -> np.ndarray:
    """A string output (numpy objects, as ONNX Runtime returns them) as fixed-width unicode: ``.npz`` without
    pickle can carry it."""
    array = np.asarray(array)
    if array.dtype.kind == "O":
        return np.asarray([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                           for v in array.ravel()], dtype=str).reshape(array.shape)
    return array


def _random_feeds(runner, shapes: dict | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    own = runner.input_specs()
    feeds = {}
    for name in runner.input_names:
        spec = (shapes or {}).get(name) or own[name]
        dtype = np.dtype(spec.get("dtype", "float32"))
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        feeds[name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                       else rng.integers(0, 10, shape).astype(dtype))
    return feeds


def _load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def run(job: dict) -> dict:
    _fault_for_tests(job)
    runner = load_runner(Path(job["model"]), job.get("threads", 1), job.get("runner_options") or {})
    if job["kind"] == "check":
        return {"inputs": runner.input_names, "outputs": runner.output_names}
    if job["kind"] == "benchmark":
        if job.get("inputs_npz"):
            arrays = _load_npz(job["inputs_npz"])
            feeds = {name: arrays[name][:1] for name in runner.input_names}
        else:
            feeds = _random_feeds(runner, job.get("inputs"))
        stats = runner.benchmark(feeds, warmup=job["warmup"], runs=job["runs"], min_seconds=job["min_seconds"])
        execution = runner.execution_info() if hasattr(runner, "execution_info") else None
        return {"latency": stats.to_dict(), "execution": execution}
    arrays = _load_npz(job["inputs_npz"])
    count = len(arrays[runner.input_names[0]])
    results = [runner.run({name: arrays[name][i:i + 1] for name in runner.input_names}) for i in range(count)]
    outputs = {f"output_{k}": texts_as_unicode(np.concatenate([r[k] for r in results]))
               for k in range(len(runner.output_names))}
    np.savez(job["outputs_npz"], **outputs)
    return {"output_names": runner.output_names}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    try:
        result = {"status": "ok", **run(job)}
    except Exception as exc:  # any failure of the model or its inputs is reported, never raised to the agent
        result = {"status": "error", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    Path(argv[2]).write_text(to_json(result, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
