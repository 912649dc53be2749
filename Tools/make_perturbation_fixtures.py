#!/usr/bin/env python3
"""Reference outputs for the perturbation tests, from Captum and scikit-image.

Writes into Tests/Fixtures/perturbation/:
  <model>/occlusion.npy   captum Occlusion on the fixture model of Tools/make_fixtures.py (same
                          input and targets): window 3x8x8, strides 3x5x5 (the last windows are
                          clipped at the image edge), baseline 0                        [2, 3, H, W]
  images/<name>.npy       a scikit-image sample photograph, anti-aliased down to 96x128, uint8 [3, H, W]
  images/<name>_slic<n>.npy  skimage.segmentation.slic(n_segments=n) with the other parameters at
                          their defaults (compactness 10, sigma 0, start_label 1), uint8 [H, W]
  images/<name>_quickshift.npy  quickshift(kernel_size=4, max_dist=200, ratio=0.2) (lime's), int32
  images/<name>_felzenszwalb<scale>.npy  felzenszwalb(scale=s, sigma=0.8, min_size=20), int32
Run after make_fixtures.py:  python3 Tools/make_perturbation_fixtures.py
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

import captum
from captum.attr import Occlusion
import skimage
from skimage import data, transform
from skimage.segmentation import felzenszwalb, quickshift, slic

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "perturbation")
MODELS = ["small_resnet", "mobile_block"]
IMAGES = ["chelsea", "astronaut", "coffee"]
SLIC_SEGMENTS = [70, 100]
FELZENSZWALB_SCALES = [1, 100]


def main():
    manifest = {"script": "Tools/make_perturbation_fixtures.py", "torch": torch.__version__, "captum": captum.__version__,
                "scikit-image": skimage.__version__, "occlusion": {"window": [3, 8, 8], "strides": [3, 5, 5]}, "slic": {}}
    names = list(mf.MODELS)
    for name in MODELS:
        i = names.index(name)
        cls = mf.MODELS[name][0]
        torch.manual_seed(100 + i)
        model = cls().eval()
        mf.randomize(model, 200 + i)
        x = torch.from_numpy(np.load(os.path.join(mf.OUT, name, "input.npy")))
        target = torch.tensor(np.load(os.path.join(mf.OUT, name, "target.npy")).tolist())
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        with torch.no_grad():
            attr = Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 5, 5), baselines=0,
                                              target=target, perturbations_per_eval=16)
        np.save(os.path.join(folder, "occlusion.npy"), attr.numpy().astype(np.float32))
        print(name, "occlusion done")
    folder = os.path.join(OUT, "images")
    os.makedirs(folder, exist_ok=True)
    for name in IMAGES:
        rgb = getattr(data, name)()
        small = (transform.resize(rgb, (96, 128), anti_aliasing=True) * 255).round().astype(np.uint8)
        np.save(os.path.join(folder, f"{name}.npy"), np.ascontiguousarray(small.transpose(2, 0, 1)))
        for n in SLIC_SEGMENTS:
            labels = slic(small, n_segments=n)
            assert labels.max() < 256
            np.save(os.path.join(folder, f"{name}_slic{n}.npy"), labels.astype(np.uint8))
            manifest["slic"][f"{name}_slic{n}"] = int(len(np.unique(labels)))
        labels = quickshift(small, kernel_size=4, max_dist=200, ratio=0.2)
        np.save(os.path.join(folder, f"{name}_quickshift.npy"), labels.astype(np.int32))
        manifest["quickshift"] = manifest.get("quickshift", {}) | {name: int(len(np.unique(labels)))}
        for scale in FELZENSZWALB_SCALES:
            labels = felzenszwalb(small, scale=scale, sigma=0.8, min_size=20)
            np.save(os.path.join(folder, f"{name}_felzenszwalb{scale}.npy"), labels.astype(np.int32))
            manifest["felzenszwalb"] = manifest.get("felzenszwalb", {}) | {f"{name}_{scale}": int(len(np.unique(labels)))}
        print(name, "segmentations done")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
