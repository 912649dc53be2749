#!/usr/bin/env python3
"""Reference maps for pytorch-grad-cam's newer CAMs: GradCAMElementWise, FEM, KPCA_CAM, FinerCAM and ShapleyCAM, from
pytorch-grad-cam 1.5.7 itself, on the two method-fixture models of Tools/make_fixtures.py with the
inputs, targets and CAM layers of Tools/make_propagation_fixtures.py.

Each is the method's `get_cam_image` on pytorch-grad-cam's own activations and gradients at the
layer (one forward and one backward of the targets' logits, as its BaseCAM runs them), before the
ReLU, resizing and scaling its `__call__` adds:

  gradcamelementwise.npy  GradCAMElementWise: sum over channels of max(grads * activations, 0)  [2, h, w]
  fem.npy                 FEM (k = 2)                                                           [2, h, w]
  fem_k1.npy              FEM (k = 1)                                                           [2, h, w]
  kpcacam.npy             KPCA_CAM (kernel sigmoid, gamma None: scikit-learn's 1 / channels)    [2, h, w]
  kpcacam_rbf.npy         KPCA_CAM (kernel rbf, gamma 0.05)                                     [2, h, w]
  kpcacam_poly.npy        KPCA_CAM (kernel poly, gamma None)                                    [2, h, w]
  kpcacam_cosine.npy      KPCA_CAM (kernel cosine)                                              [2, h, w]
  finercam.npy            FinerCAM (base GradCAM, alpha 1, comparison places 1, 2, 3) for each image's
                          target as `target_idx`: the GradCAM map of its FinerWeightedTarget, with
                          the compared classes chosen as FinerCAM.forward chooses them, max(., 0)  [2, h, w]
  finercam_alpha05.npy    the same with alpha 0.5                                                [2, h, w]
  finercam_maps.npy       FinerCAM(...)(image, target_idx=target) as it returns it, image by image:
                          ReLU, resized to the input, min-max scaled                            [2, H, W]
  shapleycam_rest.npy     ShapleyCAM with ClassifierOutputReST targets (the logit minus the cross-
                          entropy): the mean of gradient - Hessian-vector product / 2 weighing
                          each channel, before the ReLU                                         [2, h, w]
  shapleycam_probability.npy  the same with ClassifierOutputSoftmaxTarget                       [2, h, w]
  shapleycam_logit.npy    the same with ClassifierOutputTarget (no curvature: Grad-CAM's map)   [2, h, w]
  shapleycam_maps.npy     ShapleyCAM(...)(images, targets=ReST) as it returns it                [2, H, W]
  shapleycam_rest_layer1.npy, shapleycam_probability_layer1.npy   small_resnet only: the same at
                          layer1, whose path to the logits runs through layer2's convolutions and
                          rectifiers (piecewise linear, not affine)                             [2, h, w]

pytorch-grad-cam's KernelPCA runs in float32 (the activations' type), xai's in float64.
Run after make_fixtures.py, with grad-cam and scikit-learn (requirements-fixtures.txt):
    python3 Tools/make_cam_variant_fixtures.py
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import sklearn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_propagation_fixtures as mpf  # noqa: E402  (the fixture models, inputs, targets and layers)

import torch  # noqa: E402
from pytorch_grad_cam import FEM, KPCA_CAM, FinerCAM, GradCAM, GradCAMElementWise, ShapleyCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (ClassifierOutputReST, ClassifierOutputSoftmaxTarget,  # noqa: E402
                                                  ClassifierOutputTarget, FinerWeightedTarget)


def finer_raw(model, layer, x, target, alpha):
    """FinerCAM's GradCAM map at the layer before ReLU and resizing, per image with target_idx = its
    target: the compared classes picked as FinerCAM.forward picks them (places 1, 2, 3 of the classes
    sorted by |logit - the target's logit|), its FinerWeightedTarget differentiated."""
    cam = GradCAM(model=model, target_layers=[layer])
    outputs = cam.activations_and_grads(x)
    data = outputs.detach().numpy()
    targets = []
    for b, c in enumerate(target):
        order = np.argsort(np.abs(data[b] - data[b, c]))
        targets.append(FinerWeightedTarget(int(order[0]), [int(order[i]) for i in (1, 2, 3)], alpha))
        assert int(order[0]) == c
    model.zero_grad()
    sum(t(o) for t, o in zip(targets, outputs)).backward()
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    grads = cam.activations_and_grads.gradients[0].cpu().numpy()
    raw = cam.get_cam_image(x, layer, targets, acts, grads, False)
    cam.activations_and_grads.release()
    return np.maximum(raw, 0).astype(np.float32)


def shapley_raw(model, layer, x, targets):
    """ShapleyCAM's map at the layer before ReLU and resizing: its forward's gradient with the graph
    kept (create_graph, as its BaseCAM runs it for detach=False), then its own get_cam_image, whose
    weights take the Hessian-vector product of that gradient along the activations."""
    cam = ShapleyCAM(model=model, target_layers=[layer])
    x = x.clone().requires_grad_(True)
    outputs = cam.activations_and_grads(x)
    loss = sum(t(o) for t, o in zip(targets, outputs))
    torch.autograd.grad(loss, x, retain_graph=True, create_graph=True)
    acts = cam.activations_and_grads.activations[0]
    grads = cam.activations_and_grads.gradients[0]
    raw = np.asarray(cam.get_cam_image(x, layer, targets, acts, grads, False), dtype=np.float32)
    cam.activations_and_grads.release()
    return raw


def main():
    manifest = {"script": "Tools/make_cam_variant_fixtures.py", "grad-cam": importlib.metadata.version("grad-cam"),
                "scikit-learn": sklearn.__version__, "models": {}}
    for name, layer_name in mpf.CASES.items():
        _, model, x, target, folder = mpf.fixture_model(name)
        layer = dict(model.named_modules())[layer_name]
        targets = [ClassifierOutputTarget(c) for c in target]
        cams = {"gradcamelementwise": GradCAMElementWise(model=model, target_layers=[layer]),
                "fem": FEM(model=model, target_layers=[layer]),
                "fem_k1": FEM(model=model, target_layers=[layer], k=1),
                "kpcacam": KPCA_CAM(model=model, target_layers=[layer]),
                "kpcacam_rbf": KPCA_CAM(model=model, target_layers=[layer], kernel="rbf", gamma=0.05),
                "kpcacam_poly": KPCA_CAM(model=model, target_layers=[layer], kernel="poly"),
                "kpcacam_cosine": KPCA_CAM(model=model, target_layers=[layer], kernel="cosine")}
        shapes = {}
        for key, cam in cams.items():
            # scikit-learn's ARPACK path (over 200 positions) starts from numpy's global stream: seeded, the fixture is repeatable.
            np.random.seed(0)
            outputs = cam.activations_and_grads(x)
            model.zero_grad()
            sum(t(o) for t, o in zip(targets, outputs)).backward()
            acts = cam.activations_and_grads.activations[0].cpu().numpy()
            grads = cam.activations_and_grads.gradients[0].cpu().numpy() if cam.activations_and_grads.gradients else None
            raw = np.asarray(cam.get_cam_image(x, layer, targets, acts, grads, False), dtype=np.float32)
            cam.activations_and_grads.release()
            np.save(os.path.join(folder, f"{key}.npy"), raw)
            shapes[key] = list(raw.shape)
        np.save(os.path.join(folder, "finercam.npy"), finer_raw(model, layer, x, target, 1.0))
        np.save(os.path.join(folder, "finercam_alpha05.npy"), finer_raw(model, layer, x, target, 0.5))
        finer = FinerCAM(model=model, target_layers=[layer])
        np.save(os.path.join(folder, "finercam_maps.npy"),
                np.concatenate([finer(x[b:b + 1], target_idx=int(c)) for b, c in enumerate(target)]).astype(np.float32))
        for score, make in (("rest", ClassifierOutputReST), ("probability", ClassifierOutputSoftmaxTarget), ("logit", ClassifierOutputTarget)):
            np.save(os.path.join(folder, f"shapleycam_{score}.npy"), shapley_raw(model, layer, x, [make(c) for c in target]))
        if name == "small_resnet":
            early = dict(model.named_modules())["layer1"]
            for score, make in (("rest", ClassifierOutputReST), ("probability", ClassifierOutputSoftmaxTarget)):
                np.save(os.path.join(folder, f"shapleycam_{score}_layer1.npy"), shapley_raw(model, early, x, [make(c) for c in target]))
        shapley = ShapleyCAM(model=model, target_layers=[layer])
        np.save(os.path.join(folder, "shapleycam_maps.npy"),
                shapley(x.clone(), targets=[ClassifierOutputReST(c) for c in target]).astype(np.float32))
        manifest["models"][name] = {"layer_module": layer_name, "targets": target, "shapes": shapes}
        print(name, shapes)
    with open(os.path.join(mpf.OUT, "cam_variants.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
