"""Does this process run under emulation (qemu user mode), and how do we know?

An ARM64 userland run through qemu-user on an x86 host reports ``aarch64`` everywhere qemu can fake it (uname,
``/proc/self/maps``, ``/proc/self/exe``). Three readings qemu does not fake give it away; each one found is kept as
evidence, in words:

- the kernel's own architecture (``/proc/sys/kernel/arch``, Linux ≥ 6.1) differs from the userland's, and the
  pair is not one the kernel runs natively (a 32-bit ARM userland on an arm64 kernel is native);
- this thread's real memory map (``/proc/self/task/<tid>/maps``, which qemu 7–9 do not intercept) maps qemu;
- ``/proc/cpuinfo`` describes another architecture's CPU (qemu before 8.2 passes the host's through).

On real hardware none of them fires; latency measured where any does is not the device's latency.
"""

from __future__ import annotations

import platform
import threading
from pathlib import Path

# (kernel, userland) pairs the kernel runs natively: compat modes, not emulation
_NATIVE = {("aarch64", "armv7l"), ("aarch64", "armv8l"), ("aarch64", "arm"), ("x86_64", "i686"),
           ("x86_64", "i386"), ("x86_64", "i586")}
_FAMILY = {"x86_64": "x86", "i386": "x86", "i586": "x86", "i686": "x86", "amd64": "x86", "aarch64": "arm",
           "arm64": "arm", "armv7l": "arm", "armv8l": "arm", "arm": "arm"}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo_family(text: str) -> str | None:
    """``x86`` or ``arm`` from the fields ``/proc/cpuinfo`` has on each (None when it says neither)."""
    keys = {line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line}
    if "vendor_id" in keys and "flags" in keys:
        return "x86"
    if "CPU implementer" in keys or "Features" in keys:
        return "arm"
    return None


def emulation() -> dict:
    """``{"emulated": bool, "emulator": "qemu-user" | None, "evidence": [...]}`` for this process."""
    machine = platform.machine()
    evidence = []
    kernel = (_read("/proc/sys/kernel/arch") or "").strip()
    if kernel and kernel != machine and (kernel, machine) not in _NATIVE:
        evidence.append(f"the kernel is {kernel} (/proc/sys/kernel/arch) but this userland is {machine}")
    maps = f"/proc/self/task/{threading.get_native_id()}/maps"
    qemu = next((line.split()[-1] for line in (_read(maps) or "").splitlines() if "qemu-" in line.split()[-1]), None)
    if qemu:
        evidence.append(f"{qemu} is mapped into this process ({maps})")
    cpu = _cpuinfo_family(_read("/proc/cpuinfo") or "")
    if cpu and _FAMILY.get(machine) and cpu != _FAMILY[machine]:
        evidence.append(f"/proc/cpuinfo describes an {cpu} CPU but this userland is {machine}")
    emulator = "qemu-user" if qemu or _qemu_binfmt(machine) else ("unknown" if evidence else None)
    return {"emulated": bool(evidence), "emulator": emulator, "evidence": evidence}


def _qemu_binfmt(machine: str) -> bool:
    """binfmt_misc hands this machine's executables to qemu (visible when binfmt_misc is mounted here)."""
    return (_read(f"/proc/sys/fs/binfmt_misc/qemu-{machine}") or "").startswith("enabled")
