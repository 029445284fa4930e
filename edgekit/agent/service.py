"""``edgekit agent install-service``: the systemd unit shipped in this package, written with this venv's Python.

The unit (``edgekit-agent.service`` beside this module) is hardened to score at most 3.0 in ``systemd-analyze
security``. Writing it puts the running interpreter into ``ExecStart`` and a first line that marks the file as
written here; a file at the destination without that line (one the user wrote) is never overwritten.
"""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path

from .._version import __version__
from ..errors import InputError
from ..files import write_text_atomic

UNIT_NAME = "edgekit-agent.service"
DEFAULT_DEST = Path("/etc/systemd/system")
WRITTEN_BY = "# Written by `edgekit agent install-service`"
HIDDEN_BY_UNIT = ("/home", "/root", "/run/user")  # ProtectHome=yes makes these inaccessible to the service


def shipped_unit() -> str:
    """The unit as shipped in the package (ExecStart with ``/opt/edgekit/venv/bin/python``)."""
    return resources.files(__package__).joinpath(UNIT_NAME).read_text(encoding="utf-8")


def unit_text(python: str | Path = sys.executable) -> str:
    """The shipped unit with ``python`` (an absolute path) in ``ExecStart`` and the written-by line on top."""
    python = Path(python)
    if not python.is_absolute():
        raise InputError(f"the interpreter {python} is not an absolute path", hint="run edgekit from its venv's bin/")
    hidden = next((h for h in HIDDEN_BY_UNIT if python.as_posix() == h or python.as_posix().startswith(h + "/")),
                  None)
    if hidden:
        raise InputError(f"this edgekit runs from {python}, under {hidden}, which the unit hides from the service "
                         "(ProtectHome=yes)",
                         hint="install the agent into a venv outside home folders: sudo python3 -m venv "
                              "/opt/edgekit/venv, then run /opt/edgekit/venv/bin/edgekit agent install-service")
    lines = []
    for line in shipped_unit().splitlines():
        if line.startswith("ExecStart="):
            _, _, rest = line.partition("=")
            line = "ExecStart=" + shlex.join([str(python), *shlex.split(rest)[1:]])
        lines.append(line)
    header = f"{WRITTEN_BY} (edgekit {__version__}, {python}); it rewrites this file, other files it leaves alone."
    return "\n".join([header, *lines]) + "\n"


def install_service(dest: Path = DEFAULT_DEST, python: str | Path = sys.executable) -> Path:
    """Write the unit into the folder ``dest``; refuses to overwrite a unit it did not write. The unit's path."""
    dest = Path(dest)
    if not dest.is_dir():
        raise InputError(f"--dest {dest} is not a folder", hint="pass the systemd unit folder, /etc/systemd/system")
    target = dest / UNIT_NAME
    text = unit_text(python)
    if target.is_symlink() or (target.exists() and not target.read_text(errors="replace").startswith(WRITTEN_BY)):
        raise InputError(f"{target} exists and was not written by `edgekit agent install-service`",
                         hint=f"move it away (or merge your changes into a drop-in, "
                              f"/etc/systemd/system/{UNIT_NAME}.d/override.conf) and run it again")
    write_text_atomic(target, text, mode=0o644)
    return target
