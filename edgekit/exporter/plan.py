"""``edgekit export … --plan``: every candidate the export would build, with its ordered steps and settings, and
why each excluded one is excluded, without building anything (the model is only loaded to read its kind)."""

from __future__ import annotations

from dataclasses import dataclass

from ..specs import parse_input_spec
from ..targets import TargetProfile, load_target
from .model_kind import ModelKind, model_kind, module_kind
from .pipeline import check_source_route, not_built_records, plan_candidates, resolve_formats
from .routes import CandidatePlan, PlannedStep, get_route
from .routes.onnx import float_onnx_plan
from .sources import OnnxSource, TorchSource, load_source
from .steps import StepContext


@dataclass(frozen=True)
class ExportPlan:
    """The plan of one export: the mode, the shared FP32 ONNX chain (when a route starts from it), the candidates
    and what is not built."""

    target: str
    mode: str
    model_kind: ModelKind | None
    kind_read_from: str
    shared: tuple[PlannedStep, ...]
    candidates: tuple[CandidatePlan, ...]
    not_built: tuple[dict, ...]
    from_float_onnx: tuple[str, ...]  # the routes that start from the shared FP32 ONNX model
    source_kind: str  # "pytorch", "onnx", "tflite": a route's rescue may depend on it

    def lines(self) -> list[str]:
        """The plan as text, one candidate per block (as ExecuTorch prints its pass list)."""
        kind = f"{self.model_kind.kind} ({self.model_kind.reason}; read from {self.kind_read_from})" \
            if self.model_kind else "unknown"
        out = [f"plan for target {self.target}, mode {self.mode}; model kind {kind}"]
        if self.shared:
            out.append("shared FP32 ONNX model: " + " → ".join(s.describe() for s in self.shared))
        for plan in self.candidates:
            if plan.excluded:
                continue
            route = get_route(plan.route)
            start = "shared FP32 ONNX model" if plan.route in self.from_float_onnx else "source"
            steps = " → ".join(s.describe() for s in plan.steps) or "as it is"
            if plan.steps and "ir_of" in plan.steps[0].settings:  # another candidate's model, run differently
                start, steps = f"the model of {plan.steps[0].settings['ir_of']}", "copy"
            out.append(f"  {plan.name}: {start} → {steps}")
            if plan.note:
                out.append(f"      {plan.note}")
            rescue = route.rescue(plan.precision, self.source_kind)
            if rescue is not None:
                out.append(f"      if it breaks the budget: {route.rescue_summary}")
        out += [f"  {entry['candidate']}: not built: {entry['reason']}" for entry in self.not_built]
        return out


def plan_export(model: str, target: str | TargetProfile = "x86", *, format: str | None = None,
                inputs: list[str] | None = None, dynamic_batch: bool = False, simplify: bool = True) -> ExportPlan:
    """What ``edgekit.export`` would build with these options, without building it."""
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    formats, mode = resolve_formats(format, profile)
    specs = [parse_input_spec(s) for s in inputs or []]
    source = load_source(model, specs or None)
    check_source_route(source, mode, dynamic_batch)
    specs = source.inputs if not dynamic_batch else [s.with_dynamic_batch() for s in source.inputs]
    context = StepContext(profile=profile, inputs=specs, output_names=source.output_names)
    context.model_kind = _source_kind(source)
    kind_from = ("the source's modules; the exported ONNX graph decides at run time"
                 if isinstance(source, TorchSource) else "the source's graph")
    routes = [get_route(name) for name in formats]
    shared = float_onnx_plan(context, source.kind, simplify, dynamic_batch) if any(
        r.uses_float_onnx(source, dynamic_batch) for r in routes) else []
    plans = plan_candidates(source, context, formats, dynamic_batch)
    not_built, _ = not_built_records([p for p in plans if p.excluded], formats, profile)
    return ExportPlan(profile.name, mode, context.model_kind, kind_from, tuple(shared), tuple(plans),
                      tuple(not_built), tuple(r.name for r in routes if r.uses_float_onnx(source, dynamic_batch)),
                      source.kind)


def _source_kind(source) -> ModelKind | None:
    """The model kind as the source shows it before any export: a PyTorch module's layers, an ONNX graph."""
    if isinstance(source, OnnxSource):
        return model_kind(source.path)
    if isinstance(source, TorchSource):
        return module_kind(source.module)
    return None
