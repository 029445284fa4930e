"""The compare report: verdict and break-even arithmetic, gates, report files, `edgekit report show`, and the
HTML page rendered by a real headless Chromium. Every report is built here, by the schema in
docs/report-schema.md: no agents, no cloud."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekit.errors import InputError
from edgekit.evaluate.report import (
    DEFAULT_RTT_PROFILES,
    SCHEMA,
    break_even_rtt,
    cloud_by_rtt,
    cloud_latency,
    device_verdict,
    evaluate_gates,
    fill_verdicts,
    gates_section,
    load_report,
    parse_fail_if,
    parse_regression,
    parse_rtt_profiles,
    render_html,
    verdict_for_device,
    write_report,
)

CHROMIUM = Path("/usr/bin/chromium")
UNDER_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
SHA = "0f49b2f4a38f5f796fb1667a1788d47d83886018efebedda37d3f8c47ba1c9cf"


# ----------------------------------------------------------------------------- report dicts built by the schema

def _latency(p50, p90=None, p99=None, samples=None, **extra) -> dict:
    p90 = p90 if p90 is not None else p50 * 1.1
    p99 = p99 if p99 is not None else p90 * 1.2
    latency = {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": p50 * 1.02, "std_ms": p50 * 0.05,
               "min_ms": p50 * 0.9, "max_ms": p99 * 1.1, "runs": 200, "p50_ci_ms": [p50 * 0.98, p50 * 1.02]}
    if samples is not None:
        latency["samples_ms"] = samples
    latency.update(extra)
    return latency


def _conditions(temp=52.0, governor="performance", throttled="0x0", load=0.1) -> dict:
    return {"governor": governor, "temperature_c": temp, "throttled": throttled, "load_1min": load}


def _result(artifact, p50, status="ok", accuracy=None, samples=None, **latency) -> dict:
    ran = status == "ok"
    return {"artifact": artifact, "status": status,
            "latency": _latency(p50, samples=samples, **latency) if ran else None,
            "accuracy": (accuracy if accuracy is not None else
                         {"cosine_min": 0.99991, "max_abs_error": 2e-4, "top1_agreement": 1.0}) if ran else None,
            "conditions_before": _conditions(), "conditions_after": _conditions(temp=58.5, load=0.9),
            "error": None if ran else "the runtime died with SIGSEGV"}


def _samples(center: float, count: int = 200) -> list[float]:
    """Deterministic, skewed latency samples around ``center`` with a few slow outliers."""
    values = []
    for i in range(count):
        wobble = math.sin(i * 1.7) * 0.04 + ((i * 0.37) % 1) * 0.08
        values.append(round(center * (0.96 + wobble + (0.5 if i % 97 == 0 else 0.0)), 4))
    return values


def make_report(pi5_p50=12.0, compute_p50=4.0, overhead=0.0) -> dict:
    """Two devices (a Pi 5 with raw samples; a Jetson without, one artifact crashed) and a local cloud."""
    report = {
        "schema": SCHEMA, "created": "2026-11-28T08:00:00+00:00",
        "model": {"source": {"kind": "pytorch", "reference": "samples/digits/model.py:build", "sha256": SHA},
                  "target": "rpi", "manifest_sha256": "ab" * 32,
                  "inputs": [{"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32"}]},
        "artifacts": [
            {"name": "tflite/int8_static", "file": "model.int8_static.tflite", "format": "tflite",
             "precision": "int8_static", "size_bytes": 33000, "sha256": "cd" * 32,
             "accuracy": {"cosine_min": 0.999, "top1_agreement": 1.0, "label_accuracy": 0.997}},
            {"name": "onnx/fp32", "file": "model.fp32.onnx", "format": "onnx", "precision": "fp32",
             "size_bytes": 98400, "sha256": "ef" * 32,
             "accuracy": {"cosine_min": 1.0, "top1_agreement": 1.0, "label_accuracy": 0.9972}},
        ],
        "devices": [
            {"name": "pi5", "url": "http://pi.local:8765",
             "info": {"arch": "aarch64", "cpu": "Cortex-A76", "cores": 4, "os": "Linux 6.6",
                      "runtimes": {"onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0"}},
             "results": [_result("tflite/int8_static", pi5_p50, samples=_samples(pi5_p50)),
                         _result("onnx/fp32", pi5_p50 * 2.1, samples=_samples(pi5_p50 * 2.1))]},
            {"name": "jetson", "url": "http://jetson.local:8765",
             "info": {"arch": "aarch64", "cpu": "Cortex-A78AE", "cores": 6, "os": "Linux 5.15"},
             "results": [_result("tflite/int8_static", 3.0, p90=3.3, p99=3.9),
                         _result("onnx/fp32", 0, status="runtime_crashed")]},
        ],
        "cloud": {"kind": "local", "method": "onnxruntime CPU, 16 threads", "url": None, "model_name": "digits",
                  "compute": {"p50_ms": compute_p50, "p90_ms": compute_p50 * 1.1, "p99_ms": compute_p50 * 1.3},
                  "end_to_end": None, "device": "AMD EPYC (16 cores)", "overhead_ms": overhead},
        "rtt_profiles": dict(DEFAULT_RTT_PROFILES),
    }
    fill_verdicts(report)
    report["gates"] = gates_section(report, ["p90_ms>20"])
    return report


# ----------------------------------------------------------------------------- RTT, break-even, verdicts

def test_break_even_and_cloud_latency_known_numbers():
    assert break_even_rtt(12.0, 4.0) == pytest.approx(8.0)
    assert break_even_rtt(12.0, 4.0, overhead_ms=1.5) == pytest.approx(6.5)
    assert cloud_latency(4.0, DEFAULT_RTT_PROFILES["wifi"]) == pytest.approx(24.0)  # 24 ms > 12 ms: the edge wins
    assert cloud_latency(4.0, 20.0, overhead_ms=0.5) == pytest.approx(24.5)
    assert cloud_by_rtt(4.0, DEFAULT_RTT_PROFILES) == pytest.approx({"wired": 9.0, "wifi": 24.0, "4g": 64.0,
                                                                     "3g": 154.0})
    assert cloud_by_rtt(0.9, {"wired": 5.0, "wifi": 20.0}, overhead=0.3) == {"wired": 6.2, "wifi": 21.2}


def test_verdict_edge_wins_above_break_even():
    verdict = device_verdict(12.0, 13.0, 4.0, 0.0, None, "ok")
    assert verdict["kind"] == "edge_wins_above"
    assert verdict["break_even_rtt_ms"] == pytest.approx(8.0)
    assert verdict["text"] == "edge wins when the RTT is above 8 ms; below, the cloud is faster"
    assert verdict["budget_violations"] == []
    # wired (5 ms): cloud 9 ms < edge 12 ms; wifi (20 ms): cloud 24 ms > edge 12 ms
    assert cloud_latency(4.0, 5.0) < 12.0 < cloud_latency(4.0, 20.0)


def test_verdict_edge_wins_always_and_at_a_tie():
    verdict = device_verdict(3.0, 3.3, 4.0, 0.0, {"p90_ms": 20.0}, "ok")
    assert verdict["kind"] == "edge_wins_always"
    assert verdict["break_even_rtt_ms"] == pytest.approx(-1.0)
    assert verdict["text"] == "edge wins at any RTT (edge 3 ms vs cloud compute 4 ms)"
    tie = device_verdict(4.0, 4.4, 4.0, 0.0, None, "ok")
    assert (tie["kind"], tie["break_even_rtt_ms"]) == ("edge_wins_always", 0.0)
    # the overhead beyond RTT counts on the cloud's side
    with_overhead = device_verdict(4.5, 5.0, 4.0, 1.0, None, "ok")
    assert with_overhead["kind"] == "edge_wins_always"
    assert "cloud compute 4 ms + 1 ms overhead" in with_overhead["text"]


def test_verdict_edge_misses_budget_only_when_over():
    verdict = device_verdict(12.0, 24.1, 4.0, 0.0, {"p50_ms": None, "p90_ms": 20.0}, "ok")
    assert verdict["kind"] == "edge_misses_budget"
    assert verdict["text"] == "edge misses its latency budget (p90 24.1 ms > 20 ms)"
    assert verdict["budget_violations"] == ["p90 24.1 ms > 20 ms"]
    assert verdict["break_even_rtt_ms"] == pytest.approx(8.0)
    both = device_verdict(12.0, 24.1, 4.0, 0.0, {"p50_ms": 10.0, "p90_ms": 20.0}, "ok")
    assert both["budget_violations"] == ["p50 12 ms > 10 ms", "p90 24.1 ms > 20 ms"]
    assert device_verdict(12.0, 20.0, 4.0, 0.0, {"p90_ms": 20.0}, "ok")["kind"] == "edge_wins_above"  # at = within


def test_verdict_failed_run():
    verdict = device_verdict(None, None, 4.0, 0.0, None, "runtime_crashed")
    assert verdict == {"kind": "failed", "text": "device run failed: runtime_crashed", "break_even_rtt_ms": None,
                       "budget_violations": []}


def test_verdict_for_device_uses_the_fastest_artifact_within_budget():
    device = {"name": "pi5", "results": [_result("a", 5.0, p90=30.0), _result("b", 8.0, p90=9.0),
                                         _result("c", 1.0, status="timeout")]}
    verdict = verdict_for_device(device, 4.0, 0.0, {"p90_ms": 20.0})
    assert (verdict["artifact"], verdict["kind"], verdict["break_even_rtt_ms"]) == ("b", "edge_wins_above", 4.0)
    over = verdict_for_device(device, 4.0, 0.0, {"p90_ms": 5.0})
    assert (over["artifact"], over["kind"]) == ("a", "edge_misses_budget")
    dead = verdict_for_device({"name": "x", "results": [_result("c", 1.0, status="timeout")]}, 4.0)
    assert (dead["kind"], dead["text"], dead["artifact"]) == ("failed", "device run failed: timeout", "c")


def test_fill_verdicts_writes_every_verdict_line_and_cloud_by_rtt():
    report = make_report(pi5_p50=12.0, compute_p50=4.0)
    assert report["cloud_by_rtt"] == pytest.approx({"wired": 9.0, "wifi": 24.0, "4g": 64.0, "3g": 154.0})
    assert report["verdicts"] == [
        "pi5: edge wins when the RTT is above 8 ms; below, the cloud is faster",
        "jetson: edge wins at any RTT (edge 3 ms vs cloud compute 4 ms)",
    ]
    assert report["devices"][0]["verdict"]["artifact"] == "tflite/int8_static"
    report["model"]["latency_budget"] = {"p50_ms": None, "p90_ms": 3.5}
    fill_verdicts(report)
    assert report["devices"][0]["verdict"]["kind"] == "edge_misses_budget"
    assert report["devices"][1]["verdict"]["kind"] == "edge_wins_always"  # p90 3.3 ≤ 3.5
    report["cloud"]["compute"] = None
    report["cloud"]["end_to_end"] = None
    with pytest.raises(InputError, match="no cloud latency"):
        fill_verdicts(report)


def test_fill_verdicts_without_a_server_compute_p50():
    """A KServe server that reports a mean only, or no compute time: the verdict says what it stands on."""
    report = make_report(pi5_p50=12.0)
    report["cloud"]["compute"] = {"mean_ms": 5.0}
    fill_verdicts(report)
    assert report["devices"][0]["verdict"]["break_even_rtt_ms"] == pytest.approx(7.0)
    assert "mean compute time" in report["cloud"]["verdict_basis"]
    report["cloud"].update(compute=None, end_to_end={"p50_ms": 25.0}, network_rtt={"p50_ms": 22.0})
    fill_verdicts(report)
    assert report["devices"][0]["verdict"]["break_even_rtt_ms"] == pytest.approx(9.0)  # 12 - (25 - 22)
    assert report["cloud_by_rtt"]["wifi"] == pytest.approx(23.0)
    assert "end-to-end p50 minus the measured RTT" in report["cloud"]["verdict_basis"]
    page = render_html(report)
    assert "edge-vs-cloud-rtt" in page and "end-to-end p50 minus the measured RTT" in page


def test_parse_rtt_profiles_merges_with_the_defaults():
    assert parse_rtt_profiles([]) == DEFAULT_RTT_PROFILES == {"wired": 5.0, "wifi": 20.0, "4g": 60.0, "3g": 150.0}
    assert parse_rtt_profiles(["wifi=25", "sat=600", " lan = 0.5ms "]) == {
        "wired": 5.0, "wifi": 25.0, "4g": 60.0, "3g": 150.0, "sat": 600.0, "lan": 0.5}
    assert DEFAULT_RTT_PROFILES["wifi"] == 20.0  # the defaults are not changed by a parse


@pytest.mark.parametrize("text, problem", [("wifi", "malformed RTT profile 'wifi'"),
                                           ("wifi=", "malformed RTT profile 'wifi='"),
                                           ("=20", "malformed RTT profile '=20'"),
                                           ("wifi=fast", "'fast' is not a number"),
                                           ("wifi=-5", "finite number ≥ 0"),
                                           ("wifi=nan", "finite number ≥ 0"),
                                           ("wifi=inf", "finite number ≥ 0")])
def test_parse_rtt_profiles_refuses_bad_text(text, problem):
    with pytest.raises(InputError) as caught:
        parse_rtt_profiles([text])
    assert problem in caught.value.message
    assert "NAME=MILLISECONDS" in caught.value.hint


# ----------------------------------------------------------------------------- gates

@pytest.mark.parametrize("text, expected", [("p90_ms>20", ("p90_ms", ">", 20.0)),
                                            (" accuracy.cosine_min < 0.999 ", ("accuracy.cosine_min", "<", 0.999)),
                                            ("size_bytes>=1e6", ("size_bytes", ">=", 1e6)),
                                            ("accuracy.top1_agreement<=0.99", ("accuracy.top1_agreement", "<=", .99)),
                                            ("p50_ms!=3", ("p50_ms", "!=", 3.0)),
                                            ("mean_ms==-1", ("mean_ms", "==", -1.0)),
                                            ("accuracy.max_abs_error>0.01", ("accuracy.max_abs_error", ">", .01)),
                                            ("p99_ms>5", ("p99_ms", ">", 5.0))])
def test_parse_fail_if_good(text, expected):
    gate = parse_fail_if(text)
    assert (gate.metric, gate.op, gate.threshold) == expected
    assert str(gate) == text.strip()


def _malformed(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_fail_if(text)
    error = caught.value
    assert "p90_ms" in error.hint and "accuracy.cosine_min" in error.hint and "size_bytes" in error.hint
    assert error.exit_code == 2
    return error


def test_fail_if_empty():
    assert "the expression is empty" in _malformed("").message
    assert "the expression is empty" in _malformed("   ").message


def test_fail_if_without_operator():
    assert _malformed("p90_ms").message == "malformed --fail-if 'p90_ms': no comparison operator"


def test_fail_if_unknown_metric():
    assert "unknown metric 'p95_ms'" in _malformed("p95_ms>20").message
    assert "unknown metric 'cosine_min'" in _malformed("cosine_min<0.99").message  # needs accuracy.


def test_fail_if_without_metric():
    assert "no metric before the operator" in _malformed(">20").message


def test_fail_if_bad_operator():
    assert "unknown operator '=>'" in _malformed("p90_ms=>20").message
    assert "unknown operator '>>'" in _malformed("p90_ms>>20").message
    assert "unknown operator '='" in _malformed("p90_ms=20").message


def test_fail_if_threshold_not_a_number():
    assert "the threshold '20ms' is not a number" in _malformed("p90_ms>20ms").message
    assert "no threshold after the operator" in _malformed("p90_ms>").message
    assert "not a finite number" in _malformed("p90_ms>nan").message


def _one_device(p90: float, **accuracy) -> dict:
    report = make_report()
    report["devices"] = [{"name": "pi5", "results": [
        _result("tflite/int8_static", 10.0, p90=p90, accuracy={"cosine_min": 0.9995, "max_abs_error": 1e-3,
                                                               "top1_agreement": 1.0, **accuracy}),
        _result("onnx/fp32", 0, status="timeout")]}]
    return report


def test_fail_if_triggers_just_over_and_not_just_under():
    over = evaluate_gates(_one_device(p90=20.0001), ["p90_ms>20"])
    assert over == ["pi5 tflite/int8_static: p90_ms 20 > 20 (--fail-if p90_ms>20)"] or \
        over == ["pi5 tflite/int8_static: p90_ms 20.0001 > 20 (--fail-if p90_ms>20)"]
    assert evaluate_gates(_one_device(p90=19.9999), ["p90_ms>20"]) == []
    assert evaluate_gates(_one_device(p90=20.0), ["p90_ms>20"]) == []
    assert len(evaluate_gates(_one_device(p90=20.0), ["p90_ms>=20"])) == 1
    assert evaluate_gates(_one_device(p90=24.1), ["p90_ms>20"]) == [
        "pi5 tflite/int8_static: p90_ms 24.1 > 20 (--fail-if p90_ms>20)"]  # the crashed onnx/fp32 is not gated


def test_fail_if_on_accuracy_and_size():
    report = _one_device(p90=5.0, cosine_min=0.9989)
    assert evaluate_gates(report, ["accuracy.cosine_min<0.999"]) == [
        "pi5 tflite/int8_static: accuracy.cosine_min 0.9989 < 0.999 (--fail-if accuracy.cosine_min<0.999)"]
    assert evaluate_gates(_one_device(p90=5.0, cosine_min=0.999), ["accuracy.cosine_min<0.999"]) == []
    assert evaluate_gates(report, ["size_bytes>32999"]) == [
        "pi5 tflite/int8_static: size_bytes 33000 > 32999 (--fail-if size_bytes>32999)"]
    assert evaluate_gates(report, ["size_bytes>33000"]) == []


def test_fail_if_missing_figure_is_said_and_host_figure_is_named():
    report = _one_device(p90=5.0, top1_agreement=None)
    report["artifacts"][0]["accuracy"].pop("top1_agreement")
    assert evaluate_gates(report, ["accuracy.top1_agreement<0.99"]) == [
        "pi5 tflite/int8_static: accuracy.top1_agreement was not measured (--fail-if accuracy.top1_agreement<0.99)"]
    report["devices"][0]["results"][0]["accuracy"] = None
    assert evaluate_gates(report, ["accuracy.cosine_min<0.9995"]) == [
        "pi5 tflite/int8_static: accuracy.cosine_min 0.999 < 0.9995 (--fail-if accuracy.cosine_min<0.9995) "
        "(host figure: not measured on the device)"]


def test_target_budgets_are_gates():
    report = _one_device(p90=24.1, cosine_min=0.98)
    report["model"]["latency_budget"] = {"p50_ms": None, "p90_ms": 20.0}
    report["model"]["accuracy_budget"] = {"cosine_min": 0.99, "top1_agreement_min": None, "max_abs_error": 1e-2}
    assert evaluate_gates(report, []) == [
        "pi5 tflite/int8_static: p90_ms 24.1 > 20 (target latency budget p90_ms ≤ 20 ms)",
        "pi5 tflite/int8_static: accuracy.cosine_min 0.98 < 0.99 (target accuracy budget accuracy.cosine_min ≥ 0.99)"]
    report["model"]["latency_budget"]["p90_ms"] = 24.1
    report["model"]["accuracy_budget"]["cosine_min"] = 0.98
    assert evaluate_gates(report, []) == []


def _with_p50(report: dict, p50: float) -> dict:
    report = copy.deepcopy(report)
    report["devices"][0]["results"][0]["latency"]["p50_ms"] = p50
    return report


def test_regression_gate_at_ten_percent():
    baseline = _with_p50(make_report(), 10.0)
    assert evaluate_gates(_with_p50(baseline, 10.9), [], baseline, 0.10) == []
    assert evaluate_gates(_with_p50(baseline, 11.0), [], baseline, 0.10) == []  # exactly 10% passes
    assert evaluate_gates(_with_p50(baseline, 11.1), [], baseline, 0.10) == [
        "pi5 tflite/int8_static: p50_ms 11.1 is 11.0% slower than the baseline's 10 (--max-regression 10%)"]
    assert evaluate_gates(_with_p50(baseline, 11.1), [], baseline, None) != []  # 10% by default
    assert evaluate_gates(_with_p50(baseline, 11.1), [], baseline, 0.2) == []
    assert evaluate_gates(_with_p50(baseline, 5.0), [], baseline, 0.0) == []  # faster is never a regression
    section = gates_section(_with_p50(baseline, 11.1), ["p90_ms>100"], baseline, "old/report.json", None)
    assert section["passed"] is False and section["max_regression"] == 0.10
    assert section["baseline"] == "old/report.json" and section["fail_if"] == ["p90_ms>100"]


def test_baseline_for_another_model_is_refused():
    report, baseline = make_report(), make_report()
    baseline["model"]["source"]["sha256"] = "00" * 32
    with pytest.raises(InputError, match="baseline report is for another model") as caught:
        evaluate_gates(report, [], baseline, 0.1)
    assert "00000000" in caught.value.message and caught.value.exit_code == 2
    baseline = make_report()
    baseline["schema"] = "edgekit.report/0"
    with pytest.raises(InputError, match="baseline report has schema 'edgekit.report/0'"):
        evaluate_gates(report, [], baseline, 0.1)
    baseline = make_report()
    for device in baseline["devices"]:
        device["name"] += "-old"
    with pytest.raises(InputError, match="shares no device"):
        evaluate_gates(report, [], baseline, 0.1)


@pytest.mark.parametrize("text, value", [("10%", 0.10), ("0.1", 0.10), ("0", 0.0), ("150%", 1.5), (" 2.5% ", .025)])
def test_parse_regression(text, value):
    assert parse_regression(text) == pytest.approx(value)


@pytest.mark.parametrize("text, problem", [("ten", "not a number"), ("%", "not a number"), ("-5%", "≥ 0"),
                                           ("10", "ambiguous")])
def test_parse_regression_refuses(text, problem):
    with pytest.raises(InputError, match=problem) as caught:
        parse_regression(text)
    assert "10%" in caught.value.hint


# ----------------------------------------------------------------------------- files

def test_write_report_round_trips_and_leaves_no_temp_files(tmp_path):
    report = make_report()
    folder = tmp_path / "out" / "new"  # created on demand
    json_path, html_path = write_report(report, folder)
    assert (json_path, html_path) == (folder / "report.json", folder / "report.html")
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert json_path.read_text().startswith('{\n  "schema": "edgekit.report/1"')  # indent 2
    assert load_report(json_path) == report
    assert load_report(folder) == report  # a folder holding a report.json
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    changed = make_report(pi5_p50=30.0)
    write_report(changed, folder)  # replaces both
    assert load_report(json_path)["devices"][0]["results"][0]["latency"]["p50_ms"] == 30.0


def test_write_report_that_cannot_be_serialized_changes_nothing(tmp_path):
    write_report(make_report(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = make_report()
    broken["devices"][0]["results"][0]["latency"]["p50_ms"] = object()  # NaN is written as null (strict JSON)
    with pytest.raises(TypeError):
        write_report(broken, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_write_report_is_atomic_under_a_failing_write(tmp_path, monkeypatch):
    """A crash while writing leaves the old files whole and no temp file behind."""
    write_report(make_report(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(InputError, match="No space left on device"):
        write_report(make_report(pi5_p50=30.0), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ('["a list"]', "is not an edgekit report"),
    ('{"schema": "edgekit.manifest/2"}', "is an artifact manifest, not a compare report"),
    ('{"schema": "edgekit.report/2"}', "has schema 'edgekit.report/2'; this edgekit reads 'edgekit.report/1'"),
    ('{"schema": "edgekit.report/1", "model": {}}', "incomplete report: missing artifacts, devices, cloud"),
])
def test_load_report_refuses_what_is_not_a_report(tmp_path, content, problem):
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as caught:
        load_report(path)
    assert problem in caught.value.message and caught.value.hint


def test_import_is_light():
    code = ("import sys, edgekit.evaluate.report; heavy = [m for m in ('torch', 'onnx', 'numpy', 'onnxruntime', 'rich') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- `edgekit report show`

def _cli() -> typer.Typer:
    from edgekit.cli.report import register

    app = typer.Typer()
    register(app)
    return app


def test_report_show_prints_the_verdicts_tables_cloud_and_gates(tmp_path):
    report = make_report()
    write_report(report, tmp_path)
    result = CliRunner().invoke(_cli(), ["report", "show", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "pi5 [tflite/int8_static]: edge wins when the RTT is above 8 ms; below, the cloud is faster" in out
    assert "jetson [tflite/int8_static]: edge wins at any RTT (edge 3 ms vs cloud compute 4 ms)" in out
    assert "runtime_crashed" in out and "Cortex-A76" in out and "12" in out
    assert "onnxruntime CPU, 16 threads" in out and "wifi (20 ms RTT) 24 ms" in out
    assert "gates failed: --fail-if p90_ms>20" in out
    assert "pi5 onnx/fp32: p90_ms 27.72 > 20 (--fail-if p90_ms>20)" in out


def test_report_show_json_and_errors(tmp_path):
    report = make_report()
    write_report(report, tmp_path)
    result = CliRunner().invoke(_cli(), ["report", "show", str(tmp_path / "report.json"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == report
    missing = CliRunner().invoke(_cli(), ["report", "show", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


# ----------------------------------------------------------------------------- HTML

def _plots(page: str) -> list[str]:
    return re.findall(r'<svg class="plot".*?</svg>', page, flags=re.S)


def _circle_at_break_even(svg: str, rtt: float, latency: float) -> bool:
    """A hollow marker where the edge line meets the cloud line, at the data → pixel mapping of the zoom view."""
    xmax = float(re.search(r"RTT 0–([\d.]+) ms", svg).group(1))
    ymax = max(4.0 + xmax, latency) * 1.08
    x = 64 + rtt / xmax * (900 - 64 - 170)
    y = 400 - 62 - latency / ymax * (400 - 56 - 62)
    return any(abs(float(cx) - x) < 0.6 and abs(float(cy) - y) < 0.6
               for cx, cy in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="5.5"', svg))


def test_html_is_self_contained_and_escaped():
    report = make_report()
    report["devices"][0]["name"] = "pi5 <script>alert(1)</script>"
    fill_verdicts(report)
    report["gates"] = gates_section(report, ["p90_ms>20"])
    page = render_html(report)
    lowered = page.lower()
    for forbidden in ("<script", "<link", " src=", " href=", "@import", "url(", "<iframe", "<img"):
        assert forbidden not in lowered, forbidden
    assert "pi5 &lt;script&gt;alert(1)&lt;/script&gt;" in page
    plots = _plots(page)
    names = [re.search(r'data-plot="([^"]*)"', p).group(1) for p in plots]
    assert names == ["edge-vs-cloud-rtt", "edge-vs-cloud-rtt-zoom", "latency:pi5 &lt;script&gt;alert(1)&lt;/script&gt;",
                     "latency:jetson"]
    for plot in plots:
        assert re.search(r"<title>[^<]+</title>", plot)
        assert "latency" in plot and "(ms)" in plot  # axis labels
    rtt, zoom = plots[0], plots[1]
    assert "cloud: 4 ms + RTT" in rtt and "cloud: 4 ms + RTT" in zoom
    for name in ("wired 5 ms", "wifi 20 ms", "4g 60 ms", "3g 150 ms"):
        assert name in rtt
    # the break-even at 8 ms sits at 5% of the full chart's 165 ms: marked there, labelled in the zoom (0–22 ms)
    assert "break-even 8 ms" in zoom and "RTT 0–22 ms" in zoom and "4g 60 ms" not in zoom
    assert _circle_at_break_even(zoom, 8.0, 12.0)
    assert "cloud compute p50 4 ms" in plots[2] and "run failed: runtime_crashed" in plots[3]
    assert "edge misses" not in page and "v-edge_wins_above" in page and "v-edge_wins_always" in page
    assert "gates failed" in page and "pi5 &lt;script&gt;alert(1)&lt;/script&gt; onnx/fp32: p90_ms 27.72" in page
    assert "governor" in page and "58.5 °C" in page and "onnxruntime CPU, 16 threads" in page


def test_html_renders_a_report_without_samples_cloud_or_gates():
    report = make_report()
    for device in report["devices"]:
        for result in device["results"]:
            if result["latency"]:
                result["latency"].pop("samples_ms", None)
    report.pop("gates")
    page = render_html(report)
    assert len(_plots(page)) == 4 and "box: p50–p90" in page and "no gates were set" in page
    report["cloud"]["compute"] = None
    page = render_html(report)
    assert [re.search(r'data-plot="([^"]*)"', p).group(1) for p in _plots(page)] == ["latency:pi5", "latency:jetson"]


def test_html_zoom_view_only_when_break_evens_crowd_the_left():
    page = render_html(make_report(pi5_p50=100.0))  # break-even 96 ms of a 165 ms axis: readable as it is
    names = [re.search(r'data-plot="([^"]*)"', p).group(1) for p in _plots(page)]
    assert names == ["edge-vs-cloud-rtt", "latency:pi5", "latency:jetson"]
    assert "break-even 96 ms" in _plots(page)[0]


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _png_pixels(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


@pytest.mark.skipif(not CHROMIUM.exists() and not UNDER_CI,
                    reason="headless Chromium check skipped: /usr/bin/chromium is missing (apt-get install chromium); "
                           "under CI=true a missing Chromium fails instead")
def test_html_in_headless_chromium(tmp_path):
    assert CHROMIUM.exists(), "CI is set but /usr/bin/chromium is missing: install Debian's chromium package"
    _, html_path = write_report(make_report(), tmp_path / "report")
    url = html_path.resolve().as_uri()
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,2000", "--hide-scrollbars", url, tmp_path=tmp_path)
    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    keep = os.environ.get("EDGEKIT_REPORT_SCREENSHOT")  # to look at it: EDGEKIT_REPORT_SCREENSHOT=/tmp/report.png
    if keep:
        shutil.copyfile(shot, keep)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    image = _png_pixels(shot)
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text, lines and coloured boxes, not a blank page
    # the coloured plot strokes are drawn: the device palette's blue and orange appear
    counts = {rgb: n for n, rgb in colours}
    assert counts.get((0x1f, 0x6f, 0xb4), 0) > 100 and counts.get((0xd9, 0x73, 0x0d), 0) > 100

    dumped = _chromium("--dump-dom", url, tmp_path=tmp_path)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    plots = _plots(dom)
    assert len(plots) == 4 and len(re.findall(r'<svg class="plot"', dom)) == 4
    for plot in plots:
        shapes = re.findall(r"<(path|rect|circle|line)\b[^>]*>", plot)
        assert len(shapes) > 10, plot[:300]
        assert re.search(r'<path d="M[\d.]+ [\d.]+', plot) or re.search(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+"',
                                                                        plot)
    assert "pi5 [tflite/int8_static]: edge wins when the RTT is above 8 ms" in dom
