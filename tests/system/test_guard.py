"""The guard: a failure injected into any builder or step rejects only the candidates it concerns, with the
step and the reason, never a traceback, and the other candidates go on."""

from __future__ import annotations

import os

import pytest

from edgekit.errors import AccuracyError
from edgekit.exporter.routes import onnx as onnx_route, tflite as tflite_route
from edgekit.exporter.candidates import Candidate
from edgekit.exporter.guard import failure_reason, guarded
from edgekit.exporter.pipeline import export
from edgekit.exporter.steps import STEPS, Step
from edgekit.runtime.litert import LiteRtRunner
from edgekit.targets import Precision, load_target
from testkit import model_ref

pytest.importorskip("litert_torch")


class Injected(RuntimeError):
    pass


def _failing_step(name: str) -> type[Step]:
    class Failing(Step):
        def apply(self, artifact, out_path, context):
            open("scratch-left-by-a-tool.tmp", "w").close()  # written into the current directory, then it fails
            raise Injected(f"injected failure in {name}")

    Failing.name = name
    return Failing


def _fail(*args, **kwargs):
    raise Injected("injected failure")


def _inject(monkeypatch, where: str) -> None:
    if where == "export to ONNX":
        monkeypatch.setattr(onnx_route, "export_onnx", _fail)
    elif where in ("prepare", "simplify", "optimize", "quantize_static"):
        monkeypatch.setitem(STEPS, where, _failing_step(where))
    elif where == "tflite int8_static":
        real = tflite_route._convert
        monkeypatch.setattr(tflite_route, "_convert", lambda run, out, precision: (
            _fail() if precision.value == "int8_static" else real(run, out, precision)))
    elif where == "accuracy gate":
        monkeypatch.setattr(LiteRtRunner, "run", _fail)


# (where the failure is injected, candidates it must reject, the words their reason must hold)
CASES = [
    ("export to ONNX", {"onnx/fp32", "onnx/int8_static"}, "export to ONNX failed: Injected"),
    ("prepare", {"onnx/fp32", "onnx/int8_static"}, "prepare failed: Injected: injected failure in prepare"),
    ("optimize", {"onnx/fp32", "onnx/int8_static"}, "optimize failed: Injected"),
    ("quantize_static", {"onnx/int8_static"}, "onnx int8_static: quantize_static failed: Injected"),
    ("tflite int8_static", {"tflite/int8_static"}, "tflite int8_static failed: Injected"),
    ("accuracy gate", {"tflite/fp32", "tflite/int8_static"}, "accuracy gate failed: Injected"),
    ("simplify", set(), None),  # optional: skipped with its reason, nothing rejected
]


@pytest.mark.parametrize("where, rejected, reason", CASES, ids=[c[0] for c in CASES])
def test_a_failure_in_any_builder_or_step_rejects_only_its_candidates(monkeypatch, tmp_path, cnn_data, where,
                                                                      rejected, reason):
    _inject(monkeypatch, where)
    monkeypatch.chdir(tmp_path)
    # OpenVINO's conversion failure has its own test in test_openvino.py
    onnx_and_tflite = load_target("x86").model_copy(update={"formats": ["onnx", "tflite"],
                                                            "precisions": [Precision.fp32, Precision.int8_static]})
    result = export(model_ref("tiny_cnn"), onnx_and_tflite, out=tmp_path / "out", calib=cnn_data["calib"],
                    val=cnn_data["val"], format="auto", benchmark=False, accuracy={"top1_agreement_min": 0.5})
    by_name = {c.name: c for c in result.candidates}
    assert set(by_name) == {"onnx/fp32", "onnx/int8_static", "tflite/fp32", "tflite/int8_static"}
    assert {n for n, c in by_name.items() if c.failure in ("conversion", "runtime")} == rejected
    for name in rejected:
        assert reason in by_name[name].reason
    assert all(c.usable for n, c in by_name.items() if n not in rejected), \
        {n: c.reason for n, c in by_name.items()}
    assert result.passed and result.selected is not None
    assert os.listdir(tmp_path) == ["out"]  # the tool's scratch file went with the scratch directory
    if where == "simplify":
        step = next(s for s in result.manifest["steps"] if s["step"] == "simplify")
        assert "Injected" in step["details"]["skipped_because"]


def test_guard_names_the_op_and_node_from_onnxruntime_messages():
    message = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. "
               "Name:'/backbone/conv3' Status Message: invalid weights")
    assert failure_reason("accuracy gate", RuntimeError(message)).startswith(
        "accuracy gate failed at op Conv, node '/backbone/conv3': RuntimeError:")


def test_guard_lets_interrupts_through():
    candidate = Candidate("onnx", "fp32")
    with pytest.raises(KeyboardInterrupt):
        guarded([candidate], "step", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert candidate.usable


def test_an_accuracy_error_from_a_step_rejects_for_accuracy():
    candidate = Candidate("tflite", "int8_static")
    failing = AccuracyError("accuracy before conversion: cosine 0.1")
    assert guarded([candidate], "tflite int8_static", lambda: (_ for _ in ()).throw(failing)) is None
    assert candidate.failure == "accuracy"
    assert candidate.reason == "tflite int8_static: accuracy before conversion: cosine 0.1"
