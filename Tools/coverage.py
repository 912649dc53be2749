#!/usr/bin/env python3
"""Which classifiers load: every torchvision classification architecture, exported with both of
PyTorch's exporters, checked against onnxruntime (logits) and PyTorch autograd (input gradient).

For each model (random seeded weights, one 224x224 image; 299x299 for Inception v3) and each
exporter (`dynamo`: the default, opset 20; `torchscript`: `dynamo=False`, opset 17):
  export   whether torch.onnx.export succeeded (the exporter's own error otherwise)
  loads    whether xai opens the model (its error otherwise: the op, node and opset it refuses)
  logits   relative L2 error of xai's logits against onnxruntime's
  grad     relative L2 error of xai's saliency (the raw input gradient of the top class) against
           torch.autograd.grad of the same logit
With `--timm`, the timm transformers people fine-tune too (ViT, DeiT with its distillation token,
DINOv2 with register tokens, BEiT, EVA-02, Swin, ConvNeXt-V2, ...: the TIMM_MODELS list), where timm
is installed. With `--hf`, Hugging Face transformers' image classifiers (ViT, DeiT with its teacher
token, DINOv2, BEiT, Swin, Swin V2, ConvNeXt, ConvNeXt V2: HF_MODELS), built from their default
configurations with fewer blocks (the same blocks; exports in seconds), logits taken from the
model's output object.
Needs torch, torchvision, onnx, onnxruntime (Tools/requirements-fixtures.txt) and the built library:

    swift build -c release --product xaic
    XAI_LIBRARY=.build/release/libxaic.so PYTHONPATH=python python3 Tools/coverage.py [--models vit_b_16,swin_t] \\
        [--exporters dynamo,torchscript] [--json coverage.json] [--markdown coverage.md]

Prints one line per export as it goes, then the table. Exports go to a temporary folder, one at a
time (the largest is ViT-L/16's 1.2 GB; `--max-params` skips larger models, default 150M).
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np


# timm's builders of today's fine-tuned families, small variants (the same blocks as the large ones).
TIMM_MODELS = ["vit_small_patch16_224", "deit_small_distilled_patch16_224", "vit_small_patch14_reg4_dinov2",
               "beit_base_patch16_224", "eva02_tiny_patch14_224", "swin_tiny_patch4_window7_224", "swinv2_tiny_window8_256",
               "convnextv2_nano", "convnext_tiny", "efficientnet_b0", "regnety_016", "mobilevitv2_050"]


# Hugging Face transformers classes and the configuration overrides that shorten them.
HF_MODELS = {
    "vit": ("ViTConfig", "ViTForImageClassification", {"num_hidden_layers": 2}),
    "deit_with_teacher": ("DeiTConfig", "DeiTForImageClassificationWithTeacher", {"num_hidden_layers": 2}),
    "dinov2": ("Dinov2Config", "Dinov2ForImageClassification", {"num_hidden_layers": 2, "image_size": 224}),
    "beit": ("BeitConfig", "BeitForImageClassification", {"num_hidden_layers": 2, "use_relative_position_bias": True}),
    "swin": ("SwinConfig", "SwinForImageClassification", {"depths": [1, 1, 2, 1]}),
    "swinv2": ("Swinv2Config", "Swinv2ForImageClassification", {"depths": [1, 1, 2, 1]}),
    "convnext": ("ConvNextConfig", "ConvNextForImageClassification", {"depths": [1, 1, 2, 1]}),
    "convnextv2": ("ConvNextV2Config", "ConvNextV2ForImageClassification", {"depths": [1, 1, 2, 1]}),
}


def hugging_face(name):
    """A transformers classifier from its default configuration (random weights), returning logits."""
    import torch
    import transformers
    config_class, model_class, overrides = HF_MODELS[name]
    config = getattr(transformers, config_class)(num_labels=10, **overrides)
    inner = getattr(transformers, model_class)(config)

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(pixel_values=x).logits
    return Logits()


def rel(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    d = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / d) if d > 0 else float(np.linalg.norm(a - b))


def first_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:240] if text else ''}"


def seeded(model, seed):
    """Parameters left at zero by torchvision's init (classifier heads, biases) get small seeded
    values, so that logits and gradients are not trivially zero."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and float(p.abs().max()) == 0:
                fan_in = p[0].numel() if p.dim() >= 2 else 1
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / fan_in) ** 0.5)
    return model


def export(model, x, path, exporter):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (x,), path, opset_version=20, input_names=["input"], output_names=["logits"],
                              dynamo=True, external_data=False, verbose=False)
        else:
            torch.onnx.export(model, (x,), path, opset_version=17, input_names=["input"], output_names=["logits"],
                              dynamo=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated torchvision model names (default: every classification model)")
    ap.add_argument("--exporters", default="dynamo,torchscript")
    ap.add_argument("--timm", action="store_true", help="the timm models of TIMM_MODELS instead of torchvision's")
    ap.add_argument("--hf", action="store_true", help="the Hugging Face transformers classifiers of HF_MODELS instead")
    ap.add_argument("--max-params", type=float, default=150e6, help="skip models with more parameters (default 150M)")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--markdown", help="write the table as Markdown here")
    args = ap.parse_args()

    import contextlib
    import io
    import onnxruntime as ort
    import torch
    import torchvision
    import xai

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.hf:
        names = args.models.split(",") if args.models else list(HF_MODELS)
        build = hugging_face
        size_of = lambda name, model: 224
    elif args.timm:
        import timm
        names = args.models.split(",") if args.models else TIMM_MODELS
        build = lambda name: timm.create_model(name, pretrained=False)
        size_of = lambda name, model: model.pretrained_cfg.get("input_size", (3, 224, 224))[1]
    else:
        names = args.models.split(",") if args.models else sorted(torchvision.models.list_models(module=torchvision.models))
        build = lambda name: torchvision.models.get_model(name, weights=None)
        size_of = lambda name, model: 299 if name.startswith("inception") else 224
    exporters = args.exporters.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="xai-coverage-") as tmp:
        for i, name in enumerate(names):
            torch.manual_seed(i)
            try:
                model = seeded(build(name).eval(), 1000 + i)
            except Exception as e:
                rows.append({"model": name, "exporter": "-", "export": first_line(e)})
                continue
            params = sum(p.numel() for p in model.parameters())
            if params > args.max_params:
                print(f"{name}: skipped ({params / 1e6:.0f}M parameters)", flush=True)
                continue
            size = size_of(name, model)
            x = torch.from_numpy(np.random.default_rng(i).uniform(-1, 1, (1, 3, size, size)).astype(np.float32))
            xg = x.clone().requires_grad_(True)
            out = model(xg)
            target = int(out.argmax())
            grad = torch.autograd.grad(out[0, target], xg)[0].numpy()
            for exporter in exporters:
                row = {"model": name, "exporter": exporter, "params": params}
                path = os.path.join(tmp, f"{name}_{exporter}.onnx")
                start = time.time()
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        export(model, x, path, exporter)
                    row["export"] = "ok"
                except Exception as e:
                    row["export"] = first_line(e)
                if row["export"] == "ok":
                    try:
                        logits_ort = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
                        row["ort_vs_torch"] = rel(logits_ort, out.detach().numpy())
                    except Exception as e:
                        row["ort"] = first_line(e)
                        logits_ort = None
                    try:
                        with xai.Model(path) as m:
                            row["loads"] = "ok"
                            logits = m.predict(x.numpy())
                            if logits_ort is not None:
                                row["logits"] = rel(logits, logits_ort)
                            raw = m.explain(x.numpy(), "saliency", target=target, progress=False).raw
                            row["grad"] = rel(raw, grad)
                    except Exception as e:
                        row.setdefault("loads", first_line(e))
                        if row["loads"] == "ok":
                            row["error"] = first_line(e)
                    if os.path.exists(path):
                        os.remove(path)
                row["seconds"] = round(time.time() - start, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "onnxruntime": ort.__version__,
                       "rows": rows}, f, indent=1)
    lines = ["| model | exporter | loads | logits vs onnxruntime | input gradient vs PyTorch |", "|---|---|---|---|---|"]
    for r in rows:
        def num(k):
            v = r.get(k)
            return f"{v:.1e}" if isinstance(v, float) and math.isfinite(v) else (r.get("error", "-") if k == "grad" else "-")
        loads = r.get("loads", "export failed: " + r.get("export", "?")) if r.get("export") == "ok" else "export failed: " + r.get("export", "?")
        lines.append(f"| {r['model']} | {r['exporter']} | {loads if loads != 'ok' else 'yes'} | {num('logits')} | {num('grad')} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    ok = sum(1 for r in rows if r.get("loads") == "ok" and r.get("logits", 1) < 1e-4)
    print(f"{ok} of {len(rows)} exports load and match onnxruntime within 1e-4")


if __name__ == "__main__":
    sys.exit(main())
