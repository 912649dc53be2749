#!/usr/bin/env python3
"""Integrated Gradients on ViT-B/16 beside Captum, in one process, in turns.

torchvision's vit_b_16 with seeded random weights (its zero-initialised head seeded too), exported
with the TorchScript exporter (opset 17); one 224x224 image, the top class. Each round times
xai's `ig` (50 steps, Gauss-Legendre, zero baseline, through the C interface) and Captum 0.9's
`IntegratedGradients(n_steps=50, internal_batch_size=50)` (Gauss-Legendre, zero baseline) on the
same model in PyTorch, the order swapped every round; the row reports each side's median and the
median per-round ratio, and the relative L2 distance between the two attributions (the same
integral by the same rule, so they agree to rounding). Threads: 2 for PyTorch, 2 for xai.

    XAI_LIBRARY=.build/release/libxaic.so python3 Benchmarks/transformer_methods.py OUT [--rounds 3] [--model vit_b_16]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seeded_model(name):
    """torchvision's model with models_vs_ort.py's seeding (parameters it starts at zero seeded)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from models_vs_ort import seeded_torchvision_model
    return seeded_torchvision_model(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", default="vit_b_16")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("XAI_LIBRARY", os.path.join(ROOT, ".build", "release", "libxaic.so"))
    import captum
    import xai
    from captum.attr import IntegratedGradients

    torch.set_num_threads(2)
    model = seeded_model(args.model)
    path = os.path.join(args.out, f"{args.model}.onnx")
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        target = int(model(xt).argmax())
    ig = IntegratedGradients(model)

    def captum_ig():
        return ig.attribute(xt, target=target, n_steps=50, internal_batch_size=50, method="gausslegendre").detach().numpy()

    with xai.Model(path) as m:
        def xai_ig():
            return np.asarray(m.explain(x, method="ig", target=target, progress=False, steps=50, rule="gausslegendre").raw)

        a, b = xai_ig(), captum_ig()
        distance = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        times = {"xai": [], "captum": []}
        for r in range(args.rounds):
            for name in (["xai", "captum"] if r % 2 == 0 else ["captum", "xai"]):
                t = time.perf_counter()
                (xai_ig if name == "xai" else captum_ig)()
                times[name].append(time.perf_counter() - t)
                print(f"round {r} {name}: {times[name][-1]:.2f} s", flush=True)
    ratios = [x_ / c for x_, c in zip(times["xai"], times["captum"])]
    row = dict(model=args.model, method="ig 50 steps gausslegendre, zero baseline", xai_median_s=statistics.median(times["xai"]),
               captum_median_s=statistics.median(times["captum"]), ratio_median=statistics.median(ratios), ratio_min=min(ratios),
               ratio_max=max(ratios), rounds=args.rounds, attribution_relative_l2=distance, times=times)
    print(f"{args.model} IG: xai {row['xai_median_s']:.2f} s, Captum {row['captum_median_s']:.2f} s, ratio median {row['ratio_median']:.3f} "
          f"(min {row['ratio_min']:.3f}, max {row['ratio_max']:.3f}, {args.rounds} rounds); attributions rel. L2 {distance:.1e}")
    with open(os.path.join(args.out, "transformer_methods.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, captum=captum.__version__, xai=xai.version(), machine=platform.processor(), rows=[row]), f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
