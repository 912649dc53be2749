#!/usr/bin/env python3
"""The Python package's call overhead: `model.explain(x, "gradcam")` on ResNet-50 from Python
against the same call in Swift, in one process. Each call's Swift time is what the engine measured
around `method.attribute` inside `xai_explain` (`Explanation.seconds`); the Python time is the wall
time of the whole `model.explain` call (argument checks, the registry, copying the input in and the
maps out, JSON metadata). Also runs `xai-bench methods --methods gradcam` for an independent Swift
number (another process).

    XAI_LIBRARY=.build/release/libxaic.so python3 Benchmarks/python_overhead.py [--model resnet50] [--repeat 20]
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("XAI_LIBRARY", str(ROOT / ".build" / "release" / "libxaic.so"))

import numpy as np  # noqa: E402

import xai  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="resnet50")
parser.add_argument("--method", default="gradcam")
parser.add_argument("--repeat", type=int, default=20)
parser.add_argument("--bench", default=str(ROOT / ".build" / "release" / "xai-bench"))
args = parser.parse_args()

with xai.Model(args.model) as model:
    x = np.random.default_rng(3).uniform(-2, 2, model.input_shape).astype(np.float32)
    for _ in range(3):
        model.explain(x, args.method, progress=False)
    wall, inner = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        e = model.explain(x, args.method, progress=False)
        wall.append(time.perf_counter() - t0)
        inner.append(e.seconds)
    device = model.device
overheads = [w - i for w, i in zip(wall, inner)]
print(f"{args.model} {args.method} on {device}, {args.repeat} calls after 3 warm-up calls:")
print(f"  Python model.explain, wall:            median {statistics.median(wall) * 1e3:8.2f} ms  (min {min(wall) * 1e3:.2f})")
print(f"  Swift method.attribute inside the call: median {statistics.median(inner) * 1e3:8.2f} ms  (min {min(inner) * 1e3:.2f})")
print(f"  overhead per call: median {statistics.median(overheads) * 1e3:.3f} ms = "
      f"{100 * statistics.median(overheads) / statistics.median(inner):.2f} % of the Swift time")
if os.path.exists(args.bench):
    out = subprocess.run([args.bench, "methods", "--device", "cpu", "--model", args.model, "--methods", args.method, "--repeat", "10"],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.strip().startswith(f"{args.model} {args.method}:")]
    print(f"  xai-bench (another process, 10 runs): {lines[-1].strip() if lines else out.stdout[-400:]}")
