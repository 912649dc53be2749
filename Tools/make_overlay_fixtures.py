#!/usr/bin/env python3
"""Overlay references (Tests/Fixtures/overlay/overlay.json): matplotlib's colour maps at 65 points
and torch's bilinear resampling (`grid_sample`, align_corners=False, border padding) of a random
map onto a picture's pixel grid, for the whole picture and for a centre-crop placement.

    python3 Tools/make_overlay_fixtures.py   # needs matplotlib and torch (Tools/requirements-fixtures.txt)
"""
import json
import pathlib

import matplotlib
import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Fixtures" / "overlay"


def resampled(values, image_h, image_w, left, top, width, height):
    """Each picture pixel's bilinear sample of `values`, or None where the map does not cover it."""
    map_h, map_w = values.shape
    ys, xs = np.meshgrid(np.arange(image_h), np.arange(image_w), indexing="ij")
    my = (ys + 0.5 - top) / height * map_h - 0.5
    mx = (xs + 0.5 - left) / width * map_w - 0.5
    # grid_sample with align_corners=False: pixel coordinate p <-> normalised (2p + 1) / size - 1.
    grid = torch.tensor(np.stack([(2 * mx + 1) / map_w - 1, (2 * my + 1) / map_h - 1], axis=-1)[None], dtype=torch.float64)
    sampled = torch.nn.functional.grid_sample(torch.tensor(values[None, None], dtype=torch.float64), grid, mode="bilinear",
                                              padding_mode="border", align_corners=False)[0, 0].numpy()
    inside = (my > -0.5) & (my < map_h - 0.5) & (mx > -0.5) & (mx < map_w - 0.5)
    return [[float(sampled[y, x]) if inside[y, x] else None for x in range(image_w)] for y in range(image_h)]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    t = np.linspace(0, 1, 65)
    colormaps = {name: matplotlib.colormaps[name](t)[:, :3].tolist() for name in ("viridis", "inferno", "turbo", "jet")}
    rng = np.random.default_rng(2026)
    values = rng.random((7, 9))
    placements = [dict(left=0.0, top=0.0, width=30.0, height=20.0), dict(left=3.5, top=-1.25, width=22.0, height=23.0)]
    fixture = {
        "versions": {"matplotlib": matplotlib.__version__, "torch": torch.__version__},
        "t": t.tolist(),
        "colormaps": colormaps,
        "map": values.tolist(),
        "image": [20, 30],
        "placements": [dict(p, samples=resampled(values, 20, 30, **p)) for p in placements],
    }
    (OUT / "overlay.json").write_text(json.dumps(fixture))
    print(f"wrote {OUT / 'overlay.json'}")


if __name__ == "__main__":
    main()
