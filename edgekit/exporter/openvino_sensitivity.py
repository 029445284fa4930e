"""Which compute layers of an NNCF INT8 IR add the most error, in one pass: the float IR and the INT8 one are run
on a few samples with every compute layer's output and its input (before its FakeQuantize) exposed, and a layer's
added error is its output's error (1 - cosine against float) less its input's. Two compiles and a few runs,
against NNCF's accuracy-aware ranking's one compile per quantizer group."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..accuracy import cosine
from ..data import SampleSet
from ..runtime.openvino import load_openvino
from .steps.openvino_quantize import COMPUTE_OPS, FAKE_QUANTIZE

SAMPLES = 8


def rank_layers(float_onnx: Path, int8_ir: Path, samples: SampleSet) -> list[tuple[str, float]]:
    """(layer name, added error) for every compute layer of the float model found in the INT8 IR, most error-adding
    first. The names are the float model's, as NNCF's ``IgnoredScope`` takes them."""
    ov = load_openvino()
    core = ov.Core()
    feeds = list(samples.head(SAMPLES))
    float_layers = _layer_activations(core, ov.convert_model(str(float_onnx)), feeds)
    int8_layers = _layer_activations(core, core.read_model(str(int8_ir)), feeds)
    added = [(name, _error(float_layers[name][0], int8_layers[name][0])
              - _error(float_layers[name][1], int8_layers[name][1]))
             for name in float_layers if name in int8_layers]
    return sorted(added, key=lambda item: item[1], reverse=True)


def _layer_activations(core, model, feeds: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per compute layer: (its output, its input as the layer before left it), every sample's values in a row."""
    probes = {}
    for op in model.get_ops():
        if op.get_type_name() in COMPUTE_OPS:
            source = op.input_value(0)
            if source.get_node().get_type_name() == FAKE_QUANTIZE:  # what the layer before passed on, unquantized
                source = source.get_node().input_value(0)
            probes[op.get_friendly_name()] = (op.output(0), source)
    index = {_port(port): i for i, port in enumerate(model.outputs)}
    exposed = []
    for port in (p for pair in probes.values() for p in pair):
        if _port(port) not in index:
            index[_port(port)] = len(index)
            exposed.append(port)
    model.add_outputs(exposed)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    runs = [compiled(sample) for sample in feeds]

    def values(port) -> np.ndarray:
        return np.concatenate([np.asarray(run[index[_port(port)]], np.float64).ravel() for run in runs])

    return {name: (values(output), values(source)) for name, (output, source) in probes.items()}


def _port(port) -> tuple[str, int]:
    return port.get_node().get_friendly_name(), port.get_index()


def _error(expected: np.ndarray, got: np.ndarray) -> float:
    """1 - cosine; a non-finite value counts as the worst error (2)."""
    value = cosine(expected, got)
    return 2.0 if math.isnan(value) else 1.0 - value
