"""``edgekit export``: a thin shell over ``edgekit.export``, and the table that shows its result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import AccuracyError, EdgekitError, ExportError
from ..exporter.options import describe
from ..extras import install_hint
from ..files import to_json
from .common import err_console, fail, fmt, out_console


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export_command)


def export_command(
    model: Optional[str] = typer.Argument(None, help=describe("model")),
    target: Optional[str] = typer.Option(None, "--target", "-t", help=describe("target")),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=describe("out")),
    inputs: Optional[list[str]] = typer.Option(None, "--input", "-i", help=describe("inputs")),
    outputs: Optional[list[str]] = typer.Option(None, "--output", help=describe("outputs")),
    calib: Optional[Path] = typer.Option(None, "--calib", help=describe("calib")),
    val: Optional[Path] = typer.Option(None, "--val", help=describe("val")),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help=describe("tokenizer")),
    preprocess: Optional[str] = typer.Option(None, "--preprocess", help=describe("preprocess")),
    format: Optional[str] = typer.Option(None, "--format", "-f", help=describe("format")),
    dynamic_batch: Optional[bool] = typer.Option(None, "--dynamic-batch/--static-batch",
                                                 help=describe("dynamic_batch")),
    simplify: Optional[bool] = typer.Option(None, "--simplify/--no-simplify", help=describe("simplify")),
    cosine_min: Optional[float] = typer.Option(None, "--cosine-min", help=describe("cosine_min")),
    top1_min: Optional[float] = typer.Option(None, "--top1-min", help=describe("top1_min")),
    max_abs_error: Optional[float] = typer.Option(None, "--max-abs-error", help=describe("max_abs_error")),
    benchmark: Optional[bool] = typer.Option(None, "--benchmark/--no-benchmark", help=describe("benchmark")),
    rescue: Optional[bool] = typer.Option(None, "--rescue/--no-rescue", help=describe("rescue")),
    rescue_budget_s: Optional[float] = typer.Option(None, "--rescue-budget-s", help=describe("rescue_budget_s")),
    agent: Optional[str] = typer.Option(None, "--agent", help=describe("agent")),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help=describe("token_file")),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite/--no-overwrite", help=describe("overwrite")),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
    plan: bool = typer.Option(False, "--plan", help="Print every candidate that would be built, with its ordered "
                                                    "steps and settings, and why the others are not; build nothing."),
) -> None:
    """Export MODEL for a target: ONNX, simplify, optimize, quantize, accuracy gate, artifact folder.

    Every option can also be set in ./edgekit.toml (docs/export.md); an option given here wins over the file."""
    from ..progress import RichProgress, SilentProgress

    try:
        from ..exporter.options import export
        from ..exporter.pipeline import export as _needs_the_export_extra  # noqa: F401
    except ImportError as exc:
        fail(ExportError(f"`edgekit export` needs the export extra ({exc.name} is not installed)",
                         hint=install_hint("export")))

    given = dict(target=target, out=out, inputs=inputs or None, outputs=outputs or None, calib=calib, val=val,
                 tokenizer=tokenizer, preprocess=preprocess, format=format, dynamic_batch=dynamic_batch,
                 simplify=simplify, cosine_min=cosine_min, top1_min=top1_min, max_abs_error=max_abs_error,
                 benchmark=benchmark, rescue=rescue, rescue_budget_s=rescue_budget_s, agent=agent,
                 token_file=token_file, overwrite=overwrite)
    try:
        if plan:
            _print_plan(model, given)
            return
        progress = SilentProgress() if as_json else RichProgress(err_console)
        result = export(model, progress=progress, **given)
    except AccuracyError as error:
        if as_json and error.figures:
            out_console.print_json(to_json({"error": error.message, "figures": error.figures}))
        fail(error)
    except EdgekitError as error:
        fail(error)
    if as_json:
        sys.stdout.write(to_json(result.manifest) + "\n")
    else:
        print_export_summary(out_console, result.manifest, result.out_dir)


def _print_plan(model, given: dict) -> None:
    """``--plan``: the options merged as for a run (edgekit.toml included), planned, printed; nothing built."""
    from ..exporter.options import resolve_options
    from ..exporter.plan import plan_export

    opts = resolve_options(model, **given)
    planned = plan_export(opts.model, opts.target, format=opts.format, inputs=opts.inputs,
                          dynamic_batch=opts.dynamic_batch, simplify=opts.simplify)
    for line in planned.lines():
        out_console.print(line, soft_wrap=True, markup=False, highlight=False)


_STATUS = {"selected": "[bold green]★ selected[/]", "passed": "[green]✓ passed[/]", "rejected": "[red]✗ rejected[/]"}
_PROVISIONAL = "[bold yellow]☆ provisional[/]"


def artifacts_table(manifest: dict) -> Table:
    table = Table(title=f"edgekit export → target {manifest['target']['name']} (format {manifest['format']})")
    measured_on = manifest.get("latency_measured_on") or {}
    where = measured_on.get("where", "host") + (", emulated" if measured_on.get("emulated") else "")
    provisional = (manifest.get("choice") or {}).get("provisional")
    if provisional:  # below the table, so the status column keeps its width
        info_only = "latency: info only (not measured on the target); " if measured_on else ""
        table.caption = f"{info_only}☆ provisional: chosen by rule"
    for column in ("candidate", "file", "size", "cosine min", "top-1", "label acc", f"p50 ms ({where})", "p90 ms",
                   "compute", "status"):
        table.add_column(column, justify="left" if column in ("candidate", "file", "compute", "status") else "right",
                         no_wrap=True)
    for art in manifest["artifacts"]:
        acc = art["accuracy"] or {}
        latency = art["latency"] or {}
        size = f"{art['size_bytes'] / 1024:.1f} KiB" if art["size_bytes"] is not None else "—"
        table.add_row(art["name"], art["file"] or "—", size, fmt(acc.get("cosine_min"), ".5f"),
                      fmt(acc.get("top1_agreement"), ".2%"), fmt(acc.get("label_accuracy"), ".2%"),
                      fmt(latency.get("p50_ms"), ".3f"), fmt(latency.get("p90_ms"), ".3f"),
                      compute_text(art.get("execution")),
                      _PROVISIONAL if provisional and art["status"] == "selected" else _STATUS[art["status"]])
    return table


def compute_text(execution: dict | None) -> str:
    """Where the runtime tells (OpenVINO): the precisions its compute layers run in and the commonest kernel,
    e.g. ``i8×52 f32×1 · jit_avx2_1x1_I8`` (the kernel names the instruction set: avx2, avx512, amx)."""
    if not execution:
        return "—"
    layers = " ".join(f"{p}×{n}" for p, n in execution["compute_precisions"].items())
    kernel = next(iter(execution["compute_kernels"]), None)
    return " · ".join(part for part in (layers or execution["inference_precision"], kernel) if part)


def outputs_table(manifest: dict) -> Table:
    """Accuracy per output and candidate, with each output's kind (the figures its kind is judged on): a stacked
    output's channel groups on rows of their own, a detection/mask/sequence output's task figure."""
    table = Table(title="accuracy per output (kind: declared or inferred; why: below)")
    for column in ("candidate", "output", "kind", "cosine min", "cosine mean", "max abs err", "top-1", "task"):
        table.add_column(column, justify="left" if column in ("candidate", "output", "kind", "task") else "right",
                         no_wrap=True)
    for art in manifest["artifacts"]:
        for out in (art["accuracy"] or {}).get("outputs", []):
            kind = out["kind"] + ("" if out["kind_declared"] else " (inferred)")
            table.add_row(art["name"], out["name"], kind, fmt(out["cosine_min"], ".5f"),
                          fmt(out["cosine_mean"], ".5f"), fmt(out["max_abs_error"], ".4g"),
                          fmt(out["top1_agreement"], ".2%"), task_text(out.get("task")))
            for group in out.get("groups") or []:
                table.add_row("", f"  {group['label']}", "group", fmt(group["cosine_min"], ".5f"),
                              fmt(group["cosine_mean"], ".5f"), fmt(group["max_abs_error"], ".4g"), "—", "")
    return table


def task_text(task: dict | None) -> str:
    """``F1 0.950 (P 0.97 R 0.93, 40 boxes)``, ``IoU 0.981``, ``symbols 0.992 (95% same)``, or ``—``."""
    if not task:
        return "—"
    details = task["details"]
    if task["metric"] == "detection_f1":
        return (f"F1 {fmt(task['value'], '.3f')} (P {fmt(details['precision'], '.2f')} "
                f"R {fmt(details['recall'], '.2f')}, {details['reference_detections']} boxes)")
    if task["metric"] == "mask_iou":
        return f"IoU {fmt(task['value'], '.3f')}"
    return f"symbols {fmt(task['value'], '.3f')} ({fmt(details['sequence_agreement'], '.0%')} same)"


def kind_lines(manifest: dict) -> list[str]:
    """Each output's kind and why: ``output 'output0': detection (inferred: a YOLO-style head: …)``."""
    return [f"output '{out['name']}': {out['kind']} "
            f"({'declared' if out['declared'] else 'inferred: ' + out['evidence']})"
            for out in manifest.get("outputs", []) if "evidence" in out]


def _preparation_lines(manifest: dict) -> list[str]:
    """The model kind, and what graph preparation and fusion changed or left alone (fixed dims, opset upgrade,
    subgraphs kept in float, fused ops)."""
    steps = {s["step"]: s["details"] for s in manifest["steps"]}
    prepare, lines = steps.get("prepare", {}), []
    if manifest.get("model_kind"):
        lines.append(f"model kind: {manifest['model_kind']['kind']} ({manifest['model_kind']['reason']})")
    if steps.get("fuse_transformer", {}).get("fused_ops"):
        fused = steps["fuse_transformer"]
        lines.append(f"fuse_transformer ({fused['fuser']}): " + ", ".join(
            f"{count} {op}" for op, count in fused["fused_ops"].items()))
    if prepare.get("fixed_dims"):
        lines.append(f"prepare: input dims {prepare['fixed_dims']}")
    if prepare.get("opset_upgrade"):
        lines.append(f"prepare: opset {prepare['opset_upgrade']}")
    if prepare.get("control_flow_left_in_float"):
        lines.append(f"prepare: {len(prepare['control_flow_left_in_float'])} If/Loop/Scan node(s) keep their "
                     "subgraphs in float")
    lines += [f"{name} skipped: {details['skipped_because']}" for name, details in steps.items()
              if "skipped_because" in details]
    return lines


def print_export_summary(console: Console, manifest: dict, out_dir) -> None:
    console.print(artifacts_table(manifest))
    outputs = manifest.get("outputs", [])
    if len(outputs) > 1 or any(out.get("groups") or out.get("task_metric") for out in outputs):
        console.print(outputs_table(manifest))
    for line in kind_lines(manifest):
        console.print(f"[cyan]i[/] {line}", soft_wrap=True)
    reference = next((a["accuracy"]["reference_label_accuracy"] for a in manifest["artifacts"]
                      if a["accuracy"] and a["accuracy"]["reference_label_accuracy"] is not None), None)
    if reference is not None:
        console.print(f"original model label accuracy: {reference:.2%} on {manifest['data']['validation']['samples']}"
                      " validation samples")
    for art in manifest["artifacts"]:
        if art["rejected_reason"]:
            console.print(f"[red]✗[/] {art['name']}: {art['rejected_reason']}", soft_wrap=True)
        for note in art["notes"]:
            console.print(f"[yellow]![/] {art['name']}: {note}", soft_wrap=True)
        fusion = next((s["details"].get("host_fusion") for s in art["steps"] if "host_fusion" in s["details"]), None)
        if fusion and fusion["float_compute_ops"]:
            console.print(f"[yellow]![/] {art['name']}: {fusion['float_compute_ops']} compute op(s) stay in float "
                          f"on this host: {', '.join(fusion['left_in_float'][:5])}", soft_wrap=True)
    for line in _preparation_lines(manifest):
        console.print(f"[cyan]i[/] {line}", soft_wrap=True)
    for note in manifest["notes"]:
        console.print(f"[yellow]![/] {note}", soft_wrap=True)
    choice = manifest.get("choice") or {}
    kind = f" (provisional, by rule: {choice['rule']})" if choice.get("provisional") else ""
    console.print(f"artifact folder: [bold]{out_dir}[/] (manifest.json); recommended: "
                  f"[bold]{manifest['recommended']}[/]{kind}", soft_wrap=True)
