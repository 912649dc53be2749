#!/usr/bin/env python3
"""Reference fixtures for today's architectures (issue: ViT, Swin, ConvNeXt, ShuffleNet).

Small instances of torchvision's own building blocks with seeded weights, each exported twice:
with the default (dynamo) exporter and with the TorchScript one (`dynamo=False`), the latter at opset 17
and at opset 16 (before LayerNormalization: the norm spelled out in ReduceMean, Sub, Pow, Sqrt, Div). Next to each
model, as .npy (the same layout as Tools/make_fixtures.py):
  input.npy        float32 [2, 3, H, W] seeded random input
  logits.npy       onnxruntime logits for that input
  target.npy       int64 [2] the logit each sample's gradient is taken of
  grad_input.npy   PyTorch d(sum_b logits[b, target[b]]) / d input
and, for the ViT (the same maps for both exports of it):
  gradcam.npy      pytorch-grad-cam's GradCAM at the last block's first LayerNorm (`ln_1`) with the
                   usual ViT reshape_transform (class token dropped, 4x4 grid), before resizing and
                   min-max scaling: max(get_cam_image(...), 0)                        [2, 4, 4]
  rollout.npy      attention rollout (Abnar & Zuidema 2020) as jacobgil/vit-explain computes it:
                   heads averaged, (A + I) / 2 renormalised per row, multiplied from the first
                   block to the last; the class token's row over the patches           [2, 4, 4]
  gradrollout.npy  Chefer, Gur & Wolf (ICCV 2021), "Generic Attention-model Explainability", for
                   ViT: R = I; per block R += mean_heads(relu(dA * A)) @ R with dA the gradient
                   of the target logit; the class token's row over the patches        [2, 4, 4]
The attention probabilities come from each block's MultiheadAttention computed explicitly with its
own weights (checked to give the same logits).
An export the exporter itself refuses is recorded in manifest.json with its error and no folder.
Run:  python3 Tools/make_architecture_fixtures.py   (writes Tests/Fixtures/architectures/);
CI never needs Python.
"""
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from torchvision.models import convnext, shufflenetv2, swin_transformer, vision_transformer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "architectures")


def tiny_vit():
    """torchvision's VisionTransformer: class token, 2 blocks of 4 heads, 32x32 input in 8x8 patches."""
    return vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                hidden_dim=32, mlp_dim=64, num_classes=10)


def tiny_convnext():
    """torchvision's ConvNeXt: stem, one CNBlock (depthwise 7x7, LayerNorm over channels, GELU MLP,
    layer scale), a downsampling LayerNorm2d + conv, one more block, the LayerNorm2d head."""
    setting = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(setting, stochastic_depth_prob=0.0, layer_scale=0.5, num_classes=10)


def tiny_shufflenet():
    """torchvision's ShuffleNetV2 with torchvision's odd-half widths (58 = 116 / 2 in the real model):
    two units per stage so that stride-1 units chunk their input into two branches (shape arithmetic
    with an integer division in the TorchScript export), the channel shuffle a
    reshape-transpose-reshape."""
    return shufflenetv2.ShuffleNetV2([2, 2, 1], [8, 58, 58, 58, 32], num_classes=10)


def tiny_swin():
    """torchvision's SwinTransformer: a stage of 2 blocks (the second shifted), 2 heads, 4x4 windows
    over 8x8 tokens, the relative position bias and the shifted-window attention mask; then patch
    merging (strided slices x[:, 0::2, 1::2]) and a second stage of one block over 4x4 tokens."""
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 1], num_heads=[2, 2], window_size=[4, 4],
                                            stochastic_depth_prob=0.0, num_classes=10)


# name -> (constructor, input size)
MODELS = {
    "vit": (tiny_vit, (32, 32)),
    "convnext": (tiny_convnext, (32, 32)),
    "shufflenet": (tiny_shufflenet, (32, 32)),
    "swin": (tiny_swin, (32, 32)),
}
# TorchScript below opset 17 spells LayerNormalization out in arithmetic (the rewrite fuses it back).
EXPORTERS = {"dynamo": 20, "torchscript": 17, "torchscript16": 16}


def vit_references(model, x, target):
    """Grad-CAM at the last block's ln_1, attention rollout and Chefer et al.'s gradient rollout."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    grid = int(round((model.seq_length - 1) ** 0.5))

    def reshape_transform(t):
        return t[:, 1:, :].reshape(t.size(0), grid, grid, t.size(2)).permute(0, 3, 1, 2)

    layer = model.encoder.layers[-1].ln_1
    cam = GradCAM(model=model, target_layers=[layer], reshape_transform=reshape_transform)
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    outputs = cam.activations_and_grads(x)
    model.zero_grad()
    sum(tg(o) for tg, o in zip(targets, outputs)).backward(retain_graph=True)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    grads = cam.activations_and_grads.gradients[0].cpu().numpy()
    gradcam = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads, False), 0).astype(np.float32)
    cam.activations_and_grads.release()

    # Per-head attention probabilities of every block, kept with their gradients: each block's
    # MultiheadAttention computed explicitly (its own weights, the same product), as the rollout
    # authors' code reads the attention of each block.
    attentions = []
    originals = []
    for block in model.encoder.layers:
        mha = block.self_attention
        originals.append(mha.forward)

        def forward(query, key, value, need_weights=False, mha=mha, **kw):
            n, t, c = query.shape
            heads = mha.num_heads
            q, k, v = torch.nn.functional.linear(query, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
            split = lambda z: z.reshape(n, t, heads, c // heads).transpose(1, 2)
            q, k, v = split(q), split(k), split(v)
            a = torch.softmax(q @ k.transpose(-2, -1) / (c // heads) ** 0.5, dim=-1)
            a.retain_grad()
            attentions.append(a)
            out = (a @ v).transpose(1, 2).reshape(n, t, c)
            return mha.out_proj(out), None
        mha.forward = forward
    out = model(x)
    for block, original in zip(model.encoder.layers, originals):
        block.self_attention.forward = original
    reference = model(x)
    assert float((out - reference).detach().abs().max()) < 1e-4, "the explicit attention differs from MultiheadAttention"
    out[torch.arange(x.shape[0]), torch.from_numpy(target)].sum().backward()
    n, t = x.shape[0], attentions[0].shape[-1]
    eye = torch.eye(t).expand(n, t, t)
    with torch.no_grad():
        rollout = eye.clone()
        for a in attentions:
            fused = (a.mean(dim=1) + eye) / 2
            fused = fused / fused.sum(dim=-1, keepdim=True)
            rollout = torch.bmm(fused, rollout)
        chefer = eye.clone()
        for a in attentions:
            weighted = (a.grad * a).clamp(min=0).mean(dim=1)
            chefer = chefer + torch.bmm(weighted, chefer)
    as_grid = lambda r: r[:, 0, 1:].reshape(n, grid, grid).numpy().astype(np.float32)
    return {"gradcam": gradcam, "rollout": as_grid(rollout), "gradrollout": as_grid(chefer)}


def randomize(model, seed):
    """Seeded weights with unit-scale activations, and non-trivial norms and biases everywhere."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            elif "weight" in name or "gamma" in name or "layer_scale" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def export(model, x, path, exporter):
    opset = EXPORTERS[exporter]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=False)
        else:
            torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)


def rebuilt(name):
    """A fixture's model, input and targets from main's seeds, for scripts that add references to
    its folders; checked against the committed input and logits of every export of it."""
    i = list(MODELS).index(name)
    make, (h, w) = MODELS[name]
    torch.manual_seed(100 + i)
    model = make().eval()
    randomize(model, 200 + i)
    x = torch.from_numpy(np.random.default_rng(300 + i).uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
    target = np.array([1, 3], dtype=np.int64)
    for export in EXPORTERS:
        folder = os.path.join(OUT, f"{name}_{export}")
        if os.path.isdir(folder):
            assert np.array_equal(np.load(os.path.join(folder, "input.npy")), x.numpy()), folder
            logits = np.load(os.path.join(folder, "logits.npy"))
            with torch.no_grad():
                assert np.abs(model(x).numpy() - logits).max() < 1e-4, f"{folder}: the rebuilt model differs"
    return model, x, target


def save_references(name, maps, summary):
    """Writes each reference map of `maps` into every export folder of the fixture `name` (the
    references of later scripts), printing `summary(map)` for each."""
    for export in EXPORTERS:
        folder = os.path.join(OUT, f"{name}_{export}")
        if not os.path.isdir(folder):
            continue
        for method, value in maps.items():
            np.save(os.path.join(folder, f"{method}.npy"), value)
            print(f"{name}_{export}/{method}.npy: {summary(value)}")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = {"script": "Tools/make_architecture_fixtures.py", "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "models": {}, "refused": {}}
    for name, (_, (h, w)) in MODELS.items():
        model, x, target = rebuilt(name)  # no folder yet: nothing to check against
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        grad = torch.autograd.grad(out[torch.arange(2), torch.from_numpy(target)].sum(), xg)[0]
        references = vit_references(model, x, target) if name == "vit" else {}
        for exporter, opset in EXPORTERS.items():
            if exporter == "torchscript16" and name == "shufflenet":
                continue  # no LayerNorm: the same graph as at opset 17
            key = f"{name}_{exporter}"
            folder = os.path.join(OUT, key)
            os.makedirs(folder)
            path = os.path.join(folder, "model.onnx")
            try:
                export(model, x, path, exporter)
                onnx_model = onnx.load(path)
                onnx.checker.check_model(onnx_model)
                logits = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
            except Exception as e:  # the exporter (or onnxruntime) refuses this architecture
                shutil.rmtree(folder)
                manifest["refused"][key] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                print(f"{key}: refused: {manifest['refused'][key]}")
                continue
            np.save(os.path.join(folder, "input.npy"), x.numpy())
            np.save(os.path.join(folder, "logits.npy"), logits.astype(np.float32))
            np.save(os.path.join(folder, "target.npy"), target)
            np.save(os.path.join(folder, "grad_input.npy"), grad.numpy().astype(np.float32))
            for ref, value in references.items():
                np.save(os.path.join(folder, f"{ref}.npy"), value)
            rel = float(np.linalg.norm(logits - out.detach().numpy()) / np.linalg.norm(out.detach().numpy()))
            ops = sorted({n.op_type for n in onnx_model.graph.node})
            manifest["models"][key] = {"exporter": exporter, "opset": opset, "input": [2, 3, h, w],
                                       "ort_vs_torch_rel_l2": rel, "ops": ops,
                                       "bytes": os.path.getsize(path)}
            print(f"{key}: opset {opset}, {os.path.getsize(path)} bytes, ort vs torch {rel:.2e}, ops {ops}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
