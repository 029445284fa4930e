"""Detection agreement for YOLOv5/v8-style heads, in numpy (no torch): decode, confidence threshold, NMS, then
match the candidate's detections to the original's (same class, IoU >= 0.5) for precision, recall and F1; a
score within 0.05 of the threshold may fall on either side without counting as a disagreement, and NMS choosing
the other of two overlapping boxes of near-equal score is none either (each side's detections are matched against
the other's boxes before NMS).

Layouts: ``[1, 4+C, N]`` (channels first, YOLOv8: cx, cy, w, h, then C class scores) and ``[1, N, 5+C]``
(channels last, YOLOv5: cx, cy, w, h, objectness, then C class scores; confidence = objectness × class score).
A box of zero or negative width or height is no detection. Both models are decoded the same way, so the agreement
means something even where the layout guess is off.
"""

from __future__ import annotations

import numpy as np

from .report import TaskAgreement

CONFIDENCE = 0.25
NMS_IOU = 0.45
MATCH_IOU = 0.5
MARGIN = 0.05  # a score this close to the threshold may fall on either side without a disagreement
MAX_DETECTIONS = 300
MAX_BEFORE_NMS = 3000


def decode_yolo(output: np.ndarray, axis: int, confidence: float = CONFIDENCE,
                nms_iou: float | None = NMS_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes xyxy [M, 4], scores [M], classes [M])`` after the threshold and class-wise NMS (none with
    ``nms_iou=None``: every box above the threshold, best first)."""
    rows = np.moveaxis(np.asarray(output, np.float64)[0], axis - 1, 0)  # [K, N]
    rows = np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)  # a NaN or inf score never passes
    objectness = axis == 2 and rows.shape[0] >= 6
    scores = rows[5:] * rows[4] if objectness else rows[4:]
    classes = scores.argmax(axis=0)
    best = scores[classes, np.arange(scores.shape[1])]
    keep = np.flatnonzero((best >= confidence) & (rows[2] > 0) & (rows[3] > 0))  # no box of zero or negative size
    keep = keep[np.argsort(-best[keep], kind="stable")][:MAX_BEFORE_NMS]
    cx, cy, w, h = rows[0, keep], rows[1, keep], rows[2, keep], rows[3, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    if nms_iou is None:
        return boxes, best[keep], classes[keep]
    chosen = nms(boxes, best[keep], classes[keep], nms_iou)[:MAX_DETECTIONS]
    return boxes[chosen], best[keep][chosen], classes[keep][chosen]


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by class-wise non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        first, rest = order[0], order[1:]
        kept.append(int(first))
        overlap = box_iou(boxes[first:first + 1], boxes[rest])[0]
        order = rest[(overlap <= iou) | (classes[rest] != classes[first])]
    return np.asarray(kept, dtype=np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [A, 4] with every box of ``b`` [B, 4] (xyxy)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def matched(pool: tuple, detections: tuple, iou: float = MATCH_IOU) -> int:
    """How many of ``detections`` (best first) match one-to-one a box of ``pool`` of the same class at IoU >=
    ``iou``; greedy, each taking the unmatched pool box it overlaps most."""
    ref_boxes, _, ref_classes = pool
    boxes, _, classes = detections
    if not len(ref_boxes) or not len(boxes):
        return 0
    overlap = box_iou(boxes, ref_boxes)
    overlap[classes[:, None] != ref_classes[None, :]] = 0.0
    taken = np.zeros(len(ref_boxes), bool)
    count = 0
    for row in overlap:
        row = np.where(taken, 0.0, row)
        best = int(row.argmax())
        if row[best] >= iou:
            taken[best], count = True, count + 1
    return count


def detection_agreement(refs: list[np.ndarray], cands: list[np.ndarray], axis: int,
                        margin: float = MARGIN) -> TaskAgreement:
    """Precision, recall and F1 of the candidate's detections against the original's, pooled over samples.

    A decision within ``margin`` of the confidence threshold is no disagreement: both models are decoded at
    ``CONFIDENCE - margin``; recall counts the original's firm detections (score >= ``CONFIDENCE + margin``, after
    NMS) that the candidate has among its boxes before NMS, precision the candidate's firm detections that the
    original has before NMS: where two boxes overlap past the NMS IoU with near-equal scores, a rounding may make
    NMS keep the other one (an untrained detector has thousands of such pairs). A figure with nothing to count is
    1.0: precision where the candidate has no firm detection (it claims nothing wrong; a firm object it scored
    within the margin is no miss either), recall where the original has none; ``reference_detections`` says how
    much the figures rest on."""
    low, firm = CONFIDENCE - margin, CONFIDENCE + margin
    recalled = precise = expected = found = 0
    for ref, cand in zip(refs, cands):
        strong_ref, strong_cand = _above(decode_yolo(ref, axis, low), firm), _above(decode_yolo(cand, axis, low), firm)
        recalled += matched(decode_yolo(cand, axis, low, nms_iou=None), strong_ref)
        precise += matched(decode_yolo(ref, axis, low, nms_iou=None), strong_cand)
        expected += len(strong_ref[0])
        found += len(strong_cand[0])
    precision = precise / found if found else 1.0
    recall = recalled / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TaskAgreement("detection_f1", f1, {
        "precision": precision, "recall": recall, "matched": recalled, "reference_detections": expected,
        "candidate_detections": found, "confidence": CONFIDENCE, "margin": margin, "nms_iou": NMS_IOU,
        "match_iou": MATCH_IOU,
        "layout": "[1, N, 5+C] with objectness" if axis == 2 and refs[0].shape[2] >= 6 else "[1, 4+C, N]"})


def _above(detections: tuple, score: float) -> tuple:
    boxes, scores, classes = detections
    keep = scores >= score
    return boxes[keep], scores[keep], classes[keep]
