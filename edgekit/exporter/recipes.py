"""Which INT8 recipe a profile's generic ``int8`` becomes, by model kind and format.

A profile that lists ``int8`` leaves the method to edgekit; ``int8_static`` or ``int8_dynamic`` pin it, and a
pinned precision always wins (``int8`` then adds nothing that the profile already asks for). The choice and its
reason are recorded in the manifest (``int8_recipe``) and on the candidate.
"""

from __future__ import annotations

from typing import Any

from ..targets import Precision
from .model_kind import ModelKind

_STATIC_CONV = ("static QDQ with calibrated activations and per-channel weights: dynamic INT8 would leave the "
                "convolutions in float (ConvInteger is many times slower than FP32)")
RECIPES: dict[tuple[str, str], tuple[Precision, str]] = {
    ("onnx", "attention"): (Precision.int8_dynamic, "dynamic INT8 MatMuls with per-channel weights: static QDQ "
                            "fixes one calibrated range per activation, which transformer activations (outlier "
                            "channels) do not fit (all-MiniLM-L6: embedding cosine 0.92 static, 0.99 dynamic)"),
    ("onnx", "mixed"): (Precision.int8_static, _STATIC_CONV + "; the rescue keeps sensitive MatMuls in float"),
    ("onnx", "convolutional"): (Precision.int8_static, _STATIC_CONV),
    ("onnx", "dense"): (Precision.int8_static, "static QDQ with calibrated activations (no attention blocks)"),
    ("tflite", "attention"): (Precision.int8_dynamic, "dynamic-range INT8 (ai-edge-quantizer): PT2E static INT8 "
                              "does not take the int64 token inputs of text models"),
    ("tflite", "mixed"): (Precision.int8_static, "PT2E static INT8 (calibrated, int8 in and out)"),
    ("tflite", "convolutional"): (Precision.int8_static, "PT2E static INT8 (calibrated, int8 in and out)"),
    ("tflite", "dense"): (Precision.int8_static, "PT2E static INT8 (calibrated, int8 in and out)"),
    # OpenVINO has one INT8 route, NNCF post-training static quantization (FakeQuantize ops the CPU plugin runs
    # as int8 kernels); attention-kind models get NNCF's transformer preset (model_type=TRANSFORMER: SmoothQuant,
    # the attention patterns left in float), so ``int8`` is int8_static there whatever the kind.
    ("openvino", "attention"): (Precision.int8_static, "NNCF static INT8 with the transformer preset "
                                "(model_type=TRANSFORMER): OpenVINO has no dynamic INT8 route"),
    ("openvino", "mixed"): (Precision.int8_static, "NNCF static INT8 (calibrated FakeQuantize; convolutions "
                            "dominate, so NNCF's default preset): OpenVINO has no dynamic INT8 route"),
    ("openvino", "convolutional"): (Precision.int8_static, "NNCF static INT8 (calibrated FakeQuantize)"),
    ("openvino", "dense"): (Precision.int8_static, "NNCF static INT8 (calibrated FakeQuantize)"),
}


def int8_recipe(kind: ModelKind | None, fmt: str) -> tuple[Precision, str]:
    """The INT8 precision for ``kind`` in ``fmt``, and why (formats without a recipe, or a model whose kind could
    not be read, use static INT8)."""
    if kind is None:
        return Precision.int8_static, "static INT8 (the model kind is unknown: the graph was not built)"
    return RECIPES.get((fmt, kind.kind), (Precision.int8_static, "static INT8 (no kind-specific recipe)"))


def concrete_precisions(listed: list[Precision], kind: ModelKind | None,
                        fmt: str) -> list[tuple[Precision, str | None]]:
    """The profile's precisions with ``int8`` replaced by its recipe (with the note saying why), unless the profile
    lists that precision itself."""
    out: list[tuple[Precision, str | None]] = []
    for precision in listed:
        note = None
        if precision == Precision.int8:
            precision, reason = int8_recipe(kind, fmt)
            if precision in listed:
                continue
            note = (f"int8 → {precision.value} (model kind {kind.kind}: {kind.reason}): {reason}" if kind is not None
                    else f"int8 → {precision.value}: {reason}")
        out.append((precision, note))
    return out


def recipe_record(listed: list[Precision], kind: ModelKind | None, formats: list[str]) -> dict[str, Any] | None:
    """The manifest's ``int8_recipe``: per format, what ``int8`` became and why, or that the profile pinned it."""
    pinned = [p.value for p in listed if p in (Precision.int8_static, Precision.int8_dynamic)]
    if Precision.int8 not in listed:
        return {"pinned_by_profile": pinned, "reason": "the profile names the INT8 method; the model kind does "
                                                       "not change it"} if pinned else None
    if kind is None:
        return {"unresolved": "the model kind is unknown (the graph was not built)"}
    record: dict[str, Any] = {"model_kind": kind.kind}
    for fmt in formats:
        precision, reason = int8_recipe(kind, fmt)
        record[fmt] = {"precision": precision.value, "reason": f"{kind.kind} model ({kind.reason}): {reason}",
                       "pinned_by_profile": precision.value in pinned}
    return record
