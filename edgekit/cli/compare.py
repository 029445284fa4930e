"""``edgekit compare``: a thin shell over ``edgekit.compare.compare`` (wired by ``register(app)``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import EdgekitError
from ..files import to_json
from ..progress import SilentProgress, ThreadedProgress
from .common import (
    err_console,
    fail,
    fingerprint_option,
    out_console,
    preprocess_option,
    print_problem,
    token_file_option,
    tokenizer_option,
)


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare")(compare_command)


def compare_command(
    artifact_dir: Path = typer.Argument(..., help="Artifact folder written by `edgekit export`."),
    agents: list[str] = typer.Option(..., "--agent", "-a", help="Agent URL http://HOST:PORT, or NAME=URL to name "
                                                                "the device; repeat for several (run in parallel)."),
    cloud: str = typer.Option("local", "--cloud", help="'local': the FP32 model on this host, the best way it "
                                                       "has (all CPU cores, or a GPU); or the base URL of a KServe "
                                                       "v2 server (an edgekit agent is one)."),
    cloud_model: Optional[str] = typer.Option(None, "--cloud-model", help="Model name on the KServe v2 server. "
                                                                          "Default: the FP32 file's sha256 (the name "
                                                                          "an edgekit agent uses)."),
    cloud_token_file: Optional[Path] = typer.Option(None, "--cloud-token-file", help="Bearer token for the cloud "
                                                                                     "server. Default: "
                                                                                     "$EDGEKIT_CLOUD_TOKEN."),
    token_file: Optional[Path] = token_file_option("The agents' token file. Default: $EDGEKIT_AGENT_TOKEN."),
    fingerprint: Optional[str] = fingerprint_option(),
    rtt: Optional[list[str]] = typer.Option(None, "--rtt", help="RTT profile NAME=MS, added to or overriding wired 5, "
                                                                "wifi 20, 4g 60, 3g 150; repeatable."),
    fail_if: Optional[list[str]] = typer.Option(None, "--fail-if", help="Gate METRIC OP NUMBER, e.g. 'p90_ms>20' "
                                                                        "(fails when it holds); repeatable."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A previous report.json of the same model: "
                                                                     "fail on a p50 regression."),
    max_regression: Optional[str] = typer.Option(None, "--max-regression", help="Allowed p50 slow-down against "
                                                                                "--baseline, e.g. 10% (default)."),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed runs on each device and in the cloud (at least)."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed warm-up runs."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", min=0.0, help="Keep timing until this much time passed."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation inputs (.npz keyed by input name, a folder "
                                                           "of images with --preprocess, or a .txt of sentences with "
                                                           "--tokenizer). Default: the export's validation data."),
    tokenizer: Optional[Path] = tokenizer_option(),
    preprocess: Optional[str] = preprocess_option(),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for report.json and report.html. Default: "
                                                                 "the artifact folder."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads on the devices. Default: the "
                                                                          "target profile's."),
    all_candidates: bool = typer.Option(False, "--all", help="Every usable candidate on the devices, not only the "
                                                             "recommended one."),
    timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Wall-clock limit per run on a device (s)."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json on stdout (progress goes nowhere)."),
) -> None:
    """Is the edge worth it? Run the artifact on devices (as `edgekit validate` does) and the original FP32 model in
    the cloud, then give a verdict per device (the network round-trip time above which the edge is faster), check
    the gates and write report.json + report.html.

    Exit codes:
    0 every gate passed;
    2 bad input: malformed --fail-if or --rtt, a baseline of another model, a missing file;
    5 a gate failed: target budget, --fail-if, regression against --baseline;
    6 an agent or the cloud failed: unreachable, wrong token, unknown model or other inputs, a crashed run."""
    from ..evaluate.compare import compare

    progress = SilentProgress() if as_json else ThreadedProgress(err_console)
    try:
        result = compare(artifact_dir, agents, cloud=cloud, token_file=token_file, fingerprint=fingerprint,
                         cloud_model=cloud_model,
                         cloud_token_file=cloud_token_file, rtt=rtt, fail_if=fail_if, baseline=baseline,
                         max_regression=max_regression, runs=runs, warmup=warmup, min_seconds=min_seconds, val=val,
                         tokenizer=tokenizer, preprocess=preprocess, out=out, threads=threads,
                         all_candidates=all_candidates, timeout_s=timeout,
                         progress=progress)
    except EdgekitError as error:
        fail(error)
    finally:
        if isinstance(progress, ThreadedProgress):
            progress.close()
    if as_json:
        sys.stdout.write(to_json(result.report) + "\n")
    else:
        from ..evaluate.report.show import print_report

        print_report(out_console, result.report)
        out_console.print(f"report: [bold]{result.json_path}[/] · [bold]{result.html_path}[/]", highlight=False)
    for message, hint in result.failed_runs:
        print_problem(message, hint)
    for note in result.report["cloud"].get("notes") or []:
        err_console.print(f"[yellow]![/] cloud: {note}", highlight=False, soft_wrap=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
