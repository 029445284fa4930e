"""Unstructured magnitude pruning with ``torch.nn.utils.prune``, made permanent after fine-tuning.

The smallest ``amount`` of all Conv/Linear weights (globally, by |w|) are zeroed. The masks stay on during
fine-tuning, so pruned weights stay zero; then ``prune.remove`` bakes them in, leaving plain ``weight`` tensors
with zeros. The layers keep their shapes: a dense runtime still multiplies by every zero (see the measurements).
"""

from __future__ import annotations

MASK, ORIGINAL = "_mask", "_orig"


def _layers(module) -> list:
    import torch

    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    return [(name, m) for name, m in module.named_modules() if isinstance(m, kinds)]


def prune_weights(module, amount: float) -> dict:
    """Mask the ``amount`` smallest-magnitude weights of every Conv/Linear layer together (in place)."""
    from torch.nn.utils import prune

    layers = _layers(module)
    prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    return {"method": "torch.nn.utils.prune global L1 (magnitude)", "amount": amount,
            "layers": [name for name, _ in layers]}


def make_permanent(module) -> None:
    """Bake the masks into the weights: plain ``weight`` tensors with zeros, no pruning hooks left."""
    from torch.nn.utils import prune

    for _, layer in _layers(module):
        if prune.is_pruned(layer) and hasattr(layer, "weight" + MASK):
            prune.remove(layer, "weight")


def permanent_state(state: dict) -> dict:
    """A masked state dict (``weight_orig`` + ``weight_mask``) as the plain one ``make_permanent`` would give."""
    plain = {}
    for key, tensor in state.items():
        if key.endswith(MASK):
            continue
        if key.endswith(ORIGINAL) and key[:-len(ORIGINAL)] + MASK in state:
            base = key[:-len(ORIGINAL)]
            plain[base] = tensor * state[base + MASK]
        else:
            plain[key] = tensor
    return plain


def sparsity(module) -> dict:
    """Fraction of exactly-zero weights over all Conv/Linear layers, and per layer."""
    per_layer = {name: float((m.weight == 0).float().mean()) for name, m in _layers(module)}
    total = sum(m.weight.numel() for _, m in _layers(module))
    zeros = sum(int((m.weight == 0).sum()) for _, m in _layers(module))
    return {"zero_fraction": zeros / total if total else 0.0, "per_layer": per_layer}
