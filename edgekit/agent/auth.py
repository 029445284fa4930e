"""The agent's bearer token: >= 128 bits from ``secrets``, created once, stored 0600, compared in constant time."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from ..errors import EdgekitError, InputError

TOKEN_BYTES = 32  # 256 bits
MIN_TOKEN_CHARS = 22  # 128 bits of url-safe base64


class AgentSetupError(EdgekitError):
    """The agent cannot start: the port is taken, the address does not resolve, the token file is unsafe."""

    exit_code = 7


def default_token_path() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return config / "edgekit" / "agent-token"


def load_or_create_token(path: Path) -> str:
    """Read the token file, or create it with a fresh token (mode 0600, never overwriting)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--token-file {path} is a folder", hint="pass the path of a file (it is created, mode 0600, "
                                                                  "if missing)")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AgentSetupError(f"token file {path} is readable by others (mode {mode:o})",
                              hint=f"chmod 600 {path}")
    lines = path.read_text().strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise AgentSetupError(f"token in {path} is too short (< 128 bits)",
                              hint="delete the file; the agent creates a strong token on its next start")
    return token


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
