"""LRP against Zennit on full-size torchvision models (issue 30): VGG16 and ResNet-50 with seeded
random weights, one 224x224 input, every composite (EpsilonPlusFlat, EpsilonGammaBox,
EpsilonAlpha2Beta1), Zennit with its canonizers (SequentialMergeBatchNorm; for ResNet-50
zennit.torchvision.ResNetCanonizer) against `xai explain --method lrp --composite C --save raw`
run in one process per model. Reports each map's relative L2 error against Zennit's (also against Zennit with its merged batch
norms made exact identities: as shipped they divide by sqrt(1 + eps)) and the wall
time of both (Zennit: median of --repeat runs after a warm-up; xai: the `lrp` rows of
`xai-bench methods`, the same ONNX file, median of --repeat runs after a warm-up).

    python3 Benchmarks/lrp_vs_zennit.py OUT [--models vgg16,resnet50] [--repeat 3] [--xai .build/release/xai]

Needs torch, torchvision and zennit (Tools/requirements-fixtures.txt). Writes OUT/lrp_vs_zennit.json.
"""
import argparse
import json
import pathlib
import re
import subprocess
import time

import numpy as np
import torch
import torchvision
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer
import zennit.canonizers

ROOT = pathlib.Path(__file__).resolve().parents[1]
parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--models", default="vgg16,resnet50")
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--xai", default=str(ROOT / ".build" / "release" / "xai"))
args = parser.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(2)

# The z-box bounds: pixels 0 and 1 after ImageNet normalisation, what xai derives from its
# default preprocessing.
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
LOW, HIGH = (0 - MEAN) / STD, (1 - MEAN) / STD


# Zennit's batch-norm merge leaves each merged batch norm with running_var 1 and its eps, so it
# computes x / sqrt(1 + eps) where the identity was meant (about 5e-6 per norm at eps 1e-5); xai
# folds the norm exactly. The second reference makes Zennit's leftover norm an exact identity.
shipped_merge = zennit.canonizers.MergeBatchNorm.merge_batch_norm


def exact_merge(modules, batch_norm):
    shipped_merge(modules, batch_norm)
    batch_norm.running_var.data = torch.ones_like(batch_norm.running_var.data) - batch_norm.eps


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


rows = []
for name in args.models.split(","):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    onnx_path = out / f"{name}.onnx"
    if not onnx_path.exists():
        torch.onnx.export(model, x, str(onnx_path), input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
    np.save(out / "x.npy", x.numpy())
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax())
    onehot = torch.zeros_like(logits)
    onehot[0, target] = 1
    low = torch.tensor(LOW, dtype=torch.float32).view(1, 3, 1, 1).expand_as(x).contiguous()
    high = torch.tensor(HIGH, dtype=torch.float32).view(1, 3, 1, 1).expand_as(x).contiguous()
    canonizers = [ResNetCanonizer()] if name.startswith("resnet") else [SequentialMergeBatchNorm()]
    composites = {"epsilon-plus-flat": lambda: EpsilonPlusFlat(canonizers=canonizers),
                  "epsilon-gamma-box": lambda: EpsilonGammaBox(low=low, high=high, canonizers=canonizers),
                  "epsilon-alpha2-beta1": lambda: EpsilonAlpha2Beta1(canonizers=canonizers)}
    for key, make in composites.items():
        times = []
        for run in range(args.repeat + 1):
            started = time.perf_counter()
            with Gradient(model=model, composite=make()) as attributor:
                _, relevance = attributor(x, lambda output: output * onehot)
            if run:
                times.append(time.perf_counter() - started)
        reference = relevance.detach().numpy().astype(np.float64)
        zennit.canonizers.MergeBatchNorm.merge_batch_norm = staticmethod(exact_merge)
        try:
            with Gradient(model=model, composite=make()) as attributor:
                _, exact = attributor(x, lambda output: output * onehot)
        finally:
            zennit.canonizers.MergeBatchNorm.merge_batch_norm = staticmethod(shipped_merge)
        exact = exact.detach().numpy().astype(np.float64)
        folder = out / f"{name}-{key}"
        subprocess.run([args.xai, "explain", str(onnx_path), str(out / "x.npy"), "--method", "lrp", "--composite", key, "--save", "raw",
                        "--quiet", "--target", str(target), "--overwrite", "--out", str(folder)], check=True)
        ours = np.load(folder / "x" / "lrp.raw.npy").astype(np.float64)
        bench = subprocess.run([str(pathlib.Path(args.xai).with_name("xai-bench")), "methods", "--model", str(onnx_path), "--methods", "lrp",
                                "--repeat", str(args.repeat), "--knobs", json.dumps({"composite": key})],
                               check=True, capture_output=True, text=True).stdout
        match = re.search(r"\|\s*lrp\s*\|[^|]*\|\s*[\d.]+ m?s / ([\d.]+) (m?s)", bench)
        xai_seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1) if match else float("nan")
        row = {"model": name, "composite": key, "target": target, "vs_zennit": rel(ours, reference),
               "vs_zennit_exact_merge": rel(ours, exact), "zennit_vs_its_exact_merge": rel(reference, exact),
               "relevance_sum_xai": float(ours.sum()), "relevance_sum_zennit": float(reference.sum()), "logit": float(logits[0, target]),
               "zennit_seconds": float(np.median(times)), "xai_seconds": xai_seconds}
        rows.append(row)
        print(f"{name} {key}: {row['vs_zennit']:.2e} from Zennit ({row['vs_zennit_exact_merge']:.2e} with its merged norms exact); sums {row['relevance_sum_xai']:.4f} / {row['relevance_sum_zennit']:.4f} "
              f"(logit {row['logit']:.4f}); Zennit {row['zennit_seconds']:.3f} s, xai {xai_seconds:.3f} s", flush=True)
(out / "lrp_vs_zennit.json").write_text(json.dumps({"rows": rows, "torch": torch.__version__}, indent=1))
