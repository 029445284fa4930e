"""What every command shares: the two consoles, one way to print an error and exit, and the token option."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console

from ..errors import EdgekitError

_PIPE_WIDTH = 200  # rich uses 80 columns when not on a terminal; the export table needs about 190
out_console = Console() if sys.stdout.isatty() else Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=_PIPE_WIDTH)


def print_problem(message: str, hint: str | None = None) -> None:
    """One red error line and, where there is one, a hint line (on stderr)."""
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint:[/] {hint}", highlight=False, soft_wrap=True)


def fail(error: EdgekitError) -> NoReturn:
    """Print ``error`` for a person and exit with its code: no traceback reaches the user."""
    print_problem(error.message, error.hint)
    raise typer.Exit(error.exit_code)


def fmt(value, spec: str, empty: str = "—") -> str:
    """``value`` formatted by ``spec`` for a table cell, or a dash where there is no figure."""
    return empty if value is None else format(value, spec)


def fingerprint_option() -> Optional[str]:
    """``--fingerprint``: the agent's TLS certificate SHA-256, when the token file has no ``tls-fingerprint:`` line."""
    return typer.Option(None, "--fingerprint", help="The agent's TLS certificate SHA-256 (what `edgekit agent token` "
                                                    "prints), pinned for https:// agents. Default: the token file's "
                                                    "tls-fingerprint line, else $EDGEKIT_AGENT_FINGERPRINT.")


def token_file_option(help_text: str = "The agent's token file. Default: $EDGEKIT_AGENT_TOKEN.") -> Optional[Path]:
    """``--token-file``, spelled the same by every command that talks to an agent."""
    return typer.Option(None, "--token-file", help=help_text)


def tokenizer_option() -> Optional[Path]:
    """``--tokenizer``: how a sentences file becomes token inputs (export, validate and compare)."""
    return typer.Option(None, "--tokenizer", help="The model's Hugging Face tokenizer (a folder holding "
                                                  "tokenizer.json, or that file): a .txt of sentences given as data "
                                                  "is tokenized with it.")


def preprocess_option() -> Optional[str]:
    """``--preprocess``: how a folder of images becomes the model's input (export, validate and compare)."""
    return typer.Option(None, "--preprocess", help="How a folder of images given as data becomes the model input: "
                                                   "'resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/"
                                                   "0.225,layout=nchw,channels=rgb' (or a .json/.toml file).")
