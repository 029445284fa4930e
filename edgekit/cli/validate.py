"""``edgekit validate``: a thin shell over ``edgekit.validate.validate`` (wired by ``register(app)``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import EdgekitError
from ..files import to_json
from ..progress import SilentProgress, ThreadedProgress
from .common import (
    err_console,
    fail,
    fingerprint_option,
    fmt,
    out_console,
    preprocess_option,
    print_problem,
    token_file_option,
    tokenizer_option,
)

_STATUS = {"ok": "[green]ok[/]", "runtime_crashed": "[red]✗ crashed[/]", "timeout": "[red]✗ timeout[/]",
           "error": "[red]✗ error[/]"}


def register(app: typer.Typer) -> None:
    """Add the ``validate`` and ``select`` commands to ``app``."""
    app.command("validate")(validate_command)
    app.command("select")(select_command)


def validate_command(
    artifact_dir: Path = typer.Argument(..., help="Artifact folder written by `edgekit export`."),
    agents: list[str] = typer.Option(..., "--agent", "-a", help="Agent URL http://HOST:PORT; repeat for several "
                                                                "devices (validated in parallel)."),
    token_file: Optional[Path] = token_file_option(),
    fingerprint: Optional[str] = fingerprint_option(),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation inputs (.npz keyed by input name, a folder "
                                                           "of images with --preprocess, or a .txt of sentences with "
                                                           "--tokenizer). Default: the export's validation data."),
    tokenizer: Optional[Path] = tokenizer_option(),
    preprocess: Optional[str] = preprocess_option(),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads on the device. Default: the "
                                                                          "target profile's."),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed runs on the device (at least)."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed warm-up runs."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", min=0.0, help="Keep timing until this much time passed."),
    all_candidates: bool = typer.Option(False, "--all", help="Validate every usable candidate, not only the "
                                                             "recommended one."),
    max_p50: Optional[float] = typer.Option(None, "--max-p50", help="Override the target's p50 latency budget (ms)."),
    max_p90: Optional[float] = typer.Option(None, "--max-p90", help="Override the target's p90 latency budget (ms)."),
    timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Wall-clock limit per run on the device (s)."),
    as_json: bool = typer.Option(False, "--json", help="Print validation.json on stdout (progress goes nowhere)."),
) -> None:
    """Run an artifact on devices through their agents: upload, benchmark, compare outputs with this host, check
    the target's budgets. Writes validation.json into the folder. Exit 0 passed, 5 budget broken, 6 agent error."""
    from ..evaluate.validate import validate

    progress = SilentProgress() if as_json else ThreadedProgress(err_console)
    try:
        result = validate(artifact_dir, agents, token_file=token_file, fingerprint=fingerprint, val=val, tokenizer=tokenizer,
                          preprocess=preprocess, threads=threads, runs=runs, warmup=warmup,
                          min_seconds=min_seconds, all_candidates=all_candidates,
                          latency={"p50_ms": max_p50, "p90_ms": max_p90}, timeout_s=timeout, progress=progress)
    except EdgekitError as error:
        fail(error)
    finally:
        if isinstance(progress, ThreadedProgress):
            progress.close()
    if as_json:
        sys.stdout.write(to_json(result.report) + "\n")
    else:
        print_validation(out_console, result)
    for message, hint in result.problems():
        print_problem(message, hint)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def select_command(
    artifact_dir: Path = typer.Argument(..., help="Artifact folder validated with `edgekit validate --all`."),
) -> None:
    """Make the measured choice from the folder's validation.json and record it in manifest.json: the fastest
    candidate that passed on the first device of the target's architecture that is not emulated."""
    from ..evaluate.select import select

    try:
        selection = select(artifact_dir)
    except EdgekitError as error:
        fail(error)
    print_selection(out_console, selection)
    if selection.decided_by is None:
        print_problem("no measured choice was made", "validate with --all against an agent on a device of the "
                                                     "target's architecture (not an emulator)")
        raise typer.Exit(1)


def print_validation(console, result) -> None:
    for device in result.report["devices"]:
        if device["error"]:  # nothing ran there: the reason is printed as an error line
            console.print(f"[red]✗[/] {device['agent']}: not validated", highlight=False)
            continue
        info = device["device"]
        emulated = ", [bold yellow]emulated[/]: latency not the target's" if info.get("emulated") else ""
        table = Table(title=f"edgekit validate → {device['agent']}: {info.get('cpu', '?')} "
                            f"({info.get('arch', '?')}, {info.get('cores', '?')} cores{emulated})")
        for column in ("artifact", "status", "p50 ms", "p90 ms", "p99 ms", "p50 CI ms", "cosine min", "top-1",
                       "upload", "budget"):
            table.add_column(column, justify="left" if column in ("artifact", "status", "upload", "budget")
                             else "right", no_wrap=True)
        for check in device["artifacts"]:
            bench = check["benchmark"] or {}
            latency = bench.get("latency") or {}
            accuracy = check["accuracy"] or {}
            interval = latency.get("p50_ci_ms")
            upload = check["upload"] or {}
            verdict = ("[green]✓ within[/]" if check["passed"] else "[red]✗ broken[/]" if check["violations"]
                       else "—")
            table.add_row(check["file"], _STATUS.get(bench.get("status") or "error", bench.get("status") or "—"),
                          fmt(latency.get("p50_ms"), ".3f"), fmt(latency.get("p90_ms"), ".3f"),
                          fmt(latency.get("p99_ms"), ".3f"),
                          f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "—",
                          fmt(accuracy.get("cosine_min"), ".5f"), fmt(accuracy.get("top1_agreement"), ".2%"),
                          ("sent" if upload.get("uploaded") else "skipped") if upload else "—", verdict)
        console.print(table)
        for note in device["notes"] + [f"{c['file']}: {n}" for c in device["artifacts"] for n in c["notes"]]:
            console.print(f"[yellow]![/] {device['agent']}: {note}", soft_wrap=True, highlight=False)
    print_selection(console, result.selection)
    verdict = "[green]passed[/]" if result.passed else "[red]failed[/]"
    console.print(f"validation {verdict} on {len(result.devices)} device(s); results: [bold]{result.path}[/]",
                  highlight=False)


def print_selection(console, selection) -> None:
    """The measured choice made from the devices (validate --all, edgekit select), or why none was made."""
    if selection is None:
        return
    for note in selection.notes:
        console.print(f"[yellow]![/] choice: {note}", soft_wrap=True, highlight=False)
    if selection.decided_by:
        change = (f"(was {selection.previous})" if selection.changed else "(unchanged)")
        console.print(f"[bold green]★[/] measured choice on {selection.decided_by}: [bold]{selection.recommended}[/] "
                      f"{change}; recorded in manifest.json", soft_wrap=True, highlight=False)
