"""Benchmark networks in plain PyTorch: a MobileNetV2-style and a ResNet-18-style ImageNet classifier, and a
YOLOv8n-shaped detector at 320x320 (the architecture only: no download, no trained weights).

Weights are random but seeded, and every BatchNorm gets non-trivial statistics so folding BN into the
convolutions (and quantizing the result) is exercised as on a trained network. Each factory returns
``(module, example_input)`` so edgekit can load it as ``bench/models.py:mobilenet_v2_style``.
"""

from __future__ import annotations

import torch
from torch import nn

SEED = 0
NUM_CLASSES = 1000
INPUT_SHAPE = (1, 3, 224, 224)
DETECTOR_SHAPE = (1, 3, 320, 320)
# MobileNetV2 (Sandler et al. 2018, table 2): expansion t, channels c, repeats n, first stride s.
MOBILENET_V2_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU6):
    """Conv (no bias) + BatchNorm, optionally followed by an activation."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2Style(nn.Module):
    """MobileNetV2 (width 1.0): 32-channel stem, the standard block table, 1280-channel head."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers, cin = [conv_bn(3, 32, 3, 2)], 32
        for expand, cout, repeats, stride in MOBILENET_V2_CONFIG:
            for index in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if index == 0 else 1, expand))
                cin = cout
        layers.append(conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride, act=nn.ReLU)
        self.conv2 = conv_bn(cout, cout, 3, act=None)
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet18Style(nn.Module):
    """ResNet-18: 7x7 stem + max-pool, four stages of two BasicBlocks (64-128-256-512), global pool, FC."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for index, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def randomize(net: nn.Module, seed: int = SEED) -> nn.Module:
    """Seeded He-init convs (and their biases), small-normal linears, and realistic random BatchNorm affine and
    statistics: every parameter comes from ``seed``, so each call builds the same network."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
                module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                if module.bias is not None:  # the detector's output convolutions: seeded too, or two loads differ
                    module.bias.normal_(0.0, 0.1, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=generator)
                module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
    return net.eval()


def example_input() -> torch.Tensor:
    """A fixed 1x3x224x224 input (only its shape and name matter to the exporter)."""
    return torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(SEED))


def mobilenet_v2_style() -> tuple[nn.Module, torch.Tensor]:
    """MobileNetV2-style network in eval mode and an example input."""
    return randomize(MobileNetV2Style()), example_input()


def resnet18_style() -> tuple[nn.Module, torch.Tensor]:
    """ResNet-18-style network in eval mode and an example input."""
    return randomize(ResNet18Style()), example_input()


def conv_bn_silu(cin: int, cout: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """YOLOv8's Conv: Conv (no bias) + BatchNorm + SiLU."""
    return conv_bn(cin, cout, kernel, stride, act=nn.SiLU)


class YoloBottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool):
        super().__init__()
        self.cv1, self.cv2 = conv_bn_silu(channels, channels, 3), conv_bn_silu(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's CSP block: split, ``n`` bottlenecks on one half, concatenate every stage, 1x1 fuse."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool):
        super().__init__()
        self.c = cout // 2
        self.cv1 = conv_bn_silu(cin, 2 * self.c)
        self.cv2 = conv_bn_silu((2 + n) * self.c, cout)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.cv1, self.cv2 = conv_bn_silu(cin, cin // 2), conv_bn_silu(cin // 2 * 4, cout)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    """YOLOv8's anchor-free head: per level a box branch (4 x 16-bin distance distributions, decoded by DFL) and
    a class branch; output (batch, 4 + classes, anchors) with xywh boxes in pixels and sigmoid class scores."""

    REG_MAX = 16

    def __init__(self, classes: int, channels: tuple[int, ...], image: int, strides: tuple[int, ...] = (8, 16, 32)):
        super().__init__()
        box, cls = max(16, channels[0] // 4, 4 * self.REG_MAX), max(channels[0], min(classes, 100))
        self.box = nn.ModuleList(nn.Sequential(conv_bn_silu(c, box, 3), conv_bn_silu(box, box, 3),
                                               nn.Conv2d(box, 4 * self.REG_MAX, 1)) for c in channels)
        self.cls = nn.ModuleList(nn.Sequential(conv_bn_silu(c, cls, 3), conv_bn_silu(cls, cls, 3),
                                               nn.Conv2d(cls, classes, 1)) for c in channels)
        points, scales = [], []
        for stride in strides:
            cells = image // stride
            ys, xs = torch.meshgrid(torch.arange(cells) + 0.5, torch.arange(cells) + 0.5, indexing="ij")
            points.append(torch.stack((xs, ys)).reshape(2, -1))
            scales.append(torch.full((1, cells * cells), float(stride)))
        self.register_buffer("anchors", torch.cat(points, 1))
        self.register_buffer("strides", torch.cat(scales, 1))
        self.register_buffer("bins", torch.arange(self.REG_MAX, dtype=torch.float32).view(1, 1, -1, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        batch = features[0].shape[0]
        box = torch.cat([b(f).flatten(2) for b, f in zip(self.box, features)], 2)
        cls = torch.cat([c(f).flatten(2) for c, f in zip(self.cls, features)], 2)
        distances = (box.view(batch, 4, self.REG_MAX, -1).softmax(2) * self.bins).sum(2)
        left_top, right_bottom = distances.chunk(2, 1)
        top_left, bottom_right = self.anchors - left_top, self.anchors + right_bottom
        boxes = torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), 1) * self.strides
        return torch.cat((boxes, cls.sigmoid()), 1)


class YoloV8nStyle(nn.Module):
    """YOLOv8n's layer table (depth 0.33, width 0.25): backbone to SPPF, PAN neck, 80-class Detect head."""

    def __init__(self, image: int = DETECTOR_SHAPE[-1], classes: int = 80):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_silu(3, 16, 3, 2), conv_bn_silu(16, 32, 3, 2), C2f(32, 32, 1, True))
        self.p3 = nn.Sequential(conv_bn_silu(32, 64, 3, 2), C2f(64, 64, 2, True))
        self.p4 = nn.Sequential(conv_bn_silu(64, 128, 3, 2), C2f(128, 128, 2, True))
        self.p5 = nn.Sequential(conv_bn_silu(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4, self.top_down3 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
        self.down3, self.bottom_up4 = conv_bn_silu(64, 64, 3, 2), C2f(192, 128, 1, False)
        self.down4, self.bottom_up5 = conv_bn_silu(128, 128, 3, 2), C2f(384, 256, 1, False)
        self.detect = Detect(classes, (64, 128, 256), image)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.top_down4(torch.cat((self.up(p5), p4), 1))
        n3 = self.top_down3(torch.cat((self.up(n4), p3), 1))
        n4 = self.bottom_up4(torch.cat((self.down3(n3), n4), 1))
        n5 = self.bottom_up5(torch.cat((self.down4(n4), p5), 1))
        return self.detect([n3, n4, n5])


def yolov8n_style() -> tuple[nn.Module, torch.Tensor]:
    """YOLOv8n-shaped detector (random seeded weights, not trained) in eval mode and a 1x3x320x320 input."""
    return randomize(YoloV8nStyle()), torch.rand(DETECTOR_SHAPE, generator=torch.Generator().manual_seed(SEED))
