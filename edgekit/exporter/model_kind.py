"""What kind of model a graph is: convolutional, attention, mixed or dense, with the evidence counted.

The kind decides the INT8 recipe where the profile leaves it open (``recipes.py``) and whether the transformer
fusion step runs. It is read from the ONNX graph, subgraphs included:

- *convolutions*: ``Conv``/``ConvTranspose`` (and their quantized forms);
- *attention blocks*: fused attention ops (``Attention``, ``MultiHeadAttention``, …), or, in an unfused graph, a
  ``Softmax`` whose input comes from a MatMul of two activations (Q·Kᵀ) and whose output feeds another (·V);
- *dense*: ``MatMul``/``Gemm`` with a constant weight.

Kinds: ``attention`` (attention blocks, and no more convolutions than blocks: a ViT's patch embedding or an audio
encoder's stem), ``mixed`` (both, convolutions outnumbering the blocks), ``convolutional`` (convolutions, no
attention), ``dense`` (neither: MLPs and recurrent models). Where no ONNX graph is built (a TFLite-only profile),
the PyTorch module is read instead: its convolution and attention modules are counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

CONV_OPS = ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "FusedConv")
FUSED_ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "QAttention", "PackedAttention",
                       "PackedMultiHeadAttention", "DecoderMaskedMultiHeadAttention")
DENSE_OPS = ("MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "QGemm", "DynamicQuantizeMatMul")
_PASS_THROUGH = ("Add", "Mul", "Div", "Sub", "Where", "Cast", "Reshape", "Transpose", "Softmax", "Dropout",
                 "Identity")
_HOPS = 4


@dataclass(frozen=True)
class ModelKind:
    """The kind, the counts it was decided on, and the sentence that says why."""

    kind: str  # attention | mixed | convolutional | dense
    evidence: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    read_from: str = "onnx graph"

    @property
    def has_attention(self) -> bool:
        return self.kind in ("attention", "mixed")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "evidence": self.evidence, "reason": self.reason, "read_from": self.read_from}


def model_kind(model: onnx.ModelProto | str | Path) -> ModelKind:
    """Classify an ONNX graph (a path or a loaded model) by its convolutions and attention blocks."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    nodes = list(_all_nodes(model.graph))
    constants = _constant_names(model.graph)
    ops = Counter(node.op_type for node in nodes)
    producers = {out: node for node in nodes for out in node.output}
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    fused = sum(ops[op] for op in FUSED_ATTENTION_OPS)
    unfused = sum(1 for node in nodes if node.op_type == "Softmax"
                  and _activation_matmul_upstream(node, producers, constants)
                  and _activation_matmul_downstream(node, consumers, constants))
    evidence = {"conv": sum(ops[op] for op in CONV_OPS), "fused_attention": fused, "softmax_attention": unfused,
                "matmul_with_weights": sum(1 for node in nodes if node.op_type in DENSE_OPS
                                           and any(i in constants for i in node.input[:2]))}
    return _decide(evidence["conv"], fused + unfused, evidence, "onnx graph")


def module_kind(module) -> ModelKind:
    """Classify a PyTorch module by its convolution and attention modules (used where no ONNX graph exists)."""
    from torch import nn

    conv = sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d))
               for m in module.modules())
    attention = sum(isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention")
                    for m in module.modules())
    linear = sum(isinstance(m, nn.Linear) for m in module.modules())
    evidence = {"conv_modules": conv, "attention_modules": attention, "linear_modules": linear}
    return _decide(conv, attention, evidence, "pytorch modules")


def _decide(conv: int, attention: int, evidence: dict[str, int], read_from: str) -> ModelKind:
    if attention and conv <= attention:
        kind = "attention"
        reason = f"{attention} attention block(s), " + (f"only {conv} convolution(s)" if conv else "no convolutions")
    elif attention:
        kind, reason = "mixed", f"{conv} convolution(s) and {attention} attention block(s)"
    elif conv:
        kind, reason = "convolutional", f"{conv} convolution(s), no attention blocks"
    else:
        kind, reason = "dense", "no convolutions and no attention blocks (dense or recurrent layers)"
    return ModelKind(kind, evidence, f"{reason} in the {read_from}", read_from)


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            subgraphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
            for subgraph in subgraphs:
                yield from _all_nodes(subgraph)


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    return names


def _is_activation_matmul(node, constants: set[str]) -> bool:
    return node.op_type == "MatMul" and not any(name in constants for name in node.input)


def _activation_matmul_upstream(softmax, producers: dict, constants: set[str]) -> bool:
    """Q·Kᵀ: a MatMul of two activations within a few element-wise hops (scale, mask) before the Softmax."""
    frontier = [softmax.input[0]]
    for _ in range(_HOPS):
        nodes = [producers[name] for name in frontier if name in producers]
        if any(_is_activation_matmul(node, constants) for node in nodes):
            return True
        frontier = [name for node in nodes if node.op_type in _PASS_THROUGH for name in node.input]
    return False


def _activation_matmul_downstream(softmax, consumers: dict, constants: set[str]) -> bool:
    """·V: the Softmax output reaches a MatMul of two activations within a few hops."""
    frontier = list(softmax.output)
    for _ in range(_HOPS):
        nodes = [node for name in frontier for node in consumers.get(name, [])]
        if any(_is_activation_matmul(node, constants) for node in nodes):
            return True
        frontier = [name for node in nodes if node.op_type in _PASS_THROUGH for name in node.output]
    return False
