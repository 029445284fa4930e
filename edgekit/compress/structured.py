"""Structured pruning with Torch-Pruning: whole channels removed, dependencies followed, the layers really shrink.

Torch-Pruning traces the model once, groups every coupled dimension (a conv's output channels with the next
BatchNorm and the next conv's input channels, residual adds, concatenations…) and removes the lowest-L2 groups.
The layers that produce the model's outputs keep their size, so the model still answers the same classes.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..extras import install_hint


def output_layers(module, example_args: tuple) -> list[str]:
    """Names of the Conv/Linear layers whose output is a model output (or, failing that, the last one to run)."""
    import torch

    from .trainer import logits_of

    prunable = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    produced: list[tuple[str, Any]] = []
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: produced.append((name, out)))
               for name, m in module.named_modules() if isinstance(m, prunable)]
    try:
        with torch.no_grad():
            output = module(*example_args)
    finally:
        for handle in handles:
            handle.remove()
    outputs = {id(t) for t in _tensors(output)} | {id(logits_of(output))}
    direct = sorted({name for name, out in produced if id(out) in outputs})
    return direct or ([produced[-1][0]] if produced else [])


def prune_channels(module, example_args: tuple, amount: float, keep: list[str], round_to: int | None) -> dict:
    """Remove ``amount`` of the channels of every prunable layer except ``keep`` (in place); what was removed."""
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise InputError("structured pruning needs Torch-Pruning", hint=install_hint("compress")) from exc
    names = dict(module.named_modules())
    unknown = [name for name in keep if name not in names]
    if unknown:
        raise InputError(f"--keep names unknown layers: {', '.join(unknown)}",
                         hint=f"layer names look like: {', '.join(list(names)[1:6])}")
    ignored = [names[name] for name in keep]
    before = _count(module)
    pruner = tp.pruner.BasePruner(module, example_args, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=amount, ignored_layers=ignored, round_to=round_to)
    pruner.step()
    after = _count(module)
    return {"method": "torch-pruning group L2 magnitude", "channel_ratio": amount, "kept_layers": keep,
            "round_to": round_to, "params_before": before, "params_after": after,
            "params_removed_fraction": 1 - after / before}


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tensors(output) -> list:
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item)]
    return [output]
