"""PyTorch -> ExecuTorch (``.pte``) lowered to the XNNPACK delegate: fp32, or PT2E static INT8.

``torch.export`` -> ``to_edge_transform_and_lower`` with ``XnnpackPartitioner`` -> ``to_executorch``. INT8 is PT2E
with ExecuTorch's ``XNNPACKQuantizer`` (symmetric, per-channel weights as the profile says), calibrated on the same
samples as the other routes; inputs and outputs stay float; a PT2E model whose fake-quantized outputs are already far
outside the budget is rejected before its lowering (``pt2e_simulation.py``). The details say which nodes XNNPACK
did not take, with the partitioner's own reason where it gave one.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import time
from pathlib import Path

import numpy as np

from ...errors import AccuracyError, ExportError, InputError
from ...extras import install_hint
from ...quiet import quiet
from ...targets import Precision
from ..sources import TorchSource
from .base import Artifact, StepContext, StepResult, require_static_shapes
from .verify import check_outputs, first_lines

PRECISIONS = (Precision.fp32, Precision.int8, Precision.int8_static)  # int8: PT2E static (XNNPACK's INT8 route)
_PARTITIONER_LOGGER = "executorch.backends.xnnpack.partition"  # its configs log WhyNoPartition at DEBUG
_LOWERING_MODULES = ("executorch.exir", "executorch.devtools.backend_debug", "torchao.quantization.pt2e.quantize_pt2e",
                     "executorch.backends.xnnpack.quantizer.xnnpack_quantizer")


def export_executorch(source: TorchSource, out_path: Path, precision: Precision | str,
                      context: StepContext) -> StepResult:
    """Lower ``source`` to ``out_path`` (``.pte``); fp32 is checked against PyTorch in ExecuTorch's runtime."""
    start = time.perf_counter()
    precision = Precision(precision)
    if precision not in PRECISIONS:
        raise ExportError(f"ExecuTorch has no {precision.value} route here; it builds "
                          f"{', '.join(p.value for p in PRECISIONS)}", hint="ask for fp32 or int8")
    try:
        with quiet(native=True):  # its import warns and logs (experimental APIs, torchao's missing CUDA kernels)
            import executorch.version
            import torch
    except ImportError as exc:
        raise ExportError(f"ExecuTorch export needs executorch, which is not installed ({exc})",
                          hint=install_hint("executorch")) from exc
    require_static_shapes(context, "ExecuTorch", "executorch")
    args = tuple(torch.from_numpy(np.ascontiguousarray(source.examples[s.name])) for s in source.inputs)
    params = {"converter": f"executorch {executorch.version.__version__}", "delegate": "XnnpackPartitioner"}
    module, simulation = source.module, None
    try:
        if precision is not Precision.fp32:
            if context.calibration is None:
                raise InputError("static INT8 needs calibration samples", hint="pass --calib FILE.npz")
            per_channel = context.profile.quantization.per_channel
            count = min(context.profile.quantization.calibration_samples, len(context.calibration))
            samples = [[s[spec.name] for spec in source.inputs]
                       for s in itertools.islice(context.calibration, count)]
            module, how, simulation = _pt2e_int8(module, args, samples, per_channel, context)
            params.update(quantizer="pt2e XNNPACKQuantizer (symmetric)", activation_type="int8", weight_type="int8",
                          per_channel=per_channel, calibration_samples=count,
                          calibration_data=context.calibration.origin, torch_export=how)
        content, delegation = _lower(module, args)
    except (InputError, ExportError, AccuracyError):
        raise
    except Exception as exc:  # torch.export, the quantizer and the lowering raise many types
        cause = f" ({type(exc.__cause__).__name__}: {first_lines(str(exc.__cause__))[:200]})" \
            if exc.__cause__ is not None else ""  # a pass's failure wraps what went wrong
        raise ExportError(f"ExecuTorch {precision.value} lowering of {source.reference} failed: "
                          f"{type(exc).__name__}: {first_lines(str(exc))[:300]}{cause}",
                          hint="export to ONNX or TFLite instead, or report the op to ExecuTorch") from exc
    out_path.write_bytes(content)
    details = {"delegation": delegation}
    if simulation is not None:
        details["pt2e_simulation"] = simulation
    if precision is Precision.fp32:
        details["verify_max_abs_diff"] = verify_pte(source, out_path)
    result = StepResult("export_executorch", Artifact(out_path, "executorch", precision.value), params,
                        details=details)
    result.seconds = time.perf_counter() - start
    return result


def import_lowering() -> None:
    """Import what the lowering uses (about 5 s the first time in a process): the second process does it while
    the first one builds the shared FP32 ONNX model."""
    with quiet(native=True):  # their imports warn and log
        for name in _LOWERING_MODULES:
            importlib.import_module(name)
    _partitioner()


def _pt2e_int8(module, args, samples: list[list[np.ndarray]], per_channel: bool, context: StepContext):
    """PT2E with XNNPACKQuantizer, observed on ``samples`` (``pt2e_ranges.observed``: strict export first, as for
    TFLite): the converted model, how torch.export ran and the simulation's figures. Raises ``AccuracyError``
    before the lowering (45-52 s for a YOLOv8n-style detector) when the fake-quantized model is far outside the
    profile's budget (``pt2e_simulation.check_simulation``)."""
    with quiet(native=True):  # their imports configure the root logger and print about missing CUDA kernels
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        from .pt2e_ranges import observed
        from .pt2e_simulation import check_simulation

    prepared, _, how = observed(module, args, samples, XNNPACKQuantizer,
                                get_symmetric_quantization_config(is_per_channel=per_channel))
    converted = convert_pt2e(prepared)
    return converted, how, check_simulation(module, converted, samples, context, before="lowering")


def _lower(module, args) -> tuple[bytes, dict]:
    """The ``.pte`` bytes and the delegation report: XNNPACK subgraphs, delegated ops, and each node left to
    ExecuTorch's portable kernels with the partitioner's reason."""
    import torch

    with quiet(native=True):  # xnnpack_partitioner calls logging.basicConfig when imported
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower

    reasons = _Reasons()
    logger = logging.getLogger(_PARTITIONER_LOGGER)
    saved = logger.level, logger.propagate
    logger.addHandler(reasons)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        with quiet(native=True):
            edge = to_edge_transform_and_lower(torch.export.export(module, args), partitioner=[_partitioner()])
    finally:
        logger.removeHandler(reasons)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    graph = edge.exported_program().graph_module
    info = get_delegation_info(graph)
    left = [node for node in graph.graph.nodes if node.op == "call_function"
            and "executorch_call_delegate" not in str(node.target) and node.target.__name__ != "getitem"]
    delegated = {op: b.delegated for op, b in info.delegation_by_operator.items() if b.delegated and op != "getitem"}
    report = {"delegate": "XNNPACK", "subgraphs": info.num_delegated_subgraphs,
              "delegated_nodes": info.num_delegated_nodes, "delegated_ops": delegated,
              "not_delegated": [{"node": n.name, "op": _op_name(n), "reason": _reason_left(n, reasons)}
                                for n in left]}
    with quiet(native=True):
        content = edge.to_executorch().buffer
    return content, report


def _partitioner():
    """XNNPACK's partitioner with its PReLU taken on 4-D (N, C, H, W) inputs only: executorch 1.5's claims a PReLU of
    any rank, and its channels-last pass then fails on a 2-D one, after a Linear ("Attempting to convert non-NHWC
    compatible node to NHWC": MTCNN's RNet and ONet). Not claimed, such a PReLU is decomposed (gt, mul, where)
    and the rest of the model is lowered."""
    with quiet(native=True):
        from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
        from executorch.backends.xnnpack.partition.config.node_configs import PreluConfig
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.backends.xnnpack.utils.utils import get_input_node

    class ChannelPrelu(PreluConfig):
        def check_constraints(self, node, ep) -> bool:
            return get_input_node(node, 0).meta["val"].dim() == 4 and super().check_constraints(node, ep)

    return XnnpackPartitioner(configs=[ChannelPrelu if c is PreluConfig else c for c in ALL_PARTITIONER_CONFIGS])


def _reason_left(node, reasons: _Reasons) -> str:
    """Why XNNPACK did not take ``node``: the partitioner's reason, or that it came of a PReLU ``_partitioner``
    kept from XNNPACK."""
    if str(node.meta.get("original_aten")) == "aten._prelu_kernel.default":
        return (f"part of a {node.meta['val'].dim()}-D PReLU: XNNPACK is given PReLU on 4-D inputs only "
                "(executorch 1.5's channels-last pass fails on the others)")
    return reasons.by_node.get(node.name, "XNNPACK has no kernel for this op")


def _op_name(node) -> str:
    """``aten.cumsum.default`` from an edge op's target."""
    name = getattr(node.target, "_name", None) or getattr(node.target, "__name__", str(node.target))
    return name.replace("::", ".")


class _Reasons(logging.Handler):
    """Collects the partitioner's ``WhyNoPartition`` lines by node name (the first reason a node got)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.by_node: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        why = record.msg  # one WhyNoPartition object, reused: read it now
        node, reason = getattr(why, "node", None), getattr(why, "reason", None)
        if node is not None and reason:
            self.by_node.setdefault(node.name, reason)


def verify_pte(source: TorchSource, path: Path) -> float:
    """Max abs difference between ExecuTorch and PyTorch on the examples; a mismatch is an ``OutputMismatchError``."""
    from ...runtime.executorch import ExecuTorchRunner

    runner = ExecuTorchRunner(path, input_names=[s.name for s in source.inputs])
    got = runner.run(source.examples)
    del runner  # the thread pool can be resized only once no runner holds it
    return check_outputs(source.run(source.examples), got, "lowered ExecuTorch",
                         hint="ExecuTorch mistranslated an op; export to ONNX or TFLite instead")

