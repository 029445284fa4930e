"""``edgekit report show``: a thin shell over ``edgekit.report`` (wired by ``register(app)``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..errors import EdgekitError
from ..files import to_json
from .common import fail, out_console

report_app = typer.Typer(help="Read compare reports (report.json written by `edgekit compare`).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``report`` sub-command group (``report show``) to ``app``."""
    app.add_typer(report_app, name="report")


@report_app.command("show")
def show_command(
    path: Path = typer.Argument(..., help="report.json written by `edgekit compare` (or its folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Print a compare report's verdicts, per-device latency, cloud baseline and gates."""
    from ..evaluate.report import load_report
    from ..evaluate.report.show import print_report

    try:
        report = load_report(path)
    except EdgekitError as error:
        fail(error)
    if as_json:
        sys.stdout.write(to_json(report) + "\n")
    else:
        print_report(out_console, report)
