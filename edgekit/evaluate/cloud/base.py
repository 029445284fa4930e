"""What every cloud baseline shares: the reference model it serves, its errors, and the report's figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import EdgekitError, InputError
from ...files import sha256_file
from ...manifest import Manifest
from ...runtime.stats import LatencyStats

MAX_SAMPLES_KEPT = 2000  # raw latency samples kept for plots; more are thinned evenly
CHECK_SAMPLES = 16  # validation samples the cloud must answer like this host's FP32 run
SAME_MODEL_COSINE = 0.99  # below this, the cloud's answers are not the FP32 model's (FP16 on a GPU stays above)


class CloudError(EdgekitError):
    """The cloud baseline failed: unreachable, unknown model, a model that does not fit the artifact, …"""

    exit_code = 6

    def __init__(self, message: str, hint: str | None = None, *, url: str | None = None,
                 status_code: int | None = None):
        super().__init__(message, hint)
        self.url = url
        self.status_code = status_code


class CloudModelMismatch(CloudError):
    """The server's model takes other inputs than the artifact (names, datatypes or shapes)."""


@dataclass
class Reference:
    """The original model as an artifact file: what the cloud runs, and what its answers are checked against."""

    name: str  # manifest name, e.g. onnx/fp32
    path: Path
    sha256: str
    format: str
    runner_options: dict[str, Any]
    source: dict[str, Any]  # the manifest's source section (a PyTorch factory can serve the GPU path)
    inputs: list[dict[str, Any]]  # the manifest's inputs: name, shape, dtype
    outputs: list[list[np.ndarray]] = field(default_factory=list, repr=False)  # this host's, per check sample
    output_names: list[str] = field(default_factory=list)


def reference_model(manifest: Manifest, folder: Path) -> Reference:
    """The FP32 original of an artifact folder: ``onnx/fp32`` (kept even when it lost to a quantized one), else
    the source ``.onnx`` file, else ``tflite/fp32``."""
    entries = {a.name: a for a in manifest.built}
    source = manifest.source.model_dump()
    candidates = []
    if "onnx/fp32" in entries:
        candidates.append(("onnx/fp32", folder / entries["onnx/fp32"].file, "onnx", entries["onnx/fp32"]))
    if manifest.source.kind == "onnx" and manifest.source.path:
        candidates.append(("source", Path(manifest.source.path), "onnx", None))
    if "tflite/fp32" in entries:
        candidates.append(("tflite/fp32", folder / entries["tflite/fp32"].file, "tflite", entries["tflite/fp32"]))
    for name, path, fmt, entry in candidates:
        if path.is_file():
            digest = sha256_file(path)
            if entry is not None and entry.sha256 and entry.sha256 != digest:
                raise InputError(f"{path} changed since the export (sha256 {digest[:12]}…, manifest "
                                 f"{entry.sha256[:12]}…)",
                                 hint="re-run `edgekit export` so manifest and file agree")
            return Reference(name, path, digest, fmt, dict(entry.runner_options) if entry else {}, source,
                             [i.model_dump() for i in manifest.inputs])
    wanted = ", ".join(str(c[1]) for c in candidates) or "an onnx/fp32 or tflite/fp32 artifact"
    raise InputError(f"{folder} holds no FP32 model for the cloud baseline (looked for {wanted})",
                     hint="re-export with fp32 among the target's precisions, so the original model is kept")


def latency_dict(samples_s: list[float], warmup: int, threads: int | None = None) -> dict:
    """The report's latency figures (``LatencyStats``) plus the raw samples in ms, thinned for plots."""
    stats = LatencyStats.from_seconds(samples_s, warmup, threads or 0).to_dict()
    stats.pop("peak_rss_mb", None)
    if threads is None:
        stats.pop("threads", None)
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if len(ms) > MAX_SAMPLES_KEPT:
        ms = ms[np.linspace(0, len(ms) - 1, MAX_SAMPLES_KEPT).round().astype(int)]
    stats["samples_ms"] = [round(float(v), 4) for v in ms]
    return stats


def accuracy_dict(reference: Reference, outputs: list[list[np.ndarray]], notes: list[str]) -> dict:
    """How far the cloud's outputs are from this host's FP32 outputs of the same samples; a note in ``notes`` when
    they are too far apart to be the same model."""
    from ...accuracy import compare_outputs

    report = compare_outputs(reference.outputs[:len(outputs)], outputs, reference.output_names)
    worst = max(o.max_abs_error for o in report.outputs)
    if report.cosine_min < SAME_MODEL_COSINE:
        notes.append(f"the cloud's outputs differ from this host's FP32 outputs (cosine min {report.cosine_min:.5f} "
                     f"over {report.samples} samples): is it the same model?")
    return {"samples": report.samples, "cosine_min": report.cosine_min, "max_abs_error": worst,
            "top1_agreement": report.top1_agreement, "compared_with": "this host's ONNX Runtime CPU run of "
                                                                      f"{reference.path.name}"}
