"""ONNX Runtime graph optimization, saved offline at a level that stays portable.

Only the *basic* level is written into artifacts: its rewrites (constant folding, redundant-node removal,
Conv+BN/Add/Mul fusion) use standard ONNX ops. The extended and all levels insert contrib and layout ops chosen
for the build machine's CPU, which must not leak into an artifact meant for another CPU.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ...runtime.onnxrt import OnnxRunner
from ..onnx_graph import node_count
from .base import Artifact, Step, StepContext, StepResult, register


@register
class Optimize(Step):
    name = "optimize"

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        level = context.profile.graph_optimization
        OnnxRunner(artifact.path, threads=1, optimization=level, optimized_model_path=out_path)
        model = onnx.load(str(out_path))
        _drop_unused_opsets(model)
        onnx.save(model, str(out_path))
        return StepResult(self.name, Artifact(out_path, artifact.format, artifact.precision), {"level": level},
                          details={"nodes_before": node_count(artifact.path), "nodes_after": node_count(out_path)})


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    """ONNX Runtime declares every domain it knows (nchwc, training, ...); keep only those the nodes use."""
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del model.opset_import[:]
    model.opset_import.extend(kept)
