#!/usr/bin/env python3
"""Trains the bundled demo model on procedurally generated images with known object masks.

Each 64x64 image shows one bright shape (circle, square, triangle or cross; the class) at a random
place, size and colour on a textured, cluttered background (noise, stripes and distractor blobs
that are never the class shapes). A small CNN with a global-average-pooling + linear head (so CAM
applies) is trained on CPU in about a minute, exported to ONNX, and 12 held-out samples are saved
as PNG with their ground-truth masks, so `xai demo` can report how often each method's peak falls
on the object (pointing game).

Writes Demo/model.onnx, Demo/model.json (preprocessing + labels), Demo/samples/*.png,
Demo/masks/*.png and Demo/manifest.json (accuracy, versions).
Run:  python3 Tools/make_demo_model.py      (torch, onnx and Pillow; see requirements-fixtures.txt)
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Demo")
LABELS = ["circle", "square", "triangle", "cross"]
SIZE = 64
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def shape_mask(kind, cy, cx, r, yy, xx):
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        return dy * dy + dx * dx <= r * r
    if kind == 1:
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if kind == 2:
        # Upward triangle: inside three half-planes.
        top = dy >= -r
        return top & (dy <= r * 0.8) & (np.abs(dx) <= (dy + r) * 0.62)
    w = max(2, r * 0.3)
    return ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))


def sample(rng, kind):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = rng.uniform(0.1, 0.5, 3)
    img = base[None, None, :] + rng.normal(0, 0.06, (SIZE, SIZE, 3))
    # Stripes and soft blobs as clutter.
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4)
    img += 0.08 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))[..., None]
    for _ in range(rng.integers(2, 6)):
        by, bx, br = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(3, 9)]
        blob = np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * br * br))
        img += blob[..., None] * rng.uniform(-0.3, 0.4, 3)[None, None, :]
    r = rng.uniform(7, 13)
    cy, cx = rng.uniform(r + 1, SIZE - r - 1, 2)
    mask = shape_mask(kind, cy, cx, r, yy, xx)
    color = rng.uniform(0.55, 1.0, 3)
    color[rng.integers(0, 3)] = rng.uniform(0.0, 0.3)
    img[mask] = color + rng.normal(0, 0.03, (mask.sum(), 3))
    return np.clip(img, 0, 1).astype(np.float32), mask


def dataset(n, seed):
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, len(LABELS), n)
    pairs = [sample(rng, k) for k in kinds]
    x = np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2)
    x = (x - np.array(MEAN, np.float32)[None, :, None, None]) / np.array(STD, np.float32)[None, :, None, None]
    return torch.from_numpy(x), torch.from_numpy(kinds), pairs


class DemoNet(nn.Module):
    def __init__(self):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                                      *block(32, 64), *block(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, len(LABELS))

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y, _ = dataset(8000, 1)
    xt, yt, held = dataset(400, 2)
    model = DemoNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(10):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.3f}, held-out accuracy {acc:.3f}")
    os.makedirs(os.path.join(OUT, "samples"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "masks"), exist_ok=True)
    torch.onnx.export(model, xt[:1], os.path.join(OUT, "model.onnx"), opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump({"mean": MEAN, "std": STD, "labels": LABELS}, f, indent=2)
    # Three held-out samples of each class.
    count = {k: 0 for k in range(len(LABELS))}
    for i, (img, mask) in enumerate(held):
        k = int(yt[i])
        if count[k] >= 3:
            continue
        count[k] += 1
        name = f"{LABELS[k]}_{count[k]}"
        Image.fromarray((img * 255).round().astype(np.uint8)).save(os.path.join(OUT, "samples", name + ".png"))
        Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(OUT, "masks", name + ".png"))
    import onnx
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"script": "Tools/make_demo_model.py", "torch": torch.__version__, "onnx": onnx.__version__,
                   "train_images": len(x), "heldout_images": len(xt), "heldout_accuracy": acc, "labels": LABELS}, f, indent=2)


if __name__ == "__main__":
    main()
