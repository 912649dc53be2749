#!/usr/bin/env python3
"""Reference values for region perturbation, selectivity, IROF, faithfulness estimate and
monotonicity (Sources/XAIMetrics/RegionPerturbation.swift), from Quantus 0.6.0 and AIX360's
definition.

Inputs: the small_resnet fixture model, its two 64x64 images, and the map sets of
Tests/Fixtures/metrics/maps.npy (made by Tools/make_metric_fixtures.py); the "tied" set is left
out, as Quantus orders with numpy's unstable sort. Quantus runs the torch twin of the model (checked
against onnxruntime), with `abs=False, normalise=False`, `softmax` at its defaults, and a baseline
of 0.0 (xai's `--substrate zero`).

- region_perturbation (MoRF and LeRF): `quantus.RegionPerturbation(patch_size, regions_evaluation,
  order)`: its curves, y(x) - y(x_k). Patch sizes 8 (no padding) and 5 (Quantus pads 64 to 65, the
  extra column after) and 6 (one row and column each side).
- selectivity: `quantus.Selectivity(patch_size)`: its curves y(x_k), k = 1...patches, and the clean
  image's probability from onnxruntime (xai's curve starts with it).
- irof: `quantus.IROF` with `utils.get_superpixel_segments` replaced by a label map drawn here
  (segments.npy, 23 blobs), so the segments are the same as xai's `.labels`; its per-image AOC
  (`S - trapz(y(x_k) / y(x), k = 1...S)`). Quantus 0.6.0's IROF asserts on a 3-channel input (its
  mask has one channel), so it runs on the one-channel wrapper described next.
- faithfulness_estimate: `quantus.FaithfulnessEstimate(features_in_step=step)`. Quantus's
  features are input elements; to make them pixels (all channels), Quantus is given a one-channel
  input of ones, m, and a model that runs the twin on `x * m` (m = 0: the pixel at the baseline 0
  on every channel). Its ordering, grouping, logits and Pearson correlation are its own.
- monotonicity: AIX360's `monotonicity_metric` (Arya et al. 2019) re-implemented in numpy with
  onnxruntime: from the baseline (zeros), pixels put back `step` at a time in ascending map order
  (stable: ties by index), probability of the target after each; 1 if it never falls. Quantus's
  `Monotonicity` on the same wrapper is recorded beside it (`quantus_monotonicity`): its loop
  replaces the baseline by the baseline, so it never sees the image.

- monotonicity_correlation: `quantus.MonotonicityCorrelation(nr_samples, features_in_step=step)`
  at its defaults (`abs=True`, softmax), on the one-channel PixelFill wrapper (m = 1 keeps the
  pixel, any other value fills it on every channel), its `perturb_func` replaced by one that fills
  the group with xai's draw for the copy (SplitMix64 seeded `seed + 1000003 b + s`, the same draw
  for every group, as xai's common random numbers); its Spearman scores, and beside them each
  group's effect from onnxruntime (`effects`).

- roc_auc, top_k_intersection, effective_complexity: Quantus 0.6.0's `AUC`, `TopKIntersection(k)`
  and `EffectiveComplexity(eps)` with `abs=False, normalise=False` on the masks of
  Tests/Fixtures/metrics/masks.npy; AUC on all four map sets (its ties go through scikit-learn's
  `roc_curve`), top-k on the tie-free ones (numpy's unstable sort), effective complexity on
  |map| / max |map| per image (Quantus normalises by the batch's maximum).

Run with quantus==0.6.0, torch, onnxruntime (see requirements-fixtures.txt):
    python Tools/make_quantus_faithfulness_fixtures.py
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import quantus
import torch

# Quantus 0.6.0 calls np.trapz, which numpy 2.4 removed; np.trapezoid is the same function renamed.
if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid

sys.path.insert(0, os.path.dirname(__file__))
import make_metric_fixtures as mmf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
MAPS = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "maps.npy")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "quantus_faithfulness")
SETS = {"random": 0, "smooth": 2, "peaked": 3}


class PixelFill(torch.nn.Module):
    """The twin run on the image with the pixels where m [N, 1, H, W] is not 1 set to m on every
    channel: Quantus's one-channel elements become whole pixels, filled with its baseline value."""

    def __init__(self, model, x):
        super().__init__()
        self.model = model
        self.x = torch.from_numpy(x)

    def forward(self, m):
        return self.model(torch.where(m == 1, self.x, m.expand_as(self.x)))


def monotonicity_correlation_effects(session, x, m, step, target, fills):
    """Nguyen & Martinez's effects with onnxruntime: pixels in ascending |map| order (stable), in
    groups of `step`; each group alone filled with each value of `fills`; the mean squared change of
    the target's softmax probability."""
    order = np.argsort(np.abs(m).reshape(-1), kind="stable")
    c, h, w = x.shape
    clean = mmf.softmax(session.run(None, {"input": x[None]})[0].astype(np.float64))[0, target]
    effects = []
    for g in range(0, h * w, step):
        idx = order[g:g + step]
        batch = np.repeat(x[None], len(fills), axis=0).reshape(len(fills), c, -1)
        for i, u in enumerate(fills):
            batch[i][:, idx] = u
        p = mmf.softmax(session.run(None, {"input": batch.reshape(len(fills), c, h, w)})[0].astype(np.float64))[:, target]
        effects.append(float(np.mean((p - clean) ** 2)))
    return np.array(effects)


class PixelPresence(torch.nn.Module):
    """The twin run on x * m, m [N, 1, H, W]: Quantus's input elements become whole pixels."""

    def __init__(self, model, x):
        super().__init__()
        self.model = model
        self.x = torch.from_numpy(x)

    def forward(self, m):
        return self.model(self.x * m)


def segments(h, w, count, rng):
    """Blobs: each pixel labelled by its nearest of `count` random centres (ids 0..count-1)."""
    cy, cx = rng.uniform(0, h, count), rng.uniform(0, w, count)
    yy, xx = np.mgrid[0:h, 0:w]
    d = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
    labels = d.argmin(axis=0)
    # Compact ids in order of first appearance (xai relabels so; the order of means is unaffected).
    _, first = np.unique(labels.reshape(-1), return_index=True)
    remap = np.empty(count, np.int64)
    remap[np.argsort(first)] = np.arange(count)
    return remap[labels]


def monotonicity_curve(session, x, m, step, target):
    c, h, w = x.shape
    order = np.argsort(m.reshape(-1), kind="stable")
    flat = np.zeros((c, h * w), np.float32)
    batch = []
    for i in range(0, h * w, step):
        coords = order[i:i + step]
        flat[:, coords] = x.reshape(c, h * w)[:, coords]
        batch.append(flat.reshape(c, h, w).copy())
    p = mmf.softmax(session.run(None, {"input": np.stack(batch)})[0].astype(np.float64))[:, target]
    return p


def main():
    os.makedirs(OUT, exist_ok=True)
    session = ort.InferenceSession(os.path.join(MODEL, "model.onnx"))
    x = np.load(os.path.join(MODEL, "input.npy"))
    maps = np.load(MAPS)
    n, c, h, w = x.shape
    logits = session.run(None, {"input": x})[0]
    targets = logits.argmax(axis=1)
    clean = mmf.softmax(logits.astype(np.float64))[np.arange(n), targets]
    model = mmf.torch_twin()
    with torch.no_grad():
        assert np.abs(model(torch.from_numpy(x)).numpy() - logits).max() < 1e-4, "the torch twin does not match the ONNX model"
    common = dict(model=model, x_batch=x, y_batch=targets, channel_first=True, device="cpu")
    manifest = {"script": "Tools/make_quantus_faithfulness_fixtures.py", "quantus": quantus.__version__, "torch": torch.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "model": "models/small_resnet", "maps": "metrics/maps.npy",
                "sets": SETS, "targets": targets.tolist(), "clean_probability": clean.tolist(),
                "region_perturbation": [], "selectivity": [], "irof": {}, "faithfulness_estimate": [], "monotonicity": []}

    for patch, regions in [(8, 20), (5, 200), (6, 50)]:
        for order in ("morf", "lerf"):
            entry = {"patch": patch, "regions": regions, "order": order, "curves": {}}
            for name, k in SETS.items():
                metric = quantus.RegionPerturbation(patch_size=patch, regions_evaluation=regions, order=order, abs=False, normalise=False,
                                                   perturb_baseline=0.0, disable_warnings=True)
                curves = metric(a_batch=maps[k][:, None], s_batch=None, **common)
                entry["curves"][name] = np.asarray(curves, np.float64).tolist()
            manifest["region_perturbation"].append(entry)
    for patch in (8, 5):
        entry = {"patch": patch, "curves": {}}
        for name, k in SETS.items():
            metric = quantus.Selectivity(patch_size=patch, abs=False, normalise=False, perturb_baseline=0.0, disable_warnings=True)
            curves = metric(a_batch=maps[k][:, None], s_batch=None, **common)
            entry["curves"][name] = np.asarray(curves, np.float64).tolist()
        manifest["selectivity"].append(entry)

    presence = PixelPresence(model, x).eval()
    ones = np.ones((n, 1, h, w), np.float32)
    wrapped = dict(model=presence, x_batch=ones, y_batch=targets, channel_first=True, device="cpu")

    rng = np.random.default_rng(1234)
    labels = np.stack([segments(h, w, 23, rng) for _ in range(n)])
    np.save(os.path.join(OUT, "segments.npy"), labels.astype(np.float32))
    calls = {"i": 0}
    real = quantus.helpers.utils.get_superpixel_segments

    def given_segments(img, segmentation_method):
        i = calls["i"] % n
        calls["i"] += 1
        return labels[i]
    quantus.helpers.utils.get_superpixel_segments = given_segments
    try:
        for name, k in SETS.items():
            calls["i"] = 0
            metric = quantus.IROF(abs=False, normalise=False, perturb_baseline=0.0, return_aggregate=False, disable_warnings=True)
            manifest["irof"][name] = [float(v) for v in metric(a_batch=maps[k][:, None], s_batch=None, **wrapped)]
    finally:
        quantus.helpers.utils.get_superpixel_segments = real

    for step in (64, 256):
        entry = {"step": step, "scores": {}}
        for name, k in SETS.items():
            metric = quantus.FaithfulnessEstimate(features_in_step=step, abs=False, normalise=False, perturb_baseline=0.0, disable_warnings=True)
            entry["scores"][name] = [float(v) for v in metric(a_batch=maps[k][:, None], s_batch=None, softmax=False, **wrapped)]
        manifest["faithfulness_estimate"].append(entry)

    for step in (128, 256, 1024):
        entry = {"step": step, "curves": {}, "scores": {}, "quantus_monotonicity": {}}
        for name, k in SETS.items():
            curves = [monotonicity_curve(session, x[b], maps[k][b], step, targets[b]) for b in range(n)]
            entry["curves"][name] = [cv.tolist() for cv in curves]
            entry["scores"][name] = [float(np.all(np.diff(cv) >= 0)) for cv in curves]
            metric = quantus.Monotonicity(features_in_step=step, abs=False, normalise=False, perturb_baseline=0.0, disable_warnings=True)
            entry["quantus_monotonicity"][name] = [float(v) for v in metric(a_batch=maps[k][:, None], s_batch=None, **wrapped)]
        manifest["monotonicity"].append(entry)
    manifest["monotonicity_correlation"] = []
    fill_model = PixelFill(model, x).eval()
    for step, samples, seed in ((128, 5, 9), (256, 3, 4)):
        fills = np.array([[np.float32(next(mmf.splitmix(seed + 1000003 * b + s)) >> 40) * np.float32(1.0 / 16777216.0) for s in range(samples)]
                          for b in range(n)], np.float32)
        entry = {"step": step, "samples": samples, "seed": seed, "fills": fills.tolist(), "scores": {}, "effects": {}}
        for name, k in SETS.items():
            calls = [0]

            def perturb(arr, indices, **_):
                s = calls[0] % samples
                calls[0] += 1
                out = arr.copy()
                for b in range(arr.shape[0]):
                    out[b, indices[b]] = fills[b, s]
                return out
            metric = quantus.MonotonicityCorrelation(nr_samples=samples, features_in_step=step, perturb_func=perturb, disable_warnings=True)
            entry["scores"][name] = [float(v) for v in metric(model=fill_model, x_batch=np.ones((n, 1, h, w), np.float32), y_batch=targets,
                                                              a_batch=maps[k][:, None], s_batch=None, channel_first=True, device="cpu")]
            assert calls[0] == h * w // step * samples, f"Quantus filled {calls[0]} copies"
            entry["effects"][name] = [monotonicity_correlation_effects(session, x[b], maps[k][b], step, targets[b], fills[b]).tolist() for b in range(n)]
        manifest["monotonicity_correlation"].append(entry)

    masks = np.load(os.path.join(ROOT, "Tests", "Fixtures", "metrics", "masks.npy"))
    manifest["map_free"] = {"roc_auc": {}, "top_k_intersection": {}, "effective_complexity": {}}
    for name, k in dict(SETS, tied=1).items():
        a = maps[k][:, None]
        s = masks[:, None]
        manifest["map_free"]["roc_auc"][name] = [float(v) for v in quantus.AUC(abs=False, normalise=False, disable_warnings=True)(
            model=None, x_batch=x, y_batch=targets, a_batch=a, s_batch=s)]
        if name != "tied":
            manifest["map_free"]["top_k_intersection"][name] = {str(kk): [float(v) for v in quantus.TopKIntersection(
                k=kk, abs=False, normalise=False, disable_warnings=True)(model=None, x_batch=x, y_batch=targets, a_batch=a, s_batch=s)] for kk in (100, 333)}
        scaled = np.abs(a) / np.abs(a).reshape(n, -1).max(axis=1)[:, None, None, None]
        manifest["map_free"]["effective_complexity"][name] = {str(eps): [float(v) for v in quantus.EffectiveComplexity(
            eps=eps, abs=True, normalise=False, disable_warnings=True)(model=None, x_batch=x, y_batch=targets, a_batch=scaled, s_batch=None)]
            for eps in (1e-5, 0.3)}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps({"irof": manifest["irof"], "faithfulness_estimate": manifest["faithfulness_estimate"],
                      "monotonicity": [e["scores"] for e in manifest["monotonicity"]],
                      "quantus_monotonicity": [e["quantus_monotonicity"] for e in manifest["monotonicity"]]}, indent=1))


if __name__ == "__main__":
    main()
