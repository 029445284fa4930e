"""The ``edgekit`` command line: a thin Typer shell over the Python API (``app.py`` assembles the commands)."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
