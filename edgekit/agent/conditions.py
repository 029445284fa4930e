"""What the device looks like and how it is doing: CPU, memory, runtimes, governor, temperature, throttling.

``machine()`` is the one description of the machine that latency is measured on, from one reading of
``/proc/cpuinfo``: architecture, CPU, the CPU features that decide which kernels can run, and whether it runs
emulated (``emulation.py``, with the evidence). The agent's ``/v1/info`` and the manifest's
``latency_measured_on`` (host or device) both carry it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from .._version import __version__
from .emulation import emulation

_RUNTIMES = ("onnxruntime", "ai-edge-litert", "tflite-runtime", "openvino", "numpy")
# CPU flags that decide which inference kernels can run, as /proc/cpuinfo names them: x86 vector widths, int8
# dot products (VNNI) and matrix units (AMX); ARM NEON, int8 dot products (asimddp), int8 matrix multiply
# (i8mm), half and bfloat16 arithmetic, SVE.
INFERENCE_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                   "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
                   "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")


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


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The inference-relevant flags of the first CPU in ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``), in
    ``INFERENCE_FLAGS`` order; empty where the file is not readable."""
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    line = next((line for line in (text or "").splitlines() if line.startswith(("flags", "Features"))), "")
    present = set(line.partition(":")[2].split())
    return [flag for flag in INFERENCE_FLAGS if flag in present]


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's name as ``/proc/cpuinfo`` gives it (x86 ``model name``, ARM ``Hardware``/``Model``)."""
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    return next((line.split(":", 1)[1].strip() for line in (text or "").splitlines()
                 if line.startswith(("model name", "Hardware", "Model"))), platform.processor() or "unknown")


def machine() -> dict:
    """``{"arch", "cpu", "cpu_features", "emulated", "emulation"}`` for the machine this process runs on.

    Under an emulator that passes the host's ``/proc/cpuinfo`` through (qemu-user before 8.2), that file describes
    the host's CPU, not the emulated one: its features are then not this userland's and are left out (the
    emulation evidence says why)."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    emulated = emulation(cpuinfo)
    foreign = any(line.startswith("/proc/cpuinfo describes") for line in emulated["evidence"])
    return {"arch": platform.machine(), "cpu": cpu_name(cpuinfo), "cpu_features": [] if foreign else
            cpu_features(cpuinfo), "emulated": emulated["emulated"], "emulation": emulated}


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
    described = machine()  # arch, CPU, features and emulation (how the agent knows it runs under qemu)
    return {"agent_version": __version__, "arch": described["arch"], "cpu": described["cpu"],
            "cpu_features": described["cpu_features"], "cores": os.cpu_count(), "memory_bytes": memory,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "runtimes": runtimes, "conditions": conditions(), "emulated": described["emulated"],
            "emulation": described["emulation"]}
