#!/usr/bin/env python3
"""Reference values for ROAD (Rong et al., ICML 2022, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods"), from pytorch-grad-cam's own implementation
(`pytorch_grad_cam.metrics.road`: `NoisyLinearImputer`, `ROADMostRelevantFirst`,
`ROADLeastRelevantFirst`, their averages over percentiles and `ROADCombined`).

What pytorch-grad-cam does, and how this script pins it:
- At percentile p, MoRF keeps the pixels whose map is below the map's p-th percentile
  (`np.percentile`, linear) and imputes the others; LeRF does the same on `1 - map`. The imputed
  pixels solve the ROAD authors' linear system (each is the weighted mean of its 8 neighbours:
  1/6 across, 1/12 diagonally, known neighbours on the right-hand side; scipy's `spsolve`), plus
  `noise * randn` (noise 0.01). The score is the target's score on the imputed image minus the
  score on the image; each order averages over the percentiles, and `ROADCombined` returns
  (LeRF - MoRF) / 2.
- The noise is drawn from torch's global stream; xai draws its own (seeded) noise. So the
  references here are made with `noise = 0` (the imputer class is swapped for one with noise 0
  before the metrics are built), and xai's test runs with `roadNoise` 0. xai's noise is checked
  on its own in Swift (exactly `Tensor.gaussian` at the removed pixels, nothing elsewhere).
- Ties: pytorch-grad-cam removes every pixel tied at the threshold (a ReLU'd CAM with more than
  p % zeros loses every pixel at percentile p, and the system becomes singular); xai removes
  exactly as many pixels as a tie-free map would lose, ties broken by pixel index. The maps here
  have no ties (checked), so both rules remove the same pixels. They are multiples of 2^-24 in
  [0, 1], so `1 - map` is exact in float32 and ranks the pixels exactly as `-map`.

Inputs: the small_resnet fixture model (its torch twin, checked against onnxruntime) and its two
64x64 images; maps drawn here from numpy's default_rng. Targets: the ONNX model's top-1 classes,
scored as softmax probability (`ClassifierOutputSoftmaxTarget`) and as logit
(`ClassifierOutputTarget`).
Also the confidence metrics of `pytorch_grad_cam.metrics.cam_mult_image` (`DropInConfidence`,
`IncreaseInConfidence`, with `ClassifierOutputSoftmaxTarget`) on the same images, fed each map
scaled as its `scale_cam_image` scales a CAM ((m - min) / (1e-7 + max)), for the two map sets and a
signed one (standard normal): `confidence` in the manifest, with the clean probabilities (xai's
Average Drop is pytorch-grad-cam's drop over them).

And ARCC (`pytorch_grad_cam.metrics.arcc`: its Coherency, Complexity and ARCC with the noiseless
imputer, road_percentiles 20, 40, 60, 80, `ClassifierOutputTarget`) with base_method GradCAM at
small_resnet's layer2 on GradCAM's own maps of the images (`arcc_maps.npy`); `arcc` in the
manifest, with DropInConfidence under `ClassifierOutputSoftmaxTarget` for ADCC (Poppi et al.:
3 / (1 / coherency + 1 / (1 - complexity) + 1 / (1 - drop / Y)), computed here from those parts).

Run with the peer venv (torch, grad-cam 1.5.7, scipy, onnxruntime):
    python Tools/make_road_fixtures.py
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import scipy
import torch
from scipy.ndimage import correlate

import pytorch_grad_cam
from pytorch_grad_cam.metrics import road
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange, DropInConfidence, IncreaseInConfidence
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures as mf  # noqa: E402  (builds the fixture models)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "road")
PERCENTILE_SETS = {"default": [10, 20, 30, 40, 50, 60, 70, 80, 90], "custom": [5, 33, 75]}


def torch_twin():
    """The fixture model small_resnet in torch, as Tools/make_fixtures.py built it."""
    i = list(mf.MODELS).index("small_resnet")
    torch.manual_seed(100 + i)
    model = mf.MODELS["small_resnet"][0]().eval()
    mf.randomize(model, 200 + i)
    return model


class NoiselessImputer(road.NoisyLinearImputer):
    def __init__(self, noise=0.0, weighting=road.neighbors_weights):
        super().__init__(noise=0.0, weighting=weighting)


def tie_free(draw):
    """A map from `draw()`, in multiples of 2^-24 (so 1 - map is exact in float32), drawn again until no two pixels tie."""
    while True:
        q = np.round(draw() * 2.0 ** 24) / 2.0 ** 24
        if len(np.unique(q)) == q.size:
            return q.astype(np.float32)


def smooth_map(rng, h, w):
    s = correlate(rng.standard_normal((h, w)), np.ones((7, 7)) / 49, mode="reflect")
    return (s - s.min()) / (s.max() - s.min())


def main():
    os.makedirs(OUT, exist_ok=True)
    road.NoisyLinearImputer = NoiselessImputer  # read when each ROAD metric is built
    session = ort.InferenceSession(os.path.join(MODEL, "model.onnx"))
    x = np.load(os.path.join(MODEL, "input.npy"))
    n, _, h, w = x.shape
    logits = session.run(None, {"input": x})[0]
    targets = logits.argmax(axis=1)
    model = torch_twin()
    with torch.no_grad():
        twin = model(torch.from_numpy(x)).numpy()
    assert np.abs(twin - logits).max() < 1e-4, "the torch twin does not match the ONNX fixture model"

    rng = np.random.default_rng(2026_12_07)
    uniform = np.stack([tie_free(lambda: rng.random((h, w))) for _ in range(n)])
    smooth = np.stack([tie_free(lambda: smooth_map(rng, h, w)) for _ in range(n)])
    maps = {"uniform": uniform, "smooth": smooth}
    np.save(os.path.join(OUT, "maps.npy"), np.stack([maps["uniform"], maps["smooth"]]))

    manifest = {"script": "Tools/make_road_fixtures.py", "grad_cam": pytorch_grad_cam.__name__ + " 1.5.7", "torch": torch.__version__,
                "scipy": scipy.__version__, "numpy": np.__version__, "model": "models/small_resnet", "targets": targets.tolist(),
                "map_sets": ["uniform", "smooth"], "percentile_sets": PERCENTILE_SETS, "scores": {}}
    tensor = torch.from_numpy(x)
    for score, make_target in [("probability", ClassifierOutputSoftmaxTarget), ("logit", ClassifierOutputTarget)]:
        t = [make_target(int(c)) for c in targets]
        for name, m in maps.items():
            for set_name, percentiles in PERCENTILE_SETS.items():
                morf = road.ROADMostRelevantFirstAverage(percentiles)(tensor, m, t, model)
                lerf = road.ROADLeastRelevantFirstAverage(percentiles)(tensor, m, t, model)
                combined = road.ROADCombined(percentiles)(tensor, m, t, model)
                assert np.allclose(combined, (lerf - morf) / 2, atol=1e-6)
                key = f"{score}/{name}/{set_name}"
                manifest["scores"][key] = {"road_morf": morf.tolist(), "road_lerf": lerf.tolist(), "road": combined.tolist()}
                print(key, manifest["scores"][key])

    # The confidence metrics, on each map scaled as pytorch-grad-cam scales a CAM.
    signed = rng.standard_normal((n, h, w)).astype(np.float32)
    np.save(os.path.join(OUT, "signed.npy"), signed)
    softmax_targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in targets]
    with torch.no_grad():
        clean = torch.softmax(model(tensor), dim=1).numpy()[np.arange(n), targets]
    manifest["confidence"] = {"clean_probability": clean.tolist()}
    for name, m in [("uniform", maps["uniform"]), ("smooth", maps["smooth"]), ("signed", signed)]:
        scaled = np.stack([(c - c.min()) / (np.float32(1e-7) + (c - c.min()).max()) for c in m]).astype(np.float32)
        drop = DropInConfidence()(tensor, scaled, softmax_targets, model)
        increase = IncreaseInConfidence()(tensor, scaled, softmax_targets, model)
        change = CamMultImageConfidenceChange()(tensor, scaled, softmax_targets, model)
        assert np.abs(change).min() > 1e-4, "a change too small to decide increase_in_confidence against the ONNX model"
        manifest["confidence"][name] = {"drop_in_confidence": drop.tolist(), "increase_in_confidence": increase.tolist(), "change": change.tolist()}
        print("confidence", name, manifest["confidence"][name])

    # Classes whose probability rises on the image times the smooth map: Increase in Confidence's 1s.
    scaled = np.stack([(c - c.min()) / (np.float32(1e-7) + (c - c.min()).max()) for c in maps["smooth"]]).astype(np.float32)
    with torch.no_grad():
        after = torch.softmax(model(tensor * torch.from_numpy(scaled)[:, None]), dim=1).numpy()
        before = torch.softmax(model(tensor), dim=1).numpy()
    rising = [int(np.argmax(after[b] - before[b])) for b in range(n)]
    assert all(after[b, c] - before[b, c] > 1e-4 for b, c in enumerate(rising))
    rising_targets = [ClassifierOutputSoftmaxTarget(c) for c in rising]
    manifest["confidence"]["rising"] = {"targets": rising, "clean_probability": before[np.arange(n), rising].tolist(),
                                        "drop_in_confidence": DropInConfidence()(tensor, scaled, rising_targets, model).tolist(),
                                        "increase_in_confidence": IncreaseInConfidence()(tensor, scaled, rising_targets, model).tolist()}
    print("confidence rising", manifest["confidence"]["rising"])

    # ARCC's parts and ADCC, on pytorch-grad-cam's own Grad-CAM maps at layer2.
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity
    logit_targets = [ClassifierOutputTarget(int(c)) for c in targets]
    base = GradCAM(model=model, target_layers=[model.layer2])
    cams = base(input_tensor=tensor, targets=logit_targets).astype(np.float32)
    np.save(os.path.join(OUT, "arcc_maps.npy"), cams)
    coherency = Coherency()(tensor, cams, logit_targets, model, base)
    complexity = Complexity()(cams)
    arcc = ARCC(base, road_percentiles=[20, 40, 60, 80])(tensor, cams, logit_targets, model)
    drop = DropInConfidence()(tensor, cams, softmax_targets, model) / clean
    adcc = 3 / (1 / coherency + 1 / (1 - complexity) + 1 / (1 - drop))
    manifest["arcc"] = {"layer_module": "layer2", "coherency": coherency.tolist(), "complexity": complexity.tolist(), "arcc": arcc.tolist(),
                        "average_drop": drop.tolist(), "adcc": adcc.tolist()}
    print("arcc", manifest["arcc"])

    # The imputed images themselves, image 0 with the smooth map: MoRF at 30 and LeRF at 70.
    imputed = []
    for order, p in [(road.RemoveMostRelevantFirst, 30), (road.RemoveLeastRelevantFirst, 70)]:
        imputed.append(order(p, NoiselessImputer())(torch.from_numpy(x[0]), torch.from_numpy(maps["smooth"][0])).numpy())
    np.save(os.path.join(OUT, "imputed.npy"), np.stack(imputed).astype(np.float32))
    manifest["imputed"] = "image 0, smooth map: [MoRF at 30, LeRF at 70], no noise"
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
