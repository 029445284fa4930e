"""Transformers: a tiny real BERT (transformers' BertModel) exported by edgekit with sentences as data, the fused
graph's op counts, the INT8 recipe chosen by model kind and recorded, and the dynamic-INT8 rescue on numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgekit
from edgekit.accuracy import cosine
from edgekit.data.text import load_sentences
from edgekit.exporter.model_kind import model_kind
from edgekit.exporter.onnx_graph import op_counts
from edgekit.exporter.recipes import concrete_precisions, recipe_record
from edgekit.exporter.sources import load_source
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.targets import Precision
from testkit import model_ref

WORDS = "the a cat dog sat ran on under mat rug big small red blue quickly slowly and with house garden".split()
BUDGET = 0.999


def write_tokenizer(folder: Path) -> Path:
    """A real Hugging Face tokenizer.json (word level) over WORDS, ids below the tiny BERT's 64 rows."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    built = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}},
                                       unk_token="[UNK]"))
    built.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    built.save(str(folder / "tokenizer.json"))
    return folder


def write_sentences(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 15))) for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def text_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("text")
    return {"tokenizer": write_tokenizer(folder / "tok"), "calib": write_sentences(folder / "calib.txt", 24, 1),
            "val": write_sentences(folder / "val.txt", 16, 2)}


@pytest.fixture(scope="module")
def bert_export(tmp_path_factory, text_data):
    """tiny_bert_outlier exported for a profile that leaves the INT8 method open (``int8``)."""
    folder = tmp_path_factory.mktemp("bert")
    profile = folder / "cpu.toml"
    profile.write_text(f'formats = ["onnx"]\nprecisions = ["fp32", "int8"]\nthreads = 2\narch = "x86_64"\n'
                       f'[accuracy]\ncosine_min = {BUDGET}\n')
    return edgekit.export(model_ref("tiny_bert_outlier"), profile, out=folder / "out", calib=text_data["calib"],
                          val=text_data["val"], tokenizer=text_data["tokenizer"], outputs=["output_0:embedding"],
                          benchmark=False)


def test_attention_graph_is_fused_and_counted(bert_export):
    steps = {s["step"]: s["details"] for s in bert_export.manifest["steps"]}
    fused = steps["fuse_transformer"]
    assert fused["fuser"] == "onnxscript"
    assert fused["fused_ops"]["Attention"] == 2 and fused["fused_ops"]["BiasGelu"] == 2
    assert fused["fused_ops"]["SkipLayerNormalization"] >= 4
    assert fused["nodes_after"] < fused["nodes_before"] / 2
    counts = op_counts(bert_export.out_dir / "model.fp32.onnx")
    assert counts["Attention"] == 2 and counts["SkipLayerNormalization"] >= 4 and "Softmax" not in counts
    assert bert_export.candidates[0].accuracy.cosine_min > 0.99999  # the fused FP32 model against PyTorch


def test_model_kind_and_int8_recipe_are_recorded(bert_export):
    manifest = bert_export.manifest
    assert manifest["model_kind"]["kind"] == "attention"
    assert manifest["model_kind"]["evidence"]["softmax_attention"] == 2  # read before fusion
    assert manifest["model_kind"]["evidence"]["conv"] == 0
    recipe = manifest["int8_recipe"]["onnx"]
    assert recipe["precision"] == "int8_dynamic" and not recipe["pinned_by_profile"]
    assert "attention model" in recipe["reason"]
    assert [a["name"] for a in manifest["artifacts"]] == ["onnx/fp32", "onnx/int8_dynamic"]
    assert any(n.startswith("int8 → int8_dynamic") for n in manifest["artifacts"][1]["notes"])
    data = manifest["data"]["calibration"]
    assert "24 sentences" in data["origin"] and data["reload"]["tokenizer"].endswith("tok")


def test_dynamic_rescue_keeps_the_crushed_matmul_in_float(bert_export, text_data):
    """Whole-model dynamic INT8 breaks the budget (measured here, without edgekit); the rescue keeps exactly the
    FFN MatMul whose input carries the huge ignored channel in float and meets the budget."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    candidate = bert_export.candidates[1]
    assert candidate.usable and candidate.accuracy.cosine_min >= BUDGET
    kept = candidate.steps[0].params["nodes_kept_in_float"]
    assert len(kept) == 1
    graph = onnx.load(str(bert_export.out_dir / "model.fp32.onnx")).graph
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    node = next(n for n in graph.node if n.name == kept[0])
    assert node.op_type == "MatMul" and not weights[node.input[1]][0].any()  # the row that ignores channel 0

    whole = bert_export.out_dir / "whole.onnx"
    quantize_dynamic(bert_export.out_dir / "model.fp32.onnx", whole, op_types_to_quantize=["MatMul"],
                     per_channel=True, reduce_range=True, weight_type=QuantType.QInt8)
    samples = load_sentences(text_data["val"], text_data["tokenizer"], load_source(model_ref("tiny_bert")).inputs)
    ours, plain = OnnxRunner(bert_export.out_dir / "model.int8_dynamic.onnx"), OnnxRunner(whole)
    reference = OnnxRunner(bert_export.out_dir / "model.fp32.onnx")
    worst = min(cosine(reference.run(s)[0], plain.run(s)[0]) for s in samples)
    rescued = min(cosine(reference.run(s)[0], ours.run(s)[0]) for s in samples)
    assert worst < BUDGET <= rescued
    assert any(n.startswith("rescued:") and kept[0] in n for n in candidate.notes)


def test_explicit_int8_method_wins():
    kind = model_kind(_attention_graph())
    pinned = concrete_precisions([Precision.fp32, Precision.int8, Precision.int8_static], kind, "onnx")
    assert [p for p, _ in pinned] == [Precision.fp32, Precision.int8_dynamic, Precision.int8_static]
    same = concrete_precisions([Precision.fp32, Precision.int8, Precision.int8_dynamic], kind, "onnx")
    assert [p for p, _ in same] == [Precision.fp32, Precision.int8_dynamic] and same[1][1] is None
    record = recipe_record([Precision.fp32, Precision.int8_static], kind, ["onnx"])
    assert record["pinned_by_profile"] == ["int8_static"]
    assert recipe_record([Precision.fp32, Precision.int8], kind, ["onnx", "tflite"])["tflite"]["precision"] == \
        "int8_dynamic"
    openvino = concrete_precisions([Precision.fp32, Precision.bf16, Precision.int8], kind, "openvino")
    assert [p for p, _ in openvino] == [Precision.fp32, Precision.bf16, Precision.int8_static]  # NNCF: static
    assert "model_type=TRANSFORMER" in openvino[2][1]


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
@pytest.mark.cpu_sensitive
def test_openvino_int8_of_a_transformer_is_nncf_static_with_the_transformer_preset(tmp_path, text_data):
    """An OpenVINO-only profile listing ``int8``: the kind is read off the ONNX graph OpenVINO converts (the fused
    one), and NNCF quantizes with model_type=TRANSFORMER."""
    profile = tmp_path / "ov.toml"
    profile.write_text('formats = ["openvino"]\nprecisions = ["fp32", "int8"]\nthreads = 2\narch = "x86_64"\n'
                       '[accuracy]\ncosine_min = 0.99\n')
    result = edgekit.export(model_ref("tiny_bert"), profile, out=tmp_path / "out", calib=text_data["calib"],
                            val=text_data["val"], tokenizer=text_data["tokenizer"], outputs=["output_0:embedding"],
                            benchmark=False)
    manifest = result.manifest
    assert manifest["model_kind"]["kind"] == "attention"
    assert manifest["int8_recipe"]["openvino"]["precision"] == "int8_static"
    assert manifest["steps"][-1]["step"] == "optimize" and "fuse_transformer" in [s["step"] for s in manifest["steps"]]
    int8 = next(c for c in result.candidates if c.name == "openvino/int8_static")
    assert int8.usable and int8.steps[0].params["model_type"] == "transformer"
    assert int8.steps[0].details["fake_quantize"] > 0 and int8.notes[0].startswith("int8 → int8_static")


def test_provisional_rule_takes_dynamic_int8_where_no_static_int8_passed(tmp_path):
    """A transformer's INT8 recipe is dynamic: off-target, the rule recommends it (smallest first), not FP32."""
    from edgekit.exporter.candidates import PROVISIONAL_RULE, Candidate, choose_by_rule
    from edgekit.exporter.routes import int8_kernels_on
    from edgekit.exporter.steps import Artifact

    def candidate(fmt: str, precision: str, size: int) -> Candidate:
        path = tmp_path / f"model.{precision}.{fmt}"
        path.write_bytes(b"\0" * size)
        return Candidate(fmt, precision, Artifact(path, fmt, precision))

    pool = [candidate("onnx", "fp32", 400), candidate("onnx", "int8_dynamic", 200),
            candidate("tflite", "fp32", 390), candidate("tflite", "int8_dynamic", 110)]
    best, notes = choose_by_rule(pool, int8_kernels_on("arm64"))
    assert best.name == "tflite/int8_dynamic" and "dynamic INT8" in PROVISIONAL_RULE in notes[0]
    static = candidate("onnx", "int8_static", 300)  # a passing static INT8 still comes first
    assert choose_by_rule([*pool, static], int8_kernels_on("arm64"))[0] is static

def _node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op}_{outputs[0]}", **attrs)


def _attention_graph(convs: int = 0, blocks: int = 1) -> onnx.ModelProto:
    """Unfused attention blocks (Q·Kᵀ → scale → Softmax → ·V, projections with weights), after ``convs`` convs."""
    nodes, inits = [], []
    x = "x"
    for i in range(convs):
        inits.append(helper.make_tensor(f"cw{i}", TensorProto.FLOAT, [4, 4, 1, 1], [0.1] * 16))
        nodes.append(_node("Conv", [x, f"cw{i}"], [f"conv{i}"]))
        x = f"conv{i}"
    nodes.append(_node("Reshape", [x, "shape"], ["tokens"]))
    inits.append(helper.make_tensor("shape", TensorProto.INT64, [3], [1, 4, 4]))
    x = "tokens"
    for b in range(blocks):
        for proj in "qkv":
            inits.append(helper.make_tensor(f"w{proj}{b}", TensorProto.FLOAT, [4, 4], [0.1] * 16))
            nodes.append(_node("MatMul", [x, f"w{proj}{b}"], [f"{proj}{b}"]))
        inits.append(helper.make_tensor(f"scale{b}", TensorProto.FLOAT, [], [0.5]))
        nodes += [_node("Transpose", [f"k{b}"], [f"kt{b}"], perm=[0, 2, 1]),
                  _node("MatMul", [f"q{b}", f"kt{b}"], [f"qk{b}"]), _node("Mul", [f"qk{b}", f"scale{b}"], [f"s{b}"]),
                  _node("Softmax", [f"s{b}"], [f"p{b}"], axis=-1), _node("MatMul", [f"p{b}", f"v{b}"], [f"a{b}"])]
        x = f"a{b}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("convs, blocks, kind", [(0, 2, "attention"), (1, 2, "attention"), (3, 1, "mixed"),
                                                 (2, 0, "convolutional"), (0, 0, "dense")])
def test_model_kind_counts_convolutions_and_attention_blocks(convs, blocks, kind):
    found = model_kind(_attention_graph(convs, blocks))
    assert found.kind == kind
    assert found.evidence["conv"] == convs and found.evidence["softmax_attention"] == blocks
    assert found.evidence["matmul_with_weights"] == 3 * blocks and found.reason


def test_a_softmax_that_is_not_attention_is_not_counted():
    """A classifier's Softmax over a weight MatMul (logits) is no attention block."""
    graph = helper.make_graph(
        [_node("MatMul", ["x", "w"], ["logits"]), _node("Softmax", ["logits"], ["p"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.1] * 12)])
    assert model_kind(helper.make_model(graph)).kind == "dense"


def _fuse_torchscript_export(tmp_path, text_data, opset: int):
    """tiny_bert exported by the TorchScript exporter at ``opset``, then the fusion step on it."""
    import torch

    from edgekit.exporter.steps import Artifact, StepContext, get_step
    from edgekit.targets import load_target

    source = load_source(model_ref("tiny_bert"))
    exported = tmp_path / "ts.onnx"
    args = tuple(torch.from_numpy(source.examples[s.name]) for s in source.inputs)
    torch.onnx.export(source.module, args, str(exported), dynamo=False, opset_version=opset,
                      input_names=[s.name for s in source.inputs])
    context = StepContext(load_target("x86"), source.inputs,
                          load_sentences(text_data["calib"], text_data["tokenizer"], source.inputs))
    return get_step("fuse_transformer").run(Artifact(exported, "onnx", "fp32"), tmp_path / "fused.onnx", context)


def test_fusion_falls_back_to_onnxruntime_on_a_torchscript_export(tmp_path, text_data):
    """onnxscript matches the dynamo exporter's graphs; on a TorchScript export ONNX Runtime's optimizer fuses more
    (SkipLayerNorm), and the step keeps the fuser that did, checked against the unfused graph."""
    result = _fuse_torchscript_export(tmp_path, text_data, opset=17)
    assert result.details["fuser"] == "onnxruntime.transformers"
    assert set(result.details["tried"]) == {"onnxscript", "onnxruntime.transformers"}
    assert op_counts(tmp_path / "fused.onnx")["SkipLayerNormalization"] == \
        result.details["fused_ops"]["SkipLayerNormalization"] >= 3
    onnx.checker.check_model(str(tmp_path / "fused.onnx"))  # its contrib domain declared
    assert json.dumps(result.to_dict())  # recorded as plain JSON in the manifest


def test_a_fusion_that_is_not_valid_onnx_is_refused(tmp_path, text_data):
    """Below opset 17 ONNX Runtime's optimizer writes a LayerNormalization that only ONNX Runtime reads (PP-OCRv4
    rec): refused by name, and onnxscript's valid fusion kept."""
    result = _fuse_torchscript_export(tmp_path, text_data, opset=14)
    assert result.details["tried"]["onnxruntime.transformers"].startswith(
        "refused: not valid ONNX: No Op registered for LayerNormalization with domain_version of 14")
    assert result.details["fuser"] == "onnxscript"
    onnx.checker.check_model(str(tmp_path / "fused.onnx"))
