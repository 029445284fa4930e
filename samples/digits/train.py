"""Train DigitsNet on scikit-learn's bundled 8x8 digits and write the weights and held-out data.

Run from the repository root: ``.venv/bin/python samples/digits/train.py``. Deterministic (fixed seeds).
Writes digits_cnn.safetensors, calib.npz (from the training split) and val.npz (held-out test split, with labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from model import DigitsNet

HERE = Path(__file__).parent
EPOCHS = 40
CALIB_SAMPLES = 128


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, random_state=0,
                                                        stratify=labels)
    net = DigitsNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(EPOCHS):
        net.train()
        for idx in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"test accuracy: {accuracy:.4f} on {len(y_test)} held-out digits")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, HERE / "digits_cnn.safetensors")
    np.savez_compressed(HERE / "calib.npz", image=x_train[:CALIB_SAMPLES])
    np.savez_compressed(HERE / "val.npz", image=x_test, labels=y_test)


if __name__ == "__main__":
    main()
