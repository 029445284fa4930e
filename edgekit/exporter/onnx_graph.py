"""Small helpers over ONNX graphs: op counts and opsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

CONTRIB_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib ops


def op_counts(model: onnx.ModelProto | str | Path) -> dict[str, int]:
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node))


def node_count(model: onnx.ModelProto | str | Path) -> int:
    return sum(op_counts(model).values())


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def contrib_op_counts(model: onnx.ModelProto | str | Path) -> dict[str, int]:
    """Counts of ONNX Runtime's contrib ops (``CONTRIB_DOMAIN``): what a fusion put in."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node if node.domain == CONTRIB_DOMAIN))


def embedding_rows(model: onnx.ModelProto | str | Path, input_name: str) -> int | None:
    """Rows of the embedding table that ``input_name`` indexes: a ``Gather`` on a constant table, reached from the
    input directly or through a cast or reshape. None where there is no such lookup."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    tables = {init.name: list(init.dims) for init in model.graph.initializer}
    names = {input_name}
    for _ in range(3):
        for node in model.graph.node:
            if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in names \
                    and node.input[0] in tables and tables[node.input[0]]:
                return int(tables[node.input[0]][0])
        names |= {out for node in model.graph.node if node.op_type in ("Cast", "Reshape", "Unsqueeze", "Flatten")
                  and node.input and node.input[0] in names for out in node.output}
    return None
