"""``edgekit targets list|show``: the bundled target profiles, and any profile file, as resolved."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from ..errors import EdgekitError
from ..targets import builtin_target_files, load_target
from .common import fail, fmt, out_console

targets_app = typer.Typer(help="List and show target profiles.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``targets`` sub-command group to ``app``."""
    app.add_typer(targets_app, name="targets")


@targets_app.command("list")
def targets_list() -> None:
    """List the bundled target profiles."""
    try:
        profiles = {name: (load_target(path), path) for name, path in builtin_target_files().items()}
    except EdgekitError as error:
        fail(error)
    out_console.print(targets_table(profiles))


@targets_app.command("show")
def targets_show(name: str = typer.Argument(..., help="Target name or path to a profile .toml."),
                 as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show one target profile as resolved (defaults filled in)."""
    try:
        profile = load_target(name)
    except EdgekitError as error:
        fail(error)
    if as_json:
        sys.stdout.write(profile.model_dump_json(indent=2) + "\n")
    else:
        out_console.print_json(profile.model_dump_json())


def targets_table(profiles: dict) -> Table:
    table = Table(title="target profiles")
    for column in ("name", "arch", "formats", "precisions", "threads", "opset", "cosine ≥", "p90 ≤ ms", "file"):
        table.add_column(column)
    for name, (profile, path) in profiles.items():
        table.add_row(name, profile.arch, ", ".join(profile.formats),
                      ", ".join(p.value for p in profile.precisions), str(profile.threads), str(profile.opset),
                      fmt(profile.accuracy.cosine_min, "g"), fmt(profile.latency.p90_ms, "g"), str(path))
    return table

