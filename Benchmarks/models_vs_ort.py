#!/usr/bin/env python3
"""onnxruntime rows for the models the peer script does not cover (MobileNetV2, SqueezeNet 1.1, the
demo model), on the same ONNX files xai-bench then runs, so the ratio comes from one machine.

Run through Benchmarks/models_vs_ort.sh (it also runs xai-bench on the exported files). Settings as
the peer script's onnxruntime rows: CPU execution provider, 2 intra-op threads, 1 inter-op thread,
opset 17, seeded random weights (torchvision architectures, eval mode), one warm-up, then the
median of --repeat timed runs of the whole batch.

    ~/.xai-peerenv/bin/python Benchmarks/models_vs_ort.py OUT [--repeat 5]
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def export(name, out):
    """Exports a torchvision model with seeded weights; the demo model is already ONNX."""
    if name == "demo":
        return os.path.join(ROOT, "Demo", "model.onnx"), (3, 64, 64)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    path = os.path.join(out, f"{name}.onnx")
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, path, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    return path, (3, 224, 224)


def time_batch(sess, shape, batch, repeat):
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    sess.run(None, {name: x})
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t0) / batch)
    return dict(min_s=min(times), median_s=statistics.median(times), max_s=max(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--models", default="mobilenet_v2,squeezenet1_1,demo")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        path, shape = export(name, args.out)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for batch in (1, 32):
            r = time_batch(sess, shape, batch, args.repeat)
            rows.append(dict(model=name, onnx=path, batch=batch, **r))
            print(f"{name:14s} batch {batch:2d}: {r['median_s'] * 1e3:8.2f} ms/image (median)", flush=True)
    result = dict(onnxruntime=ort.__version__, torch=torch.__version__, machine=platform.processor(),
                  rows=rows)
    with open(os.path.join(args.out, "ort_models.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
