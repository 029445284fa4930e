"""Tiny models built for the tests; referenced as testkit/models.py:FACTORY like a user's model file."""

from __future__ import annotations

import random

import torch
from torch import nn


def _randomize_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return net.eval()


class TinyCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyMlp(nn.Module):
    """MatMul-heavy, transformer-like: 3-D input so Linear exports as MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32), nn.LayerNorm(32))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


class TwoInputs(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(a) * 2 + b


class Unstable(nn.Module):
    """Outputs swing with tiny input changes: INT8 cannot keep it within a tight budget."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.head(self.conv(x).flatten(1)) * 500.0)


@torch.library.custom_op("edgekit_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@mystery.register_fake
def _mystery_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class UsesMystery(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mystery(x) + 1


def tiny_cnn():
    torch.manual_seed(0)
    return _randomize_batchnorm(TinyCnn()), torch.zeros(1, 3, 8, 8)


def tiny_cnn_no_examples():
    torch.manual_seed(0)
    return _randomize_batchnorm(TinyCnn())


def tiny_mlp():
    torch.manual_seed(0)
    return TinyMlp().eval(), torch.zeros(1, 4, 32)


def two_inputs():
    return TwoInputs(), {"a": torch.zeros(1, 6), "b": torch.zeros(1, 6)}


def unstable():
    return Unstable().eval(), torch.zeros(1, 3, 8, 8)


def unsupported_op():
    return UsesMystery(), torch.zeros(1, 4)


def raises():
    raise RuntimeError("weights file is corrupt")


def not_a_module():
    return {"weights": [1, 2, 3]}


class OutlierChannel(nn.Module):
    """One huge activation channel that the output ignores: per-tensor INT8 of that activation crushes the
    channels that matter. Keeping the layers around it in float rescues the accuracy."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.first.weight[0] *= 400.0
            self.second.weight[:, 0] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.second(torch.relu(self.first(x))).mean((2, 3)))


def outlier_channel():
    return OutlierChannel().eval(), torch.zeros(1, 3, 8, 8)


class SqrtHead(nn.Module):
    """sqrt of a linear map: NaN wherever the map goes negative, as a badly conditioned model can."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.linear(x))


def nan_output():
    return SqrtHead().eval(), torch.zeros(1, 8)


class SlowCnn(TinyCnn):
    """TinyCnn that takes a while per call in PyTorch, so a run can be interrupted mid-way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            time.sleep(0.25)
        return super().forward(x)


def slow_cnn():
    torch.manual_seed(0)
    return _randomize_batchnorm(SlowCnn()), torch.zeros(1, 3, 8, 8)


class TokenClassifier(nn.Module):
    """int64 token ids in (like a text encoder's input_ids), three class logits out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))


def token_classifier():
    return TokenClassifier().eval(), torch.randint(0, 50, (1, 12))


class BoxesAndScores(nn.Module):
    """A detector head: box regression (1, 4) next to class probabilities (1, 3)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.boxes = nn.Linear(8, 4)
        self.scores = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        return self.boxes(features), torch.softmax(self.scores(features), -1)


def boxes_and_scores():
    return BoxesAndScores().eval(), torch.zeros(1, 3, 8, 8)


class StackedYoloHead(nn.Module):
    """A YOLO-style head [1, 4 + 3, 64]: boxes in pixels (up to 320) stacked over sigmoid class scores, so one
    per-tensor INT8 scale, set by the boxes, rounds the scores to zero."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes, self.scores = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes, scores = torch.sigmoid(self.boxes(x)) * 320.0, torch.sigmoid(self.scores(x) * 4.0 - 3.0)
        return torch.cat([boxes, scores], 1).flatten(2)


class SentenceEncoder(nn.Module):
    """A tiny real BERT (transformers' BertModel, random weights) with mean pooling over the mask and L2
    normalization, as sentence-transformers runs all-MiniLM: token ids and mask in, one embedding out."""

    def __init__(self, outlier: bool = False) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=32)
        self.bert = BertModel(config, add_pooling_layer=False).eval()
        if outlier:  # one huge FFN channel that the layer's output ignores (as OutlierChannel does for a CNN)
            ffn = self.bert.encoder.layer[1]
            with torch.no_grad():
                ffn.intermediate.dense.weight[0] *= 400.0
                ffn.intermediate.dense.bias[0] = 40.0
                ffn.output.dense.weight *= 20.0  # and make that FFN matter next to the residual stream
                ffn.output.dense.weight[:, 0] = 0.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def tiny_bert():
    ids = torch.zeros(1, 16, dtype=torch.int64)
    return SentenceEncoder().eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def tiny_bert_outlier():
    """tiny_bert whose second layer's FFN output MatMul sees one huge, ignored channel: dynamic INT8 (one
    activation range per tensor) crushes the channels that matter there."""
    ids = torch.zeros(1, 16, dtype=torch.int64)
    return SentenceEncoder(outlier=True).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class OutlierDeep(nn.Module):
    """OutlierChannel with four more convolutions: whole-model INT8 loses accuracy on every CPU kind (with or
    without VNNI/AMX kernels), and keeping one or two layers around the outlier in float (of eight) brings it
    back."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.body = nn.Sequential(*[m for _ in range(4) for m in (nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())])
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.first.weight[0] *= 1000.0
            self.second.weight[:, 0] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.second(torch.relu(self.first(x)))).mean((2, 3)))


def outlier_deep():
    return OutlierDeep().eval(), torch.zeros(1, 3, 8, 8)


class ShiftedSilu(nn.Module):
    """Three convolutions, each followed by SiLU, with biases that put most activations above zero and a small
    negative tail (SiLU's minimum is -0.28): symmetric INT8 spends half its levels on negatives the tensors barely
    have, and NNCF's asymmetric activations lose less (on the Zen 4 EPYC: 1 - cosine 0.00062 against 0.00041)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        channels = ((3, 16), (16, 16), (16, 16))
        self.body = nn.Sequential(*[m for c in channels for m in (nn.Conv2d(*c, 3, padding=1), nn.SiLU())])
        self.head = nn.Linear(16, 4)
        with torch.no_grad():
            for conv in self.body[::2]:
                conv.bias += 1.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def shifted_silu():
    return ShiftedSilu().eval(), torch.zeros(1, 3, 8, 8)


class UnseededScale(TinyCnn):
    """TinyCnn times a factor drawn unseeded and kept as a plain attribute: not in its state dict, so a second
    load of the factory computes other outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0 + random.random()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def unseeded_scale():
    return _randomize_batchnorm(UnseededScale()), torch.zeros(1, 3, 8, 8)
