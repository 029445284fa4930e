"""A real auto export with a slow INT8 route (LiteRT): its INT8 is built after the other candidates were gated
and timed, or left unbuilt with the figures that say it could not win. Which of the two happens depends on this
CPU's timings, so each outcome is checked for what it must record, never which one occurs."""

from __future__ import annotations

import pytest

from edgekit.exporter.late_builds import could_not_win
from edgekit.exporter.pipeline import export
from edgekit.exporter.routes import CandidatePlan
from edgekit.targets import Precision, load_target
from testkit import model_ref

pytest.importorskip("litert_torch")


def test_the_slow_int8_waits_for_the_timing_and_is_built_only_if_it_could_win(tmp_path, cnn_data):
    profile = load_target("x86").model_copy(update={"formats": ["onnx", "tflite"], "threads": 1,
                                                    "precisions": [Precision.fp32, Precision.int8_static]})
    result = export(model_ref("tiny_cnn"), profile, out=tmp_path / "out", calib=cnn_data["calib"],
                    val=cnn_data["val"], format="auto", accuracy={"top1_agreement_min": 0.5})
    by_name = {c.name: c for c in result.candidates}
    not_built = {r["candidate"]: r["reason"] for r in result.manifest["not_built"]}
    first_timing = list(result.manifest["timings_s"]).index("host latency (1 threads)")
    assert {"onnx/fp32", "onnx/int8_static", "tflite/fp32"} <= set(by_name)
    assert [c.format for c in result.candidates] == sorted((c.format for c in result.candidates),
                                                           key=["onnx", "tflite"].index)  # profile order
    if "tflite/int8_static" in by_name:  # built after the first timing, then gated and timed like the others
        assert list(result.manifest["timings_s"]).index("tflite int8_static") > first_timing
        late = by_name["tflite/int8_static"]
        assert late.accuracy is not None and (late.latency is not None or not late.usable)
        assert "tflite/int8_static" not in not_built
    else:  # not built: the reason is the rule's, on the figures the manifest kept
        others = [c for c in result.candidates if c.name != "tflite/int8_static"]
        assert not_built["tflite/int8_static"] == could_not_win(CandidatePlan("tflite", "int8_static"), others)
        assert not_built["tflite/int8_static"].startswith("it could not win: tflite/fp32's p50")
        assert f"tflite/int8_static not built: {not_built['tflite/int8_static']}" in result.manifest["notes"]
        assert "tflite int8_static" not in result.manifest["timings_s"]
    assert result.passed and result.selected is not None


def test_without_a_benchmark_nothing_waits(tmp_path, cnn_data):
    profile = load_target("x86").model_copy(update={"formats": ["onnx", "tflite"], "threads": 1,
                                                    "precisions": [Precision.fp32, Precision.int8_static]})
    result = export(model_ref("tiny_cnn"), profile, out=tmp_path / "out", calib=cnn_data["calib"],
                    val=cnn_data["val"], format="auto", benchmark=False, accuracy={"top1_agreement_min": 0.5})
    assert [c.name for c in result.candidates] == ["onnx/fp32", "onnx/int8_static", "tflite/fp32",
                                                   "tflite/int8_static"]
    timings = list(result.manifest["timings_s"])
    assert timings.index("tflite int8_static") < timings.index("accuracy gate on 24 samples")
