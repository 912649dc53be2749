#!/usr/bin/env python3
"""Reference fixtures for today's architectures (issue: ViT, Swin, ConvNeXt, ShuffleNet).

Small instances of torchvision's own building blocks with seeded weights, each exported twice:
with the default (dynamo) exporter and with the TorchScript one (`dynamo=False`). Next to each
model, as .npy (the same layout as Tools/make_fixtures.py):
  input.npy        float32 [2, 3, H, W] seeded random input
  logits.npy       onnxruntime logits for that input
  target.npy       int64 [2] the logit each sample's gradient is taken of
  grad_input.npy   PyTorch d(sum_b logits[b, target[b]]) / d input
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
    """torchvision's SwinTransformer: one stage of 2 blocks (the second shifted), 2 heads, 4x4
    windows over 8x8 tokens, the relative position bias and the shifted-window attention mask."""
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2], num_heads=[2], window_size=[4, 4],
                                            stochastic_depth_prob=0.0, num_classes=10)


# name -> (constructor, input size)
MODELS = {
    "vit": (tiny_vit, (32, 32)),
    "convnext": (tiny_convnext, (32, 32)),
    "shufflenet": (tiny_shufflenet, (32, 32)),
    "swin": (tiny_swin, (32, 32)),
}
EXPORTERS = {"dynamo": 20, "torchscript": 17}


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


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = {"script": "Tools/make_architecture_fixtures.py", "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "models": {}, "refused": {}}
    for i, (name, (make, (h, w))) in enumerate(MODELS.items()):
        torch.manual_seed(100 + i)
        model = make().eval()
        randomize(model, 200 + i)
        x = torch.from_numpy(np.random.default_rng(300 + i).uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
        target = np.array([1, 3], dtype=np.int64)
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        grad = torch.autograd.grad(out[torch.arange(2), torch.from_numpy(target)].sum(), xg)[0]
        for exporter, opset in EXPORTERS.items():
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
