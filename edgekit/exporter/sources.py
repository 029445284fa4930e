"""Model sources: a PyTorch factory (``file.py:fn`` / ``pkg.mod:fn``) or an existing ``.onnx`` file."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, InputError
from ..extras import install_hint
from ..files import regular_file, sha256_file
from ..specs import InputSpec, specs_from_arrays


@dataclass
class TorchSource:
    """A PyTorch module in eval mode with its input specs and example arrays."""

    reference: str
    path: Path | None
    module: Any
    inputs: list[InputSpec]
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)  # output_0, output_1, … (flattened outputs)

    kind = "pytorch"

    def describe(self) -> dict:
        info = {"kind": self.kind, "reference": self.reference}
        if self.path:
            info.update(path=str(self.path), sha256=sha256_file(self.path))
        return info

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the module on numpy inputs; returns flat numpy outputs."""
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        return [t.detach().cpu().numpy() for t in flatten_outputs(out)]


@dataclass
class OnnxSource:
    """An existing ONNX file; optimized and quantized without PyTorch."""

    reference: str
    path: Path
    inputs: list[InputSpec]
    output_names: list[str] = field(default_factory=list)

    kind = "onnx"

    def describe(self) -> dict:
        return {"kind": self.kind, "reference": self.reference, "path": str(self.path),
                "sha256": sha256_file(self.path)}


@dataclass
class TfliteSource:
    """An existing .tflite file: benchmarked (and validated on devices) as it is."""

    reference: str
    path: Path
    inputs: list[InputSpec]
    output_names: list[str] = field(default_factory=list)
    precision: str = "given"

    kind = "tflite"

    def describe(self) -> dict:
        return {"kind": self.kind, "reference": self.reference, "path": str(self.path),
                "sha256": sha256_file(self.path)}


def flatten_outputs(out: Any) -> list:
    """A module's outputs (tensors in tuples, lists and dicts, nested) as one flat list."""
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in flatten_outputs(item)]
    if isinstance(out, dict):
        return [t for item in out.values() for t in flatten_outputs(item)]
    return [out]


def load_source(reference: str, input_specs: list[InputSpec] | None = None) -> TorchSource | OnnxSource:
    """Resolve MODEL as given on the command line."""
    from ..compress.record import find_record

    _check_model_file(reference)
    if find_record(reference) is not None:
        return _load_compressed(reference, input_specs)
    suffix = Path(reference).suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(reference, input_specs)
    if suffix == ".tflite":
        return _load_tflite(reference, input_specs)
    if suffix in (".pt", ".pth", ".pkl", ".bin"):
        raise InputError(f"unsupported model file '{reference}'",
                         hint="pass an .onnx/.tflite file or a factory as path/to/file.py:factory or pkg.mod:factory "
                              "(TorchScript/pickle files are never loaded: they can run code)")
    if ":" not in reference:
        raise InputError(f"cannot tell what model '{reference}' is",
                         hint="pass an .onnx file or a factory as path/to/file.py:factory or package.module:factory")
    return _load_factory(reference, input_specs)


def _check_model_file(reference: str) -> None:
    """A model given as a path (or ``file.py:factory``) must be a regular file (or a compressed model's folder):
    a FIFO, a device or a socket is named for what it is, never read."""
    if os.path.isdir(reference) and Path(reference).suffix.lower() not in (".onnx", ".tflite", ".py"):
        return  # a compressed model's folder
    path = reference
    if not os.path.lexists(path) and ":" in reference:
        path = reference.rpartition(":")[0]
        if not path.lower().endswith(".py"):
            return  # package.module:factory
    if os.path.lexists(path) or Path(path).suffix.lower() in (".onnx", ".tflite", ".py"):
        regular_file(path, "model file")


def _load_compressed(reference: str, input_specs: list[InputSpec] | None) -> TorchSource:
    """An `edgekit compress` folder: its original factory, rebuilt with the recorded edits and weights."""
    from ..compress.record import factory_reference, read_record, rebuild, weights_path

    record = read_record(reference)
    source = _load_factory(factory_reference(record), input_specs)
    source.module = rebuild(source.module, record)
    source.reference, source.path = reference, weights_path(record)
    source.run(source.examples)
    return source


def _load_onnx(reference: str, input_specs: list[InputSpec] | None) -> OnnxSource:
    import onnx

    path = Path(reference)
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, and others for damaged files
        raise InputError(f"{path} is not a valid ONNX model: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                         hint="re-export the model; the file may be truncated or not ONNX at all") from exc
    initializer_names = {init.name for init in model.graph.initializer}
    graph_specs = [_spec_from_value_info(v) for v in model.graph.input if v.name not in initializer_names]
    _check_runtime_loads(path)
    return OnnxSource(reference, path.resolve(), _merge_specs(graph_specs, input_specs, str(path)),
                      [o.name for o in model.graph.output])


def _check_runtime_loads(path: Path) -> None:
    """ONNX Runtime must be able to load the model: an op it has no kernel for is named here, before any work."""
    from ..runtime.onnxrt import OnnxRunner

    try:
        OnnxRunner(path, optimization="disabled")
    except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented/InvalidGraph types
        text = str(exc).replace("[ONNXRuntimeError] : ", "")
        raise ExportError(f"ONNX Runtime cannot load {path}: {text.strip().splitlines()[0][:300]}",
                          hint="replace the op with standard ONNX ops (or a newer opset) and export again") from exc


def _load_tflite(reference: str, input_specs: list[InputSpec] | None) -> TfliteSource:
    from ..runtime.litert import LiteRtRunner

    path = Path(reference)
    runner = LiteRtRunner(path)  # raises InputError for a missing or damaged file
    model_inputs = runner.io_quantization()["inputs"]
    graph_specs = [InputSpec(name, tuple(info["shape"]), "float32" if info["dtype"] in ("int8", "uint8", "int16")
                             and "scale" in info else info["dtype"]) for name, info in model_inputs.items()]
    return TfliteSource(reference, path.resolve(), _merge_specs(graph_specs, input_specs, str(path)),
                        runner.output_names)


def _spec_from_value_info(value) -> InputSpec:
    from onnx import helper

    tensor_type = value.type.tensor_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "dim")
                 for d in tensor_type.shape.dim)
    return InputSpec(value.name, dims, dtype)


def _merge_specs(graph_specs: list[InputSpec], given: list[InputSpec] | None, where: str) -> list[InputSpec]:
    """Check user specs against the model's own inputs; user specs may fix dynamic dims."""
    if not given:
        return graph_specs
    by_name = {s.name: s for s in graph_specs}
    unknown = [s.name for s in given if s.name not in by_name]
    if unknown:
        raise InputError(f"input spec names {unknown} do not match the model {where}; "
                         f"its inputs are {[str(s) for s in graph_specs]}", hint="use the model's input names")
    merged = []
    for graph_spec in graph_specs:
        spec = next((s for s in given if s.name == graph_spec.name), graph_spec)
        if len(spec.shape) != len(graph_spec.shape) or any(
                isinstance(g, int) and isinstance(s, int) and g != s for g, s in zip(graph_spec.shape, spec.shape)):
            raise InputError(f"input spec {spec} does not match the model's input {graph_spec}",
                             hint="fix the shape in --input, or leave it out to use the model's own")
        merged.append(InputSpec(spec.name, spec.shape, graph_spec.dtype))
    return merged


def _load_factory(reference: str, input_specs: list[InputSpec] | None) -> TorchSource:
    try:
        import torch
    except ImportError as exc:
        raise ExportError("PyTorch is needed to export a PyTorch model", hint=install_hint("export")) from exc

    target, _, attr = reference.rpartition(":")
    path: Path | None = None
    if target.lower().endswith(".py"):
        path = Path(target)
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(target)
        except SystemExit as exc:
            raise InputError(f"importing module '{target}' called sys.exit({exc.code!r})",
                             hint="pass a module that defines the factory without exiting") from None
        except ImportError as exc:
            raise InputError(f"cannot import module '{target}': {exc}",
                             hint="check the module name, or pass path/to/file.py:factory") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise InputError(f"'{attr}' not found in {target}; callables there: {', '.join(names) or '(none)'}",
                         hint="name the factory function after ':'")
    try:
        made = factory() if callable(factory) else factory
    except SystemExit as exc:
        raise InputError(f"the factory {reference} called sys.exit({exc.code!r})",
                         hint="return the model from the factory instead of exiting") from None
    except Exception as exc:
        raise InputError(f"factory {reference} raised {type(exc).__name__}: {exc}",
                         hint="fix the factory; it must return a torch.nn.Module") from exc
    net, examples = (made if isinstance(made, tuple) and len(made) == 2 else (made, None))
    if not isinstance(net, torch.nn.Module):
        raise InputError(f"factory {reference} returned {type(net).__name__}, not a torch.nn.Module",
                         hint="return a torch.nn.Module, or (module, example_inputs)")
    net.eval()
    specs, arrays = _resolve_torch_inputs(net, examples, input_specs, reference)
    source = TorchSource(reference, path.resolve() if path else None, net, specs, arrays)
    try:
        source.output_names = [f"output_{i}" for i in range(len(source.run(arrays)))]
    except Exception as exc:
        raise InputError(f"the model rejects inputs {[str(s) for s in specs]}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}",
                         hint="fix --input so it matches what the model's forward() expects") from exc
    return source


def _import_file(path: Path):
    name = f"edgekit_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path}", hint="pass a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise InputError(f"importing {path} called sys.exit({exc.code!r})",
                         hint="guard the script part of the file with `if __name__ == \"__main__\":`") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InputError(f"importing {path} raised {type(exc).__name__}: {exc}", hint="fix the model file") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _resolve_torch_inputs(net, examples, given: list[InputSpec] | None, reference: str):
    """Input specs and example arrays from the factory's examples and/or ``--input``."""
    import torch

    example_names: list[str] = []
    example_arrays: list[np.ndarray] = []
    if examples is not None:
        if isinstance(examples, dict):
            items = list(examples.items())
        else:
            tensors = examples if isinstance(examples, (tuple, list)) else (examples,)
            items = list(zip(_forward_arg_names(net, len(tensors)), tensors))
        for name, value in items:
            if not isinstance(value, torch.Tensor):
                raise InputError(f"example input '{name}' from {reference} is {type(value).__name__}, not a tensor",
                                 hint="return example inputs as a tensor, a tuple of tensors or a dict of tensors")
            example_names.append(name)
            example_arrays.append(value.detach().cpu().numpy())
    if given:
        if example_names and len(given) != len(example_names):
            raise InputError(f"{len(given)} --input spec(s) given but the model takes {len(example_names)} "
                             f"inputs ({', '.join(example_names)})", hint="give one --input per model input")
        from ..specs import example_arrays as make_arrays
        return list(given), make_arrays(given)
    if not example_names:
        raise InputError(f"no input shapes for {reference}",
                         hint="pass --input NAME:1x3x224x224, or return (module, example_inputs) from the factory")
    return specs_from_arrays(example_names, example_arrays), dict(zip(example_names, example_arrays))


def _forward_arg_names(net, count: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(net.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[:count] if len(params) >= count else [f"input_{i}" for i in range(count)]
