#!/usr/bin/env python3
"""Reference values for relative input, output and representation stability
(Sources/XAIMetrics/RelativeStability.swift), from Quantus 0.6.0 and the paper's definition.

Inputs: the small_resnet fixture model and its two 64x64 images. Quantus runs the torch twin of
the model (checked against onnxruntime) and is fed xai's own noise stream (SplitMix64, the copy
`s` of image `b` seeded `seed + 1000003 b + s`) through its `perturb_func`, with `abs=False,
normalise=False` and its `eps_min` 1e-6. The explanation is a closed form, the same in Swift:
e(x) = tanh(sum_c w_c x_c) [N, 1, H, W], w = stability_weights.npy, as it is ("signed": no zeros,
so the relative change is the plain one) or clipped at zero ("relu": its zeros take Quantus's
epsilon path and dominate the norms). RRS compares the output
of `layer2.relu2` (the last 4-D activation, xai's default layer; its ONNX name is in the manifest).

- quantus: `RelativeInputStability`, `RelativeOutputStability`, `RelativeRepresentationStability`
  (`layer_names=["layer2.relu2"]`) with `return_nan_when_prediction_changes=True`, at Quantus's
  noise [0.02, 0.2] (relu) and at [-0.05, 0.05] (signed): its scores, NaN for an image where a
  copy changes the class.
- reference: the paper's definition in float64 numpy, the copies whose predicted class differs
  from the image's (onnxruntime logits) left out, in those cases and at [-1.5, 1.5] (relu), where
  some copies change the class (their count per image is recorded; Quantus's score is NaN there). NaN is written as null.

Run with quantus==0.6.0, torch, onnxruntime (see requirements-fixtures.txt):
    python Tools/make_quantus_robustness_fixtures.py
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import quantus
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures as mf  # noqa: E402
import make_metric_fixtures as mmf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "quantus_robustness")
LAYER = "layer2.relu2"
EPS = 1e-6


def uniform(seed, count, low, high):
    """XAICore's Tensor.uniform(in: low...high, seed:): SplitMix64, 24 bits per float32."""
    g = mmf.splitmix(seed)
    low, width = np.float32(low), np.float32(high) - np.float32(low)
    return np.array([low + width * (np.float32(next(g) >> 40) * np.float32(1.0 / 16777216.0)) for _ in range(count)], np.float32)


def explanation(x, w, relu):
    """tanh(sum_c w_c x_c) in float32, [N, 1, H, W], clipped at zero with `relu`."""
    e = np.tanh((x * w[None]).sum(axis=1, dtype=np.float32, keepdims=True))
    return (np.maximum(e, np.float32(0)) if relu else e).astype(np.float32)


def relative_norm(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.linalg.norm(((a - b) / np.where(a == 0, EPS, a)).reshape(-1))


def number(v):
    """A float for JSON, null for NaN (a score left undefined)."""
    return None if np.isnan(v) else float(v)


def guarded(d):
    return EPS if d == 0 else d


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(MODEL, "model.onnx")
    session = ort.InferenceSession(path)
    x = np.load(os.path.join(MODEL, "input.npy"))
    n = x.shape[0]
    layer = mf.onnx_value_of_module(onnx.load(path), LAYER)
    rng = np.random.default_rng(41)
    w = rng.standard_normal(x.shape[1:]).astype(np.float32)
    np.save(os.path.join(OUT, "stability_weights.npy"), w)
    model = mmf.torch_twin()
    logits = session.run(None, {"input": x})[0]
    with torch.no_grad():
        assert np.abs(model(torch.from_numpy(x)).numpy() - logits).max() < 1e-4, "the torch twin does not match the ONNX model"
    targets = logits.argmax(axis=1)
    # The layer's activations from onnxruntime: the value made a graph output.
    m = onnx.load(path)
    m.graph.output.append(onnx.helper.make_tensor_value_info(layer, onnx.TensorProto.FLOAT, None))
    probe = ort.InferenceSession(m.SerializeToString())

    def forward(batch):
        out = probe.run(None, {"input": batch})
        return out[0], out[1].reshape(batch.shape[0], -1)

    seed, samples = 11, 30
    manifest = {"script": "Tools/make_quantus_robustness_fixtures.py", "quantus": quantus.__version__, "torch": torch.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "model": "models/small_resnet", "layer": layer, "module": LAYER,
                "explanation": "tanh(sum_c w_c x_c), w = stability_weights.npy, clipped at zero where relu", "seed": seed, "samples": samples,
                "targets": targets.tolist(), "cases": []}
    h_x, l_x = forward(x)
    for low, high, relu in [(0.02, 0.2, True), (-0.05, 0.05, False), (-1.5, 1.5, True)]:
        clean = explanation(x, w, relu)
        noise = np.stack([np.stack([uniform(seed + 1000003 * b + s, x[0].size, low, high).reshape(x.shape[1:]) for b in range(n)])
                          for s in range(samples)])  # [samples, N, C, H, W]
        case = {"noise": [low, high], "relu": relu, "noise_first_values": noise[0, 0].reshape(-1)[:4].tolist()}
        # The definition, the copies that change the class left out.
        ref = {"ris": [], "ros": [], "rrs": [], "changed": []}
        for b in range(n):
            copies = (x[b][None] + noise[:, b]).astype(np.float32)
            h, l = forward(copies)
            keep = h.argmax(axis=1) == h_x[b].argmax()
            e = explanation(copies, w, relu)
            change = np.array([relative_norm(clean[b], e[s]) for s in range(samples)])
            ris = change / np.array([guarded(relative_norm(x[b], copies[s])) for s in range(samples)])
            ros = change / np.array([guarded(np.linalg.norm(h_x[b].astype(np.float64) - h[s].astype(np.float64))) for s in range(samples)])
            rrs = change / np.array([guarded(relative_norm(l_x[b], l[s])) for s in range(samples)])
            ref["changed"].append(int((~keep).sum()))
            for key, v in (("ris", ris), ("ros", ros), ("rrs", rrs)):
                ref[key].append(float(v[keep].max()) if keep.any() else None)
        case["reference"] = ref

        def quantus_scores(metric_class, **kwargs):
            calls = [0]

            def perturb(arr, indices, **_):
                s = calls[0]
                calls[0] += 1
                return arr + noise[s].reshape(arr.shape)

            metric = metric_class(nr_samples=samples, perturb_func=perturb, return_nan_when_prediction_changes=True,
                                  disable_warnings=True, **kwargs)
            scores = metric(model=model, x_batch=x, y_batch=targets, a_batch=clean, channel_first=True, device="cpu",
                            explain_func=lambda model, inputs, targets, **_: explanation(np.asarray(inputs), w, relu))
            assert calls[0] == samples, f"Quantus drew {calls[0]} perturbations"
            return [number(v) for v in scores]
        case["quantus"] = {"ris": quantus_scores(quantus.RelativeInputStability),
                           "ros": quantus_scores(quantus.RelativeOutputStability),
                           "rrs": quantus_scores(quantus.RelativeRepresentationStability, layer_names=[LAYER])}
        manifest["cases"].append(case)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, allow_nan=False)
    print(json.dumps(manifest["cases"], indent=1))


if __name__ == "__main__":
    main()
