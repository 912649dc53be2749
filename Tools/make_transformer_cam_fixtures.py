#!/usr/bin/env python3
"""pytorch-grad-cam's AblationCAM on the architecture fixtures' ViT (tokens) and Swin (channels
last), the same seeded models, inputs and targets as Tools/make_architecture_fixtures.py (rebuilt
here and checked against the committed logits).

Writes into Tests/Fixtures/architectures/<model>_<exporter>/ (every export of the model):
  ablationcam.npy       pytorch-grad-cam 1.5.7 AblationCAM with its AblationLayerVit (a channel
                        ablated at every position, the class token included) at the default CAM
                        layer (ViT: the last block's ln_1; Swin: the last block's norm1), the usual
                        reshape_transform (ViT: class token dropped, 4x4 grid; Swin: channels
                        first), batch_size 1 (its layer takes the minimum of the whole batch of
                        copies after ablating the earlier ones in place, so with more than one
                        copy a batch the later ones are ablated further down: min - 2e7, min -
                        3e7, ...), before resizing and clipping: get_cam_image(...)       [2, 4, 4]
  ablationcam_zero.npy  the same with every channel ablated to 0 (the paper's ablation; the
                        layer's subclass below), where pytorch-grad-cam's rule takes the layer's
                        minimum minus 1e7 since a LayerNorm's output is not >= 0          [2, 4, 4]
  <cam>.npy             pytorch-grad-cam's XGradCAM, LayerCAM, HiResCAM, ScoreCAM, GradCAMElementWise,
                        FEM and KPCA_CAM
                        (and for Swin GradCAM; the ViT's is make_architecture_fixtures.py's) at the
                        same layer with the same reshape_transform, before resizing:
                        max(get_cam_image(...), 0) as they return it                       [2, 4, 4]
                        (not Grad-CAM++: its closed form holds only where the layers after the
                        layer are piecewise linear, and xai refuses it on attention). Swin's
                        XGradCAM runs in float64 (the model and input made double): it divides by
                        each channel's sum, near 0 after a LayerNorm, and its float32 map is
                        2.9e-3 (relative L2) from its float64 one
Run after make_architecture_fixtures.py:  python3 Tools/make_transformer_cam_fixtures.py
"""
import copy
import os
import sys

import numpy as np
import torch
from pytorch_grad_cam import FEM, KPCA_CAM, AblationCAM, GradCAM, GradCAMElementWise, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.ablation_layer import AblationLayerVit
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_architecture_fixtures as maf  # noqa: E402


class ZeroAblationVit(AblationLayerVit):
    """AblationLayerVit's copies with each copy's channel set to 0 whatever the layer's minimum."""

    def __call__(self, x):
        last = self.activations.dim() - 1
        channels_first = self.activations.transpose(1, last)
        for i in range(channels_first.size(0)):
            channels_first[i, self.indices[i], :] = 0
        return channels_first.transpose(last, 1)


def vit_layer(model):
    grid = int(round((model.seq_length - 1) ** 0.5))
    return model.encoder.layers[-1].ln_1, lambda t: t[:, 1:, :].reshape(t.size(0), grid, grid, t.size(2)).permute(0, 3, 1, 2)


def swin_layer(model):
    return model.features[-1][-1].norm1, lambda t: t.permute(0, 3, 1, 2)


def ablation_cam(model, layer, reshape, x, target, ablation):
    cam = AblationCAM(model=model, target_layers=[layer], reshape_transform=reshape, ablation_layer=ablation, batch_size=1)
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    cam.activations_and_grads(x)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    raw = cam.get_cam_image(x, layer, targets, acts, None, False)
    cam.activations_and_grads.release()
    return raw.astype(np.float32)


def gradient_cams(model, layer, reshape, x, target, kinds):
    """Each CAM's map from one forward and backward: the layer's (reshaped) activations and the
    gradient of the summed target logits, as pytorch-grad-cam computes them."""
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    maps = {}
    for name, kind in kinds.items():
        cam = kind(model=model, target_layers=[layer], reshape_transform=reshape)
        outputs = cam.activations_and_grads(x)
        model.zero_grad()
        if cam.uses_gradients:
            sum(tg(o) for tg, o in zip(targets, outputs)).backward(retain_graph=True)
            grads = cam.activations_and_grads.gradients[0].cpu().numpy()
        else:
            grads = None
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        maps[name] = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads, False), 0).astype(np.float32)
        cam.activations_and_grads.release()
    return maps


def main():
    for name, place in [("vit", vit_layer), ("swin", swin_layer)]:
        model, x, target = maf.rebuilt(name)
        layer, reshape = place(model)
        maps = {"ablationcam": ablation_cam(model, layer, reshape, x, target, AblationLayerVit()),
                "ablationcam_zero": ablation_cam(model, layer, reshape, x, target, ZeroAblationVit())}
        kinds = {"xgradcam": XGradCAM, "layercam": LayerCAM, "hirescam": HiResCAM, "scorecam": ScoreCAM,
                 "gradcamelementwise": GradCAMElementWise, "fem": FEM, "kpcacam": KPCA_CAM}
        if name == "swin":
            kinds["gradcam"] = GradCAM
        maps.update(gradient_cams(model, layer, reshape, x, target, kinds))
        if name == "swin":
            exact = copy.deepcopy(model).double()
            layer64, reshape64 = place(exact)
            torch.set_default_dtype(torch.float64)
            maps["xgradcam"] = gradient_cams(exact, layer64, reshape64, x.double(), target, {"xgradcam": XGradCAM})["xgradcam"].astype(np.float32)
            torch.set_default_dtype(torch.float32)
        maf.save_references(name, maps, lambda value: f"{value.shape}, max per image {value.reshape(2, -1).max(1)}")


if __name__ == "__main__":
    sys.exit(main())
