"""The systemd unit shipped in the package: hardened (scored offline by systemd-analyze) and written by
`edgekit agent install-service` with this venv's Python, never over a unit edgekit did not write."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.agent.service import HIDDEN_BY_UNIT, UNIT_NAME, WRITTEN_BY, install_service, shipped_unit, unit_text
from edgekit.errors import InputError

CLI = [sys.executable, "-m", "edgekit.cli"]
MAX_EXPOSURE = 3.0
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (apt-get install systemd)")


def exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr
    return float(found.group(1))


@needs_analyze
def test_the_shipped_and_the_written_unit_score_at_most_3(tmp_path):
    shipped = tmp_path / "shipped" / UNIT_NAME
    shipped.parent.mkdir()
    shipped.write_text(shipped_unit())
    assert exposure(shipped) <= MAX_EXPOSURE
    written = install_service(tmp_path, python=sys.executable)
    assert exposure(written) <= MAX_EXPOSURE
    verify = subprocess.run(["systemd-analyze", "verify", str(written)], capture_output=True, text=True, timeout=60)
    assert "edgekit-agent.service" not in verify.stderr, verify.stderr


def test_the_unit_runs_this_venvs_python_and_stops_retrying_on_permanent_errors():
    text = unit_text("/opt/my venv/bin/python")
    assert text.startswith(WRITTEN_BY)
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart='/opt/my venv/bin/python' -m edgekit.cli agent serve --host 0.0.0.0")
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["RestartPreventExitStatus"] == "2 7"  # InputError, AgentSetupError (edgekit/errors.py, auth.py)
    assert settings["CapabilityBoundingSet"] == "" and settings["MemoryMax"] and settings["UMask"] == "0077"


def test_install_service_rewrites_its_own_unit_and_never_a_users(tmp_path):
    first = install_service(tmp_path, python=sys.executable)
    assert first.stat().st_mode & 0o777 == 0o644 and sys.executable in first.read_text()
    assert install_service(tmp_path, python=sys.executable) == first
    mine = "[Service]\nExecStart=/usr/bin/true\n"
    first.write_text(mine)
    result = subprocess.run([*CLI, "agent", "install-service", "--dest", str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "was not written by `edgekit agent install-service`" in result.stderr
    assert first.read_text() == mine
    first.unlink()
    if sys.executable.startswith(HIDDEN_BY_UNIT):
        pytest.skip(f"this venv ({sys.executable}) lies where the unit hides it; the refusal has its own test")
    result = subprocess.run([*CLI, "agent", "install-service", "--dest", str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and f"wrote {first}" in result.stdout, result.stderr
    assert f"ExecStart={sys.executable} -m edgekit.cli agent serve" in first.read_text()


def test_a_venv_in_a_home_folder_is_refused_because_the_unit_hides_it(tmp_path):
    with pytest.raises(InputError, match="ProtectHome=yes"):
        install_service(tmp_path, python="/home/pi/venv/bin/python")
    assert not (tmp_path / UNIT_NAME).exists()
