#!/usr/bin/env python3
"""onnxruntime rows for the models the peer script does not cover (MobileNetV2, SqueezeNet 1.1, the
demo model), on the same ONNX files xai-bench then runs, so the ratio comes from one machine.

Run through Benchmarks/models_vs_ort.sh (it also runs xai-bench on the exported files). Settings as
the peer script's onnxruntime rows: CPU execution provider, 2 intra-op threads, 1 inter-op thread,
opset 17, seeded random weights (torchvision architectures, eval mode), one warm-up, then the
median of --repeat timed runs of the whole batch.

    ~/.xai-peerenv/bin/python Benchmarks/models_vs_ort.py OUT [--repeat 5]

With --interleaved, xai runs in the same process through its Python package (the C library of a
release build), alternating with onnxruntime batch by batch: each round times one onnxruntime
batch and one xai batch back to back, the order swapped every round, and the row reports the
median of the per-round ratios. On a shared VM whose speed drifts by 10 % from minute to minute,
two runs a minute apart can disagree by more than the gap being measured; rounds seconds apart see
the same machine. xai's times include the C interface's copies of the batch in and the logits out.

    ~/.xai-peerenv/bin/python Benchmarks/models_vs_ort.py OUT --interleaved [--rounds 15]
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


def interleaved(sess, model, shape, batch, rounds):
    """Alternates onnxruntime and xai turns; returns both medians and the median ratio xai / ort."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    expected = sess.run(None, {name: x})[0]
    got = model.predict(x)
    # Same file, same weights: the logits must agree before the times mean anything.
    err = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))
    run = dict(ort=lambda: sess.run(None, {name: x}), xai=lambda: model.predict(x))
    t0 = time.perf_counter()
    run["ort"]()
    # Each turn times enough batches to take about 0.3 s, so a small model's turn is not one call.
    per_turn = max(1, int(0.3 / max(time.perf_counter() - t0, 1e-6)))
    ort_times, xai_times, ratios = [], [], []
    for r in range(rounds):
        t = {}
        for which in (("ort", "xai") if r % 2 == 0 else ("xai", "ort")):
            # Both runtimes' threads busy-wait for a while after a run: let them go to sleep, then
            # wake this turn's threads with an untimed batch, so that neither times the other.
            time.sleep(0.05)
            run[which]()
            t0 = time.perf_counter()
            for _ in range(per_turn):
                run[which]()
            t[which] = (time.perf_counter() - t0) / (per_turn * batch)
        ort_times.append(t["ort"]); xai_times.append(t["xai"]); ratios.append(t["xai"] / t["ort"])
    return dict(ort_median_s=statistics.median(ort_times), xai_median_s=statistics.median(xai_times),
                ratio_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                rounds=rounds, batches_per_turn=per_turn, logits_relative_l2=err)


def main_interleaved(args):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("XAI_LIBRARY", os.path.join(ROOT, ".build", "release", "libxaic.so"))
    import xai
    rows = []
    for name in args.models.split(","):
        path, shape = export(name, args.out)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        with xai.Model(path) as model:
            for batch in (1, 32):
                r = interleaved(sess, model, shape, batch, args.rounds)
                rows.append(dict(model=name, onnx=path, batch=batch, **r))
                print(f"{name:14s} batch {batch:2d}: xai {r['xai_median_s'] * 1e3:7.2f} ms/image, onnxruntime "
                      f"{r['ort_median_s'] * 1e3:7.2f} ms/image, ratio median {r['ratio_median']:.3f} "
                      f"(min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f}, {r['rounds']} rounds; "
                      f"logits rel. L2 {r['logits_relative_l2']:.1e})", flush=True)
    result = dict(onnxruntime=ort.__version__, torch=torch.__version__, xai=xai.version(), machine=platform.processor(),
                  mode="interleaved", rows=rows)
    with open(os.path.join(args.out, "interleaved.json"), "w") as f:
        json.dump(result, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--models", default="mobilenet_v2,squeezenet1_1,demo")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--interleaved", action="store_true", help="alternate with xai's Python package in this process")
    ap.add_argument("--rounds", type=int, default=15, help="rounds per row with --interleaved")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.interleaved:
        return main_interleaved(args)
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
