"""OpenVINO IR as a format: real OpenVINO runtime and NNCF on tiny models, the two-file artifact through a real agent
on loopback and through validate, a conversion failure that rejects only OpenVINO's candidates, the rescue
(asymmetric activations, then the accuracy-aware search), and the CPU features recorded where latency was
measured."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.accuracy import cosine
from edgekit.agent.client import AgentClient
from edgekit.agent.conditions import cpu_features
from edgekit.data import SampleSet, load_data
from edgekit.errors import AccuracyError, ExportError, InputError
from edgekit.evaluate.validate import validate
from edgekit.exporter.openvino_sensitivity import rank_layers
from edgekit.exporter.pipeline import export
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps import Artifact, StepContext
from edgekit.exporter.steps.openvino_quantize import OpenVinoQuantize
from edgekit.runtime import ir_bundle, open_runner
from edgekit.runtime.openvino import OpenVinoRunner, cpu_capabilities
from edgekit.targets import load_target
from testkit import REPO, model_ref, smooth_images
from testkit.agent_process import start_agent

pytest.importorskip("openvino")
pytest.importorskip("nncf")

FAST = {"runs": 10, "warmup": 1, "min_seconds": 0.0}


@pytest.fixture(scope="module")
def ov_folder(tmp_path_factory, cnn_data):
    """tiny_cnn exported with --format openvino for x86: fp32 and NNCF int8 (bf16 and int8_bf16 where this CPU
    has bf16)."""
    out = tmp_path_factory.mktemp("openvino") / "cnn-openvino"
    return export(model_ref("tiny_cnn"), "x86", out=out, format="openvino", calib=cnn_data["calib"],
                  val=cnn_data["val"], accuracy={"top1_agreement_min": 0.85})


def reference_outputs(samples: np.ndarray) -> list[np.ndarray]:
    source = load_source(model_ref("tiny_cnn"), None)
    return [source.run({"x": samples[i:i + 1]})[0] for i in range(len(samples))]


@pytest.mark.cpu_sensitive
def test_export_builds_ir_pairs_gated_and_timed(ov_folder):
    manifest = ov_folder.manifest
    by_name = {a["name"]: a for a in manifest["artifacts"]}
    bf16 = "BF16" in cpu_capabilities()
    bf16_hint = {"openvino/bf16", "openvino/int8_bf16"}
    assert set(by_name) == {"openvino/fp32", "openvino/int8_static"} | (bf16_hint if bf16 else set())
    if not bf16:
        for name in bf16_hint:
            assert any(f"{name} not built" in n and "no bf16" in n for n in manifest["notes"])
    assert not any("bf16 is not built for" in n for n in manifest["notes"])  # openvino is the only format
    for name, art in by_name.items():
        xml = ov_folder.out_dir / art["file"]
        assert art["files"] == [art["file"], art["file"].replace(".xml", ".bin")]
        assert art["size_bytes"] == sum((ov_folder.out_dir / f).stat().st_size for f in art["files"])
        bundle = b"".join(ir_bundle.upload_chunks(xml))
        assert art["sha256"] == hashlib.sha256(bundle).hexdigest() == ir_bundle.artifact_digest(xml)
        assert art["execution"]["devices"] == ["CPU"]
        assert art["runner_options"] == {"inference_precision": "bf16" if name in bf16_hint else "f32"}
        if name != "openvino/int8_bf16":
            assert art["passed"] and art["latency"]["runs"] >= 20
    fp32, int8 = by_name["openvino/fp32"], by_name["openvino/int8_static"]
    assert fp32["accuracy"]["cosine_min"] > 1 - 1e-6 and fp32["steps"][0]["params"]["weights_stored_as"] == "fp32"
    assert fp32["execution"]["inference_precision"] == "f32" and set(fp32["execution"]["compute_precisions"]) == {"f32"}
    assert int8["accuracy"]["cosine_min"] > 0.99 and int8["steps"][0]["details"]["fake_quantize"] >= 4
    assert int8["steps"][0]["params"]["calibration_samples"] == 32  # the same SampleSet as every other format
    assert {"u8", "i8"} & set(int8["execution"]["compute_precisions"])  # int8 kernels ran, not f32 ones
    assert set(int8["execution"]["float_remainder_precisions"]) <= {"f32"}
    if bf16:  # the same IR, quantized once, its float remainder compiled to bf16
        int8_bf16 = by_name["openvino/int8_bf16"]
        step = int8_bf16["steps"][0]
        assert step["seconds"] == 0 and step["details"] == {**int8["steps"][0]["details"], "ir_of": int8["name"]}
        weights = [(ov_folder.out_dir / a["files"][1]).read_bytes() for a in (int8, int8_bf16)]
        assert weights[0] == weights[1]
        execution = int8_bf16["execution"]
        assert {"u8", "i8"} & set(execution["compute_precisions"]) and execution["inference_precision"] == "bf16"
        if "bf16" in execution["float_remainder_precisions"]:  # gated and timed as a candidate of its own
            assert int8_bf16["accuracy"] and int8_bf16["latency"]["runs"] >= 20
        else:  # the plugin kept every float layer in f32: the same compiled model as int8_static, not kept
            assert int8_bf16["status"] == "rejected" and int8_bf16["failure"] == "speed"
            assert int8_bf16["rejected_reason"].startswith("the same compiled model as openvino/int8_static")
            assert int8_bf16["latency"] is None
    # onnx is not a format here: the FP32 ONNX base was made in work/ (gone), its steps are the common steps
    assert [s["step"] for s in manifest["steps"]] == ["export_onnx", "prepare", "simplify", "optimize"]
    assert sorted(p.name for p in ov_folder.out_dir.iterdir()) == sorted(
        {".edgekit-owned.json", "manifest.json", "samples", *(f.split("/")[0] for a in by_name.values()
                                                              for f in a["files"])})
    measured = manifest["latency_measured_on"]
    assert measured["where"] == "host" and measured["cpu_features"] == cpu_features()
    assert manifest["versions"]["openvino"] and manifest["versions"]["nncf"]


def test_runner_float_in_float_out_from_file_and_bundle(ov_folder, cnn_data):
    xml = ov_folder.out_dir / "model.fp32.xml"
    samples = np.load(cnn_data["val"])["x"][:6]
    expected = reference_outputs(samples)
    runner = open_runner(xml, threads=2)
    assert isinstance(runner, OpenVinoRunner) and runner.input_names == ["x"] and len(runner.output_names) == 1
    assert runner.input_specs() == {"x": {"shape": [1, 3, 8, 8], "dtype": "float32"}}
    from_bundle = OpenVinoRunner(b"".join(ir_bundle.upload_chunks(xml)), threads=1)
    for i, want in enumerate(expected):
        got = runner.run({"x": samples[i:i + 1]})[0]
        assert got.dtype == np.float32 and got.shape == want.shape == (1, 5)
        assert np.abs(got - want).max() < 1e-5
        assert np.array_equal(from_bundle.run({"x": samples[i:i + 1]})[0], got)
    stats = runner.benchmark({"x": samples[:1]}, warmup=2, runs=15)
    assert stats.runs >= 15 and stats.threads == 2 and 0 < stats.p50_ms <= stats.p90_ms
    assert runner.execution_info()["inference_precision"] == "f32"
    with pytest.raises(KeyError, match="missing inputs"):
        runner.run({"y": samples[:1]})


def test_runner_refuses_broken_files_and_bundles(ov_folder, tmp_path):
    xml = ov_folder.out_dir / "model.fp32.xml"
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(xml.read_bytes())
    with pytest.raises(InputError, match="with its .bin beside it"):
        OpenVinoRunner(lonely)
    bundle = b"".join(ir_bundle.upload_chunks(xml))
    for bad, message in ((b"\x08\x01onnx?", "bad magic"), (bundle[:40], "does not fit"),
                         (bundle[:-64], "not a loadable OpenVINO IR")):
        with pytest.raises(InputError, match=message):
            OpenVinoRunner(bad)
    with pytest.raises(InputError, match="unknown OpenVINO inference precision"):
        OpenVinoRunner(xml, inference_precision="int4")


def attention_int8_ir(path):
    """An attention-shaped block quantized by NNCF's transformer preset: two int8 MatMuls, and a float remainder
    (activation x activation MatMuls, Softmax, MVN, SiLU) that NNCF leaves in float."""
    import nncf
    import openvino
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, 16, 64], np.float32, name="x")
    h = ops.matmul(x, ops.constant(rng.standard_normal((64, 64)).astype(np.float32) * 0.1), False, False)
    h = ops.matmul(ops.softmax(ops.matmul(h, h, False, True), -1), h, False, False)
    h = ops.mvn(h, ops.constant(np.array([-1], np.int64)), True, 1e-5, "inside_sqrt")
    h = ops.multiply(h, ops.sigmoid(h))
    y = ops.matmul(h, ops.constant(rng.standard_normal((64, 8)).astype(np.float32) * 0.1), False, False)
    calibration = [rng.standard_normal((1, 16, 64)).astype(np.float32) for _ in range(8)]
    quantized = nncf.quantize(openvino.Model([y], [x], "attention"), nncf.Dataset(calibration), subset_size=8,
                              model_type=nncf.ModelType.TRANSFORMER)
    openvino.save_model(quantized, str(path), compress_to_fp16=False)
    return path, [rng.standard_normal((1, 16, 64)).astype(np.float32) for _ in range(4)]


def test_int8_float_remainder_follows_the_precision_hint_per_capability(tmp_path):
    """An INT8 IR compiled twice: under the f32 hint its float remainder runs f32; under the bf16 hint it runs bf16
    where the plugin has bf16 arithmetic (AMX / AVX512-BF16: the Xeon) and stays f32 where it has not (AMD EPYC,
    AVX2), with the same outputs there. The compute layers run int8 either way, and the compiled settings are read
    back from the plugin, not echoed from the request."""
    import openvino

    xml, samples = attention_int8_ir(tmp_path / "attention.int8.xml")
    plugin_has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    runners = {p: OpenVinoRunner(xml, threads=2, inference_precision=p) for p in ("f32", "bf16")}
    info = {p: r.execution_info() for p, r in runners.items()}
    for execution in info.values():
        assert {"u8", "i8"} & set(execution["compute_precisions"]) and "f32" not in execution["compute_precisions"]
        config = execution["compiled_config"]
        assert (config["threads"], config["streams"], config["performance_hint"]) == (2, 1, "LATENCY")
        assert config["inference_precision"] == execution["inference_precision"]
    assert set(info["f32"]["float_remainder_precisions"]) == {"f32"} and info["f32"]["inference_precision"] == "f32"
    outputs = {p: [r.run({"x": sample})[0] for sample in samples] for p, r in runners.items()}
    if plugin_has_bf16:
        assert info["bf16"]["inference_precision"] == "bf16" and "bf16" in info["bf16"]["float_remainder_precisions"]
        assert not all(np.array_equal(a, b) for a, b in zip(outputs["f32"], outputs["bf16"]))  # it did run bf16
        assert min(cosine(a, b) for a, b in zip(outputs["f32"], outputs["bf16"])) > 0.99
    else:
        assert info["bf16"]["inference_precision"] == "f32"
        assert set(info["bf16"]["float_remainder_precisions"]) == {"f32"}
        assert all(np.array_equal(a, b) for a, b in zip(outputs["f32"], outputs["bf16"]))


def test_benchmark_times_the_same_model_it_runs(ov_folder, cnn_data):
    """benchmark() (start_async + wait on the one request) leaves the request holding the fed inputs' results:
    the outputs it computed equal run()'s for the same sample."""
    xml = ov_folder.out_dir / "model.fp32.xml"
    sample = {"x": np.load(cnn_data["val"])["x"][:1]}
    runner = OpenVinoRunner(xml, threads=1)
    stats = runner.benchmark(sample, warmup=1, runs=5)
    assert stats.runs >= 5 and 0 < stats.min_ms <= stats.p50_ms
    timed = np.array(runner.request.get_output_tensor(0).data, dtype=np.float32)
    assert np.array_equal(timed, runner.run(sample)[0])


def scaler_model(path):
    """A real-world shape of failure: an ai.onnx.ml op (from sklearn-onnx pipelines) that ONNX Runtime runs and
    OpenVINO's ONNX frontend has no conversion rule for."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Scaler", ["x"], ["scaled"], domain="ai.onnx.ml", offset=[0.5] * 4, scale=[2.0] * 4),
             helper.make_node("MatMul", ["scaled", "w"], ["y"])]
    graph = helper.make_graph(nodes, "scaler", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.save(model, str(path))
    return path


@pytest.mark.cpu_sensitive
def test_openvino_conversion_failure_rejects_only_its_candidates(tmp_path, monkeypatch):
    source = scaler_model(tmp_path / "scaler.onnx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = export(str(source), "x86", out=tmp_path / "out", benchmark=False)
    by_name = {c.name: c for c in result.candidates}
    openvino = [c for c in result.candidates if c.format == "openvino"]
    bf16 = {"openvino/bf16", "openvino/int8_bf16"} if "BF16" in cpu_capabilities() else set()  # where it has bf16
    assert {c.name for c in openvino} == {"openvino/fp32", "openvino/int8_static"} | bf16
    for candidate in openvino:
        assert candidate.failure == "conversion" and candidate.artifact is None
        assert "No conversion rule found for operations: ai.onnx.ml.Scaler" in candidate.reason
    assert by_name["onnx/fp32"].usable and by_name["onnx/fp32"].accuracy.cosine_min > 1 - 1e-6
    assert result.passed and result.manifest["recommended"] == "model.fp32.onnx"
    for precision in ("bf16", "int8_bf16"):
        assert f"{precision} is not built for onnx, tflite, executorch: no {precision} route in those formats" in \
            result.manifest["notes"]
    assert not list(result.out_dir.glob("*.xml")) and not list(result.out_dir.glob("*.bin"))
    with pytest.raises(ExportError, match="ai.onnx.ml.Scaler"):  # asked for openvino alone, the run fails
        export(str(source), "x86", out=tmp_path / "only", format="openvino", benchmark=False)
    assert not (tmp_path / "only").exists()
    assert not list(cwd.iterdir())  # ORT's shape inference fails on Scaler; its temp file stays out of the cwd


@pytest.mark.cpu_sensitive
def test_nncf_accuracy_aware_mode_rescues_int8_within_a_quarter_of_the_layers(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(32, seed=1))
    options = dict(calib=data, val=data, format="openvino", benchmark=False)
    # whole-model INT8's loss depends on the CPU's kernels (AVX2 vs VNNI/AMX): read it, then ask for half of it back
    plain = export(model_ref("outlier_deep"), "x86", out=tmp_path / "plain", rescue=False,
                   accuracy={"cosine_min": 0.0}, **options)
    whole = next(c for c in plain.candidates if c.name == "openvino/int8_static").accuracy.cosine_min
    assert whole < 0.9998
    budget = round((1.0 + whole) / 2, 6)
    with pytest.raises(AccuracyError, match="openvino/int8_static: accuracy: cosine_min"):
        export(model_ref("outlier_deep"), "x86", out=tmp_path / "strict", rescue=False,
               accuracy={"cosine_min": budget}, **options)
    options["accuracy"] = {"cosine_min": budget}
    result = export(model_ref("outlier_deep"), "x86", out=tmp_path / "rescued", **options)
    int8 = next(c for c in result.candidates if c.name == "openvino/int8_static")
    assert int8.usable and int8.accuracy.cosine_min >= budget
    assert int8.notes[0].startswith("int8 → int8_static (model kind convolutional")  # x86 lists int8
    assert any(n.startswith("rescued:") for n in int8.notes)
    step = int8.steps[0]
    assert 0 < step.details["fake_quantize"] < 8  # some layers back in float, most still int8
    if step.params["method"] == "nncf.quantize":  # a trial of the one-pass ranking rescued it before any search
        assert len(step.params["kept_float"]) <= 2 and "conv2d_1" in step.params["kept_float"][0]  # 'second'
        assert any(re.search(r"with its [12] most error-adding layer\(s\) in float \(ranked in one pass\)", n)
                   for n in int8.notes)
    else:  # those trials went some way, not all of it: NNCF's search ran after them
        assert step.params["method"] == "nncf.quantize_with_accuracy_control"
        assert step.params["max_float_layers"] == 2
        assert any(n.startswith("rescue tried its most error-adding layers in float") for n in int8.notes)
    # the shallow outlier model needs 3 of its 4 quantized ops back in float: refused, said why
    with pytest.raises(AccuracyError):
        export(model_ref("outlier_channel"), "x86", out=tmp_path / "shallow",
               **{**options, "accuracy": {"cosine_min": 0.999}})
    manifest = json.loads((tmp_path / "shallow" / "manifest.json").read_text())
    shallow = next(a for a in manifest["artifacts"] if a["name"] == "openvino/int8_static")
    assert shallow["status"] == "rejected" and shallow["accuracy"]["cosine_min"] < 0.999
    assert any(n.startswith("rescue tried asymmetric activations (NNCF's mixed preset) first, still under the "
                            "budget: accuracy: cosine_min 0.") for n in shallow["notes"])
    assert any(n.startswith("rescue failed: NNCF's accuracy-aware mode, with up to 2 layer(s) back in float") or
               n.startswith("rescue failed: its most error-adding layers in float took it no closer to the budget")
               for n in shallow["notes"])


def test_the_one_pass_ranking_names_the_layer_behind_the_outlier_first(tmp_path):
    import nncf
    import openvino as ov
    import torch

    from testkit.models import outlier_deep

    module, example = outlier_deep()
    float_onnx = tmp_path / "float.onnx"
    torch.onnx.export(module, (example,), str(float_onnx), input_names=["x"], dynamo=False)
    images = smooth_images(16, seed=1)
    calibration = nncf.Dataset([{"x": image[None]} for image in images])
    int8_ir = tmp_path / "int8.xml"
    ov.save_model(nncf.quantize(ov.convert_model(str(float_onnx)), calibration, subset_size=16),
                  str(int8_ir), compress_to_fp16=False)
    ranked = rank_layers(float_onnx, int8_ir, SampleSet({"x": images}, None, "smooth_images"))
    assert len(ranked) == 7  # the six convolutions and the head, each with the error it adds
    # per-tensor INT8 of the outlier channel crushes the channels 'second' reads: its input error is what it adds
    assert "second" in ranked[0][0] and ranked[0][1] > 3 * max(abs(added) for _, added in ranked[1:])


@pytest.mark.cpu_sensitive
def test_openvino_rescue_tries_asymmetric_activations_before_any_layer_goes_back_to_float(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(32, seed=1))
    options = dict(calib=data, val=data, format="openvino", benchmark=False)

    def int8(folder: str, cosine_min: float, **extra):
        result = export(model_ref("shifted_silu"), "x86", out=tmp_path / folder, accuracy={"cosine_min": cosine_min},
                        **options, **extra)
        return next(c for c in result.candidates if c.name == "openvino/int8_static")

    def on_disk_cosine(candidate) -> float:
        """The lowest cosine of the file the export left (the IR and its weights), against PyTorch."""
        source, samples = load_source(model_ref("shifted_silu"), None), np.load(data)["x"]
        runner = open_runner(candidate.artifact.path, threads=1, **candidate.runner_options)
        return min(cosine(source.run({"x": s[None]})[0], runner.run({"x": s[None]})[0]) for s in samples)

    symmetric = int8("plain", 0.0, rescue=False).accuracy.cosine_min
    # a budget no INT8 meets: the asymmetric trial fails, its figure is noted, and NNCF's search runs after it
    with pytest.raises(AccuracyError, match="openvino/int8_static: accuracy"):
        int8("strict", 1 - 1e-7)
    manifest = json.loads((tmp_path / "strict" / "manifest.json").read_text())
    strict = next(a for a in manifest["artifacts"] if a["name"] == "openvino/int8_static")
    assert strict["status"] == "rejected"
    notes = " ".join(strict["notes"])
    found = re.search(r"rescue tried asymmetric activations \(NNCF's mixed preset\) first, still under the budget: "
                      r"accuracy: cosine_min ([0-9.]+) <", notes)
    assert found and "NNCF's accuracy-aware" in notes
    asymmetric = float(found.group(1))
    assert 0.9 < symmetric < 1 - 1e-7 and 0.9 < asymmetric < 1 - 1e-7
    budget = round((symmetric + asymmetric) / 2, 6)
    rescued = int8("rescued", budget)
    step = rescued.steps[0]
    assert not [p.name for p in (tmp_path / "rescued").rglob("*") if "rescue-trial" in p.name]
    if rescued.usable:
        assert on_disk_cosine(rescued) == pytest.approx(rescued.accuracy.cosine_min, abs=1e-6)
    if asymmetric > symmetric:  # this CPU's INT8 kernels gain from it (the Zen 4 EPYC, VNNI): one quantization
        assert rescued.usable and rescued.accuracy.cosine_min >= budget and step.details["fake_quantize"] > 0
        assert step.params["method"] == "nncf.quantize" and step.params["preset"] == "mixed (asymmetric activations)"
        assert any(n.startswith("rescued:") and "with asymmetric activations (NNCF's mixed preset) and no layer in "
                   "float" in n for n in rescued.notes)
    else:  # the asymmetric trial cannot pass a budget above its own figure: the search takes over
        assert step.params["method"] == "nncf.quantize_with_accuracy_control"
        assert step.params["preset"] == "performance (symmetric int8)"


def test_a_second_quantization_of_the_same_model_preset_and_data_reuses_the_first(tmp_path):
    """int8_bf16's asymmetric retry quantizes exactly what int8_static's did: NNCF runs once per export."""
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(16, seed=1))
    fp32 = tmp_path / "fp32.toml"
    fp32.write_text('formats = ["onnx"]\nprecisions = ["fp32"]\nthreads = 1\n')
    float_path = export(model_ref("shifted_silu"), str(fp32), out=tmp_path / "float", calib=data, val=data,
                        benchmark=False).out_dir / "model.fp32.onnx"
    source = load_source(model_ref("shifted_silu"))
    context = StepContext(load_target("x86"), source.inputs, load_data(data, source.inputs))
    float_model = Artifact(float_path, "onnx", "fp32")
    first, again, symmetric = (OpenVinoQuantize(asymmetric=asymmetric).run(float_model, tmp_path / f"{name}.xml",
                                                                           context)
                               for name, asymmetric in (("first", True), ("again", True), ("symmetric", False)))
    assert "quantization" not in first.details and "quantization" not in symmetric.details
    assert again.details["quantization"].startswith("reused: the same model, preset and data")
    for suffix in (".xml", ".bin"):
        assert (tmp_path / f"again{suffix}").read_bytes() == (tmp_path / f"first{suffix}").read_bytes()
    assert (tmp_path / "symmetric.bin").read_bytes() != (tmp_path / "first.bin").read_bytes()


@pytest.mark.cpu_sensitive
def test_agent_benchmarks_and_runs_the_ir_and_validate_passes(ov_folder, tmp_path, cnn_data):
    agent = start_agent(tmp_path)
    try:
        with AgentClient(agent.url, agent.token) as client:
            info = client.info()
            assert info["cpu_features"] == cpu_features() and "openvino" in info["runtimes"]
            entry = next(a for a in ov_folder.manifest["artifacts"] if a["name"] == "openvino/int8_static")
            xml = ov_folder.out_dir / entry["file"]
            stored = client.upload(xml)
            assert stored["uploaded"] and stored["format"] == "openvino" and stored["digest"] == entry["sha256"]
            assert stored["size_bytes"] == ir_bundle.upload_size(xml)
            assert client.upload(xml)["uploaded"] is False
            samples = np.load(cnn_data["val"])["x"][:4]
            result = client.benchmark(entry["sha256"], threads=1, runner_options=entry["runner_options"],
                                      arrays={"x": samples}, **FAST)
            assert result["status"] == "ok" and result["latency"]["runs"] >= 10
            assert result["execution"]["inference_precision"] == "f32"
            assert result["execution"]["compute_kernels"] == entry["execution"]["compute_kernels"]
            device = client.infer(entry["sha256"], {"x": samples}, runner_options=entry["runner_options"])[0]
            host = open_runner(xml, threads=1, **entry["runner_options"])
            assert np.allclose(device, np.concatenate([host.run({"x": s[None]})[0] for s in samples]), atol=1e-5)
            raw = httpx.put(f"{agent.url}/v1/artifacts/{hashlib.sha256(xml.read_bytes()).hexdigest()}",
                            content=xml.read_bytes(), headers=agent.headers)
            assert raw.status_code == 415 and "OpenVINO .xml alone" in raw.json()["detail"]
        validated = validate(ov_folder.out_dir, [agent.url], token=agent.token, all_candidates=True, **FAST)
        checks = validated.devices[0].artifacts
        assert validated.passed and {c.file for c in checks} == {a["file"] for a in ov_folder.manifest["artifacts"]
                                                                 if a["passed"]}
        assert all(c.accuracy["cosine_min"] > 1 - 1e-6 for c in checks)  # device == host, same runtime and file
    finally:
        agent.stop()
        (ov_folder.out_dir / "validation.json").unlink(missing_ok=True)


def test_cpu_features_from_cpuinfo_text():
    xeon = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse4_2 avx avx2 fma "
            "avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni\n")
    graviton = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp sve i8mm bf16 sve2\n"
    zen3 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx f16c avx2 fma bmi2\n"
    assert cpu_features(xeon) == ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                  "amx_tile", "amx_int8", "amx_bf16"]
    assert cpu_features(graviton) == ["asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2"]
    assert cpu_features(zen3) == ["avx2", "fma"] and cpu_features("") == []


def test_missing_openvino_names_the_extra():
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from edgekit.runtime.openvino import OpenVinoRunner\n"
            "from edgekit.errors import ExportError\n"
            "try:\n    OpenVinoRunner('model.xml')\nexcept ExportError as e:\n    print(e.message, '|', e.hint)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0 and "OpenVINO is needed" in done.stdout and "'openvino' extra" in done.stdout
    assert "pip install -e '.[openvino]'" in done.stdout and "pip install edgekit" not in done.stdout

