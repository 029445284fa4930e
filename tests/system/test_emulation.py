"""How the agent knows it runs emulated, on readings taken from real machines; and the hint for an op that the
device's runtime build lacks. (The emulated device itself: tests/emulated/test_emulated_device.py,
`make test-emulated`.)"""

from __future__ import annotations

import httpx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgekit.agent import conditions
from edgekit.agent.emulation import emulation, emulation_evidence
from edgekit.evaluate.devices import missing_op_hint
from testkit.agent_process import start_agent

X86_CPUINFO = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC\n"
               "flags\t\t: fpu sse2 avx2\n")
PI4_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
               "CPU part\t: 0xd08\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
QEMU_MAPS = ("aaaab0000000-aaaab0001000 r-xp 00000000 fe:00 123 /usr/bin/python3.11\n"
             "7fd41fc00000-7fd41fe28000 r--p 00000000 fe:00 2170895                    /usr/bin/qemu-aarch64-static\n")


def test_an_aarch64_userland_on_an_x86_kernel_under_qemu_gives_three_pieces_of_evidence():
    evidence = emulation_evidence("aarch64", "x86_64", QEMU_MAPS, X86_CPUINFO, "/proc/self/task/7/maps")
    assert evidence == [
        "the kernel is x86_64 (/proc/sys/kernel/arch) but this userland is aarch64",
        "/usr/bin/qemu-aarch64-static is mapped into this process (/proc/self/task/7/maps)",
        "/proc/cpuinfo describes an x86 CPU but this userland is aarch64",
    ]


@pytest.mark.parametrize("machine, kernel, cpuinfo", [
    ("aarch64", "aarch64", PI4_CPUINFO),  # a Pi with the 64-bit OS
    ("armv7l", "aarch64", PI4_CPUINFO),   # a Pi with a 32-bit userland on the 64-bit kernel: native, not emulated
    ("x86_64", "x86_64", X86_CPUINFO),
    ("aarch64", "", ""),                  # an old kernel without /proc/sys/kernel/arch, cpuinfo unreadable
])
def test_native_machines_give_no_evidence(machine, kernel, cpuinfo):
    assert emulation_evidence(machine, kernel, "00400000-00401000 r-xp 0 0:0 1 /usr/bin/python3\n", cpuinfo) == []


def test_this_host_and_its_agent_say_not_emulated(tmp_path):
    assert emulation() == {"emulated": False, "emulator": None, "evidence": []}
    agent = start_agent(tmp_path)
    try:
        info = httpx.get(f"{agent.url}/v1/info", headers=agent.headers, timeout=10).json()
    finally:
        agent.stop()
    assert info["emulated"] is False and info["emulation"]["evidence"] == []


def test_machine_is_one_description_for_the_agent_and_the_manifest(tmp_path):
    """/v1/info and the manifest's latency_measured_on describe the machine with the same fields, from
    conditions.machine(): arch, CPU, the CPU features and the emulation evidence."""
    described = conditions.machine()
    assert set(described) == {"arch", "cpu", "cpu_features", "emulated", "emulation"}
    info = conditions.device_info()
    assert {key: info[key] for key in described} == described


def test_the_host_cpus_flags_are_not_an_emulated_userlands_features(monkeypatch):
    """qemu before 8.2 passes the x86 host's /proc/cpuinfo through to an aarch64 userland: its avx2 is not the
    device's, so cpu_features is left empty and the evidence says why."""
    monkeypatch.setattr(conditions, "_read", lambda path: X86_CPUINFO if path == "/proc/cpuinfo" else None)
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    described = conditions.machine()
    assert described["arch"] == "aarch64" and described["emulated"] is True and described["cpu_features"] == []
    assert "/proc/cpuinfo describes an x86 CPU but this userland is aarch64" in described["emulation"]["evidence"]
    monkeypatch.setattr(conditions, "_read", lambda path: PI4_CPUINFO if path == "/proc/cpuinfo" else None)
    assert conditions.machine()["cpu_features"] == ["asimd"]  # an ARM cpuinfo (the emulated device writes one)


def test_an_op_the_device_build_lacks_gets_a_hint_naming_it():
    graph = helper.make_graph([helper.make_node("Foo", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(Exception) as caught:  # ONNX Runtime's own words for it
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    hint = missing_op_hint(str(caught.value), {"arch": "aarch64", "runtimes": {"onnxruntime": "1.32.0"}})
    assert hint.startswith("the device's ONNX Runtime 1.32.0 (aarch64) has no kernel for com.example:Foo")
    nchwc = ("HTTP 400: the onnx model does not load: Fail: [ONNXRuntimeError] : 1 : FAIL : Fatal error: "
             "com.microsoft.nchwc:ReorderInput(-1) is not a registered function/op")  # the aarch64 build's words
    assert "com.microsoft.nchwc:ReorderInput" in missing_op_hint(nchwc, {"arch": "aarch64"})
    assert "graph_optimization = \"basic\"" in missing_op_hint(nchwc, {"arch": "aarch64"})
    assert missing_op_hint("out of memory", {"arch": "aarch64"}) is None
