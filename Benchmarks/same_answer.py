#!/usr/bin/env python3
"""The same answer every run (issue 29's table): `xai explain MODEL x.npy --method saliency` three
times in separate processes on a torchvision model with seeded random weights, each map's
relative L2 error against PyTorch's autograd input gradient in float64 and float32, whether the
three runs are bit-identical, and their wall times; then the same with `--fast`.

    python3 Benchmarks/same_answer.py OUT [--model vgg16] [--runs 3] [--xai .build/release/xai]

Needs torch and torchvision (Tools/requirements-fixtures.txt). Writes OUT/same_answer.json.
"""
import argparse
import json
import pathlib
import subprocess
import time

import numpy as np
import torch
import torchvision

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--model", default="vgg16")
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--xai", default=str(pathlib.Path(__file__).resolve().parents[1] / ".build" / "release" / "xai"))
args = parser.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)

torch.manual_seed(0)
model = getattr(torchvision.models, args.model)(weights=None).eval()
x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
onnx_path = out / f"{args.model}.onnx"
if not onnx_path.exists():
    torch.onnx.export(model, x, str(onnx_path), input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
np.save(out / "x.npy", x.numpy())


def autograd(dtype):
    m = model.to(dtype)
    xi = x.to(dtype).clone().requires_grad_(True)
    logits = m(xi)
    target = int(logits.argmax())
    logits[0, target].backward()
    return xi.grad[0].numpy().astype(np.float64), target


reference64, target = autograd(torch.float64)
reference32, _ = autograd(torch.float32)
print(f"{args.model}: target {target}; PyTorch float32 vs float64: "
      f"{np.linalg.norm(reference32 - reference64) / np.linalg.norm(reference64):.2e}")


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


rows = []
for fast in (False, True):
    maps = []
    for run in range(args.runs):
        folder = out / f"run{'-fast' if fast else ''}-{run}"
        started = time.time()
        subprocess.run([args.xai, "explain", str(onnx_path), str(out / "x.npy"), "--method", "saliency", "--save", "raw", "--quiet",
                        "--target", str(target), "--overwrite", "--out", str(folder)] + (["--fast"] if fast else []), check=True)
        seconds = time.time() - started
        raw = np.load(folder / "x" / "saliency.raw.npy").astype(np.float64)
        maps.append(raw)
        rows.append({"fast": fast, "run": run + 1, "vs_float64": rel(raw, reference64), "vs_pytorch_float32": rel(raw, reference32),
                     "seconds": seconds, "identical_to_run_1": bool(np.array_equal(raw, maps[0]))})
        r = rows[-1]
        print(f"{'fast ' if fast else 'exact'} run {run + 1}: {r['vs_float64']:.2e} from float64, {r['vs_pytorch_float32']:.2e} from "
              f"PyTorch float32, {seconds:.1f} s, identical to run 1: {r['identical_to_run_1']}")
(out / "same_answer.json").write_text(json.dumps({"model": args.model, "target": target, "rows": rows,
                                                  "pytorch_float32_vs_float64": rel(reference32, reference64)}, indent=1))
