"""``edgekit compress prune|distill|qat``: a thin shell over ``edgekit.compress``, and the before/after tables.

Under ``torchrun`` every process runs the command; only rank 0 prints and writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..errors import EdgekitError, InputError
from ..extras import install_hint
from ..files import to_json
from ..interrupts import Interrupted
from .common import err_console, fail, fmt, out_console

compress_app = typer.Typer(help="Prune, distil or quantization-aware-train a PyTorch classifier (one process, or "
                                "data parallel / sharded under torchrun).", no_args_is_help=True)


class Sharding(str, Enum):
    none = "none"
    full = "full"
    hybrid = "hybrid"


def register(app: typer.Typer) -> None:
    """Add the ``compress`` sub-command group to ``app``."""
    app.add_typer(compress_app, name="compress")


TRAIN = typer.Option(..., "--train", help="Training data: .npz with the input array and 'labels', or an image "
                                          "folder with one sub-folder per class (needs --preprocess).")
VAL = typer.Option(None, "--val", help="Validation data (same formats). Default: 10% of --train held out.")
OUT = typer.Option(None, "--out", "-o", help="Result folder (model.safetensors + compressed.json). "
                                            "Default: edgekit-out/NAME-METHOD.")
EPOCHS = typer.Option(10, "--epochs", help="Fine-tuning epochs.")
BATCH = typer.Option(64, "--batch-size", help="Global batch, split evenly across processes.")
LR = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW, cosine decay over the epochs).")
WEIGHT_DECAY = typer.Option(1e-4, "--weight-decay", help="AdamW weight decay.")
SEED = typer.Option(0, "--seed", help="Seed of the shuffle and of every random draw.")
PREPROCESS = typer.Option(None, "--preprocess", help="Image preprocessing, e.g. 'resize=256,crop=224,"
                                                     "mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw,"
                                                     "channels=rgb', or a .json/.toml file.")
SHARD = typer.Option(Sharding.none, "--shard", help="none: DDP (replicas); full: FSDP2 across all processes; "
                                                    "hybrid: FSDP2 on a 2-D mesh (replicate across nodes, shard "
                                                    "within a node).")
DEVICE = typer.Option("auto", "--device", help="auto (this process's GPU if any, else CPU), cpu or cuda.")
BACKEND = typer.Option("auto", "--backend", help="auto (gloo on CPU, nccl on GPUs), gloo or nccl.")
RESUME = typer.Option(False, "--resume", help="Continue an interrupted run from OUT.checkpoints/.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing result folder.")
MEASURE = typer.Option(True, "--measure/--no-measure", help="Export FP32 ONNX/TFLite before and after and time them.")
THREADS = typer.Option(None, "--threads", help="Intra-op threads per process (default: torch's; torchrun sets 1).")
AS_JSON = typer.Option(False, "--json", help="Print the record as JSON on stdout.")


_SHARED = ("train", "val", "out", "epochs", "batch_size", "lr", "weight_decay", "seed", "preprocess", "device",
           "backend", "resume", "overwrite", "measure", "threads")


def _options(values: dict[str, Any], shard: Sharding = Sharding.none) -> dict[str, Any]:
    """The shared keyword arguments of the API from a command's parameters (``locals()``)."""
    from ..compress.progress import RichTraining, SilentTraining

    quiet = values["as_json"] or not _is_main()
    return {**{name: values[name] for name in _SHARED if name in values},
            "sharding": "replicate" if shard == Sharding.none else shard.value,
            "progress": SilentTraining() if quiet else RichTraining(err_console)}


@compress_app.command("prune")
def prune_command(
    model: str = typer.Argument(..., help="file.py:factory, package.module:factory, or a compressed folder."),
    amount: float = typer.Option(0.5, "--amount", help="Fraction of channels (or, unstructured, of weights) to "
                                                       "remove, strictly between 0 and 1."),
    unstructured: bool = typer.Option(False, "--unstructured", help="Zero the smallest weights (torch.nn.utils."
                                                                    "prune) instead of removing channels."),
    keep: list[str] | None = typer.Option(None, "--keep", help="Layer never pruned (repeatable); the output "
                                                                  "layers are always kept."),
    round_to: int | None = typer.Option(None, "--round-to", help="Keep channel counts a multiple of N."),
    target: str = typer.Option("x86", "--target", "-t", help="Profile whose formats/threads time before/after."),
    train: Path = TRAIN, val: Path | None = VAL, out: Path | None = OUT, epochs: int = EPOCHS,
    batch_size: int = BATCH, lr: float = LR, weight_decay: float = WEIGHT_DECAY, seed: int = SEED,
    preprocess: str | None = PREPROCESS, shard: Sharding = SHARD, device: str = DEVICE, backend: str = BACKEND,
    resume: bool = RESUME, overwrite: bool = OVERWRITE, measure: bool = MEASURE, threads: int | None = THREADS,
    as_json: bool = AS_JSON,
) -> None:
    """Prune MODEL (structured by default), fine-tune it, and compare it with the original."""
    from ..compress.pruning import prune

    options = _options(locals(), shard)
    _run(lambda: prune(model, amount=amount, unstructured=unstructured, keep=keep, round_to=round_to,
                       measure_target=target, **options), prune_table, as_json)


@compress_app.command("distill")
def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="The large model: file.py:factory, pkg.mod:factory or a "
                                                       "compressed folder."),
    student: str = typer.Option(..., "--student", help="The small model's factory (architecture and initial "
                                                       "weights)."),
    temperature: float = typer.Option(4.0, "--temperature", help="Softmax temperature of the soft targets."),
    soft_weight: float = typer.Option(0.5, "--soft-weight", help="Weight of the soft-target (KL) term."),
    hard_weight: float = typer.Option(0.5, "--hard-weight", help="Weight of the hard-label (cross-entropy) term."),
    baseline: bool = typer.Option(False, "--baseline", help="Also train the same student without the teacher, "
                                                            "for comparison."),
    target: str = typer.Option("x86", "--target", "-t", help="Profile whose formats/threads time teacher/student."),
    train: Path = TRAIN, val: Path | None = VAL, out: Path | None = OUT, epochs: int = EPOCHS,
    batch_size: int = BATCH, lr: float = LR, weight_decay: float = WEIGHT_DECAY, seed: int = SEED,
    preprocess: str | None = PREPROCESS, shard: Sharding = SHARD, device: str = DEVICE, backend: str = BACKEND,
    resume: bool = RESUME, overwrite: bool = OVERWRITE, measure: bool = MEASURE, threads: int | None = THREADS,
    as_json: bool = AS_JSON,
) -> None:
    """Distil TEACHER into STUDENT: soft targets at a temperature plus the hard labels."""
    from ..compress.distillation import distill

    options = _options(locals(), shard)
    _run(lambda: distill(teacher, student, temperature=temperature, soft_weight=soft_weight, hard_weight=hard_weight,
                         baseline=baseline, measure_target=target, **options), distill_table, as_json)


@compress_app.command("qat")
def qat_command(
    model: str = typer.Argument(..., help="file.py:factory, package.module:factory, or a compressed folder."),
    target: str = typer.Option("x86", "--target", "-t",
                               help="Profile of the INT8 export (must list int8 or int8_static)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also export the original model to INT8 "
                                                            "(post-training), for before/after figures."),
    train: Path = TRAIN, val: Path | None = VAL, out: Path | None = OUT, epochs: int = EPOCHS,
    batch_size: int = BATCH, lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (QAT fine-tunes "
                                                                         "gently)."),
    weight_decay: float = WEIGHT_DECAY, seed: int = SEED, preprocess: str | None = PREPROCESS,
    device: str = DEVICE, backend: str = BACKEND, resume: bool = RESUME, overwrite: bool = OVERWRITE,
    threads: int | None = THREADS, as_json: bool = AS_JSON,
) -> None:
    """Quantization-aware fine-tuning (PT2E), then ONNX/TFLite INT8 through the export pipeline and its gate."""
    from ..compress.quantization import qat

    options = _options(locals())
    _run(lambda: qat(model, target=target, baseline=baseline, **options), qat_table, as_json)


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _run(call: Callable, table: Callable[[dict], Table], as_json: bool) -> None:
    try:
        result = call()
    except (KeyboardInterrupt, Interrupted) as stop:
        if _is_main():
            err_console.print("[yellow]![/] interrupted; the last finished epoch is checkpointed beside the result "
                              "folder: run the same command with --resume to continue")
        if isinstance(stop, Interrupted):
            raise
        raise typer.Exit(130)
    except EdgekitError as error:
        if _is_main() or not isinstance(error, InputError):
            fail(error)
        raise typer.Exit(error.exit_code)
    except ImportError as exc:
        fail(InputError(f"`edgekit compress` needs the compress extra ({exc.name} is not installed)",
                        hint=install_hint("compress")))
    if result.out_dir is None:
        return
    if as_json:
        sys.stdout.write(to_json(result.record) + "\n")
        return
    out_console.print(table(result.record))
    for note in result.record["notes"]:
        out_console.print(f"[yellow]![/] {note}", soft_wrap=True)
    training = result.record["training"]
    out_console.print(f"best epoch {training['best_epoch']} of {result.record['provenance']['epochs']} on "
                      f"{result.record['provenance']['world_size']} process(es); result: [bold]{result.out_dir}[/] "
                      "(model.safetensors + compressed.json; `edgekit export` takes the folder)")


def _change(before, after, spec: str, ratio: bool = False) -> str:
    if before is None or after is None:
        return "—"
    if ratio:
        return f"{after / before:.2f}×" if before else "—"
    return format(after - before, spec)


def _runtime_rows(table: Table, runtimes: dict | None) -> None:
    names = {"onnx": "ONNX Runtime", "tflite": "LiteRT"}
    for fmt_name, row in (runtimes or {}).items():
        if not isinstance(row, dict) or "before" not in row:
            continue
        label = names.get(fmt_name, fmt_name)
        table.add_row(f"{label} FP32 file", f"{row['before']['file_bytes'] / 1024:.1f} KiB",
                      f"{row['after']['file_bytes'] / 1024:.1f} KiB",
                      _change(row["before"]["file_bytes"], row["after"]["file_bytes"], "", ratio=True))
        table.add_row(f"{label} p50 ({runtimes['threads']} threads)", f"{row['before']['p50_ms']:.4f} ms",
                      f"{row['after']['p50_ms']:.4f} ms", f"{row['speedup']:.2f}× the speed")


def prune_table(record: dict) -> Table:
    metrics = record["metrics"]
    before, after = metrics["before"], metrics["after"]
    provenance = record["provenance"]
    table = Table(title=f"edgekit compress prune ({provenance['kind']}, amount {provenance['amount']:g})")
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("parameters", f"{before['params']:,}", f"{after['params']:,}",
                  f"{after['params'] / before['params'] - 1:+.1%}")
    if "sparsity" in metrics:
        table.add_row("zero weights (Conv/Linear)", "—", f"{metrics['sparsity']['zero_fraction']:.1%}", "")
    table.add_row("weights (safetensors)", f"{before['safetensors_bytes'] / 1024:.1f} KiB",
                  f"{after['safetensors_bytes'] / 1024:.1f} KiB",
                  _change(before["safetensors_bytes"], after["safetensors_bytes"], "", ratio=True))
    table.add_row("weights, gzip", f"{before['safetensors_gzip_bytes'] / 1024:.1f} KiB",
                  f"{after['safetensors_gzip_bytes'] / 1024:.1f} KiB",
                  _change(before["safetensors_gzip_bytes"], after["safetensors_gzip_bytes"], "", ratio=True))
    table.add_row("val accuracy", fmt(before["val_accuracy"], ".2%"), fmt(after["val_accuracy"], ".2%"),
                  f"{(after['val_accuracy'] - before['val_accuracy']) * 100:+.2f} pts")
    table.add_row("val accuracy before fine-tuning", "", fmt(metrics["pruned_before_fine_tuning"]["val_accuracy"],
                                                             ".2%"), "")
    _runtime_rows(table, metrics.get("runtimes"))
    return table


def distill_table(record: dict) -> Table:
    metrics = record["metrics"]
    table = Table(title=f"edgekit compress distill (T = {record['provenance']['temperature']:g})")
    for column in ("model", "parameters", "val accuracy"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_row("teacher", f"{metrics['teacher']['params']:,}", fmt(metrics["teacher"]["val_accuracy"], ".2%"))
    table.add_row("student, distilled", f"{metrics['after']['params']:,}", fmt(metrics["after"]["val_accuracy"], ".2%"))
    if "student_alone" in metrics:
        table.add_row("student, labels only", f"{metrics['after']['params']:,}",
                      fmt(metrics["student_alone"]["val_accuracy"], ".2%"))
    table.add_row("student, untrained", f"{metrics['student_untrained']['params']:,}",
                  fmt(metrics["student_untrained"]["val_accuracy"], ".2%"))
    return table


def qat_table(record: dict) -> Table:
    metrics = record["metrics"]
    table = Table(title=f"edgekit compress qat (target {record['provenance']['target']})")
    for column in ("model", "val accuracy", "status"):
        table.add_column(column, justify="right" if column == "val accuracy" else "left")
    table.add_row("original, float", fmt(metrics["before"]["val_accuracy"], ".2%"), "")
    table.add_row("after QAT, weights run in float", fmt(metrics["after"]["val_accuracy"], ".2%"), "")
    table.add_row("after QAT, fake-quantized (training)", fmt(metrics["after_fake_quantized"]["val_accuracy"], ".2%"),
                  "")
    table.add_row("after QAT, simulated INT8 (convert_pt2e)", fmt(metrics["after_simulated_int8"]["val_accuracy"],
                                                                 ".2%"), "")
    for label, title in (("export_ptq_before", "original, post-training INT8"), ("export_qat", "after QAT, INT8")):
        summary = metrics.get(label)
        if summary is None:
            continue
        if "error" in summary:
            table.add_row(f"{title}: export", "—", summary["error"])
            continue
        for name, row in summary["artifacts"].items():
            table.add_row(f"{title}: {name}", fmt(row["label_accuracy"], ".2%"), row["status"])
    return table
