"""What the device looks like and how it is doing: CPU, memory, runtimes, governor, temperature, throttling."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from .._version import __version__
from .emulation import emulation

_RUNTIMES = ("onnxruntime", "ai-edge-litert", "tflite-runtime", "numpy")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def conditions() -> dict:
    """Readings that change while benchmarking; ``None`` where this device does not expose them."""
    temps = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        value = _read(str(zone))
        if value and value.lstrip("-").isdigit():
            temps.append(int(value) / 1000.0)
    throttled = None
    if shutil.which("vcgencmd"):
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2)
            throttled = out.stdout.strip().partition("=")[2] or None
        except (OSError, subprocess.TimeoutExpired):
            throttled = None
    return {"governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "cpu_mhz": _mhz(_read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")),
            "temperature_c": max(temps) if temps else None, "throttled": throttled,
            "load_1min": round(os.getloadavg()[0], 2)}


def _mhz(khz: str | None) -> float | None:
    return int(khz) / 1000.0 if khz and khz.isdigit() else None


def device_info() -> dict:
    runtimes = {}
    for name in _RUNTIMES:
        try:
            runtimes[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    memory = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    cpu = next((line.split(":", 1)[1].strip() for line in (_read("/proc/cpuinfo") or "").splitlines()
                if line.startswith(("model name", "Hardware", "Model"))), platform.processor() or "unknown")
    emulated = emulation()  # how the agent knows it runs under qemu: emulated["evidence"]
    return {"agent_version": __version__, "arch": platform.machine(), "cpu": cpu, "cores": os.cpu_count(),
            "memory_bytes": memory, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "runtimes": runtimes, "conditions": conditions(),
            "emulated": emulated["emulated"], "emulation": emulated}
