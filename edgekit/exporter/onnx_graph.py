"""Small helpers over ONNX graphs: op counts and opsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx


def op_counts(model: onnx.ModelProto | str | Path) -> dict[str, int]:
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node))


def node_count(model: onnx.ModelProto | str | Path) -> int:
    return sum(op_counts(model).values())


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
