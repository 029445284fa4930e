"""The compressed-model folder: ``model.safetensors`` + ``compressed.json``, and rebuilding the module from them.

No pickle: the architecture is the original factory (``file.py:factory`` or ``pkg.mod:factory``, recorded with the
file's sha256) plus the edits compression made to it, replayed on a fresh instance:

- ``fold_batchnorm``: ``[conv, batchnorm]`` module pairs whose BatchNorm was folded into the convolution (QAT);
- ``attributes``: per module, the shape attributes that changed (``out_channels``, ``in_features``, ``groups``…);
- the tensors' own shapes come from the safetensors file, so a pruned layer gets its new, smaller weights.

``edgekit export FOLDER`` reads such a folder directly (``exporter/sources.py``). The record also says where the
model came from (method, source, teacher, amount, epochs, data sha256, world size) and what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError

RECORD_FILE = "compressed.json"
WEIGHTS_FILE = "model.safetensors"
SCHEMA = "edgekit.compressed/1"
SHAPE_ATTRIBUTES = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features",
                    "normalized_shape", "num_channels", "num_groups", "num_embeddings", "embedding_dim",
                    "embed_dim", "num_heads", "head_dim", "hidden_size", "input_size")


def find_record(reference: str | Path) -> Path | None:
    """The record file if ``reference`` is a compressed-model folder (or its ``compressed.json``), else None."""
    path = Path(reference)
    if path.name == RECORD_FILE and path.is_file():
        return path
    if path.is_dir() and (path / RECORD_FILE).is_file():
        return path / RECORD_FILE
    return None


def read_record(reference: str | Path) -> dict[str, Any]:
    """The record of a compressed-model folder, checked enough to rebuild from it."""
    path = find_record(reference)
    if path is None:
        raise InputError(f"{reference} is not a compressed-model folder (no {RECORD_FILE})",
                         hint="pass the --out folder of `edgekit compress`")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="re-run `edgekit compress`; the record is damaged") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise InputError(f"{path} is not an edgekit compressed-model record (schema {SCHEMA})",
                         hint="pass the --out folder of `edgekit compress`")
    architecture = record.get("architecture")
    if not isinstance(architecture, dict) or not isinstance(architecture.get("factory"), str):
        raise InputError(f"{path}: the record names no architecture factory", hint="re-run `edgekit compress`")
    weights = path.parent / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{path.parent} has no {WEIGHTS_FILE}", hint="the folder is incomplete; re-run the command")
    record["_folder"] = str(path.parent.resolve())
    return record


def weights_path(record: dict[str, Any]) -> Path:
    return Path(record["_folder"]) / WEIGHTS_FILE


def factory_reference(record: dict[str, Any]) -> str:
    """The factory to rebuild from: the recorded one, or its copy relative to the folder if the path moved."""
    factory = record["architecture"]["factory"]
    target, _, name = factory.rpartition(":")
    relative = record["architecture"].get("factory_relative")
    if target.endswith(".py") and not Path(target).is_file() and relative:
        moved = Path(record["_folder"]) / relative
        if moved.is_file():
            return f"{moved}:{name}"
    return factory


def architecture_edits(fresh, changed, folded: list[list[str]]) -> dict[str, Any]:
    """What turns a fresh factory module into ``changed``: the folded pairs and the changed shape attributes."""
    fresh_modules = dict(fresh.named_modules())
    attributes: dict[str, dict[str, Any]] = {}
    for name, module in changed.named_modules():
        before = fresh_modules.get(name)
        if before is None or type(before) is not type(module):
            continue
        diff = {attr: _jsonable(getattr(module, attr)) for attr in SHAPE_ATTRIBUTES
                if hasattr(module, attr) and getattr(module, attr) != getattr(before, attr)}
        if diff:
            attributes[name] = diff
    return {"fold_batchnorm": folded, "attributes": attributes}


def rebuild(module, record: dict[str, Any]):
    """Apply the record's edits to ``module`` (a fresh factory instance) and load the recorded weights into it."""
    from safetensors.torch import load_file

    edits = record["architecture"].get("edits", {})
    fold_batchnorm_modules(module, edits.get("fold_batchnorm", []), weights=None)
    for name, attributes in edits.get("attributes", {}).items():
        owner = _submodule(module, name, record)
        for attr, value in attributes.items():
            setattr(owner, attr, tuple(value) if isinstance(value, list) else value)
    try:
        state = load_file(weights_path(record))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"cannot read {weights_path(record)}: {exc}", hint="re-run `edgekit compress`") from exc
    load_state_with_shapes(module, state, where=record["_folder"])
    return module.eval()


def load_state_with_shapes(module, state: dict, where: str) -> None:
    """``load_state_dict`` that first gives every parameter/buffer the shape of its saved tensor (pruned layers)."""
    import torch

    own = module.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise InputError(f"the weights in {where} do not fit the architecture"
                         + (f"; missing: {', '.join(missing[:5])}" if missing else "")
                         + (f"; unexpected: {', '.join(unexpected[:5])}" if unexpected else ""),
                         hint="the model's factory changed since it was compressed; restore it or re-run compress")
    for key, tensor in state.items():
        if own[key].shape == tensor.shape:
            continue
        owner_name, _, attr = key.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if attr in owner._parameters:
            owner._parameters[attr] = torch.nn.Parameter(torch.empty_like(tensor), requires_grad=True)
        else:
            owner._buffers[attr] = torch.empty_like(tensor)
    module.load_state_dict(state, strict=True)


def fold_batchnorm_modules(module, pairs: list[list[str]], weights: bool | None = True) -> None:
    """Replace each BatchNorm of ``pairs`` by Identity, folded into its conv (``weights``) or just reshaped (None:
    the conv only gains the bias that the saved weights will fill)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv_name, bn_name in pairs:
        conv, bn = module.get_submodule(conv_name), module.get_submodule(bn_name)
        if weights:
            fused = fuse_conv_bn_eval(conv.eval(), bn.eval())
            conv.weight, conv.bias = fused.weight, fused.bias
        elif conv.bias is None:
            conv.bias = torch.nn.Parameter(torch.zeros(conv.out_channels))
        parent_name, _, child = bn_name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, torch.nn.Identity())


def _submodule(module, name: str, record: dict[str, Any]):
    try:
        return module.get_submodule(name)
    except AttributeError as exc:
        raise InputError(f"the record in {record['_folder']} edits module '{name}', which the factory does not have",
                         hint="the model's factory changed since it was compressed; restore it") from exc


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
