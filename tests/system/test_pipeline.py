"""edgekit.export end to end on tiny models: manifest, files, gate, atomic folders."""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit import export
from edgekit.data import load_data
from edgekit.errors import AccuracyError, InputError
from edgekit.exporter.candidates import Candidate, gate
from edgekit.exporter.group_head import COMPUTE_OPS
from edgekit.exporter.rescue import rescue_onnx_int8
from edgekit.exporter.schedule import FloatAllowance
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps import Artifact, StepContext
from edgekit.exporter.steps.quantize_static import QuantizeStatic
from edgekit.files import sha256_file
from edgekit.progress import SilentProgress
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.runtime.openvino import cpu_capabilities
from edgekit.targets import load_target
from testkit import REPO, model_ref, smooth_images

# The tiny CNN has random weights, so its logits sit close together and INT8 flips a few argmaxes.
LOOSE_TOP1 = {"top1_agreement_min": 0.85}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cnn_data):
    out = tmp_path_factory.mktemp("pipeline") / "cnn-x86"
    return export(model_ref("tiny_cnn"), "x86", out=out, calib=cnn_data["calib"], val=cnn_data["val"],
                  accuracy=LOOSE_TOP1, format="onnx")


def test_manifest_describes_everything(exported, cnn_data):
    manifest = json.loads((exported.out_dir / "manifest.json").read_text())
    assert manifest == exported.manifest
    assert manifest["status"] == "passed" and manifest["schema"] == "edgekit.manifest/3"
    assert manifest["source"]["sha256"] == hashlib.sha256(Path(REPO / "testkit/models.py").read_bytes()).hexdigest()
    assert manifest["target"]["name"] == "x86" and manifest["target"]["quantization"]["activation_type"] == "uint8"
    assert [s["step"] for s in manifest["steps"]] == ["export_onnx", "prepare", "simplify", "optimize"]
    assert all(s["seconds"] >= 0 for s in manifest["steps"])
    assert {"onnx", "onnxruntime", "onnxsim", "torch", "edgekit"} <= set(manifest["versions"])
    validation = manifest["data"]["validation"]
    assert validation["samples"] == 24 and not validation["synthetic"] and validation["origin"] == "val.npz"
    assert (exported.out_dir / validation["path"]).resolve() == cnn_data["val"].resolve()  # relative to the folder
    assert validation["sha256"] == hashlib.sha256(cnn_data["val"].read_bytes()).hexdigest()
    assert validation["shipped"] == {"file": "samples/validation.npz", "samples": 24, "of": 24, "reason": None,
                                     "bytes": (exported.out_dir / "samples/validation.npz").stat().st_size,
                                     "sha256": sha256_file(exported.out_dir / "samples/validation.npz")}
    by_precision = {a["precision"]: a for a in manifest["artifacts"]}
    assert set(by_precision) == {"fp32", "int8_static"}
    for art in manifest["artifacts"]:
        path = exported.out_dir / art["file"]
        assert art["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert art["size_bytes"] == path.stat().st_size
        assert art["passed"] and art["accuracy"]["cosine_min"] >= 0.99
        assert art["latency"]["p50_ms"] > 0 and art["latency"]["runs"] >= 20
        assert art["latency"]["peak_rss_mb"] > 0
        rounds = art["latency"]["round_p50s_ms"]  # three rotating rounds (one if out of the running); the fastest
        assert len(rounds) == (1 if "rounds_stopped" in art["latency"] else 3)  # one is the figure
        assert art["latency"]["p50_ms"] == pytest.approx(min(rounds), abs=1e-4)
    assert by_precision["fp32"]["accuracy"]["cosine_min"] > 0.99999
    assert by_precision["int8_static"]["steps"][0]["params"]["calibration_samples"] == 32
    assert manifest["recommended"] in {"model.fp32.onnx", "model.int8_static.onnx"}
    fastest = min(manifest["artifacts"], key=lambda a: a["latency"]["p50_ms"])
    assert manifest["recommended"] == fastest["file"]


def test_folder_holds_only_finished_files(exported):
    assert all(c.artifact.path.parent == exported.out_dir and c.artifact.path.exists() for c in exported.candidates)
    names = sorted(p.name for p in exported.out_dir.iterdir())
    assert names == [".edgekit-owned.json", "manifest.json", "model.fp32.onnx", "model.int8_static.onnx", "samples"]
    assert sorted(p.name for p in (exported.out_dir / "samples").iterdir()) == ["validation.npz"]
    owned = json.loads((exported.out_dir / ".edgekit-owned.json").read_text())
    assert owned["owner"] == "edgekit" and owned["entries"] == names[1:]  # what --overwrite may replace
    assert not [p for p in exported.out_dir.parent.iterdir() if p.name.startswith(".")]  # no lock, no staging


def test_artifacts_compute_what_pytorch_computes(exported):
    source = load_source(model_ref("tiny_cnn"))
    feeds = {"x": smooth_images(1, seed=42)}
    expected = source.run(feeds)[0]
    np.testing.assert_allclose(OnnxRunner(exported.out_dir / "model.fp32.onnx").run(feeds)[0], expected, atol=1e-4)


def test_existing_folder_is_not_overwritten_without_asking(exported, cnn_data):
    before = (exported.out_dir / "manifest.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        export(model_ref("tiny_cnn"), "x86", out=exported.out_dir, calib=cnn_data["calib"], benchmark=False,
               format="onnx")
    assert (exported.out_dir / "manifest.json").read_bytes() == before


def test_failed_run_leaves_existing_folder_intact(tmp_path, cnn_data):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    bad = tmp_path / "bad.npz"
    np.savez(bad, wrong=np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(InputError):
        export(model_ref("tiny_cnn"), "x86", out=out, calib=bad, overwrite=True, format="onnx")
    assert (out / "mine.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "keep"]


def test_overwrite_replaces_atomically(tmp_path, cnn_data):
    out = tmp_path / "again"
    export(model_ref("tiny_cnn"), "x86", out=out, calib=cnn_data["calib"], val=cnn_data["val"], benchmark=False,
           accuracy=LOOSE_TOP1, format="onnx")
    result = export(model_ref("tiny_cnn"), "x86", out=out, calib=cnn_data["calib"], val=cnn_data["val"],
                    benchmark=False, overwrite=True, accuracy=LOOSE_TOP1, format="onnx")
    assert result.passed and sorted(p.name for p in tmp_path.iterdir()) == ["again"]
    assert result.manifest["recommended"] == "model.fp32.onnx"  # not benchmarked: profile order


def test_budget_failure_is_an_error_with_figures(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(16, seed=4))
    with pytest.raises(AccuracyError) as info:
        export(model_ref("unstable"), "x86", out=tmp_path / "out", calib=data, val=data, benchmark=False,
               accuracy={"cosine_min": 0.9999}, format="onnx", rescue=False)
    assert "onnx/int8_static" in info.value.figures
    assert info.value.figures["onnx/int8_static"]["cosine_min"] < 0.9999
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["recommended"] == "model.fp32.onnx"
    failed = next(a for a in manifest["artifacts"] if a["precision"] == "int8_static")
    assert failed["file"] == "rejected/model.int8_static.onnx" and not failed["passed"]
    assert "cosine_min" in failed["rejected_reason"]
    assert not (tmp_path / "out" / "model.int8_static.onnx").exists()


def test_synthetic_fallback_is_said(tmp_path):
    result = export(model_ref("tiny_cnn"), "x86", out=tmp_path / "syn", benchmark=False, accuracy=LOOSE_TOP1,
                    format="onnx")
    assert result.manifest["data"]["calibration"]["synthetic"] is True
    assert "weak evidence" in result.manifest["data"]["notes"][0]


def test_onnx_source_without_pytorch(tmp_path, exported, cnn_data):
    result = export(str(exported.out_dir / "model.fp32.onnx"), "mobile", out=tmp_path / "from-onnx",
                    calib=cnn_data["calib"], val=cnn_data["val"], benchmark=False, accuracy=LOOSE_TOP1)
    assert result.manifest["source"]["kind"] == "onnx"
    assert [s["step"] for s in result.manifest["steps"]] == ["prepare", "simplify", "optimize"]
    onnx_artifacts = [a for a in result.manifest["artifacts"] if a["format"] == "onnx"]
    assert {a["precision"] for a in onnx_artifacts} == {"fp32", "fp16", "int8_static"}
    assert all(a["passed"] for a in onnx_artifacts)
    tflite = {a["precision"]: a for a in result.manifest["artifacts"] if a["format"] == "tflite"}
    assert set(tflite) == {"fp32", "fp16", "int8_static"}  # ONNX -> TFLite through onnx2torch
    assert all(art["passed"] for art in tflite.values()), {p: a["rejected_reason"] for p, a in tflite.items()}
    assert result.manifest["recommended"] == "model.fp32.tflite"  # not benchmarked: first in profile order


def test_dynamic_batch_runs_any_batch(tmp_path, cnn_data):
    result = export(model_ref("tiny_cnn"), "x86", out=tmp_path / "dyn", calib=cnn_data["calib"],
                    val=cnn_data["val"], dynamic_batch=True, benchmark=False, accuracy=LOOSE_TOP1, format="onnx")
    model = onnx.load(str(result.out_dir / "model.int8_static.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    batch = smooth_images(5, seed=7)
    expected = load_source(model_ref("tiny_cnn")).run({"x": batch})[0]
    got = OnnxRunner(result.out_dir / "model.fp32.onnx").run({"x": batch})[0]
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dynamic_int8_for_matmul_models(tmp_path):
    profile = tmp_path / "nlp.toml"
    profile.write_text('precisions = ["fp32", "int8_dynamic"]\nthreads = 1\n')
    result = export(model_ref("tiny_mlp"), str(profile), out=tmp_path / "mlp", benchmark=False, format="onnx")
    dynamic = next(a for a in result.manifest["artifacts"] if a["precision"] == "int8_dynamic")
    assert dynamic["steps"][0]["details"]["quantized_ops"] == 2 and dynamic["passed"]


def test_sample_model_keeps_its_real_accuracy(tmp_path):
    digits = REPO / "samples" / "digits"
    result = export(f"{digits / 'model.py'}:build", "x86", out=tmp_path / "digits", calib=digits / "calib.npz",
                    val=digits / "val.npz", benchmark=False, format="onnx")
    for art in result.manifest["artifacts"]:
        accuracy = art["accuracy"]
        assert accuracy["samples"] == 360
        assert accuracy["reference_label_accuracy"] >= 0.97
        assert accuracy["label_accuracy"] >= accuracy["reference_label_accuracy"] - 0.01
        assert accuracy["top1_agreement"] >= 0.99


def test_rescue_keeps_the_sensitive_layers_in_float(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(32, seed=1))
    options = dict(calib=data, val=data, format="onnx", benchmark=False, accuracy={"cosine_min": 0.999})
    with pytest.raises(AccuracyError):
        export(model_ref("outlier_channel"), "x86", out=tmp_path / "plain", rescue=False, **options)
    result = export(model_ref("outlier_channel"), "x86", out=tmp_path / "rescued", **options)
    int8 = next(c for c in result.candidates if c.name == "onnx/int8_static")
    assert int8.usable and int8.accuracy.cosine_min >= 0.999
    kept = int8.steps[0].params["nodes_kept_in_float"]
    rescued = next(n for n in int8.notes if n.startswith("rescued:"))  # after the note on what int8 became
    assert set(kept) == {"node_conv2d", "node_conv2d_1"} and "kept in float" in rescued
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(int8.artifact.path)).graph.node}
    assert "layer" in rescued and f"-> {int8.accuracy.cosine_min:.4f}" in rescued  # figures
    # calibrated once: the rescue's trials quantize with the first build's ranges
    assert int8.steps[0].details["calibration"] == "ranges reused from the first quantization of this model"


@pytest.mark.parametrize("lead_pays_for, outcome", [(0, "rescue not tried"), (1, "rescue limited"), (2, "rescued")])
def test_a_rescue_keeps_no_more_layers_in_float_than_the_lead_pays_for(tmp_path, lead_pays_for, outcome):
    """outlier_channel's INT8 needs its two sensitive convolutions in float (test above): a lead paying for none
    is not rescued at all, for one it is searched up to one and fails, for two it is rescued."""
    data, fp32 = tmp_path / "d.npz", tmp_path / "fp32.toml"
    np.savez(data, x=smooth_images(32, seed=1))
    fp32.write_text('formats = ["onnx"]\nprecisions = ["fp32"]\nthreads = 1\n')
    float_path = export(model_ref("outlier_channel"), str(fp32), out=tmp_path / "out", calib=data, val=data,
                        benchmark=False).out_dir / "model.fp32.onnx"
    source = load_source(model_ref("outlier_channel"))
    profile = load_target("x86")
    profile = profile.model_copy(update={"accuracy": profile.accuracy.model_copy(update={"cosine_min": 0.999})})
    validation = load_data(data, source.inputs)
    context = StepContext(profile, source.inputs, validation)
    reference = [source.run(sample) for sample in validation]
    step = QuantizeStatic().run(Artifact(float_path, "onnx", "fp32"), tmp_path / "int8.onnx", context)
    int8 = Candidate("onnx", "int8_static", step.artifact, [step])
    gate(int8, reference, validation, profile.accuracy, 1)
    assert int8.failure == "accuracy"
    layers = sum(node.op_type in COMPUTE_OPS for node in onnx.load(str(float_path)).graph.node)
    allowance = FloatAllowance(lead_ms=lead_pays_for + 0.5, float_cost_ms=float(layers), best="onnx/fp32",
                               float_twin="onnx/fp32")  # 1 ms a layer
    assert allowance.layers(layers) == lead_pays_for
    rescue_onnx_int8(int8, context, reference, validation, float_path, SilentProgress(), None, allowance)
    assert int8.usable == (outcome == "rescued")
    assert any(note.startswith(outcome) for note in int8.notes)
    if outcome == "rescue not tried":
        assert f"pays for 0 of its {layers} compute layers in float (about 1.000 ms each" in int8.notes[-1]
        assert int8.history[-1]["by"] != "rescue"  # rejected by the gate, as it was
    elif outcome == "rescue limited":
        assert "rescue failed: up to 1 most sensitive node(s) in float" in int8.notes[-1]
    else:
        assert set(int8.steps[0].params["nodes_kept_in_float"]) == {"node_conv2d", "node_conv2d_1"}


def test_failed_rescue_names_where_the_int8_model_diverges(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(16, seed=4))
    with pytest.raises(AccuracyError, match=r"(first divergent|least similar) layer: node_\w+ \((Conv|Gemm)\), "
                                            r"output cosine [0-9.]+ against float"):
        export(model_ref("unstable"), "x86", out=tmp_path / "out", calib=data, val=data, benchmark=False,
               accuracy={"cosine_min": 0.99999}, format="onnx")


@pytest.mark.cpu_sensitive
def test_auto_selects_the_measured_fastest_passing_candidate(tmp_path, cnn_data):
    pytest.importorskip("litert_torch")
    result = export(model_ref("tiny_cnn"), "x86", out=tmp_path / "auto", calib=cnn_data["calib"],
                    val=cnn_data["val"], accuracy=LOOSE_TOP1)
    assert result.manifest["format"] == "auto"
    names = [a["name"] for a in result.manifest["artifacts"]]
    bf16 = "BF16" in cpu_capabilities()  # bf16 and the INT8 IR's bf16 remainder only where this CPU runs bf16
    could_not_win = {r["candidate"] for r in result.manifest["not_built"] if r["reason"].startswith("it could not")}
    assert could_not_win <= {"tflite/int8_static", "executorch/int8_static"}  # the slow INT8 builds only
    planned = ["onnx/fp32", "onnx/int8_static", "tflite/fp32", "tflite/int8_static", "openvino/fp32",
               *(["openvino/bf16"] if bf16 else []), "openvino/int8_static",
               *(["openvino/int8_bf16"] if bf16 else []), "executorch/fp32", "executorch/int8_static"]
    assert names == [name for name in planned if name not in could_not_win]
    usable = [c for c in result.candidates if c.usable]
    assert result.selected is min(usable, key=lambda c: c.latency["p50_ms"])
    assert result.manifest["recommended"] == result.selected.artifact.path.name
    fastest_fp32 = min(c.latency["p50_ms"] for c in result.candidates if c.precision == "fp32")
    assert result.selected.latency["p50_ms"] <= fastest_fp32
    for candidate in result.candidates:
        assert candidate.usable or candidate.reason


def test_tflite_file_as_model_is_benchmarked_as_it_is_and_quantized_against_itself(tmp_path, cnn_data):
    pytest.importorskip("ai_edge_quantizer")
    built = export(model_ref("tiny_cnn"), "x86", out=tmp_path / "built", calib=cnn_data["calib"], format="tflite",
                   benchmark=False, accuracy=LOOSE_TOP1)
    given = built.out_dir / "model.fp32.tflite"
    data = {}
    for name in ("calib", "val"):  # keyed by the .tflite's own input name
        data[name] = tmp_path / f"{name}.npz"
        np.savez(data[name], args_0=np.load(cnn_data[name])["x"])
    result = export(str(given), "x86", out=tmp_path / "given", cosine_min=0.9, **data)
    assert result.manifest["source"]["kind"] == "tflite"
    arts = {a["name"]: a for a in result.manifest["artifacts"]}
    assert set(arts) == {"tflite/given", "tflite/int8_static"}
    assert arts["tflite/given"]["file"] == "model.tflite"
    assert arts["tflite/given"]["sha256"] == result.manifest["source"]["sha256"]
    assert arts["tflite/given"]["accuracy"]["cosine_min"] > 1 - 1e-6  # the reference is the given file itself
    int8 = arts["tflite/int8_static"]
    assert [s["step"] for s in int8["steps"]] == ["quantize_tflite"] and int8["accuracy"]["cosine_min"] > 0.9
    assert all(a["latency"]["p50_ms"] > 0 for a in arts.values())
    not_built = {e["candidate"]: e["reason"] for e in result.manifest["not_built"]}
    assert "a .tflite source cannot be converted to ONNX" in not_built["onnx/fp32"]
    assert "a .tflite source cannot be converted to OpenVINO" in not_built["openvino/fp32"]
    with pytest.raises(InputError, match="cannot be converted to ONNX"):
        export(str(given), "x86", out=tmp_path / "as-onnx", format="onnx")
