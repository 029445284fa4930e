"""`edgekit agent bundle`: a wheelhouse pinned by sha256 that installs the agent with no network at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgekit.agent.bundle import build_bundle
from edgekit.errors import InputError

OFFLINE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}


@pytest.fixture(scope="module")
def index_reachable(tmp_path_factory):
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            "--dest", str(tmp_path_factory.mktemp("probe")), "typer"], capture_output=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip("no package index reachable from here: a bundle is built where PyPI is")


def check_hashes(folder: Path) -> dict[str, str]:
    pinned = {}
    for line in (folder / "requirements.txt").read_text().splitlines():
        name_version, _, digest = line.partition(" --hash=sha256:")
        pinned[name_version.split("==")[0].lower()] = digest
    wheels = list(folder.glob("*.whl"))
    assert len(wheels) == len(pinned)
    for wheel in wheels:
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == pinned[wheel.name.split("-")[0].lower()]
    return pinned


def test_an_aarch64_bundle_has_every_wheel_for_a_pi(index_reachable, tmp_path):
    folder = build_bundle(tmp_path / "pi", arch="aarch64", python="3.11")
    pinned = check_hashes(folder)
    assert {"edgekit", "onnxruntime", "numpy", "ai_edge_litert", "fastapi", "uvicorn", "cryptography"} <= set(pinned)
    assert "torch" not in pinned
    native = [w.name for w in folder.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    assert native and all("aarch64" in name for name in native), native
    assert os.access(folder / "install.sh", os.X_OK)


def test_an_x86_bundle_installs_and_serves_with_no_network(index_reachable, tmp_path):
    folder = build_bundle(tmp_path / "x86", arch="x86_64", python=f"{sys.version_info.major}.{sys.version_info.minor}")
    check_hashes(folder)
    with zipfile.ZipFile(next(folder.glob("edgekit-*.whl"))) as wheel:  # edgekit's own wheel, built from here
        tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"edgekit"}  # no testkit/, tests/, bench/
    isolate = ["unshare", "-n"] if shutil.which("unshare") and os.geteuid() == 0 else []
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([*isolate, str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
                              "--find-links", str(folder), "edgekit[agent]"], env=OFFLINE_ENV, capture_output=True,
                             text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import edgekit.agent.server, edgekit.agent.tls, "
                            "cryptography; import sys; assert 'torch' not in sys.modules"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    token = subprocess.run([str(venv / "bin" / "edgekit"), "agent", "token", "--token-file", str(tmp_path / "t")],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert token.returncode == 0 and len(token.stdout.split()[0]) >= 43


def test_bundle_options_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="--arch armv7l"):
        build_bundle(tmp_path / "a", arch="armv7l")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="is not empty"):
        build_bundle(tmp_path / "b")
    assert not (tmp_path / "a").exists() and [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]
