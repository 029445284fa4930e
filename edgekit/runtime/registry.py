"""The runtimes edgekit can run, one declaration each: how a format's files are recognised and opened.

This is the device side of a route (``exporter/routes/``): the agent, validate, compare and the exporter's gate
all open models through it, so a format is named here once. Built-in runtimes are declared in
``runtime/__init__.py``; a plugin module (named in ``EDGEKIT_PLUGINS``, comma-separated, or by an
``edgekit.plugins`` entry point) registers its own with ``register_runtime`` when imported, in every process that
opens models (the agent's worker child inherits the variable).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import InputError

PLUGINS_ENV = "EDGEKIT_PLUGINS"
PLUGIN_GROUP = "edgekit.plugins"


@dataclass(frozen=True)
class Runtime:
    """One format's runtime. ``open(path, threads, **runner_options)`` runs an artifact folder's file;
    ``open_stored(path, threads, runner_options)`` runs the agent's stored copy (from bytes where the runtime can,
    so a model cannot reach other files); ``sniff(head)`` recognises an upload's first 16 bytes (a runtime with
    ``fallback`` takes what no other recognised: ONNX has no magic number); ``archs`` limits the target
    architectures a profile may name it for."""

    format: str
    label: str
    suffixes: tuple[str, ...]
    open: Callable[..., Any]
    open_stored: Callable[[Path, int, dict], Any]
    sniff: Callable[[bytes], bool]
    v2_platform: str
    fallback: bool = False
    archs: tuple[str, ...] | None = None  # the architectures it runs on here (None: every one), and why
    archs_why: str = ""


_RUNTIMES: dict[str, Runtime] = {}
_plugins_loaded = False


def register_runtime(runtime: Runtime) -> Runtime:
    """Declare a runtime; a second one for the same format or suffix is refused."""
    taken = {s: r.format for r in _RUNTIMES.values() for s in r.suffixes}
    clash = [s for s in runtime.suffixes if s in taken]
    if runtime.format in _RUNTIMES or clash:
        raise ValueError(f"runtime '{runtime.format}' clashes with one already registered "
                         f"({runtime.format if runtime.format in _RUNTIMES else taken[clash[0]]})")
    _RUNTIMES[runtime.format] = runtime
    return runtime


def runtimes() -> list[Runtime]:
    """Every registered runtime, built-ins first, then plugins in load order."""
    load_plugins()
    return list(_RUNTIMES.values())


def runtime(format_name: str) -> Runtime:
    found = next((r for r in runtimes() if r.format == format_name), None)
    if found is None:
        raise KeyError(f"no runtime for format '{format_name}'; known: {', '.join(formats())}")
    return found


def formats() -> list[str]:
    return [r.format for r in runtimes()]


def runtime_for_path(path: str | Path) -> Runtime | None:
    """The runtime whose artifact files end like ``path`` (case-insensitive), or None."""
    suffix = Path(path).suffix.lower()
    return next((r for r in runtimes() if suffix in r.suffixes), None)


def runtime_for_bytes(head: bytes) -> Runtime | None:
    """The runtime that recognises an upload's first bytes; the fallback runtime for bytes no other claims."""
    ordered = sorted(runtimes(), key=lambda r: r.fallback)
    return next((r for r in ordered if r.sniff(head)), None)


def load_plugins() -> None:
    """Import the plugin modules once: ``EDGEKIT_PLUGINS`` and the ``edgekit.plugins`` entry points."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    try:
        for name in names:
            importlib.import_module(name)
        for entry in metadata.entry_points(group=PLUGIN_GROUP):
            entry.load()
    except ImportError as exc:
        raise InputError(f"an edgekit plugin does not import: {exc}",
                         hint=f"fix or remove it from {PLUGINS_ENV} (or uninstall the package that declares it)"
                         ) from None
