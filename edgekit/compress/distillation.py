"""``edgekit.compress.distill``: train a small student on a large teacher's soft targets plus the hard labels.

loss = soft_weight · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + hard_weight · CE(student, labels)
(Hinton et al. 2015; the T² keeps the soft term's gradients on the scale of the hard one). With ``baseline``, the
same student from the same initial weights is also trained on the labels alone, with the same settings, so the
record says what the teacher was worth.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InputError
from .distributed import prepare
from .job import CompressResult, Job, Options, load_model, model_name
from .measure import model_figures
from .trainer import cross_entropy, logits_of, train


def check_weights(temperature: float, soft_weight: float, hard_weight: float) -> None:
    if not temperature > 0:
        raise InputError(f"the temperature must be positive, got {temperature}", hint="pass --temperature 4")
    if soft_weight < 0 or hard_weight < 0 or soft_weight + hard_weight == 0:
        raise InputError(f"loss weights must be non-negative and not both zero (soft {soft_weight}, hard "
                         f"{hard_weight})", hint="pass e.g. --soft-weight 0.5 --hard-weight 0.5")


def distillation_objective(teacher, temperature: float, soft_weight: float, hard_weight: float):
    """The (model, inputs, labels) -> (loss, logits) function of knowledge distillation."""
    import torch
    import torch.nn.functional as F

    def objective(student, inputs, labels):
        with torch.no_grad():
            targets = logits_of(teacher(inputs))
        logits = logits_of(student(inputs))
        soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), F.log_softmax(targets / temperature, dim=1),
                        reduction="batchmean", log_target=True) * temperature ** 2
        return soft_weight * soft + hard_weight * F.cross_entropy(logits, labels), logits

    return objective


def distill(teacher: str, student: str, *, temperature: float = 4.0, soft_weight: float = 0.5,
            hard_weight: float = 0.5, baseline: bool = False, measure_target: str = "x86",
            **options: Any) -> CompressResult:
    """Distil ``teacher`` into ``student`` (each ``file.py:factory``, ``pkg.mod:factory`` or a compressed folder).

    The student's factory gives its architecture and initial weights. ``options``: the shared options of
    ``job.Options`` (``train``, ``val``, ``out``, ``epochs``, ``batch_size``, ``lr``, ``sharding``, ``resume``…).
    """
    check_weights(temperature, soft_weight, hard_weight)
    opts = Options(**options)
    job = Job("distill", opts, model_name(student))
    try:
        big, small = load_model(teacher, "teacher"), load_model(student, "student")
        if big.classes != small.classes:
            raise InputError(f"the teacher outputs {big.classes} classes and the student {small.classes}",
                             hint="give the student a final layer with as many outputs as the teacher's")
        if tuple(big.spec.shape[1:]) != tuple(small.spec.shape[1:]):
            raise InputError(f"the teacher takes {big.spec} and the student {small.spec}",
                             hint="both must read the same input shape (the same data feeds both)")
        train_data, val_data, notes = job.load_data(small)
        job.prepare_output(teacher, student)
        teacher_figures = model_figures(big.module, job.accuracy(big.module, val_data))
        initial = copy.deepcopy(small.module)
        student_before = model_figures(small.module, job.accuracy(small.module, val_data))
        sharded = opts.sharding != "replicate"
        frozen = prepare(big.module.eval().requires_grad_(False), job.cluster, opts.sharding, trainable=False)
        frozen.eval()
        settings = {"method": "distill", "teacher": big.source.describe(), "student": small.source.describe(),
                    "temperature": temperature, "soft_weight": soft_weight, "hard_weight": hard_weight,
                    "train": train_data.sha256, "val": val_data.sha256, "world_size": job.cluster.world_size,
                    "sharding": opts.sharding, **opts.settings.to_dict()}
        objective = distillation_objective(frozen, temperature, soft_weight, hard_weight)
        final = copy.deepcopy(small.module)  # the plain module the best weights go into (FSDP2 shards the trained one)
        wrapped = prepare(small.module, job.cluster, opts.sharding)
        with job.progress.step("distil the student"):
            result = train(wrapped, objective, train_data, val_data, job.run(settings))
        alone = None
        if baseline:
            solo = prepare(initial, job.cluster, opts.sharding)
            baseline_run = job.run({**settings, "method": "baseline (labels only)"})
            baseline_run.checkpoints = job.checkpoints / "baseline"
            baseline_run.resume = opts.resume and (baseline_run.checkpoints / "state.json").is_file()
            with job.progress.step("train the same student without the teacher (baseline)"):
                alone = train(solo, cross_entropy, train_data, val_data, baseline_run)
        if not job.cluster.is_main:
            return CompressResult(None, {}, final)
        final.load_state_dict(result.best_state)
        final.eval()
        provenance = {"teacher": {"model": teacher, **_identity(big)}, "temperature": temperature,
                      "soft_weight": soft_weight, "hard_weight": hard_weight, "sharded": sharded}
        record = job.record(small, final, [], train_data, val_data, result, provenance)
        record["metrics"] = {"teacher": teacher_figures, "student_untrained": student_before,
                             "after": model_figures(final, result.best_accuracy),
                             "student_to_teacher_params": student_before["params"] / teacher_figures["params"]}
        if alone is not None:
            record["metrics"]["student_alone"] = {"val_accuracy": alone.best_accuracy, "best_epoch": alone.best_epoch,
                                                 "history": alone.history}
        record["notes"] = notes + _verdict(record["metrics"])
        folder = job.commit_measured(final, record, teacher, measure_target, _speed_note)
        return CompressResult(folder, record, final)
    except BaseException:
        job.fail()
        raise
    finally:
        job.close()


def _identity(model) -> dict:
    described = model.source.describe()
    return {"sha256": described.get("sha256"), "classes": model.classes,
            "params": sum(p.numel() for p in model.module.parameters())}


def _verdict(metrics: dict) -> list[str]:
    teacher, student = metrics["teacher"]["val_accuracy"], metrics["after"]["val_accuracy"]
    notes = [f"student ({metrics['after']['params']:,} parameters, {metrics['student_to_teacher_params']:.1%} of the "
             f"teacher's) reaches {student:.2%} against the teacher's {teacher:.2%}"]
    if "student_alone" in metrics:
        alone = metrics["student_alone"]["val_accuracy"]
        notes.append(f"the same student trained without the teacher reaches {alone:.2%} "
                     f"({(student - alone) * 100:+.2f} points from distillation)")
    return notes


def _speed_note(runtimes: dict) -> list[str]:
    if "error" in runtimes:
        return [f"runtime measurement failed: {runtimes['error']}"]
    names = {"onnx": "ONNX Runtime", "tflite": "LiteRT"}
    measured = [f"{names.get(fmt, fmt)} {row['before']['p50_ms']:.3f} → {row['after']['p50_ms']:.3f} ms "
                f"({row['speedup']:.2f}×)" for fmt, row in runtimes.items() if isinstance(row, dict)]
    return [f"FP32 p50, teacher → student ({runtimes['threads']} threads): {', '.join(measured)}"] if measured else []
