"""The ``edgekit`` command line: a thin Typer shell over the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import cli_compare, cli_report, cli_validate
from .cli_agent import agent_app
from .errors import AccuracyError, EdgekitError, ExportError, InputError
from .targets import Format

app = typer.Typer(help="Take a trained model to an edge device and prove it runs well there.",
                  no_args_is_help=True, add_completion=False)
targets_app = typer.Typer(help="List and show target profiles.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
app.add_typer(agent_app, name="agent")
cli_validate.register(app)
cli_report.register(app)
cli_compare.register(app)

_PIPE_WIDTH = 150  # rich uses 80 columns when not on a terminal, which truncates the tables
out_console = Console() if sys.stdout.isatty() else Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=_PIPE_WIDTH)


def _fail(error: EdgekitError) -> None:
    err_console.print(f"[red]error:[/] {error.message}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[dim]hint:[/] {error.hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@app.command()
def export(
    model: Optional[str] = typer.Argument(None, help="file.py:factory, package.module:factory, or model.onnx. "
                                                     "Defaults to 'model' in ./edgekit.toml."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target name (see `edgekit targets list`) "
                                                                      "or path to a profile .toml. Default: x86."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Artifact folder. Default: edgekit-out/NAME-TARGET."),
    inputs: Optional[list[str]] = typer.Option(None, "--input", "-i",
                                               help="NAME:1x3x224x224[:float32]; repeat per input."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Calibration data: .npz keyed by input name, "
                                                              "or a folder of .npy/.npz."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same format; 'labels' key optional)."),
    format: Optional[Format] = typer.Option(None, "--format", "-f", help="onnx or tflite (every candidate must "
                                            "pass), or auto: build all the target allows, pick the fastest that "
                                            "passes. Default: auto if the target allows several formats."),
    dynamic_batch: Optional[bool] = typer.Option(None, "--dynamic-batch/--static-batch",
                                                 help="Make the first axis of every input dynamic."),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Run onnxsim."),
    cosine_min: Optional[float] = typer.Option(None, "--cosine-min", help="Override the profile's cosine budget."),
    top1_min: Optional[float] = typer.Option(None, "--top1-min", help="Override the top-1 agreement budget."),
    max_abs_error: Optional[float] = typer.Option(None, "--max-abs-error", help="Override the max abs error budget."),
    benchmark: bool = typer.Option(True, "--benchmark/--no-benchmark", help="Measure host latency per artifact."),
    rescue: bool = typer.Option(True, "--rescue/--no-rescue", help="If static INT8 breaks the budget, retry with "
                                                                   "the most sensitive layers kept in float."),
    agent: Optional[str] = typer.Option(None, "--agent", help="Measure candidate latency on this device's agent "
                                                              "(http://HOST:PORT) instead of this host."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="The agent's token file. Default: "
                                                                         "$EDGEKIT_AGENT_TOKEN."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
) -> None:
    """Export MODEL for a target: ONNX, simplify, optimize, quantize, accuracy gate, artifact folder."""
    from .progress import RichProgress, SilentProgress
    from .project import load_project

    try:
        from .pipeline import export as run_export
    except ImportError as exc:
        _fail(ExportError(f"`edgekit export` needs the export extra ({exc.name} is not installed)",
                          hint="pip install 'edgekit[export]'"))

    try:
        project = load_project()
        config = project[0] if project else None
        model = model or (config.model if config else None)
        if not model:
            raise InputError("no MODEL given and no 'model' in ./edgekit.toml",
                             hint="pass MODEL (file.py:factory or model.onnx) or run where an edgekit.toml names it")
        kwargs = dict(
            target=target or (config and config.target) or "x86",
            out=out or (config and config.out and Path(config.out)) or None,
            inputs=inputs or (config and config.inputs) or None,
            calib=calib or (config and config.calib) or None,
            val=val or (config and config.val) or None,
            format=(format.value if format else None) or (config and config.format) or None,
            dynamic_batch=dynamic_batch if dynamic_batch is not None else bool(config and config.dynamic_batch),
            simplify=simplify,
            accuracy={"cosine_min": cosine_min, "top1_agreement_min": top1_min, "max_abs_error": max_abs_error},
            benchmark=benchmark, rescue=rescue, overwrite=overwrite, agent=agent, token_file=token_file,
        )
        progress = SilentProgress() if as_json else RichProgress(err_console)
        result = run_export(model, progress=progress, **kwargs)
    except AccuracyError as error:
        if as_json and error.figures:
            out_console.print_json(json.dumps({"error": error.message, "figures": error.figures}))
        _fail(error)
    except EdgekitError as error:
        _fail(error)
    if as_json:
        sys.stdout.write(json.dumps(result.manifest, indent=2) + "\n")
    else:
        from .console import print_export_summary

        print_export_summary(out_console, result.manifest, result.out_dir)


@targets_app.command("list")
def targets_list() -> None:
    """List the bundled target profiles."""
    from .console import targets_table
    from .targets import builtin_target_files, load_target

    try:
        profiles = {name: (load_target(path), path) for name, path in builtin_target_files().items()}
    except EdgekitError as error:
        _fail(error)
    out_console.print(targets_table(profiles))


@targets_app.command("show")
def targets_show(name: str = typer.Argument(..., help="Target name or path to a profile .toml."),
                 as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show one target profile as resolved (defaults filled in)."""
    from .targets import load_target

    try:
        profile = load_target(name)
    except EdgekitError as error:
        _fail(error)
    if as_json:
        sys.stdout.write(profile.model_dump_json(indent=2) + "\n")
    else:
        out_console.print_json(profile.model_dump_json())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
