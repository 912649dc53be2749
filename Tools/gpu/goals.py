#!/usr/bin/env python3
"""Issue 32's goal table from one `Tools/gpu/run.sh` call's files.

    python3 Tools/gpu/goals.py OUT [ROWS]     # markdown on stdout

OUT holds what the call writes (cuda_peers.json, xai_ops.json, xai_models.json, xai_models256.json,
xai_methods.json, log.txt); ROWS (default OUT) the extra `xai-bench models --json` files of the
tensor-core rows (models_b32_tf32.json, models_b256_tf32.json). Every number comes from those files:
a row whose file is missing, malformed or errored says "not measured" instead of a ratio, and the
other rows stand. Ratios are xai's time over the peer's (below 1: xai is faster), and the GEMM row
is xai's GFLOP/s over cuBLAS's. Verdicts compare the exact values; the table prints three digits.
"""
import json
import os
import re
import sys

IMAGE_BYTES = 3 * 224 * 224 * 4   # one ResNet-50 input, float32
MAP_BYTES = 3 * 224 * 224 * 4     # SmoothGrad's raw map: the gradient of each channel, float32
LOGITS_BYTES = 1000 * 4           # the logits, read back to check the target


def load(folder, name):
    try:
        with open(os.path.join(folder, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def as_dict(value):
    return value if isinstance(value, dict) else {}


def as_list(value):
    """A list of dict rows: the value itself, or its "rows", with anything else dropped."""
    if isinstance(value, dict):
        value = value.get("rows")
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def peer_seconds(peers, key):
    """Median seconds per image of a CUDA peer row, or None (missing or errored)."""
    for r in as_list(as_dict(peers).get("results")):
        if r.get("key") == key:
            return number(as_dict(r.get("per_image_s")).get("median"))
    return None


def model_seconds(rows, batch, row="forward"):
    """Median seconds per image of an `xai-bench models` row, or None."""
    for r in as_list(rows):
        if r.get("model") == "resnet50" and r.get("batch") == batch and r.get("row") == row:
            return number(r.get("secondsPerImage"))
    return None


def method_row(methods, name):
    for r in as_list(methods):
        if r.get("method") == name and r.get("model", "resnet50") == "resnet50":
            return r
    return None


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def verdict(value, limit, smaller_is_better=True):
    if value is None:
        return "not measured"
    met = value <= limit if smaller_is_better else value >= limit
    return "met" if met else "not met"


def tests_summary(log_text):
    """The summary of the call's test step (not of the build-report run after it), or why there is none."""
    step = re.search(r"^== tests on every backend[^\n]*\(limit[^\n]*\n(.*?)^== tests on every backend[^\n]*: (exit[^\n]*)$",
                     log_text, re.M | re.S)
    if not step:
        skipped = re.search(r"^== tests on every backend[^\n]*: skipped[^\n]*$", log_text, re.M)
        return skipped.group(0)[3:] if skipped else "no test step in log.txt"
    executed = re.findall(r"Executed \d+ tests?, with \d+ failures?[^\n]*", step.group(1))
    return (executed[-1].strip() if executed else "no summary") + f" ({step.group(2)})"


def table(out, rows_dir=None):
    rows_dir = rows_dir or out
    peers = as_dict(load(out, "cuda_peers.json"))
    ops = as_dict(load(out, "xai_ops.json"))
    models = load(out, "xai_models.json")
    models256 = load(out, "xai_models256.json")
    methods = load(out, "xai_methods.json")
    tf32 = {b: load(rows_dir, f"models_b{b}_tf32.json") for b in (32, 256)}
    lines = []

    header = as_dict(as_dict(methods).get("header"))
    device = header.get("deviceDetails") or ops.get("backend") or "device unknown"
    versions = as_dict(peers.get("versions"))
    lines.append(f"xai: {device}; peers: {peers.get('device', 'no CUDA peer file')} "
                 + " ".join(f"{k} {v}" for k, v in versions.items()) + f"; {peers.get('precision', '')}")
    log = os.path.join(out, "log.txt")
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            text = f.read()
        pack = re.search(r"^== pack: (.*)$", text, re.M)
        if pack:
            lines.append("pack: " + pack.group(1).strip())
        lines.append("tests: " + tests_summary(text))
        skipped = re.findall(r"^== (.*): skipped, the call's budget", text, re.M)
        if skipped:
            lines.append("skipped for the call's budget: " + ", ".join(skipped))
    lines.append("")
    lines.append("| row | xai | peer | xai / peer | goal | |")
    lines.append("|---|---|---|---|---|---|")

    # fp32 GEMM against cuBLAS, at the size both ran.
    name = str(ops.get("ceilingName", "GEMM"))
    gflops = number(ops.get("ceilingGFlops"))
    size = re.search(r"(\d+)\^3", name)
    label = f"fp32 GEMM {size.group(1)}^3" if size else "fp32 GEMM 4096^3"
    cublas = number(as_dict(peers.get("ceiling")).get(f"cublas_sgemm_{size.group(1)}_gflops")) if size else None
    if gflops is None:
        lines.append(f"| {label} | - | - | - | >= 80 % of cuBLAS | not measured |")
    elif not cublas:
        lines.append(f"| {label} | {gflops / 1e3:.1f} TFLOP/s ({name}) | no cuBLAS row at that size | - | >= 80 % of cuBLAS | not measured |")
    else:
        gemm = gflops / cublas
        lines.append(f"| {label} | {gflops / 1e3:.1f} TFLOP/s ({name}) | cuBLAS {cublas / 1e3:.1f} TFLOP/s | {gemm * 100:.1f} % "
                     f"| >= 80 % of cuBLAS | {verdict(gemm, 0.8, smaller_is_better=False)} |")

    def ratio_row(label, xai, peer, peer_name, limit, goal):
        r = xai / peer if xai is not None and peer else None
        said = verdict(r, limit) if limit is not None else "-"
        lines.append(f"| {label} | {ms(xai)} | {peer_name} {ms(peer)} | {'-' if r is None else f'{r:.3f}'} | {goal} | {said} |")

    ratio_row("ResNet-50 forward, batch 1", model_seconds(models, 1), peer_seconds(peers, "forward_b1"), "PyTorch fp32", 1.0, "<= 1.0x")
    ratio_row("ResNet-50 forward, batch 32 (per image)", model_seconds(models, 32), peer_seconds(peers, "forward_b32"), "PyTorch fp32", 0.8, "<= 0.8x")
    ratio_row("ResNet-50 forward, batch 256 (per image)", model_seconds(models256, 256), peer_seconds(peers, "forward_b256"), "PyTorch fp32", 0.8, "<= 0.8x")
    for b in (32, 256):
        ratio_row(f"ResNet-50 forward, batch {b}, --precision tf32 (per image)", model_seconds(tf32[b], b), peer_seconds(peers, f"forward_b{b}_tf32"),
                  "PyTorch default (TF32 convolutions)", 1.0, "<= 1.0x")
    ratio_row("forward + backward to the input, batch 1", model_seconds(models, 1, "forward+backward to input"),
              peer_seconds(peers, "fwd_bwd_input_b1"), "PyTorch fp32", None, "(no goal)")

    # Methods against their peers, as `xai-bench methods --compare` paired them (median seconds per
    # image): Captum's, and for RISE, which Captum lacks, TorchRay's (the PyTorch library that has one).
    goals = [("ig", "Integrated Gradients, 50 steps", 1.0, "Captum", ""), ("smoothgrad", "SmoothGrad, 50 samples", 1.0, "Captum", ""),
             ("occlusion", "occlusion", 0.5, "Captum", ""), ("lime", "LIME", 0.5, "Captum", ""), ("kernelshap", "KernelSHAP", 0.5, "Captum", ""),
             ("rise", "RISE", 0.5, "TorchRay", " (Captum has no RISE)")]
    for name, label, limit, peer_name, why in goals:
        goal = f"<= {limit}x {peer_name}{why}"
        row = method_row(methods, name)
        xai = number(as_dict(row.get("timing")).get("median")) if row else None
        # The peers' JSON names each library in lower case ("captum", "torchray").
        peer = next((p for p in as_list(row.get("peers")) if p.get("library") == peer_name.lower()), None) if row else None
        if row is not None and peer is None:
            lines.append(f"| {label} | {ms(xai)} | no {peer_name} row | - | {goal} | {'no peer' if xai is not None else 'not measured'} |")
            continue
        ratio_row(label, xai, number(peer.get("medianSeconds")) if peer else None, peer_name, limit, goal)

    # What crosses for one SmoothGrad explanation: the image in, the map (and the logits, for the
    # target) out.
    moved = as_dict((method_row(methods, "smoothgrad") or {}).get("transfers"))
    to, back = number(moved.get("bytesToDevice")), number(moved.get("bytesFromDevice"))
    if to is None or back is None:
        lines.append("| host-device bytes, SmoothGrad | - | - | - | image + map only | not measured |")
    else:
        # 4 KiB of slack in: the target index and a method's scalars.
        met = to <= IMAGE_BYTES + 4096 and back <= MAP_BYTES + LOGITS_BYTES
        lines.append(f"| host-device bytes, SmoothGrad (per image) | in {to / 1e6:.3f} MB, out {back / 1e6:.3f} MB | "
                     f"image {IMAGE_BYTES / 1e6:.3f} MB in; map {MAP_BYTES / 1e6:.3f} MB and logits {LOGITS_BYTES / 1e6:.3f} MB out | - "
                     f"| image + map only | {'met' if met else 'not met'} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    sys.stdout.write(table(argv[1], argv[2] if len(argv) > 2 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
