#!/usr/bin/env python3
"""Reference attributions for the method tests, from Captum and pytorch-grad-cam.

For two fixture models of Tools/make_fixtures.py (same input, same targets), writes into
Tests/Fixtures/methods/<model>/:
  saliency.npy      captum Saliency(abs=True)                       [2, 3, H, W]
  inputxgrad.npy    captum InputXGradient                           [2, 3, H, W]
  ig_<rule>.npy     captum IntegratedGradients, 16 steps, baseline 0, for every rule
  ig_delta_<rule>   captum's convergence delta per image (in manifest.json)
  layergradcam.npy  captum LayerGradCam at the CAM layer (relu_attributions=False) [2, 1, h, w]
  <m>.npy           pytorch-grad-cam GradCAM / XGradCAM / LayerCAM / GradCAMPlusPlus at the same layer, before
                    resizing and min-max scaling: max(get_cam_image(...), 0)      [2, h, w]
Run after make_fixtures.py:  python3 Tools/make_method_fixtures.py
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
from captum.attr import InputXGradient, IntegratedGradients, LayerGradCam, Saliency
import pytorch_grad_cam
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "methods")
# model -> (CAM layer module, its ONNX value name is looked up in the exported model)
CASES = {"small_resnet": "layer2", "mobile_block": "head"}
RULES = {"left": "riemann_left", "right": "riemann_right", "middle": "riemann_middle",
         "trapezoid": "riemann_trapezoid", "gausslegendre": "gausslegendre"}


def main():
    manifest = {"script": "Tools/make_method_fixtures.py", "torch": torch.__version__, "captum": captum.__version__,
                "grad-cam": importlib.metadata.version("grad-cam"), "ig_steps": 16, "models": {}}
    names = list(mf.MODELS)
    for name, layer_name in CASES.items():
        i = names.index(name)
        cls, (h, w), _, _ = mf.MODELS[name]
        torch.manual_seed(100 + i)
        model = cls().eval()
        mf.randomize(model, 200 + i)
        x = torch.from_numpy(np.load(os.path.join(mf.OUT, name, "input.npy")))
        target = np.load(os.path.join(mf.OUT, name, "target.npy")).tolist()
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        t = torch.tensor(target)
        np.save(os.path.join(folder, "saliency.npy"), Saliency(model).attribute(x, target=t, abs=True).detach().numpy())
        np.save(os.path.join(folder, "inputxgrad.npy"), InputXGradient(model).attribute(x, target=t).detach().numpy())
        deltas = {}
        for rule, method in RULES.items():
            attr, delta = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=16,
                                                               method=method, return_convergence_delta=True)
            np.save(os.path.join(folder, f"ig_{rule}.npy"), attr.detach().numpy())
            deltas[rule] = delta.detach().abs().tolist()
        # SmoothGrad over Saliency with a saved noise tensor, computed directly (mean of signed
        # gradients at x + sigma * z, sigma = 0.15 * (max - min) of each image).
        samples = 6
        noise = np.random.default_rng(400 + i).standard_normal((2, samples) + tuple(x.shape[1:])).astype(np.float32)
        np.save(os.path.join(folder, "smoothgrad_noise.npy"), noise)
        grads = []
        for b in range(2):
            sigma = 0.15 * float(x[b].max() - x[b].min())
            xs = (x[b:b + 1] + sigma * torch.from_numpy(noise[b])).requires_grad_(True)
            out = model(xs)
            g, = torch.autograd.grad(out[:, target[b]].sum(), xs)
            grads.append(g.mean(0).detach().numpy())
        np.save(os.path.join(folder, "smoothgrad.npy"), np.stack(grads))
        layer = dict(model.named_modules())[layer_name]
        np.save(os.path.join(folder, "layergradcam.npy"),
                LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=False).detach().numpy())
        for cam_name, cam_cls in [("gradcam", GradCAM), ("xgradcam", XGradCAM), ("layercam", LayerCAM),
                                  ("gradcampp", GradCAMPlusPlus)]:
            cam = cam_cls(model=model, target_layers=[layer])
            targets = [ClassifierOutputTarget(c) for c in target]
            outputs = cam.activations_and_grads(x)
            model.zero_grad()
            sum(tg(o) for tg, o in zip(targets, outputs)).backward(retain_graph=True)
            acts = cam.activations_and_grads.activations[0].cpu().numpy()
            grads = cam.activations_and_grads.gradients[0].cpu().numpy()
            raw = cam.get_cam_image(x, layer, targets, acts, grads, False)
            np.save(os.path.join(folder, f"{cam_name}.npy"), np.maximum(raw, 0).astype(np.float32))
            cam.activations_and_grads.release()
        # ScoreCAM: no gradients; one forward per channel of the layer.
        cam = ScoreCAM(model=model, target_layers=[layer])
        cam.batch_size = 7
        targets = [ClassifierOutputTarget(c) for c in target]
        with torch.no_grad():
            cam.activations_and_grads(x)
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        raw = cam.get_cam_image(x, layer, targets, acts, None, False)
        np.save(os.path.join(folder, "scorecam.npy"), np.maximum(raw, 0).astype(np.float32))
        cam.activations_and_grads.release()
        manifest["models"][name] = {"layer_module": layer_name, "ig_delta": deltas}
        print(name, "done")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
