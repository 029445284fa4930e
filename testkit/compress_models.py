"""Models for the compression tests and bench, referenced as testkit/compress_models.py:FACTORY.

The teacher is the bundled, really trained digits CNN (samples/digits, 24k parameters). The student has under a
quarter of its parameters and starts from fixed random weights, so every run starts from the same point.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsStudent(nn.Module):
    """A 3.8k-parameter CNN for the 8x8 digits, no BatchNorm (so DDP runs are exactly comparable)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


def student() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = DigitsStudent()
    return net.eval(), torch.zeros(1, 1, 8, 8)


class DigitsStudentBN(nn.Module):
    """A 5k-parameter CNN for the 8x8 digits, with BatchNorm: under a quarter of the teacher's parameters."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(1, 8), block(8, 16), nn.MaxPool2d(2), block(16, 24),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(24, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


def student_bn() -> tuple[nn.Module, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = DigitsStudentBN()
    return net.eval(), torch.zeros(1, 1, 8, 8)


def fragile_digits(scale: float = 150.0) -> tuple[nn.Module, torch.Tensor]:
    """The trained digits CNN made fragile under post-training INT8, with the same float outputs.

    Channel 0 of the first block is scaled up by ``scale`` (its BatchNorm weight and bias; ReLU commutes with a
    positive scale) and the next convolution reads it scaled down by as much, so the float model computes what
    it did. But that activation tensor is quantized per tensor: its range, and so its step, is set by the
    scaled channel, and the other channels keep only a few levels.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples" / "digits"))
    try:
        from model import build
    finally:
        sys.path.pop(0)
    net, example = build()
    with torch.no_grad():
        net.features[0][1].weight[0] *= scale
        net.features[0][1].bias[0] *= scale
        net.features[1][0].weight[:, 0] /= scale
    return net, example
