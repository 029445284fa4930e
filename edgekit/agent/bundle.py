"""``edgekit agent bundle``: an offline wheelhouse for a device without internet (a Pi on a lab network).

Built on the workstation from this checkout: edgekit's own wheel, the wheels of ``edgekit[agent]``'s dependencies
for the device's CPU and Python (``pip download --only-binary=:all: --platform … --python-version …``), a
``requirements.txt`` that pins every wheel by sha256, and ``install.sh`` that makes a venv and installs from the
folder alone (``pip install --no-index --find-links DIR --require-hashes``). ``edgekit`` on PyPI is an unrelated
project: the bundle never asks an index for edgekit itself.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ..errors import InputError
from .auth import AgentSetupError

ARCHES = ("aarch64", "x86_64")
MANYLINUX = ("manylinux_2_36", "manylinux_2_28", "manylinux_2_27", "manylinux2014")  # Debian 12 has glibc 2.36
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")

INSTALL_SH = """#!/bin/sh
# Install the edgekit agent from this folder alone (no network): ./install.sh [VENV]   (default /opt/edgekit/venv)
# Needs python{python} with venv (Debian: apt install python3-venv). Then: sudo VENV/bin/edgekit agent install-service
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${{1:-/opt/edgekit/venv}}
python{python} -m venv "$venv"
"$venv/bin/python" -m pip install --no-index --find-links "$here" --require-hashes -r "$here/requirements.txt"
"$venv/bin/edgekit" agent --help > /dev/null
echo "installed the edgekit agent into $venv; next: sudo $venv/bin/edgekit agent install-service"
"""


def checkout_root() -> Path:
    """The source checkout this edgekit runs from (a bundle builds edgekit's wheel from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "edgekit" / "agent").is_dir():
        raise InputError("this edgekit is installed from a wheel, not run from its source checkout",
                         hint="run `edgekit agent bundle` from the venv of an edgekit git checkout")
    return root


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise AgentSetupError(f"pip {args[0]} failed: {' / '.join(tail)[:600]}",
                              hint="the bundle is built on a machine that reaches PyPI; every dependency needs a "
                                   "wheel for the device's CPU and Python")


def requirements(folder: Path) -> str:
    """``name==version --hash=sha256:…`` for every wheel in ``folder``, sorted by name."""
    lines = []
    for wheel in sorted(folder.glob("*.whl"), key=lambda p: p.name.lower()):
        found = _WHEEL.match(wheel.name)
        if found is None:
            raise AgentSetupError(f"{wheel.name} is not a wheel file name", hint="remove it from the bundle folder")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{found['name']}=={found['version']} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def build_bundle(out: Path, arch: str = "aarch64", python: str = "3.11") -> Path:
    """Fill ``out`` (new or empty) with the wheelhouse, ``requirements.txt`` and ``install.sh``; returns ``out``."""
    if arch not in ARCHES:
        raise InputError(f"--arch {arch} is not one of {list(ARCHES)}", hint="aarch64 for a 64-bit Pi OS")
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise InputError(f"--python {python} is not a Python version like 3.11", hint="Pi OS bookworm has 3.11")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out} is not empty", hint="pass a new folder; a bundle is built from scratch")
    root = checkout_root()
    out.mkdir(parents=True, exist_ok=True)
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(root))
    own = next(out.glob("edgekit-*.whl"))
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{arch}")]
    abi = f"cp{python.replace('.', '')}"
    _pip("download", "--quiet", "--dest", str(out), "--only-binary=:all:", "--python-version", python,
         "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none", *platforms,
         f"edgekit[agent] @ {own.resolve().as_uri()}")
    (out / "requirements.txt").write_text(requirements(out))
    script = out / "install.sh"
    script.write_text(INSTALL_SH.format(python=shlex.quote(python)))
    script.chmod(0o755)
    return out
