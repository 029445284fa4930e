"""The ``edgekit`` Typer app: it only assembles the command groups, each of which lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from ..interrupts import Interrupted, stop_on_signals
from . import agent, compare, compress, export, report, targets, validate
from .common import err_console

app = typer.Typer(help="Take a trained model to an edge device and prove it runs well there.",
                  no_args_is_help=True, add_completion=False)
for command_group in (export, targets, agent, validate, compare, report, compress):
    command_group.register(app)


def main() -> None:
    """The ``edgekit`` script. SIGINT/SIGTERM end a run with one line and exit 130/143, after its clean-up ran;
    the process then exits at once, without waiting for device threads it no longer needs."""
    with stop_on_signals():
        try:
            app()
        except Interrupted as stop:
            err_console.print(stop.message(), highlight=False, soft_wrap=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stop.exit_code)
