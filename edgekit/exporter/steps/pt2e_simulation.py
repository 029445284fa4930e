"""PT2E's fake-quantized model judged before the slow part of a LiteRT or ExecuTorch static INT8 build.

LiteRT's conversion (about 30 of PP-OCRv4 rec's 44 s) and ExecuTorch's lowering (45-52 s for a YOLOv8n-style
detector) come after ``convert_pt2e``; the converted PT2E model already runs in PyTorch with its quantize and
dequantize ops. On 8 calibration samples its worst cosine was never below the LiteRT file's on the validation
samples across the corpus (cls 1.0000 against 0.9974, RNet 0.9911 against 0.9861, rec 0.801 against 0.573, det
0.118 against 0.094), but one earlier measurement had it 6x more pessimistic than the conversion (cls, error 0.018
against 0.003). So only a simulation erring over 15 times what the budget allows is rejected unbuilt: 2.5x
headroom over that. NudeNet's class scores simulated at cosine 0.0000 (its conversion: 28 s).
"""

from __future__ import annotations

import math

import numpy as np

from ...accuracy import compare_outputs
from ...errors import AccuracyError
from ..sources import flatten_outputs
from .base import StepContext

SIMULATION_ERROR_FACTOR = 15
SIMULATION_SAMPLES = 8


def check_simulation(module, simulated, samples: list[list[np.ndarray]], context: StepContext,
                     before: str) -> dict | None:
    """``AccuracyError`` ("accuracy before ``before``") when PT2E's fake-quantized ``simulated`` errs over
    ``SIMULATION_ERROR_FACTOR`` times what the profile's ``cosine_min`` allows on the first ``SIMULATION_SAMPLES``
    of ``samples``: the worst cosine the gate figures, per output and per channel group of a stacked output (a YOLO
    head's class scores, zeroed by the scale its pixel boxes set), against the float ``module``. Outputs whose float
    values are not finite are left to the gate. Returns the worst figure, where it is and on how many samples (for
    the manifest); None without a ``cosine_min``."""
    cosine_min = context.profile.accuracy.cosine_min
    if cosine_min is None:
        return None
    import torch

    def arrays(outputs) -> list[np.ndarray]:
        return [tensor.detach().numpy() for tensor in flatten_outputs(outputs)]

    samples = samples[:SIMULATION_SAMPLES]
    expected, got = [], []
    with torch.no_grad():
        for sample in samples:
            feeds = [torch.from_numpy(np.ascontiguousarray(a)) for a in sample]
            expected.append(arrays(module(*feeds)))
            got.append(arrays(simulated(*feeds)))
    report = compare_outputs(expected, got, context.output_names or None, None, context.output_kinds)
    figures = [(f"output '{o.name}'", o.cosine_min) for o in report.outputs if not o.reference_nonfinite]
    figures += [(f"output '{o.name}' {g.label}", g.cosine_min) for o in report.outputs if not o.reference_nonfinite
                for g in o.groups]
    where, worst = min(((name, -1.0 if math.isnan(value) else value) for name, value in figures),
                       key=lambda item: item[1], default=("", 1.0))
    if 1.0 - worst > SIMULATION_ERROR_FACTOR * (1.0 - cosine_min):
        raise AccuracyError(f"accuracy before {before}: PT2E's fake-quantized model reached cosine {worst:.4f} on "
                            f"{where} against the float one on {len(samples)} calibration samples, an error "
                            f"(1 - cosine) over {SIMULATION_ERROR_FACTOR}x what cosine_min {cosine_min} allows; "
                            f"no {before}", figures={"simulated_cosine_min": worst, "where": where})
    return {"cosine_min": round(worst, 6), "where": where, "samples": len(samples)}
