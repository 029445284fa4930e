"""The ``edgekit`` Typer app: it only assembles the command groups, each of which lives in its own module."""

from __future__ import annotations

import typer

from . import agent, compare, compress, export, report, targets, validate

app = typer.Typer(help="Take a trained model to an edge device and prove it runs well there.",
                  no_args_is_help=True, add_completion=False)
for command_group in (export, targets, agent, validate, compare, report, compress):
    command_group.register(app)


def main() -> None:
    app()
