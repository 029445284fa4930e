"""``edgekit.compress.prune``: structured (channels removed) or unstructured (weights zeroed) pruning, then
fine-tuning, with parameters, size, accuracy and runtime latency before and after."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InputError
from . import structured as channel_pruning
from . import unstructured as weight_pruning
from .distributed import prepare
from .job import CompressResult, Job, Options, load_model, model_name
from .measure import model_figures
from .trainer import cross_entropy, train

NO_SPEEDUP_BELOW = 1.10  # a ratio under this is within what this kind of shared machine measures as noise


def check_amount(amount: float) -> float:
    if not 0 < amount < 1:
        raise InputError(f"the pruning amount must lie strictly between 0 and 1, got {amount}",
                         hint="pass --amount 0.5 to remove half of the channels (or weights)")
    return amount


def prune(model: str, *, amount: float = 0.5, unstructured: bool = False, keep: list[str] | None = None,
          round_to: int | None = None, measure_target: str = "x86", **options: Any) -> CompressResult:
    """Prune ``model`` (``file.py:factory``, ``pkg.mod:factory`` or a compressed folder) and fine-tune it.

    ``amount``: the fraction of channels (structured, the default) or of weights (``unstructured=True``) removed.
    ``keep``: layer names never pruned (the output layers are kept automatically). ``round_to``: keep channel
    counts a multiple of this (SIMD-friendly). ``options``: the shared options of ``job.Options`` (``train``,
    ``val``, ``out``, ``epochs``, ``batch_size``, ``lr``, ``preprocess``, ``sharding``, ``resume``…).
    """
    check_amount(amount)
    opts = Options(**options)
    kind = "unstructured" if unstructured else "structured"
    job = Job("prune", opts, model_name(model))
    try:
        loaded = load_model(model, "model")
        train_data, val_data, notes = job.load_data(loaded)
        job.prepare_output(model)
        module = loaded.module
        before = model_figures(module, job.accuracy(module, val_data))
        module = module.cpu()
        with job.progress.step(f"{kind} pruning, amount {amount:g}"):
            if unstructured:
                details = weight_pruning.prune_weights(module, amount)
            else:
                kept = sorted(set(channel_pruning.output_layers(module, loaded.example_args)) | set(keep or []))
                details = channel_pruning.prune_channels(module, loaded.example_args, amount, kept, round_to)
        pruned_accuracy = job.accuracy(module, val_data)
        fingerprint = {"method": "prune", "kind": kind, "amount": amount, "model": loaded.source.describe(),
                       "keep": sorted(keep or []), "round_to": round_to, "train": train_data.sha256,
                       "val": val_data.sha256, "world_size": job.cluster.world_size, **opts.settings.to_dict()}
        final = copy.deepcopy(module)  # the plain module the best weights go into (FSDP2 shards the trained one)
        wrapped = prepare(module, job.cluster, opts.sharding)
        result = train(wrapped, cross_entropy, train_data, val_data, job.run(fingerprint))
        if unstructured:
            weight_pruning.make_permanent(final)
        if not job.cluster.is_main:
            return CompressResult(None, {}, final)
        final.load_state_dict(weight_pruning.permanent_state(result.best_state) if unstructured else result.best_state)
        final.eval()
        provenance = {"kind": kind, "amount": amount, "teacher": None, "pruning": details}
        record = job.record(loaded, final, [], train_data, val_data, result, provenance)
        after = model_figures(final, result.best_accuracy)
        record["metrics"] = {"before": before, "pruned_before_fine_tuning": {"val_accuracy": pruned_accuracy},
                             "after": after}
        if unstructured:
            record["metrics"]["sparsity"] = weight_pruning.sparsity(final)
        record["notes"] = notes
        folder = job.commit_measured(final, record, model, measure_target,
                                     lambda runtimes: runtime_notes(runtimes, kind, record["metrics"].get("sparsity")))
        return CompressResult(folder, record, final)
    except BaseException:
        job.fail()
        raise
    finally:
        job.close()


def runtime_notes(runtimes: dict[str, Any], kind: str, sparsity: dict | None) -> list[str]:
    """Plain sentences on what the measurement showed (speed-up or none)."""
    if "error" in runtimes:
        return [f"runtime measurement failed: {runtimes['error']}"]
    ratios = {fmt: row["speedup"] for fmt, row in runtimes.items() if isinstance(row, dict) and "speedup" in row}
    if not ratios:
        return []
    names = {"onnx": "ONNX Runtime", "tflite": "LiteRT"}
    measured = ", ".join(f"{names.get(fmt, fmt)} {ratio:.2f}×" for fmt, ratio in ratios.items())
    if kind == "unstructured":
        zeros = f"{sparsity['zero_fraction']:.0%} of the weights are zero, but" if sparsity else "the"
        verdict = ("so unstructured sparsity does not speed up a dense runtime here"
                   if max(ratios.values()) < NO_SPEEDUP_BELOW else "a speed-up this run measured anyway")
        return [f"{zeros} dense runtimes still multiply every weight: measured {measured} the original's speed, "
                f"{verdict}; the saving is in the compressed download size (gzip) and it needs a sparse kernel "
                "or structured pruning to run faster"]
    return [f"structured pruning, measured speed against the original: {measured}"]
