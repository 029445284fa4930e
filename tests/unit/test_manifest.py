"""The typed manifest (edgekit.manifest): its JSON Schema in docs/ is current, a hand-edited or older manifest is one
clear InputError, and the shipped validation samples are bounded and read back exactly as they were."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.data import SampleSet, load_samples, synthetic_samples
from edgekit.errors import InputError
from edgekit.exporter.shipped_samples import SHIPPED_FILE, ship_samples
from edgekit.manifest import MANIFEST_SCHEMA, Manifest
from edgekit.specs import InputSpec
from edgekit.targets import load_target
from testkit import REPO

IMAGE = InputSpec("x", (1, 3, 8, 8))


def test_the_schema_in_docs_is_generated_from_the_model(tmp_path: Path):
    fresh = tmp_path / "manifest.schema.json"
    subprocess.run(["sh", str(REPO / "scripts" / "manifest-schema.sh"), str(fresh)], check=True, cwd=REPO,
                   timeout=120)
    assert (REPO / "docs" / "manifest.schema.json").read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "docs/manifest.schema.json is out of date: run scripts/manifest-schema.sh")
    schema = json.loads(fresh.read_text())
    assert schema["properties"]["schema"]["const"] == MANIFEST_SCHEMA and schema["additionalProperties"] is False
    assert "shipped" in schema["$defs"]["DataRecord"]["properties"]


def _minimal() -> dict:
    """The smallest manifest the model accepts, as the exporter would write it for one built candidate."""
    data = {"origin": "val.npz", "samples": 2, "synthetic": False, "labels": False, "path": "../val.npz",
            "sha256": "0" * 64}
    return {"schema": MANIFEST_SCHEMA, "created": "2026-01-01T00:00:00+00:00", "status": "passed",
            "recommended": "model.fp32.onnx", "format": "onnx",
            "source": {"kind": "onnx", "reference": "m.onnx", "path": "/w/m.onnx", "sha256": "1" * 64},
            "inputs": [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}], "outputs": [], "versions": {},
            "host": {"arch": "x86_64", "cpu": None, "python": "3.11"}, "target": load_target("x86").model_dump(mode="json"),
            "model_kind": None, "int8_recipe": None, "data": {"calibration": data, "validation": dict(data)},
            "steps": [], "timings_s": {}, "latency_measured_on": None, "choice": None, "notes": [],
            "artifacts": [{"name": "onnx/fp32", "file": "model.fp32.onnx", "files": ["model.fp32.onnx"],
                           "format": "onnx", "precision": "fp32", "size_bytes": 1, "sha256": "2" * 64,
                           "status": "selected", "passed": True, "rejected_reason": None, "failure": None,
                           "runner_options": {}, "steps": [], "notes": [], "accuracy": None, "latency": None,
                           "execution": None}]}


def test_a_written_manifest_reads_back_equal(tmp_path: Path):
    manifest = Manifest.model_validate(_minimal())
    manifest.write(tmp_path)
    again = Manifest.load(tmp_path)
    assert again == manifest and again.entry("model.fp32.onnx").status == "selected"
    assert json.loads((tmp_path / "manifest.json").read_text())["schema"] == MANIFEST_SCHEMA


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["artifacts"][0].update(colour="red"), "artifacts.0.colour: Extra inputs are not permitted"),
    (lambda m: m["artifacts"][0].update(status="great"), "artifacts.0.status: Input should be 'passed'"),
    (lambda m: m["data"]["validation"].pop("samples"), "data.validation.samples: Field required"),
    (lambda m: m["target"].update(threads=0), "target.threads"),
    (lambda m: m.update(schema="edgekit.manifest/2"), "is edgekit.manifest/2, which this edgekit does not read: it reads edgekit.manifest/3"),
])
def test_a_hand_edited_manifest_is_one_input_error_naming_the_field(tmp_path: Path, edit, message):
    raw = _minimal()
    edit(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError) as caught:
        Manifest.load(tmp_path)
    assert message in caught.value.message and "re-run `edgekit export`" in caught.value.hint
    assert "\n" not in caught.value.message and ";" not in caught.value.message  # the one problem, alone


def test_a_folder_without_a_manifest_is_named(tmp_path: Path):
    with pytest.raises(InputError, match="no manifest.json in"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        Manifest.load(tmp_path)


def test_shipped_samples_read_back_exactly_with_labels_and_relative_paths(tmp_path: Path):
    data = tmp_path / "data" / "val.npz"
    data.parent.mkdir()
    images = np.random.default_rng(0).normal(size=(100, 3, 8, 8)).astype(np.float32)
    np.savez(data, x=images, labels=np.arange(100) % 10)
    folder = tmp_path / "out" / "model"
    folder.mkdir(parents=True)
    record = ship_samples(load_samples(data, [IMAGE]), folder)
    assert record["path"] == "../../data/val.npz" and record["origin"] == "val.npz" and record["samples"] == 100
    shipped = record["shipped"]
    assert shipped["file"] == SHIPPED_FILE and shipped["samples"] == 64 and shipped["of"] == 100
    assert "the first 64 of 100" in shipped["reason"]
    again = load_samples(folder / SHIPPED_FILE, [IMAGE])
    np.testing.assert_array_equal(again.inputs["x"], images[:64])
    assert again.labels.tolist() == (np.arange(64) % 10).tolist()


def test_shipped_samples_are_bounded_in_bytes_and_refused_when_one_is_too_large(tmp_path: Path):
    record = ship_samples(synthetic_samples([IMAGE], 10), tmp_path, max_bytes=3 * 3 * 8 * 8 * 4)  # 3 samples' worth
    assert record["synthetic"] and record["path"] is None and record["shipped"]["samples"] == 3
    (tmp_path / SHIPPED_FILE).unlink()
    record = ship_samples(synthetic_samples([IMAGE], 10), tmp_path, max_bytes=100)
    assert record["shipped"]["file"] is None and "validate needs the original data" in record["shipped"]["reason"]
    assert not (tmp_path / SHIPPED_FILE).exists()


def test_shipped_samples_keep_a_per_sample_layout(tmp_path: Path):
    state = InputSpec("h", (2, 1, 4))  # not batch-first: stored as (samples, *shape)
    samples = SampleSet({"h": np.ones((5, 2, 1, 4), np.float32)}, None, "state.npz", per_sample=frozenset({"h"}))
    ship_samples(samples, tmp_path)
    again = load_samples(tmp_path / SHIPPED_FILE, [state])
    assert again.per_sample == {"h"} and [s["h"].shape for s in again] == [(2, 1, 4)] * 5
