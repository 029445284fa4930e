"""Which nodes feed a channel group that broke the budget: the rescue keeps them in float before it ranks layers.

A stacked output (a YOLO head: box rows in pixels, class-score rows in [0, 1]) usually ends in a Concat along its
channel axis; static INT8 puts one per-tensor scale on that Concat's output, and the small group rounds to zero.
Walking back from the output through the non-compute nodes (Concat, Sigmoid, Reshape, Split, Mul, …) to the last
compute layers (Conv, Gemm, MatMul) finds the graph tail that carries the group; where the output is a Concat on
the channel axis with known input shapes, only the inputs whose channels overlap the group are followed.
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx

from ..accuracy import AccuracyReport, GroupAccuracy

COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
MAX_HEAD_NODES = 64


def failing_groups(report: AccuracyReport, cosine_min: float | None) -> list[tuple[int, GroupAccuracy]]:
    """(output index, group) for every channel group whose cosine breaks ``cosine_min`` (NaN breaks it)."""
    if cosine_min is None:
        return []
    return [(index, group) for index, output in enumerate(report.outputs) for group in output.groups
            if not (math.isfinite(group.cosine_min) and group.cosine_min >= cosine_min)]


def group_head(float_path: Path, report: AccuracyReport, cosine_min: float | None) -> tuple[list[str], str]:
    """The named nodes feeding every failing group, and the groups in words (``output0 rows 4–83, class
    scores``); ``([], "")`` when no group failed or its nodes cannot be found."""
    failing = failing_groups(report, cosine_min)
    if not failing:
        return [], ""
    model = onnx.load(str(float_path), load_external_data=False)
    try:
        shapes = _shapes(onnx.shape_inference.infer_shapes(model).graph)
    except Exception:  # noqa: BLE001 - shapes only narrow the walk; without them every Concat input is followed
        shapes = {}
    graph = model.graph
    names = [o.name for o in graph.output]
    nodes: list[str] = []
    for index, group in failing:
        if index < len(names):
            nodes += [n for n in head_nodes(graph, names[index], group.axis, group.start, group.stop, shapes)
                      if n not in nodes]
    text = ", ".join(f"{names[i] if i < len(names) else i} {g.label}" for i, g in failing)
    return nodes, text


def head_nodes(graph, output: str, axis: int, start: int, stop: int, shapes: dict[str, list]) -> list[str]:
    """Named non-compute nodes between ``output`` and the last compute layers that feed channels
    ``start``..``stop - 1`` of ``axis``, nearest the output first."""
    producers = {tensor: node for node in graph.node for tensor in node.output}
    last = producers.get(output)
    tensors = [output]
    if last is not None and last.op_type == "Concat":
        chosen = _concat_inputs(last, axis, start, stop, shapes)
        if chosen is not None:
            tensors = chosen
            found, seen = ([last.name] if last.name else []), {output}
        else:
            found, seen = [], set()
    else:
        found, seen = [], set()
    while tensors and len(found) < MAX_HEAD_NODES:
        tensor = tensors.pop(0)
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producers.get(tensor)
        if node is None or node.op_type in COMPUTE_OPS:
            continue
        if node.name and node.name not in found:
            found.append(node.name)
        tensors += [i for i in node.input if i]
    return found


def _concat_inputs(node, axis: int, start: int, stop: int, shapes: dict[str, list]) -> list[str] | None:
    """The Concat inputs whose channels overlap ``start``..``stop - 1``; None unless it joins along ``axis`` and
    every input's size on it is known."""
    concat_axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    sizes = [shapes.get(i) for i in node.input]
    if concat_axis is None or any(s is None or len(s) <= abs(concat_axis) for s in sizes):
        return None
    if concat_axis % len(sizes[0]) != axis or any(not isinstance(s[axis], int) for s in sizes):
        return None
    chosen, offset = [], 0
    for tensor, shape in zip(node.input, sizes):
        if offset < stop and offset + shape[axis] > start:
            chosen.append(tensor)
        offset += shape[axis]
    return chosen


def _shapes(graph) -> dict[str, list]:
    """Tensor name -> its dims (int, or None where unknown) from shape inference."""
    found = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        found[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return found
