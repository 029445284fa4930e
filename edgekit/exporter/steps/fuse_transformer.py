"""Transformer fusion for attention graphs: attention, skip + LayerNorm and bias + GELU become one op each.

ONNX Runtime runs a fused ``Attention`` (or ``MultiHeadAttention``), ``SkipLayerNormalization`` and ``BiasGelu``
in one kernel each instead of a dozen small ops. Two fusers are tried in turn:

1. onnxscript's ``optimize_for_ort`` (``onnxscript.rewriter.ort_fusions``): it matches the graphs the dynamo
   exporter writes for torch's SDPA attention. On all-MiniLM-L6 it fuses 6 Attention, 13 SkipLayerNormalization
   and 6 BiasGelu; ONNX Runtime's own optimizer fuses no attention there (only SkipLayerNorm/BiasGelu).
2. ONNX Runtime's transformer optimizer (``optimize_model(model_type="bert")``), for files exported by others
   (TorchScript-era BERT graphs are what it matches).

The first that fuses attention wins; else the one that fused the most ops. Its outputs are checked against the
unfused graph on one real sample, or it is refused. The step runs before simplify/optimize: once ONNX Runtime's
basic level has turned ``MatMul + Add`` into ``Gemm``, the attention pattern no longer matches. The fused ops
are ONNX Runtime contrib ops (domain ``com.microsoft``), which every ONNX Runtime CPU build runs, ARM included;
a fuser's graph must still be valid ONNX (``not_valid_onnx``), so the artifact loads in other tools too.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ...errors import ExportError
from ...files import scratch_cwd
from ...quiet import quiet
from ..model_kind import FUSED_ATTENTION_OPS
from ..onnx_graph import CONTRIB_DOMAIN, contrib_op_counts, node_count
from .base import Artifact, Step, StepContext, StepResult, register
from .prepare import same_outputs, sample_feeds
from .verify import first_lines


@register
class FuseTransformer(Step):
    name = "fuse_transformer"

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        original = onnx.load(str(artifact.path))
        feeds = sample_feeds(context)
        source = artifact.path.resolve()  # the fusers run in a scratch working directory
        tried: dict[str, str] = {}
        accepted: list[tuple[str, onnx.ModelProto, dict]] = []
        for name, fuse in (("onnxscript", _onnxscript), ("onnxruntime.transformers", _onnxruntime)):
            try:
                with quiet(native=True), scratch_cwd():
                    model, fusions = fuse(source)
            except Exception as exc:  # a fuser that crashes on a graph is one fuser less, not a failed export
                tried[name] = f"{type(exc).__name__}: {first_lines(str(exc))[:200]}"
                continue
            fused = contrib_op_counts(model)
            if not fused:
                tried[name] = "matched no fusion pattern"
                continue
            _declare_contrib_domain(model)
            problem = not_valid_onnx(model) or same_outputs(original, model, feeds, f"{name} fusion")
            if problem:
                tried[name] = f"refused: {problem}"
                continue
            tried[name] = f"fused {sum(fused.values())} op(s)"
            accepted.append((name, model, fusions))
            if any(fused.get(op) for op in FUSED_ATTENTION_OPS):
                break
        if not accepted:
            raise ExportError("no transformer fusion applied: " + "; ".join(f"{k}: {v}" for k, v in tried.items()),
                              hint="the graph keeps its unfused attention (it still runs, only slower)")
        name, model, fusions = max(accepted, key=lambda item: (_attention_ops(item[1]), sum(
            contrib_op_counts(item[1]).values())))
        onnx.save(model, str(out_path))
        return StepResult(self.name, Artifact(out_path, artifact.format, artifact.precision), {"fuser": name},
                          details={"fuser": name, "fused_ops": contrib_op_counts(model), "fusions": fusions,
                                   "tried": tried, "nodes_before": node_count(original),
                                   "nodes_after": node_count(model)})


def _declare_contrib_domain(model: onnx.ModelProto) -> None:
    """Add the contrib domain to the opset imports where its ops are used and it is missing (ONNX Runtime's
    optimizer leaves it out)."""
    if any(node.domain == CONTRIB_DOMAIN for node in model.graph.node) and \
            all(o.domain != CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))


def not_valid_onnx(model: onnx.ModelProto) -> str | None:
    """Why ``model`` is not valid ONNX, or None: e.g. ONNX Runtime's ``LayerNormalization`` below opset 17
    (PP-OCRv4 rec), which only ONNX Runtime reads and onnxsim and other tools refuse."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:  # ValueError: a graph over protobuf's 2 GB
        return f"not valid ONNX: {first_lines(str(exc))[:200]}"
    return None


def _attention_ops(model: onnx.ModelProto) -> int:
    counts = contrib_op_counts(model)
    return sum(counts.get(op, 0) for op in FUSED_ATTENTION_OPS)


def _onnxscript(path: Path) -> tuple[onnx.ModelProto, dict]:
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model, counts = optimize_for_ort(ir.load(str(path)))
    return ir.serde.serialize_model(model), {k: v for k, v in counts.items() if v}


def _onnxruntime(path: Path) -> tuple[onnx.ModelProto, dict]:
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0, opt_level=0,
                               use_gpu=False)
    return optimized.model, {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
