#!/usr/bin/env python3
"""Reference values for continuity (Sources/XAIMetrics/Continuity.swift), non-sensitivity
(NonSensitivity.swift), attribution localisation (Localisation.swift) and deletion with the
"black" substrate (PixelCurves.swift), from Quantus 0.6.0's `Continuity`, `NonSensitivity`,
`AttributionLocalisation` and `PixelFlipping`, and onnxruntime.

Inputs: the small_resnet fixture model, its two 64x64 images, the "random" and "smooth" map sets of
Tests/Fixtures/metrics/maps.npy and its masks.npy. Quantus runs the torch twin of the model (checked
against onnxruntime). Quantus normalises by the largest value of a whole batch; xai by each image's,
so every Quantus call here is a batch of one image.

- continuity: `quantus.Continuity(nr_steps)` at its defaults (`abs`, `normalise`, the "black"
  fill), for nr_steps 28, 10 and 64 (shifts of 2 pixels, 0 and the whole width among them; Quantus fails where a shift passes the width, where nr_steps divides 2W + 1), on a closed-form
  explanation the Swift test re-makes, e(x) = tanh(sum_c w_c x_c) [1, 1, H, W] (w =
  continuity_weights.npy), as it is ("signed") and clipped at zero ("relu"); its scores.
- non_sensitivity: `quantus.NonSensitivity(eps)` at its defaults (`abs`, `normalise`, softmax),
  `features_in_step` 1 (the only value its code runs), on maps made sparse here (each map's values
  below its 60th percentile of |map| set to 0: sparse_maps.npy). Its features are input elements;
  to make them pixels (all channels), Quantus is given a one-channel input of ones, m, and a model
  that runs the twin on the image with the pixels where m is not 1 set to m on every channel, its
  baseline the image's smallest value (Quantus's "black", on that image). Its violation counts;
  beside them, from onnxruntime, each pixel's probability change (to pick an epsilon no change
  lies close to) and, for patches of 4 x 4, the same count by the definition in numpy.
- attribution_localisation: `quantus.AttributionLocalisation()` at its defaults (`abs`,
  `normalise`, unweighted) on the four map sets of maps.npy and masks.npy.
- pixel_flipping: `quantus.PixelFlipping(features_in_step)` (`abs=False, normalise=False`, softmax)
  on the same one-channel wrapper with the "black" fill, tie-free maps: its curves, which are xai's
  deletion curves with `--substrate black` after their first point (the clean image).

Run with quantus==0.6.0, torch, onnxruntime (see requirements-fixtures.txt):
    python Tools/make_quantus_continuity_fixtures.py
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import quantus
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_metric_fixtures as mmf  # noqa: E402
from make_quantus_faithfulness_fixtures import PixelFill  # noqa: E402  (the one-channel wrapper)
from make_quantus_robustness_fixtures import explanation  # noqa: E402  (the closed-form explanation)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
METRICS = os.path.join(ROOT, "Tests", "Fixtures", "metrics")
OUT = os.path.join(METRICS, "quantus_continuity")
SETS = {"random": 0, "smooth": 2}


def pixel_changes(session, x, target):
    """|p(x) - p(x with pixel i at the image's minimum on every channel)| for every pixel, float64."""
    c, h, w = x.shape
    fill = x.min()
    clean = mmf.softmax(session.run(None, {"input": x[None]})[0].astype(np.float64))[0, target]
    out = np.empty(h * w)
    for start in range(0, h * w, 256):
        idx = np.arange(start, min(start + 256, h * w))
        batch = np.repeat(x[None], len(idx), axis=0).reshape(len(idx), c, h * w)
        batch[np.arange(len(idx)), :, idx] = fill
        p = mmf.softmax(session.run(None, {"input": batch.reshape(len(idx), c, h, w)})[0].astype(np.float64))[:, target]
        out[idx] = np.abs(p - clean)
    return out


def patch_violations(session, x, a, target, patch, eps):
    """The definition for square patches: a patch is unattributed where every |a| / max |a| in it
    is below eps, insensitive where removing it alone (the image's minimum on every channel) moves
    the probability by less than eps; the patches where the two disagree, and the smallest
    |change - eps| / eps (how near a patch's change came to the threshold)."""
    c, h, w = x.shape
    r = np.abs(a.astype(np.float64))
    r = r / r.max() if r.max() > 0 else r
    clean = mmf.softmax(session.run(None, {"input": x[None]})[0].astype(np.float64))[0, target]
    count, margin = 0, np.inf
    for top in range(0, h, patch):
        for left in range(0, w, patch):
            y = x.copy()
            y[:, top:top + patch, left:left + patch] = x.min()
            p = mmf.softmax(session.run(None, {"input": y[None]})[0].astype(np.float64))[0, target]
            unattributed = bool(np.all(r[top:top + patch, left:left + patch] < eps))
            insensitive = abs(p - clean) < eps
            count += int(unattributed != insensitive)
            margin = min(margin, abs(abs(p - clean) - eps) / eps)
    return count, margin


def main():
    os.makedirs(OUT, exist_ok=True)
    session = ort.InferenceSession(os.path.join(MODEL, "model.onnx"))
    x = np.load(os.path.join(MODEL, "input.npy"))
    maps = np.load(os.path.join(METRICS, "maps.npy"))
    masks = np.load(os.path.join(METRICS, "masks.npy"))
    n, c, h, w = x.shape
    logits = session.run(None, {"input": x})[0]
    targets = logits.argmax(axis=1)
    model = mmf.torch_twin()
    with torch.no_grad():
        assert np.abs(model(torch.from_numpy(x)).numpy() - logits).max() < 1e-4, "the torch twin does not match the ONNX model"
    manifest = {"script": "Tools/make_quantus_continuity_fixtures.py", "quantus": quantus.__version__, "torch": torch.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "model": "models/small_resnet", "maps": "metrics/maps.npy",
                "sets": SETS, "targets": targets.tolist()}

    # Continuity on the closed-form explanation.
    rng = np.random.default_rng(53)
    wts = rng.standard_normal(x.shape[1:]).astype(np.float32)
    np.save(os.path.join(OUT, "continuity_weights.npy"), wts)
    manifest["continuity"] = []
    for steps in (28, 10, 64):
        for relu in (False, True):
            scores = []
            for b in range(n):
                metric = quantus.Continuity(nr_steps=steps, disable_warnings=True)
                s = metric(model=model, x_batch=x[b:b + 1], y_batch=targets[b:b + 1], a_batch=None, channel_first=True, device="cpu",
                           explain_func=lambda model, inputs, targets, **_: explanation(np.asarray(inputs), wts, relu))
                scores.append(float(s[0]))
            manifest["continuity"].append({"steps": steps, "relu": relu, "scores": scores})

    # Non-sensitivity, pixel features, on sparse maps.
    sparse = np.stack([np.where(np.abs(maps[k]) >= np.quantile(np.abs(maps[k]).reshape(n, -1), 0.6, axis=1)[:, None, None], maps[k], 0)
                       for k in SETS.values()]).astype(np.float32)
    np.save(os.path.join(OUT, "sparse_maps.npy"), sparse)
    changes = np.stack([pixel_changes(session, x[b], targets[b]) for b in range(n)])
    manifest["pixel_changes_quantiles"] = np.quantile(changes, [0, 0.1, 0.5, 0.9, 1]).tolist()
    # Epsilons in the widest gap (by ratio) between the pixels' changes within a factor 3 of
    # 1e-5, 3e-5 and 1e-4 (few changes are that small), so float32 rounding cannot move a pixel across one.
    epsilons, margins = [], []
    ordered = np.sort(changes.reshape(-1))
    for want in (1e-5, 3e-5, 1e-4):
        near = ordered[(ordered > want / 3) & (ordered < want * 3)]
        ratios = near[1:] / near[:-1]
        i = int(np.argmax(ratios))
        eps = float(np.float32(np.sqrt(near[i] * near[i + 1])))
        epsilons.append(eps)
        margins.append(float(np.min(np.abs(changes - eps)) / eps))
    manifest["epsilon_margins"] = margins
    manifest["non_sensitivity"] = []
    for eps in epsilons:
        entry = {"epsilon": eps, "quantus": {}, "patch4": {}, "patch4_margin": np.inf}
        for i, name in enumerate(SETS):
            counts, patch4 = [], []
            for b in range(n):
                wrapped = PixelFill(model, x[b:b + 1]).eval()
                metric = quantus.NonSensitivity(eps=eps, features_in_step=1, perturb_baseline=float(x[b].min()), disable_warnings=True)
                s = metric(model=wrapped, x_batch=np.ones((1, 1, h, w), np.float32), y_batch=targets[b:b + 1], a_batch=sparse[i, b][None, None],
                           channel_first=True, device="cpu")
                counts.append(int(s[0]))
                count, margin = patch_violations(session, x[b], sparse[i, b], targets[b], 4, eps)
                patch4.append(count)
                entry["patch4_margin"] = min(entry["patch4_margin"], margin)
            entry["quantus"][name] = counts
            entry["patch4"][name] = patch4
        manifest["non_sensitivity"].append(entry)

    # Attribution localisation on every map set.
    manifest["attribution_localisation"] = {}
    for name, k in dict(SETS, tied=1, peaked=3).items():
        scores = []
        for b in range(n):
            metric = quantus.AttributionLocalisation(disable_warnings=True)
            s = metric(model=None, x_batch=x[b:b + 1], y_batch=targets[b:b + 1], a_batch=maps[k][b][None, None], s_batch=masks[b][None, None])
            scores.append(float(s[0]))
        manifest["attribution_localisation"][name] = scores

    # Pixel flipping: deletion's curves with the black fill.
    manifest["pixel_flipping"] = []
    for step in (64, 256):
        entry = {"step": step, "curves": {}}
        for name, k in SETS.items():
            curves = []
            for b in range(n):
                wrapped = PixelFill(model, x[b:b + 1]).eval()
                metric = quantus.PixelFlipping(features_in_step=step, abs=False, normalise=False, perturb_baseline=float(x[b].min()),
                                               disable_warnings=True)
                curve = metric(model=wrapped, x_batch=np.ones((1, 1, h, w), np.float32), y_batch=targets[b:b + 1], a_batch=maps[k][b][None, None],
                               channel_first=True, device="cpu")
                curves.append(np.asarray(curve[0], np.float64).tolist())
            entry["curves"][name] = curves
        manifest["pixel_flipping"].append(entry)

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps({k: manifest[k] for k in ("continuity", "non_sensitivity", "attribution_localisation", "pixel_changes_quantiles")}, indent=1))


if __name__ == "__main__":
    main()
