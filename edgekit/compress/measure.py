"""Before/after figures of a compression run: parameters, file sizes, and latency in the real runtimes.

Both models go through the normal export pipeline (FP32 only, the target's formats: ONNX Runtime and LiteRT);
their artifacts are then timed together in rotating rounds (``measure_latencies``), so a busy moment on a shared
machine spoils one round of each rather than one model's only figure. Runs in a temp folder; nothing is kept.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from ..progress import SilentProgress
from ..targets import Precision, load_target


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def weight_sizes(module) -> dict[str, int]:
    """Bytes of the module's safetensors file, and gzip-compressed (what sparsity saves on a download)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    blob = save(state)
    return {"safetensors_bytes": len(blob), "safetensors_gzip_bytes": len(gzip.compress(blob, 6))}


def model_figures(module, accuracy: float) -> dict[str, Any]:
    return {"params": parameter_count(module), **weight_sizes(module), "val_accuracy": accuracy}


def compare_runtimes(before: str, after: str, val: Path | None, target: str, progress) -> dict[str, Any]:
    """Export ``before`` and ``after`` (model references) to FP32 artifacts and time them against each other."""
    from ..exporter.candidates import measure_latencies
    from ..exporter.pipeline import export

    profile = load_target(target)
    profile = profile.model_copy(update={"precisions": [Precision.fp32], "name": f"{profile.name}-fp32"})
    data = str(val) if val is not None and Path(val).is_file() else None
    work = Path(tempfile.mkdtemp(prefix="edgekit-compress-measure-"))
    try:
        exported = {}
        for label, reference in (("before", before), ("after", after)):
            with progress.step(f"export the {label} model (FP32: {', '.join(profile.formats)})"):
                exported[label] = export(reference, profile, out=work / label, val=data, benchmark=False,
                                         progress=SilentProgress())
        candidates = {(label, c.format): c for label, result in exported.items() for c in result.candidates
                      if c.artifact is not None and c.usable}
        sample = _sample(exported["before"])
        with progress.step(f"time both in ONNX Runtime / LiteRT ({profile.threads} threads, rotating rounds)"):
            measure_latencies(list(candidates.values()), sample, profile.threads)
        figures: dict[str, Any] = {"threads": profile.threads, "target": profile.name}
        for fmt in sorted({f for _, f in candidates}):
            pair = {label: candidates.get((label, fmt)) for label in ("before", "after")}
            if not all(pair.values()):
                continue
            row = {label: {"file_bytes": c.artifact.path.stat().st_size, "p50_ms": c.latency["p50_ms"],
                           "p90_ms": c.latency["p90_ms"]} for label, c in pair.items()}
            row["speedup"] = row["before"]["p50_ms"] / row["after"]["p50_ms"]
            figures[fmt] = row
        return figures
    except EdgekitError as error:
        return {"error": f"{type(error).__name__}: {error.message}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sample(result) -> dict:
    """One validation (or synthetic) input for the benchmark, as the export pipeline used it."""
    import numpy as np

    from ..specs import example_arrays

    specs = [_spec_of(i) for i in result.manifest["inputs"]]
    return {name: np.ascontiguousarray(arr) for name, arr in example_arrays(specs, 1, 0).items()}


def _spec_of(entry: dict):
    from ..specs import InputSpec

    return InputSpec(entry["name"], tuple(entry["shape"]), entry["dtype"])
