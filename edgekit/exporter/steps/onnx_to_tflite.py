"""A published ONNX file -> TFLite (LiteRT): onnx2torch to PyTorch, then the litert-torch route of tflite_export.

These fixes make published files convert (measured on the corpus' PP-OCR files and a YOLOv8n):

- Opset 18+ files go down to opset 17 (onnx2torch lacks opset 18's Reduce ops), every tensor gets its shape written
  in by onnxsim (onnx2torch reads ranks off ``value_info``), and a Reshape's ``allowzero=1`` is dropped where its
  constant shape has no 0 (torch's exporter sets it everywhere; onnx2torch refuses it).
- ``Constant`` nodes become initializers, and initializers leave the graph inputs: onnx2torch reads convolution
  weights from initializers only (PP-OCR's simplified files keep shared weights in ``Constant`` nodes: KeyError).
- Reshape, dynamic-axes Squeeze and Resize get their output shapes written in as constants, Slice and Split their
  constant bounds and sizes: onnx2torch passes them as tensors read at run time, which ``torch.export`` refuses (a
  data-dependent guard) or litert-torch cannot lower (``item()``). The input shapes are static here (TFLite needs
  them), so the shapes seen on a real sample are the shapes.
- Weights that onnx2torch keeps as views (a Gemm's transposed weight) become contiguous copies: litert-torch wrote
  those views wrongly.

The converted module is checked against ONNX Runtime on that sample before litert-torch sees it.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

from ...errors import ExportError
from ...quiet import quiet
from ...runtime.onnxrt import OnnxRunner
from ...targets import Precision
from ..sources import TorchSource
from .base import StepContext, StepResult
from .prepare import sample_feeds
from .tflite_export import export_tflite
from .verify import check_outputs, first_lines

_ONNX2TORCH_OPSET = 17
_TORCHVISION_CONVERTERS = ("onnx2torch.node_converters.nms", "onnx2torch.node_converters.roialign")
_STATIC_SHAPE_MODULES = ("OnnxReshape", "OnnxSqueezeDynamicAxes", "OnnxResize", "OnnxSlice", "OnnxSplit13")


def onnx_to_tflite(onnx_path: Path, out_path: Path, precision: Precision | str, context: StepContext,
                   channels_last: bool = False) -> StepResult:
    """Convert the ONNX file at ``onnx_path`` (static input shapes but perhaps the batch, as ``prepare`` leaves
    them) to ``out_path`` in ``precision``, the way ``export_tflite`` converts a PyTorch source. The file's own
    symbolic batch is converted as 1: the route refuses ``--dynamic-batch`` before this step."""
    import onnx

    start = time.perf_counter()
    context = replace(context, inputs=[spec.with_static_batch() for spec in context.inputs])
    onnx2torch = import_onnx2torch()
    import torch

    model = _with_shapes(_to_onnx2torch_opset(onnx.load(str(onnx_path))))
    moved = _constants_to_initializers(model)
    cleared = _clear_needless_allowzero(model)
    feeds = sample_feeds(context)
    try:
        module = onnx2torch.convert(model).eval()
        _contiguous_weights(module)
        fixed = _write_static_shapes(module, [torch.from_numpy(feeds[s.name]) for s in context.inputs])
        source = TorchSource(str(onnx_path), Path(onnx_path), module, list(context.inputs), feeds,
                             [f"output_{i}" for i in range(len(model.graph.output))])
        converted = source.run(feeds)
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError and others per op
        raise ExportError(f"onnx2torch cannot convert {Path(onnx_path).name}: {type(exc).__name__}: "
                          f"{first_lines(str(exc))[:300]}",
                          hint="an ONNX op onnx2torch lacks: use the ONNX or OpenVINO candidates") from exc
    max_diff = check_outputs(OnnxRunner(onnx_path).run(feeds), converted, "onnx2torch's PyTorch",
                             hint="onnx2torch mistranslated an op; use the ONNX or OpenVINO candidates")
    result = export_tflite(source, out_path, precision, context, channels_last=channels_last)
    result.step = "onnx_to_tflite"
    result.params["converter"] = f"onnx2torch {version('onnx2torch')} + {result.params['converter']}"
    result.details.update(onnx2torch_max_abs_diff=max_diff, constants_to_initializers=moved,
                          reshape_allowzero_cleared=cleared,
                          static_shapes_written=fixed)
    result.seconds = time.perf_counter() - start
    return result


def import_onnx2torch():
    """onnx2torch, with its two torchvision-backed converters (NonMaxSuppression, RoiAlign) left out when no
    torchvision imports beside this torch: PyPI's torchvision for x86_64 is a CUDA build that fails to import beside
    the CPU torch, and those two ops have no LiteRT lowering anyway. A model using them then gets onnx2torch's own
    "converter is not implemented" error, naming the op."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # the CUDA wheel beside a CPU torch raises RuntimeError
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        for name in _TORCHVISION_CONVERTERS:
            sys.modules.setdefault(name, types.ModuleType(name))
    try:
        import onnx2torch
    except ImportError as exc:
        raise ExportError(f"ONNX -> TFLite needs onnx2torch ({exc})",
                          hint="`make setup` installs it; by hand: pip install --no-deps onnx2torch==1.5.15 (its "
                               "torchvision requirement would pull a CUDA build)") from exc
    return onnx2torch


def _to_onnx2torch_opset(model):
    """The model at opset 17 when it is newer: onnx2torch 1.5 has no converters for opset 18's Reduce ops (axes as an
    input), which torch's own exporter writes."""
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset <= _ONNX2TORCH_OPSET:
        return model
    try:
        return version_converter.convert_version(model, _ONNX2TORCH_OPSET)
    except Exception as exc:  # the converter raises RuntimeError/ValueError per op adapter
        raise ExportError(f"cannot bring opset {opset} down to {_ONNX2TORCH_OPSET} for onnx2torch: "
                          f"{first_lines(str(exc))[:300]}",
                          hint="export the model at opset 17, or use the ONNX or OpenVINO candidates") from exc


def _with_shapes(model):
    """The model with every tensor's shape written in, by onnxsim (constant folding with the fixed input shapes;
    ONNX's own shape inference loses ranks past PP-OCRv4 rec's computed reshapes): onnx2torch reads ranks off
    ``value_info`` (a BatchNormalization's spatial rank). Unchanged where onnxsim fails; the converted module is
    checked against ONNX Runtime either way."""
    import onnxsim

    try:
        with quiet(native=True):
            simplified, _ = onnxsim.simplify(model, check_n=0)
    except Exception:  # onnxsim raises RuntimeError/ValueError/onnx checker errors per graph
        return model
    return simplified


def _clear_needless_allowzero(model) -> int:
    """``allowzero=1`` dropped from Reshapes whose constant shape has no 0 (then it means nothing): torch's exporter
    sets it on every Reshape and onnx2torch refuses it. Returns how many were cleared."""
    import onnx.numpy_helper

    shapes = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    cleared = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in shapes or (shapes[node.input[1]] == 0).any():
            continue
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1:
                attribute.i = 0
                cleared += 1
    return cleared


def _constants_to_initializers(model) -> int:
    """Top-level ``Constant`` nodes holding a tensor become initializers; initializers leave the graph inputs
    (opset < 9 files list them there). Returns how many nodes moved."""
    kept, moved = [], 0
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = type(node.attribute[0].t)()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    names = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return moved


def _contiguous_weights(module) -> None:
    """Every parameter and buffer as a contiguous copy. onnx2torch keeps a Gemm's transposed weight as a view;
    litert-torch wrote such a view's memory wrongly (PP-OCR rec: outputs off by up to 1.0, changing from one
    conversion to the next)."""
    import torch

    for owner in module.modules():
        for name, value in owner.named_parameters(recurse=False):
            if not value.is_contiguous():
                setattr(owner, name, torch.nn.Parameter(value.detach().contiguous(), requires_grad=False))
        for name, value in owner.named_buffers(recurse=False):
            if not value.is_contiguous():
                setattr(owner, name, value.contiguous())


def _write_static_shapes(module, args: list) -> dict[str, int]:
    """Replace onnx2torch's Reshape/Squeeze/Resize calls by ``torch.reshape``/``interpolate`` with the output shape
    each gave on ``args``, its Slice and Split calls with constant bounds or sizes by the same slicing and
    ``torch.split`` with Python values; returns the count per module type."""
    import torch
    from onnx2torch.node_converters.resize import _onnx_mode_to_torch_mode
    from onnx2torch.node_converters.slice import _do_slice, _get_slices
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(module).propagate(*args)
    graph, counts = module.graph, {}
    for node in list(graph.nodes):
        kind = type(module.get_submodule(node.target)).__name__ if node.op == "call_module" else None
        if kind not in _STATIC_SHAPE_MODULES:
            continue
        constants = [_constant(module, arg) for arg in node.args[1:]]  # Slice: starts, ends[, axes[, steps]]
        if kind in ("OnnxSlice", "OnnxSplit13") and (not constants or any(c is None for c in constants)):
            continue  # computed in the graph, or (Split without sizes) read off the shape: left as they are
        with graph.inserting_before(node):
            if kind == "OnnxSlice":
                flip, positive, negative = _plain(_get_slices(*constants, *[None] * (4 - len(constants))))
                dims = tuple(node.args[0].meta["tensor_meta"].shape)
                positive = [_bounded(s, dims[i]) for i, s in enumerate(positive)]
                negative = negative[:1] + [_bounded(s, dims[len(dims) - len(negative) + 1 + j])
                                           for j, s in enumerate(negative[1:])]
                replacement = graph.call_function(_do_slice, (node.args[0], flip, positive, negative))
            elif kind == "OnnxSplit13":
                sizes = [int(size) for size in constants[0].tolist()]
                replacement = graph.call_function(torch.split, (node.args[0], sizes),
                                                  {"dim": module.get_submodule(node.target).axis})
            elif kind == "OnnxResize":
                shape = tuple(node.meta["tensor_meta"].shape)
                resize = module.get_submodule(node.target)
                mode = _onnx_mode_to_torch_mode(resize.onnx_mode, len(shape) - 2)
                replacement = graph.call_function(torch.nn.functional.interpolate, (node.args[0],),
                                                  {"size": shape[2:], "mode": mode,
                                                   "align_corners": resize.align_corners})
            else:
                replacement = graph.call_function(torch.reshape, (node.args[0], tuple(node.meta["tensor_meta"].shape)))
        replacement.meta = node.meta
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
        counts[kind] = counts.get(kind, 0) + 1
    graph.eliminate_dead_code()
    module.recompile()
    return counts


def _plain(value):
    """numpy integers inside slices and lists as Python ints: the graph's generated code must be able to name them."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, slice):
        return slice(_plain(value.start), _plain(value.stop), _plain(value.step))
    return int(value) if hasattr(value, "__index__") and not isinstance(value, bool) else value


def _bounded(part, length: int):
    """A slice with its bounds inside a dimension of ``length``: ONNX ends such as INT64_MAX overflowed
    litert-torch's int32 strided slice (PP-OCR rec's output then changed from run to run)."""
    return slice(*part.indices(length)) if isinstance(part, slice) else part


def _constant(module, arg):
    """The tensor a ``get_attr`` argument holds, else None."""
    if getattr(arg, "op", None) != "get_attr":
        return None
    value = module
    for name in arg.target.split("."):
        value = getattr(value, name)
    return value

