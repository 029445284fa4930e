"""Each output judged by what it is: stacked heads split into channel groups, normalised embeddings, softmax
heads, CTC sequences and masks, each with its evidence, figures and verdict (numbers, computed here in float64
numpy, so they hold on any CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.accuracy import apply_budget, compare_outputs, explain_output_kind
from edgekit.accuracy.detection import box_iou, decode_yolo, nms
from edgekit.accuracy.groups import stacked_layout
from edgekit.accuracy.tasks import ctc_greedy, edit_distance
from edgekit.errors import InputError
from edgekit.specs import parse_output_kinds
from edgekit.targets import AccuracyBudget

BUDGET = AccuracyBudget(cosine_min=0.99, top1_agreement_min=0.97)
CLASSES, ANCHORS = 6, 200


def _yolo_head(seed: int, objects: int = 3) -> np.ndarray:
    """[1, 4+C, N]: centre x/y in 0–320 px, w/h 8–120 px, class scores in [0, 0.6) with a few objects at 0.5."""
    rng = np.random.default_rng(seed)
    head = np.empty((1, 4 + CLASSES, ANCHORS))
    head[0, :2] = rng.uniform(0, 320, (2, ANCHORS))
    head[0, 2:4] = rng.uniform(8, 120, (2, ANCHORS))
    head[0, 4:] = rng.uniform(0, 0.05, (CLASSES, ANCHORS))
    for k in range(objects):  # one object: an anchor and its neighbour (same box shifted 2 px) scored 0.5, 0.45
        anchor, cls = 10 * (k + 1) + seed, k % CLASSES
        head[0, :4, anchor + 1] = head[0, :4, anchor] + [2, 0, 0, 0]
        head[0, 4 + cls, anchor], head[0, 4 + cls, anchor + 1] = 0.5, 0.45
    return head.astype(np.float32)


def _fake_quant(x: np.ndarray) -> np.ndarray:
    """Per-tensor asymmetric uint8 quantization of ``x`` (what static INT8 does to a graph output)."""
    scale = (x.max() - min(x.min(), 0.0)) / 255.0
    zero = np.round(-min(x.min(), 0.0) / scale)
    return ((np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale).astype(np.float32)


def test_stacked_yolo_head_is_a_detection_split_into_boxes_and_class_scores():
    refs = [_yolo_head(seed) for seed in range(4)]
    judged = explain_output_kind("output0", refs)
    assert judged.kind == "detection" and "YOLO-style head" in judged.evidence
    assert [(g.role, g.start, g.stop) for g in judged.layout.groups] == [("boxes", 0, 4), ("class scores", 4, 10)]
    assert [g.label for g in judged.layout.groups] == ["rows 0–3, boxes", "rows 4–9, class scores"]
    assert judged.layout.groups[0].scale > 300 and judged.layout.groups[1].scale == pytest.approx(0.5)
    transposed = [np.ascontiguousarray(r.transpose(0, 2, 1)) for r in refs]  # [1, N, K]: columns
    assert [g.label for g in stacked_layout(transposed).groups] == ["columns 0–3, boxes",
                                                                    "columns 4–9, scores in [0, 1]"] or \
        [g.label for g in stacked_layout(transposed).groups] == ["columns 0–3, boxes", "columns 4–9, class scores"]


def test_per_tensor_int8_zeroes_the_scores_and_the_gate_names_the_score_rows():
    """The measured NudeNet case: whole-output cosine stays high because the boxes dominate, every score rounds to
    zero (step 320/255 = 1.25 > 2 × 0.5): class-score cosine 0.000, no detection left, rejected naming the rows."""
    refs = [_yolo_head(seed) for seed in range(4)]
    cands = [_fake_quant(r) for r in refs]
    assert all(np.all(c[0, 4:] == 0.0) for c in cands)
    report = apply_budget(compare_outputs([[r] for r in refs], [[c] for c in cands], ["output0"]), BUDGET)
    out = report.outputs[0]
    assert out.kind == "detection" and out.top1_agreement is None
    assert out.cosine_min > 0.999  # the whole-output figure alone would pass it
    boxes, scores = out.groups
    assert boxes.cosine_min > 0.999 and scores.cosine_min == 0.0 and scores.max_abs_error == pytest.approx(0.5)
    assert out.task.metric == "detection_f1" and out.task.value == 0.0
    assert out.task.details["reference_detections"] == 12 and out.task.details["candidate_detections"] == 0
    assert not report.passed
    assert "output 'output0' rows 4–9, class scores: cosine_min 0.00000 < 0.99" in " | ".join(report.violations)
    assert any("detection F1 0.0000 < 0.97" in v and "0 of 12 detections matched" in v for v in report.violations)
    assert not any("rows 0–3" in v for v in report.violations)
    assert report.to_dict()["group_cosine_min"] == 0.0


def test_groups_quantized_apart_pass_with_their_own_figures():
    refs = [_yolo_head(seed) for seed in range(4)]
    cands = [np.concatenate([_fake_quant(r[:, :4]), _fake_quant(r[:, 4:])], axis=1) for r in refs]
    report = apply_budget(compare_outputs([[r] for r in refs], [[c] for c in cands], ["output0"]), BUDGET)
    boxes, scores = report.outputs[0].groups
    assert boxes.cosine_min > 0.9999 and scores.cosine_min > 0.99
    assert scores.max_abs_error <= 0.5 / 255 + 1e-6  # half a step of the scores' own scale
    assert report.outputs[0].task.value == 1.0 and report.outputs[0].task.details["matched"] == 12
    assert report.passed, report.violations


def test_detection_figures_count_matched_boxes():
    """One of three objects loses its score, another moves 40 px (IoU < 0.5): 1 of 3 matched, one extra box."""
    ref = _yolo_head(0)
    cand = ref.copy()
    cand[0, 4 + 1, 20:22] = 0.0  # object 2 (anchors 20, 21, class 1) gone
    cand[0, 0, 30:32] += 80.0  # object 3 (anchors 30, 31) moved far: unmatched, and counted as found
    report = compare_outputs([[ref]], [[cand]], ["output0"])
    task = report.outputs[0].task
    assert (task.details["reference_detections"], task.details["candidate_detections"], task.details["matched"]) \
        == (3, 2, 1)
    assert task.details["precision"] == pytest.approx(0.5) and task.details["recall"] == pytest.approx(1 / 3)
    assert task.value == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_a_score_that_crosses_the_threshold_by_less_than_the_margin_is_no_disagreement():
    ref = _yolo_head(0, objects=2)
    ref[0, 4 + 1, 20] = 0.27  # object 2 barely above the 0.25 threshold in the original ...
    ref[0, 4 + 1, 21] = 0.0
    cand = ref.copy()
    cand[0, 4 + 1, 20] = 0.23  # ... barely below it in the candidate: within the 0.05 margin
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert task.value == 1.0 and task.details["reference_detections"] == 1  # only the firm object counts
    cand[0, 4 + 0, 10:12] = 0.1  # object 1 (firm, 0.5) falls to 0.1: a real miss
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert (task.details["recall"], task.details["precision"], task.value) == (0.0, 1.0, 0.0)  # nothing wrong claimed


def test_a_firm_object_the_candidate_scores_within_the_margin_is_no_miss():
    """The measured NudeNet case: the original's one object at 0.36 (firm), OpenVINO INT8's at 0.254 (within the
    margin): the candidate has no firm box, so nothing to count for precision, and recall finds the object."""
    ref = _yolo_head(0, objects=1)
    cand = ref.copy()
    cand[0, 4:, 10:12] = np.where(cand[0, 4:, 10:12] > 0.25, 0.254, cand[0, 4:, 10:12])
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert (task.details["reference_detections"], task.details["candidate_detections"]) == (1, 0)
    assert (task.details["recall"], task.details["precision"], task.value) == (1.0, 1.0, 1.0)
    cand[0, 4:, 10:12] = np.where(cand[0, 4:, 10:12] > 0.25, 0.19, cand[0, 4:, 10:12])  # below the margin
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert (task.details["recall"], task.details["precision"], task.value) == (0.0, 1.0, 0.0)


def test_nms_keeping_the_other_of_two_near_equal_overlapping_boxes_is_no_disagreement():
    """Object 1's two boxes overlap at IoU 0.47 (past NMS's 0.45, short of matching's 0.5) and swap order by
    0.002: NMS keeps the other box, which the original has too before NMS; a box that no side has still counts."""
    ref = _yolo_head(0, objects=2)
    ref[0, :4, 10], ref[0, :4, 11] = [100, 100, 50, 50], [118, 100, 50, 50]  # IoU 32/68
    ref[0, 4 + 0, 11] = 0.499  # just under anchor 10's 0.5 ...
    cand = ref.copy()
    cand[0, 4 + 0, 10], cand[0, 4 + 0, 11] = 0.498, 0.5  # ... and just over it in the candidate
    kept_ref, kept_cand = decode_yolo(ref, axis=1)[0][:1], decode_yolo(cand, axis=1)[0][:1]
    assert 0.45 < box_iou(kept_ref, kept_cand)[0, 0] < 0.5  # NMS kept the other box, too far off to match it
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert (task.details["matched"], task.details["reference_detections"], task.value) == (2, 2, 1.0)
    cand[0, :2, 10:12] += 80.0  # both of object 1's boxes moved away: a real miss and a box the original lacks
    task = compare_outputs([[ref]], [[cand]], ["output0"]).outputs[0].task
    assert (task.details["recall"], task.details["precision"]) == (0.5, 0.5)


def test_nms_keeps_the_best_box_per_class_and_overlapping_boxes_of_other_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.45).tolist() == [0, 2, 3]
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)


def test_yolov5_layout_multiplies_objectness():
    """[1, N, 5+C]: objectness 0.5 × class score 0.6 = 0.3 passes the 0.25 threshold, 0.4 × 0.6 does not."""
    head = np.zeros((1, 40, 8), np.float32)
    head[0, :, :4] = [100, 100, 50, 50]
    head[0, :, 0] += np.arange(40) * 60  # apart: no suppression
    head[0, 3, 4], head[0, 3, 5 + 2] = 0.5, 0.6
    head[0, 7, 4], head[0, 7, 5 + 1] = 0.4, 0.6
    boxes, scores, classes = decode_yolo(head, axis=2)
    assert scores.tolist() == pytest.approx([0.3]) and classes.tolist() == [2]
    assert boxes.tolist() == [[255.0, 75.0, 305.0, 125.0]]


def test_a_score_channel_that_never_fires_stays_in_the_score_group_and_like_scales_do_not_split():
    refs = [_yolo_head(seed) for seed in range(2)]
    for r in refs:
        r[0, 9] = 0.001  # a class absent from the validation data
    assert [g.label for g in stacked_layout(refs).groups] == ["rows 0–3, boxes", "rows 4–9, class scores"]
    rng = np.random.default_rng(1)
    plain = [rng.standard_normal((1, 8, 100)) * np.linspace(1, 5, 8)[None, :, None] for _ in range(2)]
    assert stacked_layout(plain) is None  # scales within 10x: one output, not a stack
    assert explain_output_kind("output_0", plain).kind == "regression"


def test_stacked_regression_without_yolo_layout_is_still_scored_per_group():
    """Landmarks in pixels next to a visibility score: not a detection head, still two groups."""
    rng = np.random.default_rng(2)
    refs = [np.concatenate([rng.uniform(0, 200, (1, 10, 64)), rng.uniform(0, 1, (1, 2, 64))], axis=1)
            for _ in range(3)]
    judged = explain_output_kind("output_1", refs)
    assert judged.kind == "regression" and judged.evidence.startswith("stacked:")
    assert [g.label for g in judged.layout.groups] == ["rows 0–9, values up to 200", "rows 10–11, scores in [0, 1]"]
    cands = [np.concatenate([r[:, :10], np.zeros((1, 2, 64))], axis=1) for r in refs]
    report = apply_budget(compare_outputs([[r] for r in refs], [[c] for c in cands]), BUDGET)
    assert [g.cosine_min for g in report.outputs[0].groups] == [pytest.approx(1.0), 0.0]
    assert report.outputs[0].task is None and not report.passed


def test_normalised_embedding_has_no_top1_and_passes_on_cosine():
    """The measured MiniLM case: a good INT8 embedding (cosine ≈ 0.995) flips the arg-max of many rows, which
    means nothing for an embedding; the old rule judged the sole (1, 384) output a class and rejected it."""
    rng = np.random.default_rng(3)
    refs = [rng.standard_normal((1, 384)) for _ in range(16)]
    refs = [(r / np.linalg.norm(r)).astype(np.float32) for r in refs]
    cands = [r + rng.standard_normal(r.shape).astype(np.float32) * 0.004 for r in refs]
    judged = explain_output_kind("output_0", refs)
    assert judged.kind == "embedding" and "L2 norm 1" in judged.evidence
    report = apply_budget(compare_outputs([[r] for r in refs], [[c] for c in cands]), BUDGET)
    out = report.outputs[0]
    assert out.top1_agreement is None and report.top1_agreement is None
    assert 0.99 < out.cosine_min < 0.999
    flips = np.mean([r.argmax() != c.argmax() for r, c in zip(refs, cands)])
    assert flips > 0.03  # a top-1 check at 0.97 would have rejected it
    assert report.passed, report.violations
    unnormalised = [r * 3.0 for r in refs]  # mean-pooled, not normalised: no evidence either way
    assert explain_output_kind("output_0", unnormalised).kind == "regression"


def test_softmax_head_is_a_class_with_its_evidence():
    rng = np.random.default_rng(4)
    logits = [rng.standard_normal((1, 10)) for _ in range(4)]
    probabilities = [np.exp(x) / np.exp(x).sum() for x in logits]
    judged = explain_output_kind("output_0", probabilities)
    assert judged.kind == "class" and judged.evidence == "softmax rows over 10 classes: non-negative, each sums to 1"
    assert explain_output_kind("output_0", logits).kind == "regression"  # logits, nothing says so
    with_labels = explain_output_kind("output_0", logits, labels=np.array([0, 3, 9, 2]))
    assert with_labels.kind == "class" and "class labels 0–9 given" in with_labels.evidence
    assert explain_output_kind("output_0", logits, labels=np.array([0, 12])).kind == "regression"  # not its classes


def _ctc_output(path: list[int], vocabulary: int = 30) -> np.ndarray:
    """[1, T, V] softmax whose arg-max at each position is ``path``."""
    logits = np.zeros((1, len(path), vocabulary))
    logits[0, np.arange(len(path)), path] = 6.0
    e = np.exp(logits)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def test_ctc_head_is_a_sequence_judged_on_the_decoded_symbols():
    paths = [[0, 5, 5, 0, 7, 0, 0, 7, 3, 0, 0, 0], [0, 0, 9, 0, 0, 2, 2, 0, 0, 0, 4, 0]]
    refs = [_ctc_output(p) for p in paths]
    assert ctc_greedy(refs[0], blank=0) == [5, 7, 7, 3] and ctc_greedy(refs[1], blank=0) == [9, 2, 4]
    judged = explain_output_kind("softmax_2.tmp_0", refs)
    assert judged.kind == "sequence" and judged.blank == 0 and "CTC blank" in judged.evidence
    changed = [list(p) for p in paths]
    changed[1][3] = 9  # 9, 9 collapse: the same text
    changed[0][2] = 0  # 5, blank: still one 5
    same = apply_budget(compare_outputs([[r] for r in refs], [[_ctc_output(p)] for p in changed]), BUDGET)
    assert same.outputs[0].task.value == 1.0 and same.outputs[0].task.details["sequence_agreement"] == 1.0
    assert same.violations == ["cosine_min 0.91709 < 0.99"]  # flipped positions still move the tensor: gated too
    changed[0][9] = 8  # an extra symbol: [5, 7, 7, 3, 8], 1 edit over 7 original symbols
    worse = apply_budget(compare_outputs([[r] for r in refs], [[_ctc_output(p)] for p in changed]), BUDGET)
    task = worse.outputs[0].task
    assert task.metric == "symbol_agreement" and task.value == pytest.approx(1 - 1 / 7)
    assert task.details["sequence_agreement"] == 0.5 and task.details["edit_distance"] == 1
    assert worse.outputs[0].top1_agreement is None
    assert any("decoded symbol agreement 0.8571 < 0.97" in v for v in worse.violations)
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 4]) == 2
    tags = [_ctc_output([0, 0, 3, 4, 0, 0, 0, 1, 2, 0], vocabulary=9)]  # per-token tags, "O" first: not CTC
    assert explain_output_kind("output_0", tags).kind == "class"
    dense = [_ctc_output([0, 5, 0, 6, 7, 0, 8, 9, 0, 5])]  # dense text: blank wins 40 %, 2x the next symbol
    assert explain_output_kind("output_0", dense).kind == "sequence"


def _disc(shift: int) -> np.ndarray:
    yy, xx = np.mgrid[:32, :32]
    inside = (yy - 16) ** 2 + (xx - 16 - shift) ** 2 <= 64
    return (1 / (1 + np.exp(-np.where(inside, 8.0, -8.0))))[None, None].astype(np.float32)


def test_mask_head_is_judged_by_iou_of_thresholded_masks():
    ref = _disc(0)
    judged = explain_output_kind("sigmoid_0.tmp_0", [ref])
    assert judged.kind == "mask" and "100% of its values within 0.1 of 0 or 1" in judged.evidence
    moved = _disc(2)
    a, b = ref > 0.5, moved > 0.5
    expected = (a & b).sum() / (a | b).sum()
    report = apply_budget(compare_outputs([[ref]], [[moved]]), BUDGET)
    task = report.outputs[0].task
    assert task.metric == "mask_iou" and task.value == pytest.approx(expected) and 0.6 < expected < 0.9
    assert any(f"mask IoU {expected:.4f} < 0.97" in v for v in report.violations)
    assert apply_budget(compare_outputs([[ref]], [[ref * 0.98]]), BUDGET).passed  # same pixels over 0.5


@pytest.mark.parametrize("kind", ["detection", "mask", "sequence"])
def test_task_kinds_can_be_declared(kind):
    assert parse_output_kinds([f"out:{kind}"]) == {"out": kind}


def test_declared_kinds_win_and_detection_needs_a_yolo_head():
    refs = [_yolo_head(seed) for seed in range(2)]
    report = compare_outputs([[r] for r in refs], [[r] for r in refs], kinds=["regression"])
    out = report.outputs[0]
    assert out.kind == "regression" and out.kind_declared and out.evidence == "declared" and len(out.groups) == 2
    rng = np.random.default_rng(5)
    plain = [rng.standard_normal((1, 8, 100))]
    with pytest.raises(InputError, match="not a YOLO-style head"):
        compare_outputs([plain], [plain], kinds=["detection"])
    ctc = [_ctc_output([1, 2, 3, 4, 5, 6])]  # blank never wins: inferred class, declared sequence
    assert explain_output_kind("out", ctc).kind == "class"
    declared = compare_outputs([ctc], [ctc], kinds=["sequence"])
    assert declared.outputs[0].kind == "sequence" and declared.outputs[0].task.value == 1.0


def test_nan_in_a_detection_candidate_fails_every_figure_it_reaches():
    ref = _yolo_head(0)
    cand = ref.copy()
    cand[0, 5, 10] = np.nan
    report = apply_budget(compare_outputs([[ref]], [[cand]], ["output0"]), BUDGET)
    assert "outputs contain NaN in 'output0' for 1 of 1 samples" in report.violations
    assert any("rows 4–9, class scores: cosine_min nan" in v for v in report.violations)


def _tiny_yolo(path) -> None:
    """images [1, 3, 16, 16] -> Concat(axis 1) of box rows (centres 10–310 px, sizes 40–100 px: Sigmoid(1x1 conv)
    scaled) and class-score rows (Sigmoid(1x1 conv - 4): mostly below 0.1) -> output0 [1, 4 + 3, 256], as a
    YOLOv8 head ends."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = {"w_box": rng.standard_normal((4, 3, 1, 1)), "b_box": np.zeros(4), "w_cls": rng.standard_normal(
        (3, 3, 1, 1)) * 0.5, "b_cls": np.full(3, -4.0), "scale": np.array([300.0, 300.0, 60.0, 60.0]).reshape(1, 4, 1, 1),
               "shift": np.array([10.0, 10.0, 40.0, 40.0]).reshape(1, 4, 1, 1)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.array([1, 4, 256], np.int64), "shape_box"),
              numpy_helper.from_array(np.array([1, 3, 256], np.int64), "shape_cls")]
    nodes = [helper.make_node("Conv", ["images", "w_box", "b_box"], ["box_conv"], name="conv_box"),
             helper.make_node("Sigmoid", ["box_conv"], ["box_raw"], name="sigmoid_box"),
             helper.make_node("Mul", ["box_raw", "scale"], ["box_scaled"], name="mul_box"),
             helper.make_node("Add", ["box_scaled", "shift"], ["box_px"], name="add_box"),
             helper.make_node("Reshape", ["box_px", "shape_box"], ["boxes"], name="reshape_box"),
             helper.make_node("Conv", ["images", "w_cls", "b_cls"], ["cls_raw"], name="conv_cls"),
             helper.make_node("Sigmoid", ["cls_raw"], ["cls_prob"], name="sigmoid_cls"),
             helper.make_node("Reshape", ["cls_prob", "shape_cls"], ["scores"], name="reshape_cls"),
             helper.make_node("Concat", ["boxes", "scores"], ["output0"], name="concat_head", axis=1)]
    graph = helper.make_graph(nodes, "tiny_yolo", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                                 [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 256])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_group_head_follows_the_concat_input_that_carries_the_failing_rows(tmp_path):
    from edgekit.accuracy import AccuracyReport, GroupAccuracy, OutputAccuracy
    from edgekit.exporter.group_head import group_head

    _tiny_yolo(tmp_path / "m.onnx")
    groups = [GroupAccuracy("rows 0–3, boxes", "boxes", 1, 0, 4, 400.0, 0.9999, 0.9999, 1.0, 0.1),
              GroupAccuracy("rows 4–6, class scores", "class scores", 1, 4, 7, 0.1, 0.0, 0.0, 0.1, 0.05)]
    report = AccuracyReport(1, [OutputAccuracy("output0", 0.999, 0.999, 1.0, 0.1, kind="detection", groups=groups)])
    nodes, text = group_head(tmp_path / "m.onnx", report, 0.99)
    assert nodes == ["concat_head", "reshape_cls", "sigmoid_cls"] and text == "output0 rows 4–6, class scores"
    groups[1].cosine_min = 0.995
    assert group_head(tmp_path / "m.onnx", report, 0.99) == ([], "")


@pytest.mark.cpu_sensitive
def test_static_int8_of_a_stacked_head_is_rejected_naming_the_rows_then_rescued_by_its_head(tmp_path):
    from edgekit.errors import AccuracyError
    from edgekit.exporter.pipeline import export
    from testkit import smooth_images

    _tiny_yolo(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", images=smooth_images(16, shape=(3, 16, 16), seed=3))
    # detection F1 at 0.9 (not 0.97): with its head in float, INT8 still moves a box or two of ~20 across IoU 0.5
    # (0.976 here on an Intel AMX CPU); the group figures are what this test is about
    (tmp_path / "p.toml").write_text('formats = ["onnx"]\nprecisions = ["fp32", "int8_static"]\nthreads = 1\n'
                                     '[accuracy]\ncosine_min = 0.99\ntop1_agreement_min = 0.9\n')
    options = dict(calib=tmp_path / "d.npz", val=tmp_path / "d.npz", format="onnx", benchmark=False)
    with pytest.raises(AccuracyError, match=r"output 'output0' rows 4–6, class scores: cosine_min 0\.\d+ < 0\.99"):
        export(str(tmp_path / "m.onnx"), str(tmp_path / "p.toml"), out=tmp_path / "plain", rescue=False, **options)
    result = export(str(tmp_path / "m.onnx"), str(tmp_path / "p.toml"), out=tmp_path / "out", **options)
    assert result.manifest["outputs"][0]["kind"] == "detection"
    assert [g["label"] for g in result.manifest["outputs"][0]["groups"]] == ["rows 0–3, boxes",
                                                                          "rows 4–6, class scores"]
    int8 = next(c for c in result.candidates if c.precision == "int8_static")
    assert int8.usable, int8.reason
    assert any("kept in float the 3 node(s) feeding output0 rows 4–6, class scores: concat_head, reshape_cls, "
               "sigmoid_cls" in note for note in int8.notes), int8.notes
    scores = int8.accuracy.outputs[0].groups[1]
    assert scores.cosine_min >= 0.99 and int8.steps[0].params["nodes_kept_in_float"] == [
        "concat_head", "reshape_cls", "sigmoid_cls"]
    from rich.console import Console

    from edgekit.cli.export import print_export_summary

    console = Console(record=True, width=250)
    print_export_summary(console, result.manifest, result.out_dir)
    text = console.export_text()
    assert "output 'output0': detection (inferred: a YOLO-style head: 7 channels over 256 positions" in text
    assert "  rows 4–6, class scores" in text and "F1 " in text
