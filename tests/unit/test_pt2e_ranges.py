"""The fast histogram observer gives torchao's ranges, scales and zero points exactly, on several distributions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")
from torchao.quantization.pt2e.observer import HistogramObserver  # noqa: E402

from edgekit.exporter.steps.pt2e_ranges import FastHistogramObserver, with_fast_histograms  # noqa: E402


def batches(kind: str, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    shape = (4, 16, 24, 24)
    if kind == "relu":
        data = [np.maximum(rng.standard_normal(shape), 0) for _ in range(3)]
    elif kind == "outliers":  # a few large activations, as in a transformer's residual stream
        data = [rng.standard_normal(shape) * (1 + 40 * (rng.random(shape) > 0.9995)) for _ in range(3)]
    elif kind == "heavy tail":
        data = [rng.standard_t(2, shape) for _ in range(3)]
    elif kind == "constant":  # one bin: where torchao's loop counts its bound down to the end
        data = [np.full(shape, 0.75) for _ in range(3)]
    else:  # "shifted": ranges that grow between batches, so the histogram is rebinned
        data = [rng.standard_normal(shape) * (i + 1) + i for i in range(3)]
    return [torch.from_numpy(d.astype(np.float32)) for d in data]


@pytest.mark.parametrize("kind", ["relu", "outliers", "heavy tail", "constant", "shifted"])
def test_same_ranges_as_torchao(kind):
    observers = [cls(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine, eps=2**-12)
                 for cls in (HistogramObserver, FastHistogramObserver)]
    for batch in batches(kind, seed=len(kind)):
        for observer in observers:
            observer(batch)
    reference, fast = (observer.calculate_qparams() for observer in observers)
    assert torch.equal(reference[0], fast[0]) and torch.equal(reference[1], fast[1])
    assert [t.item() for t in observers[0]._non_linear_param_search()] == \
        [t.item() for t in observers[1]._non_linear_param_search()]


@pytest.mark.parametrize("quantizer", ["litert_torch.quantize.pt2e_quantizer",
                                       "executorch.backends.xnnpack.quantizer.xnnpack_quantizer"])
def test_quantizer_configs_get_the_fast_observer_with_the_same_arguments(quantizer):
    config = pytest.importorskip(quantizer).get_symmetric_quantization_config(is_per_channel=True)
    fast = with_fast_histograms(config)
    assert fast.input_activation is fast.output_activation  # one spec, as in the original
    ctr = fast.input_activation.observer_or_fake_quant_ctr
    assert ctr.p.func is FastHistogramObserver and ctr.p.keywords == {"eps": 2**-12}
    assert fast.weight is config.weight and fast.bias is config.bias  # weights keep their min/max observer
    assert fast.input_activation.dtype == config.input_activation.dtype
