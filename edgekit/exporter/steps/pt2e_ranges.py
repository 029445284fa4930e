"""PT2E calibration for the LiteRT and ExecuTorch INT8 steps (``observed``), with torchao's histogram observer's
range search on Python floats: the same search, the same ranges, faster.

The static INT8 configs edgekit takes from litert-torch and from ExecuTorch's XNNPACKQuantizer observe activations
with torchao's ``HistogramObserver``, whose range search (``_non_linear_param_search``, an L2 minimization over the
histogram) walks the cumulative histogram one 0-d tensor at a time, for up to 100,000 quantile steps: on PP-OCRv4
det it was 10.9 of the 12.2 s ``convert_pt2e`` took (423 observers, about 26 ms each). ``FastHistogramObserver``
runs the same loop over the histogram's float32 values as Python floats, comparing as torch does (in float32), and
stops where the loop could change nothing more, so every range and every scale comes out the same
(``tests/unit/test_pt2e_ranges.py`` compares them with torchao's on several distributions, a constant one too).
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import torch
from torchao.quantization.pt2e.observer import HistogramObserver
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

STEP = 1e-5  # the search's quantile granularity, as torchao's


def observed(module, args, samples: list[list[np.ndarray]], quantizer_class, config):
    """``module`` exported, prepared with a ``quantizer_class`` set to ``config`` (its histogram observers the fast
    ones) and run on ``samples``: (the observed model, the quantizer, how torch.export ran).

    Strict export keeps the ``source_fn_stack`` that PT2E's add/mul annotators match on; non-strict export (torch
    2.13) drops it and every residual add stayed float (QUANTIZE/DEQUANTIZE around 9 of MobileNetV2's 10 adds in
    LiteRT). Non-strict is the fallback when dynamo cannot trace."""
    try:
        exported, how = torch.export.export(module, args, strict=True), "strict"
    except Exception as exc:  # dynamo refuses some Python; non-strict still gives a quantizable (if less integer) graph
        exported, how = torch.export.export(module, args), f"non-strict (strict failed: {type(exc).__name__})"
    quantizer = quantizer_class().set_global(with_fast_histograms(config))
    prepared = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for sample in samples:
            prepared(*(torch.from_numpy(np.ascontiguousarray(a)) for a in sample))
    return prepared, quantizer, how


class FastHistogramObserver(HistogramObserver):
    """``HistogramObserver`` whose range search reads the cumulative histogram as Python floats (the float32 values,
    compared with float32-rounded bounds, as torch compares them) and stops once the range is a single bin, where
    torchao's loop would only count its bound down to the end (the ranges of constant activations)."""

    def _non_linear_param_search(self):
        assert self.histogram.size()[0] == self.bins, "bins mismatch"
        bin_width = (self.max_val - self.min_val) / self.bins
        total = self.histogram.sum().item()
        cumulative = self.histogram.cumsum(dim=0).tolist()  # float32 values, exact as Python floats
        alpha, beta = 0.0, 1.0
        start_bin, end_bin = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta and start_bin < end_bin:
            next_alpha, next_beta = alpha + STEP, beta - STEP
            left, right = start_bin, end_bin
            alpha_mass, beta_mass = next_alpha * total, next_beta * total
            # a float32 value below (above) a bound is below (above) it rounded to float32 too, except within half
            # a float32 step: so round only where the walk would start, then walk as torch does
            if left < end_bin and cumulative[left] < alpha_mass:
                alpha_mass = _float32(alpha_mass)
                while left < end_bin and cumulative[left] < alpha_mass:
                    left += 1
            if right > start_bin and cumulative[right] > beta_mass:
                beta_mass = _float32(beta_mass)
                while right > start_bin and cumulative[right] > beta_mass:
                    right -= 1
            next_start_bin, next_end_bin = start_bin, end_bin
            if (left - start_bin) > (end_bin - right):
                next_start_bin, alpha = left, next_alpha
            else:
                next_end_bin, beta = right, next_beta
            if next_start_bin == start_bin and next_end_bin == end_bin:
                continue
            norm = self._compute_quantization_error(next_start_bin, next_end_bin)
            if norm > norm_min:
                break
            norm_min, start_bin, end_bin = norm, next_start_bin, next_end_bin
        return self.min_val + bin_width * start_bin, self.min_val + bin_width * (end_bin + 1)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as torch rounds a Python number it compares with a float32 tensor."""
    return struct.unpack("f", struct.pack("f", value))[0]


def with_fast_histograms(config):
    """``config`` (a quantizer's frozen dataclass of quantization specs) with each ``HistogramObserver`` swapped for
    ``FastHistogramObserver``, with the same arguments; a spec used twice (input and output activations) stays one
    spec."""
    swapped: dict[int, object] = {}

    def swap(spec):
        partial = getattr(getattr(spec, "observer_or_fake_quant_ctr", None), "p", None)
        if partial is None or partial.func is not HistogramObserver:
            return spec
        if id(spec) not in swapped:
            swapped[id(spec)] = dataclasses.replace(spec, observer_or_fake_quant_ctr=FastHistogramObserver.with_args(
                *partial.args, **partial.keywords))
        return swapped[id(spec)]

    return dataclasses.replace(config, **{field.name: swap(getattr(config, field.name))
                                          for field in dataclasses.fields(config)})
