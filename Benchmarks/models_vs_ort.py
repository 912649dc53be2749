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

For ResNet-50, ViT-B/16, Swin-T and ConvNeXt-T the interleaved run also alternates xai's forward +
backward to the input (saliency) with onnxruntime's forward and PyTorch's autograd.grad at batch 1
(issue 11's and issue 34's gradient rows):

    ~/.xai-peerenv/bin/python Benchmarks/models_vs_ort.py OUT --interleaved --models vit_b_16,swin_t,convnext_tiny
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


# Models whose interleaved run also times forward + backward to the input at batch 1.
GRADIENT_ROWS = {"resnet50", "vgg16", "vit_b_16", "swin_t", "convnext_tiny"}


def seeded_torchvision_model(name):
    """torchvision's architecture with seeded weights in eval mode. torchvision starts some heads at
    zero (ViT's): seeded values there, so that logits and gradients compared before timing are not
    all zero."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            if p.numel() and float(p.abs().max()) == 0:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / (p[0].numel() if p.dim() >= 2 else 1)) ** 0.5)
    return model


def export(name, out, with_model=False):
    """Exports a torchvision model with seeded weights; the demo model is already ONNX."""
    if name == "demo":
        path = os.path.join(ROOT, "Demo", "model.onnx"), (3, 64, 64)
        return (*path, None) if with_model else path
    model = seeded_torchvision_model(name)
    path = os.path.join(out, f"{name}.onnx")
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, path, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    return (path, (3, 224, 224), model) if with_model else (path, (3, 224, 224))


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


def alternate(run, rounds, per_turn):
    """Times each callable of `run` in turns, `rounds` times, the order rotated every round; returns
    seconds per call, by name, for every round."""
    names = list(run)
    times = {k: [] for k in names}
    for r in range(rounds):
        for which in names[r % len(names):] + names[:r % len(names)]:
            # Every runtime's threads busy-wait for a while after a run: let them go to sleep, then
            # wake this turn's threads with an untimed call, so that none times another's spinning.
            time.sleep(0.05)
            run[which]()
            t0 = time.perf_counter()
            for _ in range(per_turn):
                run[which]()
            times[which].append((time.perf_counter() - t0) / per_turn)
    return times


def calls_per_turn(call):
    """Enough calls for a turn of about 0.3 s, so that a small model's turn is not one call."""
    t0 = time.perf_counter()
    call()
    return max(1, int(0.3 / max(time.perf_counter() - t0, 1e-6)))


def ratio_row(times, num, den, batch=1):
    ratios = [a / b for a, b in zip(times[num], times[den])]
    return dict(ratio_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                **{f"{k}_median_s": statistics.median(v) / batch for k, v in times.items()})


def interleaved(sess, model, shape, batch, rounds):
    """Alternates onnxruntime and xai turns; returns both medians and the median ratio xai / ort."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    expected = sess.run(None, {name: x})[0]
    got = model.predict(x)
    # Same file, same weights: the logits must agree before the times mean anything.
    err = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))
    run = dict(ort=lambda: sess.run(None, {name: x}), xai=lambda: model.predict(x))
    per_turn = calls_per_turn(run["ort"])
    times = alternate(run, rounds, per_turn)
    return dict(**ratio_row(times, "xai", "ort", batch), rounds=rounds, batches_per_turn=per_turn, logits_relative_l2=err)


def interleaved_gradient(sess, model, torch_model, rounds):
    """Batch 1: xai's forward + backward to the input (saliency through the C interface) against
    onnxruntime's forward and PyTorch's `autograd.grad` of the same logit, in turns."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    target = int(np.argmax(sess.run(None, {name: x})[0]))
    xt = torch.from_numpy(x).requires_grad_(True)

    def torch_grad():
        out = torch_model(xt)
        return torch.autograd.grad(out[0, target], xt)[0]

    # The same gradient from both before the times mean anything.
    expected = torch_grad().detach().numpy()
    e = model.explain(x, method="saliency", target=target, progress=False)
    got = np.asarray(e.raw if e.raw is not None else e.maps)
    if got.shape != expected.shape:  # the map only: max over channels of |g|
        expected = np.abs(expected).max(axis=1)
        got = got.reshape(expected.shape)
    err = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))
    run = dict(xai_fwd_bwd=lambda: model.explain(x, method="saliency", target=target, progress=False),
               ort_fwd=lambda: sess.run(None, {name: x}), torch_fwd_bwd=torch_grad)
    times = alternate(run, rounds, 3)
    row = ratio_row(times, "xai_fwd_bwd", "ort_fwd")
    speedup = [b / a for a, b in zip(times["xai_fwd_bwd"], times["torch_fwd_bwd"])]
    return dict(**row, torch_over_xai_median=statistics.median(speedup), torch_over_xai_min=min(speedup),
                torch_over_xai_max=max(speedup), rounds=rounds, saliency_relative_l2=err)


def main_interleaved(args):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("XAI_LIBRARY", os.path.join(ROOT, ".build", "release", "libxaic.so"))
    import xai
    rows = []
    for name in args.models.split(","):
        path, shape, torch_model = export(name, args.out, with_model=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        with xai.Model(path) as model:
            if name in GRADIENT_ROWS:
                torch.set_num_threads(2)
                r = interleaved_gradient(sess, model, torch_model, args.rounds)
                rows.append(dict(model=name, onnx=path, batch=1, row="forward+backward to the input", **r))
                print(f"{name:14s} batch  1: forward+backward: xai {r['xai_fwd_bwd_median_s'] * 1e3:7.2f} ms, onnxruntime forward "
                      f"{r['ort_fwd_median_s'] * 1e3:7.2f} ms, ratio median {r['ratio_median']:.3f} (min {r['ratio_min']:.3f}, "
                      f"max {r['ratio_max']:.3f}); PyTorch autograd.grad {r['torch_fwd_bwd_median_s'] * 1e3:7.2f} ms, "
                      f"{r['torch_over_xai_median']:.2f}x xai's time (min {r['torch_over_xai_min']:.2f}, max "
                      f"{r['torch_over_xai_max']:.2f}); {r['rounds']} rounds; saliency rel. L2 {r['saliency_relative_l2']:.1e}",
                      flush=True)
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
