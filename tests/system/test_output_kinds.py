"""Output kinds: top-1 only on class outputs (declared, or inferred where something says so), never on boxes or
embeddings; the kinds and their evidence in the table and the manifest; int64 inputs through both runtimes.
Stacked heads, masks and sequences: tests/unit/test_output_groups.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.accuracy import apply_budget, compare_outputs, infer_output_kind
from edgekit.errors import InputError
from edgekit.exporter.pipeline import export
from edgekit.specs import parse_output_kinds
from edgekit.targets import AccuracyBudget
from testkit import model_ref, smooth_images

RNG = np.random.default_rng(0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kinds_are_inferred_conservatively():
    logits = [RNG.standard_normal((1, 10)).astype(np.float32) for _ in range(4)]
    probabilities = [_softmax(a) for a in logits]
    # a sole (1, 10) output is not evidence of classes (all-MiniLM's (1, 384) embedding was judged by top-1 so)
    assert infer_output_kind("output_0", logits, outputs=1) == "regression"
    assert infer_output_kind("output_0", logits, outputs=1, labels=np.array([3, 1, 0, 9])) == "class"  # labels say
    assert infer_output_kind("output_1", logits, outputs=3) == "regression"  # (1, 10) beside others: landmarks?
    assert infer_output_kind("prob", probabilities, outputs=3) == "class"  # a softmax
    assert infer_output_kind("logits", logits, outputs=2) == "class"
    assert infer_output_kind("boxes", probabilities, outputs=2) == "regression"  # named like boxes: never class
    assert infer_output_kind("pooler_output", logits, outputs=2) == "embedding"
    sequence = [_softmax(RNG.standard_normal((1, 40, 100))) for _ in range(2)]
    assert infer_output_kind("softmax_11.tmp_0", sequence, outputs=1) == "class"  # no blank dominates: per position
    heatmap = [1 / (1 + np.exp(-RNG.standard_normal((1, 1, 32, 32)))) for _ in range(2)]
    assert infer_output_kind("sigmoid_0.tmp_0", heatmap, outputs=1) == "regression"  # in [0, 1], not near-binary
    normalised = [a / np.linalg.norm(a) for a in logits]
    assert infer_output_kind("output_0", normalised, outputs=1) == "embedding"


def test_top1_is_judged_on_the_class_output_only():
    """A detector whose class output agrees 100 % while its box regression argmax flips is not rejected for
    top-1 (argmax over box coordinates means nothing)."""
    boxes = [RNG.standard_normal((1, 4)).astype(np.float32) for _ in range(8)]
    scores = [_softmax(RNG.standard_normal((1, 3)) * 3).astype(np.float32) for _ in range(8)]
    moved = [b + np.array([[0.0, 0.0, 0.02, -0.02]], np.float32) for b in boxes]
    reference = [[b, s] for b, s in zip(boxes, scores)]
    candidate = [[m, s] for m, s in zip(moved, scores)]
    budget = AccuracyBudget(cosine_min=0.99, top1_agreement_min=0.97)
    report = apply_budget(compare_outputs(reference, candidate, ["output_0", "output_1"]), budget)
    assert [o.kind for o in report.outputs] == ["regression", "class"]
    assert report.outputs[0].top1_agreement is None and report.outputs[1].top1_agreement == 1.0
    assert report.passed
    declared = compare_outputs(reference, candidate, ["output_0", "output_1"], kinds=["class", None])
    assert declared.outputs[0].kind_declared and declared.outputs[0].top1_agreement is not None


def test_top1_on_sequences_counts_positions():
    ref = [_softmax(RNG.standard_normal((1, 10, 5)) * 4) for _ in range(2)]
    cand = [r.copy() for r in ref]
    cand[0][0, 3] = cand[0][0, 3][::-1]  # one position of twenty changes its arg-max (or stays: check below)
    flipped = int(ref[0][0, 3].argmax() != cand[0][0, 3].argmax())
    report = compare_outputs(ref, cand)
    assert report.outputs[0].kind == "class"
    assert report.outputs[0].top1_agreement == pytest.approx(1 - flipped / 20)


def test_max_abs_error_skips_embeddings():
    ref = [[RNG.standard_normal((1, 8)).astype(np.float32) * 100]]
    cand = [[ref[0][0] * 1.001]]
    budget = AccuracyBudget(cosine_min=0.99, max_abs_error=0.01)
    assert not apply_budget(compare_outputs(ref, cand, ["emb"], kinds=["regression"]), budget).passed
    assert apply_budget(compare_outputs(ref, cand, ["emb"], kinds=["embedding"]), budget).passed


def _kind(name: str, kind: str, declared: bool, evidence: str) -> dict:
    return {"name": name, "kind": kind, "declared": declared, "evidence": evidence, "groups": [], "task_metric": None}


@pytest.mark.parametrize("text", ["scores", "scores:probability", ":class", "a:class:x"])
def test_bad_output_kinds(text):
    with pytest.raises(InputError, match="bad output kind"):
        parse_output_kinds([text])


def test_declared_kinds_reach_the_gate_table_and_manifest(tmp_path, cnn_data):
    np.savez(tmp_path / "data.npz", x=smooth_images(16, seed=4))
    result = export(model_ref("boxes_and_scores"), "x86", out=tmp_path / "out", calib=tmp_path / "data.npz",
                    val=tmp_path / "data.npz", format="onnx", benchmark=False, outputs=["output_0:regression"])
    assert result.manifest["outputs"] == [_kind("output_0", "regression", True, "declared"), _kind(
        "output_1", "class", False, "softmax rows over 3 classes: non-negative, each sums to 1")]
    fp32 = next(a for a in result.manifest["artifacts"] if a["precision"] == "fp32")
    assert [o["kind"] for o in fp32["accuracy"]["outputs"]] == ["regression", "class"]
    assert fp32["accuracy"]["outputs"][1]["top1_agreement"] == 1.0
    with pytest.raises(InputError, match=r"not outputs of the model; its outputs are \['output_0', 'output_1'\]"):
        export(model_ref("boxes_and_scores"), "x86", out=tmp_path / "o2", format="onnx", outputs=["boxes:class"])


def test_cli_output_option_and_project_file(tmp_path):
    np.savez(tmp_path / "data.npz", x=smooth_images(8, seed=5))
    (tmp_path / "edgekit.toml").write_text(
        f'model = "{model_ref("boxes_and_scores")}"\ncalib = "data.npz"\nval = "data.npz"\nformat = "onnx"\n'
        'outputs = ["output_1:class"]\n')
    done = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", "--no-benchmark", "--json",
                           "--output", "output_0:regression"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["outputs"] == [_kind("output_0", "regression", True, "declared"), _kind(
        "output_1", "class", False, "softmax rows over 3 classes: non-negative, each sums to 1")]
    bad = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", "--output", "output_0:box"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "bad output kind 'output_0:box'" in bad.stderr and "Traceback" not in bad.stderr


def test_int64_token_ids_through_onnx_and_tflite(tmp_path):
    """int64 input_ids: litert-torch declares int32; the feeds are cast to what the interpreter declares."""
    pytest.importorskip("litert_torch")
    ids = np.random.default_rng(2).integers(0, 50, (16, 12)).astype(np.int64)
    np.savez(tmp_path / "ids.npz", ids=ids)
    result = export(model_ref("token_classifier"), "x86", out=tmp_path / "out", calib=tmp_path / "ids.npz",
                    val=tmp_path / "ids.npz", format="auto", benchmark=False)
    by_name = {c.name: c for c in result.candidates}
    for name in ("onnx/fp32", "tflite/fp32"):
        assert by_name[name].usable and by_name[name].accuracy.cosine_min > 0.9999, by_name[name].reason
    tflite_inputs = by_name["tflite/fp32"].steps[0].details["inputs"]
    assert tflite_inputs[0]["dtype"] in ("int32", "int64")
    assert all(c.usable or c.reason for c in result.candidates)


def test_cli_refuses_float_data_for_int64_input_without_traceback(tmp_path):
    np.savez(tmp_path / "ids.npz", ids=np.random.default_rng(2).random((4, 12)))
    done = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", model_ref("token_classifier"),
                           "--calib", str(tmp_path / "ids.npz"), "--format", "onnx", "--out", str(tmp_path / "o")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "input 'ids' takes int64 but the data holds float64" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npz"]
