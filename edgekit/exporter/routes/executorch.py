"""ExecuTorch: PyTorch modules lowered to ``.pte`` with the XNNPACK delegate, FP32 or PT2E static INT8
(XNNPACKQuantizer, calibrated on the same samples). Needs the ``executorch`` extra, which brings torch: so does
the device that runs ``.pte`` files."""

from __future__ import annotations

from dataclasses import replace

from ...targets import Precision
from ..candidates import Candidate
from ..guard import guarded
from ..steps import StepContext
from .base import BuildRun, CandidatePlan, PlannedStep, Route

_PT2E = (Precision.int8_static, "PT2E static INT8 with XNNPACK's quantizer (its one INT8 route; calibrated, "
                                "per-channel weights, float in and out)")


class ExecuTorchRoute(Route):
    name = "executorch"
    title = "ExecuTorch"
    suffix = ".pte"
    precisions = (Precision.fp32, Precision.int8, Precision.int8_static)
    typical_build_s = {"fp32": 20.0, "int8_static": 20.0}
    slow_int8 = True
    builds_apart = True  # its lowering keeps one core busy for 20-35 s a candidate
    int8_kernel_archs = ("arm64", "x86_64")  # XNNPACK's int8 kernels
    sources = ("pytorch",)
    int8_recipes = {"attention": _PT2E, "mixed": _PT2E, "convolutional": _PT2E, "dense": _PT2E}
    device_needs = ("the device runs .pte files with edgekit[agent,executorch], whose ExecuTorch runtime brings "
                    "torch (the other formats' runtimes do not)")

    def no_route(self, source, dynamic_batch: bool) -> str | None:
        if source.kind == "pytorch" and dynamic_batch:
            return "ExecuTorch export here needs static shapes (drop --dynamic-batch)"
        return super().no_route(source, dynamic_batch) or self.unsized_inputs(source)

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        settings = {"partitioner": "XnnpackPartitioner"}
        if precision == Precision.int8_static:
            settings.update(quantizer="XNNPACKQuantizer", per_channel=context.profile.quantization.per_channel,
                            samples=context.profile.quantization.calibration_samples)
        return [PlannedStep("to_edge_transform_and_lower", settings)]

    def build_candidate(self, candidate: Candidate, plan: CandidatePlan, run: BuildRun) -> None:
        out_path, label = run.folder / f"model.{plan.precision}.pte", f"executorch {plan.precision}"
        precision = Precision(plan.precision)

        def built(result) -> None:
            candidate.artifact, candidate.steps = result.artifact, [result]
            candidate.runner_options = self.runner_options(plan, run.context)

        def here() -> None:
            with run.progress.step(label):
                result = guarded([candidate], label, lambda: _lower(run.source, out_path, precision, run.context))
            if result is not None:
                built(result)

        run.build_apart(candidate, label, _lower, out_path, precision, _portable(run.context), then=built,
                        here=here, ready=_import_runtime)

    def runner_options(self, plan: CandidatePlan, context) -> dict:
        return {"input_names": [s.name for s in context.inputs]}

    def warm_up_apart(self):
        return _import_lowering


def _lower(source, out_path, precision: Precision, context):
    """The step, in this process or the second one (``source``: that process's copy of the model)."""
    from ..steps.executorch_export import export_executorch  # executorch and torch: the opt-in extra

    return export_executorch(source, out_path, precision, context)


def _import_lowering(source) -> None:
    from ..steps.executorch_export import import_lowering

    import_lowering()


def _import_runtime() -> None:
    """ExecuTorch's runtime, imported here while the second process lowers (2-4 s: its Python bindings import
    ``executorch.exir``); where it is missing, the gate says so for each candidate."""
    from ...errors import ExportError
    from ...runtime.executorch import load_runtime

    try:
        load_runtime()
    except ExportError:
        pass


def _portable(context: StepContext) -> StepContext:
    """What the step reads of ``context``, without the ranges other routes cached (NNCF's models do not pickle)."""
    return replace(context, calibration_ranges={})
