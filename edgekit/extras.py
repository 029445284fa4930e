"""How to install a part of edgekit that is missing: from edgekit's own checkout or agent bundle, never by name
from a package index (`edgekit` on PyPI is an unrelated project)."""

from __future__ import annotations


def install_hint(extra: str, device: bool = False) -> str:
    """The hint for a missing ``extra``; ``device``: also say how a device without the checkout gets it."""
    hint = f"install edgekit's '{extra}' extra from its checkout: pip install -e '.[{extra}]' (run in the checkout)"
    if device:
        hint += "; on a device, install the agent from a bundle (`edgekit agent bundle`, see docs/agent.md)"
    return hint
