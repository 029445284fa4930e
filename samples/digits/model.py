"""DigitsNet: a small CNN for scikit-learn's 8x8 handwritten digits (trained by train.py).

``build()`` is the factory edgekit exports: it loads the committed weights with safetensors (no pickle).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("digits_cnn.safetensors")


class DigitsNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(1, 16), block(16, 32), nn.MaxPool2d(2), block(32, 64),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(64, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (batch, 1, 8, 8) pixel intensities scaled to [0, 1]; returns class logits."""
        return self.classifier(self.features(image))


def build() -> tuple[nn.Module, torch.Tensor]:
    """The trained model and an example input."""
    from safetensors.torch import load_file

    net = DigitsNet()
    net.load_state_dict(load_file(WEIGHTS))
    return net.eval(), torch.zeros(1, 1, 8, 8)
