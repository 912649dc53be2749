#!/usr/bin/env python3
"""Reference maps for pytorch-grad-cam's newer CAMs: GradCAMElementWise, FEM and KPCA_CAM, from
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

from pytorch_grad_cam import FEM, KPCA_CAM, GradCAMElementWise  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


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
            outputs = cam.activations_and_grads(x)
            model.zero_grad()
            sum(t(o) for t, o in zip(targets, outputs)).backward()
            acts = cam.activations_and_grads.activations[0].cpu().numpy()
            grads = cam.activations_and_grads.gradients[0].cpu().numpy() if cam.activations_and_grads.gradients else None
            raw = np.asarray(cam.get_cam_image(x, layer, targets, acts, grads, False), dtype=np.float32)
            cam.activations_and_grads.release()
            np.save(os.path.join(folder, f"{key}.npy"), raw)
            shapes[key] = list(raw.shape)
        manifest["models"][name] = {"layer_module": layer_name, "targets": target, "shapes": shapes}
        print(name, shapes)
    with open(os.path.join(mpf.OUT, "cam_variants.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
