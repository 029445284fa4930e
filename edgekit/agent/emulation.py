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


def emulation(cpuinfo: str | None = None) -> dict:
    """``{"emulated": bool, "emulator": "qemu-user" | "unknown" | None, "evidence": [...]}`` for this process
    (``cpuinfo``: the text of ``/proc/cpuinfo`` when the caller has read it already)."""
    machine = platform.machine()
    maps = f"/proc/self/task/{threading.get_native_id()}/maps"
    cpuinfo = (_read("/proc/cpuinfo") or "") if cpuinfo is None else cpuinfo
    evidence = emulation_evidence(machine, (_read("/proc/sys/kernel/arch") or "").strip(), _read(maps) or "",
                                  cpuinfo, maps)
    qemu = any("qemu" in line for line in evidence) or _qemu_binfmt(machine)
    return {"emulated": bool(evidence), "emulator": "qemu-user" if qemu else ("unknown" if evidence else None),
            "evidence": evidence}


def emulation_evidence(machine: str, kernel_arch: str, maps: str, cpuinfo: str, maps_path: str = "maps") -> list[str]:
    """Each reading that says a ``machine`` userland runs emulated, in words (empty on real hardware)."""
    evidence = []
    if kernel_arch and kernel_arch != machine and (kernel_arch, machine) not in _NATIVE:
        evidence.append(f"the kernel is {kernel_arch} (/proc/sys/kernel/arch) but this userland is {machine}")
    mapped = next((parts[-1] for parts in map(str.split, maps.splitlines()) if parts and "/qemu-" in parts[-1]), None)
    if mapped:
        evidence.append(f"{mapped} is mapped into this process ({maps_path})")
    cpu = _cpuinfo_family(cpuinfo)
    if cpu and _FAMILY.get(machine) and cpu != _FAMILY[machine]:
        evidence.append(f"/proc/cpuinfo describes an {cpu} CPU but this userland is {machine}")
    return evidence


def _qemu_binfmt(machine: str) -> bool:
    """binfmt_misc hands this machine's executables to qemu (visible when binfmt_misc is mounted here)."""
    return (_read(f"/proc/sys/fs/binfmt_misc/qemu-{machine}") or "").startswith("enabled")
