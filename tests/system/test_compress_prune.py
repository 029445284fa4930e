"""Pruning on real data (scikit-learn's digits, the bundled trained CNN): structured and unstructured."""

from __future__ import annotations

import json

import onnx
import pytest
from compress_fixtures import FAST, TEACHER, digits_fixture, onnx_only_target_fixture  # noqa: F401 (fixtures)

import edgekit
from edgekit.compress import prune


@pytest.fixture(scope="module")
def structured(digits, onnx_only_target, tmp_path_factory):
    """The bundled digits CNN, half of its channels removed, fine-tuned 6 epochs, measured in ONNX Runtime."""
    out = tmp_path_factory.mktemp("prune") / "digits-pruned"
    result = prune(TEACHER, amount=0.5, train=digits["train"], val=digits["val"], out=out, epochs=6, lr=3e-3,
                   threads=1, measure_target=str(onnx_only_target))
    return result


def test_structured_pruning_removes_channels_and_keeps_accuracy(structured):
    record = structured.record
    before, after = record["metrics"]["before"], record["metrics"]["after"]
    removed = 1 - after["params"] / before["params"]
    assert removed >= 0.40, removed
    assert after["val_accuracy"] >= before["val_accuracy"] - 0.02, (before, after)
    # really smaller layers: half of every hidden conv's channels gone, the 10 classes kept
    edits = record["architecture"]["edits"]["attributes"]
    assert edits["features.0.0"] == {"out_channels": 8}
    assert edits["features.1.0"] == {"in_channels": 8, "out_channels": 16}
    assert edits["classifier"] == {"in_features": 32}
    weights = structured.module.state_dict()
    assert tuple(weights["features.3.0.weight"].shape) == (32, 16, 3, 3)
    assert tuple(weights["classifier.weight"].shape) == (10, 32)
    assert record["provenance"]["pruning"]["kept_layers"] == ["classifier"]
    assert record["metrics"]["pruned_before_fine_tuning"]["val_accuracy"] < after["val_accuracy"]


def test_structured_record_says_where_it_came_from(structured, digits):
    record = json.loads((structured.out_dir / "compressed.json").read_text())
    assert record["schema"] == "edgekit.compressed/1"
    assert record["architecture"]["factory"].endswith("samples/digits/model.py:build")
    provenance = record["provenance"]
    assert provenance["amount"] == 0.5 and provenance["epochs"] == 6 and provenance["world_size"] == 1
    from edgekit.files import sha256_file

    assert provenance["data"]["train"]["sha256"] == sha256_file(digits["train"])
    assert provenance["data"]["validation"]["sha256"] == sha256_file(digits["val"])
    assert sorted(p.name for p in structured.out_dir.iterdir()) == [".edgekit-owned.json", "compressed.json",
                                                                    "model.safetensors"]
    assert not list(structured.out_dir.parent.glob("*.checkpoints"))  # cleaned up after success
    assert b"pickle" not in (structured.out_dir / "model.safetensors").read_bytes()[:200]


def test_structured_onnx_artifact_is_measured_smaller(structured):
    runtimes = structured.record["metrics"]["runtimes"]
    onnx_row = runtimes["onnx"]
    assert onnx_row["after"]["file_bytes"] < 0.5 * onnx_row["before"]["file_bytes"]
    assert onnx_row["before"]["p50_ms"] > 0 and onnx_row["after"]["p50_ms"] > 0  # speed itself: bench/compress.py
    assert any("structured pruning, measured speed" in note for note in structured.record["notes"])


def test_edgekit_export_takes_the_pruned_folder(structured, digits, onnx_only_target, tmp_path):
    result = edgekit.export(str(structured.out_dir), str(onnx_only_target), val=digits["val"], out=tmp_path / "x",
                            benchmark=False)
    model = onnx.load(str(result.out_dir / "model.fp32.onnx"))
    shapes = sorted(tuple(init.dims) for init in model.graph.initializer if len(init.dims) == 4)
    assert (32, 16, 3, 3) in shapes and (64, 32, 3, 3) not in shapes
    accuracy = result.manifest["artifacts"][0]["accuracy"]
    assert accuracy["label_accuracy"] == pytest.approx(structured.record["metrics"]["after"]["val_accuracy"])
    assert result.manifest["source"]["sha256"] == __import__("edgekit.files").files.sha256_file(
        structured.out_dir / "model.safetensors")


def test_unstructured_pruning_is_permanent_and_says_dense_runtimes_gain_nothing(digits, onnx_only_target, tmp_path):
    result = prune(TEACHER, amount=0.5, unstructured=True, train=digits["train"], val=digits["val"],
                   out=tmp_path / "sparse", epochs=2, threads=1, measure_target=str(onnx_only_target))
    metrics = result.record["metrics"]
    assert metrics["sparsity"]["zero_fraction"] == pytest.approx(0.5, abs=0.001)
    assert metrics["after"]["params"] == metrics["before"]["params"]  # same shapes: nothing removed
    assert metrics["after"]["val_accuracy"] >= metrics["before"]["val_accuracy"] - 0.02
    assert metrics["after"]["safetensors_gzip_bytes"] < 0.8 * metrics["before"]["safetensors_gzip_bytes"]
    from safetensors.torch import load_file

    saved = load_file(result.out_dir / "model.safetensors")
    assert not [k for k in saved if k.endswith(("_orig", "_mask"))]  # permanent: plain weights with zeros
    layers = [saved[k] for k in saved if k.endswith("weight") and saved[k].ndim > 1]  # conv and linear
    assert sum(int((w == 0).sum()) for w in layers) / sum(w.numel() for w in layers) == pytest.approx(0.5, abs=0.001)
    note = next(n for n in result.record["notes"] if "dense runtimes still multiply every weight" in n)
    assert "ONNX Runtime" in note and "×" in note


def test_a_compressed_folder_can_be_compressed_again(structured, digits, tmp_path):
    again = prune(str(structured.out_dir), amount=0.3, unstructured=True, train=digits["train"], val=digits["val"],
                  out=tmp_path / "again", epochs=1, **FAST)
    record = again.record
    assert record["lineage"] == [{"method": "prune", "folder": str(structured.out_dir)}]
    assert record["architecture"]["factory"] == structured.record["architecture"]["factory"]
    assert record["architecture"]["edits"] == structured.record["architecture"]["edits"]  # the shapes carry over
    from edgekit.exporter.sources import load_source

    rebuilt = load_source(str(again.out_dir)).module
    assert tuple(rebuilt.features[3][0].weight.shape) == (32, 16, 3, 3)
    assert float((rebuilt.features[3][0].weight == 0).float().mean()) > 0.1
