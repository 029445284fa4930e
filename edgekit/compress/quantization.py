"""``edgekit.compress.qat``: quantization-aware fine-tuning with PT2E, then the normal export pipeline.

1. BatchNorm is folded into the convolution before it (and recorded, so the folder rebuilds): torchao 0.18's
   PT2E conv+BN QAT fusion hands plain functions to ``torch.export``, which torch 2.13 refuses.
2. ``torch.export`` (dynamic batch) → ``prepare_qat_pt2e`` with torchao's X86InductorQuantizer QAT config:
   fake-quantized int8 per-channel symmetric weights and uint8 per-tensor activations, the scheme of the ONNX
   static INT8 route (LiteRT's int8 activations have the same resolution).
3. Fine-tuning with the shared trainer (DDP under torchrun); the best epoch is the best *fake-quantized*
   validation accuracy, and ``convert_pt2e`` gives the simulated INT8 accuracy.
4. The trained weights go into the folder, and the folder goes through ``edgekit.export`` (ONNX and TFLite
   static INT8 only, calibrated, gated) into ``OUT/export/``. The gate's budget is on labels (the target's
   ``label_accuracy_drop_max``, 1 point if it sets none): QAT trains the weights to be run quantized, so their
   INT8 outputs legitimately move away from their own float outputs (the cosine and top-1 agreement are still
   measured and recorded). With ``baseline``, the original model goes through the same INT8 export first with
   the target's own budget: the post-training INT8 figures QAT is compared with.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import AccuracyError, EdgekitError, InputError
from ..progress import SilentProgress
from ..targets import AccuracyBudget, Precision, load_target
from .data import LabeledData
from .distributed import Cluster, prepare, unwrap
from .job import CompressResult, Job, LoadedModel, Options, load_model, model_name
from .measure import model_figures
from .record import fold_batchnorm_modules
from .trainer import cross_entropy, evaluate, train

CALIBRATION_SAMPLES = 128
VALIDATION_SAMPLES = 2000
EXPORT_FOLDER = "export"
LABEL_DROP_DEFAULT = 0.01


def conv_batchnorm_pairs(module, example_args: tuple) -> list[list[str]]:
    """``[conv, batchnorm]`` module names where the BatchNorm reads only that conv's output (foldable)."""
    import torch

    graph = torch.export.export(module.eval(), example_args).graph
    calls: dict[str, int] = {}
    owner = {}
    for node in graph.nodes:
        stack = list(node.meta.get("nn_module_stack", {}).values())
        if node.op == "call_function" and stack:
            owner[node] = stack[-1][0]
            calls[stack[-1][0]] = calls.get(stack[-1][0], 0) + 1
    pairs = []
    for node, name in owner.items():
        if "conv" not in str(node.target) or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        if "batch_norm" in str(user.target) and user in owner and calls[name] == 1 and calls[owner[user]] == 1:
            pairs.append([name, owner[user]])
    return pairs


def qat(model: str, *, target: str = "x86", baseline: bool = False, **options: Any) -> CompressResult:
    """Quantization-aware fine-tuning of ``model``, then ONNX/TFLite static INT8 through ``edgekit.export``.

    ``target``: the profile the INT8 export uses (it must list ``int8`` or ``int8_static``; QAT's export is static
    INT8 either way, whatever the model kind would choose). ``baseline``: export the original
    model the same way first, for post-training INT8 figures to compare with. ``options``: the shared options of
    ``job.Options``. An INT8 model that breaks the target's accuracy budget raises ``AccuracyError`` after the
    folder is written (the figures are in the record and in ``OUT/export/manifest.json``).
    """
    opts = Options(**options)
    if opts.sharding != "replicate":
        raise InputError("QAT runs data parallel (DDP) only: sharding a quantization-prepared graph is not supported",
                         hint="drop --shard for qat (QAT is for models that fit one device)")
    profile = load_target(target)
    if not {Precision.int8, Precision.int8_static} & set(profile.precisions):
        raise InputError(f"target '{profile.name}' lists no int8 or int8_static precision, so QAT would have nothing "
                         "to export", hint="choose a target with int8 or int8_static (x86, rpi, mobile)")
    job = Job("qat", opts, model_name(model))
    try:
        loaded = load_model(model, "model")
        train_data, val_data, notes = job.load_data(loaded)
        job.prepare_output(model)
        float_module = loaded.module.cpu().eval()
        before = model_figures(float_module, job.accuracy(float_module, val_data))
        float_module.cpu()
        pairs = conv_batchnorm_pairs(float_module, loaded.example_args)
        fold_batchnorm_modules(float_module, pairs, weights=True)
        with job.progress.step("export and prepare for QAT (PT2E, fake-quantized int8)"):
            prepared, how = _prepare_qat(float_module, loaded.example_args)
        fingerprint = {"method": "qat", "model": loaded.source.describe(), "train": train_data.sha256,
                       "val": val_data.sha256, "world_size": job.cluster.world_size, **opts.settings.to_dict()}
        wrapped = prepare(prepared, job.cluster, "replicate")
        result = train(wrapped, cross_entropy, train_data, val_data, job.run(fingerprint, set_mode=_set_mode))
        if not job.cluster.is_main:
            return CompressResult(None, {}, float_module)
        prepared = unwrap(wrapped).cpu()
        prepared.load_state_dict(result.best_state)
        simulated = _simulated_int8_accuracy(prepared, val_data, opts.batch_size)
        own = float_module.state_dict()
        float_module.load_state_dict({k: v for k, v in result.best_state.items() if k in own})
        float_module.eval()
        float_accuracy = evaluate(float_module, val_data, Cluster.alone(), opts.batch_size)
        provenance = {"teacher": None, "quantizer": "torchao X86InductorQuantizer (QAT): int8 per-channel symmetric "
                      "weights, uint8 per-tensor activations", "export": how, "folded_batchnorm": pairs,
                      "target": profile.name}
        record = job.record(loaded, float_module, pairs, train_data, val_data, result, provenance)
        record["metrics"] = {"before": before, "after": model_figures(float_module, float_accuracy),
                             "after_fake_quantized": {"val_accuracy": result.best_accuracy},
                             "after_simulated_int8": {"val_accuracy": simulated}}
        record["notes"] = notes
        job.write(float_module, record)
        final = job.commit(record)
        failure = _export_both(model if baseline else None, final, train_data, val_data, loaded, profile, record,
                               job.progress)
        record["notes"] += _verdict(record["metrics"])
        job.update_record(final, record, added=(EXPORT_FOLDER,))
    except BaseException:
        job.fail()
        raise
    finally:
        job.close()
    if failure is not None:
        raise AccuracyError(f"{failure.message} (the QAT model is in {final}; its export in {final / EXPORT_FOLDER})",
                            figures={**failure.figures, "out_dir": str(final)}, hint=failure.hint)
    return CompressResult(final, record, float_module)


def _prepare_qat(module, example_args: tuple):
    import torch

    from ..quiet import quiet

    with quiet(native=True):  # torchao's import logs its missing CUDA kernels from C++
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )
    args = tuple(torch.cat([a, a]) for a in example_args)  # batch 2 so the batch dimension can stay dynamic
    dynamic = tuple({0: torch.export.Dim("batch", min=1, max=1 << 16)} for _ in args)
    with quiet():
        try:
            exported, how = torch.export.export(module.train(), args, dynamic_shapes=dynamic, strict=True), "strict"
        except Exception as exc:  # dynamo refuses some Python; the non-strict graph is still quantizable
            exported = torch.export.export(module.train(), args, dynamic_shapes=dynamic)
            how = f"non-strict (strict failed: {type(exc).__name__})"
        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
        return prepare_qat_pt2e(exported.module(), quantizer), how


def _set_mode(model, training: bool) -> None:
    """A PT2E graph refuses .train()/.eval(): torchao rewrites its dropout/BatchNorm ops instead."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    (move_exported_model_to_train if training else move_exported_model_to_eval)(unwrap(model))


def _keep_mode(model, training: bool) -> None:
    """A converted PT2E graph has no train/eval switch at all: it is always in inference mode."""


def _simulated_int8_accuracy(prepared, val_data: LabeledData, batch_size: int) -> float:
    """Accuracy of ``convert_pt2e``'s reference INT8 model (quantize/dequantize in torch), on this process."""
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    _set_mode(prepared, False)
    converted = convert_pt2e(copy.deepcopy(prepared))
    return evaluate(converted, val_data, Cluster.alone(), batch_size, set_mode=_keep_mode)


def _export_both(original: str | None, folder: Path, train_data: LabeledData, val_data: LabeledData,
                 loaded: LoadedModel, profile, record: dict, progress) -> AccuracyError | None:
    """INT8 export of the QAT folder into ``folder/export`` (and of the original, for the baseline, in a temp
    folder); the figures go into ``record``. Returns the gate's failure, if any."""
    from ..exporter.pipeline import export

    work = Path(tempfile.mkdtemp(prefix="edgekit-qat-data-"))
    failure = None
    try:
        spec = loaded.spec
        calib, val = work / "calib.npz", work / "val.npz"
        _write_npz(train_data, spec.name, CALIBRATION_SAMPLES, calib)
        _write_npz(val_data, spec.name, VALIDATION_SAMPLES, val)
        exports = {}
        ptq_profile, qat_profile = int8_profiles(profile)
        formats = " / ".join(profile.formats)
        if original is not None:
            with progress.step(f"post-training INT8 of the original model ({formats}, target {profile.name})"):
                exports["ptq_before"] = _gated_export(export, original, ptq_profile, calib, val, work / "before")
        with progress.step(f"INT8 export of the QAT model ({formats}) + accuracy gate (target {profile.name})"):
            exports["qat"] = _gated_export(export, str(folder), qat_profile, calib, val, folder / EXPORT_FOLDER)
        for label, (manifest, error) in exports.items():
            record["metrics"][f"export_{label}"] = _summary(manifest) if manifest else {"error": error.message}
        failure = exports["qat"][1] if isinstance(exports["qat"][1], AccuracyError) else None
        if exports["qat"][0] is None and failure is None:
            raise exports["qat"][1]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failure


def int8_profiles(profile):
    """(baseline, QAT) profiles: static INT8 only in the target's formats; the baseline keeps the target's own
    budget, the QAT export's budget is the label accuracy (see the module docstring)."""
    only_int8 = {"precisions": [Precision.int8_static]}
    drop = profile.accuracy.label_accuracy_drop_max
    labels = AccuracyBudget(cosine_min=None, top1_agreement_min=None, max_abs_error=None,
                            label_accuracy_drop_max=LABEL_DROP_DEFAULT if drop is None else drop)
    return (profile.model_copy(update=only_int8),
            profile.model_copy(update={**only_int8, "accuracy": labels, "name": f"{profile.name}-qat"}))


def _gated_export(export, reference: str, profile, calib: Path, val: Path, out: Path):
    """(manifest, None), or (manifest-or-None, error) when the gate or the conversion failed."""
    import json

    try:
        result = export(reference, profile, out=out, calib=calib, val=val, rescue=False, progress=SilentProgress())
        return result.manifest, None
    except AccuracyError as error:
        manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else None
        return manifest, error
    except EdgekitError as error:
        return None, error


def _summary(manifest: dict) -> dict:
    rows = {}
    for art in manifest["artifacts"]:
        accuracy = art["accuracy"] or {}
        rows[art["name"]] = {"status": art["status"], "label_accuracy": accuracy.get("label_accuracy"),
                             "cosine_min": accuracy.get("cosine_min"), "top1_agreement": accuracy.get("top1_agreement"),
                             "size_bytes": art["size_bytes"], "p50_ms": (art["latency"] or {}).get("p50_ms"),
                             "rejected_reason": art["rejected_reason"]}
    return {"status": manifest["status"], "recommended": manifest["recommended"], "artifacts": rows}


def _write_npz(data: LabeledData, name: str, limit: int, path: Path) -> None:
    """Up to ``limit`` samples of ``data``, evenly spread, as an .npz keyed by the input name, with labels."""
    import numpy as np

    picked = np.unique(np.linspace(0, len(data) - 1, min(limit, len(data))).astype(int))  # spread over the classes
    inputs = np.stack([data.dataset[int(i)][0].numpy() for i in picked])
    np.savez(path, **{name: inputs, "labels": data.labels[picked]})


def _verdict(metrics: dict) -> list[str]:
    """What QAT did to the INT8 accuracy, per format, in plain words."""
    original = metrics["before"]["val_accuracy"]
    notes = []
    qat_rows = (metrics.get("export_qat") or {}).get("artifacts", {})
    ptq_rows = (metrics.get("export_ptq_before") or {}).get("artifacts", {})
    for name, row in qat_rows.items():
        if row["label_accuracy"] is None:
            continue
        ptq = ptq_rows.get(name) or {}
        before, rejected = ptq.get("label_accuracy"), ptq.get("rejected_reason")
        compared = (f" (post-training INT8 of the original: {before:.2%})" if before is not None else
                    f" (post-training INT8 of the original: no figure, {rejected})" if rejected else "")
        notes.append(f"{name} after QAT: {row['label_accuracy']:.2%} label accuracy{compared}; the original float "
                     f"model: {original:.2%}")
    if metrics["after"]["val_accuracy"] < metrics["after_fake_quantized"]["val_accuracy"]:
        notes.append(f"the QAT weights score {metrics['after']['val_accuracy']:.2%} run in float and "
                     f"{metrics['after_fake_quantized']['val_accuracy']:.2%} quantized: deploy the INT8 models")
    return notes
