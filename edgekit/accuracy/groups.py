"""Stacked outputs: one tensor whose channels live at very different scales (a YOLO head's box rows in pixels next
to its class-score rows in [0, 1]) is scored per channel group, so the large channels cannot hide the small ones.

The rule, measured on the ORIGINAL model's outputs only (so both candidates of one export are split alike):

1. Only a ``[1, K, N]`` or ``[1, N, K]`` float output is a candidate; the channel axis is the short one, and it
   must be at most a quarter of the long one (``N >= 4 K``: channels over many anchors or positions).
2. Per channel: its range over every sample and position, and its scale (max |value|).
3. Channels are grouped in order. A channel joins the current group when both are "unit" (every value in
   [0, 1]: scores, probabilities; their scales may differ, a class that never shows is still a score), or when
   neither is unit and its scale is within ``SCALE_RATIO`` (10×) of the group's largest.
4. Adjacent groups whose scales are within 10× of each other merge again: a split must be a real change of scale.
5. Two to ``MAX_GROUPS`` groups make a stack; one group is a plain output; more is not a clear stack.

Groups are named for what they look like: four leading non-unit channels before a unit group are ``boxes`` and
the unit group after them ``class scores`` (a YOLO head); other unit groups are ``scores``, the rest ``values``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .figures import closeness, cosine, worst
from .report import GroupAccuracy

SCALE_RATIO = 10.0
UNIT_TOLERANCE = 1e-4
MAX_GROUPS = 6
MIN_POSITIONS_PER_CHANNEL = 4
_ROLE_TEXT = {"boxes": "boxes", "class scores": "class scores", "scores": "scores in [0, 1]"}


@dataclass(frozen=True)
class ChannelGroup:
    role: str  # boxes | class scores | scores | values
    axis: int  # 1: rows of [1, K, N]; 2: columns of [1, N, K]
    start: int
    stop: int
    scale: float  # max |value| in the original's outputs

    @property
    def label(self) -> str:
        what = _ROLE_TEXT.get(self.role, f"values up to {self.scale:.3g}")
        return f"{'rows' if self.axis == 1 else 'columns'} {self.start}–{self.stop - 1}, {what}"

    def take(self, array: np.ndarray) -> np.ndarray:
        return np.take(array, np.arange(self.start, self.stop), axis=self.axis)


@dataclass(frozen=True)
class StackedLayout:
    """How one output's channels split into groups, with the evidence in words."""

    axis: int
    channels: int
    positions: int
    groups: tuple[ChannelGroup, ...]

    @property
    def is_yolo(self) -> bool:
        """Four box channels, then only score channels: a YOLOv5/v8-style detection head."""
        return len(self.groups) == 2 and self.groups[0].role == "boxes" and self.groups[1].role == "class scores"

    def describe(self) -> str:
        parts = "; ".join(f"{g.label} (max |x| {g.scale:.3g})" for g in self.groups)
        return f"{self.channels} channels over {self.positions} positions at different scales: {parts}"


def channel_axis(shape: tuple[int, ...]) -> int | None:
    """The channel axis of a ``[1, K, N]`` / ``[1, N, K]`` output (the short one, N >= 4 K), else None."""
    if len(shape) != 3 or shape[0] != 1:
        return None
    axis = 1 if shape[1] <= shape[2] else 2
    channels, positions = shape[axis], shape[3 - axis]
    return axis if 2 <= channels and positions >= MIN_POSITIONS_PER_CHANNEL * channels else None


def stacked_layout(refs: list[np.ndarray]) -> StackedLayout | None:
    """The channel groups of a stacked output, from the original's outputs; None if it is not one."""
    first = refs[0]
    if not np.issubdtype(first.dtype, np.floating) or any(r.shape != first.shape for r in refs):
        return None
    axis = channel_axis(first.shape)
    if axis is None:
        return None
    values = np.concatenate([np.moveaxis(r, axis, 0).reshape(first.shape[axis], -1) for r in refs], axis=1)
    if not np.isfinite(values).all():
        return None
    lows, highs = values.min(axis=1), values.max(axis=1)
    scales = np.abs(values).max(axis=1)
    unit = (lows >= -UNIT_TOLERANCE) & (highs <= 1.0 + UNIT_TOLERANCE)
    spans: list[list] = []  # [start, stop, unit, scale]
    for c in range(len(scales)):
        last = spans[-1] if spans else None
        if last is not None and last[2] == unit[c] and (unit[c] or _near(last[3], scales[c])):
            last[1], last[3] = c + 1, max(last[3], scales[c])
        else:
            spans.append([c, c + 1, bool(unit[c]), float(scales[c])])
    merged: list[list] = []
    for span in spans:
        if merged and _near(merged[-1][3], span[3]):
            merged[-1][1], merged[-1][2] = span[1], merged[-1][2] and span[2]
            merged[-1][3] = max(merged[-1][3], span[3])
        else:
            merged.append(span)
    if not 2 <= len(merged) <= MAX_GROUPS:
        return None
    groups = [ChannelGroup(_role(merged, i), axis, int(s[0]), int(s[1]), float(s[3])) for i, s in enumerate(merged)]
    return StackedLayout(axis, first.shape[axis], first.shape[3 - axis], tuple(groups))


def _near(a: float, b: float) -> bool:
    """Scales within ``SCALE_RATIO`` of each other (two zeros are alike)."""
    low, high = min(a, b), max(a, b)
    return high == 0.0 or (low > 0.0 and high <= SCALE_RATIO * low)


def _role(spans: list[list], index: int) -> str:
    start, stop, unit, _ = spans[index]
    boxes_first = not spans[0][2] and spans[0][1] - spans[0][0] == 4 and len(spans) > 1 and spans[1][2]
    if boxes_first and index == 0:
        return "boxes"
    if unit:
        return "class scores" if boxes_first and index == 1 else "scores"
    return "values"


def group_figures(layout: StackedLayout, refs: list[np.ndarray], cands: list[np.ndarray]) -> list[GroupAccuracy]:
    """Cosine and absolute error per channel group, over samples (like the whole-output figures)."""
    figures = []
    for group in layout.groups:
        cosine_min, cosine_mean, max_abs, mean_abs = closeness([group.take(r) for r in refs],
                                                               [group.take(c) for c in cands])
        figures.append(GroupAccuracy(group.label, group.role, group.axis, group.start, group.stop, group.scale,
                                     cosine_min, cosine_mean, max_abs, mean_abs))
    return figures


def sample_cosine(reference: list[np.ndarray], outputs: list[np.ndarray],
                  layouts: list[StackedLayout | None]) -> float:
    """The lowest cosine of one sample's outputs against the original's, over each whole output and each channel
    group of a stacked one (``layouts``, from the original's outputs): a YOLO head's class scores, rounded to zero
    under its boxes' scale, cost 0.13 of their cosine and under 0.001 of the whole output's (NudeNet 320n)."""
    values = []
    for ref, out, layout in zip(reference, outputs, layouts):
        values.append(cosine(ref, out))
        values.extend(cosine(group.take(ref), group.take(out)) for group in (layout.groups if layout else ()))
    lowest = worst(values, min)
    return -1.0 if math.isnan(lowest) else lowest  # a NaN output fails closed, as a number a search can compare
