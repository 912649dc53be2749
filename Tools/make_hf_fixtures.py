#!/usr/bin/env python3
"""Reference fixtures for Hugging Face transformers' image classifiers, in the layout of
Tools/make_architecture_fixtures.py (model.onnx, input.npy, logits.npy from onnxruntime,
target.npy, grad_input.npy from PyTorch autograd), each exported by both exporters:

  vit     ViTForImageClassification: the dynamo export guards each attention's softmax with
          Where(IsNaN(p), 0, p)
  dinov2  Dinov2ForImageClassification at an input larger than its configured image size: the
          position embeddings are resized by bicubic interpolation (a Resize of constants)
  beit    BeitForImageClassification with relative position bias: its bias table is resized
          bilinearly (the dynamo exporter refuses BEiT; recorded in manifest.json)
  swin    SwinForImageClassification: tokens pooled by AdaptiveAvgPool1d, exported as a
          GlobalAveragePool over a [N, C, T] value (the dynamo exporter refuses it too)

Tiny configurations (width 32, two blocks) with seeded random weights: the same blocks as the
published checkpoints. Needs torch, onnx, onnxruntime and transformers.
Run:  python3 Tools/make_hf_fixtures.py   (writes Tests/Fixtures/hf/); CI never needs Python.
"""
import json
import os
import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "hf")
EXPORTERS = {"dynamo": 20, "torchscript": 17}
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 8, "num_labels": 5}
# name: (configuration class, model class, overrides, input size)
MODELS = {
    "vit": ("ViTConfig", "ViTForImageClassification", dict(SMALL, image_size=32), 32),
    "dinov2": ("Dinov2Config", "Dinov2ForImageClassification", dict(SMALL, image_size=32), 48),
    "beit": ("BeitConfig", "BeitForImageClassification", dict(SMALL, image_size=32, use_relative_position_bias=True), 32),
    "swin": ("SwinConfig", "SwinForImageClassification",
             {"image_size": 32, "patch_size": 2, "embed_dim": 8, "depths": [2, 1], "num_heads": [2, 2], "window_size": 4, "num_labels": 5}, 32),
}


class Logits(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(pixel_values=x).logits


def randomize(model, seed):
    """Every parameter seeded (zero-initialised biases and tables included), so that no path is
    trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / p[0].numel()) ** 0.5)
            elif "weight" in name or "lambda" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)


def export(model, x, path, exporter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (x,), path, opset_version=EXPORTERS[exporter], input_names=["input"], output_names=["logits"],
                              dynamo=True, external_data=False)
        else:
            torch.onnx.export(model, (x,), path, opset_version=EXPORTERS[exporter], input_names=["input"], output_names=["logits"],
                              dynamo=False)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = {"script": "Tools/make_hf_fixtures.py", "torch": torch.__version__, "transformers": transformers.__version__,
                "onnxruntime": ort.__version__, "models": {}, "refused": {}}
    for i, (name, (config_class, model_class, overrides, size)) in enumerate(MODELS.items()):
        torch.manual_seed(500 + i)
        inner = getattr(transformers, model_class)(getattr(transformers, config_class)(**overrides))
        model = Logits(inner).eval()
        randomize(model, 600 + i)
        x = torch.from_numpy(np.random.default_rng(700 + i).uniform(-1, 1, (2, 3, size, size)).astype(np.float32))
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
            except Exception as e:  # the exporter refuses this architecture
                shutil.rmtree(folder)
                manifest["refused"][key] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print(f"{key}: refused: {manifest['refused'][key]}")
                continue
            np.save(os.path.join(folder, "input.npy"), x.numpy())
            np.save(os.path.join(folder, "logits.npy"), logits.astype(np.float32))
            np.save(os.path.join(folder, "target.npy"), target)
            np.save(os.path.join(folder, "grad_input.npy"), grad.numpy().astype(np.float32))
            rel = float(np.linalg.norm(logits - out.detach().numpy()) / np.linalg.norm(out.detach().numpy()))
            ops = sorted({n.op_type for n in onnx_model.graph.node})
            manifest["models"][key] = {"exporter": exporter, "opset": opset, "input": [2, 3, size, size], "ort_vs_torch_rel_l2": rel,
                                       "ops": ops, "bytes": os.path.getsize(path)}
            print(f"{key}: opset {opset}, {os.path.getsize(path)} bytes, ort vs torch {rel:.2e}, ops {ops}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
